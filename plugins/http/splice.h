#pragma once

// The fast ingest path: a request body read without a JSON tree, and each event enriched by
// splicing new members into the text it arrived as (no parse into a DOM, no re-serialization).
//
// It covers what SDKs send (string ids and times, a context object, no escapes in the fields
// the header needs) and declines everything else: `scanBody` and `spliceEvent` return nullopt,
// and the caller takes the tree path (parseBody / enrichEvent / toEvent), which either produces
// the same event or names the error. Equivalence with the tree path is what the tests check:
// for any input both accept, the events parse to the same JSON and carry the same header.
//
// Pure functions over the caller's text (the time and the client address come in EnrichInput).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "body.h"
#include "enrich.h"
#include "junction/sdk/event.h"

namespace junction::plugins::http {

namespace splice {

// Top-level members of an event that enrichment reads or writes.
enum Key : std::uint8_t {
  kType,
  kEvent,
  kName,
  kUserId,
  kAnonymousId,
  kMessageId,
  kTimestamp,
  kOriginalTimestamp,
  kSentAt,
  kReceivedAt,
  kWriteKey,
  kContext,
  kPreviousId,
  kGroupId,
  kKeyCount,
  kOther = kKeyCount,
};

struct Member {
  std::string_view text;   // from the key's opening quote to the end of the value
  std::string_view value;  // the value's text
  Key key = kOther;
};

// What an event's `context` object says about "ip", read while the event is scanned.
struct ContextIp {
  bool present = false;
  bool empty_object = false;  // "context": {}
  bool unusual = false;       // an escaped key (it might spell "ip"), or "ip" twice
  std::string_view value;     // the value's text
};

// The tracked members of one event (value text, when present).
struct Fields {
  std::array<std::string_view, kKeyCount> value{};
  std::array<bool, kKeyCount> present{};
  ContextIp context;  // of the last `context` member that is an object

  bool has(Key k) const noexcept { return present[k]; }
  // Present and not null.
  bool given(Key k) const noexcept { return present[k] && value[k] != "null"; }
};

}  // namespace splice

// One item of a body, read once: its text and, for an object, its members.
struct ScannedEvent {
  std::string_view text;
  bool object = false;
  bool declined = false;  // escaped keys or a tracked key given twice: the tree path
  std::uint32_t first_member = 0;  // in ScannedBody::members
  std::uint32_t member_count = 0;
  splice::Fields fields;
};

// A request body as slices of its text, validated in one pass.
struct ScannedBody {
  std::vector<ScannedEvent> items;            // as sent (maybe not objects)
  std::vector<splice::Member> members;        // of all items, in order
  std::optional<std::string_view> write_key;  // the body's `writeKey` (unescaped text)
  std::optional<std::string_view> sent_at;    // a batch's `sentAt` (unescaped text)
  bool batch = false;
};

// The body for `endpoint` as slices, or nullopt when the tree path must handle it: invalid
// JSON (by json_scan's rules), not the expected shape, batch-level `context` or `integrations`
// (merged into every event), escaped or repeated keys at the batch level.
std::optional<ScannedBody> scanBody(Endpoint endpoint, std::string_view body);

// `writeKey` of a scanned event (unescaped text), from what scanBody already read: nullopt
// when absent or not a plain string. `declined` is set when the tree path must decide (an
// escaped key, which might spell writeKey; an escaped key value).
std::optional<std::string_view> eventWriteKey(const ScannedEvent& item, bool& declined);
// The same for the text of one event object (scanned here; invalid text: nullopt).
std::optional<std::string_view> eventWriteKey(std::string_view item, bool& declined);

// What the caller computes once per request for `spliceEvent`.
struct SpliceInput {
  const EnrichInput* enrich = nullptr;  // batch_context / batch_integrations must be null
  std::string ip_member;                // `"ip":"…"` to add to context, "" for none
  std::optional<std::int64_t> batch_sent_at_ms;
  std::string received_at_text;         // `"…"`, the request's receivedAt
  std::string type_text;                // `"track"`… for single-event endpoints
  bool in_batch = false;                // the event sits in a batch array (nesting depth)
};
SpliceInput makeSpliceInput(const EnrichInput& input, bool in_batch);

struct SplicedEvent {
  sdk::Event event;
  bool generated_message_id = false;
};

// enrichEvent + toEvent on one event object of a scanned body, or nullopt when the tree path
// must handle it (anything unusual, and every event that would be refused).
std::optional<SplicedEvent> spliceEvent(const ScannedEvent& item,
                                        const std::vector<splice::Member>& members,
                                        const SpliceInput& input, std::string_view source_id);
// The same on the text of one event object (scanned here).
std::optional<SplicedEvent> spliceEvent(std::string_view item, const SpliceInput& input,
                                        std::string_view source_id);

// One event object's text through the tracking API's checks and enrichment, as /v1/batch treats
// each of its events (without a tracking plan or de-duplication): the fast path, else the tree
// path (parseJson, enrichEvent, toEvent), which names the error. For callers outside a request:
// `junction import` runs it on each NDJSON line. `splice` is makeSpliceInput(enrich, false).
sdk::Result<SplicedEvent> eventFromText(std::string_view text, const SpliceInput& splice,
                                        const EnrichInput& enrich, std::string_view source_id);

}  // namespace junction::plugins::http
