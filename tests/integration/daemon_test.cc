// The real `junctiond` and `junction` binaries, started as child processes with temporary
// configurations on port 0: configuration checks and exit codes, the core HTTP routes, connector
// start-up, ingest through the test source, log formats and secret scrubbing, and shutdown on
// SIGTERM / SIGINT. Every child is killed if a test fails (RAII).

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "junction/sdk/http_client.h"

extern char** environ;

namespace junction::integration {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

const fs::path kBin = fs::path(JUNCTION_BINARY_DIR) / "bin";
const fs::path kJunctiond = kBin / "junctiond";
const fs::path kJunction = kBin / "junction";
const fs::path kTestSourceDir = fs::path(JUNCTION_BINARY_DIR) / "tests" / "fixtures" / "sources";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/junction-daemon-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    path_ = made == nullptr ? fs::path() : fs::path(made);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

  fs::path write(const std::string& name, const std::string& text) const {
    fs::path file = path_ / name;
    std::ofstream(file) << text;
    return file;
  }

 private:
  fs::path path_;
};

std::string readFile(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t countOf(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// A child process; killed (SIGKILL) and reaped on destruction unless it has exited.
class Child {
 public:
  // Starts `program args...` with the environment plus `env` (an empty value unsets), its
  // stdout and stderr in files under `dir`, in working directory `cwd` (empty: inherited).
  Child(const fs::path& program, const std::vector<std::string>& args,
        const std::map<std::string, std::string>& env, const fs::path& dir,
        const fs::path& cwd = {})
      : stdout_file_(dir / ("stdout." + std::to_string(++counter_))),
        stderr_file_(dir / ("stderr." + std::to_string(counter_))) {
    std::vector<std::string> argv_storage{program.string()};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry(*e);
      auto eq = entry.find('=');
      if (eq != std::string::npos) {
        vars[entry.substr(0, eq)] = entry.substr(eq + 1);
      }
    }
    for (const auto& [k, v] : env) {
      if (v.empty()) {
        vars.erase(k);
      } else {
        vars[k] = v;
      }
    }
    std::vector<std::string> env_storage;
    for (const auto& [k, v] : vars) {
      env_storage.push_back(k + "=" + v);
    }
    std::vector<char*> argv;
    for (auto& a : argv_storage) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_storage) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    int out = ::open(stdout_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = ::open(stderr_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::string cwd_string = cwd.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::dup2(out, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      if (!cwd_string.empty() && ::chdir(cwd_string.c_str()) != 0) {
        ::_exit(126);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out);
    ::close(err);
  }
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // The exit code once the child has exited (-signal when killed by one), or nullopt after
  // `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!status_) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        break;
      }
      if (Clock::now() > deadline) {
        return std::nullopt;
      }
      std::this_thread::sleep_for(10ms);
    }
    return status_;
  }
  bool exited() { return wait(0ms).has_value(); }

  std::string out() const { return readFile(stdout_file_); }
  std::string err() const { return readFile(stderr_file_); }

 private:
  static inline int counter_ = 0;
  fs::path stdout_file_;
  fs::path stderr_file_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct RunResult {
  int code = -1000;  // -1000: did not finish in time
  std::string out;
  std::string err;
};

RunResult run(const fs::path& program, const std::vector<std::string>& args, const fs::path& dir,
              const std::map<std::string, std::string>& env = {}, const fs::path& cwd = {}) {
  Child child(program, args, env, dir, cwd);
  RunResult r;
  if (auto code = child.wait(5s)) {
    r.code = *code;
  }
  r.out = child.out();
  r.err = child.err();
  return r;
}

// A config with the test source `web` and the file destination `archive`, on port 0.
std::string baseConfig(const TempDir& dir, const std::string& extra_server = "",
                       const std::string& extra_top = "") {
  return "server:\n"
         "  listen: \"127.0.0.1:0\"\n"
         "  shutdown_grace: 2s\n" +
         extra_server +
         "storage:\n"
         "  path: " + (dir.path() / "data").string() + "\n"
         "plugins:\n"
         "  paths: [\"" + kTestSourceDir.string() + "\"]\n" +
         extra_top +
         "sources:\n"
         "  - id: web\n"
         "    plugin: test_source\n"
         "destinations:\n"
         "  - id: archive\n"
         "    plugin: file\n"
         "    config: { path: " + (dir.path() / "out" / "events.ndjson").string() + " }\n";
}

// A running junctiond.
class RunningDaemon {
 public:
  RunningDaemon(const TempDir& dir, const std::string& config_text,
                const std::map<std::string, std::string>& env = {})
      : config_(dir.write("junction-" + std::to_string(++counter_) + ".yaml", config_text)),
        child_(kJunctiond, {"--config", config_.string()}, env, dir.path()) {}

  // Waits for the "junctiond ready" line; false (with the log in `why`) when it does not come.
  bool waitReady(std::string* why) {
    static const std::regex kReady(R"(junctiond ready.*listen"?[=:]"?127\.0\.0\.1:(\d+))");
    auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      std::string log = child_.err();
      std::smatch m;
      if (std::regex_search(log, m, kReady)) {
        port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
        return true;
      }
      if (child_.exited()) {
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    *why = "junctiond did not get ready; its log:\n" + child_.err();
    return false;
  }

  std::uint16_t port() const { return port_; }
  Child& child() { return child_; }
  std::string log() const { return child_.err(); }

  sdk::HttpClientResponse request(const std::string& method, const std::string& path,
                                  std::string body = {}) {
    sdk::HttpClientRequest req;
    req.method = method;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + path;
    req.body = std::move(body);
    if (!req.body.empty()) {
      req.headers.set("Content-Type", "application/json");
    }
    req.timeout = 3s;
    return client_.send(req);
  }

  // Sends `sig` and returns the exit code (nullopt if it did not exit within 5 s).
  std::optional<int> stop(int sig) {
    child_.signal(sig);
    return child_.wait(5s);
  }

 private:
  static inline int counter_ = 0;
  fs::path config_;
  Child child_;
  sdk::HttpClient client_;
  std::uint16_t port_ = 0;
};

#define START_DAEMON(name, ...)       \
  RunningDaemon name(__VA_ARGS__);    \
  do {                                \
    std::string why_;                 \
    ASSERT_TRUE(name.waitReady(&why_)) << why_; \
  } while (false)

// ---------------------------------------------------------------------------------------------
// junctiond --check, and exit codes

TEST(DaemonCheckTest, ValidConfigExits0) {
  TempDir dir;
  auto file = dir.write("ok.yaml", baseConfig(dir));
  auto r = run(kJunctiond, {"--config", file.string(), "--check"}, dir.path());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr(file.string() + ": OK (1 sources, 1 destinations"));
}

TEST(DaemonCheckTest, InvalidConfigExits1WithFileLineErrors) {
  TempDir dir;
  auto file = dir.write("bad.yaml",
                        "server:\n"
                        "  listen: \"127.0.0.1:0\"\n"
                        "  admin_tokn: \"x\"\n"
                        "storage:\n"
                        "  path: \"${JT_SURELY_MISSING_VAR}\"\n");
  auto r = run(kJunctiond, {"--config", file.string(), "--check"}, dir.path(),
               {{"JT_SURELY_MISSING_VAR", ""}});
  EXPECT_EQ(r.code, 1);
  std::string all = r.out + r.err;
  EXPECT_THAT(all, HasSubstr(file.string() +
                             ":3:3: server.admin_tokn: unknown option; did you mean 'admin_token'?"));
  EXPECT_THAT(all, HasSubstr(file.string() + ":5:9: storage.path: environment variable "
                                             "JT_SURELY_MISSING_VAR is not set"));
  EXPECT_THAT(all, HasSubstr("(2 errors)"));

  // Without --check the daemon refuses to start, with the same report.
  auto started = run(kJunctiond, {"--config", file.string()}, dir.path());
  EXPECT_EQ(started.code, 1);
  EXPECT_THAT(started.err, HasSubstr("did you mean 'admin_token'?"));
}

TEST(DaemonCheckTest, UnknownPluginIsAnError) {
  TempDir dir;
  std::string text = baseConfig(dir);
  text.replace(text.find("plugin: file"), 12, "plugin: fiel");
  auto file = dir.write("bad.yaml", text);
  auto r = run(kJunctiond, {"--config", file.string(), "--check"}, dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out + r.err, HasSubstr("'file'"));
}

TEST(DaemonCheckTest, MissingConfigFileExits1) {
  TempDir dir;
  auto r = run(kJunctiond, {"--config", (dir.path() / "nope.yaml").string(), "--check"},
               dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out + r.err, HasSubstr("nope.yaml"));
}

TEST(DaemonCheckTest, WithoutConfigExits2) {
  TempDir dir;
  auto r = run(kJunctiond, {}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--config"));
}

TEST(DaemonCheckTest, TheDefaultConfigPasses) {
  // As the quick start runs it: from the repository root, plugin `file` from build/plugins.
  TempDir dir;
  auto r = run(kJunctiond, {"--config", "config/junction.yaml", "--check"}, dir.path(),
               {{"JUNCTION_LISTEN", ""}, {"JUNCTION_ADMIN_TOKEN", ""}}, JUNCTION_SOURCE_DIR);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("config/junction.yaml: OK"));
}

// ---------------------------------------------------------------------------------------------
// The running daemon

TEST(DaemonTest, ServesHealthReadinessMetricsAnd404) {
  TempDir dir;
  START_DAEMON(daemon, dir, baseConfig(dir));
  auto health = daemon.request("GET", "/healthz");
  EXPECT_EQ(health.status, 200) << health.describe();
  auto ready = daemon.request("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.describe();
  EXPECT_EQ(ready.body, R"({"status":"ready"})");

  auto missing = daemon.request("GET", "/no/such/path");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.headers.get("Content-Type"), "application/json");
  boost::system::error_code ec;
  auto body = boost::json::parse(missing.body, ec);
  ASSERT_FALSE(ec) << missing.body;
  EXPECT_EQ(body.at("success"), false);

  auto metrics = daemon.request("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(std::string(metrics.headers.get("Content-Type")), HasSubstr("text/plain"));
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE junction_http_requests_total counter\n"));
  EXPECT_THAT(metrics.body, HasSubstr("junction_http_requests_total "));
}

TEST(DaemonTest, LogsOneLinePerStartedConnectorAndSkipsDisabledOnes) {
  TempDir dir;
  std::string text = baseConfig(dir);
  text.insert(text.find("destinations:\n"),
              "  - id: off\n"
              "    plugin: plugin_that_does_not_exist\n"
              "    enabled: false\n");
  text +=
      "  - id: off-dest\n"
      "    plugin: file\n"
      "    enabled: false\n"
      "    config: { path: " + (dir.path() / "never.ndjson").string() + " }\n";
  START_DAEMON(daemon, dir, text);
  std::string log = daemon.log();
  EXPECT_EQ(countOf(log, "source started id=web plugin=test_source version=1.0.0"), 1u) << log;
  EXPECT_EQ(countOf(log, "destination started id=archive plugin=file version=1.0.0"), 1u) << log;
  EXPECT_EQ(countOf(log, "source started"), 1u) << log;
  EXPECT_EQ(countOf(log, "destination started"), 1u) << log;
  EXPECT_THAT(log, HasSubstr("source disabled id=off"));
  EXPECT_THAT(log, HasSubstr("destination disabled id=off-dest"));
  EXPECT_THAT(log, HasSubstr("sources=1 destinations=1"));
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  EXPECT_FALSE(fs::exists(dir.path() / "never.ndjson"));
}

// Threads carry names (top -H, perf) and background work runs below the threads that answer
// clients: delivery and retention at nice 5, HTTP I/O and the queue writer at 0.
TEST(DaemonTest, ThreadsAreNamedAndDeliveryRunsInTheBackground) {
  TempDir dir;
  START_DAEMON(daemon, dir, baseConfig(dir));
  const fs::path tasks = "/proc/" + std::to_string(daemon.child().pid()) + "/task";
  auto niceByName = [&] {
    std::map<std::string, std::vector<int>> nice_by_name;
    for (const auto& task : fs::directory_iterator(tasks)) {
      std::string comm = readFile(task.path() / "comm");
      while (!comm.empty() && comm.back() == '\n') {
        comm.pop_back();
      }
      // Field 19 of stat is the nice value; the comm field (2) is in parentheses.
      std::string stat = readFile(task.path() / "stat");
      std::istringstream rest(stat.substr(stat.rfind(')') + 2));
      std::string field;
      for (int i = 3; i < 19 && rest >> field; ++i) {
      }
      int nice = 0;
      rest >> nice;
      nice_by_name[comm].push_back(nice);
    }
    return nice_by_name;
  };
  // Each thread names itself once it runs, which may be just after the daemon says it is ready.
  const std::vector<std::string> expected = {"jn-io", "jn-queue-writer", "jn-dispatch-arc",
                                             "jn-deliver-arch", "jn-retention"};
  std::map<std::string, std::vector<int>> nice_by_name;
  for (auto deadline = Clock::now() + 5s;;) {
    nice_by_name = niceByName();
    bool all_named = std::all_of(expected.begin(), expected.end(),
                                 [&](const std::string& name) { return nice_by_name.contains(name); });
    if (all_named || Clock::now() > deadline) {
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  auto niceOf = [&](const std::string& name) {
    auto it = nice_by_name.find(name);
    return it == nice_by_name.end() ? std::vector<int>{} : it->second;
  };
  EXPECT_FALSE(niceOf("jn-io").empty());
  for (int n : niceOf("jn-io")) {
    EXPECT_EQ(n, 0);
  }
  EXPECT_EQ(niceOf("jn-queue-writer"), std::vector<int>{0});
  EXPECT_EQ(niceOf("jn-dispatch-arc"), std::vector<int>{5});  // "jn-dispatch-archive", cut to 15
  EXPECT_EQ(niceOf("jn-deliver-arch"), std::vector<int>{5});
  EXPECT_EQ(niceOf("jn-retention"), std::vector<int>{5});
}

TEST(DaemonTest, EventsPostedToTheTestSourceAreCounted) {
  TempDir dir;
  START_DAEMON(daemon, dir, baseConfig(dir));
  auto r = daemon.request("POST", "/test/events",
                          R"([{"type":"track","event":"Order Completed","userId":"u1"},)"
                          R"({"type":"identify","userId":"u1","traits":{"plan":"pro"}},)"
                          R"({"type":"page","anonymousId":"a1","name":"Home"}])");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.body, R"({"success":true,"accepted":3})");
  auto bad = daemon.request("POST", "/test/events", "not json");
  EXPECT_EQ(bad.status, 400);
  auto wrong_method = daemon.request("GET", "/test/events");
  EXPECT_EQ(wrong_method.status, 405);
  auto metrics = daemon.request("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("junction_events_received_total{source=\"web\"} 3\n"));
  // The 200 came after the events were synced (fsync: batch): the sync was timed.
  EXPECT_TRUE(std::regex_search(metrics.body,
                                std::regex("\njunction_queue_fsync_duration_seconds_count [1-9]")))
      << metrics.body;
}

TEST(DaemonTest, AdminTokenNeverAppearsInTheLog) {
  TempDir dir;
  const std::string token = "tok-5d1e9a7c3b";
  // Make the daemon print the token (its storage path contains it): the line must be scrubbed.
  std::string text = baseConfig(dir, "  admin_token: \"${JT_TEST_ADMIN_TOKEN}\"\n");
  std::string data = (dir.path() / "data").string();
  text.replace(text.find(data), data.size(), (dir.path() / token / "data").string());
  START_DAEMON(daemon, dir, text, {{"JT_TEST_ADMIN_TOKEN", token}});
  EXPECT_EQ(daemon.request("GET", "/healthz").status, 200);
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  std::string log = daemon.log();
  EXPECT_THAT(log, HasSubstr("queue opened path="));
  EXPECT_THAT(log, HasSubstr("[REDACTED]"));
  EXPECT_THAT(log, Not(HasSubstr(token)));
}

TEST(DaemonTest, JsonLogFormatWritesJsonLines) {
  TempDir dir;
  START_DAEMON(daemon, dir, baseConfig(dir, "", "log:\n  format: json\n"));
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  std::istringstream lines(daemon.log());
  std::string line;
  std::size_t count = 0;
  bool saw_ready = false;
  bool saw_stopped = false;
  while (std::getline(lines, line)) {
    if (line.empty()) {
      continue;
    }
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    ASSERT_TRUE(v.is_object()) << line;
    const auto& o = v.as_object();
    ASSERT_TRUE(o.contains("ts") && o.contains("level") && o.contains("msg")) << line;
    saw_ready = saw_ready || (o.at("msg") == "junctiond ready" && o.contains("listen"));
    saw_stopped = saw_stopped || o.at("msg") == "junctiond stopped";
    ++count;
  }
  EXPECT_GE(count, 4u);
  EXPECT_TRUE(saw_ready);
  EXPECT_TRUE(saw_stopped);
}

class DaemonSignalTest : public ::testing::TestWithParam<int> {};

TEST_P(DaemonSignalTest, StopsGracefullyAndExits0) {
  TempDir dir;
  START_DAEMON(daemon, dir, baseConfig(dir));
  ASSERT_EQ(daemon.request("POST", "/test/events", R"([{"type":"track","event":"E","userId":"u"}])")
                .status,
            200);
  auto started = Clock::now();
  auto code = daemon.stop(GetParam());
  ASSERT_TRUE(code) << "junctiond did not exit within 5 s; log:\n" << daemon.log();
  EXPECT_EQ(*code, 0) << daemon.log();
  EXPECT_LT(Clock::now() - started, 3s);
  std::string log = daemon.log();
  EXPECT_THAT(log, HasSubstr(GetParam() == SIGTERM ? "signal=SIGTERM" : "signal=SIGINT"));
  EXPECT_THAT(log, HasSubstr("junctiond stopped"));
}

INSTANTIATE_TEST_SUITE_P(Signals, DaemonSignalTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& signal_info) {
                           return std::string(signal_info.param == SIGTERM ? "SIGTERM" : "SIGINT");
                         });

// Two daemons on one storage.path would interleave queue records and cursors: the second is
// refused, naming the holder; once the first is gone (even by kill -9), the directory is free.
TEST(DaemonTest, SecondDaemonOnTheSameStorageIsRefused) {
  TempDir dir;
  const std::string text = baseConfig(dir);
  {
    START_DAEMON(first, dir, text);
    auto file = dir.write("second.yaml", text);
    auto r = run(kJunctiond, {"--config", file.string()}, dir.path());
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err, HasSubstr("storage.path " + (dir.path() / "data").string() +
                                 " is in use by another process (pid " +
                                 std::to_string(first.child().pid()) + ")"));
    EXPECT_EQ(first.request("GET", "/healthz").status, 200) << "the first daemon is unaffected";
    ::kill(first.child().pid(), SIGKILL);
  }
  START_DAEMON(again, dir, text);
  EXPECT_EQ(again.request("GET", "/healthz").status, 200);
}

TEST(DaemonTest, PortInUseIsReportedAndExits1) {
  TempDir dir;
  START_DAEMON(first, dir, baseConfig(dir));
  TempDir other;
  std::string text = baseConfig(other);
  text.replace(text.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(first.port()));
  auto file = other.write("busy.yaml", text);
  auto r = run(kJunctiond, {"--config", file.string()}, other.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(first.port())));
  // Refused before it touched any state: no audit entry of a start that never happened, no
  // queue, no cursor file.
  const std::string audit = readFile(other.path() / "data" / "audit.log");
  EXPECT_THAT(audit, Not(HasSubstr("daemon_start"))) << audit;
  EXPECT_FALSE(fs::exists(other.path() / "data" / "queue"));
  EXPECT_FALSE(fs::exists(other.path() / "data" / "cursors"));
}

// ---------------------------------------------------------------------------------------------
// The junction CLI

TEST(CliTest, PluginsListsTheFilePlugin) {
  TempDir dir;
  auto r = run(kJunction, {"plugins"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"((^|\n)file +destination +1\.0\.0 +\S)")))
      << r.out;

  auto json = run(kJunction, {"plugins", "--json"}, dir.path());
  ASSERT_EQ(json.code, 0) << json.err;
  boost::system::error_code ec;
  auto list = boost::json::parse(json.out, ec);
  ASSERT_FALSE(ec) << json.out;
  ASSERT_TRUE(list.is_array());
  bool found = false;
  for (const auto& p : list.as_array()) {
    found = found || (p.at("name") == "file" && p.at("kind") == "destination");
  }
  EXPECT_TRUE(found) << json.out;
}

// docs/configuration.md is `junction reference`'s output: every key of the daemon and of each
// plugin, current (after changing an option: build/bin/junction reference > docs/configuration.md).
TEST(CliTest, TheConfigurationReferenceIsCurrent) {
  TempDir dir;
  auto r = run(kJunction, {"reference"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("### `profiles`"));
  EXPECT_THAT(r.out, HasSubstr("| `api_cache_bytes` | size, default 64MiB, range 0..274877906944 bytes |"));
  EXPECT_THAT(r.out, HasSubstr("### file (destination)"));
  std::ifstream in(fs::path(JUNCTION_SOURCE_DIR) / "docs" / "configuration.md", std::ios::binary);
  ASSERT_TRUE(in) << "docs/configuration.md is missing";
  std::ostringstream doc;
  doc << in.rdbuf();
  EXPECT_TRUE(doc.str() == r.out)
      << "docs/configuration.md is out of date: run build/bin/junction reference > "
         "docs/configuration.md";
}

TEST(CliTest, PluginsNamePrintsItsOptions) {
  TempDir dir;
  auto r = run(kJunction, {"plugins", "file"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("file 1.0.0 (destination)"));
  EXPECT_THAT(r.out, HasSubstr("Options:\n"));
  EXPECT_THAT(r.out, HasSubstr("  path  (string, required)\n"));
  EXPECT_THAT(r.out, HasSubstr("max_file_bytes  (size, default 64MiB"));

  auto json = run(kJunction, {"plugins", "file", "--json"}, dir.path());
  ASSERT_EQ(json.code, 0) << json.err;
  boost::system::error_code ec;
  auto doc = boost::json::parse(json.out, ec);
  ASSERT_FALSE(ec) << json.out;
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.at("name"), "file");
  EXPECT_EQ(doc.at("kind"), "destination");
  ASSERT_TRUE(doc.at("options").is_array());
  const auto& options = doc.at("options").as_array();
  ASSERT_FALSE(options.empty());
  EXPECT_EQ(options[0].at("key"), "path");
  EXPECT_EQ(options[0].at("required"), true);
}

TEST(CliTest, ANameWithASourceAndADestinationListsAndDocumentsBoth) {
  TempDir dir;
  const fs::path fixtures = fs::path(JUNCTION_BINARY_DIR) / "tests" / "fixtures";
  const fs::path file = dir.path() / "junction.yaml";
  std::ofstream(file) << "plugins: { paths: [\"" << (fixtures / "good").string() << "\", \""
                      << (fixtures / "good_source").string() << "\"] }\n";
  auto list = run(kJunction, {"plugins", "--config", file.string()}, dir.path());
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(std::regex_search(list.out, std::regex(R"((^|\n)fixture_good +source +1\.0\.0 )")))
      << list.out;
  EXPECT_TRUE(std::regex_search(list.out, std::regex(R"((^|\n)fixture_good +destination +2\.3\.4 )")))
      << list.out;
  auto doc = run(kJunction, {"plugins", "fixture_good", "--config", file.string()}, dir.path());
  ASSERT_EQ(doc.code, 0) << doc.err;
  EXPECT_THAT(doc.out, HasSubstr("fixture_good 1.0.0 (source)"));
  EXPECT_THAT(doc.out, HasSubstr("fixture_good 2.3.4 (destination)"));
  auto json = run(kJunction, {"plugins", "fixture_good", "--json", "--config", file.string()},
                  dir.path());
  ASSERT_EQ(json.code, 0) << json.err;
  auto both = boost::json::parse(json.out);
  ASSERT_TRUE(both.is_array()) << json.out;
  ASSERT_EQ(both.as_array().size(), 2u);
  EXPECT_EQ(both.at(0).at("kind"), "source");
  EXPECT_EQ(both.at(1).at("kind"), "destination");
}

TEST(CliTest, UnknownPluginExits1WithDidYouMean) {
  TempDir dir;
  auto none = run(kJunction, {"plugins", "nosuch"}, dir.path());
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err, HasSubstr("no plugin named 'nosuch'"));
  auto typo = run(kJunction, {"plugins", "fiel"}, dir.path());
  EXPECT_EQ(typo.code, 1);
  EXPECT_THAT(typo.err, HasSubstr("no plugin named 'fiel'; did you mean 'file'?"));
}

TEST(CliTest, CheckExits0Or1) {
  TempDir dir;
  auto good = dir.write("good.yaml", baseConfig(dir));
  auto ok = run(kJunction, {"check", good.string()}, dir.path());
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr(good.string() + ": OK (1 sources, 1 destinations)"));

  auto bad = dir.write("bad.yaml", "server:\n  lisen: \"127.0.0.1:0\"\n");
  auto failed = run(kJunction, {"check", bad.string()}, dir.path());
  EXPECT_EQ(failed.code, 1);
  EXPECT_THAT(failed.err,
              HasSubstr(bad.string() + ":2:3: server.lisen: unknown option; did you mean 'listen'?"));
}

}  // namespace
}  // namespace junction::integration
