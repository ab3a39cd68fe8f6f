// junction: the operator's command-line tool.
//
//   junction plugins [--config FILE] [--json]         list the plugins found
//   junction plugins NAME [--config FILE] [--json]    a plugin's options, as documentation
//   junction check CONFIG                             validate a configuration (exit 0 / 1)
//
// Plugins are found as junctiond finds them: plugins.paths of --config FILE when given, and
// ../plugins next to this binary.

#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/daemon/config_check.h"
#include "core/daemon/plugin_docs.h"

namespace core = junction::core;

namespace {

// Loads the plugins of `config_file` (or only ../plugins next to the binary).
int loadPlugins(const std::string& config_file, core::plugin::PluginRegistry& registry,
                bool quiet_refusals) {
  std::vector<std::string> paths;
  if (!config_file.empty()) {
    core::config::ConfigErrors errors;
    auto config = core::config::loadConfig(config_file, core::config::processEnvironment(), errors);
    if (!config) {
      std::fputs(core::config::formatErrors(errors).c_str(), stderr);
      return 1;
    }
    paths = config->plugins.paths;
  }
  std::vector<core::plugin::LoadError> refused;
  registry.scan(core::plugin::pluginSearchPath(paths), refused);
  if (!quiet_refusals) {
    for (const auto& r : refused) {
      std::fprintf(stderr, "plugin refused: %s\n", r.toString().c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"junction - operate a Junction customer data hub"};
  app.require_subcommand(1);

  auto* plugins = app.add_subcommand("plugins", "List plugins, or document one plugin's options");
  std::string plugin_name;
  std::string config_file;
  bool as_json = false;
  plugins->add_option("name", plugin_name, "Plugin to document");
  plugins->add_option("-c,--config", config_file, "Find plugins as this configuration does");
  plugins->add_flag("--json", as_json, "Print JSON");

  auto* check = app.add_subcommand("check", "Validate a configuration file");
  std::string check_file;
  check->add_option("config", check_file, "Configuration file")->required();

  CLI11_PARSE(app, argc, argv);

  if (plugins->parsed()) {
    core::plugin::PluginRegistry registry;
    if (int rc = loadPlugins(config_file, registry, as_json); rc != 0) {
      return rc;
    }
    if (plugin_name.empty()) {
      std::fputs((as_json ? core::daemon::pluginListJson(registry)
                          : core::daemon::pluginListText(registry))
                     .c_str(),
                 stdout);
      return 0;
    }
    auto plugin = registry.get(plugin_name);
    if (!plugin) {
      std::string hint = core::config::closestMatch(plugin_name, registry.names());
      std::fprintf(stderr, "junction: no plugin named '%s'%s\n", plugin_name.c_str(),
                   hint.empty() ? "" : ("; did you mean '" + hint + "'?").c_str());
      return 1;
    }
    std::fputs((as_json ? core::daemon::pluginDocJson(*plugin) : core::daemon::pluginDocText(*plugin))
                   .c_str(),
               stdout);
    return 0;
  }
  if (check->parsed()) {
    core::plugin::PluginRegistry registry;
    auto outcome =
        core::daemon::checkConfigFile(check_file, registry, core::config::processEnvironment());
    if (!outcome.ok()) {
      std::fputs(outcome.report().c_str(), stderr);
      std::fprintf(stderr, "%s: %zu error%s\n", check_file.c_str(), outcome.errors.size(),
                   outcome.errors.size() == 1 ? "" : "s");
      return 1;
    }
    std::printf("%s: OK (%zu sources, %zu destinations)\n", check_file.c_str(),
                outcome.config->sources.size(), outcome.config->destinations.size());
    return 0;
  }
  return 2;
}
