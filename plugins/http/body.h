#pragma once

// The request side of the Segment HTTP Tracking API, as pure functions: which endpoint a path
// is, the body decoded from its Content-Encoding (with a limit on the decoded size: zip bombs),
// and the body parsed into events. No I/O; fuzzed by tests/plugins/http/fuzz.

#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::plugins::http {

enum class Endpoint { Track, Identify, Page, Screen, Group, Alias, Batch };

// "/v1/track" or "/v1/t" -> Track, ..., "/v1/batch" or "/v1/b" -> Batch.
std::optional<Endpoint> endpointForPath(std::string_view path) noexcept;
// Metric label: "track", ..., "batch".
const char* toString(Endpoint endpoint) noexcept;
// The event type a single-event endpoint imposes; nullopt for Batch.
std::optional<sdk::EventType> eventTypeOf(Endpoint endpoint) noexcept;

// Decodes `body` per `content_encoding` ("", identity, gzip, x-gzip, deflate: gzip or zlib
// streams are both recognized). Errors: InvalidArgument (unsupported encoding — the message
// says so — or a corrupt stream), ResourceExhausted (decoded size over `max_decoded_bytes`).
sdk::Result<std::string> decodeBody(std::string_view content_encoding, std::string body,
                                    std::size_t max_decoded_bytes);

// A parsed request body. Owns the JSON; `items()` are the events as sent (each should be an
// object; the caller reports those that are not).
class ParsedBody {
 public:
  ParsedBody() = default;
  ParsedBody(boost::json::value root, bool batch) : root_(std::move(root)), batch_(batch) {}

  std::span<boost::json::value> items() noexcept;
  bool isBatch() const noexcept { return batch_; }
  // Why item `index` must be refused though the body parsed (a key given twice, a number out of
  // a double's range: see sdk::JsonValueProblem), its path relative to the event; null when it
  // has none. Such an item's tree must not be used.
  const std::string* problemOf(std::size_t index) const noexcept;
  // Top-level `writeKey` (for a batch: of the body, else of its first event that has one).
  std::optional<std::string_view> writeKey() const noexcept;
  // Batch-level fields that apply to every event (null when absent / not a batch).
  const boost::json::object* batchContext() const noexcept;
  const boost::json::object* batchIntegrations() const noexcept;
  std::optional<std::string_view> batchSentAt() const noexcept;

 private:
  const boost::json::value* batchField(std::string_view key) const noexcept;
  const boost::json::array* batchArray() const noexcept;

  boost::json::value root_;
  bool batch_ = false;
  std::vector<std::pair<std::size_t, std::string>> problems_;  // by item, the first of each

  friend sdk::Result<ParsedBody> parseBody(Endpoint endpoint, std::string_view body);
};

// Parses `body` (JSON, whatever Content-Type was declared) for `endpoint`: a single endpoint
// takes one object; Batch takes {"batch": [...], ...} (a bare array is accepted too).
// InvalidArgument naming the problem: "invalid JSON at line 1, column 7 ...", "expected a JSON
// object", "batch body without a \"batch\" array", "duplicate key `sentAt` at the top level".
// A key given twice or a number out of range inside an event is that event's problem
// (ParsedBody::problemOf: the caller refuses it, and only it); anywhere else in a batch body,
// the body's.
sdk::Result<ParsedBody> parseBody(Endpoint endpoint, std::string_view body);

}  // namespace junction::plugins::http
