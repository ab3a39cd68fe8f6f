// The destination worker on the NATS JetStream backend: a DestinationWorker reading through a
// ConsumerSource from a JetStreamQueue on a real `nats-server -js` (loopback, started by the
// test). Per-person order under retries, dead letters, acknowledgement of what is finished and
// of what filters skip, and a second worker taking over what the first left.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <unistd.h>

#include "core/config/daemon_config.h"
#include "core/delivery/consumer_source.h"
#include "core/delivery/dead_letter_store.h"
#include "core/delivery/destination_worker.h"
#include "core/queue/jetstream_queue.h"
#include "core/runtime/runtime.h"
#include "core/telemetry/metrics_registry.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/core/delivery/scripted_destination.h"
#include "tests/support/nats/nats_server.h"

namespace junction::core::delivery {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// "m<i>" of user "u<i % people>", a track "Clicked" (or "Ignored" when `ignored(i)`).
std::vector<sdk::Event> makeEvents(int count, int people,
                                   std::function<bool(int)> ignored = {}) {
  std::vector<sdk::Event> events;
  for (int i = 0; i < count; ++i) {
    boost::json::object body{{"type", "track"},
                             {"userId", "u" + std::to_string(i % people)},
                             {"messageId", "m" + std::to_string(i)},
                             {"event", ignored && ignored(i) ? "Ignored" : "Clicked"}};
    auto e = sdk::makeEvent(body, "web");
    EXPECT_TRUE(e);
    auto h = e->header();
    h.received_at_ms = runtime::SystemClock().nowMs();
    events.emplace_back(h, std::string(e->json()));
  }
  return events;
}

int seqOf(const std::string& message_id) { return std::stoi(message_id.substr(1)); }

class Rig {
 public:
  explicit Rig(const std::string& destination_yaml) {
    char tmpl[] = "/tmp/junction-worker-js-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config::ConfigErrors errors;
    auto loaded = config::loadConfigText("destinations:\n" + destination_yaml, "test.yaml",
                                         config::processEnvironment(), errors);
    EXPECT_TRUE(loaded) << config::formatErrors(errors);
    config_ = std::move(*loaded);
    auto dlq = DeadLetterStore::open((dir_ / "dead_letters.db").string());
    EXPECT_TRUE(dlq) << dlq.error().message;
    dead_letters_ = std::move(dlq).value();
    static std::atomic<int> counter{0};
    stream_ = "w" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    queue_ = openQueue();
  }
  ~Rig() {
    stopWorker();
    queue_.reset();
    fs::remove_all(dir_);
  }

  std::unique_ptr<queue::JetStreamQueue> openQueue() {
    auto* server = junction::testing::sharedServer();
    if (server == nullptr) return nullptr;
    queue::JetStreamOptions options;
    options.urls = {server->url()};
    options.stream = stream_;
    options.partitions = 8;
    options.ack_wait = 2s;
    auto queue = queue::JetStreamQueue::open(options);
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    return queue.ok() ? std::move(queue).value() : nullptr;
  }

  void startWorker(std::shared_ptr<sdk::Destination> plugin) {
    ASSERT_NE(queue_, nullptr);
    auto consumer = queue_->consumer("a", queue::StartAt::Earliest);
    ASSERT_TRUE(consumer.ok()) << consumer.error().message;
    source_ = std::make_unique<ConsumerSource>(std::move(consumer).value());
    WorkerDeps deps{*source_, *dead_letters_, metrics_, logger_, clock_};
    worker_ = std::make_unique<DestinationWorker>(config_.destinations.at(0), std::move(plugin),
                                                  deps);
    ASSERT_TRUE(worker_->start().ok());
    source_->start([w = worker_.get()] { w->notifyAppend(); });
  }
  void stopWorker() {
    if (worker_) worker_->stop();  // finishes calls in flight, commits: acknowledgements
    worker_.reset();
    source_.reset();
  }

  void append(std::vector<sdk::Event> events) {
    std::promise<sdk::Status> done;
    auto status = queue_->append(std::move(events), [&](sdk::Status s) { done.set_value(s); });
    ASSERT_TRUE(status.ok()) << status.message();
    auto result = done.get_future().get();
    ASSERT_TRUE(result.ok()) << result.message();
  }

  // Messages still on the server for consumer "a" (not acknowledged), after its ack wait.
  std::size_t leftOnServer() {
    stopWorker();
    auto consumer = queue_->consumer("a", queue::StartAt::Earliest);
    EXPECT_TRUE(consumer.ok());
    if (!consumer.ok()) return 0;
    std::size_t left = 0;
    const auto until = std::chrono::steady_clock::now() + 3s;  // > ack_wait: redeliveries too
    while (std::chrono::steady_clock::now() < until) {
      auto got = (*consumer)->fetch(1000, 1 << 20, 200ms);
      if (got.ok()) left += got->size();
    }
    return left;
  }

  template <typename Pred>
  static bool waitFor(Pred pred, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }

  DeadLetterStore& deadLetters() { return *dead_letters_; }
  DestinationWorker& worker() { return *worker_; }

 private:
  fs::path dir_;
  std::string stream_;
  config::DaemonConfig config_;
  telemetry::MetricsRegistry metrics_;
  sdk::testing::RecordingLogger logger_;
  runtime::SystemClock clock_;
  std::unique_ptr<DeadLetterStore> dead_letters_;
  std::unique_ptr<queue::JetStreamQueue> queue_;
  std::unique_ptr<ConsumerSource> source_;
  std::unique_ptr<DestinationWorker> worker_;
};

const char* kDestination = R"(  - id: a
    plugin: x
    start: earliest
    batch: { max_events: 25, max_wait: 0 }
    retry: { initial_backoff: 5ms, max_backoff: 20ms, max_attempts: 4 }
)";

// Each person's delivered events are in append order (first deliveries; a retried event is
// delivered once, when it succeeds).
void expectPersonOrder(const std::vector<std::string>& delivered, int people) {
  std::map<int, int> last;
  for (const auto& id : delivered) {
    const int seq = seqOf(id);
    auto [it, first] = last.emplace(seq % people, seq);
    if (!first) {
      EXPECT_LT(it->second, seq) << "person u" << seq % people << " out of order";
      it->second = seq;
    }
  }
}

TEST(WorkerOnJetStreamTest, DeliversEveryEventOnceInEachPersonsOrderThroughRetries) {
  Rig rig(kDestination);
  // Every 7th event is refused once (503): it is retried in place while the person waits.
  auto dest = std::make_shared<ScriptedDestination>([](const sdk::Event& e, int attempt) {
    return seqOf(e.messageId()) % 7 == 0 && attempt == 1
               ? sdk::Outcome::retry("503 Service Unavailable", 10ms)
               : sdk::Outcome::delivered();
  });
  rig.startWorker(dest);
  rig.append(makeEvents(600, 30));
  ASSERT_TRUE(Rig::waitFor([&] { return dest->delivered().size() >= 600; }))
      << dest->delivered().size() << " of 600 delivered";
  const auto delivered = dest->delivered();
  EXPECT_EQ(std::set<std::string>(delivered.begin(), delivered.end()).size(), 600u);
  EXPECT_EQ(delivered.size(), 600u) << "an event was delivered twice";
  expectPersonOrder(delivered, 30);
  EXPECT_EQ(rig.worker().stats().delivered, 600u);
  EXPECT_EQ(rig.leftOnServer(), 0u) << "delivered events were not acknowledged";
}

TEST(WorkerOnJetStreamTest, FailuresAreDeadLetteredAndFilteredEventsAcknowledged) {
  Rig rig(std::string(kDestination) + "    filter: { events: [Clicked] }\n");
  auto dest = std::make_shared<ScriptedDestination>([](const sdk::Event& e, int) {
    return seqOf(e.messageId()) % 10 == 3 ? sdk::Outcome::failed("400 invalid email")
                                          : sdk::Outcome::delivered();
  });
  rig.startWorker(dest);
  // Every 5th event is "Ignored": the filter skips it; 20 of the rest fail for good.
  rig.append(makeEvents(200, 9, [](int i) { return i % 5 == 0; }));
  ASSERT_TRUE(Rig::waitFor([&] {
    auto count = rig.deadLetters().count("a");
    return dest->delivered().size() >= 140 && count.ok() && *count >= 20;
  })) << dest->delivered().size() << " delivered";
  EXPECT_EQ(dest->delivered().size(), 140u);
  auto count = rig.deadLetters().count("a");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 20u);
  EXPECT_EQ(rig.leftOnServer(), 0u) << "filtered or dead-lettered events were not acknowledged";
}

TEST(WorkerOnJetStreamTest, ASecondWorkerDeliversWhatTheFirstLeft) {
  Rig rig(kDestination);
  auto slow = std::make_shared<ScriptedDestination>(ScriptedDestination::Decide{}, 20ms);
  rig.startWorker(slow);
  rig.append(makeEvents(400, 13));
  ASSERT_TRUE(Rig::waitFor([&] { return slow->delivered().size() >= 50; }));
  rig.stopWorker();  // a node leaving: what it fetched and did not finish goes back
  const auto first = slow->delivered();
  ASSERT_LT(first.size(), 400u);

  auto next = std::make_shared<ScriptedDestination>();
  rig.startWorker(next);
  ASSERT_TRUE(Rig::waitFor([&] {
    std::set<std::string> all(first.begin(), first.end());
    for (const auto& id : next->delivered()) all.insert(id);
    return all.size() >= 400;
  })) << next->delivered().size() << " delivered by the second worker";
  expectPersonOrder(next->delivered(), 13);
  // What the first worker finished was acknowledged: the second does not deliver it again.
  std::set<std::string> first_set(first.begin(), first.end());
  for (const auto& id : next->delivered()) {
    EXPECT_FALSE(first_set.contains(id)) << id << " delivered by both workers";
  }
  EXPECT_EQ(rig.leftOnServer(), 0u);
}

}  // namespace
}  // namespace junction::core::delivery
