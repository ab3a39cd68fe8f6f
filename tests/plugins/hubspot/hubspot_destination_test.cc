// The hubspot destination against the fake HubSpot over loopback HTTP: what HubSpot holds
// afterwards, batch splitting and batching efficiency, 207 partial answers, a 2xx that wrote
// nothing, rate limits (429, the window's and the day's headers), 5xx, 401, garbage, slow and
// absent vendors, erasure, and parallel deliveries.

#include "hubspot_destination.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

#include "hubspot_test_util.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/fakes/hubspot/fake_hubspot.h"

namespace junction::plugins::hubspot {
namespace {

namespace json = boost::json;
using junction::tests::fakes::FakeHubspot;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
using sdk::Outcome;
using testing::config;
using testing::event;
using testing::identify;
using testing::track;

const json::object kEvents{{"Order Completed", "pe1_order_completed"}};

class HubspotDestinationTest : public ::testing::Test {
 protected:
  std::vector<Outcome> deliver(std::vector<sdk::Event> batch, json::object events = {}) {
    HubspotDestination dest(config(fake_.baseUrl(), std::move(events)), ctx_);
    return dest.deliver(batch);
  }

  std::size_t inputsOf(const sdk::testing::RecordedRequest& r) {
    return json::parse(r.body).at("inputs").as_array().size();
  }

  FakeHubspot fake_;
  sdk::testing::FakeDestinationContext ctx_;
};

TEST_F(HubspotDestinationTest, ContactsAndEventsLandAndOtherTypesAreSkipped) {
  auto outcomes = deliver(
      {identify(1), identify(2),
       track(3, "Order Completed", "C@x.test", json::object{{"revenue", 9}, {"sku", "A-1"}}),
       track(4, "Viewed", "d@x.test"), event(R"({"type":"page","userId":"u5","name":"Home"})"),
       event(R"({"type":"group","userId":"u6","groupId":"g1"})")},
      kEvents);
  ASSERT_EQ(outcomes.size(), 6u);
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.contactCount(), 2u);
  auto c = fake_.contact("PERSON1@example.com");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->id.empty());
  EXPECT_EQ(c->properties, (json::object{{"email", "person1@example.com"},
                                         {"firstname", "Ada"},
                                         {"lastname", "Lovelace"},
                                         {"phone", "+44 1"},
                                         {"company", "Engines"}}));
  auto events = fake_.behavioralEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_name, "pe1_order_completed");
  EXPECT_EQ(events[0].email, "c@x.test");
  EXPECT_EQ(events[0].occurred_at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(events[0].properties, (json::object{{"revenue", "9"}, {"sku", "A-1"}}));
  EXPECT_EQ(fake_.requestCount(), 2u);  // one upsert, one event
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_skipped_total", {{"type", "track"}}), 1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_skipped_total", {{"type", "page"}}), 1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_skipped_total", {{"type", "group"}}), 1u);
  EXPECT_TRUE(ctx_.throttles().empty());
}

TEST_F(HubspotDestinationTest, AnUpsertMergesPropertiesIntoTheExistingContact) {
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  const std::string id = fake_.contact("person1@example.com")->id;
  auto later = event(R"({"type":"identify","userId":"u1","traits":{"email":"person1@example.com",)"
                     R"("lastName":"King","title":"Countess"}})");
  ASSERT_TRUE(deliver({later})[0].isDelivered());
  auto c = fake_.contact("person1@example.com");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, id);
  EXPECT_EQ(c->properties.at("firstname"), "Ada");  // not blanked by the partial profile
  EXPECT_EQ(c->properties.at("lastname"), "King");
  EXPECT_EQ(c->properties.at("jobtitle"), "Countess");
  EXPECT_EQ(fake_.contactCount(), 1u);
}

TEST_F(HubspotDestinationTest, OneLargeDeliveryIsSplitAtHubspotsLimitOf100) {
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 250; ++i) {
    batch.push_back(identify(i));
  }
  auto outcomes = deliver(batch);
  ASSERT_EQ(outcomes.size(), 250u);
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.contactCount(), 250u);
  const auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(inputsOf(requests[0]), 100u);
  EXPECT_EQ(inputsOf(requests[1]), 100u);
  EXPECT_EQ(inputsOf(requests[2]), 50u);

  // A smaller batch_size splits further.
  fake_.clearRequests();
  auto c = config(fake_.baseUrl());
  c.batch_size = 40;
  HubspotDestination dest(c, ctx_);
  for (const auto& o : dest.deliver(batch)) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.requestCount(), 7u);
}

// The issue's batching-efficiency bound: 1,000 identify events of 1,000 people, delivered in
// calls of the engine's batch size this plugin recommends (and defaults to: 100), use at most
// 12 requests.
TEST_F(HubspotDestinationTest, AThousandPeopleTakeTenRequests) {
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 1000; ++i) {
    batch.push_back(identify(i));
  }
  HubspotDestination dest(config(fake_.baseUrl()), ctx_);
  std::size_t delivered = 0;
  for (std::size_t first = 0; first < batch.size(); first += 100) {
    std::span<const sdk::Event> part(batch.data() + first, 100);
    for (const auto& o : dest.deliver(part)) {
      delivered += o.isDelivered() ? 1 : 0;
    }
  }
  EXPECT_EQ(delivered, 1000u);
  EXPECT_EQ(fake_.contactCount(), 1000u);
  EXPECT_EQ(fake_.requestCount(), 10u);
  EXPECT_LE(fake_.requestCount(), 12u);
}

TEST_F(HubspotDestinationTest, MultiStatusMapsEachErrorToItsEventAndA2xxThatWroteNothingRetries) {
  fake_.failEmail("person2@example.com", "Property values were not valid: phone");
  fake_.failEmail("person5@example.com", "Too many writes to this contact", "RATE_LIMITS");
  fake_.dropEmail("person3@example.com");
  auto outcomes =
      deliver({identify(1), identify(2), identify(3), identify(4, "not-an-email"), identify(5)});
  EXPECT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  EXPECT_EQ(outcomes[1].kind, Outcome::Kind::Failed);
  EXPECT_EQ(outcomes[1].reason,
            "HubSpot refused the contact: Property values were not valid: phone "
            "(VALIDATION_ERROR)");
  EXPECT_EQ(outcomes[2].kind, Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[2].reason, HasSubstr("HubSpot answered 207 but wrote nothing"));
  EXPECT_EQ(outcomes[3].kind, Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[3].reason, HasSubstr("Email address not-an-email is invalid"));
  EXPECT_EQ(outcomes[4].kind, Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[4].reason, HasSubstr("RATE_LIMITS"));
  // HubSpot holds exactly the contacts it accepted.
  EXPECT_EQ(fake_.contactCount(), 1u);
  EXPECT_TRUE(fake_.contact("person1@example.com"));
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_requests_total",
                                        {{"endpoint", "contacts_upsert"}, {"status", "207"}}),
            1u);
}

TEST_F(HubspotDestinationTest, EventsThatCannotBeSentFailWithAReason) {
  auto outcomes = deliver({event(R"({"type":"identify","userId":"u1","traits":{"name":"x"}})"),
                           event(R"({"type":"track","userId":"u2","event":"Order Completed"})")},
                          kEvents);
  EXPECT_EQ(outcomes[0].kind, Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("no email"));
  EXPECT_EQ(outcomes[1].kind, Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[1].reason, HasSubstr("behavioral event needs the person's email"));
  EXPECT_EQ(fake_.requestCount(), 0u);
}

TEST_F(HubspotDestinationTest, A429WithRetryAfterThrottlesOnceAndHoldsTheCallsOtherRequests) {
  fake_.failNext(1, 429,
                 R"({"status":"error","message":"You have reached your ten_secondly_rolling )"
                 R"(limit.","errorType":"RATE_LIMIT","correlationId":"c1",)"
                 R"("policyName":"TEN_SECONDLY_ROLLING"})",
                 {{"Retry-After", "7"}});
  auto outcomes = deliver({identify(1), track(2, "Order Completed", "b@x.test")}, kEvents);
  EXPECT_EQ(outcomes[0].kind, Outcome::Kind::Retry);
  EXPECT_EQ(outcomes[0].retry_after, 7s);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("ten_secondly_rolling"));
  // The call's later request was not sent into the same limit.
  EXPECT_EQ(outcomes[1].kind, Outcome::Kind::Retry);
  EXPECT_EQ(outcomes[1].retry_after, 7s);
  EXPECT_EQ(fake_.requestCount(), 1u);
  EXPECT_THAT(ctx_.throttles(), ElementsAre(7s));
}

TEST(HubspotRateLimitTest, TheFakesWindowThrottlesAsItRunsOutAndA429WaitsTheInterval) {
  FakeHubspot fake(FakeHubspot::Options{.requests_per_second = 1});  // 10 per ten seconds
  sdk::testing::FakeDestinationContext ctx;
  HubspotDestination dest(config(fake.baseUrl()), ctx);
  std::vector<Outcome> outcomes;
  for (int i = 0; i < 12; ++i) {
    std::vector<sdk::Event> one{identify(i)};
    outcomes.push_back(dest.deliver(one)[0]);
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(outcomes[i].isDelivered()) << i << ": " << outcomes[i].reason;
  }
  // Calls 11 and 12 of the window: HubSpot's 429 carries no Retry-After, so the window's
  // X-HubSpot-RateLimit-Interval-Milliseconds is the wait.
  for (int i = 10; i < 12; ++i) {
    EXPECT_EQ(outcomes[i].kind, Outcome::Kind::Retry);
    EXPECT_EQ(outcomes[i].retry_after, 10s);
    EXPECT_THAT(outcomes[i].reason, HasSubstr("ten_secondly_rolling"));
  }
  EXPECT_EQ(fake.rateLimitedCount(), 2u);
  EXPECT_EQ(fake.contactCount(), 10u);
  // The 10th call left 0 of 10: a pause for the window; the 429s paused too. Nothing before
  // the window ran low (remaining 9..1 of 10 is not under a tenth).
  EXPECT_THAT(ctx.throttles(), ElementsAre(10s, 10s, 10s));
}

TEST(HubspotRateLimitTest, AWindowSpentMidCallHoldsTheCallsLaterRequests) {
  FakeHubspot fake(FakeHubspot::Options{.ten_secondly_limit = 2});
  sdk::testing::FakeDestinationContext ctx;
  HubspotDestination dest(config(fake.baseUrl(), kEvents), ctx);
  std::vector<sdk::Event> batch{identify(1), track(2, "Order Completed", "b@x.test"),
                                track(3, "Order Completed", "c@x.test"),
                                track(4, "Order Completed", "d@x.test")};
  auto outcomes = dest.deliver(batch);
  EXPECT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;  // leaves 1 of 2
  EXPECT_TRUE(outcomes[1].isDelivered()) << outcomes[1].reason;  // leaves 0 of 2
  for (int i = 2; i < 4; ++i) {
    EXPECT_EQ(outcomes[i].kind, Outcome::Kind::Retry);
    EXPECT_EQ(outcomes[i].retry_after, 10s);
    EXPECT_THAT(outcomes[i].reason, HasSubstr("not sent"));
    EXPECT_THAT(outcomes[i].reason, HasSubstr("X-HubSpot-RateLimit-Remaining: 0"));
  }
  EXPECT_EQ(fake.requestCount(), 2u);  // nothing sent into the spent window
  EXPECT_EQ(fake.rateLimitedCount(), 0u);
  EXPECT_THAT(ctx.throttles(), ElementsAre(10s));
}

TEST(HubspotRateLimitTest, RemainingUnderATenthOfMaxOnlySlowsDown) {
  FakeHubspot fake(FakeHubspot::Options{.ten_secondly_limit = 100});
  sdk::testing::FakeDestinationContext ctx;
  HubspotDestination dest(config(fake.baseUrl()), ctx);
  for (int i = 0; i < 92; ++i) {
    std::vector<sdk::Event> one{identify(i)};
    ASSERT_TRUE(dest.deliver(one)[0].isDelivered());
  }
  // Calls 91 and 92 left 9 and 8 of 100: slow down (no pause).
  EXPECT_THAT(ctx.throttles(), ElementsAre(0ms, 0ms));
}

TEST(HubspotRateLimitTest, TheDailyLimitPausesForAnHour) {
  FakeHubspot fake(FakeHubspot::Options{.daily_limit = 2});
  sdk::testing::FakeDestinationContext ctx;
  HubspotDestination dest(config(fake.baseUrl()), ctx);
  std::vector<sdk::Event> first{identify(1)};
  ASSERT_TRUE(dest.deliver(first)[0].isDelivered());
  EXPECT_TRUE(ctx.throttles().empty());
  std::vector<sdk::Event> second{identify(2)};
  ASSERT_TRUE(dest.deliver(second)[0].isDelivered());  // -Daily-Remaining: 0
  EXPECT_THAT(ctx.throttles(), ElementsAre(1h));
  EXPECT_TRUE(ctx.log().contains(sdk::LogLevel::Warn, "daily API limit"));
  std::vector<sdk::Event> third{identify(3)};
  auto refused = dest.deliver(third)[0];
  EXPECT_EQ(refused.kind, Outcome::Kind::Retry);
  EXPECT_EQ(refused.retry_after, 1h);
  EXPECT_THAT(refused.reason, HasSubstr("daily limit"));
  EXPECT_THAT(ctx.throttles(), ElementsAre(1h, 1h));
}

TEST_F(HubspotDestinationTest, ServerErrorsRetryHonouringRetryAfterAndOtherRequestsStillGo) {
  fake_.failNext(1, 503, R"({"status":"error","message":"Service Unavailable"})",
                 {{"Retry-After", "3"}}, "/crm/v3/objects/contacts/batch/upsert");
  auto outcomes = deliver({identify(1), track(2, "Order Completed", "b@x.test")}, kEvents);
  EXPECT_EQ(outcomes[0].kind, Outcome::Kind::Retry);
  EXPECT_EQ(outcomes[0].retry_after, 3s);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("HTTP 503 from HubSpot: Service Unavailable"));
  EXPECT_TRUE(outcomes[1].isDelivered()) << outcomes[1].reason;
  EXPECT_EQ(fake_.behavioralEvents().size(), 1u);
  EXPECT_TRUE(ctx_.throttles().empty());

  fake_.failNext(1, 502, "<html>Bad gateway</html>");
  auto o502 = deliver({identify(1)});
  EXPECT_EQ(o502[0].kind, Outcome::Kind::Retry);
  EXPECT_THAT(o502[0].reason, HasSubstr("502"));
}

TEST_F(HubspotDestinationTest, AWrongTokenFailsAsAnAuthenticationFailureWithoutTheToken) {
  auto c = config(fake_.baseUrl(), kEvents);
  c.access_token = "pat-na1-revoked-secret-token";
  HubspotDestination dest(c, ctx_);
  std::vector<sdk::Event> batch{identify(1), track(2, "Order Completed", "b@x.test")};
  auto outcomes = dest.deliver(batch);
  for (const auto& o : outcomes) {
    EXPECT_EQ(o.kind, Outcome::Kind::Failed);
    EXPECT_THAT(o.reason, HasSubstr("authentication failed: HTTP 401 from HubSpot: "
                                    "Authentication credentials not found."));
    EXPECT_THAT(o.reason, HasSubstr("INVALID_AUTHENTICATION"));
    EXPECT_THAT(o.reason, Not(HasSubstr("revoked-secret")));
  }
  EXPECT_EQ(fake_.contactCount(), 0u);
  EXPECT_TRUE(ctx_.log().contains(sdk::LogLevel::Warn, "refused the access token"));
  EXPECT_FALSE(ctx_.log().contains("revoked-secret"));
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_requests_total",
                                        {{"endpoint", "contacts_upsert"}, {"status", "401"}}),
            1u);
}

TEST_F(HubspotDestinationTest, GarbageAnswersRetryAndOther4xxFailWithHubspotsMessage) {
  fake_.failNext(1, 200, "this is not json");
  auto garbage = deliver({identify(1)});
  EXPECT_EQ(garbage[0].kind, Outcome::Kind::Retry);
  EXPECT_THAT(garbage[0].reason, HasSubstr("not JSON"));

  fake_.failNext(1, 200, R"({"status":"COMPLETE"})");
  auto empty = deliver({identify(1)});
  EXPECT_EQ(empty[0].kind, Outcome::Kind::Retry);
  EXPECT_THAT(empty[0].reason, HasSubstr("wrote nothing"));

  fake_.failNext(1, 400,
                 R"({"status":"error","message":"Invalid input JSON on line 1",)"
                 R"("correlationId":"c2","category":"VALIDATION_ERROR"})");
  auto o400 = deliver({identify(1)});
  EXPECT_EQ(o400[0].kind, Outcome::Kind::Failed);
  EXPECT_EQ(o400[0].reason,
            "HTTP 400 from HubSpot: Invalid input JSON on line 1 (VALIDATION_ERROR)");

  fake_.failNext(1, 403,
                 R"({"status":"error","message":"This app hasn't been granted all )"
                 R"(required scopes","category":"MISSING_SCOPES"})",
                 {}, "/events/v3/send");
  auto o403 = deliver({track(2, "Order Completed", "b@x.test")}, kEvents);
  EXPECT_EQ(o403[0].kind, Outcome::Kind::Failed);
  EXPECT_THAT(o403[0].reason, HasSubstr("required scopes (MISSING_SCOPES)"));
}

TEST_F(HubspotDestinationTest, ASlowVendorTimesOutIntoARetryAndAnOutageLosesNothing) {
  auto c = config(fake_.baseUrl());
  c.timeout = 300ms;
  HubspotDestination dest(c, ctx_);
  fake_.setDelay(1s);
  std::vector<sdk::Event> first{identify(1), identify(2)};
  auto slow = dest.deliver(first);
  EXPECT_EQ(slow[0].kind, Outcome::Kind::Retry);
  EXPECT_EQ(slow[1].kind, Outcome::Kind::Retry);
  fake_.setDelay(0ms);

  fake_.setDown(true);
  std::vector<sdk::Event> second{identify(3)};
  auto down = dest.deliver(second);
  EXPECT_EQ(down[0].kind, Outcome::Kind::Retry);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_requests_total",
                                        {{"endpoint", "contacts_upsert"}, {"status", "0"}}),
            2u);
  fake_.setDown(false);
  auto back = dest.deliver(second);
  EXPECT_TRUE(back[0].isDelivered()) << back[0].reason;
  EXPECT_TRUE(fake_.contact("person3@example.com"));
}

TEST_F(HubspotDestinationTest, ParallelDeliveriesOfDifferentPeopleAllLand) {
  HubspotDestination dest(config(fake_.baseUrl(), kEvents), ctx_);
  std::vector<std::vector<sdk::Event>> batches(4);
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 50; ++i) {
      batches[t].push_back(identify(t * 100 + i));
    }
    batches[t].push_back(
        track(t * 100 + 99, "Order Completed", "t" + std::to_string(t) + "@x.test"));
  }
  std::vector<std::vector<Outcome>> outcomes(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { outcomes[t] = dest.deliver(batches[t]); });
  }
  for (auto& th : threads) {
    th.join();
  }
  for (const auto& per_call : outcomes) {
    ASSERT_EQ(per_call.size(), 51u);
    for (const auto& o : per_call) {
      EXPECT_TRUE(o.isDelivered()) << o.reason;
    }
  }
  EXPECT_EQ(fake_.contactCount(), 200u);
  EXPECT_EQ(fake_.behavioralEvents().size(), 4u);
}

TEST_F(HubspotDestinationTest, ErasureIsHubspotsGdprDeleteByEmail) {
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  HubspotDestination dest(config(fake_.baseUrl()), ctx_);
  EXPECT_TRUE(dest.supportsErasure());
  EXPECT_TRUE(
      dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = "Person1@Example.com"})
          .isDelivered());
  EXPECT_FALSE(fake_.contact("person1@example.com"));
  EXPECT_EQ(fake_.gdprDeleted(), (std::vector<std::string>{"person1@example.com"}));
  // Already gone (404): nothing to do.
  EXPECT_TRUE(
      dest.erase(sdk::Person{.user_id = "", .anonymous_id = "", .email = "person1@example.com"})
          .isDelivered());
  auto no_email = dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = ""});
  EXPECT_EQ(no_email.kind, Outcome::Kind::Failed);
  EXPECT_THAT(no_email.reason, HasSubstr("by email"));

  fake_.failNext(1, 429,
                 R"({"status":"error","message":"You have reached your )"
                 R"(ten_secondly_rolling limit.","errorType":"RATE_LIMIT"})",
                 {{"Retry-After", "2"}});
  auto limited = dest.erase(sdk::Person{.user_id = "u2", .anonymous_id = "", .email = "b@x.test"});
  EXPECT_EQ(limited.kind, Outcome::Kind::Retry);
  EXPECT_EQ(limited.retry_after, 2s);
  EXPECT_THAT(ctx_.throttles(), ElementsAre(2s));

  auto c = config(fake_.baseUrl());
  c.access_token = "pat-na1-wrong";
  HubspotDestination wrong(c, ctx_);
  auto refused = wrong.erase(sdk::Person{.user_id = "u2", .anonymous_id = "", .email = "b@x.test"});
  EXPECT_EQ(refused.kind, Outcome::Kind::Failed);
  EXPECT_THAT(refused.reason, HasSubstr("authentication failed"));
}

}  // namespace
}  // namespace junction::plugins::hubspot
