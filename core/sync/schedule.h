#pragma once

// When a scheduled destination runs (`sync: {mode: scheduled, every, at, timezone}`): run slots
// are wall-clock times in one IANA time zone, read from the OS database (/usr/share/zoneinfo)
// through Howard Hinnant's date/tz, since libstdc++ 12 has no std::chrono time zones.
//
// A schedule is a period `every` anchored at `at`, a local time:
//   - every < 24h must divide 24h exactly and be at least 1m (5m, 15m, 1h, 6h; not 7h). Each
//     local day has the slots at + k·every, wrapping through the day: every 6h at 02:00 runs at
//     02:00, 08:00, 14:00 and 20:00.
//   - every >= 24h must be a whole number n of days, at most 365d: one run at `at` on each local
//     day whose number since 1970-01-01 is a multiple of n. 1970-01-01 was a Thursday, so
//     every 7d runs on Thursdays (every 14d on every other one), whatever day the config was
//     written.
// Slots keep to the wall clock across DST changes:
//   - a slot that does not exist (the spring-forward gap) runs at the end of the gap, the first
//     instant after it; slots that land on the same instant run once;
//   - a slot that exists twice (fall back) runs once, at its first occurrence.
// So an hourly schedule in Europe/Berlin runs 23 times on 2026-03-29 (02:00 and 03:00 are both
// 01:00 UTC) and 24 times on 2026-10-25 (02:00 runs at 00:00 UTC, not again at 01:00 UTC):
// never two runs at one instant, never a slot skipped.
//
// Thread-safe: the zone database is loaded once, on first use, and never changes afterwards
// (a tzdata upgrade takes effect at the next start).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/result.h"

namespace junction::core::sync {

struct Schedule {
  std::int64_t every_ms = 0;
  int at_minute = 0;     // minutes after local midnight, 0..1439
  std::string timezone;  // an IANA name: "UTC", "Europe/Berlin"
};

// The schedule, when every_ms, at_minute and timezone follow the rules above. Otherwise
// InvalidArgument with a message naming the bad value (the same messages as checkEvery and
// checkTimezone).
sdk::Result<Schedule> makeSchedule(std::int64_t every_ms, int at_minute, std::string timezone);

// The first run strictly after `after_ms`, in ms since the epoch (UTC). Calling it again with
// the answer gives the run after that. `schedule` must pass makeSchedule's checks; otherwise
// throws std::invalid_argument.
std::int64_t nextRun(const Schedule& schedule, std::int64_t after_ms);

// makeSchedule's rules one at a time, for a caller that reports each value on its own (the
// configuration names the key).
sdk::Status checkEvery(std::int64_t every_ms);
sdk::Status checkTimezone(std::string_view name);

// "HH:MM" or "H:MM", 00:00 to 23:59, as minutes after midnight.
sdk::Result<int> parseAt(std::string_view text);

// Every zone name the OS database knows, sorted (for "did you mean" hints). Empty when the
// database cannot be read.
std::vector<std::string> timezoneNames();

}  // namespace junction::core::sync
