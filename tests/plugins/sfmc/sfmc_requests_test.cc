// Events to exact SFMC requests: rows, journey entry events, token and delete bodies, chunking,
// and the reading of the vendor's answers. The last tests check the bytes on the wire (method,
// path, headers, body) at a scripted server.
//
// Request shapes, as Marketing Cloud's REST reference documents them:
//   POST /v2/token                      {grant_type, client_id, client_secret, scope?, account_id?}
//   POST /hub/v1/dataevents/key:{key}/rowset   [{"keys": {...}, "values": {...}}, ...]
//   POST /interaction/v1/events         {ContactKey: string, EventDefinitionKey: string,
//                                        Data: object}
//   POST /contacts/v1/contacts/actions/delete?type=keys
//                                       {ContactTypeId, values: [keys], DeleteOperationType}

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "sfmc_destination.h"
#include "sfmc_requests.h"
#include "sfmc_test_util.h"

namespace junction::plugins::sfmc {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using testing::configFrom;
using testing::event;

SfmcConfig config(json::object extra = {}) {
  json::object given{{"auth_url", "https://mc123.auth.marketingcloudapis.com"},
                     {"client_id", "cid"},
                     {"client_secret", "csecret"},
                     {"data_extension", "Contacts"},
                     {"journeys", json::object{{"Cart Abandoned", "APIEvent-cart"}}}};
  for (auto& [k, v] : extra) {
    given[k] = v;
  }
  return configFrom(given);
}

SfmcMapper mapper(const SfmcConfig& c) {
  auto m = SfmcMapper::make(c);
  EXPECT_TRUE(m) << m.error().message;
  return std::move(*m);
}

TEST(SfmcMapperTest, IdentifyBecomesADataExtensionRowWithTheDefaultMapping) {
  const auto planned = mapper(config()).plan(event(R"({
      "type":"identify","userId":"u1",
      "traits":{"email":"  Ada@Example.COM ","firstName":"Ada","last_name":"Lovelace",
                "phone":"+44 20 7946 0000","plan":"pro"}})"));
  ASSERT_EQ(planned.action, Planned::Action::Row);
  EXPECT_EQ(planned.body,
            R"({"keys":{"ContactKey":"u1"},"values":{"EmailAddress":"ada@example.com",)"
            R"("FirstName":"Ada","LastName":"Lovelace","Phone":"+44 20 7946 0000"}})");
  EXPECT_EQ(json::serialize(planned.row), planned.body);
}

TEST(SfmcMapperTest, EmailFromContextTraitsAndAbsentTraitsLeftOut) {
  const auto planned = mapper(config()).plan(event(
      R"({"type":"identify","userId":"u2","context":{"traits":{"email":"b@example.com"}}})"));
  ASSERT_EQ(planned.action, Planned::Action::Row);
  EXPECT_EQ(planned.body, R"({"keys":{"ContactKey":"u2"},"values":{"EmailAddress":"b@example.com"}})");
}

TEST(SfmcMapperTest, MappingOverridesKeyFieldAndContactKeyPath) {
  const auto c = config({{"key_field", "SubscriberKey"},
                         {"contact_key", "traits.customer_id"},
                         {"mapping", json::object{{"Phone", nullptr},
                                                  {"Plan", json::object{{"from", "traits.plan"},
                                                                        {"transform", "uppercase"}}},
                                                  {"Address", "traits.address"}}}});
  const auto planned = mapper(c).plan(event(R"({
      "type":"identify","userId":"u3",
      "traits":{"customer_id":42,"phone":"123","plan":"pro","address":{"city":"Paris"}}})"));
  ASSERT_EQ(planned.action, Planned::Action::Row);
  // Columns are flat: an object found at a path is sent as its JSON text.
  EXPECT_EQ(planned.body, R"({"keys":{"SubscriberKey":"42"},"values":{"Plan":"PRO",)"
                          R"("Address":"{\"city\":\"Paris\"}"}})");
}

TEST(SfmcMapperTest, AnIdentifyWithoutAContactKeyFails) {
  const auto planned =
      mapper(config()).plan(event(R"({"type":"identify","anonymousId":"a1","traits":{}})"));
  ASSERT_EQ(planned.action, Planned::Action::Fail);
  EXPECT_THAT(planned.reason, HasSubstr("no contact key"));
  EXPECT_THAT(planned.reason, HasSubstr("userId"));
}

TEST(SfmcMapperTest, AJourneyTrackEventBecomesAnEntryEventWithFlattenedData) {
  const auto planned = mapper(config()).plan(event(R"({
      "type":"track","event":"Cart Abandoned","userId":"u1",
      "context":{"traits":{"email":"ada@example.com"}},
      "properties":{"cart_id":"c1","total":42.5,"coupon":null,"items":[1,2],
                    "product":{"sku":"s-1","price":{"amount":3}}}})"));
  ASSERT_EQ(planned.action, Planned::Action::Journey);
  const json::object body = json::parse(planned.body).as_object();
  // Field by field against the documented shape: exactly these three members.
  ASSERT_EQ(body.size(), 3u);
  ASSERT_TRUE(body.at("ContactKey").is_string());
  EXPECT_EQ(body.at("ContactKey").get_string(), "u1");
  ASSERT_TRUE(body.at("EventDefinitionKey").is_string());
  EXPECT_EQ(body.at("EventDefinitionKey").get_string(), "APIEvent-cart");
  ASSERT_TRUE(body.at("Data").is_object());
  EXPECT_EQ(json::serialize(body.at("Data")),
            R"({"cart_id":"c1","total":4.25E1,"items":"[1,2]","product_sku":"s-1",)"
            R"("product_price_amount":3,"EmailAddress":"ada@example.com"})");
  for (const auto& [name, v] : body.at("Data").get_object()) {
    EXPECT_FALSE(v.is_object() || v.is_array() || v.is_null()) << name;
  }
}

TEST(SfmcMapperTest, AnEmailPropertyIsNotOverwritten) {
  const auto data = journeyData(json::parse(R"({"properties":{"EmailAddress":"p@example.com"},
      "traits":{"email":"t@example.com"}})").as_object());
  EXPECT_EQ(json::serialize(data), R"({"EmailAddress":"p@example.com"})");
}

TEST(SfmcMapperTest, OtherEventsAreSkippedByType) {
  const auto m = mapper(config());
  auto track = m.plan(event(R"({"type":"track","event":"Viewed","userId":"u1"})"));
  EXPECT_EQ(track.action, Planned::Action::Skip);
  EXPECT_EQ(track.type, "track");
  auto page = m.plan(event(R"({"type":"page","name":"Home","userId":"u1"})"));
  EXPECT_EQ(page.action, Planned::Action::Skip);
  EXPECT_EQ(page.type, "page");
  auto group = m.plan(event(R"({"type":"group","groupId":"g","userId":"u1"})"));
  EXPECT_EQ(group.type, "group");
}

TEST(SfmcMapperTest, IdentifyIsSkippedWithoutADataExtension) {
  const auto planned = mapper(config({{"data_extension", ""}}))
                           .plan(testing::identify("u1", "a@example.com"));
  EXPECT_EQ(planned.action, Planned::Action::Skip);
  EXPECT_EQ(planned.type, "identify");
}

TEST(SfmcMapperTest, AJourneyEventWithoutAContactKeyFails) {
  const auto planned = mapper(config()).plan(
      event(R"({"type":"track","event":"Cart Abandoned","anonymousId":"a1"})"));
  ASSERT_EQ(planned.action, Planned::Action::Fail);
  EXPECT_THAT(planned.reason, HasSubstr("Cart Abandoned"));
}

TEST(SfmcRequestsTest, TokenRequestBody) {
  EXPECT_EQ(tokenRequestBody(config()),
            R"({"grant_type":"client_credentials","client_id":"cid","client_secret":"csecret"})");
  EXPECT_EQ(tokenRequestBody(config({{"account_id", "514009876"}, {"scope", "journeys_execute"}})),
            R"({"grant_type":"client_credentials","client_id":"cid","client_secret":"csecret",)"
            R"("scope":"journeys_execute","account_id":514009876})");
  EXPECT_EQ(tokenUrl("https://mc1.auth.marketingcloudapis.com/"),
            "https://mc1.auth.marketingcloudapis.com/v2/token");
  EXPECT_EQ(tokenUrl("http://127.0.0.1:9"), "http://127.0.0.1:9/v2/token");
}

TEST(SfmcRequestsTest, PathsAndDeleteBody) {
  EXPECT_EQ(rowsetPath("Contacts"), "hub/v1/dataevents/key:Contacts/rowset");
  EXPECT_EQ(rowsetPath("My DE/1"), "hub/v1/dataevents/key:My%20DE%2F1/rowset");
  EXPECT_EQ(deleteRequestBody("u1"),
            R"({"ContactTypeId":0,"values":["u1"],"DeleteOperationType":"ContactAndAttributes"})");
}

TEST(SfmcRequestsTest, ChunksByRowsAndBytes) {
  std::vector<std::string> rows(120, std::string(10, 'x'));
  EXPECT_THAT(chunkRows(rows, 50, 1 << 20),
              ::testing::ElementsAre(std::pair<std::size_t, std::size_t>{0, 50},
                                     std::pair<std::size_t, std::size_t>{50, 100},
                                     std::pair<std::size_t, std::size_t>{100, 120}));
  // "[" + 3 rows of 10 + 2 commas + "]" = 34 bytes fit in 34, a fourth does not.
  EXPECT_THAT(chunkRows(std::span(rows).first(7), 50, 34),
              ::testing::ElementsAre(std::pair<std::size_t, std::size_t>{0, 3},
                                     std::pair<std::size_t, std::size_t>{3, 6},
                                     std::pair<std::size_t, std::size_t>{6, 7}));
  EXPECT_TRUE(chunkRows({}, 50, 100).empty());
  EXPECT_EQ(rowsetBody(std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}),
            R"([{"a":1},{"b":2}])");
}

TEST(SfmcResponsesTest, TokenGrant) {
  auto grant = parseTokenResponse(
      R"({"access_token":"eyJ","token_type":"Bearer","expires_in":1079,"scope":"x",)"
      R"("soap_instance_url":"https://mc1.soap.marketingcloudapis.com/",)"
      R"("rest_instance_url":"https://mc1.rest.marketingcloudapis.com"})");
  ASSERT_TRUE(grant) << grant.error().message;
  EXPECT_EQ(grant->access_token, "eyJ");
  EXPECT_EQ(grant->expires_in, std::chrono::seconds(1079));
  EXPECT_EQ(grant->rest_instance_url, "https://mc1.rest.marketingcloudapis.com/");

  for (const char* bad : {"<html>", "[]", R"({"expires_in":10,"rest_instance_url":"https://x/"})",
                          R"({"access_token":"t","rest_instance_url":"https://x/"})",
                          R"({"access_token":"t","expires_in":10,"rest_instance_url":"ftp://x"})"}) {
    auto refused = parseTokenResponse(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_THAT(refused.error().message, HasSubstr("token response")) << bad;
  }
}

TEST(SfmcResponsesTest, VendorErrorShapes) {
  EXPECT_EQ(vendorError(R"({"documentation":"https://d","errorcode":0,"message":"Not Authorized"})"),
            "Not Authorized (errorcode 0)");
  EXPECT_EQ(vendorError(R"({"error":"invalid_client","error_description":"Client authentication failed."})"),
            "invalid_client: Client authentication failed.");
  EXPECT_EQ(vendorError(R"({"message":"Unable to save rows","errorcode":10006,)"
                        R"("additionalErrors":[{"message":"A"},{"message":"B"}]})"),
            "Unable to save rows (errorcode 10006); A; B");
  EXPECT_EQ(vendorError(R"({"operationInitiated":false,"hasErrors":true,)"
                        R"("resultMessages":[{"resultMessage":"values is required"}]})"),
            "values is required");
  EXPECT_FALSE(vendorError("<html>"));
  EXPECT_FALSE(vendorError(R"({"detail":"x"})"));
}

TEST(SfmcResponsesTest, RowsetProblemsNameTheRowsConcerned) {
  const auto problems = rowsetProblems(R"({"message":"Unable to save rows","errorcode":10006,
      "additionalErrors":[
        {"message":"The value for column [EmailAddress] is not a valid email address: bad@","errorcode":10000},
        {"message":"The column [Plan] does not exist in the data extension","errorcode":10000},
        {"message":"Something else went wrong","errorcode":10000}]})");
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].column, "EmailAddress");
  EXPECT_EQ(problems[0].value, "bad@");
  EXPECT_EQ(problems[1].column, "Plan");
  EXPECT_FALSE(problems[1].value);
  EXPECT_FALSE(problems[2].column);

  const json::object r0 = json::parse(R"({"keys":{"ContactKey":"a"},"values":{"EmailAddress":"ok@x.io"}})").as_object();
  const json::object r1 = json::parse(R"({"keys":{"ContactKey":"b"},"values":{"EmailAddress":"bad@","Plan":"p"}})").as_object();
  const json::object r2 = json::parse(R"({"keys":{"ContactKey":"c"},"values":{"Plan":"q"}})").as_object();
  const std::vector<const json::object*> rows{&r0, &r1, &r2};
  EXPECT_THAT(rowsConcerned(problems[0], rows), ::testing::ElementsAre(1u));
  EXPECT_THAT(rowsConcerned(problems[1], rows), ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(rowsConcerned(problems[2], rows), ::testing::IsEmpty());
  EXPECT_TRUE(rowsetProblems(R"({"message":"x","errorcode":1})").empty());
  EXPECT_TRUE(rowsetProblems("garbage").empty());
}

TEST(SfmcResponsesTest, DeleteAnswers) {
  auto ok = parseDeleteResponse(
      R"({"operationInitiated":true,"operationID":2038,"requestServiceMessageID":"b8",)"
      R"("responseDateTime":"2019-07-26T08:31:44.44-06:00","hasErrors":false,"resultMessages":[],)"
      R"("serviceMessageID":"ae"})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->operation_id, 2038);
  auto refused = parseDeleteResponse(
      R"({"operationInitiated":false,"hasErrors":true,"resultMessages":[{"resultMessage":"no"}]})");
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->operation_id);
  EXPECT_EQ(refused->error, "no");
  EXPECT_FALSE(parseDeleteResponse("{}"));
  EXPECT_FALSE(parseDeleteResponse(R"({"operationInitiated":true})"));
  EXPECT_FALSE(parseDeleteResponse("nope"));
}

// The exact requests on the wire, at a server that only records and answers.
TEST(SfmcWireTest, TheExactRequestsOfOneDelivery) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/v2/token")
      .reply(200, R"({"access_token":"tok-1","token_type":"Bearer","expires_in":1079,)"
                  R"("rest_instance_url":")" + server.baseUrl() + R"(/"})");
  server.when("POST", "/hub/v1/dataevents/key:Contacts/rowset").reply(200, "[]");
  server.when("POST", "/interaction/v1/events").reply(201, R"({"eventInstanceId":"e-1"})");
  sdk::testing::FakeDestinationContext ctx;
  auto c = config({{"auth_url", server.baseUrl() + "/"}, {"account_id", "77"}});
  SfmcDestination dest(c, ctx);

  std::vector<sdk::Event> batch{
      testing::identify("u1", "ada@example.com", "Ada"),
      event(R"({"type":"track","event":"Cart Abandoned","userId":"u2","properties":{"total":3}})"),
      event(R"({"type":"page","name":"Home","userId":"u3"})"),
      testing::identify("u4", "bob@example.com")};
  const auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes.size(), 4u);
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/v2/token");
  EXPECT_EQ(requests[0].headers.get("Content-Type"), "application/json");
  EXPECT_EQ(requests[0].headers.get("Authorization"), "");
  EXPECT_EQ(requests[0].body, R"({"grant_type":"client_credentials","client_id":"cid",)"
                              R"("client_secret":"csecret","account_id":77})");

  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].target, "/hub/v1/dataevents/key:Contacts/rowset");
  EXPECT_EQ(requests[1].headers.get("Authorization"), "Bearer tok-1");
  EXPECT_EQ(requests[1].headers.get("Content-Type"), "application/json; charset=UTF-8");
  EXPECT_EQ(requests[1].body,
            R"([{"keys":{"ContactKey":"u1"},"values":{"EmailAddress":"ada@example.com",)"
            R"("FirstName":"Ada"}},{"keys":{"ContactKey":"u4"},"values":{"EmailAddress":)"
            R"("bob@example.com"}}])");

  EXPECT_EQ(requests[2].method, "POST");
  EXPECT_EQ(requests[2].target, "/interaction/v1/events");
  EXPECT_EQ(requests[2].headers.get("Authorization"), "Bearer tok-1");
  EXPECT_EQ(requests[2].headers.get("Content-Type"), "application/json; charset=UTF-8");
  EXPECT_EQ(requests[2].body, R"({"ContactKey":"u2","EventDefinitionKey":"APIEvent-cart",)"
                              R"("Data":{"total":3}})");

  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_skipped_total", {{"type", "page"}}), 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_requests_total",
                                       {{"endpoint", "token"}, {"status", "200"}}),
            1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_requests_total",
                                       {{"endpoint", "rowset"}, {"status", "200"}}),
            1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_requests_total",
                                       {{"endpoint", "events"}, {"status", "201"}}),
            1u);
}

TEST(SfmcWireTest, TheExactDeleteRequest) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/v2/token")
      .reply(200, R"({"access_token":"tok-9","expires_in":1079,"rest_instance_url":")" +
                      server.baseUrl() + R"(/"})");
  server.when("POST", "/contacts/v1/contacts/actions/delete")
      .reply(200, R"({"operationInitiated":true,"operationID":77,"hasErrors":false,)"
                  R"("resultMessages":[]})");
  sdk::testing::FakeDestinationContext ctx;
  SfmcDestination dest(config({{"auth_url", server.baseUrl()}}), ctx);
  const auto outcome = dest.erase({.user_id = "u1", .anonymous_id = "", .email = ""});
  EXPECT_TRUE(outcome.isDelivered());
  EXPECT_EQ(outcome.reason, "SFMC delete operation 77 accepted");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].target, "/contacts/v1/contacts/actions/delete?type=keys");
  EXPECT_EQ(requests[1].headers.get("Authorization"), "Bearer tok-9");
  EXPECT_EQ(requests[1].body,
            R"({"ContactTypeId":0,"values":["u1"],"DeleteOperationType":"ContactAndAttributes"})");
}

}  // namespace
}  // namespace junction::plugins::sfmc
