#pragma once

// Deleting large files without stalling everyone else's fdatasync.
//
// On ext4 mounted with `discard` (usual on cloud VMs), the blocks of a deleted file are discarded
// in one journal commit when its last descriptor closes, and every fdatasync on the file system
// waits for that commit: 10-20 ms for a 64 MiB file, more for larger ones, measured on this
// project's CI machine (tests/bench, core/queue/README.md). Shrinking the unlinked file a step at
// a time, a short pause apart, spreads the discards over many small commits (stalls under 3 ms
// there). The queue frees its deleted segments this way; plugins that delete large files (the
// file destination's rotation) can do the same.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

namespace junction::sdk {

inline constexpr std::uint64_t kShrinkStepBytes = 2u << 20;
inline constexpr std::chrono::milliseconds kShrinkPause{2};

// Shrinks the (already unlinked) file behind `fd` from `size` bytes by kShrinkStepBytes at a
// time, kShrinkPause apart, down to one step; its last close frees the rest. Blocks the caller
// (~70 ms per 64 MiB). Stops at the first failing step, or when `stop` (if given) turns true:
// the close still frees everything. Does not close `fd`.
void shrinkGradually(int fd, std::uint64_t size, const std::atomic<bool>* stop = nullptr) noexcept;

// A background thread that takes descriptors of unlinked files, shrinks each with
// shrinkGradually and closes it: for callers that must not wait. Thread-safe. The thread starts
// at the first release(); the destructor ends the shrink under way, closes everything still
// held (freed at once) and joins.
class FileReleaser {
 public:
  FileReleaser() = default;
  FileReleaser(const FileReleaser&) = delete;
  FileReleaser& operator=(const FileReleaser&) = delete;
  ~FileReleaser();

  // Takes ownership of `fd`, a descriptor of a file already unlinked.
  void release(int fd);
  // Files taken and not yet closed (for tests).
  std::size_t pending() const;

 private:
  void run();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<int> fds_;   // guarded by mutex_
  std::size_t busy_ = 0;  // files being shrunk; guarded by mutex_
  std::atomic<bool> stopping_{false};  // also ends a shrink under way
  std::thread thread_;
};

}  // namespace junction::sdk
