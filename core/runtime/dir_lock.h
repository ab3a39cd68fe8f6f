#pragma once

// DirectoryLock: this process's exclusive hold on a directory — `<dir>/LOCK`, locked with
// flock(2) and holding the owner's pid. The kernel releases it when the process ends, however it
// ends (kill -9 included), so a stale file never blocks a restart. Two daemons writing one queue
// directory would interleave records and cursors: the second is refused at start-up instead.

#include <filesystem>
#include <string>

#include "junction/sdk/result.h"

namespace junction::core::runtime {

class DirectoryLock {
 public:
  // Creates `dir` if needed and locks it. AlreadyExists (naming the holder's pid when it can be
  // read) when another process holds it; Unavailable when the lock file cannot be created.
  // `what` names the directory in messages (say, the config key).
  static sdk::Result<DirectoryLock> acquire(const std::filesystem::path& dir,
                                            const std::string& what);

  DirectoryLock(DirectoryLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DirectoryLock& operator=(DirectoryLock&& other) noexcept;
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  ~DirectoryLock();

 private:
  explicit DirectoryLock(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace junction::core::runtime
