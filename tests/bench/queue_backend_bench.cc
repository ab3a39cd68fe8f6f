// The queue seam's two backends in one run: append throughput and append latency (call ->
// durable callback) of EmbeddedQueue and of JetStreamQueue on a real nats-server (one node,
// replicas 1, started here on loopback), then the drain rate of one consumer (fetch + ack).
//
//   queue_backend_bench [seconds per round] [rounds] [calls in flight] [events per call]
//
// Rounds alternate the backends so that host noise falls on both. Each call is a batch of
// `events per call` track events of ~400 bytes (a /v1/batch body's events); `calls in flight`
// callers keep one call each outstanding, like that many HTTP connections. Printed: events/s
// and the p50/p99 of the append latency per round, the medians, and NATS / embedded.
//
// Durability differs, and is printed with the figures: the embedded log syncs (fdatasync) every
// 2 ms group (fsync: batch, the default); nats-server 2.9 acknowledges a publish once the stream
// leader (and with replicas > 1 a quorum) has written it, and syncs to disk on its own schedule.
// The embedded log with fsync: never is run as well, as the like-for-like write-only figure.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "core/queue/embedded_queue.h"
#include "core/queue/jetstream_queue.h"
#include "tests/support/nats/nats_server.h"

namespace {

using namespace junction;
namespace queue = junction::core::queue;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<sdk::Event> makeBatch(int call, int events) {
  std::vector<sdk::Event> batch;
  batch.reserve(static_cast<std::size_t>(events));
  for (int i = 0; i < events; ++i) {
    sdk::EventHeader h;
    h.type = sdk::EventType::Track;
    h.message_id = "c" + std::to_string(call) + "-" + std::to_string(i);
    h.user_id = "user-" + std::to_string((call * 131 + i) % 50000);
    h.name = "Product Added";
    h.source_id = "web";
    h.timestamp_ms = 1765000000000;
    h.received_at_ms = 1765000000100;
    std::string json = R"J({"type":"track","event":"Product Added","userId":")J" + h.user_id +
                       R"J(","messageId":")J" + h.message_id +
                       R"J(","properties":{"product_id":"sku-48213","name":"Trail running shoes",)J"
                       R"J("price":129.95,"currency":"EUR","quantity":1,"category":"footwear"},)J"
                       R"J("context":{"page":{"url":"https://shop.example.com/p/48213",)J"
                       R"J("referrer":"https://shop.example.com/c/running"},)J"
                       R"J("userAgent":"Mozilla/5.0 (X11; Linux x86_64)"},)J"
                       R"J("timestamp":"2026-12-06T02:00:00Z"})J";
    batch.emplace_back(std::move(h), std::move(json));
  }
  return batch;
}

struct Round {
  double events_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::uint64_t failed = 0;
};

// `callers` threads, each with one call in flight at a time, for `seconds`.
Round appendRound(queue::EventQueue& q, int seconds, int callers, int per_call) {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> failed{0};
  std::mutex lat_mu;
  std::vector<double> latencies;
  std::vector<std::thread> threads;
  const auto started = Clock::now();
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      std::vector<double> mine;
      int call = t * 1'000'000;
      while (!stop.load(std::memory_order_relaxed)) {
        auto batch = makeBatch(call++, per_call);
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        bool ok = false;
        const auto begin = Clock::now();
        auto status = q.append(std::move(batch), [&](sdk::Status s) {
          std::lock_guard lock(mu);
          ok = s.ok();
          done = true;
          cv.notify_one();
        });
        if (!status.ok()) {
          failed.fetch_add(1);
          std::this_thread::sleep_for(1ms);
          continue;
        }
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return done; });
        if (!ok) {
          failed.fetch_add(1);
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - begin).count());
        events.fetch_add(static_cast<std::uint64_t>(per_call), std::memory_order_relaxed);
      }
      std::lock_guard lock(lat_mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  Round r;
  r.events_per_second = static_cast<double>(events.load()) / elapsed;
  r.failed = failed.load();
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    r.p50_ms = latencies[latencies.size() / 2];
    r.p99_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  }
  return r;
}

// One consumer fetching and acknowledging everything there is; events/s.
double drain(queue::EventQueue& q, const std::string& name) {
  auto consumer = q.consumer(name, queue::StartAt::Earliest);
  if (!consumer.ok()) {
    std::printf("  consumer: %s\n", consumer.error().message.c_str());
    return 0;
  }
  std::uint64_t total = 0;
  const auto started = Clock::now();
  auto last = started;
  for (;;) {
    auto got = (*consumer)->fetch(1000, 8 << 20, 500ms);
    if (!got.ok() || got->empty()) break;
    for (const auto& m : *got) {
      (void)(*consumer)->ack(m);
    }
    total += got->size();
    last = Clock::now();
  }
  const double elapsed = std::chrono::duration<double>(last - started).count();
  std::printf("  drained %llu events in %.2f s\n", static_cast<unsigned long long>(total), elapsed);
  return elapsed > 0 ? static_cast<double>(total) / elapsed : 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  const int callers = argc > 3 ? std::atoi(argv[3]) : 64;
  const int per_call = argc > 4 ? std::atoi(argv[4]) : 100;
  std::printf("machine: %u cpus, %s\n", std::thread::hardware_concurrency(), cpuModel().c_str());
  std::printf("load: %d s rounds x %d, %d calls in flight, %d events per call\n", seconds,
              rounds, callers, per_call);

  std::string error;
  auto server = junction::testing::NatsServer::start(&error);
  if (!server) {
    std::printf("SKIPPED: nats-server did not start: %s\n", error.c_str());
    return 0;
  }
  char tmpl[] = "/var/tmp/junction-queue-bench-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl) != nullptr ? tmpl : "/tmp/junction-queue-bench";

  auto openEmbedded = [&](const std::string& name, queue::FsyncPolicy fsync) {
    queue::EmbeddedQueueOptions options;
    options.log.path = dir + "/" + name;
    options.log.fsync = fsync;
    auto q = queue::EmbeddedQueue::open(options);
    if (!q.ok()) std::printf("embedded: %s\n", q.error().message.c_str());
    return q.ok() ? std::move(q).value() : nullptr;
  };
  auto openNats = [&](const std::string& stream) {
    queue::JetStreamOptions options;
    options.urls = {server->url()};
    options.stream = stream;
    options.replicas = 1;
    auto q = queue::JetStreamQueue::open(options);
    if (!q.ok()) std::printf("nats: %s\n", q.error().message.c_str());
    return q.ok() ? std::move(q).value() : nullptr;
  };

  std::vector<double> emb, emb_never, nats;
  auto report = [](const char* what, int round, const Round& r) {
    std::printf("  round %d %-26s %10.0f events/s   p50 %7.2f ms   p99 %7.2f ms%s\n", round, what,
                r.events_per_second, r.p50_ms, r.p99_ms,
                r.failed != 0 ? ("   (" + std::to_string(r.failed) + " calls failed)").c_str()
                              : "");
  };
  std::vector<double> emb_p99, nats_p99;
  for (int i = 1; i <= rounds; ++i) {
    {
      auto q = openEmbedded("embedded-" + std::to_string(i), queue::FsyncPolicy::Batch);
      if (!q) return 1;
      auto r = appendRound(*q, seconds, callers, per_call);
      report("embedded (fsync batch)", i, r);
      emb.push_back(r.events_per_second);
      emb_p99.push_back(r.p99_ms);
    }
    {
      auto q = openNats("bench" + std::to_string(i));
      if (!q) return 1;
      auto r = appendRound(*q, seconds, callers, per_call);
      report("nats (1 server, R1)", i, r);
      nats.push_back(r.events_per_second);
      nats_p99.push_back(r.p99_ms);
    }
    {
      auto q = openEmbedded("never-" + std::to_string(i), queue::FsyncPolicy::Never);
      if (!q) return 1;
      auto r = appendRound(*q, seconds, callers, per_call);
      report("embedded (fsync never)", i, r);
      emb_never.push_back(r.events_per_second);
    }
  }
  std::printf("median append: embedded %.0f events/s (p99 %.2f ms), nats %.0f events/s (p99 %.2f "
              "ms), embedded fsync never %.0f events/s\n",
              median(emb), median(emb_p99), median(nats), median(nats_p99), median(emb_never));
  std::printf("nats / embedded (fsync batch): %.2f   nats / embedded (fsync never): %.2f\n",
              median(nats) / std::max(1.0, median(emb)),
              median(nats) / std::max(1.0, median(emb_never)));

  std::printf("drain (one consumer, fetch 1000 + ack each), round 1's queues:\n");
  {
    auto q = openEmbedded("embedded-1", queue::FsyncPolicy::Batch);
    if (q) std::printf("  embedded: %.0f events/s\n", drain(*q, "drain"));
  }
  {
    auto q = openNats("bench1");
    if (q) std::printf("  nats:     %.0f events/s\n", drain(*q, "drain"));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
