// The schedule calculator on real 2026 dates: slots of every/at in UTC and in zones with DST
// (Europe/Berlin, America/New_York, Australia/Lord_Howe's 30-minute shift) or a half-hour offset
// (Asia/Kolkata), across both DST changes, with the UTC instants written out; and what
// makeSchedule refuses.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "core/sync/schedule.h"

namespace junction::core::sync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kDay = 86'400'000;

// Epoch ms of a UTC date and time.
std::int64_t utc(int y, unsigned m, unsigned d, int h = 0, int min = 0) {
  using namespace std::chrono;
  const sys_days day{year{y} / month{m} / std::chrono::day{d}};
  return duration_cast<milliseconds>((day + hours{h} + minutes{min}).time_since_epoch()).count();
}

// "2026-03-29T01:00Z", so that a failure reads as a time.
std::string iso(std::int64_t ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> tp{milliseconds(ms)};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  char out[32];
  std::snprintf(out, sizeof out, "%04d-%02u-%02uT%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()));
  return out;
}

Schedule schedule(std::int64_t every_ms, int at_minute, std::string timezone) {
  auto s = makeSchedule(every_ms, at_minute, std::move(timezone));
  EXPECT_TRUE(s.ok()) << s.error().message;
  return s.ok() ? *s : Schedule{kHour, 0, "UTC"};
}

// The runs strictly after `from` and before `until`.
std::vector<std::string> runs(const Schedule& s, std::int64_t from, std::int64_t until) {
  std::vector<std::string> out;
  for (std::int64_t t = nextRun(s, from); t < until; t = nextRun(s, t)) {
    out.push_back(iso(t));
  }
  return out;
}

std::size_t countRuns(const Schedule& s, std::int64_t from, std::int64_t until) {
  std::size_t n = 0;
  for (std::int64_t t = nextRun(s, from); t < until; t = nextRun(s, t)) {
    ++n;
  }
  return n;
}

TEST(ScheduleTest, HourlyInUtcRunsOnTheHourStrictlyAfter) {
  const auto s = schedule(kHour, 0, "UTC");
  EXPECT_EQ(iso(nextRun(s, utc(2026, 3, 1, 10, 15))), "2026-03-01T11:00Z");
  EXPECT_EQ(iso(nextRun(s, utc(2026, 3, 1, 11))), "2026-03-01T12:00Z");
  EXPECT_EQ(iso(nextRun(s, utc(2026, 3, 1, 11) - 1)), "2026-03-01T11:00Z");
  EXPECT_EQ(iso(nextRun(s, utc(2026, 12, 31, 23, 30))), "2027-01-01T00:00Z");
}

TEST(ScheduleTest, SlotsWrapThroughTheDayFromTheAnchor) {
  EXPECT_THAT(runs(schedule(6 * kHour, 2 * 60, "UTC"), utc(2026, 5, 1), utc(2026, 5, 2, 3)),
              ElementsAre("2026-05-01T02:00Z", "2026-05-01T08:00Z", "2026-05-01T14:00Z",
                          "2026-05-01T20:00Z", "2026-05-02T02:00Z"));
  // at 22:00 every 6h is the same day as at 04:00: 04:00, 10:00, 16:00, 22:00.
  EXPECT_THAT(runs(schedule(6 * kHour, 22 * 60, "UTC"), utc(2026, 5, 1), utc(2026, 5, 2)),
              ElementsAre("2026-05-01T04:00Z", "2026-05-01T10:00Z", "2026-05-01T16:00Z",
                          "2026-05-01T22:00Z"));
  EXPECT_THAT(runs(schedule(15 * kMinute, 5, "UTC"), utc(2026, 5, 1, 9), utc(2026, 5, 1, 10)),
              ElementsAre("2026-05-01T09:05Z", "2026-05-01T09:20Z", "2026-05-01T09:35Z",
                          "2026-05-01T09:50Z"));
  EXPECT_THAT(runs(schedule(kDay, 2 * 60 + 30, "UTC"), utc(2026, 5, 1, 3), utc(2026, 5, 4)),
              ElementsAre("2026-05-02T02:30Z", "2026-05-03T02:30Z"));
}

TEST(ScheduleTest, BerlinHourlyHas23RunsOnTheSpringDay) {
  const auto s = schedule(kHour, 0, "Europe/Berlin");
  // 2026-03-29 local: 00:00 CET is 2026-03-28T23:00Z, the next midnight (CEST) 22:00Z.
  const auto day = runs(s, utc(2026, 3, 28, 23) - 1, utc(2026, 3, 29, 22));
  // 02:00 does not exist: it runs at the end of the gap, 03:00 CEST, together with 03:00.
  EXPECT_THAT(std::vector(day.begin(), day.begin() + 4),
              ElementsAre("2026-03-28T23:00Z", "2026-03-29T00:00Z", "2026-03-29T01:00Z",
                          "2026-03-29T02:00Z"));
  EXPECT_EQ(day.size(), 23u);
  EXPECT_EQ(day.back(), "2026-03-29T21:00Z");
}

TEST(ScheduleTest, BerlinHourlyHas24RunsOnTheFallDay) {
  const auto s = schedule(kHour, 0, "Europe/Berlin");
  // 2026-10-25 local: 00:00 CEST is 2026-10-24T22:00Z, the next midnight (CET) 23:00Z.
  const auto day = runs(s, utc(2026, 10, 24, 22) - 1, utc(2026, 10, 25, 23));
  // 02:00 happens twice (00:00Z in CEST, 01:00Z in CET): it runs at the first only.
  EXPECT_THAT(std::vector(day.begin(), day.begin() + 5),
              ElementsAre("2026-10-24T22:00Z", "2026-10-24T23:00Z", "2026-10-25T00:00Z",
                          "2026-10-25T02:00Z", "2026-10-25T03:00Z"));
  EXPECT_EQ(day.size(), 24u);
  EXPECT_EQ(day.back(), "2026-10-25T22:00Z");
}

TEST(ScheduleTest, BerlinSlotsInTheGapAndTheRepeatedHour) {
  // every 6h at 02:00: 02:00 falls in the gap on 2026-03-29 and runs at 03:00 CEST.
  EXPECT_THAT(runs(schedule(6 * kHour, 2 * 60, "Europe/Berlin"), utc(2026, 3, 28, 18),
                   utc(2026, 3, 29, 23)),
              ElementsAre("2026-03-28T19:00Z", "2026-03-29T01:00Z", "2026-03-29T06:00Z",
                          "2026-03-29T12:00Z", "2026-03-29T18:00Z"));
  // Daily at 02:30: in the gap it runs at 03:00 CEST; in the repeated hour at 02:30 CEST.
  const auto daily = schedule(kDay, 2 * 60 + 30, "Europe/Berlin");
  EXPECT_THAT(runs(daily, utc(2026, 3, 27, 12), utc(2026, 3, 31)),
              ElementsAre("2026-03-28T01:30Z", "2026-03-29T01:00Z", "2026-03-30T00:30Z"));
  EXPECT_THAT(runs(daily, utc(2026, 10, 23, 12), utc(2026, 10, 27)),
              ElementsAre("2026-10-24T00:30Z", "2026-10-25T00:30Z", "2026-10-26T01:30Z"));
  // Asked from inside the repeated hour, after its first occurrence: not again.
  EXPECT_EQ(iso(nextRun(daily, utc(2026, 10, 25, 1, 10))), "2026-10-26T01:30Z");
}

TEST(ScheduleTest, NewYorkAcrossBothChanges) {
  const auto hourly = schedule(kHour, 0, "America/New_York");
  // 2026-03-08: 01:59 EST is followed by 03:00 EDT (07:00Z); 02:00 and 03:00 run at 07:00Z.
  const auto spring = runs(hourly, utc(2026, 3, 8, 5) - 1, utc(2026, 3, 9, 4));
  EXPECT_THAT(std::vector(spring.begin(), spring.begin() + 4),
              ElementsAre("2026-03-08T05:00Z", "2026-03-08T06:00Z", "2026-03-08T07:00Z",
                          "2026-03-08T08:00Z"));
  EXPECT_EQ(spring.size(), 23u);
  // 2026-11-01: 01:00-01:59 happens twice (05:00Z EDT, 06:00Z EST); 01:00 runs once, at 05:00Z.
  const auto fall = runs(hourly, utc(2026, 11, 1, 4) - 1, utc(2026, 11, 2, 5));
  EXPECT_THAT(std::vector(fall.begin(), fall.begin() + 4),
              ElementsAre("2026-11-01T04:00Z", "2026-11-01T05:00Z", "2026-11-01T07:00Z",
                          "2026-11-01T08:00Z"));
  EXPECT_EQ(fall.size(), 24u);

  // Every 15 minutes: the four slots of the gap and 03:00 are one run.
  EXPECT_THAT(runs(schedule(15 * kMinute, 0, "America/New_York"), utc(2026, 3, 8, 6, 30),
                   utc(2026, 3, 8, 7, 31)),
              ElementsAre("2026-03-08T06:45Z", "2026-03-08T07:00Z", "2026-03-08T07:15Z",
                          "2026-03-08T07:30Z"));
  // Daily at 01:30 on the fall day: the first 01:30 (EDT).
  EXPECT_THAT(runs(schedule(kDay, 90, "America/New_York"), utc(2026, 10, 31), utc(2026, 11, 3)),
              ElementsAre("2026-10-31T05:30Z", "2026-11-01T05:30Z", "2026-11-02T06:30Z"));
}

TEST(ScheduleTest, KolkataHalfHourOffset) {
  // +05:30, no DST: local hours are UTC half hours.
  EXPECT_THAT(runs(schedule(kHour, 0, "Asia/Kolkata"), utc(2026, 6, 1), utc(2026, 6, 1, 3)),
              ElementsAre("2026-06-01T00:30Z", "2026-06-01T01:30Z", "2026-06-01T02:30Z"));
  EXPECT_THAT(runs(schedule(kHour, 15, "Asia/Kolkata"), utc(2026, 6, 1), utc(2026, 6, 1, 2)),
              ElementsAre("2026-06-01T00:45Z", "2026-06-01T01:45Z"));
  EXPECT_THAT(runs(schedule(kDay, 0, "Asia/Kolkata"), utc(2026, 6, 1), utc(2026, 6, 3)),
              ElementsAre("2026-06-01T18:30Z", "2026-06-02T18:30Z"));
}

TEST(ScheduleTest, LordHoweThirtyMinuteShift) {
  const auto s = schedule(30 * kMinute, 0, "Australia/Lord_Howe");
  // 2026-10-04: 01:59 (+10:30) is followed by 02:30 (+11) at 2026-10-03T15:30Z; the 02:00 slot
  // runs then, with 02:30.
  EXPECT_THAT(runs(s, utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16, 31)),
              ElementsAre("2026-10-03T15:00Z", "2026-10-03T15:30Z", "2026-10-03T16:00Z",
                          "2026-10-03T16:30Z"));
  // 2026-04-05: 01:59 (+11) is followed by 01:30 (+10:30) at 2026-04-04T15:00Z; 01:30 runs once,
  // at 14:30Z.
  EXPECT_THAT(runs(s, utc(2026, 4, 4, 13, 30), utc(2026, 4, 4, 16, 1)),
              ElementsAre("2026-04-04T14:00Z", "2026-04-04T14:30Z", "2026-04-04T15:30Z",
                          "2026-04-04T16:00Z"));
}

TEST(ScheduleTest, AYearOfHourlyRunsMissesNoSlot) {
  const std::int64_t from = utc(2026, 1, 1) - 1;
  const std::int64_t until = utc(2027, 1, 1);
  // One run per hour of the year, less the spring hour that merges with the gap.
  EXPECT_EQ(countRuns(schedule(kHour, 0, "UTC"), from, until), 8760u);
  EXPECT_EQ(countRuns(schedule(kHour, 0, "Asia/Kolkata"), from, until), 8760u);
  EXPECT_EQ(countRuns(schedule(kHour, 0, "Europe/Berlin"), from, until), 8759u);
  EXPECT_EQ(countRuns(schedule(kHour, 0, "America/New_York"), from, until), 8759u);
  EXPECT_EQ(countRuns(schedule(kDay, 2 * 60 + 30, "Europe/Berlin"), from, until), 365u);
}

TEST(ScheduleTest, WholeDaysCountFromTheEpoch) {
  // 1970-01-01 and 2026-01-01 are Thursdays: every 7d runs on Thursdays.
  const auto weekly = schedule(7 * kDay, 9 * 60, "UTC");
  EXPECT_THAT(runs(weekly, utc(2026, 3, 2), utc(2026, 3, 20)),
              ElementsAre("2026-03-05T09:00Z", "2026-03-12T09:00Z", "2026-03-19T09:00Z"));
  // Local days: Thursday 02:30 in Berlin, before and after the spring change.
  EXPECT_THAT(runs(schedule(7 * kDay, 2 * 60 + 30, "Europe/Berlin"), utc(2026, 3, 20),
                   utc(2026, 4, 3)),
              ElementsAre("2026-03-26T01:30Z", "2026-04-02T00:30Z"));
  // Every 2d: even day numbers (2026-01-01 is day 20454).
  EXPECT_THAT(runs(schedule(2 * kDay, 0, "UTC"), utc(2026, 1, 1) - 1, utc(2026, 1, 6)),
              ElementsAre("2026-01-01T00:00Z", "2026-01-03T00:00Z", "2026-01-05T00:00Z"));
}

TEST(ScheduleTest, EveryMustDivideADayOrBeWholeDays) {
  for (std::int64_t every : {kMinute, 5 * kMinute, 15 * kMinute, 90 * kMinute, kHour, 6 * kHour,
                             12 * kHour, kDay, 2 * kDay, 7 * kDay, 365 * kDay}) {
    EXPECT_TRUE(makeSchedule(every, 0, "UTC").ok()) << every;
  }
  auto message = [](std::int64_t every) {
    auto s = makeSchedule(every, 0, "UTC");
    EXPECT_FALSE(s.ok()) << every;
    EXPECT_EQ(s.ok() ? sdk::ErrorCode::Internal : s.error().code, sdk::ErrorCode::InvalidArgument);
    return s.ok() ? std::string() : s.error().message;
  };
  EXPECT_EQ(message(7 * kHour), "every 7h does not divide 24h evenly (e.g. 5m, 15m, 1h, 6h, 12h)");
  EXPECT_EQ(message(25 * kMinute),
            "every 25m does not divide 24h evenly (e.g. 5m, 15m, 1h, 6h, 12h)");
  EXPECT_EQ(message(36 * kHour),
            "every 36h is longer than a day but not a whole number of days (e.g. 2d, 7d)");
  EXPECT_EQ(message(30'000), "every must be at least 1m, got 30s");
  EXPECT_EQ(message(0), "every must be at least 1m, got 0ms");
  EXPECT_EQ(message(-kHour), "every must be at least 1m, got -1h");
  EXPECT_EQ(message(400 * kDay), "every must be at most 365d, got 400d");
  EXPECT_FALSE(checkEvery(7 * kHour).ok());
  EXPECT_TRUE(checkEvery(kHour).ok());
}

TEST(ScheduleTest, AtAndTimezoneAreChecked) {
  for (int at : {-1, 1440}) {
    auto s = makeSchedule(kHour, at, "UTC");
    ASSERT_FALSE(s.ok()) << at;
    EXPECT_THAT(s.error().message, HasSubstr("at must be a minute of the day, 0 to 1439"));
  }
  for (const char* zone : {"Europe/Berln", "utc", ""}) {
    auto s = makeSchedule(kHour, 0, zone);
    ASSERT_FALSE(s.ok()) << zone;
    EXPECT_THAT(s.error().message, HasSubstr("unknown time zone '" + std::string(zone) + "'"));
  }
  EXPECT_TRUE(checkTimezone("US/Eastern").ok());  // links are zones too
  EXPECT_FALSE(checkTimezone("Mars/Olympus").ok());
  const auto names = timezoneNames();
  EXPECT_TRUE(std::binary_search(names.begin(), names.end(), "Europe/Berlin"));
  EXPECT_TRUE(std::binary_search(names.begin(), names.end(), "UTC"));
}

TEST(ScheduleTest, ParseAt) {
  EXPECT_EQ(*parseAt("02:00"), 120);
  EXPECT_EQ(*parseAt("2:00"), 120);
  EXPECT_EQ(*parseAt("00:00"), 0);
  EXPECT_EQ(*parseAt("23:59"), 1439);
  for (const char* bad : {"24:00", "2:60", "0200", "02:0", "002:00", "", " 02:00", "-1:00", "2pm",
                          "02:00:00"}) {
    auto at = parseAt(bad);
    ASSERT_FALSE(at.ok()) << bad;
    EXPECT_EQ(at.error().message,
              "expected a local time HH:MM from 00:00 to 23:59, got \"" + std::string(bad) + "\"");
  }
}

TEST(ScheduleTest, NextRunRefusesAScheduleMakeScheduleWouldRefuse) {
  EXPECT_THROW(nextRun(Schedule{7 * kHour, 0, "UTC"}, 0), std::invalid_argument);
  EXPECT_THROW(nextRun(Schedule{0, 0, "UTC"}, 0), std::invalid_argument);
  EXPECT_THROW(nextRun(Schedule{kHour, 1440, "UTC"}, 0), std::invalid_argument);
  EXPECT_THROW(nextRun(Schedule{kHour, 0, "Nowhere/City"}, 0), std::invalid_argument);
}

}  // namespace
}  // namespace junction::core::sync
