#pragma once

// Privacy state the nodes of one deployment on NATS share (queue.backend: nats), in JetStream
// key-value buckets beside the stream:
//
//   <stream>-regulations  key: the regulation id. A suppress, unsuppress or delete made on any
//                         node takes effect on every node within about a second: each node
//                         adopts the others' regulations into its own privacy store
//                         (PrivacyStore::adopt: same id, same tombstone time), so ingest drops a
//                         suppressed person's events and every worker skips a deleted person's
//                         waiting events, whichever node they reach. The erasure at the
//                         destinations' vendors runs on the node that received the delete (its
//                         status is there); every node purges its own dead letters and profile
//                         of the person.
//   <stream>-consent      key: SHA-256 (hex) of the person's key. The consent a person's events
//                         stated, as the node that saw them remembered it, so an event without
//                         consent reaching another node is routed by it. A delete removes the
//                         person's keys.
//
// A node that starts later is given everything written before (the buckets keep the latest
// value of every key). Writes go out on a thread of their own, in order; one the servers could
// not take (no NATS server answering) is written again every second until it is, and applies
// on its own node at once; one larger than the servers' max_payload is dropped (logged,
// counted), never retried: it would hold back every write after it.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/json/object.hpp>

#include "core/privacy/privacy_store.h"
#include "core/queue/nats_bucket.h"
#include "junction/sdk/context.h"

namespace junction::core::daemon {

// One bucket's traffic: this node's writes ({"origin": node, "data": {...}}), and the other
// nodes' records handed to `on_remote`.
class SharedChannel {
 public:
  // A record of another node: its key, data, origin and revision (bucket order).
  using OnRemote = std::function<void(const std::string& key, const boost::json::object& data,
                                      const std::string& origin, std::uint64_t revision)>;
  struct Options {
    // Writes kept while the servers cannot take them; beyond it the oldest are dropped
    // (counted in `errors`).
    std::size_t max_unsent = 1'000'000;
    // Called (on the writer's thread) once a publish() is stored, with its revision.
    std::function<void(const std::string& key, std::uint64_t revision)> on_written;
  };
  // Everything given must outlive the channel.
  SharedChannel(queue::NatsBucket& bucket, std::string node_id, sdk::Logger& logger,
                sdk::Counter& errors, OnRemote on_remote, Options options);
  SharedChannel(queue::NatsBucket& bucket, std::string node_id, sdk::Logger& logger,
                sdk::Counter& errors, OnRemote on_remote)
      : SharedChannel(bucket, std::move(node_id), logger, errors, std::move(on_remote), Options{}) {}
  // Stops the writer (what is unsent is dropped: it applied here; the others miss it).
  ~SharedChannel();
  SharedChannel(const SharedChannel&) = delete;
  SharedChannel& operator=(const SharedChannel&) = delete;

  // Watches the bucket; returns once the records already in it were handed over (or after
  // `catch_up`: the rest follow as they are read). Starts the writer.
  sdk::Status start(std::chrono::milliseconds catch_up);
  // Queues a write (key -> data); an empty `data` with `erase` deletes the key.
  void publish(std::string key, boost::json::object data);
  void erase(std::string key);

 private:
  struct Write {
    std::string key;
    std::string value;  // "" with erase
    bool erase = false;
  };
  void received(const queue::NatsBucket::Entry& entry);
  void writeLoop();
  void queueWrite(Write write);

  queue::NatsBucket& bucket_;
  const std::string node_id_;
  sdk::Logger& logger_;
  sdk::Counter& errors_;
  OnRemote on_remote_;
  const Options options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Write> unsent_;
  bool stopping_ = false;
  bool failing_ = false;  // the last write failed (logged once until one succeeds)
  std::thread writer_;

  // The bucket's watcher thread can outlive the channel (the bucket owns it): it reaches the
  // channel through this, which the destructor empties, waiting for a call in progress.
  struct Receiver {
    std::mutex mu;
    SharedChannel* channel = nullptr;
  };
  std::shared_ptr<Receiver> receiver_ = std::make_shared<Receiver>();
};

class SharedPrivacy {
 public:
  // `regulations` and `consent` are the two buckets; `on_deleted` runs (on a watcher thread)
  // for each delete regulation of another node that was new here. Everything given must
  // outlive the object.
  SharedPrivacy(queue::NatsBucket& regulations, queue::NatsBucket& consent,
                privacy::PrivacyStore& store, std::string node_id, sdk::Logger& logger,
                sdk::Metrics& metrics, std::function<void(const privacy::Regulation&)> on_adopted);

  // Removes the store's consent listener (ingest is closed by then).
  ~SharedPrivacy();
  SharedPrivacy(const SharedPrivacy&) = delete;
  SharedPrivacy& operator=(const SharedPrivacy&) = delete;

  // Reads what the buckets hold, then follows them; installs the store's consent listener
  // (call before ingest starts).
  sdk::Status start(std::chrono::milliseconds catch_up = std::chrono::seconds(10));
  // Shares a regulation recorded on this node (a delete also removes the person's consent).
  void publish(const privacy::Regulation& regulation);

  // The record of a regulation in the bucket, and the regulation read back from one.
  static boost::json::object encode(const privacy::Regulation& regulation);
  static std::optional<privacy::Regulation> decode(const boost::json::object& data,
                                                   const std::string& origin);
  // The consent bucket's key of a person's key ("u:42").
  static std::string consentKey(const std::string& person);

 private:
  void adoptRegulation(const boost::json::object& data, const std::string& origin);
  void adoptConsent(const boost::json::object& data, const std::string& origin);

  privacy::PrivacyStore& store_;
  sdk::Logger& logger_;
  sdk::Counter& adopted_;
  sdk::Counter& errors_;
  std::function<void(const privacy::Regulation&)> on_adopted_;
  SharedChannel regulations_;
  SharedChannel consent_;
};

}  // namespace junction::core::daemon
