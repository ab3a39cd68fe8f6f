// The JSON scanner of the SDK (json_scan.h): what it accepts, what it leaves to a full parser,
// and topLevelMember. Its equivalence with Boost.JSON on random text is checked in
// tests/plugins/http/splice_test.cc (JsonScanTest.NeverLooserThanBoostJson).

#include "junction/sdk/json_scan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// Strings are crossed 16 bytes a step, with a shortcut for plain ones, and the last bytes of
// the text one by one: every length, at the end of the text and inside it, with what needs a
// closer look at every position.
TEST(JsonScanTest, StringsOfEveryLengthAndPosition) {
  for (std::size_t n = 0; n < 40; ++n) {
    const std::string plain(n, 'a');
    EXPECT_TRUE(valid("\"" + plain + "\"")) << n;
    EXPECT_TRUE(valid("[\"" + plain + "\"," + std::string(30, '1') + "]")) << n;
    EXPECT_FALSE(valid("\"" + plain)) << n;
    for (std::size_t at = 0; at < n; ++at) {
      std::string control = plain;
      control[at] = '\x1f';
      EXPECT_FALSE(valid("\"" + control + "\"")) << n << " at " << at;
      EXPECT_FALSE(valid("[\"" + control + "\"," + std::string(30, '1') + "]"))
          << n << " at " << at;
      std::string quote = plain;
      quote.insert(at, "\\\"");
      EXPECT_TRUE(valid("\"" + quote + "\"")) << n << " at " << at;
      std::string utf8 = plain;
      utf8.replace(at, 1, "\xc3\xa9");
      EXPECT_TRUE(valid("[\"" + utf8 + "\"," + std::string(30, '1') + "]")) << n << " at " << at;
      std::string bad_utf8 = plain;
      bad_utf8[at] = '\xc3';
      EXPECT_FALSE(valid("\"" + bad_utf8 + "\"")) << n << " at " << at;
      std::string closed = plain;
      closed[at] = '"';  // the string ends there: the rest is not JSON
      EXPECT_FALSE(valid("\"" + closed + "\"")) << n << " at " << at;
    }
  }
}

TEST(JsonScanTest, KeysAndMembers) {
  Cursor cursor(R"({"a":"x y","b" : {"c":[1]},"d\u0041":2})");
  ASSERT_TRUE(cursor.consume('{'));
  std::string_view name;
  std::string_view value;
  bool escaped = true;
  ASSERT_TRUE(cursor.member(name, escaped, value, 1));
  EXPECT_EQ(name, "a");
  EXPECT_FALSE(escaped);
  EXPECT_EQ(value, "\"x y\"");
  ASSERT_TRUE(cursor.consume(','));
  ASSERT_TRUE(cursor.member(name, escaped, value, 1));
  EXPECT_EQ(name, "b");
  EXPECT_EQ(value, R"({"c":[1]})");
  ASSERT_TRUE(cursor.consume(','));
  ASSERT_TRUE(cursor.key(name, escaped));
  EXPECT_EQ(name, "d\\u0041");
  EXPECT_TRUE(escaped);
  ASSERT_TRUE(cursor.value(value, 1));
  EXPECT_EQ(value, "2");
  ASSERT_TRUE(cursor.consume('}'));
  EXPECT_TRUE(cursor.atEnd());
  // Not a member: no name, no colon, no value, a bad value.
  for (const char* text : {"1:2", R"("a" 2)", R"("a":)", R"("a":tru)", R"("a":"b)"}) {
    Cursor c(text);
    EXPECT_FALSE(c.member(name, escaped, value, 1)) << text;
  }
  // The nesting limit holds for a member's value as for value().
  std::string deep = R"("a":)" + std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']');
  Cursor too_deep(deep);
  EXPECT_FALSE(too_deep.member(name, escaped, value, 1));
}

// A key given twice is "not handled here" in every object at every depth (the full parser,
// sdk::parseJson, refuses it naming the path): the fast path never passes it on.
TEST(JsonScanTest, AKeyGivenTwiceIsLeftToTheFullParser) {
  EXPECT_FALSE(valid(R"({"a":1,"a":2})"));
  EXPECT_FALSE(valid(R"({"a":1,"b":{"c":[{"d":1,"e":2,"d":3}]}})"));
  EXPECT_FALSE(valid(R"([0,{"x":{"y":{"z":1,"z":1}}}])"));
  EXPECT_FALSE(valid(R"({"context":{"consent":{"categoryPreferences":{"marketing":false,"marketing":true}}}})"));
  // Keys are compared as written: an escaped key may spell another, so it is not judged here.
  EXPECT_FALSE(valid(R"({"a":{"x":1,"\u0078":2}})"));
  EXPECT_FALSE(valid(R"({"a":{"\u0079":2}})"));
  // Equal keys in different objects, keys that share a length and their first and last eight
  // bytes (one hash), prefixes: all distinct.
  EXPECT_TRUE(valid(R"({"a":{"a":{"a":1}},"b":{"a":2},"c":[{"a":1},{"a":2}]})"));
  EXPECT_TRUE(valid(R"({"abcdefghXijklmnop":1,"abcdefghYijklmnop":2,"abc":3,"abcd":4,"ab":5,"":6})"));
  EXPECT_FALSE(valid(R"({"abcdefghXijklmnop":1,"abcdefghYijklmnop":2,"abcdefghXijklmnop":3})"));
  EXPECT_FALSE(valid(R"({"":1,"":2})"));
  // Up to KeySet::kMaxKeys keys are judged; beyond that the full parser decides.
  auto object = [](std::size_t n, std::size_t repeat) {
    std::string text = "{";
    for (std::size_t i = 0; i < n; ++i) {
      text += "\"key-" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    }
    return text + "\"key-" + std::to_string(repeat) + "\":0}";
  };
  EXPECT_TRUE(valid(object(KeySet::kMaxKeys - 1, KeySet::kMaxKeys + 7)));
  EXPECT_FALSE(valid(object(KeySet::kMaxKeys - 1, 17)));
  EXPECT_FALSE(valid(object(KeySet::kMaxKeys, KeySet::kMaxKeys + 7)));
  // topLevelMember: no longer "the last occurrence".
  EXPECT_EQ(topLevelMember(R"({"receivedAt":"a","receivedAt":"b"})", "receivedAt"), std::nullopt);
  EXPECT_EQ(topLevelMember(R"({"receivedAt":"a","x":{"receivedAt":"b"}})", "receivedAt"), "\"a\"");
}

TEST(JsonScanTest, KeySet) {
  KeySet keys;
  const std::string text = "alpha beta alpha";
  const std::string_view first(text.data(), 5);
  const std::string_view again(text.data() + 11, 5);  // the same key at another address
  EXPECT_TRUE(keys.insert(first, false));
  EXPECT_TRUE(keys.insert("beta", false));
  EXPECT_FALSE(keys.insert(again, false));
  EXPECT_FALSE(keys.insert("gamma", true));  // escaped: cannot tell
  KeySet full;
  std::vector<std::string> names;
  for (std::size_t i = 0; i <= KeySet::kMaxKeys; ++i) {
    names.push_back("k" + std::to_string(i));
  }
  for (std::size_t i = 0; i < KeySet::kMaxKeys; ++i) {
    EXPECT_TRUE(full.insert(names[i], false)) << i;
  }
  EXPECT_FALSE(full.insert(names[KeySet::kMaxKeys], false));  // full: cannot tell
}

}  // namespace
}  // namespace junction::sdk::json_scan
