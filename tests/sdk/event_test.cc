#include "junction/sdk/event.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <regex>
#include <string>
#include <unordered_set>

namespace junction::sdk {
namespace {

// The gmtime_r + snprintf formatting that formatIsoTimestamp replaced: the reference its
// output must match byte for byte.
std::string referenceFormat(std::int64_t epoch_ms) {
  std::int64_t secs = epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000;
  int millis = static_cast<int>(epoch_ms - secs * 1000);
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

constexpr std::int64_t kYear0Ms = -62167219200000;      // 0000-01-01T00:00:00.000Z
constexpr std::int64_t kYear10000Ms = 253402300800000;  // 10000-01-01T00:00:00.000Z

// Both variants against the reference, and parseIsoTimestamp back to the same instant.
void expectFormats(std::int64_t epoch_ms) {
  const std::string expected = referenceFormat(epoch_ms);
  ASSERT_EQ(formatIsoTimestamp(epoch_ms), expected) << epoch_ms;
  char buf[kIsoTimestampMaxSize];
  ASSERT_EQ(formatIsoTimestamp(epoch_ms, buf), expected.size()) << epoch_ms;
  ASSERT_STREQ(buf, expected.c_str()) << epoch_ms;
  ASSERT_EQ(parseIsoTimestamp(expected), epoch_ms) << expected;
}

TEST(EventTest, FormatsIsoTimestampsAtTheEdges) {
  EXPECT_EQ(formatIsoTimestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimestamp(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(formatIsoTimestamp(-999), "1969-12-31T23:59:59.001Z");
  EXPECT_EQ(formatIsoTimestamp(-1000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(formatIsoTimestamp(-1001), "1969-12-31T23:59:58.999Z");
  EXPECT_EQ(formatIsoTimestamp(1764342661123), "2025-11-28T15:11:01.123Z");
  EXPECT_EQ(formatIsoTimestamp(951782400000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimestamp(-2203891200000), "1900-03-01T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimestamp(4107456000000), "2100-02-28T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimestamp(4107542400000), "2100-03-01T00:00:00.000Z");  // not a leap year
  EXPECT_EQ(formatIsoTimestamp(kYear0Ms), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimestamp(kYear10000Ms - 1), "9999-12-31T23:59:59.999Z");

  // Either side of the epoch, of a day, of 2000-02-29, 1900-03-01, 2100-02-28 and years 0..9999.
  const std::int64_t edges[] = {0, 1, -1, -999, -1000, -1001, 999, 1000, 86'399'999, 86'400'000,
                                -86'400'000, -86'400'001, 951'782'400'000, 951'868'799'999,
                                -2'203'891'200'000, -2'203'891'200'001, 4'107'456'000'000,
                                4'107'542'399'999, 4'107'542'400'000, kYear0Ms, kYear0Ms + 1,
                                kYear0Ms + 999, kYear10000Ms - 1000, kYear10000Ms - 1};
  for (std::int64_t ms : edges) {
    expectFormats(ms);
  }
}

TEST(EventTest, TheCanonicalTimestampFormAgreesWithTheOthersAndRefusesTheSame) {
  // "YYYY-MM-DDTHH:MM:SS.mmmZ" is read at fixed positions; other forms by the general parser.
  const std::int64_t t = 1764342661123;  // 2025-11-28T15:11:01.123Z
  EXPECT_EQ(parseIsoTimestamp("2025-11-28T15:11:01.123Z"), t);
  EXPECT_EQ(parseIsoTimestamp("2025-11-28T15:11:01.123+00:00"), t);
  EXPECT_EQ(parseIsoTimestamp("2025-11-28T16:11:01.123+01:00"), t);
  EXPECT_EQ(parseIsoTimestamp("2025-11-28t15:11:01.123z"), t);
  EXPECT_EQ(parseIsoTimestamp("2025-11-28T15:11:01.1230Z"), t);
  EXPECT_EQ(parseIsoTimestamp("2026-01-01T00:00:60.000Z"), parseIsoTimestamp("2026-01-01T00:01:00Z"));
  for (const char* bad : {"2026-13-01T00:00:00.000Z", "2026-00-01T00:00:00.000Z",
                          "2026-01-32T00:00:00.000Z", "2026-01-00T00:00:00.000Z",
                          "2026-01-01T24:00:00.000Z", "2026-01-01T00:60:00.000Z",
                          "2026-01-01T00:00:61.000Z", "2026-01-0aT00:00:00.000Z",
                          "2026-01-01T00:00:00.00aZ", "+026-01-01T00:00:00.000Z",
                          "2026-01-01T00:00:00.000X"}) {
    EXPECT_FALSE(parseIsoTimestamp(bad).has_value()) << bad;
  }
}

TEST(EventTest, FormatsIsoTimestampsLikeGmtimeAndSnprintf) {
  std::mt19937_64 rng(20261128);  // fixed: a failure reproduces
  std::uniform_int_distribution<std::int64_t> any_ms(kYear0Ms, kYear10000Ms - 1);
  // Around 1970 and now, where both the sign handling and real traffic are.
  std::uniform_int_distribution<std::int64_t> near_epoch(-5'000'000'000'000, 5'000'000'000'000);
  for (int i = 0; i < 1'000'000; ++i) {
    expectFormats(i % 4 == 0 ? near_epoch(rng) : any_ms(rng));
  }
  // Every day boundary of a 400-year cycle (1600..2000), and the millisecond either side.
  for (std::int64_t day = -135140; day <= 11016; ++day) {
    expectFormats(day * 86400000);
    expectFormats(day * 86400000 - 1);
  }
}

TEST(EventTest, FormatsYearsOutside0To9999AsPrintfDid) {
  // Out of the fast path: kept byte for byte; parseIsoTimestamp takes 4-digit years only.
  for (std::int64_t ms : {kYear0Ms - 1, kYear0Ms - 86400000 * std::int64_t{400}, kYear10000Ms,
                          kYear10000Ms + 123456789, std::int64_t{-100'000'000'000'000'000},
                          std::int64_t{100'000'000'000'000'000}}) {
    const std::string expected = referenceFormat(ms);
    EXPECT_EQ(formatIsoTimestamp(ms), expected) << ms;
    char buf[kIsoTimestampMaxSize];
    EXPECT_EQ(formatIsoTimestamp(ms, buf), expected.size()) << ms;
    EXPECT_STREQ(buf, expected.c_str()) << ms;
  }
  EXPECT_EQ(formatIsoTimestamp(kYear0Ms - 1), "-001-12-31T23:59:59.999Z");
  EXPECT_EQ(formatIsoTimestamp(kYear10000Ms), "10000-01-01T00:00:00.000Z");
}

TEST(EventTest, MakesVersion4Uuids) {
  const std::regex form("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::unordered_set<std::string> ids;
  constexpr int kCount = 100'000;
  for (int i = 0; i < kCount; ++i) {
    std::string id = makeUuidV4();
    if (i < 1000) {
      ASSERT_TRUE(std::regex_match(id, form)) << id;
    } else {
      ASSERT_EQ(id.size(), 36u);
      ASSERT_EQ(id[14], '4') << id;
      ASSERT_NE(std::string_view("89ab").find(id[19]), std::string_view::npos) << id;
    }
    ids.insert(std::move(id));
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kCount));
}

}  // namespace
}  // namespace junction::sdk
