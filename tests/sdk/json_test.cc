#include "junction/sdk/json.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace junction::sdk {
namespace {

namespace json = boost::json;

json::value sample() {
  return json::parse(R"({
    "traits": {"email": "a@example.com", "age": 42, "vip": true, "score": 1.5, "nothing": null},
    "context": {"consent": {"categoryPreferences": {"marketing": false}}},
    "products": [{"sku": "A-1", "price": 10}, {"sku": "B-2", "price": 2.25}],
    "big": 18446744073709551615,
    "whole": 3.0,
    "a.b": {"c": "dotted"},
    "0": "zero key"
  })");
}

TEST(JsonTest, FindPathWalksObjectsAndArrays) {
  const json::value v = sample();
  const json::value* email = findPath(v, "traits.email");
  ASSERT_NE(email, nullptr);
  EXPECT_EQ(email->as_string(), "a@example.com");
  const json::value* prefs = findPath(v, "context.consent.categoryPreferences");
  ASSERT_NE(prefs, nullptr);
  EXPECT_TRUE(prefs->is_object());
  const json::value* sku = findPath(v, "products.1.sku");
  ASSERT_NE(sku, nullptr);
  EXPECT_EQ(sku->as_string(), "B-2");
}

TEST(JsonTest, FindPathMissesCleanly) {
  const json::value v = sample();
  EXPECT_EQ(findPath(v, "traits.phone"), nullptr);
  EXPECT_EQ(findPath(v, "products.2.sku"), nullptr);
  EXPECT_EQ(findPath(v, "products.x"), nullptr);
  EXPECT_EQ(findPath(v, "traits.email.domain"), nullptr);  // into a string
  EXPECT_EQ(findPath(v, "traits..email"), nullptr);
  EXPECT_EQ(findPath(v, "traits."), nullptr);
  EXPECT_EQ(findPath(v, "products.-1"), nullptr);
}

TEST(JsonTest, FindPathEmptyIsRootAndEscapesWork) {
  const json::value v = sample();
  EXPECT_EQ(findPath(v, ""), &v);
  auto dotted = stringAt(v, "a\\.b.c");
  ASSERT_TRUE(dotted);
  EXPECT_EQ(*dotted, "dotted");
  auto zero = stringAt(v, "0");  // a numeric segment is a key inside an object
  ASSERT_TRUE(zero);
  EXPECT_EQ(*zero, "zero key");
}

TEST(JsonTest, FindPathOnObjectDoesNotCopy) {
  const json::value v = sample();
  const json::object& obj = v.as_object();
  const json::value* email = findPath(obj, "traits.email");
  ASSERT_NE(email, nullptr);
  EXPECT_EQ(email, findPath(v, "traits.email"));  // same storage: no temporary value involved
  EXPECT_EQ(findPath(obj, ""), nullptr);
}

TEST(JsonTest, StringAtRendersScalars) {
  const json::value v = sample();
  EXPECT_EQ(stringAt(v, "traits.email"), "a@example.com");
  EXPECT_EQ(stringAt(v, "traits.age"), "42");
  EXPECT_EQ(stringAt(v, "traits.vip"), "true");
  EXPECT_EQ(stringAt(v, "traits.score"), "1.5");
  EXPECT_EQ(stringAt(v, "whole"), "3");
  EXPECT_EQ(stringAt(v, "big"), "18446744073709551615");
  EXPECT_EQ(stringAt(v, "traits.nothing"), std::nullopt);
  EXPECT_EQ(stringAt(v, "traits"), std::nullopt);
  EXPECT_EQ(stringAt(v.as_object(), "products.0.sku"), "A-1");
}

TEST(JsonTest, TypedAccessors) {
  const json::value v = sample();
  EXPECT_EQ(intAt(v, "traits.age"), 42);
  EXPECT_EQ(intAt(v, "whole"), 3);
  EXPECT_EQ(intAt(v, "traits.score"), std::nullopt);  // has a fraction
  EXPECT_EQ(intAt(v, "big"), std::nullopt);           // beyond int64
  EXPECT_EQ(intAt(v, "traits.email"), std::nullopt);
  EXPECT_EQ(numberAt(v, "products.1.price"), 2.25);
  EXPECT_EQ(numberAt(v, "products.0.price"), 10.0);
  EXPECT_EQ(numberAt(v, "traits.vip"), std::nullopt);
  EXPECT_EQ(boolAt(v, "traits.vip"), true);
  EXPECT_EQ(boolAt(v, "context.consent.categoryPreferences.marketing"), false);
  EXPECT_EQ(boolAt(v, "traits.age"), std::nullopt);
  EXPECT_EQ(intAt(v.as_object(), "traits.age"), 42);
  EXPECT_EQ(boolAt(v.as_object(), "traits.vip"), true);
  EXPECT_EQ(numberAt(v.as_object(), "traits.score"), 1.5);
}

TEST(JsonTest, SetPathCreatesIntermediateObjects) {
  json::value v;  // null becomes an object
  ASSERT_TRUE(setPath(v, "merge_fields.FNAME", "Ada").ok());
  ASSERT_TRUE(setPath(v, "merge_fields.LNAME", "Lovelace").ok());
  ASSERT_TRUE(setPath(v, "status", "subscribed").ok());
  EXPECT_EQ(serialize(v),
            R"({"merge_fields":{"FNAME":"Ada","LNAME":"Lovelace"},"status":"subscribed"})");
}

TEST(JsonTest, SetPathInArrays) {
  json::value v = json::parse(R"({"items":[{"id":1}]})");
  ASSERT_TRUE(setPath(v, "items.0.qty", 2).ok());
  ASSERT_TRUE(setPath(v, "items.1.id", 7).ok());  // appends at index == size
  EXPECT_EQ(serialize(v), R"({"items":[{"id":1,"qty":2},{"id":7}]})");
  const Status out_of_range = setPath(v, "items.5.id", 1);
  EXPECT_FALSE(out_of_range.ok());
  EXPECT_EQ(out_of_range.error().code, ErrorCode::InvalidArgument);
  EXPECT_FALSE(setPath(v, "items.x", 1).ok());
}

TEST(JsonTest, SetPathRefusesToPassThroughScalarsAndLeavesValueUnchanged) {
  json::value v = json::parse(R"({"a":{"b":"text"}})");
  const Status s = setPath(v, "a.b.c.d", 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("string"), std::string::npos) << s.message();
  EXPECT_EQ(serialize(v), R"({"a":{"b":"text"}})");
  EXPECT_FALSE(setPath(v, "a..b", 1).ok());
}

TEST(JsonTest, SetPathEmptyReplacesRoot) {
  json::value v = json::parse("[1]");
  ASSERT_TRUE(setPath(v, "", json::value("x")).ok());
  EXPECT_EQ(serialize(v), R"("x")");
}

TEST(JsonTest, ErasePath) {
  json::value v = sample();
  EXPECT_TRUE(erasePath(v, "traits.email"));
  EXPECT_EQ(findPath(v, "traits.email"), nullptr);
  EXPECT_FALSE(erasePath(v, "traits.email"));
  EXPECT_TRUE(erasePath(v, "products.0"));
  EXPECT_EQ(stringAt(v, "products.0.sku"), "B-2");
  EXPECT_FALSE(erasePath(v, "products.3"));
  EXPECT_FALSE(erasePath(v, ""));
  EXPECT_FALSE(erasePath(v, "nope.deeper"));
}

TEST(JsonTest, ParseJsonSucceeds) {
  auto parsed = parseJson(R"({"x":[1,2,{"y":null}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(intAt(*parsed, "x.1"), 2);
}

TEST(JsonTest, ParseJsonNamesThePosition) {
  auto parsed = parseJson("{\n  \"a\": 1,\n  \"b\": ]\n}");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::InvalidArgument);
  EXPECT_NE(parsed.error().message.find("line 3"), std::string::npos) << parsed.error().message;
  EXPECT_NE(parsed.error().message.find("column 8"), std::string::npos) << parsed.error().message;
}

TEST(JsonTest, ParseJsonRefusesTrailingGarbageAndEmpty) {
  EXPECT_FALSE(parseJson(R"({"a":1} x)").ok());
  EXPECT_FALSE(parseJson("").ok());
  EXPECT_FALSE(parseJson(R"({"a":1,})").ok());
  EXPECT_FALSE(parseJson(R"({"a":1 // comment
  })")
                   .ok());
}

TEST(JsonTest, ParseJsonLimitsDepth) {
  EXPECT_TRUE(parseJson(std::string(60, '[') + std::string(60, ']')).ok());
  EXPECT_FALSE(parseJson(std::string(100, '[') + std::string(100, ']')).ok());
}

TEST(JsonTest, SerializeRoundTrips) {
  const json::value v = sample();
  auto again = parseJson(serialize(v));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, v);
}

}  // namespace
}  // namespace junction::sdk
