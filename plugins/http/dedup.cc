#include "dedup.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace junction::plugins::http {
namespace {

// Odd 64-bit constants with well-spread bits (golden ratio, and wyhash's).
constexpr std::uint64_t kMulHi = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t kMulLo = 0xA0761D6478BD642Full;
constexpr std::uint64_t kLenHi = 0xE7037ED1A0B428DBull;
constexpr std::uint64_t kLenLo = 0x8EBC6AF09C88C6E3ull;
constexpr std::uint64_t kFinal = 0x589965CC75374CC3ull;

__extension__ typedef unsigned __int128 U128;

// The 128-bit product folded to 64 bits: every output bit depends on every bit of `a`.
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept {
  const U128 r = static_cast<U128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline std::uint64_t load32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::uint64_t randomSeed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

// --- ZeroedMemory --------------------------------------------------------------------------------

ZeroedMemory::ZeroedMemory(std::size_t bytes) {
  if (bytes == 0) {
    return;
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw std::runtime_error("de-duplication: cannot allocate " + std::to_string(bytes) +
                             " bytes (" + std::strerror(errno) + "); lower dedup_max_entries");
  }
  // Every page faulted in now, not by the first id that lands on it.
  if (::madvise(p, bytes, MADV_POPULATE_WRITE) != 0) {
    if (errno != EINVAL) {  // EINVAL: a kernel before 5.14; the writes below do the same
      const int err = errno;
      ::munmap(p, bytes);
      throw std::runtime_error("de-duplication: cannot allocate " + std::to_string(bytes) +
                               " bytes (" + std::strerror(err) + "); lower dedup_max_entries");
    }
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t at = 0; at < bytes; at += page) {
      static_cast<volatile char*>(p)[at] = 0;
    }
  }
  data_ = p;
  bytes_ = bytes;
}

ZeroedMemory::ZeroedMemory(ZeroedMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

ZeroedMemory& ZeroedMemory::operator=(ZeroedMemory&& other) noexcept {
  if (this != &other) {
    ZeroedMemory old(std::move(*this));
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

ZeroedMemory::~ZeroedMemory() {
  if (data_ != nullptr) {
    ::munmap(data_, bytes_);
  }
}

// --- Table ---------------------------------------------------------------------------------------

void Deduplicator::Table::init(std::size_t max_entries) {
  static_assert(std::is_trivially_copyable_v<Slot>, "zeroed memory is an empty slot");
  const std::size_t capacity = capacityFor(max_entries);
  memory_ = ZeroedMemory(capacity * sizeof(Slot));
  slots_ = static_cast<Slot*>(memory_.data());
  mask_ = capacity - 1;
  size_ = 0;
}

Deduplicator::Slot* Deduplicator::Table::find(const Fingerprint& fp) noexcept {
  for (std::size_t i = fp.lo & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.hi == fp.hi && s.lo == fp.lo) {
      return &s;
    }
    if ((s.hi | s.lo) == 0) {
      return nullptr;
    }
  }
}

Deduplicator::Slot& Deduplicator::Table::findOrInsert(const Fingerprint& fp, bool& inserted) {
  // Room is certain: the shard evicts down to the bound after every insertion.
  assert(2 * size_ < mask_ + 1);
  for (std::size_t i = fp.lo & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.hi == fp.hi && s.lo == fp.lo) {
      inserted = false;
      return s;
    }
    if ((s.hi | s.lo) == 0) {
      s = Slot{fp.hi, fp.lo, 0, 0};
      ++size_;
      inserted = true;
      return s;
    }
  }
}

void Deduplicator::Table::erase(Slot* slot) noexcept {
  // Backward shift: walk the rest of the cluster and pull back every slot whose home is not in
  // (hole, j], so each remains reachable from its home without tombstones.
  std::size_t hole = static_cast<std::size_t>(slot - slots_);
  for (std::size_t j = (hole + 1) & mask_;; j = (j + 1) & mask_) {
    Slot& s = slots_[j];
    if ((s.hi | s.lo) == 0) {
      break;
    }
    const std::size_t home = s.lo & mask_;
    if (((j - home) & mask_) >= ((j - hole) & mask_)) {
      slots_[hole] = s;
      hole = j;
    }
  }
  slots_[hole] = Slot{};
  --size_;
}

// --- Ring ----------------------------------------------------------------------------------------

void Deduplicator::Ring::init(std::size_t max_entries) {
  static_assert(std::is_trivially_copyable_v<OrderEntry>, "entries live in zeroed memory");
  const std::size_t capacity = capacityFor(max_entries);
  memory_ = ZeroedMemory(capacity * sizeof(OrderEntry));
  buf_ = static_cast<OrderEntry*>(memory_.data());
  mask_ = capacity - 1;
  head_ = 0;
  size_ = 0;
}

void Deduplicator::Ring::pushBack(const OrderEntry& e) noexcept {
  assert(size_ <= mask_);  // evict() keeps the ring at most 2 × max_entries long
  buf_[(head_ + size_) & mask_] = e;
  ++size_;
}

// --- Deduplicator --------------------------------------------------------------------------------

Deduplicator::Deduplicator(std::chrono::milliseconds window, std::size_t max_entries)
    : window_ms_(window.count()),
      max_per_shard_(std::max<std::size_t>(1, (max_entries + kShards - 1) / kShards)),
      seed_hi_(randomSeed()),
      seed_lo_(randomSeed()) {
  if (enabled()) {
    const std::size_t bytes = kShards * (Table::capacityFor(max_per_shard_) * sizeof(Slot) +
                                         Ring::capacityFor(max_per_shard_) * sizeof(OrderEntry));
    const auto physical = static_cast<std::size_t>(::sysconf(_SC_PHYS_PAGES)) *
                          static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (physical > 0 && bytes > physical / 2) {
      throw std::runtime_error(
          "dedup_max_entries " + std::to_string(max_entries) + " needs " +
          std::to_string(bytes >> 20) + " MiB of memory, more than half of this machine's " +
          std::to_string(physical >> 20) + " MiB; lower it (each id takes 112-224 bytes)");
    }
    for (Shard& shard : shards_) {
      shard.table.init(max_per_shard_);
      shard.order.init(max_per_shard_);
    }
  }
}

Deduplicator::Fingerprint Deduplicator::fingerprint(std::string_view id) const noexcept {
  // Two lanes over the same 8-byte words, each with its own seed and multiplier; the length
  // enters the start state, so the overlapping reads of a short or ragged tail stay unambiguous.
  const char* p = id.data();
  const std::size_t n = id.size();
  std::uint64_t hi = seed_hi_ ^ mix(n ^ kLenHi, kMulHi);
  std::uint64_t lo = seed_lo_ ^ mix(n ^ kLenLo, kMulLo);
  std::uint64_t w = 0;
  if (n > 8) {
    const char* last = p + n - 8;
    for (; p < last; p += 8) {
      w = load64(p);
      hi = mix(hi ^ w, kMulHi);
      lo = mix(lo ^ w, kMulLo);
    }
    w = load64(last);
  } else if (n >= 4) {
    w = (load32(p) << 32) | load32(p + n - 4);
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    w = (std::uint64_t{u[0]} << 16) | (std::uint64_t{u[n / 2]} << 8) | u[n - 1];
  }
  hi = mix(mix(hi ^ w, kMulHi), kFinal);
  lo = mix(mix(lo ^ w, kMulLo), kFinal);
  return Fingerprint{hi | 1, lo};  // bit 0 of hi is used for nothing else: never all zero
}

std::size_t Deduplicator::shardOf(std::string_view id) const noexcept {
  return shardIndex(fingerprint(id));
}

void Deduplicator::evict(Shard& shard, std::int64_t now_ms) {
  // Oldest first: expired ones, and any beyond the bound. `order` may hold stale entries (an id
  // forgotten, or remembered again later): only the one with the id's current seq counts.
  while (!shard.order.empty()) {
    const OrderEntry& front = shard.order.front();
    Slot* slot = shard.table.find(Fingerprint{front.hi, front.lo});
    if (slot != nullptr && (slot->seq & ~kPendingBit) == front.seq) {
      const bool expired = now_ms - slot->at_ms >= window_ms_;
      if (!expired && shard.table.size() <= max_per_shard_ &&
          shard.order.size() <= 2 * max_per_shard_) {
        break;
      }
      shard.table.erase(slot);
    }
    shard.order.popFront();
  }
}

bool Deduplicator::seen(std::string_view id, std::int64_t now_ms) {
  if (!enabled()) {
    return false;
  }
  const Fingerprint fp = fingerprint(id);
  Shard& shard = shardFor(fp);
  std::lock_guard lock(shard.mutex);
  return seenLocked(shard, fp, now_ms, kNotPending);
}

void Deduplicator::seenMany(std::span<const std::string_view> ids, std::int64_t now_ms,
                            std::vector<char>& duplicate) {
  lookupMany(ids, now_ms, duplicate, /*pending=*/false);
}

void Deduplicator::admitMany(std::span<const std::string_view> ids, std::int64_t now_ms,
                             std::vector<char>& duplicate) {
  lookupMany(ids, now_ms, duplicate, /*pending=*/true);
}

void Deduplicator::lookupMany(std::span<const std::string_view> ids, std::int64_t now_ms,
                              std::vector<char>& duplicate, bool pending) {
  duplicate.assign(ids.size(), 0);
  if (!enabled() || ids.empty()) {
    return;
  }
  // 1. Fingerprints, and a prefetch of each id's home slot.
  thread_local std::vector<Fingerprint> fps;
  thread_local std::vector<std::uint32_t> order;  // indexes of ids, grouped by shard
  fps.resize(ids.size());
  std::array<std::uint32_t, kShards + 1> start{};
  for (std::size_t i = 0; i < ids.size(); ++i) {
    fps[i] = fingerprint(ids[i]);
    shardFor(fps[i]).table.prefetchHome(fps[i]);
    ++start[shardIndex(fps[i]) + 1];
  }
  for (std::size_t s = 0; s < kShards; ++s) {
    start[s + 1] += start[s];
  }
  order.resize(ids.size());
  std::array<std::uint32_t, kShards> fill{};
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::size_t s = shardIndex(fps[i]);
    order[start[s] + fill[s]++] = static_cast<std::uint32_t>(i);
  }
  // 2. Each shard will evict about as many old ids as it gets new ones: prefetch their slots
  // too, for all shards, before any lookup waits on memory.
  for (std::size_t s = 0; s < kShards; ++s) {
    const std::size_t count = start[s + 1] - start[s];
    if (count == 0) {
      continue;
    }
    Shard& shard = shards_[s];
    std::lock_guard lock(shard.mutex);
    for (std::size_t k = 0; k < count + 1 && k < shard.order.size(); ++k) {
      const OrderEntry& next = shard.order.at(k);
      shard.table.prefetchHome(Fingerprint{next.hi, next.lo});
    }
  }
  // 3. The lookups, shard by shard (one lock each), each shard's ids in request order: a repeat
  // of an id lands in the same shard, after its first occurrence.
  for (std::size_t s = 0; s < kShards; ++s) {
    if (start[s] == start[s + 1]) {
      continue;
    }
    Shard& shard = shards_[s];
    std::lock_guard lock(shard.mutex);
    const std::uint64_t pending_from = pending ? shard.next_seq : kNotPending;
    for (std::size_t k = start[s]; k < start[s + 1]; ++k) {
      const std::uint32_t i = order[k];
      duplicate[i] = seenLocked(shard, fps[i], now_ms, pending_from) ? 1 : 0;
    }
  }
}

bool Deduplicator::seenLocked(Shard& shard, const Fingerprint& fp, std::int64_t now_ms,
                              std::uint64_t pending_from) {
  bool inserted = false;
  Slot& slot = shard.table.findOrInsert(fp, inserted);
  if (!inserted && now_ms - slot.at_ms < window_ms_) {
    if ((slot.seq & kPendingBit) == 0) {
      return true;  // stored: a duplicate
    }
    // Not stored yet: a duplicate only when remembered by this very call. Otherwise it gets
    // through, remembered again as this call's (a repeat later in the call is a duplicate).
    if (pending_from != kNotPending && (slot.seq & ~kPendingBit) >= pending_from) {
      return true;
    }
  }
  const std::uint64_t seq = shard.next_seq++;
  slot.at_ms = now_ms;
  slot.seq = seq | (pending_from != kNotPending ? kPendingBit : 0);
  shard.order.pushBack(OrderEntry{fp.hi, fp.lo, seq});
  evict(shard, now_ms);
  return false;
}

template <class F>
void Deduplicator::withSlot(std::string_view id, F&& f) {
  if (!enabled()) {
    return;
  }
  const Fingerprint fp = fingerprint(id);
  Shard& shard = shardFor(fp);
  std::lock_guard lock(shard.mutex);
  if (Slot* slot = shard.table.find(fp); slot != nullptr) {
    f(shard, slot);
  }
}

void Deduplicator::confirm(std::string_view id) {
  withSlot(id, [](Shard&, Slot* slot) { slot->seq &= ~kPendingBit; });
}

void Deduplicator::forget(std::string_view id) {
  withSlot(id, [](Shard& shard, Slot* slot) { shard.table.erase(slot); });
}

std::size_t Deduplicator::size() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.table.size();
  }
  return n;
}

std::size_t Deduplicator::memoryBytes() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.table.memoryBytes() + shard.order.memoryBytes();
  }
  return n;
}

}  // namespace junction::plugins::http
