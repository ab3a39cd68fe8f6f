// The Profile API's answer cache (core/profiles/answer_cache.h): hits by each identifier of a
// person, a commit's changes dropping what they touch, no answer read before a commit kept
// after it (also under threads racing a writer), expiry when a time window moves on, the byte
// bound; and computedChangesAt, which sets that expiry.

#include "core/profiles/answer_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <limits>
#include <thread>
#include <vector>

#include "core/profiles/profile.h"

namespace junction::core::profiles {
namespace {

namespace json = boost::json;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

std::shared_ptr<AnswerCache::Answer> answer(std::string id, std::string body,
                                            std::vector<std::string> keys,
                                            std::int64_t valid_until = kNever) {
  auto a = std::make_shared<AnswerCache::Answer>();
  a->profile_id = std::move(id);
  a->body = std::move(body);
  a->keys = std::move(keys);
  a->valid_until_ms = valid_until;
  return a;
}

std::string bodyOf(const std::shared_ptr<const AnswerCache::Answer>& a) {
  return a ? a->body : "(miss)";
}

TEST(AnswerCacheTest, AnAnswerIsFoundByTheIdentifiersItWasReadBy) {
  AnswerCache cache(1 << 20);
  EXPECT_EQ(cache.find("user:1", 0), nullptr);
  cache.put(cache.epoch(), "user:1", answer("p1", "one", {"user:1", "anon:a", "email:x@y.z"}));
  EXPECT_EQ(bodyOf(cache.find("user:1", 0)), "one");
  EXPECT_EQ(cache.find("anon:a", 0), nullptr);  // not read by it yet
  cache.put(cache.epoch(), "anon:a", answer("p1", "one", {"user:1", "anon:a", "email:x@y.z"}));
  EXPECT_EQ(bodyOf(cache.find("anon:a", 0)), "one");
  EXPECT_EQ(bodyOf(cache.find("user:1", 0)), "one");  // the second reading kept the first's key
  EXPECT_GT(cache.bytes(), 0u);
}

TEST(AnswerCacheTest, ACommitDropsTheAnswersAndIdentifiersItTouches) {
  AnswerCache cache(1 << 20);
  cache.put(cache.epoch(), "user:1", answer("p1", "one", {"user:1"}));
  cache.put(cache.epoch(), "user:2", answer("p2", "two", {"user:2"}));
  cache.put(cache.epoch(), "user:3", answer("p3", "three", {"user:3"}));
  cache.put(cache.epoch(), "user:4", answer("p4", "four", {"user:4"}));

  Changes outbox_only;
  outbox_only.outbox_put.emplace_back("p1", 5);
  outbox_only.applied = 7;
  const std::uint64_t before = cache.epoch();
  cache.forget(outbox_only);
  EXPECT_EQ(cache.epoch(), before);  // nothing a reader sees changed
  EXPECT_EQ(bodyOf(cache.find("user:1", 0)), "one");

  Changes c;
  c.profiles_put.emplace_back("p1", "{}");
  c.profiles_deleted.push_back("p2");
  c.identities_put.emplace_back("user:3", "p9");  // moved to another person
  cache.forget(c);
  EXPECT_EQ(cache.find("user:1", 0), nullptr);
  EXPECT_EQ(cache.find("user:2", 0), nullptr);
  EXPECT_EQ(cache.find("user:3", 0), nullptr);
  EXPECT_EQ(bodyOf(cache.find("user:4", 0)), "four");
  Changes erased;
  erased.identities_deleted.push_back("user:4");
  cache.forget(erased);
  EXPECT_EQ(cache.find("user:4", 0), nullptr);
}

TEST(AnswerCacheTest, AnAnswerReadBeforeACommitIsNotKept) {
  AnswerCache cache(1 << 20);
  const std::uint64_t epoch = cache.epoch();  // the reader starts reading the store
  Changes c;
  c.profiles_put.emplace_back("p1", "{}");
  cache.forget(c);  // a commit lands meanwhile
  cache.put(epoch, "user:1", answer("p1", "old", {"user:1"}));
  EXPECT_EQ(cache.find("user:1", 0), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(AnswerCacheTest, AnIdentifierNoLongerThePersonsIsAMiss) {
  AnswerCache cache(1 << 20);
  cache.put(cache.epoch(), "anon:a", answer("p1", "one", {"user:1", "anon:a"}));
  // p1 rendered again without anon:a (its link went to someone else in the same commit that
  // changed p1, whose forget() this reading raced and lost to nobody).
  cache.put(cache.epoch(), "user:1", answer("p1", "one again", {"user:1"}));
  EXPECT_EQ(cache.find("anon:a", 0), nullptr);
  EXPECT_EQ(bodyOf(cache.find("user:1", 0)), "one again");
}

TEST(AnswerCacheTest, AnAnswerExpiresWhenATimeWindowMovesOn) {
  AnswerCache cache(1 << 20);
  cache.put(cache.epoch(), "user:1", answer("p1", "one", {"user:1"}, 1000));
  EXPECT_EQ(bodyOf(cache.find("user:1", 999)), "one");
  EXPECT_EQ(cache.find("user:1", 1000), nullptr);
  EXPECT_EQ(cache.find("user:1", 0), nullptr);  // dropped at the expired read
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(AnswerCacheTest, TheLeastRecentlyReadGoFirstWithinTheBound) {
  constexpr std::size_t kCapacity = 64 * 1024;
  AnswerCache cache(kCapacity);
  const std::string body(300, 'x');
  cache.put(cache.epoch(), "user:keep", answer("p-keep", body, {"user:keep"}));
  for (int i = 0; i < 2000; ++i) {
    const std::string id = std::to_string(i);
    cache.put(cache.epoch(), "user:" + id, answer("p" + id, body, {"user:" + id}));
    ASSERT_LE(cache.bytes(), kCapacity);
    ASSERT_NE(cache.find("user:keep", 0), nullptr) << "evicted at " << i;  // read often: kept
  }
  int kept = 0;
  for (int i = 0; i < 2000; ++i) {
    kept += cache.find("user:" + std::to_string(i), 0) != nullptr;
  }
  EXPECT_GT(kept, 20);
  EXPECT_LT(kept, 200);
  EXPECT_NE(cache.find("user:1999", 0), nullptr);  // the newest stays
  EXPECT_EQ(cache.find("user:0", 0), nullptr);
  // An answer larger than a shard's share is not kept at all.
  cache.put(cache.epoch(), "user:big", answer("p-big", std::string(kCapacity, 'x'), {"user:big"}));
  EXPECT_EQ(cache.find("user:big", 0), nullptr);
}

// Readers fill the cache from a "store" a writer keeps changing, as the Profile API and the
// applier do: a hit is never older than what was committed and forgotten before the read.
TEST(AnswerCacheTest, ReadersRacingCommitsNeverSeeAnAnswerOlderThanTheStore) {
  AnswerCache cache(1 << 20);
  constexpr int kPeople = 4;
  std::atomic<int> stored[kPeople] = {};     // the store's version of each person
  std::atomic<int> forgotten[kPeople] = {};  // committed and forgotten
  std::atomic<bool> done{false};
  std::atomic<int> stale{0}, hits{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0; !done.load(); ++i) {
        const int p = (i + r) % kPeople;
        const std::string key = "user:" + std::to_string(p);
        const int floor = forgotten[p].load();
        if (auto hit = cache.find(key, 0)) {
          ++hits;
          if (std::stoi(hit->body) < floor) {
            ++stale;
          }
          continue;
        }
        const std::uint64_t epoch = cache.epoch();
        const int v = stored[p].load();  // the store read
        cache.put(epoch, key, answer("p" + std::to_string(p), std::to_string(v), {key}));
      }
    });
  }
  // At least 20,000 commits, and on until the readers have hit often (a loaded machine may
  // not run them at first).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int n = 1; n <= 20000 || (hits.load() < 1000 && std::chrono::steady_clock::now() < deadline);
       ++n) {
    if (n % 64 == 0) {
      std::this_thread::yield();
    }
    const int p = n % kPeople;
    stored[p].store(n);  // the commit
    Changes c;
    c.profiles_put.emplace_back("p" + std::to_string(p), "{}");
    cache.forget(c);
    forgotten[p].store(n);
  }
  done = true;
  for (auto& t : readers) {
    t.join();
  }
  EXPECT_EQ(stale.load(), 0);
  EXPECT_GE(hits.load(), 1000);
}

config::ComputedTraitConfig windowed(config::ComputedTraitConfig::Kind kind, std::int64_t within) {
  config::ComputedTraitConfig c;
  c.name = "t";
  c.kind = kind;
  c.within_ms = within;
  return c;
}

TEST(ComputedChangesAtTest, TheFirstTimestampToLeaveOrEnterTheWindow) {
  using Kind = config::ComputedTraitConfig::Kind;
  const std::int64_t now = 1'000'000;
  const json::object counts{{"t", json::array{now + 50, now - 3, now - 8, now - 500}}};
  // now - 8 leaves first (at now + 3); now - 500 is out already; now + 50 enters later.
  EXPECT_EQ(computedChangesAt(windowed(Kind::Count, 10), counts, now), now + 3);
  EXPECT_EQ(computedChangesAt(windowed(Kind::Count, 1000), counts, now), now + 50);
  const json::object sums{{"t", json::array{json::array{now - 1, 2.5}, json::array{now - 9, 1}}}};
  EXPECT_EQ(computedChangesAt(windowed(Kind::Sum, 10), sums, now), now + 2);
  EXPECT_EQ(computedChangesAt(windowed(Kind::Count, 0), json::object{{"n", 4}}, now), kNever);
  EXPECT_EQ(computedChangesAt(windowed(Kind::Last, 0), json::object{}, now), kNever);
  EXPECT_EQ(computedChangesAt(windowed(Kind::Count, 10), json::object{}, now), kNever);
  // The value does change there, and not before.
  const auto trait = windowed(Kind::Count, 10);
  EXPECT_EQ(computedValue(trait, counts, now), computedValue(trait, counts, now + 2));
  EXPECT_NE(computedValue(trait, counts, now), computedValue(trait, counts, now + 3));
}

}  // namespace
}  // namespace junction::core::profiles
