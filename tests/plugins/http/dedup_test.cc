#include "dedup.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace junction::plugins::http {
namespace {

using namespace std::chrono_literals;

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

}  // namespace
}  // namespace junction::plugins::http
