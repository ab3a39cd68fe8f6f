#include "core/daemon/config_check.h"

namespace junction::core::daemon {

std::string CheckOutcome::report() const {
  std::string out = config::formatErrors(errors);
  for (const auto& r : refused) {
    out += "plugin refused: " + r.toString() + "\n";
  }
  return out;
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
  outcome.config = std::move(loaded);
  return outcome;
}

}  // namespace junction::core::daemon
