// Hot reload through the real daemon while events keep arriving: a destination added (POST
// /admin/reload), changed (SIGHUP), removed (`junction reload`) and added again; an invalid
// configuration and a change that needs a restart refused with the reasons while the running
// configuration keeps delivering. Nothing acknowledged is lost: every event is in the changed
// destination's files, and the destination that was removed and added again gets every event
// since it was first added, those sent while it was gone included (its backlog stayed on disk).

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <future>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/web_config.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey = "wk-reload-1";
constexpr const char* kAdmin = "admin-reload-2";

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "junction.yaml";
    write(destination("a", "a.ndjson"));
    auto port = daemon_.start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << daemon_.log();
    port_ = *port;
    client_ = std::make_unique<HttpClient>(port_);
  }

  void TearDown() override { stopLoad(); }

  std::string destination(const std::string& id, const std::string& file,
                          const std::string& extra = "") {
    return fileDestination(id, dir_.path(), file, extra);
  }

  void write(const std::string& destinations, const std::string& server_extra = "") {
    writeFile(config_, webConfig(dir_.path(), kKey, kAdmin, destinations, server_extra));
  }

  // Batches of 10 events, one after another, until stopLoad(); every acknowledged id is kept.
  void startLoad() {
    load_ = std::thread([this] {
      HttpClient c(port_);
      const std::string auth = basicAuth(kKey);
      for (int n = 0; !stop_.load(); ++n) {
        std::string body = "{\"batch\":[";
        std::vector<std::string> ids;
        for (int i = 0; i < 10; ++i) {
          ids.push_back("e" + std::to_string(n) + "-" + std::to_string(i));
          body += std::string(i ? "," : "") + R"({"type":"track","event":"E","userId":"u)" +
                  std::to_string(i) + R"(","messageId":")" + ids.back() + "\"}";
        }
        body += "]}";
        auto r = c.request("POST", "/v1/batch", body, auth);
        if (r.status == 200) {
          std::lock_guard lock(mutex_);
          acked_.insert(acked_.end(), ids.begin(), ids.end());
        } else {
          ++failures_;
        }
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  void stopLoad() {
    stop_.store(true);
    if (load_.joinable()) {
      load_.join();
    }
  }
  std::size_t ackedCount() {
    std::lock_guard lock(mutex_);
    return acked_.size();
  }
  void waitForMoreLoad(std::size_t events = 200) {
    const std::size_t from = ackedCount();
    ASSERT_TRUE(eventually([&] { return ackedCount() >= from + events; })) << daemon_.log();
  }

  std::set<std::string> idsIn(const std::vector<std::string>& files) {
    std::set<std::string> out;
    for (const auto& f : files) {
      const std::string text = readFile(dir_.path() / f);
      std::vector<std::string_view> ids;
      collectMessageIds(text, ids);
      out.insert(ids.begin(), ids.end());
    }
    return out;
  }

  HttpReply reload() { return client_->request("POST", "/admin/reload", "{}", admin_); }

  TempDir dir_;
  fs::path config_;
  DaemonProcess daemon_{dir_.path() / "junction.yaml"};
  std::uint16_t port_ = 0;
  std::unique_ptr<HttpClient> client_;
  const std::string admin_ = bearerAuth(kAdmin);
  std::thread load_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::mutex mutex_;
  std::vector<std::string> acked_;
};

TEST_F(ReloadTest, AddChangeRemoveAndReAddADestinationUnderLoadLosesNothing) {
  startLoad();
  ASSERT_NO_FATAL_FAILURE(waitForMoreLoad());

  // 1. Add b (POST /admin/reload). Events acknowledged after the answer are b's from then on.
  write(destination("a", "a.ndjson") + destination("b", "b.ndjson"));
  auto added = reload();
  ASSERT_EQ(added.status, 200) << added.body;
  EXPECT_NE(added.body.find("destination b added"), std::string::npos) << added.body;
  const std::size_t b_from = ackedCount();
  ASSERT_NO_FATAL_FAILURE(waitForMoreLoad());

  // 2. Change a (a new file) with SIGHUP: a restarts at its cursor.
  write(destination("a", "a2.ndjson") + destination("b", "b.ndjson"));
  ASSERT_TRUE(daemon_.signal(SIGHUP));
  ASSERT_TRUE(eventually([&] {
    return daemon_.log().find("reload: destination a restarted with its new settings") != std::string::npos;
  })) << daemon_.log();
  ASSERT_NO_FATAL_FAILURE(waitForMoreLoad());
  EXPECT_FALSE(idsIn({"a2.ndjson"}).empty()) << "a writes to its new file";

  // 3. Remove b with `junction reload`: its backlog grows on disk.
  write(destination("a", "a2.ndjson"));
  auto cli = runJunction("reload --config " + config_.string() + " --url http://127.0.0.1:" +
                         std::to_string(port_));
  ASSERT_EQ(cli.code, 0) << cli.out;
  EXPECT_NE(cli.out.find("destination b removed"), std::string::npos) << cli.out;
  ASSERT_NO_FATAL_FAILURE(waitForMoreLoad());
  auto status = client_->request("GET", "/admin/status", {}, admin_);
  EXPECT_NE(status.body.find(R"("removed_destinations":[{"id":"b")"), std::string::npos) << status.body;

  // 4. Refused: invalid YAML (the line is named), a key with a bad value, and a section that
  // needs a restart. The running configuration keeps delivering to a.
  writeFile(config_, readFile(config_) + "  - id: c\n    plugin: file\n   config: {\n");
  auto broken = reload();
  EXPECT_EQ(broken.status, 400) << broken.body;
  EXPECT_TRUE(std::regex_search(broken.body, std::regex(R"(junction\.yaml:[0-9]+:[0-9]+: YAML syntax error)")))
      << "file:line:column: " << broken.body;
  write(destination("a", "a2.ndjson", "    retry: { max_attempts: -3 }\n"));
  auto bad_value = reload();
  EXPECT_EQ(bad_value.status, 400) << bad_value.body;
  EXPECT_NE(bad_value.body.find("max_attempts"), std::string::npos) << bad_value.body;
  write(destination("a", "a2.ndjson"), ", threads: 3");
  auto needs_restart = reload();
  EXPECT_EQ(needs_restart.status, 400) << needs_restart.body;
  EXPECT_NE(needs_restart.body.find("server: changed"), std::string::npos) << needs_restart.body;
  EXPECT_NE(daemon_.log().find("reload refused"), std::string::npos);
  const std::size_t a_before = idsIn({"a.ndjson", "a2.ndjson"}).size();
  ASSERT_NO_FATAL_FAILURE(waitForMoreLoad());
  ASSERT_TRUE(eventually([&] { return idsIn({"a.ndjson", "a2.ndjson"}).size() > a_before; }))
      << "the old configuration stopped delivering";

  // 5. b again: it resumes where it stopped, with what arrived while it was gone.
  write(destination("a", "a2.ndjson") + destination("b", "b.ndjson"));
  auto again = reload();
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_NE(again.body.find("destination b added"), std::string::npos) << again.body;
  ASSERT_NO_FATAL_FAILURE(waitForMoreLoad());
  stopLoad();
  EXPECT_EQ(failures_.load(), 0) << "a request was refused during a reload";

  std::vector<std::string> acked;
  {
    std::lock_guard lock(mutex_);
    acked = acked_;
  }
  ASSERT_GT(acked.size(), 1000u);
  ASSERT_TRUE(eventually([&] {
    auto a = idsIn({"a.ndjson", "a2.ndjson"});
    auto b = idsIn({"b.ndjson"});
    for (std::size_t i = 0; i < acked.size(); ++i) {
      if (a.count(acked[i]) == 0 || (i >= b_from && b.count(acked[i]) == 0)) {
        return false;
      }
    }
    return true;
  }, 30s));
  auto a = idsIn({"a.ndjson", "a2.ndjson"});
  auto b = idsIn({"b.ndjson"});
  std::size_t missing_a = 0;
  std::size_t missing_b = 0;
  for (std::size_t i = 0; i < acked.size(); ++i) {
    missing_a += a.count(acked[i]) == 0;
    missing_b += i >= b_from && b.count(acked[i]) == 0;
  }
  EXPECT_EQ(missing_a, 0u);
  EXPECT_EQ(missing_b, 0u);
  status = client_->request("GET", "/admin/status", {}, admin_);
  EXPECT_NE(status.body.find(R"("removed_destinations":[])"), std::string::npos) << status.body;
}

TEST_F(ReloadTest, ARemovedDestinationsBacklogStaysUntilForgotten) {
  write(destination("a", "a.ndjson") + destination("b", "b.ndjson"));
  ASSERT_EQ(reload().status, 200);
  write(destination("a", "a.ndjson"));
  ASSERT_EQ(reload().status, 200);
  const std::string auth = basicAuth(kKey);
  ASSERT_EQ(client_->request("POST", "/v1/track", R"({"userId":"u","event":"E","messageId":"kept"})", auth).status, 200);
  ASSERT_TRUE(eventually([&] { return idsIn({"a.ndjson"}).count("kept") == 1; }));
  auto status = client_->request("GET", "/admin/status", {}, admin_);
  EXPECT_NE(status.body.find(R"("removed_destinations":[{"id":"b","backlog_bytes":)"), std::string::npos)
      << status.body;
  EXPECT_EQ(status.body.find(R"("backlog_bytes":0})"), std::string::npos) << "b holds the event: " << status.body;

  // Forgetting a running destination is refused; b is forgotten.
  EXPECT_EQ(client_->request("POST", "/admin/destinations/a/forget", "{}", admin_).status, 409);
  auto forgot = runJunction("forget b --config " + config_.string() + " --url http://127.0.0.1:" +
                            std::to_string(port_));
  ASSERT_EQ(forgot.code, 0) << forgot.out;
  status = client_->request("GET", "/admin/status", {}, admin_);
  EXPECT_NE(status.body.find(R"("removed_destinations":[])"), std::string::npos) << status.body;
  EXPECT_EQ(client_->request("POST", "/admin/destinations/b/forget", "{}", admin_).status, 404);
  EXPECT_NE(readFile(dir_.path() / "data" / "audit.log").find("destination_forget"), std::string::npos);
}

TEST_F(ReloadTest, TheDebuggerMasksWhatADestinationAddedByAReloadHashes) {
  write(destination("a", "a.ndjson") + destination("c", "c.ndjson", "    hash: [properties.note]\n"));
  ASSERT_EQ(reload().status, 200);
  auto watching = std::async(std::launch::async, [this] {
    return runJunction("tail --count 1 --json --config " + config_.string() + " --url http://127.0.0.1:" +
                       std::to_string(port_));
  });
  ASSERT_TRUE(eventually([&] { return daemon_.log().find("live debugger attached") != std::string::npos; }));
  ASSERT_EQ(client_->request("POST", "/v1/track",
                             R"({"userId":"u","event":"E","properties":{"note":"private-words"}})",
                             basicAuth(kKey)).status,
            200);
  auto run = watching.get();
  ASSERT_EQ(run.code, 0) << run.out;
  EXPECT_NE(run.out.find(R"("note":"***")"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("private-words"), std::string::npos) << run.out;
}

TEST_F(ReloadTest, AChangedSourceRestartsWithItsNewSettings) {
  const std::string second = basicAuth("wk-reload-new");
  EXPECT_EQ(client_->request("POST", "/v1/track", R"({"userId":"u","event":"E"})", second).status, 401);
  std::string text = readFile(config_);
  const std::string old_keys = std::string("write_keys: [\"") + kKey + "\"]";
  ASSERT_NE(text.find(old_keys), std::string::npos);
  text.replace(text.find(old_keys), old_keys.size(),
               std::string("write_keys: [\"") + kKey + "\", \"wk-reload-new\"]");
  writeFile(config_, text);
  auto r = reload();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("source web restarted with its new settings"), std::string::npos) << r.body;
  EXPECT_EQ(client_->request("POST", "/v1/track", R"({"userId":"u","event":"E","messageId":"new-key"})", second).status,
            200);
  ASSERT_TRUE(eventually([&] { return idsIn({"a.ndjson"}).count("new-key") == 1; }));
  // Unchanged again: nothing restarts.
  auto same = reload();
  EXPECT_EQ(same.status, 200);
  EXPECT_NE(same.body.find("no connector changed"), std::string::npos) << same.body;
}

}  // namespace
}  // namespace junction::integration
