// The delivery engine over a real queue in a temp directory: order, retries with Retry-After
// (real HTTP through the test_webhook plugin and a scripted server), dead letters and replay,
// per-person order under retries, isolation between destinations, cursor resume, start
// positions, filters and plugin faults.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <future>
#include <map>

#include "core/config/daemon_config.h"
#include "core/delivery/delivery_engine.h"
#include "core/plugin/plugin_registry.h"
#include "core/runtime/runtime.h"
#include "core/telemetry/metrics_registry.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/core/delivery/scripted_destination.h"

namespace junction::core::delivery {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

sdk::Event makeEvent(const std::string& id, const std::string& user, const std::string& type = "track") {
  boost::json::object body{{"type", type}, {"userId", user}, {"messageId", id}};
  if (type == "track") {
    body["event"] = "Clicked";
  }
  auto e = sdk::makeEvent(body, "web");
  EXPECT_TRUE(e);
  auto h = e->header();
  h.received_at_ms = runtime::SystemClock().nowMs();
  return sdk::Event(h, std::string(e->json()));
}

class Harness {
 public:
  explicit Harness(std::string destinations_yaml, std::uint64_t segment_bytes = 1 << 20) {
    char tmpl[] = "/tmp/junction-engine-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    segment_bytes_ = segment_bytes;
    config::ConfigErrors errors;
    auto loaded = config::loadConfigText("destinations:\n" + destinations_yaml, "test.yaml",
                                         config::processEnvironment(), errors);
    EXPECT_TRUE(loaded) << config::formatErrors(errors);
    config_ = std::move(*loaded);
    open();
  }
  ~Harness() {
    close();
    fs::remove_all(dir_);
  }

  void open() {
    queue::LogOptions options;
    options.path = (dir_ / "queue").string();
    options.segment_bytes = segment_bytes_;
    options.fsync = queue::FsyncPolicy::Never;
    auto log = queue::Log::open(options, nullptr);
    ASSERT_TRUE(log) << log.error().message;
    log_ = std::move(log).value();
    engine_ = std::make_unique<DeliveryEngine>(*log_, metrics_, logger_, clock_);
    ASSERT_TRUE(engine_->open(dir_.string()).ok());
  }
  void add(std::size_t index, std::shared_ptr<sdk::Destination> destination, WorkerLimits limits = {},
           std::shared_ptr<AccountThrottle> throttle = nullptr) {
    ASSERT_TRUE(engine_->add(config_.destinations.at(index), std::move(destination), limits,
                             std::move(throttle))
                    .ok());
  }
  void start() { ASSERT_TRUE(engine_->start().ok()); }
  void close() {
    if (engine_) {
      engine_->stop();
    }
    engine_.reset();
    log_.reset();
  }

  void append(std::vector<sdk::Event> events) {
    std::promise<void> done;
    auto st = log_->append(std::move(events), [&](queue::AppendResult r) {
      EXPECT_TRUE(r.status.ok());
      done.set_value();
    });
    ASSERT_TRUE(st.ok()) << st.message();
    done.get_future().wait();
  }

  template <typename Pred>
  static bool waitFor(Pred pred, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) {
        return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return pred();
  }

  DeliveryEngine& engine() { return *engine_; }
  queue::Log& log() { return *log_; }
  const fs::path& dir() const { return dir_; }
  sdk::testing::RecordingLogger& logger() { return logger_; }
  // The committed cursor state of `dest`, read as a restart would (after close()).
  std::optional<queue::CursorState> storedCursor(const std::string& dest) const {
    auto store = queue::CursorStore::open(queue::CursorStoreOptions{dir_.string(), 0ms});
    EXPECT_TRUE(store);
    return (*store)->state(dest);
  }
  telemetry::MetricsRegistry& metrics() { return metrics_; }
  double metric(const std::string& name, const std::string& dest, sdk::Labels extra = {}) {
    sdk::Labels labels{{"destination", dest}};
    labels.insert(labels.end(), extra.begin(), extra.end());
    return metrics_.valueOf(name, labels).value_or(0);
  }

 private:
  fs::path dir_;
  std::uint64_t segment_bytes_;
  config::DaemonConfig config_;
  telemetry::MetricsRegistry metrics_;
  sdk::testing::RecordingLogger logger_;
  runtime::SystemClock clock_;
  std::unique_ptr<queue::Log> log_;
  std::unique_ptr<DeliveryEngine> engine_;
};

std::vector<std::string> ids(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(prefix + std::to_string(i));
  }
  return out;
}

const char* kFast = R"(  - id: a
    plugin: x
    start: earliest
    batch: { max_events: 50, max_wait: 0 }
    retry: { initial_backoff: 5ms, max_backoff: 20ms, max_attempts: 4 }
)";

TEST(DeliveryEngineTest, DeliversEverythingInOrderAndCommitsTheCursor) {
  Harness h(kFast);
  auto dest = std::make_shared<ScriptedDestination>();
  h.add(0, dest);
  h.start();
  std::vector<sdk::Event> events;
  for (const auto& id : ids("m", 500)) {
    events.push_back(makeEvent(id, "user-" + std::to_string(id.size())));
  }
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 500; }));
  // Per person, in order received (people interleave).
  std::map<std::size_t, std::vector<std::string>> by_person;
  for (const auto& id : dest->delivered()) {
    by_person[id.size()].push_back(id);
  }
  std::map<std::size_t, std::vector<std::string>> expected;
  for (const auto& id : ids("m", 500)) {
    expected[id.size()].push_back(id);
  }
  EXPECT_EQ(by_person, expected);
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().worker("a")->cursor() == h.log().durableEnd(); }));
  EXPECT_EQ(h.metric("junction_events_delivered_total", "a"), 500);
  EXPECT_GE(dest->calls(), 10u);  // batches of at most 50
  // Each delivery's time since acceptance, by destination.
  EXPECT_THAT(h.metrics().renderPrometheus(),
              HasSubstr("junction_delivery_latency_seconds_count{destination=\"a\"} 500\n"));
}

TEST(DeliveryEngineTest, RetryHonoursRetryAfterOverRealHttp) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/hook").reply(429, R"({"detail":"slow down"})", {{"Retry-After", "1"}}).times(1);
  server.when("POST", "/hook").reply(200, R"({"ok":true})");
  Harness h(std::string(kFast) + "    config: { url: \"" + server.baseUrl() + "/hook\" }\n");
  plugin::PluginRegistry registry;
  auto loaded = registry.load(fs::path(JUNCTION_BINARY_DIR) / "tests/fixtures/sources/libjunction_test_webhook.so");
  ASSERT_TRUE(loaded) << loaded.error().message;
  sdk::testing::FakeDestinationContext context;
  boost::json::object config{{"url", server.baseUrl() + "/hook"}, {"token", ""}};
  auto dest = (*loaded)->createDestination(config, context);
  ASSERT_TRUE(dest) << dest.error().message;
  h.add(0, *dest);
  h.start();
  auto t0 = std::chrono::steady_clock::now();
  h.append({makeEvent("r1", "u1")});
  ASSERT_TRUE(server.waitForRequests(2, 10s));
  // The backoff alone is at most 20 ms: a second attempt after >= 1 s is the Retry-After.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1000ms);
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[1].body, HasSubstr("\"r1\""));
  EXPECT_EQ(h.metric("junction_events_retried_total", "a"), 1);
  ASSERT_TRUE(Harness::waitFor([&] { return h.metric("junction_events_delivered_total", "a") == 1; }));
  h.close();  // the engine stops before the plugin's context, declared after it, is destroyed
}

TEST(DeliveryEngineTest, RetryAfterDelaysTheNextAttempt) {
  Harness h(kFast);
  std::vector<std::chrono::steady_clock::time_point> attempts;
  std::mutex mutex;
  auto dest = std::make_shared<ScriptedDestination>([&](const sdk::Event&, int attempt) {
    std::lock_guard lock(mutex);
    attempts.push_back(std::chrono::steady_clock::now());
    return attempt == 1 ? sdk::Outcome::retry("HTTP 429", 700ms) : sdk::Outcome::delivered();
  });
  h.add(0, dest);
  h.start();
  h.append({makeEvent("x", "u")});
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 1; }));
  std::lock_guard lock(mutex);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_GE(attempts[1] - attempts[0], 700ms);
}

TEST(DeliveryEngineTest, ExhaustedRetriesGoToTheDeadLetterQueueAndReplayDelivers) {
  Harness h(kFast);
  std::atomic<bool> healthy{false};
  auto dest = std::make_shared<ScriptedDestination>([&](const sdk::Event&, int) {
    return healthy ? sdk::Outcome::delivered() : sdk::Outcome::retry("HTTP 503: {\"error\":\"down\"}");
  });
  h.add(0, dest);
  h.start();
  h.append({makeEvent("d1", "u1"), makeEvent("d2", "u2")});
  ASSERT_TRUE(Harness::waitFor([&] { return h.metric("junction_events_dead_lettered_total", "a") == 2; }));
  auto rows = h.engine().deadLetters().list({.destination = "a"});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  auto d2 = std::find_if(rows->begin(), rows->end(),
                         [](const DeadLetter& d) { return d.event.messageId() == "d2"; });
  ASSERT_NE(d2, rows->end());
  EXPECT_EQ(d2->attempts, 4);
  EXPECT_EQ(d2->reason, "retries exhausted after 4 attempts: HTTP 503: {\"error\":\"down\"}");
  EXPECT_EQ(d2->event.header().personKey(), "u2");
  // The cursor moved on: dead letters do not hold the queue.
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().worker("a")->cursor() == h.log().durableEnd(); }));

  healthy = true;
  auto n = h.engine().deadLetters().markForReplay({.destination = "a", .ids = {d2->id}});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1u);
  h.engine().worker("a")->notifyReplay();
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 1; }));
  EXPECT_EQ(dest->delivered()[0], "d2");
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().deadLetters().count("a").value() == 1; }));
  auto purged = h.engine().deadLetters().purge({.destination = "a"});
  EXPECT_EQ(purged.value(), 1u);
  EXPECT_EQ(h.engine().deadLetters().count("a").value(), 0u);
}

TEST(DeliveryEngineTest, PermanentFailureIsDeadLetteredAtOnceWithTheVendorReason) {
  Harness h(kFast);
  auto dest = std::make_shared<ScriptedDestination>([](const sdk::Event& e, int) {
    return e.messageId() == "bad" ? sdk::Outcome::failed("HTTP 400: {\"title\":\"Invalid Resource\"}")
                                  : sdk::Outcome::delivered();
  });
  h.add(0, dest);
  h.start();
  h.append({makeEvent("ok1", "u1"), makeEvent("bad", "u2"), makeEvent("ok2", "u3")});
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 2; }));
  ASSERT_TRUE(Harness::waitFor([&] { return h.metric("junction_events_dead_lettered_total", "a") == 1; }));
  auto rows = h.engine().deadLetters().list({.destination = "a"}).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempts, 1);
  EXPECT_EQ(rows[0].reason, "HTTP 400: {\"title\":\"Invalid Resource\"}");
}

TEST(DeliveryEngineTest, ARetryingPersonHoldsOnlyTheirOwnLaterEvents) {
  Harness h(R"(  - id: a
    plugin: x
    start: earliest
    batch: { max_events: 10, max_wait: 0 }
    retry: { initial_backoff: 100ms, max_backoff: 100ms, max_attempts: 100 }
)");
  std::atomic<int> alice_failures{0};
  auto dest = std::make_shared<ScriptedDestination>([&](const sdk::Event& e, int) {
    if (e.messageId() == "alice-0" && alice_failures < 3) {
      ++alice_failures;
      return sdk::Outcome::retry("HTTP 500");
    }
    return sdk::Outcome::delivered();
  });
  h.add(0, dest);
  h.start();
  std::vector<sdk::Event> events;
  for (int i = 0; i < 5; ++i) {
    events.push_back(makeEvent("alice-" + std::to_string(i), "alice"));
    events.push_back(makeEvent("bob-" + std::to_string(i), "bob"));
  }
  h.append(std::move(events));
  // Bob's events all flow while Alice's first event is being retried.
  ASSERT_TRUE(Harness::waitFor([&] {
    auto d = dest->delivered();
    return std::count_if(d.begin(), d.end(), [](const auto& id) { return id.rfind("bob", 0) == 0; }) == 5;
  }));
  auto early = dest->delivered();
  EXPECT_EQ(std::count_if(early.begin(), early.end(), [](const auto& id) { return id.rfind("alice", 0) == 0; }), 0);
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 10; }));
  std::vector<std::string> alice;
  for (const auto& id : dest->delivered()) {
    if (id.rfind("alice", 0) == 0) {
      alice.push_back(id);
    }
  }
  EXPECT_THAT(alice, ElementsAreArray(ids("alice-", 5)));  // in order, after the retries
}

TEST(DeliveryEngineTest, OrderingNoneBatchesOnePersonsEventsTogether) {
  Harness h(R"(  - id: a
    plugin: x
    start: earliest
    ordering: none
    batch: { max_events: 100, max_wait: 0 }
    retry: { initial_backoff: 50ms, max_backoff: 50ms, max_attempts: 100 }
)");
  std::atomic<int> failures{0};
  auto dest = std::make_shared<ScriptedDestination>([&](const sdk::Event& e, int) {
    if (e.messageId() == "m0" && failures < 3) {
      ++failures;
      return sdk::Outcome::retry("HTTP 500");
    }
    return sdk::Outcome::delivered();
  });
  h.add(0, dest);
  h.start();
  std::vector<sdk::Event> events;
  for (const auto& id : ids("m", 500)) {
    events.push_back(makeEvent(id, "one-person"));
  }
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 500; }));
  // One person's 500 events in batches of up to 100, not one per call; and the retried first
  // event held none of the later ones (they were delivered before it).
  EXPECT_LE(dest->calls(), 20u);
  EXPECT_EQ(dest->delivered().back(), "m0");
  EXPECT_EQ(failures.load(), 3);
}

TEST(DeliveryEngineTest, ByDefaultOnePersonsEventsGoOnePerCall) {
  Harness h(kFast);
  auto dest = std::make_shared<ScriptedDestination>();
  h.add(0, dest);
  h.start();
  std::vector<sdk::Event> events;
  for (const auto& id : ids("m", 30)) {
    events.push_back(makeEvent(id, "one-person"));
  }
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 30; }));
  EXPECT_EQ(dest->calls(), 30u);
}

TEST(DeliveryEngineTest, TheDeliveredCountIsCommittedWithTheCursorAndCountsEachEventOnce) {
  Harness h(kFast);
  std::atomic<bool> healthy{false};
  auto dest = std::make_shared<ScriptedDestination>([&](const sdk::Event& e, int) {
    if (e.messageId() == "a7" && !healthy) {
      return sdk::Outcome::failed("HTTP 400: bad");
    }
    return sdk::Outcome::delivered();
  });
  h.add(0, dest);
  h.start();
  std::vector<sdk::Event> events;
  for (const auto& id : ids("a", 100)) {
    events.push_back(makeEvent(id, "u" + id));
  }
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().worker("a")->cursor() == h.log().durableEnd(); }));
  h.close();
  auto state = h.storedCursor("a");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->delivered, 99u);  // the dead letter is not counted

  h.open();
  auto second = std::make_shared<ScriptedDestination>();
  h.add(0, second);
  h.start();
  h.append({makeEvent("b0", "u")});
  ASSERT_TRUE(Harness::waitFor([&] { return second->delivered().size() == 1; }));
  auto rows = h.engine().deadLetters().list({.destination = "a"}).value();
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_EQ(h.engine().deadLetters().markForReplay({.destination = "a", .ids = {rows[0].id}}).value(), 1u);
  h.engine().worker("a")->notifyReplay();
  ASSERT_TRUE(Harness::waitFor([&] { return second->delivered().size() == 2; }));
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().deadLetters().count("a").value() == 0; }));
  h.close();
  EXPECT_EQ(h.storedCursor("a")->delivered, 101u);  // 99 + b0 + the replayed a7
}

TEST(DeliveryEngineTest, AStopWithEventsFinishedAboveTheCursorDeliversNoneOfThemTwice) {
  Harness h(R"(  - id: a
    plugin: x
    start: earliest
    batch: { max_events: 10, max_wait: 0 }
    retry: { initial_backoff: 60s, max_backoff: 60s, max_attempts: 100 }
)");
  // alice-0 fails once and waits a minute for its retry: the cursor stays at it while every
  // later event of everyone else is delivered above it.
  std::atomic<int> alice_failures{0};
  auto first = std::make_shared<ScriptedDestination>([&](const sdk::Event& e, int) {
    if (e.messageId() == "alice-0" && alice_failures++ == 0) {
      return sdk::Outcome::retry("HTTP 503");
    }
    return sdk::Outcome::delivered();
  });
  h.add(0, first);
  h.start();
  std::vector<sdk::Event> events{makeEvent("alice-0", "alice")};
  for (const auto& id : ids("bob-", 200)) {
    events.push_back(makeEvent(id, "bob" + id));
  }
  events.push_back(makeEvent("alice-1", "alice"));
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return first->delivered().size() == 200; }));
  h.close();  // a graceful stop (SIGTERM): alice-0 and alice-1 are not delivered yet
  auto stored = h.storedCursor("a");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->delivered, 200u);
  EXPECT_FALSE(stored->done.empty());

  // A second instance reads past the finished ranges, but alice-0 fails again, so the cursor
  // stays below them; carol's new events are delivered above. It stops too.
  h.open();
  std::atomic<int> second_tries{0};
  auto second = std::make_shared<ScriptedDestination>([&](const sdk::Event& e, int) {
    if (e.messageId() == "alice-0") {
      ++second_tries;
      return sdk::Outcome::retry("HTTP 503");
    }
    return sdk::Outcome::delivered();
  });
  h.add(0, second);
  h.start();
  std::vector<sdk::Event> more;
  for (const auto& id : ids("carol-", 20)) {
    more.push_back(makeEvent(id, "carol" + id));
  }
  h.append(std::move(more));
  ASSERT_TRUE(Harness::waitFor([&] { return second->delivered().size() == 20 && second_tries > 0; }));
  h.close();
  EXPECT_EQ(h.storedCursor("a")->delivered, 220u);

  h.open();
  auto third = std::make_shared<ScriptedDestination>();
  h.add(0, third);
  h.start();
  ASSERT_TRUE(Harness::waitFor([&] { return third->delivered().size() == 2; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_THAT(third->delivered(), ElementsAreArray({"alice-0", "alice-1"}));  // nothing twice
  h.close();
  EXPECT_EQ(h.storedCursor("a")->delivered, 222u);
  EXPECT_TRUE(h.storedCursor("a")->done.empty());
}

TEST(DeliveryEngineTest, ACursorFileThatCannotBeWrittenIsLoggedAndCounted) {
  Harness h(kFast);
  auto dest = std::make_shared<ScriptedDestination>();
  h.add(0, dest);
  h.start();
  // A directory where the temporary file goes: every durable cursor write fails (as root, a
  // read-only directory would not stop it).
  fs::create_directories(h.dir() / "cursors" / "cursors.dat.tmp");
  h.append({makeEvent("c1", "u")});
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 1; }));
  ASSERT_TRUE(Harness::waitFor([&] {
    return h.metrics().valueOf("junction_cursor_write_errors_total", {}).value_or(0) > 0;
  }, 5s));
  EXPECT_TRUE(Harness::waitFor([&] {
    return h.logger().contains("cursor file cannot be written");
  }));
  fs::remove_all(h.dir() / "cursors" / "cursors.dat.tmp");
}

TEST(DeliveryEngineTest, ADeadDestinationDoesNotSlowAHealthyOne) {
  Harness h(R"(  - id: dead
    plugin: x
    start: earliest
    batch: { max_events: 100, max_wait: 0 }
    retry: { initial_backoff: 50ms, max_backoff: 200ms, max_attempts: 1000 }
  - id: healthy
    plugin: y
    start: earliest
    batch: { max_events: 100, max_wait: 0 }
)");
  auto dead = std::make_shared<ScriptedDestination>(
      [](const sdk::Event&, int) { return sdk::Outcome::retry("connection refused"); }, 100ms);
  auto healthy = std::make_shared<ScriptedDestination>();
  h.add(0, dead, WorkerLimits{.max_window_events = 1000});
  h.add(1, healthy);
  h.start();
  const int n = 20'000;
  std::vector<sdk::Event> events;
  for (int i = 0; i < n; ++i) {
    events.push_back(makeEvent("e" + std::to_string(i), "u" + std::to_string(i % 500)));
  }
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return healthy->delivered().size() == static_cast<std::size_t>(n); }, 20s));
  EXPECT_EQ(dead->delivered().size(), 0u);
  EXPECT_LE(h.engine().worker("dead")->stats().window_events, 1000u);  // bounded window
  EXPECT_TRUE(Harness::waitFor([&] { return h.engine().worker("healthy")->cursor() == h.log().durableEnd(); }));
}

TEST(DeliveryEngineTest, RestartResumesFromTheCommittedCursor) {
  Harness h(kFast);
  auto first = std::make_shared<ScriptedDestination>();
  h.add(0, first);
  h.start();
  std::vector<sdk::Event> events;
  for (const auto& id : ids("a", 100)) {
    events.push_back(makeEvent(id, "u"));
  }
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return first->delivered().size() == 100; }));
  h.close();
  h.open();
  auto second = std::make_shared<ScriptedDestination>();
  h.add(0, second);
  h.start();
  h.append({makeEvent("b0", "u")});
  ASSERT_TRUE(Harness::waitFor([&] { return second->delivered().size() == 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_THAT(second->delivered(), ElementsAreArray({"b0"}));  // nothing delivered twice
}

TEST(DeliveryEngineTest, ANewDestinationStartsAtTheTailUnlessEarliest) {
  Harness h(R"(  - id: late
    plugin: x
    batch: { max_wait: 0 }
  - id: backfill
    plugin: y
    start: earliest
    batch: { max_wait: 0 }
)");
  h.append({makeEvent("old", "u")});
  auto late = std::make_shared<ScriptedDestination>();
  auto backfill = std::make_shared<ScriptedDestination>();
  h.add(0, late);
  h.add(1, backfill);
  h.start();
  h.append({makeEvent("new", "u")});
  ASSERT_TRUE(Harness::waitFor([&] { return backfill->delivered().size() == 2 && late->delivered().size() == 1; }));
  EXPECT_THAT(late->delivered(), ElementsAreArray({"new"}));
  EXPECT_THAT(backfill->delivered(), ElementsAreArray({"old", "new"}));
}

TEST(DeliveryEngineTest, FiltersAndConsentAreCountedNotDelivered) {
  Harness h(R"(  - id: a
    plugin: x
    start: earliest
    batch: { max_wait: 0 }
    filter: { types: [track] }
    consent: [marketing]
)");
  auto dest = std::make_shared<ScriptedDestination>();
  h.add(0, dest);
  h.start();
  auto consented = [](const std::string& id, bool granted) {
    boost::json::object body{{"type", "track"}, {"event", "Bought"}, {"userId", "u"}, {"messageId", id},
                             {"context", {{"consent", {{"categoryPreferences", {{"marketing", granted}}}}}}}};
    return sdk::makeEvent(body, "web").value();
  };
  h.append({consented("yes", true), consented("no", false), makeEvent("unknown", "u"),
            makeEvent("ident", "u", "identify")});
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().worker("a")->cursor() == h.log().durableEnd(); }));
  EXPECT_THAT(dest->delivered(), ElementsAreArray({"yes"}));
  EXPECT_EQ(h.metric("junction_events_consent_blocked_total", "a", {{"reason", "consent_denied"}}), 1);
  EXPECT_EQ(h.metric("junction_events_consent_blocked_total", "a", {{"reason", "consent_unknown"}}), 1);
  EXPECT_EQ(h.metric("junction_events_filtered_total", "a", {{"reason", "type"}}), 1);
}

class ThrowingDestination final : public sdk::Destination {
 public:
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    if (calls_++ == 0) {
      throw std::runtime_error("boom");
    }
    return std::vector<sdk::Outcome>(batch.size());
  }
  std::atomic<int> calls_{0};
};

TEST(DeliveryEngineTest, APluginExceptionIsAFaultAndTheBatchIsRetried) {
  Harness h(kFast);
  auto dest = std::make_shared<ThrowingDestination>();
  h.add(0, dest);
  h.start();
  h.append({makeEvent("t", "u")});
  ASSERT_TRUE(Harness::waitFor([&] { return h.metric("junction_events_delivered_total", "a") == 1; }));
  EXPECT_EQ(h.metric("junction_plugin_faults_total", "a"), 1);
  EXPECT_EQ(dest->calls_.load(), 2);
}

TEST(DeliveryEngineTest, RetentionDeletesSegmentsEveryDestinationHasPassed) {
  Harness h(kFast, 64 * 1024);
  auto dest = std::make_shared<ScriptedDestination>();
  h.add(0, dest);
  h.start();
  for (int round = 0; round < 4; ++round) {
    std::vector<sdk::Event> events;
    for (int i = 0; i < 400; ++i) {
      events.push_back(makeEvent("r" + std::to_string(round) + "-" + std::to_string(i), "u"));
    }
    h.append(std::move(events));
  }
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 1600; }));
  ASSERT_TRUE(Harness::waitFor([&] { return h.engine().worker("a")->cursor() == h.log().durableEnd(); }));
  auto before = h.log().segmentCount();
  ASSERT_GT(before, 2u);
  EXPECT_EQ(h.engine().applyRetention(), before - 1);
  EXPECT_EQ(h.log().segmentCount(), 1u);
}

}  // namespace
}  // namespace junction::core::delivery

namespace junction::core::delivery {
namespace {

TEST(DeliveryEngineRateLimitTest, TheTokenBucketPacesDeliveries) {
  Harness h(R"(  - id: a
    plugin: x
    start: earliest
    batch: { max_events: 100, max_wait: 0 }
    rate_limit: { per_second: 100, burst: 10 }
)");
  auto dest = std::make_shared<ScriptedDestination>();
  h.add(0, dest);
  h.start();
  std::vector<sdk::Event> events;
  for (int i = 0; i < 110; ++i) {
    events.push_back(makeEvent("p" + std::to_string(i), "user" + std::to_string(i)));
  }
  auto t0 = std::chrono::steady_clock::now();
  h.append(std::move(events));
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 110; }));
  // 10 go at once (the burst), the other 100 at 100/s: about a second, never much less.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_GE(dest->calls(), 11u);  // no call carries more than the burst
}

// --- account-wide throttling (a plugin says the vendor limits the whole account) --------------

TEST(AccountThrottleTest, NeverSignalledMeansNoLimit) {
  AccountThrottle t;
  auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    t.take(now);
    EXPECT_EQ(t.nextCallAt(now), now);
  }
  EXPECT_FALSE(t.rate().has_value());
}

TEST(AccountThrottleTest, ASignalPausesThenHalvesTheObservedRateWhichGrowsBack) {
  AccountThrottle t;
  auto t0 = std::chrono::steady_clock::now();
  // 100 calls/s for a second.
  for (int i = 0; i < 100; ++i) {
    t.take(t0 + i * 10ms);
  }
  auto now = t0 + 1s;
  t.signal(2s, now);
  EXPECT_TRUE(t.paused(now));
  // Nothing before the pause ends.
  EXPECT_EQ(t.nextCallAt(now), now + 2s);
  ASSERT_TRUE(t.rate().has_value());
  EXPECT_NEAR(*t.rate(), 50.0, 2.0);  // half of ~100/s
  // A second signal within a second (parallel calls hitting the same limit) halves only once.
  t.signal(0ms, now + 500ms);
  EXPECT_EQ(t.nextCallAt(now + 500ms), now + 2s);
  EXPECT_NEAR(*t.rate(), 50.0, 2.0);
  // After the pause: calls spaced at the halved rate.
  auto after = now + 2s;
  t.take(after);
  EXPECT_NEAR(std::chrono::duration<double>(t.nextCallAt(after) - after).count(), 1.0 / 50, 0.002);
  // Each quiet second after the pause grows the rate by a quarter; far enough, it is unlimited.
  (void)t.nextCallAt(after + 1s + 1ms);
  EXPECT_NEAR(*t.rate(), 62.5, 3.0);
  (void)t.nextCallAt(after + 60s);
  EXPECT_FALSE(t.rate().has_value());
}

TEST(AccountThrottleTest, TheRateNeverFallsBelowTheProbeRate) {
  AccountThrottle t;
  auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    now += 1100ms;
    t.signal(0ms, now);
    (void)t.nextCallAt(now);
  }
  EXPECT_DOUBLE_EQ(*t.rate(), AccountThrottle::kMinRate);
}

TEST(DeliveryEngineThrottleTest, AThrottleHoldsEveryPersonNotOnlyTheOneRetried) {
  Harness h{std::string(kFast)};
  auto throttle = std::make_shared<AccountThrottle>();
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::time_point> call_times;
  std::atomic<bool> limited{true};
  // The first call answers 429 for the account: throttle 600 ms, retry its events after it.
  auto dest = std::make_shared<ScriptedDestination>([&](const sdk::Event&, int) {
    {
      std::lock_guard lock(mutex);
      call_times.push_back(std::chrono::steady_clock::now());
    }
    if (limited.exchange(false)) {
      throttle->signal(600ms, std::chrono::steady_clock::now());
      return sdk::Outcome::retry("HTTP 429: account over its limit", 600ms);
    }
    return sdk::Outcome::delivered();
  });
  h.add(0, dest, {}, throttle);
  h.start();
  h.append({makeEvent("first", "p0")});
  ASSERT_TRUE(Harness::waitFor([&] { return dest->calls() == 1; }));
  auto signalled = std::chrono::steady_clock::now();
  // Other people's events arrive during the pause: none of them may reach the plugin before it.
  std::vector<sdk::Event> others;
  for (int i = 1; i <= 20; ++i) {
    others.push_back(makeEvent("e" + std::to_string(i), "p" + std::to_string(i)));
  }
  h.append(std::move(others));
  ASSERT_TRUE(Harness::waitFor([&] { return dest->delivered().size() == 21; }));
  std::lock_guard lock(mutex);
  ASSERT_GE(call_times.size(), 22u);
  EXPECT_GE(call_times[1] - signalled, 550ms);  // the pause held everyone
  EXPECT_TRUE(throttle->rate().has_value());
  EXPECT_GT(h.metric("junction_destination_adaptive_rate", "a"), 0);
}

}  // namespace
}  // namespace junction::core::delivery
