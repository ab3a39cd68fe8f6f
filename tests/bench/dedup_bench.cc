// The http source's messageId de-duplicator: the cost of one seen() of a fresh id when the table
// is already full (1 M entries, the default bound), so each call also evicts the oldest entry;
// and, from empty, the worst single call while a new daemon's window fills (a request waits for
// that call, and the other I/O thread for its shard locks).
//
//   build/bench/dedup_bench [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dedup.h"

namespace {

using junction::plugins::http::Deduplicator;
using namespace std::chrono_literals;

constexpr std::size_t kMaxEntries = 1'000'000;

// A UUID-shaped id (36 characters, like the messageIds SDKs generate) for counter `n`, written
// into `buf` without allocating.
class IdMaker {
 public:
  std::string_view make(std::uint64_t n) {
    static constexpr char kHex[] = "0123456789abcdef";
    // Mix the counter so that consecutive ids differ in many characters, as random UUIDs do.
    std::uint64_t a = n * 0x9E3779B97F4A7C15ull;
    std::uint64_t b = n;
    for (int i = 0, k = 0; i < 36; ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        buf_[i] = '-';
        continue;
      }
      std::uint64_t& src = k < 16 ? a : b;
      buf_[i] = kHex[(src >> (4 * (k % 16))) & 0xF];
      ++k;
    }
    return {buf_, sizeof buf_};
  }

 private:
  char buf_[36];
};

// Fills `dedup` to its bound with ids 0..kMaxEntries-1; returns the next id number.
std::uint64_t fill(Deduplicator& dedup, IdMaker& ids, std::int64_t now_ms) {
  std::uint64_t n = 0;
  for (; n < kMaxEntries; ++n) {
    (void)dedup.seen(ids.make(n), now_ms);
  }
  return n;
}

// The ids alone, to subtract from the figures below.
void BM_MakeIdOnly(benchmark::State& state) {
  IdMaker ids;
  std::uint64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ids.make(n++).data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_MakeIdOnly)->Unit(benchmark::kNanosecond);

void BM_SeenFreshIdFullTable(benchmark::State& state) {
  Deduplicator dedup(10min, kMaxEntries);
  IdMaker ids;
  const std::int64_t now_ms = 1'000;
  std::uint64_t n = fill(dedup, ids, now_ms);
  std::int64_t duplicates = 0;
  for (auto _ : state) {
    duplicates += dedup.seen(ids.make(n++), now_ms) ? 1 : 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["entries"] = static_cast<double>(dedup.size());
  state.counters["duplicates"] = static_cast<double>(duplicates);
}
BENCHMARK(BM_SeenFreshIdFullTable)->Unit(benchmark::kNanosecond);

// As the http source calls it: seenMany() on the 100 messageIds of a batch request.
void BM_SeenManyFreshIdsFullTable(benchmark::State& state) {
  Deduplicator dedup(10min, kMaxEntries);
  IdMaker ids;
  const std::int64_t now_ms = 1'000;
  std::uint64_t n = fill(dedup, ids, now_ms);
  std::vector<std::string> batch(100);
  std::vector<std::string_view> views(100);
  std::vector<char> duplicate;
  std::int64_t duplicates = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i] = std::string(ids.make(n++));
      views[i] = batch[i];
    }
    state.ResumeTiming();
    dedup.seenMany(views, now_ms, duplicate);
    for (char d : duplicate) {
      duplicates += d;
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
  state.counters["duplicates"] = static_cast<double>(duplicates);
}
BENCHMARK(BM_SeenManyFreshIdsFullTable)->Unit(benchmark::kMicrosecond);

// A new daemon under load: an empty de-duplicator taking 1.5 M fresh ids in requests of 100, as
// the http source calls it. `worst_call_ms` is the slowest call: a stall every request then in
// flight on that I/O thread waits out.
void BM_FillFromEmpty(benchmark::State& state) {
  IdMaker ids;
  std::vector<std::string> batch(100);
  std::vector<std::string_view> views(100);
  std::vector<char> duplicate;
  double worst_ms = 0;
  std::uint64_t n = 0;
  for (auto _ : state) {
    Deduplicator dedup(10min, kMaxEntries);
    for (std::size_t call = 0; call < 3 * kMaxEntries / 2 / batch.size(); ++call) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i] = std::string(ids.make(n++));
        views[i] = batch[i];
      }
      const auto start = std::chrono::steady_clock::now();
      dedup.seenMany(views, 1'000, duplicate);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      worst_ms = std::max(worst_ms, ms);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(3 * kMaxEntries / 2));
  state.counters["worst_call_ms"] = worst_ms;
}
BENCHMARK(BM_FillFromEmpty)->Unit(benchmark::kMillisecond)->Iterations(3);

// The duplicate path: ids already remembered (a client retrying a whole batch).
void BM_SeenDuplicateFullTable(benchmark::State& state) {
  Deduplicator dedup(10min, kMaxEntries);
  IdMaker ids;
  const std::int64_t now_ms = 1'000;
  fill(dedup, ids, now_ms);
  // The newer half: a shard that got more than its share has evicted some of the oldest ids.
  std::uint64_t k = 0;
  std::int64_t duplicates = 0;
  for (auto _ : state) {
    duplicates += dedup.seen(ids.make(kMaxEntries / 2 + k), now_ms) ? 1 : 0;
    k = (k + 7919) % (kMaxEntries / 2);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["duplicates"] = static_cast<double>(duplicates);
}
BENCHMARK(BM_SeenDuplicateFullTable)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
