// The identity graph and trait merging (core/profiles/profile_engine.h) over a store:
// anonymous -> identified merge with earlier events attributed, alias, out-of-order events,
// blocked identifier values, merge guards, computed traits over time windows (manual clock),
// erase, sync marks, and everything kept across a reopen of the store. Built twice:
// profile_engine_test on SQLite and RocksDB, and profile_engine_postgres_test
// (JUNCTION_TEST_POSTGRES) on a real PostgreSQL.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/profiles/profile_engine.h"
#include "core/profiles/sqlite_profile_store.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/core/privacy/test_util.h"
#include "tests/core/profiles/profile_store_backends.h"

namespace junction::core::profiles {
namespace {

namespace json = boost::json;
using privacy::testing::TempDir;

constexpr std::int64_t kT0 = sdk::testing::ManualClock::kDefaultStartMs;
constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kDay = 86'400'000;

sdk::Event event(const std::string& text, std::int64_t ts) {
  auto made = sdk::makeEvent(json::parse(text).as_object(), "web");
  EXPECT_TRUE(made) << made.error().message;
  auto h = made->header();
  h.timestamp_ms = ts;
  h.received_at_ms = ts;
  if (h.message_id.empty()) {
    h.message_id = sdk::makeUuidV4();
  }
  return sdk::Event(h, std::string(made->json()));
}

config::ComputedTraitConfig computed(std::string name, config::ComputedTraitConfig::Kind kind,
                                     std::string path, std::string event_name,
                                     std::int64_t within = 0, std::int64_t n = 0) {
  config::ComputedTraitConfig c;
  c.name = std::move(name);
  c.kind = kind;
  c.path = std::move(path);
  c.where_event = std::move(event_name);
  c.within_ms = within;
  c.last_n = n;
  return c;
}

// The parameter is the store backend: "sqlite" or "postgres".
class ProfileEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { open(); }

  // A new engine on the store reopened (the same storage).
  void open() {
    engine_.reset();
    store_.reset();
    store_ = backend_->open();
    ASSERT_NE(store_, nullptr);
    engine_ = std::make_unique<ProfileEngine>(*store_, options_, metrics_, logger_, clock_);
  }

  void apply(const std::vector<sdk::Event>& events) {
    std::vector<const sdk::Event*> ptrs;
    for (const auto& e : events) {
      ptrs.push_back(&e);
    }
    auto changes = engine_->apply(ptrs);
    ASSERT_TRUE(changes) << changes.error().message;
    const bool ok = store_->commit(*changes).ok();
    engine_->settle(ok);  // what it wrote stays in the engine's cache for the next batch
    ASSERT_TRUE(ok);
  }

  std::optional<Profile> profile(const std::string& key) {
    auto pid = store_->findIdentity(key);
    EXPECT_TRUE(pid);
    if (!*pid) {
      return std::nullopt;
    }
    auto text = store_->loadProfile(**pid);
    EXPECT_TRUE(text && *text);
    return Profile::parse(**text).value();
  }

  json::object view(const std::string& key) {
    auto p = profile(key);
    EXPECT_TRUE(p) << key;
    return p ? engine_->render(*p, clock_.nowMs(), 100) : json::object{};
  }

  std::vector<SyncMark> marks(const std::string& channel) {
    auto m = store_->syncMarks(channel, "", 1000);
    EXPECT_TRUE(m) << m.error().message;
    return m ? *m : std::vector<SyncMark>{};
  }
  std::vector<std::string> markedIds(const std::string& channel) {
    std::vector<std::string> ids;
    for (const auto& m : marks(channel)) {
      ids.push_back(m.profile_id);
    }
    return ids;
  }
  void commit(const Changes& c) {
    auto s = store_->commit(c);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  std::uint64_t refused(const char* reason) {
    return metrics_.counterValue("junction_profile_merges_refused_total", {{"reason", reason}});
  }

  std::unique_ptr<testing::StoreBackend> backend_ = testing::makeStoreBackend(GetParam());
  EngineOptions options_;
  sdk::testing::FakeMetrics metrics_;
  sdk::testing::RecordingLogger logger_;
  sdk::testing::ManualClock clock_;
  std::unique_ptr<ProfileStore> store_;
  std::unique_ptr<ProfileEngine> engine_;
};

TEST_P(ProfileEngineTest, AnAnonymousVisitorWhoIdentifiesIsMergedWithTheirEarlierEvents) {
  // Two batches: the visitor's browsing is committed before they identify.
  apply({event(R"({"type":"page","anonymousId":"a1","name":"Home"})", kT0),
         event(R"({"type":"track","anonymousId":"a1","event":"Product Viewed",
                   "properties":{"sku":"S1","price":10,"secret_note":"x"}})", kT0 + 1)});
  auto before = profile("anon:a1");
  ASSERT_TRUE(before);
  EXPECT_FALSE(profile("user:u1"));

  apply({event(R"({"type":"identify","anonymousId":"a1","userId":"u1",
                   "traits":{"email":" Ann@Example.com ","plan":"pro"}})", kT0 + 2)});
  auto after = profile("user:u1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->id, before->id);  // the anonymous profile became the user's
  EXPECT_EQ(profile("email:ann@example.com")->id, after->id);
  EXPECT_EQ(profile("anon:a1")->id, after->id);
  json::object v = view("user:u1");
  ASSERT_EQ(v["events"].as_array().size(), 3u);
  EXPECT_EQ(v["events"].as_array()[0].at("type"), "identify");
  const auto& viewed = v["events"].as_array()[1].as_object();
  EXPECT_EQ(viewed.at("event"), "Product Viewed");
  EXPECT_EQ(viewed.at("properties"), (json::object{{"sku", "S1"}, {"price", 10}}));
  EXPECT_EQ(v["traits"].at("plan"), "pro");
  EXPECT_EQ(v["counters"].at("Product Viewed"), 1);
  EXPECT_EQ(v["first_seen"], json::value(sdk::formatIsoTimestamp(kT0)));

  // Two profiles made apart (another device) merge when an event links them.
  apply({event(R"({"type":"track","anonymousId":"a2","event":"Cart Updated"})", kT0 + 3)});
  const std::string other = profile("anon:a2")->id;
  EXPECT_NE(other, after->id);
  apply({event(R"({"type":"track","anonymousId":"a2","userId":"u1","event":"Signed In"})",
               kT0 + 4)});
  EXPECT_EQ(profile("anon:a2")->id, after->id);
  EXPECT_FALSE(store_->loadProfile(other).value());  // the merged one is gone
  EXPECT_EQ(view("user:u1")["events"].as_array().size(), 5u);
  EXPECT_EQ(metrics_.counterValue("junction_profile_merges_total"), 1u);
}

// A batch that was not committed is applied again (the service retries it): its events,
// profiles and merges count once, when a commit lands.
TEST_P(ProfileEngineTest, ABatchCountsOnlyWhenItIsCommitted) {
  apply({event(R"({"type":"track","anonymousId":"a1","event":"Viewed"})", kT0),
         event(R"({"type":"track","userId":"u1","event":"Viewed"})", kT0 + 1)});
  const std::vector<sdk::Event> linking = {
      event(R"({"type":"track","anonymousId":"a1","userId":"u1","event":"Signed In"})", kT0 + 2),
      event(R"({"type":"track","anonymousId":"a9","event":"Viewed"})", kT0 + 3)};
  std::vector<const sdk::Event*> ptrs;
  for (const auto& e : linking) {
    ptrs.push_back(&e);
  }
  for (int attempt = 0; attempt < 2; ++attempt) {  // not committed: a lost disk, a dropped link
    auto changes = engine_->apply(ptrs);
    ASSERT_TRUE(changes) << changes.error().message;
    engine_->settle(false);
  }
  EXPECT_EQ(metrics_.counterValue("junction_profile_events_applied_total"), 2u);
  EXPECT_EQ(metrics_.counterValue("junction_profiles_created_total"), 2u);
  EXPECT_EQ(metrics_.counterValue("junction_profile_merges_total"), 0u);

  apply(linking);
  EXPECT_EQ(metrics_.counterValue("junction_profile_events_applied_total"), 4u);
  EXPECT_EQ(metrics_.counterValue("junction_profiles_created_total"), 3u);
  EXPECT_EQ(metrics_.counterValue("junction_profile_merges_total"), 1u);
  EXPECT_EQ(profile("anon:a1")->id, profile("user:u1")->id);
}

TEST_P(ProfileEngineTest, AliasLinksThePreviousIdToTheUser) {
  apply({event(R"({"type":"track","anonymousId":"old-anon","event":"Viewed"})", kT0),
         event(R"({"type":"identify","userId":"new-user","traits":{"name":"N"}})", kT0 + 1)});
  ASSERT_NE(profile("anon:old-anon")->id, profile("user:new-user")->id);
  apply({event(R"({"type":"alias","userId":"new-user","previousId":"old-anon"})", kT0 + 2)});
  EXPECT_EQ(profile("anon:old-anon")->id, profile("user:new-user")->id);
  EXPECT_EQ(view("user:new-user")["counters"].at("Viewed"), 1);

  // A previousId nobody has yet is linked as an anonymous id.
  apply({event(R"({"type":"alias","userId":"new-user","previousId":"fresh"})", kT0 + 3)});
  EXPECT_EQ(profile("anon:fresh")->id, profile("user:new-user")->id);
}

TEST_P(ProfileEngineTest, AnOlderEventNeverOverwritesANewerTrait) {
  apply({event(R"({"type":"identify","userId":"u1","traits":{"plan":"pro","city":"Oslo"}})",
               kT0 + 10 * kMinute)});
  // Late (replayed, offline device): older timestamps, newer arrival.
  apply({event(R"({"type":"identify","userId":"u1","traits":{"plan":"free","age":40}})",
               kT0 + 5 * kMinute)});
  json::object v = view("user:u1");
  EXPECT_EQ(v["traits"].at("plan"), "pro");
  EXPECT_EQ(v["traits"].at("age"), 40);  // nobody had set it: the older event's value stands
  EXPECT_EQ(v["trait_times"].at("plan"), json::value(sdk::formatIsoTimestamp(kT0 + 10 * kMinute)));
  EXPECT_EQ(v["trait_times"].at("age"), json::value(sdk::formatIsoTimestamp(kT0 + 5 * kMinute)));
  apply({event(R"({"type":"identify","userId":"u1","traits":{"plan":"team"}})",
               kT0 + 11 * kMinute)});
  EXPECT_EQ(view("user:u1")["traits"].at("plan"), "team");

  // Consent too: the newest statement wins whatever the arrival order.
  apply({event(R"({"type":"track","userId":"u1","event":"E",
                   "context":{"consent":{"categoryPreferences":{"marketing":true}}}})",
               kT0 + 20 * kMinute),
         event(R"({"type":"track","userId":"u1","event":"E",
                   "context":{"consent":{"categoryPreferences":{"marketing":false}}}})",
               kT0 + 15 * kMinute)});
  EXPECT_EQ(view("user:u1")["consent"].at("granted"), (json::array{"marketing"}));
  // Merged profiles: per trait, the newer value wins.
  apply({event(R"({"type":"identify","anonymousId":"a9","traits":{"plan":"newest","city":"Rome"}})",
               kT0 + 30 * kMinute),
         event(R"({"type":"identify","anonymousId":"a9","traits":{"age":20}})", kT0 + 1)});
  apply({event(R"({"type":"track","userId":"u1","anonymousId":"a9","event":"Linked"})",
               kT0 + 31 * kMinute)});
  v = view("user:u1");
  EXPECT_EQ(v["traits"].at("plan"), "newest");
  EXPECT_EQ(v["traits"].at("city"), "Rome");
  EXPECT_EQ(v["traits"].at("age"), 40);  // u1's (5 min) is newer than a9's (+1 ms)
}

TEST_P(ProfileEngineTest, BlockedValuesNeverLinkAnyone) {
  // A broken SDK sends "null" as every visitor's anonymous id and "0" as a user id.
  apply({event(R"({"type":"track","anonymousId":"null","userId":"u1","event":"E"})", kT0),
         event(R"({"type":"track","anonymousId":"null","userId":"u2","event":"E"})", kT0 + 1),
         event(R"({"type":"identify","userId":"u3","traits":{"email":"undefined"}})", kT0 + 2),
         event(R"({"type":"identify","userId":"u4","traits":{"email":"undefined"}})", kT0 + 3),
         event(R"({"type":"track","userId":"0","event":"E"})", kT0 + 4)});
  EXPECT_NE(profile("user:u1")->id, profile("user:u2")->id);
  EXPECT_NE(profile("user:u3")->id, profile("user:u4")->id);
  EXPECT_FALSE(profile("anon:null"));
  EXPECT_FALSE(profile("user:0"));
  EXPECT_EQ(refused("blocked_value"), 5u);
  EXPECT_EQ(metrics_.counterValue("junction_profile_events_unattributed_total"), 1u);

  // Values an operator adds.
  options_.blocked_values = {"guest"};
  open();
  apply({event(R"({"type":"track","anonymousId":"GUEST","userId":"u5","event":"E"})", kT0 + 5)});
  EXPECT_FALSE(profile("anon:GUEST"));
}

TEST_P(ProfileEngineTest, TwoIdentifiedPeopleAreNotMergedUnlessConfigured) {
  apply({event(R"({"type":"identify","userId":"u1","anonymousId":"shared-device",
                   "traits":{"email":"family@example.com"}})", kT0),
         // Another person signs in on the same device with the same family e-mail.
         event(R"({"type":"identify","userId":"u2","anonymousId":"shared-device",
                   "traits":{"email":"family@example.com","name":"Two"}})", kT0 + 1)});
  auto one = profile("user:u1");
  auto two = profile("user:u2");
  ASSERT_TRUE(one && two);
  EXPECT_NE(one->id, two->id);
  EXPECT_EQ(profile("anon:shared-device")->id, one->id);  // stays with who had it first
  EXPECT_EQ(profile("email:family@example.com")->id, one->id);
  EXPECT_EQ(view("user:u2")["traits"].at("name"), "Two");  // the event still went to u2
  EXPECT_GE(refused("identified"), 1u);
  EXPECT_FALSE(logger_.records().empty());

  // An alias of two users merges only with identified_merges: alias (or always).
  apply({event(R"({"type":"alias","userId":"u2","previousId":"u1"})", kT0 + 2)});
  EXPECT_NE(profile("user:u1")->id, profile("user:u2")->id);
  options_.identified_merges = EngineOptions::IdentifiedMerges::Alias;
  open();
  apply({event(R"({"type":"alias","userId":"u2","previousId":"u1"})", kT0 + 3)});
  EXPECT_EQ(profile("user:u1")->id, profile("user:u2")->id);
  auto ids = view("user:u1")["identities"].at("userId").as_array();
  EXPECT_EQ(ids.size(), 2u);
}

TEST_P(ProfileEngineTest, AUserTakesAtMostMaxAnonymousIds) {
  options_.max_anonymous_ids = 3;
  open();
  std::vector<sdk::Event> events;
  for (int i = 0; i < 6; ++i) {
    events.push_back(event(R"({"type":"track","userId":"bot","anonymousId":"a)" +
                               std::to_string(i) + R"(","event":"E"})",
                           kT0 + i));
  }
  apply(events);
  EXPECT_EQ(profile("user:bot")->count(kAnonymousKind), 3u);
  EXPECT_FALSE(profile("anon:a5"));
  EXPECT_EQ(refused("anonymous_limit"), 3u);
  EXPECT_EQ(view("user:bot")["counters"].at("E"), 6);  // the events still count for the user

  // Nor by merging in an anonymous profile that would take it past the limit.
  apply({event(R"({"type":"track","anonymousId":"x1","event":"E"})", kT0 + 10)});
  apply({event(R"({"type":"track","anonymousId":"x1","userId":"bot","event":"E"})", kT0 + 11)});
  EXPECT_NE(profile("anon:x1")->id, profile("user:bot")->id);
  EXPECT_EQ(refused("anonymous_limit"), 4u);
}

TEST_P(ProfileEngineTest, ExternalIdsIdentifyPeople) {
  options_.external_ids = {"hubspot_id"};
  open();
  apply({event(R"({"type":"identify","userId":"u1","traits":{"hubspot_id":12345}})", kT0)});
  ASSERT_TRUE(profile("hubspot_id:12345"));
  EXPECT_EQ(profile("hubspot_id:12345")->id, profile("user:u1")->id);
  apply({event(R"({"type":"track","anonymousId":"crm","event":"Deal Won",
                   "context":{"traits":{"hubspot_id":"12345"}}})", kT0 + 1)});
  EXPECT_EQ(profile("anon:crm")->id, profile("user:u1")->id);
}

TEST_P(ProfileEngineTest, ComputedTraitsFollowTimeWindows) {
  using Kind = config::ComputedTraitConfig::Kind;
  options_.computed = {
      computed("last_viewed", Kind::Last, "properties.sku", "Product Viewed", 0, 3),
      computed("orders_30d", Kind::Count, "", "Order Completed", 30 * kDay),
      computed("orders", Kind::Count, "", "Order Completed"),
      computed("revenue_7d", Kind::Sum, "properties.revenue", "Order Completed", 7 * kDay),
      computed("cart_value", Kind::Latest, "properties.value", "Cart Updated"),
  };
  open();
  const std::int64_t now = kT0 + 100 * kDay;
  clock_.setNowMs(now);
  auto viewed = [&](const char* sku, std::int64_t at) {
    return event(std::string(R"({"type":"track","userId":"u1","event":"Product Viewed",
                                 "properties":{"sku":")") + sku + R"("}})", at);
  };
  auto order = [&](int revenue, std::int64_t at) {
    return event(R"({"type":"track","userId":"u1","event":"Order Completed",
                     "properties":{"revenue":)" + std::to_string(revenue) + "}}", at);
  };
  apply({viewed("A", now - 50), viewed("B", now - 40), viewed("A", now - 30), viewed("C", now - 20),
         viewed("D", now - 10), viewed("B", now - 45),  // late and older than B's newest
         order(100, now - 40 * kDay), order(20, now - 10 * kDay), order(5, now - kDay),
         order(7, now - kMinute),
         event(R"({"type":"track","userId":"u1","event":"Cart Updated","properties":{"value":42}})",
               now - 5),
         event(R"({"type":"track","userId":"u1","event":"Cart Updated","properties":{"value":99}})",
               now - 500)});  // older: not the latest
  json::object c = view("user:u1")["computed"].as_object();
  EXPECT_EQ(c["last_viewed"], (json::array{"D", "C", "A"}));
  EXPECT_EQ(c["orders_30d"], 3);
  EXPECT_EQ(c["orders"], 4);
  EXPECT_DOUBLE_EQ(c["revenue_7d"].to_number<double>(), 12.0);
  EXPECT_EQ(c["cart_value"], 42);

  // Time passes: windows slide with no new event.
  clock_.setNowMs(now + 2 * kDay);
  c = view("user:u1")["computed"].as_object();
  EXPECT_EQ(c["orders_30d"], 3);
  EXPECT_DOUBLE_EQ(c["revenue_7d"].to_number<double>(), 12.0);
  clock_.setNowMs(now + 7 * kDay);
  c = view("user:u1")["computed"].as_object();
  EXPECT_DOUBLE_EQ(c["revenue_7d"].to_number<double>(), 0.0);
  EXPECT_EQ(c["orders_30d"], 3);
  clock_.setNowMs(now + 21 * kDay);
  EXPECT_EQ(view("user:u1")["computed"].at("orders_30d"), 2);
  clock_.setNowMs(now + 31 * kDay);
  EXPECT_EQ(view("user:u1")["computed"].at("orders_30d"), 0);
  EXPECT_EQ(view("user:u1")["computed"].at("orders"), 4);

  // Merging two profiles combines their states.
  clock_.setNowMs(now);
  apply({event(R"({"type":"track","anonymousId":"a1","event":"Order Completed",
                   "properties":{"revenue":1}})", now - 2),
         event(R"({"type":"track","anonymousId":"a1","event":"Product Viewed",
                   "properties":{"sku":"Z"}})", now - 1)});
  apply({event(R"({"type":"track","anonymousId":"a1","userId":"u1","event":"Login"})", now)});
  c = view("user:u1")["computed"].as_object();
  EXPECT_EQ(c["orders_30d"], 4);
  EXPECT_EQ(c["orders"], 5);
  EXPECT_EQ(c["last_viewed"], (json::array{"Z", "D", "C"}));
}

TEST_P(ProfileEngineTest, RecentEventsAreBoundedNewestFirst) {
  options_.recent_events = 5;
  open();
  std::vector<sdk::Event> events;
  for (int i = 0; i < 12; ++i) {
    events.push_back(event(R"({"type":"track","userId":"u1","event":"E)" + std::to_string(i) +
                               R"("})",
                           kT0 + (i % 2 == 0 ? i : 100 - i)));
  }
  apply(events);
  auto list = view("user:u1")["events"].as_array();
  ASSERT_EQ(list.size(), 5u);
  std::string previous = "9999";
  for (const auto& e : list) {
    const std::string t(e.at("timestamp").as_string());
    EXPECT_LT(t, previous);
    previous = t;
  }
  EXPECT_EQ(list[0].at("event"), "E1");  // kT0 + 99
}

TEST_P(ProfileEngineTest, EraseRemovesTheProfileAndEveryLink) {
  apply({event(R"({"type":"identify","userId":"u1","anonymousId":"a1",
                   "traits":{"email":"e@example.com"}})", kT0)});
  const std::string id = profile("user:u1")->id;
  auto changes = engine_->erase("email:e@example.com");
  ASSERT_TRUE(changes && *changes);
  ASSERT_TRUE(store_->commit(**changes).ok());
  EXPECT_FALSE(profile("user:u1"));
  EXPECT_FALSE(profile("anon:a1"));
  EXPECT_FALSE(profile("email:e@example.com"));
  EXPECT_FALSE(store_->loadProfile(id).value());
  // The engine keeps nothing of them either: the person coming back is someone new.
  apply({event(R"({"type":"track","userId":"u1","anonymousId":"a1","event":"Back"})", kT0 + 1)});
  auto back = profile("anon:a1");
  ASSERT_TRUE(back);
  EXPECT_NE(back->id, id);
  EXPECT_EQ(back->events.size(), 1u);
  EXPECT_TRUE(back->traits.empty());
  auto nobody = engine_->erase("user:nobody");
  ASSERT_TRUE(nobody);
  EXPECT_FALSE(*nobody);
}

TEST_P(ProfileEngineTest, EverythingSurvivesAReopenAndTheAppliedOffsetCommitsWithIt) {
  options_.computed = {computed("orders", config::ComputedTraitConfig::Kind::Count, "",
                                "Order Completed")};
  open();
  std::vector<const sdk::Event*> none;
  auto e1 = event(R"({"type":"identify","userId":"u1","anonymousId":"a1","traits":{"x":1}})", kT0);
  auto e2 = event(R"({"type":"track","userId":"u1","event":"Order Completed"})", kT0 + 1);
  auto changes = engine_->apply({&e1, &e2});
  ASSERT_TRUE(changes);
  changes->applied = 777;
  ASSERT_TRUE(store_->commit(*changes).ok());
  EXPECT_FALSE(changes->outbox_put.empty());
  open();
  EXPECT_EQ(store_->appliedOffset().value(), 777u);
  json::object v = view("anon:a1");
  EXPECT_EQ(v["traits"].at("x"), 1);
  EXPECT_EQ(v["computed"].at("orders"), 1);
  EXPECT_EQ(store_->profileCount().value(), 1u);
  auto due = store_->dueOutbox(clock_.nowMs() + 10'000, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ(due->front().profile_id, std::string(v["id"].as_string()));
}

TEST_P(ProfileEngineTest, AChangeRecordedWhileAnAnnouncementIsInFlightIsNotLost) {
  apply({event(R"({"type":"identify","userId":"u1","traits":{"x":1}})", kT0)});
  auto due = store_->dueOutbox(clock_.nowMs() + 10'000, 10).value();
  ASSERT_EQ(due.size(), 1u);
  // A new change while the announcement of the first is being made...
  apply({event(R"({"type":"identify","userId":"u1","traits":{"x":2}})", kT0 + 1)});
  // ... so clearing the announced entry leaves it waiting.
  Changes done;
  done.outbox_done.emplace_back(due[0].profile_id, due[0].seq);
  ASSERT_TRUE(store_->commit(done).ok());
  EXPECT_EQ(store_->dueOutbox(clock_.nowMs() + 10'000, 10).value().size(), 1u);
  auto again = store_->dueOutbox(clock_.nowMs() + 10'000, 10).value();
  Changes done2;
  done2.outbox_done.emplace_back(again[0].profile_id, again[0].seq);
  ASSERT_TRUE(store_->commit(done2).ok());
  EXPECT_TRUE(store_->dueOutbox(clock_.nowMs() + 10'000, 10).value().empty());
}

// Sync marks (scheduled syncs): what a profile-change event would report marks the person in
// every channel, whether or not change events are on; nothing else does.
TEST_P(ProfileEngineTest, AChangeMarksThePersonInEverySyncChannelAndNothingElseDoes) {
  options_.sync_channels = {"crm", "ads"};
  options_.change_events = false;
  open();
  apply({event(R"({"type":"identify","userId":"u1","traits":{"plan":"pro"}})", kT0)});
  const std::string id = profile("user:u1")->id;
  EXPECT_EQ(markedIds("crm"), std::vector<std::string>{id});
  EXPECT_EQ(markedIds("ads"), std::vector<std::string>{id});
  EXPECT_TRUE(store_->dueOutbox(clock_.nowMs() + 10'000, 10).value().empty());
  Changes run;  // crm's run sent them
  run.sync_done = marks("crm");
  commit(run);
  EXPECT_TRUE(marks("crm").empty());

  // A track event (counters, recent events) and the same trait again change nothing a
  // profile-change event reports: no mark.
  auto track = event(R"({"type":"track","userId":"u1","event":"Viewed"})", kT0 + 1);
  auto same = event(R"({"type":"identify","userId":"u1","traits":{"plan":"pro"}})", kT0 + 2);
  auto changes = engine_->apply({&track, &same});
  ASSERT_TRUE(changes) << changes.error().message;
  EXPECT_TRUE(changes->sync_put.empty());
  EXPECT_TRUE(changes->sync_deleted.empty());
  commit(*changes);
  engine_->settle(true);
  EXPECT_TRUE(marks("crm").empty());
  ASSERT_EQ(marks("ads").size(), 1u);
  EXPECT_EQ(marks("ads")[0].seq, 0);

  // A trait that changes: marked again in crm, and a newer change in ads (not yet run).
  apply({event(R"({"type":"identify","userId":"u1","traits":{"plan":"max"}})", kT0 + 3)});
  ASSERT_EQ(marks("crm").size(), 1u);
  EXPECT_EQ(marks("crm")[0].seq, 0);
  ASSERT_EQ(marks("ads").size(), 1u);
  EXPECT_EQ(marks("ads")[0].seq, 1);

  // No channel, no mark.
  options_.sync_channels.clear();
  open();
  auto again = event(R"({"type":"identify","userId":"u1","traits":{"plan":"pro"}})", kT0 + 4);
  auto none = engine_->apply({&again});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->sync_put.empty());
}

TEST_P(ProfileEngineTest, AChangeDuringASyncRunIsNotLost) {
  options_.sync_channels = {"crm"};
  open();
  apply({event(R"({"type":"identify","userId":"u1","traits":{"x":1}})", kT0)});
  const auto run = marks("crm");  // the run reads the marks...
  ASSERT_EQ(run.size(), 1u);
  apply({event(R"({"type":"identify","userId":"u1","traits":{"x":2}})", kT0 + 1)});  // ...x=2...
  Changes done;  // ...and clears what it sent (x=1)
  done.sync_done = run;
  commit(done);
  ASSERT_EQ(marks("crm").size(), 1u);  // x=2 is sent by the next run
  Changes next;
  next.sync_done = marks("crm");
  commit(next);
  EXPECT_TRUE(marks("crm").empty());
}

TEST_P(ProfileEngineTest, AMergedAwayProfileLeavesEveryChannelAndTheSurvivorIsMarked) {
  options_.sync_channels = {"crm", "ads"};
  open();
  apply({event(R"({"type":"identify","userId":"u1","traits":{"x":1}})", kT0),
         event(R"({"type":"track","anonymousId":"a2","event":"Viewed"})", kT0 + 1)});
  const std::string survivor = profile("user:u1")->id;
  const std::string merged = profile("anon:a2")->id;
  ASSERT_NE(survivor, merged);
  EXPECT_EQ(marks("crm").size(), 2u);
  Changes run;  // crm's run sent both; ads has not run
  run.sync_done = marks("crm");
  commit(run);

  apply({event(R"({"type":"track","userId":"u1","anonymousId":"a2","event":"Signed In"})",
               kT0 + 2)});
  ASSERT_EQ(profile("anon:a2")->id, survivor);
  EXPECT_EQ(markedIds("crm"), std::vector<std::string>{survivor});
  EXPECT_EQ(markedIds("ads"), std::vector<std::string>{survivor});
  EXPECT_EQ(marks("ads")[0].seq, 1);

  // Made and merged away in one batch: deleted, never put.
  auto visit = event(R"({"type":"track","anonymousId":"a3","event":"Viewed"})", kT0 + 3);
  auto login = event(R"({"type":"track","userId":"u1","anonymousId":"a3","event":"In"})", kT0 + 4);
  auto changes = engine_->apply({&visit, &login});
  ASSERT_TRUE(changes) << changes.error().message;
  ASSERT_EQ(changes->profiles_deleted.size(), 1u);
  const std::string gone = changes->profiles_deleted[0];
  for (const auto& [channel, id] : changes->sync_put) {
    EXPECT_NE(id, gone) << channel;
  }
  EXPECT_EQ(changes->sync_put.size(), 2u);  // the survivor, in each channel
  EXPECT_EQ(changes->sync_deleted.size(), 2u);
  commit(*changes);
  engine_->settle(true);
  EXPECT_EQ(markedIds("crm"), std::vector<std::string>{survivor});
  EXPECT_EQ(markedIds("ads"), std::vector<std::string>{survivor});
}

// --- audiences -------------------------------------------------------------------------------------

std::shared_ptr<const audiences::AudienceSet> audienceSet(const std::string& yaml) {
  config::ConfigErrors errors;
  auto parsed = audiences::parseAudiences(YAML::Load(yaml), "test.yaml", errors);
  EXPECT_TRUE(parsed) << config::formatErrors(errors);
  return std::make_shared<const audiences::AudienceSet>(parsed ? *parsed
                                                               : std::vector<audiences::Audience>{});
}

constexpr const char* kViewer =
    "viewer: {where: {performed: {event: Product Viewed, within: 10m}}, destinations: [mc]}";

// The review entries due at `now` (key -> entry).
std::map<std::string, OutboxEntry> reviewsDue(ProfileStore& store, std::int64_t now) {
  std::map<std::string, OutboxEntry> out;
  auto due = store.dueOutbox(now, 100);
  EXPECT_TRUE(due) << due.error().message;
  for (auto& e : *due) {
    if (e.profile_id.starts_with(kAudienceReviewPrefix)) {
      out.emplace(e.profile_id, e);
    }
  }
  return out;
}

TEST_P(ProfileEngineTest, AReviewIsDueWhenMembershipDiffersOrWhenTheClockWillChangeIt) {
  options_.audiences = audienceSet(kViewer);
  open();
  apply({event(R"({"type":"track","userId":"u1","event":"Product Viewed"})", kT0),
         event(R"({"type":"track","userId":"u2","event":"Signed In"})", kT0)});
  const std::string pid = profile("user:u1")->id;
  auto due = reviewsDue(*store_, kT0);
  ASSERT_EQ(due.size(), 1u) << "u2 is in no audience and never will be by the clock";
  const OutboxEntry entry = due.at(audienceReviewKey(pid));
  EXPECT_EQ(entry.due_ms, kT0);

  // A review changes nothing, and says the same however often it is made (a crash between
  // the events and their record sends them again with the same ids).
  for (int i = 0; i < 2; ++i) {
    auto review = engine_->reviewAudiences(pid, kT0);
    ASSERT_TRUE(review) << review.error().message;
    ASSERT_EQ(review->transitions.size(), 1u);
    EXPECT_TRUE(review->transitions[0].entered);
    EXPECT_EQ(review->transitions[0].audience, "viewer");
    EXPECT_EQ(review->transitions[0].message_id, "audience-" + pid + "-1-in-viewer");
  }
  auto review = engine_->reviewAudiences(pid, kT0);
  auto recorded = engine_->recordAudiences(pid, review->transitions, entry.seq, kT0, true);
  ASSERT_TRUE(recorded) << recorded.error().message;
  commit(*recorded);
  engine_->settle(true);
  EXPECT_EQ(markedIds(audienceChannel("viewer")), std::vector<std::string>{pid});
  EXPECT_TRUE(profile("user:u1")->audiences.contains("viewer"));
  EXPECT_TRUE(reviewsDue(*store_, kT0 + 10 * kMinute).empty()) << "still within the window";
  due = reviewsDue(*store_, kT0 + 10 * kMinute + 1);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due.begin()->second.due_ms, kT0 + 10 * kMinute + 1);

  // On time alone: out, with the next transition's id.
  review = engine_->reviewAudiences(pid, kT0 + 10 * kMinute + 1);
  ASSERT_TRUE(review);
  ASSERT_EQ(review->transitions.size(), 1u);
  EXPECT_FALSE(review->transitions[0].entered);
  EXPECT_EQ(review->transitions[0].message_id, "audience-" + pid + "-2-out-viewer");
  recorded = engine_->recordAudiences(pid, review->transitions, due.begin()->second.seq,
                                      kT0 + 10 * kMinute + 1, true);
  ASSERT_TRUE(recorded);
  commit(*recorded);
  engine_->settle(true);
  EXPECT_TRUE(markedIds(audienceChannel("viewer")).empty());
  EXPECT_TRUE(reviewsDue(*store_, kT0 + 100 * kDay).empty()) << "nothing more the clock changes";

  // Kept across a reopen: the membership, the history and the transitions' count.
  open();
  EXPECT_EQ(profile("user:u1")->audience_seq, 2);
  EXPECT_TRUE(profile("user:u1")->audiences.empty());
}

TEST_P(ProfileEngineTest, ARecordKeepsAReviewThatAChangeQueuedMeanwhile) {
  options_.audiences = audienceSet(kViewer);
  open();
  apply({event(R"({"type":"track","userId":"u1","event":"Product Viewed"})", kT0)});
  const std::string pid = profile("user:u1")->id;
  const OutboxEntry entry = reviewsDue(*store_, kT0).at(audienceReviewKey(pid));
  auto review = engine_->reviewAudiences(pid, kT0);
  ASSERT_TRUE(review);
  // While its events are on their way, another view is applied: a new review is queued.
  apply({event(R"({"type":"track","userId":"u1","event":"Product Viewed"})", kT0 + 1)});
  auto recorded = engine_->recordAudiences(pid, review->transitions, entry.seq, kT0 + 1, true);
  ASSERT_TRUE(recorded);
  commit(*recorded);
  engine_->settle(true);
  auto due = reviewsDue(*store_, kT0 + 1);
  ASSERT_EQ(due.size(), 1u) << "the entry changed since it was read: not cleared";
  review = engine_->reviewAudiences(pid, kT0 + 1);
  ASSERT_TRUE(review);
  EXPECT_TRUE(review->transitions.empty()) << "recorded: not entered twice";
}

TEST_P(ProfileEngineTest, AMergeCarriesMembershipAndEraseDropsIt) {
  options_.audiences = audienceSet(
      std::string(kViewer) + "\npro: {where: {trait: plan, equals: pro}, destinations: [mc]}");
  open();
  auto reviewAll = [&](std::int64_t now) {
    for (const auto& [key, entry] : reviewsDue(*store_, now)) {
      const std::string pid = key.substr(kAudienceReviewPrefix.size());
      auto review = engine_->reviewAudiences(pid, now);
      ASSERT_TRUE(review) << review.error().message;
      auto recorded = engine_->recordAudiences(pid, review->transitions, entry.seq, now, true);
      ASSERT_TRUE(recorded) << recorded.error().message;
      commit(*recorded);
      engine_->settle(true);
    }
  };
  apply({event(R"({"type":"track","anonymousId":"a1","event":"Product Viewed"})", kT0),
         event(R"({"type":"identify","userId":"u1","traits":{"plan":"pro"}})", kT0)});
  reviewAll(kT0);
  const std::string anon = profile("anon:a1")->id;
  const std::string user = profile("user:u1")->id;
  EXPECT_EQ(markedIds(audienceChannel("viewer")), std::vector<std::string>{anon});
  EXPECT_EQ(markedIds(audienceChannel("pro")), std::vector<std::string>{user});

  apply({event(R"({"type":"identify","anonymousId":"a1","userId":"u1"})", kT0 + 1)});
  const std::string merged = profile("user:u1")->id;
  EXPECT_EQ(profile("anon:a1")->id, merged);
  const std::string gone = merged == user ? anon : user;
  EXPECT_EQ(markedIds(audienceChannel("viewer")), std::vector<std::string>{merged});
  EXPECT_EQ(markedIds(audienceChannel("pro")), std::vector<std::string>{merged});
  EXPECT_FALSE(reviewsDue(*store_, kT0 + 100 * kDay).contains(audienceReviewKey(gone)));
  auto review = engine_->reviewAudiences(merged, kT0 + 1);
  ASSERT_TRUE(review);
  EXPECT_TRUE(review->transitions.empty()) << "the merged history keeps the view";

  auto erased = engine_->erase("user:u1");
  ASSERT_TRUE(erased && *erased);
  commit(**erased);
  EXPECT_TRUE(markedIds(audienceChannel("viewer")).empty());
  EXPECT_TRUE(markedIds(audienceChannel("pro")).empty());
  EXPECT_TRUE(reviewsDue(*store_, kT0 + 100 * kDay).empty());
}

TEST_P(ProfileEngineTest, EraseDeletesThePersonsMarksInEveryChannel) {
  options_.sync_channels = {"crm", "ads"};
  open();
  apply({event(R"({"type":"identify","userId":"u1","traits":{"x":1}})", kT0),
         event(R"({"type":"identify","userId":"u2","traits":{"x":2}})", kT0)});
  const std::string kept = profile("user:u2")->id;
  Changes bump;  // whatever their seq
  bump.sync_put = {{"crm", profile("user:u1")->id}};
  commit(bump);
  auto changes = engine_->erase("user:u1");
  ASSERT_TRUE(changes && *changes);
  commit(**changes);
  EXPECT_EQ(markedIds("crm"), std::vector<std::string>{kept});
  EXPECT_EQ(markedIds("ads"), std::vector<std::string>{kept});
}

#ifdef JUNCTION_TEST_POSTGRES
INSTANTIATE_TEST_SUITE_P(Backends, ProfileEngineTest, ::testing::Values("postgres"),
                         testing::backendName);
#else
INSTANTIATE_TEST_SUITE_P(Backends, ProfileEngineTest, ::testing::Values("sqlite", "rocksdb"),
                         testing::backendName);

// The embedded store's own: PostgreSQL is repaired in PostgreSQL.
TEST(ProfileStoreDamageTest, AMissingOrDamagedStoreIsRefusedNamingTheRecovery) {
  TempDir dir;
  {
    auto s = SqliteProfileStore::open(dir.file(""));
    ASSERT_TRUE(s);
  }
  std::filesystem::remove(dir.file("profiles.db"));
  auto missing = SqliteProfileStore::open(dir.file(""));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("junction recover profiles"), std::string::npos);
  EXPECT_NE(missing.error().message.find(dir.file("profiles.db")), std::string::npos);

  std::filesystem::remove(dir.file("profiles.db.created"));
  {
    auto s = SqliteProfileStore::open(dir.file(""));
    ASSERT_TRUE(s);
  }
  // Corrupt every page after the first (the header stays readable).
  {
    std::fstream f(dir.file("profiles.db"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    const std::string junk(5 * 4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto damaged = SqliteProfileStore::open(dir.file(""));
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().message.find("damaged"), std::string::npos) << damaged.error().message;
  EXPECT_NE(damaged.error().message.find("junction recover profiles"), std::string::npos);
}

// `junction recover profiles` on SQLite copies the sync marks of the profiles it copies; a
// store from before the marks has none.
TEST(ProfileStoreDamageTest, TheSqliteSalvageCopiesTheSyncMarks) {
  TempDir from;
  TempDir to;
  TempDir old;
  {
    auto s = SqliteProfileStore::open(from.file(""));
    ASSERT_TRUE(s);
    Changes c;
    c.profiles_put = {{"p_1", "{}"}, {"p_2", "{}"}};
    c.sync_put = {{"crm", "p_1"}, {"crm", "p_2"}, {"crm", "p_2"}, {"ads", "p_2"},
                  {"crm", "p_unreadable"}};
    ASSERT_TRUE((*s)->commit(c).ok());
  }
  auto store = SqliteProfileStore::open(to.file(""));
  ASSERT_TRUE(store);
  auto salvage = (*store)->salvageFrom(SqliteProfileStore::fileIn(from.file("")));
  ASSERT_TRUE(salvage) << salvage.error().message;
  EXPECT_TRUE(salvage->complete);
  EXPECT_EQ(salvage->profiles, 2u);
  EXPECT_EQ(salvage->sync_marks, 3u);
  EXPECT_EQ((*store)->syncMarkCount("crm").value(), 2u);
  EXPECT_EQ((*store)->syncMarkCount("ads").value(), 1u);

  {
    auto s = SqliteProfileStore::open(old.file(""));
    ASSERT_TRUE(s);
    Changes c;
    c.profiles_put = {{"p_3", "{}"}};
    ASSERT_TRUE((*s)->commit(c).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(SqliteProfileStore::fileIn(old.file("")).c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "DROP TABLE sync_marks", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close_v2(db);
  auto earlier = (*store)->salvageFrom(SqliteProfileStore::fileIn(old.file("")));
  ASSERT_TRUE(earlier) << earlier.error().message;
  EXPECT_TRUE(earlier->complete);
  EXPECT_EQ(earlier->profiles, 1u);
  EXPECT_EQ(earlier->sync_marks, 0u);
}
#endif

}  // namespace
}  // namespace junction::core::profiles
