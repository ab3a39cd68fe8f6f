#pragma once

// The event model: Segment Spec events, kept as the JSON received plus a small parsed header so
// that routing never re-parses the body.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "junction/sdk/result.h"

namespace junction::sdk {

enum class EventType : std::uint8_t { Track, Identify, Page, Screen, Group, Alias };

// "track" -> Track, ... Case-sensitive, as the Segment Spec writes them.
std::optional<EventType> parseEventType(std::string_view name) noexcept;
const char* toString(EventType type) noexcept;

// The fields routing needs, parsed once at ingest. Times are Unix epoch milliseconds (UTC).
struct EventHeader {
  EventType type = EventType::Track;
  std::string message_id;    // idempotency key, end to end
  std::string user_id;       // may be empty
  std::string anonymous_id;  // may be empty; at least one of user_id/anonymous_id is set
  std::string name;          // track: `event`; page/screen: `name`; otherwise empty
  std::string source_id;     // id of the source connector that accepted it
  std::int64_t timestamp_ms = 0;    // when it happened (client clock, skew-corrected)
  std::int64_t received_at_ms = 0;  // when the daemon accepted it

  // The person this event belongs to: userId, else anonymousId. Ordering is per person.
  const std::string& personKey() const noexcept {
    return user_id.empty() ? anonymous_id : user_id;
  }
};

// One event: header + JSON body as received (plus enrichment). Immutable once built.
//
// Thread-safety: an Event is used by one thread at a time. The daemon never shares one between
// threads: each destination reads its own copy from the queue. `body()` parses lazily and
// caches; copies made afterwards share the parsed body read-only.
class Event {
 public:
  Event() = default;
  Event(EventHeader header, std::string json) noexcept
      : header_(std::move(header)), json_(std::move(json)) {}

  const EventHeader& header() const noexcept { return header_; }
  EventType type() const noexcept { return header_.type; }
  const std::string& messageId() const noexcept { return header_.message_id; }
  const std::string& userId() const noexcept { return header_.user_id; }
  const std::string& anonymousId() const noexcept { return header_.anonymous_id; }
  const std::string& name() const noexcept { return header_.name; }

  // The JSON text of the event (a Segment Spec object).
  std::string_view json() const noexcept { return json_; }

  // The parsed JSON body. Parsed on first use and cached. An event whose text is not a JSON
  // object (which ingest never produces) yields an empty object.
  const boost::json::object& body() const;

 private:
  EventHeader header_;
  std::string json_;
  mutable std::shared_ptr<const boost::json::object> parsed_;
};

// Builds an Event from a Segment Spec JSON object: checks `type`, that `userId` or
// `anonymousId` is present (strings or numbers), that `track` has `event`, `alias` has
// `previousId`, `group` has `groupId`; fills the header. Does not enrich (no messageId or
// timestamps are invented here) — `header.message_id` stays empty when the body has none.
// `timestamp_ms` is read from `timestamp` (ISO-8601) when present. A number that is not
// finite (NaN, ±infinity) is InvalidArgument naming its path: the event's text is always JSON.
Result<Event> makeEvent(const boost::json::object& body, std::string_view source_id);

// Parses an ISO-8601 / RFC 3339 date-time ("2026-11-28T15:11:01.123Z", offsets allowed) into
// Unix epoch milliseconds.
std::optional<std::int64_t> parseIsoTimestamp(std::string_view text) noexcept;

// Formats Unix epoch milliseconds as "2026-11-28T15:11:01.123Z" (UTC, proleptic Gregorian;
// a negative epoch_ms counts back from 1970, and its milliseconds round toward the earlier
// second: -1 is "1969-12-31T23:59:59.999Z"). Years outside 0..9999 are written as
// printf's "%04d" would ("-001", "10000"). Thread-safe.
std::string formatIsoTimestamp(std::int64_t epoch_ms);

// The size of a buffer that holds any formatIsoTimestamp() output with its terminating NUL.
inline constexpr std::size_t kIsoTimestampMaxSize = 32;

// The same text, written into `out` without allocating: `out` must hold at least
// kIsoTimestampMaxSize bytes. Writes a terminating NUL and returns the length without it
// (24 for years 0..9999). Thread-safe; for hot paths.
std::size_t formatIsoTimestamp(std::int64_t epoch_ms, char* out) noexcept;

// A random RFC 4122 version 4 UUID in lower-case hex, 8-4-4-4-12
// ("f47ac10b-58cc-4372-a567-0e02b2c3d479"), as Segment's libraries make messageIds. Each
// thread draws from its own generator, seeded from std::random_device on the thread's first
// call: thread-safe, not for secrets.
std::string makeUuidV4();

}  // namespace junction::sdk
