// shrinkGradually and FileReleaser: an unlinked file is shrunk in steps (its size is checked
// after each call), the stop flag ends a shrink, and the releaser neither loses a file nor holds
// its destructor for the length of a shrink.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "junction/sdk/files.h"
#include "junction/sdk/testing/temp_dir.h"

namespace junction::sdk {
namespace {

using testing::TempDir;

std::string fileIn(const TempDir& dir, const std::string& name) {
  return (dir.path() / name).string();
}

// An unlinked file of `size` bytes with real blocks; returns its descriptor.
int unlinkedFile(const std::string& path, std::size_t size) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0);
  const std::string chunk(1u << 20, 'x');
  for (std::size_t written = 0; written < size; written += chunk.size()) {
    EXPECT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
  }
  EXPECT_EQ(::unlink(path.c_str()), 0);
  return fd;
}

std::uint64_t sizeOf(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return static_cast<std::uint64_t>(st.st_size);
}

TEST(ShrinkGraduallyTest, LeavesOneStepForTheClose) {
  TempDir dir;
  const int fd = unlinkedFile(fileIn(dir, "a"), 7u << 20);
  const auto start = std::chrono::steady_clock::now();
  shrinkGradually(fd, sizeOf(fd));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(sizeOf(fd), (7u << 20) - 3 * kShrinkStepBytes);  // 7 MiB - 3 × 2 MiB
  EXPECT_GE(took, 3 * kShrinkPause);                         // a pause after each step
  ::close(fd);
}

TEST(ShrinkGraduallyTest, ASmallFileIsLeftAlone) {
  TempDir dir;
  const int fd = unlinkedFile(fileIn(dir, "a"), 1u << 20);
  shrinkGradually(fd, sizeOf(fd));
  EXPECT_EQ(sizeOf(fd), 1u << 20);
  ::close(fd);
}

TEST(ShrinkGraduallyTest, TheStopFlagEndsIt) {
  TempDir dir;
  const int fd = unlinkedFile(fileIn(dir, "a"), 5u << 20);
  std::atomic<bool> stop{true};
  shrinkGradually(fd, sizeOf(fd), &stop);
  EXPECT_EQ(sizeOf(fd), 5u << 20);
  ::close(fd);
}

TEST(FileReleaserTest, ShrinksAndClosesEveryFileItTakes) {
  TempDir dir;
  FileReleaser releaser;
  for (int i = 0; i < 3; ++i) {
    releaser.release(unlinkedFile(fileIn(dir, "f" + std::to_string(i)), 3u << 20));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (releaser.pending() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(releaser.pending(), 0u);
}

TEST(FileReleaserTest, TheDestructorDoesNotWaitForAShrink) {
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  {
    FileReleaser releaser;
    // A sparse 4 GiB file: 2,047 steps of 2 ms each (~4 s) if the shrink ran to its end.
    const std::string path = fileIn(dir, "big");
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, off_t{4} << 30), 0);
    ASSERT_EQ(::unlink(path.c_str()), 0);
    releaser.release(fd);
    releaser.release(unlinkedFile(fileIn(dir, "small"), 3u << 20));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace junction::sdk
