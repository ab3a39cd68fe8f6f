#include "dedup.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace junction::plugins::http {
namespace {

using namespace std::chrono_literals;

// seenMany (the http source's call: a request's ids at once) answers as seen() one by one would,
// including ids repeated inside one call, across evictions and window expiry.
TEST(DeduplicatorTest, SeenManyMatchesSeenOneByOne) {
  // A bound far above the 300 ids used: only the window evicts, so both instances (whose random
  // seeds spread ids over shards differently) must agree on every answer.
  Deduplicator many(1000ms, 100000);
  Deduplicator one(1000ms, 100000);
  std::mt19937 rng(11);
  std::int64_t now = 0;
  std::vector<char> answers;
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> ids(rng() % 120);
    for (auto& id : ids) {
      id = "id-" + std::to_string(rng() % 300);
    }
    std::vector<std::string_view> views(ids.begin(), ids.end());
    many.seenMany(views, now, answers);
    ASSERT_EQ(answers.size(), ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(answers[i] != 0, one.seen(ids[i], now)) << "round " << round << " id " << ids[i];
    }
    now += 1 + static_cast<std::int64_t>(rng() % 200);
  }
  std::vector<std::string_view> none;
  many.seenMany(none, now, answers);
  EXPECT_TRUE(answers.empty());
}

TEST(DeduplicatorTest, SeenManyRepeatsInsideOneCall) {
  Deduplicator d(10min, 1000);
  std::vector<std::string_view> ids{"a", "b", "a", "c", "b"};
  std::vector<char> duplicate;
  d.seenMany(ids, 0, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{0, 0, 1, 0, 1}));
  d.seenMany(ids, 1, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{1, 1, 1, 1, 1}));
  Deduplicator off(0ms, 1000);
  off.seenMany(ids, 0, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>(5, 0)));
}

// admitMany (the http source's call): an id is a duplicate for other calls only once confirmed;
// within one call, a repeat is a duplicate at once; forget() drops a pending id.
TEST(DeduplicatorTest, AdmittedIdsAreDuplicatesOnlyOnceConfirmed) {
  Deduplicator d(10min, 1000);
  std::vector<std::string_view> ids{"a", "b", "a"};
  std::vector<char> duplicate;
  d.admitMany(ids, 0, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{0, 0, 1}));
  // Not stored yet: another call gets through (a retry of an attempt in flight).
  d.admitMany(ids, 1, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{0, 0, 1}));
  d.confirm("a");
  d.admitMany(ids, 2, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{1, 0, 1}));
  d.forget("b");
  d.confirm("b");  // forgotten: nothing to confirm
  d.admitMany(std::vector<std::string_view>{"b"}, 3, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{0}));
  d.confirm("b");
  EXPECT_TRUE(d.seen("b", 4));
  // A confirmed id still expires with the window, and a pending one is evicted like any.
  d.admitMany(std::vector<std::string_view>{"a"}, 600'001, duplicate);
  EXPECT_EQ(duplicate, (std::vector<char>{0}));
  EXPECT_EQ(d.size(), 2u);
}

TEST(DeduplicatorTest, WithinTheWindow) {
  Deduplicator d(10min, 1000);
  EXPECT_FALSE(d.seen("a", 0));
  EXPECT_TRUE(d.seen("a", 1000));
  EXPECT_TRUE(d.seen("a", 599'999));
  EXPECT_FALSE(d.seen("a", 600'000));  // window passed: accepted again
  EXPECT_TRUE(d.seen("a", 600'001));
  EXPECT_FALSE(d.seen("b", 600'001));
}

TEST(DeduplicatorTest, ForgetLetsARetryThrough) {
  Deduplicator d(10min, 1000);
  EXPECT_FALSE(d.seen("a", 0));
  d.forget("a");
  EXPECT_FALSE(d.seen("a", 1));
  EXPECT_TRUE(d.seen("a", 2));
}

TEST(DeduplicatorTest, OffWithAZeroWindow) {
  Deduplicator d(0ms, 1000);
  EXPECT_FALSE(d.enabled());
  EXPECT_FALSE(d.seen("a", 0));
  EXPECT_FALSE(d.seen("a", 0));
  EXPECT_EQ(d.size(), 0u);
}

TEST(DeduplicatorTest, BoundedOldestForgottenFirst) {
  Deduplicator d(10min, 160);  // 10 per shard
  for (int i = 0; i < 10000; ++i) {
    EXPECT_FALSE(d.seen("id-" + std::to_string(i), i));
  }
  EXPECT_LE(d.size(), 160u);
  EXPECT_TRUE(d.seen("id-9999", 10001));  // the newest are remembered
  EXPECT_FALSE(d.seen("id-0", 10002));     // the oldest were evicted
}

TEST(DeduplicatorTest, ExpiredEntriesAreEvicted) {
  Deduplicator d(1s, 100000);
  for (int i = 0; i < 1000; ++i) {
    (void)d.seen("x" + std::to_string(i), 0);
  }
  EXPECT_EQ(d.size(), 1000u);
  // Each insertion evicts the expired entries at the front of its shard.
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(d.seen("x" + std::to_string(i), 5000));
  }
  EXPECT_EQ(d.size(), 1000u);
  EXPECT_TRUE(d.seen("x1", 5001));
}

TEST(DeduplicatorTest, ConcurrentSeenAcceptsEachIdOnce) {
  Deduplicator d(10min, 1'000'000);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        if (!d.seen("m" + std::to_string(i), 1)) {
          accepted.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(accepted.load(), 5000);
}

TEST(DeduplicatorTest, WindowExpiryStartsANewWindow) {
  Deduplicator d(100ms, 1000);
  EXPECT_FALSE(d.seen("a", 1000));
  EXPECT_TRUE(d.seen("a", 1099));   // the last millisecond of the window
  EXPECT_FALSE(d.seen("a", 1100));  // expired: remembered again, as of 1100
  EXPECT_TRUE(d.seen("a", 1150));
  EXPECT_TRUE(d.seen("a", 1199));
  EXPECT_FALSE(d.seen("a", 1200));
  EXPECT_EQ(d.size(), 1u);  // updated in place, not remembered twice
  // A clock that steps back still counts as within the window.
  EXPECT_TRUE(d.seen("a", 900));
}

TEST(DeduplicatorTest, ForgetThenSeenAgain) {
  Deduplicator d(10min, 1000);
  d.forget("never-seen");  // no-op
  EXPECT_FALSE(d.seen("a", 0));
  EXPECT_FALSE(d.seen("b", 0));
  d.forget("a");
  EXPECT_EQ(d.size(), 1u);
  EXPECT_TRUE(d.seen("b", 1));  // untouched
  EXPECT_FALSE(d.seen("a", 1));
  EXPECT_TRUE(d.seen("a", 2));
  d.forget("a");
  d.forget("a");
  EXPECT_FALSE(d.seen("a", 3));
  EXPECT_EQ(d.size(), 2u);
}

TEST(DeduplicatorTest, EmptyAndShortIdsAreDistinct) {
  Deduplicator d(10min, 1000);
  std::vector<std::string> ids = {"", "a", "b", "ab", "ba", "abc", "abcd", "abcde", "abcdefg"};
  for (const char* id : {"abcdefgh", "abcdefghi", "abcdefghX", "Xbcdefghi"}) {
    ids.emplace_back(id);
  }
  ids.emplace_back(1, '\0');
  ids.emplace_back(2, '\0');
  for (const auto& id : ids) {
    EXPECT_FALSE(d.seen(id, 0)) << id;
  }
  for (const auto& id : ids) {
    EXPECT_TRUE(d.seen(id, 1)) << id;
  }
  EXPECT_EQ(d.size(), ids.size());
}

TEST(DeduplicatorTest, BoundEvictsOldestFirstPerShard) {
  Deduplicator d(10min, 64);  // 4 per shard
  std::array<std::vector<int>, Deduplicator::kShards> by_shard;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = "id-" + std::to_string(i);
    EXPECT_FALSE(d.seen(id, i));
    by_shard[d.shardOf(id)].push_back(i);
  }
  EXPECT_LE(d.size(), 64u);
  // Duplicates change nothing, so the newest 4 of each shard can all be checked first.
  std::vector<int> evicted;
  for (const auto& ids : by_shard) {
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if (k + 4 >= ids.size()) {
        EXPECT_TRUE(d.seen("id-" + std::to_string(ids[k]), 3000)) << ids[k];
      } else {
        evicted.push_back(ids[k]);
      }
    }
  }
  EXPECT_EQ(d.size(), 64u);
  // Every older one was forgotten (asking remembers it, which evicts only remembered ones).
  for (int i : evicted) {
    EXPECT_FALSE(d.seen("id-" + std::to_string(i), 3000)) << i;
  }
}

std::string uuidLike(std::uint64_t n) {
  std::string s = "00000000-0000-4000-8000-000000000000";
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = s.size(); i-- > 0 && n != 0;) {
    if (s[i] == '-') {
      continue;
    }
    s[i] = kHex[n & 0xF];
    n >>= 4;
  }
  return s;
}

TEST(DeduplicatorTest, ManyDistinctIds) {
  Deduplicator d(10min, 1'000'000);
  constexpr int kIds = 200'000;
  for (int i = 0; i < kIds; ++i) {
    ASSERT_FALSE(d.seen(uuidLike(i), 1)) << i;
  }
  EXPECT_EQ(d.size(), static_cast<std::size_t>(kIds));
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(d.seen(uuidLike(i), 2)) << i;
  }
  EXPECT_EQ(d.size(), static_cast<std::size_t>(kIds));
  // Ids that differ from the remembered ones in one character only are new.
  for (int i = 0; i < 1000; ++i) {
    std::string id = uuidLike(i);
    id[0] = 'g';
    ASSERT_FALSE(d.seen(id, 3)) << id;
  }
}

TEST(DeduplicatorTest, ShardsShareSimilarIdsEvenly) {
  Deduplicator d(10min, 1000);
  std::array<int, Deduplicator::kShards> count{};
  for (int i = 0; i < 160'000; ++i) {
    ++count[d.shardOf("id-" + std::to_string(i))];
  }
  for (int c : count) {
    EXPECT_NEAR(c, 10'000, 500);  // ±5 %: 5 standard deviations
  }
}

TEST(DeduplicatorTest, MemoryIsTheBoundsFromTheStart) {
  // The 1 M default: 16 shards × (131,072 slots × 32 B + 131,072 ring entries × 24 B) = 112 MiB,
  // allocated up front and never grown (no request waits for a table to double).
  constexpr std::size_t kDefault = 16 * (131'072 * 32 + 131'072 * 24);
  Deduplicator d(10min, 1'000'000);
  EXPECT_EQ(d.memoryBytes(), kDefault);
  EXPECT_EQ(Deduplicator(0ms, 1'000'000).memoryBytes(), 0u);
  for (std::size_t i = 0; i < 200'000; ++i) {
    (void)d.seen(uuidLike(i), 1);
  }
  EXPECT_EQ(d.size(), 200'000u);
  EXPECT_EQ(d.memoryBytes(), kDefault);

  // Bounded by max_entries however many ids pass through: 100 per shard, 256 slots and 256
  // ring entries each.
  Deduplicator small(10min, 1600);
  for (std::size_t i = 0; i < 200'000; ++i) {
    (void)small.seen(uuidLike(i), 1);
  }
  EXPECT_LE(small.size(), 1600u);
  EXPECT_EQ(small.memoryBytes(), 16 * (256 * 32 + 256 * 24u));
}

TEST(DeduplicatorTest, ABoundLargerThanTheMachineIsRefused) {
  try {
    Deduplicator d(10min, 1'000'000'000'000);
    FAIL() << "a 112 TB window was allocated";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dedup_max_entries 1000000000000 needs"),
              std::string::npos)
        << e.what();
  }
}

TEST(DeduplicatorTest, ConcurrentDistinctIdsAreNeverDuplicates) {
  Deduplicator d(10min, 1'000'000);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 30'000;
  std::atomic<int> duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (d.seen(id, i)) {
          duplicates.fetch_add(1);
        }
        if (i % 7 == 0) {  // forget and remember again, racing the other threads' inserts
          d.forget(id);
          if (d.seen(id, i)) {
            duplicates.fetch_add(1);
          }
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(d.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(DeduplicatorTest, ForgetAndReAddCyclesKeepEveryOtherId) {
  // Deletions shift clusters back: whatever was not forgotten must still be found.
  Deduplicator d(10min, 1'000'000);
  constexpr int kIds = 50'000;
  for (int i = 0; i < kIds; ++i) {
    ASSERT_FALSE(d.seen(uuidLike(i), 0));
  }
  for (int round = 0; round < 4; ++round) {
    for (int i = round; i < kIds; i += 3) {
      d.forget(uuidLike(i));
    }
    for (int i = 0; i < kIds; ++i) {
      const bool forgotten = i >= round && (i - round) % 3 == 0;
      ASSERT_EQ(d.seen(uuidLike(i), round + 1), !forgotten) << "round " << round << " id " << i;
    }
    ASSERT_EQ(d.size(), static_cast<std::size_t>(kIds));
  }
}

// The semantics written plainly (the former implementation): per shard, a map from id to
// (time, seq) and a deque of (id, seq) in insertion order, evicted from the front.
class ModelDeduplicator {
 public:
  ModelDeduplicator(std::int64_t window_ms, std::size_t max_entries, const Deduplicator& real)
      : window_ms_(window_ms),
        max_per_shard_(std::max<std::size_t>(
            1, (max_entries + Deduplicator::kShards - 1) / Deduplicator::kShards)),
        real_(real) {}

  bool seen(const std::string& id, std::int64_t now_ms) {
    Shard& shard = shards_[real_.shardOf(id)];
    auto it = shard.ids.find(id);
    if (it != shard.ids.end() && now_ms - it->second.first < window_ms_) {
      return true;
    }
    const std::uint64_t seq = shard.next_seq++;
    shard.ids[id] = {now_ms, seq};
    shard.order.emplace_back(id, seq);
    evict(shard, now_ms);
    return false;
  }
  void forget(const std::string& id) { shards_[real_.shardOf(id)].ids.erase(id); }
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& shard : shards_) {
      n += shard.ids.size();
    }
    return n;
  }

 private:
  struct Shard {
    std::unordered_map<std::string, std::pair<std::int64_t, std::uint64_t>> ids;
    std::deque<std::pair<std::string, std::uint64_t>> order;
    std::uint64_t next_seq = 0;
  };
  void evict(Shard& shard, std::int64_t now_ms) {
    while (!shard.order.empty()) {
      const auto& [id, seq] = shard.order.front();
      auto it = shard.ids.find(id);
      if (it != shard.ids.end() && it->second.second == seq) {
        const bool expired = now_ms - it->second.first >= window_ms_;
        if (!expired && shard.ids.size() <= max_per_shard_ &&
            shard.order.size() <= 2 * max_per_shard_) {
          break;
        }
        shard.ids.erase(it);
      }
      shard.order.pop_front();
    }
  }

  const std::int64_t window_ms_;
  const std::size_t max_per_shard_;
  const Deduplicator& real_;
  std::array<Shard, Deduplicator::kShards> shards_;
};

TEST(DeduplicatorTest, MatchesTheModelOverRandomOperations) {
  struct Case {
    std::size_t max_entries;
    std::int64_t window_ms;  // against time steps of up to 250 ms
  };
  // Short windows evict mostly by expiry; long ones by the bound on ids and on the order.
  for (const Case c : {Case{16, 1000}, Case{100, 1000}, Case{1000, 1000}, Case{16, 1'000'000},
                       Case{100, 1'000'000}}) {
    const std::size_t max_entries = c.max_entries;
    const std::int64_t window_ms = c.window_ms;
    Deduplicator d(std::chrono::milliseconds(window_ms), max_entries);
    ModelDeduplicator model(window_ms, max_entries, d);
    std::mt19937_64 rng(max_entries + static_cast<std::size_t>(window_ms));
    const std::size_t universe = max_entries * 3;  // most ids come back, some after eviction
    std::int64_t now = 0;
    for (int op = 0; op < 100'000; ++op) {
      const std::string id = "m" + std::to_string(rng() % universe);
      const auto r = rng() % 100;
      if (r < 50) {
        ASSERT_EQ(d.seen(id, now), model.seen(id, now)) << "op " << op << " id " << id;
      } else if (r < 65) {
        // Accepted, then not queued after all: leaves a stale entry in the eviction order, so
        // the 2 × bound on that order is reached too.
        ASSERT_EQ(d.seen(id, now), model.seen(id, now)) << "op " << op << " id " << id;
        d.forget(id);
        model.forget(id);
      } else if (r < 90) {
        d.forget(id);
        model.forget(id);
      } else if (r < 99) {
        now += static_cast<std::int64_t>(rng() % 250);
      } else {
        now -= static_cast<std::int64_t>(rng() % 10);  // a clock stepping back a little
      }
      ASSERT_EQ(d.size(), model.size()) << "op " << op;
    }
  }
}

}  // namespace
}  // namespace junction::plugins::http
