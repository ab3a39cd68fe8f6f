// The hubspot plugin's pure half: events -> the exact requests (method, path, body, field by
// field against HubSpot's documented shapes), HubSpot's answers -> per-event outcomes, and the
// requests as they leave on the wire (headers), recorded by a scripted server.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "hubspot_destination.h"
#include "hubspot_test_util.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::plugins::hubspot {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using sdk::Outcome;
using testing::config;
using testing::event;
using ::testing::HasSubstr;
using testing::identify;
using ::testing::Not;
using testing::track;

sdk::FieldMapping mappingOf(const json::object& overrides = {}) {
  auto parsed = sdk::FieldMapping::parse(defaultMapping(), overrides);
  EXPECT_TRUE(parsed) << parsed.error().message;
  return parsed ? std::move(parsed).value() : sdk::FieldMapping{};
}

std::vector<std::size_t> positions(std::size_t n) {
  std::vector<std::size_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = i;
  }
  return out;
}

sdk::HttpClientResponse answer(int status, std::string body,
                               std::vector<std::pair<std::string, std::string>> headers = {}) {
  sdk::HttpClientResponse r;
  r.status = status;
  r.body = std::move(body);
  for (const auto& [k, v] : headers) {
    r.headers.set(k, v);
  }
  r.classification = status >= 200 && status < 300 ? sdk::HttpClassification::Success
                     : status == 429               ? sdk::HttpClassification::RateLimited
                     : status == 401               ? sdk::HttpClassification::AuthExpired
                     : status >= 500               ? sdk::HttpClassification::Retryable
                                                   : sdk::HttpClassification::Permanent;
  return r;
}

TEST(HubspotRequestsTest, AnUpsertIsHubspotsBatchInputByEmail) {
  std::vector<sdk::Event> batch{identify(1), identify(2)};
  auto requests =
      buildUpserts(batch, {0, 1}, {"person1@example.com", "person2@example.com"}, mappingOf(), 100);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/crm/v3/objects/contacts/batch/upsert");
  EXPECT_EQ(requests[0].events, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(
      requests[0].body,
      R"({"inputs":[{"idProperty":"email","id":"person1@example.com","properties":{"email":)"
      R"("person1@example.com","firstname":"Ada","lastname":"Lovelace","phone":"+44 1",)"
      R"("company":"Engines"}},{"idProperty":"email","id":"person2@example.com","properties":)"
      R"({"email":"person2@example.com","firstname":"Ada","lastname":"Lovelace","phone":)"
      R"("+44 1","company":"Engines"}}]})");
  // Field by field: HubSpot's BatchInputSimplePublicObjectBatchInputUpsert.
  const auto body = json::parse(requests[0].body).as_object();
  ASSERT_EQ(body.size(), 1u);
  const auto& inputs = body.at("inputs").as_array();
  ASSERT_EQ(inputs.size(), 2u);
  for (const auto& input : inputs) {
    const auto& o = input.as_object();
    EXPECT_EQ(o.size(), 3u);
    EXPECT_EQ(o.at("idProperty"), "email");
    EXPECT_EQ(o.at("id"), o.at("properties").at("email"));
    for (const auto& [name, value] : o.at("properties").as_object()) {
      EXPECT_TRUE(value.is_string()) << name << ": HubSpot property values are strings";
    }
  }
}

TEST(HubspotRequestsTest, TheDefaultMappingReadsSegmentsTraits) {
  auto e = event(R"({"type":"identify","userId":"u1","traits":{"email":" Ada@Example.COM ",)"
                 R"("firstName":"Ada","lastName":"Lovelace","phone":"+44 20","company":"Engines",)"
                 R"("website":"https://ada.example","title":"Analyst","address":{"city":"London",)"
                 R"("state":"LND","country":"UK","postalCode":"N1"},"plan":"pro","vip":true}})");
  std::vector<sdk::Event> batch{e};
  auto requests = buildUpserts(batch, {0}, {"ada@example.com"}, mappingOf(), 100);
  ASSERT_EQ(requests.size(), 1u);
  const auto properties =
      json::parse(requests[0].body).at("inputs").at(0).at("properties").as_object();
  EXPECT_EQ(properties, (json::object{{"email", "ada@example.com"},
                                      {"firstname", "Ada"},
                                      {"lastname", "Lovelace"},
                                      {"phone", "+44 20"},
                                      {"company", "Engines"},
                                      {"website", "https://ada.example"},
                                      {"city", "London"},
                                      {"state", "LND"},
                                      {"country", "UK"},
                                      {"zip", "N1"},
                                      {"jobtitle", "Analyst"}}));
  // A mapping adds properties, turns numbers and booleans into text and drops defaults.
  auto mapped = buildUpserts(
      batch, {0}, {"ada@example.com"},
      mappingOf(json::object{{"plan", "traits.plan"}, {"vip", "traits.vip"}, {"phone", nullptr}}),
      100);
  const auto mapped_properties =
      json::parse(mapped[0].body).at("inputs").at(0).at("properties").as_object();
  EXPECT_EQ(mapped_properties.at("plan"), "pro");
  EXPECT_EQ(mapped_properties.at("vip"), "true");
  EXPECT_FALSE(mapped_properties.contains("phone"));
}

TEST(HubspotRequestsTest, UpsertsSplitAtTheBatchSizeAndNeverNameAContactTwice) {
  std::vector<sdk::Event> batch;
  std::vector<std::string> emails;
  for (int i = 0; i < 250; ++i) {
    batch.push_back(identify(i));
    emails.push_back("person" + std::to_string(i) + "@example.com");
  }
  auto requests = buildUpserts(batch, positions(250), emails, mappingOf(), 100);
  ASSERT_EQ(requests.size(), 3u);
  std::size_t next = 0;
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const auto inputs = json::parse(requests[r].body).at("inputs").as_array();
    EXPECT_EQ(inputs.size(), r < 2 ? 100u : 50u);
    ASSERT_EQ(requests[r].events.size(), inputs.size());
    for (std::size_t k = 0; k < inputs.size(); ++k, ++next) {
      EXPECT_EQ(requests[r].events[k], next);
      EXPECT_EQ(inputs[k].at("id"), json::value(emails[next]));
    }
  }
  EXPECT_EQ(buildUpserts(batch, positions(250), emails, mappingOf(), 40).size(), 7u);

  // Two people sharing an email: the second goes to a later request.
  std::vector<sdk::Event> shared{identify(1), identify(2), identify(3, "person1@example.com")};
  auto split = buildUpserts(shared, {0, 1, 2},
                            {"person1@example.com", "person2@example.com", "person1@example.com"},
                            mappingOf(), 100);
  ASSERT_EQ(split.size(), 2u);
  EXPECT_EQ(split[0].events, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(split[1].events, (std::vector<std::size_t>{2}));
}

TEST(HubspotRequestsTest, ABehavioralEventIsHubspotsEventsSendBody) {
  auto be = buildBehavioralEvent(
      event(R"({"type":"track","userId":"u9","event":"Order Completed","properties":)"
            R"({"revenue":42.5,"currency":"EUR","items":[1,2],"none":null,"gift":false}})"),
      4, "pe123_order_completed", "ada@example.com");
  EXPECT_EQ(be.method, "POST");
  EXPECT_EQ(be.path, "/events/v3/send");
  EXPECT_EQ(be.events, (std::vector<std::size_t>{4}));
  EXPECT_EQ(be.body, R"({"eventName":"pe123_order_completed","email":"ada@example.com",)"
                     R"("occurredAt":"2026-01-01T00:00:00.000Z","properties":{"revenue":"42.5",)"
                     R"("currency":"EUR","items":"[1,2]","gift":"false"}})");
}

TEST(HubspotRequestsTest, A200DeliversTheInputsWithAResultAndRetriesTheOthers) {
  const std::vector<std::string> emails{"a@x.test", "b@x.test", "c@x.test"};
  auto outcomes =
      upsertOutcomes(answer(200, R"({"status":"COMPLETE","results":[)"
                                 R"({"id":"1","properties":{"email":"A@X.test"},"new":true},)"
                                 R"({"id":"3","properties":{"email":"c@x.test"},"new":false}]})"),
                     emails);
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_EQ(outcomes[1].kind, Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[1].reason, HasSubstr("HubSpot answered 200 but wrote nothing"));
  EXPECT_TRUE(outcomes[2].isDelivered());
}

TEST(HubspotRequestsTest, A207MapsEachErrorToTheContactsItNames) {
  const std::vector<std::string> emails{"a@x.test", "b@x.test", "c@x.test", "d@x.test"};
  auto outcomes = upsertOutcomes(
      answer(207,
             R"({"status":"COMPLETE","results":[{"id":"1","properties":{"email":"a@x.test"}}],)"
             R"("numErrors":2,"errors":[)"
             R"({"status":"error","category":"VALIDATION_ERROR","message":"Property values )"
             R"(were not valid","context":{"ids":["B@x.test"]}},)"
             R"({"status":"error","category":"RATE_LIMITS","message":"Too many writes",)"
             R"("context":{"ids":["c@x.test"]}}]})"),
      emails);
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_EQ(outcomes[1].kind, Outcome::Kind::Failed);
  EXPECT_EQ(outcomes[1].reason,
            "HubSpot refused the contact: Property values were not valid (VALIDATION_ERROR)");
  EXPECT_EQ(outcomes[2].kind, Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[2].reason, HasSubstr("Too many writes (RATE_LIMITS)"));
  EXPECT_EQ(outcomes[3].kind, Outcome::Kind::Retry);  // neither a result nor an error
  EXPECT_THAT(outcomes[3].reason, HasSubstr("wrote nothing"));
}

TEST(HubspotRequestsTest, A2xxWhoseBodyIsNotJsonRetriesEveryInput) {
  auto outcomes = upsertOutcomes(answer(200, "<html>ok</html>"), {"a@x.test", "b@x.test"});
  for (const auto& o : outcomes) {
    EXPECT_EQ(o.kind, Outcome::Kind::Retry);
    EXPECT_THAT(o.reason, HasSubstr("not JSON"));
  }
}

TEST(HubspotRequestsTest, VendorReasonIsHubspotsMessageAndCategory) {
  EXPECT_EQ(vendorReason(answer(400, R"({"status":"error","message":"Invalid input JSON",)"
                                     R"("correlationId":"x","category":"VALIDATION_ERROR"})")),
            "HTTP 400 from HubSpot: Invalid input JSON (VALIDATION_ERROR)");
  EXPECT_THAT(vendorReason(answer(502, "<html>Bad gateway</html>")), HasSubstr("502"));
  EXPECT_LE(vendorReason(answer(400, R"({"message":")" + std::string(5000, 'x') + R"("})")).size(),
            310u);
}

TEST(HubspotRequestsTest, RateLimitWaitPrefersRetryAfterThenTheDailyPolicyThenTheWindow) {
  auto with_retry_after = answer(429, "{}");
  with_retry_after.retry_after = 7s;
  EXPECT_EQ(rateLimitWait(with_retry_after), 7s);
  EXPECT_EQ(rateLimitWait(answer(429,
                                 R"({"status":"error","errorType":"RATE_LIMIT",)"
                                 R"("policyName":"DAILY"})",
                                 {{"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}})),
            1h);
  EXPECT_EQ(rateLimitWait(answer(429, R"({"policyName":"TEN_SECONDLY_ROLLING"})",
                                 {{"X-HubSpot-RateLimit-Interval-Milliseconds", "2500"}})),
            2500ms);
  EXPECT_EQ(rateLimitWait(answer(429, "not json")), 10s);
}

TEST(HubspotRequestsTest, OnTheWireEveryRequestCarriesTheTokenAndJson) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/crm/v3/objects/contacts/batch/upsert")
      .reply(200, R"({"status":"COMPLETE","results":[{"id":"1","properties":)"
                  R"({"email":"person1@example.com"}}]})");
  server.when("POST", "/events/v3/send").reply(204, "");
  server.when("POST", "/crm/v3/objects/contacts/gdpr-delete").reply(204, "");
  sdk::testing::FakeDestinationContext ctx;
  // A trailing '/' on base_url is not doubled.
  HubspotDestination dest(
      config(server.baseUrl() + "/", json::object{{"Order Completed", "pe1_order_completed"}}),
      ctx);
  std::vector<sdk::Event> batch{identify(1), track(2, "Order Completed", "B@x.test")};
  for (const auto& o : dest.deliver(batch)) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_TRUE(dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = "Ada@X.test"})
                  .isDelivered());

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.headers.get("Authorization"), std::string("Bearer ") + testing::kToken);
    EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  }
  EXPECT_EQ(requests[0].target, "/crm/v3/objects/contacts/batch/upsert");
  EXPECT_EQ(json::parse(requests[0].body).at("inputs").as_array().size(), 1u);
  EXPECT_EQ(requests[1].target, "/events/v3/send");
  EXPECT_EQ(json::parse(requests[1].body), (json::object{{"eventName", "pe1_order_completed"},
                                                         {"email", "b@x.test"},
                                                         {"occurredAt", "2026-01-01T00:00:00.000Z"},
                                                         {"properties", json::object{}}}));
  EXPECT_EQ(requests[2].target, "/crm/v3/objects/contacts/gdpr-delete");
  EXPECT_EQ(requests[2].body, R"({"objectId":"ada@x.test","idProperty":"email"})");

  // Requests are counted by endpoint and status; the token is in no metric or log line.
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_requests_total",
                                       {{"endpoint", "contacts_upsert"}, {"status", "200"}}),
            1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_requests_total",
                                       {{"endpoint", "events_send"}, {"status", "204"}}),
            1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_requests_total",
                                       {{"endpoint", "gdpr_delete"}, {"status", "204"}}),
            1u);
  EXPECT_FALSE(ctx.log().contains(testing::kToken));
}

}  // namespace
}  // namespace junction::plugins::hubspot
