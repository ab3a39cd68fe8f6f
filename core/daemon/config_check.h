#pragma once

// The whole configuration check, shared by `junctiond --check`, `junctiond` itself and
// `junction check`: read the file, load the plugins it names paths for, check every connector.
// Then, when the configuration is valid and <storage.path>/catalog.json exists, the audiences'
// event and trait names the event catalog has not seen are warnings (not errors: the catalog
// knows only what was sent so far).

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
  // Audience names unknown to the event catalog (audiences::unknownNameWarnings), located as
  // errors are; they do not make the check fail.
  config::ConfigErrors warnings;

  bool ok() const { return config.has_value() && errors.empty(); }
  // One line per error, then one per refused plugin file.
  std::string report() const;
  // One line per warning: "warning: junction.yaml:6:30: audiences.x....: the event catalog ...".
  std::string warningsReport() const;
};

// The warnings for `config`'s audiences against the event catalog saved at `catalog_file`
// (ingest::EventCatalog::toJson()'s document), the computed traits counting as known traits.
// None when there are no audiences, or the file is absent or not a catalog.
config::ConfigErrors audienceCatalogWarnings(const config::DaemonConfig& config,
                                             const std::string& catalog_file);

CheckOutcome checkConfigFile(const std::string& path, plugin::PluginRegistry& registry,
                             const config::EnvLookup& env);

}  // namespace junction::core::daemon
