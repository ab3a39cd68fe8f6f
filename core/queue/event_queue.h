#pragma once

// The queue seam: what ingest and delivery need from a queue, implemented by the embedded log
// (EmbeddedQueue, one machine) and by NATS JetStream (JetStreamQueue, several nodes). Every
// backend passes the same conformance suite (tests/core/queue/event_queue_conformance_test.cc).
//
//   append ──► durable ──► done(ok)           the HTTP answer waits for done
//   consumer("mailchimp") ──► fetch ──► ack      delivered, filtered, blocked: finished
//                                   └─► nak(d)   comes back after d (a retry)
//                                   └─► term(r)  handed to the dead-letter sink, never again
//
// Delivery is at least once: a message fetched and not acknowledged (the process died, the
// consumer was closed) is fetched again later, by this process or another node.
//
// Order: messages of one person (userId, else anonymousId) are fetched in append order by a
// consumer. A nak'd message comes back after its delay; the consumer does not hold back the
// person's later messages for it — keeping a person's order across retries is the caller's job
// (the destination worker holds a person's later events while one waits for a retry).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::core::queue {

// Where a consumer starts the first time its name is seen. Later it resumes where it was.
enum class StartAt : std::uint8_t { Earliest, Latest };

struct QueueMessage {
  std::uint64_t handle = 0;     // the consumer's own reference, for ack/nak/term
  std::uint64_t sequence = 0;   // position in the queue (a log offset, a stream sequence)
  std::uint32_t deliveries = 1; // 1 the first time this consumer is given it
  std::uint32_t partition = 0;  // 0 when the backend is not partitioned
  sdk::Event event;
};

struct ConsumerStats {
  std::uint64_t fetched = 0;     // messages handed out, redeliveries included
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t terminated = 0;  // dead-lettered
  std::uint64_t outstanding = 0; // fetched, not yet acknowledged in any way
};

// One destination's view of the queue. Thread-safe; fetch is meant for one thread at a time.
class Consumer {
 public:
  virtual ~Consumer() = default;
  const std::string& name() const noexcept { return name_; }

  // Up to `max_messages` messages (and about `max_bytes` of events; at least one if any is
  // ready): redeliveries that are due, then new messages. Waits up to `wait` when none is
  // ready; an empty vector means none arrived in time.
  virtual sdk::Result<std::vector<QueueMessage>> fetch(std::size_t max_messages,
                                                       std::size_t max_bytes,
                                                       std::chrono::milliseconds wait) = 0;
  // Finished with: never fetched again by this consumer.
  virtual sdk::Status ack(const QueueMessage& message) = 0;
  // Fetched again after `delay` (with deliveries + 1).
  virtual sdk::Status nak(const QueueMessage& message, std::chrono::milliseconds delay) = 0;
  // Dead-lettered: handed to the queue's dead-letter sink with `reason`, then never fetched
  // again. When the sink fails, the message stays outstanding and the error is returned.
  virtual sdk::Status term(const QueueMessage& message, std::string_view reason) = 0;
  // Still being worked on (a retry in progress): a backend that redelivers unsettled messages
  // after a timeout (JetStream's ack wait) restarts that timeout. Call it well within it.
  virtual sdk::Status inProgress(const QueueMessage& message) = 0;
  // How long a fetched message may stay unsettled without inProgress() before the backend may
  // hand it out again (to this or another node); zero: never (only a restart does).
  virtual std::chrono::milliseconds redeliveryTimeout() const noexcept = 0;

  virtual ConsumerStats stats() const = 0;

 protected:
  explicit Consumer(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// Where term() puts a message: (consumer name, event, reason, deliveries). Must be durable when
// it returns ok (the daemon's dead-letter store).
using DeadLetterSink = std::function<sdk::Status(const std::string& consumer,
                                                 const sdk::Event& event, std::string_view reason,
                                                 std::uint32_t deliveries)>;

struct QueueStats {
  std::uint64_t appended = 0;        // events accepted since open (by this process)
  std::uint64_t stored_messages = 0; // held now, all consumers together; -1 (max) if unknown
  std::uint64_t stored_bytes = 0;
};

class EventQueue {
 public:
  using AppendCallback = std::function<void(sdk::Status)>;

  virtual ~EventQueue() = default;

  // "embedded" or "nats".
  virtual std::string_view backend() const noexcept = 0;

  // Queues `events` and returns at once. On ok(), `done` is called exactly once, on a thread
  // of the queue's, when every event of the call is stored durably (ok), or when storing failed
  // (Unavailable; then none of the call may be relied on). On error, `done` is not called:
  // InvalidArgument (an event too large), ResourceExhausted (the queue is full), Unavailable
  // (closing, or the backend is not reachable).
  [[nodiscard]] virtual sdk::Status append(std::vector<sdk::Event> events, AppendCallback done) = 0;

  // The consumer called `name`, created the first time (starting at `start`), resumed after.
  // One Consumer object per name per process at a time.
  virtual sdk::Result<std::unique_ptr<Consumer>> consumer(const std::string& name,
                                                          StartAt start) = 0;
  // Forgets a consumer and its position (a destination removed for good).
  virtual sdk::Status removeConsumer(const std::string& name) = 0;

  // Frees what every consumer has finished with; returns how much was freed, in the backend's
  // unit (segments, messages). A backend whose server does this itself returns 0.
  virtual sdk::Result<std::size_t> retain() = 0;

  virtual QueueStats stats() const = 0;
};

// The person an event belongs to for ordering and partitioning: userId, else anonymousId.
std::string_view personOf(const sdk::Event& event) noexcept;
// Which of `partitions` partitions a person's events go to (FNV-1a of the person, stable across
// releases and machines: nodes must agree).
std::uint32_t partitionOf(std::string_view person, std::uint32_t partitions) noexcept;

}  // namespace junction::core::queue
