#include "junction/sdk/event.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "junction/sdk/json.h"

namespace junction::sdk {

namespace json = boost::json;

const json::object& Event::body() const {
  if (!parsed_) {
    boost::system::error_code ec;
    json::value v = json::parse(json_, ec);
    if (!ec && v.is_object()) {
      parsed_ = std::make_shared<const json::object>(std::move(v.as_object()));
    } else {
      parsed_ = std::make_shared<const json::object>();
    }
  }
  return *parsed_;
}

namespace {

// Segment allows ids as strings or numbers; they are routed as strings.
std::optional<std::string> idField(const json::object& body, std::string_view key) {
  const json::value* v = body.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return std::nullopt;
  }
  if (v->is_string()) {
    return std::string(v->as_string());
  }
  if (v->is_int64()) {
    return std::to_string(v->as_int64());
  }
  if (v->is_uint64()) {
    return std::to_string(v->as_uint64());
  }
  return std::string();  // present but of a wrong type: reported by the caller
}

bool isIdLike(const json::object& body, std::string_view key) {
  const json::value* v = body.if_contains(key);
  return v == nullptr || v->is_null() || v->is_string() || v->is_int64() || v->is_uint64();
}

const char* requiredFieldFor(EventType type) {
  switch (type) {
    case EventType::Track:
      return "event";
    case EventType::Alias:
      return "previousId";
    case EventType::Group:
      return "groupId";
    default:
      return nullptr;
  }
}

}  // namespace

Result<Event> makeEvent(const json::object& body, std::string_view source_id) {
  const json::value* type_value = body.if_contains("type");
  if (type_value == nullptr || !type_value->is_string()) {
    return makeError(ErrorCode::InvalidArgument, "missing \"type\"");
  }
  auto type = parseEventType(type_value->as_string());
  if (!type) {
    return makeError(ErrorCode::InvalidArgument,
                     "unknown \"type\": expected track, identify, page, screen, group or alias");
  }
  for (const char* key : {"userId", "anonymousId", "messageId"}) {
    if (!isIdLike(body, key)) {
      return makeError(ErrorCode::InvalidArgument,
                       std::string("\"") + key + "\" must be a string or a number");
    }
  }
  EventHeader h;
  h.type = *type;
  h.user_id = idField(body, "userId").value_or("");
  h.anonymous_id = idField(body, "anonymousId").value_or("");
  h.message_id = idField(body, "messageId").value_or("");
  if (h.user_id.empty() && h.anonymous_id.empty()) {
    return makeError(ErrorCode::InvalidArgument, "missing \"userId\" or \"anonymousId\"");
  }
  if (const char* required = requiredFieldFor(h.type)) {
    const json::value* v = body.if_contains(required);
    bool present = v != nullptr && ((v->is_string() && !v->as_string().empty()) ||
                                    v->is_int64() || v->is_uint64());
    if (!present) {
      return makeError(ErrorCode::InvalidArgument, std::string(toString(h.type)) +
                                                       " event without \"" + required + "\"");
    }
  }
  const char* name_key = h.type == EventType::Track ? "event"
                         : (h.type == EventType::Page || h.type == EventType::Screen) ? "name"
                                                                                       : nullptr;
  if (name_key != nullptr) {
    if (const json::value* v = body.if_contains(name_key); v != nullptr && v->is_string()) {
      h.name = std::string(v->as_string());
    }
  }
  if (const json::value* ts = body.if_contains("timestamp"); ts != nullptr && ts->is_string()) {
    if (auto ms = parseIsoTimestamp(ts->as_string())) {
      h.timestamp_ms = *ms;
    } else {
      return makeError(ErrorCode::InvalidArgument, "\"timestamp\" is not an ISO-8601 date-time");
    }
  }
  h.source_id = std::string(source_id);
  auto text = sdk::serialize(body);  // checked: a non-finite number is an error, never `Infinity`
  if (!text) {
    return std::move(text).error();
  }
  return Event(std::move(h), std::move(text).value());
}

namespace {

bool readDigits(std::string_view s, std::size_t& pos, std::size_t count, int& out) {
  if (pos + count > s.size()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data() + pos, s.data() + pos + count, out);
  if (ec != std::errc() || ptr != s.data() + pos + count) {
    return false;
  }
  pos += count;
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// The instant of a date-time read from text, or nullopt when a field is out of range (both
// parsers below check the same bounds; a 60th second is allowed for leap seconds).
struct DateTimeFields {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, millis = 0;
  int offset_minutes = 0;
};
std::optional<std::int64_t> toEpochMs(const DateTimeFields& f) noexcept {
  if (f.month < 1 || f.month > 12 || f.day < 1 || f.day > 31 || f.hour > 23 || f.minute > 59 ||
      f.second > 60) {
    return std::nullopt;
  }
  const std::int64_t days =
      daysFromCivil(f.year, static_cast<unsigned>(f.month), static_cast<unsigned>(f.day));
  const std::int64_t secs =
      days * 86400 + f.hour * 3600 + f.minute * 60 + f.second - f.offset_minutes * 60;
  return secs * 1000 + f.millis;
}

// "2026-11-28T15:11:01.123Z", the form every SDK sends, read at fixed positions. nullopt for
// anything else, including out-of-range fields: the general parser then decides (and refuses
// those too).
std::optional<std::int64_t> parseCanonicalTimestamp(std::string_view s) noexcept {
  if (s.size() != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[23] != 'Z') {
    return std::nullopt;
  }
  bool digits = true;
  auto num = [&](std::size_t at, std::size_t count) {
    int v = 0;
    for (std::size_t i = at; i < at + count; ++i) {
      const unsigned d = static_cast<unsigned char>(s[i]) - '0';
      digits = digits && d <= 9;
      v = v * 10 + static_cast<int>(d <= 9 ? d : 0);  // no overflow on a non-digit
    }
    return v;
  };
  DateTimeFields f;
  f.year = num(0, 4);
  f.month = num(5, 2);
  f.day = num(8, 2);
  f.hour = num(11, 2);
  f.minute = num(14, 2);
  f.second = num(17, 2);
  f.millis = num(20, 3);
  return digits ? toEpochMs(f) : std::nullopt;
}

}  // namespace

std::optional<std::int64_t> parseIsoTimestamp(std::string_view s) noexcept {
  if (auto canonical = parseCanonicalTimestamp(s)) {
    return canonical;
  }
  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!readDigits(s, pos, 4, year) || !expect(s, pos, '-') || !readDigits(s, pos, 2, month) ||
      !expect(s, pos, '-') || !readDigits(s, pos, 2, day)) {
    return std::nullopt;
  }
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
    ++pos;
    if (!readDigits(s, pos, 2, hour) || !expect(s, pos, ':') || !readDigits(s, pos, 2, minute)) {
      return std::nullopt;
    }
    if (expect(s, pos, ':') && !readDigits(s, pos, 2, second)) {
      return std::nullopt;
    }
  }
  int millis = 0;
  if (expect(s, pos, '.') || expect(s, pos, ',')) {
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) {
        millis = millis * 10 + (s[pos] - '0');
      }
      ++digits;
      ++pos;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    for (int i = digits; i < 3; ++i) {
      millis *= 10;
    }
  }
  int offset_minutes = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int sign = s[pos] == '-' ? -1 : 1;
      ++pos;
      int oh = 0, om = 0;
      if (!readDigits(s, pos, 2, oh)) {
        return std::nullopt;
      }
      expect(s, pos, ':');
      if (pos < s.size() && !readDigits(s, pos, 2, om)) {
        return std::nullopt;
      }
      offset_minutes = sign * (oh * 60 + om);
    }
  }
  if (pos != s.size()) {
    return std::nullopt;
  }
  return toEpochMs({year, month, day, hour, minute, second, millis, offset_minutes});
}

namespace {

// "00", "01", ... "99": two digits per lookup instead of a division per digit.
constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

char* writePair(char* p, unsigned value) noexcept {
  std::memcpy(p, kDigitPairs + 2 * value, 2);
  return p + 2;
}

struct CivilDate {
  std::int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's civil_from_days;
// the inverse of daysFromCivil above).
CivilDate civilFromDays(std::int64_t days) noexcept {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned day = doy - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

// Floor division: rounds toward negative infinity, without the overflow of (a - (b - 1)) / b.
std::int64_t floorDiv(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t q = a / b;
  return (a % b < 0) ? q - 1 : q;
}

// Years outside 0..9999 (which "%04d" pads or widens): the original formatting, kept so that
// their text does not change. Not a hot path.
std::size_t formatIsoTimestampSlow(std::int64_t secs, int millis, char* out) noexcept {
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  int n = std::snprintf(out, kIsoTimestampMaxSize, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, millis);
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

}  // namespace

std::size_t formatIsoTimestamp(std::int64_t epoch_ms, char* out) noexcept {
  const std::int64_t secs = floorDiv(epoch_ms, 1000);
  const int millis = static_cast<int>(epoch_ms - secs * 1000);
  const std::int64_t days = floorDiv(secs, 86400);
  const CivilDate date = civilFromDays(days);
  if (date.year < 0 || date.year > 9999) {
    return formatIsoTimestampSlow(secs, millis, out);
  }
  const auto second_of_day = static_cast<unsigned>(secs - days * 86400);
  const auto year = static_cast<unsigned>(date.year);
  char* p = out;
  p = writePair(p, year / 100);
  p = writePair(p, year % 100);
  *p++ = '-';
  p = writePair(p, date.month);
  *p++ = '-';
  p = writePair(p, date.day);
  *p++ = 'T';
  p = writePair(p, second_of_day / 3600);
  *p++ = ':';
  p = writePair(p, second_of_day / 60 % 60);
  *p++ = ':';
  p = writePair(p, second_of_day % 60);
  *p++ = '.';
  *p++ = static_cast<char>('0' + millis / 100);
  p = writePair(p, static_cast<unsigned>(millis % 100));
  *p++ = 'Z';
  *p = '\0';
  return static_cast<std::size_t>(p - out);
}

std::string formatIsoTimestamp(std::int64_t epoch_ms) {
  char buf[kIsoTimestampMaxSize];
  return std::string(buf, formatIsoTimestamp(epoch_ms, buf));
}

namespace {

// Byte b as two lower-case hex digits at [2 * b, 2 * b + 1]: one lookup per byte.
constexpr auto kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<char, 512> pairs{};
  for (std::size_t b = 0; b < 256; ++b) {
    pairs[2 * b] = kHex[b >> 4];
    pairs[2 * b + 1] = kHex[b & 0xf];
  }
  return pairs;
}();

// Bytes [first, last) of `word`, most significant first, as hex.
char* writeHexBytes(char* p, std::uint64_t word, int first, int last) noexcept {
  for (int i = first; i < last; ++i) {
    std::memcpy(p, &kHexPairs[2 * ((word >> (56 - 8 * i)) & 0xff)], 2);
    p += 2;
  }
  return p;
}

}  // namespace

std::string makeUuidV4() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }()};
  std::uint64_t hi = rng();
  std::uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char text[36];
  char* p = writeHexBytes(text, hi, 0, 4);
  *p++ = '-';
  p = writeHexBytes(p, hi, 4, 6);
  *p++ = '-';
  p = writeHexBytes(p, hi, 6, 8);
  *p++ = '-';
  p = writeHexBytes(p, lo, 0, 2);
  *p++ = '-';
  writeHexBytes(p, lo, 2, 8);
  return std::string(text, sizeof text);
}

}  // namespace junction::sdk
