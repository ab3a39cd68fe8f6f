#include "core/daemon/config_check.h"

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/audiences/audience.h"

namespace junction::core::daemon {

std::string CheckOutcome::report() const {
  std::string out = config::formatErrors(errors);
  for (const auto& r : refused) {
    out += "plugin refused: " + r.toString() + "\n";
  }
  return out;
}

std::string CheckOutcome::warningsReport() const {
  std::string out;
  for (const auto& w : warnings) {
    out += "warning: " + w.toString() + "\n";
  }
  return out;
}

config::ConfigErrors audienceCatalogWarnings(const config::DaemonConfig& config,
                                             const std::string& catalog_file) {
  if (config.audiences.empty()) {
    return {};
  }
  // Read here rather than with ingest::EventCatalog, which sets a damaged file aside: a check
  // changes nothing on disk.
  std::ifstream in(catalog_file, std::ios::binary);
  if (!in) {
    return {};
  }
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  const boost::json::value catalog = boost::json::parse(text.str(), ec);
  if (ec || !catalog.is_object()) {
    return {};
  }
  audiences::KnownNames known = audiences::knownNamesFromCatalog(catalog.get_object());
  if (!known.traits.empty()) {
    // A computed trait is a trait to an audience. (No identify seen yet: traits are not checked.)
    for (const auto& trait : config.profiles.computed_traits) {
      known.traits.insert(trait.name);
    }
  }
  return audiences::unknownNameWarnings(config.audiences, config.file, known);
}

CheckOutcome checkConfigFile(const std::string& path, plugin::PluginRegistry& registry,
                             const config::EnvLookup& env) {
  CheckOutcome outcome;
  auto loaded = config::loadConfig(path, env, outcome.errors);
  if (!loaded) {
    return outcome;
  }
  registry.scanSearchPath(loaded->plugins.paths, loaded->plugins.allow_override, outcome.refused);
  if (!config::checkConnectors(*loaded, registry, outcome.errors)) {
    return outcome;
  }
  outcome.warnings = audienceCatalogWarnings(
      *loaded, (std::filesystem::path(loaded->storage.path) / "catalog.json").string());
  outcome.config = std::move(loaded);
  return outcome;
}

}  // namespace junction::core::daemon
