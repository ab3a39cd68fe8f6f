// The sfmc option table: defaults, required keys, secrets, bounds, and validate()'s cross-field
// rules (a bad mapping is named by its field).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <boost/json.hpp>

#include "sfmc_config.h"
#include "sfmc_test_util.h"

namespace junction::plugins::sfmc {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using testing::configFrom;

const sdk::OptionSpec& spec(const std::string& key) {
  static const auto specs = sfmcOptions().specs();
  const auto it = std::find_if(specs.begin(), specs.end(),
                               [&](const sdk::OptionSpec& s) { return s.key == key; });
  EXPECT_NE(it, specs.end()) << key;
  return *it;
}

json::object minimal() {
  return {{"auth_url", "https://mc123.auth.marketingcloudapis.com/"},
          {"client_id", "id"},
          {"client_secret", "shh"},
          {"data_extension", "Contacts"}};
}

std::vector<std::string> errorKeys(const std::vector<sdk::OptionError>& errors) {
  std::vector<std::string> keys;
  for (const auto& e : errors) {
    keys.push_back(e.key);
  }
  return keys;
}

TEST(SfmcOptionsTest, TheTableIsWellFormed) {
  EXPECT_THAT(sdk::checkOptionTable(sfmcOptions().specs()), ::testing::IsEmpty());
}

TEST(SfmcOptionsTest, TheIssueNamesAreOptions) {
  for (const char* key : {"auth_url", "client_id", "client_secret", "account_id",
                          "data_extension", "key_field", "journeys"}) {
    EXPECT_EQ(spec(key).key, key);
  }
}

TEST(SfmcOptionsTest, RequiredKeysAndSecrets) {
  EXPECT_TRUE(spec("auth_url").required);
  EXPECT_TRUE(spec("client_id").required);
  EXPECT_TRUE(spec("client_secret").required);
  EXPECT_TRUE(spec("client_secret").secret);
  for (const auto& s : sfmcOptions().specs()) {
    if (s.key != "client_secret") {
      EXPECT_FALSE(s.secret) << s.key;
    }
    if (s.key != "auth_url" && s.key != "client_id" && s.key != "client_secret") {
      EXPECT_FALSE(s.required) << s.key;
      EXPECT_TRUE(s.default_value.has_value()) << s.key;
    }
    EXPECT_FALSE(s.doc.empty()) << s.key;
  }
}

TEST(SfmcOptionsTest, Defaults) {
  const SfmcConfig c = configFrom(minimal());
  EXPECT_EQ(c.key_field, "ContactKey");
  EXPECT_EQ(c.contact_key, "userId");
  EXPECT_EQ(c.account_id, "");
  EXPECT_EQ(c.rows_per_request, 50);
  EXPECT_EQ(c.erase_by, "userId");
  EXPECT_EQ(c.timeout, std::chrono::seconds(30));
  EXPECT_TRUE(c.journeys.empty());
  EXPECT_TRUE(c.mapping.empty());
  EXPECT_THAT(c.validate(), ::testing::IsEmpty());
}

TEST(SfmcOptionsTest, BadValuesAreRefusedByTheTable) {
  EXPECT_FALSE(sdk::normalizeOption(spec("rows_per_request"), json::value(0)));
  EXPECT_FALSE(sdk::normalizeOption(spec("rows_per_request"), json::value(2501)));
  EXPECT_TRUE(sdk::normalizeOption(spec("rows_per_request"), json::value(50)));
  EXPECT_FALSE(sdk::normalizeOption(spec("erase_by"), json::value("phone")));
  EXPECT_TRUE(sdk::normalizeOption(spec("erase_by"), json::value("email")));
  EXPECT_FALSE(sdk::normalizeOption(spec("timeout"), json::value("soon")));
  EXPECT_FALSE(sdk::normalizeOption(spec("timeout"), json::value("10m")));
  EXPECT_FALSE(sdk::normalizeOption(spec("journeys"), json::value("Cart Abandoned")));
  EXPECT_FALSE(sdk::normalizeOption(spec("mapping"), json::value(json::array{"x"})));
  EXPECT_FALSE(sdk::normalizeOption(spec("client_id"), json::value(json::array{})));
}

TEST(SfmcOptionsTest, ASecretsValueIsNeverEchoedInAnError) {
  auto refused = sdk::normalizeOption(spec("client_secret"),
                                      json::value(json::array{"super-secret-value"}));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, ::testing::Not(HasSubstr("super-secret-value")));
}

TEST(SfmcValidateTest, AuthUrlMustBeHttp) {
  auto given = minimal();
  given["auth_url"] = "mc123.auth.marketingcloudapis.com";
  EXPECT_THAT(errorKeys(configFrom(given).validate()), ::testing::ElementsAre("auth_url"));
}

TEST(SfmcValidateTest, NeedsADataExtensionOrJourneys) {
  auto given = minimal();
  given.erase("data_extension");
  auto errors = configFrom(given).validate();
  ASSERT_THAT(errorKeys(errors), ::testing::ElementsAre("data_extension"));
  EXPECT_THAT(errors[0].message, HasSubstr("journeys"));

  given["journeys"] = json::object{{"Cart Abandoned", "APIEvent-1"}};
  EXPECT_THAT(configFrom(given).validate(), ::testing::IsEmpty());
}

TEST(SfmcValidateTest, JourneyKeysAreNonEmptyStringsWithoutAPeriod) {
  auto given = minimal();
  given["journeys"] = json::object{{"Cart Abandoned", "APIEvent.1"},
                                   {"Order Completed", 12},
                                   {"Signed Up", ""},
                                   {"Viewed", "APIEvent-ok"}};
  EXPECT_THAT(errorKeys(configFrom(given).validate()),
              ::testing::UnorderedElementsAre("journeys.Cart Abandoned",
                                              "journeys.Order Completed", "journeys.Signed Up"));
}

TEST(SfmcValidateTest, ABadMappingIsNamedByField) {
  auto given = minimal();
  given["mapping"] = json::object{
      {"FirstName", json::object{{"from", "traits.first_name"}, {"transform", "shout"}}},
      {"Plan", json::object{{"form", "traits.plan"}}},
      {"Phone", nullptr},  // dropping a default column is fine
      {"Address.City", "traits.address.city"}};
  auto errors = configFrom(given).validate();
  const auto keys = errorKeys(errors);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()),
            (std::set<std::string>{"mapping.FirstName", "mapping.Plan", "mapping.Address.City"}));
  for (const auto& e : errors) {
    EXPECT_FALSE(e.message.empty()) << e.key;
  }
}

TEST(SfmcValidateTest, EmptyKeyFieldOrContactKeyIsRefused) {
  auto given = minimal();
  given["key_field"] = "";
  given["contact_key"] = "";
  EXPECT_THAT(errorKeys(configFrom(given).validate()),
              ::testing::UnorderedElementsAre("key_field", "contact_key"));
}

}  // namespace
}  // namespace junction::plugins::sfmc
