#pragma once

// The plugin ABI: the one symbol a plugin exports, and the fingerprint the loader compares
// before it reads anything else from the library.
//
// Plugins exchange C++ objects (std::string, boost::json::value, virtual interfaces) with the
// daemon, so both sides must agree on the compiler, the C++ standard library ABI, the Boost
// version and the SDK ABI. The entry point's *name* carries the ABI major version
// (`junction_plugin_entry_v3`); its first fields are plain C so that a mismatched plugin can be
// identified and refused without touching any C++ object inside it.

#include <boost/version.hpp>
#include <cstdint>

#define JUNCTION_SDK_VERSION "1.2.0"
#define JUNCTION_ABI_VERSION 3
#define JUNCTION_ENTRY_SYMBOL "junction_plugin_entry_v3"
#define JUNCTION_ENTRY_SYMBOL_PREFIX "junction_plugin_entry_v"

#define JUNCTION_STRINGIFY_IMPL(x) #x
#define JUNCTION_STRINGIFY(x) JUNCTION_STRINGIFY_IMPL(x)

#if defined(__clang__)
#define JUNCTION_COMPILER_ID "clang-" JUNCTION_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define JUNCTION_COMPILER_ID "gcc-" JUNCTION_STRINGIFY(__GNUC__)
#else
#define JUNCTION_COMPILER_ID "unknown"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define JUNCTION_STDLIB_ID "libstdc++-cxx11abi" JUNCTION_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#else
#define JUNCTION_STDLIB_ID "libstdc++"
#endif

// The build fingerprint: compiler family and major version, standard library ABI, Boost and
// SDK ABI versions. Two binaries with equal fingerprints can share C++ objects.
#define JUNCTION_BUILD_FINGERPRINT                                                        \
  JUNCTION_COMPILER_ID "/" JUNCTION_STDLIB_ID "/boost-" JUNCTION_STRINGIFY(BOOST_VERSION) \
                       "/abi-" JUNCTION_STRINGIFY(JUNCTION_ABI_VERSION)

#define JUNCTION_VISIBLE __attribute__((visibility("default")))

namespace junction::sdk {

class Plugin;

inline constexpr std::uint32_t kAbiVersion = JUNCTION_ABI_VERSION;
inline constexpr std::uint32_t kEntryMagic = 0x4a4e4354;  // "JNCT"
inline constexpr const char* kBuildFingerprint = JUNCTION_BUILD_FINGERPRINT;
inline constexpr const char* kSdkVersion = JUNCTION_SDK_VERSION;

}  // namespace junction::sdk

extern "C" {

// What `junction_plugin_entry_v3` points at. Plain C layout; never reordered within an ABI
// version. `create` returns a new Plugin (owned by the caller, released with `destroy`) or null,
// in which case `last_error` says why. Both are safe to call from any thread, once at a time.
struct JunctionPluginEntry {
  std::uint32_t magic;        // kEntryMagic
  std::uint32_t abi_version;  // JUNCTION_ABI_VERSION the plugin was built with
  const char* fingerprint;    // JUNCTION_BUILD_FINGERPRINT the plugin was built with
  const char* sdk_version;    // JUNCTION_SDK_VERSION the plugin was built with
  junction::sdk::Plugin* (*create)() noexcept;
  void (*destroy)(junction::sdk::Plugin*) noexcept;
  const char* (*last_error)() noexcept;
};

}  // extern "C"
