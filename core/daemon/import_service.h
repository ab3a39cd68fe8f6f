#pragma once

// The daemon's side of `junction import` (core/cli/import.cc): bulk events for one source, sent
// by the CLI in chunks through the admin API while the daemon runs (it owns the queue directory),
// each chunk appended durably and only then recorded as the import's progress.
//
//   GET  /admin/import/{source}?import=ID
//        -> {"offset":B,"line":N,"accepted":A,"rejected":R,"suppressed":S} (zeros: not started)
//   POST /admin/import/{source}?import=ID&from=B&to=B&line=N&rejected=R[&restart=1]
//        body: NDJSON, one event per line (validated by the CLI with the tracking API's checks;
//        each is checked again here with sdk::makeEvent before anything is queued)
//        -> 200 {"offset":B,"line":N,"accepted":…} once the chunk is durable and recorded
//        -> 409 {"error":…,"offset":B,"line":N} when `from` is not where the import stands
//           (a chunk sent twice, two imports of one file at once): nothing queued
//        -> 503 + Retry-After when the queue refuses (disk budget, shutting down)
//
// The progress record (storage.path/imports.json, rewritten atomically) is written after the
// chunk's events are durable and before the answer: a CLI killed at any moment resumes from a
// record that never counts an event that is not queued, and a chunk whose answer was lost is
// not queued twice (its `from` is refused, the CLI learns the offset). Only a daemon crash
// between the append and the record can make a resumed import send one chunk again.
//
// Threading: handlers run on I/O threads; records are written on the work io_context. Chunks of
// one import are serialized (one in flight; another gets 409).

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/http/router.h"
#include "core/ingest/ingest.h"
#include "core/runtime/runtime.h"
#include "junction/sdk/log.h"

namespace junction::core::daemon {

class ImportService {
 public:
  // `sources`: ids of the configured, enabled sources. Everything must outlive the service.
  ImportService(ingest::Ingest& ingest, std::vector<std::string> sources,
                const std::filesystem::path& progress_file, boost::asio::io_context& work,
                sdk::Logger& log);

  void registerRoutes(http::Router& router, std::string admin_token);

 private:
  struct Record {
    std::uint64_t offset = 0;
    std::uint64_t line = 0;
    std::uint64_t accepted = 0;
    std::uint64_t rejected = 0;
    std::uint64_t suppressed = 0;
  };
  Record load(const std::string& key);
  void post(sdk::HttpRequest&& request, sdk::HttpResponder respond);
  void get(sdk::HttpRequest&& request, sdk::HttpResponder respond);

  ingest::Ingest& ingest_;
  std::vector<std::string> sources_;
  runtime::FileCheckpointStore records_;
  boost::asio::io_context& work_;
  sdk::Logger& log_;
  std::mutex mutex_;
  std::set<std::string> in_flight_;  // guarded by mutex_: record keys with a chunk in flight
};

}  // namespace junction::core::daemon
