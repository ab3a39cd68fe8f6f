#include "core/queue/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace junction::core::queue {

int pwriteAll(int fd, const void* data, std::size_t size, std::uint64_t offset) noexcept {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    if (n == 0) {
      return EIO;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

long long preadAll(int fd, void* data, std::size_t size, std::uint64_t offset) noexcept {
  auto* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    if (n == 0) {
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  return static_cast<long long>(done);
}

int fsyncDirectory(const std::string& path) noexcept {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return errno;
  }
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

int copyRange(int fd, std::uint64_t begin, std::uint64_t end, const std::string& dir,
              const std::string& file) noexcept {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return errno;
  }
  const int out = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    return errno;
  }
  constexpr std::size_t kChunk = 1u << 20;
  std::unique_ptr<char[]> buf(new (std::nothrow) char[kChunk]);
  int rc = buf ? 0 : ENOMEM;
  std::uint64_t written = 0;
  for (std::uint64_t pos = begin; rc == 0 && pos < end;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end - pos));
    const long long n = preadAll(fd, buf.get(), want, pos);
    if (n <= 0) {
      rc = n < 0 ? static_cast<int>(-n) : 0;
      break;  // end of file: the range was shorter than claimed; keep what we have
    }
    rc = pwriteAll(out, buf.get(), static_cast<std::size_t>(n), written);
    written += static_cast<std::uint64_t>(n);
    pos += static_cast<std::uint64_t>(n);
  }
  if (rc == 0 && ::fdatasync(out) != 0) {
    rc = errno;
  }
  ::close(out);
  if (rc == 0) {
    rc = fsyncDirectory(dir);
  }
  return rc;
}

void WindowReader::reset(int fd, std::uint64_t limit, std::size_t window) noexcept {
  fd_ = fd;
  limit_ = limit;
  window_ = window;
  start_ = 0;
  size_ = 0;
  error_ = 0;
}

std::string_view WindowReader::load(std::uint64_t pos, std::size_t len) {
  const std::size_t want =
      static_cast<std::size_t>(std::min<std::uint64_t>(std::max(len, window_), limit_ - pos));
  if (capacity_ < want) {
    buf_.reset(new char[want]);
    capacity_ = want;
  }
  const long long n = preadAll(fd_, buf_.get(), want, pos);
  start_ = pos;
  if (n < 0) {
    error_ = static_cast<int>(-n);
    size_ = 0;
  } else {
    size_ = static_cast<std::size_t>(n);
    bytes_read_ += size_;
  }
  return {buf_.get(), size_};
}

std::string_view WindowReader::view(std::uint64_t pos, std::size_t len) {
  if (pos >= limit_) {
    return {};
  }
  len = static_cast<std::size_t>(std::min<std::uint64_t>(len, limit_ - pos));
  if (pos >= start_ && pos + len <= start_ + size_) {
    return {buf_.get() + (pos - start_), len};
  }
  const std::string_view loaded = load(pos, len);
  return loaded.substr(0, std::min(len, loaded.size()));
}

std::string_view WindowReader::available(std::uint64_t pos) {
  if (pos >= limit_) {
    return {};
  }
  constexpr std::size_t kMinAvailable = 16;
  const std::uint64_t buffered_end = start_ + size_;
  if (pos >= start_ && pos < buffered_end &&
      (buffered_end - pos >= kMinAvailable || buffered_end == limit_)) {
    return {buf_.get() + (pos - start_), static_cast<std::size_t>(buffered_end - pos)};
  }
  return load(pos, window_);
}

}  // namespace junction::core::queue
