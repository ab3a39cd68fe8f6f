// The fake Salesforce's contract, checked over loopback HTTP with the SDK's client: what the
// plugins' tests rely on must be what Salesforce's REST API documentation says.

#include "tests/fakes/salesforce/fake_salesforce.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/http_client.h"
#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::tests::fakes {
namespace {

namespace json = boost::json;

class FakeSalesforceTest : public ::testing::Test {
 protected:
  explicit FakeSalesforceTest(FakeSalesforce::Options options = {}) : fake_(std::move(options)) {}

  sdk::HttpClientResponse tokenRequest(std::string body,
                                       std::string type = "application/x-www-form-urlencoded") {
    sdk::HttpClientRequest r{.method = "POST", .url = fake_.baseUrl() + "/services/oauth2/token",
                             .body = std::move(body)};
    r.headers.set("Content-Type", type);
    return http_.send(r);
  }

  std::string token() {
    auto response = tokenRequest(
        "grant_type=client_credentials&client_id=fake-sf-client-id&client_secret=fake-sf-client-"
        "secret");
    EXPECT_EQ(response.status, 200) << response.body;
    return sdk::stringAt(json::parse(response.body), "access_token").value_or("");
  }

  sdk::HttpClientResponse call(std::string method, std::string path, std::string body = {},
                               std::string access_token = "",
                               std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (access_token.empty()) {
      access_token = token_.empty() ? (token_ = token()) : token_;
    }
    sdk::HttpClientRequest r{.method = std::move(method), .url = fake_.baseUrl() + path,
                             .body = std::move(body)};
    r.headers.set("Authorization", "Bearer " + access_token);
    r.headers.set("Content-Type", "application/json");
    for (const auto& [k, v] : headers) {
      r.headers.set(k, v);
    }
    return http_.send(r);
  }

  sdk::HttpClientResponse soql(const std::string& q,
                               std::vector<std::pair<std::string, std::string>> headers = {}) {
    return call("GET", "/services/data/v62.0/query?q=" + sdk::percentEncode(q), "", "",
                std::move(headers));
  }

  static std::string errorCode(const sdk::HttpClientResponse& r) {
    auto v = json::parse(r.body);
    return v.is_array() && !v.as_array().empty()
               ? sdk::stringAt(v.as_array()[0], "errorCode").value_or("")
               : "";
  }

  FakeSalesforce fake_;
  sdk::HttpClient http_;
  std::string token_;
};

TEST_F(FakeSalesforceTest, TokenEndpointFollowsTheClientCredentialsFlow) {
  auto ok = tokenRequest(
      "grant_type=client_credentials&client_id=fake-sf-client-id&client_secret=fake-sf-client-"
      "secret");
  ASSERT_EQ(ok.status, 200);
  const auto body = json::parse(ok.body);
  EXPECT_EQ(sdk::stringAt(body, "instance_url"), fake_.baseUrl());
  EXPECT_EQ(sdk::stringAt(body, "token_type"), "Bearer");
  EXPECT_TRUE(sdk::stringAt(body, "issued_at"));
  EXPECT_TRUE(sdk::stringAt(body, "id"));
  EXPECT_FALSE(body.as_object().contains("expires_in"));

  auto bad_secret = tokenRequest(
      "grant_type=client_credentials&client_id=fake-sf-client-id&client_secret=nope");
  EXPECT_EQ(bad_secret.status, 400);
  EXPECT_EQ(sdk::stringAt(json::parse(bad_secret.body), "error"), "invalid_client");
  auto bad_id = tokenRequest("grant_type=client_credentials&client_id=x&client_secret=y");
  EXPECT_EQ(sdk::stringAt(json::parse(bad_id.body), "error"), "invalid_client_id");
  auto grant = tokenRequest("grant_type=password&client_id=fake-sf-client-id");
  EXPECT_EQ(sdk::stringAt(json::parse(grant.body), "error"), "unsupported_grant_type");
  auto as_json = tokenRequest(R"({"grant_type":"client_credentials"})", "application/json");
  EXPECT_EQ(as_json.status, 400);
  EXPECT_EQ(fake_.tokensIssued(), 1u);
}

TEST_F(FakeSalesforceTest, ApiCallsNeedALiveToken) {
  auto none = call("GET", "/services/data/v62.0/query?q=SELECT+Id+FROM+Contact", "", "bogus");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(errorCode(none), "INVALID_SESSION_ID");
  EXPECT_EQ(soql("SELECT Id FROM Contact").status, 200);
  fake_.expireTokens();
  auto expired = soql("SELECT Id FROM Contact");
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(json::parse(expired.body).as_array()[0].at("message"), "Session expired or invalid");
}

TEST_F(FakeSalesforceTest, UpsertByExternalIdCreatesThenUpdates) {
  const std::string path = "/services/data/v62.0/sobjects/Contact/Junction_Id__c/u1";
  auto created = call("PATCH", path, R"({"LastName":"Lovelace","Email":"ada@example.com"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto body = json::parse(created.body);
  EXPECT_EQ(body.at("created"), true);
  EXPECT_EQ(body.at("success"), true);
  EXPECT_TRUE(body.at("errors").as_array().empty());
  const std::string id(body.at("id").as_string());
  EXPECT_TRUE(id.starts_with("003"));
  EXPECT_EQ(id.size(), 18u);

  auto updated = call("PATCH", path, R"({"FirstName":"Ada"})");
  ASSERT_EQ(updated.status, 200);
  EXPECT_EQ(json::parse(updated.body).at("created"), false);
  EXPECT_EQ(json::parse(updated.body).at("id"), json::value(id));
  auto old_version = call("PATCH", "/services/data/v45.0/sobjects/Contact/Junction_Id__c/u1",
                          R"({"Title":"Countess"})");
  EXPECT_EQ(old_version.status, 204);
  EXPECT_TRUE(old_version.body.empty());

  auto stored = fake_.recordByExternalId("Contact", "Junction_Id__c", "u1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->fields.at("FirstName"), "Ada");
  EXPECT_EQ(stored->fields.at("Title"), "Countess");
  EXPECT_EQ(stored->fields.at("Email"), "ada@example.com");
}

TEST_F(FakeSalesforceTest, UpsertRefusesBadFieldsWithTheirNames) {
  const std::string path = "/services/data/v62.0/sobjects/Contact/Junction_Id__c/u2";
  auto unknown = call("PATCH", path, R"({"LastName":"X","Shoe_Size__c":44})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(errorCode(unknown), "INVALID_FIELD");
  EXPECT_EQ(json::parse(unknown.body).as_array()[0].at("fields"), json::array{"Shoe_Size__c"});
  auto email = call("PATCH", path, R"({"LastName":"X","Email":"not-an-email"})");
  EXPECT_EQ(errorCode(email), "INVALID_EMAIL_ADDRESS");
  auto missing = call("PATCH", path, R"({"FirstName":"X"})");
  EXPECT_EQ(errorCode(missing), "REQUIRED_FIELD_MISSING");
  auto lead = call("PATCH", "/services/data/v62.0/sobjects/Lead/Junction_Id__c/u2",
                   R"({"LastName":"X"})");
  EXPECT_EQ(json::parse(lead.body).as_array()[0].at("message"),
            "Required fields are missing: [Company]");
  auto too_long = call("PATCH", path, R"({"LastName":")" + std::string(81, 'x') + "\"}");
  EXPECT_EQ(errorCode(too_long), "STRING_TOO_LONG");
  auto not_external = call("PATCH", "/services/data/v62.0/sobjects/Contact/Email/a@b.c",
                           R"({"LastName":"X"})");
  EXPECT_EQ(not_external.status, 404);
  EXPECT_EQ(errorCode(not_external), "NOT_FOUND");
  EXPECT_TRUE(fake_.records("Contact").empty());
}

TEST_F(FakeSalesforceTest, CollectionsUpsertAnswersPerRecord) {
  const std::string path = "/services/data/v62.0/composite/sobjects/Contact/Junction_Id__c";
  fake_.putRecord("Contact", {{"LastName", "Old"}, {"Junction_Id__c", "b"}});
  auto response = call("PATCH", path, R"({"allOrNone":false,"records":[
      {"attributes":{"type":"Contact"},"Junction_Id__c":"a","LastName":"A"},
      {"attributes":{"type":"Contact"},"Junction_Id__c":"b","LastName":"B"},
      {"attributes":{"type":"Contact"},"Junction_Id__c":"c","LastName":"C","Email":"bad"},
      {"Junction_Id__c":"d","LastName":"D"}]})");
  ASSERT_EQ(response.status, 200) << response.body;
  const auto results = json::parse(response.body).as_array();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].at("created"), true);
  EXPECT_EQ(results[1].at("created"), false);
  EXPECT_EQ(results[2].at("success"), false);
  EXPECT_EQ(results[2].at("errors").as_array()[0].at("statusCode"), "INVALID_EMAIL_ADDRESS");
  EXPECT_EQ(results[3].at("errors").as_array()[0].at("statusCode"), "INVALID_TYPE");
  EXPECT_EQ(fake_.records("Contact").size(), 2u);

  auto all_or_none = call("PATCH", path, R"({"allOrNone":true,"records":[
      {"attributes":{"type":"Contact"},"Junction_Id__c":"e","LastName":"E"},
      {"attributes":{"type":"Contact"},"Junction_Id__c":"f","Email":"f@example.com"}]})");
  const auto rolled = json::parse(all_or_none.body).as_array();
  EXPECT_EQ(rolled[0].at("errors").as_array()[0].at("statusCode"),
            "ALL_OR_NONE_OPERATION_ROLLED_BACK");
  EXPECT_EQ(rolled[1].at("errors").as_array()[0].at("statusCode"), "REQUIRED_FIELD_MISSING");
  EXPECT_EQ(fake_.records("Contact").size(), 2u);

  json::array many;
  for (int i = 0; i < 201; ++i) {
    many.push_back(json::object{{"attributes", json::object{{"type", "Contact"}}},
                                {"Junction_Id__c", "m" + std::to_string(i)},
                                {"LastName", "M"}});
  }
  auto too_many =
      call("PATCH", path, json::serialize(json::object{{"allOrNone", false}, {"records", many}}));
  EXPECT_EQ(too_many.status, 400);
  EXPECT_EQ(errorCode(too_many), "EXCEEDED_ID_LIMIT");
  auto old_version = call("PATCH", "/services/data/v45.0/composite/sobjects/Contact/Junction_Id__c",
                          R"({"records":[]})");
  EXPECT_EQ(old_version.status, 404);
}

TEST_F(FakeSalesforceTest, DeleteByExternalIdOrId) {
  const std::string id = fake_.putRecord("Contact", {{"LastName", "X"}, {"Junction_Id__c", "u"}});
  const std::string other = fake_.putRecord("Contact", {{"LastName", "Y"}});
  EXPECT_EQ(call("DELETE", "/services/data/v62.0/sobjects/Contact/Junction_Id__c/u").status, 204);
  auto again = call("DELETE", "/services/data/v62.0/sobjects/Contact/Junction_Id__c/u");
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(errorCode(again), "NOT_FOUND");
  EXPECT_EQ(call("DELETE", "/services/data/v62.0/sobjects/Contact/" + other).status, 204);
  EXPECT_EQ(errorCode(call("DELETE", "/services/data/v62.0/sobjects/Contact/" + id)),
            "ENTITY_IS_DELETED");
  EXPECT_EQ(fake_.deletedIds(), (std::vector<std::string>{id, other}));
  EXPECT_TRUE(fake_.records("Contact").empty());
}

TEST_F(FakeSalesforceTest, RequestLimitAnswers403) {
  fake_.setApiRequestLimit(2);
  EXPECT_EQ(soql("SELECT Id FROM Contact").headers.get("Sforce-Limit-Info"), "api-usage=1/2");
  EXPECT_EQ(soql("SELECT Id FROM Contact").status, 200);
  auto refused = soql("SELECT Id FROM Contact");
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(errorCode(refused), "REQUEST_LIMIT_EXCEEDED");
  EXPECT_EQ(fake_.limitRefusals(), 1u);
  fake_.setApiRequestLimit(0);
  EXPECT_EQ(soql("SELECT Id FROM Contact").status, 200);
}

TEST_F(FakeSalesforceTest, QueryPagesThroughASnapshotWithNextRecordsUrl) {
  fake_.setNow(1'700'000'000'000);
  for (int i = 0; i < 450; ++i) {
    fake_.putRecord("Contact", {{"LastName", "L" + std::to_string(i)},
                                {"Email", "p" + std::to_string(i) + "@example.com"}});
  }
  fake_.setNow(1'700'000'005'000);
  const std::string late = fake_.putRecord("Contact", {{"LastName", "Late"}});
  auto first = soql("SELECT Id, Email, SystemModstamp FROM Contact WHERE SystemModstamp >= "
                    "2023-11-14T22:13:20Z ORDER BY SystemModstamp, Id",
                    {{"Sforce-Query-Options", "batchSize=200"}});
  ASSERT_EQ(first.status, 200) << first.body;
  auto page = json::parse(first.body);
  EXPECT_EQ(page.at("totalSize"), 451);
  EXPECT_EQ(page.at("done"), false);
  EXPECT_EQ(page.at("records").as_array().size(), 200u);
  const auto& record = page.at("records").as_array()[0];
  EXPECT_EQ(record.at("attributes").at("type"), "Contact");
  EXPECT_EQ(record.at("SystemModstamp"), "2023-11-14T22:13:20.000+0000");
  EXPECT_EQ(record.at("Email"), "p0@example.com");
  // A change after the query is not in its pages (a snapshot).
  fake_.updateRecord("Contact", late, {{"LastName", "Later"}});
  std::vector<std::string> ids;
  std::size_t pages = 1;
  while (page.as_object().contains("nextRecordsUrl")) {
    const std::string next(page.at("nextRecordsUrl").as_string());
    EXPECT_TRUE(next.starts_with("/services/data/v62.0/query/01g")) << next;
    auto more = call("GET", next);
    ASSERT_EQ(more.status, 200) << more.body;
    page = json::parse(more.body);
    ++pages;
    for (const auto& r : page.at("records").as_array()) {
      ids.emplace_back(r.at("Id").as_string());
    }
  }
  EXPECT_EQ(pages, 3u);
  EXPECT_EQ(ids.size(), 251u);
  EXPECT_EQ(ids.back(), late);
  EXPECT_EQ(page.at("done"), true);

  auto since = soql("SELECT Id, LastName FROM Contact WHERE SystemModstamp > 2023-11-14T22:13:20Z "
                    "OR (SystemModstamp = 2023-11-14T22:13:20Z AND Id > '" +
                    ids.front() + "') ORDER BY SystemModstamp, Id");
  auto since_page = json::parse(since.body);
  EXPECT_EQ(since_page.at("totalSize"), 450 - 201 + 1);
  EXPECT_EQ(since_page.at("records").as_array().back().at("LastName"), "Later");
  EXPECT_EQ(errorCode(soql("SELECT Shoe__c FROM Contact")), "INVALID_FIELD");
  EXPECT_EQ(errorCode(soql("SELECT Id FROM Contact WHERE SystemModstamp > '2023-01-01'")),
            "INVALID_FIELD");
  EXPECT_EQ(errorCode(soql("SELECT Id FROM Contact WHERE SystemModstamp > 2023-01-01T00:00:00.000Z")),
            "INVALID_QUERY_FILTER_OPERATOR");
  EXPECT_EQ(soql("SELECT Id FROM Contact WHERE SystemModstamp > 2023-01-01T01:00:00+01:00").status,
            200);
  EXPECT_EQ(errorCode(soql("SELECT Id Contact")), "MALFORMED_QUERY");
  EXPECT_EQ(errorCode(call("GET", "/services/data/v62.0/query/01gDn0000000099-200")),
            "INVALID_QUERY_LOCATOR");
}

TEST_F(FakeSalesforceTest, ConfiguredBatchSizeAndLimit) {
  for (int i = 0; i < 5; ++i) {
    fake_.putRecord("Lead", {{"LastName", "L"}, {"Company", "C" + std::to_string(i)}});
  }
  auto limited = soql("SELECT Company FROM Lead ORDER BY Company DESC LIMIT 2");
  const auto page = json::parse(limited.body);
  EXPECT_EQ(page.at("totalSize"), 2);
  EXPECT_EQ(page.at("records").as_array()[0].at("Company"), "C4");
}

}  // namespace
}  // namespace junction::tests::fakes
