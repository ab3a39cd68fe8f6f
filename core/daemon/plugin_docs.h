#pragma once

// A plugin's descriptor printed as documentation (`junction plugins NAME [--json]`).

#include <string>

#include "core/plugin/plugin_registry.h"

namespace junction::core::daemon {

std::string pluginListText(const plugin::PluginRegistry& registry);
std::string pluginListJson(const plugin::PluginRegistry& registry);
std::string pluginDocText(const plugin::LoadedPlugin& plugin);
std::string pluginDocJson(const plugin::LoadedPlugin& plugin);

}  // namespace junction::core::daemon
