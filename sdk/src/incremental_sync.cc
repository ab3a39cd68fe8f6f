#include "junction/sdk/incremental_sync.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <utility>

namespace junction::sdk {

namespace {

using std::chrono::milliseconds;

constexpr std::array<double, 10> kRunDurationBuckets = {0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400};

}  // namespace

// Everything a run touches. Owned by the IncrementalSync and co-owned by emit callbacks in flight
// (they may outlive it); scheduled tasks hold it weakly, so a task never keeps it alive.
//
// Run state (`request`, `page`, `run_*`) is touched only by scheduler tasks, which never run
// concurrently; `mutex` guards the flags, the handles and `status` against start/stop/status
// callers and emit callbacks.
struct IncrementalSync::State : std::enable_shared_from_this<IncrementalSync::State> {
  State(SourceContext& c, IncrementalSyncOptions o, SyncPullFunction p)
      : ctx(c),
        options(std::move(o)),
        pull(std::move(p)),
        runs_succeeded(c.metrics().counter("junction_sync_runs_total", "Sync runs finished",
                                           {{"result", "success"}})),
        runs_failed(c.metrics().counter("junction_sync_runs_total", "Sync runs finished",
                                        {{"result", "error"}})),
        runs_skipped(c.metrics().counter("junction_sync_runs_skipped_total",
                                         "Scheduled sync runs skipped: a run was in progress")),
        records(c.metrics().counter("junction_sync_records_total",
                                    "Records pulled and made durable by sync runs")),
        pages(c.metrics().counter("junction_sync_pages_total",
                                  "Pages pulled and made durable by sync runs")),
        retries_rate_limited(c.metrics().counter("junction_sync_page_retries_total",
                                                 "Pages retried later", {{"reason", "rate_limited"}})),
        retries_queue(c.metrics().counter("junction_sync_page_retries_total", "Pages retried later",
                                          {{"reason", "queue_refused"}})),
        commits(c.metrics().counter("junction_sync_checkpoint_commits_total",
                                    "Checkpoints stored after their page was durable")),
        running_gauge(c.metrics().gauge("junction_sync_running", "1 while a sync run is in progress")),
        run_records(c.metrics().gauge("junction_sync_run_records",
                                      "Records made durable by the current (or last) sync run")),
        run_pages(c.metrics().gauge("junction_sync_run_pages",
                                    "Pages made durable by the current (or last) sync run")),
        last_success(c.metrics().gauge("junction_sync_last_success_timestamp_seconds",
                                       "When the last successful sync run finished (Unix time)")),
        last_error(c.metrics().gauge("junction_sync_last_error_timestamp_seconds",
                                     "When the last failed sync run ended (Unix time)")),
        duration(c.metrics().histogram("junction_sync_run_duration_seconds",
                                       "Duration of finished sync runs", kRunDurationBuckets)) {}

  SourceContext& ctx;
  const IncrementalSyncOptions options;
  const SyncPullFunction pull;
  Counter& runs_succeeded;
  Counter& runs_failed;
  Counter& runs_skipped;
  Counter& records;
  Counter& pages;
  Counter& retries_rate_limited;
  Counter& retries_queue;
  Counter& commits;
  Gauge& running_gauge;
  Gauge& run_records;
  Gauge& run_pages;
  Gauge& last_success;
  Gauge& last_error;
  Histogram& duration;

  mutable std::mutex mutex;
  bool started = false;                           // guarded by mutex
  bool stopped = false;                           // guarded by mutex
  bool running = false;                           // guarded by mutex
  std::uint64_t generation = 0;                   // guarded by mutex; one per run
  std::unique_ptr<TaskHandle> ticker;             // guarded by mutex
  std::unique_ptr<TaskHandle> manual;             // guarded by mutex (runNow)
  std::vector<std::unique_ptr<TaskHandle>> steps; // guarded by mutex; one-shot continuations
  SyncStatus status;                              // guarded by mutex
  std::string refusal;                            // guarded by mutex: why emit was refused

  // Run state: scheduler tasks only.
  SyncRequest request;
  SyncPage page;
  std::chrono::steady_clock::time_point run_start;

  // --- scheduling ------------------------------------------------------------------------------

  // Runs `step` on the scheduler after `delay`, unless stopped or the run `generation` is over.
  void scheduleStep(milliseconds delay, std::uint64_t run, void (State::*step)()) noexcept {
    std::weak_ptr<State> weak = weak_from_this();
    std::lock_guard lock(mutex);
    if (stopped || generation != run) {
      return;
    }
    steps.push_back(ctx.scheduler().after(delay, [weak, run, step] {
      if (auto self = weak.lock(); self && self->current(run)) {
        self->pruneSteps();
        ((*self).*step)();
      }
    }));
  }

  bool current(std::uint64_t run) const {
    std::lock_guard lock(mutex);
    return !stopped && running && generation == run;
  }

  // Drops the handles of continuations that already ran (their tasks are one-shot; the one
  // running now is this task itself, whose handle may be destroyed from inside it).
  void pruneSteps() {
    std::vector<std::unique_ptr<TaskHandle>> done;
    {
      std::lock_guard lock(mutex);
      done.swap(steps);
    }
  }

  std::uint64_t runId() const {
    std::lock_guard lock(mutex);
    return generation;
  }

  // --- a run -----------------------------------------------------------------------------------

  void tick() noexcept {
    {
      std::lock_guard lock(mutex);
      if (stopped) {
        return;
      }
      if (running) {
        runs_skipped.inc();
        return;
      }
      running = true;
      ++generation;
      status.running = true;
      status.run_records = 0;
      status.run_pages = 0;
    }
    running_gauge.set(1);
    run_records.set(0);
    run_pages.set(0);
    run_start = ctx.clock().steadyNow();
    try {
      beginRun();
    } catch (const std::exception& e) {
      fail(std::string("sync run threw: ") + e.what());
    } catch (...) {
      fail("sync run threw an unknown exception");
    }
  }

  void beginRun() {
    auto loaded = ctx.checkpoints().load(options.checkpoint_key);
    if (!loaded) {
      fail("cannot load the checkpoint: " + loaded.error().message);
      return;
    }
    request = SyncRequest{};
    request.checkpoint = *loaded;
    request.run_started_ms = ctx.clock().nowMs();
    {
      std::lock_guard lock(mutex);
      status.checkpoint = request.checkpoint;
    }
    ctx.log().info("sync run started", {{"checkpoint", request.checkpoint.value_or("(none)")}});
    pullPage();
  }

  void pullPage() {
    Result<SyncPage> pulled = makeError(ErrorCode::Internal, "no pull function");
    try {
      if (pull) {
        pulled = pull(request);
      }
    } catch (const std::exception& e) {
      pulled = makeError(ErrorCode::Internal, std::string("the pull threw: ") + e.what());
    } catch (...) {
      pulled = makeError(ErrorCode::Internal, "the pull threw an unknown exception");
    }
    if (!pulled) {
      fail(pulled.error().message);
      return;
    }
    if (pulled->retry_after.count() > 0) {
      retries_rate_limited.inc();
      ctx.log().warn("sync page rate limited by the vendor; retrying",
                     {{"page", request.page_number},
                      {"retry_after_ms", static_cast<std::int64_t>(pulled->retry_after.count())}});
      scheduleStep(pulled->retry_after, runId(), &State::pullPage);
      return;
    }
    page = std::move(pulled).value();
    emitPage();
  }

  void emitPage() {
    if (page.events.empty()) {
      pageDurable();
      return;
    }
    const std::uint64_t run = runId();
    std::vector<Event> events = page.events;  // kept until durable, to emit again if refused
    ctx.emit(std::move(events), [self = shared_from_this(), run](EmitResult result) {
      self->emitted(run, std::move(result));
    });
  }

  // The emit callback: on a daemon thread, must not block. Hands over to the scheduler.
  void emitted(std::uint64_t run, EmitResult result) noexcept {
    const ErrorCode code = result.status.ok() ? ErrorCode::Internal : result.status.error().code;
    if (result.status.ok()) {
      scheduleStep(milliseconds(0), run, &State::pageDurable);
    } else if (code == ErrorCode::ResourceExhausted || code == ErrorCode::Unavailable) {
      retries_queue.inc();
      const milliseconds delay = std::max(result.retry_after, options.retry_delay);
      ctx.log().warn("sync page refused by the queue; emitting it again later",
                     {{"error", result.status.message()},
                      {"retry_after_ms", static_cast<std::int64_t>(delay.count())}});
      scheduleStep(delay, run, &State::emitPage);
    } else {
      {
        std::lock_guard lock(mutex);
        refusal = "the queue refused the page: " + result.status.message();
      }
      scheduleStep(milliseconds(0), run, &State::failRefused);
    }
  }

  void failRefused() {
    std::string why;
    {
      std::lock_guard lock(mutex);
      why = std::exchange(refusal, {});
    }
    fail(std::move(why));
  }


  void pageDurable() {
    if (page.checkpoint && page.checkpoint != request.checkpoint) {
      if (auto stored = ctx.checkpoints().store(options.checkpoint_key, *page.checkpoint);
          !stored.ok()) {
        fail("cannot store the checkpoint: " + stored.message());
        return;
      }
      commits.inc();
      request.checkpoint = page.checkpoint;
    }
    const std::size_t n = page.events.size();
    records.inc(n);
    pages.inc();
    {
      std::lock_guard lock(mutex);
      status.run_records += n;
      status.run_pages += 1;
      status.checkpoint = request.checkpoint;
      run_records.set(static_cast<double>(status.run_records));
      run_pages.set(static_cast<double>(status.run_pages));
    }
    if (page.next_page.empty()) {
      succeed();
      return;
    }
    request.page = std::move(page.next_page);
    request.page_number += 1;
    page = SyncPage{};
    {
      std::lock_guard lock(mutex);
      if (stopped) {
        return;
      }
    }
    pullPage();
  }

  void succeed() { finish(std::nullopt); }

  void fail(std::string error) noexcept { finish(std::move(error)); }

  // Ends the run: status, metrics and its log line. `error`: why it failed; nullopt: success.
  void finish(std::optional<std::string> error) noexcept {
    const double seconds = elapsedSeconds();
    const std::int64_t now_ms = ctx.clock().nowMs();
    SyncStatus s;
    {
      std::lock_guard lock(mutex);
      running = false;
      status.running = false;
      (error ? status.runs_failed : status.runs_succeeded) += 1;
      (error ? status.last_error_ms : status.last_success_ms) = now_ms;
      status.last_error = error.value_or("");
      s = status;
    }
    page = SyncPage{};
    (error ? runs_failed : runs_succeeded).inc();
    (error ? last_error : last_success).set(static_cast<double>(now_ms) / 1000.0);
    running_gauge.set(0);
    duration.observe(seconds);
    const auto duration_ms = static_cast<std::int64_t>(seconds * 1000);
    if (error) {
      ctx.log().error("sync run failed", {{"error", *error},
                                          {"records", s.run_records},
                                          {"pages", s.run_pages},
                                          {"duration_ms", duration_ms}});
    } else {
      ctx.log().info("sync run finished", {{"records", s.run_records},
                                           {"pages", s.run_pages},
                                           {"duration_ms", duration_ms},
                                           {"checkpoint", s.checkpoint.value_or("(none)")}});
    }
  }

  double elapsedSeconds() const {
    return std::chrono::duration<double>(ctx.clock().steadyNow() - run_start).count();
  }
};

IncrementalSync::IncrementalSync(SourceContext& context, IncrementalSyncOptions options,
                                 SyncPullFunction pull) noexcept
    : state_(std::make_shared<State>(context, std::move(options), std::move(pull))) {}

IncrementalSync::~IncrementalSync() { stop(); }

Status IncrementalSync::start() noexcept {
  std::lock_guard lock(state_->mutex);
  if (state_->started) {
    return makeError(ErrorCode::AlreadyExists, "the incremental sync is already started");
  }
  if (state_->options.every.count() <= 0) {
    return makeError(ErrorCode::InvalidArgument, "the sync interval (every) must be positive");
  }
  state_->started = true;
  std::weak_ptr<State> weak = state_;
  state_->ticker = state_->ctx.scheduler().every(
      state_->options.every,
      [weak] {
        if (auto self = weak.lock()) {
          self->tick();
        }
      },
      state_->options.run_at_start);
  return {};
}

void IncrementalSync::stop() noexcept {
  std::unique_ptr<TaskHandle> ticker;
  std::unique_ptr<TaskHandle> manual;
  std::vector<std::unique_ptr<TaskHandle>> steps;
  bool was_running = false;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopped) {
      return;
    }
    state_->stopped = true;
    ticker = std::move(state_->ticker);
    manual = std::move(state_->manual);
    steps.swap(state_->steps);
    was_running = state_->running;
  }
  // Outside the lock: cancelling waits for a task in progress, which may need the lock.
  ticker.reset();
  manual.reset();
  steps.clear();
  {
    std::lock_guard lock(state_->mutex);
    state_->running = false;
    state_->status.running = false;
  }
  state_->running_gauge.set(0);
  if (was_running) {
    state_->ctx.log().info("sync run interrupted by stop; the next start re-reads from the checkpoint",
                           {{"checkpoint", state_->request.checkpoint.value_or("(none)")}});
  }
}

bool IncrementalSync::runNow() noexcept {
  std::unique_ptr<TaskHandle> previous;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopped || state_->running) {
      return false;
    }
    std::weak_ptr<State> weak = state_;
    previous = std::exchange(state_->manual, state_->ctx.scheduler().after(milliseconds(0), [weak] {
      if (auto self = weak.lock()) {
        self->tick();
      }
    }));
  }
  return true;
}

SyncStatus IncrementalSync::status() const {
  std::lock_guard lock(state_->mutex);
  return state_->status;
}

}  // namespace junction::sdk
