#pragma once

// The configuration most daemon tests start from: loopback on a free port, the data under the
// test's directory, profiles off, one `http` source `web` with one write key, an admin token,
// and the test's destinations. With the request headers that go with it.

#include <string>
#include <string_view>

#include "junction/sdk/crypto.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {

// `destinations`: YAML list items ("  - id: ...\n    plugin: ...\n"); `server_extra`: more
// keys of the `server:` flow mapping (", readiness_stall: 1s"); `source_extra`: more lines of the
// source's `config:` block, indented 6.
inline std::string webConfig(const fs::path& dir, std::string_view write_key,
                             std::string_view admin_token, std::string_view destinations,
                             std::string_view server_extra = {}, std::string_view source_extra = {}) {
  std::string out = "server: { listen: \"127.0.0.1:0\", admin_token: \"" + std::string(admin_token) +
                    "\"" + std::string(server_extra) + " }\n";
  out += "storage: { path: \"" + (dir / "data").string() + "\" }\n";
  out += "profiles: { enabled: false }\n";
  out += "sources:\n  - id: web\n    plugin: http\n    config:\n      write_keys: [\"" +
         std::string(write_key) + "\"]\n" + std::string(source_extra);
  out += "destinations:\n" + std::string(destinations);
  return out;
}

// A file destination writing `dir`/`file`, delivering at once.
inline std::string fileDestination(std::string_view id, const fs::path& dir, std::string_view file,
                                   std::string_view extra = {}) {
  return "  - id: " + std::string(id) + "\n    plugin: file\n    batch: { max_wait: 0ms }\n" +
         std::string(extra) + "    config: { path: \"" + (dir / file).string() + "\" }\n";
}

// "Authorization: ...\r\n" lines for HttpClient::request.
inline std::string basicAuth(std::string_view write_key) {
  return "Authorization: Basic " + sdk::base64Encode(std::string(write_key) + ":") + "\r\n";
}
inline std::string bearerAuth(std::string_view token) {
  return "Authorization: Bearer " + std::string(token) + "\r\n";
}

}  // namespace junction::integration
