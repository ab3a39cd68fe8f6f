#include "core/sync/schedule.h"

#include <date/tz.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <utility>

namespace junction::core::sync {

namespace {

using std::chrono::milliseconds;

constexpr std::int64_t kMinuteMs = 60'000;
constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kMaxEveryMs = 365 * kDayMs;

// "7h", "90m", "36h", "1500ms": in the largest unit that divides `ms`.
std::string formatDuration(std::int64_t ms) {
  static constexpr std::pair<std::int64_t, const char*> kUnits[] = {
      {kDayMs, "d"}, {kHourMs, "h"}, {kMinuteMs, "m"}, {1000, "s"}};
  for (const auto& [unit, name] : kUnits) {
    if (ms != 0 && ms % unit == 0) {
      return std::to_string(ms / unit) + name;
    }
  }
  return std::to_string(ms) + "ms";
}

sdk::Error invalid(std::string message) {
  return sdk::makeError(sdk::ErrorCode::InvalidArgument, std::move(message));
}

sdk::Status checkAtMinute(int at_minute) {
  if (at_minute < 0 || at_minute >= 24 * 60) {
    return invalid("at must be a minute of the day, 0 to 1439 (00:00 to 23:59), got " +
                   std::to_string(at_minute));
  }
  return {};
}

// nullptr when the name is unknown or the database cannot be read (checkTimezone says which).
const date::time_zone* findZone(std::string_view name) noexcept {
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// The instant a local wall-clock time runs at: itself when it exists once, its first
// occurrence when it exists twice, the end of the gap when it does not exist.
std::int64_t runInstant(const date::time_zone& zone, std::int64_t local_ms) {
  const date::local_time<milliseconds> local{milliseconds(local_ms)};
  const date::local_info info = zone.get_info(local);
  if (info.result == date::local_info::nonexistent) {
    return std::chrono::duration_cast<milliseconds>(info.second.begin.time_since_epoch()).count();
  }
  // unique, or ambiguous: `first` is the period before the change, i.e. the first occurrence.
  return local_ms - std::chrono::duration_cast<milliseconds>(info.first.offset).count();
}

}  // namespace

sdk::Status checkEvery(std::int64_t every_ms) {
  if (every_ms < kMinuteMs) {
    return invalid("every must be at least 1m, got " + formatDuration(every_ms));
  }
  if (every_ms < kDayMs && kDayMs % every_ms != 0) {
    return invalid("every " + formatDuration(every_ms) +
                   " does not divide 24h evenly (e.g. 5m, 15m, 1h, 6h, 12h)");
  }
  if (every_ms > kDayMs && every_ms % kDayMs != 0) {
    return invalid("every " + formatDuration(every_ms) +
                   " is longer than a day but not a whole number of days (e.g. 2d, 7d)");
  }
  if (every_ms > kMaxEveryMs) {
    return invalid("every must be at most 365d, got " + formatDuration(every_ms));
  }
  return {};
}

sdk::Status checkTimezone(std::string_view name) {
  try {
    date::get_tzdb();
  } catch (const std::exception& e) {
    return invalid(std::string("cannot read the time zone database: ") + e.what());
  }
  if (findZone(name) == nullptr) {
    return invalid("unknown time zone '" + std::string(name) +
                   "' (an IANA name such as UTC, Europe/Berlin or America/New_York)");
  }
  return {};
}

sdk::Result<int> parseAt(std::string_view text) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const std::size_t colon = text.find(':');
  const bool shaped = (colon == 1 || colon == 2) && text.size() == colon + 3 &&
                      std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(colon),
                                  digit) &&
                      digit(text[colon + 1]) && digit(text[colon + 2]);
  if (shaped) {
    int hour = 0;
    for (std::size_t i = 0; i < colon; ++i) {
      hour = hour * 10 + (text[i] - '0');
    }
    const int minute = (text[colon + 1] - '0') * 10 + (text[colon + 2] - '0');
    if (hour < 24 && minute < 60) {
      return hour * 60 + minute;
    }
  }
  return invalid("expected a local time HH:MM from 00:00 to 23:59, got \"" + std::string(text) +
                 "\"");
}

std::vector<std::string> timezoneNames() {
  std::vector<std::string> names;
  try {
    const date::tzdb& db = date::get_tzdb();
    // From the OS database, links (US/Eastern) are zones too.
    for (const auto& zone : db.zones) {
      names.emplace_back(zone.name());
    }
  } catch (const std::exception&) {
    return {};
  }
  std::sort(names.begin(), names.end());
  return names;
}

sdk::Result<Schedule> makeSchedule(std::int64_t every_ms, int at_minute, std::string timezone) {
  if (auto status = checkEvery(every_ms); !status) {
    return status.error();
  }
  if (auto status = checkAtMinute(at_minute); !status) {
    return status.error();
  }
  if (auto status = checkTimezone(timezone); !status) {
    return status.error();
  }
  return Schedule{every_ms, at_minute, std::move(timezone)};
}

std::int64_t nextRun(const Schedule& schedule, std::int64_t after_ms) {
  sdk::Status status = checkEvery(schedule.every_ms);
  if (status) {
    status = checkAtMinute(schedule.at_minute);
  }
  if (!status) {
    throw std::invalid_argument("sync::nextRun: " + status.message());
  }
  const date::time_zone* zone = findZone(schedule.timezone);
  if (zone == nullptr) {
    throw std::invalid_argument("sync::nextRun: unknown time zone '" + schedule.timezone + "'");
  }
  // On the local time line (ms since 1970-01-01 00:00 local, 86'400'000 to a day), the slots
  // are exactly the times ≡ phase (mod every): every < 24h divides the day, so each day
  // repeats the same slots; every >= 24h is n days, so the days are those ≡ 0 (mod n).
  const std::int64_t every = schedule.every_ms;
  const std::int64_t phase = schedule.at_minute * kMinuteMs % every;
  const std::int64_t local_after =
      zone->to_local(date::sys_time<milliseconds>(milliseconds(after_ms)))
          .time_since_epoch()
          .count();
  // runInstant never decreases along the local time line, so the answer is the first slot
  // whose instant is after `after_ms`: step back to a slot at or before it, then forward.
  std::int64_t slot = phase + floorDiv(local_after - phase, every) * every;
  while (runInstant(*zone, slot) > after_ms) {
    slot -= every;
  }
  std::int64_t run = 0;
  do {
    slot += every;
    run = runInstant(*zone, slot);
  } while (run <= after_ms);
  return run;
}

}  // namespace junction::core::sync
