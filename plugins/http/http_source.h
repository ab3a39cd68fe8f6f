#pragma once

// The `http` source: the Segment HTTP Tracking API on the daemon's server, so that
// analytics.js (analytics-next), @segment/analytics-node and RudderStack's SDKs send to Junction
// with only their host changed. See README.md for the endpoints and the answers.
//
// Threading: handlers run on the daemon's I/O threads and never block: a request's events are
// parsed, authenticated, enriched and checked there, handed to `emit`, and the client is
// answered from emit's callback once they are durable. The instance state is immutable after
// start() except the de-duplication window (internally locked) and the metrics (atomic).
// Lifetime: emit callbacks keep what they touch (`State`) alive, so an answer arriving after
// stop() and destruction is still safe.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "auth.h"
#include "body.h"
#include "enrich.h"
#include "http_config.h"
#include "junction/sdk/source.h"

namespace junction::plugins::http {

class TrackingPlan;
class Deduplicator;

class HttpSource final : public sdk::Source {
 public:
  HttpSource(HttpSourceConfig config, sdk::SourceContext& ctx);
  ~HttpSource() override;
  HttpSource(const HttpSource&) = delete;
  HttpSource& operator=(const HttpSource&) = delete;

  // Compiles the tracking plan and registers the routes (README.md lists them).
  sdk::Status start() override;
  // Later requests get 503; answers of emits in flight still go out.
  void stop() override;

  // Metric reasons of junction_http_source_rejected_events_total.
  enum class Reason { Invalid, TooLarge, Unplanned, Violation, Duplicate, Unauthorized, kCount };
  static const char* toString(Reason reason) noexcept;

 private:
  struct State;
  enum class Route { Track, Identify, Page, Screen, Group, Alias, Batch, Telemetry, Settings,
                     Preflight, kCount };

  void handleEvents(Endpoint endpoint, sdk::HttpRequest&& request, sdk::HttpResponder respond);
  void handleSettings(sdk::HttpRequest&& request, sdk::HttpResponder respond);
  void handleTelemetry(sdk::HttpRequest&& request, sdk::HttpResponder respond);
  void handlePreflight(sdk::HttpRequest&& request, sdk::HttpResponder respond);

  // CORS: whether `origin` may call us ("" = not a browser: allowed), and the headers that say so.
  bool originAllowed(std::string_view origin) const noexcept;
  void addCorsHeaders(std::string_view origin, sdk::HttpHeaders& headers) const;
  std::string clientIp(const sdk::HttpRequest& request) const;

  HttpSourceConfig config_;
  sdk::SourceContext& ctx_;
  WriteKeys keys_;
  ClientIpPolicy ip_policy_;
  bool any_origin_ = false;
  std::shared_ptr<State> state_;
  std::shared_ptr<const TrackingPlan> plan_;  // null: no plan
  std::atomic<bool> stopped_{false};
};

}  // namespace junction::plugins::http
