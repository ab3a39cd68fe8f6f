// Hot-path formatting in the SDK: the ISO-8601 timestamps every event gets (receivedAt,
// timestamp, log lines) and the UUID v4 messageIds ingest and the HTTP source invent.
//
//   build/bench/format_bench [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "junction/sdk/event.h"

namespace {

namespace sdk = junction::sdk;

// A recent instant, advanced by an odd step so that every field changes across iterations.
constexpr std::int64_t kStartMs = 1764342661123;  // 2025-11-28T15:11:01.123Z
constexpr std::int64_t kStepMs = 1'234'567;

void BM_FormatIsoTimestampString(benchmark::State& state) {
  std::int64_t ms = kStartMs;
  for (auto _ : state) {
    std::string text = sdk::formatIsoTimestamp(ms);
    benchmark::DoNotOptimize(text);
    ms += kStepMs;
  }
}
BENCHMARK(BM_FormatIsoTimestampString);

void BM_FormatIsoTimestampBuffer(benchmark::State& state) {
  std::int64_t ms = kStartMs;
  char buf[sdk::kIsoTimestampMaxSize];
  for (auto _ : state) {
    std::size_t size = sdk::formatIsoTimestamp(ms, buf);
    benchmark::DoNotOptimize(size);
    benchmark::DoNotOptimize(buf);
    ms += kStepMs;
  }
}
BENCHMARK(BM_FormatIsoTimestampBuffer);

void BM_MakeUuidV4(benchmark::State& state) {
  for (auto _ : state) {
    std::string id = sdk::makeUuidV4();
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_MakeUuidV4);

}  // namespace

BENCHMARK_MAIN();
