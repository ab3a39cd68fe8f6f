#pragma once

// A WorkerSource over a queue::Consumer (the NATS JetStream backend): lets the destination
// worker — its batching, per-person order, retries, dead letters — run unchanged on a queue
// whose position lives on a server.
//
// A thread fetches ahead into a bounded buffer and gives each message the next offset (one
// per message, in fetch order); the worker reads the buffer like a log. A commit acknowledges
// every message the cursor covers: below the low watermark, or in a finished range above it.
// Events the worker filters or blocks are covered as the watermark passes them. While an event
// waits in the worker (a retry with backoff, a paused destination), the thread tells the
// backend it is in progress, well within its redelivery timeout, so no other node takes it.
//
// Nothing is stored locally: stored() is always empty and the consumer's position is the
// server's. After a crash the backend hands out again what was not acknowledged (at least
// once); the delivered count of a cursor is not kept.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/delivery/worker_source.h"
#include "core/queue/event_queue.h"

namespace junction::core::delivery {

struct ConsumerSourceLimits {
  std::size_t prefetch_messages = 10'000;
  std::size_t prefetch_bytes = 32 << 20;
};

class ConsumerSource final : public WorkerSource {
 public:
  explicit ConsumerSource(std::unique_ptr<queue::Consumer> consumer,
                          ConsumerSourceLimits limits = {});
  // Stops fetching (stop()).
  ~ConsumerSource() override;
  ConsumerSource(const ConsumerSource&) = delete;
  ConsumerSource& operator=(const ConsumerSource&) = delete;

  // Starts fetching; `on_data` is called (on the fetch thread) when end() moved.
  void start(std::function<void()> on_data);
  // Stops fetching, hands back (nak, no delay, in queue order) every message the worker did not
  // finish, and closes the consumer. Call after the worker stopped (its last commit
  // acknowledged what it finished). Idempotent; end() and errors() still answer after it.
  void stop();

  std::optional<queue::CursorState> stored(const std::string&) const override {
    return std::nullopt;
  }
  queue::Offset begin() const override;
  queue::Offset end() const override { return end_.load(std::memory_order_acquire); }
  sdk::Result<queue::ReadBatch> read(queue::Offset from, std::size_t max_records,
                                     std::size_t max_bytes) override;
  sdk::Status commit(const std::string& id, queue::Offset offset) override;
  sdk::Status commit(const std::string& id, const queue::CursorState& state) override;
  sdk::Status flush() override { return {}; }

  // Fetches or acknowledgements that failed (the backend unreachable); the last reason.
  std::uint64_t errors() const noexcept { return errors_.load(); }
  std::string lastError() const;

 private:
  struct Fetched {
    queue::Offset offset = 0;
    queue::QueueMessage message;
  };
  void fetchLoop();
  void keepAlive();
  void settleBelow(queue::Offset low, const std::vector<std::pair<queue::Offset, queue::Offset>>& done);
  void noteError(const sdk::Status& status);

  std::unique_ptr<queue::Consumer> consumer_;
  const ConsumerSourceLimits limits_;
  std::function<void()> on_data_;

  mutable std::mutex mu_;
  std::condition_variable room_;          // the worker read from a full buffer
  std::deque<Fetched> buffer_;            // fetched, not read yet (offset order)
  std::size_t buffer_bytes_ = 0;
  std::map<queue::Offset, queue::QueueMessage> read_;  // read by the worker, not acknowledged
  queue::Offset next_offset_ = 1;
  bool stopping_ = false;
  std::atomic<queue::Offset> end_{1};
  std::chrono::steady_clock::time_point next_keep_alive_{};

  std::atomic<std::uint64_t> errors_{0};
  mutable std::mutex error_mu_;
  std::string last_error_;

  std::thread thread_;
};

}  // namespace junction::core::delivery
