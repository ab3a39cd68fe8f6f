#pragma once

// Force-included (-include) into core_queue's sources by tests/fuzz/CMakeLists.txt in the
// libFuzzer build (JUNCTION_FUZZ=ON) when clang is older than 16, and nowhere else.
//
// core/queue/log.cc builds a StoredRecord (an aggregate) with
//   batch.records.emplace_back(offset, std::move(event).value());
// which relies on C++20 parenthesized aggregate initialization (P0960): g++ has it since 10,
// clang only since 16, so clang 14 (the libFuzzer installed here) refuses the file. This gives
// std::construct_at an overload for StoredRecord that brace-initializes it, found by the
// qualified call in libstdc++'s allocator_traits because it is declared before it. Remove once
// log.cc constructs the record with braces (StoredRecord{...}), or when clang >= 16 is used.

#include <new>
#include <type_traits>
#include <utility>

namespace junction::core::queue {
struct StoredRecord;
}  // namespace junction::core::queue

namespace std {
// A template on the type (constrained to StoredRecord) so that the body is checked only where
// it is used, once StoredRecord is complete.
template <typename T, typename... Args>
  requires is_same_v<T, junction::core::queue::StoredRecord>
constexpr T* construct_at(T* location, Args&&... args) {
  return ::new (static_cast<void*>(location)) T{std::forward<Args>(args)...};
}
}  // namespace std
