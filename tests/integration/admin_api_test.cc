// The admin API's connector status and pause/resume through the real daemon and the real CLI:
// GET /admin/status (readiness, queue, sources, every destination's state, figures, last success
// and last error), `junction status`, and `junction pause|resume` against a webhook receiver over
// loopback. A paused destination's events wait (never lost, never delivered), it is not
// "stalled" for /readyz, and it stays paused across a restart until resumed.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "tests/fakes/webhook/fake_webhook.h"
#include "tests/integration/web_config.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using tests::fakes::FakeWebhookReceiver;
namespace json = boost::json;

constexpr const char* kKey = "wk-admin-api-1";
constexpr const char* kAdmin = "admin-api-secret-2";

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, webConfig(dir_.path(), kKey, kAdmin, R"(  - id: hook
    plugin: webhook
    batch: { max_wait: 0ms }
    retry: { initial_backoff: 20ms, max_backoff: 100ms }
    config: { url: ")" + hook_.url() + "\" }\n" +
                                     fileDestination("all", dir_.path(), "all.ndjson"),
                                 ", readiness_stall: 1s"));
  }

  void start() {
    auto port = daemon_.start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << daemon_.log();
    port_ = *port;
    client_ = std::make_unique<HttpClient>(port_);
  }

  void track(const std::string& id) {
    auto r = client_->request("POST", "/v1/track",
                              R"({"userId":"p1","event":"Viewed","messageId":")" + id + R"("})", auth_);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  json::object status() {
    auto r = client_->request("GET", "/admin/status", {}, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).as_object();
  }

  json::object destination(const std::string& id) {
    const json::object s = status();  // kept: the loop reads into it
    for (const auto& d : s.at("destinations").as_array()) {
      if (d.as_object().at("id").as_string() == id) {
        return d.as_object();
      }
    }
    ADD_FAILURE() << "no destination " << id;
    return {};
  }

  CliRun cli(const std::string& args) {
    return runJunction(args + " --config " + config_.string() + " --url http://127.0.0.1:" +
                       std::to_string(port_));
  }

  TempDir dir_;
  FakeWebhookReceiver hook_;
  fs::path config_;
  DaemonProcess daemon_{dir_.path() / "junction.yaml"};
  std::uint16_t port_ = 0;
  std::unique_ptr<HttpClient> client_;
  const std::string auth_ = basicAuth(kKey);
  const std::string admin_ = bearerAuth(kAdmin);
};

TEST_F(AdminApiTest, StatusShowsEveryConnectorAndNeedsTheAdminToken) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(client_->request("GET", "/admin/status").status, 401);
  EXPECT_EQ(client_->request("GET", "/admin/status", {}, "Authorization: Bearer wrong\r\n").status, 401);
  ASSERT_NO_FATAL_FAILURE(track("m1"));
  ASSERT_TRUE(hook_.waitForEvents(1, 10s));
  ASSERT_TRUE(eventually([&] { return destination("hook").at("delivered").to_number<std::int64_t>() == 1; }));

  auto s = status();
  EXPECT_TRUE(s.at("ready").as_bool());
  EXPECT_EQ(s.at("sources").as_array().size(), 1u);
  EXPECT_EQ(s.at("sources").as_array()[0].as_object().at("plugin").as_string(), "http");
  EXPECT_GT(s.at("queue").as_object().at("disk_bytes").to_number<std::int64_t>(), 0);
  auto hook = destination("hook");
  EXPECT_EQ(hook.at("plugin").as_string(), "webhook");
  EXPECT_EQ(hook.at("state").as_string(), "idle");
  EXPECT_GT(hook.at("last_success_ms").as_int64(), 0);
  EXPECT_TRUE(hook.at("last_error").is_null());

  // A vendor error shows as the last error, with the receiver's reason, and the event is then
  // delivered by a retry.
  hook_.failNext(1, 503, R"({"error":"receiver overloaded"})");
  ASSERT_NO_FATAL_FAILURE(track("m2"));
  ASSERT_TRUE(hook_.waitForEvents(2, 10s));
  hook = destination("hook");
  ASSERT_TRUE(hook.at("last_error").is_object()) << json::serialize(hook);
  EXPECT_NE(json::serialize(hook.at("last_error")).find("503"), std::string::npos)
      << json::serialize(hook);

  auto text = cli("status");
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("ready"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("hook"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("webhook"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find(kAdmin), std::string::npos) << "the admin token printed";
  auto as_json = cli("status --json");
  EXPECT_EQ(as_json.code, 0) << as_json.out;
  EXPECT_NE(as_json.out.find("\"destinations\""), std::string::npos) << as_json.out;
}

TEST_F(AdminApiTest, APausedDestinationHoldsItsEventsAcrossARestartUntilResumed) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto paused = cli("pause hook");
  ASSERT_EQ(paused.code, 0) << paused.out;
  EXPECT_EQ(destination("hook").at("state").as_string(), "paused");
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(track("p-" + std::to_string(i)));
  }
  // The other destination is not held back; the paused one reads the events and waits.
  ASSERT_TRUE(eventually([&] { return readFile(dir_.path() / "all.ndjson").find("p-4") != std::string::npos; }));
  ASSERT_TRUE(eventually([&] { return destination("hook").at("pending").to_number<std::int64_t>() == 5; }));
  std::this_thread::sleep_for(1500ms);  // past server.readiness_stall
  EXPECT_EQ(hook_.eventCount(), 0u);
  EXPECT_EQ(client_->request("GET", "/readyz").status, 200) << "a paused destination is not stalled";

  // Still paused after a restart: the pause is kept on disk.
  ASSERT_TRUE(daemon_.terminate()) << daemon_.exitDescription();
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(destination("hook").at("state").as_string(), "paused");
  EXPECT_NE(daemon_.log().find("destination starts paused"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return destination("hook").at("pending").to_number<std::int64_t>() == 5; }));
  EXPECT_EQ(hook_.eventCount(), 0u);

  auto resumed = cli("resume hook");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  ASSERT_TRUE(hook_.waitForEvents(5, 10s));
  ASSERT_TRUE(eventually([&] { return destination("hook").at("state").as_string() == "idle"; }))
      << json::serialize(destination("hook"));
  EXPECT_EQ(hook_.duplicateCount(), 0u);

  // Both actions are in the audit log; unknown destinations are refused.
  const std::string audit = readFile(dir_.path() / "data" / "audit.log");
  EXPECT_NE(audit.find("destination_pause"), std::string::npos);
  EXPECT_NE(audit.find("destination_resume"), std::string::npos);
  auto unknown = cli("pause nope");
  EXPECT_EQ(unknown.code, 1) << unknown.out;
  EXPECT_NE(unknown.out.find("no running destination 'nope'"), std::string::npos) << unknown.out;
  EXPECT_EQ(client_->request("POST", "/admin/destinations/hook/pause", "{}").status, 401);
}

}  // namespace
}  // namespace junction::integration
