// The reference figure for the queue benchmark: how many sequential 32 KiB write + fdatasync
// rounds the disk sustains per second (what group commit amortizes).
//
//   build/bench/disk_sync_bench [directory=/tmp] [seconds=3] [write_kib=32]

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp";
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  const std::size_t kib = argc > 3 ? static_cast<std::size_t>(std::atoi(argv[3])) : 32;
  const std::string file = dir + "/junction_disk_sync_bench.tmp";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(file.c_str());
    return 1;
  }
  std::vector<char> block(kib * 1024, 'j');
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  std::uint64_t rounds = 0;
  std::uint64_t bytes = 0;
  while (Clock::now() < stop) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0) {
      std::perror("write/fdatasync");
      return 1;
    }
    ++rounds;
    bytes += block.size();
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(fd);
  ::unlink(file.c_str());
  std::printf("%zu KiB sequential write+fdatasync in %s: %.0f syncs/s, %.1f MB/s, %.1f us/sync\n",
              kib, dir.c_str(), static_cast<double>(rounds) / elapsed, bytes / elapsed / 1e6,
              elapsed / static_cast<double>(rounds) * 1e6);
  return 0;
}
