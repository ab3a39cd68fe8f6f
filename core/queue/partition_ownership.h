#pragma once

// Which junctiond node reads which partition of a JetStream consumer: the decisions, without
// NATS. jetstream_queue.cc does the I/O (heartbeats into `<stream>-nodes`, leases in
// `<stream>-owners`) and asks this file what to do; README.md ("Partition ownership") has the
// whole protocol.
//
//   nodes   every node heartbeats (its id, its incarnation, the consumers it has open); the
//           server stamps each heartbeat. A node whose newest heartbeat is older than node_ttl,
//           in server time, is dead.
//   assign  the partition p of consumer c goes to the live node, among those with c open, with
//           the highest rendezvous weight (c, p, node): every node computes the same answer
//           from the same heartbeats, and a node joining or leaving moves only the partitions
//           it wins or held. A node without c (a producer, a node whose configuration does not
//           have that destination yet) is given none of c's partitions.
//   lease   a node reads a partition only while the lease key names it (compare-and-set).
//   fence   a node stops reading (and stops extending its messages' ack wait) when its last
//           successful heartbeat was sent more than fenceAfter() ago, well before the others
//           may declare it dead: a node cut off from NATS stops before anyone takes over.
//
// Everything here is pure and thread-compatible.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace junction::core::queue {

// A node as a lease or a heartbeat names it. The incarnation is random per JetStreamQueue
// object: a node restarted under the same id is another incarnation, so the leases of the one
// that crashed are seen as a dead holder's.
struct NodeIdentity {
  std::string id;  // validNodeId()
  std::string incarnation;

  bool operator==(const NodeIdentity&) const = default;
};

// [A-Za-z0-9._-], 1 to 128 bytes: readable in a lease, usable in a KV key, never a separator.
bool validNodeId(std::string_view id);
// Bytes other than [A-Za-z0-9-] as _XX (hex): a valid consumer name and KV key, never a
// separator, and different names never collide.
std::string escapeName(std::string_view name);

// "<incarnation> <id>": the value of a held lease. A released lease is the empty value.
std::string encodeNodeIdentity(const NodeIdentity& node);
// nullopt for the empty value (a free lease) or anything not written by encodeNodeIdentity.
std::optional<NodeIdentity> decodeNodeIdentity(std::string_view value);

// A node's newest heartbeat as the `<stream>-nodes` bucket holds it.
struct NodeRecord {
  NodeIdentity node;
  std::vector<std::string> consumers;  // open on the node, escapeName()d, sorted
  std::int64_t heartbeat_ns = 0;       // server time (UTC ns) at which the server stored it
};

// "<incarnation> <id> <escaped consumer>...": the value of a heartbeat.
std::string encodeHeartbeat(const NodeIdentity& node, std::vector<std::string> consumer_names);
// The record of a heartbeat's value, stamped `heartbeat_ns`; nullopt when it is not one.
std::optional<NodeRecord> decodeHeartbeat(std::string_view value, std::int64_t heartbeat_ns);

// The weight of `node` for partition `partition` of consumer `consumer` (FNV-1a 64 of the
// three, then a 64-bit finalizer): stable across releases and machines, as nodes must agree.
std::uint64_t rendezvousWeight(std::string_view consumer, std::uint32_t partition,
                               std::string_view node);

// The live nodes as one heartbeat showed them.
class MembershipView {
 public:
  MembershipView() = default;
  // `nodes`: every record in the bucket (dead ones included); `server_now_ns`: the server's
  // time when they were read.
  MembershipView(std::vector<NodeRecord> nodes, std::int64_t server_now_ns,
                 std::chrono::milliseconds node_ttl);

  std::int64_t serverNow() const noexcept { return server_now_ns_; }
  // Whether that incarnation of the node heartbeats within node_ttl.
  bool isLive(const NodeIdentity& node) const;
  // The server time of that incarnation's newest heartbeat, if the bucket still holds it.
  std::optional<std::int64_t> lastHeartbeat(const NodeIdentity& node) const;
  // Whether that incarnation's newest heartbeat lists `consumer` (a name, not escaped).
  bool hasConsumer(const NodeIdentity& node, std::string_view consumer) const;
  // Ids of the live nodes that have `consumer` open, sorted.
  std::vector<std::string> liveWith(std::string_view consumer) const;
  // The live node with `consumer` open that should read `partition` of it; "" when none.
  std::string assignee(std::string_view consumer, std::uint32_t partition) const;

 private:
  const NodeRecord* find(const NodeIdentity& node) const;

  std::vector<NodeRecord> nodes_;  // sorted by id
  std::int64_t server_now_ns_ = 0;
  std::int64_t node_ttl_ns_ = 0;
};

// How a node about to take a lease sees its holder.
enum class LeaseHolder : std::uint8_t {
  Free,  // released, or never held: take it and read at once
  Live,  // a live node reading it (or this view is older than the lease): leave it
  Gone,  // dead, or alive without the consumer open since it took the lease (it closed the
         // consumer without freeing it), or this very incarnation with no consumer knowing the
         // lease: take it, read from takeoverReadAt()
};
// `holder`: the lease's value decoded; `lease_created_ns`: the server's stamp of the lease.
LeaseHolder judgeHolder(const MembershipView& view, const std::optional<NodeIdentity>& holder,
                        std::int64_t lease_created_ns, std::string_view consumer,
                        const NodeIdentity& self);

// How long after sending its last successful heartbeat a node may still read and extend ack
// waits: two heartbeats, so one slow heartbeat does not stop reading. open() requires
// node_ttl >= 3 heartbeats, so a node always stops before the others may call it dead.
std::chrono::milliseconds fenceAfter(std::chrono::milliseconds heartbeat);

// Added to a takeover's wait for what the estimate cannot see: the consumer leader's expiry
// timer, and clocks of different servers of a cluster.
inline constexpr std::chrono::milliseconds kTakeoverMargin{250};

// The server time from which a node that has just taken a partition's lease from a dead holder
// may read it. JetStream redelivers a message nobody acknowledged `ack_wait` after its last
// delivery or progress ack *as the server received it*, and serves redeliveries before new
// messages, sorted among those expiring together. Reading before the dead holder's last message
// expired would hand out that partition's later messages first.
// `silence`: how long after its last heartbeat (in server time, `holder_heartbeat_ns`; unknown
// when its record is gone: then from `server_now_ns`, which is later) the holder's last progress
// ack may still have reached the server. The holder stops sending them a fence after its last
// heartbeat, but what it sent may be processed later on a loaded server; the caller passes
// node_ttl (at least the fence): the holder was judged dead only that long after its last
// heartbeat, so whatever it sent before dying has long arrived. With nothing pending
// (`pending_messages` == 0, the consumer's NumAckPending) there is nothing to wait for.
std::int64_t takeoverReadAt(std::optional<std::int64_t> holder_heartbeat_ns,
                            std::int64_t server_now_ns, std::int64_t pending_messages,
                            std::chrono::milliseconds silence, std::chrono::milliseconds ack_wait);

}  // namespace junction::core::queue
