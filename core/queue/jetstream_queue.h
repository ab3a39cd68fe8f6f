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
//   bucket  <stream>-done     finished events of messages handed back part-finished (below)
//   bucket  <stream>-nodes    key = node id: each node's heartbeat, listing the consumers it
//                             has open (memory storage)
//   bucket  <stream>-owners   key = <name>-p<n>: the lease, "<incarnation> <node id>" or "" (free)
//
// A NATS message holds events of one partition, in append order, as our record encoding
// (record.h, tag 0, records back to back; split at 256 KiB), so a queued event reads back
// exactly as the embedded log gives it. append() encodes on the caller's thread and queues the
// call; calls are published in rounds (libnats' async publish): every call queued meanwhile
// together, one message per partition, at most two rounds waiting for acknowledgements (a
// group commit): per-message costs, on the servers and in the client, are what limits a stream's
// rate, and under load many calls share each message (a lone call is sent at once). `done` runs when the server
// acknowledged every message holding some of the call's events: stored on `replicas` servers.
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
// Partition ownership (partition_ownership.h has the decisions, README.md the whole protocol):
// every node of a consumer name reads only the partitions it holds the lease of, so a person's
// events are read by one node at a time.
//   - Membership: a background thread puts the node's heartbeat every `heartbeat`, with the
//     names of the consumers open in this process; a node whose newest heartbeat is older than
//     `node_ttl` in server time (the KV entry's creation stamp, no node's clock) is dead.
//     Closing deletes the key: the others rebalance at their next heartbeat.
//   - Assignment: rendezvous hashing of (consumer name, partition, node id) over the live nodes
//     that have that consumer open, the same on every node; a node joining or leaving moves
//     only its share, and a node without the consumer (a producer) is given none.
//   - Leases: taken by compare-and-set (create when absent, update at the revision read). A free
//     lease (never held, or released) is taken at once: a lone node reads every partition from
//     its first consumer() call. A lease held by a live node is waited for: that node sees the
//     partition is not its own any more, stops reading it, waits until every event it handed out
//     of it is settled (acked, dead-lettered or nak'd: order first, however long it takes), hands
//     the nak'd ones back as close does, and frees the lease.
//   - Takeover from a dead holder: its unacknowledged messages come back only after the
//     consumer's ack wait, and JetStream serves redeliveries before new messages; so the new
//     holder reads from takeoverReadAt() on: at once when the consumer has nothing pending,
//     else `node_ttl` + `ack_wait` + 250 ms after the dead node's last heartbeat (node_ttl, not
//     just the fence: a progress ack the dead node sent last may reach a loaded server late).
//     With the defaults, a partition is read again at most ~7.3 s after its node was killed
//     (the ownership thread wakes at that time, not at the next heartbeat), later when the
//     cluster itself is failing over meanwhile.
//   - Fencing: a node whose last successful heartbeat is older than 2 heartbeats stops reading
//     and stops extending its messages' ack wait (inProgress), well before the others may call it
//     dead; after such a gap it checks its leases again before reading.
//   - Pulling: one pull request (no_wait) per partition at a time, read until the server ends
//     it, so that no request stays with the server to deliver a partition's later messages to a
//     node that has stopped reading it. After a pull got no answer, and after a reconnect, the
//     partition waits an ack wait before it is read or handed over: what the server sent for a
//     pull lost on the way comes back only then.
//   - Order check: after a takeover, a reconnect, a pull that got no answer, or a gap in the
//     consumer's delivery sequence, a partition's earlier messages may be pending elsewhere
//     (with a dead holder, or lost on the way), and a consumer leader elected moments ago (a
//     server died) serves new messages before it first looks for expired ones (0.5-1.5 s
//     after it took over). So the first new message read then is kept only if the consumer has
//     nothing pending beyond what this node holds (its NumAckPending); else it and those after
//     it are left unacknowledged (sent again after the ack wait, sorted behind the earlier
//     ones), the partition waits an ack wait, and orderWaits() counts it.
//
// retain(): the stream keeps what some consumer has not acknowledged yet: it purges the stream
// below the lowest acknowledgement floor of all its consumers (a consumer with nothing pending
// and nothing to read counts as finished with everything there). The purge names no subject:
// nats-server 2.9 makes every consumer whose filter matches a purge's subject forget the
// messages it handed out and has not had acknowledged (they would never come back after a
// crash or a nak), and an unfiltered purge matches none of ours. With no consumer at all it
// keeps everything (a destination added later may start at the earliest event), as the
// embedded log does.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/queue/event_queue.h"
#include "core/queue/partition_ownership.h"

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
  // A fetched message not settled (nor kept in progress) by then is redelivered, to whichever
  // node holds its partition then. It also bounds a takeover after a crash (see above), hence
  // 3 s: with heartbeat 1 s and node_ttl 4 s, a dead node's partitions are read again within
  // ~7.3 s. Fixed when a durable consumer is created; later changes do not alter it.
  std::chrono::milliseconds ack_wait{3000};
  std::int64_t max_pending_publishes = 65536;
  std::chrono::milliseconds connect_timeout{5000};
  std::string client_name = "junctiond";
  DeadLetterSink dead_letters;  // required for term()
  // Told (on a libnats thread) when the connection is lost (false, "") and when it is back
  // (true, the server's URL as given in `urls`). May stay empty.
  std::function<void(bool connected, const std::string& server)> on_connection;
  // Told (on the queue's heartbeat thread) when this node starts reading a partition of the
  // consumer `consumer`: its first lease, a takeover, a rebalance. Must return quickly. May stay
  // empty.
  std::function<void(const std::string& consumer)> on_partition_read;
  // This node's name among the nodes sharing the stream; "" = "<hostname>-<pid>-<random>". A
  // stable name keeps a restarted node's partitions where they were.
  std::string node_id;
  std::chrono::milliseconds heartbeat{1000};  // how often the node says it is alive
  std::chrono::milliseconds node_ttl{4000};   // silent this long: dead; at least 3 heartbeats
};

// Runs `step` again every 250 ms while it fails Unavailable, until `patience` has passed; its
// last answer. A NATS cluster that is starting, or electing a stream's leader, does not answer
// for a while (no responders, timeouts): start-up steps are asked again, within reason.
sdk::Status patiently(const std::function<sdk::Status()>& step,
                      std::chrono::milliseconds patience = std::chrono::seconds(20));

class JetStreamQueue final : public EventQueue {
 public:
  // Connects (trying every url), creates the stream and buckets if missing, and sends the
  // node's first heartbeat. Unavailable when no server answers; InvalidArgument when the stream
  // exists with other subjects, or for heartbeat/node_ttl out of bounds.
  static sdk::Result<std::unique_ptr<JetStreamQueue>> open(JetStreamOptions options);
  // Stops heartbeating and deletes the node's heartbeat (the others take its partitions at
  // once), waits up to publish_timeout for appends in flight (their `done` runs), then
  // disconnects. Consumers must be destroyed before their queue (they release their leases).
  ~JetStreamQueue() override;

  std::string_view backend() const noexcept override { return "nats"; }
  sdk::Status append(std::vector<sdk::Event> events, AppendCallback done) override;
  sdk::Result<std::unique_ptr<Consumer>> consumer(const std::string& name, StartAt start) override;
  sdk::Status removeConsumer(const std::string& name) override;
  sdk::Result<std::size_t> retain() override;
  QueueStats stats() const override;

  // Whether the client is connected now (it reconnects by itself).
  bool connected() const;
  // The node id (options.node_id, or the one derived at open()).
  const std::string& nodeId() const noexcept { return self_.id; }
  // The partitions this node reads now for consumer `consumer_name` of this process (leases
  // held and not being handed over or waited for after a takeover), ascending; empty when this
  // process has no such consumer. Thread-safe, no I/O.
  std::vector<std::uint32_t> ownedPartitions(const std::string& consumer_name) const;
  // How many times consumer `consumer_name` left a partition's new messages for later because
  // earlier ones were still pending elsewhere (a dead holder's, or lost on the way).
  std::uint64_t orderWaits(const std::string& consumer_name) const;
  // The JetStream context of the queue's connection, for state shared beside the stream
  // (nats_bucket.h).
  __jsCtx* jetStream() const noexcept { return js_; }
  const JetStreamOptions& options() const noexcept { return options_; }
  // "<stream>.p.<n>"
  std::string subjectOf(std::uint32_t partition) const;
  // The durable consumer name of `name` for `partition`: bytes other than [A-Za-z0-9_-] are
  // written as _XX (hex), so different names never share a consumer.
  static std::string durableName(const std::string& name, std::uint32_t partition);

 private:
  class JetStreamConsumer;
  // An append() call until it is answered.
  struct PendingCall {
    AppendCallback done;
    // Its events' records by partition, back to back, until the publisher takes them.
    struct Records {
      std::string bytes;
      std::vector<std::uint32_t> sizes;
    };
    std::map<std::uint32_t, Records> records;
    // Messages holding some of its events, not acknowledged yet (pending_mu_ once published).
    std::size_t remaining = 0;
    bool failed = false;
    std::string error;
  };

  JetStreamQueue(JetStreamOptions options, NodeIdentity self);
  sdk::Status connect();
  sdk::Status ensureStream();
  sdk::Status ensureStreamOnce(bool& retryable);
  // The `<stream>-done` key-value bucket: for a message handed back part-finished, which of its
  // events were finished (key "<durable>.<stream sequence>", a bitmap).
  sdk::Status openDoneBucket();
  sdk::Status putDone(const std::string& key, const std::vector<bool>& finished);
  std::optional<std::vector<bool>> getDone(const std::string& key);
  void deleteDone(const std::string& key);
  // Membership: the `<stream>-nodes` and `<stream>-owners` buckets, the heartbeat thread (puts
  // the heartbeat, reads every node's, publishes the view) and the ownership thread (on each new
  // view, every consumer takes, hands over and checks its leases).
  sdk::Status openOwnershipBuckets();
  sdk::Status heartbeat();
  sdk::Result<std::vector<NodeRecord>> readNodes();
  void heartbeatLoop();
  void ownershipLoop();
  void stopMembership();
  // Whether the last successful heartbeat was sent less than the fence (2 heartbeats) ago.
  bool heartbeatRecent() const;
  // Whether this node may read and extend ack waits now: a recent heartbeat, and the leases
  // checked since the last gap in heartbeats.
  bool fresh() const;
  MembershipView currentView() const;
  void registerConsumer(JetStreamConsumer* consumer);
  // Returns once no ownership pass uses `consumer` any more.
  void unregisterConsumer(JetStreamConsumer* consumer);
  // options.on_connection of each live queue, by queue: libnats' connection callbacks (which
  // may run after the queue is gone) look their closure up here.
  static std::mutex& connectionListenersMutex();
  static std::unordered_map<const void*, std::function<void(bool, const std::string&)>>&
  connectionListeners();
  static void onDisconnected(__natsConnection* connection, void* closure);
  static void onReconnected(__natsConnection* connection, void* closure);
  static void onPublishAck(__jsCtx* js, __natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                           void* closure);
  void published(__natsMsg* msg, const jsPubAckErr* error);
  // One of the messages holding some of `call`'s events is settled: stored, or not (`failed`,
  // why in `problem`). Answers the call after its last one.
  void settleMessage(const std::shared_ptr<PendingCall>& call, bool failed,
                     const std::string& problem);
  // Publishes rounds while calls are queued and fewer than `max_rounds` are in flight; `lock`
  // holds publish_mu_.
  void publishRounds(std::unique_lock<std::mutex>& lock, int max_rounds);
  // The consumers of this process now (a copy).
  std::vector<JetStreamConsumer*> consumers() const;
  // A round of publishing: its messages not answered yet, plus one while it is being sent.
  struct Round {
    std::size_t remaining = 1;  // under publish_mu_
  };
  // One round: the calls queued meanwhile, published together.
  void publishCalls(const std::vector<std::shared_ptr<PendingCall>>& calls,
                    const std::shared_ptr<Round>& round);
  // A message of `round` was answered (stored or failed): after its last, the next round.
  void roundMessageSettled(Round& round);
  struct PendingMessage {
    std::vector<std::shared_ptr<PendingCall>> calls;  // those it holds events of
    std::shared_ptr<Round> round;
  };

  const JetStreamOptions options_;
  __natsConnection* connection_ = nullptr;
  __jsCtx* js_ = nullptr;
  __jsCtx* membership_js_ = nullptr;  // the same connection, requests given up after a heartbeat
  __jsCtx* order_check_js_ = nullptr;  // the same, given up after kOrderCheckTimeout
  __kvStore* done_ = nullptr;
  __kvStore* nodes_ = nullptr;
  __kvStore* owners_ = nullptr;

  const NodeIdentity self_;
  const std::string node_key_;  // self_.id, escaped as a KV key
  // Steady-clock ns until which this node may read: last successful heartbeat sent + fence.
  std::atomic<std::int64_t> fresh_until_ns_{0};
  // Gaps in heartbeats seen, and checked: after a gap another node may have taken a lease, so
  // the node is not fresh() until an ownership pass checked every lease.
  std::atomic<std::uint64_t> heartbeat_gaps_{0};
  std::atomic<std::uint64_t> gaps_checked_{0};
  std::mutex heartbeat_mu_;
  mutable std::mutex view_mu_;
  std::condition_variable view_cv_;
  MembershipView view_;                // under view_mu_
  std::chrono::steady_clock::time_point view_at_{};  // when view_.serverNow() was; view_mu_
  std::uint64_t view_generation_ = 0;  // under view_mu_
  bool stopping_ = false;              // under view_mu_
  std::thread heartbeat_thread_;
  std::thread ownership_thread_;
  std::mutex rebalance_mu_;  // held by an ownership pass; taken to unregister a consumer
  mutable std::mutex consumers_mu_;
  std::vector<JetStreamConsumer*> consumers_;  // under consumers_mu_

  // Steady-clock ns of the last reconnect (0: none); set by the connection listener.
  std::atomic<std::int64_t> reconnected_at_ns_{0};

  std::mutex publish_mu_;
  std::condition_variable publish_cv_;                // publishing_ went false
  std::vector<std::shared_ptr<PendingCall>> queued_;  // appended, not published yet
  bool publishing_ = false;  // a thread is publishing rounds; under publish_mu_
  int rounds_in_flight_ = 0;  // published, some message not answered; under publish_mu_
  bool publisher_stopping_ = false;                   // under publish_mu_

  std::mutex pending_mu_;
  // Each message published and not answered yet.
  std::unordered_map<__natsMsg*, PendingMessage> pending_;
  std::atomic<std::uint64_t> appended_{0};
};

// A libnats status as text ("Timeout", "Connection Closed", ...), with the JetStream error code
// when there is one.
std::string natsErrorText(int status, int js_error = 0);

}  // namespace junction::core::queue
