#pragma once

// The Profile API's answers of the people read most recently, rendered, in memory: a hit is
// two hash lookups instead of two store reads, a parse and a rendering. For stores this daemon
// alone writes (embedded): every commit tells the cache what it changed (forget), so an answer
// is never older than the store. Not for a store other nodes write too (postgres).
//
// - Keyed by profile id; a second map takes an identifier ("user:42") to the profile id it was
//   read for. A hit is checked against the answer: the identifier must still be one of the
//   person's (a merge moves identifiers only by changing the profiles they leave and join, and
//   those changes drop both answers), and the answer must still be valid: a computed trait over
//   a time window changes with the clock alone (valid_until_ms).
// - A reader takes epoch() before reading the store; put() keeps nothing when a forget() came
//   in between, so an answer read just before a commit cannot outlive it.
// - Bounded by bytes (answers, identifiers and the maps' overhead), least recently read out
//   first; sharded by profile id, each shard under its own mutex.

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/profiles/profile_store.h"

namespace junction::core::profiles {

class AnswerCache {
 public:
  struct Answer {
    std::string profile_id;
    std::string body;               // the 200 answer's JSON
    std::vector<std::string> keys;  // all the person's identifiers, "kind:value"
    std::int64_t valid_until_ms = 0;  // the rendering holds for now_ms < valid_until_ms
  };

  explicit AnswerCache(std::size_t capacity_bytes);

  // The answer for the identifier `key` at `now_ms`, or nullptr.
  std::shared_ptr<const Answer> find(const std::string& key, std::int64_t now_ms);

  // Take it before reading the store for an answer to put().
  std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_seq_cst); }
  // Keeps `answer`, found for the identifier `key`, unless something was forgotten since
  // `epoch` (the store may have changed under the reading).
  void put(std::uint64_t epoch, const std::string& key, std::shared_ptr<const Answer> answer);

  // Drops every answer `changes` touches. Call it after each commit, whatever its outcome.
  void forget(const Changes& changes);

  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    struct Entry {
      std::shared_ptr<const Answer> answer;
      std::list<std::string>::iterator lru;
      std::size_t bytes = 0;
    };
    std::mutex mutex;
    std::unordered_map<std::string, Entry> answers;  // profile id ->
    std::list<std::string> lru;                      // profile ids, most recently read first
    std::size_t bytes = 0;
  };
  struct KeyShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::string> ids;  // identifier -> profile id
  };

  Shard& shardOf(const std::string& profile_id);
  KeyShard& keyShardOf(const std::string& key);
  // Under `shard`'s mutex.
  void dropLocked(Shard& shard, std::unordered_map<std::string, Shard::Entry>::iterator it);
  void forgetKey(const std::string& key);

  const std::size_t capacity_;
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<std::size_t> bytes_{0};
  Shard shards_[kShards];
  KeyShard key_shards_[kShards];
};

}  // namespace junction::core::profiles
