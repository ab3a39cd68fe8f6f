#include "core/config/config_error.h"

#include <algorithm>
#include <string_view>

namespace junction::core::config {

std::string ConfigError::toString() const {
  // Appends piece by piece: GCC 12 reports a false -Wrestrict on `":" + std::to_string(n)` at -O2.
  std::string out = file;
  if (line > 0) {
    out.append(1, ':').append(std::to_string(line));
    if (column > 0) {
      out.append(1, ':').append(std::to_string(column));
    }
  }
  out.append(": ");
  if (!key.empty()) {
    out.append(key).append(": ");
  }
  out.append(message);
  return out;
}

std::string formatErrors(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.toString();
    out += '\n';
  }
  return out;
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    std::size_t d = editDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

}  // namespace junction::core::config
