// The fake Marketing Cloud's own contract, with a plain HTTP client: auth as the vendor refuses
// it, body validation with the vendor's error shapes, state, rate limit and fault injection.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

#include "junction/sdk/http_client.h"
#include "tests/fakes/sfmc/fake_sfmc.h"

namespace junction::tests::fakes {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

class FakeSfmcTest : public ::testing::Test {
 protected:
  sdk::HttpClientResponse post(FakeSfmc& fake, const std::string& target, std::string body,
                               const std::string& bearer = "",
                               const std::string& content_type = "application/json") {
    sdk::HttpClientRequest request{.method = "POST", .url = fake.baseUrl() + target,
                                   .headers = {}, .body = std::move(body), .timeout = 5s};
    request.headers.set("Content-Type", content_type);
    if (!bearer.empty()) {
      request.headers.set("Authorization", "Bearer " + bearer);
    }
    return client_.send(request);
  }

  std::string token(FakeSfmc& fake) {
    auto r = post(fake, "/v2/token",
                  R"({"grant_type":"client_credentials","client_id":"fake-sfmc-client-id",)"
                  R"("client_secret":"fake-sfmc-client-secret"})");
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(json::parse(r.body).at("access_token").as_string());
  }

  json::value parse(const sdk::HttpClientResponse& r) { return json::parse(r.body); }

  sdk::HttpClient client_;
};

TEST_F(FakeSfmcTest, TokenGrantAndItsRefusals) {
  FakeSfmcOptions options;
  options.account_id = "514000001";
  FakeSfmc fake(options);
  auto granted = post(fake, "/v2/token",
                      R"({"grant_type":"client_credentials","client_id":"fake-sfmc-client-id",)"
                      R"("client_secret":"fake-sfmc-client-secret","account_id":514000001})");
  ASSERT_EQ(granted.status, 200);
  const auto grant = parse(granted).as_object();
  EXPECT_EQ(grant.at("token_type").as_string(), "Bearer");
  EXPECT_EQ(grant.at("expires_in").as_int64(), 1080);
  EXPECT_EQ(grant.at("rest_instance_url").as_string(), fake.baseUrl() + "/");
  EXPECT_EQ(grant.at("soap_instance_url").as_string(), fake.baseUrl() + "/");
  EXPECT_FALSE(grant.at("access_token").as_string().empty());

  auto wrong = post(fake, "/v2/token",
                    R"({"grant_type":"client_credentials","client_id":"fake-sfmc-client-id",)"
                    R"("client_secret":"nope"})");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(parse(wrong).at("error").as_string(), "invalid_client");
  auto other_account = post(fake, "/v2/token",
                            R"({"grant_type":"client_credentials","client_id":"fake-sfmc-client-id",)"
                            R"("client_secret":"fake-sfmc-client-secret","account_id":"9"})");
  EXPECT_EQ(other_account.status, 401);
  auto grant_type = post(fake, "/v2/token", R"({"grant_type":"password"})");
  EXPECT_EQ(grant_type.status, 400);
  EXPECT_EQ(parse(grant_type).at("error").as_string(), "unsupported_grant_type");
  auto missing = post(fake, "/v2/token", R"({"grant_type":"client_credentials"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(parse(missing).at("error").as_string(), "invalid_request");
  auto form = post(fake, "/v2/token", "grant_type=client_credentials", "",
                   "application/x-www-form-urlencoded");
  EXPECT_EQ(form.status, 400);
  EXPECT_EQ(fake.tokensIssued(), 1u);
}

TEST_F(FakeSfmcTest, RestCallsNeedAValidUnexpiredToken) {
  FakeSfmc fake;
  const std::string rows = R"([{"keys":{"ContactKey":"u1"},"values":{"A":"1"}}])";
  for (const std::string& bearer : {std::string(), std::string("made-up")}) {
    auto r = post(fake, "/hub/v1/dataevents/key:DE/rowset", rows, bearer);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(parse(r), json::parse(R"({"message":"Not Authorized","errorcode":0,"documentation":)"
                                    R"("https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm"})"));
  }
  const std::string t = token(fake);
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", rows, t).status, 200);
  fake.expireTokens();
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", rows, t).status, 401);
}

TEST_F(FakeSfmcTest, TokensExpireAfterTheirLifetime) {
  FakeSfmcOptions options;
  options.token_ttl = 1s;
  FakeSfmc fake(options);
  const std::string t = token(fake);
  EXPECT_EQ(post(fake, "/interaction/v1/events",
                 R"({"ContactKey":"u","EventDefinitionKey":"k"})", t).status,
            201);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(post(fake, "/interaction/v1/events",
                 R"({"ContactKey":"u","EventDefinitionKey":"k"})", t).status,
            401);
}

TEST_F(FakeSfmcTest, RowsetsAreUpsertedByKeyAllOrNothing) {
  FakeSfmcOptions options;
  SfmcDataExtension de;
  de.columns["EmailAddress"] = {SfmcColumnType::EmailAddress, 254, true};
  de.columns["Age"] = {SfmcColumnType::Number, 10, true};
  de.columns["Joined"] = {SfmcColumnType::Date, 10, true};
  de.columns["Name"] = {SfmcColumnType::Text, 5, true};
  options.data_extensions["DE"] = de;
  FakeSfmc fake(options);
  const std::string t = token(fake);

  auto ok = post(fake, "/hub/v1/dataevents/key:DE/rowset",
                 R"([{"keys":{"ContactKey":"u1"},"values":{"EmailAddress":"a@b.io","Age":30}},)"
                 R"({"keys":{"ContactKey":"u2"},"values":{"Joined":"2026-01-02T03:04:05Z"}}])",
                 t);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(parse(ok).is_array());
  ASSERT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset",
                 R"([{"keys":{"ContactKey":"u1"},"values":{"Age":"31","Name":"Ada"}}])", t)
                .status,
            200);
  EXPECT_EQ(fake.rowCount("DE"), 2u);
  EXPECT_EQ(json::serialize(fake.row("DE", "u1")->values),
            R"({"EmailAddress":"a@b.io","Age":"31","Name":"Ada"})");

  auto bad = post(fake, "/hub/v1/dataevents/key:DE/rowset",
                  R"([{"keys":{"ContactKey":"u3"},"values":{"EmailAddress":"nope","Age":"x"}},)"
                  R"({"keys":{"ContactKey":"u4"},"values":{"Name":"Too long","Color":"red"}},)"
                  R"({"keys":{"Other":"u5"}},)"
                  R"({"keys":{"ContactKey":"u6"},"values":{"Joined":"yesterday"}}])",
                  t);
  ASSERT_EQ(bad.status, 400);
  const auto body = parse(bad).as_object();
  EXPECT_EQ(body.at("errorcode").as_int64(), 10006);
  std::vector<std::string> messages;
  for (const auto& e : body.at("additionalErrors").as_array()) {
    messages.emplace_back(e.at("message").as_string());
  }
  EXPECT_THAT(messages,
              ::testing::ElementsAre(
                  "The value for column [EmailAddress] is not a valid email address: nope",
                  "The value for column [Age] is not a valid number: x",
                  "The value for column [Name] exceeds the maximum length of 5: Too long",
                  "The column [Color] does not exist in the data extension",
                  "Primary key column [ContactKey] is missing a value",
                  "The column [Other] is not a primary key of the data extension",
                  "The value for column [Joined] is not a valid date: yesterday"));
  EXPECT_EQ(fake.rowCount("DE"), 2u);  // nothing of the refused rowset was saved

  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:Unknown/rowset", "[]", t).status, 404);
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", R"({"keys":{}})", t).status, 400);
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", "[", t).status, 400);
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", "[]", t).status, 400);
}

TEST_F(FakeSfmcTest, RowAndPayloadLimits) {
  FakeSfmcOptions options;
  options.max_rows_per_request = 2;
  options.max_payload_bytes = 200;
  FakeSfmc fake(options);
  const std::string t = token(fake);
  const std::string row = R"({"keys":{"ContactKey":"u"}})";
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", "[" + row + "," + row + "]", t).status,
            200);
  auto three = post(fake, "/hub/v1/dataevents/key:DE/rowset",
                    "[" + row + "," + row + "," + row + "]", t);
  EXPECT_EQ(three.status, 400);
  EXPECT_THAT(three.body, HasSubstr("at most 2"));
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", std::string(300, ' '), t).status, 413);
}

TEST_F(FakeSfmcTest, JourneyEntryEvents) {
  FakeSfmcOptions options;
  options.event_definition_keys = {"APIEvent-1"};
  FakeSfmc fake(options);
  const std::string t = token(fake);
  auto ok = post(fake, "/interaction/v1/events",
                 R"({"ContactKey":"u1","EventDefinitionKey":"APIEvent-1","Data":{"a":1}})", t);
  ASSERT_EQ(ok.status, 201);
  const auto events = fake.journeyEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(parse(ok).at("eventInstanceId").as_string(), events[0].event_instance_id);
  EXPECT_EQ(json::serialize(events[0].data), R"({"a":1})");

  for (const char* bad : {R"({"EventDefinitionKey":"APIEvent-1"})",
                          R"({"ContactKey":"u1"})",
                          R"({"ContactKey":"u1","EventDefinitionKey":"APIEvent-2"})",
                          R"({"ContactKey":"u1","EventDefinitionKey":"APIEvent-1","Data":[1]})",
                          R"({"ContactKey":"u1","EventDefinitionKey":"APIEvent-1","Data":{"x":{}}})",
                          "nope"}) {
    auto r = post(fake, "/interaction/v1/events", bad, t);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_TRUE(parse(r).as_object().contains("message")) << bad;
  }
  EXPECT_EQ(fake.journeyEvents().size(), 1u);
}

TEST_F(FakeSfmcTest, ContactDeletes) {
  FakeSfmc fake;
  const std::string t = token(fake);
  auto ok = post(fake, "/contacts/v1/contacts/actions/delete?type=keys",
                 R"({"ContactTypeId":0,"values":["u1","u2"],"DeleteOperationType":"ContactAndAttributes"})",
                 t);
  ASSERT_EQ(ok.status, 200);
  const auto answer = parse(ok).as_object();
  EXPECT_TRUE(answer.at("operationInitiated").as_bool());
  EXPECT_FALSE(answer.at("hasErrors").as_bool());
  const auto operations = fake.deleteOperations();
  ASSERT_EQ(operations.size(), 1u);
  EXPECT_EQ(answer.at("operationID").as_int64(), operations[0].operation_id);
  EXPECT_THAT(operations[0].contact_keys, ::testing::ElementsAre("u1", "u2"));

  for (const auto& [target, body] : std::vector<std::pair<std::string, std::string>>{
           {"/contacts/v1/contacts/actions/delete",
            R"({"values":["u1"],"DeleteOperationType":"ContactAndAttributes"})"},
           {"/contacts/v1/contacts/actions/delete?type=keys",
            R"({"values":["u1"],"DeleteOperationType":"AttributesOnly"})"},
           {"/contacts/v1/contacts/actions/delete?type=keys",
            R"({"values":[],"DeleteOperationType":"ContactAndAttributes"})"},
           {"/contacts/v1/contacts/actions/delete?type=keys", R"({"values":["u1"]})"}}) {
    auto r = post(fake, target, body, t);
    EXPECT_EQ(r.status, 400) << target << " " << body;
    EXPECT_TRUE(parse(r).at("hasErrors").as_bool());
    EXPECT_FALSE(parse(r).at("operationInitiated").as_bool());
  }
  EXPECT_EQ(fake.deleteOperations().size(), 1u);
}

TEST_F(FakeSfmcTest, RateLimitAnswers429WithRetryAfter) {
  FakeSfmcOptions options;
  options.requests_per_second = 2;
  options.retry_after = 3s;
  FakeSfmc fake(options);
  const std::string t = token(fake);
  int ok = 0;
  int limited = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = post(fake, "/interaction/v1/events", R"({"ContactKey":"u","EventDefinitionKey":"k"})",
                  t);
    if (r.status == 429) {
      ++limited;
      EXPECT_EQ(r.headers.get("Retry-After"), "3");
      EXPECT_EQ(r.retry_after, 3s);
    } else {
      EXPECT_EQ(r.status, 201);
      ++ok;
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GE(limited, 1);
  EXPECT_EQ(fake.rateLimitedCount(), static_cast<std::size_t>(limited));
}

TEST_F(FakeSfmcTest, FaultInjectionDelayAndOutage) {
  FakeSfmc fake;
  const std::string t = token(fake);
  fake.failNext(2, 503, "down for a bit", {{"Retry-After", "4"}}, "/interaction/");
  const std::string entry = R"({"ContactKey":"u","EventDefinitionKey":"k"})";
  // Another path is not affected by a prefixed failure.
  EXPECT_EQ(post(fake, "/hub/v1/dataevents/key:DE/rowset", R"([{"keys":{"K":"v"}}])", t).status,
            200);
  auto first = post(fake, "/interaction/v1/events", entry, t);
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(first.body, "down for a bit");
  EXPECT_EQ(first.headers.get("Retry-After"), "4");
  EXPECT_EQ(post(fake, "/interaction/v1/events", entry, t).status, 503);
  EXPECT_EQ(post(fake, "/interaction/v1/events", entry, t).status, 201);

  fake.setDelay(300ms);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(post(fake, "/interaction/v1/events", entry, t).status, 201);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
  fake.setDelay(0ms);

  fake.setDown(true);
  auto down = post(fake, "/interaction/v1/events", entry, t);
  EXPECT_EQ(down.status, 0);
  EXPECT_FALSE(down.transport_error.empty());
  fake.setDown(false);
  EXPECT_EQ(post(fake, "/interaction/v1/events", entry, t).status, 201);
  EXPECT_TRUE(fake.waitForRequests(fake.requestCount(), 1s));
  EXPECT_EQ(fake.journeyEvents().size(), 3u);
}

TEST_F(FakeSfmcTest, UnknownPathsAnswer404InTheRestShape) {
  FakeSfmc fake;
  const std::string t = token(fake);
  auto r = post(fake, "/hub/v1/nothing", "{}", t);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(parse(r).at("message").as_string(), "Not Found");
}

}  // namespace
}  // namespace junction::tests::fakes
