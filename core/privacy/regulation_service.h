#pragma once

// The regulations API (DESIGN.md "Suppression and deletion") and the erasures it starts.
//
//   POST /v1/regulations        {"type":"suppress"|"unsuppress"|"delete", "userId"|"anonymousId"|"email": "..."}
//   GET  /v1/regulations/{id}   the regulation and, for delete, each destination's erasure progress
//
// Both need `Authorization: Bearer <server.admin_token>`. A regulation is recorded and applied
// (PrivacyStore::record) and written to the audit log before the call is answered. A delete then
// asks every destination plugin that supports erasure to erase the person, on this service's
// own thread, with exponential backoff between attempts (bounded by ErasureOptions); each
// destination's final result is recorded in the regulation's detail and in the audit log.
// Pending erasures resume after a restart.
//
// Threads: handlers run on the server's I/O threads; erasures on one background thread, so a
// plugin's erase() is never called concurrently with another erase() (it may run concurrently
// with deliver()). Plugin calls run inside an exception barrier.
// Lifetime: the store, audit log, logger, metrics and clock outlive the service; stop() before
// the destination plugins are stopped.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/http/router.h"
#include "core/privacy/audit_log.h"
#include "core/privacy/privacy_store.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"

namespace junction::core::privacy {

struct ErasureOptions {
  int max_attempts = 8;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
};

class RegulationService {
 public:
  RegulationService(PrivacyStore& store, AuditLog* audit, sdk::Logger& logger,
                    sdk::Metrics& metrics, const sdk::Clock& clock, ErasureOptions options = {});
  ~RegulationService();
  RegulationService(const RegulationService&) = delete;
  RegulationService& operator=(const RegulationService&) = delete;

  // A destination; kept only if its plugin supports erasure. Also while running (a reload):
  // a destination of the same id is replaced, and later erasures go to the new instance.
  void addDestination(const std::string& id, std::shared_ptr<sdk::Destination> plugin);
  // A destination removed by a reload: erasures not yet made there fail with that reason.
  void removeDestination(const std::string& id);
  // Before start(): called (on the caller's thread) after each delete is recorded — the daemon
  // purges the person's dead letters and wakes the delivery workers.
  void onDelete(std::function<void(const Regulation&)> hook) { on_delete_ = std::move(hook); }
  // Before start(): called (on the caller's thread) after each regulation is recorded here,
  // before the client is answered — the daemon shares it with the other nodes.
  void onRecorded(std::function<void(const Regulation&)> hook) { on_recorded_ = std::move(hook); }

  // Resumes pending erasures and starts the erasure thread.
  sdk::Status start();
  // Stops the thread (an erase() in progress finishes first). Idempotent.
  void stop();

  void registerRoutes(http::Router& router, std::string admin_token);

  // The handlers without HTTP framing or authentication (tests call them directly).
  sdk::HttpResponse create(std::string_view body);
  sdk::HttpResponse get(const std::string& id);
  // GET /v1/regulations?limit=N (default 100, at most 1000): the most recent, newest first.
  sdk::HttpResponse list(std::string_view query);

  // JSON of a regulation as the API returns it.
  static boost::json::object toJson(const Regulation& regulation);

 private:
  struct Job {
    std::string regulation;
    std::string destination;
    Subject subject;
    int attempts = 0;
    std::chrono::steady_clock::time_point due{};
  };

  void loop();
  void run(Job& job);
  void finish(const Job& job, std::string_view status, const std::string& reason);
  std::shared_ptr<sdk::Destination> plugin(const std::string& id) const;
  void audit(std::string_view kind, boost::json::object detail);

  PrivacyStore& store_;
  AuditLog* audit_;
  sdk::Logger& logger_;
  sdk::Metrics& metrics_;
  const sdk::Clock& clock_;
  const ErasureOptions options_;
  mutable std::mutex erasable_mutex_;  // the list changes on a reload
  std::vector<std::pair<std::string, std::shared_ptr<sdk::Destination>>> erasable_;
  std::function<void(const Regulation&)> on_delete_;
  std::function<void(const Regulation&)> on_recorded_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Job> jobs_;
  bool stopping_ = false;
  std::mutex detail_mutex_;  // read-modify-write of a regulation's detail
  std::thread thread_;
};

// SHA-256 hex of a subject's value: how the audit log names people.
std::string subjectDigest(const Subject& subject);

}  // namespace junction::core::privacy
