#pragma once

// Shared by the fuzz targets: invariant checks that stop with a message, and scratch directories
// for the targets that go through files (queue recovery, cursors, the dead-letter store).

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace junction::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* condition,
                              const std::string& detail) {
  std::fprintf(stderr, "\n%s:%d: fuzz invariant broken: %s%s%s\n", file, line, condition,
               detail.empty() ? "" : "\n  ", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

// An invariant of the code under test: a violation is a finding, reported like a crash.
#define FUZZ_CHECK(condition, detail)                                              \
  do {                                                                             \
    if (!(condition)) {                                                            \
      ::junction::fuzz::fail(__FILE__, __LINE__, #condition, std::string(detail)); \
    }                                                                              \
  } while (0)

inline std::string_view asText(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// This process's scratch directory, created at first use and removed at exit: under
// $JUNCTION_FUZZ_TMPDIR, else /dev/shm (tmpfs: no disk writes per input), else $TMPDIR or /tmp.
// A crash leaves it behind (junction-fuzz-*), with the files of the input that crashed.
inline const std::string& scratchRoot() {
  // Never destroyed: the exit handler below runs after static destructors may have.
  static const std::string* const root = [] {
    std::string parent;
    if (const char* v = std::getenv("JUNCTION_FUZZ_TMPDIR"); v != nullptr && *v != '\0') {
      parent = v;
    } else if (::access("/dev/shm", W_OK) == 0) {
      parent = "/dev/shm";
    } else if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') {
      parent = t;
    } else {
      parent = "/tmp";
    }
    auto* path = new std::string(parent + "/junction-fuzz-XXXXXX");
    if (::mkdtemp(path->data()) == nullptr) {
      std::perror(("mkdtemp " + *path).c_str());
      std::abort();
    }
    return path;
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*root, ec);
    });
    return true;
  }();
  (void)cleanup;
  return *root;
}

// An empty directory `name` under scratchRoot() (whatever the previous input left there is
// removed first).
inline std::string freshDir(const std::string& name) {
  const std::string dir = scratchRoot() + "/" + name;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    fail(__FILE__, __LINE__, "create_directories", dir + ": " + ec.message());
  }
  return dir;
}

inline void writeFile(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fail(__FILE__, __LINE__, "open", path);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      fail(__FILE__, __LINE__, "write", path);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

inline std::string readFile(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return out;
  }
  char buf[65536];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
inline bool validUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + n >= s.size()) {
      return false;  // cut short
    }
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0u) != 0x80u) {
        return false;
      }
      cp = (cp << 6) | (d & 0x3Fu);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Little-endian reader over the fuzz input, for targets that read a small "program" from it.
// Past the end it yields zeros.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const noexcept { return p_ == end_; }
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  std::uint8_t byte() noexcept { return p_ == end_ ? 0 : *p_++; }
  std::uint64_t le(int bytes) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= static_cast<std::uint64_t>(byte()) << (8 * i);
    }
    return v;
  }
  std::string_view take(std::size_t n) noexcept {
    n = n < left() ? n : left();
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace junction::fuzz
