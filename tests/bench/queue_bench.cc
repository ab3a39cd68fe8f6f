// Queue benchmarks: durable appends/s under fsync: batch with concurrent producers, append
// latency percentiles, read throughput, CRC32C and encoding speed.
//
//   build/bench/queue_bench [--benchmark_filter=...]
// Data goes to $JUNCTION_BENCH_DIR (default /tmp), in a fresh directory per run.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "core/queue/crc32c.h"
#include "core/queue/log.h"

namespace {

using junction::core::queue::AppendResult;
using junction::core::queue::FsyncPolicy;
using junction::core::queue::Log;
using junction::core::queue::LogOptions;
using junction::core::queue::Offset;
namespace sdk = junction::sdk;
using Clock = std::chrono::steady_clock;

class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("JUNCTION_BENCH_DIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/junction_bench.XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A ~300-byte track event (JSON 230 bytes + header fields), as ingest would produce.
sdk::Event makeEvent(int producer, int seq) {
  sdk::EventHeader h;
  h.type = sdk::EventType::Track;
  h.message_id = "2b5f6c4e-" + std::to_string(producer) + "-" + std::to_string(seq);
  h.user_id = "user-" + std::to_string(seq % 1000);
  h.name = "Order Completed";
  h.source_id = "http";
  h.timestamp_ms = 1'700'000'000'000 + seq;
  h.received_at_ms = h.timestamp_ms + 5;
  std::string json = R"({"type":"track","event":"Order Completed","userId":")" + h.user_id +
                     R"(","properties":{"order_id":")" + std::to_string(seq) +
                     R"(","total":42.5,"currency":"EUR"},"context":{"ip":"203.0.113.9"},"pad":")";
  json.append(230 - std::min<std::size_t>(json.size(), 200), 'x');
  json += "\"}";
  return sdk::Event(std::move(h), std::move(json));
}

std::unique_ptr<Log> openLog(const std::string& path, FsyncPolicy policy) {
  LogOptions o;
  o.path = path;
  o.fsync = policy;
  auto log = Log::open(o, nullptr);
  if (!log.ok()) {
    std::fprintf(stderr, "open failed: %s\n", log.error().message.c_str());
    std::abort();
  }
  return std::move(log).value();
}

// args: events per call, calls in flight per producer (1 = wait for each done), producers,
// fsync policy (0 = batch, the durable figure; 2 = never, the CPU-only ceiling).
void BM_DurableAppend(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const int window = static_cast<int>(state.range(1));
  const int producers = static_cast<int>(state.range(2));
  const auto policy = state.range(3) == 2 ? FsyncPolicy::Never : FsyncPolicy::Batch;
  // Enough calls for ~2 M events per iteration, but a closed loop (inflight 1) pays one
  // fsync interval per call: cap it so an iteration stays around 2 s.
  const int calls_per_producer =
      std::clamp(2'000'000 / batch / producers, 20, 400 * window);
  BenchDir dir;
  auto log = openLog(dir.path(), policy);
  std::vector<sdk::Event> pool;
  for (int i = 0; i < batch; ++i) {
    pool.push_back(makeEvent(0, i));
  }
  std::vector<double> latencies_us;
  std::mutex lat_mu;
  std::uint64_t events = 0;
  const std::uint64_t syncs_before = log->fsyncCount();
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&] {
        std::counting_semaphore<1 << 20> slots(window);
        std::vector<double> local;
        local.reserve(static_cast<std::size_t>(calls_per_producer));
        std::mutex local_mu;
        for (int c = 0; c < calls_per_producer; ++c) {
          slots.acquire();
          const auto start = Clock::now();
          sdk::Status st = log->append(pool, [&, start](AppendResult r) {
            if (!r.status.ok()) {
              std::abort();
            }
            const double us =
                std::chrono::duration<double, std::micro>(Clock::now() - start).count();
            {
              std::lock_guard lk(local_mu);
              local.push_back(us);
            }
            slots.release();
          });
          if (!st.ok()) {
            std::abort();
          }
        }
        for (int w = 0; w < window; ++w) {
          slots.acquire();  // wait for every outstanding call
        }
        std::lock_guard lk(lat_mu);
        latencies_us.insert(latencies_us.end(), local.begin(), local.end());
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    events += static_cast<std::uint64_t>(producers) * calls_per_producer * batch;
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) {
    return latencies_us.empty()
               ? 0.0
               : latencies_us[static_cast<std::size_t>(q * (latencies_us.size() - 1))];
  };
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.SetBytesProcessed(static_cast<std::int64_t>(log->appendedBytes()));
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["fsyncs"] = static_cast<double>(log->fsyncCount() - syncs_before);
  state.counters["events_per_fsync"] =
      static_cast<double>(events) / std::max<double>(1, log->fsyncCount() - syncs_before);
}
BENCHMARK(BM_DurableAppend)
    ->ArgNames({"batch", "inflight", "producers", "never"})
    ->Args({100, 1, 4, 0})
    ->Args({1, 1, 4, 0})
    ->Args({100, 8, 4, 0})
    ->Args({100, 32, 4, 0})
    ->Args({100, 64, 4, 0})
    ->Args({1, 256, 4, 0})
    ->Args({1, 4096, 4, 0})
    ->Args({100, 32, 4, 2})
    ->Args({1, 4096, 4, 2})
    ->Iterations(3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Read(benchmark::State& state) {
  const auto max_records = static_cast<std::size_t>(state.range(0));
  BenchDir dir;
  auto log = openLog(dir.path(), FsyncPolicy::Never);
  constexpr int kEvents = 500'000;
  std::vector<sdk::Event> chunk;
  for (int i = 0; i < 1000; ++i) {
    chunk.push_back(makeEvent(0, i));
  }
  std::atomic<int> pending{kEvents / 1000};
  for (int i = 0; i < kEvents / 1000; ++i) {
    (void)log->append(chunk, [&](AppendResult) { --pending; });
  }
  while (pending.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    Offset from = log->beginOffset();
    while (true) {
      auto batch = log->read(from, max_records, 4u << 20);
      if (!batch.ok() || batch->records.empty()) {
        break;
      }
      records += batch->records.size();
      bytes += batch->next - from;
      from = batch->next;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_Read)->ArgName("max_records")->Arg(100)->Arg(1000)->UseRealTime()->Unit(
    benchmark::kMillisecond);

void BM_Crc32c(benchmark::State& state) {
  const std::string data(static_cast<std::size_t>(state.range(0)), 'q');
  const bool hardware = state.range(1) != 0;
  if (hardware && !junction::core::queue::crc32cHardwareAvailable()) {
    state.SkipWithError("no SSE4.2");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        hardware ? junction::core::queue::crc32cHardware(data.data(), data.size())
                 : junction::core::queue::crc32cSoftware(data.data(), data.size()));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32c)->ArgNames({"bytes", "hw"})->Args({300, 1})->Args({300, 0})->Args(
    {65536, 1})->Args({65536, 0});

void BM_EncodeRecord(benchmark::State& state) {
  const sdk::Event event = makeEvent(0, 1);
  std::string out;
  for (auto _ : state) {
    out.clear();
    (void)junction::core::queue::encodeRecord(event, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["record_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_EncodeRecord);

}  // namespace

BENCHMARK_MAIN();
