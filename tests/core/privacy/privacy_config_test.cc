// The privacy keys of the configuration: `consent.aliases` and the destination PII keys
// `hash` / `drop`.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/daemon_config.h"

namespace junction::core::config {
namespace {

using ::testing::HasSubstr;

TEST(PrivacyConfigTest, AliasesAndPiiKeysAreRead) {
  ConfigErrors errors;
  auto config = loadConfigText(
      "consent:\n"
      "  aliases: { C0004: marketing, C0002: analytics }\n"
      "destinations:\n"
      "  - id: ads\n"
      "    plugin: file\n"
      "    hash: [traits.email, context.traits.phone]\n"
      "    drop: context.ip\n",
      "test.yaml", processEnvironment(), errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->consent.aliases.at("C0004").as_string(), "marketing");
  EXPECT_EQ(config->consent.aliases.size(), 2u);
  const auto& d = config->destinations.at(0);
  EXPECT_EQ(d.hash, (std::vector<std::string>{"traits.email", "context.traits.phone"}));
  EXPECT_EQ(d.drop, (std::vector<std::string>{"context.ip"}));
}

TEST(PrivacyConfigTest, DefaultsAreEmpty) {
  ConfigErrors errors;
  auto config = loadConfigText("destinations:\n  - id: a\n    plugin: file\n", "test.yaml",
                               processEnvironment(), errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_TRUE(config->consent.aliases.empty());
  EXPECT_TRUE(config->destinations.at(0).hash.empty());
  EXPECT_TRUE(config->destinations.at(0).drop.empty());
}

TEST(PrivacyConfigTest, BadAliasesAndUnknownKeysAreReported) {
  ConfigErrors errors;
  auto config = loadConfigText(
      "consent:\n"
      "  aliases: { C0004: [marketing] }\n"
      "  alias: {}\n",
      "test.yaml", processEnvironment(), errors);
  EXPECT_FALSE(config);
  const std::string text = formatErrors(errors);
  EXPECT_THAT(text, HasSubstr("consent.aliases.C0004"));
  EXPECT_THAT(text, HasSubstr("alias"));
}

}  // namespace
}  // namespace junction::core::config
