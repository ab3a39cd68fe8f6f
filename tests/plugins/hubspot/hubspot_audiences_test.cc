// The hubspot destination's audience_properties: audience membership ("Audience Entered" /
// "Audience Exited" tracks, identify events' context.junction.audiences) as contact properties
// through the contact upsert: the exact inputs, and the destination against the fake HubSpot.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "hubspot_destination.h"
#include "hubspot_test_util.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/fakes/hubspot/fake_hubspot.h"

namespace junction::plugins::hubspot {
namespace {

namespace json = boost::json;
using junction::tests::fakes::FakeHubspot;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using sdk::Outcome;
using testing::configFrom;
using testing::event;
using testing::identify;
using testing::kToken;
using testing::spec;

const json::object kAudiences{{"abandoned cart", "in_abandoned_cart"}, {"vip", "is_vip"}};

sdk::Event audienceEvent(int i, const std::string& name, const std::string& audience,
                         const std::string& email) {
  json::object body{
      {"type", "track"},
      {"userId", "u" + std::to_string(i)},
      {"event", name},
      {"properties", json::object{{"audience", audience}, {"audience_key", "x"}}},
      {"context", json::object{{"traits", email.empty() ? json::object{}
                                                        : json::object{{"email", email}}},
                               {"junction", json::object{{"profile_id", "p_1"}}}}}};
  return event(json::serialize(body));
}

sdk::Event snapshot(const std::string& email, json::object audiences) {
  json::object body{
      {"type", "identify"},
      {"userId", "u1"},
      {"traits", json::object{{"email", email}, {"first_name", "Ann"}}},
      {"context", json::object{{"junction", json::object{{"profile_id", "p_1"},
                                                          {"audiences", std::move(audiences)}}}}}};
  return event(json::serialize(body));
}

TEST(HubspotAudiencesTest, TheOptionIsAnObjectDefaultingToEmptyAndValidated) {
  EXPECT_EQ(spec("audience_properties").type, sdk::OptionType::Object);
  EXPECT_EQ(*spec("audience_properties").default_value, json::value(json::object{}));
  EXPECT_TRUE(configFrom(json::object{{"access_token", "t"}}).audience_properties.empty());
  HubspotConfig c = configFrom(json::object{{"access_token", "t"}});
  c.audience_properties = json::object{{"a", 5}, {"b", ""}, {"c", "x.y"}, {"vip", "is_vip"}};
  std::vector<std::string> keys;
  for (const auto& e : c.validate()) {
    keys.push_back(e.key);
  }
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("audience_properties.a",
                                                    "audience_properties.b",
                                                    "audience_properties.c"));
}

TEST(HubspotAudiencesTest, AudiencesBecomePropertiesOfTheContactInput) {
  EXPECT_EQ(audienceProperties(audienceEvent(1, "Audience Entered", "vip", "a@x.test"),
                               kAudiences),
            (json::object{{"is_vip", "true"}}));
  EXPECT_EQ(audienceProperties(audienceEvent(1, "Audience Exited", "abandoned cart", "a@x.test"),
                               kAudiences),
            (json::object{{"in_abandoned_cart", "false"}}));
  EXPECT_THAT(audienceProperties(audienceEvent(1, "Audience Entered", "other", "a@x.test"),
                                 kAudiences),
              IsEmpty());
  EXPECT_THAT(audienceProperties(audienceEvent(1, "Audience Entered", "vip", "a@x.test"), {}),
              IsEmpty());
  EXPECT_EQ(audienceProperties(
                snapshot("a@x.test", {{"vip", false}, {"abandoned cart", true}, {"other", true}}),
                kAudiences),
            (json::object{{"is_vip", "false"}, {"in_abandoned_cart", "true"}}));

  auto mapping = sdk::FieldMapping::parse(defaultMapping(), {});
  ASSERT_TRUE(mapping);
  std::vector<sdk::Event> batch{snapshot("ann@x.test", {{"vip", true}}),
                                audienceEvent(2, "Audience Exited", "vip", "Bob@x.test")};
  auto requests =
      buildUpserts(batch, {0, 1}, {"ann@x.test", "bob@x.test"}, *mapping, 100, kAudiences);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body,
            R"({"inputs":[{"idProperty":"email","id":"ann@x.test","properties":)"
            R"({"email":"ann@x.test","firstname":"Ann","is_vip":"true"}},)"
            R"({"idProperty":"email","id":"bob@x.test","properties":)"
            R"({"is_vip":"false","email":"bob@x.test"}}]})");
}

class HubspotAudiencesDestinationTest : public ::testing::Test {
 protected:
  std::vector<Outcome> deliver(std::vector<sdk::Event> batch, json::object audiences,
                               json::object events = {}) {
    HubspotDestination dest(configFrom(json::object{{"access_token", kToken},
                                                    {"base_url", fake_.baseUrl()},
                                                    {"events", std::move(events)},
                                                    {"audience_properties", std::move(audiences)},
                                                    {"timeout", "2s"}}),
                            ctx_);
    return dest.deliver(batch);
  }

  FakeHubspot fake_;
  sdk::testing::FakeDestinationContext ctx_;
};

TEST_F(HubspotAudiencesDestinationTest, EnteredExitedAndSnapshotsSetTheNamedProperties) {
  auto outcomes =
      deliver({identify(1), audienceEvent(1, "Audience Entered", "vip", "person1@example.com"),
               audienceEvent(2, "Audience Entered", "abandoned cart", "b@x.test"),
               audienceEvent(3, "Audience Entered", "not named", "c@x.test"),
               snapshot("d@x.test", {{"vip", true}, {"abandoned cart", false}})},
              kAudiences);
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.contact("person1@example.com")->properties.at("is_vip"), "true");
  EXPECT_EQ(fake_.contact("person1@example.com")->properties.at("firstname"), "Ada");
  EXPECT_EQ(fake_.contact("b@x.test")->properties.at("in_abandoned_cart"), "true");
  EXPECT_FALSE(fake_.contact("c@x.test")) << "an audience not named is skipped";
  EXPECT_EQ(fake_.contact("d@x.test")->properties.at("is_vip"), "true");
  EXPECT_EQ(fake_.contact("d@x.test")->properties.at("in_abandoned_cart"), "false");
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hubspot_skipped_total", {{"type", "track"}}),
            1u);
  // Batching as today: identify 1 and its audience track name one contact, so two upserts.
  const auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) {
    EXPECT_EQ(r.path, "/crm/v3/objects/contacts/batch/upsert");
  }
  EXPECT_EQ(json::parse(requests[0].body).at("inputs").as_array().size(), 3u);

  auto exited =
      deliver({audienceEvent(1, "Audience Exited", "vip", "person1@example.com")}, kAudiences);
  ASSERT_TRUE(exited[0].isDelivered()) << exited[0].reason;
  EXPECT_EQ(fake_.contact("person1@example.com")->properties.at("is_vip"), "false");
  EXPECT_EQ(fake_.contact("person1@example.com")->properties.at("firstname"), "Ada")
      << "an audience track writes only its property";
}

TEST_F(HubspotAudiencesDestinationTest, WithoutTheOptionAudienceTracksAreSkippedUnlessInEvents) {
  auto outcomes = deliver({audienceEvent(1, "Audience Entered", "vip", "a@x.test"),
                           snapshot("b@x.test", {{"vip", true}})},
                          {});
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_TRUE(outcomes[1].isDelivered());
  EXPECT_FALSE(fake_.contact("a@x.test"));
  EXPECT_FALSE(fake_.contact("b@x.test")->properties.contains("is_vip"));
  // A plain `events` entry still sends the track as a behavioral event.
  auto as_event = deliver({audienceEvent(1, "Audience Entered", "vip", "a@x.test")}, {},
                          json::object{{"Audience Entered", "pe1_audience_entered"}});
  ASSERT_TRUE(as_event[0].isDelivered()) << as_event[0].reason;
  ASSERT_EQ(fake_.behavioralEvents().size(), 1u);
  EXPECT_EQ(fake_.behavioralEvents()[0].properties.at("audience"), "vip");
}

TEST_F(HubspotAudiencesDestinationTest, NoEmailFailsAndHubspotsRefusalsTakeTheUsualOutcomes) {
  auto no_email = deliver({audienceEvent(1, "Audience Entered", "vip", "")}, kAudiences);
  EXPECT_EQ(no_email[0].kind, Outcome::Kind::Failed);
  EXPECT_THAT(no_email[0].reason, HasSubstr("no email"));
  // A property the account does not have: HubSpot's 400 fails the events of that upsert.
  fake_.defineProperties({"email", "firstname", "lastname", "phone", "company", "in_abandoned_cart"});
  auto missing = deliver({audienceEvent(1, "Audience Entered", "vip", "a@x.test")}, kAudiences);
  EXPECT_EQ(missing[0].kind, Outcome::Kind::Failed);
  EXPECT_THAT(missing[0].reason, HasSubstr("PROPERTY_DOESNT_EXIST"));
  EXPECT_THAT(missing[0].reason, HasSubstr("is_vip"));
  auto fine =
      deliver({audienceEvent(1, "Audience Entered", "abandoned cart", "a@x.test")}, kAudiences);
  EXPECT_TRUE(fine[0].isDelivered()) << fine[0].reason;
  fake_.failNext(1, 503, R"({"status":"error","message":"busy","category":"INTERNAL_ERROR"})");
  auto busy = deliver({snapshot("a@x.test", {{"abandoned cart", false}})}, kAudiences);
  EXPECT_EQ(busy[0].kind, Outcome::Kind::Retry);
  EXPECT_EQ(fake_.contact("a@x.test")->properties.at("in_abandoned_cart"), "true");
}

}  // namespace
}  // namespace junction::plugins::hubspot
