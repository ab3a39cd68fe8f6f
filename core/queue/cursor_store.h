#pragma once

// Named read positions (destination id -> Offset) of the log, persisted crash-safely under
// <path>/cursors/ so that a restart resumes each destination where it was.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/queue/log.h"
#include "junction/sdk/result.h"

namespace junction::core::queue {

struct CursorStoreOptions {
  std::string path;  // the log directory; cursors live in <path>/cursors/
  // Commits are coalesced and written durably (fdatasync) at most this often by a background
  // thread; 0 writes every commit before commit() returns. A power loss loses at most the last
  // interval's commits, which replays a few already-delivered events (at least once).
  std::chrono::milliseconds flush_interval{100};
  // Between durable writes, commits are published this often to `cursors.fast` without a sync:
  // a process crash (SIGKILL, OOM kill) keeps what the kernel has, so a restart resumes within
  // this interval of where delivery was. 0 disables the fast file. Ignored without a flusher.
  std::chrono::milliseconds publish_interval{5};
};

// What is kept per name: the read position, and how many events the destination finished as
// delivered below it (counted as the cursor passed them, so a crash never counts one twice).
//   done: ranges [begin, end) above `offset` whose events are finished already (delivered or
//         dead-lettered while an earlier event was still in a call or waiting for a retry); a
//         restart skips them instead of delivering them again. Sorted, disjoint, >= offset.
//   delivered: counts the delivered events of `done` too (they will not be counted again).
struct CursorState {
  Offset offset = 0;
  std::uint64_t delivered = 0;
  std::vector<std::pair<Offset, Offset>> done;

  bool operator==(const CursorState&) const = default;
};

// All cursors in one small file, `cursors.dat` (generation, count, entries, CRC32C; version 2
// added the delivered count, version 3 the generation and the done ranges; older files are
// read with zeros), replaced atomically:
// write `cursors.dat.tmp`, fdatasync, rename over, fsync the directory. With coalescing this
// costs two syncs per interval whatever the commit rate, and the file is always either the old
// or the new complete set — no log to compact, no partial entry to repair.
//
// `cursors.fast` holds the same set, newer, written in place every publish_interval without a
// sync (length-prefixed, CRC-checked). At open, it wins over cursors.dat when its generation is
// higher and its checksum holds; a torn or stale one (a power loss) is ignored: cursors.dat is
// then the truth, and only some deliveries repeat. It is never read without cursors.dat.
//
// Thread-safety: all methods may be called concurrently. Lifetime: the destructor flushes.
class CursorStore {
 public:
  static sdk::Result<std::unique_ptr<CursorStore>> open(CursorStoreOptions options);
  // Reads <path>/cursors/cursors.dat without opening a store: no side effects, safe while a
  // daemon runs (the file is replaced atomically). NotFound when there is none.
  static sdk::Result<std::map<std::string, CursorState>> read(const std::string& path);
  ~CursorStore();
  CursorStore(const CursorStore&) = delete;
  CursorStore& operator=(const CursorStore&) = delete;

  std::optional<Offset> load(const std::string& name) const;
  std::optional<CursorState> state(const std::string& name) const;
  // Records the cursor (keeping its delivered count). With a flush interval it is persisted
  // within that interval (errors are retried and counted in flushErrors()); without, it is
  // durable when this returns ok.
  sdk::Status commit(const std::string& name, Offset offset);
  // Records the cursor and the delivered count together (one atomic file write).
  sdk::Status commit(const std::string& name, CursorState state);
  // Forgets the cursor and persists that at once (a forgotten destination must stop pinning
  // segments).
  sdk::Status remove(const std::string& name);
  std::map<std::string, Offset> all() const;
  // Persists pending commits now.
  sdk::Status flush();

  // Whether cursors.dat existed when the store was opened. Its absence beside a queue that still
  // holds events is damage (every destination's position is lost), not a first start: the
  // delivery engine refuses to start then (see DeliveryEngine::open).
  bool fileExisted() const noexcept { return file_existed_; }
  // Writes cursors.dat now if it did not exist (an empty set on a first start), so that from now
  // on its absence is seen as damage.
  sdk::Status createFile();

  // Why cursors.fast was not used at open (torn, unreadable), for a warning; empty if it was,
  // or there was none.
  const std::string& fastFileProblem() const noexcept { return fast_problem_; }

  std::uint64_t flushCount() const noexcept { return flush_count_.load(); }
  // The last write that failed (durable or fast file), for the log; empty if none has.
  std::string lastFlushError() const;
  std::uint64_t flushErrors() const noexcept { return flush_errors_.load(); }

 private:
  explicit CursorStore(CursorStoreOptions options);
  sdk::Status loadFile();
  sdk::Status writeFile(const std::map<std::string, CursorState>& cursors, std::uint64_t generation);
  void publishFast();
  void flusherLoop();

  const CursorStoreOptions options_;
  const std::string dir_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, CursorState> cursors_;
  std::uint64_t version_ = 0;          // bumped by every change
  std::uint64_t written_version_ = 0;  // last version on disk
  std::uint64_t published_version_ = 0;  // last version in cursors.fast
  int fast_fd_ = -1;
  std::string fast_problem_;
  std::string last_error_;  // under mu_
  bool stopping_ = false;
  bool file_existed_ = false;
  std::mutex write_mu_;  // held across snapshot + write: one file writer, in version order
  std::thread flusher_;
  std::atomic<std::uint64_t> flush_count_{0};
  std::atomic<std::uint64_t> flush_errors_{0};
};

}  // namespace junction::core::queue
