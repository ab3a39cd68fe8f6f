#pragma once

// `junction import --config CONFIG --source ID FILE [--format ndjson|csv] [--resume]`:
// a file of events (NDJSON Segment events, or CSV rows with a column mapping) checked line by
// line with the tracking API's validation and enrichment (plugins/http: the same code /v1/batch
// runs), then sent in chunks to the running daemon's admin API (POST /admin/import/{source},
// core/daemon/import_service.h), which appends each chunk durably and records the import's
// progress. See core/cli/README.md.

#include <cstdint>
#include <string>

namespace junction::cli {

struct ImportArgs {
  std::string config_file;
  std::string source;
  std::string file;
  std::string format;        // "" = from the file name (.csv -> csv, else ndjson)
  std::string mapping_file;  // CSV: a JSON object, event field -> column (inbound mapping)
  std::string url;           // base URL of the daemon; "" = http://server.listen
  bool resume = false;
  bool restart = false;
  std::uint64_t chunk_events = 5000;
  double progress_interval_s = 0;  // 0: 0.2 s on a terminal, 5 s otherwise
};

// Exit status: 0 every line imported, 3 imported with rejected lines (listed on stderr with
// their line numbers), 1 error (missing file, wrong format, unknown source, daemon unreachable:
// what was durable is recorded, --resume continues), 2 usage.
int runImport(const ImportArgs& args);

}  // namespace junction::cli
