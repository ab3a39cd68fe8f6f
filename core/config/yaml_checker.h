#pragma once

// Reads YAML into checked, normalized JSON against option tables, collecting every error with
// its file, line, column and key path. Used for the daemon's own sections and for each
// connector's plugin config, so both get the same checks and messages.

#include <yaml-cpp/yaml.h>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config/config_error.h"
#include "junction/sdk/options.h"

namespace junction::core::config {

// Looks an environment variable up; injectable for tests. nullopt = not set.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

EnvLookup processEnvironment();

// Where each key of a checked mapping was written (1-based line/column of its value).
struct KeyMark {
  int line = 0;
  int column = 0;
};
using KeyMarks = std::unordered_map<std::string, KeyMark>;

// Not thread-safe; one per file being read. Appends to `errors`, which it does not own.
class YamlChecker {
 public:
  YamlChecker(std::string file, EnvLookup env, ConfigErrors& errors);

  const std::string& file() const noexcept { return file_; }

  // The scalar's text with `${NAME}` / `${NAME:-default}` replaced from the environment and
  // `$$` turned into `$`. nullopt (and an error) when a variable is unset without default.
  std::optional<std::string> interpolate(const YAML::Node& node, const std::string& key_path);

  // Converts any YAML node to JSON. Plain scalars are typed (integers, floats, true/false,
  // null); quoted scalars stay strings. When `as_text` is set, scalars are kept as text.
  boost::json::value toJson(const YAML::Node& node, const std::string& key_path,
                            bool as_text = false);

  // Checks that `node` is a mapping whose keys are all in `specs`, normalizes each value,
  // reports unknown keys (with a "did you mean" hint), duplicates, type and bound errors and
  // missing required keys, and fills defaults. A null/absent node counts as an empty mapping;
  // missing keys are then reported at `absent_at` (the block that lacks the mapping).
  boost::json::object checkMapping(const YAML::Node& node,
                                   const std::vector<sdk::OptionSpec>& specs,
                                   const std::string& key_path, KeyMarks* marks = nullptr,
                                   KeyMark absent_at = {});

  // Reports keys of mapping `node` that are not in `known` (with hints) or appear twice; values
  // are not looked at.
  void checkKeys(const YAML::Node& node, const std::vector<std::string>& known,
                 const std::string& key_path);

  void error(const YAML::Node& node, std::string key_path, std::string message);
  void error(KeyMark mark, std::string key_path, std::string message);

 private:
  std::string file_;
  EnvLookup env_;
  ConfigErrors& errors_;
};

// The value under `key` of a mapping, or a null node when `map` is not a mapping or has no such
// key. (yaml-cpp's operator[] on a const node returns an invalid "zombie" node that throws.)
YAML::Node childOf(const YAML::Node& map, std::string_view key);

// Orders errors by line and column (stable), from index `first` on.
void sortErrors(ConfigErrors& errors, std::size_t first = 0);

// Joins a key path: joinKey("server", "listen") == "server.listen"; joinKey("", "x") == "x".
std::string joinKey(std::string_view parent, std::string_view key);

}  // namespace junction::core::config
