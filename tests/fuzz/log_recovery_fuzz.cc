// libFuzzer target: the queue's recovery at start-up (Log::open, core/queue/log.h) on a segment
// file holding any bytes — a crash mid-write, a disk that returned garbage, a recycled file.
//
// Input: the bytes of 00000000000000000000.seg, alone in a fresh queue directory.
// Calls Log::open, reads every record back with Log::read, appends one event, closes, opens the
// directory again and reads the appended event back.
// Invariants: open succeeds (damage is repaired, never refused); the recovered end lies within
// the file, the file is cut there, and the bytes cut are accounted for (torn tail copied to
// corrupt/ byte for byte, or counted as stale); every record read back is a valid record of
// the segment at that offset of the input and re-encodes to it; reading makes progress; an
// append continues at the recovered end, and the next open keeps all of it.
// Seeds: segment files written by Log::append (tests/fuzz/seed_gen.cc): several records, a torn
// tail, a corrupt region between valid records, a recycled file's stale tail.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <future>
#include <string>
#include <string_view>
#include <vector>

#include "core/queue/log.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace junction::core::queue;
namespace sdk = junction::sdk;

LogOptions optionsFor(const std::string& dir) {
  LogOptions options;
  options.path = dir;
  options.fsync = FsyncPolicy::Never;
  options.segment_bytes = 4u << 20;  // larger than any input: one segment throughout
  return options;
}

std::vector<StoredRecord> readAll(Log& log) {
  std::vector<StoredRecord> out;
  Offset from = log.beginOffset();
  const Offset end = log.durableEnd();
  while (from < end) {
    auto batch = log.read(from, 256, 1u << 20);
    FUZZ_CHECK(batch.ok(), batch.ok() ? "" : batch.error().message);
    FUZZ_CHECK(batch->next > from, "read made no progress at " + std::to_string(from));
    FUZZ_CHECK(batch->next <= end, "read past the durable end");
    for (auto& r : batch->records) {
      FUZZ_CHECK(r.offset >= from && r.offset < batch->next, "record outside its batch");
      FUZZ_CHECK(out.empty() || r.offset > out.back().offset, "records out of order");
      out.push_back(std::move(r));
    }
    from = batch->next;
  }
  return out;
}

bool sameEvent(const sdk::Event& a, const sdk::Event& b) {
  const auto& x = a.header();
  const auto& y = b.header();
  return x.type == y.type && x.message_id == y.message_id && x.user_id == y.user_id &&
         x.anonymous_id == y.anonymous_id && x.name == y.name && x.source_id == y.source_id &&
         x.timestamp_ms == y.timestamp_ms && x.received_at_ms == y.received_at_ms &&
         a.json() == b.json();
}

sdk::Event probeEvent() {
  sdk::EventHeader h;
  h.type = sdk::EventType::Track;
  h.message_id = "fuzz-probe";
  h.user_id = "u-probe";
  h.name = "Probe";
  h.source_id = "web";
  h.timestamp_ms = 1767225600000;
  h.received_at_ms = 1767225600001;
  return sdk::Event(h, R"({"type":"track","event":"Probe","userId":"u-probe"})");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = junction::fuzz::asText(data, size);
  const std::string dir = junction::fuzz::freshDir("queue");
  const std::string segment = dir + "/" + segmentFileName(0);
  junction::fuzz::writeFile(segment, bytes);
  const std::uint16_t tag = segmentTag(0);

  Offset end = 0;
  std::size_t records = 0;
  {
    RecoveryReport report;
    auto opened = Log::open(optionsFor(dir), &report);
    FUZZ_CHECK(opened.ok(), opened.ok() ? "" : opened.error().message);
    Log& log = **opened;
    end = report.end;
    FUZZ_CHECK(report.segments == 1 && report.begin == 0, "");
    FUZZ_CHECK(end <= size, "recovered end " + std::to_string(end) + " past the file");
    FUZZ_CHECK(log.durableEnd() == end, "");
    FUZZ_CHECK(std::filesystem::file_size(segment) == end, "the file is not cut at the end");
    FUZZ_CHECK(report.truncated_bytes + report.stale_bytes == size - end,
               "cut " + std::to_string(size - end) + " bytes, accounted " +
                   std::to_string(report.truncated_bytes) + " torn + " +
                   std::to_string(report.stale_bytes) + " stale");
    if (report.truncated_bytes > 0) {
      FUZZ_CHECK(report.truncated_at == end, "");
      FUZZ_CHECK(junction::fuzz::readFile(report.moved_to) ==
                     bytes.substr(end, report.truncated_bytes),
                 "the copy of the torn tail differs: " + report.moved_to);
    }

    // Everything readable is a record of this segment, at its offset in the input.
    const std::vector<StoredRecord> stored = readAll(log);
    records = stored.size();
    for (const StoredRecord& r : stored) {
      const std::string_view at = bytes.substr(r.offset);
      const RecordView view = inspectRecord(at, tag);
      FUZZ_CHECK(view.status == RecordStatus::Ok,
                 "read a record at " + std::to_string(r.offset) + " that is " +
                     toString(view.status));
      FUZZ_CHECK(r.offset + view.size <= end, "a record read runs past the end");
      auto decoded = decodePayload(view.payload);
      FUZZ_CHECK(decoded.ok() && sameEvent(*decoded, r.event), "");
      if (static_cast<std::uint8_t>(at[4]) == kRecordFormatVersion) {
        std::string again;
        FUZZ_CHECK(encodeRecord(r.event, again).ok(), "");
        stampRecord(again.data(), tag);
        FUZZ_CHECK(again == at.substr(0, view.size),
                   "record at " + std::to_string(r.offset) + " re-encodes differently");
      }
    }

    // Appends continue at the recovered end.
    std::promise<AppendResult> done;
    auto future = done.get_future();
    const sdk::Status st =
        log.append({probeEvent()}, [&done](AppendResult r) { done.set_value(std::move(r)); });
    FUZZ_CHECK(st.ok(), st.message());
    const AppendResult appended = future.get();
    FUZZ_CHECK(appended.status.ok(), appended.status.message());
    FUZZ_CHECK(appended.first == end, "appended at " + std::to_string(appended.first) +
                                          ", recovered end " + std::to_string(end));
    FUZZ_CHECK(appended.end == end + encodedRecordSize(probeEvent()), "");
  }

  // The next start keeps every byte of it, and the appended event is the last one.
  RecoveryReport again;
  auto reopened = Log::open(optionsFor(dir), &again);
  FUZZ_CHECK(reopened.ok(), reopened.ok() ? "" : reopened.error().message);
  FUZZ_CHECK(again.end == end + encodedRecordSize(probeEvent()),
             "reopened at " + std::to_string(again.end) + " after an append that ended at " +
                 std::to_string(end + encodedRecordSize(probeEvent())));
  FUZZ_CHECK(again.truncated_bytes == 0 && again.stale_bytes == 0, "the second open cut data");
  const std::vector<StoredRecord> stored = readAll(**reopened);
  FUZZ_CHECK(stored.size() == records + 1, "records before the append: " +
                                               std::to_string(records) + ", after: " +
                                               std::to_string(stored.size()));
  FUZZ_CHECK(stored.back().offset == end && sameEvent(stored.back().event, probeEvent()), "");
  return 0;
}
