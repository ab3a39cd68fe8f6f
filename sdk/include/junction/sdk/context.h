#pragma once

// What a plugin sees of the world. A plugin gets everything through its context — no
// singletons, no sockets of its own.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "junction/sdk/http_server.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"
#include "junction/sdk/result.h"

namespace junction::sdk {

class HttpClient;

// Wall and monotonic time. Tests substitute a manual clock. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t nowMs() const noexcept = 0;  // Unix epoch milliseconds
  virtual std::chrono::steady_clock::time_point steadyNow() const noexcept = 0;
};

// A scheduled task; cancelling (or destroying the handle) stops future runs. A run in progress
// finishes first: `cancel()` waits for it, unless called from inside the task itself.
class TaskHandle {
 public:
  virtual ~TaskHandle() = default;
  virtual void cancel() noexcept = 0;
};

// Runs plugin work off the I/O threads, on the daemon's worker pool. Tasks of one plugin instance
// never run concurrently with each other. Thread-safe.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Runs `task` every `interval`, first after `interval` (or immediately when `run_now`).
  virtual std::unique_ptr<TaskHandle> every(std::chrono::milliseconds interval,
                                            std::function<void()> task,
                                            bool run_now = false) noexcept = 0;
  // Runs `task` once after `delay`.
  virtual std::unique_ptr<TaskHandle> after(std::chrono::milliseconds delay,
                                            std::function<void()> task) noexcept = 0;
};

// Durable key/value checkpoints (incremental-sync cursors), private to one connector id.
// `store` returns once the value is durable. Thread-safe.
class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  virtual Result<std::optional<std::string>> load(std::string_view key) noexcept = 0;
  virtual Status store(std::string_view key, std::string_view value) noexcept = 0;
};

// Shared by sources and destinations. Every reference returned lives as long as the context,
// which outlives the plugin instance it was given to.
class PluginContext {
 public:
  virtual ~PluginContext() = default;
  virtual const std::string& id() const noexcept = 0;  // the connector id from the YAML
  virtual Logger& log() noexcept = 0;
  virtual Metrics& metrics() noexcept = 0;
  virtual const Clock& clock() const noexcept = 0;
  virtual Scheduler& scheduler() noexcept = 0;
  virtual CheckpointStore& checkpoints() noexcept = 0;
  // An HTTP client with the daemon's defaults (timeouts, TLS verification, user agent).
  virtual HttpClient& http() noexcept = 0;
};

}  // namespace junction::sdk
