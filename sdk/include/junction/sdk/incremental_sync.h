#pragma once

// Scheduled incremental sync for pulling sources (a CRM's changed records since the last run).
//
// The source supplies a pull function that reads ONE page from the vendor; IncrementalSync does
// everything around it: the schedule (option `every`), the checkpoint (cursor) kept through the
// context's CheckpointStore, emitting each page, committing the page's checkpoint only once its
// events are durable, retries, and the run's metrics and log lines.
//
//   struct Config {
//     std::string base_url;
//     std::chrono::milliseconds every{0};
//   };
//   const OptionTable<Config>& options() {
//     static const OptionTable<Config> table{
//         option("base_url", &Config::base_url, "API root").required(),
//         everyOption(&Config::every),  // `every`, the same for every pulling source
//     };
//     return table;
//   }
//
//   class MySource final : public Source {
//    public:
//     MySource(Config config, SourceContext& ctx)
//         : config_(std::move(config)), ctx_(ctx),
//           sync_(ctx, {.every = config_.every}, [this](const SyncRequest& r) { return pull(r); }) {}
//     Status start() override { return sync_.start(); }
//     void stop() override { sync_.stop(); }
//
//    private:
//     // Reads the page after `r.page` (empty: the first page of a run) of the records changed
//     // since `r.checkpoint` (nullopt: never synced). Runs on the scheduler; may block on HTTP.
//     Result<SyncPage> pull(const SyncRequest& r);
//     Config config_;
//     SourceContext& ctx_;
//     IncrementalSync sync_;  // last: stopped and destroyed first
//   };
//
// Guarantees:
// - The checkpoint is never ahead of durable events: a page's `checkpoint` is stored only after
//   `emit` reported every one of its events durable (status ok). A crash or stop in mid-run
//   loses nothing: the next run starts from the last stored checkpoint and re-reads (at least
//   once; make the checkpoint inclusive, e.g. "modified >= T", and let duplicates be).
// - Runs never overlap: a tick that finds a run in progress is skipped (and counted).
// - A page the queue refuses (ResourceExhausted: disk budget; Unavailable: shutting down) is
//   emitted again after the emit's retry_after (at least `retry_delay`); the checkpoint does not
//   move meanwhile. A vendor's rate limit is a SyncPage with `retry_after` set: the same request
//   is made again after that delay, within the same run.
// - A pull error, a checkpoint that cannot be loaded or stored, or any other emit refusal ends the
//   run as failed; the next tick starts a new run from the committed checkpoint.
//
// Metrics (the daemon labels them `source="<id>"`):
//   junction_sync_runs_total{result="success"|"error"}   runs finished
//   junction_sync_runs_skipped_total                      ticks skipped: a run was in progress
//   junction_sync_records_total, junction_sync_pages_total   events/pages made durable
//   junction_sync_page_retries_total{reason="rate_limited"|"queue_refused"}
//   junction_sync_checkpoint_commits_total
//   junction_sync_running                                 1 while a run is in progress
//   junction_sync_run_records, junction_sync_run_pages    progress of the current (or last) run
//   junction_sync_last_success_timestamp_seconds, junction_sync_last_error_timestamp_seconds
//   junction_sync_run_duration_seconds                    histogram of finished runs
// Log lines: "sync run started", "sync run finished" (records, pages, duration_ms),
// "sync run failed" (error, records, pages), and a warning for each retried page. Checkpoints and
// errors are logged; event bodies never are.
//
// Threading: pulls and checkpoint stores run as scheduler tasks (the connector's tasks never run
// concurrently); emit callbacks only hand over to the scheduler, never block. start/stop/status
// may be called from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "junction/sdk/event.h"
#include "junction/sdk/options.h"
#include "junction/sdk/result.h"
#include "junction/sdk/source.h"

namespace junction::sdk {

// What a pull is asked for.
struct SyncRequest {
  // The last committed checkpoint: at a run's first page, the one loaded from the store; later,
  // the one committed after the previous page. nullopt: this connector never committed one.
  // It moves during a run: a vendor whose paging belongs to one query (a search's `after`) keeps
  // that query's own bound in `page`.
  std::optional<std::string> checkpoint;
  // Empty: the first page of a run. Otherwise the previous page's `next_page`, as returned.
  std::string page;
  std::int64_t run_started_ms = 0;  // wall time the run started (Clock::nowMs)
  std::uint64_t page_number = 0;    // 0-based within the run
};

// One page read from the vendor.
struct SyncPage {
  std::vector<Event> events;  // built with makeEvent(json, ctx.id())
  // Stored once `events` are durable (or at once when `events` is empty). nullopt: unchanged.
  std::optional<std::string> checkpoint;
  // Opaque to IncrementalSync: passed back as SyncRequest::page. Empty: the run is complete.
  std::string next_page;
  // Non-zero: the vendor asked to wait (a 429). `events` and the rest are ignored and the same
  // request is made again after this delay.
  std::chrono::milliseconds retry_after{0};

  static SyncPage wait(std::chrono::milliseconds delay) {
    SyncPage page;
    page.retry_after = delay.count() > 0 ? delay : std::chrono::milliseconds(1);
    return page;
  }
};

// Reads one page. Runs on the scheduler; may block on the network. Exceptions are caught and fail
// the run.
using SyncPullFunction = std::function<Result<SyncPage>(const SyncRequest&)>;

struct IncrementalSyncOptions {
  std::chrono::milliseconds every{15 * 60 * 1000};  // how often a run starts (option `every`)
  bool run_at_start = true;                         // first run at start() rather than `every` later
  std::string checkpoint_key = "cursor";            // key in the connector's CheckpointStore
  // Wait before emitting a refused page again when the refusal gave no retry_after.
  std::chrono::milliseconds retry_delay{1000};
};

// A snapshot of the sync's state (also in metrics).
struct SyncStatus {
  bool running = false;
  std::uint64_t runs_succeeded = 0;
  std::uint64_t runs_failed = 0;
  std::uint64_t run_records = 0;  // of the current run, or the last one
  std::uint64_t run_pages = 0;
  std::optional<std::string> checkpoint;  // the last committed (or loaded) checkpoint
  std::int64_t last_success_ms = 0;       // 0: never
  std::int64_t last_error_ms = 0;         // 0: never
  std::string last_error;                 // empty after a successful run
};

// Runs a pull function on a schedule. Construct it in the source's constructor; the context must
// outlive it. Destroying it stops it.
class IncrementalSync {
 public:
  IncrementalSync(SourceContext& context, IncrementalSyncOptions options,
                  SyncPullFunction pull) noexcept;
  ~IncrementalSync();
  IncrementalSync(const IncrementalSync&) = delete;
  IncrementalSync& operator=(const IncrementalSync&) = delete;

  // Schedules the runs. Call once, from Source::start.
  Status start() noexcept;
  // Cancels future runs and waits for a pull or store in progress; a run in mid-flight stops
  // without committing further (its emitted-but-unconfirmed page is re-read by the next start).
  // Emit callbacks arriving later are ignored. Idempotent.
  void stop() noexcept;
  // Starts a run now unless one is in progress (then returns false).
  bool runNow() noexcept;

  SyncStatus status() const;

  struct State;  // incremental_sync.cc

 private:
  std::shared_ptr<State> state_;
};

// The `every` option every pulling source declares the same way: a duration ("30s", "15m",
// "1h"), at least 1s, at most 7 days.
template <typename Config>
Option<Config> everyOption(std::chrono::milliseconds Config::*field,
                           boost::json::value default_value = "15m") {
  return option("every", field,
                "How often a sync run starts (\"30s\", \"15m\"); runs never overlap")
      .defaultValue(std::move(default_value))
      .range(1000, 7.0 * 24 * 3600 * 1000);
}

}  // namespace junction::sdk
