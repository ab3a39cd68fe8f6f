// Audiences over real parts: the embedded queue, ingest, the profile service on RocksDB, the
// delivery engine with recording destinations. The profile service's clock is manual: the tests
// send events stamped with it, move it, and watch people enter and leave audiences (the events
// "Audience Entered" / "Audience Exited" from the source `audiences`, and the members kept).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <iostream>
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

constexpr std::int64_t kT0 = 1796639400000;  // 2026-12-07T10:30:00Z
constexpr std::int64_t kMinute = 60'000;

class Recorder final : public sdk::Destination {
 public:
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    std::vector<sdk::Outcome> out;
    std::lock_guard lock(mutex_);
    for (const auto& e : batch) {
      received_.push_back(json::parse(e.json()).as_object());
      out.push_back(sdk::Outcome::delivered());
    }
    return out;
  }
  // "Entered <audience> <userId>" / "Exited ..." for each audience event received, in order.
  std::vector<std::string> transitions() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& o : received_) {
      const json::value* name = o.if_contains("event");
      if (name == nullptr || !name->is_string() || !name->as_string().starts_with("Audience ")) {
        continue;
      }
      out.push_back(std::string(name->as_string().subview(9)) + " " +
                    std::string(o.at("properties").at("audience").as_string()) + " " +
                    std::string(o.at("userId").as_string()));
    }
    return out;
  }
  std::vector<json::object> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    received_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<json::object> received_;
};

class AudienceHarness {
 public:
  explicit AudienceHarness(std::string audiences_yaml) {
    char tmpl[] = "/tmp/junction-audiences-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_ = load(audiences_yaml);
    open();
  }
  ~AudienceHarness() {
    if (::testing::Test::HasFailure()) {
      for (const auto& r : logger_.records()) {
        std::cerr << "log: " << r.message;
        for (const auto& [k, v] : r.fields) {
          std::cerr << " " << k << "=" << v;
        }
        std::cerr << "\n";
      }
    }
    close();
    fs::remove_all(dir_);
  }

  config::DaemonConfig load(const std::string& audiences_yaml) {
    config::ConfigErrors errors;
    auto loaded = config::loadConfigText(
        "destinations:\n"
        "  - {id: mc, plugin: test, batch: {max_events: 50, max_wait: 5ms}}\n"
        "  - {id: other, plugin: test, batch: {max_events: 50, max_wait: 5ms}}\n"
        "  - {id: hook, plugin: test, from: [audiences], batch: {max_events: 50, max_wait: 5ms}}\n"
        "audiences:\n" +
            audiences_yaml,
        "test.yaml", config::processEnvironment(), errors);
    EXPECT_TRUE(loaded) << config::formatErrors(errors);
    return loaded ? std::move(*loaded) : config::DaemonConfig{};
  }

  void open() {
    std::map<std::string, std::shared_ptr<sdk::Destination>> sinks(recorders_.begin(),
                                                                   recorders_.end());
    pipeline_.open(dir_, config_, sinks, metrics_, logger_, system_clock_, clock_);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    pipeline_.start();
  }
  bool setAudiences(const config::DaemonConfig& c) {
    return pipeline_.profiles->setAudiences(std::make_shared<const audiences::AudienceSet>(c.audiences),
                                   (dir_ / "audiences.json").string());
  }
  void close() { pipeline_.close(); }

  // Emits `bodies` from source `web`, stamped with the manual clock, and waits until profiles
  // applied them.
  void send(std::vector<json::object> bodies) {
    std::vector<sdk::Event> events;
    for (auto& body : bodies) {
      body["messageId"] = "m" + std::to_string(++seq_);
      body["timestamp"] = sdk::formatIsoTimestamp(clock_.nowMs());
      auto e = sdk::makeEvent(body, "web");
      ASSERT_TRUE(e) << e.error().message;
      events.push_back(std::move(e).value());
    }
    std::promise<sdk::EmitResult> done;
    pipeline_.ingest->emit("web", std::move(events), [&](sdk::EmitResult r) { done.set_value(r); });
    ASSERT_TRUE(done.get_future().get().status.ok());
    const auto end = pipeline_.log->durableEnd();
    ASSERT_TRUE(eventually([&] { return pipeline_.profiles->needs() >= end; }, 10s));
  }
  void track(const std::string& user, const std::string& event) {
    send({json::object{{"type", "track"}, {"userId", user}, {"event", event}}});
  }
  void identify(const std::string& user, json::object traits) {
    send({json::object{{"type", "identify"}, {"userId", user}, {"traits", std::move(traits)}}});
  }

  // The members of `audience` (profile ids) as the store keeps them.
  std::size_t members(const std::string& audience) {
    auto n = pipeline_.profiles->store().syncMarkCount(profiles::audienceChannel(audience));
    EXPECT_TRUE(n) << n.error().message;
    return n ? *n : 0;
  }
  // Waits until no review is due and none is running (the announcer polls every 100 ms).
  void settle() {
    const std::int64_t now = clock_.nowMs();
    ASSERT_TRUE(eventually(
        [&] {
          auto due = pipeline_.profiles->store().dueOutbox(now, 10);
          return due && due->empty() && !pipeline_.profiles->reviewingEveryone();
        },
        10s));
    std::this_thread::sleep_for(150ms);  // a review read just before is recorded
  }

  sdk::testing::ManualClock& clock() { return clock_; }
  const fs::path& dir() const { return dir_; }
  Recorder& mc() { return *recorders_.at("mc"); }
  Recorder& other() { return *recorders_.at("other"); }
  Recorder& hook() { return *recorders_.at("hook"); }
  profiles::ProfileService& profiles() { return *pipeline_.profiles; }
  privacy::PrivacyStore& privacy() { return *pipeline_.privacy; }
  telemetry::MetricsRegistry& metrics() { return metrics_; }

 private:
  fs::path dir_;
  config::DaemonConfig config_;
  telemetry::MetricsRegistry metrics_;
  sdk::testing::RecordingLogger logger_;
  runtime::SystemClock system_clock_;
  sdk::testing::ManualClock clock_{kT0};
  testing::ProfilePipeline pipeline_;
  std::map<std::string, std::shared_ptr<Recorder>> recorders_{
      {"mc", std::make_shared<Recorder>()},
      {"other", std::make_shared<Recorder>()},
      {"hook", std::make_shared<Recorder>()}};
  int seq_ = 0;
};

using Transitions = std::vector<std::string>;

TEST(AudiencesTest, EntersOnAnEventAndLeavesOnTimeAlone) {
  AudienceHarness h(
      "  viewer: {where: {performed: {event: Product Viewed, within: 10m}}, destinations: [mc]}\n");
  h.track("u1", "Product Viewed");
  ASSERT_TRUE(eventually([&] { return h.mc().transitions() == Transitions{"Entered viewer u1"}; },
                         10s))
      << ::testing::PrintToString(h.mc().transitions());
  EXPECT_EQ(h.members("viewer"), 1u);
  const json::object entered = h.mc().received().back();
  EXPECT_EQ(entered.at("properties").at("audience_key"), "viewer");
  EXPECT_TRUE(entered.at("messageId").as_string().starts_with("audience-p_"));
  EXPECT_EQ(entered.at("timestamp"), sdk::formatIsoTimestamp(kT0).c_str());

  // Ten minutes on, the view is still within the window (closed at both ends); a millisecond
  // later it is not, and the person leaves with no event of theirs.
  h.clock().setNowMs(kT0 + 10 * kMinute);
  h.settle();
  EXPECT_EQ(h.mc().transitions(), Transitions{"Entered viewer u1"});
  h.clock().setNowMs(kT0 + 10 * kMinute + 1);
  ASSERT_TRUE(eventually(
      [&] { return h.mc().transitions() == Transitions{"Entered viewer u1", "Exited viewer u1"}; },
      10s))
      << ::testing::PrintToString(h.mc().transitions());
  EXPECT_EQ(h.members("viewer"), 0u);

  // Routing: the audience's destination and the one reading `audiences` get them; a
  // destination without `from` that the audience does not name does not.
  EXPECT_EQ(h.hook().transitions(), h.mc().transitions());
  EXPECT_TRUE(h.other().transitions().empty());
  EXPECT_EQ(h.metrics().valueOf("junction_audience_transitions_total",
                                {{"direction", "entered"}}),
            1.0);
  EXPECT_EQ(h.metrics().valueOf("junction_audience_transitions_total",
                                {{"direction", "exited"}}),
            1.0);

  // A new view brings them back, with a new transition (and message id).
  h.track("u1", "Product Viewed");
  ASSERT_TRUE(eventually([&] { return h.mc().transitions().size() == 3; }, 10s));
  EXPECT_EQ(h.mc().transitions().back(), "Entered viewer u1");
  std::set<std::string> ids;
  for (const auto& o : h.hook().received()) {
    ids.insert(std::string(o.at("messageId").as_string()));
  }
  EXPECT_EQ(ids.size(), 3u);
}

TEST(AudiencesTest, TheAbandonedCartEntersOnceTheWaitPassesWithoutAnOrder) {
  AudienceHarness h(
      "  abandoned_cart:\n"
      "    where:\n"
      "      all:\n"
      "        - performed: {event: Product Added, within: 1h}\n"
      "        - not_performed: {event: Order Completed, within: 30m}\n"
      "        - {trait: email, exists: true}\n"
      "    destinations: [mc]\n");
  h.identify("buyer", json::object{{"email", "buyer@example.com"}});
  h.identify("leaver", json::object{{"email", "leaver@example.com"}});
  h.identify("noemail", json::object{{"plan", "free"}});
  h.track("buyer", "Product Added");
  h.track("leaver", "Product Added");
  h.track("noemail", "Product Added");
  h.clock().setNowMs(kT0 + 5 * kMinute);
  h.track("buyer", "Order Completed");

  h.clock().setNowMs(kT0 + 30 * kMinute - 1);
  h.settle();
  EXPECT_TRUE(h.mc().transitions().empty()) << "still waiting for an order";
  h.clock().setNowMs(kT0 + 30 * kMinute);
  ASSERT_TRUE(eventually(
      [&] { return h.mc().transitions() == Transitions{"Entered abandoned_cart leaver"}; }, 10s))
      << ::testing::PrintToString(h.mc().transitions());
  const json::object entered = h.mc().received().back();
  EXPECT_EQ(entered.at("context").at("traits").at("email"), "leaver@example.com");
  EXPECT_EQ(h.members("abandoned_cart"), 1u);

  // An order now does not take them out (the wait after that add is over); the add leaving
  // the hour does.
  h.clock().setNowMs(kT0 + 40 * kMinute);
  h.track("leaver", "Order Completed");
  h.settle();
  EXPECT_EQ(h.mc().transitions().size(), 1u);
  h.clock().setNowMs(kT0 + 60 * kMinute + 1);
  ASSERT_TRUE(eventually(
      [&] {
        return h.mc().transitions() == Transitions{"Entered abandoned_cart leaver",
                                                   "Exited abandoned_cart leaver"};
      },
      10s))
      << ::testing::PrintToString(h.mc().transitions());
  EXPECT_EQ(h.members("abandoned_cart"), 0u);
}

TEST(AudiencesTest, DeletedAndSuppressedPeopleAreNeverAnnouncedAndLeaveTheMembers) {
  AudienceHarness h("  pro: {where: {trait: plan, equals: pro}, destinations: [mc]}\n");
  h.identify("kept", json::object{{"plan", "pro"}});
  h.identify("erased", json::object{{"plan", "pro"}});
  ASSERT_TRUE(eventually([&] { return h.members("pro") == 2; }, 10s));
  ASSERT_TRUE(h.profiles().erase(privacy::Subject{privacy::SubjectKind::UserId, "erased"}).ok());
  EXPECT_EQ(h.members("pro"), 1u) << "erasure removes the person from every audience";

  // A suppressed person is reviewed (a definition changed) and stays unannounced.
  h.identify("hidden", json::object{{"plan", "free"}});
  h.identify("open", json::object{{"plan", "free"}});
  ASSERT_TRUE(h.privacy()
                  .record(privacy::RegulationType::Suppress,
                          privacy::Subject{privacy::SubjectKind::UserId, "hidden"}, kT0)
                  .ok());
  h.settle();
  h.hook().clear();
  // (The daemon restarts `mc` when an audience starts naming it; here `hook`, which reads the
  // source `audiences`, shows what is emitted.)
  EXPECT_TRUE(h.setAudiences(h.load(
      "  pro: {where: {trait: plan, equals: pro}, destinations: [mc]}\n"
      "  free: {where: {trait: plan, equals: free}, destinations: [mc]}\n")));
  ASSERT_TRUE(eventually([&] { return h.hook().transitions() == Transitions{"Entered free open"}; },
                         10s))
      << ::testing::PrintToString(h.hook().transitions());
  h.settle();
  EXPECT_EQ(h.hook().transitions(), Transitions{"Entered free open"});
  EXPECT_EQ(h.members("free"), 1u);
  EXPECT_EQ(h.members("pro"), 1u);
}

TEST(AudiencesTest, ChangedDefinitionsReviewEveryoneWithoutANewEvent) {
  AudienceHarness h("  pro: {where: {trait: plan, equals: pro}, destinations: [mc]}\n");
  h.identify("a", json::object{{"plan", "pro"}});
  h.identify("b", json::object{{"plan", "enterprise"}});
  ASSERT_TRUE(eventually([&] { return h.mc().transitions() == Transitions{"Entered pro a"}; },
                         10s));
  h.settle();

  // The same definitions again: nothing to review.
  EXPECT_FALSE(h.setAudiences(h.load(
      "  pro: {where: {trait: plan, equals: pro}, destinations: [mc]}\n")));
  // `pro` removed, `big` added: a leaves pro, b enters big, with no event of theirs.
  EXPECT_TRUE(h.setAudiences(h.load(
      "  big: {where: {trait: plan, in: [enterprise, business]}, destinations: [mc]}\n")));
  ASSERT_TRUE(eventually(
      [&] {
        auto t = h.hook().transitions();
        std::sort(t.begin(), t.end());
        return t == Transitions{"Entered big b", "Entered pro a", "Exited pro a"};
      },
      10s))
      << ::testing::PrintToString(h.hook().transitions());
  h.settle();
  EXPECT_EQ(h.members("big"), 1u);
  EXPECT_EQ(h.members("pro"), 0u);
}

TEST(AudiencesTest, AReviewOfEveryoneCutShortGoesOnAfterARestartAndNobodyTwice) {
  AudienceHarness h("  pro: {where: {trait: plan, equals: pro}, destinations: [mc]}\n");
  for (int i = 0; i < 5; ++i) {
    h.identify("u" + std::to_string(i), json::object{{"plan", "pro"}});
  }
  ASSERT_TRUE(eventually([&] { return h.members("pro") == 5; }, 10s));
  h.settle();
  EXPECT_FALSE(h.profiles().reviewingEveryone());
  const auto before = h.mc().transitions().size();
  EXPECT_EQ(before, 5u);

  // The same definitions after a restart: no review of everyone.
  h.close();
  h.open();
  EXPECT_FALSE(h.profiles().reviewingEveryone());
  EXPECT_EQ(h.members("pro"), 5u);

  // A stop in the middle of a review of everyone (the state file says so): it goes on at
  // start, and people whose membership is recorded are not announced again.
  h.close();
  const fs::path state = h.dir() / "audiences.json";
  std::string text;
  {
    std::ifstream in(state);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  json::object o = json::parse(text).as_object();
  ASSERT_EQ(o.at("done"), true) << text;
  o["done"] = false;
  o["after"] = "";
  {
    std::ofstream out(state, std::ios::trunc);
    out << json::serialize(o);
  }
  h.open();
  h.settle();
  EXPECT_FALSE(h.profiles().reviewingEveryone());
  EXPECT_EQ(h.members("pro"), 5u);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(h.mc().transitions().size() == before)
      << ::testing::PrintToString(h.mc().transitions());
}

}  // namespace
}  // namespace junction::core::daemon
