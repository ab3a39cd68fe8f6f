#pragma once

// Configuration of the `http` source: the option table (one line of docs per key) and the
// cross-field rules. Parsed once by the daemon; the data path only sees the bound struct.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "junction/sdk/options.h"

namespace junction::plugins::http {

struct HttpSourceConfig {
  std::vector<std::string> write_keys;  // secret; any of them authenticates (key rotation)
  std::uint64_t max_event_bytes = 32 * 1024;
  std::uint64_t max_batch_bytes = 500 * 1024;
  std::vector<std::string> cors_origins{"*"};
  std::string client_ip = "keep";  // keep | drop | truncate
  bool trust_forwarded_for = false;
  std::chrono::milliseconds dedup_window{10 * 60 * 1000};  // 0 = off
  std::int64_t dedup_max_entries = 1'000'000;
  std::string public_url;          // "" = from the request's Host header
  boost::json::object tracking_plan;  // {} = none

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<HttpSourceConfig>& httpSourceOptions();

}  // namespace junction::plugins::http
