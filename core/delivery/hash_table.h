#pragma once

// HashTable<V>: a map from a 64-bit hash (already well mixed: the key is used as its own hash)
// to V, stored inline with open addressing and linear probing. No allocation per entry and one
// cache line per lookup in the common case, where std::unordered_map allocates a node per entry
// and chases a pointer per lookup — the delivery dispatcher does three lookups per event.
//
// Deletion shifts later entries of the probe run back (no tombstones), so probe runs stay short
// whatever the churn. Any insert or erase invalidates references and pointers to values; find,
// iteration and the values themselves may be used freely between them. Capacity is a power of
// two, grown at a load factor of 1/2; it never shrinks (like unordered_map's buckets).

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace junction::core::delivery {

template <typename V>
class HashTable {
 public:
  using Key = std::uint64_t;

  explicit HashTable(std::size_t expected = 16) { rehash(capacityFor(expected)); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // The value for `key`, or null.
  V* find(Key key) noexcept {
    for (std::size_t i = home(key);; i = next(i)) {
      Slot& s = slots_[i];
      if (!s.used) {
        return nullptr;
      }
      if (s.key == key) {
        return &s.value;
      }
    }
  }

  // Starts loading `key`'s home slot into the cache: call it a few keys ahead of a loop's lookups
  // (a table bigger than the cache costs a miss per lookup otherwise).
  void prefetch(Key key) const noexcept { __builtin_prefetch(&slots_[home(key)]); }

  // The value for `key`, default-constructed if absent.
  V& operator[](Key key) { return *tryEmplace(key).first; }

  // (value, inserted).
  std::pair<V*, bool> tryEmplace(Key key) {
    if ((size_ + 1) * 2 > slots_.size()) {
      rehash(slots_.size() * 2);
    }
    std::size_t i = home(key);
    for (; slots_[i].used; i = next(i)) {
      if (slots_[i].key == key) {
        return {&slots_[i].value, false};
      }
    }
    Slot& s = slots_[i];
    s.used = true;
    s.key = key;
    s.value = V{};
    ++size_;
    return {&s.value, true};
  }

  // Removes `key` if present; returns whether it was.
  bool erase(Key key) noexcept {
    std::size_t i = home(key);
    for (;; i = next(i)) {
      if (!slots_[i].used) {
        return false;
      }
      if (slots_[i].key == key) {
        break;
      }
    }
    // Backward shift: move each later entry of the run into the hole when its home slot does not
    // lie (cyclically) between the hole and its current slot.
    std::size_t hole = i;
    for (std::size_t j = next(i); slots_[j].used; j = next(j)) {
      const std::size_t h = home(slots_[j].key);
      const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!stays) {
        slots_[hole] = std::move(slots_[j]);
        hole = j;
      }
    }
    slots_[hole].used = false;
    slots_[hole].value = V{};
    --size_;
    return true;
  }

  // Calls f(key, value&) for every entry, in no particular order. f must not insert or erase.
  template <typename F>
  void forEach(F&& f) {
    for (Slot& s : slots_) {
      if (s.used) {
        f(s.key, s.value);
      }
    }
  }

 private:
  struct Slot {
    Key key = 0;
    bool used = false;
    V value{};
  };

  static std::size_t capacityFor(std::size_t n) {
    std::size_t c = 16;
    while (c < n * 2) {
      c *= 2;
    }
    return c;
  }
  std::size_t home(Key key) const noexcept { return static_cast<std::size_t>(key) & mask_; }
  std::size_t next(std::size_t i) const noexcept { return (i + 1) & mask_; }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (Slot& s : old) {
      if (s.used) {
        std::size_t i = home(s.key);
        while (slots_[i].used) {
          i = next(i);
        }
        slots_[i] = std::move(s);
      }
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace junction::core::delivery
