// The hubspot destination: its option table, the exact requests it builds, and its behaviour
// against the fake HubSpot over loopback (batch upserts, 207 partial answers, a 2xx that wrote
// nothing, rate limits and their headers, 5xx, 401, timeouts, garbage, erasure).

#include "hubspot_destination.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/fakes/hubspot/fake_hubspot.h"

namespace junction::plugins::hubspot {
namespace {

namespace json = boost::json;
using junction::tests::fakes::FakeHubspot;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

sdk::Event event(const std::string& text) {
  auto e = sdk::makeEvent(json::parse(text).as_object(), "web");
  EXPECT_TRUE(e) << text;
  auto h = e->header();
  h.message_id = "m-" + h.user_id;
  h.timestamp_ms = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  return sdk::Event(h, std::string(e->json()));
}

sdk::Event identify(int i, const std::string& email = "") {
  return event(R"({"type":"identify","userId":"u)" + std::to_string(i) +
               R"(","traits":{"email":")" + (email.empty() ? "Person" + std::to_string(i) + "@Example.com" : email) +
               R"(","first_name":"Ada","last_name":"Lovelace","phone":"+44 1","company":{"name":"Engines"},"age":36}})");
}

HubspotConfig config(const std::string& base_url, json::object events = {}) {
  auto bound = hubspotOptions().bind(json::object{{"access_token", "pat-na1-fake-hubspot-token"},
                                                  {"base_url", base_url},
                                                  {"events", std::move(events)},
                                                  {"mapping", json::object{}},
                                                  {"batch_size", 100},
                                                  {"timeout", 2000}});
  return bound;
}

TEST(HubspotOptionsTest, TableDefaultsSecretsAndValidation) {
  const auto specs = hubspotOptions().specs();
  auto spec = [&](const std::string& key) {
    return *std::find_if(specs.begin(), specs.end(), [&](const auto& s) { return s.key == key; });
  };
  EXPECT_TRUE(spec("access_token").required);
  EXPECT_TRUE(spec("access_token").secret);
  EXPECT_EQ(spec("base_url").default_value, json::value("https://api.hubapi.com"));
  EXPECT_EQ(spec("batch_size").max, 100.0);
  EXPECT_TRUE(sdk::checkOptionTable(specs).empty());
  EXPECT_FALSE(sdk::normalizeOption(spec("batch_size"), json::value(101)));
  EXPECT_FALSE(sdk::normalizeOption(spec("timeout"), json::value("forever")));

  HubspotConfig c = config("ftp://x");
  c.events = json::object{{"Order Completed", 5}};
  c.mapping = json::object{{"address.city", "traits.city"}, {"bad", json::object{{"transform", "shout"}}}};
  auto errors = c.validate();
  std::vector<std::string> keys;
  for (const auto& e : errors) {
    keys.push_back(e.key);
  }
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("base_url", "events.Order Completed", "mapping.bad",
                                                    "mapping.bad", "mapping.address.city"));
  EXPECT_TRUE(config("https://api.hubapi.com").validate().empty());
}

TEST(HubspotRequestsTest, UpsertsAreExactAndSplitWithoutNamingAContactTwice) {
  auto mapping = sdk::FieldMapping::parse(defaultMapping(), {});
  ASSERT_TRUE(mapping);
  std::vector<sdk::Event> batch{identify(1), identify(2), identify(3, "person1@example.com")};
  auto requests = buildUpserts(batch, {0, 1, 2},
                               {"person1@example.com", "person2@example.com", "person1@example.com"},
                               *mapping, 100);
  ASSERT_EQ(requests.size(), 2u);  // the second person1 goes to a request of its own
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/crm/v3/objects/contacts/batch/upsert");
  EXPECT_EQ(requests[0].events, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(requests[0].body,
            R"({"inputs":[{"idProperty":"email","id":"person1@example.com","properties":{"email":"person1@example.com","firstname":"Ada","lastname":"Lovelace","phone":"+44 1","company":"Engines"}},)"
            R"({"idProperty":"email","id":"person2@example.com","properties":{"email":"person2@example.com","firstname":"Ada","lastname":"Lovelace","phone":"+44 1","company":"Engines"}}]})");
  EXPECT_EQ(requests[1].events, (std::vector<std::size_t>{2}));

  auto be = buildBehavioralEvent(
      event(R"({"type":"track","userId":"u9","event":"Order Completed","properties":{"revenue":42.5,"currency":"EUR","items":[1,2],"none":null}})"),
      4, "pe123_order_completed", "ada@example.com");
  EXPECT_EQ(be.path, "/events/v3/send");
  EXPECT_EQ(be.events, (std::vector<std::size_t>{4}));
  EXPECT_EQ(be.body,
            R"({"eventName":"pe123_order_completed","email":"ada@example.com","occurredAt":"2026-01-01T00:00:00.000Z","properties":{"revenue":"42.5","currency":"EUR","items":"[1,2]"}})");
}

TEST(HubspotRequestsTest, TheWireRequestCarriesTheTokenAndJson) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/crm/v3/objects/contacts/batch/upsert")
      .reply(200, R"({"status":"COMPLETE","results":[{"id":"1","properties":{"email":"person1@example.com"}}]})");
  sdk::testing::FakeDestinationContext ctx;
  HubspotDestination dest(config(server.baseUrl() + "/"), ctx);
  std::vector<sdk::Event> batch{identify(1)};
  auto outcomes = dest.deliver(batch);
  ASSERT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  auto r = server.requests().at(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/crm/v3/objects/contacts/batch/upsert");
  EXPECT_EQ(r.headers.get("Authorization"), "Bearer pat-na1-fake-hubspot-token");
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  EXPECT_TRUE(json::parse(r.body).is_object());
}

class HubspotDestinationTest : public ::testing::Test {
 protected:
  std::vector<sdk::Outcome> deliver(std::vector<sdk::Event> batch, json::object events = {}) {
    HubspotDestination dest(config(fake_.baseUrl(), std::move(events)), ctx_);
    return dest.deliver(batch);
  }

  FakeHubspot fake_;
  sdk::testing::FakeDestinationContext ctx_;
};

TEST_F(HubspotDestinationTest, ContactsAndEventsLandAndOtherTypesAreSkipped) {
  auto outcomes = deliver(
      {identify(1), identify(2),
       event(R"({"type":"track","userId":"u3","event":"Order Completed","context":{"traits":{"email":"C@x.test"}},"properties":{"revenue":9}})"),
       event(R"({"type":"track","userId":"u4","event":"Viewed","context":{"traits":{"email":"d@x.test"}}})"),
       event(R"({"type":"page","userId":"u5","name":"Home"})")},
      json::object{{"Order Completed", "pe1_order_completed"}});
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.contactCount(), 2u);
  auto c = fake_.contact("PERSON1@example.com");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->properties.at("firstname"), "Ada");
  EXPECT_EQ(c->properties.at("company"), "Engines");
  auto events = fake_.behavioralEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_name, "pe1_order_completed");
  EXPECT_EQ(events[0].email, "c@x.test");
  EXPECT_EQ(events[0].properties.at("revenue"), "9");
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_skipped_total", {{"type", "track"}}), 1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_skipped_total", {{"type", "page"}}), 1u);
}

TEST_F(HubspotDestinationTest, AThousandPeopleTakeTenRequests) {
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 1000; ++i) {
    batch.push_back(identify(i));
  }
  // In deliveries of 100, the plugin's delivery default.
  std::size_t delivered = 0;
  for (std::size_t first = 0; first < batch.size(); first += 100) {
    HubspotDestination dest(config(fake_.baseUrl()), ctx_);
    std::vector<sdk::Event> part(batch.begin() + static_cast<long>(first),
                                 batch.begin() + static_cast<long>(first + 100));
    for (const auto& o : dest.deliver(part)) {
      delivered += o.isDelivered() ? 1 : 0;
    }
  }
  EXPECT_EQ(delivered, 1000u);
  EXPECT_EQ(fake_.contactCount(), 1000u);
  EXPECT_EQ(fake_.requestCount(), 10u);  // the issue's bound: 12
}

TEST_F(HubspotDestinationTest, MultiStatusRefusesOnlyTheNamedContactsAndA2xxThatWroteNothingRetries) {
  fake_.failEmail("person2@example.com", "Property values were not valid: phone");
  fake_.dropEmail("person3@example.com");
  auto outcomes = deliver({identify(1), identify(2), identify(3), identify(4, "not-an-email")});
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[1].reason, HasSubstr("Property values were not valid: phone"));
  EXPECT_THAT(outcomes[1].reason, HasSubstr("VALIDATION_ERROR"));
  EXPECT_EQ(outcomes[2].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[2].reason, HasSubstr("wrote nothing"));
  EXPECT_EQ(outcomes[3].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[3].reason, HasSubstr("is invalid"));
}

TEST_F(HubspotDestinationTest, AnIdentifyWithoutEmailFails) {
  auto outcomes = deliver({event(R"({"type":"identify","userId":"u1","traits":{"name":"x"}})")});
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("no email"));
  EXPECT_EQ(fake_.requestCount(), 0u);
}

TEST_F(HubspotDestinationTest, A429ThrottlesTheDestinationAndRetriesAfterRetryAfter) {
  fake_.failNext(1, 429,
                 R"({"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"})",
                 {{"Retry-After", "7"}});
  auto outcomes = deliver({identify(1),
                           event(R"({"type":"track","userId":"u2","event":"Order Completed","context":{"traits":{"email":"b@x.test"}}})")},
                          json::object{{"Order Completed", "pe1_order_completed"}});
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(outcomes[0].retry_after, 7s);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("ten_secondly_rolling"));
  // The call's later request was not sent into the same limit.
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(fake_.requestCount(), 1u);
  EXPECT_EQ(ctx_.throttles(), (std::vector<std::chrono::milliseconds>{7s}));
}

TEST(HubspotRateLimitTest, TheFakesRealLimitAndLowRemainingHeadersSlowTheDestination) {
  FakeHubspot fake(FakeHubspot::Options{.ten_secondly_limit = 10});
  sdk::testing::FakeDestinationContext ctx;
  HubspotDestination dest(config(fake.baseUrl()), ctx);
  std::size_t retried = 0;
  for (int i = 0; i < 12; ++i) {
    std::vector<sdk::Event> one{identify(i)};
    retried += dest.deliver(one)[0].kind == sdk::Outcome::Kind::Retry ? 1 : 0;
  }
  EXPECT_EQ(retried, 2u);  // calls 11 and 12 of the window
  EXPECT_EQ(fake.rateLimitedCount(), 2u);
  // The 10th call left 0 of 10: pause for the window; the 429s paused too.
  auto throttles = ctx.throttles();
  ASSERT_GE(throttles.size(), 3u);
  EXPECT_EQ(throttles.back(), 10s);
}

TEST_F(HubspotDestinationTest, ServerErrorsRetryAuthFailuresFailAndGarbageRetries) {
  fake_.failNext(1, 502, "<html>Bad gateway</html>");
  auto o502 = deliver({identify(1)});
  EXPECT_EQ(o502[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(o502[0].reason, HasSubstr("502"));

  fake_.failNext(1, 401,
                 R"({"status":"error","message":"Authentication credentials not found.","category":"INVALID_AUTHENTICATION"})");
  auto o401 = deliver({identify(1)});
  EXPECT_EQ(o401[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(o401[0].reason, HasSubstr("authentication failed"));
  EXPECT_THAT(o401[0].reason, Not(HasSubstr("pat-na1")));

  fake_.failNext(1, 200, "this is not json");
  auto garbage = deliver({identify(1)});
  EXPECT_EQ(garbage[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(garbage[0].reason, HasSubstr("not JSON"));

  fake_.failNext(1, 400, R"({"status":"error","message":"Invalid input JSON on line 1","category":"VALIDATION_ERROR"})");
  auto o400 = deliver({identify(1)});
  EXPECT_EQ(o400[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(o400[0].reason, HasSubstr("Invalid input JSON on line 1 (VALIDATION_ERROR)"));
}

TEST_F(HubspotDestinationTest, ASlowVendorTimesOutIntoARetryAndAnOutageLosesNothing) {
  fake_.setDelay(3s);
  auto slow = deliver({identify(1)});  // the config's timeout is 2 s
  EXPECT_EQ(slow[0].kind, sdk::Outcome::Kind::Retry);
  fake_.setDelay(0ms);
  fake_.setDown(true);
  auto down = deliver({identify(2)});
  EXPECT_EQ(down[0].kind, sdk::Outcome::Kind::Retry);
  fake_.setDown(false);
  auto back = deliver({identify(2)});
  EXPECT_TRUE(back[0].isDelivered()) << back[0].reason;
  EXPECT_TRUE(fake_.contact("person2@example.com"));
}

TEST_F(HubspotDestinationTest, ErasureDeletesByEmail) {
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  HubspotDestination dest(config(fake_.baseUrl()), ctx_);
  EXPECT_TRUE(dest.supportsErasure());
  EXPECT_TRUE(dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = "Person1@Example.com"})
                  .isDelivered());
  EXPECT_FALSE(fake_.contact("person1@example.com"));
  EXPECT_EQ(fake_.gdprDeleted(), (std::vector<std::string>{"person1@example.com"}));
  // Already gone: nothing to do.
  EXPECT_TRUE(dest.erase(sdk::Person{.user_id = "", .anonymous_id = "", .email = "person1@example.com"})
                  .isDelivered());
  auto no_email = dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = ""});
  EXPECT_EQ(no_email.kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(no_email.reason, HasSubstr("by email"));
}

}  // namespace
}  // namespace junction::plugins::hubspot
