#include "core/profiles/answer_cache.h"

#include <algorithm>
#include <functional>

namespace junction::core::profiles {

namespace {

// What a node of the maps and the list costs besides the strings it holds (measured roughly
// with jemalloc's size classes: a hash node, a list node, the shared_ptr's control block).
constexpr std::size_t kEntryOverhead = 192;
constexpr std::size_t kKeyOverhead = 96;  // an identifier in the answer and in the key map

std::size_t costOf(const AnswerCache::Answer& a) {
  std::size_t bytes = kEntryOverhead + a.body.size() + 2 * a.profile_id.size();
  for (const auto& k : a.keys) {
    // Kept once in the answer and, when it is read by it, once more in the key map.
    bytes += kKeyOverhead + 2 * k.size() + a.profile_id.size();
  }
  return bytes;
}

}  // namespace

AnswerCache::AnswerCache(std::size_t capacity_bytes) : capacity_(capacity_bytes) {}

AnswerCache::Shard& AnswerCache::shardOf(const std::string& profile_id) {
  return shards_[std::hash<std::string>{}(profile_id) % kShards];
}

AnswerCache::KeyShard& AnswerCache::keyShardOf(const std::string& key) {
  return key_shards_[std::hash<std::string>{}(key) % kShards];
}

std::shared_ptr<const AnswerCache::Answer> AnswerCache::find(const std::string& key,
                                                             std::int64_t now_ms) {
  std::string profile_id;
  {
    KeyShard& ks = keyShardOf(key);
    std::lock_guard lock(ks.mutex);
    auto it = ks.ids.find(key);
    if (it == ks.ids.end()) {
      return nullptr;
    }
    profile_id = it->second;
  }
  Shard& s = shardOf(profile_id);
  std::lock_guard lock(s.mutex);
  auto it = s.answers.find(profile_id);
  if (it == s.answers.end()) {
    return nullptr;
  }
  const Answer& a = *it->second.answer;
  if (now_ms >= a.valid_until_ms) {
    dropLocked(s, it);  // a windowed computed value moved on: render again
    return nullptr;
  }
  if (std::find(a.keys.begin(), a.keys.end(), key) == a.keys.end()) {
    return nullptr;  // the identifier is no longer this person's
  }
  s.lru.splice(s.lru.begin(), s.lru, it->second.lru);
  return it->second.answer;
}

void AnswerCache::put(std::uint64_t epoch, const std::string& key,
                      std::shared_ptr<const Answer> answer) {
  const std::size_t bytes = costOf(*answer);
  const std::size_t shard_capacity = capacity_ / kShards;
  if (bytes > shard_capacity) {
    return;
  }
  Shard& s = shardOf(answer->profile_id);
  std::lock_guard lock(s.mutex);
  if (epoch_.load(std::memory_order_seq_cst) != epoch) {
    return;  // a commit came while this was read: it may be older than the store
  }
  if (auto old = s.answers.find(answer->profile_id); old != s.answers.end()) {
    // The same person read by another identifier, or rendered again: the key map's entries
    // for its identifiers stay (each is checked against the answer on a hit).
    s.lru.erase(old->second.lru);
    s.bytes -= old->second.bytes;
    bytes_.fetch_sub(old->second.bytes, std::memory_order_relaxed);
    s.answers.erase(old);
  }
  s.lru.push_front(answer->profile_id);
  const std::string& profile_id = answer->profile_id;
  s.answers.emplace(profile_id, Shard::Entry{answer, s.lru.begin(), bytes});
  s.bytes += bytes;
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  {
    KeyShard& ks = keyShardOf(key);  // lock order: an answer shard, then a key shard
    std::lock_guard key_lock(ks.mutex);
    ks.ids.insert_or_assign(key, profile_id);
  }
  while (s.bytes > shard_capacity && !s.lru.empty()) {
    dropLocked(s, s.answers.find(s.lru.back()));
  }
}

void AnswerCache::dropLocked(Shard& s,
                             std::unordered_map<std::string, Shard::Entry>::iterator it) {
  const Answer& a = *it->second.answer;
  for (const auto& k : a.keys) {
    KeyShard& ks = keyShardOf(k);
    std::lock_guard key_lock(ks.mutex);
    if (auto h = ks.ids.find(k); h != ks.ids.end() && h->second == a.profile_id) {
      ks.ids.erase(h);
    }
  }
  s.lru.erase(it->second.lru);
  s.bytes -= it->second.bytes;
  bytes_.fetch_sub(it->second.bytes, std::memory_order_relaxed);
  s.answers.erase(it);
}

void AnswerCache::forgetKey(const std::string& key) {
  KeyShard& ks = keyShardOf(key);
  std::lock_guard lock(ks.mutex);
  ks.ids.erase(key);
}

void AnswerCache::forget(const Changes& changes) {
  if (changes.profiles_put.empty() && changes.profiles_deleted.empty() &&
      changes.identities_put.empty() && changes.identities_deleted.empty()) {
    return;  // the outbox or the offset alone
  }
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  auto drop = [&](const std::string& profile_id) {
    Shard& s = shardOf(profile_id);
    std::lock_guard lock(s.mutex);
    if (auto it = s.answers.find(profile_id); it != s.answers.end()) {
      dropLocked(s, it);
    }
  };
  for (const auto& [id, text] : changes.profiles_put) {
    drop(id);
  }
  for (const auto& id : changes.profiles_deleted) {
    drop(id);
  }
  for (const auto& [key, id] : changes.identities_put) {
    forgetKey(key);
  }
  for (const auto& key : changes.identities_deleted) {
    forgetKey(key);
  }
}

}  // namespace junction::core::profiles
