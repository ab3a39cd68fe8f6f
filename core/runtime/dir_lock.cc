#include "core/runtime/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

namespace junction::core::runtime {

sdk::Result<DirectoryLock> DirectoryLock::acquire(const std::filesystem::path& dir,
                                                  const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string file = (dir / "LOCK").string();
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot create the lock file " + file + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[32] = {};
    if (const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0); n > 0) {
      std::string pid(buf, static_cast<std::size_t>(n));
      pid.erase(pid.find_last_not_of(" \n") + 1);
      if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos) {
        holder = " (pid " + pid + ")";
      }
    }
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                            what + " " + dir.string() + " is in use by another process" + holder +
                                ": one junctiond per directory, or its queue would be corrupted");
    }
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot lock " + file + ": " + std::strerror(err));
  }
  // Ours now: record who holds it, for the message a second process gets.
  // (If this fails the lock holds regardless; only the pid in that message would be missing.)
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return DirectoryLock(fd);
}

DirectoryLock& DirectoryLock::operator=(DirectoryLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
  }
}

}  // namespace junction::core::runtime
