// The hubspot option table: defaults, required keys, secrets, bounds, and validate()'s
// cross-field rules (a bad mapping is named by its field).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "hubspot_destination.h"
#include "hubspot_test_util.h"

namespace junction::plugins::hubspot {
namespace {

namespace json = boost::json;
using testing::configFrom;
using ::testing::HasSubstr;
using testing::spec;
using ::testing::UnorderedElementsAre;

std::vector<std::string> errorKeys(const std::vector<sdk::OptionError>& errors) {
  std::vector<std::string> keys;
  for (const auto& e : errors) {
    keys.push_back(e.key);
  }
  return keys;
}

std::string messageOf(const std::vector<sdk::OptionError>& errors, const std::string& key) {
  for (const auto& e : errors) {
    if (e.key == key) {
      return e.message;
    }
  }
  return "";
}

TEST(HubspotOptionsTest, TheTableIsWellFormedAndDocumented) {
  EXPECT_THAT(sdk::checkOptionTable(hubspotOptions().specs()), ::testing::IsEmpty());
  for (const auto& s : hubspotOptions().specs()) {
    EXPECT_FALSE(s.doc.empty()) << s.key;
  }
}

TEST(HubspotOptionsTest, TheIssueNamesAreOptionsOfTheRightTypes) {
  EXPECT_EQ(spec("access_token").type, sdk::OptionType::String);
  EXPECT_EQ(spec("base_url").type, sdk::OptionType::String);
  EXPECT_EQ(spec("events").type, sdk::OptionType::Object);
  EXPECT_EQ(spec("mapping").type, sdk::OptionType::Object);
  EXPECT_EQ(spec("batch_size").type, sdk::OptionType::Integer);
  EXPECT_EQ(spec("timeout").type, sdk::OptionType::Duration);
}

TEST(HubspotOptionsTest, OnlyTheTokenIsRequiredAndSecret) {
  EXPECT_TRUE(spec("access_token").required);
  EXPECT_TRUE(spec("access_token").secret);
  for (const auto& s : hubspotOptions().specs()) {
    if (s.key != "access_token") {
      EXPECT_FALSE(s.required) << s.key;
      EXPECT_FALSE(s.secret) << s.key;
      EXPECT_TRUE(s.default_value.has_value()) << s.key;
    }
  }
}

TEST(HubspotOptionsTest, Defaults) {
  const HubspotConfig c = configFrom(json::object{{"access_token", "pat-na1-x"}});
  EXPECT_EQ(c.access_token, "pat-na1-x");
  EXPECT_EQ(c.base_url, "https://api.hubapi.com");
  EXPECT_TRUE(c.events.empty());
  EXPECT_TRUE(c.mapping.empty());
  EXPECT_EQ(c.batch_size, 100);
  EXPECT_EQ(c.timeout, std::chrono::seconds(30));
  EXPECT_THAT(c.validate(), ::testing::IsEmpty());
}

TEST(HubspotOptionsTest, TheTableRefusesBadValues) {
  EXPECT_FALSE(sdk::normalizeOption(spec("batch_size"), json::value(101)));
  EXPECT_FALSE(sdk::normalizeOption(spec("batch_size"), json::value(0)));
  EXPECT_TRUE(sdk::normalizeOption(spec("batch_size"), json::value(100)));
  EXPECT_FALSE(sdk::normalizeOption(spec("timeout"), json::value("forever")));
  EXPECT_FALSE(sdk::normalizeOption(spec("timeout"), json::value("10m")));  // over 5 minutes
  EXPECT_EQ(sdk::normalizeOption(spec("timeout"), json::value("5s")).value(), json::value(5000));
  EXPECT_FALSE(sdk::normalizeOption(spec("events"), json::value("Order Completed")));
  EXPECT_FALSE(sdk::normalizeOption(spec("mapping"), json::array{"traits.email"}));
  EXPECT_FALSE(sdk::normalizeOption(spec("access_token"), json::value(42)));
}

TEST(HubspotOptionsTest, ValidateNamesEveryBadField) {
  HubspotConfig c = configFrom(json::object{{"access_token", ""}, {"base_url", "ftp://x"}});
  c.events = json::object{{"Order Completed", 5}, {"Viewed", ""}, {"Fine", "pe1_fine"}};
  c.mapping = json::object{{"address.city", "traits.city"},
                           {"bad", json::object{{"from", "traits.x"}, {"transform", "shout"}}},
                           {"plan", "traits.plan"},
                           {"phone", nullptr}};
  const auto errors = c.validate();
  EXPECT_THAT(errorKeys(errors),
              UnorderedElementsAre("access_token", "base_url", "events.Order Completed",
                                   "events.Viewed", "mapping.bad", "mapping.address.city"));
  EXPECT_THAT(messageOf(errors, "mapping.bad"), HasSubstr("shout"));
  EXPECT_THAT(messageOf(errors, "mapping.address.city"), HasSubstr("flat"));
  EXPECT_THAT(messageOf(errors, "events.Order Completed"), HasSubstr("HubSpot custom event"));
}

TEST(HubspotOptionsTest, AMappingOverTheDefaultsValidates) {
  HubspotConfig c = configFrom(
      json::object{{"access_token", "pat-na1-x"},
                   {"base_url", "http://127.0.0.1:9003/"},
                   {"events", json::object{{"Order Completed", "pe1234567_order_completed"}}},
                   {"mapping", json::object{{"plan", "traits.plan"},
                                            {"lifecyclestage", json::object{{"value", "lead"}}},
                                            {"jobtitle", nullptr}}}});
  EXPECT_THAT(c.validate(), ::testing::IsEmpty());
}

TEST(HubspotOptionsTest, TheDefaultMappingParses) {
  EXPECT_THAT(sdk::FieldMapping::check(defaultMapping(), {}), ::testing::IsEmpty());
  std::vector<std::string> fields;
  for (const auto& [field, rule] : defaultMapping()) {
    fields.emplace_back(field);
  }
  EXPECT_THAT(fields,
              UnorderedElementsAre("email", "firstname", "lastname", "phone", "company", "website",
                                   "city", "state", "country", "zip", "jobtitle"));
}

}  // namespace
}  // namespace junction::plugins::hubspot
