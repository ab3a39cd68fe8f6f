#pragma once

// The plugin descriptor and the one export macro.
//
// A plugin library exports exactly one symbol, `junction_plugin_entry_v3` (see abi.h), made by
// one of the macros at the end of this file. The daemon reads its ABI version and build
// fingerprint first, then asks it for a `Plugin`: the descriptor (name, kind, version, summary,
// option table) and the factory that makes instances from a checked config.

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "junction/sdk/abi.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/options.h"
#include "junction/sdk/result.h"
#include "junction/sdk/source.h"

namespace junction::sdk {

enum class PluginKind { Source, Destination };

// Whether a destination must receive each person's events in order (see Destination::deliver).
//   Person: at most one event per person per `deliver` call, each person's events in queue order
//           (vendors that keep per-person state: a later update must not be overtaken).
//   None:   batches of any people's events, several of one person possibly in one call or in
//           concurrent calls (a warehouse that stores every event with its own timestamp).
enum class Ordering { Person, None };

const char* toString(Ordering ordering) noexcept;

const char* toString(PluginKind kind) noexcept;

// A destination's batching and parallelism that suit its vendor (a batch endpoint's size, a
// connection limit). The daemon uses them for every key the operator did not write under the
// destination's `batch:` or `concurrency`; zero / nullopt keep the daemon's own defaults
// (max_events 100, max_bytes 1MiB, max_wait 200ms, concurrency 1, ordering person). Values are
// clamped to the daemon's bounds. `ordering` applies unless the YAML writes `ordering:`.
struct DeliveryDefaults {
  std::int64_t max_events = 0;
  std::uint64_t max_bytes = 0;
  std::optional<std::chrono::milliseconds> max_wait;
  std::int64_t concurrency = 0;
  std::optional<Ordering> ordering;
};

struct PluginInfo {
  std::string name;     // unique among loaded plugins: [a-z][a-z0-9_]*
  std::string version;  // the plugin's own version, e.g. "1.2.0"
  std::string summary;  // one line
  DeliveryDefaults delivery{};  // destinations only
};

struct PluginDescriptor {
  std::string name;
  PluginKind kind = PluginKind::Destination;
  std::string version;
  std::string summary;
  std::vector<OptionSpec> options;
  DeliveryDefaults delivery{};
};

// A loaded plugin: its descriptor and its factory. Lives as long as anything it created.
// Thread-safe. The daemon calls these inside a barrier (a stray exception becomes an error).
class Plugin {
 public:
  virtual ~Plugin() = default;

  virtual const PluginDescriptor& descriptor() const = 0;

  // Cross-field rules on a config already checked key by key against the option table.
  virtual std::vector<OptionError> validate(const ConfigObject& config) const = 0;

  // Make an instance from a checked and validated config. The context outlives the instance.
  // Only the one matching the descriptor's kind is called.
  virtual Result<std::unique_ptr<Source>> createSource(const ConfigObject& config,
                                                       SourceContext& context) {
    (void)config;
    (void)context;
    return makeError(ErrorCode::InvalidArgument, descriptor().name + " is not a source plugin");
  }
  virtual Result<std::unique_ptr<Destination>> createDestination(
      const ConfigObject& config, DestinationContext& context) {
    (void)config;
    (void)context;
    return makeError(ErrorCode::InvalidArgument,
                     descriptor().name + " is not a destination plugin");
  }
};

namespace detail {

// A Config may declare `std::vector<OptionError> validate() const` for its cross-field rules.
template <typename Config>
std::vector<OptionError> validateConfig(const Config& config) {
  if constexpr (requires(const Config& c) {
                  { c.validate() } -> std::convertible_to<std::vector<OptionError>>;
                }) {
    return config.validate();
  } else {
    (void)config;
    return {};
  }
}

template <typename Config>
class TypedPlugin : public Plugin {
 public:
  TypedPlugin(PluginKind kind, PluginInfo info, const OptionTable<Config>& table)
      : table_(table) {
    descriptor_.name = std::move(info.name);
    descriptor_.kind = kind;
    descriptor_.version = std::move(info.version);
    descriptor_.summary = std::move(info.summary);
    descriptor_.options = table.specs();
    descriptor_.delivery = info.delivery;
  }
  const PluginDescriptor& descriptor() const override { return descriptor_; }
  std::vector<OptionError> validate(const ConfigObject& config) const override {
    try {
      return validateConfig(table_.bind(config));
    } catch (const std::exception& e) {
      return {OptionError{"", std::string("validation failed: ") + e.what()}};
    }
  }

 protected:
  PluginDescriptor descriptor_;
  const OptionTable<Config>& table_;
};

template <typename T>
Result<T> catchAll(auto&& make) noexcept {
  try {
    return make();
  } catch (const std::exception& e) {
    return makeError(ErrorCode::Internal, e.what());
  } catch (...) {
    return makeError(ErrorCode::Internal, "unknown exception");
  }
}

}  // namespace detail

// A destination plugin whose instances are `Dest(Config, DestinationContext&)`.
template <typename Dest, typename Config>
class DestinationPlugin final : public detail::TypedPlugin<Config> {
 public:
  DestinationPlugin(PluginInfo info, const OptionTable<Config>& table)
      : detail::TypedPlugin<Config>(PluginKind::Destination, std::move(info), table) {}

  Result<std::unique_ptr<Destination>> createDestination(
      const ConfigObject& config, DestinationContext& context) override {
    return detail::catchAll<std::unique_ptr<Destination>>([&]() -> std::unique_ptr<Destination> {
      return std::make_unique<Dest>(this->table_.bind(config), context);
    });
  }
};

// A source plugin whose instances are `Src(Config, SourceContext&)`.
template <typename Src, typename Config>
class SourcePlugin final : public detail::TypedPlugin<Config> {
 public:
  SourcePlugin(PluginInfo info, const OptionTable<Config>& table)
      : detail::TypedPlugin<Config>(PluginKind::Source, std::move(info), table) {}

  Result<std::unique_ptr<Source>> createSource(const ConfigObject& config,
                                               SourceContext& context) override {
    return detail::catchAll<std::unique_ptr<Source>>([&]() -> std::unique_ptr<Source> {
      return std::make_unique<Src>(this->table_.bind(config), context);
    });
  }
};

}  // namespace junction::sdk

#define JUNCTION_PP_CAT_IMPL(a, b) a##b
#define JUNCTION_PP_CAT(a, b) JUNCTION_PP_CAT_IMPL(a, b)
#define JUNCTION_ENTRY_NAME JUNCTION_PP_CAT(junction_plugin_entry_v, JUNCTION_ABI_VERSION)

// Exports the plugin made by `make_plugin` (an expression yielding
// std::unique_ptr<junction::sdk::Plugin>). Use once per plugin library, at namespace scope.
// An exception thrown by `make_plugin` is caught; the loader refuses the plugin with its text.
#define JUNCTION_PLUGIN(make_plugin)                                                     \
  namespace {                                                                            \
  thread_local std::string junction_plugin_error_;                                       \
  junction::sdk::Plugin* junctionPluginCreate() noexcept {                               \
    try {                                                                                \
      std::unique_ptr<junction::sdk::Plugin> plugin = (make_plugin);                     \
      return plugin.release();                                                           \
    } catch (const std::exception& e) {                                                  \
      junction_plugin_error_ = e.what();                                                 \
    } catch (...) {                                                                      \
      junction_plugin_error_ = "unknown exception";                                      \
    }                                                                                    \
    return nullptr;                                                                      \
  }                                                                                      \
  void junctionPluginDestroy(junction::sdk::Plugin* plugin) noexcept { delete plugin; } \
  const char* junctionPluginLastError() noexcept { return junction_plugin_error_.c_str(); } \
  }                                                                                      \
  extern "C" {                                                                           \
  JUNCTION_VISIBLE extern const JunctionPluginEntry JUNCTION_ENTRY_NAME;                 \
  const JunctionPluginEntry JUNCTION_ENTRY_NAME = {                                      \
      junction::sdk::kEntryMagic, JUNCTION_ABI_VERSION,  JUNCTION_BUILD_FINGERPRINT,     \
      JUNCTION_SDK_VERSION,       &junctionPluginCreate, &junctionPluginDestroy,         \
      &junctionPluginLastError};                                                         \
  }

// Exports a destination plugin: instances are `Dest(Config, DestinationContext&)`, configured
// by `table` (an OptionTable<Config>), described by `info` (a PluginInfo initializer).
#define JUNCTION_DESTINATION_PLUGIN(Dest, Config, table, ...)                                \
  JUNCTION_PLUGIN((std::make_unique<junction::sdk::DestinationPlugin<Dest, Config>>(        \
      junction::sdk::PluginInfo __VA_ARGS__, table)))

// Exports a source plugin: instances are `Src(Config, SourceContext&)`.
#define JUNCTION_SOURCE_PLUGIN(Src, Config, table, ...)                               \
  JUNCTION_PLUGIN((std::make_unique<junction::sdk::SourcePlugin<Src, Config>>(      \
      junction::sdk::PluginInfo __VA_ARGS__, table)))
