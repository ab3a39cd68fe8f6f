#include "http_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace junction::plugins::http {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

// What the daemon does with the table: normalize each given value or fill its default.
sdk::Result<HttpSourceConfig> applyTable(const json::object& yaml) {
  sdk::ConfigObject checked;
  for (const auto& spec : httpSourceOptions().specs()) {
    if (const json::value* v = yaml.if_contains(spec.key)) {
      auto n = sdk::normalizeOption(spec, *v);
      if (!n) {
        return std::move(n).error();
      }
      checked[spec.key] = std::move(n).value();
    } else if (spec.default_value) {
      auto n = sdk::normalizeOption(spec, *spec.default_value);
      if (!n) {
        return std::move(n).error();
      }
      checked[spec.key] = std::move(n).value();
    } else if (spec.required) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, spec.key + " is required");
    }
  }
  return httpSourceOptions().bind(checked);
}

TEST(HttpConfigTest, TableIsValidAndDocumented) {
  EXPECT_THAT(sdk::checkOptionTable(httpSourceOptions().specs()), ::testing::IsEmpty());
  for (const auto& spec : httpSourceOptions().specs()) {
    EXPECT_FALSE(spec.doc.empty()) << spec.key;
  }
  auto specs = httpSourceOptions().specs();
  auto keys = std::find_if(specs.begin(), specs.end(), [](auto& s) { return s.key == "write_keys"; });
  ASSERT_NE(keys, specs.end());
  EXPECT_TRUE(keys->secret);
  EXPECT_TRUE(keys->required);
}

TEST(HttpConfigTest, DefaultsAreSegmentsLimits) {
  auto c = applyTable(json::parse(R"({"write_keys":["k"]})").as_object());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->max_event_bytes, 32u * 1024);
  EXPECT_EQ(c->max_batch_bytes, 500u * 1024);
  EXPECT_EQ(c->cors_origins, std::vector<std::string>{"*"});
  EXPECT_EQ(c->client_ip, "keep");
  EXPECT_EQ(c->dedup_window, std::chrono::minutes(10));
  EXPECT_EQ(c->dedup_max_entries, 1000000);
  EXPECT_TRUE(c->tracking_plan.empty());
  EXPECT_TRUE(c->validate().empty());
}

TEST(HttpConfigTest, ValuesAreNormalized) {
  auto c = applyTable(json::parse(R"({"write_keys":"k","max_event_bytes":"16KiB",
      "dedup_window":"0","client_ip":"truncate"})").as_object());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->write_keys, std::vector<std::string>{"k"});
  EXPECT_EQ(c->max_event_bytes, 16u * 1024);
  EXPECT_EQ(c->dedup_window.count(), 0);
  auto bad = applyTable(json::parse(R"({"write_keys":["k"],"client_ip":"hash"})").as_object());
  EXPECT_FALSE(bad.ok());
}

TEST(HttpConfigTest, ValidateCrossFieldRulesWithoutEchoingKeys) {
  HttpSourceConfig c;
  c.write_keys = {"good", "", "has:colon-secret"};
  c.max_event_bytes = 1024 * 1024;
  c.cors_origins = {"shop.example.com"};
  c.public_url = "junction.example.com";
  c.tracking_plan = json::parse(R"({"unplanned":"maybe"})").as_object();
  auto errors = c.validate();
  std::string all;
  for (const auto& e : errors) {
    all += e.key + ": " + e.message + "\n";
  }
  EXPECT_THAT(all, HasSubstr("write_keys: write key #2 is empty"));
  EXPECT_THAT(all, HasSubstr("write_keys: write key #3 contains ':'"));
  EXPECT_THAT(all, ::testing::Not(HasSubstr("colon-secret")));
  EXPECT_THAT(all, HasSubstr("max_event_bytes: is larger than max_batch_bytes"));
  EXPECT_THAT(all, HasSubstr("cors_origins"));
  EXPECT_THAT(all, HasSubstr("public_url: must start with http:// or https://"));
  EXPECT_THAT(all, HasSubstr("tracking_plan: unplanned: expected allow or drop"));
  HttpSourceConfig none;
  EXPECT_THAT(none.validate()[0].message, HasSubstr("at least one write key"));
}

}  // namespace
}  // namespace junction::plugins::http
