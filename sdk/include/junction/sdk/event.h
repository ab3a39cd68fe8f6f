#pragma once

// The event model: Segment Spec events, kept as the JSON received plus a small parsed header so
// that routing never re-parses the body.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
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
// `timestamp_ms` is read from `timestamp` (ISO-8601) when present.
Result<Event> makeEvent(const boost::json::object& body, std::string_view source_id);

// Parses an ISO-8601 / RFC 3339 date-time ("2026-11-28T15:11:01.123Z", offsets allowed) into
// Unix epoch milliseconds.
std::optional<std::int64_t> parseIsoTimestamp(std::string_view text) noexcept;

// Formats Unix epoch milliseconds as "2026-11-28T15:11:01.123Z".
std::string formatIsoTimestamp(std::int64_t epoch_ms);

}  // namespace junction::sdk
