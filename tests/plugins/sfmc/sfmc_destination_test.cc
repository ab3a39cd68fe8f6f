// The sfmc destination against the fake Marketing Cloud over loopback HTTP: state in the fake,
// batch splitting, 429/5xx/401/timeouts/garbage, partial rowset failures, erasure, batching
// efficiency, and that no secret leaks into reasons or logs.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>

#include "junction/sdk/testing/fake_context.h"
#include "sfmc_destination.h"
#include "sfmc_test_util.h"
#include "tests/fakes/sfmc/fake_sfmc.h"

namespace junction::plugins::sfmc {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::event;
using testing::identify;
using tests::fakes::FakeSfmc;

constexpr const char* kSecret = "fake-sfmc-client-secret";

SfmcConfig configFor(const FakeSfmc& fake, json::object extra = {}) {
  json::object given{{"auth_url", fake.baseUrl()},
                     {"client_id", "fake-sfmc-client-id"},
                     {"client_secret", kSecret},
                     {"data_extension", "Contacts"},
                     {"journeys", json::object{{"Cart Abandoned", "APIEvent-cart"}}},
                     {"timeout", "5s"}};
  for (auto& [k, v] : extra) {
    given[k] = v;
  }
  return testing::configFrom(given);
}

std::vector<sdk::Event> identifies(std::size_t n, std::size_t first = 0) {
  std::vector<sdk::Event> events;
  events.reserve(n);
  for (std::size_t i = first; i < first + n; ++i) {
    events.push_back(identify("user-" + std::to_string(i),
                              "person" + std::to_string(i) + "@example.com"));
  }
  return events;
}

std::size_t countPath(const FakeSfmc& fake, std::string_view prefix) {
  std::size_t n = 0;
  for (const auto& r : fake.requests()) {
    n += r.path.starts_with(prefix) ? 1 : 0;
  }
  return n;
}

void expectNoSecrets(sdk::testing::FakeDestinationContext& ctx,
                     const std::vector<sdk::Outcome>& outcomes, const FakeSfmc& fake) {
  std::vector<std::string> secrets{kSecret};
  for (const auto& r : fake.requests()) {
    auto auth = std::string(r.headers.get("Authorization"));
    if (auth.starts_with("Bearer ")) {
      secrets.push_back(auth.substr(7));
    }
  }
  for (const auto& s : secrets) {
    EXPECT_FALSE(ctx.log().contains(s)) << "a secret was logged";
    for (const auto& o : outcomes) {
      EXPECT_THAT(o.reason, ::testing::Not(HasSubstr(s)));
    }
  }
}

FakeSfmc::Options schemaOptions() {
  FakeSfmc::Options o;
  FakeSfmc::DataExtension de;
  de.columns["EmailAddress"] = {FakeSfmc::ColumnType::EmailAddress, 254, true};
  de.columns["FirstName"] = {FakeSfmc::ColumnType::Text, 50, true};
  de.columns["LastName"] = {FakeSfmc::ColumnType::Text, 50, true};
  de.columns["Phone"] = {FakeSfmc::ColumnType::Phone, 50, true};
  o.data_extensions["Contacts"] = de;
  o.event_definition_keys = {"APIEvent-cart"};
  return o;
}

TEST(SfmcDestinationTest, HappyPathTheFakeHoldsWhatWasSent) {
  FakeSfmc fake(schemaOptions());
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  std::vector<sdk::Event> batch{
      identify("u1", "Ada@Example.com", "Ada"),
      event(R"({"type":"track","event":"Cart Abandoned","userId":"u2",
                "context":{"traits":{"email":"bob@example.com"}},
                "properties":{"cart_id":"c-9","total":12}})"),
      event(R"({"type":"track","event":"Product Viewed","userId":"u3"})"),
      identify("u4", "dan@example.com")};
  const auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes.size(), 4u);
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  ASSERT_EQ(fake.rowCount("Contacts"), 2u);
  auto ada = fake.row("Contacts", "u1");
  ASSERT_TRUE(ada);
  EXPECT_EQ(json::serialize(ada->values), R"({"EmailAddress":"ada@example.com","FirstName":"Ada"})");
  EXPECT_TRUE(fake.row("Contacts", "u4"));
  const auto journeys = fake.journeyEvents();
  ASSERT_EQ(journeys.size(), 1u);
  EXPECT_EQ(journeys[0].contact_key, "u2");
  EXPECT_EQ(journeys[0].event_definition_key, "APIEvent-cart");
  EXPECT_EQ(json::serialize(journeys[0].data),
            R"({"cart_id":"c-9","total":12,"EmailAddress":"bob@example.com"})");
  EXPECT_EQ(fake.tokensIssued(), 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_skipped_total", {{"type", "track"}}), 1u);

  // Later calls reuse the token; an identify again updates the row (upsert by key).
  ASSERT_TRUE(dest.deliver(std::vector<sdk::Event>{identify("u1", "ada@new.example")})[0]
                  .isDelivered());
  EXPECT_EQ(fake.tokensIssued(), 1u);
  EXPECT_EQ(fake.rowCount("Contacts"), 2u);
  EXPECT_EQ(json::serialize(fake.row("Contacts", "u1")->values),
            R"({"EmailAddress":"ada@new.example","FirstName":"Ada"})");
  expectNoSecrets(ctx, outcomes, fake);
}

TEST(SfmcDestinationTest, ABatchIsSplitAtTheRowsPerRequestLimit) {
  FakeSfmc::Options options;
  options.max_rows_per_request = 50;
  FakeSfmc fake(options);
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(identifies(120));
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake.rowCount("Contacts"), 120u);
  std::vector<std::size_t> sizes;
  for (const auto& r : fake.requests()) {
    if (r.path.ends_with("/rowset")) {
      sizes.push_back(json::parse(r.body).as_array().size());
    }
  }
  EXPECT_THAT(sizes, ::testing::ElementsAre(50u, 50u, 20u));
}

TEST(SfmcDestinationTest, AThousandPeopleTakeAtMost25Requests) {
  // In calls of the batch size the README recommends (batch.max_events: 500).
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  for (std::size_t call = 0; call < 2; ++call) {
    for (const auto& o : dest.deliver(identifies(500, call * 500))) {
      ASSERT_TRUE(o.isDelivered()) << o.reason;
    }
  }
  EXPECT_EQ(fake.rowCount("Contacts"), 1000u);
  EXPECT_LE(fake.requestCount(), 25u);
  EXPECT_EQ(fake.requestCount(), 21u);  // one token, twenty rowsets of 50
}

TEST(SfmcDestinationTest, A429RetriesAfterItsDelayThrottlesAndSendsNoMore) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  fake.failNext(1, 429, R"({"message":"Too Many Requests","errorcode":0,"documentation":""})",
                {{"Retry-After", "7"}}, "/hub/");
  std::vector<sdk::Event> batch = identifies(120);
  batch.push_back(event(R"({"type":"track","event":"Cart Abandoned","userId":"u-cart"})"));
  const auto outcomes = dest.deliver(batch);
  for (const auto& o : outcomes) {
    ASSERT_EQ(o.kind, sdk::Outcome::Kind::Retry) << o.reason;
    EXPECT_EQ(o.retry_after, 7s);
    EXPECT_THAT(o.reason, HasSubstr("429"));
  }
  EXPECT_THAT(ctx.throttles(), ::testing::ElementsAre(7s));
  EXPECT_EQ(countPath(fake, "/hub/"), 1u);  // the other rowsets and the journey were not sent
  EXPECT_EQ(countPath(fake, "/interaction/"), 0u);
  EXPECT_EQ(fake.rowCount("Contacts"), 0u);

  for (const auto& o : dest.deliver(batch)) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake.rowCount("Contacts"), 120u);
}

TEST(SfmcDestinationTest, TheFakesRateLimitIsHonoured) {
  FakeSfmc::Options options;
  options.requests_per_second = 0.2;  // one request, then the next one in 5 s
  options.retry_after = 2s;
  FakeSfmc fake(options);
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  ASSERT_TRUE(dest.deliver(identifies(1))[0].isDelivered());
  const auto limited = dest.deliver(identifies(1, 1));
  ASSERT_EQ(limited[0].kind, sdk::Outcome::Kind::Retry) << limited[0].reason;
  EXPECT_EQ(limited[0].retry_after, 2s);
  EXPECT_THAT(ctx.throttles(), ::testing::ElementsAre(2s));
  EXPECT_EQ(fake.rateLimitedCount(), 1u);
}

TEST(SfmcDestinationTest, A5xxIsRetriedAndOtherRowsetsStillGo) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  fake.failNext(1, 503, R"({"message":"Service Unavailable","errorcode":0,"documentation":""})",
                {}, "/hub/");
  const auto outcomes = dest.deliver(identifies(60));
  for (std::size_t i = 0; i < 50; ++i) {
    ASSERT_EQ(outcomes[i].kind, sdk::Outcome::Kind::Retry);
    EXPECT_THAT(outcomes[i].reason, HasSubstr("HTTP 503 from SFMC: Service Unavailable"));
  }
  for (std::size_t i = 50; i < 60; ++i) {
    EXPECT_TRUE(outcomes[i].isDelivered()) << outcomes[i].reason;
  }
  EXPECT_TRUE(ctx.throttles().empty());
  EXPECT_EQ(fake.rowCount("Contacts"), 10u);
}

TEST(SfmcDestinationTest, AnExpiredTokenIsRefreshedOnceAndTheRequestSentAgain) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  ASSERT_TRUE(dest.deliver(identifies(1))[0].isDelivered());
  fake.expireTokens();
  fake.clearRequests();
  const auto outcomes = dest.deliver(identifies(1, 1));
  ASSERT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(requests[0].path.ends_with("/rowset"));
  EXPECT_EQ(requests[1].path, "/v2/token");
  EXPECT_TRUE(requests[2].path.ends_with("/rowset"));
  EXPECT_NE(requests[0].headers.get("Authorization"), requests[2].headers.get("Authorization"));
  EXPECT_EQ(fake.tokensIssued(), 2u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_requests_total",
                                       {{"endpoint", "rowset"}, {"status", "401"}}),
            1u);
}

TEST(SfmcDestinationTest, A401AfterTheRefreshFailsWithAClearReason) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  fake.failNext(2, 401,
                R"({"documentation":"https://developer.salesforce.com/docs","errorcode":0,)"
                R"("message":"Not Authorized"})",
                {}, "/hub/");
  const auto outcomes = dest.deliver(identifies(2));
  for (const auto& o : outcomes) {
    ASSERT_EQ(o.kind, sdk::Outcome::Kind::Failed);
    EXPECT_EQ(o.reason, "authentication failed: Not Authorized (errorcode 0)");
  }
  EXPECT_EQ(fake.tokensIssued(), 2u);
  EXPECT_EQ(countPath(fake, "/hub/"), 2u);
  expectNoSecrets(ctx, outcomes, fake);
}

TEST(SfmcDestinationTest, WrongCredentialsFailWithTheVendorsReasonAndNoSecret) {
  FakeSfmc::Options options;
  options.client_secret = "the-right-secret";
  FakeSfmc fake(options);
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(identifies(3));
  for (const auto& o : outcomes) {
    ASSERT_EQ(o.kind, sdk::Outcome::Kind::Failed);
    EXPECT_THAT(o.reason, HasSubstr("authentication failed: invalid_client: Client "
                                    "authentication failed."));
  }
  EXPECT_EQ(fake.requestCount(), 1u);  // the token request only
  EXPECT_TRUE(ctx.log().contains(sdk::LogLevel::Error, "SFMC authentication failed"));
  expectNoSecrets(ctx, outcomes, fake);
  EXPECT_FALSE(ctx.log().contains("the-right-secret"));
}

TEST(SfmcDestinationTest, TheTokenIsRefreshedAMinuteBeforeItExpires) {
  FakeSfmc fake;  // tokens live 1080 s
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  ASSERT_TRUE(dest.deliver(identifies(1))[0].isDelivered());
  ctx.manualClock().advance(1019s);
  ASSERT_TRUE(dest.deliver(identifies(1, 1))[0].isDelivered());
  EXPECT_EQ(fake.tokensIssued(), 1u);
  ctx.manualClock().advance(2s);  // 1021 s: within the last minute
  ASSERT_TRUE(dest.deliver(identifies(1, 2))[0].isDelivered());
  EXPECT_EQ(fake.tokensIssued(), 2u);
  EXPECT_EQ(countPath(fake, "/hub/"), 3u);  // no 401 was needed
}

TEST(SfmcDestinationTest, ParallelCallsFetchOneToken) {
  FakeSfmc fake;
  fake.setDelay(50ms);  // the token request is slow: the others must wait for it, not race
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  std::vector<std::thread> threads;
  std::atomic<int> delivered{0};
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const auto& o : dest.deliver(identifies(10, t * 10))) {
        delivered += o.isDelivered() ? 1 : 0;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(delivered.load(), 40);
  EXPECT_EQ(fake.tokensIssued(), 1u);
  EXPECT_EQ(fake.rowCount("Contacts"), 40u);
}

TEST(SfmcDestinationTest, RowsTheVendorRefusesFailAloneAndTheOthersAreSaved) {
  FakeSfmc fake(schemaOptions());
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  std::vector<sdk::Event> batch{identify("u1", "ok1@example.com"), identify("u2", "not-an-email"),
                                identify("u3", "ok3@example.com")};
  const auto outcomes = dest.deliver(batch);
  EXPECT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  ASSERT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_EQ(outcomes[1].reason,
            "HTTP 400 from SFMC: the row was refused: The value for column [EmailAddress] is "
            "not a valid email address: not-an-email");
  EXPECT_TRUE(outcomes[2].isDelivered()) << outcomes[2].reason;
  EXPECT_EQ(fake.rowCount("Contacts"), 2u);
  EXPECT_FALSE(fake.row("Contacts", "u2"));
  EXPECT_EQ(countPath(fake, "/hub/"), 2u);  // the refused rowset, then the good rows again
}

TEST(SfmcDestinationTest, AnUnknownColumnFailsEveryRowThatHasIt) {
  FakeSfmc fake(schemaOptions());
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(
      configFor(fake, {{"mapping", json::object{{"Plan", "traits.plan"}}}}), ctx);
  std::vector<sdk::Event> batch{
      event(R"({"type":"identify","userId":"u1","traits":{"email":"a@example.com","plan":"pro"}})"),
      identify("u2", "b@example.com")};
  const auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason,
              HasSubstr("The column [Plan] does not exist in the data extension"));
  EXPECT_TRUE(outcomes[1].isDelivered()) << outcomes[1].reason;
}

TEST(SfmcDestinationTest, A400ThatNamesNoRowFailsTheRequestsEventsWithTheMessage) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  fake.failNext(1, 400, R"({"message":"Data extension is not writable","errorcode":10005,)"
                        R"("documentation":""})",
                {}, "/hub/");
  for (const auto& o : dest.deliver(identifies(3))) {
    ASSERT_EQ(o.kind, sdk::Outcome::Kind::Failed);
    EXPECT_EQ(o.reason, "HTTP 400 from SFMC: Data extension is not writable (errorcode 10005)");
  }
}

TEST(SfmcDestinationTest, AnUnknownDataExtensionFailsWithTheVendorsMessage) {
  FakeSfmc fake(schemaOptions());
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake, {{"data_extension", "Nope"}}), ctx);
  const auto outcomes = dest.deliver(identifies(1));
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("Unable to find a data extension"));
}

TEST(SfmcDestinationTest, AnUnknownJourneyFailsWithTheVendorsMessage) {
  FakeSfmc fake(schemaOptions());
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(
      configFor(fake, {{"journeys", json::object{{"Cart Abandoned", "APIEvent-gone"}}}}), ctx);
  const auto outcomes =
      dest.deliver(std::vector<sdk::Event>{event(R"({"type":"track","event":"Cart Abandoned","userId":"u1"})")});
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("Event definition with key [APIEvent-gone]"));
  EXPECT_TRUE(fake.journeyEvents().empty());
}

TEST(SfmcDestinationTest, ASlowVendorTimesOutIntoRetryAndStopsTheCall) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake, {{"timeout", "200ms"}}), ctx);
  ASSERT_TRUE(dest.deliver(identifies(1))[0].isDelivered());  // the token, before it slows
  fake.setDelay(1s);
  fake.clearRequests();
  const auto started = std::chrono::steady_clock::now();
  const auto outcomes = dest.deliver(identifies(120, 1));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 900ms);
  for (const auto& o : outcomes) {
    ASSERT_EQ(o.kind, sdk::Outcome::Kind::Retry);
    EXPECT_THAT(o.reason, HasSubstr("transport"));
  }
  EXPECT_EQ(fake.requestCount(), 1u);
  fake.setDelay(0ms);
  for (const auto& o : dest.deliver(identifies(120, 1))) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
}

TEST(SfmcDestinationTest, AVendorOutageIsRetriedAndNothingIsLost) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  fake.setDown(true);
  for (const auto& o : dest.deliver(identifies(5))) {
    ASSERT_EQ(o.kind, sdk::Outcome::Kind::Retry);
    EXPECT_THAT(o.reason, HasSubstr("SFMC token request failed"));
  }
  fake.setDown(false);
  for (const auto& o : dest.deliver(identifies(5))) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake.rowCount("Contacts"), 5u);
}

TEST(SfmcDestinationTest, GarbageBodiesOnSuccessAreRetried) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  fake.failNext(1, 200, "<html>maintenance</html>", {}, "/v2/token");
  auto outcomes = dest.deliver(identifies(1));
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("the token response is not JSON"));

  fake.failNext(1, 200, "<html>maintenance</html>", {}, "/hub/");
  outcomes = dest.deliver(identifies(1));
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("not JSON"));

  fake.failNext(1, 201, "{}", {}, "/interaction/");
  outcomes = dest.deliver(
      std::vector<sdk::Event>{event(R"({"type":"track","event":"Cart Abandoned","userId":"u1"})")});
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("no eventInstanceId"));

  fake.failNext(1, 502, "<html>bad gateway</html>", {}, "/hub/");
  outcomes = dest.deliver(identifies(1));
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("HTTP 502"));
}

TEST(SfmcDestinationTest, EventsThatCannotBeSentFailAndOthersAreSkipped) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  std::vector<sdk::Event> batch{event(R"({"type":"identify","anonymousId":"a1"})"),
                                event(R"({"type":"page","name":"Home","userId":"u1"})"),
                                event(R"({"type":"alias","previousId":"a1","userId":"u1"})")};
  const auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("no contact key"));
  EXPECT_TRUE(outcomes[1].isDelivered());
  EXPECT_TRUE(outcomes[2].isDelivered());
  EXPECT_EQ(fake.requestCount(), 0u);  // nothing to send: not even a token
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_skipped_total", {{"type", "page"}}), 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_skipped_total", {{"type", "alias"}}), 1u);
}

TEST(SfmcDestinationTest, EraseStartsADeleteOperationAndReportsItsId) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake), ctx);
  EXPECT_TRUE(dest.supportsErasure());
  const auto outcome = dest.erase({.user_id = "u1", .anonymous_id = "a1", .email = "a@x.io"});
  ASSERT_TRUE(outcome.isDelivered()) << outcome.reason;
  const auto operations = fake.deleteOperations();
  ASSERT_EQ(operations.size(), 1u);
  EXPECT_EQ(outcome.reason,
            "SFMC delete operation " + std::to_string(operations[0].operation_id) + " accepted");
  EXPECT_THAT(operations[0].contact_keys, ::testing::ElementsAre("u1"));
  EXPECT_EQ(operations[0].delete_operation_type, "ContactAndAttributes");
  EXPECT_EQ(operations[0].contact_type_id, 0);
  EXPECT_TRUE(ctx.log().contains("SFMC contact delete accepted"));
  EXPECT_TRUE(ctx.log().contains(std::to_string(operations[0].operation_id)));

  const auto nobody = dest.erase({.user_id = "", .anonymous_id = "a1", .email = ""});
  ASSERT_EQ(nobody.kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(nobody.reason, HasSubstr("no userId"));
}

TEST(SfmcDestinationTest, EraseByEmailAndItsFailures) {
  FakeSfmc fake;
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(configFor(fake, {{"erase_by", "email"}}), ctx);
  ASSERT_TRUE(dest.erase({.user_id = "u1", .anonymous_id = "", .email = "a@x.io"}).isDelivered());
  EXPECT_THAT(fake.deleteOperations().at(0).contact_keys, ::testing::ElementsAre("a@x.io"));

  fake.failNext(1, 500, "oops", {}, "/contacts/");
  EXPECT_EQ(dest.erase({.user_id = "", .anonymous_id = "", .email = "a@x.io"}).kind,
            sdk::Outcome::Kind::Retry);
  fake.failNext(1, 400,
                R"({"operationInitiated":false,"hasErrors":true,"resultMessages":)"
                R"([{"resultType":"Error","resultMessage":"values is required"}]})",
                {}, "/contacts/");
  const auto refused = dest.erase({.user_id = "", .anonymous_id = "", .email = "a@x.io"});
  ASSERT_EQ(refused.kind, sdk::Outcome::Kind::Failed);
  EXPECT_EQ(refused.reason, "HTTP 400 from SFMC: values is required");
}

}  // namespace
}  // namespace junction::plugins::sfmc
