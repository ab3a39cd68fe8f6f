#include "core/queue/partition_ownership.h"

#include <algorithm>

namespace junction::core::queue {
namespace {

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;
constexpr std::int64_t kNanosPerMilli = 1'000'000;

std::uint64_t fnv1a(std::uint64_t hash, std::string_view bytes) {
  for (const unsigned char c : bytes) {
    hash = (hash ^ c) * kFnvPrime;
  }
  return hash;
}

// FNV-1a alone spreads similar inputs (node-1, node-2) poorly in its high bits; the
// splitmix64 finalizer makes every input bit count in every output bit.
std::uint64_t finalize(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::vector<std::string_view> splitSpaces(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto space = text.find(' ');
    out.push_back(text.substr(0, space));
    if (space == std::string_view::npos) {
      break;
    }
    text.remove_prefix(space + 1);
  }
  return out;
}

}  // namespace

bool validNodeId(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

std::string escapeName(std::string_view name) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '_';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string encodeNodeIdentity(const NodeIdentity& node) {
  return node.incarnation + " " + node.id;
}

std::optional<NodeIdentity> decodeNodeIdentity(std::string_view value) {
  const auto tokens = splitSpaces(value);
  if (tokens.size() != 2 || tokens[0].empty() || !validNodeId(tokens[1])) {
    return std::nullopt;
  }
  return NodeIdentity{std::string(tokens[1]), std::string(tokens[0])};
}

std::string encodeHeartbeat(const NodeIdentity& node, std::vector<std::string> consumer_names) {
  std::string out = encodeNodeIdentity(node);
  for (const auto& name : consumer_names) {
    out += ' ';
    out += escapeName(name);
  }
  return out;
}

std::optional<NodeRecord> decodeHeartbeat(std::string_view value, std::int64_t heartbeat_ns) {
  const auto tokens = splitSpaces(value);
  if (tokens.size() < 2 || tokens[0].empty() || !validNodeId(tokens[1])) {
    return std::nullopt;
  }
  NodeRecord record;
  record.node = NodeIdentity{std::string(tokens[1]), std::string(tokens[0])};
  record.consumers.assign(tokens.begin() + 2, tokens.end());
  std::sort(record.consumers.begin(), record.consumers.end());
  record.heartbeat_ns = heartbeat_ns;
  return record;
}

std::uint64_t rendezvousWeight(std::string_view consumer, std::uint32_t partition,
                               std::string_view node) {
  // Separators keep ("ab", "c") and ("a", "bc") apart; the partition goes in as 4 bytes.
  const char separator = '\0';
  const char bytes[4] = {static_cast<char>(partition & 0xff),
                         static_cast<char>((partition >> 8) & 0xff),
                         static_cast<char>((partition >> 16) & 0xff),
                         static_cast<char>((partition >> 24) & 0xff)};
  std::uint64_t hash = fnv1a(kFnvOffset, consumer);
  hash = fnv1a(hash, std::string_view(&separator, 1));
  hash = fnv1a(hash, std::string_view(bytes, 4));
  hash = fnv1a(hash, std::string_view(&separator, 1));
  hash = fnv1a(hash, node);
  return finalize(hash);
}

MembershipView::MembershipView(std::vector<NodeRecord> nodes, std::int64_t server_now_ns,
                               std::chrono::milliseconds node_ttl)
    : nodes_(std::move(nodes)),
      server_now_ns_(server_now_ns),
      node_ttl_ns_(node_ttl.count() * kNanosPerMilli) {
  std::sort(nodes_.begin(), nodes_.end(),
            [](const NodeRecord& a, const NodeRecord& b) { return a.node.id < b.node.id; });
}

const NodeRecord* MembershipView::find(const NodeIdentity& node) const {
  for (const auto& record : nodes_) {
    if (record.node == node) {
      return &record;
    }
  }
  return nullptr;
}

bool MembershipView::isLive(const NodeIdentity& node) const {
  const NodeRecord* record = find(node);
  return record != nullptr && server_now_ns_ - record->heartbeat_ns < node_ttl_ns_;
}

std::optional<std::int64_t> MembershipView::lastHeartbeat(const NodeIdentity& node) const {
  const NodeRecord* record = find(node);
  return record != nullptr ? std::optional(record->heartbeat_ns) : std::nullopt;
}

bool MembershipView::hasConsumer(const NodeIdentity& node, std::string_view consumer) const {
  const NodeRecord* record = find(node);
  return record != nullptr &&
         std::binary_search(record->consumers.begin(), record->consumers.end(),
                            escapeName(consumer));
}

std::vector<std::string> MembershipView::liveWith(std::string_view consumer) const {
  std::vector<std::string> ids;
  for (const auto& record : nodes_) {  // sorted by id
    if (isLive(record.node) && hasConsumer(record.node, consumer)) {
      ids.push_back(record.node.id);
    }
  }
  return ids;
}

std::string MembershipView::assignee(std::string_view consumer, std::uint32_t partition) const {
  std::string best;
  std::uint64_t best_weight = 0;
  for (auto& id : liveWith(consumer)) {  // sorted: on a tie, the smallest id wins everywhere
    const std::uint64_t weight = rendezvousWeight(consumer, partition, id);
    if (best.empty() || weight > best_weight) {
      best = std::move(id);
      best_weight = weight;
    }
  }
  return best;
}

LeaseHolder judgeHolder(const MembershipView& view, const std::optional<NodeIdentity>& holder,
                        std::int64_t lease_created_ns, std::string_view consumer,
                        const NodeIdentity& self) {
  if (!holder) {
    return LeaseHolder::Free;
  }
  if (*holder == self || !view.isLive(*holder)) {
    return LeaseHolder::Gone;
  }
  if (view.hasConsumer(*holder, consumer)) {
    return LeaseHolder::Live;
  }
  // Alive without the consumer: gone only if that heartbeat came after it took the lease (a
  // node takes a lease only once its heartbeat lists the consumer); else this view is older.
  return view.lastHeartbeat(*holder).value_or(0) > lease_created_ns ? LeaseHolder::Gone
                                                                     : LeaseHolder::Live;
}

std::chrono::milliseconds fenceAfter(std::chrono::milliseconds heartbeat) { return 2 * heartbeat; }

std::int64_t takeoverReadAt(std::optional<std::int64_t> holder_heartbeat_ns,
                            std::int64_t server_now_ns, std::int64_t pending_messages,
                            std::chrono::milliseconds silence, std::chrono::milliseconds ack_wait) {
  if (pending_messages == 0) {
    return server_now_ns;
  }
  const std::int64_t last_touch =
      holder_heartbeat_ns.value_or(server_now_ns) + silence.count() * kNanosPerMilli;
  return last_touch + (ack_wait + kTakeoverMargin).count() * kNanosPerMilli;
}

}  // namespace junction::core::queue
