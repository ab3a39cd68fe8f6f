// The JSON scanner of the SDK (json_scan.h): what it accepts, what it leaves to a full parser,
// and topLevelMember. Its equivalence with Boost.JSON on random text is checked in
// tests/plugins/http/splice_test.cc (JsonScanTest.NeverLooserThanBoostJson).

#include "junction/sdk/json_scan.h"

#include <gtest/gtest.h>

#include <string>

namespace junction::sdk::json_scan {
namespace {

TEST(JsonScanTest, Rules) {
  
  EXPECT_TRUE(valid(R"({"a":[1,-2.5e+10,true,false,null,"x\n\u00e9"]})"));
  EXPECT_TRUE(valid(" 0 "));
  EXPECT_FALSE(valid("01"));
  EXPECT_FALSE(valid("1."));
  EXPECT_FALSE(valid("1e"));
  EXPECT_FALSE(valid("1e400"));  // refused here: left to the full parser
  EXPECT_FALSE(valid("\"\\ud800\""));
  EXPECT_FALSE(valid("\"\xc0\xaf\""));  // overlong
  EXPECT_FALSE(valid("\"\xed\xa0\x80\""));  // an encoded surrogate
  EXPECT_FALSE(valid("\"a\x01\""));
  EXPECT_FALSE(valid("[1,]"));
  EXPECT_FALSE(valid("{\"a\" 1}"));
  EXPECT_FALSE(valid("{} {}"));
  EXPECT_FALSE(valid(""));
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_FALSE(valid(deep));
  std::string ok(20, '[');
  ok += std::string(20, ']');
  EXPECT_TRUE(valid(ok));

  EXPECT_EQ(topLevelMember(R"({"a":{"receivedAt":1},"receivedAt":"x"})", "receivedAt"),
            "\"x\"");
  EXPECT_FALSE(topLevelMember(R"({"a":{"receivedAt":1}})", "receivedAt"));
  EXPECT_FALSE(topLevelMember(R"({"receiv\u0065dAt":1})", "receivedAt"));
}

TEST(JsonScanTest, CursorSlices) {
  Cursor cursor(R"(  {"a" : [1, {"b":"c\"d"}], "e":null} tail)");
  ASSERT_TRUE(cursor.consume('{'));
  std::string_view key;
  bool escaped = true;
  ASSERT_TRUE(cursor.string(key, escaped));
  EXPECT_EQ(key, "a");
  EXPECT_FALSE(escaped);
  ASSERT_TRUE(cursor.consume(':'));
  std::string_view value;
  ASSERT_TRUE(cursor.value(value));
  EXPECT_EQ(value, R"([1, {"b":"c\"d"}])");
  ASSERT_TRUE(cursor.consume(','));
  ASSERT_TRUE(cursor.string(key, escaped));
  ASSERT_TRUE(cursor.consume(':'));
  ASSERT_TRUE(cursor.value(value));
  EXPECT_EQ(value, "null");
  ASSERT_TRUE(cursor.consume('}'));
  EXPECT_EQ(cursor.peek(), 't');
  EXPECT_FALSE(cursor.atEnd());
}

TEST(JsonScanTest, LongStringsAndUtf8) {
  std::string s = "\"" + std::string(1000, 'x') + "\u00e9 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" + std::string(13, 'y') + "\"";
  EXPECT_TRUE(valid(s));
  for (std::size_t cut = 1; cut < s.size(); cut += 7) {
    EXPECT_FALSE(valid(s.substr(0, cut))) << cut;
  }
  EXPECT_FALSE(valid("\"\xf4\x90\x80\x80\""));  // above U+10FFFF
  EXPECT_FALSE(valid("\"\xe2\x82\""));           // a truncated sequence
  EXPECT_FALSE(valid(std::string("\"a\0b\"", 5)));  // a raw NUL
}

}  // namespace
}  // namespace junction::sdk::json_scan
