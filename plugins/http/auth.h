#pragma once

// Write-key authentication: HTTP basic with the key as user name (any password), or `writeKey`
// in the body. Keys are compared in constant time and never logged or echoed.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace junction::plugins::http {

// The user name of an `Authorization: Basic ...` header; nullopt when absent or malformed.
std::optional<std::string> basicAuthUser(std::string_view authorization_header);

class WriteKeys {
 public:
  explicit WriteKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  // True when `key` is one of the configured keys (every key is compared: constant time in
  // the number of keys, and in the position of a mismatch).
  bool accepts(std::string_view key) const noexcept;

 private:
  std::vector<std::string> keys_;
};

}  // namespace junction::plugins::http
