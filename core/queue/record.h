#pragma once

// The on-disk record format of the embedded log (format version 1; see README.md).
//
//   offset size field
//   0      4    magic            kRecordMagic, little-endian
//   4      1    format version   kRecordFormatVersion
//   5      1    flags            0 in version 1 (reserved for compression)
//   6      2    reserved         0
//   8      4    payload length   bytes after the header, <= kMaxPayloadBytes
//   12     4    crc32c           over bytes [4, 12) then the payload
//   16     -    payload          binary sdk::EventHeader, then the event JSON (rest of payload)
//
// Payload (all integers little-endian):
//   u8 event type, i64 timestamp_ms, i64 received_at_ms,
//   5 x (u32 length + bytes): message_id, user_id, anonymous_id, name, source_id,
//   JSON text up to the end of the payload.
//
// Pure functions, thread-safe, no I/O: the log and the tests both use them.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::core::queue {

inline constexpr std::uint32_t kRecordMagic = 0xC3A7514Au;  // bytes 4A 51 A7 C3: "JQ\xA7\xC3"
inline constexpr std::uint8_t kRecordFormatVersion = 1;
inline constexpr std::size_t kRecordHeaderSize = 16;
// Upper bound of one record's payload. Bounds what a reader trusts while resynchronizing after
// corruption; ingest limits bodies far below this.
inline constexpr std::size_t kMaxPayloadBytes = 16u << 20;

// Why bytes are, or are not, one valid record.
enum class RecordStatus : std::uint8_t {
  Ok,
  Truncated,   // fewer bytes than the header or the declared length: need more data (or torn)
  BadMagic,
  BadVersion,  // unknown format version or non-zero flags/reserved bits
  BadLength,   // declared length above kMaxPayloadBytes
  BadChecksum,
  BadPayload,  // checksum fine but the payload does not decode (writer bug)
};
const char* toString(RecordStatus status) noexcept;

// Size of the record `encodeRecord(event, ...)` writes.
std::size_t encodedRecordSize(const sdk::Event& event) noexcept;

// Appends one record for `event` to `out`. InvalidArgument when the payload would exceed
// kMaxPayloadBytes (then `out` is unchanged).
sdk::Status encodeRecord(const sdk::Event& event, std::string& out);

// The two halves of encodeRecord, for a caller that places records itself: the record's size
// (InvalidArgument as above when too large), and the encoding into `out` (that many bytes, for
// an event that passed the check). Returns the end of the record.
sdk::Result<std::size_t> checkedRecordSize(const sdk::Event& event);
char* encodeRecordTo(const sdk::Event& event, char* out) noexcept;

// Checks the framing and checksum of the record at the start of `bytes` without decoding it.
// On Ok, `size` is the whole record's size and `payload` views the payload inside `bytes`.
// On Truncated with a readable header, `size` is the size the record claims.
struct RecordView {
  RecordStatus status = RecordStatus::Truncated;
  std::size_t size = 0;
  std::string_view payload;
};
RecordView inspectRecord(std::string_view bytes) noexcept;

// Decodes a payload (as returned in RecordView::payload) into an event.
sdk::Result<sdk::Event> decodePayload(std::string_view payload);

// inspectRecord + decodePayload: the event and the record's size, or InvalidArgument naming the
// RecordStatus.
struct DecodedRecord {
  sdk::Event event;
  std::size_t size = 0;
};
sdk::Result<DecodedRecord> decodeRecord(std::string_view bytes);

}  // namespace junction::core::queue
