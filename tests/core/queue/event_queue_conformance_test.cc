// The queue seam's conformance suite: every backend of core/queue/event_queue.h passes these
// tests unchanged. Backends: the embedded log (a temp directory), NATS JetStream on one real
// `nats-server -js` (replicas 1), and on a real three-node JetStream cluster (replicas 3), all
// on loopback, started by the suite.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "core/queue/embedded_queue.h"
#include "core/queue/event_queue.h"
#include "core/queue/jetstream_queue.h"
#include "tests/core/queue/test_util.h"
#include "tests/support/nats/nats_server.h"

namespace junction::core::queue {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What term() handed over.
struct DeadLetters {
  struct Letter {
    std::string consumer;
    std::string message_id;
    std::string reason;
    std::uint32_t deliveries = 0;
  };
  std::mutex mu;
  std::vector<Letter> letters;
  std::atomic<bool> fail{false};

  DeadLetterSink sink() {
    return [this](const std::string& consumer, const sdk::Event& event, std::string_view reason,
                  std::uint32_t deliveries) -> sdk::Status {
      if (fail.load()) {
        return sdk::makeError(sdk::ErrorCode::Unavailable, "dead-letter store is down");
      }
      std::lock_guard lock(mu);
      letters.push_back({consumer, event.messageId(), std::string(reason), deliveries});
      return {};
    };
  }
  std::vector<Letter> all() {
    std::lock_guard lock(mu);
    return letters;
  }
};

// How a test gets a backend: open() may be called again (after the previous queue is destroyed)
// and then sees the same queue.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<EventQueue> open(DeadLetterSink sink) = 0;
};

class EmbeddedBackend final : public Backend {
 public:
  std::unique_ptr<EventQueue> open(DeadLetterSink sink) override {
    EmbeddedQueueOptions options;
    options.log.path = dir_.path();
    options.log.segment_bytes = 16 << 10;  // small: retention has segments to free
    options.dead_letters = std::move(sink);
    auto queue = EmbeddedQueue::open(std::move(options));
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    return queue.ok() ? std::move(queue).value() : nullptr;
  }

 private:
  testing::TempDir dir_;
};

std::vector<std::string> splitUrls(const std::string& urls) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= urls.size()) {
    const auto comma = urls.find(',', start);
    const auto end = comma == std::string::npos ? urls.size() : comma;
    if (end > start) out.push_back(urls.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

class NatsBackend final : public Backend {
 public:
  explicit NatsBackend(bool cluster) : cluster_(cluster) {
    static std::atomic<int> counter{0};
    stream_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  }

  std::unique_ptr<EventQueue> open(DeadLetterSink sink) override {
    JetStreamOptions options;
    if (cluster_) {
      auto* cluster = junction::testing::sharedCluster();
      if (cluster == nullptr) return nullptr;
      options.urls = splitUrls(cluster->urls());
      options.replicas = 3;
    } else {
      auto* server = junction::testing::sharedServer();
      if (server == nullptr) return nullptr;
      options.urls = {server->url()};
    }
    options.stream = stream_;
    options.partitions = 4;
    options.ack_wait = 2s;  // unacknowledged messages come back quickly in tests
    options.dead_letters = std::move(sink);
    auto queue = JetStreamQueue::open(std::move(options));
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    return queue.ok() ? std::move(queue).value() : nullptr;
  }

 private:
  bool cluster_;
  std::string stream_;
};

enum class Kind { Embedded, NatsSingle, NatsCluster };

std::string kindName(const ::testing::TestParamInfo<Kind>& info) {
  switch (info.param) {
    case Kind::Embedded: return "Embedded";
    case Kind::NatsSingle: return "NatsSingleNode";
    case Kind::NatsCluster: return "NatsThreeNodeCluster";
  }
  return "Unknown";
}

// Events of `people` people, each person's events numbered in order in "seq".
std::vector<sdk::Event> makeEvents(int first, int count, int people, std::size_t json_bytes = 0) {
  std::vector<sdk::Event> events;
  for (int i = first; i < first + count; ++i) {
    sdk::EventHeader h;
    h.type = sdk::EventType::Track;
    h.message_id = "m-" + std::to_string(i);
    h.user_id = "user-" + std::to_string(i % people);
    h.name = "Product Added";
    h.source_id = "web";
    h.timestamp_ms = 1700000000000 + i;
    h.received_at_ms = 1700000000500 + i;
    std::string json = R"({"type":"track","event":"Product Added","seq":)" + std::to_string(i);
    if (json.size() + 12 < json_bytes) {
      json += R"(,"pad":")" + std::string(json_bytes - json.size() - 11, 'x') + "\"";
    }
    json += "}";
    events.emplace_back(std::move(h), std::move(json));
  }
  return events;
}

int seqOf(const QueueMessage& message) {
  return std::stoi(message.event.messageId().substr(2));
}

class EventQueueConformance : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Kind::Embedded: backend_ = std::make_unique<EmbeddedBackend>(); break;
      case Kind::NatsSingle: backend_ = std::make_unique<NatsBackend>(false); break;
      case Kind::NatsCluster: backend_ = std::make_unique<NatsBackend>(true); break;
    }
    queue_ = backend_->open(dead_letters_.sink());
    ASSERT_NE(queue_, nullptr);
  }

  void reopen() {
    queue_.reset();
    queue_ = backend_->open(dead_letters_.sink());
    ASSERT_NE(queue_, nullptr);
  }

  std::unique_ptr<Consumer> consumer(const std::string& name, StartAt start = StartAt::Earliest) {
    auto made = queue_->consumer(name, start);
    EXPECT_TRUE(made.ok()) << made.error().message;
    return made.ok() ? std::move(made).value() : nullptr;
  }

  sdk::Status appendAndWait(std::vector<sdk::Event> events) {
    std::promise<sdk::Status> done;
    auto result = done.get_future();
    auto status = queue_->append(std::move(events),
                                 [&done](sdk::Status s) { done.set_value(std::move(s)); });
    if (!status.ok()) {
      return status;
    }
    if (result.wait_for(10s) != std::future_status::ready) {
      return sdk::makeError(sdk::ErrorCode::Internal, "append not answered within 10 s");
    }
    return result.get();
  }

  // Fetches until `count` messages arrived or `within` passed.
  std::vector<QueueMessage> fetchN(Consumer& c, std::size_t count,
                                   std::chrono::milliseconds within = 10s) {
    std::vector<QueueMessage> out;
    const auto deadline = Clock::now() + within;
    while (out.size() < count && Clock::now() < deadline) {
      auto batch = c.fetch(count - out.size(), 1 << 20, 200ms);
      EXPECT_TRUE(batch.ok()) << batch.error().message;
      if (!batch.ok()) break;
      for (auto& m : *batch) out.push_back(std::move(m));
    }
    return out;
  }

  DeadLetters dead_letters_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<EventQueue> queue_;
};

TEST_P(EventQueueConformance, AppendedEventsComeBackIntactAndInEachPersonsOrder) {
  auto events = makeEvents(0, 200, 10);
  ASSERT_TRUE(appendAndWait(makeEvents(0, 200, 10)).ok());
  auto c = consumer("mailchimp");
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 200);
  ASSERT_EQ(got.size(), 200u);
  std::map<std::string, int> last_seq;
  std::set<int> seen;
  for (const auto& m : got) {
    const int seq = seqOf(m);
    EXPECT_TRUE(seen.insert(seq).second) << "fetched twice: " << seq;
    const sdk::Event& want = events[static_cast<std::size_t>(seq)];
    EXPECT_EQ(m.event.json(), want.json());
    EXPECT_EQ(m.event.userId(), want.userId());
    EXPECT_EQ(m.event.name(), want.name());
    EXPECT_EQ(m.event.header().source_id, "web");
    EXPECT_EQ(m.event.header().timestamp_ms, want.header().timestamp_ms);
    EXPECT_EQ(m.event.header().received_at_ms, want.header().received_at_ms);
    EXPECT_EQ(m.deliveries, 1u);
    auto [it, first] = last_seq.emplace(m.event.userId(), seq);
    if (!first) {
      EXPECT_LT(it->second, seq) << "person " << m.event.userId() << " out of order";
      it->second = seq;
    }
    ASSERT_TRUE(c->ack(m).ok());
  }
  EXPECT_EQ(c->stats().acked, 200u);
  EXPECT_EQ(c->stats().outstanding, 0u);
  EXPECT_GE(queue_->stats().appended, 200u);
}

TEST_P(EventQueueConformance, AnAcknowledgedAppendIsThereAfterReopening) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 30, 3)).ok());
  reopen();
  auto c = consumer("webhook");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(fetchN(*c, 30).size(), 30u);
}

TEST_P(EventQueueConformance, UnacknowledgedMessagesComeBackAndAcknowledgedOnesDoNot) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 20, 5)).ok());
  std::set<int> unacked;
  {
    auto c = consumer("hubspot");
    ASSERT_NE(c, nullptr);
    auto got = fetchN(*c, 20);
    ASSERT_EQ(got.size(), 20u);
    for (const auto& m : got) {
      if (seqOf(m) % 2 == 0) {
        ASSERT_TRUE(c->ack(m).ok());
      } else {
        unacked.insert(seqOf(m));
      }
    }
    // The consumer goes away (a crash, a stop) with ten messages unsettled.
  }
  reopen();
  auto c = consumer("hubspot");
  ASSERT_NE(c, nullptr);
  auto again = fetchN(*c, unacked.size());
  std::set<int> back;
  for (const auto& m : again) {
    back.insert(seqOf(m));
    EXPECT_GE(m.deliveries, 1u);
    ASSERT_TRUE(c->ack(m).ok());
  }
  EXPECT_EQ(back, unacked);
  // Nothing acknowledged comes back: the next message is the one appended now.
  ASSERT_TRUE(appendAndWait(makeEvents(100, 1, 1)).ok());
  auto next = fetchN(*c, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(seqOf(next[0]), 100);
  auto more = c->fetch(10, 1 << 20, 300ms);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->empty());
}

TEST_P(EventQueueConformance, ANakComesBackAfterItsDelayAndNotBefore) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 1, 1)).ok());
  auto c = consumer("sfmc");
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 1);
  ASSERT_EQ(got.size(), 1u);
  const auto nak_at = Clock::now();
  ASSERT_TRUE(c->nak(got[0], 800ms).ok());
  auto early = c->fetch(10, 1 << 20, 300ms);
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->empty()) << "came back before its delay";
  auto back = fetchN(*c, 1, 5s);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_GE(Clock::now() - nak_at, 800ms);
  EXPECT_EQ(seqOf(back[0]), 0);
  EXPECT_EQ(back[0].deliveries, 2u);
  ASSERT_TRUE(c->ack(back[0]).ok());
  EXPECT_EQ(c->stats().nacked, 1u);
  EXPECT_EQ(c->stats().fetched, 2u);
}

TEST_P(EventQueueConformance, TermHandsTheEventToTheDeadLetterSinkAndItNeverComesBack) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 2, 2)).ok());
  auto c = consumer("mailchimp");
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 2);
  ASSERT_EQ(got.size(), 2u);
  const QueueMessage& doomed = seqOf(got[0]) == 0 ? got[0] : got[1];
  const QueueMessage& fine = seqOf(got[0]) == 0 ? got[1] : got[0];
  ASSERT_TRUE(c->term(doomed, "400 invalid email address").ok());
  ASSERT_TRUE(c->ack(fine).ok());
  auto letters = dead_letters_.all();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].consumer, "mailchimp");
  EXPECT_EQ(letters[0].message_id, "m-0");
  EXPECT_EQ(letters[0].reason, "400 invalid email address");
  EXPECT_EQ(letters[0].deliveries, 1u);
  EXPECT_EQ(c->stats().terminated, 1u);
  ASSERT_TRUE(appendAndWait(makeEvents(10, 1, 1)).ok());
  auto next = fetchN(*c, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(seqOf(next[0]), 10);
  ASSERT_TRUE(c->ack(next[0]).ok());
  auto more = c->fetch(10, 1 << 20, 300ms);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->empty());
}

TEST_P(EventQueueConformance, TermKeepsTheMessageWhenTheDeadLetterSinkFails) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 1, 1)).ok());
  auto c = consumer("mailchimp");
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 1);
  ASSERT_EQ(got.size(), 1u);
  dead_letters_.fail = true;
  auto status = c->term(got[0], "410 gone");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(c->stats().outstanding, 1u);
  EXPECT_EQ(c->stats().terminated, 0u);
  dead_letters_.fail = false;
  EXPECT_TRUE(c->term(got[0], "410 gone").ok());
  EXPECT_EQ(dead_letters_.all().size(), 1u);
}

TEST_P(EventQueueConformance, AMessageKeptInProgressIsNotHandedOutAgain) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 1, 1)).ok());
  auto c = consumer("sfmc");
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 1);
  ASSERT_EQ(got.size(), 1u);
  // Twice the backend's redelivery timeout (2 s for the NATS backends here), extended all along.
  const auto timeout = c->redeliveryTimeout();
  const auto until = Clock::now() + (timeout.count() > 0 ? 2 * timeout : 1s);
  while (Clock::now() < until) {
    ASSERT_TRUE(c->inProgress(got[0]).ok());
    auto again = c->fetch(10, 1 << 20, timeout.count() > 0 ? timeout / 4 : 250ms);
    ASSERT_TRUE(again.ok());
    ASSERT_TRUE(again->empty()) << "handed out again while in progress";
  }
  ASSERT_TRUE(c->ack(got[0]).ok());
  EXPECT_EQ(c->inProgress(got[0]).error().code, sdk::ErrorCode::InvalidArgument);
}

TEST_P(EventQueueConformance, SettlingAMessageTwiceIsRefused) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 1, 1)).ok());
  auto c = consumer("mailchimp");
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(c->ack(got[0]).ok());
  EXPECT_EQ(c->ack(got[0]).error().code, sdk::ErrorCode::InvalidArgument);
  EXPECT_EQ(c->nak(got[0], 1ms).error().code, sdk::ErrorCode::InvalidArgument);
  EXPECT_EQ(c->term(got[0], "x").error().code, sdk::ErrorCode::InvalidArgument);
}

TEST_P(EventQueueConformance, ConsumersAreIndependent) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 50, 7)).ok());
  auto a = consumer("mailchimp");
  auto b = consumer("warehouse");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto from_a = fetchN(*a, 50);
  ASSERT_EQ(from_a.size(), 50u);
  for (const auto& m : from_a) ASSERT_TRUE(a->ack(m).ok());
  auto from_b = fetchN(*b, 50);
  ASSERT_EQ(from_b.size(), 50u);
  std::set<int> seqs;
  for (const auto& m : from_b) seqs.insert(seqOf(m));
  EXPECT_EQ(seqs.size(), 50u);
}

TEST_P(EventQueueConformance, LatestStartsAfterWhatIsThereAndAStoredPositionWinsOverStart) {
  ASSERT_TRUE(appendAndWait(makeEvents(0, 5, 2)).ok());
  {
    auto c = consumer("crm", StartAt::Latest);
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(appendAndWait(makeEvents(5, 3, 2)).ok());
    auto got = fetchN(*c, 3);
    ASSERT_EQ(got.size(), 3u);
    for (const auto& m : got) {
      EXPECT_GE(seqOf(m), 5);
      ASSERT_TRUE(c->ack(m).ok());
    }
  }
  ASSERT_TRUE(appendAndWait(makeEvents(8, 4, 2)).ok());
  reopen();
  auto c = consumer("crm", StartAt::Earliest);  // resumes; `start` is for the first time only
  ASSERT_NE(c, nullptr);
  auto got = fetchN(*c, 4);
  ASSERT_EQ(got.size(), 4u);
  for (const auto& m : got) EXPECT_GE(seqOf(m), 8);
  auto more = c->fetch(10, 1 << 20, 300ms);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->empty());
}

TEST_P(EventQueueConformance, AFetchWaitsForTheFirstMessageAndWakesWhenOneArrives) {
  auto c = consumer("webhook");
  ASSERT_NE(c, nullptr);
  const auto start = Clock::now();
  auto none = c->fetch(10, 1 << 20, 300ms);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_GE(Clock::now() - start, 250ms);

  auto waiting = std::async(std::launch::async, [&] { return c->fetch(10, 1 << 20, 8s); });
  std::this_thread::sleep_for(200ms);
  const auto appended_at = Clock::now();
  ASSERT_TRUE(appendAndWait(makeEvents(0, 1, 1)).ok());
  auto got = waiting.get();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_LT(Clock::now() - appended_at, 2s);
}

TEST_P(EventQueueConformance, RetentionFreesOnlyWhatEveryConsumerFinished) {
  auto a = consumer("mailchimp");
  auto b = consumer("warehouse");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(appendAndWait(makeEvents(0, 300, 11, 1000)).ok());
  const auto full = queue_->stats().stored_bytes;
  ASSERT_GT(full, 250'000u);

  for (const auto& m : fetchN(*a, 300)) ASSERT_TRUE(a->ack(m).ok());
  std::this_thread::sleep_for(300ms);  // acknowledgements may travel asynchronously
  ASSERT_TRUE(queue_->retain().ok());
  EXPECT_GE(queue_->stats().stored_bytes, full * 9 / 10) << "freed what 'warehouse' still needs";

  for (const auto& m : fetchN(*b, 300)) ASSERT_TRUE(b->ack(m).ok());
  const auto deadline = Clock::now() + 5s;
  std::uint64_t left = full;
  while (Clock::now() < deadline) {
    ASSERT_TRUE(queue_->retain().ok());
    left = queue_->stats().stored_bytes;
    if (left < full / 5) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LT(left, full / 5);
}

TEST_P(EventQueueConformance, AnEventAboveTheSizeLimitIsRefusedWhole) {
  auto events = makeEvents(0, 2, 1);
  events.push_back(makeEvents(2, 1, 1, 17u << 20)[0]);
  bool called = false;
  auto status = queue_->append(std::move(events), [&called](sdk::Status) { called = true; });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, sdk::ErrorCode::InvalidArgument);
  auto c = consumer("webhook");
  ASSERT_NE(c, nullptr);
  auto none = c->fetch(10, 1 << 20, 300ms);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "part of a refused call was stored";
  EXPECT_FALSE(called);
}

INSTANTIATE_TEST_SUITE_P(Backends, EventQueueConformance,
                         ::testing::Values(Kind::Embedded, Kind::NatsSingle, Kind::NatsCluster),
                         kindName);

}  // namespace
}  // namespace junction::core::queue
