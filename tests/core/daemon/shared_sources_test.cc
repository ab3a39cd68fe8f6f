// Pulling sources shared by the nodes on NATS (core/daemon/shared_sources.h): one node at a
// time holds a source's lease, a stopping node hands it over at once, a dead node's lease ends
// after the bucket's TTL; checkpoints are shared, never moved back by a node that read an older
// one, refused without the lease, and seeded from the node's checkpoint file. And the
// scheduler's gate that holds a source's periodic syncs on the nodes without the lease.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>

#include "core/daemon/shared_sources.h"
#include "core/queue/jetstream_queue.h"
#include "core/queue/nats_bucket.h"
#include "core/runtime/runtime.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/support/eventually.h"
#include "tests/support/nats/nats_server.h"

namespace junction::core::daemon {
namespace {

using namespace std::chrono_literals;
using queue::JetStreamOptions;
using queue::JetStreamQueue;
using queue::NatsBucket;
namespace fs = std::filesystem;
using testing::eventually;

constexpr auto kHeartbeat = 200ms;
constexpr auto kNodeTtl = 1s;

std::string uniqueStream() {
  static std::atomic<int> counter{0};
  return "src" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

// One node: its queue (connection) and its view of the two buckets.
struct Node {
  std::unique_ptr<JetStreamQueue> queue;
  std::unique_ptr<NatsBucket> leases;       // <stream>-sources, TTL node_ttl
  std::unique_ptr<NatsBucket> checkpoints;  // <stream>-checkpoints
  sdk::testing::RecordingLogger log;

  static std::unique_ptr<Node> open(const std::string& stream, const std::string& id) {
    auto* server = junction::testing::sharedServer();
    if (server == nullptr) {
      return nullptr;
    }
    JetStreamOptions options;
    options.urls = {server->url()};
    options.stream = stream;
    options.partitions = 2;
    options.node_id = id;
    options.heartbeat = kHeartbeat;
    options.node_ttl = kNodeTtl;
    auto node = std::make_unique<Node>();
    auto opened = JetStreamQueue::open(options);
    EXPECT_TRUE(opened) << opened.error().message;
    if (!opened) {
      return nullptr;
    }
    node->queue = std::move(opened).value();
    auto checkpoints = NatsBucket::open(*node->queue, stream + "-checkpoints");
    EXPECT_TRUE(checkpoints) << checkpoints.error().message;
    queue::NatsBucketOptions lease_options;
    lease_options.ttl = kNodeTtl;
    auto leases = NatsBucket::open(*node->queue, stream + "-sources", lease_options);
    EXPECT_TRUE(leases) << leases.error().message;
    if (!checkpoints || !leases) {
      return nullptr;
    }
    node->checkpoints = std::move(checkpoints).value();
    node->leases = std::move(leases).value();
    return node;
  }
};

class SharedSourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (junction::testing::sharedServer() == nullptr) {
      GTEST_SKIP() << "nats-server could not start (see stderr)";
    }
    stream_ = uniqueStream();
    a_ = Node::open(stream_, "node-a");
    b_ = Node::open(stream_, "node-b");
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
  }

  std::string stream_;
  std::unique_ptr<Node> a_;
  std::unique_ptr<Node> b_;
};

TEST_F(SharedSourcesTest, OneNodeHoldsASourceAndTheOtherTakesItWhenThatNodeStops) {
  auto leases_a = std::make_unique<SourceLeases>(*a_->leases, "node-a", kHeartbeat, a_->log);
  SourceLeases leases_b(*b_->leases, "node-b", kHeartbeat, b_->log);
  leases_a->add("crm");  // taken at once: free
  leases_a->start();
  leases_b.add("crm");
  leases_b.start();
  EXPECT_TRUE(leases_a->holds("crm"));
  EXPECT_FALSE(leases_b.holds("crm"));
  EXPECT_EQ(leases_b.holder("crm"), "node-a");
  // Renewed: still node-a's after several TTLs.
  std::this_thread::sleep_for(3 * kNodeTtl);
  EXPECT_TRUE(leases_a->holds("crm"));
  EXPECT_FALSE(leases_b.holds("crm"));
  EXPECT_TRUE(a_->log.contains("source lease taken"));

  // A stopping node releases it: the other takes it at its next pass, well before the TTL.
  const auto stopped_at = std::chrono::steady_clock::now();
  leases_a.reset();
  EXPECT_TRUE(eventually([&] { return leases_b.holds("crm"); }, 3 * kHeartbeat));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, kNodeTtl);
  EXPECT_EQ(leases_b.holder("crm"), "node-b");
}

TEST_F(SharedSourcesTest, ADeadNodesLeaseEndsAfterTheTtlAndOnlyThen) {
  // node-x took the lease and died: it never renews it.
  const std::string key = queue::escapeName("crm");
  ASSERT_TRUE(a_->leases->putIf(key, "node-x", 0));
  const auto died_at = std::chrono::steady_clock::now();
  SourceLeases leases_b(*b_->leases, "node-b", kHeartbeat, b_->log);
  leases_b.add("crm");
  leases_b.start();
  EXPECT_FALSE(leases_b.holds("crm"));
  EXPECT_EQ(leases_b.holder("crm"), "node-x");
  ASSERT_TRUE(eventually([&] { return leases_b.holds("crm"); }, 5 * kNodeTtl));
  EXPECT_GE(std::chrono::steady_clock::now() - died_at, kNodeTtl - 50ms);
}

TEST_F(SharedSourcesTest, ALeaseIsNotHeldPastTheFenceWhenItCannotBeRenewed) {
  SourceLeases leases_a(*a_->leases, "node-a", kHeartbeat, a_->log);
  leases_a.add("crm");
  ASSERT_TRUE(leases_a.holds("crm"));
  // Never started: no renewal. Two heartbeats after the last one, the node stops running it,
  // before another node may take it (node_ttl).
  EXPECT_TRUE(eventually([&] { return !leases_a.holds("crm"); }, 2 * kHeartbeat + 100ms));
  EXPECT_TRUE(leases_a.holder("crm") == "node-a");
}

TEST_F(SharedSourcesTest, ADroppedSourceIsHandedOverAndAReleasedLeaseIsTakenAgain) {
  SourceLeases leases_a(*a_->leases, "node-a", kHeartbeat, a_->log);
  SourceLeases leases_b(*b_->leases, "node-b", kHeartbeat, b_->log);
  leases_a.add("crm");
  leases_b.add("crm");
  leases_a.start();
  leases_b.start();
  ASSERT_TRUE(leases_a.holds("crm"));
  leases_a.remove("crm");  // a reload dropped the source on node-a
  EXPECT_FALSE(leases_a.holds("crm"));
  EXPECT_TRUE(eventually([&] { return leases_b.holds("crm"); }, 3 * kHeartbeat));
  // Adding it back on node-a: node-b keeps it.
  leases_a.add("crm");
  std::this_thread::sleep_for(3 * kHeartbeat);
  EXPECT_FALSE(leases_a.holds("crm"));
  EXPECT_TRUE(leases_b.holds("crm"));
}

TEST_F(SharedSourcesTest, CheckpointsAreSharedAndAStaleNodeNeverMovesThemBack) {
  NatsCheckpointStore on_a(*a_->checkpoints, "crm", "/nonexistent/crm.json", [] { return true; });
  NatsCheckpointStore on_b(*b_->checkpoints, "crm", "/nonexistent/crm.json", [] { return true; });
  auto none = on_a.load("cursor");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);
  ASSERT_TRUE(on_a.store("cursor", "100").ok());
  auto read = on_b.load("cursor");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->value_or(""), "100");
  ASSERT_TRUE(on_b.store("cursor", "200").ok());
  // node-a last read 100: its write would move the cursor back.
  auto stale = on_a.store("cursor", "150");
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, sdk::ErrorCode::AlreadyExists);
  EXPECT_NE(stale.message().find("moved by another node"), std::string::npos) << stale.message();
  read = on_a.load("cursor");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->value_or(""), "200");
  EXPECT_TRUE(on_a.store("cursor", "300").ok());
  read = on_b.load("cursor");
  EXPECT_EQ(read->value_or(""), "300");
  // Keys of different sources and names never mix.
  NatsCheckpointStore other(*a_->checkpoints, "crm.b", "/nonexistent/x.json", [] { return true; });
  ASSERT_TRUE(other.store("cursor", "7").ok());
  EXPECT_EQ(on_b.load("cursor")->value_or(""), "300");
  EXPECT_NE(NatsCheckpointStore::bucketKey("crm.b", "cursor"),
            NatsCheckpointStore::bucketKey("crm", "b.cursor"));
}

TEST_F(SharedSourcesTest, ACheckpointIsNotStoredWithoutTheLease) {
  bool holds = false;
  NatsCheckpointStore store(*a_->checkpoints, "crm", "/nonexistent/crm.json",
                            [&] { return holds; });
  auto refused = store.store("cursor", "100");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_NE(refused.message().find("not run by this node"), std::string::npos);
  EXPECT_FALSE(*store.load("cursor"));
  holds = true;
  EXPECT_TRUE(store.store("cursor", "100").ok());
}

TEST_F(SharedSourcesTest, TheNodesCheckpointFileSeedsAKeyTheBucketDoesNotHave) {
  const fs::path dir = fs::temp_directory_path() / ("ckpt-" + stream_);
  fs::create_directories(dir);
  const fs::path file = dir / "crm.json";
  {
    runtime::FileCheckpointStore local(file);
    ASSERT_TRUE(local.store("cursor", "42").ok());
  }
  NatsCheckpointStore store(*a_->checkpoints, "crm", file, [] { return true; });
  EXPECT_EQ(store.load("cursor")->value_or(""), "42");
  ASSERT_TRUE(store.store("cursor", "43").ok());
  NatsCheckpointStore elsewhere(*b_->checkpoints, "crm", "/nonexistent/crm.json",
                                [] { return true; });
  EXPECT_EQ(elsewhere.load("cursor")->value_or(""), "43");
  EXPECT_EQ(store.load("cursor")->value_or(""), "43");  // the bucket wins once it has one
  fs::remove_all(dir);
}

// Not NATS: the gate a source's context puts on its scheduler.
TEST(SchedulerGate, APeriodicTaskWaitsForTheGateThenRunsAtOnceAndOneShotsNeverWait) {
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  std::atomic<bool> open{false};
  std::atomic<int> periodic{0};
  std::atomic<int> one_shot{0};
  {
    runtime::StrandScheduler scheduler(io);
    scheduler.gatePeriodic([&] { return open.load(); }, 10ms);
    auto tick = scheduler.every(1h, [&] { ++periodic; }, /*run_now=*/true);
    auto step = scheduler.after(0ms, [&] { ++one_shot; });
    EXPECT_TRUE(eventually([&] { return one_shot.load() == 1; }, 1s));
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(periodic.load(), 0);  // owed, not dropped
    open.store(true);
    // Runs as soon as the gate opens, not an hour later.
    EXPECT_TRUE(eventually([&] { return periodic.load() == 1; }, 1s));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(periodic.load(), 1);  // then the interval again
  }
  guard.reset();
  runner.join();
}

}  // namespace
}  // namespace junction::core::daemon
