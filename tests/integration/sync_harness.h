#pragma once

// What end-to-end tests of pulling sources (hubspot, salesforce) read back from a daemon: the
// record versions a `file` destination wrote, the source's stored checkpoint, and one metric.

#include <boost/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "tests/integration/daemon_harness.h"

namespace junction::integration {

// (record id, version) of every event the file destination wrote whose messageId is
// "<prefix><record id>-<version>" (how the CRM sources name an identify).
inline std::set<std::pair<std::string, std::int64_t>> deliveredVersions(const fs::path& file,
                                                                        const std::string& prefix) {
  std::set<std::pair<std::string, std::int64_t>> out;
  std::istringstream lines(readFile(file));
  std::string line;
  while (std::getline(lines, line)) {
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) {
      continue;
    }
    const auto* id = v.as_object().if_contains("messageId");
    if (id == nullptr || !id->is_string() || !id->as_string().starts_with(prefix)) {
      continue;
    }
    const std::string rest(id->as_string().subview(prefix.size()));
    const auto dash = rest.rfind('-');
    out.insert({rest.substr(0, dash), std::stoll(rest.substr(dash + 1))});
  }
  return out;
}

// The number a source stored as its checkpoint ("cursor") under the daemon's storage path.
inline std::optional<std::int64_t> storedCheckpoint(const fs::path& storage,
                                                    const std::string& source_id) {
  boost::system::error_code ec;
  auto v = boost::json::parse(readFile(storage / "checkpoints" / (source_id + ".json")), ec);
  if (ec || !v.is_object() || !v.as_object().contains("cursor")) {
    return std::nullopt;
  }
  return std::stoll(std::string(v.at("cursor").as_string()));
}

// The value of one series ("name{labels}") in the daemon's /metrics, or -1 when absent.
inline double metricValue(std::uint16_t port, const std::string& series) {
  HttpClient client(port);
  auto reply = client.request("GET", "/metrics");
  auto pos = reply.body.find(series + " ");
  return pos == std::string::npos ? -1 : std::atof(reply.body.c_str() + pos + series.size());
}

}  // namespace junction::integration
