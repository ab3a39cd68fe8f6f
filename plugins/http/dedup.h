#pragma once

// De-duplication of repeated messageIds within a time window: in memory, bounded (the oldest
// ids are forgotten first when full), per source. Thread-safe: sharded, one mutex per shard.
//
// Ids are not stored: each is reduced to a 128-bit fingerprint (two 64-bit hashes with
// independent, per-instance random seeds; one bit is forced so no fingerprint is all zero). Two
// distinct ids collide with probability ~2^-127, so with 1 M ids remembered a new id is wrongly
// taken for a duplicate with probability ~1e6 / 2^127 ≈ 6e-33 per event. The hash is fast, not
// cryptographic; the random seeds keep a client from precomputing ids that all land in one
// shard or one probe run.
//
// Per shard: an open-addressing table of fingerprints (linear probing, power-of-two capacity,
// load ≤ 1/2, backward-shift deletion) and a FIFO ring of (fingerprint, seq) in insertion order
// from which the oldest are evicted. Both are allocated when the source starts, at the size the
// bound needs, and never grow: 112-224 bytes per id of the bound (the arrays have power-of-two
// sizes; 112 MiB at the 1 M default), held from the start. Tables that doubled on demand stalled requests while a new daemon's window
// filled: hashing is uniform, so all 16 shards doubled at about the same moment (3-8 ms calls in
// dedup_bench, tens of ms in the daemon under load, the other I/O threads waiting on the shard
// locks), and fresh pages faulted in under the requests.

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

namespace junction::plugins::http {

// Zeroed memory of a fixed size, backed page by page when it is created (an anonymous mapping,
// prefaulted): a page's first write is a page fault — on a virtual machine a trip to the host —
// and these would otherwise fall on requests, ~1 ms per 2 MiB. Holds only types whose all-zero
// bytes are a valid empty value.
class ZeroedMemory {
 public:
  ZeroedMemory() = default;
  // Throws std::runtime_error when the memory is refused.
  explicit ZeroedMemory(std::size_t bytes);
  ZeroedMemory(ZeroedMemory&& other) noexcept;
  ZeroedMemory& operator=(ZeroedMemory&& other) noexcept;
  ZeroedMemory(const ZeroedMemory&) = delete;
  ZeroedMemory& operator=(const ZeroedMemory&) = delete;
  ~ZeroedMemory();

  void* data() const noexcept { return data_; }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

class Deduplicator {
 public:
  // `window` 0 disables it (`seen` is then always false and remembers nothing). Throws
  // std::runtime_error when the memory for `max_entries` is more than half the machine's.
  Deduplicator(std::chrono::milliseconds window, std::size_t max_entries);

  bool enabled() const noexcept { return window_ms_ > 0; }

  // True when `id` was remembered less than the window ago (a duplicate: nothing changes);
  // otherwise remembers it as of `now_ms` and returns false.
  bool seen(std::string_view id, std::int64_t now_ms);
  // seen() for each of `ids`, in order; `duplicate[i]` (resized to ids.size()) gets each answer.
  // Faster than one call each: the table slots every id will touch are fetched for all of them
  // at once (a lookup in a full table is a cache miss or two; these then overlap).
  void seenMany(std::span<const std::string_view> ids, std::int64_t now_ms,
                std::vector<char>& duplicate);
  // seenMany() for ids whose events are not stored yet: new ones are remembered as pending,
  // and a pending id is a duplicate only within the same call. Another request carrying it
  // meanwhile (a client retrying after a timeout while the first attempt still waits for the
  // queue) gets through: stored twice if the first attempt succeeds, rather than acknowledged
  // as a duplicate of an attempt that then fails — lost. confirm() once stored, forget() if not.
  void admitMany(std::span<const std::string_view> ids, std::int64_t now_ms,
                 std::vector<char>& duplicate);
  // A pending id's events are stored: from now on it is a duplicate.
  void confirm(std::string_view id);
  // Forgets `id` (its events were not queued after all, so a retry must get through).
  void forget(std::string_view id);
  std::size_t size() const;
  // Bytes the tables and rings hold (for tests and diagnostics).
  std::size_t memoryBytes() const;

  // The bound applies per shard: `max_entries` / kShards (rounded up) ids in each. For tests.
  static constexpr std::size_t kShards = 16;
  std::size_t shardOf(std::string_view id) const noexcept;

 private:
  struct Fingerprint {
    std::uint64_t hi = 0;  // never 0 for a real id: the top bits pick the shard
    std::uint64_t lo = 0;  // the low bits pick the home slot
  };
  struct Slot {  // empty when hi == 0 && lo == 0
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    std::int64_t at_ms = 0;
    std::uint64_t seq = 0;
  };
  struct OrderEntry {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    std::uint64_t seq = 0;
  };

  // Linear probing over a power-of-two array of slots, allocated at its final size.
  class Table {
   public:
    // Slots `max_entries` + 1 ids need at load ≤ 1/2 (one more than the bound is held between
    // an insertion and its eviction).
    static std::size_t capacityFor(std::size_t max_entries) noexcept {
      return std::bit_ceil(2 * (max_entries + 1));
    }
    // Allocates capacityFor(max_entries) slots.
    void init(std::size_t max_entries);
    // The slot holding `fp`, or nullptr.
    Slot* find(const Fingerprint& fp) noexcept;
    // The slot holding `fp`, or a new one for it (fingerprint set, at_ms/seq zero, counted).
    // `inserted` tells which.
    Slot& findOrInsert(const Fingerprint& fp, bool& inserted);
    // Removes the slot (a pointer from find/findOrInsert), shifting its cluster back.
    void erase(Slot* slot) noexcept;
    std::size_t size() const noexcept { return size_; }
    std::size_t memoryBytes() const noexcept { return memory_.bytes(); }
    // Asks the CPU to fetch `fp`'s home slot. Safe without the shard's lock: the array and its
    // mask are fixed once init() returns.
    void prefetchHome(const Fingerprint& fp) const noexcept {
      __builtin_prefetch(slots_ + (fp.lo & mask_));
    }

   private:
    ZeroedMemory memory_;
    Slot* slots_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
  };

  // FIFO of OrderEntry over a power-of-two array allocated at its final size.
  class Ring {
   public:
    // Room for 2 × max_entries + 1 entries: evict() keeps at most 2 × max_entries after each
    // insertion.
    static std::size_t capacityFor(std::size_t max_entries) noexcept {
      return std::bit_ceil(2 * max_entries + 1);
    }
    // Allocates capacityFor(max_entries) entries.
    void init(std::size_t max_entries);
    void pushBack(const OrderEntry& e) noexcept;
    const OrderEntry& front() const noexcept { return buf_[head_]; }
    // The k-th entry from the front (k < size()).
    const OrderEntry& at(std::size_t k) const noexcept { return buf_[(head_ + k) & mask_]; }
    void popFront() noexcept {
      head_ = (head_ + 1) & mask_;
      --size_;
    }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    std::size_t memoryBytes() const noexcept { return memory_.bytes(); }

   private:
    ZeroedMemory memory_;
    OrderEntry* buf_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
  };

  // Aligned to its own cache lines: threads on different shards do not share a mutex's line.
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    Table table;                 // guarded by mutex
    Ring order;                  // insertion order, may hold stale entries; guarded by mutex
    std::uint64_t next_seq = 0;  // guarded by mutex
  };

  Fingerprint fingerprint(std::string_view id) const noexcept;
  static_assert(kShards == 16, "shards are picked by the top 4 bits of the fingerprint");
  static std::size_t shardIndex(const Fingerprint& fp) noexcept { return fp.hi >> 60; }
  Shard& shardFor(const Fingerprint& fp) noexcept { return shards_[shardIndex(fp)]; }
  void evict(Shard& shard, std::int64_t now_ms);
  // seen() for a fingerprint, under the shard's lock.
  // `pending_from`: with admitMany, the first seq of this call in the shard (a pending id
  // remembered since is a repeat within the call); kNotPending otherwise.
  bool seenLocked(Shard& shard, const Fingerprint& fp, std::int64_t now_ms,
                  std::uint64_t pending_from);
  // Runs f(shard, slot) under the shard's lock when `id` is remembered.
  template <class F>
  void withSlot(std::string_view id, F&& f);
  void lookupMany(std::span<const std::string_view> ids, std::int64_t now_ms,
                  std::vector<char>& duplicate, bool pending);
  // Slot::seq's top bit: remembered by admitMany and not confirmed yet.
  static constexpr std::uint64_t kPendingBit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kNotPending = ~std::uint64_t{0};

  const std::int64_t window_ms_;
  const std::size_t max_per_shard_;
  const std::uint64_t seed_hi_;
  const std::uint64_t seed_lo_;
  std::array<Shard, kShards> shards_;
};

}  // namespace junction::plugins::http
