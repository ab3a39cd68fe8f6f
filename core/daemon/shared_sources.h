#pragma once

// What the nodes of one deployment on NATS (queue.backend: nats) share about pulling sources
// (hubspot, salesforce: scheduled syncs), in JetStream key-value buckets beside the stream:
//
//   <stream>-sources      key: the source id (escapeName). A lease: which node runs the
//                         source's syncs. Taken by create (absent, released or expired),
//                         renewed every heartbeat by compare-and-set, released (empty value,
//                         compare-and-set) when the node stops or drops the source; the bucket's
//                         TTL (node_ttl) ends the lease of a node that died. A node runs a
//                         sync only while its last renewal was sent less than 2 heartbeats ago,
//                         so it stops before another may take the lease.
//   <stream>-checkpoints  key: "<source id>.<checkpoint key>" (both escapeName). The source's
//                         checkpoints (sync cursors), so that the node that runs it next starts
//                         where the last one stopped. Written by compare-and-set against the
//                         revision this node last read or wrote, and only while it holds the
//                         lease: a node that lost the lease in mid-run cannot move the cursor
//                         back or past what it made durable.
//
// Scheduled syncs gate on the lease (StrandScheduler::gatePeriodic): on the other nodes a tick
// waits, and runs as soon as the lease comes to them (the holder died or dropped the source).

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/queue/nats_bucket.h"
#include "core/runtime/runtime.h"
#include "junction/sdk/context.h"
#include "junction/sdk/log.h"

namespace junction::core::daemon {

class SourceLeases {
 public:
  // `bucket` has a TTL of node_ttl (> 2 heartbeats); `node` names this node in the leases.
  // Everything given must outlive the object.
  SourceLeases(queue::NatsBucket& bucket, std::string node, std::chrono::milliseconds heartbeat,
               sdk::Logger& logger);
  // Stops, releasing what is held.
  ~SourceLeases();
  SourceLeases(const SourceLeases&) = delete;
  SourceLeases& operator=(const SourceLeases&) = delete;

  // A source to run (tried at once), or one dropped (its lease released). Any time.
  void add(const std::string& source_id);
  void remove(const std::string& source_id);
  // Renews and takes leases every heartbeat, on a thread of its own.
  void start();
  // Stops renewing and releases the leases held: the other nodes take them at their next pass.
  void stop();

  // Whether this node runs the source's syncs now.
  bool holds(const std::string& source_id) const;
  // The node that held the source's lease when last looked at ("" when none or unknown).
  std::string holder(const std::string& source_id) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Lease {
    std::string key;
    std::uint64_t revision = 0;  // of our write; 0: not held
    Clock::time_point renewed_at{};
    std::string holder;          // as last seen
  };
  void pass();
  void renewOrTake(const std::string& id, Lease& lease);  // a copy; io_mu_ held
  void release(const std::string& id, Lease& lease);

  queue::NatsBucket& bucket_;
  const std::string node_;
  const std::chrono::milliseconds heartbeat_;
  sdk::Logger& logger_;

  mutable std::mutex mu_;
  std::map<std::string, Lease> leases_;  // by source id
  std::mutex io_mu_;                      // one writer of the bucket at a time
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// A source's checkpoints in <stream>-checkpoints (see above).
class NatsCheckpointStore final : public sdk::CheckpointStore {
 public:
  // `legacy`: this node's checkpoint file of the connector, read for a key the bucket does not
  // have (a deployment moved from the embedded queue keeps its cursors). `may_write`: whether
  // this node runs the source now. Everything given must outlive the store.
  NatsCheckpointStore(queue::NatsBucket& bucket, std::string source_id,
                      std::filesystem::path legacy, std::function<bool()> may_write);

  sdk::Result<std::optional<std::string>> load(std::string_view key) noexcept override;
  sdk::Status store(std::string_view key, std::string_view value) noexcept override;

  // The bucket key of a source's checkpoint.
  static std::string bucketKey(std::string_view source_id, std::string_view key);

 private:
  queue::NatsBucket& bucket_;
  const std::string source_id_;
  runtime::FileCheckpointStore legacy_;
  std::function<bool()> may_write_;
  std::mutex mu_;
  std::map<std::string, std::uint64_t> revisions_;  // by bucket key; 0: known absent
};

}  // namespace junction::core::daemon
