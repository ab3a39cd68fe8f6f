#pragma once

// Source plugins: where events come from. A source registers HTTP routes, schedules pulls, and
// hands events to the daemon with `emit`, learning when they are durable.

#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

#include "junction/sdk/context.h"
#include "junction/sdk/event.h"
#include "junction/sdk/http_server.h"

namespace junction::sdk {

struct EmitResult {
  // ok: every accepted event is durable under the daemon's fsync policy.
  // ResourceExhausted: the disk budget is reached; nothing of this call was queued, try again
  //   after `retry_after` (an HTTP source answers 503 with Retry-After).
  // Unavailable: the daemon is shutting down; nothing of this call was queued.
  Status status;
  std::chrono::milliseconds retry_after{0};
  std::size_t accepted = 0;    // queued durably
  std::size_t suppressed = 0;  // dropped at ingest: the person is under a suppress regulation
};

// Called exactly once per `emit`, on a daemon thread; must not block.
using EmitCallback = std::function<void(EmitResult)>;

// The answer to an HTTP client whose events `emit` refused (`result.status` not ok): 503 with
// `Retry-After` (whole seconds, at least 1) for ResourceExhausted and Unavailable — nothing was
// queued, the client's retry must get through — else 500; the body is
// {"success":false,"error":<the status message>}. One shape for every source that answers HTTP.
HttpResponse refusedEmitResponse(const EmitResult& result);

class SourceContext : public PluginContext {
 public:
  // Queues `events` (built with makeEvent and enriched by the source). The daemon fills
  // `source_id` and, when absent, `message_id` and `received_at_ms`. Thread-safe; never blocks
  // on disk: `done` runs once the events are durable (or refused).
  virtual void emit(std::vector<Event> events, EmitCallback done) noexcept = 0;

  // Registers `handler` for `method` and `path` on the daemon's HTTP server. `path` is exact
  // or has `{name}` segments ("/v1/projects/{writeKey}/settings"). Only during `start()`.
  // AlreadyExists when another connector has the route.
  virtual Status addRoute(std::string method, std::string path, HttpHandler handler,
                          RouteOptions options = {}) noexcept = 0;
};

// A source instance. Created by its plugin with a checked config and its context; the context
// outlives the instance. `start` and `stop` are called once each, on the daemon's main thread,
// inside a barrier: an escaping exception is caught and reported (from `start`, it fails
// start-up with its message).
class Source {
 public:
  virtual ~Source() = default;

  // Registers routes and schedules work. An error stops the daemon's start-up with its message.
  virtual Status start() = 0;

  // Stops producing. After `stop` returns the source must not call `emit`; emits already in
  // flight still get their callbacks. Routes are removed by the daemon.
  virtual void stop() {}
};

}  // namespace junction::sdk
