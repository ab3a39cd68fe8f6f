#pragma once

// The embedded durable log: an append-only sequence of event records in segment files, addressed
// by global byte offsets. See README.md for the format, recovery and durability semantics.

#include <atomic>
#include <chrono>
#include <optional>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/queue/record.h"
#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::core::queue {

// A global byte offset: segment base offset + position in the segment file. Offsets of
// consecutive records are contiguous across segments (a new segment's base is the end offset of
// the previous one).
using Offset = std::uint64_t;

enum class FsyncPolicy : std::uint8_t {
  Always,  // fdatasync before completing every group
  Batch,   // fdatasync at most every fsync_interval; groups arriving meanwhile share the sync
  Never,   // complete after write(): survives a process crash, not a power loss
};

struct LogOptions {
  std::string path;  // directory; created if missing
  FsyncPolicy fsync = FsyncPolicy::Batch;
  std::chrono::milliseconds fsync_interval{2};
  std::uint64_t segment_bytes = 64u << 20;  // roll threshold; a record is never split
  std::uint64_t max_bytes = 0;               // disk budget for segments; 0 = unlimited
  // Delivered segments kept as files to reuse for new segments (see README.md, "Recycling"),
  // each for at most spare_max_age: their delivered records do not linger on a quiet queue.
  std::size_t recycle_segments = 0;
  std::chrono::milliseconds spare_max_age{60'000};
};

// Events missing between segments that are there: a segment file deleted or truncated behind
// the daemon's back (a sealed segment's size and record count are kept in segments.idx when it
// is sealed). `events` is -1 when nothing recorded how many there were (segments sealed by a
// release before the index).
struct QueueGap {
  Offset begin = 0;
  Offset end = 0;
  std::int64_t events = -1;
  std::string what;  // "segment file 00000000000000065536.seg is missing", "... is truncated"
};

// What open() found and repaired.
struct RecoveryReport {
  std::size_t segments = 0;            // segment files found (after creating the first one)
  Offset begin = 0;                    // oldest retained offset
  Offset end = 0;                      // end of valid data = where appends continue
  std::uint64_t scanned_bytes = 0;     // bytes read to validate the last segment
  std::uint64_t corrupt_regions = 0;   // invalid regions inside the last segment, left for readers
  std::uint64_t truncated_bytes = 0;   // torn or corrupt tail removed from the last segment
  Offset truncated_at = 0;             // offset where the tail started (if truncated_bytes > 0)
  std::string moved_to;                // file holding the removed tail (if truncated_bytes > 0)
  // Bytes past the end in which no record of the segment starts, cut off without a copy: a
  // recycled file's previous use (or junk). Not data: nothing acknowledged was there.
  std::uint64_t stale_bytes = 0;
  std::size_t spares_deleted = 0;      // recycled files left unused by the last run
  std::vector<QueueGap> gaps;          // data lost between the segments found (see QueueGap)
};

struct AppendResult {
  sdk::Status status;
  Offset first = 0;  // offset of the call's first record
  Offset end = 0;    // offset just past its last record (== first for an empty call)
};

struct StoredRecord {
  Offset offset = 0;
  sdk::Event event;
};

struct ReadBatch {
  std::vector<StoredRecord> records;
  Offset next = 0;                    // where the next read should start
  std::uint64_t skipped_bytes = 0;    // bytes passed over: deleted segments or corrupt regions
  std::uint64_t corrupt_regions = 0;  // corrupt regions met (each reported once per Log)
};

// A corrupt region met by a reader: reported once per region per Log instance.
struct CorruptionReport {
  Offset offset = 0;         // start of the invalid bytes
  std::uint64_t length = 0;  // up to the next valid record (or the end of durable data)
  RecordStatus reason = RecordStatus::BadChecksum;
  std::string moved_to;      // copy of the bytes under <path>/corrupt/ ("" if the copy failed)
};

// Thread-safety: every method may be called from any thread, concurrently, except that the
// destructor must not race with other calls. Lifetime: the destructor completes every accepted
// append (writes + syncs it under the policy, then runs `done`) before it returns. One Log per
// directory per process; two processes must not open the same directory.
class Log {
 public:
  using AppendCallback = std::function<void(AppendResult)>;

  // Creates the directory if needed, opens every segment (sizes only) and validates the last
  // segment alone, so start-up time is bounded by segment_bytes, not by the backlog. A torn or
  // corrupt tail of the last segment is copied to <path>/corrupt/ and truncated; `report`
  // (optional) says what happened.
  static sdk::Result<std::unique_ptr<Log>> open(LogOptions options, RecoveryReport* report);

  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Queues `events` for the writer thread and returns at once (never blocks on I/O).
  // On ok(), `done` is called exactly once on the writer thread after every event of the call is
  // durable under the policy, with the call's offsets, or with Unavailable if the write or sync
  // failed (nothing of the call is then readable). On error, nothing is queued and `done` is
  // NOT called: ResourceExhausted when the call would push disk usage past max_bytes,
  // InvalidArgument for an event above the record limit, Unavailable when the log is closing.
  // A call is all or nothing. `done` must not block for long: it delays every later group.
  [[nodiscard]] sdk::Status append(std::vector<sdk::Event> events, AppendCallback done);

  // Up to `max_records` durable records from `from`, stopping before a record that would bring
  // the total of record sizes above `max_bytes` (at least one record is returned if any is
  // available, however large). `from` must be a record offset previously returned (or
  // beginOffset()); an offset inside a deleted segment resumes at beginOffset() and counts the
  // gap in `skipped_bytes`. Corrupt records are reported (corruptRecords(), the corruption
  // listener, a copy under <path>/corrupt/) and skipped. InvalidArgument if from > durableEnd().
  sdk::Result<ReadBatch> read(Offset from, std::size_t max_records, std::size_t max_bytes);

  // Deletes every segment that lies entirely below `min_cursor`, never the active one. Returns
  // the number of segments deleted. Readers still inside a deleted segment finish their pread.
  // A deleted segment no reader holds that this Log wrote becomes a spare, kept for the writer
  // to reuse, while fewer than `recycle_segments` are kept and disk use is below half of
  // `max_bytes`; a spare unused for `spare_max_age` is deleted here. Any other is shrunk in steps before its last close, so the file system frees
  // its blocks gradually (a few ms per segment on the caller's thread): freed at once, they
  // stall the writer's fdatasync on ext4 with `discard`.
  sdk::Result<std::size_t> truncateBefore(Offset min_cursor);

  Offset durableEnd() const noexcept { return durable_end_.load(std::memory_order_acquire); }
  Offset beginOffset() const;
  // Segment files on disk, spares and a recycled active segment's unused end included.
  std::uint64_t diskBytes() const noexcept {
    return disk_bytes_.load(std::memory_order_relaxed) +
           spare_bytes_.load(std::memory_order_relaxed);
  }
  std::size_t spareCount() const;

  // Called on the writer thread after each durable group (after the group's `done` callbacks).
  // Must be cheap and must not call setAppendListener.
  void setAppendListener(std::function<void()> listener);
  // Called on the writer thread after each fdatasync of a segment, with its duration (for the
  // daemon's histogram: slow syncs are the usual cause of slow acknowledgements).
  void setSyncListener(std::function<void(std::chrono::nanoseconds)> listener);
  // Called on the writer thread when a group's write or sync failed (a full disk, an I/O
  // error): its calls were answered with Unavailable; `records` were not written.
  void setWriteFailureListener(std::function<void(const sdk::Status&, std::size_t records)> listener);
  // Called on the reading thread when a reader meets a new corrupt region.
  void setCorruptionListener(std::function<void(const CorruptionReport&)> listener);

  // Plain counters for metrics (monotonic since open).
  std::uint64_t appendedRecords() const noexcept { return appended_records_.load(); }
  std::uint64_t appendedBytes() const noexcept { return appended_bytes_.load(); }
  std::uint64_t fsyncCount() const noexcept { return fsync_count_.load(); }
  std::uint64_t corruptRecords() const noexcept { return corrupt_records_.load(); }
  std::uint64_t writeErrors() const noexcept { return write_errors_.load(); }
  std::uint64_t skippedBytes() const noexcept { return skipped_bytes_.load(); }
  // When an append was last refused for max_bytes (steady clock), or nullopt: never.
  std::optional<std::chrono::steady_clock::time_point> lastBudgetRefusal() const noexcept {
    const auto ns = budget_refused_ns_.load(std::memory_order_relaxed);
    if (ns == 0) {
      return std::nullopt;
    }
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
  }
  std::uint64_t recycledSegments() const noexcept { return recycled_segments_.load(); }
  std::uint64_t recoveryScannedBytes() const noexcept { return recovery_scanned_bytes_; }
  std::size_t segmentCount() const;
  const LogOptions& options() const noexcept { return options_; }

 private:
  struct Segment;
  // A delivered segment's file kept for reuse: renamed to "<old base>.free", fd open.
  struct Spare {
    int fd = -1;
    Offset old_base = 0;
    std::uint64_t size = 0;
    std::string path;
    std::chrono::steady_clock::time_point since;
  };
  struct PendingCall {
    AppendCallback done;
    std::size_t begin = 0;  // byte range of the call inside Group::bytes
    std::size_t end = 0;
    std::size_t records = 0;
  };
  // A growable byte array that, unlike std::string::resize, does not zero what it adds: the
  // records encoded into it overwrite those bytes at once.
  class Bytes {
   public:
    // Grows by `n` bytes (contents unspecified); returns where they start.
    char* extend(std::size_t n);
    const char* data() const noexcept { return buf_.get(); }
    char* data() noexcept { return buf_.get(); }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    void clear() noexcept { size_ = 0; }  // keeps the allocation

   private:
    std::unique_ptr<char[]> buf_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
  };
  struct Group {
    Bytes bytes;
    std::vector<std::uint32_t> record_sizes;
    std::vector<PendingCall> calls;
    void clear();
  };

  explicit Log(LogOptions options);
  sdk::Status recover(RecoveryReport& report);
  void writerLoop();
  sdk::Status writeGroup(Group& group);
  sdk::Status roll();
  void completeGroup(Group& group, const sdk::Status& status, Offset start);
  sdk::Status syncActive();
  std::shared_ptr<Segment> createSegment(Offset base);
  // A spare renamed to be the segment at `base`, or nullptr (none fits, or the rename failed);
  // `file_size` is then the file's size.
  std::shared_ptr<Segment> reuseSpare(Offset base, std::uint64_t& file_size);
  // Counts the unused end of the active segment (a recycled file) as spare bytes.
  void setActiveStale(std::uint64_t bytes);
  void releaseSpare(Spare& spare);
  // Whether disk use, the victim at hand still counted as data, is within half of max_bytes:
  // then the victim may stay as a spare.
  bool spareFits();
  void reportCorruption(const Segment& segment, std::uint64_t pos, std::uint64_t end,
                        RecordStatus reason);

  const LogOptions options_;

  // Producers -> writer.
  std::mutex mu_;
  std::condition_variable cv_;
  Group pending_;
  bool writer_idle_ = false;
  bool stopping_ = false;
  std::atomic<std::int64_t> budget_refused_ns_{0};  // steady clock; 0: never
  std::uint64_t committed_bytes_ = 0;  // on disk + queued; what max_bytes is checked against
  std::thread writer_;

  // Segments: the map is changed by the writer (roll) and truncateBefore; readers copy a
  // shared_ptr out and pread without the lock.
  mutable std::shared_mutex segments_mu_;
  std::map<Offset, std::shared_ptr<Segment>> segments_;

  // Writer-thread state.
  std::shared_ptr<Segment> active_;
  std::uint64_t active_size_ = 0;  // bytes written to the active segment
  std::uint64_t active_records_ = 0;  // records in it (for segments.idx when it is sealed)
  std::uint64_t active_file_size_ = 0;  // its file's size: larger when the file is recycled
  std::uint64_t active_stale_ = 0;      // the part of spare_bytes_ that is the active's end
  // Segments filled during the current group (with their final sizes) and created by it.
  std::vector<std::pair<std::shared_ptr<Segment>, std::uint64_t>> sealed_;
  std::vector<std::shared_ptr<Segment>> created_;
  std::weak_ptr<Segment> last_sealed_;  // by the latest roll (weak: retention may delete it)
  std::chrono::steady_clock::time_point last_sync_{};

  std::atomic<Offset> durable_end_{0};
  std::atomic<std::uint64_t> disk_bytes_{0};   // segment data on disk
  std::atomic<std::uint64_t> spare_bytes_{0};  // spares + the active's unused end

  // Spares: added by truncateBefore, taken by the writer at a roll.
  mutable std::mutex spare_mu_;
  std::vector<Spare> spares_;

  std::mutex listener_mu_;
  std::function<void()> append_listener_;
  std::function<void(const CorruptionReport&)> corruption_listener_;
  std::function<void(std::chrono::nanoseconds)> sync_listener_;
  std::function<void(const sdk::Status&, std::size_t)> write_failure_listener_;

  std::mutex corrupt_mu_;
  std::set<Offset> corrupt_seen_;

  std::atomic<std::uint64_t> appended_records_{0};
  std::atomic<std::uint64_t> appended_bytes_{0};
  std::atomic<std::uint64_t> fsync_count_{0};
  std::atomic<std::uint64_t> corrupt_records_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> skipped_bytes_{0};
  std::atomic<std::uint64_t> recycled_segments_{0};
  std::uint64_t recovery_scanned_bytes_ = 0;

  // segments.idx: one entry per sealed segment (base, size, records), appended by the writer at
  // each roll and compacted by truncateBefore; what tells a deleted or truncated segment's
  // events at the next open.
  struct IndexEntry {
    std::uint64_t size = 0;
    std::uint64_t records = 0;
  };
  void findGaps(const std::vector<Offset>& bases, RecoveryReport& report);
  void appendIndex(Offset base, std::uint64_t size, std::uint64_t records);
  void compactIndex();
  std::mutex index_mu_;
  int index_fd_ = -1;
  std::map<Offset, IndexEntry> index_;  // under index_mu_
};

// "00000000000000001234.seg"
std::string segmentFileName(Offset base);

}  // namespace junction::core::queue
