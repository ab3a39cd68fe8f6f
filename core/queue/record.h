#pragma once

// The on-disk record format of the embedded log (format version 2; see README.md).
//
//   offset size field
//   0      4    magic            kRecordMagic, little-endian
//   4      1    format version   kRecordFormatVersion (1 is still read)
//   5      1    flags            0 (reserved for compression)
//   6      2    segment tag      segmentTag(base of the segment holding the record); 0 outside
//                                the log and in version 1
//   8      4    payload length   bytes after the header, <= kMaxPayloadBytes
//   12     4    check            crc32c over bytes [4, 12) with the tag read as 0, then the
//                                payload; XOR tagMix(tag)
//   16     -    payload          binary sdk::EventHeader, then the event JSON (rest of payload)
//
// The tag lets the log reuse a delivered segment's file for a new segment (the page cache and
// disk blocks stay allocated) without ever taking the previous use's records for new ones: an
// intact record carrying another segment's tag is Stale, not Ok. The check covers the tag, so a
// damaged tag reads as BadChecksum, never as Stale.
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
inline constexpr std::uint8_t kRecordFormatVersion = 2;
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
  Stale,       // intact, but tagged for another segment: left from a recycled file's last use
};
const char* toString(RecordStatus status) noexcept;

// The tag of the segment starting at global offset `base`: 16 bits of a hash, never 0.
std::uint16_t segmentTag(std::uint64_t base) noexcept;

// Size of the record `encodeRecord(event, ...)` writes.
std::size_t encodedRecordSize(const sdk::Event& event) noexcept;

// Records are encoded with tag 0; the log's writer stamps each with its segment's tag once it
// knows where it goes.
// Appends one record for `event` to `out`. InvalidArgument when the payload would exceed
// kMaxPayloadBytes (then `out` is unchanged).
sdk::Status encodeRecord(const sdk::Event& event, std::string& out);

// The two halves of encodeRecord, for a caller that places records itself: the record's size
// (InvalidArgument as above when too large), and the encoding into `out` (that many bytes, for
// an event that passed the check). Returns the end of the record.
sdk::Result<std::size_t> checkedRecordSize(const sdk::Event& event);
char* encodeRecordTo(const sdk::Event& event, char* out) noexcept;

// Sets the tag of the encoded record at `record` (which carries tag 0) and updates its check.
void stampRecord(char* record, std::uint16_t tag) noexcept;

// Checks the framing and checksum of the record at the start of `bytes` without decoding it,
// for a place whose tag is `tag` (a segment's segmentTag, 0 outside the log). A version-1
// record (untagged) is valid anywhere. On Ok, `size` is the whole record's size and `payload`
// views the payload inside `bytes`. On Truncated with a readable header, and on Stale, `size`
// is the size the record claims.
struct RecordView {
  RecordStatus status = RecordStatus::Truncated;
  std::size_t size = 0;
  std::string_view payload;
};
RecordView inspectRecord(std::string_view bytes, std::uint16_t tag = 0) noexcept;

// Whether `bytes` (up to the first 8 bytes at some position) begin a header as the writer of the
// segment tagged `tag` writes it: magic, this format version and the tag, or an untagged
// version-1 header. Recovery tells a record of ours cut short from a recycled file's previous
// use with it. False for empty `bytes`.
bool startsOwnHeader(std::string_view bytes, std::uint16_t tag) noexcept;

// Decodes a payload (as returned in RecordView::payload) into an event.
sdk::Result<sdk::Event> decodePayload(std::string_view payload);

// inspectRecord (tag 0) + decodePayload: the event and the record's size, or InvalidArgument
// naming the RecordStatus.
struct DecodedRecord {
  sdk::Event event;
  std::size_t size = 0;
};
sdk::Result<DecodedRecord> decodeRecord(std::string_view bytes);

}  // namespace junction::core::queue
