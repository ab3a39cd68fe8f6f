// The salesforce source in the real daemon against the fake Salesforce: a first full sync,
// incremental ones over changing data, a SIGKILL in mid-run that resumes without gaps, and a
// checkpoint that is never ahead of the events durable in the queue. Events are read back from a
// `file` destination (NDJSON); each identify's messageId names its record and SystemModstamp.
// A salesforce destination in the same config gets none of them (loop protection). Then the
// destination alone: identifies from the tracking API upserted, refused records dead-lettered
// with Salesforce's reason, and a delete regulation erasing the record.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "tests/fakes/salesforce/fake_salesforce.h"
#include "tests/integration/daemon_harness.h"
#include "tests/integration/sync_harness.h"

namespace junction::integration {
namespace {

namespace fakes = junction::tests::fakes;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::size_t kRecords = 3000;

fakes::FakeSalesforce::Options pagedOptions() {
  fakes::FakeSalesforce::Options options;
  options.query_batch_size = 200;
  return options;
}

class SalesforceSourceE2ETest : public SyncE2ETest {
 protected:
  void SetUp() override {
    for (std::size_t i = 0; i < kRecords; ++i) {
      fake_.setNow(kT0 + static_cast<std::int64_t>(i) * 1000);
      fake_.putRecord("Contact", {{"LastName", "L" + std::to_string(i)},
                                  {"Email", "p" + std::to_string(i) + "@example.com"}});
    }
    // Slow pages, so that a run of 15 pages is still going when the test kills the daemon.
    fake_.setDelay(150ms);
  }

  std::string configText(bool source_enabled) override {
    const std::string credentials = "      login_url: \"" + fake_.baseUrl() + "\"\n"
                                    "      client_id: fake-sf-client-id\n"
                                    "      client_secret: fake-sf-client-secret\n";
    return "server: { listen: \"127.0.0.1:0\" }\n"
           "storage: { path: \"" + (dir_.path() / "data").string() + "\" }\n"
           "sources:\n"
           "  - id: crm\n"
           "    plugin: salesforce\n"
           "    enabled: " + std::string(source_enabled ? "true" : "false") + "\n"
           "    config:\n" + credentials +
           "      every: 1s\n"
           "      fields: [Email, FirstName, LastName]\n"
           "destinations:\n"
           "  - id: archive\n"
           "    plugin: file\n"
           "    batch: { max_wait: 20ms }\n"
           "    config: { path: \"" + out_.string() + "\" }\n"
           // Loop protection: what the salesforce source pulled is not upserted back.
           "  - id: crm_back\n"
           "    plugin: salesforce\n"
           "    config:\n" + credentials +
           "      external_id_field: Junction_Id__c\n";
  }
  // Every record's current version is in the file.
  std::vector<std::string> missing() {
    const auto got = deliveredVersions(out_, "salesforce-");
    std::vector<std::string> out;
    for (const auto& r : fake_.records("Contact")) {
      if (!got.contains({r.id, r.modstamp_ms})) {
        out.push_back(r.id + "@" + std::to_string(r.modstamp_ms));
      }
    }
    return out;
  }

  fakes::FakeSalesforce fake_{pagedOptions()};
};

TEST_F(SalesforceSourceE2ETest, ASigkillInMidRunResumesWithoutGapsAndTheCheckpointIsNeverAhead) {
  std::int64_t at_kill = 0;
  killInMidRunThenDrain(kT0 + 500'000, kT0 + (kRecords - 1) * 1000, [&](std::int64_t checkpoint) {
    std::size_t n = 0;
    for (const auto& r : fake_.records("Contact")) {
      n += r.modstamp_ms <= checkpoint ? 1 : 0;
    }
    return n;
  }, "salesforce-", at_kill);
  if (HasFatalFailure()) {
    return;
  }

  // Records change while the daemon is down; then the source resumes from the checkpoint.
  fake_.setDelay(0ms);
  const auto records = fake_.records("Contact");
  fake_.setNow(kT0 + 9'000'000);
  fake_.updateRecord("Contact", records[5].id, {{"LastName", "Early"}});
  fake_.setNow(kT0 + 9'001'000);
  fake_.updateRecord("Contact", records[kRecords - 1].id, {{"LastName", "Late"}});
  const auto port2 = start(true, "run2.log");
  ASSERT_NE(port2, 0);
  ASSERT_TRUE(eventually([&] { return missing().empty(); }, 60s))
      << missing().size() << " records missing, first " << missing().front() << "\n"
      << daemon_->log();
  EXPECT_TRUE(eventually([&] { return checkpoint() == kT0 + 9'001'000; }));

  // Incremental: a change is picked up by the next run (every 1s), and only what changed is read.
  const auto requests_before = fake_.requestCount();
  fake_.setNow(kT0 + 9'100'000);
  fake_.putRecord("Contact", {{"LastName", "New"}, {"Email", "new@example.com"}});
  ASSERT_TRUE(eventually([&] { return missing().empty(); }, 30s)) << daemon_->log();
  EXPECT_LT(fake_.requestCount() - requests_before, 20u);
  EXPECT_GE(metricValue(port2, "junction_sync_runs_total{result=\"success\",source=\"crm\"}"), 1.0);
  EXPECT_GE(metricValue(port2, "junction_events_filtered_total{destination=\"crm_back\",reason=\"loop\"}"),
            3.0);
  for (const auto& r : fake_.requests()) {
    EXPECT_TRUE(r.method == "GET" || r.path == "/services/oauth2/token")
        << "sent back to Salesforce: " << r.method << " " << r.path;
  }
  EXPECT_TRUE(daemon_->terminate()) << daemon_->exitDescription();
  EXPECT_THAT(readFile(dir_.path() / "run2.log"), ::testing::HasSubstr("sync run finished"));
  EXPECT_THAT(readFile(dir_.path() / "run2.log"),
              ::testing::Not(::testing::HasSubstr("fake-sf-client-secret")));
}

TEST(SalesforceDestinationE2ETest, UpsertsRefusedRecordsAndErasureThroughTheDaemon) {
  TempDir dir;
  fakes::FakeSalesforce fake;
  const fs::path config = dir.path() / "junction.yaml";
  const std::string token = "e2e-admin-token";
  writeFile(config,
            "server: { listen: \"127.0.0.1:0\", admin_token: \"" + token + "\" }\n"
            "storage: { path: \"" + (dir.path() / "data").string() + "\" }\n"
            "sources:\n"
            "  - id: web\n"
            "    plugin: http\n"
            "    config: { write_keys: [wk] }\n"
            "destinations:\n"
            "  - id: crm\n"
            "    plugin: salesforce\n"
            "    consent_default: grant\n"
            "    batch: { max_wait: 50ms }\n"
            "    retry: { max_attempts: 2 }\n"
            "    config:\n"
            "      login_url: \"" + fake.baseUrl() + "\"\n"
            "      client_id: fake-sf-client-id\n"
            "      client_secret: fake-sf-client-secret\n"
            "      external_id_field: Junction_Id__c\n");
  DaemonProcess daemon(config);
  const auto port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << readFile(dir.path() / "junctiond.log");
  HttpClient client(*port);
  constexpr int kPeople = 300;
  json::array batch;
  for (int i = 0; i < kPeople; ++i) {
    const std::string email =
        i % 100 == 7 ? "not-an-email-" + std::to_string(i) : "p" + std::to_string(i) + "@example.com";
    batch.push_back(json::object{{"type", "identify"},
                                 {"userId", "user-" + std::to_string(i)},
                                 {"traits", json::object{{"email", email}, {"lastName", "L"}}}});
  }
  auto posted = client.request(
      "POST", "/v1/batch", json::serialize(json::object{{"batch", batch}, {"writeKey", "wk"}}));
  ASSERT_EQ(posted.status, 200) << posted.body;
  ASSERT_TRUE(eventually([&] { return fake.records("Contact").size() == kPeople - 3; }, 30s))
      << fake.records("Contact").size() << "\n" << readFile(dir.path() / "junctiond.log");
  const std::string auth = "Authorization: Bearer " + token + "\r\n";
  ASSERT_TRUE(eventually([&] {
    auto dlq = client.request("GET", "/admin/dlq", {}, auth);
    return dlq.status == 200 && json::parse(dlq.body).at("count").to_number<int>() == 3;
  }, 30s));
  auto dlq = client.request("GET", "/admin/dlq", {}, auth);
  EXPECT_THAT(dlq.body, ::testing::HasSubstr("INVALID_EMAIL_ADDRESS"));
  EXPECT_THAT(dlq.body, ::testing::HasSubstr("not-an-email-107"));
  EXPECT_EQ(fake.tokensIssued(), 1u);
  EXPECT_EQ(fake.recordByExternalId("Contact", "Junction_Id__c", "user-5")->fields.at("Email"),
            "p5@example.com");

  // Erasure: the record is deleted at Salesforce.
  const std::string id = fake.recordByExternalId("Contact", "Junction_Id__c", "user-5")->id;
  auto regulation = client.request("POST", "/v1/regulations", R"({"type":"delete","userId":"user-5"})",
                                   auth);
  ASSERT_EQ(regulation.status, 200) << regulation.body;
  ASSERT_TRUE(eventually([&] { return !fake.deletedIds().empty(); }, 30s))
      << readFile(dir.path() / "junctiond.log");
  EXPECT_EQ(fake.deletedIds(), std::vector<std::string>{id});
  EXPECT_FALSE(fake.recordByExternalId("Contact", "Junction_Id__c", "user-5"));
  EXPECT_TRUE(daemon.terminate()) << daemon.exitDescription();
  EXPECT_THAT(readFile(dir.path() / "junctiond.log"),
              ::testing::Not(::testing::HasSubstr("fake-sf-client-secret")));
}

}  // namespace
}  // namespace junction::integration
