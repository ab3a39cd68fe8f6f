#pragma once

// Loads plugin libraries with Boost.DLL and keeps them for the life of the process.
//
// Before any C++ object of a library is touched, the loader reads the symbol table (without
// loading), looks for the versioned entry symbol, then checks the entry's magic, ABI version and
// build fingerprint. Each refusal is one line naming the file and the reason.
//
// Lifetime: a LoadedPlugin owns its shared library; every instance it creates co-owns the
// LoadedPlugin (shared_ptr deleters), so instances die before factories, factories before the
// library. Nothing is unloaded while anything of it lives.
//
// Plugins are keyed by kind and name: one name may be both a source and a destination
// (`plugin: hubspot` under `sources:` and under `destinations:`), each from its own library
// (a library exports one descriptor, so one kind). Two plugins of the same kind and name are
// refused like before.

#include <filesystem>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "core/config/daemon_config.h"
#include "junction/sdk/plugin.h"

namespace boost::dll {
class shared_library;
}

namespace junction::core::plugin {

// Why a file was not loaded: "libfoo.so: not a Junction plugin (...)".
struct LoadError {
  std::string file;
  std::string reason;
  std::string toString() const { return file + ": " + reason; }
};

class LoadedPlugin : public std::enable_shared_from_this<LoadedPlugin> {
 public:
  struct Deleter {
    void (*destroy)(sdk::Plugin*) noexcept;
    void operator()(sdk::Plugin* p) const noexcept { destroy(p); }
  };

  LoadedPlugin(std::filesystem::path file, std::shared_ptr<boost::dll::shared_library> library,
               std::unique_ptr<sdk::Plugin, Deleter> plugin, std::string sdk_version);
  ~LoadedPlugin();

  const std::filesystem::path& file() const noexcept { return file_; }
  const sdk::Plugin& plugin() const noexcept { return *plugin_; }
  const sdk::PluginDescriptor& descriptor() const { return plugin_->descriptor(); }
  const std::string& sdkVersion() const noexcept { return sdk_version_; }

  // Instances co-own this LoadedPlugin. Exceptions from the plugin become errors.
  sdk::Result<std::shared_ptr<sdk::Source>> createSource(const sdk::ConfigObject& config,
                                                         sdk::SourceContext& context);
  sdk::Result<std::shared_ptr<sdk::Destination>> createDestination(
      const sdk::ConfigObject& config, sdk::DestinationContext& context);

 private:
  template <typename T, typename Make>
  sdk::Result<std::shared_ptr<T>> instantiate(const char* what, Make make);

  std::filesystem::path file_;
  // Declaration order is destruction order in reverse: plugin_ goes before library_.
  std::shared_ptr<boost::dll::shared_library> library_;
  std::unique_ptr<sdk::Plugin, Deleter> plugin_;
  std::string sdk_version_;
};

// Thread-compatible: loading happens at start-up on one thread; lookups are then read-only.
class PluginRegistry final : public config::PluginCatalog {
 public:
  PluginRegistry();
  ~PluginRegistry() override;

  // Loads every `*.so` in each directory (missing directories are skipped). Files already
  // seen (same canonical path), loaded or refused, are skipped silently. Refusals are appended to `refused`.
  void scan(const std::vector<std::filesystem::path>& directories,
            std::vector<LoadError>& refused);

  // The plugins shipped with junctiond (`<dir of executable>/../plugins`) first, then each
  // configured directory (relative to the working directory). A configured plugin named like a
  // built-in one is refused, naming both files, unless its name is in `allow_override`: then it
  // replaces the built-in one, and overrides() says so.
  void scanSearchPath(const std::vector<std::string>& configured,
                      const std::vector<std::string>& allow_override,
                      std::vector<LoadError>& refused);
  // "NAME: FILE replaces the built-in FILE", for each override scanSearchPath made.
  const std::vector<std::string>& overrides() const noexcept { return overrides_; }

  // Loads one file. On success the plugin is registered under its kind and name.
  sdk::Result<std::shared_ptr<LoadedPlugin>> load(const std::filesystem::path& file);

  const sdk::Plugin* find(sdk::PluginKind kind, std::string_view name) const override;
  // Every loaded name once, sorted (a name with both kinds appears once).
  std::vector<std::string> names() const override;
  std::shared_ptr<LoadedPlugin> get(sdk::PluginKind kind, std::string_view name) const;
  // The plugins of this name: none, one, or a source and a destination (source first).
  std::vector<std::shared_ptr<LoadedPlugin>> named(std::string_view name) const;
  // Sorted by name, then kind (source before destination).
  std::vector<std::shared_ptr<LoadedPlugin>> all() const;

 private:
  using Key = std::pair<sdk::PluginKind, std::string>;
  struct KeyLess {
    using is_transparent = void;
    bool operator()(const Key& a, const Key& b) const { return a < b; }
  };
  std::map<Key, std::shared_ptr<LoadedPlugin>, KeyLess> by_key_;
  std::map<std::string, std::string> by_file_;  // canonical path -> name ("" if refused)
  std::set<Key, KeyLess> builtin_keys_;                // loaded from the built-in directory
  std::set<std::string, std::less<>> allow_override_;  // built-in names others may replace
  bool scanning_builtin_ = false;
  std::vector<std::string> overrides_;
};

// The directory of the running executable (/proc/self/exe), for `../plugins`.
std::filesystem::path executableDirectory();

}  // namespace junction::core::plugin
