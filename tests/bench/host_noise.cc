// How much of each CPU the host takes away: one thread pinned to each CPU spins on
// CLOCK_MONOTONIC for a few seconds and records every gap between two readings. On an idle
// machine a gap is time the vCPU did not run (the hypervisor ran something else, or an
// interrupt took it); a gap of 10 ms is as long as the http source's p99 target, so a run on a
// host with many of them cannot meet it whatever the daemon does. Printed next to benchmark
// figures so that they can be read against the machine they ran on.
//
// Usage: host_noise [SECONDS]   (default 3; run it while nothing else is busy)

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

double nowMs() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

struct Gaps {
  int over_1ms = 0;
  int over_5ms = 0;
  int over_10ms = 0;
  int over_20ms = 0;
  double max_ms = 0;
  double lost_ms = 0;  // sum of the gaps over 1 ms
  bool pinned = false;
};

Gaps spin(int cpu, double seconds) {
  Gaps g;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  g.pinned = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
  const double start = nowMs();
  double last = start;
  while (last - start < seconds * 1e3) {
    const double t = nowMs();
    const double gap = t - last;
    last = t;
    if (gap > g.max_ms) {
      g.max_ms = gap;
    }
    if (gap > 1) {
      ++g.over_1ms;
      g.lost_ms += gap;
    }
    g.over_5ms += gap > 5 ? 1 : 0;
    g.over_10ms += gap > 10 ? 1 : 0;
    g.over_20ms += gap > 20 ? 1 : 0;
  }
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  if (!(seconds > 0)) {
    std::fprintf(stderr, "usage: host_noise [SECONDS > 0]\n");
    return 2;
  }
  const unsigned cpus = std::thread::hardware_concurrency();
  std::vector<Gaps> results(cpus);
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < cpus; ++c) {
    threads.emplace_back([&results, c, seconds] { results[c] = spin(static_cast<int>(c), seconds); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (unsigned c = 0; c < cpus; ++c) {
    const Gaps& g = results[c];
    std::printf("cpu%u%s: gaps over 1 ms %d, 5 ms %d, 10 ms %d, 20 ms %d; longest %.1f ms; "
                "%.2f%% of the time lost in gaps over 1 ms (%.0f s)\n",
                c, g.pinned ? "" : " (not pinned)", g.over_1ms, g.over_5ms, g.over_10ms,
                g.over_20ms, g.max_ms, 100 * g.lost_ms / (seconds * 1e3), seconds);
  }
  return 0;
}
