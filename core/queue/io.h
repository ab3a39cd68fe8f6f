#pragma once

// Small POSIX helpers shared by the log and the cursor store. Internal to core/queue.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace junction::core::queue {

// Writes all of `size` bytes at `offset` (retrying short writes and EINTR). 0 or an errno.
int pwriteAll(int fd, const void* data, std::size_t size, std::uint64_t offset) noexcept;
// Reads up to `size` bytes at `offset`; fewer only at end of file. Bytes read, or -errno.
long long preadAll(int fd, void* data, std::size_t size, std::uint64_t offset) noexcept;
// fsync of a directory, making a create/rename/unlink in it durable. 0 or an errno.
int fsyncDirectory(const std::string& path) noexcept;
// Copies bytes [begin, end) of `fd` into a new file `file` (creating `dir` if needed) and
// fdatasyncs it. 0 or an errno.
int copyRange(int fd, std::uint64_t begin, std::uint64_t end, const std::string& dir,
              const std::string& file) noexcept;

// Buffered random access to [0, limit) of a file through pread, for scanning records.
// One instance per thread; not thread-safe.
class WindowReader {
 public:
  void reset(int fd, std::uint64_t limit, std::size_t window) noexcept;

  // Up to `len` bytes at `pos`; shorter only at `limit` or on an I/O error (see failed()).
  // Valid until the next call.
  std::string_view view(std::uint64_t pos, std::size_t len);
  // Whatever is buffered from `pos` on, loading a window there if fewer than 16 bytes are.
  std::string_view available(std::uint64_t pos);

  bool failed() const noexcept { return error_ != 0; }
  int error() const noexcept { return error_; }
  std::uint64_t bytesRead() const noexcept { return bytes_read_; }

 private:
  std::string_view load(std::uint64_t pos, std::size_t len);

  int fd_ = -1;
  std::uint64_t limit_ = 0;
  std::size_t window_ = 0;
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::uint64_t start_ = 0;
  std::size_t size_ = 0;
  std::uint64_t bytes_read_ = 0;
  int error_ = 0;
};

}  // namespace junction::core::queue
