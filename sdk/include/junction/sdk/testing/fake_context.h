#pragma once

// Fake plugin contexts for unit tests: everything a plugin can reach through its context, in
// memory and inspectable, plus a real HttpClient (point the plugin at a ScriptedHttpServer).
//
//   sdk::testing::FakeDestinationContext ctx;
//   MyDestination dest(config, ctx);
//   auto outcomes = dest.deliver(batch);
//   EXPECT_EQ(ctx.metrics().counterValue("junction_my_requests_total", {{"status", "200"}}), 1u);
//   EXPECT_TRUE(ctx.log().contains("rate limited"));
//   ctx.manualClock().advance(std::chrono::seconds(30));
//   ctx.scheduler().runDue();  // runs the plugin's timers that are now due
//
// Test-only code: unlike the SDK proper, helpers outside the SDK interfaces may throw.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "junction/sdk/context.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/http_server.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"
#include "junction/sdk/source.h"

namespace junction::sdk::testing {

// ---------------------------------------------------------------------------------------------
// Logging

struct LogRecord {
  LogLevel level = LogLevel::Info;
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;

  // The value of field `key`, or nullopt.
  std::optional<std::string> field(std::string_view key) const;
};

// Records every line. Thread-safe.
class RecordingLogger final : public Logger {
 public:
  // Lines below `min_level` are neither enabled nor recorded.
  explicit RecordingLogger(LogLevel min_level = LogLevel::Debug) : min_level_(min_level) {}

  bool enabled(LogLevel level) const noexcept override;
  void log(LogLevel level, std::string_view message,
           std::initializer_list<LogField> fields) noexcept override;

  std::vector<LogRecord> records() const;
  // True when `text` occurs in any recorded message or field value.
  bool contains(std::string_view text) const;
  // Same, only among lines at `level`.
  bool contains(LogLevel level, std::string_view text) const;
  std::size_t count(LogLevel level) const;
  void clear();

 private:
  const LogLevel min_level_;
  mutable std::mutex mutex_;
  std::vector<LogRecord> records_;  // guarded by mutex_
};

// ---------------------------------------------------------------------------------------------
// Metrics

// In-memory Metrics following the interface contract (same name + labels -> same object;
// another kind under an existing name -> a detached object). Label order does not matter for
// lookups. Thread-safe; metric objects are atomics; references live as long as the FakeMetrics.
class FakeMetrics final : public Metrics {
 public:
  FakeMetrics();
  ~FakeMetrics() override;
  FakeMetrics(const FakeMetrics&) = delete;
  FakeMetrics& operator=(const FakeMetrics&) = delete;

  Counter& counter(std::string_view name, std::string_view help,
                   const Labels& labels = {}) noexcept override;
  Gauge& gauge(std::string_view name, std::string_view help,
               const Labels& labels = {}) noexcept override;
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::span<const double> buckets = {},
                       const Labels& labels = {}) noexcept override;

  // Assertions. A series that was never made reads as 0 / nullopt.
  std::uint64_t counterValue(std::string_view name, const Labels& labels = {}) const;
  std::optional<double> gaugeValue(std::string_view name, const Labels& labels = {}) const;
  std::uint64_t histogramCount(std::string_view name, const Labels& labels = {}) const;
  double histogramSum(std::string_view name, const Labels& labels = {}) const;
  // Whether a series with this name and labels was made (of any kind).
  bool has(std::string_view name, const Labels& labels = {}) const;
  // Sum of a counter over every label set it was made with.
  std::uint64_t counterTotal(std::string_view name) const;
  // How many times a name was asked for with a kind other than its first.
  std::size_t kindClashes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Time

// A clock that moves only when told. Wall and steady time advance together. Thread-safe.
class ManualClock final : public Clock {
 public:
  // 2026-01-01T00:00:00Z.
  static constexpr std::int64_t kDefaultStartMs = 1767225600000;

  explicit ManualClock(std::int64_t start_epoch_ms = kDefaultStartMs) noexcept
      : wall_ms_(start_epoch_ms) {}

  std::int64_t nowMs() const noexcept override { return wall_ms_.load(); }
  // Starts at an arbitrary fixed point (not the epoch of steady_clock).
  std::chrono::steady_clock::time_point steadyNow() const noexcept override;

  // Moves both clocks forward by `d` (negative values are ignored: steady time never goes back).
  void advance(std::chrono::milliseconds d) noexcept;
  // Sets wall time only (it may jump backwards, as a real wall clock can).
  void setNowMs(std::int64_t epoch_ms) noexcept { wall_ms_.store(epoch_ms); }

 private:
  std::atomic<std::int64_t> wall_ms_;
  std::atomic<std::int64_t> steady_ms_{0};
};

// A Scheduler driven by a ManualClock: nothing runs until `runDue()` is called, and then on the
// calling thread. Thread-safe. `cancel()` on a handle (or destroying it) removes the task; if
// the task is running on another thread, cancel waits for that run to finish. Handles may
// outlive the scheduler.
class ManualScheduler final : public Scheduler {
 public:
  // `clock` must outlive the scheduler.
  explicit ManualScheduler(const ManualClock& clock);
  ~ManualScheduler() override;
  ManualScheduler(const ManualScheduler&) = delete;
  ManualScheduler& operator=(const ManualScheduler&) = delete;

  std::unique_ptr<TaskHandle> every(std::chrono::milliseconds interval, std::function<void()> task,
                                    bool run_now = false) noexcept override;
  std::unique_ptr<TaskHandle> after(std::chrono::milliseconds delay,
                                    std::function<void()> task) noexcept override;

  // Runs, in time order, every task due at the clock's steadyNow(), including repeats of a
  // periodic task that fell due several times (a task scheduled by a running task runs too
  // when already due). Returns how many runs happened. Exceptions from tasks propagate.
  std::size_t runDue();
  // Advances `clock` by `d` and runs what is due. `clock` must be the one given at construction.
  std::size_t advanceAndRun(ManualClock& clock, std::chrono::milliseconds d);
  // Tasks scheduled and not cancelled (one-shot tasks leave after their run).
  std::size_t pendingCount() const;
  // Time until the earliest pending task is due (zero if overdue), or nullopt.
  std::optional<std::chrono::milliseconds> nextDueIn() const;

 private:
  struct State;
  class Handle;
  std::shared_ptr<State> state_;
};

// ---------------------------------------------------------------------------------------------
// Checkpoints

// An in-memory CheckpointStore. Thread-safe.
class MemoryCheckpointStore final : public CheckpointStore {
 public:
  Result<std::optional<std::string>> load(std::string_view key) noexcept override;
  Status store(std::string_view key, std::string_view value) noexcept override;

  // Makes every later load/store fail with `error` (nullopt: succeed again).
  void setFailure(std::optional<Error> error);
  std::map<std::string, std::string> values() const;
  std::size_t storeCount() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> values_;  // guarded by mutex_
  std::optional<Error> failure_;                            // guarded by mutex_
  std::size_t stores_ = 0;                                  // guarded by mutex_
};

// ---------------------------------------------------------------------------------------------
// Contexts

namespace detail {

// The PluginContext half shared by both fake contexts. Accessors return the concrete fakes
// (covariant returns), so tests can both hand the context to a plugin and inspect it.
template <typename Base>
class FakePluginContext : public Base {
 public:
  explicit FakePluginContext(std::string id, HttpClientOptions http_options)
      : id_(std::move(id)), scheduler_(clock_), http_(std::move(http_options)) {}

  const std::string& id() const noexcept override { return id_; }
  RecordingLogger& log() noexcept override { return logger_; }
  FakeMetrics& metrics() noexcept override { return metrics_; }
  const ManualClock& clock() const noexcept override { return clock_; }
  ManualScheduler& scheduler() noexcept override { return scheduler_; }
  MemoryCheckpointStore& checkpoints() noexcept override { return checkpoints_; }
  HttpClient& http() noexcept override { return http_; }

  // The clock, writable: advance it, then `scheduler().runDue()`.
  ManualClock& manualClock() noexcept { return clock_; }

 private:
  std::string id_;
  RecordingLogger logger_;
  FakeMetrics metrics_;
  ManualClock clock_;
  ManualScheduler scheduler_;  // after clock_: it keeps a reference
  MemoryCheckpointStore checkpoints_;
  HttpClient http_;
};

}  // namespace detail

// A DestinationContext for destination tests. Not copyable; outlives the plugin under test.
class FakeDestinationContext final : public detail::FakePluginContext<DestinationContext> {
 public:
  explicit FakeDestinationContext(std::string id = "test-destination",
                                  HttpClientOptions http_options = {})
      : FakePluginContext(std::move(id), std::move(http_options)) {}

  // Records the call (see throttles()).
  void throttle(std::chrono::milliseconds pause) noexcept override {
    std::lock_guard lock(throttle_mutex_);
    throttles_.push_back(pause);
  }
  // Every pause passed to throttle(), in call order. Thread-safe.
  std::vector<std::chrono::milliseconds> throttles() const {
    std::lock_guard lock(throttle_mutex_);
    return throttles_;
  }

 private:
  mutable std::mutex throttle_mutex_;
  std::vector<std::chrono::milliseconds> throttles_;  // guarded by throttle_mutex_
};

// One `emit` call as the fake saw it.
struct EmitCall {
  std::vector<Event> events;
  EmitResult result;  // what the callback got (or will get, when held)
};

// A route registered through addRoute.
struct RegisteredRoute {
  std::string method;
  std::string path;
  RouteOptions options;
};

// A SourceContext for source tests. Records emits and routes, and calls routes like the
// daemon's server would (without sockets). Thread-safe.
class FakeSourceContext final : public detail::FakePluginContext<SourceContext> {
 public:
  // Applied when a route's max_body_bytes is 0.
  static constexpr std::size_t kDefaultMaxBodyBytes = 1024 * 1024;
  static constexpr std::chrono::milliseconds kDefaultCallWait{5000};

  // Decides the EmitResult of one emit call.
  using EmitPolicy = std::function<EmitResult(const std::vector<Event>& events)>;

  explicit FakeSourceContext(std::string id = "test-source", HttpClientOptions http_options = {});
  ~FakeSourceContext() override;

  // Records the call and runs `done` with the policy's result: by default status ok and every
  // event accepted. Runs `done` on the calling thread, unless callbacks are held.
  void emit(std::vector<Event> events, EmitCallback done) noexcept override;
  // AlreadyExists for a method+path registered before; InvalidArgument for an empty method or
  // a path not starting with '/'.
  Status addRoute(std::string method, std::string path, HttpHandler handler,
                  RouteOptions options = {}) noexcept override;

  // --- emit policy ---
  // Every later emit gets `result` as is (its `accepted` is used verbatim).
  void setEmitResult(EmitResult result);
  // Every later emit gets what `policy` returns. Called without the context's lock held.
  void setEmitPolicy(EmitPolicy policy);
  // Back to the default: ok, all accepted.
  void resetEmitPolicy();
  // While held, `done` callbacks are queued instead of run (to test "answer once durable").
  void holdCallbacks(bool hold);
  // Runs the queued callbacks on the calling thread; returns how many ran.
  std::size_t releaseCallbacks();

  // --- what was emitted ---
  std::vector<EmitCall> emitCalls() const;
  // Events of every emit whose result was ok, in order.
  std::vector<Event> events() const;
  std::size_t emitCount() const;
  // Blocks until at least `n` events were accepted (true) or `timeout` passes (false).
  bool waitForEvents(std::size_t n, std::chrono::milliseconds timeout) const;

  // --- routes ---
  std::vector<RegisteredRoute> routes() const;

  // Calls the route matching `method` and `target` ("/v1/batch?x=1": the query goes to
  // request.query) as the daemon would: fills request.params from "{name}" segments, refuses
  // bodies over the route's max_body_bytes with 413 without calling the handler, runs the
  // handler on this thread, and returns the response once the responder is called (a responder
  // dropped unanswered gives the daemon's 500). NotFound when no route matches; Unavailable when
  // the handler has not answered after `wait`; Internal when the handler throws.
  Result<HttpResponse> call(std::string method, std::string target, std::string body = {},
                            HttpHeaders headers = {},
                            std::chrono::milliseconds wait = kDefaultCallWait);
  // Like call, but returns at once; the future becomes ready when the responder is called.
  // NotFound / Internal are reported as an already-ready future holding an Error.
  std::future<Result<HttpResponse>> callAsync(std::string method, std::string target,
                                              std::string body = {}, HttpHeaders headers = {});

 private:
  struct Route;

  mutable std::mutex mutex_;
  mutable std::condition_variable events_changed_;
  std::vector<EmitCall> calls_;                            // guarded by mutex_
  std::size_t accepted_events_ = 0;                        // guarded by mutex_
  EmitPolicy policy_;                                      // guarded by mutex_; empty = default
  bool hold_ = false;                                      // guarded by mutex_
  std::vector<std::pair<EmitCallback, EmitResult>> held_;  // guarded by mutex_
  std::vector<std::shared_ptr<Route>> routes_;             // guarded by mutex_
};

}  // namespace junction::sdk::testing
