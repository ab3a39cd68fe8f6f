#pragma once

// junctiond's lifecycle: wires the queue, the ingest stage, the HTTP server and the connectors
// from a checked configuration, runs them, and drains them on stop.
//
// Threads: `server.threads` I/O threads run the HTTP server; two worker threads run plugins'
// scheduled tasks; the queue has its writer thread. start() and stop() are called from the main
// thread; stop() may also be requested from a signal handler via requestStop().

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <atomic>
#include <mutex>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/config/daemon_config.h"
#include "core/daemon/connector_context.h"
#include "core/daemon/import_service.h"
#include "core/daemon/scheduled_sync.h"
#include "core/daemon/shared_dead_letters.h"
#include "core/daemon/shared_sources.h"
#include "core/daemon/shared_state.h"
#include "core/delivery/delivery_engine.h"
#include "core/http/router.h"
#include "core/http/server.h"
#include "core/ingest/ingest.h"
#include "core/plugin/plugin_registry.h"
#include "core/privacy/audit_log.h"
#include "core/privacy/privacy_store.h"
#include "core/privacy/regulation_service.h"
#include "core/profiles/profile_service.h"
#include "core/queue/jetstream_queue.h"
#include "core/queue/log.h"
#include "core/runtime/dir_lock.h"
#include "core/runtime/runtime.h"
#include "core/telemetry/event_tap.h"
#include "core/telemetry/log_sink.h"
#include "core/telemetry/metrics_registry.h"

namespace junction::core::daemon {

// The embedded queue's options, as the daemon opens it from `config` (storage.*).
queue::LogOptions queueOptions(const config::DaemonConfig& config);

class Daemon {
 public:
  // `config` must have passed checkConnectors against `plugins`.
  Daemon(config::DaemonConfig config, const plugin::PluginRegistry& plugins,
         telemetry::LogSink& sink);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Opens the queue, creates and starts every enabled connector, starts the server. On error
  // everything started so far is stopped again.
  sdk::Status start();

  // Blocks until SIGTERM/SIGINT or requestStop(), then stops gracefully.
  void runUntilStopped();
  void requestStop() noexcept;

  // Drains: not ready, stop accepting, finish requests in flight (up to shutdown_grace), stop
  // sources, complete queued appends, stop destinations. Idempotent.
  void stop();

  std::uint16_t port() const noexcept;
  telemetry::MetricsRegistry& metrics() noexcept { return metrics_; }
  delivery::DeliveryEngine* engine() noexcept { return engine_.get(); }
  privacy::PrivacyStore* privacyStore() noexcept { return privacy_.get(); }
  profiles::ProfileService* profiles() noexcept { return profiles_.get(); }
  bool ready() const noexcept { return ready_.load(); }

  // Hot reload (SIGHUP, POST /admin/reload): reads the configuration file again and checks it
  // fully; if it is invalid, or changes a section that needs a restart (server, storage, queue,
  // plugins, log, consent, profiles), nothing changes and `errors` says why. Otherwise only the
  // connectors that changed restart: a removed destination stops after its deliveries in
  // flight (its backlog stays on disk until it is added again or forgotten), a changed one
  // restarts at its cursor, a new one starts; sources likewise. `changes` lists what was done.
  struct ReloadResult {
    bool ok = false;
    std::vector<std::string> errors;
    std::vector<std::string> changes;
  };
  ReloadResult reload();

 private:
  struct SourceSlot {
    const config::ConnectorConfig* config = nullptr;
    std::unique_ptr<SourceConnectorContext> context;
    std::shared_ptr<sdk::Source> instance;
    bool started = false;
  };
  struct DestinationSlot {
    const config::ConnectorConfig* config = nullptr;
    std::unique_ptr<DestinationConnectorContext> context;
    std::shared_ptr<sdk::Destination> instance;
  };

  void addCoreRoutes();
  void scheduleCatalogSave();
  sdk::Status startSource(const config::ConnectorConfig& c);
  sdk::Status startDestination(const config::ConnectorConfig& c, bool running);
  void stopSource(std::string_view id);
  // Why the daemon is not ready (empty: ready), as /readyz and /admin/status report it.
  std::vector<std::string> notReadyReasons() const;
  // queue.backend: nats: connects to the stream; ingest and the engine use it.
  sdk::Status openNatsQueue();
  // The ingest stage, the event catalog and the delivery engine, over whichever queue is open.
  sdk::Status openPipeline();
  // queue.backend: nats: regulations and consent recorded here are shared, the others'
  // adopted.
  sdk::Status sharePrivacy();
  // queue.backend: nats: opens <stream>-sources and <stream>-checkpoints, starts the leases.
  sdk::Status shareSources();
  // queue.backend: nats: opens <stream>-dead-letters and shares the engine's dead letters.
  sdk::Status shareDeadLetters();
  // A person was deleted (here or on another node): their dead letters and profile go, and
  // the workers drop their waiting events.
  void forgetDeleted(const privacy::Regulation& r);
  // GET /admin/status: the daemon, its queue, and every connector's state.
  boost::json::object status() const;
  ContextParts partsFor(const std::string& id) const;
  // A source's: on NATS, its checkpoints shared and its syncs gated on its lease.
  ContextParts sourcePartsFor(const std::string& id) const;
  sdk::Status openPrivacy();
  sdk::Status startRegulations();
  sdk::Status openQueue();
  sdk::Status startSources();
  sdk::Status createDestinations();
  sdk::Status openProfiles();
  void stopSources();
  // Destinations in scheduled mode: the runs of each (scheduled_sync.h). startSyncs() also
  // forgets the sync state and marks of every destination that is no longer scheduled (a
  // destination scheduled again starts over with a run for everyone).
  sdk::Status startSyncs();
  sdk::Status startSync(const config::ConnectorConfig& c);
  void stopSync(std::string_view id);
  // Forgets a destination's sync state and marks (it left scheduled mode).
  void resetSync(const std::string& id);
  // The destinations whose changes the profile engine marks: the enabled scheduled ones.
  static std::vector<std::string> syncChannels(const config::DaemonConfig& config);
  // Where the profiles record which audience definitions people were last reviewed against.
  std::string audienceStateFile() const {
    return (std::filesystem::path(config_.storage.path) / "audiences.json").string();
  }

  config::DaemonConfig config_;
  const plugin::PluginRegistry& plugins_;
  telemetry::LogSink& sink_;
  telemetry::ComponentLogger log_;
  telemetry::MetricsRegistry metrics_;
  runtime::SystemClock clock_;
  // Held from start() until this object is gone: everything below uses storage.path.
  std::optional<runtime::DirectoryLock> storage_lock_;

  // One io_context per HTTP I/O thread (server.threads), each run by its own thread: a
  // connection stays on one thread, and a thread blocks in its own epoll_wait rather than
  // handing work to a shared context's other threads (a futex and a context switch each time).
  std::vector<std::unique_ptr<boost::asio::io_context>> io_;
  boost::asio::io_context work_;
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<WorkGuard> io_guards_;
  std::unique_ptr<WorkGuard> work_guard_;
  std::vector<std::thread> threads_;

  // The live debugger's tap: ingest and every destination publish to it while someone watches.
  std::unique_ptr<telemetry::EventTap> tap_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  // Privacy state and the audit log; they outlive ingest, the engine and the regulations API.
  std::unique_ptr<privacy::PrivacyStore> privacy_;
  std::unique_ptr<privacy::AuditLog> audit_;
  std::unique_ptr<privacy::RegulationService> regulations_;
  std::unique_ptr<ImportService> imports_;  // `junction import` (admin API)
  std::mutex log_store_mutex_;  // the metrics collector vs. closing the queue
  std::unique_ptr<queue::Log> log_store_;
  // queue.backend: nats, instead of log_store_ (destroyed after every consumer of it).
  std::unique_ptr<queue::JetStreamQueue> nats_queue_;
  // queue.backend: nats: regulations and consent shared with the other nodes (destroyed
  // before the queue).
  std::unique_ptr<queue::NatsBucket> regulation_bucket_;
  std::unique_ptr<queue::NatsBucket> consent_bucket_;
  std::mutex shared_mutex_;  // shared_privacy_ (a regulation recorded vs. stopping)
  std::unique_ptr<SharedPrivacy> shared_privacy_;
  // queue.backend: nats: which node runs each pulling source, and the sources' checkpoints
  // (shared_sources.h; destroyed before the queue, after the sources stopped).
  std::unique_ptr<queue::NatsBucket> source_lease_bucket_;
  std::unique_ptr<queue::NatsBucket> checkpoint_bucket_;
  std::unique_ptr<SourceLeases> source_leases_;
  // queue.backend: nats: every node's dead letters, in every node's store (stopped before the
  // engine's store closes).
  std::unique_ptr<queue::NatsBucket> dead_letter_bucket_;
  std::unique_ptr<SharedDeadLetters> shared_dead_letters_;
  // Set once shared_dead_letters_ started (read by the queue's heartbeat thread).
  std::atomic<bool> dead_letters_shared_{false};
  std::unique_ptr<ingest::EventCatalog> catalog_;  // outlives ingest_
  std::unique_ptr<boost::asio::steady_timer> catalog_timer_;
  std::unique_ptr<ingest::Ingest> ingest_;
  std::unique_ptr<delivery::DeliveryEngine> engine_;
  std::unique_ptr<delivery::ConsumerSource> profile_source_;  // queue.backend: nats; outlives profiles_
  std::unique_ptr<profiles::ProfileService> profiles_;
  std::vector<SourceSlot> sources_;
  std::vector<DestinationSlot> destinations_;
  // Scheduled destinations' runs and their state (storage.path/sync.json).
  std::unique_ptr<runtime::FileCheckpointStore> sync_state_;
  std::vector<std::unique_ptr<ScheduledSync>> syncs_;  // guarded by connectors_mutex_

  // Reload: the text the running connectors were read from, the configurations they point
  // into (kept for the daemon's life: workers and contexts hold references), and locks.
  std::string loaded_text_;
  std::vector<std::unique_ptr<config::DaemonConfig>> generations_;
  std::mutex reload_mutex_;
  bool reloads_closed_ = false;  // guarded by reload_mutex_: stop() began
  mutable std::mutex connectors_mutex_;  // sources_ and destinations_ (status vs reload)

  std::atomic<bool> ready_{false};
  std::int64_t started_at_ms_ = 0;
  std::atomic<bool> stop_requested_{false};
  bool stopped_ = false;
};

}  // namespace junction::core::daemon
