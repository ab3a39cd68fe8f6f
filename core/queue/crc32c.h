#pragma once

// CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78) as used by iSCSI, ext4 and
// most log formats. Uses the SSE4.2 `crc32` instruction when the CPU has it (checked once at
// run time), else a slicing-by-8 table. Thread-safe; no allocation.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace junction::core::queue {

// Continues a CRC: `crc32c(b, crc32c(a))` == `crc32c(a + b)`. Start with 0.
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

inline std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept {
  return crc32c(bytes.data(), bytes.size(), crc);
}

// For tests and benchmarks: the two implementations, whatever the CPU.
std::uint32_t crc32cSoftware(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;
// Only valid when crc32cHardwareAvailable().
std::uint32_t crc32cHardware(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;
bool crc32cHardwareAvailable() noexcept;

}  // namespace junction::core::queue
