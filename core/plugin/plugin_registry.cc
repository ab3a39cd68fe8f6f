#include "core/plugin/plugin_registry.h"

#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <algorithm>
#include <cstring>
#include <fstream>

namespace junction::core::plugin {

namespace fs = std::filesystem;
using sdk::ErrorCode;
using sdk::makeError;

namespace {

bool validPluginName(const std::string& name) {
  if (name.empty() || name.size() > 64 || !std::islower(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
           c == '_';
  });
}

bool isElf(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "\x7f" "ELF", 4) == 0;
}

template <typename T>
sdk::Result<T> barrier(const char* what, auto&& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    return makeError(ErrorCode::Internal, std::string(what) + " threw: " + e.what());
  } catch (...) {
    return makeError(ErrorCode::Internal, std::string(what) + " threw an unknown exception");
  }
}

}  // namespace

LoadedPlugin::LoadedPlugin(fs::path file, std::shared_ptr<boost::dll::shared_library> library,
                           std::unique_ptr<sdk::Plugin, Deleter> plugin, std::string sdk_version)
    : file_(std::move(file)),
      library_(std::move(library)),
      plugin_(std::move(plugin)),
      sdk_version_(std::move(sdk_version)) {}

LoadedPlugin::~LoadedPlugin() = default;

// Runs a plugin factory inside the barrier and makes the instance co-own this LoadedPlugin.
template <typename T, typename Make>
sdk::Result<std::shared_ptr<T>> LoadedPlugin::instantiate(const char* what, Make make) {
  return barrier<std::shared_ptr<T>>(what, [&]() -> sdk::Result<std::shared_ptr<T>> {
    sdk::Result<std::unique_ptr<T>> made = make();
    if (!made) {
      return std::move(made).error();
    }
    if (!*made) {
      return makeError(ErrorCode::Internal, std::string(what) + " returned null");
    }
    auto self = shared_from_this();
    return std::shared_ptr<T>(made->release(), [self](T* instance) { delete instance; });
  });
}

sdk::Result<std::shared_ptr<sdk::Source>> LoadedPlugin::createSource(
    const sdk::ConfigObject& config, sdk::SourceContext& context) {
  return instantiate<sdk::Source>("the plugin's createSource",
                                  [&] { return plugin_->createSource(config, context); });
}

sdk::Result<std::shared_ptr<sdk::Destination>> LoadedPlugin::createDestination(
    const sdk::ConfigObject& config, sdk::DestinationContext& context) {
  return instantiate<sdk::Destination>("the plugin's createDestination",
                                       [&] { return plugin_->createDestination(config, context); });
}

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;

sdk::Result<std::shared_ptr<LoadedPlugin>> PluginRegistry::load(const fs::path& file) {
  auto refuse = [](std::string reason) { return makeError(ErrorCode::InvalidArgument, std::move(reason)); };
  if (!isElf(file)) {
    return refuse("not a Junction plugin (not a shared library)");
  }
  // 1. The symbol table, read without loading the library: is there an entry, which version?
  std::vector<std::string> symbols;
  try {
    boost::dll::library_info info(file.string());
    symbols = info.symbols();
  } catch (const std::exception& e) {
    return refuse(std::string("not a Junction plugin (unreadable symbol table: ") + e.what() + ")");
  }
  bool has_entry = false;
  std::string other_version;
  for (const auto& s : symbols) {
    if (s == JUNCTION_ENTRY_SYMBOL) {
      has_entry = true;
    } else if (s.rfind(JUNCTION_ENTRY_SYMBOL_PREFIX, 0) == 0) {
      other_version = s.substr(std::strlen(JUNCTION_ENTRY_SYMBOL_PREFIX));
    }
  }
  if (!has_entry) {
    if (!other_version.empty()) {
      return refuse("built for plugin ABI v" + other_version + ", this junctiond loads ABI v" +
                    std::to_string(sdk::kAbiVersion) + " (rebuild it against Junction SDK " +
                    sdk::kSdkVersion + ")");
    }
    return refuse("not a Junction plugin (no " JUNCTION_ENTRY_SYMBOL " symbol)");
  }

  // 2. Load it and read the plain-C entry.
  auto library = std::make_shared<boost::dll::shared_library>();
  try {
    library->load(file.string(),
                  boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return refuse(std::string("cannot be loaded: ") + e.what());
  }
  const auto& entry = library->get<const JunctionPluginEntry>(JUNCTION_ENTRY_SYMBOL);
  if (entry.magic != sdk::kEntryMagic) {
    return refuse("corrupt plugin entry (bad magic number)");
  }
  if (entry.abi_version != sdk::kAbiVersion) {
    return refuse("built for plugin ABI v" + std::to_string(entry.abi_version) +
                  ", this junctiond loads ABI v" + std::to_string(sdk::kAbiVersion) +
                  " (rebuild it against Junction SDK " + sdk::kSdkVersion + ")");
  }
  const char* fingerprint = entry.fingerprint != nullptr ? entry.fingerprint : "(none)";
  if (std::strcmp(fingerprint, sdk::kBuildFingerprint) != 0) {
    return refuse(std::string("built with ") + fingerprint + ", but this junctiond with " +
                  sdk::kBuildFingerprint + " (rebuild it with the same compiler and Boost)");
  }

  // 3. Only now run plugin code: the factory, then the descriptor checks.
  sdk::Plugin* raw = entry.create();
  if (raw == nullptr) {
    const char* why = entry.last_error != nullptr ? entry.last_error() : "";
    return refuse(std::string("plugin factory failed: ") + (why && *why ? why : "returned null"));
  }
  std::unique_ptr<sdk::Plugin, LoadedPlugin::Deleter> plugin(raw, LoadedPlugin::Deleter{entry.destroy});
  auto descriptor = barrier<sdk::PluginDescriptor>(
      "the plugin's descriptor", [&] { return sdk::PluginDescriptor(plugin->descriptor()); });
  if (!descriptor) {
    return refuse("plugin factory failed: " + descriptor.error().message);
  }
  if (!validPluginName(descriptor->name)) {
    return refuse("invalid descriptor: plugin name '" + descriptor->name +
                  "' (use lower-case letters, digits and '_')");
  }
  if (auto problems = sdk::checkOptionTable(descriptor->options); !problems.empty()) {
    return refuse("invalid descriptor: " + problems.front());
  }
  const Key key{descriptor->kind, descriptor->name};
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    const std::string& name = descriptor->name;
    const std::string what = std::string("plugin name '") + name + "' (" + sdk::toString(key.first) + ")";
    if (scanning_builtin_ || !builtin_keys_.contains(key)) {
      return refuse(what + " is already taken by " + it->second->file().string());
    }
    if (!allow_override_.contains(name)) {
      return refuse(what + " is taken by the built-in plugin " + it->second->file().string() +
                    "; to use this file instead, list '" + name + "' in plugins.allow_override");
    }
    overrides_.push_back(name + " (" + sdk::toString(key.first) + "): " + file.string() +
                         " replaces the built-in " + it->second->file().string());
    builtin_keys_.erase(key);
    by_key_.erase(it);
  }
  auto loaded = std::make_shared<LoadedPlugin>(file, std::move(library), std::move(plugin),
                                               entry.sdk_version ? entry.sdk_version : "");
  by_key_.emplace(key, loaded);
  if (scanning_builtin_) {
    builtin_keys_.insert(key);
  }
  return loaded;
}

void PluginRegistry::scanSearchPath(const std::vector<std::string>& configured,
                                    const std::vector<std::string>& allow_override,
                                    std::vector<LoadError>& refused) {
  allow_override_.insert(allow_override.begin(), allow_override.end());
  scanning_builtin_ = true;
  scan({executableDirectory() / ".." / "plugins"}, refused);
  scanning_builtin_ = false;
  std::vector<fs::path> dirs(configured.begin(), configured.end());
  scan(dirs, refused);
}

void PluginRegistry::scan(const std::vector<fs::path>& directories,
                          std::vector<LoadError>& refused) {
  for (const auto& dir : directories) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file(ec) && entry.path().extension() == ".so") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::string canonical = fs::weakly_canonical(file, ec).string();
      if (by_file_.contains(canonical)) {
        continue;
      }
      auto loaded = load(file);
      by_file_[canonical] = loaded ? (*loaded)->descriptor().name : "";
      if (!loaded) {
        refused.push_back(LoadError{file.string(), loaded.error().message});
      }
    }
  }
}

const sdk::Plugin* PluginRegistry::find(sdk::PluginKind kind, std::string_view name) const {
  auto p = get(kind, name);
  return p ? &p->plugin() : nullptr;
}

std::vector<std::string> PluginRegistry::names() const {
  std::set<std::string> unique;
  for (const auto& [key, p] : by_key_) {
    unique.insert(key.second);
  }
  return {unique.begin(), unique.end()};
}

std::shared_ptr<LoadedPlugin> PluginRegistry::get(sdk::PluginKind kind, std::string_view name) const {
  auto it = by_key_.find(Key{kind, std::string(name)});
  return it == by_key_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<LoadedPlugin>> PluginRegistry::named(std::string_view name) const {
  std::vector<std::shared_ptr<LoadedPlugin>> out;
  for (auto kind : {sdk::PluginKind::Source, sdk::PluginKind::Destination}) {
    if (auto p = get(kind, name)) {
      out.push_back(std::move(p));
    }
  }
  return out;
}

std::vector<std::shared_ptr<LoadedPlugin>> PluginRegistry::all() const {
  std::vector<std::shared_ptr<LoadedPlugin>> out;
  for (const auto& [key, p] : by_key_) {
    out.push_back(p);
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a->descriptor().name < b->descriptor().name;
  });
  return out;
}

fs::path executableDirectory() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : exe.parent_path();
}

}  // namespace junction::core::plugin
