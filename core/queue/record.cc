#include "core/queue/record.h"

#include <algorithm>
#include <cstring>

#include "core/queue/crc32c.h"

namespace junction::core::queue {
namespace {

// Fixed part of the payload: type + two timestamps; then five length-prefixed strings.
constexpr std::size_t kFixedPayload = 1 + 8 + 8;
constexpr std::size_t kStringCount = 5;

void put32(char* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) {
    p[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
  }
}

void put64(char* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
  }
}

std::uint32_t get32(const char* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return v;
}

std::uint16_t get16(const char* p) noexcept {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(p[0]) |
                                    (static_cast<unsigned char>(p[1]) << 8));
}

// Spreads a tag over the 32 bits of the check; 0 for 0, so untagged records keep a plain CRC.
std::uint32_t tagMix(std::uint16_t tag) noexcept { return tag * 0x9E3779B1u; }

// CRC of the header bytes [4, 12) with the tag read as 0.
std::uint32_t headerCrc(const char* rec) noexcept {
  char head[8];
  std::memcpy(head, rec + 4, sizeof head);
  head[2] = 0;
  head[3] = 0;
  return crc32c(head, sizeof head);
}

std::uint64_t get64(const char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return v;
}

std::size_t payloadSize(const sdk::Event& event) noexcept {
  const sdk::EventHeader& h = event.header();
  return kFixedPayload + kStringCount * 4 + h.message_id.size() + h.user_id.size() +
         h.anonymous_id.size() + h.name.size() + h.source_id.size() + event.json().size();
}

char* putString(char* p, std::string_view s) noexcept {
  put32(p, static_cast<std::uint32_t>(s.size()));
  std::memcpy(p + 4, s.data(), s.size());
  return p + 4 + s.size();
}

}  // namespace

const char* toString(RecordStatus status) noexcept {
  switch (status) {
    case RecordStatus::Ok: return "ok";
    case RecordStatus::Truncated: return "truncated record";
    case RecordStatus::BadMagic: return "bad magic";
    case RecordStatus::BadVersion: return "unknown format version or flags";
    case RecordStatus::BadLength: return "implausible payload length";
    case RecordStatus::BadChecksum: return "checksum mismatch";
    case RecordStatus::BadPayload: return "undecodable payload";
    case RecordStatus::Stale: return "record of another segment (recycled file)";
  }
  return "unknown";
}

std::uint16_t segmentTag(std::uint64_t base) noexcept {
  std::uint64_t x = base * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing: consecutive bases spread
  x ^= x >> 32;
  const auto tag = static_cast<std::uint16_t>(x >> 16);
  return tag == 0 ? 1 : tag;
}

std::size_t encodedRecordSize(const sdk::Event& event) noexcept {
  return kRecordHeaderSize + payloadSize(event);
}

sdk::Result<std::size_t> checkedRecordSize(const sdk::Event& event) {
  const std::size_t payload = payloadSize(event);
  if (payload > kMaxPayloadBytes) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "event " + event.messageId() + " is " + std::to_string(payload) +
                              " bytes encoded; the queue's record limit is " +
                              std::to_string(kMaxPayloadBytes));
  }
  return kRecordHeaderSize + payload;
}

char* encodeRecordTo(const sdk::Event& event, char* rec) noexcept {
  const std::size_t payload = payloadSize(event);
  put32(rec, kRecordMagic);
  rec[4] = static_cast<char>(kRecordFormatVersion);
  rec[5] = 0;
  rec[6] = 0;
  rec[7] = 0;
  put32(rec + 8, static_cast<std::uint32_t>(payload));

  const sdk::EventHeader& h = event.header();
  char* p = rec + kRecordHeaderSize;
  *p++ = static_cast<char>(h.type);
  put64(p, static_cast<std::uint64_t>(h.timestamp_ms));
  put64(p + 8, static_cast<std::uint64_t>(h.received_at_ms));
  p += 16;
  p = putString(p, h.message_id);
  p = putString(p, h.user_id);
  p = putString(p, h.anonymous_id);
  p = putString(p, h.name);
  p = putString(p, h.source_id);
  std::memcpy(p, event.json().data(), event.json().size());

  std::uint32_t crc = crc32c(rec + 4, 8);
  crc = crc32c(rec + kRecordHeaderSize, payload, crc);
  put32(rec + 12, crc);
  return rec + kRecordHeaderSize + payload;
}

void stampRecord(char* rec, std::uint16_t tag) noexcept {
  rec[6] = static_cast<char>(tag & 0xFFu);
  rec[7] = static_cast<char>(tag >> 8);
  put32(rec + 12, get32(rec + 12) ^ tagMix(tag));
}

sdk::Status encodeRecord(const sdk::Event& event, std::string& out) {
  auto size = checkedRecordSize(event);
  if (!size) {
    return std::move(size).error();
  }
  const std::size_t start = out.size();
  out.resize(start + *size);
  encodeRecordTo(event, out.data() + start);
  return sdk::Status::success();
}

RecordView inspectRecord(std::string_view bytes, std::uint16_t tag) noexcept {
  RecordView view;
  if (bytes.size() < 4) {
    return view;
  }
  if (get32(bytes.data()) != kRecordMagic) {
    view.status = RecordStatus::BadMagic;
    return view;
  }
  if (bytes.size() < kRecordHeaderSize) {
    return view;
  }
  const char* h = bytes.data();
  const auto version = static_cast<std::uint8_t>(h[4]);
  const std::uint16_t record_tag = get16(h + 6);
  if ((version != 1 && version != kRecordFormatVersion) || h[5] != 0 ||
      (version == 1 && record_tag != 0)) {
    view.status = RecordStatus::BadVersion;
    return view;
  }
  const std::uint32_t length = get32(h + 8);
  if (length > kMaxPayloadBytes) {
    view.status = RecordStatus::BadLength;
    return view;
  }
  view.size = kRecordHeaderSize + length;
  if (bytes.size() < view.size) {
    return view;  // Truncated, size = what the header claims
  }
  const std::uint32_t crc = crc32c(h + kRecordHeaderSize, length, headerCrc(h));
  if ((crc ^ tagMix(record_tag)) != get32(h + 12)) {
    view.status = RecordStatus::BadChecksum;
    return view;
  }
  if (version != 1 && record_tag != tag) {
    view.status = RecordStatus::Stale;
    return view;
  }
  view.status = RecordStatus::Ok;
  view.payload = bytes.substr(kRecordHeaderSize, length);
  return view;
}

bool startsOwnHeader(std::string_view bytes, std::uint16_t tag) noexcept {
  const std::size_t n = std::min<std::size_t>(bytes.size(), 8);
  if (n == 0) {
    return false;
  }
  char mine[8] = {};
  put32(mine, kRecordMagic);
  mine[4] = static_cast<char>(kRecordFormatVersion);
  mine[6] = static_cast<char>(tag & 0xFFu);
  mine[7] = static_cast<char>(tag >> 8);
  char v1[8] = {};
  put32(v1, kRecordMagic);
  v1[4] = 1;
  return std::memcmp(bytes.data(), mine, n) == 0 || std::memcmp(bytes.data(), v1, n) == 0;
}

sdk::Result<sdk::Event> decodePayload(std::string_view payload) {
  auto bad = [](const char* what) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          std::string("undecodable record payload: ") + what);
  };
  if (payload.size() < kFixedPayload) {
    return bad("shorter than the fixed header");
  }
  const char* p = payload.data();
  const char* const end = p + payload.size();
  const auto type = static_cast<std::uint8_t>(*p++);
  if (type > static_cast<std::uint8_t>(sdk::EventType::Alias)) {
    return bad("unknown event type");
  }
  const auto timestamp_ms = static_cast<std::int64_t>(get64(p));
  const auto received_at_ms = static_cast<std::int64_t>(get64(p + 8));
  p += 16;
  std::string_view fields[kStringCount];
  for (std::string_view& field : fields) {
    if (end - p < 4) {
      return bad("string length past the end");
    }
    const std::uint32_t len = get32(p);
    p += 4;
    if (static_cast<std::size_t>(end - p) < len) {
      return bad("string past the end");
    }
    field = std::string_view(p, len);
    p += len;
  }
  // The header is built where the event takes it: an event's strings are moved as few times
  // as can be (each move of a short string is a copy), on every read of every event.
  return sdk::Event(sdk::EventHeader{.type = static_cast<sdk::EventType>(type),
                                     .message_id = std::string(fields[0]),
                                     .user_id = std::string(fields[1]),
                                     .anonymous_id = std::string(fields[2]),
                                     .name = std::string(fields[3]),
                                     .source_id = std::string(fields[4]),
                                     .timestamp_ms = timestamp_ms,
                                     .received_at_ms = received_at_ms},
                    std::string(p, end));
}

sdk::Result<DecodedRecord> decodeRecord(std::string_view bytes) {
  const RecordView view = inspectRecord(bytes);
  if (view.status != RecordStatus::Ok) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          std::string("invalid record: ") + toString(view.status));
  }
  auto event = decodePayload(view.payload);
  if (!event.ok()) {
    return std::move(event).error();
  }
  return DecodedRecord{std::move(event).value(), view.size};
}

}  // namespace junction::core::queue
