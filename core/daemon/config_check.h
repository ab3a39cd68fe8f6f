#pragma once

// The whole configuration check, shared by `junctiond --check`, `junctiond` itself and
// `junction check`: read the file, load the plugins it names paths for, check every connector.

#include <optional>
#include <string>
#include <vector>

#include "core/config/daemon_config.h"
#include "core/plugin/plugin_registry.h"

namespace junction::core::daemon {

struct CheckOutcome {
  std::optional<config::DaemonConfig> config;  // set when there is no error
  config::ConfigErrors errors;
  std::vector<plugin::LoadError> refused;  // plugin files that were not loaded

  bool ok() const { return config.has_value() && errors.empty(); }
  // One line per error, then one per refused plugin file.
  std::string report() const;
};

CheckOutcome checkConfigFile(const std::string& path, plugin::PluginRegistry& registry,
                             const config::EnvLookup& env);

}  // namespace junction::core::daemon
