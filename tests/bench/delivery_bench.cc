// End-to-end and backlog figures for the queue + delivery engine, in process (no HTTP):
//
//   delivery_bench e2e DIR null|file [events=2000000] [producers=2]
//       events appended durably (fsync: batch) by `producers` threads, delivered by a
//       DeliveryEngine to a null destination (returns delivered) or the file destination
//       (NDJSON, fdatasync per batch); prints appended/s and delivered/s (first append to last
//       delivery).
//   delivery_bench fill DIR [events=10000000]
//       appends a backlog of ~300-byte events (fsync: batch) with no consumer; prints the time,
//       the disk size and the process RSS (VmRSS, VmHWM).
//   delivery_bench restart DIR
//       opens the backlog as the daemon does: Log::open + DeliveryEngine::open (CursorStore,
//       dead-letter store) + a destination that never consumes (always retry, Retry-After 1 h)
//       starting at the earliest offset + start(); prints the time to that point, then RSS
//       once the worker has filled its delivery window.
//
// Every mode prints one "RESULT key=value ..." line for the run script.

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "core/config/daemon_config.h"
#include "core/delivery/delivery_engine.h"
#include "core/queue/log.h"
#include "core/runtime/runtime.h"
#include "core/telemetry/log_sink.h"
#include "core/telemetry/metrics_registry.h"
#include "file_destination.h"
#include "junction/sdk/testing/fake_context.h"

namespace {

namespace sdk = junction::sdk;
namespace queue = junction::core::queue;
namespace delivery = junction::core::delivery;
namespace config = junction::core::config;
namespace telemetry = junction::core::telemetry;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "VmRSS:     12345 kB" -> MiB.
double statusMiB(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      return std::strtod(line.c_str() + std::strlen(key), nullptr) / 1024.0;
    }
  }
  return -1;
}

// A ~300-byte track event, as ingest produces (the same shape as queue_bench).
sdk::Event makeEvent(std::uint64_t producer, std::uint64_t seq) {
  sdk::EventHeader h;
  h.type = sdk::EventType::Track;
  h.message_id = "2b5f6c4e-" + std::to_string(producer) + "-" + std::to_string(seq);
  h.user_id = "user-" + std::to_string(seq % 10000);
  h.name = "Order Completed";
  h.source_id = "http";
  // Received now: the restart mode's retry budget (max_age) counts from receivedAt.
  static const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
  h.timestamp_ms = now_ms;
  h.received_at_ms = now_ms + 5;
  std::string json = R"({"type":"track","event":"Order Completed","userId":")" + h.user_id +
                     R"(","messageId":")" + h.message_id + R"(","properties":{"order_id":")" +
                     std::to_string(seq) + R"(","total":42.5,"currency":"EUR"},"pad":")";
  json.append(json.size() < 200 ? 200 - json.size() : 0, 'x');
  json += "\"}";
  return sdk::Event(std::move(h), std::move(json));
}

std::unique_ptr<queue::Log> openLog(const std::string& dir, queue::RecoveryReport* report) {
  queue::LogOptions o;
  o.path = dir + "/queue";
  o.fsync = queue::FsyncPolicy::Batch;
  auto log = queue::Log::open(o, report);
  if (!log.ok()) {
    std::fprintf(stderr, "Log::open failed: %s\n", log.error().message.c_str());
    std::exit(1);
  }
  return std::move(log).value();
}

config::ConnectorConfig destinationConfig(const std::string& id, const std::string& plugin) {
  config::ConnectorConfig c;
  c.kind = config::ConnectorKind::Destination;
  c.id = id;
  c.plugin = plugin;
  c.batch.max_events = 500;
  c.batch.max_bytes = 1 << 20;
  c.batch.max_wait = 200ms;
  c.retry.max_attempts = 1'000'000;
  c.retry.max_age = std::chrono::hours(24 * 90);
  c.retry.initial_backoff = 1s;
  c.retry.max_backoff = 5min;
  c.concurrency = 1;
  c.consent_mode = "all";
  c.consent_default = "deny";
  c.start = "earliest";
  return c;
}

class NullDestination final : public sdk::Destination {
 public:
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    return std::vector<sdk::Outcome>(batch.size(), sdk::Outcome::delivered());
  }
};

// Never consumes: every event is retried in an hour.
class StuckDestination final : public sdk::Destination {
 public:
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    return std::vector<sdk::Outcome>(batch.size(), sdk::Outcome::retry("stuck", 1h));
  }
};

// Appends `total` events from `producers` threads, in calls of 100 with up to 64 in flight each.
void appendAll(queue::Log& log, std::uint64_t total, int producers) {
  constexpr std::uint64_t kCall = 100;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      std::counting_semaphore<1024> slots(64);
      const std::uint64_t mine = total / static_cast<std::uint64_t>(producers) +
                                 (static_cast<std::uint64_t>(p) < total % static_cast<std::uint64_t>(producers) ? 1 : 0);
      std::uint64_t seq = 0;
      while (seq < mine) {
        std::vector<sdk::Event> events;
        const std::uint64_t n = std::min(kCall, mine - seq);
        events.reserve(n);
        for (std::uint64_t i = 0; i < n; ++i, ++seq) {
          events.push_back(makeEvent(static_cast<std::uint64_t>(p), seq));
        }
        slots.acquire();
        for (;;) {
          auto st = log.append(std::move(events), [&](queue::AppendResult r) {
            if (!r.status.ok()) {
              std::fprintf(stderr, "append failed: %s\n", r.status.message().c_str());
              std::abort();
            }
            slots.release();
          });
          if (st.ok()) {
            break;
          }
          std::fprintf(stderr, "append refused: %s\n", st.message().c_str());
          std::abort();
        }
      }
      for (int i = 0; i < 64; ++i) {
        slots.acquire();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
}

std::uint64_t directoryBytes(const fs::path& dir) {
  std::uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) {
      bytes += e.file_size(ec);
    }
  }
  return bytes;
}

int runE2e(const std::string& dir, const std::string& kind, std::uint64_t events, int producers) {
  telemetry::LogSink sink(stderr, sdk::LogLevel::Warn);
  telemetry::ComponentLogger logger(sink, "bench");
  telemetry::MetricsRegistry metrics;
  junction::core::runtime::SystemClock clock;
  auto log = openLog(dir, nullptr);
  delivery::DeliveryEngine engine(*log, metrics, logger, clock);
  if (auto s = engine.open(dir); !s.ok()) {
    std::fprintf(stderr, "engine open: %s\n", s.message().c_str());
    return 1;
  }
  const auto cfg = destinationConfig("bench", kind);
  sdk::testing::FakeDestinationContext file_context("bench");
  std::shared_ptr<sdk::Destination> destination;
  if (kind == "file") {
    junction::plugins::file::FileConfig fc;
    fc.path = dir + "/out/events.ndjson";
    fc.max_file_bytes = 1ull << 40;
    fc.max_files = 0;
    fc.sync = true;
    destination = std::make_shared<junction::plugins::file::FileDestination>(fc, file_context);
    if (auto s = destination->start(); !s.ok()) {
      std::fprintf(stderr, "file start: %s\n", s.message().c_str());
      return 1;
    }
  } else {
    destination = std::make_shared<NullDestination>();
  }
  (void)engine.add(cfg, destination);
  if (auto s = engine.start(); !s.ok()) {
    std::fprintf(stderr, "engine start: %s\n", s.message().c_str());
    return 1;
  }
  auto worker = engine.worker("bench");
  const auto t0 = Clock::now();
  appendAll(*log, events, producers);
  const double append_s = secondsSince(t0);
  const auto deadline = Clock::now() + 600s;
  while (worker->stats().delivered < events && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  const double total_s = secondsSince(t0);
  const auto delivered = worker->stats().delivered;
  engine.stop();
  std::printf("RESULT mode=e2e destination=%s events=%llu producers=%d append_s=%.3f "
              "appended_per_s=%.0f delivered=%llu delivered_s=%.3f delivered_per_s=%.0f "
              "rss_mib=%.0f hwm_mib=%.0f fsyncs=%llu\n",
              kind.c_str(), static_cast<unsigned long long>(events), producers, append_s,
              static_cast<double>(events) / append_s, static_cast<unsigned long long>(delivered),
              total_s, static_cast<double>(delivered) / total_s, statusMiB("VmRSS:"),
              statusMiB("VmHWM:"), static_cast<unsigned long long>(log->fsyncCount()));
  return delivered == events ? 0 : 1;
}

int runFill(const std::string& dir, std::uint64_t events) {
  auto log = openLog(dir, nullptr);
  // The cursor of a destination that has consumed nothing pins the whole backlog.
  {
    queue::CursorStoreOptions o;
    o.path = dir;
    auto cursors = queue::CursorStore::open(o);
    if (!cursors.ok() || !(*cursors)->commit("backlog", log->beginOffset()).ok()) {
      std::fprintf(stderr, "cursor store failed\n");
      return 1;
    }
  }
  const auto t0 = Clock::now();
  appendAll(*log, events, 2);
  const double s = secondsSince(t0);
  const double rss = statusMiB("VmRSS:");
  const double hwm = statusMiB("VmHWM:");
  const auto segments = log->segmentCount();
  log.reset();
  std::printf("RESULT mode=fill events=%llu seconds=%.1f appended_per_s=%.0f segments=%zu "
              "disk_gib=%.2f rss_mib=%.0f hwm_mib=%.0f\n",
              static_cast<unsigned long long>(events), s, static_cast<double>(events) / s, segments,
              static_cast<double>(directoryBytes(dir)) / (1u << 30), rss, hwm);
  return 0;
}

int runRestart(const std::string& dir) {
  telemetry::LogSink sink(stderr, sdk::LogLevel::Error);
  telemetry::ComponentLogger logger(sink, "bench");
  telemetry::MetricsRegistry metrics;
  junction::core::runtime::SystemClock clock;
  const auto t0 = Clock::now();
  queue::RecoveryReport report;
  auto log = openLog(dir, &report);
  const double log_ms = secondsSince(t0) * 1000;
  auto engine = std::make_unique<delivery::DeliveryEngine>(*log, metrics, logger, clock);
  if (auto s = engine->open(dir); !s.ok()) {
    std::fprintf(stderr, "engine open: %s\n", s.message().c_str());
    return 1;
  }
  const auto cfg = destinationConfig("backlog", "stuck");
  (void)engine->add(cfg, std::make_shared<StuckDestination>());
  if (auto s = engine->start(); !s.ok()) {
    std::fprintf(stderr, "engine start: %s\n", s.message().c_str());
    return 1;
  }
  const double ready_ms = secondsSince(t0) * 1000;
  const double rss_ready = statusMiB("VmRSS:");
  // Let the worker fill its delivery window (bounded by events and bytes), then measure.
  auto worker = engine->worker("backlog");
  std::size_t window = 0;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(50ms);
    auto now = worker->stats().window_events;
    if (now > 0 && now == window) {
      break;
    }
    window = now;
  }
  const double rss_window = statusMiB("VmRSS:");
  const double hwm = statusMiB("VmHWM:");
  const auto dead = worker->stats().dead_lettered;
  engine->stop();
  engine.reset();
  std::printf("RESULT mode=restart backlog_bytes=%llu segments=%zu scanned_mib=%.1f "
              "log_open_ms=%.1f ready_ms=%.1f rss_ready_mib=%.0f window_events=%zu "
              "rss_window_full_mib=%.0f hwm_mib=%.0f dead_lettered=%llu\n",
              static_cast<unsigned long long>(report.end - report.begin), report.segments,
              static_cast<double>(report.scanned_bytes) / (1 << 20), log_ms, ready_ms, rss_ready,
              window, rss_window, hwm, static_cast<unsigned long long>(dead));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s e2e DIR null|file [events] [producers] | fill DIR [events] | restart DIR\n",
                 argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const std::string dir = argv[2];
  if (mode == "e2e" && argc >= 4) {
    const std::uint64_t events = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 2'000'000;
    const int producers = argc > 5 ? std::atoi(argv[5]) : 2;
    return runE2e(dir, argv[3], events, producers);
  }
  if (mode == "fill") {
    return runFill(dir, argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 10'000'000);
  }
  if (mode == "restart") {
    return runRestart(dir);
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
