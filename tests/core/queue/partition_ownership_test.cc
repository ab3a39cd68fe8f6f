// Partition ownership across junctiond nodes on NATS JetStream (core/queue/partition_ownership.h,
// jetstream_queue.h): the pure decisions (rendezvous assignment, who may take a lease, when a
// takeover may read), then several JetStreamQueue "nodes" on one real `nats-server -js` and on
// a real three-node cluster, with a recording destination that checks each person's order and
// that nothing is lost. The crashing node runs in a child process (this binary, re-executed
// with --partition-ownership-child) that the test kills with SIGKILL.
//
// Timings are short so that the file runs in well under a minute: heartbeat 200 ms, node_ttl
// 1 s (a node stops reading 400 ms after its last heartbeat), ack_wait 2 s.

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/queue/event_queue.h"
#include "core/queue/jetstream_queue.h"
#include "core/queue/partition_ownership.h"
#include "tests/support/eventually.h"
#include "tests/support/nats/nats_server.h"
#include "tests/support/process.h"

namespace junction::core::queue {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::eventually;

constexpr std::uint32_t kPartitions = 8;
constexpr const char* kConsumer = "dest";
constexpr const char* kChildFlag = "--partition-ownership-child";

// --- the decisions, without NATS -------------------------------------------------------------

NodeRecord record(const std::string& id, std::int64_t heartbeat_ns,
                  std::vector<std::string> consumers = {kConsumer}) {
  return *decodeHeartbeat(encodeHeartbeat({id, "inc-" + id}, std::move(consumers)), heartbeat_ns);
}

// Every node live (heartbeat now) with `consumer` open.
MembershipView liveView(const std::vector<std::string>& ids,
                        const std::string& consumer = kConsumer) {
  std::vector<NodeRecord> records;
  for (const auto& id : ids) records.push_back(record(id, 1'000'000'000, {consumer}));
  return MembershipView(std::move(records), 1'000'000'000, 1s);
}

TEST(PartitionAssignment, EveryNodeGetsAShareAndTheSameInputsGiveTheSameAnswer) {
  const auto view = liveView({"node-a", "node-b", "node-c"});
  std::map<std::string, int> share;
  for (std::uint32_t p = 0; p < 96; ++p) {
    const std::string owner = view.assignee(kConsumer, p);
    EXPECT_EQ(owner, liveView({"node-c", "node-a", "node-b"}).assignee(kConsumer, p));
    ++share[owner];
  }
  ASSERT_EQ(share.size(), 3u);
  for (const auto& [node, count] : share) {
    EXPECT_GE(count, 16) << node;  // 32 each on average
    EXPECT_LE(count, 48) << node;
  }
}

TEST(PartitionAssignment, ANodeJoiningOrLeavingMovesOnlyItsShare) {
  const auto three = liveView({"node-a", "node-b", "node-c"});
  const auto four = liveView({"node-a", "node-b", "node-c", "node-d"});
  const auto two = liveView({"node-a", "node-c"});
  int moved_to_d = 0;
  for (std::uint32_t p = 0; p < 64; ++p) {
    const std::string before = three.assignee(kConsumer, p);
    const std::string joined = four.assignee(kConsumer, p);
    EXPECT_TRUE(joined == before || joined == "node-d") << "partition " << p;
    moved_to_d += joined == "node-d";
    if (before != "node-b") {
      EXPECT_EQ(two.assignee(kConsumer, p), before) << "partition " << p << " moved needlessly";
    }
  }
  EXPECT_GT(moved_to_d, 0);
}

TEST(PartitionAssignment, DeadNodesAndNodesWithoutTheConsumerGetNothing) {
  const std::int64_t now = 10'000'000'000;
  MembershipView view({record("node-a", now - 200'000'000), record("node-dead", now - 1'500'000'000),
                       record("producer", now, {}), record("node-other", now, {"warehouse"})},
                      now, 1s);
  for (std::uint32_t p = 0; p < 16; ++p) {
    EXPECT_EQ(view.assignee(kConsumer, p), "node-a");
    EXPECT_EQ(view.assignee("warehouse", p), "node-other");
  }
  EXPECT_EQ(view.assignee("nobody-has-it", 0), "");
  EXPECT_FALSE(view.isLive({"node-dead", "inc-node-dead"}));
  EXPECT_FALSE(view.isLive({"node-a", "another-incarnation"}));
  EXPECT_EQ(view.lastHeartbeat({"node-dead", "inc-node-dead"}), now - 1'500'000'000);
}

TEST(PartitionAssignment, HeartbeatsCarryAnyConsumerNameAndRejectGarbage) {
  const auto decoded =
      decodeHeartbeat(encodeHeartbeat({"host-1.example", "abc"}, {"a b", "x\ny", "dest"}), 7);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->node.id, "host-1.example");
  EXPECT_EQ(decoded->node.incarnation, "abc");
  EXPECT_EQ(decoded->heartbeat_ns, 7);
  MembershipView view({*decoded}, 7, 1s);
  EXPECT_TRUE(view.hasConsumer(decoded->node, "a b"));
  EXPECT_TRUE(view.hasConsumer(decoded->node, "x\ny"));
  EXPECT_FALSE(view.hasConsumer(decoded->node, "a"));
  EXPECT_FALSE(decodeHeartbeat("", 1).has_value());
  EXPECT_FALSE(decodeNodeIdentity("").has_value());  // a released lease
  EXPECT_FALSE(validNodeId("has space"));
  EXPECT_FALSE(validNodeId(""));
}

TEST(LeaseTakeover, WhoMayTakeALease) {
  const std::int64_t now = 10'000'000'000;
  const NodeIdentity self{"node-a", "inc-node-a"};
  const NodeIdentity live{"node-b", "inc-node-b"};
  const NodeIdentity dead{"node-c", "inc-node-c"};
  const NodeIdentity closed{"node-d", "inc-node-d"};
  MembershipView view({record("node-a", now), record("node-b", now - 100'000'000),
                       record("node-c", now - 2'000'000'000),
                       record("node-d", now - 100'000'000, {})},
                      now, 1s);
  EXPECT_EQ(judgeHolder(view, std::nullopt, 0, kConsumer, self), LeaseHolder::Free);
  EXPECT_EQ(judgeHolder(view, live, now - 500'000'000, kConsumer, self), LeaseHolder::Live);
  EXPECT_EQ(judgeHolder(view, dead, now - 5'000'000'000, kConsumer, self), LeaseHolder::Gone);
  EXPECT_EQ(judgeHolder(view, self, now - 5'000'000'000, kConsumer, self), LeaseHolder::Gone);
  // Alive without the consumer: gone if it heartbeated after taking the lease...
  EXPECT_EQ(judgeHolder(view, closed, now - 500'000'000, kConsumer, self), LeaseHolder::Gone);
  // ...but a lease newer than its heartbeat means this view is older: leave it.
  EXPECT_EQ(judgeHolder(view, closed, now - 50'000'000, kConsumer, self), LeaseHolder::Live);
}

TEST(LeaseTakeover, ReadsWhenTheDeadHoldersMessagesHaveComeBack) {
  const std::int64_t now = 100'000'000'000;
  const std::int64_t heartbeat = now - 1'200'000'000;
  EXPECT_EQ(takeoverReadAt(heartbeat, now, 0, 400ms, 2s), now) << "nothing pending";
  EXPECT_EQ(takeoverReadAt(heartbeat, now, 3, 400ms, 2s),
            heartbeat + (400ms + 2s + kTakeoverMargin) / 1ns);
  EXPECT_EQ(takeoverReadAt(std::nullopt, now, 3, 400ms, 2s),
            now + (400ms + 2s + kTakeoverMargin) / 1ns);
  // The daemon's defaults (heartbeat 1 s, node_ttl 4 s, ack_wait 3 s): read again at most
  // node_ttl + ack_wait + margin after the last heartbeat.
  EXPECT_LE(takeoverReadAt(0, 0, 1, std::max(fenceAfter(1s), std::chrono::milliseconds(4s)), 3s),
            (7s + 300ms) / 1ns);
}

// --- real servers -----------------------------------------------------------------------------

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// Where the nodes are: server URLs and the replicas to use there.
struct Servers {
  std::vector<std::string> urls;
  int replicas = 1;
};

std::optional<Servers> singleServer() {
  auto* server = junction::testing::sharedServer();
  if (server == nullptr) return std::nullopt;
  return Servers{{server->url()}, 1};
}

std::optional<Servers> threeNodeCluster() {
  auto* cluster = junction::testing::sharedCluster();
  if (cluster == nullptr) return std::nullopt;
  return Servers{split(cluster->urls(), ','), 3};
}

JetStreamOptions nodeOptions(const Servers& servers, const std::string& stream,
                             const std::string& node_id) {
  JetStreamOptions options;
  options.urls = servers.urls;
  options.replicas = servers.replicas;
  options.stream = stream;
  options.partitions = kPartitions;
  options.node_id = node_id;
  options.heartbeat = 200ms;
  options.node_ttl = 1s;
  options.ack_wait = 2s;
  return options;
}

std::string uniqueStream() {
  static std::atomic<int> counter{0};
  return "own" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

// Events of `people` people, each person's events numbered in order in the message id.
std::vector<sdk::Event> makeEvents(int first, int count, int people) {
  std::vector<sdk::Event> events;
  for (int i = first; i < first + count; ++i) {
    sdk::EventHeader h;
    h.type = sdk::EventType::Track;
    h.message_id = "m-" + std::to_string(i);
    h.user_id = "user-" + std::to_string(i % people);
    h.name = "Order Completed";
    h.source_id = "web";
    h.timestamp_ms = 1700000000000 + i;
    h.received_at_ms = 1700000000000 + i;
    events.emplace_back(std::move(h), R"({"seq":)" + std::to_string(i) + "}");
  }
  return events;
}

int seqOf(const QueueMessage& message) { return std::stoi(message.event.messageId().substr(2)); }

// The partitions of `consumer` that `node` should own when exactly `nodes` are live.
std::vector<std::uint32_t> shareOf(const std::string& node, const std::vector<std::string>& nodes) {
  const auto view = liveView(nodes);
  std::vector<std::uint32_t> share;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    if (view.assignee(kConsumer, p) == node) share.push_back(p);
  }
  return share;
}

// The destination every node delivers to: records what arrived, in arrival order, and checks
// each person's order as it goes (at least once: a person's latest event may come again, an
// earlier one never after a later one).
class Destination {
 public:
  void deliver(const std::string& node, const QueueMessage& message) {
    std::lock_guard lock(mu_);
    const int seq = seqOf(message);
    const std::string person(personOf(message.event));
    auto [last, first] = last_.emplace(person, seq);
    if (!first) {
      if (seq < last->second) {
        problems_.push_back(person + ": " + std::to_string(seq) + " after " +
                            std::to_string(last->second) + " (from " + node + ")");
      }
      last->second = std::max(last->second, seq);
    }
    if (!seen_.insert(seq).second) ++duplicates_;
    if (message.deliveries > 1) ++redelivered_;
    partitions_[node].insert(message.partition);
    if (message.partition != partitionOf(person, kPartitions)) {
      problems_.push_back("event " + std::to_string(seq) + " read from the wrong partition");
    }
  }
  std::size_t distinct() const {
    std::lock_guard lock(mu_);
    return seen_.size();
  }
  std::vector<std::string> problems() const {
    std::lock_guard lock(mu_);
    return problems_;
  }
  std::size_t duplicates() const {
    std::lock_guard lock(mu_);
    return duplicates_;
  }
  std::size_t redelivered() const {
    std::lock_guard lock(mu_);
    return redelivered_;
  }
  std::set<std::uint32_t> partitionsFrom(const std::string& node) const {
    std::lock_guard lock(mu_);
    auto it = partitions_.find(node);
    return it == partitions_.end() ? std::set<std::uint32_t>{} : it->second;
  }
  // Which of 0..count-1 never arrived, as text ("" when none).
  std::string missing(int count) const {
    std::lock_guard lock(mu_);
    std::string out;
    for (int i = 0; i < count; ++i) {
      if (!seen_.contains(i)) out += std::to_string(i) + " ";
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int> last_;
  std::set<int> seen_;
  std::vector<std::string> problems_;
  std::size_t duplicates_ = 0;
  std::size_t redelivered_ = 0;
  std::map<std::string, std::set<std::uint32_t>> partitions_;
};

// A junctiond node as far as the queue goes: its JetStreamQueue, consumer "dest", and a thread
// that fetches, delivers to the destination and acknowledges.
class Node {
 public:
  static std::unique_ptr<Node> open(const JetStreamOptions& options, Destination& destination) {
    auto queue = JetStreamQueue::open(options);
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    if (!queue.ok()) return nullptr;
    auto node = std::unique_ptr<Node>(new Node(options.node_id, destination));
    node->queue_ = std::move(queue).value();
    auto consumer = node->queue_->consumer(kConsumer, StartAt::Earliest);
    EXPECT_TRUE(consumer.ok()) << consumer.error().message;
    if (!consumer.ok()) return nullptr;
    node->consumer_ = std::move(consumer).value();
    return node;
  }

  // Leaves gracefully: stops reading, then closes the consumer (hands back, frees the leases)
  // and the queue (deletes the heartbeat).
  ~Node() {
    stop();
    consumer_.reset();
    queue_.reset();
  }

  void start() {
    thread_ = std::thread([this] {
      while (!stopping_.load()) {
        auto batch = consumer_->fetch(32, 1 << 20, 50ms);
        if (!batch.ok()) {
          std::this_thread::sleep_for(20ms);
          continue;
        }
        for (const auto& message : *batch) {
          destination_.deliver(name_, message);
          std::this_thread::sleep_for(200us);  // a destination takes a little while
          EXPECT_TRUE(consumer_->ack(message).ok());
        }
      }
    });
  }

  void stop() {
    stopping_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  std::vector<std::uint32_t> owned() const { return queue_->ownedPartitions(kConsumer); }
  const std::string& name() const { return name_; }

 private:
  Node(std::string name, Destination& destination)
      : name_(std::move(name)), destination_(destination) {}

  std::string name_;
  Destination& destination_;
  std::unique_ptr<JetStreamQueue> queue_;
  std::unique_ptr<Consumer> consumer_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Appends from a queue of its own that opens no consumer: it heartbeats, and is given no
// partition.
class Producer {
 public:
  explicit Producer(const JetStreamOptions& options) {
    auto queue = JetStreamQueue::open(options);
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    if (queue.ok()) queue_ = std::move(queue).value();
  }
  bool ok() const { return queue_ != nullptr; }

  bool append(std::vector<sdk::Event> events) {
    std::promise<sdk::Status> done;
    auto result = done.get_future();
    auto status = queue_->append(std::move(events),
                                 [&done](sdk::Status s) { done.set_value(std::move(s)); });
    if (!status.ok() || result.wait_for(10s) != std::future_status::ready) return false;
    return result.get().ok();
  }

 private:
  std::unique_ptr<JetStreamQueue> queue_;
};

void expectDeliveredInOrder(const Destination& destination, int count) {
  EXPECT_TRUE(eventually([&] { return destination.distinct() == static_cast<std::size_t>(count); },
                         20s))
      << "never delivered: " << destination.missing(count);
  for (const auto& problem : destination.problems()) {
    ADD_FAILURE() << problem;
  }
}

class PartitionOwnership : public ::testing::Test {
 protected:
  void SetUp() override {
    auto servers = singleServer();
    ASSERT_TRUE(servers.has_value());
    servers_ = *servers;
  }
  Servers servers_;
  std::string stream_ = uniqueStream();
};

TEST_F(PartitionOwnership, TwoNodesSplitThePartitionsAndEachReadsOnlyItsOwn) {
  Destination destination;
  Producer producer(nodeOptions(servers_, stream_, "producer"));
  ASSERT_TRUE(producer.ok());
  auto a = Node::open(nodeOptions(servers_, stream_, "node-a"), destination);
  auto b = Node::open(nodeOptions(servers_, stream_, "node-b"), destination);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::vector<std::string> nodes{"node-a", "node-b"};
  ASSERT_TRUE(eventually([&] { return a->owned() == shareOf("node-a", nodes) &&
                                      b->owned() == shareOf("node-b", nodes); },
                         10s))
      << "never settled";
  ASSERT_FALSE(a->owned().empty());
  ASSERT_FALSE(b->owned().empty());

  ASSERT_TRUE(producer.append(makeEvents(0, 400, 40)));
  a->start();
  b->start();
  expectDeliveredInOrder(destination, 400);
  a->stop();
  b->stop();
  EXPECT_EQ(destination.duplicates(), 0u);
  const auto from_a = destination.partitionsFrom("node-a");
  const auto from_b = destination.partitionsFrom("node-b");
  const auto share_a = shareOf("node-a", nodes);
  const auto share_b = shareOf("node-b", nodes);
  EXPECT_EQ(std::vector<std::uint32_t>(from_a.begin(), from_a.end()), share_a);
  EXPECT_EQ(std::vector<std::uint32_t>(from_b.begin(), from_b.end()), share_b);
}

// on_partition_read (the daemon looks for dead letters to replay then) is told of each partition
// a node comes to read: at its first leases, and when another node leaves.
TEST_F(PartitionOwnership, ANodeIsToldOfEachPartitionItStartsReading) {
  Destination destination;
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> told;  // node -> consumers, once per partition
  auto optionsOf = [&](const std::string& node) {
    auto options = nodeOptions(servers_, stream_, node);
    options.on_partition_read = [&, node](const std::string& consumer) {
      std::lock_guard lock(mu);
      told[node].push_back(consumer);
    };
    return options;
  };
  auto toldTo = [&](const std::string& node) {
    std::lock_guard lock(mu);
    return told[node];
  };
  const std::vector<std::string> both{"node-a", "node-b"};
  const std::size_t share_b = shareOf("node-b", both).size();
  ASSERT_GT(share_b, 0u);

  auto a = Node::open(optionsOf("node-a"), destination);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(eventually([&] { return toldTo("node-a").size() == kPartitions; }, 10s));
  auto b = Node::open(optionsOf("node-b"), destination);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(eventually([&] { return b->owned() == shareOf("node-b", both); }, 10s));
  EXPECT_EQ(toldTo("node-b").size(), share_b);
  EXPECT_EQ(toldTo("node-a").size(), kPartitions) << "handing a partition over is not reading it";

  b.reset();  // leaves: node-a reads its share again
  ASSERT_TRUE(eventually([&] { return toldTo("node-a").size() == kPartitions + share_b; }, 10s));
  for (const auto& [node, consumers] : told) {
    for (const auto& consumer : consumers) {
      EXPECT_EQ(consumer, kConsumer) << node;
    }
  }
}

TEST_F(PartitionOwnership, NodesJoiningAndLeavingMovePartitionsWithoutBreakingOrder) {
  Destination destination;
  Producer producer(nodeOptions(servers_, stream_, "producer"));
  ASSERT_TRUE(producer.ok());
  auto a = Node::open(nodeOptions(servers_, stream_, "node-a"), destination);
  auto b = Node::open(nodeOptions(servers_, stream_, "node-b"), destination);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  a->start();
  b->start();

  // Appends all along: 20 events of 30 people every 10 ms.
  std::atomic<bool> producing{true};
  std::atomic<int> appended{0};
  std::thread appender([&] {
    while (producing.load()) {
      const int first = appended.load();
      EXPECT_TRUE(producer.append(makeEvents(first, 20, 30)));
      appended.store(first + 20);
      std::this_thread::sleep_for(10ms);
    }
  });

  std::this_thread::sleep_for(700ms);
  auto c = Node::open(nodeOptions(servers_, stream_, "node-c"), destination);
  ASSERT_NE(c, nullptr);
  c->start();
  const std::vector<std::string> three{"node-a", "node-b", "node-c"};
  EXPECT_TRUE(eventually([&] { return a->owned() == shareOf("node-a", three) &&
                                      b->owned() == shareOf("node-b", three) &&
                                      c->owned() == shareOf("node-c", three); },
                         10s))
      << "the joining node never got its share";
  std::this_thread::sleep_for(500ms);

  // node-b leaves gracefully: its partitions are free at once, for the next heartbeat.
  const auto left_at = Clock::now();
  b.reset();
  const std::vector<std::string> two{"node-a", "node-c"};
  EXPECT_TRUE(eventually([&] { return a->owned() == shareOf("node-a", two) &&
                                      c->owned() == shareOf("node-c", two); },
                         5s))
      << "node-b's partitions were not taken";
  EXPECT_LT(Clock::now() - left_at, 3s);
  std::this_thread::sleep_for(500ms);

  producing.store(false);
  appender.join();
  expectDeliveredInOrder(destination, appended.load());
  EXPECT_EQ(destination.duplicates(), 0u) << "a graceful handover repeats nothing";
  EXPECT_FALSE(destination.partitionsFrom("node-c").empty());
}

// --- a node that crashes: a child process, killed ---------------------------------------------

// The child: opens a node (same options as the test's), reports the partitions it owns into
// <dir>/owned until <dir>/go appears, then fetches as many events as <dir>/go says without
// acknowledging any, reports it in <dir>/fetched, and waits to be killed (heartbeating).
void writeFileAtomically(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path + ".tmp", std::ios::trunc);
    out << text;
  }
  std::filesystem::rename(path + ".tmp", path);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string joined(const std::vector<std::uint32_t>& partitions) {
  std::string out;
  for (const auto p : partitions) out += std::to_string(p) + " ";
  return out;
}

int runChild(const std::vector<std::string>& args) {
  // args: dir urls stream replicas node_id
  if (args.size() != 5) return 2;
  const std::string dir = args[0];
  Servers servers{split(args[1], ','), std::stoi(args[3])};
  auto queue = JetStreamQueue::open(nodeOptions(servers, args[2], args[4]));
  if (!queue.ok()) {
    std::fprintf(stderr, "child: %s\n", queue.error().message.c_str());
    return 3;
  }
  auto consumer = (*queue)->consumer(kConsumer, StartAt::Earliest);
  if (!consumer.ok()) {
    std::fprintf(stderr, "child: %s\n", consumer.error().message.c_str());
    return 4;
  }
  while (!std::filesystem::exists(dir + "/go")) {
    writeFileAtomically(dir + "/owned", joined((*queue)->ownedPartitions(kConsumer)));
    std::this_thread::sleep_for(20ms);
  }
  const std::size_t want = std::stoul(readFile(dir + "/go"));
  std::vector<QueueMessage> held;  // never acknowledged
  while (held.size() < want) {
    auto batch = (*consumer)->fetch(want - held.size(), 1 << 20, 200ms);
    if (batch.ok()) {
      for (auto& message : *batch) held.push_back(std::move(message));
    }
  }
  writeFileAtomically(dir + "/fetched", std::to_string(held.size()));
  for (;;) {
    std::this_thread::sleep_for(1s);
  }
}

// Runs the child when this binary was started as one (before gtest sees the arguments).
[[maybe_unused]] const bool kChildRan = [] {
  const std::string cmdline = readFile("/proc/self/cmdline");
  std::vector<std::string> args;
  for (std::size_t start = 0; start < cmdline.size();) {
    const auto end = cmdline.find('\0', start);
    args.push_back(cmdline.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (args.size() >= 2 && args[1] == kChildFlag) {
    std::_Exit(runChild(std::vector<std::string>(args.begin() + 2, args.end())));
  }
  return false;
}();

// A child node process, killed (SIGKILL) at the latest when this object goes.
class ChildNode {
 public:
  ChildNode(const Servers& servers, const std::string& stream, const std::string& node_id) {
    char pattern[] = "/tmp/junction_ownership.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return;
    dir_ = pattern;
    std::string urls;
    for (const auto& url : servers.urls) urls += url + ",";
    std::string error;
    pid_ = junction::testing::spawnWithLog(
        {"/proc/self/exe", kChildFlag, dir_, urls, stream, std::to_string(servers.replicas),
         node_id},
        dir_ + "/child.log", dir_, &error);
    EXPECT_GT(pid_, 0) << error;
  }
  ~ChildNode() {
    kill();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  bool running() const { return pid_ > 0; }
  std::string owned() const { return readFile(dir_ + "/owned"); }
  void fetch(std::size_t count) { writeFileAtomically(dir_ + "/go", std::to_string(count)); }
  bool fetched() const { return std::filesystem::exists(dir_ + "/fetched"); }
  std::string log() const { return junction::testing::fileTail(dir_ + "/child.log", 20); }
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

// A node is killed with messages it fetched and never acknowledged, and later events of the same
// people queued behind them; the survivor takes its partitions within 10 s and delivers the
// dead node's events (redelivered) before those later ones.
void crashedNodesPartitionsAreTakenOver(const Servers& servers, const std::string& stream) {
  Destination destination;
  Producer producer(nodeOptions(servers, stream, "producer"));
  ASSERT_TRUE(producer.ok());
  auto survivor = Node::open(nodeOptions(servers, stream, "node-s"), destination);
  ASSERT_NE(survivor, nullptr);
  survivor->start();
  ChildNode child(servers, stream, "node-c");
  ASSERT_TRUE(child.running());
  const std::vector<std::string> both{"node-s", "node-c"};
  const auto child_share = shareOf("node-c", both);
  ASSERT_FALSE(child_share.empty());
  ASSERT_TRUE(eventually([&] { return survivor->owned() == shareOf("node-s", both) &&
                                      child.owned() == joined(child_share); },
                         15s))
      << "never settled; child owns '" << child.owned() << "'; child log:\n" << child.log();

  // The child fetches its share of the first 200 events and never acknowledges them.
  const auto first = makeEvents(0, 200, 20);
  std::size_t child_events = 0;
  for (const auto& event : first) {
    const auto p = partitionOf(personOf(event), kPartitions);
    child_events += std::find(child_share.begin(), child_share.end(), p) != child_share.end();
  }
  ASSERT_TRUE(producer.append(first));
  child.fetch(child_events);
  ASSERT_TRUE(eventually([&] { return child.fetched(); }, 10s)) << child.log();
  // The same people's later events, queued behind the unacknowledged ones; then the crash,
  // well within the ack wait of what the child holds.
  ASSERT_TRUE(producer.append(makeEvents(200, 200, 20)));
  child.kill();
  const auto killed_at = Clock::now();

  std::vector<std::uint32_t> all(kPartitions);
  for (std::uint32_t p = 0; p < kPartitions; ++p) all[p] = p;
  EXPECT_TRUE(eventually([&] { return survivor->owned() == all; }, 12s))
      << "owns " << joined(survivor->owned());
  const auto takeover = Clock::now() - killed_at;
  EXPECT_LT(takeover, 10s);
  std::printf("takeover %lld ms after the kill (%zu events held by the dead node)\n",
              static_cast<long long>(takeover / 1ms), child_events);

  expectDeliveredInOrder(destination, 400);
  EXPECT_GE(destination.redelivered(), child_events) << "the dead node's events came back";
  EXPECT_EQ(destination.partitionsFrom("node-s").size(), kPartitions);
}

TEST_F(PartitionOwnership, ACrashedNodesPartitionsAreTakenOverAndItsEventsComeBackInOrder) {
  crashedNodesPartitionsAreTakenOver(servers_, stream_);
}

TEST(PartitionOwnershipCluster, ACrashedNodesPartitionsAreTakenOverOnAThreeNodeCluster) {
  auto servers = threeNodeCluster();
  ASSERT_TRUE(servers.has_value());
  crashedNodesPartitionsAreTakenOver(*servers, uniqueStream());
}

}  // namespace
}  // namespace junction::core::queue
