#pragma once

#include <string>
#include <vector>

namespace junction::core::config {

// One problem in a configuration file, located by file, line and column (1-based) and by the
// dotted key path ("destinations[0].config.list_id"). Messages never contain secret values.
struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;
  std::string message;

  // "config/junction.yaml:12:5: destinations[0].config.lst_id: unknown option; did you mean
  // 'list_id'?"
  std::string toString() const;
};

using ConfigErrors = std::vector<ConfigError>;

std::string formatErrors(const ConfigErrors& errors);

// Levenshtein distance, for "did you mean" hints.
std::size_t editDistance(std::string_view a, std::string_view b);

// The closest of `candidates` to `word` when it is close enough to be a likely typo, else "".
std::string closestMatch(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace junction::core::config
