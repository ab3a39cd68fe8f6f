// clipReason: reasons quoting a vendor's answer are cut without splitting a UTF-8 character.

#include "junction/sdk/text.h"

#include <gtest/gtest.h>

namespace junction::sdk {
namespace {

TEST(ClipReasonTest, ShortTextIsKept) { EXPECT_EQ(clipReason("HTTP 400", 300), "HTTP 400"); }

TEST(ClipReasonTest, LongTextIsCutAndMarked) {
  EXPECT_EQ(clipReason(std::string(10, 'a'), 4), "aaaa...");
}

TEST(ClipReasonTest, ACutNeverSplitsAUtf8Character) {
  // "é" is C3 A9: a cut after the C3 would leave half a character (found by the vendor
  // response fuzzer: Mailchimp's `detail` of many "é" clipped at 300 bytes).
  EXPECT_EQ(clipReason("a\xC3\xA9\xC3\xA9", 2), "a...");
  EXPECT_EQ(clipReason("a\xC3\xA9\xC3\xA9", 3), "a\xC3\xA9...");
  // A four-byte character (U+1F600) cut anywhere inside backs off to its start.
  for (std::size_t max = 1; max <= 3; ++max) {
    EXPECT_EQ(clipReason("\xF0\x9F\x98\x80" "b", max), "...") << max;
  }
  EXPECT_EQ(clipReason("\xF0\x9F\x98\x80" "b", 4), "\xF0\x9F\x98\x80...");
}

TEST(PercentEncodingTest, KeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(percentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(percentEncode("a b/c?d&e=f+g%"), "a%20b%2Fc%3Fd%26e%3Df%2Bg%25");
  EXPECT_EQ(percentEncode("\xC3\xA9"), "%C3%A9");
}

TEST(PercentEncodingTest, DecodesWhatItEncodes) {
  const std::string text = "SELECT Id FROM Contact WHERE Email = 'a+b@c.d' & 100%";
  EXPECT_EQ(percentDecode(percentEncode(text)), text);
  EXPECT_EQ(percentDecode(percentEncode(text), true), text);
}

TEST(PercentEncodingTest, MalformedSequencesAreKept) {
  EXPECT_EQ(percentDecode("100%"), "100%");
  EXPECT_EQ(percentDecode("%4"), "%4");
  EXPECT_EQ(percentDecode("%zz%41"), "%zzA");
  EXPECT_EQ(percentDecode("a+b"), "a+b");
  EXPECT_EQ(percentDecode("a+b", true), "a b");
}

TEST(FormValueTest, FindsDecodedValues) {
  const std::string form = "grant_type=client_credentials&client_id=abc%2B1&empty=&flag&q=a+b";
  EXPECT_EQ(formValue(form, "grant_type"), "client_credentials");
  EXPECT_EQ(formValue(form, "client_id"), "abc+1");
  EXPECT_EQ(formValue(form, "empty"), "");
  EXPECT_EQ(formValue(form, "flag"), "");
  EXPECT_EQ(formValue(form, "q"), "a b");
  EXPECT_EQ(formValue(form, "client"), std::nullopt);
  EXPECT_EQ(formValue("", "q"), std::nullopt);
}

}  // namespace
}  // namespace junction::sdk
