// The hubspot source: its option table, the search it sends, contacts -> identify events, and
// runs against the fake HubSpot over loopback HTTP (paged, changing data, the 10,000 cap, 429s,
// failures) with the SDK's manual clock and scheduler.

#include "hubspot_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>

#include "junction/sdk/testing/fake_context.h"
#include "tests/fakes/hubspot/fake_hubspot.h"

namespace junction::plugins::hubspot {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using tests::fakes::FakeHubspot;

constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

// A config as the daemon makes it: each key normalized against the table, defaults filled.
HubspotSourceConfig configFor(const json::object& yaml) {
  json::object checked;
  for (const auto& spec : hubspotSourceOptions().specs()) {
    if (const auto* v = yaml.if_contains(spec.key)) {
      auto normalized = sdk::normalizeOption(spec, *v);
      EXPECT_TRUE(normalized) << spec.key << ": " << normalized.error().message;
      checked[spec.key] = normalized ? *normalized : json::value();
    } else if (spec.default_value) {
      checked[spec.key] = *sdk::normalizeOption(spec, *spec.default_value);
    }
  }
  return hubspotSourceOptions().bind(checked);
}

// userId -> the lastmodifieddate (ms) of each identify emitted for it, in order.
std::map<std::string, std::vector<std::int64_t>> emittedVersions(
    const sdk::testing::FakeSourceContext& ctx) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& e : ctx.events()) {
    out[e.userId()].push_back(e.header().timestamp_ms);
  }
  return out;
}

std::optional<std::string> checkpoint(sdk::testing::FakeSourceContext& ctx) {
  auto values = ctx.checkpoints().values();
  auto it = values.find("cursor");
  return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
}

TEST(HubspotSourceConfigTest, OptionTableDefaultsAndValidation) {
  const auto specs = hubspotSourceOptions().specs();
  EXPECT_TRUE(sdk::checkOptionTable(specs).empty());
  auto config = configFor(json::object{{"access_token", "pat-1"}});
  EXPECT_EQ(config.base_url, "https://api.hubapi.com");
  EXPECT_EQ(config.every, 15min);
  EXPECT_EQ(config.user_id, "id");
  EXPECT_EQ(config.page_size, 100);
  EXPECT_THAT(config.properties, ::testing::Contains("email"));
  EXPECT_TRUE(config.validate().empty());
  const auto token = std::find_if(specs.begin(), specs.end(),
                                  [](const auto& s) { return s.key == "access_token"; });
  ASSERT_NE(token, specs.end());
  EXPECT_TRUE(token->secret);
  EXPECT_TRUE(token->required);
  const auto every = std::find_if(specs.begin(), specs.end(), [](const auto& s) { return s.key == "every"; });
  ASSERT_NE(every, specs.end());
  EXPECT_FALSE(sdk::normalizeOption(*every, "10ms").ok());
  const auto page = std::find_if(specs.begin(), specs.end(), [](const auto& s) { return s.key == "page_size"; });
  EXPECT_FALSE(sdk::normalizeOption(*page, 201).ok());

  config.base_url = "ftp://x";
  config.properties = {"first name"};
  const auto errors = config.validate();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].key, "base_url");
  EXPECT_EQ(errors[1].key, "properties");
}

TEST(HubspotSourceRequestsTest, TheSearchBodyFiltersSortsAndPages) {
  EXPECT_EQ(buildSearchBody(SearchCursor{kT0}, {"email", "firstname"}, 100),
            R"({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE",)"
            R"("value":"1767225600000"}]}],"sorts":[{"propertyName":"lastmodifieddate",)"
            R"("direction":"ASCENDING"}],"properties":["email","firstname"],"limit":100})");
  EXPECT_THAT(buildSearchBody(SearchCursor{kT0, 300}, {}, 50), HasSubstr(R"("limit":50,"after":"300")"));
  // Past the cap, one millisecond by id.
  SearchCursor by_id{kT0};
  by_id.by_id_after = 1234;
  EXPECT_EQ(buildSearchBody(by_id, {"email"}, 100),
            R"({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"EQ",)"
            R"("value":"1767225600000"},{"propertyName":"hs_object_id","operator":"GT",)"
            R"("value":"1234"}]}],"sorts":[{"propertyName":"hs_object_id","direction":"ASCENDING"}],)"
            R"("properties":["email"],"limit":100})");
  SearchCursor cursor{kT0, 17, {"1001", "1002"}, 99};
  auto parsed = SearchCursor::parse(cursor.toString());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->since_ms, kT0);
  EXPECT_EQ(parsed->after, 17u);
  EXPECT_THAT(parsed->seen, ElementsAre("1001", "1002"));
  EXPECT_EQ(parsed->by_id_after, 99u);
  EXPECT_FALSE(SearchCursor::parse("17"));
  EXPECT_FALSE(SearchCursor::parse(R"({"since":"x"})"));
}

TEST(HubspotSourceRequestsTest, AContactBecomesAnIdentifyWithTraitsAndItsHubspotId) {
  const auto contact = json::parse(R"({"id":"1001","properties":{
      "email":"ada@x.test","firstname":"Ada","lastname":"Lovelace","city":"London",
      "hs_object_id":"1001","lastmodifieddate":"2026-01-01T00:00:05.250Z",
      "createdate":"2025-12-01T00:00:00.000Z","lifecyclestage":"lead","phone":null},
      "createdAt":"2025-12-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:05.250Z","archived":false})")
                           .as_object();
  std::string why;
  auto event = contactEvent(contact, "id", why);
  ASSERT_TRUE(event) << why;
  EXPECT_EQ(*event, json::parse(R"({"type":"identify","userId":"1001",
      "messageId":"hubspot-contact-1001-1767225605250","timestamp":"2026-01-01T00:00:05.250Z",
      "traits":{"createdAt":"2025-12-01T00:00:00.000Z","email":"ada@x.test","firstName":"Ada",
        "lastName":"Lovelace","address":{"city":"London"},"lifecyclestage":"lead",
        "hubspot_id":"1001"},
      "context":{"externalIds":[{"id":"1001","type":"hubspot_id","collection":"users",
        "encoding":"none"}],"integration":{"name":"hubspot"}}})"));

  auto by_email = contactEvent(contact, "email", why);
  ASSERT_TRUE(by_email);
  EXPECT_EQ(by_email->at("userId"), "ada@x.test");
  auto no_email = contact;
  no_email["properties"].as_object()["email"] = nullptr;
  EXPECT_FALSE(contactEvent(no_email, "email", why));
  EXPECT_EQ(why, "no email");
}

class HubspotSourceTest : public ::testing::Test {
 protected:
  std::unique_ptr<HubspotSource> makeSource(json::object extra = {}) {
    json::object yaml{{"access_token", fake.accessToken()}, {"base_url", fake.baseUrl()},
                      {"every", "1m"}};
    for (auto& [k, v] : extra) {
      yaml[k] = v;
    }
    return std::make_unique<HubspotSource>(configFor(yaml), ctx);
  }
  void runDue() { ctx.scheduler().runDue(); }
  void advance(std::chrono::milliseconds d) {
    ctx.scheduler().advanceAndRun(ctx.manualClock(), d);
  }
  // Every contact's current version was emitted at least once.
  void expectEveryCurrentVersionEmitted() {
    const auto versions = emittedVersions(ctx);
    for (const auto& c : fake.contacts()) {
      auto it = versions.find(c.id);
      ASSERT_NE(it, versions.end()) << "contact " << c.id << " never emitted";
      EXPECT_THAT(it->second, ::testing::Contains(c.last_modified_ms)) << "contact " << c.id;
    }
  }

  FakeHubspot fake;
  sdk::testing::FakeSourceContext ctx{"crm"};
};

TEST_F(HubspotSourceTest, AFirstFullSyncThenIncrementalOnes) {
  fake.seedContacts(250, kT0, 1000);
  auto source = makeSource();
  ASSERT_TRUE(source->start().ok());
  runDue();
  ASSERT_EQ(ctx.events().size(), 250u);
  EXPECT_EQ(ctx.events().front().userId(), fake.contact("contact0@example.com")->id);
  EXPECT_EQ(ctx.events().back().header().timestamp_ms, kT0 + 249'000);
  EXPECT_EQ(checkpoint(ctx), std::to_string(kT0 + 249'000));
  EXPECT_EQ(fake.searchCount(), 3u);
  const auto requests = fake.requests();
  EXPECT_EQ(requests[0].headers.get("Authorization"), "Bearer " + fake.accessToken());
  EXPECT_THAT(requests[0].body, HasSubstr(R"("operator":"GTE","value":"0")"));
  // Each page is a search from the last time seen (the window moves, `after` stays small).
  EXPECT_THAT(requests[1].body, HasSubstr("\"value\":\"" + std::to_string(kT0 + 99'000) + "\""));
  EXPECT_THAT(requests[1].body, ::testing::Not(HasSubstr("after")));  // the contact at 99 s: by id
  EXPECT_EQ(source->sync().status().runs_succeeded, 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_records_total"), 250u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_source_requests_total", {{"status", "200"}}),
            3u);
  const auto all = ctx.events();
  const auto& first = all.front().body();
  EXPECT_EQ(first.at("traits").at("email"), "contact0@example.com");
  EXPECT_EQ(first.at("traits").at("firstName"), "First0");

  // Changes: two contacts edited, one new. The next run reads those (and the contact at the
  // checkpoint's millisecond again: the checkpoint is inclusive).
  fake.putContact("contact7@example.com", json::object{{"lastname", "Changed"}}, kT0 + 500'000);
  fake.putContact("contact8@example.com", json::object{{"phone", "+1"}}, kT0 + 501'000);
  fake.putContact("new@example.com", json::object{{"firstname", "New"}}, kT0 + 502'000);
  const auto before = ctx.events().size();
  advance(1min);
  const auto events = ctx.events();
  ASSERT_EQ(events.size(), before + 4);
  EXPECT_EQ(events[before].header().timestamp_ms, kT0 + 249'000);
  EXPECT_EQ(events[before + 1].body().at("traits").at("lastName"), "Changed");
  EXPECT_EQ(events[before + 3].body().at("traits").at("email"), "new@example.com");
  EXPECT_EQ(checkpoint(ctx), std::to_string(kT0 + 502'000));
  expectEveryCurrentVersionEmitted();

  // Nothing changed: one search, the one contact at the checkpoint again.
  advance(1min);
  EXPECT_EQ(ctx.events().size(), before + 5);
}

TEST_F(HubspotSourceTest, TheCheckpointIsNeverAheadOfDurableEventsAndChangesMidRunAreNotLost) {
  fake.seedContacts(300, kT0, 1000);
  auto source = makeSource();
  ctx.holdCallbacks(true);
  ASSERT_TRUE(source->start().ok());
  runDue();
  ASSERT_EQ(ctx.emitCount(), 1u);
  EXPECT_EQ(checkpoint(ctx), std::nullopt);  // page 1 not yet durable
  // While the run is in flight, contacts already read and not yet read change.
  fake.putContact("contact5@example.com", json::object{{"lastname", "A"}}, kT0 + 900'000);
  fake.putContact("contact150@example.com", json::object{{"lastname", "B"}}, kT0 + 901'000);
  fake.putContact("contact250@example.com", json::object{{"lastname", "C"}}, kT0 + 902'000);
  for (int i = 0; i < 10 && ctx.releaseCallbacks() > 0; ++i) {
    runDue();
    const auto stored = checkpoint(ctx);
    ASSERT_TRUE(stored);
    // Every event at or before the stored checkpoint was made durable.
    std::int64_t durable_max = 0;
    for (const auto& call : ctx.emitCalls()) {
      for (const auto& e : call.events) {
        durable_max = std::max(durable_max, e.header().timestamp_ms);
      }
    }
    EXPECT_LE(std::stoll(*stored), durable_max);
  }
  ctx.holdCallbacks(false);
  ctx.releaseCallbacks();
  runDue();
  EXPECT_FALSE(source->sync().status().running);
  EXPECT_EQ(checkpoint(ctx), std::to_string(kT0 + 902'000));
  expectEveryCurrentVersionEmitted();
}

TEST_F(HubspotSourceTest, MoreContactsThanOneSearchCanPageThroughAreAllRead) {
  fake.seedContacts(25'000, kT0, 10);
  auto source = makeSource(json::object{{"page_size", 200}});
  ASSERT_TRUE(source->start().ok());
  runDue();
  EXPECT_EQ(source->sync().status().last_error, "");
  EXPECT_EQ(ctx.events().size(), 25'000u);
  EXPECT_EQ(emittedVersions(ctx).size(), 25'000u);
  for (const auto& r : fake.requests()) {
    const auto body = json::parse(r.body).as_object();
    if (const auto* after = body.if_contains("after")) {
      EXPECT_LT(std::stoul(std::string(after->as_string())), 200u) << "a search paged deep";
    }
  }
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_source_requests_total", {{"status", "400"}}),
            0u);
}

TEST_F(HubspotSourceTest, ContactsModifiedInOneMillisecondArePagedWithAfter) {
  fake.seedContacts(250, kT0, 0);  // all in the same millisecond
  auto source = makeSource();
  ASSERT_TRUE(source->start().ok());
  runDue();
  EXPECT_EQ(emittedVersions(ctx).size(), 250u);
  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_THAT(requests[1].body, HasSubstr(R"("after":"100")"));
  EXPECT_THAT(requests[2].body, HasSubstr(R"("after":"200")"));
}

TEST(HubspotSourceCapTest, MoreThanTheCapInOneMillisecondIsReadById) {
  FakeHubspot fake(FakeHubspot::Options{.search_result_cap = 150});
  fake.seedContacts(250, kT0, 0);
  fake.seedContacts(5, kT0 + 1, 1, 1000);
  sdk::testing::FakeSourceContext ctx("crm");
  auto config =
      configFor(json::object{{"access_token", fake.accessToken()}, {"base_url", fake.baseUrl()}});
  config.search_result_cap = 150;
  HubspotSource source(config, ctx);
  ASSERT_TRUE(source.start().ok());
  ctx.scheduler().runDue();
  EXPECT_EQ(source.sync().status().last_error, "");
  // 150 by offset, then that millisecond again by id (duplicates, no gap), then the 5 after it.
  EXPECT_EQ(emittedVersions(ctx).size(), 255u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_source_overflows_total"), 1u);
  EXPECT_TRUE(ctx.log().contains(sdk::LogLevel::Warn, "more than 10,000"));
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_source_requests_total", {{"status", "400"}}),
            0u);
  EXPECT_EQ(checkpoint(ctx), std::to_string(kT0 + 1 + 4));
}

TEST_F(HubspotSourceTest, RateLimitsWaitAsHubspotAsks) {
  fake.seedContacts(150, kT0, 1000);
  const std::string secondly =
      R"({"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"SECONDLY"})";
  fake.failNext(1, 429, secondly, {{"Retry-After", "3"}}, "/crm/v3/objects/contacts/search");
  auto source = makeSource();
  ASSERT_TRUE(source->start().ok());
  runDue();
  EXPECT_EQ(ctx.emitCount(), 0u);
  EXPECT_EQ(ctx.scheduler().nextDueIn(), 3000ms);  // Retry-After first
  fake.failNext(1, 429, secondly, {}, "/crm/v3/objects/contacts/search");
  advance(3s);
  EXPECT_EQ(ctx.emitCount(), 0u);
  EXPECT_EQ(ctx.scheduler().nextDueIn(), 1000ms);  // SECONDLY without Retry-After: a second
  advance(1s);
  EXPECT_EQ(ctx.events().size(), 150u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_hubspot_source_rate_limited_total"), 2u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_page_retries_total", {{"reason", "rate_limited"}}),
            2u);
}

TEST_F(HubspotSourceTest, ServerErrorsAreRetriedThenFailTheRunWithoutMovingTheCheckpoint) {
  fake.seedContacts(150, kT0, 1000);
  auto source = makeSource();
  ASSERT_TRUE(source->start().ok());
  runDue();
  ASSERT_EQ(checkpoint(ctx), std::to_string(kT0 + 149'000));
  fake.putContact("contact1@example.com", {}, kT0 + 200'000);
  fake.failNext(4, 502, "<html>Bad gateway</html>", {}, "/crm/v3/objects/contacts/search");
  advance(1min);
  advance(1s);
  advance(2s);
  advance(4s);
  auto status = source->sync().status();
  EXPECT_EQ(status.runs_failed, 1u);
  EXPECT_THAT(status.last_error, HasSubstr("502"));
  EXPECT_EQ(checkpoint(ctx), std::to_string(kT0 + 149'000));
  advance(1min);  // the next run resumes from the checkpoint
  EXPECT_EQ(checkpoint(ctx), std::to_string(kT0 + 200'000));
  expectEveryCurrentVersionEmitted();
}

TEST_F(HubspotSourceTest, ARefusedTokenFailsTheRunWithoutLeakingIt) {
  auto source = std::make_unique<HubspotSource>(
      configFor(json::object{{"access_token", "pat-na1-wrong-token"}, {"base_url", fake.baseUrl()}}),
      ctx);
  ASSERT_TRUE(source->start().ok());
  runDue();
  auto status = source->sync().status();
  EXPECT_EQ(status.runs_failed, 1u);
  EXPECT_THAT(status.last_error, HasSubstr("HubSpot refused the access token"));
  EXPECT_THAT(status.last_error, HasSubstr("INVALID_AUTHENTICATION"));
  EXPECT_FALSE(ctx.log().contains("pat-na1-wrong-token"));
  EXPECT_EQ(ctx.emitCount(), 0u);
}

}  // namespace
}  // namespace junction::plugins::hubspot
