#pragma once

// The contexts the daemon gives plugin instances: everything a plugin may touch, scoped to its
// connector id (log component, metric labels, checkpoint file, route ownership).

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "core/delivery/throttle.h"
#include "core/http/router.h"
#include "core/ingest/ingest.h"
#include "core/runtime/runtime.h"
#include "core/telemetry/log_sink.h"
#include "core/telemetry/metrics_registry.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/source.h"

namespace junction::core::daemon {

// What every connector context is made of. Outlives the plugin instance.
struct ContextParts {
  std::string id;
  telemetry::LogSink* sink = nullptr;
  sdk::Metrics* metrics = nullptr;  // the daemon's registry
  const sdk::Clock* clock = nullptr;
  boost::asio::io_context* work = nullptr;  // scheduler tasks run here
  std::filesystem::path checkpoint_file;
  // When set, the checkpoints instead of checkpoint_file (shared by the nodes on NATS).
  std::shared_ptr<sdk::CheckpointStore> checkpoints;
  // When set, periodic scheduler tasks run only while it says so (a source's lease).
  std::function<bool()> may_run_periodic;
  sdk::HttpClientOptions http;
};

template <typename Interface>
class ContextBase : public Interface {
 public:
  ContextBase(const ContextParts& parts, const char* kind)
      : id_(parts.id),
        logger_(*parts.sink, std::string(kind) + "." + parts.id),
        metrics_(*parts.metrics, {{kind, parts.id}}),
        clock_(*parts.clock),
        scheduler_(*parts.work),
        checkpoints_(parts.checkpoints
                         ? parts.checkpoints
                         : std::make_shared<runtime::FileCheckpointStore>(parts.checkpoint_file)),
        http_(parts.http) {
    if (parts.may_run_periodic) {
      scheduler_.gatePeriodic(parts.may_run_periodic, std::chrono::milliseconds(250));
    }
  }

  const std::string& id() const noexcept override { return id_; }
  sdk::Logger& log() noexcept override { return logger_; }
  sdk::Metrics& metrics() noexcept override { return metrics_; }
  const sdk::Clock& clock() const noexcept override { return clock_; }
  sdk::Scheduler& scheduler() noexcept override { return scheduler_; }
  sdk::CheckpointStore& checkpoints() noexcept override { return *checkpoints_; }
  sdk::HttpClient& http() noexcept override { return http_; }

  // Cancels scheduled tasks (waiting for runs in progress). Called after the instance stopped.
  void shutdown() noexcept { scheduler_.shutdown(); }

 private:
  std::string id_;
  telemetry::ComponentLogger logger_;
  telemetry::LabeledMetrics metrics_;
  const sdk::Clock& clock_;
  runtime::StrandScheduler scheduler_;
  std::shared_ptr<sdk::CheckpointStore> checkpoints_;
  sdk::HttpClient http_;
};

class SourceConnectorContext final : public ContextBase<sdk::SourceContext> {
 public:
  SourceConnectorContext(const ContextParts& parts, ingest::Ingest& ingest, http::Router& router)
      : ContextBase(parts, "source"), ingest_(ingest), router_(router) {}

  void emit(std::vector<sdk::Event> events, sdk::EmitCallback done) noexcept override;
  sdk::Status addRoute(std::string method, std::string path, sdk::HttpHandler handler,
                       sdk::RouteOptions options) noexcept override;

  // Routes may be added only while the source starts.
  void setStarting(bool starting) noexcept { starting_ = starting; }

 private:
  ingest::Ingest& ingest_;
  http::Router& router_;
  bool starting_ = false;
};

class DestinationConnectorContext final : public ContextBase<sdk::DestinationContext> {
 public:
  explicit DestinationConnectorContext(const ContextParts& parts)
      : ContextBase(parts, "destination"),
        throttle_(std::make_shared<delivery::AccountThrottle>()),
        throttled_(metrics().counter("junction_destination_throttled_total",
                                     "Times the destination's plugin said the vendor limits the "
                                     "whole account (429 or rate-limit headers running low)")) {}

  void throttle(std::chrono::milliseconds pause) noexcept override {
    throttle_->signal(pause, std::chrono::steady_clock::now());
    throttled_.inc();
    log().warn("vendor limits the account: slowing the destination down",
               {{"pause_ms", std::to_string(pause.count())}});
  }

  // Shared with the destination's worker, which applies it.
  const std::shared_ptr<delivery::AccountThrottle>& accountThrottle() const noexcept {
    return throttle_;
  }

 private:
  std::shared_ptr<delivery::AccountThrottle> throttle_;
  sdk::Counter& throttled_;
};

}  // namespace junction::core::daemon
