// Hot-path formatting in the SDK: the ISO-8601 timestamps every event gets (receivedAt,
// timestamp, log lines), their parsing (every event's timestamp and sentAt), and the UUID v4
// messageIds ingest and the HTTP source invent.
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

// 64 different texts, parsed in turn: the canonical form SDKs send, and one with an offset.
void parseBench(benchmark::State& state, bool canonical) {
  std::string texts[64];
  for (int i = 0; i < 64; ++i) {
    texts[i] = sdk::formatIsoTimestamp(kStartMs + i * kStepMs);
    if (!canonical) {
      texts[i].replace(texts[i].size() - 1, 1, "+00:00");
    }
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto ms = sdk::parseIsoTimestamp(texts[i++ & 63]);
    benchmark::DoNotOptimize(ms);
  }
}
void BM_ParseIsoTimestampCanonical(benchmark::State& state) { parseBench(state, true); }
BENCHMARK(BM_ParseIsoTimestampCanonical);
void BM_ParseIsoTimestampWithOffset(benchmark::State& state) { parseBench(state, false); }
BENCHMARK(BM_ParseIsoTimestampWithOffset);

BENCHMARK_MAIN();
