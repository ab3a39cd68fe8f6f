#pragma once

// A plugin's descriptor printed as documentation (`junction plugins NAME [--json]`).

#include <memory>
#include <string>
#include <vector>

#include "core/plugin/plugin_registry.h"

namespace junction::core::daemon {

std::string pluginListText(const plugin::PluginRegistry& registry);
std::string pluginListJson(const plugin::PluginRegistry& registry);
std::string pluginDocText(const plugin::LoadedPlugin& plugin);
std::string pluginDocJson(const plugin::LoadedPlugin& plugin);
// The docs of every plugin of one name (a source and a destination may share it): the texts one
// after the other; in JSON one object for one plugin, an array of objects for several.
std::string pluginDocsText(const std::vector<std::shared_ptr<plugin::LoadedPlugin>>& plugins);
std::string pluginDocsJson(const std::vector<std::shared_ptr<plugin::LoadedPlugin>>& plugins);

// The configuration reference in Markdown (docs/configuration.md): every key of the daemon's
// sections, then every option of each plugin in `registry`, with type, default, bounds and doc.
std::string configReferenceMarkdown(const plugin::PluginRegistry& registry);

}  // namespace junction::core::daemon
