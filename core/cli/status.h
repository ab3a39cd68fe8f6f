#pragma once

// `junction status`, `junction pause|resume|forget ID`, `junction reload`: a running daemon's
// state and control through its admin API (GET /admin/status, POST /admin/reload,
// POST /admin/destinations/{id}/pause|resume|forget), found from --config (server.listen,
// server.admin_token) or --url. See core/cli/README.md.

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
// `junction reload`: POST /admin/reload; prints what changed, or why nothing did.
// Exit status: 0 applied, 1 refused (the errors are printed) or unreachable.
int runReload(const AdminArgs& args);
// `junction forget ID`: a removed destination's stored position is dropped, so retention may
// delete the backlog it held. Exit status: 0 done, 1 error.
int runForget(const AdminArgs& args, const std::string& destination);
// `junction catalog`: the event catalog (GET /admin/catalog) as a table, as JSON, or with
// `tracking_plan` as a draft tracking plan (YAML) for the http source: the track events seen,
// each property with the types seen, `required` for properties every sampled event carried.
int runCatalog(const AdminArgs& args, const std::string& source, bool tracking_plan);

}  // namespace junction::cli
