#include "tests/support/nats/nats_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "tests/support/process.h"

namespace junction::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kServerStartTimeout = std::chrono::seconds(10);
constexpr auto kClusterStartTimeout = std::chrono::seconds(20);
constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr int kStartAttempts = 5;  // new ports each time a server finds one taken

// nats-server on PATH, else where Debian and a manual install put it.
std::string findBinary() {
  if (const char* path = std::getenv("PATH")) {
    const std::string dirs = path;
    std::size_t start = 0;
    while (start <= dirs.size()) {
      const std::size_t colon = dirs.find(':', start);
      const std::size_t end = colon == std::string::npos ? dirs.size() : colon;
      if (end > start) {
        const std::string candidate = dirs.substr(start, end - start) + "/nats-server";
        if (dirs[start] == '/' && isExecutable(candidate)) return candidate;
      }
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  for (const char* candidate :
       {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
    if (isExecutable(candidate)) return candidate;
  }
  return "";
}

// Whether a NATS server answers on 127.0.0.1:port: it accepts the connection and sends its
// INFO line (within a second).
bool answersWithInfo(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval timeout{};
  timeout.tv_sec = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    char buffer[5];
    std::size_t got = 0;
    while (got < 5) {
      const ssize_t n = ::recv(fd, buffer + got, 5 - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ok = got == 5 && std::memcmp(buffer, "INFO ", 5) == 0;
  }
  ::close(fd);
  return ok;
}

size_t appendToString(char* data, size_t size, size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

// GET http://127.0.0.1:<port><path>: the HTTP status, 0 without an answer.
int httpGet(int port, const std::string& path, std::string* body) {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialized) return 0;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return 0;
  std::string received;
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");  // never through an http_proxy from the env
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &appendToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_easy_cleanup(curl);
  if (body != nullptr) *body = std::move(received);
  return static_cast<int>(status);
}

// The meta leader's name in a /jsz answer ("meta_cluster": {..., "leader": "node0", ...}),
// "" when there is none.
std::string metaLeaderName(const std::string& jsz) {
  const std::size_t meta = jsz.find("\"meta_cluster\"");
  if (meta == std::string::npos) return "";
  const std::size_t key = jsz.find("\"leader\"", meta);
  if (key == std::string::npos) return "";
  std::size_t at = jsz.find(':', key);
  if (at == std::string::npos) return "";
  ++at;
  while (at < jsz.size() && (jsz[at] == ' ' || jsz[at] == '\n' || jsz[at] == '\t')) ++at;
  if (at >= jsz.size() || jsz[at] != '"') return "";
  const std::size_t end = jsz.find('"', at + 1);
  if (end == std::string::npos) return "";
  return jsz.substr(at + 1, end - at - 1);
}

std::string describeExit(int status, const std::string& binary) {
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 127) return "could not execute " + binary;
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited";
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

bool makeDirectory(const std::string& path, std::string* error) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    *error = errnoText("mkdir " + path);
    return false;
  }
  return true;
}

bool createFile(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = errnoText("create " + path);
    return false;
  }
  ::close(fd);
  return true;
}

}  // namespace

// ---- NatsServer ----------------------------------------------------------------------------

std::unique_ptr<NatsServer> NatsServer::start(std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  error->clear();
  std::unique_ptr<NatsServer> server(new NatsServer());
  server->binary_ = findBinary();
  if (server->binary_.empty()) {
    *error = "NatsServer: no nats-server on PATH or in /usr/sbin (install the nats-server "
             "package: scripts/deps)";
    return nullptr;
  }
  char dir_template[] = "/tmp/junction_nats.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    *error = errnoText("NatsServer: mkdtemp /tmp/junction_nats.XXXXXX");
    return nullptr;
  }
  server->dir_ = dir_template;
  server->store_dir_ = server->dir_ + "/js";
  server->log_file_ = server->dir_ + "/nats.log";
  server->name_ = "junction";
  if (!createFile(server->log_file_, error)) {
    *error = "NatsServer: " + *error;
    return nullptr;  // ~ removes the directory
  }

  // The ports are free when picked but could be taken before the server binds them: try again
  // with others when the log says so.
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    error->clear();
    const std::vector<int> ports = pickFreePorts(2, error);
    if (ports.empty()) {
      *error = "NatsServer: " + *error;
      return nullptr;
    }
    server->port_ = ports[0];
    server->monitor_port_ = ports[1];
    const long long log_size = server->logSize();
    if (!server->spawn(error)) return nullptr;
    if (server->waitReady(Clock::now() + kServerStartTimeout, true, error)) return server;
    server->kill();
    if (!server->logSaysAddressInUse(log_size) || attempt == kStartAttempts) break;
    std::error_code ec;
    fs::remove_all(server->store_dir_, ec);  // start afresh
  }
  *error += "\n--- last lines of " + server->log_file_ + " ---\n" + server->logTail(30);
  return nullptr;
}

NatsServer::~NatsServer() {
  kill();
  if (owns_dir_ && !dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string NatsServer::url() const {
  return "nats://127.0.0.1:" + std::to_string(port_);
}

pid_t NatsServer::pid() const {
  return pid_.load();
}

std::vector<std::string> NatsServer::arguments() const {
  std::vector<std::string> args = {binary_,
                                   "-js",
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(port_),
                                   "-m",
                                   std::to_string(monitor_port_),
                                   "-sd",
                                   store_dir_,
                                   "-n",
                                   name_};
  if (cluster_port_ != 0) {
    args.insert(args.end(), {"--cluster_name", "junction", "--cluster",
                             "nats://127.0.0.1:" + std::to_string(cluster_port_)});
    if (!routes_.empty()) {
      std::string routes;
      for (const std::string& route : routes_) routes += (routes.empty() ? "" : ",") + route;
      args.insert(args.end(), {"--routes", routes});
    }
  }
  return args;
}

bool NatsServer::spawn(std::string* error) {
  const pid_t pid = spawnWithLog(arguments(), log_file_, dir_, error);
  if (pid < 0) {
    *error = "NatsServer: " + *error;
    return false;
  }
  pid_.store(pid);
  return true;
}

bool NatsServer::running() const {
  const pid_t pid = pid_.load();
  if (pid == 0) return false;
  int status = 0;
  const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
  if (reaped == 0) return true;
  if (reaped == pid) {
    exit_status_.store(status);
    pid_t expected = pid;
    pid_.compare_exchange_strong(expected, 0);
    return false;
  }
  // ECHILD: reaped elsewhere (another thread, SIGCHLD ignored). Alive while it can be signalled.
  if (::kill(pid, 0) == 0) return true;
  pid_t expected = pid;
  pid_.compare_exchange_strong(expected, 0);
  return false;
}

void NatsServer::kill() noexcept {
  const pid_t pid = pid_.exchange(0);
  if (pid == 0) return;
  ::kill(pid, SIGKILL);
  int status = 0;
  pid_t reaped;
  while ((reaped = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (reaped == pid) {
    exit_status_.store(status);
    return;
  }
  // Not our child to wait for (SIGCHLD ignored): wait (bounded) until it is gone.
  for (int i = 0; i < 250 && ::kill(pid, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool NatsServer::restart(std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  error->clear();
  kill();
  if (!spawn(error)) return false;
  if (waitReady(Clock::now() + kServerStartTimeout, cluster_port_ == 0, error)) {
    return true;
  }
  kill();
  *error += "\n--- last lines of " + log_file_ + " ---\n" + logTail(30);
  return false;
}

bool NatsServer::waitReady(Clock::time_point deadline, bool full_health, std::string* error) {
  const std::string health = full_health ? "/healthz" : "/healthz?js-enabled-only=true";
  const auto started = Clock::now();
  std::string last;
  while (true) {
    if (!running()) {
      *error = "NatsServer: nats-server " + name_ + " (port " + std::to_string(port_) + ") " +
               describeExit(exit_status_.load(), binary_);
      return false;
    }
    if (answersWithInfo(port_)) {
      std::string body;
      const int status = monitorGet(health, &body);
      if (status == 200) return true;
      last = status == 0 ? "no answer on monitoring port " + std::to_string(monitor_port_)
                         : "GET " + health + ": " + std::to_string(status) + " " + trimmed(body);
    } else {
      last = "no NATS INFO on client port " + std::to_string(port_);
    }
    if (Clock::now() >= deadline) {
      const auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
      *error = "NatsServer: nats-server " + name_ + " not ready after " +
               std::to_string(waited.count()) + " ms: " + last;
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

bool NatsServer::healthy() const {
  return monitorGet("/healthz") == 200;
}

bool NatsServer::waitHealthy(std::string* error, std::chrono::milliseconds timeout) const {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    std::string body;
    const int status = monitorGet("/healthz", &body);
    if (status == 200) {
      error->clear();
      return true;
    }
    if (Clock::now() >= deadline) {
      *error = "NatsServer: " + name_ + " not healthy after " + std::to_string(timeout.count()) +
               " ms: " +
               (status == 0 ? (running() ? "no answer on monitoring port" : "not running")
                            : "GET /healthz: " + std::to_string(status) + " " + trimmed(body));
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

int NatsServer::monitorGet(const std::string& path, std::string* body) const {
  return httpGet(monitor_port_, path, body);
}

long long NatsServer::logSize() const {
  struct stat st {};
  if (::stat(log_file_.c_str(), &st) != 0) return 0;
  return static_cast<long long>(st.st_size);
}

bool NatsServer::logSaysAddressInUse(long long from) const {
  std::ifstream in(log_file_);
  in.seekg(from);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.find("address already in use") != std::string::npos;
}

std::string NatsServer::logTail(std::size_t lines) const {
  return fileTail(log_file_, lines);
}

// ---- NatsCluster ---------------------------------------------------------------------------

std::unique_ptr<NatsCluster> NatsCluster::start(int nodes, std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  error->clear();
  if (nodes < 1) {
    *error = "NatsCluster: needs at least one node, not " + std::to_string(nodes);
    return nullptr;
  }
  const std::string binary = findBinary();
  if (binary.empty()) {
    *error = "NatsCluster: no nats-server on PATH or in /usr/sbin (install the nats-server "
             "package: scripts/deps)";
    return nullptr;
  }
  std::unique_ptr<NatsCluster> cluster(new NatsCluster());
  char dir_template[] = "/tmp/junction_nats_cluster.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    *error = errnoText("NatsCluster: mkdtemp /tmp/junction_nats_cluster.XXXXXX");
    return nullptr;
  }
  cluster->dir_ = dir_template;
  for (int i = 0; i < nodes; ++i) {
    std::unique_ptr<NatsServer> node(new NatsServer());
    node->binary_ = binary;
    node->owns_dir_ = false;
    node->name_ = "node" + std::to_string(i);
    node->dir_ = cluster->dir_ + "/" + node->name_;
    node->store_dir_ = node->dir_ + "/js";
    node->log_file_ = node->dir_ + "/nats.log";
    if (!makeDirectory(node->dir_, error) || !createFile(node->log_file_, error)) {
      *error = "NatsCluster: " + *error;
      return nullptr;  // ~ removes the directory
    }
    cluster->nodes_.push_back(std::move(node));
  }

  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    error->clear();
    const std::vector<int> ports = pickFreePorts(3 * nodes, error);
    if (ports.empty()) {
      *error = "NatsCluster: " + *error;
      return nullptr;
    }
    std::vector<long long> log_sizes;
    for (int i = 0; i < nodes; ++i) {
      NatsServer& node = *cluster->nodes_[static_cast<std::size_t>(i)];
      node.port_ = ports[static_cast<std::size_t>(3 * i)];
      node.monitor_port_ = ports[static_cast<std::size_t>(3 * i + 1)];
      node.cluster_port_ = ports[static_cast<std::size_t>(3 * i + 2)];
      log_sizes.push_back(node.logSize());
    }
    for (int i = 0; i < nodes; ++i) {
      NatsServer& node = *cluster->nodes_[static_cast<std::size_t>(i)];
      node.routes_.clear();
      for (int j = 0; j < nodes; ++j) {
        if (j == i) continue;
        node.routes_.push_back("nats://127.0.0.1:" +
                               std::to_string(cluster->nodes_[static_cast<std::size_t>(j)]
                                                  ->cluster_port_));
      }
    }
    for (auto& node : cluster->nodes_) {
      if (!node->spawn(error)) {
        *error = "NatsCluster: " + *error;
        return nullptr;  // ~ kills the nodes started
      }
    }
    const auto deadline = Clock::now() + kClusterStartTimeout;
    bool ready = true;
    for (auto& node : cluster->nodes_) {
      if (!node->waitReady(deadline, false, error)) {
        ready = false;
        break;
      }
    }
    if (ready) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (cluster->waitHealthy(error, std::max(left, std::chrono::milliseconds(0)))) {
        return cluster;
      }
    }
    bool address_in_use = false;
    for (int i = 0; i < nodes; ++i) {
      NatsServer& node = *cluster->nodes_[static_cast<std::size_t>(i)];
      node.kill();
      if (node.logSaysAddressInUse(log_sizes[static_cast<std::size_t>(i)])) address_in_use = true;
    }
    if (!address_in_use || attempt == kStartAttempts) break;
    for (auto& node : cluster->nodes_) {
      std::error_code ec;
      fs::remove_all(node->store_dir_, ec);  // start afresh
    }
  }
  *error += "\n" + cluster->logTails(15);
  return nullptr;
}

NatsCluster::~NatsCluster() {
  for (auto& node : nodes_) node->kill();
  nodes_.clear();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string NatsCluster::urls() const {
  std::string out;
  for (const auto& node : nodes_) out += (out.empty() ? "" : ",") + node->url();
  return out;
}

std::string NatsCluster::inspect(bool check_health, int* leader) const {
  *leader = -1;
  std::string leader_name;
  std::string leader_seen_by;
  int running = 0;
  for (const auto& node : nodes_) {
    if (!node->running()) continue;
    ++running;
    std::string body;
    if (check_health) {
      const int status = node->monitorGet("/healthz", &body);
      if (status != 200) {
        return node->name() + ": GET /healthz: " +
               (status == 0 ? "no answer" : std::to_string(status) + " " + trimmed(body));
      }
    }
    const int status = node->monitorGet("/jsz", &body);
    if (status != 200) {
      return node->name() + ": GET /jsz: " +
             (status == 0 ? "no answer" : std::to_string(status) + " " + trimmed(body));
    }
    const std::string name = metaLeaderName(body);
    if (name.empty()) return node->name() + " knows no JetStream meta leader";
    if (leader_name.empty()) {
      leader_name = name;
      leader_seen_by = node->name();
    } else if (name != leader_name) {
      return "the nodes disagree on the meta leader: " + leader_seen_by + " says " +
             leader_name + ", " + node->name() + " says " + name;
    }
  }
  if (running == 0) return "no node is running";
  for (int i = 0; i < size(); ++i) {
    if (nodes_[static_cast<std::size_t>(i)]->name() != leader_name) continue;
    if (!nodes_[static_cast<std::size_t>(i)]->running()) {
      return "the meta leader " + leader_name + " is not running";
    }
    *leader = i;
    return "";
  }
  return "the meta leader " + leader_name + " is not a node of this cluster";
}

int NatsCluster::metaLeader() const {
  int leader = -1;
  inspect(false, &leader);
  return leader;
}

bool NatsCluster::waitHealthy(std::string* error, std::chrono::milliseconds timeout) const {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int leader = -1;
    const std::string problem = inspect(true, &leader);
    if (problem.empty()) {
      error->clear();
      return true;
    }
    if (Clock::now() >= deadline) {
      *error = "NatsCluster: not healthy after " + std::to_string(timeout.count()) +
               " ms: " + problem;
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string NatsCluster::logTails(std::size_t lines) const {
  std::string out;
  for (const auto& node : nodes_) {
    out += "--- last lines of " + node->logFile() + " ---\n" + node->logTail(lines);
  }
  return out;
}

NatsServer* sharedServer() {
  static const std::unique_ptr<NatsServer> server = [] {
    std::string error;
    auto started = NatsServer::start(&error);
    if (!started) {
      std::fprintf(stderr, "the shared nats-server did not start: %s\n", error.c_str());
    }
    return started;
  }();
  return server.get();
}

NatsCluster* sharedCluster() {
  static const std::unique_ptr<NatsCluster> cluster = [] {
    std::string error;
    auto started = NatsCluster::start(3, &error);
    if (!started) {
      std::fprintf(stderr, "the shared NATS cluster did not start: %s\n", error.c_str());
    }
    return started;
  }();
  return cluster.get();
}

}  // namespace junction::testing
