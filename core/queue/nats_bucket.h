#pragma once

// A JetStream key-value bucket the nodes of one deployment share (state that is not events:
// regulations, remembered consent, ...), over the connection of a JetStreamQueue.
//
//   auto bucket = NatsBucket::open(queue, "junction-regulations", {.replicas = 3});
//   (void)(*bucket)->put("r-1", "...");
//   (void)(*bucket)->watch([](const NatsBucket::Entry& e) { ... });  // every node
//
// watch() runs a thread of its own that is given each key's latest value first (in the order
// they were written), then every change as it lands, also after the client reconnected. A value
// is at most the server's max_payload (1 MiB by default).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "core/queue/jetstream_queue.h"

struct __kvStore;
struct __kvWatcher;

namespace junction::core::queue {

struct NatsBucketOptions {
  int replicas = 1;
  std::uint8_t history = 1;            // values kept per key
  std::chrono::milliseconds ttl{0};    // 0: values never expire
};

class NatsBucket {
 public:
  struct Entry {
    std::string key;
    std::string value;
    bool deleted = false;    // a delete or purge of the key
    std::uint64_t revision = 0;
    std::int64_t created_ms = 0;  // when the server stored it (Unix ms)
  };

  // Opens the bucket, creating it when missing. `queue` must outlive the bucket.
  static sdk::Result<std::unique_ptr<NatsBucket>> open(JetStreamQueue& queue,
                                                       const std::string& name,
                                                       NatsBucketOptions options = {});
  // Stops the watcher.
  ~NatsBucket();
  NatsBucket(const NatsBucket&) = delete;
  NatsBucket& operator=(const NatsBucket&) = delete;

  const std::string& name() const noexcept { return name_; }
  sdk::Status put(const std::string& key, std::string_view value);
  // put() that returns the value's revision.
  sdk::Result<std::uint64_t> write(const std::string& key, std::string_view value);
  // nullopt: no such key (or deleted).
  sdk::Result<std::optional<Entry>> get(const std::string& key);
  sdk::Status erase(const std::string& key);
  // Compare-and-set: writes `value` only if the key's latest revision is `expected` (0: only if
  // the key is absent, deleted or expired). Returns the new revision; AlreadyExists when the
  // key is at another revision (someone else wrote it), Unavailable when NATS did not answer.
  sdk::Result<std::uint64_t> putIf(const std::string& key, std::string_view value,
                                   std::uint64_t expected);

  // Starts calling `on_entry` (on the watcher's thread) for each key's latest value, then for
  // each change. `on_caught_up` runs once, after the values present at the start were given.
  // Once per bucket.
  sdk::Status watch(std::function<void(const Entry&)> on_entry,
                    std::function<void()> on_caught_up = {});

 private:
  NatsBucket(std::string name, __kvStore* kv) : name_(std::move(name)), kv_(kv) {}
  void watchLoop(std::function<void(const Entry&)> on_entry, std::function<void()> on_caught_up);

  const std::string name_;
  __kvStore* kv_ = nullptr;
  __kvWatcher* watcher_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace junction::core::queue
