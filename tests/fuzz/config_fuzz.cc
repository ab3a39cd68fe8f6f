// libFuzzer target: the daemon's YAML configuration loader (core/config), on any text.
//
// Input: the YAML text of a configuration file. Calls loadConfigText (yaml-cpp, the option
// tables of server/storage/queue/log/plugins/consent, the connector blocks) and then
// checkConnectors against an empty plugin catalog.
// Invariants: a syntax or value problem is an error in the list, never an exception or a crash;
// nullopt exactly when errors were reported; every error names the file it was given; with no
// plugin known, checkConnectors refuses exactly when some connector is enabled.
// Seeds: config/junction.yaml, config/examples/*.yaml and small hand-written files.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config/daemon_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace junction::core::config;

constexpr const char* kFile = "fuzz.yaml";

// A fixed environment: ${JUNCTION_ADMIN_TOKEN} and ${FUZZ_<x>} are set (the latter to <x>),
// everything else is unset (so ${NAME:-default} takes its default and ${NAME} is an error).
std::optional<std::string> environment(std::string_view name) {
  if (name == "JUNCTION_ADMIN_TOKEN") {
    return std::string("fuzz-admin-token-0123456789");
  }
  if (name.starts_with("FUZZ_")) {
    return std::string(name.substr(5));
  }
  return std::nullopt;
}

class NoPlugins final : public PluginCatalog {
 public:
  const junction::sdk::Plugin* find(junction::sdk::PluginKind, std::string_view) const override {
    return nullptr;
  }
  std::vector<std::string> names() const override { return {}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(junction::fuzz::asText(data, size));
  ConfigErrors errors;
  std::optional<DaemonConfig> config = loadConfigText(text, kFile, environment, errors);
  FUZZ_CHECK(config.has_value() == errors.empty(), formatErrors(errors));
  for (const ConfigError& e : errors) {
    FUZZ_CHECK(e.file == kFile, e.toString());
    FUZZ_CHECK(e.line >= 0 && e.column >= 0, e.toString());
    FUZZ_CHECK(!e.message.empty(), e.toString());
  }
  (void)formatErrors(errors);
  if (!config) {
    return 0;
  }
  (void)config->secrets();
  bool enabled = false;
  for (const auto* list : {&config->sources, &config->destinations}) {
    for (const ConnectorConfig& c : *list) {
      enabled = enabled || c.enabled;
    }
  }
  ConfigErrors plugin_errors;
  const bool checked = checkConnectors(*config, NoPlugins(), plugin_errors);
  FUZZ_CHECK(checked == plugin_errors.empty(), formatErrors(plugin_errors));
  FUZZ_CHECK(checked == !enabled, "an enabled connector passed with no plugin loaded, or a "
                                  "disabled one was checked: " + formatErrors(plugin_errors));
  return 0;
}
