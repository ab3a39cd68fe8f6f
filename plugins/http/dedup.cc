#include "dedup.h"

#include <algorithm>
#include <functional>

namespace junction::plugins::http {

Deduplicator::Deduplicator(std::chrono::milliseconds window, std::size_t max_entries)
    : window_ms_(window.count()),
      max_per_shard_(std::max<std::size_t>(1, (max_entries + kShards - 1) / kShards)) {}

Deduplicator::Shard& Deduplicator::shardFor(std::string_view id) {
  return shards_[std::hash<std::string_view>{}(id) % kShards];
}

void Deduplicator::evict(Shard& shard, std::int64_t now_ms) {
  // Oldest first: expired ones, and any beyond the bound. `order` may hold stale entries (an id
  // forgotten, or remembered again later): only the one with the id's current seq counts.
  while (!shard.order.empty()) {
    auto& [id, seq] = shard.order.front();
    auto it = shard.ids.find(id);
    const bool current = it != shard.ids.end() && it->second.seq == seq;
    if (current) {
      const bool expired = now_ms - it->second.at_ms >= window_ms_;
      if (!expired && shard.ids.size() <= max_per_shard_ &&
          shard.order.size() <= 2 * max_per_shard_) {
        break;
      }
      shard.ids.erase(it);
    }
    shard.order.pop_front();
  }
}

bool Deduplicator::seen(std::string_view id, std::int64_t now_ms) {
  if (!enabled()) {
    return false;
  }
  Shard& shard = shardFor(id);
  std::lock_guard lock(shard.mutex);
  std::string key(id);
  auto it = shard.ids.find(key);
  if (it != shard.ids.end() && now_ms - it->second.at_ms < window_ms_) {
    return true;
  }
  const std::uint64_t seq = shard.next_seq++;
  if (it != shard.ids.end()) {
    it->second = Entry{now_ms, seq};
  } else {
    shard.ids.emplace(key, Entry{now_ms, seq});
  }
  shard.order.emplace_back(std::move(key), seq);
  evict(shard, now_ms);
  return false;
}

void Deduplicator::forget(std::string_view id) {
  if (!enabled()) {
    return;
  }
  Shard& shard = shardFor(id);
  std::lock_guard lock(shard.mutex);
  shard.ids.erase(std::string(id));
}

std::size_t Deduplicator::size() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.ids.size();
  }
  return n;
}

}  // namespace junction::plugins::http
