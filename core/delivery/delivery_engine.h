#pragma once

// The delivery side of the daemon: one DestinationWorker per enabled destination, the cursor
// store, the dead-letter store, queue retention (segments every cursor has passed are deleted),
// and the admin API of destinations and dead letters (GET /admin/dlq, POST /admin/dlq/replay,
// POST /admin/dlq/purge, GET /admin/destinations, POST /admin/destinations/{id}/pause|resume).

#include <atomic>
#include <boost/json/array.hpp>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config/daemon_config.h"
#include "core/delivery/consumer_source.h"
#include "core/delivery/dead_letter_store.h"
#include "core/delivery/destination_worker.h"
#include "core/http/router.h"
#include "core/privacy/audit_log.h"
#include "core/privacy/privacy_store.h"
#include "core/queue/cursor_store.h"
#include "core/queue/event_queue.h"
#include "core/queue/log.h"

namespace junction::core::delivery {

class DeliveryEngine {
 public:
  // On the embedded log: workers read it through the cursor store (LogSource).
  DeliveryEngine(queue::Log& log, sdk::Metrics& metrics, sdk::Logger& logger,
                 const sdk::Clock& clock);
  // On another backend of the queue seam (NATS JetStream): each destination reads through its
  // own consumer, named after the destination (ConsumerSource); positions live in the queue,
  // so there is no cursor store, and retention is the queue's retain().
  DeliveryEngine(queue::EventQueue& queue, sdk::Metrics& metrics, sdk::Logger& logger,
                 const sdk::Clock& clock);
  ~DeliveryEngine();

  // Opens the cursor (embedded log only) and dead-letter stores under `state_dir`.
  sdk::Status open(const std::string& state_dir);
  // Before add(): the privacy store the workers consult (tombstones, remembered consent,
  // aliases) and the audit log DLQ replays/purges are written to. Both may stay null; both must
  // outlive the engine.
  void setPrivacy(const privacy::PrivacyStore* store, privacy::AuditLog* audit) {
    privacy_ = store;
    audit_ = audit;
  }
  // Before add(): the live debugger's tap the workers publish decisions to (may stay null;
  // must outlive the engine).
  void setTap(telemetry::EventTap* tap) { tap_ = tap; }
  // Wakes every worker (a delete was recorded: they drop the person's waiting events).
  void wakeWorkers();
  // Every worker looks for dead letters marked for replay (marked on another node).
  void notifyReplays();
  // Adds a destination; `config` must outlive the engine.
  // `throttle`: what the plugin's context signals when the vendor limits the account (may be
  // null).
  sdk::Status add(const config::ConnectorConfig& config, std::shared_ptr<sdk::Destination> plugin,
                  WorkerLimits limits = {}, std::shared_ptr<AccountThrottle> throttle = nullptr);
  // Before start(), on the embedded log: another reader of the log (the profile service) to
  // wake on appends, and the offset it still needs, which retention keeps like a destination's
  // cursor.
  void addReader(std::function<void()> on_append, std::function<queue::Offset()> needs);
  // Starts every worker and the retention thread; wires the log's append listener.
  sdk::Status start();
  // Stops every worker (deliveries in flight finish), flushes cursors. Idempotent.
  void stop();

  // Admin routes; every call needs `Authorization: Bearer <admin_token>` (constant-time check).
  void registerAdminRoutes(http::Router& router, std::string admin_token);

  DeadLetterStore& deadLetters() { return *dead_letters_; }
  // The running destination `id`, or null.
  std::shared_ptr<DestinationWorker> worker(std::string_view id) const;

  // --- while running (hot reload) ---------------------------------------------------------
  // Adds and starts a destination on a running engine: it resumes at its stored cursor (a
  // destination removed earlier and added again), else at `start:`. `config` must outlive the
  // engine.
  sdk::Status addRunning(const config::ConnectorConfig& config,
                         std::shared_ptr<sdk::Destination> plugin,
                         std::shared_ptr<AccountThrottle> throttle = nullptr);
  // Stops and removes a running destination: deliveries in flight finish, its cursor is
  // flushed and kept, so retention keeps its backlog on disk until it is added again or
  // forgotten. NotFound when it is not running.
  sdk::Status remove(std::string_view id);
  // Destinations with a stored cursor that are not running (removed from the configuration),
  // and the bytes of queue each holds back. Empty on another backend (its consumers live on
  // the servers).
  std::vector<std::pair<std::string, std::uint64_t>> removedWithBacklog() const;
  // Forgets a removed destination's cursor (on another backend: its consumer): its backlog may
  // then be deleted by retention. AlreadyExists while it runs; NotFound without a cursor.
  sdk::Status forget(std::string_view id);
  // Pauses or resumes a destination. The pause is kept on disk (<state_dir>/paused/<id>), so a
  // paused destination stays paused across restarts until it is resumed. NotFound: no such
  // running destination.
  sdk::Status setPaused(std::string_view id, bool paused);
  // Every destination's state and figures, as GET /admin/destinations answers them.
  boost::json::array describe() const;
  // For readiness: each destination with events waiting that has made no progress (cursor,
  // deliveries, dead letters) for `stall_ms`, as "destination ID: N bytes waiting, no progress
  // for S s".
  // A paused destination is never stalled: it waits because an operator said so.
  std::vector<std::string> stalled(std::int64_t stall_ms) const;
  // Deletes segments every destination has passed (on another backend: the queue's retain()).
  // Returns the number deleted.
  std::size_t applyRetention();

 private:
  void retentionLoop();
  // On another backend: starts the consumer of a started worker, which wakes it on new data;
  // stops one (after its worker), erasing it when the destination is removed.
  void startSource(const std::shared_ptr<DestinationWorker>& w);
  void stopSource(std::string_view id, bool erase);
  struct Reader {
    std::function<void()> on_append;
    std::function<queue::Offset()> needs;
  };
  std::vector<Reader> readers_;

  // Exactly one of the two.
  queue::Log* log_ = nullptr;
  queue::EventQueue* queue_ = nullptr;
  // On queue_: each running destination's consumer (guarded by change_mutex_). Started after
  // its worker, stopped after it (handing back what the worker did not finish).
  std::map<std::string, std::unique_ptr<ConsumerSource>, std::less<>> sources_;
  sdk::Metrics& metrics_;
  sdk::Logger& logger_;
  const sdk::Clock& clock_;
  std::string state_dir_;
  std::unique_ptr<queue::CursorStore> cursors_;
  std::unique_ptr<LogSource> log_source_;  // over log_ and cursors_, for the workers
  sdk::Counter* cursor_flush_errors_ = nullptr;
  std::unique_ptr<DeadLetterStore> dead_letters_;
  const privacy::PrivacyStore* privacy_ = nullptr;
  privacy::AuditLog* audit_ = nullptr;
  telemetry::EventTap* tap_ = nullptr;
  // The running workers: an immutable list replaced as a whole (reload), so readers (the
  // append listener, retention, admin routes) take a snapshot without a lock.
  using Workers = std::vector<std::shared_ptr<DestinationWorker>>;
  std::shared_ptr<const Workers> workers() const { return workers_.load(); }
  std::atomic<std::shared_ptr<const Workers>> workers_{std::make_shared<const Workers>()};
  std::mutex change_mutex_;  // serializes add/addRunning/remove

  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread retention_;
  bool started_ = false;
};

}  // namespace junction::core::delivery
