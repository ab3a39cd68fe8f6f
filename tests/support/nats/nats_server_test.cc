#include "tests/support/nats/nats_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace junction::testing {
namespace {

namespace fs = std::filesystem;

// A NATS connection on a raw socket (no client library): enough of the protocol to make a
// request and read its reply.
class RawNats {
 public:
  explicit RawNats(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    timeval timeout{};
    timeout.tv_sec = 5;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    info_ = readLine();
    connected_ = info_.rfind("INFO ", 0) == 0 &&
                 send("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n"
                      "SUB _INBOX.raw 1\r\n");
  }
  ~RawNats() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawNats(const RawNats&) = delete;
  RawNats& operator=(const RawNats&) = delete;

  bool connected() const { return connected_; }
  const std::string& info() const { return info_; }

  // Publishes payload to subject with a reply subject and returns the reply's payload; "" on
  // an error or no reply within 5 s.
  std::string request(const std::string& subject, const std::string& payload) {
    if (!connected_) return "";
    if (!send("PUB " + subject + " _INBOX.raw " + std::to_string(payload.size()) + "\r\n" +
              payload + "\r\n")) {
      return "";
    }
    while (true) {
      const std::string line = readLine();
      if (line.empty() || line.rfind("-ERR", 0) == 0) return "";
      if (line == "PING") {
        if (!send("PONG\r\n")) return "";
        continue;
      }
      if (line.rfind("MSG ", 0) != 0) continue;  // +OK, PONG, INFO updates
      const std::size_t size = std::stoul(line.substr(line.rfind(' ') + 1));
      while (buffer_.size() < size + 2) {
        if (!fill()) return "";
      }
      std::string reply = buffer_.substr(0, size);
      buffer_.erase(0, size + 2);
      return reply;
    }
  }

 private:
  bool send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool fill() {
    char chunk[4096];
    ssize_t n;
    while ((n = ::recv(fd_, chunk, sizeof(chunk), 0)) < 0 && errno == EINTR) {
    }
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  // The next line without its CRLF, "" when the connection ends or times out.
  std::string readLine() {
    std::size_t end;
    while ((end = buffer_.find("\r\n")) == std::string::npos) {
      if (!fill()) return "";
    }
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    return line;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string info_;
  std::string buffer_;
};

// Whether a NATS server answers on 127.0.0.1:port (sends INFO).
bool answers(int port) {
  RawNats nats(port);
  return nats.connected();
}

bool processGone(pid_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Waits (up to 5 s) until some file under dir has data: JetStream wrote a message block.
bool someFileHasData(const std::string& dir) {
  for (int i = 0; i < 100; ++i) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".blk" && it->is_regular_file(ec) &&
          it->file_size(ec) > 0) {
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(NatsServerTest, StartsWithJetStreamAndStopsLeavingNothing) {
  std::string error;
  auto server = NatsServer::start(&error);
  ASSERT_NE(server, nullptr) << error;
  const int port = server->port();
  const pid_t pid = server->pid();
  const std::string dir = server->directory();
  EXPECT_GT(port, 0);
  EXPECT_GT(server->monitorPort(), 0);
  EXPECT_NE(server->monitorPort(), port);
  EXPECT_EQ(server->clusterPort(), 0);
  EXPECT_EQ(server->url(), "nats://127.0.0.1:" + std::to_string(port));
  EXPECT_GT(pid, 0);
  EXPECT_TRUE(server->running());
  EXPECT_EQ(dir.rfind("/tmp/junction_nats.", 0), 0u) << dir;
  EXPECT_EQ(server->storeDirectory(), dir + "/js");
  EXPECT_EQ(server->logFile(), dir + "/nats.log");
  EXPECT_TRUE(fs::exists(server->logFile()));

  RawNats nats(port);
  ASSERT_TRUE(nats.connected());
  EXPECT_TRUE(contains(nats.info(), "\"jetstream\":true")) << nats.info();
  EXPECT_TRUE(contains(nats.info(), "\"server_name\":\"junction\"")) << nats.info();

  std::string body;
  EXPECT_EQ(server->monitorGet("/healthz", &body), 200);
  EXPECT_TRUE(contains(body, "\"ok\"")) << body;
  EXPECT_TRUE(server->healthy());
  EXPECT_TRUE(server->waitHealthy(&error)) << error;
  EXPECT_EQ(server->monitorGet("/jsz", &body), 200);
  EXPECT_TRUE(contains(body, dir + "/js")) << body;  // the store is in the temp dir
  EXPECT_EQ(server->monitorGet("/no-such-page"), 404);

  server.reset();
  EXPECT_FALSE(answers(port)) << "port " << port << " still answers";
  EXPECT_TRUE(processGone(pid)) << pid;
  EXPECT_FALSE(fs::exists(dir)) << dir;
}

TEST(NatsServerTest, KillAndRestartKeepPortsAndJetStreamData) {
  auto server = NatsServer::start(nullptr);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  const int monitor_port = server->monitorPort();
  const pid_t first_pid = server->pid();
  {
    RawNats nats(port);
    ASSERT_TRUE(nats.connected());
    const std::string created = nats.request(
        "$JS.API.STREAM.CREATE.ORDERS",
        R"({"name":"ORDERS","subjects":["orders.>"],"storage":"file","num_replicas":1})");
    EXPECT_TRUE(contains(created, "stream_create_response")) << created;
    EXPECT_FALSE(contains(created, "\"error\"")) << created;
    const std::string ack = nats.request("orders.1", "hello");
    EXPECT_TRUE(contains(ack, "\"stream\":\"ORDERS\"")) << ack;
    EXPECT_TRUE(contains(ack, "\"seq\":1")) << ack;
  }
  ASSERT_TRUE(someFileHasData(server->storeDirectory()));

  server->kill();
  EXPECT_FALSE(server->running());
  EXPECT_EQ(server->pid(), 0);
  EXPECT_TRUE(processGone(first_pid));
  EXPECT_FALSE(answers(port));
  EXPECT_FALSE(server->healthy());
  server->kill();  // a no-op now

  std::string error;
  ASSERT_TRUE(server->restart(&error)) << error;
  EXPECT_TRUE(server->running());
  EXPECT_GT(server->pid(), 0);
  EXPECT_NE(server->pid(), first_pid);
  EXPECT_EQ(server->port(), port);
  EXPECT_EQ(server->monitorPort(), monitor_port);
  EXPECT_TRUE(server->healthy());
  {
    RawNats nats(port);
    ASSERT_TRUE(nats.connected());
    const std::string info = nats.request("$JS.API.STREAM.INFO.ORDERS", "");
    EXPECT_TRUE(contains(info, "\"messages\":1")) << info;
  }

  // restart() of a running server kills it first.
  const pid_t second_pid = server->pid();
  ASSERT_TRUE(server->restart(&error)) << error;
  EXPECT_TRUE(processGone(second_pid));
  EXPECT_TRUE(answers(port));
}

TEST(NatsServerTest, ReportsAServerThatDiesOnItsOwn) {
  auto server = NatsServer::start(nullptr);
  ASSERT_NE(server, nullptr);
  const pid_t pid = server->pid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  for (int i = 0; i < 100 && server->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(server->running());
  EXPECT_EQ(server->pid(), 0);
  std::string error;
  EXPECT_FALSE(server->waitHealthy(&error, std::chrono::milliseconds(100)));
  EXPECT_TRUE(contains(error, "not running")) << error;
  ASSERT_TRUE(server->restart(&error)) << error;
  EXPECT_TRUE(server->healthy());
}

TEST(NatsServerTest, TwoServersAtOnceAreIndependent) {
  std::string error;
  auto a = NatsServer::start(&error);
  ASSERT_NE(a, nullptr) << error;
  auto b = NatsServer::start(&error);
  ASSERT_NE(b, nullptr) << error;
  EXPECT_NE(a->port(), b->port());
  EXPECT_NE(a->directory(), b->directory());
  const int port_a = a->port();
  a.reset();
  EXPECT_FALSE(answers(port_a));
  EXPECT_TRUE(b->healthy());
}

TEST(NatsClusterTest, ThreeNodesFormOneJetStreamCluster) {
  std::string error;
  auto cluster = NatsCluster::start(3, &error);
  ASSERT_NE(cluster, nullptr) << error;
  ASSERT_EQ(cluster->size(), 3);
  const std::string dir = cluster->directory();
  EXPECT_EQ(dir.rfind("/tmp/junction_nats_cluster.", 0), 0u) << dir;
  std::string urls;
  std::vector<int> ports;
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i) {
    NatsServer& node = cluster->node(i);
    SCOPED_TRACE(node.name());
    EXPECT_EQ(node.name(), "node" + std::to_string(i));
    EXPECT_EQ(node.directory(), dir + "/node" + std::to_string(i));
    EXPECT_TRUE(node.running());
    EXPECT_GT(node.clusterPort(), 0);
    EXPECT_TRUE(node.healthy());
    RawNats nats(node.port());
    ASSERT_TRUE(nats.connected());
    EXPECT_TRUE(contains(nats.info(), "\"cluster\":\"junction\"")) << nats.info();
    std::string jsz;
    EXPECT_EQ(node.monitorGet("/jsz", &jsz), 200);
    EXPECT_TRUE(contains(jsz, "\"cluster_size\": 3")) << jsz;
    urls += (i == 0 ? "" : ",") + node.url();
    ports.push_back(node.port());
    pids.push_back(node.pid());
  }
  EXPECT_EQ(cluster->urls(), urls);
  const int leader = cluster->metaLeader();
  EXPECT_GE(leader, 0);
  EXPECT_LT(leader, 3);

  // A stream replicated on all three nodes.
  {
    RawNats nats(cluster->node(0).port());
    ASSERT_TRUE(nats.connected());
    const std::string created = nats.request(
        "$JS.API.STREAM.CREATE.EVENTS",
        R"({"name":"EVENTS","subjects":["events.>"],"storage":"file","num_replicas":3})");
    EXPECT_TRUE(contains(created, "\"num_replicas\":3")) << created;
    EXPECT_TRUE(contains(created, "\"cluster\":{\"name\":\"junction\"")) << created;
    EXPECT_FALSE(contains(created, "\"error\"")) << created;
    const std::string ack = nats.request("events.1", "hello");
    EXPECT_TRUE(contains(ack, "\"seq\":1")) << ack;
  }

  // A follower crashes and comes back on its ports; the cluster is whole again.
  const int follower = (leader + 1) % 3;
  NatsServer& node = cluster->node(follower);
  node.kill();
  EXPECT_FALSE(node.running());
  EXPECT_FALSE(answers(node.port()));
  EXPECT_EQ(cluster->metaLeader(), leader);
  ASSERT_TRUE(node.restart(&error)) << error;
  EXPECT_EQ(node.port(), ports[static_cast<std::size_t>(follower)]);
  EXPECT_TRUE(cluster->waitHealthy(&error)) << error;
  {
    RawNats nats(node.port());
    ASSERT_TRUE(nats.connected());
    const std::string info = nats.request("$JS.API.STREAM.INFO.EVENTS", "");
    EXPECT_TRUE(contains(info, "\"messages\":1")) << info;
  }
  pids[static_cast<std::size_t>(follower)] = node.pid();

  cluster.reset();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(answers(ports[i])) << "port " << ports[i] << " still answers";
    EXPECT_TRUE(processGone(pids[i])) << pids[i];
  }
  EXPECT_FALSE(fs::exists(dir)) << dir;
}

TEST(NatsClusterTest, ElectsANewMetaLeaderWhenTheLeaderIsKilled) {
  std::string error;
  auto cluster = NatsCluster::start(3, &error);
  ASSERT_NE(cluster, nullptr) << error;
  const int leader = cluster->metaLeader();
  ASSERT_GE(leader, 0);
  cluster->node(leader).kill();
  ASSERT_TRUE(cluster->waitHealthy(&error)) << error;
  const int new_leader = cluster->metaLeader();
  EXPECT_GE(new_leader, 0);
  EXPECT_NE(new_leader, leader);
  ASSERT_TRUE(cluster->node(leader).restart(&error)) << error;
  EXPECT_TRUE(cluster->waitHealthy(&error)) << error;
  EXPECT_TRUE(cluster->node(leader).healthy());
}

TEST(NatsClusterTest, RejectsNoNodes) {
  std::string error;
  EXPECT_EQ(NatsCluster::start(0, &error), nullptr);
  EXPECT_TRUE(contains(error, "at least one node")) << error;
}

}  // namespace
}  // namespace junction::testing
