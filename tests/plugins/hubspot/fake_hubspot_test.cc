// The fake HubSpot's own contract, with a plain HTTP client: auth refused as HubSpot refuses it,
// body validation with HubSpot's error bodies, state, 207 partial answers, the rolling and daily
// rate limits with their headers, and fault injection.

#include "tests/fakes/hubspot/fake_hubspot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

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

// --- the CRM search ------------------------------------------------------------------------------

constexpr const char* kSearch = "/crm/v3/objects/contacts/search";
constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

std::string searchSince(std::int64_t since, int limit, const std::string& after = "") {
  json::object body{
      {"filterGroups",
       json::array{json::object{{"filters", json::array{json::object{
                                                {"propertyName", "lastmodifieddate"},
                                                {"operator", "GTE"},
                                                {"value", std::to_string(since)}}}}}}},
      {"sorts", json::array{json::object{{"propertyName", "lastmodifieddate"},
                                         {"direction", "ASCENDING"}}}},
      {"properties", json::array{"email", "phone"}},
      {"limit", limit}};
  if (!after.empty()) {
    body["after"] = after;
  }
  return json::serialize(body);
}

TEST_F(FakeHubspotTest, SearchFiltersSortsAndPagesContactsByLastModifiedDate) {
  FakeHubspot fake;
  fake.seedContacts(5, kT0, 1000);  // contact0..4, modified a second apart
  fake.putContact("contact1@example.com", json::object{{"phone", "+1 555"}}, kT0 + 10'000);

  auto first = post(fake, kSearch, searchSince(kT0 + 1000, 2));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_TRUE(first.headers.get("X-HubSpot-RateLimit-Max").empty());  // search: no such headers
  auto answer = json::parse(first.body).as_object();
  EXPECT_EQ(answer.at("total"), 4);  // contact2, 3, 4 and the modified contact1
  const auto& results = answer.at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("properties").at("email"), "contact2@example.com");
  EXPECT_EQ(results[0].at("properties").at("lastmodifieddate"), "2026-01-01T00:00:02.000Z");
  EXPECT_EQ(results[0].at("properties").at("hs_object_id"), results[0].at("id"));
  EXPECT_EQ(results[0].at("properties").at("phone"), nullptr);  // requested, unset
  EXPECT_EQ(results[0].at("properties").at("firstname"), "First2");  // a default property
  EXPECT_EQ(results[0].at("archived"), false);
  EXPECT_EQ(answer.at("paging").at("next").at("after"), "2");

  auto second = post(fake, kSearch, searchSince(kT0 + 1000, 2, "2"));
  answer = json::parse(second.body).as_object();
  const auto& rest = answer.at("results").as_array();
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].at("properties").at("email"), "contact4@example.com");
  EXPECT_EQ(rest[1].at("properties").at("email"), "contact1@example.com");
  EXPECT_EQ(rest[1].at("properties").at("phone"), "+1 555");
  EXPECT_FALSE(answer.contains("paging"));

  // ISO 8601 values are accepted for dates, as HubSpot accepts them.
  auto iso = post(fake, kSearch,
                  R"({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GT",)"
                  R"("value":"2026-01-01T00:00:03.000Z"}]}],"limit":10})");
  ASSERT_EQ(iso.status, 200) << iso.body;
  EXPECT_EQ(json::parse(iso.body).at("total"), 2);
  EXPECT_EQ(fake.searchCount(), 3u);
}

TEST_F(FakeHubspotTest, SearchBodiesAreValidatedAsHubspotDoes) {
  FakeHubspot fake;
  fake.seedContacts(3, kT0, 1);
  expectHubspotError(post(fake, kSearch, searchSince(0, 10), ""), 401, "INVALID_AUTHENTICATION",
                     "Authentication credentials not found");
  expectHubspotError(post(fake, kSearch, "{"), 400, "VALIDATION_ERROR", "Invalid input JSON");
  expectHubspotError(post(fake, kSearch, searchSince(0, 201)), 400, "VALIDATION_ERROR",
                     "between 1 and 200");
  expectHubspotError(post(fake, kSearch, searchSince(0, 0)), 400, "VALIDATION_ERROR",
                     "between 1 and 200");
  expectHubspotError(
      post(fake, kSearch,
           R"({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"AFTER","value":"1"}]}]})"),
      400, "VALIDATION_ERROR", "Invalid filter operator");
  expectHubspotError(
      post(fake, kSearch,
           R"({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":"yesterday"}]}]})"),
      400, "VALIDATION_ERROR", "Invalid value for lastmodifieddate");
  expectHubspotError(
      post(fake, kSearch,
           R"({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE"}]}]})"),
      400, "VALIDATION_ERROR", "needs a value");
  json::array groups;
  for (int i = 0; i < 6; ++i) {
    groups.push_back(json::object{{"filters", json::array{}}});
  }
  expectHubspotError(post(fake, kSearch, json::serialize(json::object{{"filterGroups", groups}})),
                     400, "VALIDATION_ERROR", "at most 5");
  expectHubspotError(
      post(fake, kSearch,
           R"({"sorts":[{"propertyName":"lastmodifieddate"},{"propertyName":"createdate"}]})"),
      400, "VALIDATION_ERROR", "at most one sort");
  expectHubspotError(post(fake, kSearch, searchSince(0, 10, "ten")), 400, "VALIDATION_ERROR",
                     "Invalid after");
}

TEST_F(FakeHubspotTest, SearchPagesThroughAtMostTenThousandResults) {
  FakeHubspot fake;
  fake.seedContacts(10'050, kT0, 1);
  auto last = post(fake, kSearch, searchSince(0, 100, "9900"));
  ASSERT_EQ(last.status, 200) << last.body;
  auto answer = json::parse(last.body).as_object();
  EXPECT_EQ(answer.at("total"), 10'050);
  EXPECT_EQ(answer.at("results").as_array().size(), 100u);
  EXPECT_EQ(answer.at("paging").at("next").at("after"), "10000");  // offered, then refused
  expectHubspotError(post(fake, kSearch, searchSince(0, 100, "10000")), 400, "VALIDATION_ERROR",
                     "Paging past 10000 results");
  // A new search from a later time reaches the rest.
  auto rest = post(fake, kSearch, searchSince(kT0 + 10'000, 100));
  EXPECT_EQ(json::parse(rest.body).at("total"), 50);
}

TEST_F(FakeHubspotTest, SearchHasItsOwnPerSecondLimitAnswered429Secondly) {
  FakeHubspot fake(FakeHubspot::Options{.search_requests_per_second = 2});
  fake.seedContacts(1, kT0, 1);
  EXPECT_EQ(post(fake, kSearch, searchSince(0, 10)).status, 200);
  EXPECT_EQ(post(fake, kSearch, searchSince(0, 10)).status, 200);
  auto limited = post(fake, kSearch, searchSince(0, 10));
  ASSERT_EQ(limited.status, 429);
  const auto body = json::parse(limited.body).as_object();
  EXPECT_EQ(body.at("policyName"), "SECONDLY");
  EXPECT_EQ(body.at("errorType"), "RATE_LIMIT");
  EXPECT_TRUE(limited.headers.get("Retry-After").empty());
  EXPECT_EQ(fake.rateLimitedCount(), 1u);
  // The account's other endpoints are not limited by it.
  EXPECT_EQ(post(fake, kUpsert, inputs({"a@x.test"})).status, 200);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(post(fake, kSearch, searchSince(0, 10)).status, 200);
}

TEST_F(FakeHubspotTest, UpsertsStampLastModifiedDateSoSearchesSeeThem) {
  FakeHubspot fake;
  fake.setNowMs(kT0 + 5000);
  ASSERT_EQ(post(fake, kUpsert, inputs({"new@x.test"})).status, 200);
  auto found = post(fake, kSearch, searchSince(kT0 + 5000, 10));
  const auto answer = json::parse(found.body);
  const auto& results = answer.at("results").as_array();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].at("properties").at("email"), "new@x.test");
  EXPECT_EQ(results[0].at("properties").at("createdate"), "2026-01-01T00:00:05.000Z");
}

}  // namespace
}  // namespace junction::tests::fakes
