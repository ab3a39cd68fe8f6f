#pragma once

// Dead letters the nodes of one deployment on NATS share (queue.backend: nats), in the
// JetStream key-value bucket <stream>-dead-letters:
//
//   next-id   the next dead-letter id no node uses: a node reserves a block per add (compare-
//             and-set), so ids are unique across the nodes and grow with time.
//   dl.<id>   a dead letter as last written: {"origin", "data": {"destination", "record" (the
//             event as a queue record, base64), "failed_at", "attempts", "reason",
//             "replaying"}}; once replayed or purged, {"origin", "data": {"removed": true}}.
//
// Every node keeps all of them in its own dead_letters.db: it adopts the other nodes' writes,
// so the admin API of any node lists, replays and purges every node's dead letters. Two nodes
// changing one dead letter at once (a replay marked on a node that had not seen the owner's
// last failure yet) end alike, with the bucket's later write: a node applies another's write
// only if it is later (revision) than its own last write of that dead letter, and holds it
// back while a write of its own is still on its way. A replay is
// taken by the node that reads the person's partition of the destination (its order held), so
// a replay marked on one node is delivered by another, once.
//
// A row too large for one NATS message (an event above ~3/4 of max_payload, in base64) is not
// written (logged, counted): it stays on its node.
//
// At start, a node raises next-id past its own largest id, then writes the dead letters it holds
// that the bucket does not have: the first time, all of them (kept before the queue moved to
// NATS), each below the counter it found given a new id first (another node may use that one);
// later, those whose write a crash cut off (their ids are unique already).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <boost/json/object.hpp>

#include "core/daemon/shared_state.h"
#include "core/delivery/dead_letter_store.h"
#include "core/queue/nats_bucket.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"

namespace junction::core::daemon {

class SharedDeadLetters {
 public:
  // `replays_here`: whether this node replays a row (it reads the row's partition);
  // `on_adopted`: after another node's write was applied here (wakes the workers, so that a
  // replay marked elsewhere is taken). Everything given must outlive the object.
  // `marker`: a file beside the store, written once this node's dead letters were first shared
  // (until then, each of them is taken for one kept before sharing).
  SharedDeadLetters(queue::NatsBucket& bucket, delivery::DeadLetterStore& store, std::string node_id,
                    std::filesystem::path marker, sdk::Logger& logger, sdk::Metrics& metrics,
                    std::function<bool(const delivery::DeadLetter&)> replays_here,
                    std::function<void()> on_adopted);
  ~SharedDeadLetters();
  SharedDeadLetters(const SharedDeadLetters&) = delete;
  SharedDeadLetters& operator=(const SharedDeadLetters&) = delete;

  // Reads the bucket (up to `catch_up`), writes what only this node had, then follows it and
  // shares every change of the store.
  sdk::Status start(std::chrono::milliseconds catch_up = std::chrono::seconds(30));
  // Detaches from the store and stops writing (what is unsent stays only here: written at the
  // next start). Call before the bucket is closed; the bucket's watcher may still call in
  // until then, and is ignored.
  void stop();

  static std::string keyOf(std::int64_t id);
  static std::optional<std::int64_t> idOf(const std::string& key);
  static boost::json::object encode(const delivery::DeadLetter& row);
  static std::optional<delivery::DeadLetter> decode(std::int64_t id, const boost::json::object& data);

 private:
  sdk::Result<std::int64_t> reserve(std::size_t n);
  // Raises next-id to this node's floor; returns its value before (0: none yet).
  sdk::Result<std::int64_t> raiseCounter();
  void changed(const std::vector<delivery::DeadLetter>& rows, const std::vector<std::int64_t>& removed);
  void received(const std::string& key, const boost::json::object& data, std::uint64_t revision);
  void written(const std::string& key, std::uint64_t revision);
  void apply(const std::string& key, const boost::json::object& data);
  // After the catch-up: this node's rows the bucket never had, written (renumbered first when
  // their id is below `reserved_before`, the counter before this node raised it: another
  // node's, maybe).
  sdk::Status shareOwnRows(std::int64_t reserved_before, bool shared_before);

  queue::NatsBucket& bucket_;
  delivery::DeadLetterStore& store_;
  const std::string node_id_;
  const std::filesystem::path marker_;
  sdk::Logger& logger_;
  sdk::Counter& adopted_;
  sdk::Counter& errors_;
  std::function<bool(const delivery::DeadLetter&)> replays_here_;
  std::function<void()> on_adopted_;
  std::int64_t floor_ = 1;  // ids below are this node's own from before sharing

  // This node's writes of one dead letter: how many are on their way, the revision of the last
  // stored, and the latest of another node's that came meanwhile.
  struct Own {
    int unsent = 0;
    std::uint64_t revision = 0;
    std::uint64_t held_revision = 0;
    std::optional<boost::json::object> held;
  };

  std::mutex mu_;
  bool caught_up_ = false;
  bool stopping_ = false;
  // Until caught up: the bucket's records, applied afterwards.
  std::map<std::string, boost::json::object> pending_;
  std::map<std::int64_t, Own> own_;  // by id
  std::unique_ptr<SharedChannel> channel_;  // reset by stop()
};

}  // namespace junction::core::daemon
