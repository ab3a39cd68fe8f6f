#pragma once

// De-duplication of repeated messageIds within a time window: in memory, bounded (the oldest
// ids are forgotten first when full), per source. Thread-safe: sharded, one mutex per shard.

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace junction::plugins::http {

class Deduplicator {
 public:
  // `window` 0 disables it (`seen` is then always false and remembers nothing).
  Deduplicator(std::chrono::milliseconds window, std::size_t max_entries);

  bool enabled() const noexcept { return window_ms_ > 0; }

  // True when `id` was remembered less than the window ago (a duplicate: nothing changes);
  // otherwise remembers it as of `now_ms` and returns false.
  bool seen(std::string_view id, std::int64_t now_ms);
  // Forgets `id` (its events were not queued after all, so a retry must get through).
  void forget(std::string_view id);
  std::size_t size() const;

 private:
  static constexpr std::size_t kShards = 16;
  struct Entry {
    std::int64_t at_ms = 0;
    std::uint64_t seq = 0;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry> ids;            // guarded by mutex
    std::deque<std::pair<std::string, std::uint64_t>> order;  // insertion order; guarded by mutex
    std::uint64_t next_seq = 0;                            // guarded by mutex
  };
  Shard& shardFor(std::string_view id);
  void evict(Shard& shard, std::int64_t now_ms);

  const std::int64_t window_ms_;
  const std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace junction::plugins::http
