#include "tracking_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace junction::plugins::http {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using Kind = TrackingPlan::Verdict::Kind;

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

std::shared_ptr<const TrackingPlan> plan(std::string_view actions) {
  json::object config = obj(R"({"events":{"Order Completed":{
      "type":"object","required":["revenue"],
      "properties":{"revenue":{"type":"number"},"currency":{"type":"string","enum":["EUR","USD"]}}}}})");
  for (const auto& [k, v] : obj(actions)) {
    config[k] = v;
  }
  auto compiled = TrackingPlan::compile(config);
  EXPECT_TRUE(compiled.ok()) << compiled.error().message;
  return compiled.ok() ? compiled.value() : nullptr;
}

const json::object kGood = obj(
    R"({"type":"track","event":"Order Completed","properties":{"revenue":12.5,"currency":"EUR"}})");
const json::object kBad = obj(
    R"({"type":"track","event":"Order Completed","properties":{"revenue":"12","currency":"GBP"}})");
const json::object kUnplanned = obj(R"({"type":"track","event":"Clicked"})");

TEST(TrackingPlanTest, ValidEventsPass) {
  auto p = plan(R"({"unplanned":"drop","violations":"drop"})");
  auto v = p->check(kGood);
  EXPECT_EQ(v.kind, Kind::Pass);
  EXPECT_FALSE(v.drop);
  EXPECT_EQ(p->check(obj(R"({"type":"identify","userId":"u"})")).kind, Kind::Pass);
}

TEST(TrackingPlanTest, UnplannedAllowOrDrop) {
  EXPECT_EQ(plan("{}")->check(kUnplanned).kind, Kind::Unplanned);
  EXPECT_FALSE(plan("{}")->check(kUnplanned).drop);  // default: allow
  EXPECT_FALSE(plan(R"({"unplanned":"allow"})")->check(kUnplanned).drop);
  EXPECT_TRUE(plan(R"({"unplanned":"drop"})")->check(kUnplanned).drop);
}

TEST(TrackingPlanTest, ViolationsAllowFlagDrop) {
  auto flag = plan("{}")->check(kBad);  // default: flag
  EXPECT_EQ(flag.kind, Kind::Violation);
  EXPECT_TRUE(flag.flag);
  EXPECT_FALSE(flag.drop);
  ASSERT_FALSE(flag.violations.empty());
  std::string text = json::serialize(flag.violations);
  EXPECT_THAT(text, HasSubstr("/revenue"));
  EXPECT_THAT(text, HasSubstr("/currency"));

  auto allow = plan(R"({"violations":"allow"})")->check(kBad);
  EXPECT_EQ(allow.kind, Kind::Violation);
  EXPECT_FALSE(allow.flag);
  EXPECT_FALSE(allow.drop);
  auto drop = plan(R"({"violations":"drop"})")->check(kBad);
  EXPECT_TRUE(drop.drop);
  // No properties at all: validated as {} (revenue is required).
  EXPECT_EQ(plan("{}")->check(obj(R"({"type":"track","event":"Order Completed"})")).kind,
            Kind::Violation);
}

TEST(TrackingPlanTest, ConfigErrorsNameTheProblem) {
  auto unknown = TrackingPlan::compile(obj(R"({"evnts":{}})"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.error().message, HasSubstr("unknown key 'evnts'"));
  auto action = TrackingPlan::compile(obj(R"({"unplanned":"flag"})"));
  ASSERT_FALSE(action.ok());
  EXPECT_EQ(action.error().message, "unplanned: expected allow or drop");
  EXPECT_FALSE(TrackingPlan::compile(obj(R"({"violations":"ignore"})")).ok());
  auto schema = TrackingPlan::compile(obj(R"({"events":{"A":{"type":12}}})"));
  ASSERT_FALSE(schema.ok());
  EXPECT_THAT(schema.error().message, HasSubstr("events.\"A\": invalid JSON Schema"));
  auto not_map = TrackingPlan::compile(obj(R"({"events":{"A":[1]}})"));
  ASSERT_FALSE(not_map.ok());
  auto remote = TrackingPlan::compile(obj(R"({"events":{"A":{"$ref":"http://example.com/s.json"}}})"));
  EXPECT_FALSE(remote.ok());
}

}  // namespace
}  // namespace junction::plugins::http
