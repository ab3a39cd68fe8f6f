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

}  // namespace
}  // namespace junction::sdk
