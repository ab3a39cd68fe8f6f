#pragma once

// `junction status`, `junction pause ID`, `junction resume ID`: a running daemon's state through
// its admin API (GET /admin/status, POST /admin/destinations/{id}/pause|resume), found from
// --config (server.listen, server.admin_token) or --url. See core/cli/README.md.

#include <string>

namespace junction::cli {

struct AdminArgs {
  std::string config_file;
  std::string url;  // base URL of the daemon; "" = http://server.listen
  bool as_json = false;
};

// Exit status: 0 ready, 1 the daemon answered but is not ready (reasons printed) or could not
// be reached, 2 usage.
int runStatus(const AdminArgs& args);
// Exit status: 0 done, 1 error (unknown destination, daemon unreachable).
int runPause(const AdminArgs& args, const std::string& destination, bool paused);

}  // namespace junction::cli
