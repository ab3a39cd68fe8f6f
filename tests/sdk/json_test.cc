#include "junction/sdk/json.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <cmath>
#include <limits>

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
  EXPECT_EQ(findPath(v, ".traits"), nullptr);
  EXPECT_EQ(findPath(v, "."), nullptr);
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
  EXPECT_EQ(findPath(obj, "products.1.sku"), findPath(v, "products.1.sku"));
  EXPECT_EQ(findPath(obj, "a\\.b.c"), findPath(v, "a\\.b.c"));
  ASSERT_NE(findPath(obj, "a\\.b.c"), nullptr);
  for (const char* malformed : {".traits", "traits.", "traits..email", ".", "a\\"}) {
    EXPECT_EQ(findPath(obj, malformed), nullptr) << malformed;
    EXPECT_EQ(findPath(v, malformed), nullptr) << malformed;
  }
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
  EXPECT_EQ(*serialize(v),
            R"({"merge_fields":{"FNAME":"Ada","LNAME":"Lovelace"},"status":"subscribed"})");
}

TEST(JsonTest, SetPathInArrays) {
  json::value v = json::parse(R"({"items":[{"id":1}]})");
  ASSERT_TRUE(setPath(v, "items.0.qty", 2).ok());
  ASSERT_TRUE(setPath(v, "items.1.id", 7).ok());  // appends at index == size
  EXPECT_EQ(*serialize(v), R"({"items":[{"id":1,"qty":2},{"id":7}]})");
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
  EXPECT_EQ(*serialize(v), R"({"a":{"b":"text"}})");
  EXPECT_FALSE(setPath(v, "a..b", 1).ok());
}

TEST(JsonTest, SetPathEmptyReplacesRoot) {
  json::value v = json::parse("[1]");
  ASSERT_TRUE(setPath(v, "", json::value("x")).ok());
  EXPECT_EQ(*serialize(v), R"("x")");
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
  auto text = serialize(v);
  ASSERT_TRUE(text.ok()) << text.error().message;
  auto again = parseJson(*text);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, v);
}

// Boost.JSON alone keeps the last of two equal keys and makes 1e400 infinity (serialized as
// `Infinity`, not JSON): parseJson refuses both, naming the path.
TEST(JsonTest, ParseJsonRefusesAKeyGivenTwiceNamingItsObject) {
  auto consent = parseJson(
      R"({"context":{"consent":{"categoryPreferences":{"marketing":false,"marketing":true}}}})");
  ASSERT_FALSE(consent.ok());
  EXPECT_EQ(consent.error().code, ErrorCode::InvalidArgument);
  EXPECT_EQ(consent.error().message,
            "duplicate key `marketing` in `context.consent.categoryPreferences`");
  EXPECT_EQ(parseJson(R"({"a":1,"b":2,"a":3})").error().message,
            "duplicate key `a` at the top level");
  EXPECT_EQ(parseJson(R"({"products":[{"sku":1},{"sku":2,"q":1,"sku":3}]})").error().message,
            "duplicate key `sku` in `products.1`");
  EXPECT_EQ(parseJson(R"([[0,{"x":1,"\u0078":2}]])").error().message,
            "duplicate key `x` in `0.1`");  // escapes compare by what they spell
  EXPECT_EQ(parseJson(R"({"a.b":{"c\\d":{"e":1,"e":2}}})").error().message,
            R"(duplicate key `e` in `a\.b.c\\d`)");  // findPath's escapes
  // The same key in different objects, or in an object after its nested twin, is fine.
  EXPECT_TRUE(parseJson(R"({"a":{"x":1},"b":{"x":2,"a":{"a":3}},"x":[{"x":1},{"x":2}]})").ok());
  // Many keys: every one is compared.
  std::string many = "{";
  for (int i = 0; i < 300; ++i) {
    many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  }
  EXPECT_TRUE(parseJson(many + "\"last\":0}").ok());
  EXPECT_EQ(parseJson(many + "\"k123\":0}").error().message,
            "duplicate key `k123` at the top level");
}

TEST(JsonTest, ParseJsonRefusesANumberOutOfRangeNamingIt) {
  EXPECT_EQ(parseJson(R"({"properties":{"price":1e400}})").error().message,
            "number `1e400` at `properties.price` is out of range (beyond a double's 1.8e308)");
  EXPECT_EQ(parseJson(R"([1,-1.5E+309])").error().message,
            "number `-1.5E+309` at `1` is out of range (beyond a double's 1.8e308)");
  EXPECT_EQ(parseJson("1e999").error().message,
            "number `1e999` is out of range (beyond a double's 1.8e308)");
  const std::string digits(400, '9');
  EXPECT_FALSE(parseJson(R"({"n":)" + digits + "}").ok());
  auto long_text = parseJson(R"({"n":)" + digits + "e10}");
  ASSERT_FALSE(long_text.ok());
  EXPECT_NE(long_text.error().message.find("`" + std::string(64, '9') + "...`"),
            std::string::npos)
      << long_text.error().message;
  // Still JSON once read: underflow to 0, the largest double, integers beyond 2^64.
  auto fine = parseJson(R"([1e-400,1.7976931348623157e308,-1.7976931348623157e308,123456789012345678901234567890])");
  ASSERT_TRUE(fine.ok()) << fine.error().message;
  EXPECT_EQ(fine->as_array()[0].as_double(), 0.0);
}

TEST(JsonTest, ParseJsonCanCollectProblemsAndStillBuildTheTree) {
  std::vector<JsonValueProblem> problems;
  auto parsed = parseJson(R"({"batch":[{"a":1},{"n":1e400,"k":1,"k":2}],"x":-1e400})", {}, problems);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].kind, JsonValueProblem::Kind::NumberOutOfRange);
  EXPECT_EQ(problems[0].path, (std::vector<std::string>{"batch", "1", "n"}));
  EXPECT_EQ(problems[0].text, "1e400");
  EXPECT_EQ(problems[0].describe(2), "number `1e400` at `n` is out of range (beyond a double's 1.8e308)");
  EXPECT_EQ(problems[1].kind, JsonValueProblem::Kind::DuplicateKey);
  EXPECT_EQ(problems[1].path, (std::vector<std::string>{"batch", "1"}));
  EXPECT_EQ(problems[1].describe(2), "duplicate key `k` at the top level");
  EXPECT_EQ(problems[2].path, (std::vector<std::string>{"x"}));
  EXPECT_EQ(intAt(*parsed, "batch.0.a"), 1);
  // Syntax errors still fail the parse.
  EXPECT_FALSE(parseJson(R"({"a":1e400,})", {}, problems).ok());
}

// serialize() never writes what is not JSON.
TEST(JsonTest, SerializeRefusesNumbersThatAreNotFinite) {
  json::value v = sample();
  ASSERT_TRUE(setPath(v, "products.1.price", json::value(std::numeric_limits<double>::infinity())).ok());
  auto text = serialize(v);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().code, ErrorCode::InvalidArgument);
  EXPECT_EQ(text.error().message,
            "the number at `products.1.price` is not finite (NaN or infinity), which JSON cannot write");
  EXPECT_FALSE(serialize(json::value(std::nan(""))).ok());
  EXPECT_FALSE(serialize(json::object{{"a", -std::numeric_limits<double>::infinity()}}).ok());
  EXPECT_EQ(*serialize(json::object{{"a", 1.5}}), R"({"a":1.5E0})");
}

}  // namespace
}  // namespace junction::sdk
