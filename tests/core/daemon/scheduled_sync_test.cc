// Scheduled syncs over real parts: the embedded queue, ingest, the profile service on RocksDB,
// the delivery engine with a recording destination. Only the sync's clock is manual: the tests
// move it to a slot and watch the run happen (or not).

#include "core/daemon/scheduled_sync.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <set>

#include "core/config/daemon_config.h"
#include "core/delivery/delivery_engine.h"
#include "core/ingest/ingest.h"
#include "core/privacy/privacy_store.h"
#include "core/profiles/profile_service.h"
#include "core/profiles/rocksdb_profile_store.h"
#include "core/runtime/runtime.h"
#include "core/telemetry/metrics_registry.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/core/daemon/pipeline.h"
#include "tests/support/eventually.h"

namespace junction::core::daemon {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using junction::testing::eventually;

// 2026-12-07T10:30:00Z.
constexpr std::int64_t kMorning = 1796639400000;
constexpr std::int64_t kHour = 3'600'000;

// Records what it receives; can be made to hold every call (a slow vendor) or to refuse (down).
class Recorder final : public sdk::Destination {
 public:
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    {
      std::unique_lock lock(mutex_);
      ++calls_in_flight_;
      max_in_flight_ = std::max(max_in_flight_, calls_in_flight_);
      released_.wait(lock, [&] { return !held_; });
    }
    std::vector<sdk::Outcome> out;
    std::lock_guard lock(mutex_);
    --calls_in_flight_;
    for (const auto& e : batch) {
      if (down_) {
        out.push_back(sdk::Outcome::retry("down", 10ms));
        continue;
      }
      received_.emplace_back(e.messageId(), std::string(e.json()));
      out.push_back(sdk::Outcome::delivered());
    }
    return out;
  }
  void hold(bool held) {
    {
      std::lock_guard lock(mutex_);
      held_ = held;
    }
    released_.notify_all();
  }
  void setDown(bool down) {
    std::lock_guard lock(mutex_);
    down_ = down;
  }
  std::vector<std::pair<std::string, std::string>> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return received_.size();
  }
  void clear() {
    std::lock_guard lock(mutex_);
    received_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable released_;
  bool held_ = false;
  bool down_ = false;
  int calls_in_flight_ = 0;
  int max_in_flight_ = 0;
  std::vector<std::pair<std::string, std::string>> received_;
};

class SyncHarness {
 public:
  explicit SyncHarness(std::string sync_yaml = "{mode: scheduled, every: 1h}",
                       std::string extra_yaml = "") {
    char tmpl[] = "/tmp/junction-sync-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config::ConfigErrors errors;
    auto loaded = config::loadConfigText(
        "destinations:\n  - id: crm\n    plugin: test\n    batch: {max_events: 50, max_wait: 5ms}\n"
        "    sync: " + sync_yaml + "\n" + extra_yaml,
        "test.yaml", config::processEnvironment(), errors);
    EXPECT_TRUE(loaded) << config::formatErrors(errors);
    config_ = std::move(*loaded);
    open();
  }
  ~SyncHarness() {
    close();
    fs::remove_all(dir_);
  }

  void open() {
    pipeline_.open(dir_, config_, {{"crm", recorder_}}, metrics_, logger_, system_clock_,
                   system_clock_);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    pipeline_.profiles->setSyncChannels({"crm"});
    pipeline_.start();
    state_ = std::make_unique<runtime::FileCheckpointStore>(dir_ / "sync.json");
  }
  void startSync(ScheduledSyncOptions options = {}) {
    const auto& c = config_.destinations.at(0).sync;
    auto schedule = sync::makeSchedule(c.every_ms, c.at_minute, c.timezone);
    ASSERT_TRUE(schedule) << schedule.error().message;
    options.poll = 2ms;
    options.page = options.page == ScheduledSyncOptions{}.page ? 3 : options.page;
    options.audiences = config_.destinations.at(0).audiences;
    sync_ = std::make_unique<ScheduledSync>(
        "crm", *schedule,
        ScheduledSyncDeps{*pipeline_.profiles, *pipeline_.ingest, *pipeline_.engine, *state_, metrics_, logger_, clock_},
        options);
    ASSERT_TRUE(sync_->start().ok());
  }
  void stopSync() {
    if (sync_) {
      sync_->stop();
    }
    sync_.reset();
  }
  void close() {
    stopSync();
    pipeline_.close();
  }

  // Emits identify events from source `web` (each with `context`, when given) and waits until
  // profiles applied them.
  void identify(const std::vector<std::pair<std::string, json::object>>& people,
                const json::object& context = {}) {
    std::vector<sdk::Event> events;
    for (const auto& [user, traits] : people) {
      json::object body{{"type", "identify"}, {"userId", user}, {"traits", traits},
                        {"messageId", "m" + std::to_string(++seq_)},
                        {"timestamp", sdk::formatIsoTimestamp(system_clock_.nowMs() + seq_)}};
      if (!context.empty()) {
        body["context"] = context;
      }
      auto e = sdk::makeEvent(body, "web");
      ASSERT_TRUE(e);
      events.push_back(std::move(e).value());
    }
    std::promise<sdk::EmitResult> done;
    pipeline_.ingest->emit("web", std::move(events), [&](sdk::EmitResult r) { done.set_value(r); });
    ASSERT_TRUE(done.get_future().get().status.ok());
    const auto end = pipeline_.log->durableEnd();
    ASSERT_TRUE(eventually([&] { return pipeline_.profiles->needs() >= end; }, 10s));
  }
  // An identify that states the person's consent to `marketing` (context.consent).
  void identifyWithConsent(const std::string& user, bool marketing) {
    identify({{user, json::object{}}},
             json::object{{"consent", json::object{{"categoryPreferences",
                                                    json::object{{"marketing", marketing}}}}}});
  }

  // userId -> traits of what the destination received from the sync, in order.
  std::vector<std::pair<std::string, json::object>> synced() const {
    std::vector<std::pair<std::string, json::object>> out;
    for (const auto& [id, text] : recorder_->received()) {
      json::object o = json::parse(text).as_object();
      out.emplace_back(std::string(o.at("userId").as_string()), o.at("traits").as_object());
    }
    return out;
  }
  std::vector<std::string> messageIds() const {
    std::vector<std::string> out;
    for (const auto& [id, text] : recorder_->received()) {
      out.push_back(id);
    }
    return out;
  }

  sdk::testing::ManualClock& clock() { return clock_; }
  ScheduledSync& sync() { return *sync_; }
  Recorder& recorder() { return *recorder_; }
  profiles::ProfileService& profiles() { return *pipeline_.profiles; }
  sdk::testing::RecordingLogger& logger() { return logger_; }
  runtime::FileCheckpointStore& state() { return *state_; }
  privacy::PrivacyStore& privacy() { return *pipeline_.privacy; }
  std::uint64_t marks() { return *pipeline_.profiles->store().syncMarkCount("crm"); }
  std::uint64_t members(const std::string& audience) {
    return *pipeline_.profiles->store().syncMarkCount(profiles::audienceChannel(audience));
  }

 private:
  fs::path dir_;
  config::DaemonConfig config_;
  telemetry::MetricsRegistry metrics_;
  sdk::testing::RecordingLogger logger_;
  runtime::SystemClock system_clock_;
  sdk::testing::ManualClock clock_{kMorning};
  testing::ProfilePipeline pipeline_;
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
  std::unique_ptr<runtime::FileCheckpointStore> state_;
  std::unique_ptr<ScheduledSync> sync_;
  int seq_ = 0;
};

json::object plan(std::string p) { return json::object{{"plan", std::move(p)}}; }

TEST(ScheduledSyncTest, RunsAtTheSlotEveryoneFirstThenOnlyWhoChangedWithLatestTraits) {
  SyncHarness h;
  h.identify({{"u1", plan("free")}, {"u2", plan("free")}, {"u3", plan("pro")}, {"u4", plan("x")}});
  h.startSync();
  EXPECT_EQ(h.sync().status().next_run_ms, kMorning + kHour / 2);  // 11:00
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h.recorder().count(), 0u) << "nothing before the slot";

  h.clock().setNowMs(kMorning + kHour / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().last_slot_ms == kMorning + kHour / 2; }, 10s));
  EXPECT_EQ(h.recorder().count(), 4u) << "the first run sends everyone";
  std::set<std::string> users;
  for (const auto& [user, traits] : h.synced()) {
    users.insert(user);
  }
  EXPECT_EQ(users, (std::set<std::string>{"u1", "u2", "u3", "u4"}));
  for (const auto& id : h.messageIds()) {
    EXPECT_TRUE(id.starts_with("sync-crm-" + std::to_string(kMorning + kHour / 2) + "-p_")) << id;
  }

  // u2 changes twice, u3 once; u1 sends a trait it already has (no change).
  h.recorder().clear();
  h.identify({{"u2", plan("pro")}, {"u2", plan("enterprise")}, {"u3", plan("free")},
              {"u1", plan("free")}});
  h.clock().setNowMs(kMorning + kHour * 3 / 2 - 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h.recorder().count(), 0u);
  h.clock().setNowMs(kMorning + kHour * 3 / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 2; }, 10s));
  auto got = h.synced();
  std::map<std::string, std::string> plans;
  for (const auto& [user, traits] : got) {
    plans[user] = std::string(traits.at("plan").as_string());
  }
  EXPECT_EQ(got.size(), 2u) << "one event per changed person";
  EXPECT_EQ(plans, (std::map<std::string, std::string>{{"u2", "enterprise"}, {"u3", "free"}}));
  EXPECT_EQ(h.marks(), 0u);

  // Nothing changed: the next run sends nothing, and still counts as a run.
  h.recorder().clear();
  h.clock().setNowMs(kMorning + kHour * 5 / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 3; }, 10s));
  EXPECT_EQ(h.recorder().count(), 0u);
}

TEST(ScheduledSyncTest, ACrashInMidRunRunsTheSlotAgainAtStartAndSkipsNothing) {
  SyncHarness h;
  h.startSync();
  h.clock().setNowMs(kMorning + kHour / 2);  // first run: nobody yet
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));

  std::vector<std::pair<std::string, json::object>> people;
  for (int i = 0; i < 10; ++i) {
    people.emplace_back("u" + std::to_string(i), plan("p" + std::to_string(i)));
  }
  h.identify(people);
  EXPECT_EQ(h.marks(), 10u);
  h.recorder().setDown(true);  // the vendor is down: the run cannot end
  const std::int64_t slot = kMorning + kHour * 3 / 2;
  h.clock().setNowMs(slot);
  ASSERT_TRUE(eventually([&] { return h.sync().status().sent == 10; }, 10s));
  EXPECT_TRUE(h.sync().status().running);
  h.stopSync();  // the daemon goes away in mid-run
  EXPECT_EQ(h.marks(), 10u) << "nothing delivered: every mark stays";
  auto stored = h.state().load("crm");
  ASSERT_TRUE(stored && *stored);
  EXPECT_NE((*stored)->find("\"running_slot\":" + std::to_string(slot)), std::string::npos)
      << **stored;

  h.recorder().setDown(false);
  h.startSync();  // at start: the slot in progress runs again at once
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));
  EXPECT_EQ(h.sync().status().last_slot_ms, slot);
  EXPECT_EQ(h.marks(), 0u);
  std::set<std::string> users;
  for (const auto& [user, traits] : h.synced()) {
    users.insert(user);
  }
  EXPECT_EQ(users.size(), 10u) << "every person delivered";
  for (const auto& id : h.messageIds()) {
    EXPECT_TRUE(id.starts_with("sync-crm-" + std::to_string(slot) + "-")) << id;
  }
}

TEST(ScheduledSyncTest, RunsNeverOverlapAndAnOverrunIsReported) {
  SyncHarness h;
  h.startSync();
  h.clock().setNowMs(kMorning + kHour / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));

  h.identify({{"a", plan("1")}, {"b", plan("1")}});
  h.recorder().hold(true);  // a slow vendor: the 12:00 run takes past 13:00 and 14:00
  h.clock().setNowMs(kMorning + kHour * 3 / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().sent == 2; }, 10s));
  h.identify({{"a", plan("2")}});  // changed while the run goes on
  h.clock().setNowMs(kMorning + kHour * 7 / 2 + 1);  // 14:00:00.001
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h.sync().status().runs, 1u) << "no second run while one goes on";
  EXPECT_EQ(h.sync().status().running_slot_ms, kMorning + kHour * 3 / 2);
  h.recorder().hold(false);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs >= 3; }, 10s));
  const auto s = h.sync().status();
  EXPECT_EQ(s.overruns, 1u);
  EXPECT_EQ(s.last_slot_ms, kMorning + kHour * 7 / 2) << "missed slots make one run: 14:00";
  EXPECT_TRUE(h.logger().contains("overran"));
  // a: sent by the 12:00 run, and again with its new plan by the next one.
  std::vector<std::string> a_plans;
  for (const auto& [user, traits] : h.synced()) {
    if (user == "a") {
      a_plans.emplace_back(traits.at("plan").as_string());
    }
  }
  EXPECT_EQ(a_plans.back(), "2");
  EXPECT_EQ(h.marks(), 0u);
}

TEST(ScheduledSyncTest, AnErasedPersonIsNeverSent) {
  SyncHarness h;
  h.startSync();
  h.clock().setNowMs(kMorning + kHour / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));
  h.identify({{"keep", plan("1")}, {"gone", plan("1")}});
  ASSERT_TRUE(h.profiles().erase(privacy::Subject{privacy::SubjectKind::UserId, "gone"}).ok());
  h.clock().setNowMs(kMorning + kHour * 3 / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 2; }, 10s));
  ASSERT_EQ(h.synced().size(), 1u);
  EXPECT_EQ(h.synced()[0].first, "keep");
  EXPECT_EQ(h.marks(), 0u);
}

TEST(ScheduledSyncTest, SuppressedPeopleAndPeopleWithoutTheConsentAreNotSent) {
  SyncHarness h("{mode: scheduled, every: 1h}", "    consent: [marketing]\n");
  h.startSync();
  h.clock().setNowMs(kMorning + kHour / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));
  h.identify({{"yes", plan("1")}, {"no", plan("1")}, {"quiet", plan("1")}});
  // Consent as the person gave it, in the event's context, lands in the profile.
  h.identifyWithConsent("yes", true);
  h.identifyWithConsent("no", false);
  h.identifyWithConsent("quiet", true);
  ASSERT_TRUE(h.privacy()
                  .record(privacy::RegulationType::Suppress,
                          privacy::Subject{privacy::SubjectKind::UserId, "quiet"}, kMorning)
                  .ok());
  h.clock().setNowMs(kMorning + kHour * 3 / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 2; }, 10s));
  ASSERT_EQ(h.synced().size(), 1u);
  EXPECT_EQ(h.synced()[0].first, "yes");
  EXPECT_EQ(h.marks(), 0u);
}

TEST(ScheduledSyncTest, ARunAskedForRunsAtOnceAndTheScheduleCarriesOn) {
  SyncHarness h;
  h.identify({{"u1", plan("free")}});
  h.startSync();
  h.recorder().hold(true);
  ASSERT_TRUE(h.sync().runNow());
  ASSERT_TRUE(eventually([&] { return h.sync().status().running; }, 10s));
  EXPECT_FALSE(h.sync().runNow()) << "not while a run goes on";
  h.recorder().hold(false);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));
  EXPECT_EQ(h.sync().status().last_slot_ms, kMorning);
  EXPECT_EQ(h.recorder().count(), 1u);
  ASSERT_TRUE(eventually([&] { return h.sync().status().next_run_ms == kMorning + kHour / 2; }, 10s));
}

TEST(ScheduledSyncTest, DailyAtAWallTimeInAZoneAcrossTheSpringChange) {
  // 02:00 in Berlin does not exist on 2026-03-29: the run is at 03:00 CEST (01:00 UTC).
  SyncHarness h(R"({mode: scheduled, at: "02:00", timezone: Europe/Berlin})");
  h.clock().setNowMs(1774738800000);  // 2026-03-28T23:00:00Z
  h.startSync();
  EXPECT_EQ(h.sync().status().next_run_ms, 1774746000000);  // 2026-03-29T01:00:00Z
  h.clock().setNowMs(1774746000000 - 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h.sync().status().runs, 0u);
  h.clock().setNowMs(1774746000000);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));
  // The next: 02:00 CEST on the 30th = 00:00 UTC.
  ASSERT_TRUE(eventually([&] { return h.sync().status().next_run_ms == 1774828800000; }, 10s));
}

TEST(ScheduledSyncTest, EachSnapshotSaysWhetherThePersonIsInTheDestinationsAudiences) {
  SyncHarness h("{mode: scheduled, every: 1h}",
                "audiences:\n"
                "  pro: {where: {trait: plan, equals: pro}, destinations: [crm]}\n"
                "  other: {where: {trait: plan, equals: free}, destinations: []}\n");
  h.identify({{"u1", plan("pro")}, {"u2", plan("free")}});
  ASSERT_TRUE(eventually([&] { return h.members("pro") == 1 && h.members("other") == 1; }, 10s));
  h.startSync();
  h.clock().setNowMs(kMorning + kHour / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 1; }, 10s));
  std::map<std::string, json::value> membership;
  for (const auto& [id, text] : h.recorder().received()) {
    json::object o = json::parse(text).as_object();
    EXPECT_EQ(o.at("type"), "identify") << "no realtime audience events at a scheduled one";
    membership[std::string(o.at("userId").as_string())] =
        o.at("context").at("junction").at("audiences");
  }
  // Only the audience naming the destination, member or not.
  EXPECT_EQ(membership["u1"], (json::object{{"pro", true}}));
  EXPECT_EQ(membership["u2"], (json::object{{"pro", false}}));

  // Leaving the audience is a change: the next run sends it.
  h.recorder().clear();
  h.identify({{"u1", plan("business")}});
  ASSERT_TRUE(eventually([&] { return h.members("pro") == 0; }, 10s));
  h.clock().setNowMs(kMorning + kHour * 3 / 2);
  ASSERT_TRUE(eventually([&] { return h.sync().status().runs == 2; }, 10s));
  ASSERT_EQ(h.recorder().count(), 1u);
  json::object o = json::parse(h.recorder().received()[0].second).as_object();
  EXPECT_EQ(o.at("context").at("junction").at("audiences"), (json::object{{"pro", false}}));
}

}  // namespace
}  // namespace junction::core::daemon
