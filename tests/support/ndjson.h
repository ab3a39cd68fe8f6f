#pragma once

// Reading what a `file` destination wrote: one JSON object per line.

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace junction::testing {

// The objects of the newline-delimited JSON file, in order; none when it does not exist.
inline std::vector<boost::json::object> readNdjson(const std::filesystem::path& file) {
  std::vector<boost::json::object> out;
  std::ifstream in(file, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) {
      out.push_back(boost::json::parse(line).as_object());
    }
  }
  return out;
}

}  // namespace junction::testing
