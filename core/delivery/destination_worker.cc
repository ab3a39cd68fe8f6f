#include "core/delivery/destination_worker.h"

#include <algorithm>

#include "core/runtime/thread.h"

namespace junction::core::delivery {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kReadRecords = 1024;
constexpr std::size_t kReadBytes = 4 << 20;
constexpr std::size_t kReplayTake = 500;
constexpr milliseconds kDeadLetterRetry{5000};  // when the DLQ itself cannot be written
// junction_delivery_latency_seconds: from milliseconds (a live stream) to a day (a long outage).
constexpr double kDeliveryLatencyBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                              2.5,   5,    10,    30,   60,  300,  900, 3600,
                                              21600, 86400};

// Cursor commits (offset, delivered count, finished ranges) at most this often: the cursor
// store publishes them to cursors.fast at about the same pace.
constexpr milliseconds kCommitInterval{5};
}  // namespace

DestinationWorker::DestinationWorker(const config::ConnectorConfig& config,
                                     std::shared_ptr<sdk::Destination> plugin, WorkerDeps deps,
                                     WorkerLimits limits)
    : id_(config.id),
      config_(config),
      plugin_(std::move(plugin)),
      deps_(deps),
      limits_(limits),
      policy_(RoutePolicy::fromConfig(
          config, deps.privacy != nullptr ? deps.privacy->aliases() : privacy::ConsentAliases{})),
      pii_(config.hash, config.drop),
      backoff_(config.retry.initial_backoff, config.retry.max_backoff),
      bucket_(config.rate_limit.per_second, static_cast<double>(config.rate_limit.burst)),
      throttle_(deps.throttle != nullptr ? deps.throttle : std::make_shared<AccountThrottle>()),
      ordered_(config.ordering != "none"),
      routed_(deps.metrics.counter(
          "junction_events_routed_total",
          "Events the destination took up from the queue or a dead-letter replay; each ends as "
          "delivered, dead-lettered, filtered or consent-blocked, or is pending",
          {{"destination", id_}})),
      delivered_(deps.metrics.counter("junction_events_delivered_total",
                                      "Events the destination accepted", {{"destination", id_}})),
      retried_(deps.metrics.counter("junction_events_retried_total",
                                    "Delivery attempts that ended in a retry",
                                    {{"destination", id_}})),
      dead_lettered_(deps.metrics.counter("junction_events_dead_lettered_total",
                                          "Events moved to the dead-letter queue",
                                          {{"destination", id_}})),
      faults_(deps.metrics.counter("junction_plugin_faults_total",
                                   "Exceptions that escaped a plugin call",
                                   {{"destination", id_}})),
      batches_total_(deps.metrics.counter("junction_destination_batches_total",
                                          "Plugin deliver() calls", {{"destination", id_}})),
      batch_seconds_(deps.metrics.histogram("junction_destination_batch_duration_seconds",
                                            "Time of one deliver() call", {},
                                            {{"destination", id_}})),
      backlog_bytes_(deps.metrics.gauge("junction_queue_backlog_bytes",
                                        "Queue bytes not yet finished by the destination",
                                        {{"destination", id_}})),
      oldest_age_(deps.metrics.gauge("junction_queue_oldest_undelivered_age_seconds",
                                     "Age of the oldest event the destination has not finished",
                                     {{"destination", id_}})),
      delivery_latency_(deps.metrics.histogram(
          "junction_delivery_latency_seconds",
          "Time from an event's acceptance by the daemon to its delivery, per destination",
          kDeliveryLatencyBuckets, {{"destination", id_}})),
      window_gauge_(deps.metrics.gauge("junction_destination_pending_events",
                                       "Events read and not yet finished (delivering or waiting)",
                                       {{"destination", id_}})),
      in_flight_gauge_(deps.metrics.gauge("junction_destination_in_flight_events",
                                          "Events in a plugin call now", {{"destination", id_}})),
      adaptive_rate_gauge_(deps.metrics.gauge(
          "junction_destination_adaptive_rate",
          "Plugin calls per second allowed after the vendor limited the account (0 = unlimited)",
          {{"destination", id_}})),
      metrics_(deps.metrics) {}

DestinationWorker::~DestinationWorker() { stop(); }

sdk::Status DestinationWorker::start() {
  auto stored = deps_.source.stored(id_);
  if (stored) {
    read_pos_ = stored->offset;
    durable_delivered_ = stored->delivered;
    committed_state_ = *stored;
    skip_ = stored->done;
  } else {
    read_pos_ = config_.start == "earliest" ? deps_.source.begin() : deps_.source.end();
    // Persisted now, not at the next coalesced flush: with `start: latest`, a crash before that
    // flush would make the restart start at the then-latest offset and skip every event
    // acknowledged in between.
    if (auto s = deps_.source.commit(id_, read_pos_); !s.ok()) {
      return s;
    }
    if (auto s = deps_.source.flush(); !s.ok()) {
      return s;
    }
  }
  committed_.store(read_pos_);
  progress_at_ms_.store(deps_.clock.nowMs());
  committed_state_.offset = read_pos_;
  stat_read_.store(read_pos_);
  replay_signal_ = deps_.dead_letters.hasReplays(id_);
  started_ = true;
  const queue::Offset from = read_pos_;  // read_pos_ is the dispatcher's from now on
  dispatcher_ = std::thread([this] {
    runtime::makeThisThreadBackground();  // before the name: a named thread is settled
    runtime::nameThisThread("jn-dispatch-" + id_);
    dispatcherLoop();
  });
  for (std::int64_t i = 0; i < std::max<std::int64_t>(1, config_.concurrency); ++i) {
    deliverers_.emplace_back([this] {
      runtime::makeThisThreadBackground();  // before the name: a named thread is settled
      runtime::nameThisThread("jn-deliver-" + id_);
      deliveryLoop();
    });
  }
  deps_.logger.info("delivering", {{"destination", id_}, {"from_offset", from},
                                   {"concurrency", config_.concurrency}});
  return {};
}

void DestinationWorker::stop() {
  if (!started_ || stopped_) {
    return;
  }
  stopped_ = true;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  dispatcher_.join();
  {
    std::lock_guard lock(batch_mutex_);
    closing_ = true;
  }
  batch_ready_.notify_all();
  for (auto& t : deliverers_) {
    t.join();
  }
  std::lock_guard lock(start_mutex_);
  if (plugin_started_) {
    try {
      plugin_->stop();
    } catch (...) {
      faults_.inc();
    }
  }
}

void DestinationWorker::notifyAppend() {
  {
    std::lock_guard lock(mutex_);
    append_signal_ = true;
  }
  wake_.notify_one();
}

void DestinationWorker::notifyReplay() {
  {
    std::lock_guard lock(mutex_);
    replay_signal_ = true;
  }
  wake_.notify_one();
}

void DestinationWorker::setPaused(bool paused) {
  if (paused_.exchange(paused) == paused) {
    return;
  }
  if (!paused) {
    progress_at_ms_.store(deps_.clock.nowMs());  // the pause was not a stall
  }
  deps_.logger.info(paused ? "destination paused" : "destination resumed", {{"destination", id_}});
  notifyAppend();  // the dispatcher looks again
}

DestinationWorker::Stats DestinationWorker::stats() const {
  Stats s;
  s.window_events = stat_window_.load();
  s.in_flight = stat_in_flight_.load();
  s.delivered = stat_delivered_.load();
  s.dead_lettered = stat_dead_.load();
  s.read_position = stat_read_.load();
  s.oldest_received_ms = stat_oldest_ms_.load();
  s.last_success_ms = last_success_ms_.load();
  s.retrying = stat_retrying_.load();
  std::lock_guard lock(error_mutex_);
  s.last_error_ms = last_error_ms_;
  s.last_error = last_error_;
  return s;
}

// --- dispatcher -----------------------------------------------------------------------------

void DestinationWorker::dispatcherLoop() {
  for (;;) {
    std::vector<std::unique_ptr<Batch>> completed;
    bool stopping = false;
    bool replay = false;
    {
      std::lock_guard lock(mutex_);
      completed.swap(completed_);
      stopping = stopping_;
      replay = replay_signal_;
      replay_signal_ = false;
      append_signal_ = false;
    }
    for (auto& batch : completed) {
      complete(*batch);
    }
    if (stopping) {
      if (in_flight_batches_ == 0) {
        break;
      }
    } else {
      if (deps_.privacy != nullptr &&
          deps_.privacy->deletionGeneration() != deletion_generation_) {
        deletion_generation_ = deps_.privacy->deletionGeneration();
        purgeDeleted();
      }
      if (replay) {
        takeReplays();
      }
      bool more_to_read = fillWindow();
      auto now = SteadyClock::now();
      auto next_wake = dispatch(now);
      advanceCursor();
      if (commit_pending_ && (!next_wake || next_commit_ < *next_wake)) {
        next_wake = next_commit_;  // commit what finished, even if nothing else happens
      }
      if (more_to_read && window_.size() < limits_.max_window_events &&
          window_bytes_ < limits_.max_window_bytes) {
        continue;  // keep reading without sleeping
      }
      std::unique_lock lock(mutex_);
      auto ready = [&] {
        return stopping_ || !completed_.empty() || append_signal_ || replay_signal_;
      };
      if (next_wake) {
        wake_.wait_until(lock, *next_wake, ready);
      } else {
        wake_.wait(lock, ready);
      }
      continue;
    }
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] { return !completed_.empty(); });
  }
  advanceCursor(/*force=*/true);
  (void)deps_.source.flush();
}

bool DestinationWorker::fillWindow() {
  while (window_.size() < limits_.max_window_events && window_bytes_ < limits_.max_window_bytes &&
         read_pos_ < deps_.source.end()) {
    const std::size_t room = limits_.max_window_events - window_.size();
    auto batch = deps_.source.read(read_pos_, std::min(kReadRecords, room), kReadBytes);
    const auto now = SteadyClock::now();
    if (!batch) {
      deps_.logger.error("queue read failed", {{"destination", id_}, {"offset", read_pos_},
                                               {"error", batch.error().message}});
      return false;
    }
    // People's slots are cache misses in a large window: compute keys first, load ahead.
    constexpr std::size_t kAhead = 8;
    keys_.clear();
    for (const auto& record : batch->records) {
      keys_.push_back(personKeyOf(record.event));
    }
    for (std::size_t i = 0; i < batch->records.size(); ++i) {
      auto& record = batch->records[i];
      if (i + kAhead < keys_.size()) {
        persons_.prefetch(keys_[i + kAhead]);
      }
      if (skip_at_ < skip_.size()) {
        while (skip_at_ < skip_.size() && skip_[skip_at_].second <= record.offset) {
          ++skip_at_;
        }
        if (skip_at_ < skip_.size() && skip_[skip_at_].first <= record.offset) {
          continue;  // finished before the restart: not delivered again
        }
      }
      routed_.inc();
      if (skipDeleted(record.event)) {
        continue;
      }
      RouteVerdict verdict = policy_.decide(record.event, deps_.privacy);
      if (verdict != RouteVerdict::Deliver) {
        const char* name = isConsentVerdict(verdict) ? "junction_events_consent_blocked_total"
                                                      : "junction_events_filtered_total";
        metrics_
            .counter(name,
                     isConsentVerdict(verdict)
                         ? "Events not delivered because the person's consent does not allow it"
                         : "Events not delivered because the destination's filters exclude them",
                     {{"destination", id_}, {"reason", reasonOf(verdict)}})
            .inc();
        if (deps_.tap != nullptr && deps_.tap->active()) {
          deps_.tap->decided(record.event, id_,
                             isConsentVerdict(verdict) ? "consent_blocked" : "filtered",
                             reasonOf(verdict));
        }
        if (isConsentVerdict(verdict)) {
          deps_.logger.debug("consent blocked", {{"destination", id_},
                                                 {"messageId", record.event.messageId()},
                                                 {"reason", reasonOf(verdict)}});
        }
        continue;
      }
      Entry& entry = window_.emplace_back();  // a deque: entries never move
      entry.offset = record.offset;
      entry.received_at_ms = record.event.header().received_at_ms;
      entry.person = keys_[i];
      // PII controls (hash, drop) before anything leaves the core; dead letters keep this form.
      if (pii_.empty()) {
        entry.event.emplace(std::move(record.event));
      } else {
        entry.event.emplace(pii_.apply(record.event));
      }
      entry.bytes = entry.event->json().size() + 64;
      addEntry(entry, now);
    }
    const bool stuck = batch->records.empty() && batch->next == read_pos_;
    read_pos_ = batch->next;
    stat_read_.store(read_pos_);
    if (stuck) {
      break;
    }
  }
  return read_pos_ < deps_.source.end();
}

void DestinationWorker::takeReplays() {
  auto rows = deps_.dead_letters.takeReplays(id_, kReplayTake);
  const auto now = SteadyClock::now();
  if (!rows) {
    deps_.logger.error("dead-letter replay failed", {{"destination", id_}, {"error", rows.error().message}});
    return;
  }
  for (auto& row : *rows) {
    routed_.inc();
    if (skipDeleted(row.event)) {
      (void)deps_.dead_letters.replayed(row.id);  // the person was deleted: drop the row
      continue;
    }
    auto entry = std::make_unique<Entry>();
    entry->dead_letter_id = row.id;
    entry->bytes = row.event.json().size() + 64;
    entry->received_at_ms = row.event.header().received_at_ms;
    entry->person = personKeyOf(row.event);
    entry->event = std::move(row.event);
    Entry& added = *entry;
    replays_.emplace(added.dead_letter_id, std::move(entry));
    addEntry(added, now);
  }
  if (rows->size() == kReplayTake) {
    std::lock_guard lock(mutex_);
    replay_signal_ = true;  // more to take next round
  }
  if (!rows->empty()) {
    deps_.logger.info("replaying dead letters", {{"destination", id_}, {"count", rows->size()}});
  }
}

// Events of a deleted person received up to the deletion are never delivered (the queue is
// append-only: the tombstone stands in for removing them).
bool DestinationWorker::skipDeleted(const sdk::Event& event) {
  if (deps_.privacy == nullptr || !deps_.privacy->hasDeletions() ||
      !deps_.privacy->isDeleted(event)) {
    return false;
  }
  metrics_
      .counter("junction_events_filtered_total",
               "Events not delivered because the destination's filters exclude them",
               {{"destination", id_}, {"reason", "deleted"}})
      .inc();
  if (deps_.tap != nullptr && deps_.tap->active()) {
    deps_.tap->decided(event, id_, "filtered", "deleted");
  }
  deps_.logger.debug("deleted person's event skipped",
                     {{"destination", id_}, {"messageId", event.messageId()}});
  return true;
}

DestinationWorker::PersonKey DestinationWorker::personKeyOf(const sdk::Event& event) noexcept {
  if (!ordered_) {
    // A fresh key per entry, multiplied by an odd constant (a bijection: still unique): the
    // table hashes by the key's low bits with linear probing, and sequential keys would fill
    // one contiguous run of slots that every erase walks (quadratic in the window: 51 us an
    // event at a 50,000-event window, seen in warehouse_bench).
    return (next_unordered_key_++) * 0x9E3779B97F4A7C15ull;
  }
  return std::hash<std::string_view>{}(event.header().personKey());  // well mixed (murmur)
}

// A delete arrived: finish the events of deleted people already in the window that are not in a
// plugin call (one in a call finishes normally), and reschedule the people concerned.
void DestinationWorker::purgeDeleted() {
  const auto now = SteadyClock::now();
  std::vector<PersonKey> affected;
  std::vector<std::int64_t> replay_ids;
  persons_.forEach([&](PersonKey key, Person& person) {
    bool any = false;
    for (Entry* e = person.entries.front(); e != nullptr; e = e->next_of_person) {
      if (!e->done && e->event && skipDeleted(*e->event)) {
        if (e->dead_letter_id != 0) {
          (void)deps_.dead_letters.replayed(e->dead_letter_id);
          replay_ids.push_back(e->dead_letter_id);
        }
        finish(*e);
        any = true;
      }
    }
    if (any) {
      affected.push_back(key);
    }
  });
  if (affected.empty()) {
    return;
  }
  std::erase_if(ready_, [&](PersonKey k) {
    return std::find(affected.begin(), affected.end(), k) != affected.end();
  });
  for (PersonKey key : affected) {
    Person& person = *persons_.find(key);
    person.queued = false;
    person.entries.erase_if([](const Entry* e) { return e->done; });
    if (person.entries.empty() && !person.busy) {
      persons_.erase(key);
    } else {
      schedule(person, key, now);
    }
  }
  if (ready_.empty()) {
    ready_since_.reset();
  }
  for (auto id : replay_ids) {
    replays_.erase(id);
  }
}

void DestinationWorker::addEntry(Entry& entry, SteadyClock::time_point now) {
  window_bytes_ += entry.bytes;
  stat_window_.fetch_add(1);
  Person& person = *persons_.tryEmplace(entry.person).first;
  person.entries.push_back(&entry);
  if (!person.busy && person.entries.size() == 1) {
    schedule(person, entry.person, now);
  }
}

void DestinationWorker::schedule(Person& person, PersonKey key, SteadyClock::time_point now) {
  if (person.busy || person.entries.empty() || person.queued) {
    return;
  }
  const Entry* head = person.entries.front();
  if (head->ready_at <= now) {
    person.queued = true;
    if (ready_.empty() && !ready_since_) {
      ready_since_ = now;
    }
    ready_.push_back(key);
  } else {
    waiting_.emplace(head->ready_at, key);
  }
}

void DestinationWorker::promoteWaiting(SteadyClock::time_point now) {
  while (!waiting_.empty() && waiting_.top().first <= now) {
    const PersonKey key = waiting_.top().second;
    waiting_.pop();
    if (Person* person = persons_.find(key)) {
      schedule(*person, key, now);  // ignores stale heap entries
    }
  }
}

std::optional<SteadyClock::time_point> DestinationWorker::dispatch(SteadyClock::time_point now) {
  if (paused_.load()) {
    return std::nullopt;  // setPaused(false) wakes the dispatcher
  }
  promoteWaiting(now);
  std::optional<SteadyClock::time_point> wake;
  auto wakeAt = [&](SteadyClock::time_point t) { wake = wake ? std::min(*wake, t) : t; };
  const auto concurrency = static_cast<std::size_t>(std::max<std::int64_t>(1, config_.concurrency));
  const auto max_events = static_cast<std::size_t>(config_.batch.max_events);
  const bool caught_up = read_pos_ >= deps_.source.end();

  while (in_flight_batches_ < concurrency && !ready_.empty()) {
    // Wait a little for a fuller batch while the reader is caught up (batch.max_wait).
    if (caught_up && ready_since_ && config_.batch.max_wait.count() > 0) {
      const std::size_t ready_events = ready_.size();
      // Waiting only helps if new people may arrive. When the window already holds later events
      // of the ready people (a backlog of few people), waiting cannot fill the batch: it would
      // just cap delivery at (people / max_wait) events per second.
      const std::size_t window = stat_window_.load();
      const std::size_t queued = window - std::min(window, stat_in_flight_.load());
      auto deadline = *ready_since_ + config_.batch.max_wait;
      if (ready_events < max_events && queued <= ready_events && now < deadline) {
        wakeAt(deadline);
        break;
      }
    }
    std::size_t cap = std::min(max_events, bucket_.capacity());
    std::size_t tokens = bucket_.available(now);
    if (tokens == 0) {
      wakeAt(now + std::max(milliseconds(1), bucket_.untilOne(now)));
      break;
    }
    cap = std::min(cap, tokens);
    // The vendor limits the whole account (the plugin said so): pause, then a lower call rate.
    if (auto at = throttle_->nextCallAt(now); at > now) {
      adaptive_rate_gauge_.set(throttle_->rate().value_or(0.0));
      wakeAt(at);
      break;
    }
    // One event per person per call: if a person's event is retried, none of their later events
    // can have reached the vendor before it (strict per-person order).
    auto batch = std::make_unique<Batch>();
    batch->entries.reserve(std::min(cap, ready_.size()));
    batch->events.reserve(std::min(cap, ready_.size()));
    std::size_t bytes = 0;
    while (!ready_.empty() && batch->entries.size() < cap) {
      if (ready_.size() > 8) {
        persons_.prefetch(ready_[8]);
      }
      Person& person = *persons_.find(ready_.front());
      Entry* entry = person.entries.front();
      if (!batch->entries.empty() && bytes + entry->bytes > config_.batch.max_bytes) {
        break;
      }
      bytes += entry->bytes;
      ++entry->attempts;
      batch->events.push_back(std::move(*entry->event));
      entry->event.reset();
      batch->entries.push_back(entry);
      person.busy = true;
      person.queued = false;
      ready_.pop_front();
    }
    if (ready_.empty()) {
      ready_since_.reset();
    } else {
      ready_since_ = now;
    }
    if (batch->entries.empty()) {
      break;
    }
    bucket_.consume(batch->entries.size());
    throttle_->take(now);
    if (throttle_->signals() != 0) {
      adaptive_rate_gauge_.set(throttle_->rate().value_or(0.0));
    }
    ++in_flight_batches_;
    stat_in_flight_.fetch_add(batch->entries.size());
    {
      std::lock_guard lock(batch_mutex_);
      batches_.push_back(std::move(batch));
    }
    batch_ready_.notify_one();
  }
  if (!waiting_.empty()) {
    wakeAt(waiting_.top().first);
  }
  return wake;
}

void DestinationWorker::complete(Batch& batch) {
  --in_flight_batches_;
  stat_in_flight_.fetch_sub(batch.entries.size());
  batches_total_.inc();
  batch_seconds_.observe(std::chrono::duration<double>(SteadyClock::now() - batch.started).count());
  const auto now = SteadyClock::now();
  const std::int64_t now_ms = deps_.clock.nowMs();
  std::vector<Entry*> to_dead;
  std::vector<std::string> dead_reasons;
  std::uint64_t delivered = 0;
  std::string error_reason;  // the batch's last retry or failure, for the status API
  for (std::size_t i = 0; i < batch.entries.size(); ++i) {
    Entry& entry = *batch.entries[i];
    const sdk::Outcome& outcome = batch.outcomes[i];
    if (outcome.kind != sdk::Outcome::Kind::Delivered) {
      error_reason = outcome.reason.empty() ? "no reason given" : outcome.reason;
    }
    if (outcome.kind != sdk::Outcome::Kind::Delivered) {
      entry.event = std::move(batch.events[i]);  // kept for a retry or a dead letter
    }
    switch (outcome.kind) {
      case sdk::Outcome::Kind::Delivered:
        ++delivered;
        entry.delivered = true;
        if (deps_.tap != nullptr && deps_.tap->active()) {
          deps_.tap->decided(batch.events[i], id_, "delivered");
        }
        if (entry.received_at_ms > 0) {
          delivery_latency_.observe(
              static_cast<double>(std::max<std::int64_t>(0, now_ms - entry.received_at_ms)) / 1000.0);
        }
        if (entry.dead_letter_id != 0) {
          ++durable_delivered_;  // not in the main log: counted now
          if (auto s = deps_.dead_letters.replayed(entry.dead_letter_id); !s.ok()) {
            deps_.logger.error("dead-letter store", {{"error", s.message()}});
          }
        }
        finish(entry);
        break;
      case sdk::Outcome::Kind::Retry: {
        retried_.inc();
        if (deps_.tap != nullptr && deps_.tap->active()) {
          deps_.tap->decided(*entry.event, id_, "retry", outcome.reason);
        }
        if (skipDeleted(*entry.event)) {
          // The person was deleted while this event was in a plugin call.
          if (entry.dead_letter_id != 0) {
            (void)deps_.dead_letters.replayed(entry.dead_letter_id);
          }
          finish(entry);
          break;
        }
        bool attempts_spent = entry.attempts >= config_.retry.max_attempts;
        bool too_old = entry.received_at_ms > 0 &&
                       now_ms - entry.received_at_ms > config_.retry.max_age.count();
        if (attempts_spent || too_old) {
          to_dead.push_back(&entry);
          dead_reasons.push_back((attempts_spent ? "retries exhausted after " +
                                                       std::to_string(entry.attempts) + " attempts"
                                                 : std::string("older than retry.max_age")) +
                                 ": " + outcome.reason);
        } else {
          entry.ready_at = now + backoff_.delay(entry.attempts, outcome.retry_after);
          if (!entry.retrying) {
            entry.retrying = true;
            stat_retrying_.fetch_add(1);
          }
        }
        break;
      }
      case sdk::Outcome::Kind::Failed:
        to_dead.push_back(&entry);
        dead_reasons.push_back(outcome.reason.empty() ? "failed" : outcome.reason);
        break;
    }
  }
  delivered_.inc(delivered);
  stat_delivered_.fetch_add(delivered);
  if (delivered > 0) {
    progress_at_ms_.store(now_ms);  // even while one event's retries hold the cursor
    last_success_ms_.store(now_ms);
  }
  if (!error_reason.empty()) {
    std::lock_guard lock(error_mutex_);
    last_error_ms_ = now_ms;
    last_error_ = std::move(error_reason);
  }
  if (!to_dead.empty()) {
    deadLetter(to_dead, dead_reasons);
  }
  // Release each person of the batch and schedule their next event.
  for (std::size_t i = 0; i < batch.entries.size(); ++i) {
    Entry* entry = batch.entries[i];
    if (i + 8 < batch.entries.size()) {
      persons_.prefetch(batch.entries[i + 8]->person);
    }
    Person* found = persons_.find(entry->person);
    if (found == nullptr) {
      continue;
    }
    Person& person = *found;
    if (!person.busy) {
      continue;  // already handled for an earlier entry of this person
    }
    person.busy = false;
    // Only a person's head is ever in a call, so finished entries are at the front. (Scanning the
    // whole queue here was quadratic for a backlog of few people.)
    while (!person.entries.empty() && person.entries.front()->done) {
      person.entries.pop_front();
    }
    if (person.entries.empty()) {
      persons_.erase(entry->person);
    } else {
      schedule(person, entry->person, now);
    }
  }
  // Free finished replay entries (main-log entries leave through advanceCursor).
  for (Entry* entry : batch.entries) {
    if (entry->done && entry->dead_letter_id != 0) {
      replays_.erase(entry->dead_letter_id);
    }
  }
}

void DestinationWorker::deadLetter(std::vector<Entry*>& entries, std::vector<std::string>& reasons) {
  const std::int64_t now_ms = deps_.clock.nowMs();
  std::vector<DeadLetter> rows;
  std::vector<Entry*> fresh;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Entry& e = *entries[i];
    if (e.dead_letter_id != 0) {
      // A replay that failed again goes back to dead with its new reason.
      if (auto s = deps_.dead_letters.failedAgain(e.dead_letter_id, e.attempts, reasons[i], now_ms);
          !s.ok()) {
        deps_.logger.error("dead-letter store", {{"error", s.message()}});
      }
      if (deps_.tap != nullptr && deps_.tap->active()) {
        deps_.tap->decided(*e.event, id_, "dead_lettered", reasons[i]);
      }
      dead_lettered_.inc();  // back in the dead-letter queue: the replay's routing ends here
      stat_dead_.fetch_add(1);
      finish(e);
      continue;
    }
    DeadLetter d;
    d.destination = id_;
    d.event = *e.event;
    d.failed_at_ms = now_ms;
    d.attempts = e.attempts;
    d.reason = reasons[i];
    rows.push_back(std::move(d));
    fresh.push_back(&e);
  }
  if (rows.empty()) {
    return;
  }
  if (auto s = deps_.dead_letters.add(rows); !s.ok()) {
    // Never drop: keep the events and try again later.
    deps_.logger.error("cannot write dead letters; keeping the events",
                       {{"destination", id_}, {"error", s.message()}});
    for (Entry* e : fresh) {
      e->ready_at = SteadyClock::now() + kDeadLetterRetry;
    }
    return;
  }
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    if (deps_.tap != nullptr && deps_.tap->active()) {
      deps_.tap->decided(*fresh[i]->event, id_, "dead_lettered", rows[i].reason);
    }
    dead_lettered_.inc();
    stat_dead_.fetch_add(1);
    progress_at_ms_.store(deps_.clock.nowMs());
    deps_.logger.warn("event dead-lettered", {{"destination", id_},
                                              {"messageId", fresh[i]->event->messageId()},
                                              {"attempts", fresh[i]->attempts},
                                              {"reason", rows[i].reason}});
    finish(*fresh[i]);
  }
}

void DestinationWorker::finish(Entry& entry) {
  entry.done = true;
  if (entry.retrying) {
    entry.retrying = false;
    stat_retrying_.fetch_sub(1);
  }
  cursor_dirty_ = true;
  if (entry.dead_letter_id == 0) {
    ++done_in_window_;
  }
  entry.event.reset();
  window_bytes_ -= entry.bytes;
  stat_window_.fetch_sub(1);
}

void DestinationWorker::advanceCursor(bool force) {
  while (!window_.empty() && window_.front().done) {
    durable_delivered_ += window_.front().delivered ? 1 : 0;
    --done_in_window_;
    window_.pop_front();
  }
  const queue::Offset low =
      std::max(window_.empty() ? read_pos_ : window_.front().offset, committed_.load());
  // Stored finished ranges the watermark has passed are done with.
  if (!skip_.empty() && skip_.front().second <= low) {
    std::size_t passed = 0;
    while (passed < skip_.size() && skip_[passed].second <= low) {
      ++passed;
    }
    skip_.erase(skip_.begin(), skip_.begin() + static_cast<std::ptrdiff_t>(passed));
    skip_at_ = skip_at_ > passed ? skip_at_ - passed : 0;
  }
  const auto now = SteadyClock::now();
  if (low != committed_state_.offset) {
    cursor_dirty_ = true;
  }
  commit_pending_ = false;
  if (!force && now < next_commit_) {
    commit_pending_ = cursor_dirty_;
  } else if (force || cursor_dirty_) {
    cursor_dirty_ = false;
    next_commit_ = now + kCommitInterval;
    queue::CursorState state{low, durable_delivered_, {}};
    std::uint64_t in_ranges = 0;
    state.done = doneRanges(low, in_ranges);
    state.delivered += in_ranges;
    if (!(state == committed_state_)) {
      if (auto s = deps_.source.commit(id_, state); s.ok()) {
        if (low > committed_.load()) {
          progress_at_ms_.store(deps_.clock.nowMs());
        }
        committed_.store(low);
        committed_state_ = std::move(state);
      } else {
        deps_.logger.error("cursor commit failed", {{"destination", id_}, {"error", s.message()}});
      }
    }
  }
  const queue::Offset end = deps_.source.end();
  backlog_bytes_.set(static_cast<double>(end > low ? end - low : 0));
  window_gauge_.set(static_cast<double>(stat_window_.load()));
  in_flight_gauge_.set(static_cast<double>(stat_in_flight_.load()));
  double age = 0;
  if (!window_.empty() && window_.front().received_at_ms > 0) {
    age = static_cast<double>(deps_.clock.nowMs() - window_.front().received_at_ms) / 1000.0;
  }
  stat_oldest_ms_.store(window_.empty() ? 0 : window_.front().received_at_ms);
  oldest_age_.set(std::max(0.0, age));
}

// Runs of finished entries above `low` in the window, as offset ranges (a run ends at the next
// unfinished entry, or at the read position: records between were filtered), merged with the
// stored ranges not yet passed. At most queue's limit of ranges; `delivered` counts the
// delivered window entries inside them.
std::vector<std::pair<queue::Offset, queue::Offset>> DestinationWorker::doneRanges(
    queue::Offset low, std::uint64_t& delivered) const {
  constexpr std::size_t kMaxRanges = 4096;
  std::vector<std::pair<queue::Offset, queue::Offset>> runs;
  delivered = 0;
  if (done_in_window_ > 0) {
    bool in_run = false;
    queue::Offset begin = 0;
    std::uint64_t run_delivered = 0;
    for (const Entry& e : window_) {
      if (e.done) {
        if (!in_run) {
          in_run = true;
          begin = e.offset;
          run_delivered = 0;
        }
        run_delivered += e.delivered ? 1 : 0;
      } else if (in_run) {
        runs.emplace_back(begin, e.offset);
        delivered += run_delivered;
        in_run = false;
        if (runs.size() == kMaxRanges) {
          break;
        }
      }
    }
    if (in_run && runs.size() < kMaxRanges) {
      runs.emplace_back(begin, read_pos_);
      delivered += run_delivered;
    }
  }
  if (skip_.empty()) {
    return runs;
  }
  // Stored ranges still above the watermark (their events were counted when stored), read past
  // already or not: a range the reader skipped is finished, but the watermark may still be
  // below it.
  std::vector<std::pair<queue::Offset, queue::Offset>> merged;
  std::vector<std::pair<queue::Offset, queue::Offset>> all = runs;
  for (const auto& range : skip_) {
    if (range.second > low) {
      all.emplace_back(std::max(range.first, low), range.second);
    }
  }
  std::sort(all.begin(), all.end());
  for (const auto& r : all) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else if (merged.size() < kMaxRanges) {
      merged.push_back(r);
    }
  }
  return merged;
}

// --- delivery threads -----------------------------------------------------------------------

void DestinationWorker::deliveryLoop() {
  for (;;) {
    std::unique_ptr<Batch> batch;
    {
      std::unique_lock lock(batch_mutex_);
      batch_ready_.wait(lock, [&] { return closing_ || !batches_.empty(); });
      if (batches_.empty()) {
        return;
      }
      batch = std::move(batches_.front());
      batches_.pop_front();
    }
    runPlugin(*batch);
    {
      std::lock_guard lock(mutex_);
      completed_.push_back(std::move(batch));
    }
    wake_.notify_one();
  }
}

void DestinationWorker::runPlugin(Batch& batch) {
  batch.started = SteadyClock::now();
  const std::size_t n = batch.events.size();
  auto allRetry = [&](std::string reason) {
    batch.outcomes.assign(n, sdk::Outcome::retry(std::move(reason)));
  };
  {
    std::lock_guard lock(start_mutex_);
    if (!plugin_started_) {
      sdk::Status started;
      try {
        started = plugin_->start();
      } catch (const std::exception& e) {
        faults_.inc();
        started = sdk::makeError(sdk::ErrorCode::Internal, std::string("start() threw: ") + e.what());
      } catch (...) {
        faults_.inc();
        started = sdk::makeError(sdk::ErrorCode::Internal, "start() threw an unknown exception");
      }
      if (!started.ok()) {
        deps_.logger.error("destination failed to start", {{"destination", id_},
                                                           {"error", started.message()}});
        allRetry("destination failed to start: " + started.message());
        return;
      }
      plugin_started_ = true;
    }
  }
  try {
    batch.outcomes = plugin_->deliver(batch.events);
  } catch (const std::exception& e) {
    faults_.inc();
    deps_.logger.error("deliver() threw", {{"destination", id_}, {"error", e.what()}});
    allRetry(std::string("deliver() threw: ") + e.what());
    return;
  } catch (...) {
    faults_.inc();
    allRetry("deliver() threw an unknown exception");
    return;
  }
  if (batch.outcomes.size() != n) {
    faults_.inc();
    deps_.logger.error("deliver() returned the wrong number of outcomes",
                       {{"destination", id_}, {"events", n}, {"outcomes", batch.outcomes.size()}});
    batch.outcomes.resize(n, sdk::Outcome::retry("the plugin returned no outcome for this event"));
  }
}

}  // namespace junction::core::delivery
