#pragma once

// The NATS JetStream backend of the queue seam (event_queue.h), through libnats (the official C
// client). Several junctiond nodes share one stream.
//
// Layout on the server:
//   stream  <stream>          subjects <stream>.p.*, file storage, `replicas` copies,
//                             retention by limits (max_bytes, discard new) plus retain() below
//   subject <stream>.p.<n>    partition n = FNV-1a(person) % partitions (partitionOf)
//   consumer <name>-p<n>      one durable pull consumer per consumer name and partition, explicit
//                             acks: a partition of a destination is read by one node at a time
//
// A NATS message holds the events one append() call has for one partition, in call order, as
// our record encoding (record.h, tag 0, records back to back; split at 256 KiB), so a queued
// event reads back exactly as the embedded log gives it, and per-message costs (which limit a
// stream's rate) are shared by the call's events. append() publishes asynchronously (libnats'
// async publish, up to max_pending in flight) and calls `done` when the server acknowledged
// every message of the call: stored on `replicas` servers.
//
// A consumer hands out and settles each event on its own; a message is acknowledged when all of
// its events are. A nak waits in the consumer (the message stays outstanding, kept in progress
// by the caller); term() hands the event to the dead-letter sink. When a consumer closes, every
// message it has not finished goes back to the server (nak, in stream order, so the next reader
// gets it before the partition's later messages); for one partly finished, the finished events
// are recorded first in the key-value bucket `<stream>-done` (key "<durable>.<stream sequence>",
// a bitmap), and whoever gets the message next skips them. After a crash nothing is recorded:
// the message's finished events are delivered again (at least once).
//
// retain(): the stream keeps what some consumer has not acknowledged yet; for each partition it
// purges the messages below every consumer's acknowledgement floor. With no consumer at all it
// keeps everything (a destination added later may start at the earliest event), as the embedded
// log does.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/queue/event_queue.h"

struct __natsConnection;
struct __jsCtx;
struct __kvStore;
struct __natsMsg;
struct jsPubAck;
struct jsPubAckErr;

namespace junction::core::queue {

struct JetStreamOptions {
  std::vector<std::string> urls{"nats://127.0.0.1:4222"};  // any servers of the cluster
  std::string stream = "junction";
  int replicas = 1;
  std::uint32_t partitions = 16;
  std::string credentials_file;  // a NATS .creds file (JWT + NKey seed); "" = none
  bool tls = false;              // require TLS
  std::string tls_ca_file;       // "" = the system's trust store
  std::uint64_t max_bytes = 0;   // the stream's budget; 0 = unlimited
  std::chrono::milliseconds publish_timeout{5000};  // a publish not acknowledged by then fails
  std::chrono::milliseconds ack_wait{30000};        // a fetched message not settled by then
                                                    // is redelivered (to any node)
  std::int64_t max_pending_publishes = 65536;
  std::chrono::milliseconds connect_timeout{5000};
  std::string client_name = "junctiond";
  DeadLetterSink dead_letters;  // required for term()
};

class JetStreamQueue final : public EventQueue {
 public:
  // Connects (trying every url), and creates the stream if it is missing. Unavailable when no
  // server answers; InvalidArgument when the stream exists with other subjects.
  static sdk::Result<std::unique_ptr<JetStreamQueue>> open(JetStreamOptions options);
  // Waits up to publish_timeout for appends in flight (their `done` runs), then disconnects.
  // Consumers must be destroyed before their queue.
  ~JetStreamQueue() override;

  std::string_view backend() const noexcept override { return "nats"; }
  sdk::Status append(std::vector<sdk::Event> events, AppendCallback done) override;
  sdk::Result<std::unique_ptr<Consumer>> consumer(const std::string& name, StartAt start) override;
  sdk::Status removeConsumer(const std::string& name) override;
  sdk::Result<std::size_t> retain() override;
  QueueStats stats() const override;

  // Whether the client is connected now (it reconnects by itself).
  bool connected() const;
  const JetStreamOptions& options() const noexcept { return options_; }
  // "<stream>.p.<n>"
  std::string subjectOf(std::uint32_t partition) const;
  // The durable consumer name of `name` for `partition`: bytes other than [A-Za-z0-9_-] are
  // written as _XX (hex), so different names never share a consumer.
  static std::string durableName(const std::string& name, std::uint32_t partition);

 private:
  class JetStreamConsumer;
  struct PendingCall {
    AppendCallback done;
    std::size_t remaining = 0;
    bool failed = false;
    std::string error;
    bool abandoned = false;  // append() failed part-way and returned an error: no callback
  };

  explicit JetStreamQueue(JetStreamOptions options);
  sdk::Status connect();
  sdk::Status ensureStream();
  // The `<stream>-done` key-value bucket: for a message handed back part-finished, which of its
  // events were finished (key "<durable>.<stream sequence>", a bitmap).
  sdk::Status openDoneBucket();
  sdk::Status putDone(const std::string& key, const std::vector<bool>& finished);
  std::optional<std::vector<bool>> getDone(const std::string& key);
  void deleteDone(const std::string& key);
  static void onPublishAck(__jsCtx* js, __natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                           void* closure);
  void published(__natsMsg* msg, const jsPubAckErr* error);

  const JetStreamOptions options_;
  __natsConnection* connection_ = nullptr;
  __jsCtx* js_ = nullptr;
  __kvStore* done_ = nullptr;

  std::mutex pending_mu_;
  std::unordered_map<__natsMsg*, std::shared_ptr<PendingCall>> pending_;
  std::atomic<std::uint64_t> appended_{0};
};

// A libnats status as text ("Timeout", "Connection Closed", ...), with the JetStream error code
// when there is one.
std::string natsErrorText(int status, int js_error = 0);

}  // namespace junction::core::queue
