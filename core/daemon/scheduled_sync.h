#pragma once

// A destination in scheduled mode (`sync: {mode: scheduled, every: 1h, at: "02:00", timezone:
// …}`): at each run it receives one `identify` event per person whose profile changed since the
// last successful run, stating the person's latest merged and computed traits — not the raw
// events. One ScheduledSync (thread `jn-sync`) per such destination.
//
// A run:
//   1. reads the destination's sync marks (profile store, written with the batch that changed
//      the profile: nothing is missed) page by page — every profile at the destination's first
//      run;
//   2. turns each page into identify events of the profiles as they are now (a person erased
//      or suppressed is not sent, and the mark goes), emitted through ingest from the built-in
//      source `sync.<destination>`, the only source the destination reads: consent,
//      suppression, deletion, batching, retries and dead letters apply as to any event;
//   3. once the destination's cursor passes a page's events (delivered, or dead-lettered with a
//      reason), deletes the page's marks — only those not changed again meanwhile (their
//      sequence number). A person changed during the run stays marked for the next run.
// The run's slot is recorded as done only when every page is past the cursor. A crash re-runs:
// the slot in progress is kept (`sync.json` in the data directory) and run again at start;
// delivered pages' marks are gone, so only the rest is sent again. Message ids are
// `sync-<destination>-<slot ms>-<profile id>`: a page sent twice carries the same ids.
//
// Runs never overlap: one thread runs them in turn. A run still going at the next slot is
// reported (WARN and junction_scheduled_sync_overruns_total); the next run starts when it ends, covering
// every change up to then. Missed slots (the daemon was down) run once, at start. An operator can
// start a run at once (runNow(), POST /admin/destinations/{id}/sync).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/json/object.hpp>

#include "core/delivery/delivery_engine.h"
#include "core/ingest/ingest.h"
#include "core/profiles/profile_service.h"
#include "core/sync/schedule.h"
#include "junction/sdk/context.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"

namespace junction::core::daemon {

struct ScheduledSyncDeps {
  profiles::ProfileService& profiles;
  ingest::Ingest& ingest;
  delivery::DeliveryEngine& engine;  // the destination's worker (its cursor)
  sdk::CheckpointStore& state;       // key "<destination>": the last run, the run in progress
  sdk::Metrics& metrics;
  sdk::Logger& logger;
  const sdk::Clock& clock;
};

struct ScheduledSyncOptions {
  std::size_t page = 5'000;  // profiles per read of the store and per emit
  // Events emitted and not yet past the destination's cursor, at most: the run waits for the
  // destination rather than filling the queue with a million snapshots ahead of it.
  std::size_t max_ahead = 100'000;
  std::chrono::milliseconds poll{100};  // how often the clock and the cursor are looked at
  std::chrono::milliseconds retry{30'000};  // after a run failed (store or queue unavailable)
  // The audiences naming the destination: each snapshot says whether the person is in each
  // (context.junction.audiences), for the plugin's own mapping (tags, rows, properties).
  std::vector<std::string> audiences;
};

class ScheduledSync {
 public:
  ScheduledSync(std::string destination, sync::Schedule schedule, ScheduledSyncDeps deps,
                ScheduledSyncOptions options = {});
  ~ScheduledSync();
  ScheduledSync(const ScheduledSync&) = delete;
  ScheduledSync& operator=(const ScheduledSync&) = delete;

  // Reads the last run and starts the thread.
  sdk::Status start();
  // Stops at the next page; a run cut short keeps its slot in progress (run again at start).
  void stop();

  // Starts a run now, unless one is going on (false). It covers every change up to now like a
  // scheduled one, and the schedule carries on from it: the next run is the slot after now.
  bool runNow();

  struct Status {
    std::int64_t next_run_ms = 0;
    std::int64_t last_slot_ms = 0;     // the slot of the last successful run; 0: none yet
    std::int64_t last_success_ms = 0;  // when it ended
    std::int64_t last_duration_ms = 0;
    std::uint64_t last_people = 0;
    bool running = false;
    std::int64_t running_slot_ms = 0;
    std::uint64_t sent = 0;        // people sent in the run going on
    std::uint64_t settled = 0;     // of them, past the destination's cursor
    std::uint64_t runs = 0;        // successful runs since start
    std::uint64_t overruns = 0;
    std::string last_error;
  };
  Status status() const;
  boost::json::object statusJson() const;

  const std::string& destination() const noexcept { return destination_; }
  std::string sourceId() const;  // sync.<destination>

 private:
  enum class RunResult { Done, Stopped, Failed };
  void loop(std::int64_t started);  // `started`: the clock at start()
  RunResult run(std::int64_t slot, bool everyone);
  // Waits up to `poll` (or until stop); false once stopping.
  bool pause();
  sdk::Status saveState();

  const std::string destination_;
  const sync::Schedule schedule_;
  const std::string schedule_text_;
  ScheduledSyncDeps deps_;
  const ScheduledSyncOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool run_now_ = false;
  Status status_;
  std::thread thread_;

  sdk::Counter& runs_ok_;
  sdk::Counter& runs_failed_;
  sdk::Counter& overruns_;
  sdk::Counter& people_;
  sdk::Gauge& progress_;
  sdk::Gauge& duration_;
  sdk::Gauge& last_success_;
  sdk::Gauge& next_run_;
  sdk::Gauge& running_;
};

}  // namespace junction::core::daemon
