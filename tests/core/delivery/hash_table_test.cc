#include "core/delivery/hash_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>

namespace junction::core::delivery {
namespace {

TEST(HashTableTest, InsertFindEraseAndGrowth) {
  HashTable<int> table;
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(table.find(42), nullptr);
  auto [value, inserted] = table.tryEmplace(42);
  ASSERT_TRUE(inserted);
  *value = 7;
  EXPECT_FALSE(table.tryEmplace(42).second);
  EXPECT_EQ(*table.find(42), 7);
  for (std::uint64_t k = 1; k <= 1000; ++k) {
    table[k * 0x9E3779B97F4A7C15ull] = static_cast<int>(k);
  }
  EXPECT_EQ(table.size(), 1001u);
  for (std::uint64_t k = 1; k <= 1000; ++k) {
    ASSERT_NE(table.find(k * 0x9E3779B97F4A7C15ull), nullptr);
    EXPECT_EQ(*table.find(k * 0x9E3779B97F4A7C15ull), static_cast<int>(k));
  }
  EXPECT_TRUE(table.erase(42));
  EXPECT_FALSE(table.erase(42));
  EXPECT_EQ(table.find(42), nullptr);
  EXPECT_EQ(table.size(), 1000u);
  std::size_t visited = 0;
  table.forEach([&](std::uint64_t key, int& v) {
    EXPECT_EQ(key, static_cast<std::uint64_t>(v) * 0x9E3779B97F4A7C15ull);
    ++visited;
  });
  EXPECT_EQ(visited, 1000u);
}

// Random inserts and erases against std::unordered_map, with keys crowded onto few home slots
// (and onto the last slots, so runs wrap around): every backward shift must keep every key
// reachable.
TEST(HashTableTest, MatchesUnorderedMapUnderChurnWithCollisionsAndWrapAround) {
  std::mt19937_64 rng(20261128);
  // Low 32 bits pick the home slot (for any capacity up to 2^32): all ones is the last slot, so
  // runs starting there wrap around to slot 0, where other keys have their homes.
  const std::uint64_t lows[] = {0xFFFFFFFFull, 0xFFFFFFFEull, 0xFFFFFFFDull, 0, 1, 2};
  for (int variant = 0; variant < 3; ++variant) {
    HashTable<std::uint64_t> table;
    std::unordered_map<std::uint64_t, std::uint64_t> model;
    for (int op = 0; op < 50'000; ++op) {
      const std::uint64_t high = (rng() % (variant == 0 ? 8 : variant == 1 ? 32 : 128)) << 32;
      const std::uint64_t key = high | (rng() % 4 == 0 ? (rng() & 0xFFFF) : lows[rng() % 6]);
      switch (rng() % 3) {
        case 0:
        case 1: {
          auto [v, inserted] = table.tryEmplace(key);
          auto [it, model_inserted] = model.try_emplace(key, 0);
          ASSERT_EQ(inserted, model_inserted);
          *v += 1;
          it->second += 1;
          break;
        }
        default:
          ASSERT_EQ(table.erase(key), model.erase(key) == 1);
      }
      ASSERT_EQ(table.size(), model.size());
      if (op % 1000 == 0) {
        for (const auto& [k, v] : model) {
          const std::uint64_t* found = table.find(k);
          ASSERT_NE(found, nullptr) << "key " << k << " lost after op " << op;
          ASSERT_EQ(*found, v);
        }
      }
    }
    std::size_t visited = 0;
    table.forEach([&](std::uint64_t k, std::uint64_t& v) {
      ASSERT_EQ(model.at(k), v);
      ++visited;
    });
    EXPECT_EQ(visited, model.size());
  }
}

}  // namespace
}  // namespace junction::core::delivery
