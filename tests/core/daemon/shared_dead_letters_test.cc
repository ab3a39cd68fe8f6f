// Dead letters shared by the nodes on NATS (core/daemon/shared_dead_letters.h), on a real
// nats-server: ids unique across nodes; every node's store ends with every dead letter, its
// replay mark, its new reason after a failed replay, and its removal; a replay marked on one
// node is taken by the node that reads the person's partition only; dead letters kept before
// sharing are shared at start, renumbered when their id is another node's.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>

#include <boost/json.hpp>

#include "core/daemon/shared_dead_letters.h"
#include "core/delivery/dead_letter_store.h"
#include "core/queue/jetstream_queue.h"
#include "core/queue/nats_bucket.h"
#include "core/runtime/runtime.h"
#include "junction/sdk/event.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/support/eventually.h"
#include "tests/support/nats/nats_server.h"

namespace junction::core::daemon {
namespace {

using namespace std::chrono_literals;
using delivery::DeadLetter;
using delivery::DeadLetterFilter;
using delivery::DeadLetterStore;
namespace fs = std::filesystem;
using testing::eventually;

std::string uniqueStream() {
  static std::atomic<int> counter{0};
  return "dlq" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

DeadLetter letter(const std::string& message_id, const std::string& user,
                  const std::string& destination = "hook") {
  boost::json::object body{{"type", "track"}, {"event", "Clicked"}, {"userId", user},
                           {"messageId", message_id}};
  auto e = sdk::makeEvent(body, "web");
  EXPECT_TRUE(e);
  auto h = e->header();
  h.received_at_ms = runtime::SystemClock().nowMs();
  DeadLetter d;
  d.destination = destination;
  d.event = sdk::Event(h, std::string(e->json()));
  d.failed_at_ms = h.received_at_ms;
  d.attempts = 3;
  d.reason = "HTTP 400: bad request";
  return d;
}

// One node: its queue connection, its own dead-letter store and its sharing.
struct Node {
  fs::path dir;
  std::unique_ptr<queue::JetStreamQueue> queue;
  std::unique_ptr<queue::NatsBucket> bucket;
  std::unique_ptr<DeadLetterStore> store;
  std::unique_ptr<SharedDeadLetters> shared;
  sdk::testing::RecordingLogger log;
  sdk::testing::FakeMetrics metrics;
  std::atomic<bool> replays_everything{false};
  std::atomic<int> wakes{0};

  ~Node() {
    if (shared) {
      shared->stop();
    }
    bucket.reset();
    shared.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  // Opens the store (keeping what `dir` holds) and the queue; share() starts the sharing.
  static std::unique_ptr<Node> open(const std::string& stream, const std::string& id) {
    auto node = std::make_unique<Node>();
    node->dir = fs::temp_directory_path() / (stream + "-" + id);
    fs::create_directories(node->dir);
    auto store = DeadLetterStore::open((node->dir / "dead_letters.db").string());
    EXPECT_TRUE(store) << store.error().message;
    if (!store) {
      return nullptr;
    }
    node->store = std::move(store).value();
    queue::JetStreamOptions options;
    options.urls = {junction::testing::sharedServer()->url()};
    options.stream = stream;
    options.partitions = 2;
    options.node_id = id;
    auto opened = queue::JetStreamQueue::open(options);
    EXPECT_TRUE(opened) << opened.error().message;
    if (!opened) {
      return nullptr;
    }
    node->queue = std::move(opened).value();
    auto bucket = queue::NatsBucket::open(*node->queue, stream + "-dead-letters");
    EXPECT_TRUE(bucket) << bucket.error().message;
    if (!bucket) {
      return nullptr;
    }
    node->bucket = std::move(bucket).value();
    return node;
  }

  sdk::Status share(const std::string& id) {
    shared = std::make_unique<SharedDeadLetters>(
        *bucket, *store, id, dir / "dead_letters.shared", log, metrics,
        [this](const DeadLetter&) { return replays_everything.load(); }, [this] { ++wakes; });
    return shared->start(5s);
  }

  std::vector<DeadLetter> all() {
    auto rows = store->list(DeadLetterFilter{});
    EXPECT_TRUE(rows);
    return rows ? *rows : std::vector<DeadLetter>{};
  }

  std::set<std::int64_t> ids() {
    std::set<std::int64_t> out;
    for (const auto& row : all()) {
      out.insert(row.id);
    }
    return out;
  }

  std::optional<DeadLetter> row(std::int64_t id) {
    for (auto& r : all()) {
      if (r.id == id) {
        return r;
      }
    }
    return std::nullopt;
  }
};

class SharedDeadLettersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (junction::testing::sharedServer() == nullptr) {
      GTEST_SKIP() << "nats-server could not start (see stderr)";
    }
    stream_ = uniqueStream();
  }
  std::string stream_;
};

TEST_F(SharedDeadLettersTest, EveryNodeHoldsEveryDeadLetterWithIdsUniqueAcrossNodes) {
  auto a = Node::open(stream_, "node-a");
  auto b = Node::open(stream_, "node-b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->share("node-a").ok());
  ASSERT_TRUE(b->share("node-b").ok());

  std::vector<DeadLetter> on_a{letter("m1", "u1"), letter("m2", "u2")};
  ASSERT_TRUE(a->store->add(on_a).ok());
  std::vector<DeadLetter> on_b{letter("m3", "u3"), letter("m4", "u4", "crm")};
  ASSERT_TRUE(b->store->add(on_b).ok());
  std::set<std::int64_t> expected;
  for (const auto* rows : {&on_a, &on_b}) {
    for (const auto& r : *rows) {
      EXPECT_TRUE(expected.insert(r.id).second) << "id " << r.id << " given twice";
    }
  }
  ASSERT_TRUE(eventually([&] { return a->ids() == expected && b->ids() == expected; }))
      << a->ids().size() << " on a, " << b->ids().size() << " on b";
  // The same dead letter on both: event, destination, reason.
  const auto copy = b->row(on_a[1].id);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->event.header().message_id, "m2");
  EXPECT_EQ(copy->event.json(), on_a[1].event.json());
  EXPECT_EQ(copy->destination, "hook");
  EXPECT_EQ(copy->reason, "HTTP 400: bad request");
  EXPECT_EQ(copy->attempts, 3);
  EXPECT_GT(a->wakes.load(), 0);
}

// A dead letter too large for one NATS message once encoded (an event near max_payload: base64
// adds a third) stays on its node, counted, and does not hold back the writes after it.
TEST_F(SharedDeadLettersTest, ADeadLetterTooLargeToShareStaysHereAndHoldsNothingBack) {
  auto a = Node::open(stream_, "node-a");
  auto b = Node::open(stream_, "node-b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->share("node-a").ok());
  ASSERT_TRUE(b->share("node-b").ok());

  boost::json::object body{{"type", "track"}, {"event", "Clicked"}, {"userId", "u-big"},
                           {"messageId", "big"},
                           {"properties", {{"blob", std::string(900 * 1024, 'x')}}}};
  auto big_event = sdk::makeEvent(body, "web");
  ASSERT_TRUE(big_event);
  std::vector<DeadLetter> big{letter("big", "u-big")};
  big[0].event = std::move(big_event).value();
  ASSERT_TRUE(a->store->add(big).ok());
  std::vector<DeadLetter> small{letter("small", "u-small")};
  ASSERT_TRUE(a->store->add(small).ok());

  ASSERT_TRUE(eventually([&] { return b->row(small[0].id).has_value(); }))
      << "a write after the large one never arrived";
  EXPECT_FALSE(b->row(big[0].id).has_value());
  EXPECT_TRUE(a->row(big[0].id).has_value());
  EXPECT_GE(a->metrics.counterValue("junction_shared_dead_letter_errors_total"), 1u);
  EXPECT_TRUE(a->log.contains("too large")) << "not logged";
}

// A node starting while the servers do not answer for the bucket (a cluster just formed, a
// server restarting) waits for them instead of failing its start.
TEST_F(SharedDeadLettersTest, AStartWaitsForServersThatDoNotAnswerYet) {
  auto a = Node::open(stream_, "node-a");
  ASSERT_TRUE(a);
  auto* server = junction::testing::sharedServer();
  server->kill();
  std::thread back([server] {
    std::this_thread::sleep_for(7s);  // longer than a request waits (5 s): the first read fails
    std::string error;
    EXPECT_TRUE(server->restart(&error)) << error;
  });
  a->shared = std::make_unique<SharedDeadLetters>(
      *a->bucket, *a->store, "node-a", a->dir / "dead_letters.shared", a->log, a->metrics,
      [](const DeadLetter&) { return true; }, [] {});
  const auto status = a->shared->start(30s);
  back.join();
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(a->log.contains("does not answer yet"));
  std::vector<DeadLetter> rows{letter("m1", "u1")};
  EXPECT_TRUE(eventually([&] { return a->store->add(rows).ok(); }, 20s));
  EXPECT_GT(rows[0].id, 0);
}

TEST_F(SharedDeadLettersTest, AReplayMarkedOnOneNodeIsTakenByTheNodeThatReadsThePerson) {
  auto a = Node::open(stream_, "node-a");
  auto b = Node::open(stream_, "node-b");
  ASSERT_TRUE(a && b);
  a->replays_everything = true;  // node-a reads every partition
  ASSERT_TRUE(a->share("node-a").ok());
  ASSERT_TRUE(b->share("node-b").ok());
  std::vector<DeadLetter> rows{letter("m1", "u1"), letter("m2", "u2")};
  ASSERT_TRUE(a->store->add(rows).ok());
  ASSERT_TRUE(eventually([&] { return b->ids().size() == 2; }));

  DeadLetterFilter which;
  which.ids = {rows[0].id};
  auto marked = b->store->markForReplay(which);
  ASSERT_TRUE(marked);
  EXPECT_EQ(*marked, 1u);
  EXPECT_TRUE(b->store->takeReplays("hook", 10)->empty());  // not node-b's to replay
  EXPECT_FALSE(b->store->hasReplays("hook"));
  ASSERT_TRUE(eventually([&] { return a->store->hasReplays("hook"); }));
  auto taken = a->store->takeReplays("hook", 10);
  ASSERT_TRUE(taken);
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ(taken->front().id, rows[0].id);

  // Delivered: gone everywhere.
  ASSERT_TRUE(a->store->replayed(rows[0].id).ok());
  EXPECT_TRUE(eventually([&] { return !b->row(rows[0].id).has_value(); }));

  // Marked again, failed again: dead again with the new reason everywhere.
  which.ids = {rows[1].id};
  ASSERT_TRUE(a->store->markForReplay(which));
  ASSERT_EQ(a->store->takeReplays("hook", 10)->size(), 1u);
  ASSERT_TRUE(a->store->failedAgain(rows[1].id, 7, "HTTP 400: still bad", 42).ok());
  EXPECT_TRUE(eventually([&] {
    const auto r = b->row(rows[1].id);
    return r && !r->replaying && r->attempts == 7 && r->reason == "HTTP 400: still bad";
  }));
}

TEST_F(SharedDeadLettersTest, APurgeOnOneNodeRemovesTheDeadLettersEverywhere) {
  auto a = Node::open(stream_, "node-a");
  auto b = Node::open(stream_, "node-b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->share("node-a").ok());
  ASSERT_TRUE(b->share("node-b").ok());
  std::vector<DeadLetter> rows{letter("m1", "u1"), letter("m2", "u2"), letter("m3", "u1")};
  ASSERT_TRUE(a->store->add(rows).ok());
  ASSERT_TRUE(eventually([&] { return b->ids().size() == 3; }));
  DeadLetterFilter person;
  person.person = rows[0].event.header().personKey();
  auto purged = b->store->purge(person);
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 2u);
  EXPECT_TRUE(eventually([&] { return a->ids() == std::set<std::int64_t>{rows[1].id}; }))
      << a->ids().size();
}

TEST_F(SharedDeadLettersTest, DeadLettersKeptBeforeSharingAreSharedAndRenumberedWhenTaken) {
  auto a = Node::open(stream_, "node-a");
  auto c = Node::open(stream_, "node-c");
  ASSERT_TRUE(a && c);
  // Both kept dead letters before sharing: ids 1 and 2 on each.
  std::vector<DeadLetter> old_a{letter("a1", "u1"), letter("a2", "u2")};
  std::vector<DeadLetter> old_c{letter("c1", "u3"), letter("c2", "u4")};
  ASSERT_TRUE(a->store->add(old_a).ok());
  ASSERT_TRUE(c->store->add(old_c).ok());
  ASSERT_EQ(old_a[0].id, old_c[0].id);
  ASSERT_TRUE(a->share("node-a").ok());
  ASSERT_TRUE(c->share("node-c").ok());
  // Four dead letters, four ids, on both nodes; none lost, none overwritten.
  auto message_ids = [](Node& n) {
    std::set<std::string> out;
    for (const auto& r : n.all()) {
      out.insert(r.event.header().message_id);
    }
    return out;
  };
  const std::set<std::string> expected{"a1", "a2", "c1", "c2"};
  EXPECT_TRUE(eventually([&] {
    return message_ids(*a) == expected && message_ids(*c) == expected && a->ids() == c->ids() &&
           a->ids().size() == 4;
  })) << a->ids().size() << " ids on a, " << c->ids().size() << " on c";
  EXPECT_TRUE(c->log.contains("dead letters kept here shared with the other nodes"));
  for (const auto& r : c->all()) {
    if (r.event.header().message_id.starts_with("c")) {
      EXPECT_GT(r.id, old_a[1].id) << "node-c's " << r.event.header().message_id << " kept id "
                                   << r.id << ", node-a's already";
    }
  }
  // New ones come after all of them.
  std::vector<DeadLetter> fresh{letter("n1", "u5")};
  ASSERT_TRUE(a->store->add(fresh).ok());
  EXPECT_GT(fresh[0].id, *c->ids().rbegin());
}

TEST_F(SharedDeadLettersTest, ANodeRestartedKeepsAndRereadsEverything) {
  auto a = Node::open(stream_, "node-a");
  auto b = Node::open(stream_, "node-b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->share("node-a").ok());
  ASSERT_TRUE(b->share("node-b").ok());
  std::vector<DeadLetter> rows{letter("m1", "u1"), letter("m2", "u2")};
  ASSERT_TRUE(a->store->add(rows).ok());
  ASSERT_TRUE(eventually([&] { return b->ids().size() == 2; }));
  // node-b stops; meanwhile node-a purges one and adds one.
  const fs::path b_dir = b->dir;
  b->shared->stop();
  b->shared.reset();
  b->bucket.reset();
  b->store.reset();
  b->queue.reset();
  DeadLetterFilter first;
  first.ids = {rows[0].id};
  ASSERT_EQ(*a->store->purge(first), 1u);
  std::vector<DeadLetter> later{letter("m3", "u3")};
  ASSERT_TRUE(a->store->add(later).ok());
  std::this_thread::sleep_for(200ms);  // written to the bucket
  // Back (same store file): it reads both changes.
  auto reopened = DeadLetterStore::open((b_dir / "dead_letters.db").string());
  ASSERT_TRUE(reopened);
  b->store = std::move(reopened).value();
  auto q = queue::JetStreamQueue::open([&] {
    queue::JetStreamOptions o;
    o.urls = {junction::testing::sharedServer()->url()};
    o.stream = stream_;
    o.partitions = 2;
    o.node_id = "node-b";
    return o;
  }());
  ASSERT_TRUE(q);
  b->queue = std::move(q).value();
  b->bucket = std::move(queue::NatsBucket::open(*b->queue, stream_ + "-dead-letters")).value();
  ASSERT_TRUE(b->share("node-b").ok());
  EXPECT_TRUE(eventually([&] {
    return b->ids() == std::set<std::int64_t>{rows[1].id, later[0].id};
  })) << b->ids().size();
}

}  // namespace
}  // namespace junction::core::daemon
