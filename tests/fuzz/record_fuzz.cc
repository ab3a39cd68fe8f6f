// libFuzzer target: the queue's record decoder (core/queue/record.h), on arbitrary bytes.
//
// Input: bytes read three ways —
//   1. as a record at the start of a place tagged 0, segmentTag(0) and segmentTag(65536):
//      inspectRecord, startsOwnHeader, decodeRecord;
//   2. as a bare payload: decodePayload (a record's CRC keeps blind mutations from reaching the
//      payload decoder through (1));
//   3. as a run of records, resynchronizing one byte further after an invalid one, as a reader
//      scanning a damaged segment does.
// Invariants: a view never points outside the bytes and its size is the header's claim; an
// accepted payload re-encodes to the same bytes (an accepted version-2 untagged record to the
// same record); a re-encoded record is Ok under the tag it is stamped with, Stale under another,
// and starts "our" header for its tag.
// Seeds: records and payloads written by encodeRecord (tests/fuzz/seed_gen.cc), one version-1
// record, one tagged record.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/queue/record.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace junction::core::queue;
using junction::sdk::Event;

std::string describe(const Event& e) {
  const auto& h = e.header();
  return "type " + std::to_string(static_cast<int>(h.type)) + " message_id '" + h.message_id +
         "' json " + std::to_string(e.json().size()) + " bytes";
}

bool sameEvent(const Event& a, const Event& b) {
  const auto& x = a.header();
  const auto& y = b.header();
  return x.type == y.type && x.message_id == y.message_id && x.user_id == y.user_id &&
         x.anonymous_id == y.anonymous_id && x.name == y.name && x.source_id == y.source_id &&
         x.timestamp_ms == y.timestamp_ms && x.received_at_ms == y.received_at_ms &&
         a.json() == b.json();
}

void checkView(const RecordView& view, std::string_view bytes) {
  switch (view.status) {
    case RecordStatus::Ok:
      FUZZ_CHECK(view.size == kRecordHeaderSize + view.payload.size(), "");
      FUZZ_CHECK(view.size <= bytes.size(), "");
      FUZZ_CHECK(view.payload.data() == bytes.data() + kRecordHeaderSize, "");
      break;
    case RecordStatus::Stale:
      FUZZ_CHECK(view.size >= kRecordHeaderSize && view.size <= bytes.size(), "");
      break;
    case RecordStatus::Truncated:
      FUZZ_CHECK(view.size == 0 || view.size > bytes.size(), "truncated, yet all there");
      break;
    default:
      FUZZ_CHECK(view.payload.empty(), "");
      break;
  }
  (void)toString(view.status);
}

// An event that decoded: encoding it again gives back `payload`, and the record made of it reads
// back as the same event under the tags it is stamped with.
void roundTrip(const Event& event, std::string_view payload) {
  std::string record;
  const junction::sdk::Status st = encodeRecord(event, record);
  FUZZ_CHECK(st.ok(), st.message());
  FUZZ_CHECK(record.size() == encodedRecordSize(event), describe(event));
  FUZZ_CHECK(record.size() == kRecordHeaderSize + payload.size(), describe(event));
  FUZZ_CHECK(std::string_view(record).substr(kRecordHeaderSize) == payload,
             "the payload re-encodes differently: " + describe(event));
  auto again = decodeRecord(record);
  FUZZ_CHECK(again.ok(), again.ok() ? "" : again.error().message);
  FUZZ_CHECK(again->size == record.size(), "");
  FUZZ_CHECK(sameEvent(again->event, event), describe(event));

  const std::uint16_t tag = segmentTag(static_cast<std::uint64_t>(payload.size()) << 12);
  stampRecord(record.data(), tag);
  FUZZ_CHECK(inspectRecord(record, tag).status == RecordStatus::Ok, describe(event));
  const std::uint16_t other = tag == 1 ? 2 : 1;
  FUZZ_CHECK(inspectRecord(record, other).status == RecordStatus::Stale, describe(event));
  FUZZ_CHECK(startsOwnHeader(record, tag), "");
  FUZZ_CHECK(!startsOwnHeader(record, other), "");
  std::string torn = record.substr(0, record.size() - 1);
  FUZZ_CHECK(inspectRecord(torn, tag).status == RecordStatus::Truncated, describe(event));
  record.back() ^= 0x01;
  FUZZ_CHECK(inspectRecord(record, tag).status == RecordStatus::BadChecksum, describe(event));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = junction::fuzz::asText(data, size);

  // 1. A record at the start of the bytes.
  for (std::uint16_t tag : {std::uint16_t{0}, segmentTag(0), segmentTag(65536)}) {
    checkView(inspectRecord(bytes, tag), bytes);
    (void)startsOwnHeader(bytes, tag);
  }
  const RecordView view = inspectRecord(bytes, 0);
  auto decoded = decodeRecord(bytes);
  FUZZ_CHECK(!decoded.ok() || view.status == RecordStatus::Ok, "decoded a record not Ok");
  if (decoded.ok()) {
    FUZZ_CHECK(decoded->size == view.size, "");
    roundTrip(decoded->event, view.payload);
    if (bytes[4] == static_cast<char>(kRecordFormatVersion)) {
      std::string record;
      (void)encodeRecord(decoded->event, record);
      FUZZ_CHECK(record == bytes.substr(0, view.size), "an untagged record re-encodes differently");
    }
  } else if (view.status == RecordStatus::Ok) {
    FUZZ_CHECK(!decodePayload(view.payload).ok(), "decodeRecord refused a decodable payload");
  }

  // 2. A bare payload.
  if (auto event = decodePayload(bytes); event.ok()) {
    roundTrip(*event, bytes);
  }

  // 3. Records one after the other, skipping a byte after each invalid position.
  std::size_t pos = 0;
  const std::uint16_t tag = segmentTag(0);
  while (pos < bytes.size()) {
    const std::string_view rest = bytes.substr(pos);
    const RecordView v = inspectRecord(rest, tag);
    checkView(v, rest);
    if (v.status == RecordStatus::Ok) {
      (void)decodePayload(v.payload);
      pos += v.size;
    } else {
      ++pos;
    }
  }
  return 0;
}
