#include "core/queue/event_queue.h"

namespace junction::core::queue {

std::string_view personOf(const sdk::Event& event) noexcept {
  return event.userId().empty() ? std::string_view(event.anonymousId())
                                : std::string_view(event.userId());
}

std::uint32_t partitionOf(std::string_view person, std::uint32_t partitions) noexcept {
  if (partitions <= 1) {
    return 0;
  }
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (const unsigned char c : person) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return static_cast<std::uint32_t>(hash % partitions);
}

}  // namespace junction::core::queue
