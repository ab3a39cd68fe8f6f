// The salesforce source: the query it sends, records -> identify events, and runs against the
// fake Salesforce over loopback HTTP (paged, changing data, session expiry, the org's request
// limit, failures) with the SDK's manual clock and scheduler.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "junction/sdk/testing/checked_config.h"
#include "junction/sdk/testing/fake_context.h"
#include "salesforce_source.h"
#include "tests/fakes/salesforce/fake_salesforce.h"

namespace junction::plugins::salesforce {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using tests::fakes::FakeSalesforce;

constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

SalesforceSourceConfig configFor(json::object yaml) {
  auto config = sdk::testing::bindChecked(salesforceSourceOptions(), yaml);
  EXPECT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->validate().empty());
  return std::move(*config);
}

FakeSalesforce::Options pagedOptions() {
  FakeSalesforce::Options options;
  options.query_batch_size = 200;
  return options;
}

TEST(SalesforceSourceRequestsTest, TheQueryIsInclusiveAndOrderedBySystemModstampThenId) {
  EXPECT_EQ(buildQuery("Contact", {"Id", "SystemModstamp", "Email"}, std::nullopt),
            "SELECT Id, SystemModstamp, Email FROM Contact ORDER BY SystemModstamp, Id");
  EXPECT_EQ(buildQuery("Lead", {"Id", "SystemModstamp"}, kT0),
            "SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp >= "
            "2026-01-01T00:00:00Z ORDER BY SystemModstamp, Id");
  // A fraction of a second (not in SystemModstamp, but a checkpoint is text) rounds down.
  EXPECT_EQ(buildQuery("Lead", {"Id"}, kT0 + 1999),
            "SELECT Id FROM Lead WHERE SystemModstamp >= 2026-01-01T00:00:01Z ORDER BY "
            "SystemModstamp, Id");
  EXPECT_EQ(parseSalesforceTime("2026-01-01T00:00:01.000+0000"), kT0 + 1000);
  EXPECT_EQ(parseSalesforceTime("2026-01-01T01:00:01.000+0100"), kT0 + 1000);
  EXPECT_EQ(parseSalesforceTime("2026-01-01T00:00:01Z"), kT0 + 1000);
  EXPECT_EQ(parseSalesforceTime("yesterday"), std::nullopt);
}

TEST(SalesforceSourceRequestsTest, ARecordBecomesAnIdentifyWithTraitsAndItsSalesforceId) {
  const auto record = json::parse(R"({"attributes":{"type":"Lead","url":"/x"},
      "Id":"00QDn0000000001AAA","SystemModstamp":"2026-01-01T00:00:01.000+0000",
      "Email":"ada@example.com","FirstName":"Ada","LastName":null,"Company":"Engines",
      "Rating__c":5})").as_object();
  std::string why;
  const auto body = recordEvent(record, "Id", why);
  ASSERT_TRUE(body) << why;
  EXPECT_EQ(json::serialize(*body),
            R"({"type":"identify","userId":"00QDn0000000001AAA",)"
            R"("messageId":"salesforce-00QDn0000000001AAA-1767225601000",)"
            R"("timestamp":"2026-01-01T00:00:01.000Z","traits":{"email":"ada@example.com",)"
            R"("firstName":"Ada","company":{"name":"Engines"},"Rating__c":5,)"
            R"("salesforce_id":"00QDn0000000001AAA"},"context":{"externalIds":[{"id":)"
            R"("00QDn0000000001AAA","type":"salesforce_id","collection":"users","encoding":"none"}],)"
            R"("integration":{"name":"salesforce"},"salesforce":{"object":"Lead"}}})");
  EXPECT_EQ(recordEvent(record, "Email", why)->at("userId"), "ada@example.com");
  EXPECT_FALSE(recordEvent(record, "Phone", why));
  EXPECT_EQ(why, "no Phone");
  EXPECT_FALSE(recordEvent(json::object{{"Id", "1"}}, "Id", why));
}

TEST(SalesforceSourceConfigTest, DefaultsAndValidation) {
  const auto config = configFor({{"login_url", "https://x.my.salesforce.com"},
                                 {"client_id", "id"},
                                 {"client_secret", "s"}});
  EXPECT_EQ(config.object, "Contact");
  EXPECT_EQ(config.every, 15min);
  EXPECT_EQ(config.user_id, "Id");
  EXPECT_EQ(config.api_version, "62.0");
  EXPECT_THAT(config.fields, ::testing::Contains("Email"));
  auto bad = config;
  bad.fields = {"Email", "Drop Table"};
  bad.user_id = "";
  ASSERT_EQ(bad.validate().size(), 2u);
  EXPECT_FALSE(sdk::testing::bindChecked(salesforceSourceOptions(), {{"every", "100ms"}}));
  EXPECT_FALSE(sdk::testing::bindChecked(salesforceSourceOptions(), {{"object", "Account"}}));
}

class SalesforceSourceTest : public ::testing::Test {
 protected:
  std::unique_ptr<SalesforceSource> makeSource(json::object extra = {}) {
    json::object yaml{{"login_url", fake.baseUrl()},
                      {"client_id", "fake-sf-client-id"},
                      {"client_secret", "fake-sf-client-secret"},
                      {"every", "1m"},
                      {"timeout", "5s"}};
    for (auto& [k, v] : extra) {
      yaml[k] = v;
    }
    return std::make_unique<SalesforceSource>(configFor(yaml), ctx);
  }
  void runDue() { ctx.scheduler().runDue(); }
  void advance(std::chrono::milliseconds d) {
    ctx.scheduler().advanceAndRun(ctx.manualClock(), d);
  }
  // `n` contacts, the i-th changed at kT0 + i seconds.
  void seed(int n) {
    for (int i = 0; i < n; ++i) {
      fake.setNow(kT0 + i * 1000);
      fake.putRecord("Contact", {{"LastName", "L" + std::to_string(i)},
                                 {"Email", "p" + std::to_string(i) + "@example.com"}});
    }
  }
  std::optional<std::string> checkpoint() {
    auto values = ctx.checkpoints().values();
    auto it = values.find("cursor");
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::size_t queries() const {
    std::size_t n = 0;
    for (const auto& r : fake.requests()) {
      n += r.path.find("/query") != std::string::npos ? 1 : 0;
    }
    return n;
  }
  // Every record's current version (id, SystemModstamp) was emitted at least once.
  void expectEveryCurrentVersionEmitted() {
    std::map<std::string, std::vector<std::int64_t>> versions;
    for (const auto& e : ctx.events()) {
      versions[e.userId()].push_back(e.header().timestamp_ms);
    }
    for (const auto& r : fake.records("Contact")) {
      auto it = versions.find(r.id);
      ASSERT_NE(it, versions.end()) << "record " << r.id << " never emitted";
      EXPECT_THAT(it->second, ::testing::Contains(r.modstamp_ms)) << "record " << r.id;
    }
  }

  FakeSalesforce fake{pagedOptions()};
  sdk::testing::FakeSourceContext ctx{"crm"};
};

TEST_F(SalesforceSourceTest, AFirstFullSyncThenIncrementalOnes) {
  seed(450);
  auto source = makeSource();
  ASSERT_TRUE(source->start().ok());
  runDue();
  ASSERT_EQ(ctx.events().size(), 450u);
  EXPECT_EQ(queries(), 3u);  // the query and two nextRecordsUrl pages
  EXPECT_EQ(checkpoint(), std::to_string(kT0 + 449'000));
  const auto requests = fake.requests();
  EXPECT_EQ(requests[0].path, "/services/oauth2/token");
  EXPECT_THAT(requests[1].target, HasSubstr("ORDER%20BY%20SystemModstamp%2C%20Id"));
  EXPECT_THAT(requests[1].target, ::testing::Not(HasSubstr("WHERE")));
  EXPECT_THAT(requests[2].path, HasSubstr("/services/data/v62.0/query/01g"));
  const auto first = ctx.events().front();
  EXPECT_EQ(first.userId(), fake.records("Contact").front().id);
  EXPECT_EQ(first.body().at("traits").at("email"), "p0@example.com");
  EXPECT_EQ(first.body().at("traits").at("lastName"), "L0");
  EXPECT_EQ(source->sync().status().runs_succeeded, 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_records_total"), 450u);

  // Changes: two records edited, one new. The next run reads those, and the record of the
  // checkpoint's second again (the checkpoint is inclusive; same messageId).
  const auto records = fake.records("Contact");
  fake.setNow(kT0 + 500'000);
  fake.updateRecord("Contact", records[7].id, {{"LastName", "Changed"}});
  fake.setNow(kT0 + 501'000);
  fake.updateRecord("Contact", records[8].id, {{"Phone", "+1 555"}});
  fake.setNow(kT0 + 502'000);
  const std::string fresh = fake.putRecord("Contact", {{"LastName", "New"}});
  const auto before = ctx.events();
  advance(1min);
  const auto events = ctx.events();
  ASSERT_EQ(events.size(), before.size() + 4);
  EXPECT_EQ(events[before.size()].body().at("messageId"), before.back().body().at("messageId"));
  EXPECT_EQ(events[before.size() + 1].body().at("traits").at("lastName"), "Changed");
  EXPECT_EQ(events[before.size() + 2].body().at("traits").at("phone"), "+1 555");
  EXPECT_EQ(events[before.size() + 3].userId(), fresh);
  EXPECT_THAT(fake.requests().back().target,
              HasSubstr("WHERE%20SystemModstamp%20%3E%3D%202026-01-01T00%3A07%3A29Z"));
  EXPECT_EQ(checkpoint(), std::to_string(kT0 + 502'000));
  expectEveryCurrentVersionEmitted();

  // Nothing changed: one query, the record at the checkpoint again.
  advance(1min);
  EXPECT_EQ(ctx.events().size(), before.size() + 5);
  EXPECT_EQ(fake.tokensIssued(), 1u);
}

TEST_F(SalesforceSourceTest, TheCheckpointIsNeverAheadOfDurableEventsAndChangesMidRunAreNotLost) {
  seed(600);
  auto source = makeSource();
  ctx.holdCallbacks(true);
  ASSERT_TRUE(source->start().ok());
  runDue();
  ASSERT_EQ(ctx.emitCount(), 1u);
  EXPECT_EQ(checkpoint(), std::nullopt);  // page 1 not yet durable
  // While the run is in flight, records already read and not yet read change.
  const auto records = fake.records("Contact");
  fake.setNow(kT0 + 900'000);
  fake.updateRecord("Contact", records[5].id, {{"LastName", "A"}});
  fake.setNow(kT0 + 901'000);
  fake.updateRecord("Contact", records[350].id, {{"LastName", "B"}});
  fake.setNow(kT0 + 902'000);
  fake.updateRecord("Contact", records[550].id, {{"LastName", "C"}});
  for (int i = 0; i < 10 && ctx.releaseCallbacks() > 0; ++i) {
    runDue();
    const auto stored = checkpoint();
    ASSERT_TRUE(stored);
    std::int64_t durable_max = 0;
    for (const auto& call : ctx.emitCalls()) {
      if (!call.result.status.ok()) {
        continue;
      }
      for (const auto& e : call.events) {
        durable_max = std::max(durable_max, e.header().timestamp_ms);
      }
    }
    EXPECT_LE(std::stoll(*stored), durable_max);
  }
  ctx.holdCallbacks(false);
  ctx.releaseCallbacks();
  runDue();
  EXPECT_FALSE(source->sync().status().running);
  // The run read a snapshot: the changes come with the next run.
  advance(1min);
  EXPECT_EQ(checkpoint(), std::to_string(kT0 + 902'000));
  expectEveryCurrentVersionEmitted();
}

TEST_F(SalesforceSourceTest, AnExpiredSessionMidRunIsRefreshedAndTheRunGoesOn) {
  seed(450);
  auto source = makeSource();
  ctx.holdCallbacks(true);
  ASSERT_TRUE(source->start().ok());
  runDue();
  fake.expireTokens();
  ctx.holdCallbacks(false);
  ctx.releaseCallbacks();
  runDue();
  EXPECT_EQ(ctx.events().size(), 450u);
  EXPECT_EQ(fake.tokensIssued(), 2u);
  EXPECT_EQ(source->sync().status().runs_succeeded, 1u);
}

TEST_F(SalesforceSourceTest, TheRequestLimitWaitsAndNothingIsSkipped) {
  seed(450);
  auto source = makeSource();
  fake.setApiRequestLimit(2);  // the query and one more page
  ASSERT_TRUE(source->start().ok());
  runDue();
  EXPECT_EQ(ctx.events().size(), 400u);
  EXPECT_EQ(fake.limitRefusals(), 1u);
  EXPECT_TRUE(ctx.log().contains("Salesforce API request limit reached"));
  fake.setApiRequestLimit(0);
  advance(4min);  // the run waits 5 minutes; the ticks meanwhile are skipped, not overlapped
  EXPECT_EQ(ctx.events().size(), 400u);
  EXPECT_TRUE(source->sync().status().running);
  EXPECT_GE(ctx.metrics().counterValue("junction_sync_runs_skipped_total"), 1u);
  advance(1min);
  EXPECT_EQ(ctx.events().size(), 450u);
  EXPECT_FALSE(source->sync().status().running);
  EXPECT_EQ(checkpoint(), std::to_string(kT0 + 449'000));
  // A hint in the answer wins.
  fake.failNext(1, 403, R"([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])",
                {{"Retry-After", "30"}}, "/services/data");
  advance(1min);
  EXPECT_EQ(ctx.scheduler().nextDueIn(), 30s);
}

TEST_F(SalesforceSourceTest, ServerErrorsAreRetriedThenFailTheRunWithoutMovingTheCheckpoint) {
  seed(150);
  auto source = makeSource();
  ASSERT_TRUE(source->start().ok());
  runDue();
  ASSERT_EQ(checkpoint(), std::to_string(kT0 + 149'000));
  fake.setNow(kT0 + 200'000);
  fake.putRecord("Contact", {{"LastName", "Late"}});
  fake.failNext(4, 503, R"([{"message":"down","errorCode":"SERVER_UNAVAILABLE"}])", {},
                "/services/data");
  advance(1min);
  advance(1s);
  advance(2s);
  advance(4s);
  auto status = source->sync().status();
  EXPECT_EQ(status.runs_failed, 1u);
  EXPECT_THAT(status.last_error, HasSubstr("SERVER_UNAVAILABLE"));
  EXPECT_EQ(checkpoint(), std::to_string(kT0 + 149'000));
  advance(1min);  // the next run resumes from the checkpoint
  EXPECT_EQ(checkpoint(), std::to_string(kT0 + 200'000));
  expectEveryCurrentVersionEmitted();
}

TEST_F(SalesforceSourceTest, RefusedCredentialsFailTheRunWithoutLeakingThem) {
  auto source = std::make_unique<SalesforceSource>(
      configFor({{"login_url", fake.baseUrl()},
                 {"client_id", "fake-sf-client-id"},
                 {"client_secret", "wrong-secret-42"}}),
      ctx);
  ASSERT_TRUE(source->start().ok());
  runDue();
  auto status = source->sync().status();
  EXPECT_EQ(status.runs_failed, 1u);
  EXPECT_THAT(status.last_error, HasSubstr("invalid_client"));
  EXPECT_FALSE(ctx.log().contains("wrong-secret-42"));
  EXPECT_THAT(status.last_error, ::testing::Not(HasSubstr("wrong-secret-42")));
  EXPECT_EQ(ctx.emitCount(), 0u);
}

}  // namespace
}  // namespace junction::plugins::salesforce
