#pragma once

// The embedded backend of the queue seam (event_queue.h): the segmented log (log.h) and the
// cursor store (cursor_store.h) in one directory, for one machine.
//
// A consumer is a cursor. It keeps in memory what it handed out and what waits for a nak's
// delay, and commits the low watermark — the offset of the oldest message not finished —
// with the finished ranges above it (CursorState::done), so a restart fetches again exactly
// what was outstanding or waiting, and skips what was finished. Deliveries count from 1 again
// after a restart (the count is not stored).

#include <atomic>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <set>
#include <string>

#include "core/queue/cursor_store.h"
#include "core/queue/event_queue.h"
#include "core/queue/log.h"

namespace junction::core::queue {

struct EmbeddedQueueOptions {
  LogOptions log;                 // log.path is the queue's directory
  std::chrono::milliseconds cursor_flush_interval{100};  // CursorStoreOptions::flush_interval
  DeadLetterSink dead_letters;    // required for term()
};

class EmbeddedQueue final : public EventQueue {
 public:
  static sdk::Result<std::unique_ptr<EmbeddedQueue>> open(EmbeddedQueueOptions options,
                                                          RecoveryReport* report = nullptr);
  // Consumers must be destroyed before their queue.
  ~EmbeddedQueue() override;

  std::string_view backend() const noexcept override { return "embedded"; }
  sdk::Status append(std::vector<sdk::Event> events, AppendCallback done) override;
  sdk::Result<std::unique_ptr<Consumer>> consumer(const std::string& name, StartAt start) override;
  sdk::Status removeConsumer(const std::string& name) override;
  sdk::Result<std::size_t> retain() override;
  QueueStats stats() const override;

  Log& log() noexcept { return *log_; }
  CursorStore& cursors() noexcept { return *cursors_; }

 private:
  class EmbeddedConsumer;
  EmbeddedQueue(std::unique_ptr<Log> log, std::unique_ptr<CursorStore> cursors,
                DeadLetterSink dead_letters);
  // Wakes every consumer waiting in fetch (new durable data, a nak's new due time).
  void wake();
  // Blocks until the log's durable end passes `offset`, wake() is called after `generation`
  // was read, or `deadline` passes.
  void waitForData(Offset offset, std::uint64_t generation,
                   std::chrono::steady_clock::time_point deadline);

  std::unique_ptr<Log> log_;
  std::unique_ptr<CursorStore> cursors_;
  DeadLetterSink dead_letters_;

  std::mutex data_mu_;
  std::condition_variable data_cv_;
  std::atomic<std::uint64_t> wake_generation_{0};

  std::mutex consumers_mu_;
  std::set<std::string> open_consumers_;
};

}  // namespace junction::core::queue
