// The fake HubSpot's own contract, with a plain HTTP client: auth refused as HubSpot refuses it,
// body validation with HubSpot's error bodies, state, 207 partial answers, the rolling and daily
// rate limits with their headers, and fault injection.

#include "tests/fakes/hubspot/fake_hubspot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/http_client.h"

namespace junction::tests::fakes {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kUpsert = "/crm/v3/objects/contacts/batch/upsert";

class FakeHubspotTest : public ::testing::Test {
 protected:
  sdk::HttpClientResponse post(FakeHubspot& fake, const std::string& target, std::string body,
                               const std::string& token = "pat-na1-fake-hubspot-token",
                               const std::string& method = "POST") {
    sdk::HttpClientRequest request{.method = method,
                                   .url = fake.baseUrl() + target,
                                   .headers = {},
                                   .body = std::move(body),
                                   .timeout = 5s};
    request.headers.set("Content-Type", "application/json");
    if (!token.empty()) {
      request.headers.set("Authorization", "Bearer " + token);
    }
    return client_.send(request);
  }

  static std::string inputs(const std::vector<std::string>& emails,
                            const json::object& properties = {}) {
    json::array list;
    for (const auto& email : emails) {
      json::object p = properties;
      p["email"] = email;
      list.push_back(json::object{{"idProperty", "email"}, {"id", email}, {"properties", p}});
    }
    return json::serialize(json::object{{"inputs", std::move(list)}});
  }

  // HubSpot's error body: status "error", message, correlationId, category.
  static void expectHubspotError(const sdk::HttpClientResponse& r, int status,
                                 const std::string& category, const std::string& message_part) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto body = json::parse(r.body).as_object();
    EXPECT_EQ(body.at("status"), "error");
    EXPECT_EQ(body.at("category"), json::value(category));
    EXPECT_THAT(std::string(body.at("message").as_string()), HasSubstr(message_part));
    EXPECT_FALSE(body.at("correlationId").as_string().empty());
  }

  sdk::HttpClient client_;
};

TEST_F(FakeHubspotTest, AMissingOrWrongTokenIs401InvalidAuthentication) {
  FakeHubspot fake;
  expectHubspotError(post(fake, kUpsert, inputs({"a@x.test"}), ""), 401, "INVALID_AUTHENTICATION",
                     "Authentication credentials not found");
  expectHubspotError(post(fake, kUpsert, inputs({"a@x.test"}), "pat-na1-other"), 401,
                     "INVALID_AUTHENTICATION", "Authentication credentials not found");
  EXPECT_EQ(fake.contactCount(), 0u);
  EXPECT_EQ(fake.accessToken(), "pat-na1-fake-hubspot-token");
  FakeHubspot custom(FakeHubspot::Options{.access_token = "pat-eu1-custom"});
  EXPECT_EQ(post(custom, kUpsert, inputs({"a@x.test"}), "pat-eu1-custom").status, 200);
}

TEST_F(FakeHubspotTest, UpsertsCreateThenMergeContactsByEmail) {
  FakeHubspot fake;
  auto created = post(fake, kUpsert,
                      inputs({"Ada@X.test", "b@x.test"},
                             json::object{{"firstname", "Ada"}, {"lastname", "Lovelace"}}));
  ASSERT_EQ(created.status, 200) << created.body;
  const auto answer = json::parse(created.body).as_object();
  EXPECT_EQ(answer.at("status"), "COMPLETE");
  const auto& results = answer.at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("properties").at("email"), "ada@x.test");
  EXPECT_EQ(results[0].at("new"), true);
  EXPECT_FALSE(results[0].at("id").as_string().empty());
  EXPECT_FALSE(answer.contains("errors"));

  auto merged = post(fake, kUpsert, inputs({"ada@x.test"}, json::object{{"lastname", "King"}}));
  ASSERT_EQ(merged.status, 200);
  const auto again = json::parse(merged.body).at("results").at(0).as_object();
  EXPECT_EQ(again.at("new"), false);
  EXPECT_EQ(again.at("id"), results[0].at("id"));
  auto ada = fake.contact("ADA@x.test");
  ASSERT_TRUE(ada);
  EXPECT_EQ(ada->properties,
            (json::object{{"firstname", "Ada"}, {"lastname", "King"}, {"email", "ada@x.test"}}));
  EXPECT_EQ(fake.contactCount(), 2u);
  const auto all = fake.contacts();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].properties.at("email"), "ada@x.test");
  EXPECT_EQ(all[1].properties.at("email"), "b@x.test");
  EXPECT_NE(all[0].id, all[1].id);
}

TEST_F(FakeHubspotTest, BatchBodiesAreValidatedAsHubspotDoes) {
  FakeHubspot fake;
  std::vector<std::string> many;
  for (int i = 0; i < 101; ++i) {
    many.push_back("p" + std::to_string(i) + "@x.test");
  }
  expectHubspotError(post(fake, kUpsert, inputs(many)), 400, "VALIDATION_ERROR",
                     "between 1 and 100");
  many.pop_back();
  EXPECT_EQ(post(fake, kUpsert, inputs(many)).status, 200);  // exactly 100 is fine
  expectHubspotError(post(fake, kUpsert, R"({"inputs":[]})"), 400, "VALIDATION_ERROR",
                     "between 1 and 100");
  expectHubspotError(post(fake, kUpsert, "not json"), 400, "VALIDATION_ERROR", "inputs");
  expectHubspotError(post(fake, kUpsert, inputs({"a@x.test", "A@x.test"})), 400, "VALIDATION_ERROR",
                     "Duplicate IDs");
  expectHubspotError(post(fake, kUpsert, R"({"inputs":[{"id":"a@x.test","properties":{}}]})"), 400,
                     "VALIDATION_ERROR", "idProperty");
  expectHubspotError(
      post(fake, kUpsert,
           R"({"inputs":[{"idProperty":"email","id":"a@x.test","properties":{"age":36}}]})"),
      400, "VALIDATION_ERROR", "strings: age");
  expectHubspotError(
      post(fake, kUpsert, R"({"inputs":[{"idProperty":"hs_object_id","id":"1","properties":{}}]})"),
      400, "VALIDATION_ERROR", "hs_object_id");
  EXPECT_EQ(fake.contactCount(), 100u);  // the refused batches wrote nothing
}

TEST_F(FakeHubspotTest, RefusedAndDroppedEmailsMakeA207OrAnEmpty200) {
  FakeHubspot fake;
  fake.failEmail("B@x.test", "Property values were not valid");
  fake.failEmail("c@x.test", "Try again", "RATE_LIMITS");
  fake.dropEmail("d@x.test");
  auto r = post(fake, kUpsert, inputs({"a@x.test", "b@x.test", "c@x.test", "d@x.test", "nope"}));
  ASSERT_EQ(r.status, 207) << r.body;
  const auto answer = json::parse(r.body).as_object();
  EXPECT_EQ(answer.at("results").as_array().size(), 1u);
  EXPECT_EQ(answer.at("numErrors"), 3);
  const auto& errors = answer.at("errors").as_array();
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].at("status"), "error");
  EXPECT_EQ(errors[0].at("category"), "VALIDATION_ERROR");
  EXPECT_EQ(errors[0].at("message"), "Property values were not valid");
  EXPECT_EQ(errors[0].at("context").at("ids"), (json::array{"b@x.test"}));
  EXPECT_EQ(errors[1].at("category"), "RATE_LIMITS");
  EXPECT_EQ(errors[2].at("message"), "Email address nope is invalid");
  EXPECT_EQ(fake.contactCount(), 1u);

  auto dropped = post(fake, kUpsert, inputs({"d@x.test"}));
  EXPECT_EQ(dropped.status, 200);
  EXPECT_TRUE(json::parse(dropped.body).at("results").as_array().empty());
  EXPECT_FALSE(fake.contact("d@x.test"));
}

TEST_F(FakeHubspotTest, BehavioralEventsAreValidatedAndKept) {
  FakeHubspot fake;
  auto ok = post(fake, "/events/v3/send",
                 R"({"eventName":"pe1_order_completed","email":"a@x.test",)"
                 R"("occurredAt":"2026-01-01T00:00:00.000Z","properties":{"revenue":"9"}})");
  EXPECT_EQ(ok.status, 204) << ok.body;
  auto by_id = post(fake, "/events/v3/send", R"({"eventName":"pe1_viewed","objectId":"1001"})");
  EXPECT_EQ(by_id.status, 204) << by_id.body;
  expectHubspotError(post(fake, "/events/v3/send", R"({"email":"a@x.test"})"), 400,
                     "VALIDATION_ERROR", "eventName");
  expectHubspotError(post(fake, "/events/v3/send", R"({"eventName":"pe1_x"})"), 400,
                     "VALIDATION_ERROR", "email, utk or objectId");
  const auto events = fake.behavioralEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_name, "pe1_order_completed");
  EXPECT_EQ(events[0].email, "a@x.test");
  EXPECT_EQ(events[0].occurred_at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(events[0].properties, (json::object{{"revenue", "9"}}));
}

TEST_F(FakeHubspotTest, GdprDeleteRemovesTheContactAnd404sAnUnknownOne) {
  FakeHubspot fake;
  ASSERT_EQ(post(fake, kUpsert, inputs({"a@x.test"})).status, 200);
  auto deleted = post(fake, "/crm/v3/objects/contacts/gdpr-delete",
                      R"({"objectId":"A@x.test","idProperty":"email"})");
  EXPECT_EQ(deleted.status, 204) << deleted.body;
  EXPECT_EQ(fake.contactCount(), 0u);
  EXPECT_EQ(fake.gdprDeleted(), (std::vector<std::string>{"a@x.test"}));
  expectHubspotError(post(fake, "/crm/v3/objects/contacts/gdpr-delete",
                          R"({"objectId":"a@x.test","idProperty":"email"})"),
                     404, "OBJECT_NOT_FOUND", "not found");
  expectHubspotError(
      post(fake, "/crm/v3/objects/contacts/gdpr-delete", R"({"idProperty":"email"})"), 400,
      "VALIDATION_ERROR", "objectId");
}

TEST_F(FakeHubspotTest, UnknownRoutesAndMethodsAreRefused) {
  FakeHubspot fake;
  expectHubspotError(post(fake, "/crm/v3/objects/deals/batch/upsert", "{}"), 404,
                     "OBJECT_NOT_FOUND", "Unable to route");
  expectHubspotError(post(fake, kUpsert, "", "pat-na1-fake-hubspot-token", "GET"), 405,
                     "VALIDATION_ERROR", "GET");
}

TEST_F(FakeHubspotTest, EveryAnswerCarriesTheWindowAndPastItComesHubspots429) {
  FakeHubspot fake(FakeHubspot::Options{.requests_per_second = 0.5});  // 5 per ten seconds
  EXPECT_EQ(fake.windowMax(), 5u);
  for (int i = 0; i < 5; ++i) {
    auto r = post(fake, kUpsert, inputs({"p" + std::to_string(i) + "@x.test"}));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.get("X-HubSpot-RateLimit-Max"), "5");
    EXPECT_EQ(r.headers.get("X-HubSpot-RateLimit-Remaining"), std::to_string(4 - i));
    EXPECT_EQ(r.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"), "10000");
    EXPECT_EQ(r.headers.get("X-HubSpot-RateLimit-Daily"), "");  // no daily limit set
  }
  auto limited = post(fake, kUpsert, inputs({"late@x.test"}));
  ASSERT_EQ(limited.status, 429);
  EXPECT_EQ(limited.headers.get("Retry-After"), "");
  EXPECT_EQ(limited.headers.get("X-HubSpot-RateLimit-Remaining"), "0");
  const auto body = json::parse(limited.body).as_object();
  EXPECT_EQ(body.at("status"), "error");
  EXPECT_EQ(body.at("errorType"), "RATE_LIMIT");
  EXPECT_EQ(body.at("policyName"), "TEN_SECONDLY_ROLLING");
  EXPECT_EQ(body.at("message"), "You have reached your ten_secondly_rolling limit.");
  EXPECT_FALSE(body.at("correlationId").as_string().empty());
  EXPECT_FALSE(body.at("requestId").as_string().empty());
  EXPECT_EQ(fake.rateLimitedCount(), 1u);
  EXPECT_FALSE(fake.contact("late@x.test"));

  FakeHubspot unlimited;
  auto r = post(unlimited, kUpsert, inputs({"a@x.test"}));
  EXPECT_EQ(r.headers.get("X-HubSpot-RateLimit-Max"), "1000000");
  EXPECT_EQ(r.headers.get("X-HubSpot-RateLimit-Remaining"), "999999");
}

TEST_F(FakeHubspotTest, TheDailyLimitHasItsHeadersAndItsOwn429) {
  FakeHubspot fake(FakeHubspot::Options{.daily_limit = 2});
  auto first = post(fake, kUpsert, inputs({"a@x.test"}));
  EXPECT_EQ(first.headers.get("X-HubSpot-RateLimit-Daily"), "2");
  EXPECT_EQ(first.headers.get("X-HubSpot-RateLimit-Daily-Remaining"), "1");
  auto second = post(fake, kUpsert, inputs({"b@x.test"}));
  EXPECT_EQ(second.headers.get("X-HubSpot-RateLimit-Daily-Remaining"), "0");
  auto third = post(fake, kUpsert, inputs({"c@x.test"}));
  ASSERT_EQ(third.status, 429);
  EXPECT_EQ(json::parse(third.body).at("policyName"), "DAILY");
  EXPECT_EQ(json::parse(third.body).at("message"), "You have reached your daily limit.");
  EXPECT_EQ(fake.contactCount(), 2u);
}

TEST_F(FakeHubspotTest, FailNextAnswersTheNextMatchingRequestsThenStops) {
  FakeHubspot fake;
  fake.failNext(2, 503, "upstream down", {{"Retry-After", "4"}}, "/events/");
  auto upsert = post(fake, kUpsert, inputs({"a@x.test"}));
  EXPECT_EQ(upsert.status, 200);  // another path
  for (int i = 0; i < 2; ++i) {
    auto r = post(fake, "/events/v3/send", R"({"eventName":"pe1_x","email":"a@x.test"})");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "upstream down");
    EXPECT_EQ(r.retry_after, 4s);
  }
  EXPECT_EQ(post(fake, "/events/v3/send", R"({"eventName":"pe1_x","email":"a@x.test"})").status,
            204);
  EXPECT_EQ(fake.behavioralEvents().size(), 1u);
  EXPECT_EQ(fake.requestCount(), 4u);
  EXPECT_TRUE(fake.waitForRequests(4, 1s));
  EXPECT_EQ(fake.requests()[1].path, "/events/v3/send");
}

TEST_F(FakeHubspotTest, DownResetsConnectionsAndStoresNothingAndDelaySlowsAnswers) {
  FakeHubspot fake;
  fake.setDown(true);
  auto down = post(fake, kUpsert, inputs({"a@x.test"}));
  EXPECT_EQ(down.status, 0);
  EXPECT_FALSE(down.transport_error.empty());
  EXPECT_EQ(fake.contactCount(), 0u);
  fake.setDown(false);
  EXPECT_EQ(post(fake, kUpsert, inputs({"a@x.test"})).status, 200);

  fake.setDelay(150ms);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(post(fake, kUpsert, inputs({"b@x.test"})).status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  fake.setDelay(0ms);
  EXPECT_EQ(fake.contactCount(), 2u);
}

}  // namespace
}  // namespace junction::tests::fakes
