#pragma once

// Real NATS servers with JetStream for tests and benchmarks: `nats-server -js` processes in a
// temp directory under /tmp, on free 127.0.0.1 ports, killed and deleted when the object is
// destroyed. Independent of any NATS client library: readiness is checked over TCP (the
// server's INFO line) and the HTTP monitoring endpoint (libcurl).
//
//   std::string error;
//   auto nats = junction::testing::NatsServer::start(&error);
//   ASSERT_NE(nats, nullptr) << error;
//   ... connect the code under test to nats->url() ("nats://127.0.0.1:PORT") ...
//   nats->kill();                          // SIGKILL: a crash, nothing flushed
//   ASSERT_TRUE(nats->restart(&error)) << error;  // same ports, same JetStream store
//
//   auto cluster = junction::testing::NatsCluster::start(3, &error);
//   ASSERT_NE(cluster, nullptr) << error;
//   ... connect to cluster->urls() ("nats://127.0.0.1:A,nats://127.0.0.1:B,...") ...
//   cluster->node(cluster->metaLeader()).kill();   // fail over
//   ASSERT_TRUE(cluster->waitHealthy(&error)) << error;  // a new meta leader, all current
//
// The binary is `nats-server` on PATH, else /usr/sbin/nats-server (Debian's `nats-server`
// package, 2.9). Each server runs `nats-server -js -a 127.0.0.1 -p <client port>
// -m <monitoring port> -sd <dir>/js -n <name>` with its output (the log) appended to
// <dir>/nats.log; cluster nodes add `--cluster_name junction --cluster nats://127.0.0.1:<route
// port> --routes <the other nodes' route URLs>` and are named node0, node1, ...
//
// start() returns once the client port answers with INFO and GET /healthz on the monitoring
// port says ok (JetStream enabled and current: for a cluster, a meta leader is elected and
// every node is current with it) — a few hundred milliseconds for one server, a second or two
// for a cluster; it gives up after 10 s (one server) or 20 s (a cluster). Ports are picked
// free and picked again when a server finds one taken before it binds it.
//
// The destructors kill the processes (SIGKILL, then wait for them) and remove the directory,
// so a failing test leaves nothing behind; only a test process killed outright (SIGKILL,
// abort) leaves servers running, in /tmp/junction_nats.* and /tmp/junction_nats_cluster.*.
//
// Thread-safety: the accessors, running(), healthy(), waitHealthy(), monitorGet(), metaLeader()
// and NatsCluster::waitHealthy() may be called from any thread; kill() and restart() must not
// race with each other or with the destructor. Nothing throws (beyond std::bad_alloc).

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace junction::testing {

class NatsCluster;

class NatsServer {
 public:
  // Starts one JetStream server. nullptr and *error (what failed, with the last lines of the
  // log) when it cannot: no nats-server installed, the server failing or not getting ready.
  // error may be nullptr.
  static std::unique_ptr<NatsServer> start(std::string* error);

  // Kills the server and, unless it is a cluster's node, removes its directory. Never throws.
  ~NatsServer();

  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // "nats://127.0.0.1:PORT", the client URL.
  std::string url() const;
  int port() const { return port_; }
  // The HTTP monitoring port (/healthz, /varz, /jsz...).
  int monitorPort() const { return monitor_port_; }
  // The route port of a cluster node, 0 for a lone server.
  int clusterPort() const { return cluster_port_; }
  // The server name (-n): "node<i>" in a cluster, "junction" alone.
  const std::string& name() const { return name_; }
  // The server's output, appended to across restarts.
  const std::string& logFile() const { return log_file_; }
  // The server's directory: nats.log and js/, the JetStream store (-sd).
  const std::string& directory() const { return dir_; }
  const std::string& storeDirectory() const { return store_dir_; }
  // The process id; 0 after kill() or once the process has been seen to exit.
  pid_t pid() const;
  // Whether the process is alive (reaps it when it has exited on its own).
  bool running() const;

  // SIGKILL and wait until the process is gone; nothing is flushed, as in a crash. No-op when
  // not running. Never throws.
  void kill() noexcept;
  // Starts the server again (killing it first if it runs) with the same name, ports and
  // JetStream store, so streams and messages that reached the store survive. A lone server
  // waits until /healthz is ok; a cluster node only until it accepts clients with JetStream
  // enabled — it cannot be current without a quorum of its peers, which may be down: use
  // NatsCluster::waitHealthy() for that. false and *error (with the log's tail) when it does
  // not come up in 10 s; error may be nullptr.
  bool restart(std::string* error);

  // Whether GET /healthz answers 200 now (JetStream enabled and current).
  bool healthy() const;
  // Polls /healthz until it is ok; false and *error (the last answer) after timeout.
  bool waitHealthy(std::string* error,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // GET http://127.0.0.1:<monitorPort()><path> ("/varz", "/jsz?streams=true"...): the HTTP
  // status, 0 when there was no answer (1 s timeout); the body in *body when not nullptr.
  int monitorGet(const std::string& path, std::string* body = nullptr) const;

 private:
  friend class NatsCluster;

  NatsServer() = default;
  // The command line for the current ports.
  std::vector<std::string> arguments() const;
  // Forks and execs nats-server, its output appended to the log.
  bool spawn(std::string* error);
  // Waits until the client port answers and /healthz (full_health) or
  // /healthz?js-enabled-only=true is ok; false and *error when the process exits or the
  // deadline passes first.
  bool waitReady(std::chrono::steady_clock::time_point deadline, bool full_health,
                 std::string* error);
  std::string logTail(std::size_t lines) const;
  // Whether the log, from byte `from` on, says a port was taken.
  bool logSaysAddressInUse(long long from) const;
  long long logSize() const;

  std::string binary_;
  std::string dir_;
  std::string store_dir_;
  std::string log_file_;
  std::string name_;
  int port_ = 0;
  int monitor_port_ = 0;
  int cluster_port_ = 0;
  std::vector<std::string> routes_;  // the other nodes' route URLs, empty alone
  bool owns_dir_ = true;
  // Changed by running() (when it reaps the process) as well as kill() and restart().
  mutable std::atomic<pid_t> pid_{0};
  mutable std::atomic<int> exit_status_{0};  // waitpid status of the last process reaped
};

class NatsCluster {
 public:
  // Starts `nodes` (>= 1) servers forming one JetStream cluster named "junction". Returns once
  // every node answers, a meta leader is elected and every node is current with it. nullptr and
  // *error (what failed, with the tail of each node's log) when it cannot; error may be
  // nullptr.
  static std::unique_ptr<NatsCluster> start(int nodes, std::string* error);

  // Kills every node and removes the directory. Never throws.
  ~NatsCluster();

  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  // Node i (0 <= i < size()), named "node<i>": url(), kill(), restart(), running()...
  NatsServer& node(int i) { return *nodes_.at(static_cast<std::size_t>(i)); }
  const NatsServer& node(int i) const { return *nodes_.at(static_cast<std::size_t>(i)); }
  // Every node's client URL, comma-separated: "nats://127.0.0.1:A,nats://127.0.0.1:B,...".
  std::string urls() const;
  // The cluster's directory: node<i>/ for each node (its nats.log and js/).
  const std::string& directory() const { return dir_; }

  // The index of the JetStream meta leader as the running nodes see it: -1 when they know
  // none, disagree, or name one that is not running.
  int metaLeader() const;
  // Polls until every running node's /healthz is ok and they agree on a running meta leader
  // (after a kill or restart: a new election, a node catching up). false and *error (what is
  // still wrong) after timeout.
  bool waitHealthy(std::string* error,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

 private:
  NatsCluster() = default;
  std::string logTails(std::size_t lines) const;
  // One look at the running nodes: "" when they agree on a running meta leader (*leader its
  // index) and, with check_health, every one's /healthz is ok; else what is wrong.
  std::string inspect(bool check_health, int* leader) const;

  std::string dir_;
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

// One server, and one three-node cluster, for the whole test binary: started on first use,
// killed at exit; each test uses its own stream. nullptr when it cannot start (the reason is
// printed on stderr, once).
NatsServer* sharedServer();
NatsCluster* sharedCluster();

}  // namespace junction::testing
