#include "junction/sdk/event.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>

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
  return Event(std::move(h), json::serialize(body));
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

}  // namespace

std::optional<std::int64_t> parseIsoTimestamp(std::string_view s) noexcept {
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
  if (pos != s.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::int64_t days = daysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return secs * 1000 + millis;
}

std::string formatIsoTimestamp(std::int64_t epoch_ms) {
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

}  // namespace junction::sdk
