// A scheduled destination through the real daemon: events sent to the http source become
// profiles; a run (started with POST /admin/destinations/{id}/sync, as an operator would, rather
// than waiting for the wall clock's next slot) writes one identify per person with the merged
// traits to the `file` destination, then only who changed; the realtime destination never sees
// the sync's events; /admin/status and /metrics show the runs; SIGKILL in mid-run (the
// destination paused) and a restart run the slot again, and a reload that turns the
// destination realtime forgets its state.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "junction/sdk/crypto.h"
#include "tests/integration/daemon_harness.h"
#include "tests/support/ndjson.h"

namespace junction::integration {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using junction::testing::readNdjson;
using ::testing::HasSubstr;

constexpr const char* kKey = "wk-sync-1";
constexpr const char* kAdmin = "admin-sync-token-5";

std::string basicAuth() {
  return "Authorization: Basic " + sdk::base64Encode(std::string(kKey) + ":") + "\r\n";
}
std::string admin() { return "Authorization: Bearer " + std::string(kAdmin) + "\r\n"; }

class ScheduledSyncE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "junction.yaml";
    writeConfig(R"({ mode: scheduled, every: 24h, at: "03:00", timezone: Europe/Berlin })");
    daemon_ = std::make_unique<DaemonProcess>(config_);
    start();
  }

  void writeConfig(const std::string& sync) {
    writeFile(config_, std::string(R"(server: { listen: "127.0.0.1:0", admin_token: ")") +
                           kAdmin + R"(" }
storage: { path: ")" + (dir_.path() / "data").string() + R"(" }
profiles:
  computed:
    orders: {count: "Order Completed"}
sources:
  - id: web
    plugin: http
    config: { write_keys: [")" + kKey + R"("] }
destinations:
  - id: raw
    plugin: file
    batch: { max_wait: 0ms }
    config: { path: ")" + (dir_.path() / "raw.ndjson").string() + R"(" }
  - id: weekly
    plugin: file
    consent: [marketing]
    sync: )" + sync + R"(
    batch: { max_wait: 0ms }
    config: { path: ")" + weekly().string() + R"(" }
)");
  }

  void start() {
    auto port = daemon_->start(dir_.path() / ("junctiond" + std::to_string(++starts_) + ".log"));
    ASSERT_TRUE(port) << daemon_->log();
    client_.close();
    client_.setPort(*port);
  }

  void send(const std::string& type, const std::string& body) {
    auto r = client_.request("POST", "/v1/" + type, body, basicAuth());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // Waits until the profile of `user` shows traits.KEY = VALUE: the applier applies the queue in
  // order, so everything sent before the event that set it is applied too.
  void applied(const std::string& user, const std::string& key, const json::value& value) {
    ASSERT_TRUE(eventually(
        [&] {
          auto r = client_.request("GET", "/v1/profiles/user:" + user, {}, admin());
          if (r.status != 200) {
            return false;
          }
          const json::value body = json::parse(r.body);  // kept: `v` points into it
          const auto* v = body.at("traits").as_object().if_contains(key);
          return v != nullptr && *v == value;
        },
        15s));
  }

  json::object status() {
    auto r = client_.request("GET", "/admin/status", {}, admin());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).as_object();
  }
  json::object syncStatus() {
    const json::object all = status();
    for (const auto& d : all.at("destinations").as_array()) {
      if (d.at("id") == "weekly") {
        return d.as_object().contains("sync") ? d.at("sync").as_object() : json::object{};
      }
    }
    return {};
  }
  std::int64_t runs() {
    auto s = syncStatus();
    return s.contains("runs") ? s.at("runs").as_int64() : -1;
  }

  std::int64_t metric(const std::string& name, const std::string& labels = "") {
    auto r = client_.request("GET", "/metrics");
    std::istringstream in(r.body);
    std::string line;
    std::int64_t sum = 0;
    while (std::getline(in, line)) {
      if (line.rfind(name, 0) == 0 && (line[name.size()] == ' ' || line[name.size()] == '{') &&
          line.find(labels) != std::string::npos) {
        sum += static_cast<std::int64_t>(std::stod(line.substr(line.rfind(' ') + 1)));
      }
    }
    return sum;
  }

  fs::path weekly() const { return dir_.path() / "weekly.ndjson"; }

  TempDir dir_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
  HttpClient client_{0};
  int starts_ = 0;
};

TEST_F(ScheduledSyncE2eTest, ARunSendsEachPersonOnceWithTheirLatestTraitsThenOnlyWhoChanged) {
  auto s = syncStatus();
  ASSERT_FALSE(s.empty()) << "status shows the destination's sync";
  EXPECT_EQ(s.at("schedule"), "every 1d from 03:00 Europe/Berlin");
  EXPECT_EQ(s.at("running"), false);
  EXPECT_GT(s.at("next_run_ms").as_int64(), 0);

  const std::string consent =
      R"("context":{"consent":{"categoryPreferences":{"marketing":true}}})";
  send("identify", R"({"userId":"ann","traits":{"plan":"free","email":"Ann@Example.com"},)" +
                       consent + "}");
  send("identify", R"({"userId":"ann","traits":{"plan":"pro"},)" + consent + "}");
  send("track", R"({"userId":"ann","event":"Order Completed",)" + consent + "}");
  send("identify", R"({"userId":"bob","traits":{"plan":"free"},)" + consent + "}");
  send("identify", R"({"userId":"cy","traits":{"plan":"free"},
                       "context":{"consent":{"categoryPreferences":{"marketing":false}}}})");
  applied("cy", "plan", "free");
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(readNdjson(weekly()).empty()) << "nothing before a run";

  auto r = client_.request("POST", "/admin/destinations/weekly/sync", {}, admin());
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(eventually([&] { return runs() == 1; }, 20s)) << json::serialize(syncStatus());
  auto got = readNdjson(weekly());
  std::map<std::string, json::object> by_user;
  for (const auto& e : got) {
    EXPECT_EQ(e.at("type"), "identify");
    by_user[std::string(e.at("userId").as_string())] = e;
  }
  EXPECT_EQ(got.size(), 2u) << "ann and bob; cy did not consent to marketing";
  ASSERT_TRUE(by_user.contains("ann"));
  const auto& ann = by_user["ann"];
  EXPECT_EQ(ann.at("traits").at("plan"), "pro") << "the latest trait";
  EXPECT_EQ(ann.at("traits").at("orders"), 1) << "computed traits come along";
  EXPECT_EQ(ann.at("context").at("traits").at("email"), "ann@example.com");
  EXPECT_THAT(std::string(ann.at("messageId").as_string()), HasSubstr("sync-weekly-"));
  EXPECT_TRUE(by_user.contains("bob"));
  s = syncStatus();
  EXPECT_EQ(s.at("last_people"), 3) << "cy was sent, and consent routing held her back";
  EXPECT_GT(s.at("last_success_ms").as_int64(), 0);
  EXPECT_EQ(metric("junction_scheduled_sync_runs_total", "result=\"success\""), 1);
  EXPECT_EQ(metric("junction_scheduled_sync_people_sent_total"), 3);
  for (const auto& e : readNdjson(dir_.path() / "raw.ndjson")) {
    EXPECT_EQ(e.at("type") == "identify" && e.at("messageId").as_string().starts_with("sync-"),
              false)
        << "a realtime destination never gets a sync's events";
  }

  // Only bob changes: the next run sends him alone, with his new plan.
  send("identify", R"({"userId":"bob","traits":{"plan":"team"},)" + consent + "}");
  applied("bob", "plan", "team");
  r = client_.request("POST", "/admin/destinations/weekly/sync", {}, admin());
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(eventually([&] { return runs() == 2; }, 20s));
  got = readNdjson(weekly());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got.back().at("userId"), "bob");
  EXPECT_EQ(got.back().at("traits").at("plan"), "team");

  // Unknown or realtime destinations have no runs.
  EXPECT_EQ(client_.request("POST", "/admin/destinations/raw/sync", {}, admin()).status, 404);
  EXPECT_EQ(client_.request("POST", "/admin/destinations/weekly/sync", {}, "").status, 401);
}

TEST_F(ScheduledSyncE2eTest, AKilledRunRunsAgainAtStartAndARealtimeReloadForgetsTheState) {
  const std::string consent =
      R"("context":{"consent":{"categoryPreferences":{"marketing":true}}})";
  for (int i = 0; i < 50; ++i) {
    send("identify", R"({"userId":"u)" + std::to_string(i) + R"(","traits":{"n":)" +
                         std::to_string(i) + "}," + consent + "}");
  }
  applied("u49", "n", 49);
  // The destination is paused: the run emits its events and cannot end.
  ASSERT_EQ(client_.request("POST", "/admin/destinations/weekly/pause", {}, admin()).status, 200);
  auto r = client_.request("POST", "/admin/destinations/weekly/sync", {}, admin());
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(eventually([&] {
    auto s = syncStatus();
    return s.contains("run") && s.at("run").at("sent") == 50;
  }, 20s)) << json::serialize(syncStatus());
  EXPECT_EQ(client_.request("POST", "/admin/destinations/weekly/sync", {}, admin()).status, 409)
      << "no second run while one goes on";
  daemon_->kill();  // SIGKILL in mid-run

  start();  // still paused (an operator's pause outlives a restart): the slot runs again
  ASSERT_TRUE(eventually([&] {
    auto s = syncStatus();
    return s.contains("run") && s.at("run").at("sent") == 50;
  }, 20s)) << json::serialize(syncStatus());
  EXPECT_TRUE(readNdjson(weekly()).empty());
  ASSERT_EQ(client_.request("POST", "/admin/destinations/weekly/resume", {}, admin()).status, 200);
  ASSERT_TRUE(eventually([&] { return runs() == 1; }, 30s)) << json::serialize(syncStatus());
  std::set<std::string> users;
  for (const auto& e : readNdjson(weekly())) {
    users.insert(std::string(e.at("userId").as_string()));
  }
  EXPECT_EQ(users.size(), 50u) << "every person, after the crash";

  // Realtime again: the state is forgotten (scheduled later, it starts over with everyone).
  writeConfig("{ mode: realtime }");
  r = client_.request("POST", "/admin/reload", {}, admin());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(syncStatus().empty());
  EXPECT_THAT(readFile(dir_.path() / "data" / "sync.json"), ::testing::Not(HasSubstr("last_slot")));
}

}  // namespace
}  // namespace junction::integration
