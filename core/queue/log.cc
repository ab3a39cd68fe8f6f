#include "core/queue/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include "core/queue/crc32c.h"
#include "core/queue/io.h"
#include "core/runtime/thread.h"
#include "junction/sdk/files.h"

namespace junction::core::queue {

struct Log::Segment {
  Segment(Offset base_offset, int file, std::string file_path, bool written_here)
      : base(base_offset),
        tag(segmentTag(base_offset)),
        fd(file),
        path(std::move(file_path)),
        recyclable(written_here) {}
  ~Segment() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Gives up the fd (for a spare), so the destructor does not close it. Only by the last holder.
  int releaseFd() noexcept { return std::exchange(fd, -1); }

  const Offset base;
  const std::uint16_t tag;
  int fd;  // changes only in releaseFd, when no reader holds the segment any more
  const std::string path;
  // Created by this Log's writer: every record in it is tagged, so the file may be reused.
  // Segments found at open may hold untagged (version 1) records and are never reused.
  const bool recyclable;
  // Bytes readers may read: only durable data. Written by the writer thread after each sync.
  std::atomic<std::uint64_t> durable_size{0};
  // No more appends go here and its whole content is durable.
  std::atomic<bool> sealed{false};
};

namespace {

constexpr Offset kNoOffset = std::numeric_limits<Offset>::max();
constexpr std::size_t kMinReadWindow = 64u << 10;
constexpr std::size_t kMaxReadWindow = 1u << 20;

sdk::Error ioError(const std::string& what, const std::string& path, int err) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        what + " " + path + ": " + std::strerror(err));
}

constexpr std::string_view kSegmentSuffix = ".seg";
constexpr std::string_view kSpareSuffix = ".free";

std::optional<Offset> parseBaseName(std::string_view name, std::string_view suffix) {
  if (name.size() != 20 + suffix.size() || name.substr(20) != suffix) {
    return std::nullopt;
  }
  Offset base = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const Offset digit = static_cast<Offset>(c - '0');
    if (base > (kNoOffset - digit) / 10) {
      return std::nullopt;
    }
    base = base * 10 + digit;
  }
  return base;
}

// The record at `pos` (status Truncated if it does not fit before `limit`).
RecordView recordAt(WindowReader& reader, std::uint64_t pos, std::uint64_t limit,
                    std::uint16_t tag) {
  RecordView v = inspectRecord(reader.view(pos, kRecordHeaderSize), tag);
  if (v.status == RecordStatus::Truncated && v.size > 0 && pos + v.size <= limit) {
    v = inspectRecord(reader.view(pos, v.size), tag);
  }
  return v;
}

// Offset (relative to the file) of the first valid record strictly after `pos`, or `limit`.
// A candidate must have the magic, a sane length that fits before `limit`, a good check and
// the segment's tag; with `or_stale`, an intact record of another tag also ends the search.
struct Found {
  std::uint64_t pos;
  bool stale;
};
Found findNextValid(WindowReader& reader, std::uint64_t pos, std::uint64_t limit,
                    std::uint16_t tag, bool or_stale) {
  const auto magic_lo = static_cast<char>(kRecordMagic & 0xFFu);
  std::uint64_t p = pos + 1;
  while (p + kRecordHeaderSize <= limit) {
    const std::string_view window = reader.available(p);
    if (window.size() < kRecordHeaderSize) {
      return {limit, false};  // I/O error or nothing left
    }
    const std::size_t scan = window.size() - 3;
    const void* hit = std::memchr(window.data(), magic_lo, scan);
    if (hit == nullptr) {
      p += scan;
      continue;
    }
    const std::uint64_t candidate =
        p + static_cast<std::uint64_t>(static_cast<const char*>(hit) - window.data());
    const RecordView v = recordAt(reader, candidate, limit, tag);
    if (v.status == RecordStatus::Ok || (or_stale && v.status == RecordStatus::Stale)) {
      return {candidate, v.status == RecordStatus::Stale};
    }
    p = candidate + 1;
  }
  return {limit, false};
}

// Walks records from `pos`; returns where the valid run stops (== limit when all is valid) and
// why.
struct Stop {
  std::uint64_t pos;
  RecordStatus status;
};
Stop scanValid(WindowReader& reader, std::uint64_t pos, std::uint64_t limit, std::uint16_t tag,
               std::uint64_t* records = nullptr) {
  while (pos < limit) {
    const RecordView v = recordAt(reader, pos, limit, tag);
    if (v.status != RecordStatus::Ok) {
      return {pos, v.status};
    }
    pos += v.size;
    if (records != nullptr) {
      ++*records;
    }
  }
  return {pos, RecordStatus::Ok};
}

constexpr const char* kIndexName = "segments.idx";
constexpr std::uint32_t kIndexMagic = 0x5849534Au;  // "JSIX"
constexpr std::size_t kIndexEntrySize = 32;  // base, size, records (u64 each), crc32c, magic

std::string encodeIndexEntry(std::uint64_t base, std::uint64_t size, std::uint64_t records) {
  std::string e(kIndexEntrySize, '\0');
  auto put = [&e](std::size_t at, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) {
      e[at + static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
    }
  };
  put(0, base, 8);
  put(8, size, 8);
  put(16, records, 8);
  put(24, crc32c(std::string_view(e.data(), 24)), 4);
  put(28, kIndexMagic, 4);
  return e;
}

std::uint64_t getIndexField(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return v;
}

}  // namespace

std::string segmentFileName(Offset base) {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".seg", base);
  return name;
}

char* Log::Bytes::extend(std::size_t n) {
  if (size_ + n > capacity_) {
    const std::size_t capacity = std::max({size_ + n, 2 * capacity_, std::size_t{64} << 10});
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ > 0) {
      std::memcpy(bigger.get(), buf_.get(), size_);
    }
    buf_ = std::move(bigger);
    capacity_ = capacity;
  }
  char* start = buf_.get() + size_;
  size_ += n;
  return start;
}

void Log::Group::clear() {
  if (bytes.capacity() > (16u << 20)) {
    bytes = Bytes();  // after a burst: not kept for good
  } else {
    bytes.clear();
  }
  record_sizes.clear();
  calls.clear();
}

Log::Log(LogOptions options) : options_(std::move(options)) {}

sdk::Result<std::unique_ptr<Log>> Log::open(LogOptions options, RecoveryReport* report) {
  if (options.path.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "queue path is empty");
  }
  if (options.segment_bytes < 4096) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "queue segment_bytes must be at least 4096");
  }
  if (options.fsync_interval.count() < 0) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "queue fsync_interval is negative");
  }
  std::unique_ptr<Log> log(new Log(std::move(options)));
  RecoveryReport local;
  if (sdk::Status st = log->recover(local); !st.ok()) {
    return st.error();
  }
  if (report != nullptr) {
    *report = local;
  }
  log->writer_ = std::thread([raw = log.get()] {
    runtime::nameThisThread("jn-queue-writer");
    raw->writerLoop();
  });
  return log;
}

Log::~Log() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) {
    writer_.join();
  }
  if (index_fd_ >= 0) {
    ::close(index_fd_);
  }
  for (Spare& spare : spares_) {
    ::unlink(spare.path.c_str());
    ::close(spare.fd);
  }
}

std::shared_ptr<Log::Segment> Log::createSegment(Offset base) {
  const std::string file = options_.path + "/" + segmentFileName(base);
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return nullptr;
  }
  return std::make_shared<Segment>(base, fd, file, true);
}

std::shared_ptr<Log::Segment> Log::reuseSpare(Offset base, std::uint64_t& file_size) {
  Spare spare;
  {
    std::lock_guard lk(spare_mu_);
    // Never a file whose last use had the same tag: its records would read as this segment's.
    auto it = std::find_if(spares_.begin(), spares_.end(), [&](const Spare& s) {
      return segmentTag(s.old_base) != segmentTag(base);
    });
    if (it == spares_.end()) {
      return nullptr;
    }
    spare = std::move(*it);
    spares_.erase(it);
  }
  const std::string file = options_.path + "/" + segmentFileName(base);
  if (::rename(spare.path.c_str(), file.c_str()) != 0) {
    releaseSpare(spare);
    return nullptr;
  }
  // Its bytes move from the spares to the active segment's unused end (the previous active's is
  // cut off by now): still spare bytes.
  active_stale_ = spare.size;
  file_size = spare.size;
  ++recycled_segments_;
  return std::make_shared<Segment>(base, spare.fd, file, true);
}

void Log::setActiveStale(std::uint64_t bytes) {
  if (bytes == active_stale_) {
    return;
  }
  if (bytes > active_stale_) {
    spare_bytes_ += bytes - active_stale_;
  } else {
    spare_bytes_ -= active_stale_ - bytes;
  }
  active_stale_ = bytes;
}

void Log::releaseSpare(Spare& spare) {
  (void)::unlink(spare.path.c_str());
  sdk::shrinkGradually(spare.fd, spare.size);
  ::close(spare.fd);
  spare_bytes_ -= spare.size;
}

bool Log::spareFits() {
  if (options_.max_bytes == 0) {
    return true;
  }
  std::uint64_t committed = 0;
  {
    std::lock_guard lk(mu_);
    committed = committed_bytes_;
  }
  return committed + spare_bytes_.load() <= options_.max_bytes / 2;
}

std::size_t Log::spareCount() const {
  std::lock_guard lk(spare_mu_);
  return spares_.size();
}

sdk::Status Log::recover(RecoveryReport& report) {
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot create queue directory " + options_.path + ": " + ec.message());
  }
  std::vector<Offset> bases;
  {
    DIR* dir = ::opendir(options_.path.c_str());
    if (dir == nullptr) {
      return ioError("cannot list queue directory", options_.path, errno);
    }
    while (const dirent* entry = ::readdir(dir)) {
      if (auto base = parseBaseName(entry->d_name, kSegmentSuffix)) {
        bases.push_back(*base);
      } else if (parseBaseName(entry->d_name, kSpareSuffix)) {
        // A spare of the last run: holds nothing; this run keeps its own.
        const std::string file = options_.path + "/" + entry->d_name;
        if (::unlink(file.c_str()) != 0) {
          const int err = errno;
          ::closedir(dir);
          return ioError("cannot delete spare segment file", file, err);
        }
        ++report.spares_deleted;
      }
    }
    ::closedir(dir);
  }
  std::sort(bases.begin(), bases.end());

  if (bases.empty()) {
    auto seg = createSegment(0);
    if (!seg) {
      return ioError("cannot create segment in", options_.path, errno);
    }
    if (int err = fsyncDirectory(options_.path); err != 0) {
      return ioError("cannot sync directory", options_.path, err);
    }
    segments_.emplace(0, std::move(seg));
    bases.push_back(0);
  } else {
    for (std::size_t i = 0; i < bases.size(); ++i) {
      const bool last = i + 1 == bases.size();
      const std::string file = options_.path + "/" + segmentFileName(bases[i]);
      const int fd = ::open(file.c_str(), (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
      if (fd < 0) {
        return ioError("cannot open segment", file, errno);
      }
      auto seg = std::make_shared<Segment>(bases[i], fd, file, false);
      struct stat st {};
      if (::fstat(fd, &st) != 0) {
        return ioError("cannot stat segment", file, errno);
      }
      auto size = static_cast<std::uint64_t>(st.st_size);
      disk_bytes_ += size;
      if (!last) {
        // Older segments are trusted by size alone: scanning them would make start-up time grow
        // with the backlog. Readers validate every record anyway.
        seg->durable_size = std::min<std::uint64_t>(size, bases[i + 1] - bases[i]);
        seg->sealed = true;
      }
      segments_.emplace(bases[i], std::move(seg));
    }
  }

  // Validate the last segment from its start.
  const std::shared_ptr<Segment>& last = segments_.rbegin()->second;
  struct stat st {};
  if (::fstat(last->fd, &st) != 0) {
    return ioError("cannot stat segment", last->path, errno);
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  WindowReader reader;
  reader.reset(last->fd, file_size, kMaxReadWindow);
  std::uint64_t end = 0;
  std::uint64_t torn_end = file_size;  // where a recycled file's previous use starts
  std::uint64_t last_records = 0;
  while (true) {
    const Stop stop = scanValid(reader, end, file_size, last->tag, &last_records);
    end = stop.pos;
    if (end >= file_size || reader.failed()) {
      break;
    }
    if (stop.status == RecordStatus::Stale) {
      torn_end = end;  // the data ends where the file's previous use shows through
      break;
    }
    // Invalid bytes: a corrupt region if a valid record follows (readers will report and skip
    // it; the records after it are kept). Otherwise the end of the data: a torn tail when a
    // record of this segment starts there (cut short by a crash), up to the previous use of a
    // recycled file if one shows; the previous use itself when nothing of ours starts there.
    const Found next = findNextValid(reader, end, file_size, last->tag, true);
    if (next.pos < file_size && !next.stale) {
      ++report.corrupt_regions;
      end = next.pos;
      continue;
    }
    torn_end = startsOwnHeader(reader.view(end, 8), last->tag) ? next.pos : end;
    break;
  }
  if (reader.failed()) {
    return ioError("cannot read segment", last->path, reader.error());
  }
  recovery_scanned_bytes_ = reader.bytesRead();
  report.scanned_bytes = recovery_scanned_bytes_;

  if (end < torn_end) {
    const Offset at = last->base + end;
    const std::string dir = options_.path + "/corrupt";
    const std::string copy = dir + "/" + segmentFileName(last->base).substr(0, 20) + "-" +
                             segmentFileName(at).substr(0, 20) + ".bin";
    if (int err = copyRange(last->fd, end, torn_end, dir, copy); err != 0) {
      return ioError("cannot save the torn tail of segment to", copy, err);
    }
    report.truncated_bytes = torn_end - end;
    report.truncated_at = at;
    report.moved_to = copy;
  }
  if (end < file_size) {
    if (::ftruncate(last->fd, static_cast<off_t>(end)) != 0 || ::fdatasync(last->fd) != 0) {
      return ioError("cannot truncate the torn tail of segment", last->path, errno);
    }
    disk_bytes_ -= file_size - end;
    report.stale_bytes = file_size - torn_end;
  }
  last->durable_size = end;
  active_ = last;
  active_size_ = end;
  active_records_ = last_records;
  findGaps(bases, report);
  active_file_size_ = end;
  durable_end_ = last->base + end;
  committed_bytes_ = disk_bytes_;

  report.segments = segments_.size();
  report.begin = segments_.begin()->first;
  report.end = durable_end_;
  return sdk::Status::success();
}

sdk::Status Log::append(std::vector<sdk::Event> events, AppendCallback done) {
  // Sizes and checks first; the records are then encoded straight into the pending group (one
  // copy of each event, not two), under the lock: about a microsecond per 20 events.
  thread_local std::vector<std::uint32_t> sizes;
  sizes.clear();
  std::size_t total = 0;
  for (const sdk::Event& event : events) {
    auto size = checkedRecordSize(event);
    if (!size) {
      return std::move(size).error();
    }
    sizes.push_back(static_cast<std::uint32_t>(*size));
    total += *size;
  }
  bool notify = false;
  {
    std::lock_guard lk(mu_);
    if (stopping_) {
      return sdk::makeError(sdk::ErrorCode::Unavailable, "the queue is shutting down");
    }
    const std::uint64_t used = committed_bytes_ + spare_bytes_.load(std::memory_order_relaxed);
    if (options_.max_bytes != 0 && used + total > options_.max_bytes) {
      budget_refused_ns_.store(
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now().time_since_epoch())
              .count(),
          std::memory_order_relaxed);
      return sdk::makeError(
          sdk::ErrorCode::ResourceExhausted,
          "queue disk budget exhausted: storage.max_bytes is " +
              std::to_string(options_.max_bytes) + ", " + std::to_string(used) +
              " bytes are used and this append needs " + std::to_string(total) +
              " more; space is freed when every destination has delivered past a segment");
    }
    committed_bytes_ += total;
    PendingCall call;
    call.done = std::move(done);
    call.begin = pending_.bytes.size();
    call.end = call.begin + total;
    call.records = sizes.size();
    char* out = pending_.bytes.extend(total);
    for (const sdk::Event& event : events) {
      out = encodeRecordTo(event, out);
    }
    pending_.record_sizes.insert(pending_.record_sizes.end(), sizes.begin(), sizes.end());
    pending_.calls.push_back(std::move(call));
    notify = writer_idle_;
  }
  if (notify) {
    cv_.notify_one();
  }
  return sdk::Status::success();
}

void Log::writerLoop() {
  Group group;
  std::unique_lock lk(mu_);
  while (true) {
    if (pending_.calls.empty()) {
      if (stopping_) {
        break;
      }
      writer_idle_ = true;
      cv_.wait(lk, [this] { return stopping_ || !pending_.calls.empty(); });
      writer_idle_ = false;
      continue;
    }
    if (options_.fsync == FsyncPolicy::Batch && !stopping_) {
      // Let more groups join the next sync; producers do not wake us meanwhile.
      const auto deadline = last_sync_ + options_.fsync_interval;
      cv_.wait_until(lk, deadline, [this] { return stopping_; });
    }
    std::swap(group, pending_);
    lk.unlock();

    const Offset start = active_->base + active_size_;
    const std::uint64_t bytes = group.bytes.size();
    last_sync_ = std::chrono::steady_clock::now();
    sealed_.clear();
    sdk::Status st = writeGroup(group);
    if (st.ok()) {
      for (auto& [seg, size] : sealed_) {
        seg->durable_size.store(size, std::memory_order_release);
        seg->sealed.store(true, std::memory_order_release);
      }
      active_->durable_size.store(active_size_, std::memory_order_release);
      durable_end_.store(start + bytes, std::memory_order_release);
      disk_bytes_ += bytes;
      appended_records_ += group.record_sizes.size();
      appended_bytes_ += bytes;
    } else {
      ++write_errors_;
      {
        std::lock_guard relk(mu_);
        committed_bytes_ -= bytes;
      }
      std::lock_guard llk(listener_mu_);
      if (write_failure_listener_) {
        write_failure_listener_(st, group.record_sizes.size());
      }
    }
    // No reference to a sealed segment outlives its group (dropped before the callbacks run):
    // retention may then be the last holder.
    sealed_.clear();
    created_.clear();
    completeGroup(group, st, start);
    group.clear();
    lk.lock();
  }
}

sdk::Status Log::syncActive() {
  ++fsync_count_;
  const auto start = std::chrono::steady_clock::now();
  const int rc = ::fdatasync(active_->fd);
  const int err = errno;
  {
    std::lock_guard lk(listener_mu_);
    if (sync_listener_) {
      sync_listener_(std::chrono::steady_clock::now() - start);
    }
  }
  if (rc != 0) {
    return ioError("fdatasync failed on segment", active_->path, err);
  }
  return sdk::Status::success();
}

sdk::Status Log::roll() {
  if (active_file_size_ > active_size_) {
    // A recycled file: cut its previous use's bytes off, so that a sealed segment's size is its
    // data (recovery trusts older segments by size).
    if (::ftruncate(active_->fd, static_cast<off_t>(active_size_)) != 0) {
      return ioError("cannot truncate segment", active_->path, errno);
    }
    active_file_size_ = active_size_;
    setActiveStale(0);
  }
  if (options_.fsync != FsyncPolicy::Never) {
    if (sdk::Status st = syncActive(); !st.ok()) {
      return st;
    }
  }
  appendIndex(active_->base, active_size_, active_records_);
  const Offset base = active_->base + active_size_;
  std::uint64_t file_size = 0;
  auto seg = reuseSpare(base, file_size);
  bool fresh = false;
  if (!seg) {
    seg = createSegment(base);
    fresh = true;
  }
  if (!seg) {
    return ioError("cannot create segment", options_.path + "/" + segmentFileName(base), errno);
  }
  if (options_.fsync != FsyncPolicy::Never) {
    if (int err = fsyncDirectory(options_.path); err != 0) {
      ::unlink(seg->path.c_str());
      return ioError("cannot sync directory", options_.path, err);
    }
  }
  {
    std::unique_lock lk(segments_mu_);
    segments_.emplace(base, seg);
  }
  if (fresh) {
    // No delivered file to reuse: a reader lags (or the backlog grows), so the page cache would
    // grow by a segment per roll, and each new page is memory the kernel must find and clear (on
    // a VM with free page reporting, memory the host must hand back: the writer's copies into
    // the page cache then cost ~15x). The segment sealed at the roll before this one is synced
    // and on disk; its pages go back to the kernel, which hands them, still warm, to the new
    // segment. The newest sealed segment stays cached for readers just behind the writer; one
    // further back reads from disk.
    if (auto older = last_sealed_.lock()) {
      (void)::posix_fadvise(older->fd, 0, 0, POSIX_FADV_DONTNEED);
    }
  }
  last_sealed_ = active_;
  sealed_.emplace_back(active_, active_size_);
  created_.push_back(seg);
  active_ = std::move(seg);
  active_size_ = 0;
  active_records_ = 0;
  active_file_size_ = file_size;
  return sdk::Status::success();
}

sdk::Status Log::writeGroup(Group& group) {
  const std::shared_ptr<Segment> original = active_;
  const std::uint64_t original_size = active_size_;
  const std::uint64_t original_records = active_records_;
  created_.clear();
  sdk::Status st;
  const auto& sizes = group.record_sizes;
  std::size_t pos = 0;
  std::size_t idx = 0;
  while (idx < sizes.size()) {
    if (active_size_ > 0 && active_size_ + sizes[idx] > options_.segment_bytes) {
      st = roll();
      if (!st.ok()) {
        break;
      }
    }
    // The records were encoded untagged: stamp them with this segment's tag as they go in.
    char* const records = group.bytes.data() + pos;
    std::size_t chunk = 0;
    std::uint64_t chunk_records = 0;
    while (idx < sizes.size() && ((active_size_ == 0 && chunk == 0) ||
                                  active_size_ + chunk + sizes[idx] <= options_.segment_bytes)) {
      stampRecord(records + chunk, active_->tag);
      chunk += sizes[idx];
      ++chunk_records;
      ++idx;
    }
    if (int err = pwriteAll(active_->fd, records, chunk, active_size_); err != 0) {
      st = ioError("write failed on segment", active_->path, err);
      break;
    }
    active_size_ += chunk;
    active_records_ += chunk_records;
    pos += chunk;
    active_file_size_ = std::max(active_file_size_, active_size_);
    setActiveStale(active_file_size_ - active_size_);
  }
  if (st.ok() && options_.fsync != FsyncPolicy::Never && !sizes.empty()) {
    st = syncActive();
  }
  if (!st.ok()) {
    // Undo the group: nothing of a failed call may become readable, and the next group must
    // start at the last durable position.
    if (!created_.empty()) {
      std::unique_lock lk(segments_mu_);
      for (const auto& seg : created_) {
        segments_.erase(seg->base);
        ::unlink(seg->path.c_str());
      }
    }
    created_.clear();
    sealed_.clear();
    active_ = original;
    active_size_ = original_size;
    active_records_ = original_records;
    // Drop whatever reached the page cache (after a failed fdatasync it may be lost anyway),
    // and a recycled file's previous use with it.
    (void)::ftruncate(active_->fd, static_cast<off_t>(active_size_));
    active_file_size_ = active_size_;
    setActiveStale(0);
  }
  return st;
}

void Log::completeGroup(Group& group, const sdk::Status& status, Offset start) {
  for (PendingCall& call : group.calls) {
    AppendResult result;
    result.status = status;
    if (status.ok()) {
      result.first = start + call.begin;
      result.end = start + call.end;
    }
    if (call.done) {
      call.done(std::move(result));
    }
  }
  if (status.ok()) {
    std::lock_guard lk(listener_mu_);
    if (append_listener_) {
      append_listener_();
    }
  }
}

void Log::setAppendListener(std::function<void()> listener) {
  std::lock_guard lk(listener_mu_);
  append_listener_ = std::move(listener);
}

void Log::setSyncListener(std::function<void(std::chrono::nanoseconds)> listener) {
  std::lock_guard lk(listener_mu_);
  sync_listener_ = std::move(listener);
}

void Log::setWriteFailureListener(
    std::function<void(const sdk::Status&, std::size_t records)> listener) {
  std::lock_guard lk(listener_mu_);
  write_failure_listener_ = std::move(listener);
}

void Log::setCorruptionListener(std::function<void(const CorruptionReport&)> listener) {
  std::lock_guard lk(listener_mu_);
  corruption_listener_ = std::move(listener);
}

Offset Log::beginOffset() const {
  std::shared_lock lk(segments_mu_);
  return segments_.empty() ? durableEnd() : segments_.begin()->first;
}

std::size_t Log::segmentCount() const {
  std::shared_lock lk(segments_mu_);
  return segments_.size();
}

void Log::reportCorruption(const Segment& segment, std::uint64_t pos, std::uint64_t end,
                           RecordStatus reason) {
  const Offset at = segment.base + pos;
  {
    std::lock_guard lk(corrupt_mu_);
    if (!corrupt_seen_.insert(at).second) {
      return;  // another reader (or an earlier read) already reported this region
    }
  }
  ++corrupt_records_;
  CorruptionReport report;
  report.offset = at;
  report.length = end - pos;
  report.reason = reason;
  const std::string dir = options_.path + "/corrupt";
  const std::string copy = dir + "/" + segmentFileName(segment.base).substr(0, 20) + "-" +
                           segmentFileName(at).substr(0, 20) + ".bin";
  if (copyRange(segment.fd, pos, end, dir, copy) == 0) {
    report.moved_to = copy;
  }
  std::function<void(const CorruptionReport&)> listener;
  {
    std::lock_guard lk(listener_mu_);
    listener = corruption_listener_;
  }
  if (listener) {
    listener(report);
  }
}

sdk::Result<ReadBatch> Log::read(Offset from, std::size_t max_records, std::size_t max_bytes) {
  const Offset durable = durableEnd();
  if (from > durable) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "read offset " + std::to_string(from) + " is past the end of the queue (" +
                              std::to_string(durable) + ")");
  }
  ReadBatch batch;
  // Events are large to move (a header of strings): no regrowth of the vector mid-read.
  batch.records.reserve(std::min<std::size_t>(max_records, 1024));
  std::size_t bytes = 0;
  bool full = false;
  WindowReader reader;
  const std::size_t window = std::clamp(max_bytes, kMinReadWindow, kMaxReadWindow);
  while (!full && batch.records.size() < max_records && from < durable) {
    std::shared_ptr<Segment> seg;
    Offset next_base = kNoOffset;
    Offset oldest = kNoOffset;
    {
      std::shared_lock lk(segments_mu_);
      if (segments_.empty()) {
        break;
      }
      auto it = segments_.upper_bound(from);
      if (it == segments_.begin()) {
        oldest = it->first;
      } else {
        --it;
        seg = it->second;
        if (auto nx = std::next(it); nx != segments_.end()) {
          next_base = nx->first;
        }
      }
    }
    if (!seg) {
      // `from` lies in a deleted segment: resume at the oldest one and say what was skipped.
      batch.skipped_bytes += oldest - from;
      skipped_bytes_ += oldest - from;
      from = oldest;
      continue;
    }
    const std::uint64_t limit = seg->durable_size.load(std::memory_order_acquire);
    std::uint64_t pos = from - seg->base;
    if (pos >= limit) {
      if (seg->sealed.load(std::memory_order_acquire) && next_base != kNoOffset) {
        // Normally next_base == from. A file shorter than its successor's base happens only
        // after a power loss under fsync: never; the lost range is counted as skipped.
        if (next_base > from) {
          batch.skipped_bytes += next_base - from;
          skipped_bytes_ += next_base - from;
        }
        from = next_base;
        continue;
      }
      break;
    }
    reader.reset(seg->fd, limit, window);
    while (pos < limit && batch.records.size() < max_records) {
      const RecordView v = recordAt(reader, pos, limit, seg->tag);
      if (reader.failed()) {
        return ioError("cannot read segment", seg->path, reader.error());
      }
      if (v.status == RecordStatus::Ok) {
        if (!batch.records.empty() && bytes + v.size > max_bytes) {
          full = true;
          break;
        }
        auto event = decodePayload(v.payload);
        if (event.ok()) {
          batch.records.push_back(StoredRecord{seg->base + pos, std::move(event).value()});
          bytes += v.size;
          pos += v.size;
          continue;
        }
        // Framing and CRC are fine, so the record's extent is known: skip exactly it.
        reportCorruption(*seg, pos, pos + v.size, RecordStatus::BadPayload);
        ++batch.corrupt_regions;
        batch.skipped_bytes += v.size;
        skipped_bytes_ += v.size;
        pos += v.size;
        continue;
      }
      // Durable data never ends mid-record, so anything invalid here is corruption.
      const std::uint64_t next = findNextValid(reader, pos, limit, seg->tag, false).pos;
      if (reader.failed()) {
        return ioError("cannot read segment", seg->path, reader.error());
      }
      reportCorruption(*seg, pos, next, v.status);
      ++batch.corrupt_regions;
      batch.skipped_bytes += next - pos;
      skipped_bytes_ += next - pos;
      pos = next;
    }
    from = seg->base + pos;
  }
  batch.next = from;
  return batch;
}

// Reads segments.idx (entries torn by a crash or damaged are ignored: the index only adds what
// a gap held), then compares the segments found with it: between two segment files, every byte
// must be there. A missing file or a short one is a gap, with its events when the index knows.
void Log::findGaps(const std::vector<Offset>& bases, RecoveryReport& report) {
  const std::string file = options_.path + "/" + kIndexName;
  index_fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (index_fd_ >= 0) {
    struct stat st {};
    if (::fstat(index_fd_, &st) == 0) {
      std::string data(static_cast<std::size_t>(st.st_size), '\0');
      if (preadAll(index_fd_, data.data(), data.size(), 0) == static_cast<long long>(data.size())) {
        for (std::size_t at = 0; at + kIndexEntrySize <= data.size(); at += kIndexEntrySize) {
          const char* e = data.data() + at;
          if (getIndexField(e + 28, 4) != kIndexMagic ||
              getIndexField(e + 24, 4) != crc32c(std::string_view(e, 24))) {
            continue;
          }
          index_[getIndexField(e, 8)] = {getIndexField(e + 8, 8), getIndexField(e + 16, 8)};
        }
      }
    }
  }
  auto lostIn = [this](Offset from, Offset to) {
    // Whole segments the index knows in [from, to).
    std::int64_t events = 0;
    Offset covered = from;
    for (auto it = index_.lower_bound(from); it != index_.end() && it->first < to; ++it) {
      if (it->first != covered) {
        return std::int64_t{-1};  // a stretch the index does not describe
      }
      events += static_cast<std::int64_t>(it->second.records);
      covered = it->first + it->second.size;
    }
    return covered == to ? events : std::int64_t{-1};
  };
  for (std::size_t i = 0; i + 1 < bases.size(); ++i) {
    const auto& seg = segments_.at(bases[i]);
    struct stat st {};
    if (::fstat(seg->fd, &st) != 0) {
      continue;
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const Offset have_end = bases[i] + size;
    const Offset next = bases[i + 1];
    if (have_end >= next) {
      continue;
    }
    auto known = index_.find(bases[i]);
    Offset seg_end = next;
    if (known != index_.end() && bases[i] + known->second.size <= next) {
      seg_end = bases[i] + known->second.size;  // where this segment ended when sealed
    }
    if (have_end < seg_end) {
      // Truncated: count what is left to know what went.
      QueueGap gap{have_end, seg_end, -1, "segment file " + segmentFileName(bases[i]) +
                                              " is truncated (" + std::to_string(size) + " of " +
                                              std::to_string(seg_end - bases[i]) + " bytes)"};
      if (known != index_.end()) {
        WindowReader reader;
        reader.reset(seg->fd, size, kMaxReadWindow);
        std::uint64_t present = 0;
        std::uint64_t pos = 0;
        while (pos < size) {
          const Stop stop = scanValid(reader, pos, size, seg->tag, &present);
          if (stop.pos >= size || reader.failed()) {
            break;
          }
          const Found found = findNextValid(reader, stop.pos, size, seg->tag, true);
          if (found.pos >= size) {
            break;
          }
          pos = found.pos;
        }
        gap.events = known->second.records >= present
                         ? static_cast<std::int64_t>(known->second.records - present)
                         : -1;
        // The partial record at the cut starts before have_end: the gap begins at the last
        // whole record's end, which readers report as a corrupt region; the count covers it.
      }
      report.gaps.push_back(std::move(gap));
    }
    if (seg_end < next) {
      std::string names;
      for (auto it = index_.lower_bound(seg_end); it != index_.end() && it->first < next; ++it) {
        names += (names.empty() ? "" : ", ") + segmentFileName(it->first);
      }
      report.gaps.push_back(QueueGap{
          seg_end, next, lostIn(seg_end, next),
          names.empty() ? "segment files between " + segmentFileName(bases[i]) + " and " +
                              segmentFileName(next) + " are missing"
                        : "segment file" + std::string(names.find(',') != std::string::npos ? "s " : " ") +
                              names + (names.find(',') != std::string::npos ? " are" : " is") +
                              " missing"});
    }
  }
  // Entries of segments retention deleted are dropped now and then.
  if (index_.size() > segments_.size() + 256) {
    compactIndex();
  }
}

void Log::appendIndex(Offset base, std::uint64_t size, std::uint64_t records) {
  std::lock_guard lk(index_mu_);
  index_[base] = {size, records};
  if (index_fd_ < 0) {
    return;
  }
  const std::string entry = encodeIndexEntry(base, size, records);
  struct stat st {};
  if (::fstat(index_fd_, &st) != 0) {
    return;
  }
  // Appended at a whole entry's boundary (a torn entry of a crash is overwritten).
  const auto at = static_cast<std::uint64_t>(st.st_size) / kIndexEntrySize * kIndexEntrySize;
  if (pwriteAll(index_fd_, entry.data(), entry.size(), at) == 0 &&
      options_.fsync != FsyncPolicy::Never) {
    (void)::fdatasync(index_fd_);
  }
}

// Rewrites segments.idx with the entries of the segments still there (write, sync, rename).
void Log::compactIndex() {
  std::lock_guard lk(index_mu_);
  Offset begin = 0;
  {
    std::shared_lock slk(segments_mu_);
    begin = segments_.empty() ? 0 : segments_.begin()->first;
  }
  std::string data;
  for (auto it = index_.begin(); it != index_.end();) {
    if (it->first < begin) {
      it = index_.erase(it);
      continue;
    }
    data += encodeIndexEntry(it->first, it->second.size, it->second.records);
    ++it;
  }
  const std::string file = options_.path + "/" + kIndexName;
  const std::string temp = file + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return;
  }
  const bool ok = pwriteAll(fd, data.data(), data.size(), 0) == 0 && ::fdatasync(fd) == 0;
  if (!ok || ::rename(temp.c_str(), file.c_str()) != 0) {
    ::close(fd);
    ::unlink(temp.c_str());
    return;
  }
  (void)fsyncDirectory(options_.path);
  if (index_fd_ >= 0) {
    ::close(index_fd_);
  }
  index_fd_ = fd;  // the renamed file, still open for writing
}

sdk::Result<std::size_t> Log::truncateBefore(Offset min_cursor) {
  std::vector<std::shared_ptr<Segment>> victims;
  {
    std::unique_lock lk(segments_mu_);
    for (auto it = segments_.begin(); it != segments_.end();) {
      auto nx = std::next(it);
      if (nx == segments_.end() || nx->first > min_cursor ||
          !it->second->sealed.load(std::memory_order_acquire)) {
        break;  // never the active segment; never past the cursor
      }
      victims.push_back(it->second);
      it = segments_.erase(it);
    }
  }
  int first_error = 0;
  std::string failed_path;
  for (const auto& seg : victims) {
    struct stat st {};
    const bool sized = ::fstat(seg->fd, &st) == 0;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    bool kept = false;
    if (sized && seg->recyclable && seg.use_count() == 1 &&
        spareCount() < options_.recycle_segments && spareFits()) {
      // Kept for the writer to reuse: its blocks and page cache stay allocated, so writing the
      // next segment neither allocates blocks (no journal work in the sync) nor faults in fresh
      // memory. Its records carry its old tag, which the segment it becomes will not accept.
      Spare spare;
      spare.old_base = seg->base;
      spare.size = size;
      spare.since = std::chrono::steady_clock::now();
      spare.path = options_.path + "/" + segmentFileName(seg->base).substr(0, 20) +
                   std::string(kSpareSuffix);
      if (::rename(seg->path.c_str(), spare.path.c_str()) == 0) {
        spare.fd = seg->releaseFd();
        spare_bytes_ += size;  // before it leaves the data: the budget never misses it
        std::lock_guard lk(spare_mu_);
        spares_.push_back(std::move(spare));
        kept = true;
      }
    }
    if (sized) {
      // Out of the data at once, so that the check for the next victim sees it.
      disk_bytes_ -= size;
      std::lock_guard lk(mu_);
      committed_bytes_ -= std::min(committed_bytes_, size);
    }
    if (kept) {
      continue;
    }
    if (::unlink(seg->path.c_str()) != 0) {
      if (first_error == 0) {
        first_error = errno;
        failed_path = seg->path;
      }
      continue;
    }
    // Out of the map and unlinked: no reader can take it any more. With no reader inside it
    // either, its blocks are given back a few MiB at a time (sdk::shrinkGradually: on ext4 with
    // `discard`, freeing 64 MiB at once stalls the writer's fdatasync for 10-17 ms).
    if (sized && seg.use_count() == 1) {
      sdk::shrinkGradually(seg->fd, static_cast<std::uint64_t>(st.st_size));
    }
  }
  // A quiet queue does not keep delivered records around in spares.
  std::vector<Spare> expired;
  {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lk(spare_mu_);
    for (auto it = spares_.begin(); it != spares_.end();) {
      if (now - it->since >= options_.spare_max_age) {
        expired.push_back(std::move(*it));
        it = spares_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Spare& spare : expired) {
    releaseSpare(spare);
  }
  if (!victims.empty()) {
    std::size_t live = 0;
    {
      std::shared_lock slk(segments_mu_);
      live = segments_.size();
    }
    bool compact = false;
    {
      std::lock_guard lk(index_mu_);
      compact = index_.size() > live + 256;
    }
    if (compact) {
      compactIndex();
    }
  }
  if (first_error != 0) {
    return ioError("cannot delete segment", failed_path, first_error);
  }
  return victims.size();
}

}  // namespace junction::core::queue
