// The sfmc destination's audience membership: audiences_data_extension rows from "Audience
// Entered" / "Audience Exited" tracks and identify events' context.junction.audiences, and
// journeys keys "Audience Entered: <audience>"; the exact rows, and the destination against the
// fake Marketing Cloud over loopback HTTP.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/testing/fake_context.h"
#include "sfmc_destination.h"
#include "sfmc_requests.h"
#include "sfmc_test_util.h"
#include "tests/fakes/sfmc/fake_sfmc.h"

namespace junction::plugins::sfmc {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::event;
using tests::fakes::FakeSfmc;

sdk::Event audienceEvent(const std::string& user_id, const std::string& name,
                         const std::string& audience) {
  json::object body{
      {"type", "track"},
      {"event", name},
      {"userId", user_id},
      {"timestamp", "2026-03-01T10:00:00.000Z"},
      {"properties", json::object{{"audience", audience}, {"audience_key", "x"}}},
      {"context", json::object{{"traits", json::object{{"email", "ann@example.com"}}},
                               {"junction", json::object{{"profile_id", "p_1"}}}}}};
  if (user_id.empty()) {
    body.erase("userId");
    body["anonymousId"] = "anon-1";
  }
  return event(json::serialize(body));
}

sdk::Event snapshot(const std::string& user_id, json::object audiences) {
  json::object body{
      {"type", "identify"},
      {"userId", user_id},
      {"timestamp", "2026-03-02T08:30:00.000Z"},
      {"traits", json::object{{"email", "ann@example.com"}}},
      {"context", json::object{{"junction", json::object{{"profile_id", "p_1"},
                                                          {"audiences", std::move(audiences)}}}}}};
  return event(json::serialize(body));
}

json::object baseConfig(const std::string& auth_url) {
  return json::object{{"auth_url", auth_url},
                      {"client_id", "fake-sfmc-client-id"},
                      {"client_secret", "fake-sfmc-client-secret"},
                      {"timeout", "5s"}};
}

FakeSfmc::Options audienceOptions() {
  FakeSfmc::Options o;
  FakeSfmc::DataExtension contacts;
  contacts.columns["EmailAddress"] = {FakeSfmc::ColumnType::EmailAddress, 254, true};
  contacts.columns["FirstName"] = {FakeSfmc::ColumnType::Text, 50, true};
  o.data_extensions["Contacts"] = contacts;
  FakeSfmc::DataExtension audiences;
  audiences.primary_keys = {"ContactKey", "Audience"};
  audiences.columns["Member"] = {FakeSfmc::ColumnType::Boolean, 0, false};
  audiences.columns["UpdatedAt"] = {FakeSfmc::ColumnType::Date, 0, false};
  o.data_extensions["Audiences"] = audiences;
  o.event_definition_keys = {"APIEvent-cart", "APIEvent-any"};
  return o;
}

TEST(SfmcAudiencesTest, TheOptionDefaultsToOffAndCountsAsSomethingToSend) {
  auto c = testing::configFrom(baseConfig("https://x.auth.marketingcloudapis.com"));
  EXPECT_EQ(c.audiences_data_extension, "");
  ASSERT_EQ(c.validate().size(), 1u);  // nothing to send
  c.audiences_data_extension = "Audiences";
  EXPECT_THAT(c.validate(), IsEmpty());
}

TEST(SfmcAudiencesTest, EventsBecomeAudienceRowsAndAudienceJourneyKeysMatchOneAudience) {
  json::object given = baseConfig("https://x.auth.marketingcloudapis.com");
  given["audiences_data_extension"] = "Audiences";
  given["journeys"] = json::object{{"Audience Entered: abandoned cart", "APIEvent-cart"},
                                   {"Audience Entered", "APIEvent-any"}};
  auto mapper = SfmcMapper::make(testing::configFrom(given));
  ASSERT_TRUE(mapper);

  auto entered = mapper->plan(audienceEvent("u1", "Audience Entered", "abandoned cart"));
  EXPECT_EQ(entered.action, Planned::Action::Journey);
  EXPECT_THAT(entered.body, HasSubstr(R"("EventDefinitionKey":"APIEvent-cart")"));
  ASSERT_EQ(entered.audience_rows.size(), 1u);
  EXPECT_EQ(entered.audience_rows[0].body,
            R"({"keys":{"ContactKey":"u1","Audience":"abandoned cart"},)"
            R"("values":{"Member":true,"UpdatedAt":"2026-03-01T10:00:00.000Z"}})");
  // A plain "Audience Entered" key still matches every other audience.
  auto vip = mapper->plan(audienceEvent("u1", "Audience Entered", "vip"));
  EXPECT_THAT(vip.body, HasSubstr(R"("EventDefinitionKey":"APIEvent-any")"));
  auto exited = mapper->plan(audienceEvent("u1", "Audience Exited", "abandoned cart"));
  EXPECT_EQ(exited.action, Planned::Action::Skip);  // no journey named for exits
  ASSERT_EQ(exited.audience_rows.size(), 1u);
  EXPECT_EQ(exited.audience_rows[0].row.at("values").at("Member"), false);

  auto snap = mapper->plan(snapshot("u1", {{"abandoned cart", false}, {"vip", true}}));
  EXPECT_EQ(snap.action, Planned::Action::Skip);  // no data_extension: only audience rows
  ASSERT_EQ(snap.audience_rows.size(), 2u);
  EXPECT_EQ(snap.audience_rows[1].body,
            R"({"keys":{"ContactKey":"u1","Audience":"vip"},)"
            R"("values":{"Member":true,"UpdatedAt":"2026-03-02T08:30:00.000Z"}})");

  auto no_key = mapper->plan(audienceEvent("", "Audience Entered", "vip"));
  EXPECT_EQ(no_key.action, Planned::Action::Fail);
  EXPECT_THAT(no_key.reason, HasSubstr("no contact key"));
  auto no_audience = mapper->plan(event(R"({"type":"track","event":"Audience Exited","userId":"u1"})"));
  EXPECT_EQ(no_audience.action, Planned::Action::Fail);
  EXPECT_THAT(no_audience.reason, HasSubstr("properties.audience"));

  // Off: no audience rows; the journey keys still apply.
  given.erase("audiences_data_extension");
  auto off = SfmcMapper::make(testing::configFrom(given));
  ASSERT_TRUE(off);
  auto plain = off->plan(audienceEvent("u1", "Audience Entered", "abandoned cart"));
  EXPECT_EQ(plain.action, Planned::Action::Journey);
  EXPECT_THAT(plain.audience_rows, IsEmpty());
  EXPECT_THAT(off->plan(snapshot("u1", {{"vip", true}})).audience_rows, IsEmpty());
}

TEST(SfmcAudiencesDestinationTest, RowsLandWithTheirCompositeKeyAndTheJourneyFires) {
  FakeSfmc fake(audienceOptions());
  sdk::testing::FakeDestinationContext ctx;
  json::object given = baseConfig(fake.baseUrl());
  given["data_extension"] = "Contacts";
  given["audiences_data_extension"] = "Audiences";
  given["journeys"] = json::object{{"Audience Entered: abandoned cart", "APIEvent-cart"}};
  SfmcDestination dest(testing::configFrom(given), ctx);
  const auto outcomes = dest.deliver(std::vector<sdk::Event>{
      snapshot("u1", {{"abandoned cart", false}, {"vip", true}}),
      audienceEvent("u1", "Audience Entered", "abandoned cart"),
      audienceEvent("u2", "Audience Entered", "vip"), audienceEvent("u2", "Audience Exited", "vip"),
      audienceEvent("u3", "Audience Entered", "high value")});
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  const auto rows = fake.rows("Audiences");
  ASSERT_EQ(rows.size(), 4u);  // u1/abandoned cart, u1/vip, u2/vip, u3/high value
  EXPECT_EQ(json::serialize(rows[0].keys), R"({"ContactKey":"u1","Audience":"abandoned cart"})");
  EXPECT_EQ(rows[0].values.at("Member"), true) << "the later Entered wins over the snapshot";
  EXPECT_EQ(json::serialize(rows[2].keys), R"({"ContactKey":"u2","Audience":"vip"})");
  EXPECT_EQ(rows[2].values.at("Member"), false);
  EXPECT_TRUE(fake.row("Contacts", "u1"));  // the identify's own row as today
  const auto journeys = fake.journeyEvents();
  ASSERT_EQ(journeys.size(), 1u);
  EXPECT_EQ(journeys[0].contact_key, "u1");
  EXPECT_EQ(journeys[0].event_definition_key, "APIEvent-cart");
  EXPECT_EQ(journeys[0].data.at("audience"), "abandoned cart");
  std::size_t rowsets = 0;
  for (const auto& r : fake.requests()) {
    rowsets += r.path == "/hub/v1/dataevents/key:Audiences/rowset" ? 1 : 0;
  }
  EXPECT_EQ(rowsets, 1u);  // one rowset for the delivery's audience rows
  EXPECT_EQ(ctx.metrics().counterValue("junction_sfmc_skipped_total", {{"type", "track"}}), 0u);
}

TEST(SfmcAudiencesDestinationTest, OffMissingKeyAndRefusedRowsTakeTheUsualOutcomes) {
  FakeSfmc::Options options = audienceOptions();
  options.data_extensions["Audiences"].columns.erase("UpdatedAt");  // a column the DE lacks
  FakeSfmc fake(options);
  sdk::testing::FakeDestinationContext ctx;
  json::object given = baseConfig(fake.baseUrl());
  given["data_extension"] = "Contacts";
  {
    SfmcDestination off(testing::configFrom(given), ctx);
    auto o = off.deliver(std::vector<sdk::Event>{audienceEvent("u1", "Audience Entered", "vip"),
                                                 snapshot("u1", {{"vip", true}})});
    EXPECT_TRUE(o[0].isDelivered());
    EXPECT_TRUE(o[1].isDelivered());
    EXPECT_EQ(fake.rowCount("Audiences"), 0u);
    EXPECT_TRUE(fake.row("Contacts", "u1"));
  }
  given["audiences_data_extension"] = "Audiences";
  given["journeys"] = json::object{{"Audience Entered", "APIEvent-any"}};
  SfmcDestination dest(testing::configFrom(given), ctx);
  auto no_key = dest.deliver(std::vector<sdk::Event>{audienceEvent("", "Audience Entered", "vip")});
  EXPECT_EQ(no_key[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(no_key[0].reason, HasSubstr("no contact key"));
  // The vendor's 400 for a column the data extension does not have fails the events whose rows
  // hold it, and their journey entry is not sent.
  auto refused = dest.deliver(std::vector<sdk::Event>{
      audienceEvent("u1", "Audience Entered", "vip"), snapshot("u2", {{"vip", true}})});
  EXPECT_EQ(refused[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(refused[0].reason, HasSubstr("[UpdatedAt] does not exist"));
  EXPECT_EQ(refused[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_TRUE(fake.row("Contacts", "u2")) << "the identify's own row is written";
  EXPECT_THAT(fake.journeyEvents(), IsEmpty());
  // A 5xx on the audience rowset retries the event.
  fake.failNext(1, 503, R"({"message":"Service Unavailable","errorcode":0})", {},
                "/hub/v1/dataevents/key:Audiences");
  auto busy = dest.deliver(std::vector<sdk::Event>{snapshot("u3", {{"vip", false}})});
  EXPECT_EQ(busy[0].kind, sdk::Outcome::Kind::Retry);
}

}  // namespace
}  // namespace junction::plugins::sfmc
