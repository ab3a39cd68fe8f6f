#include "core/daemon/scheduled_sync.h"

#include <boost/json.hpp>
#include <deque>
#include <future>

#include "core/config/daemon_config.h"
#include "core/runtime/thread.h"

namespace junction::core::daemon {

namespace json = boost::json;

namespace {

std::int64_t intOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : 0;
}

// "every 1h from 02:00 Europe/Berlin", as the dashboard shows it.
std::string describe(const sync::Schedule& s) {
  auto two = [](int n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  const std::int64_t minutes = s.every_ms / 60'000;
  std::string every = minutes % (24 * 60) == 0 ? std::to_string(minutes / (24 * 60)) + "d"
                      : minutes % 60 == 0      ? std::to_string(minutes / 60) + "h"
                                               : std::to_string(minutes) + "m";
  return "every " + every + " from " + two(s.at_minute / 60) + ":" + two(s.at_minute % 60) + " " +
         s.timezone;
}

}  // namespace

ScheduledSync::ScheduledSync(std::string destination, sync::Schedule schedule,
                             ScheduledSyncDeps deps, ScheduledSyncOptions options)
    : destination_(std::move(destination)),
      schedule_(std::move(schedule)),
      schedule_text_(describe(schedule_)),
      deps_(deps),
      options_(options),
      runs_ok_(deps.metrics.counter("junction_scheduled_sync_runs_total",
                                    "Scheduled sync runs ended, by result",
                                    {{"destination", destination_}, {"result", "success"}})),
      runs_failed_(deps.metrics.counter("junction_scheduled_sync_runs_total",
                                        "Scheduled sync runs ended, by result",
                                        {{"destination", destination_}, {"result", "failed"}})),
      overruns_(deps.metrics.counter(
          "junction_scheduled_sync_overruns_total",
          "Scheduled sync runs still going when their next run was due",
          {{"destination", destination_}})),
      people_(deps.metrics.counter("junction_scheduled_sync_people_sent_total",
                                   "People sent by scheduled sync runs (one identify each)",
                                   {{"destination", destination_}})),
      progress_(deps.metrics.gauge("junction_scheduled_sync_run_people",
                                   "People sent so far by the scheduled run going on (0: none)",
                                   {{"destination", destination_}})),
      duration_(deps.metrics.gauge("junction_scheduled_sync_last_duration_seconds",
                                   "How long the last successful scheduled run took",
                                   {{"destination", destination_}})),
      last_success_(deps.metrics.gauge("junction_scheduled_sync_last_success_timestamp_seconds",
                                       "When the last successful scheduled run ended (Unix time)",
                                       {{"destination", destination_}})),
      next_run_(deps.metrics.gauge("junction_scheduled_sync_next_run_timestamp_seconds",
                                   "When the next scheduled run is due (Unix time)",
                                   {{"destination", destination_}})),
      running_(deps.metrics.gauge("junction_scheduled_sync_running",
                                  "1 while a scheduled run is going on",
                                  {{"destination", destination_}})) {}

ScheduledSync::~ScheduledSync() { stop(); }

std::string ScheduledSync::sourceId() const {
  return std::string(config::kSyncSourcePrefix) + destination_;
}

sdk::Status ScheduledSync::start() {
  auto stored = deps_.state.load(destination_);
  if (!stored) {
    return sdk::makeError(stored.error().code,
                          "sync state of '" + destination_ + "': " + stored.error().message);
  }
  if (*stored && !(*stored)->empty()) {  // empty: forgotten (the destination left scheduled mode)
    boost::system::error_code ec;
    json::value v = json::parse(**stored, ec);
    if (ec || !v.is_object()) {
      return sdk::makeError(sdk::ErrorCode::Internal,
                            "sync state of '" + destination_ + "' is unreadable");
    }
    const json::object& o = v.as_object();
    status_.last_slot_ms = intOf(o, "last_slot");
    status_.last_success_ms = intOf(o, "last_success");
    status_.last_duration_ms = intOf(o, "last_duration_ms");
    status_.last_people = static_cast<std::uint64_t>(intOf(o, "last_people"));
    status_.running_slot_ms = intOf(o, "running_slot");
    if (status_.last_success_ms > 0) {
      last_success_.set(static_cast<double>(status_.last_success_ms) / 1000.0);
      duration_.set(static_cast<double>(status_.last_duration_ms) / 1000.0);
    }
  }
  {
    std::lock_guard lock(mutex_);
    status_.next_run_ms =
        status_.running_slot_ms > 0
            ? status_.running_slot_ms
            : sync::nextRun(schedule_, status_.last_slot_ms > 0 ? status_.last_slot_ms
                                                                : deps_.clock.nowMs());
  }
  thread_ = std::thread([this, started = deps_.clock.nowMs()] { loop(started); });
  return {};
}

void ScheduledSync::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool ScheduledSync::runNow() {
  {
    std::lock_guard lock(mutex_);
    if (status_.running || stopping_) {
      return false;
    }
    run_now_ = true;
  }
  wake_.notify_all();
  return true;
}

ScheduledSync::Status ScheduledSync::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

json::object ScheduledSync::statusJson() const {
  const Status s = status();
  auto iso = [](std::int64_t ms) -> json::value {
    return ms > 0 ? json::value(sdk::formatIsoTimestamp(ms)) : json::value(nullptr);
  };
  json::object o{{"mode", "scheduled"},
                 {"schedule", schedule_text_},
                 {"next_run", iso(s.next_run_ms)},
                 {"next_run_ms", s.next_run_ms},
                 {"last_success_ms", s.last_success_ms},
                 {"last_run", iso(s.last_slot_ms)},
                 {"last_success", iso(s.last_success_ms)},
                 {"last_duration_ms", s.last_duration_ms},
                 {"last_people", s.last_people},
                 {"running", s.running},
                 {"runs", s.runs},
                 {"overruns", s.overruns}};
  if (s.running) {
    o["run"] = json::object{{"slot", iso(s.running_slot_ms)}, {"sent", s.sent},
                            {"delivered", s.settled}};
  }
  if (!s.last_error.empty()) {
    o["last_error"] = s.last_error;
  }
  return o;
}

sdk::Status ScheduledSync::saveState() {
  json::object o;
  {
    std::lock_guard lock(mutex_);
    o = json::object{{"last_slot", status_.last_slot_ms},
                     {"last_success", status_.last_success_ms},
                     {"last_duration_ms", status_.last_duration_ms},
                     {"last_people", status_.last_people},
                     {"running_slot", status_.running_slot_ms}};
  }
  return deps_.state.store(destination_, json::serialize(o));
}

bool ScheduledSync::pause() {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, options_.poll, [&] { return stopping_ || run_now_; });
  return !stopping_;
}

void ScheduledSync::loop(std::int64_t started) {
  runtime::nameThisThread("jn-sync");
  runtime::makeThisThreadBackground();
  while (true) {
    std::int64_t slot = 0;
    bool everyone = false;
    {
      std::lock_guard lock(mutex_);
      if (status_.running_slot_ms > 0) {
        slot = status_.running_slot_ms;  // a run cut short (a crash, a stop): again, now
      } else {
        slot = sync::nextRun(schedule_, status_.last_slot_ms > 0 ? status_.last_slot_ms : started);
      }
      everyone = status_.last_slot_ms == 0;
      status_.next_run_ms = slot;
    }
    next_run_.set(static_cast<double>(slot) / 1000.0);
    while (deps_.clock.nowMs() < slot) {
      if (!pause()) {
        return;
      }
      std::lock_guard lock(mutex_);
      if (run_now_) {
        slot = deps_.clock.nowMs();  // asked for: a run now
        break;
      }
    }
    // Slots missed while the daemon was down (or a run overran) make one run: the latest.
    const std::int64_t now = deps_.clock.nowMs();
    for (std::int64_t n = sync::nextRun(schedule_, slot); n <= now;
         n = sync::nextRun(schedule_, slot)) {
      std::lock_guard lock(mutex_);
      if (status_.running_slot_ms > 0) {
        break;  // resuming keeps the slot (and the message ids) of the run it resumes
      }
      slot = n;
    }
    {
      std::lock_guard lock(mutex_);
      run_now_ = false;
      status_.running = true;
      status_.running_slot_ms = slot;
      status_.sent = 0;
      status_.settled = 0;
    }
    running_.set(1);
    progress_.set(0);
    if (auto s = saveState(); !s.ok()) {
      deps_.logger.error("sync: cannot record the run's start",
                         {{"destination", destination_}, {"error", s.message()}});
    }
    const std::int64_t run_started = deps_.clock.nowMs();
    deps_.logger.info("sync: run started",
                      {{"destination", destination_}, {"slot", sdk::formatIsoTimestamp(slot)},
                       {"everyone", everyone}});
    const RunResult result = run(slot, everyone);
    const std::int64_t ended = deps_.clock.nowMs();
    running_.set(0);
    if (result == RunResult::Stopped) {
      std::lock_guard lock(mutex_);
      status_.running = false;
      return;
    }
    if (result == RunResult::Failed) {
      runs_failed_.inc();
      std::string error;
      {
        std::lock_guard lock(mutex_);
        status_.running = false;
        error = status_.last_error;
      }
      deps_.logger.error("sync: run failed; it runs again",
                         {{"destination", destination_}, {"error", error},
                          {"retry_in_ms", options_.retry.count()}});
      const auto until = deps_.clock.steadyNow() + options_.retry;
      while (deps_.clock.steadyNow() < until) {
        if (!pause()) {
          return;
        }
        std::lock_guard lock(mutex_);
        if (run_now_) {
          break;  // asked for: the failed run, again now
        }
      }
      continue;
    }
    std::uint64_t people = 0;
    {
      std::lock_guard lock(mutex_);
      status_.running = false;
      status_.running_slot_ms = 0;
      status_.last_slot_ms = slot;
      status_.last_success_ms = ended;
      status_.last_duration_ms = ended - run_started;
      status_.last_people = people = status_.sent;
      status_.last_error.clear();
    }
    if (auto s = saveState(); !s.ok()) {
      deps_.logger.error("sync: cannot record the run's end (it will run again)",
                         {{"destination", destination_}, {"error", s.message()}});
    }
    runs_ok_.inc();
    progress_.set(0);
    duration_.set(static_cast<double>(ended - run_started) / 1000.0);
    last_success_.set(static_cast<double>(ended) / 1000.0);
    deps_.logger.info("sync: run delivered",
                      {{"destination", destination_}, {"slot", sdk::formatIsoTimestamp(slot)},
                       {"people", people}, {"duration_ms", ended - run_started}});
    if (const std::int64_t next = sync::nextRun(schedule_, slot); next <= ended) {
      overruns_.inc();
      {
        std::lock_guard lock(mutex_);
        ++status_.overruns;
      }
      deps_.logger.warn("sync: the run overran the next one's start; the next starts now",
                        {{"destination", destination_},
                         {"next_was_due", sdk::formatIsoTimestamp(next)},
                         {"duration_ms", ended - run_started}});
    }
    {
      std::lock_guard lock(mutex_);
      ++status_.runs;  // last: whoever sees the run counted sees its state and metrics too
    }
  }
}

ScheduledSync::RunResult ScheduledSync::run(std::int64_t slot, bool everyone) {
  auto fail = [&](std::string why) {
    std::lock_guard lock(mutex_);
    status_.last_error = std::move(why);
    return RunResult::Failed;
  };
  profiles::ProfileStore& store = deps_.profiles.store();
  const std::string source = sourceId();
  const std::string id_prefix = "sync-" + destination_ + "-" + std::to_string(slot) + "-";

  // Pages emitted and not yet past the destination's cursor, oldest first.
  struct Page {
    queue::Offset end = 0;  // the queue's end once the page was durable
    std::vector<profiles::SyncMark> marks;
    std::size_t events = 0;
  };
  std::deque<Page> pending;
  std::size_t ahead = 0;
  auto settle = [&]() -> sdk::Status {
    auto worker = deps_.engine.worker(destination_);
    if (!worker) {
      return sdk::makeError(sdk::ErrorCode::Unavailable,
                            "destination '" + destination_ + "' is not running");
    }
    const queue::Offset cursor = worker->cursor();
    while (!pending.empty() && pending.front().end <= cursor) {
      Page& page = pending.front();
      if (!page.marks.empty()) {
        if (auto s = deps_.profiles.commitSyncDone(std::move(page.marks)); !s.ok()) {
          return s;
        }
      }
      ahead -= page.events;
      {
        std::lock_guard lock(mutex_);
        status_.settled += page.events;
      }
      pending.pop_front();
    }
    return {};
  };

  std::string after;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        return RunResult::Stopped;
      }
    }
    std::vector<std::string> ids;
    Page page;
    if (everyone) {
      auto read = store.profileIds(after, options_.page);
      if (!read) {
        return fail("reading the profiles: " + read.error().message);
      }
      ids = std::move(read).value();
      if (!ids.empty()) {
        // The marks of the people on this page go with it (read before their profiles are):
        // the next run sends only who changed after this one read them.
        auto marks = store.syncMarks(destination_, after, options_.page);
        if (!marks) {
          return fail("reading the sync marks: " + marks.error().message);
        }
        for (auto& m : *marks) {
          if (m.profile_id <= ids.back()) {
            page.marks.push_back(std::move(m));
          }
        }
      }
    } else {
      auto read = store.syncMarks(destination_, after, options_.page);
      if (!read) {
        return fail("reading the sync marks: " + read.error().message);
      }
      page.marks = std::move(read).value();
      for (const auto& m : page.marks) {
        ids.push_back(m.profile_id);
      }
    }
    if (ids.empty()) {
      break;
    }
    after = ids.back();
    std::vector<sdk::Event> events;
    events.reserve(ids.size());
    const std::int64_t now = deps_.clock.nowMs();
    for (const auto& id : ids) {
      auto profile = deps_.profiles.current(id);
      if (!profile) {
        return fail("reading profile " + id + ": " + profile.error().message);
      }
      if (!*profile) {
        continue;  // erased, merged into another (marked itself) or suppressed: its mark goes
      }
      auto event = deps_.profiles.identifyEvent(**profile, source, id_prefix + id, now,
                                                options_.audiences);
      if (!event) {
        deps_.logger.error("sync: a profile's event could not be made; it is not sent",
                           {{"destination", destination_}, {"profile", id},
                            {"error", event.error().message}});
        continue;
      }
      events.push_back(std::move(event).value());
    }
    page.events = events.size();
    if (!events.empty()) {
      // Emitted whole, durably, before the queue's end is read: every event of the page lies
      // below that end.
      while (true) {
        std::promise<sdk::EmitResult> answer;
        auto answered = answer.get_future();
        std::vector<sdk::Event> copy = events;  // kept for a retry when the disk is full
        deps_.ingest.emit(source, std::move(copy),
                          [&answer](sdk::EmitResult r) { answer.set_value(std::move(r)); });
        const sdk::EmitResult r = answered.get();
        if (r.status.ok()) {
          break;
        }
        if (r.status.error().code != sdk::ErrorCode::ResourceExhausted) {
          return fail("queueing the run's events: " + r.status.message());
        }
        const auto until = deps_.clock.steadyNow() +
                           std::max(r.retry_after, std::chrono::milliseconds(100));
        while (deps_.clock.steadyNow() < until) {
          if (!pause()) {
            return RunResult::Stopped;
          }
        }
      }
      auto worker = deps_.engine.worker(destination_);
      if (!worker) {
        return fail("destination '" + destination_ + "' is not running");
      }
      page.end = worker->sourceEnd();
    }
    ahead += page.events;
    people_.inc(page.events);
    {
      std::lock_guard lock(mutex_);
      status_.sent += page.events;
      progress_.set(static_cast<double>(status_.sent));
    }
    pending.push_back(std::move(page));
    if (auto s = settle(); !s.ok()) {
      return fail(s.message());
    }
    while (ahead > options_.max_ahead) {
      if (!pause()) {
        return RunResult::Stopped;
      }
      if (auto s = settle(); !s.ok()) {
        return fail(s.message());
      }
    }
  }
  while (!pending.empty()) {
    if (!pause()) {
      return RunResult::Stopped;
    }
    if (auto s = settle(); !s.ok()) {
      return fail(s.message());
    }
  }
  return RunResult::Done;
}

}  // namespace junction::core::daemon
