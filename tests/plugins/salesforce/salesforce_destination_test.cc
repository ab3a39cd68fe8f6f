// The salesforce destination against the fake Salesforce over loopback HTTP: upserts one by one
// and by collection, per-record errors, token expiry, the org's request limit, erasure, and that
// no secret leaks into reasons or logs. Also the option table's cross-field rules.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/testing/checked_config.h"
#include "junction/sdk/testing/fake_context.h"
#include "salesforce_destination.h"
#include "tests/fakes/salesforce/fake_salesforce.h"

namespace junction::plugins::salesforce {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using tests::fakes::FakeSalesforce;

constexpr const char* kSecret = "fake-sf-client-secret";

SalesforceConfig configFor(const FakeSalesforce& fake, json::object extra = {}) {
  json::object given{{"login_url", fake.baseUrl()},
                     {"client_id", "fake-sf-client-id"},
                     {"client_secret", kSecret},
                     {"external_id_field", "Junction_Id__c"},
                     {"timeout", "5s"}};
  for (auto& [k, v] : extra) {
    given[k] = v;
  }
  auto config = sdk::testing::bindChecked(salesforceOptions(), given);
  EXPECT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->validate().empty());
  return std::move(*config);
}

sdk::Event event(const std::string& text) {
  auto made = sdk::makeEvent(json::parse(text).as_object(), "web");
  EXPECT_TRUE(made) << made.error().message;
  return std::move(*made);
}

sdk::Event person(const std::string& user_id, const std::string& email,
                  const std::string& last_name = "Doe") {
  json::object traits{{"email", email}};
  if (!last_name.empty()) {
    traits["lastName"] = last_name;
  }
  return event(json::serialize(
      json::object{{"type", "identify"}, {"userId", user_id}, {"traits", traits}}));
}

std::vector<sdk::Event> people(std::size_t n) {
  std::vector<sdk::Event> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(person("u" + std::to_string(i), "p" + std::to_string(i) + "@example.com"));
  }
  return out;
}

std::vector<std::string> apiCalls(const FakeSalesforce& fake) {
  std::vector<std::string> out;
  for (const auto& r : fake.requests()) {
    out.push_back(r.method + " " + r.path);
  }
  return out;
}

void expectNoSecrets(sdk::testing::FakeDestinationContext& ctx,
                     const std::vector<sdk::Outcome>& outcomes, const FakeSalesforce& fake) {
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

TEST(SalesforceDestinationTest, OnePersonIsUpsertedByExternalId) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(std::vector<sdk::Event>{
      event(R"({"type":"identify","userId":"u/1","traits":{"email":" Ada@Example.com ",
                "firstName":"Ada","lastName":"Lovelace","title":"Countess"}})")});
  ASSERT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  EXPECT_EQ(apiCalls(fake),
            (std::vector<std::string>{"POST /services/oauth2/token",
                                      "PATCH /services/data/v62.0/sobjects/Contact/"
                                      "Junction_Id__c/u%2F1"}));
  auto stored = fake.recordByExternalId("Contact", "Junction_Id__c", "u/1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(json::serialize(stored->fields),
            R"({"Junction_Id__c":"u/1","Email":"ada@example.com","FirstName":"Ada",)"
            R"("LastName":"Lovelace","Title":"Countess"})");

  // The token is reused; an update answers 200 and is delivered too.
  ASSERT_TRUE(dest.deliver(std::vector<sdk::Event>{person("u/1", "ada@new.example")})[0]
                  .isDelivered());
  EXPECT_EQ(fake.tokensIssued(), 1u);
  EXPECT_EQ(fake.recordByExternalId("Contact", "Junction_Id__c", "u/1")->fields.at("Email"),
            "ada@new.example");
  EXPECT_EQ(ctx.metrics().counterValue("junction_salesforce_requests_total",
                                       {{"endpoint", "upsert"}, {"status", "200"}}),
            1u);
  expectNoSecrets(ctx, outcomes, fake);
}

TEST(SalesforceDestinationTest, ManyPeopleGoInCollectionsOf200) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(people(450));
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake.records("Contact").size(), 450u);
  std::vector<std::size_t> sizes;
  for (const auto& r : fake.requests()) {
    if (r.path.find("/composite/sobjects/Contact/Junction_Id__c") != std::string::npos) {
      const auto body = json::parse(r.body);
      EXPECT_EQ(body.at("allOrNone"), false);
      EXPECT_EQ(body.at("records").as_array()[0].at("attributes").at("type"), "Contact");
      sizes.push_back(body.at("records").as_array().size());
    }
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{200, 200, 50}));
}

TEST(SalesforceDestinationTest, OnePersonTwiceInABatchIsOneRecordWithTheLaterValues) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(std::vector<sdk::Event>{
      person("a", "a@old.example", "Old"), person("b", "b@example.com"),
      event(R"({"type":"identify","userId":"a","traits":{"email":"a@new.example"}})"),
      event(R"({"type":"track","userId":"a","event":"Clicked"})")});
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  const auto a = fake.recordByExternalId("Contact", "Junction_Id__c", "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->fields.at("Email"), "a@new.example");
  EXPECT_EQ(a->fields.at("LastName"), "Old");
  EXPECT_EQ(fake.records("Contact").size(), 2u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_salesforce_skipped_total", {{"type", "track"}}),
            1u);
}

TEST(SalesforceDestinationTest, PerRecordErrorsFailOnlyTheirEvents) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(std::vector<sdk::Event>{
      person("good", "good@example.com"), person("bad-email", "not-an-email"),
      person("no-last-name", "n@example.com", ""),
      event(R"({"type":"identify","anonymousId":"x","traits":{"email":"x@example.com"}})")});
  EXPECT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_EQ(outcomes[1].reason,
            "Salesforce refused the record: INVALID_EMAIL_ADDRESS: Email: invalid email address: "
            "not-an-email (fields: Email)");
  EXPECT_EQ(outcomes[2].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[2].reason, HasSubstr("REQUIRED_FIELD_MISSING: Required fields are missing: "
                                            "[LastName]"));
  EXPECT_EQ(outcomes[3].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[3].reason, HasSubstr("no external id"));
  EXPECT_EQ(fake.records("Contact").size(), 1u);

  // One person alone: the single upsert's 400 is the reason.
  const auto alone = dest.deliver(std::vector<sdk::Event>{person("solo", "bad")});
  EXPECT_EQ(alone[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_EQ(alone[0].reason, "HTTP 400 from Salesforce: INVALID_EMAIL_ADDRESS: Email: invalid "
                             "email address: bad");
}

TEST(SalesforceDestinationTest, AnExpiredSessionIsRefreshedOnceAndTheRequestSentAgain) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  ASSERT_TRUE(dest.deliver(people(3))[0].isDelivered());
  fake.expireTokens();
  fake.clearRequests();
  const auto outcomes = dest.deliver(people(3));
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(apiCalls(fake),
            (std::vector<std::string>{
                "PATCH /services/data/v62.0/composite/sobjects/Contact/Junction_Id__c",
                "POST /services/oauth2/token",
                "PATCH /services/data/v62.0/composite/sobjects/Contact/Junction_Id__c"}));
  EXPECT_EQ(fake.tokensIssued(), 2u);
  EXPECT_TRUE(ctx.log().contains("Salesforce refused the access token"));

  // A session refused again right after a new token: once only, then the events fail.
  fake.failNext(2, 401, R"([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])",
                {}, "/services/data");
  const auto refused = dest.deliver(people(2));
  EXPECT_EQ(refused[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_EQ(refused[0].reason, "authentication failed: INVALID_SESSION_ID: Session expired or invalid");
  EXPECT_EQ(fake.tokensIssued(), 3u);
}

TEST(SalesforceDestinationTest, RefusedCredentialsFailWithoutLeakingTheSecret) {
  FakeSalesforce::Options options;
  options.client_secret = "another-secret";
  FakeSalesforce fake(options);
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  const auto outcomes = dest.deliver(people(2));
  for (const auto& o : outcomes) {
    EXPECT_EQ(o.kind, sdk::Outcome::Kind::Failed);
    EXPECT_EQ(o.reason, "authentication failed: invalid_client: invalid client credentials");
  }
  EXPECT_TRUE(fake.records("Contact").empty());
  expectNoSecrets(ctx, outcomes, fake);
  // The form body carried the secret percent-encoded; the fake decoded and compared it.
  EXPECT_THAT(fake.requests()[0].body, HasSubstr("client_secret=fake-sf-client-secret"));
}

TEST(SalesforceDestinationTest, TheRequestLimitPausesTheDestinationAndDropsNothing) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake, {{"limit_pause", "2m"}}), ctx);
  fake.setApiRequestLimit(1);
  const auto outcomes = dest.deliver(people(450));
  std::size_t delivered = 0;
  std::size_t retried = 0;
  for (const auto& o : outcomes) {
    delivered += o.isDelivered() ? 1 : 0;
    if (o.kind == sdk::Outcome::Kind::Retry) {
      ++retried;
      EXPECT_EQ(o.retry_after, 120s);
      EXPECT_THAT(o.reason, HasSubstr("REQUEST_LIMIT_EXCEEDED"));
    }
  }
  EXPECT_EQ(delivered, 200u);
  EXPECT_EQ(retried, 250u);
  EXPECT_EQ(ctx.throttles(), (std::vector<std::chrono::milliseconds>{120s}));
  EXPECT_EQ(fake.limitRefusals(), 1u);  // the third collection was not sent
  EXPECT_EQ(ctx.metrics().counterValue("junction_salesforce_limit_pauses_total"), 1u);

  // Once the allocation is back, the retried events are delivered; nothing was lost.
  fake.setApiRequestLimit(0);
  std::vector<sdk::Event> again;
  const auto all = people(450);
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (!outcomes[i].isDelivered()) {
      again.push_back(all[i]);
    }
  }
  for (const auto& o : dest.deliver(again)) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake.records("Contact").size(), 450u);

  // A hint in the answer wins over limit_pause.
  fake.failNext(1, 403, R"([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])",
                {{"Retry-After", "7"}}, "/services/data");
  const auto hinted = dest.deliver(std::vector<sdk::Event>{person("h", "h@example.com")});
  EXPECT_EQ(hinted[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(hinted[0].retry_after, 7s);
}

TEST(SalesforceDestinationTest, OutagesAndOddAnswersAreRetried) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  fake.failNext(1, 503, "busy", {}, "/services/data");
  EXPECT_EQ(dest.deliver(people(2))[0].kind, sdk::Outcome::Kind::Retry);
  fake.failNext(1, 200, "[]", {}, "/services/data");
  const auto short_answer = dest.deliver(people(2));
  EXPECT_EQ(short_answer[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(short_answer[1].reason, HasSubstr("not one result per record"));
  fake.failNext(1, 200,
                R"([{"success":true,"id":"003","errors":[]},{"success":false,"errors":[
                    {"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]}])",
                {}, "/services/data");
  const auto locked = dest.deliver(people(2));
  EXPECT_TRUE(locked[0].isDelivered());
  EXPECT_EQ(locked[1].kind, sdk::Outcome::Kind::Retry);
  fake.setDown(true);
  EXPECT_EQ(dest.deliver(people(2))[0].kind, sdk::Outcome::Kind::Retry);
  fake.setDown(false);
  EXPECT_TRUE(dest.deliver(people(2))[0].isDelivered());
}

TEST(SalesforceDestinationTest, EraseDeletesTheRecord) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(configFor(fake), ctx);
  ASSERT_TRUE(dest.deliver(std::vector<sdk::Event>{person("gone", "g@example.com")})[0]
                  .isDelivered());
  const std::string id = fake.recordByExternalId("Contact", "Junction_Id__c", "gone")->id;
  EXPECT_TRUE(dest.erase({.user_id = "gone"}).isDelivered());
  EXPECT_FALSE(fake.recordByExternalId("Contact", "Junction_Id__c", "gone"));
  EXPECT_EQ(fake.deletedIds(), std::vector<std::string>{id});
  EXPECT_EQ(fake.requests().back().method, "DELETE");
  // Nobody to delete: done (a GDPR delete of someone the CRM never had).
  const auto unknown = dest.erase({.user_id = "never-seen"});
  EXPECT_TRUE(unknown.isDelivered());
  EXPECT_THAT(unknown.reason, HasSubstr("no Contact"));
  EXPECT_EQ(dest.erase({.email = "x@example.com"}).kind, sdk::Outcome::Kind::Failed);
  fake.failNext(1, 503, "", {}, "/services/data");
  EXPECT_EQ(dest.erase({.user_id = "gone"}).kind, sdk::Outcome::Kind::Retry);
}

TEST(SalesforceDestinationTest, LeadsGetTheirCompany) {
  FakeSalesforce fake;
  sdk::testing::FakeDestinationContext ctx;
  SalesforceDestination dest(
      configFor(fake, {{"object", "Lead"}, {"mapping", json::object{{"Phone", nullptr},
                                                                    {"LeadSource", json::object{{"value", "Junction"}}}}}}),
      ctx);
  const auto outcomes = dest.deliver(std::vector<sdk::Event>{event(
      R"({"type":"identify","userId":"l1","traits":{"lastName":"Hopper","phone":"1",
          "company":{"name":"Navy"}}})")});
  ASSERT_TRUE(outcomes[0].isDelivered()) << outcomes[0].reason;
  const auto lead = fake.recordByExternalId("Lead", "Junction_Id__c", "l1");
  ASSERT_TRUE(lead);
  EXPECT_EQ(lead->fields.at("Company"), "Navy");
  EXPECT_EQ(lead->fields.at("LeadSource"), "Junction");
  EXPECT_FALSE(lead->fields.contains("Phone"));
}

TEST(SalesforceConfigTest, CrossFieldRules) {
  const auto errors = [](json::object given) {
    given.emplace("login_url", "https://example.my.salesforce.com");
    given.emplace("client_id", "id");
    given.emplace("client_secret", "secret");
    given.emplace("external_id_field", "Junction_Id__c");
    auto config = sdk::testing::bindChecked(salesforceOptions(), given);
    EXPECT_TRUE(config) << config.error().message;
    std::vector<std::string> keys;
    for (const auto& e : config->validate()) {
      keys.push_back(e.key);
    }
    return keys;
  };
  EXPECT_TRUE(errors({}).empty());
  EXPECT_EQ(errors({{"api_version", "45.0"}}), std::vector<std::string>{"api_version"});
  EXPECT_EQ(errors({{"api_version", "v62"}}), std::vector<std::string>{"api_version"});
  EXPECT_EQ(errors({{"login_url", "ftp://x"}}), std::vector<std::string>{"login_url"});
  EXPECT_EQ(errors({{"external_id_field", "Bad Field"}}),
            std::vector<std::string>{"external_id_field"});
  EXPECT_EQ(errors({{"mapping", json::object{{"Junction_Id__c", "traits.x"}}}}),
            std::vector<std::string>{"mapping.Junction_Id__c"});
  EXPECT_EQ(errors({{"mapping", json::object{{"Address.City", "traits.city"}}}}),
            std::vector<std::string>{"mapping.Address.City"});
  EXPECT_FALSE(sdk::testing::bindChecked(salesforceOptions(), {{"object", "Account"}}));
  EXPECT_FALSE(sdk::testing::bindChecked(salesforceOptions(), {{"records_per_request", 201}}));
  for (const auto& spec : salesforceOptions().specs()) {
    EXPECT_EQ(spec.secret, spec.key == "client_secret") << spec.key;
  }
}

}  // namespace
}  // namespace junction::plugins::salesforce
