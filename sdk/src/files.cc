#include "junction/sdk/files.h"

#include <sys/stat.h>
#include <unistd.h>

namespace junction::sdk {

void shrinkGradually(int fd, std::uint64_t size, const std::atomic<bool>* stop) noexcept {
  while (size > kShrinkStepBytes && (stop == nullptr || !stop->load())) {
    size -= kShrinkStepBytes;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      return;
    }
    std::this_thread::sleep_for(kShrinkPause);
  }
}

FileReleaser::~FileReleaser() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  for (int fd : fds_) {
    ::close(fd);
  }
}

void FileReleaser::release(int fd) {
  {
    std::lock_guard lock(mutex_);
    fds_.push_back(fd);
    if (!thread_.joinable()) {
      thread_ = std::thread([this] { run(); });
    }
  }
  wake_.notify_one();
}

std::size_t FileReleaser::pending() const {
  std::lock_guard lock(mutex_);
  return fds_.size() + busy_;
}

void FileReleaser::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_.load() || !fds_.empty(); });
    if (stopping_.load()) {
      return;  // the destructor closes what is left
    }
    const int fd = fds_.front();
    fds_.pop_front();
    ++busy_;
    lock.unlock();
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
      shrinkGradually(fd, static_cast<std::uint64_t>(st.st_size), &stopping_);
    }
    ::close(fd);
    lock.lock();
    --busy_;
  }
}

}  // namespace junction::sdk
