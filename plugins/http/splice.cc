#include "splice.h"

#include <array>
#include <cassert>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstring>
#include <span>

#include "junction/sdk/json.h"
#include "junction/sdk/json_scan.h"

namespace junction::plugins::http {

using sdk::json_scan::Cursor;
using namespace splice;

namespace {

// The text between the quotes of a string value without escapes; false otherwise.
bool plainString(std::string_view value, std::string_view& out) noexcept {
  if (value.size() < 2 || value.front() != '"' ||
      std::memchr(value.data(), '\\', value.size()) != nullptr) {
    return false;
  }
  out = value.substr(1, value.size() - 2);
  return true;
}

constexpr std::array<std::string_view, kKeyCount> kKeyNames{
    "type",   "event",      "name",       "userId",   "anonymousId",
    "messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt",
    "writeKey",  "context",   "previousId",        "groupId",
};

// A switch on the length first: this runs for every member of every event.
constexpr Key keyOf(std::string_view name) noexcept {
  switch (name.size()) {
    case 4:
      return name == "type" ? kType : name == "name" ? kName : kOther;
    case 5:
      return name == "event" ? kEvent : kOther;
    case 6:
      return name == "userId" ? kUserId : name == "sentAt" ? kSentAt : kOther;
    case 7:
      return name == "context" ? kContext : name == "groupId" ? kGroupId : kOther;
    case 8:
      return name == "writeKey" ? kWriteKey : kOther;
    case 9:
      return name == "messageId" ? kMessageId : name == "timestamp" ? kTimestamp : kOther;
    case 10:
      return name == "receivedAt" ? kReceivedAt : name == "previousId" ? kPreviousId : kOther;
    case 11:
      return name == "anonymousId" ? kAnonymousId : kOther;
    case 17:
      return name == "originalTimestamp" ? kOriginalTimestamp : kOther;
    default:
      return kOther;
  }
}

// The switch spells the names again: it must agree with kKeyNames.
constexpr bool keyOfKnowsEveryName() noexcept {
  for (std::size_t k = 0; k < kKeyCount; ++k) {
    if (keyOf(kKeyNames[k]) != static_cast<Key>(k)) {
      return false;
    }
  }
  return true;
}
static_assert(keyOfKnowsEveryName(), "keyOf and kKeyNames disagree");

// Reads the `context` object at the cursor (a member value at nesting `depth`) into `out`;
// `raw` is its text. False when the text is not valid. Read here, while the event is scanned,
// so that enrichment need not read the context again for "ip".
bool readContext(Cursor& cursor, int depth, ContextIp& out, std::string_view& raw) {
  // The object's members are one level deeper: as Cursor::value would check it.
  if (depth + 1 >= sdk::json_scan::kMaxDepth) {
    return false;
  }
  const char* start = cursor.position();
  out = {};
  if (!cursor.consume('{')) {
    return false;
  }
  if (cursor.consume('}')) {
    out.empty_object = true;
  } else {
    sdk::json_scan::KeySet keys;
    do {
      std::string_view name;
      std::string_view value;
      bool escaped = false;
      if (!cursor.member(name, escaped, value, depth + 1)) {
        return false;
      }
      if (!keys.insert(name, escaped)) {
        out.unusual = true;  // an escaped key, or a key given twice: the tree path names it
      } else if (escaped) {
        out.unusual = true;
      } else if (name == "ip") {
        out.unusual = out.unusual || out.present;
        out.present = true;
        out.value = value;
      }
    } while (cursor.consume(','));
    if (!cursor.consume('}')) {
      return false;
    }
  }
  raw = std::string_view(start, static_cast<std::size_t>(cursor.position() - start));
  return true;
}

// Reads the object at the cursor: its members (appended to `members`), the tracked ones in
// `fields`. False when the text is not valid. `declined` is set for what the tree path must
// judge: an escaped key, a key given twice (refused there, naming it). `depth`: containers
// around the object.
bool readObject(Cursor& cursor, int depth, std::vector<Member>& members, Fields& fields,
                bool& declined) {
  if (!cursor.consume('{')) {
    return false;
  }
  if (cursor.consume('}')) {
    return true;
  }
  sdk::json_scan::KeySet keys;
  do {
    cursor.peek();
    const char* start = cursor.position();
    std::string_view name;
    std::string_view value;
    bool escaped = false;
    if (!cursor.key(name, escaped)) {
      return false;
    }
    const Key key = escaped ? kOther : keyOf(name);
    const bool read = key == kContext && cursor.peek() == '{'
                          ? readContext(cursor, depth + 1, fields.context, value)
                          : cursor.value(value, depth + 1);
    if (!read) {
      return false;
    }
    declined = declined || !keys.insert(name, escaped);  // escaped keys included
    if (key != kOther) {
      declined = declined || fields.present[key];
      fields.present[key] = true;
      fields.value[key] = value;
    }
    members.push_back(
        {std::string_view(start, static_cast<std::size_t>(value.data() + value.size() - start)),
         value, key});
  } while (cursor.consume(','));
  return cursor.consume('}');
}

// A time field: absent/null (nullopt, ok), or a plain ISO-8601 string. False when the tree
// path must decide (escapes, not a string, not a time: an error there).
bool timeField(const Fields& f, Key k, std::optional<std::int64_t>& out) {
  out.reset();
  if (!f.given(k)) {
    return true;
  }
  std::string_view text;
  if (!plainString(f.value[k], text)) {
    return false;
  }
  out = sdk::parseIsoTimestamp(text);
  return out.has_value();
}

// Inside the years 0..9999: formatIsoTimestamp writes what parseIsoTimestamp reads back.
bool formattable(std::int64_t ms) noexcept {
  return ms >= -62167219200000LL && ms < 253402300800000LL;
}

// `"2026-01-01T00:00:00.000Z"` into `text` (kIsoTimestampMaxSize + 2 bytes).
std::string_view quotedTime(std::int64_t ms, char* text) {
  text[0] = '"';
  const std::size_t n = sdk::formatIsoTimestamp(ms, text + 1);
  text[n + 1] = '"';
  return std::string_view(text, n + 2);
}

}  // namespace

std::optional<ScannedBody> scanBody(Endpoint endpoint, std::string_view body) {
  ScannedBody out;
  Cursor cursor(body);
  // One event (an object: members read; anything else: skipped, reported by the caller).
  auto readItem = [&](int depth) {
    ScannedEvent item;
    const char c = cursor.peek();
    const char* start = cursor.position();
    if (c == '{') {
      item.object = true;
      item.first_member = static_cast<std::uint32_t>(out.members.size());
      if (!readObject(cursor, depth, out.members, item.fields, item.declined)) {
        return false;
      }
      item.member_count = static_cast<std::uint32_t>(out.members.size()) - item.first_member;
    } else {
      std::string_view ignored;
      if (!cursor.value(ignored, depth)) {
        return false;
      }
    }
    item.text = std::string_view(start, static_cast<std::size_t>(cursor.position() - start));
    out.items.push_back(item);
    return true;
  };
  if (endpoint != Endpoint::Batch) {
    if (cursor.peek() != '{' || !readItem(0) || !cursor.atEnd()) {
      return std::nullopt;
    }
    return out;
  }
  out.batch = true;
  auto readArray = [&]() {
    if (!cursor.consume('[')) {
      return false;
    }
    if (cursor.consume(']')) {
      return true;
    }
    do {
      if (!readItem(2)) {  // inside the body object and its array
        return false;
      }
    } while (cursor.consume(','));
    return cursor.consume(']');
  };
  const char first = cursor.peek();
  if (first == '[') {
    // A bare array of events: nesting is one less than in {"batch": [...]}; counting it as
    // deep is only ever stricter.
    out.items.reserve(128);
    out.members.reserve(1024);
    if (!readArray() || !cursor.atEnd()) {
      return std::nullopt;
    }
    return out;
  }
  if (!cursor.consume('{')) {
    return std::nullopt;
  }
  bool seen_batch = false;
  bool seen_sent_at = false;
  bool seen_write_key = false;
  if (!cursor.consume('}')) {
    sdk::json_scan::KeySet keys;
    do {
      std::string_view name;
      bool escaped = false;
      if (!cursor.string(name, escaped) || !keys.insert(name, escaped) || !cursor.consume(':')) {
        return std::nullopt;
      }
      if (name == "batch") {
        if (seen_batch || cursor.peek() != '[') {
          return std::nullopt;
        }
        seen_batch = true;
        out.items.reserve(128);
        out.members.reserve(1024);
        if (!readArray()) {
          return std::nullopt;
        }
        continue;
      }
      std::string_view value;
      if (!cursor.value(value, 1)) {
        return std::nullopt;
      }
      if (name == "context" || name == "integrations") {
        if (value.front() == '{') {
          return std::nullopt;  // merged into each event: the tree path does that
        }
      } else if (name == "sentAt") {
        std::string_view text;
        if (seen_sent_at || (value.front() == '"' && !plainString(value, text))) {
          return std::nullopt;
        }
        seen_sent_at = true;
        if (value.front() == '"') {
          out.sent_at = text;
        }
      } else if (name == "writeKey") {
        std::string_view text;
        if (seen_write_key || (value.front() == '"' && !plainString(value, text))) {
          return std::nullopt;
        }
        seen_write_key = true;
        if (value.front() == '"') {
          out.write_key = text;
        }
      }
    } while (cursor.consume(','));
    if (!cursor.consume('}')) {
      return std::nullopt;
    }
  }
  if (!seen_batch || !cursor.atEnd()) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::string_view> eventWriteKey(const ScannedEvent& item, bool& declined) {
  declined = item.object && item.declined;  // an escaped key might spell writeKey
  if (!item.object || item.declined || !item.fields.has(kWriteKey)) {
    return std::nullopt;
  }
  const std::string_view value = item.fields.value[kWriteKey];
  std::string_view text;
  if (value.front() != '"') {
    return std::nullopt;
  }
  if (!plainString(value, text)) {
    declined = true;
    return std::nullopt;
  }
  return text;
}

namespace {

// One event object given as text, read as scanBody reads each item (members into `members`).
// False when it is not exactly one valid object.
bool scanEventText(std::string_view text, int depth, std::vector<Member>& members,
                   ScannedEvent& out) {
  members.clear();
  Cursor cursor(text);
  if (cursor.peek() != '{' || !readObject(cursor, depth, members, out.fields, out.declined) ||
      !cursor.atEnd()) {
    return false;
  }
  out.text = text;
  out.object = true;
  out.member_count = static_cast<std::uint32_t>(members.size());
  return true;
}

}  // namespace

std::optional<std::string_view> eventWriteKey(std::string_view item, bool& declined) {
  thread_local std::vector<Member> members;
  ScannedEvent scanned;
  declined = false;
  if (!scanEventText(item, 0, members, scanned)) {
    return std::nullopt;
  }
  return eventWriteKey(scanned, declined);
}

SpliceInput makeSpliceInput(const EnrichInput& input, bool in_batch) {
  SpliceInput s;
  s.enrich = &input;
  s.in_batch = in_batch;
  if (input.forced_type) {
    s.type_text = std::string("\"") + sdk::toString(*input.forced_type) + '"';
  }
  char received[sdk::kIsoTimestampMaxSize + 2];
  s.received_at_text = std::string(quotedTime(input.received_at_ms, received));
  if (input.batch_sent_at) {
    s.batch_sent_at_ms = sdk::parseIsoTimestamp(*input.batch_sent_at);
  }
  std::string ip;
  if (input.ip_policy == ClientIpPolicy::Keep) {
    ip = std::string(input.client_ip);
  } else if (input.ip_policy == ClientIpPolicy::Truncate && !input.client_ip.empty()) {
    ip = truncateIp(input.client_ip).value_or("");
  }
  if (!ip.empty()) {
    s.ip_member = "\"ip\":" + boost::json::serialize(boost::json::value(ip));
  }
  return s;
}

std::optional<SplicedEvent> spliceEvent(std::string_view item, const SpliceInput& input,
                                        std::string_view source_id) {
  thread_local std::vector<Member> members;
  ScannedEvent scanned;
  // Containers around the event: {"batch": [ event ]} or none.
  if (!scanEventText(item, input.in_batch ? 2 : 0, members, scanned)) {
    return std::nullopt;
  }
  return spliceEvent(scanned, members, input, source_id);
}

std::optional<SplicedEvent> spliceEvent(const ScannedEvent& item, const std::vector<Member>& all,
                                        const SpliceInput& input, std::string_view source_id) {
  const EnrichInput& in = *input.enrich;
  if (!item.object || item.declined || in.batch_context != nullptr ||
      in.batch_integrations != nullptr) {
    return std::nullopt;
  }
  const Fields& f = item.fields;
  const std::span<const Member> members(all.data() + item.first_member, item.member_count);

  sdk::EventType event_type = sdk::EventType::Track;
  if (in.forced_type) {
    event_type = *in.forced_type;
  } else {
    std::string_view type;
    if (!f.has(kType) || !plainString(f.value[kType], type)) {
      return std::nullopt;
    }
    auto parsed = sdk::parseEventType(type);
    if (!parsed) {
      return std::nullopt;
    }
    event_type = *parsed;
  }
  std::string_view user_id, anonymous_id, message_id;
  for (auto [key, out] : {std::pair{kUserId, &user_id}, std::pair{kAnonymousId, &anonymous_id},
                          std::pair{kMessageId, &message_id}}) {
    if (f.given(key) && !plainString(f.value[key], *out)) {
      return std::nullopt;  // numbers, escapes, wrong types: the tree path
    }
  }
  if (user_id.empty() && anonymous_id.empty()) {
    return std::nullopt;  // refused there, with the reason
  }
  const Key required = event_type == sdk::EventType::Track   ? kEvent
                       : event_type == sdk::EventType::Alias ? kPreviousId
                       : event_type == sdk::EventType::Group ? kGroupId
                                                         : kKeyCount;
  if (required != kKeyCount) {
    std::string_view text;
    if (!f.given(required) || !plainString(f.value[required], text) || text.empty()) {
      return std::nullopt;
    }
  }
  const bool named_view =
      event_type == sdk::EventType::Page || event_type == sdk::EventType::Screen;
  const Key name_key = event_type == sdk::EventType::Track ? kEvent
                       : named_view                        ? kName
                                                           : kKeyCount;
  std::string_view name;
  if (name_key != kKeyCount && f.given(name_key) && !plainString(f.value[name_key], name)) {
    return std::nullopt;
  }
  if (f.given(kWriteKey) && f.value[kWriteKey].front() == '"') {
    std::string_view ignored;
    if (!plainString(f.value[kWriteKey], ignored)) {
      return std::nullopt;
    }
  }

  // Times, as enrichEvent: client time (originalTimestamp, else timestamp), corrected by sentAt.
  std::optional<std::int64_t> original_ts, timestamp, sent_at;
  if (!timeField(f, kOriginalTimestamp, original_ts) || !timeField(f, kTimestamp, timestamp) ||
      !timeField(f, kSentAt, sent_at)) {
    return std::nullopt;
  }
  const bool client_is_original = original_ts.has_value();
  const std::optional<std::int64_t> client = client_is_original ? original_ts : timestamp;
  if (!sent_at) {
    sent_at = input.batch_sent_at_ms;
  }
  const std::int64_t received = in.received_at_ms;
  if (!formattable(received)) {
    return std::nullopt;
  }

  // New values of members (JSON text): replaced where they are, appended when absent.
  std::array<std::string_view, kKeyCount> set{};
  if (in.forced_type) {
    set[kType] = input.type_text;
  }
  bool generated = false;
  std::string new_message_id;
  char message_id_text[40];
  if (message_id.empty()) {
    new_message_id = sdk::makeUuidV4();
    message_id_text[0] = '"';
    std::memcpy(message_id_text + 1, new_message_id.data(), new_message_id.size());
    message_id_text[new_message_id.size() + 1] = '"';
    set[kMessageId] = std::string_view(message_id_text, new_message_id.size() + 2);
    generated = true;
  }
  std::int64_t final_ts = 0;
  char corrected_text[sdk::kIsoTimestampMaxSize + 2];
  if (client && sent_at) {
    final_ts = received - (*sent_at - *client);
    if (!formattable(final_ts)) {
      return std::nullopt;
    }
    if (!client_is_original) {
      set[kOriginalTimestamp] = f.value[kTimestamp];
    }
    set[kTimestamp] = quotedTime(final_ts, corrected_text);
  } else if (client) {
    final_ts = *client;
    if (client_is_original) {
      set[kTimestamp] = f.value[kOriginalTimestamp];
    }
  } else {
    final_ts = received;
    set[kTimestamp] = input.received_at_text;
  }
  set[kReceivedAt] = input.received_at_text;

  // context.ip, under the policy.
  ContextIp ctx_ip;
  const bool has_context = f.given(kContext);
  if (has_context) {
    if (f.value[kContext].front() != '{' || f.context.unusual) {
      return std::nullopt;
    }
    ctx_ip = f.context;
  }
  bool insert_ip = false;
  if (ctx_ip.present) {
    // Keep: the event's own string stays (unless empty: then ours replaces it, as the tree
    // path does). Drop / truncate rewrite it: the tree path.
    if (in.ip_policy != ClientIpPolicy::Keep || ctx_ip.value.front() != '"' ||
        ctx_ip.value == "\"\"") {
      return std::nullopt;
    }
  } else {
    insert_ip = !input.ip_member.empty();
  }
  if (f.has(kContext) && !has_context && insert_ip) {
    return std::nullopt;  // "context": null — the tree path decides
  }

  // The new text, written into a buffer sized for the most it can take: the event's text, plus
  // every new member whole (`,"key":value`), plus our "ip" in a context of its own.
  std::size_t most = item.text.size() + input.ip_member.size() + sizeof(",\"context\":{,}");
  for (std::size_t k = 0; k < kKeyCount; ++k) {
    most += set[k].empty() ? 0 : kKeyNames[k].size() + set[k].size() + sizeof(",\"\":");
  }
  std::string out(most, '\0');
  char* w = out.data();
  auto put = [&w](std::string_view text) {
    std::memcpy(w, text.data(), text.size());
    w += text.size();
  };
  *w++ = '{';
  bool first = true;
  auto separate = [&] {
    if (!first) {
      *w++ = ',';
    }
    first = false;
  };
  auto member = [&](std::string_view key, std::string_view value) {
    separate();
    *w++ = '"';
    put(key);
    *w++ = '"';
    *w++ = ':';
    put(value);
  };
  // "context": the event's object with our "ip" first, or an object of just that.
  auto context_with_ip = [&](std::string_view context) {
    separate();
    put("\"context\":{");
    put(input.ip_member);
    if (context.empty() || ctx_ip.empty_object) {
      *w++ = '}';
    } else {
      *w++ = ',';
      put(context.substr(1));
    }
  };
  for (const Member& m : members) {
    if (m.key == kWriteKey) {
      continue;
    }
    if (m.key != kOther && !set[m.key].empty()) {
      member(kKeyNames[m.key], set[m.key]);
    } else if (m.key == kContext && insert_ip) {
      context_with_ip(m.value);
    } else {
      separate();
      put(m.text);
    }
  }
  for (Key k : {kType, kMessageId, kOriginalTimestamp, kTimestamp, kReceivedAt}) {
    if (f.has(k)) {
      continue;
    }
    if (!set[k].empty()) {
      member(kKeyNames[k], set[k]);
    }
  }
  if (!f.has(kContext) && insert_ip) {
    context_with_ip({});
  }
  *w++ = '}';
  assert(static_cast<std::size_t>(w - out.data()) <= most);
  out.resize(static_cast<std::size_t>(w - out.data()));

  // The header is built where the event takes it (fewer moves of its strings).
  return SplicedEvent{
      sdk::Event(sdk::EventHeader{.type = event_type,
                                  .message_id = generated ? std::move(new_message_id)
                                                          : std::string(message_id),
                                  .user_id = std::string(user_id),
                                  .anonymous_id = std::string(anonymous_id),
                                  .name = std::string(name),
                                  .source_id = std::string(source_id),
                                  .timestamp_ms = final_ts != 0 ? final_ts : received,
                                  .received_at_ms = received},
                 std::move(out)),
      generated};
}

sdk::Result<SplicedEvent> eventFromText(std::string_view text, const SpliceInput& splice,
                                        const EnrichInput& enrich, std::string_view source_id) {
  if (auto spliced = spliceEvent(text, splice, source_id)) {
    return std::move(*spliced);
  }
  auto tree = sdk::parseJson(text);
  if (!tree) {
    return tree.error();
  }
  if (!tree->is_object()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "event is not a JSON object");
  }
  auto enriched = enrichEvent(tree->as_object(), enrich);
  if (!enriched) {
    return enriched.error();
  }
  auto event = toEvent(tree->as_object(), source_id, enrich.received_at_ms);
  if (!event) {
    return event.error();
  }
  return SplicedEvent{std::move(event).value(), enriched->generated_message_id};
}

}  // namespace junction::plugins::http
