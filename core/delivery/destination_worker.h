#pragma once

// Delivers the queue to one destination: reads from its cursor, routes (source, filter,
// consent), batches, rate-limits, calls the plugin on `concurrency` threads, and acts on each
// event's outcome — done, retry with backoff, or dead letter.
//
// Per-person order: events of one person (userId, else anonymousId) are handed to the plugin in
// queue order, one per call and never in two concurrent calls, so an event cannot overtake an
// earlier one that is being retried; while a person's event waits for a retry, only that
// person's later events wait behind it. Everyone else flows. (A batch holds many people.)
// With `ordering: none` (a warehouse) there is no such rule: any events may share a batch.
//
// Delivered count: each main-log event finished as delivered is counted when the cursor passes
// it, and the count is committed with the cursor (queue::CursorState), so it is exact across
// crashes: an event redelivered after a crash is counted once. `junction warehouse verify` uses it.
//
// At least once: the cursor committed is the offset of the oldest event not yet finished (the
// low watermark of the delivery window), so after a crash everything past it is delivered again.
// The window is bounded (events and bytes): a destination that is down stops reading once its
// window is full — it never slows other destinations, which have their own workers.
//
// Threads: one dispatcher thread owns all state below; `concurrency` delivery threads only call
// the plugin and hand outcomes back. Public methods are thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/config/daemon_config.h"
#include "core/delivery/dead_letter_store.h"
#include "core/delivery/hash_table.h"
#include "core/delivery/pacing.h"
#include "core/delivery/route_policy.h"
#include "core/delivery/throttle.h"
#include "core/delivery/worker_source.h"
#include "core/privacy/pii.h"
#include "core/privacy/privacy_store.h"
#include "core/queue/cursor_store.h"
#include "core/queue/log.h"
#include "core/telemetry/event_tap.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"

namespace junction::core::delivery {

struct WorkerDeps {
  WorkerSource& source;  // the queue it reads and where its cursor goes (worker_source.h)
  DeadLetterStore& dead_letters;
  sdk::Metrics& metrics;  // the daemon's registry; the worker adds destination="<id>"
  sdk::Logger& logger;
  const sdk::Clock& clock;
  // Deletion tombstones, remembered consent and consent aliases; may be null (tests).
  const privacy::PrivacyStore* privacy = nullptr;
  // Account-wide throttling the plugin signals through its context; may be null (then the
  // worker keeps one of its own that nothing signals).
  std::shared_ptr<AccountThrottle> throttle = nullptr;
  // The live debugger's tap (decisions are published while someone watches); may be null.
  telemetry::EventTap* tap = nullptr;
};

struct WorkerLimits {
  std::size_t max_window_events = 50'000;
  std::size_t max_window_bytes = 64 << 20;
};

class DestinationWorker {
 public:
  DestinationWorker(const config::ConnectorConfig& config, std::shared_ptr<sdk::Destination> plugin,
                    WorkerDeps deps, WorkerLimits limits = {});
  ~DestinationWorker();
  DestinationWorker(const DestinationWorker&) = delete;
  DestinationWorker& operator=(const DestinationWorker&) = delete;

  // Positions the cursor (stored, else `start: latest|earliest`) and starts the threads.
  sdk::Status start();
  // Lets deliveries in flight finish, commits the cursor, stops the plugin. Idempotent.
  void stop();

  void notifyAppend();  // the log has new durable data
  void notifyReplay();  // dead letters were marked for replay

  const std::string& id() const noexcept { return id_; }
  // The committed low watermark: nothing before it is needed by this destination.
  queue::Offset cursor() const noexcept { return committed_.load(); }
  // Where the worker's source ends now (thread-safe): cursor() below it means events wait.
  queue::Offset sourceEnd() const { return deps_.source.end(); }
  // When the worker last made progress, clock ms: its committed cursor moved forward, or events
  // were delivered or dead-lettered (one event in retries holds the cursor, not the rest), or
  // it started.
  std::int64_t progressAtMs() const noexcept { return progress_at_ms_.load(); }

  // Paused: no new plugin call starts (calls in flight finish); events keep being read into the
  // bounded window and wait, like an outage of the vendor. Resuming starts calls at once.
  void setPaused(bool paused);
  bool paused() const noexcept { return paused_.load(); }

  struct Stats {
    std::size_t window_events = 0;  // read and not yet finished
    std::size_t in_flight = 0;      // in a plugin call now
    std::uint64_t delivered = 0;
    std::uint64_t dead_lettered = 0;
    queue::Offset read_position = 0;
    std::int64_t oldest_received_ms = 0;  // the oldest unfinished main-log event's; 0: none
    std::int64_t last_success_ms = 0;     // clock ms of the last call that delivered; 0: none
    std::int64_t last_error_ms = 0;       // of the last retry or failure; 0: none
    std::string last_error;               // its reason, as the plugin gave it
    std::int64_t retrying = 0;            // events waiting for a retry now
  };
  Stats stats() const;

 private:
  // A person (userId, else anonymousId) as a 64-bit hash of the key: cheap to store, compare and
  // look up. Two people whose keys collide are ordered as one, which is only stricter.
  using PersonKey = std::uint64_t;
  // With `ordering: none` every entry is a person of its own (a fresh key), so nothing waits
  // for anyone and a batch may hold several events of one person.
  PersonKey personKeyOf(const sdk::Event& event) noexcept;

  struct Entry {
    queue::Offset offset = 0;    // main log position (unused for replays)
    std::int64_t dead_letter_id = 0;  // != 0: a replayed dead letter
    std::optional<sdk::Event> event;  // empty while in a plugin call
    std::size_t bytes = 0;
    std::int64_t attempts = 0;
    std::int64_t received_at_ms = 0;
    std::chrono::steady_clock::time_point ready_at{};
    PersonKey person = 0;
    Entry* next_of_person = nullptr;  // the person's next entry (EntryList)
    bool done = false;
    bool delivered = false;  // done with a Delivered outcome (counted as the cursor passes)
    bool retrying = false;   // its last call ended in a retry (counted in stat_retrying_)
  };
  // A person's entries in queue order: a list threaded through the entries (no allocation per
  // person, O(1) at both ends).
  struct EntryList {
    Entry* head = nullptr;
    Entry* tail = nullptr;
    std::size_t count = 0;

    bool empty() const noexcept { return head == nullptr; }
    std::size_t size() const noexcept { return count; }
    Entry* front() const noexcept { return head; }
    void push_back(Entry* e) noexcept {
      e->next_of_person = nullptr;
      (tail != nullptr ? tail->next_of_person : head) = e;
      tail = e;
      ++count;
    }
    void pop_front() noexcept {
      head = head->next_of_person;
      if (head == nullptr) {
        tail = nullptr;
      }
      --count;
    }
    template <typename Pred>
    void erase_if(Pred pred) {
      Entry* e = head;
      head = tail = nullptr;
      count = 0;
      while (e != nullptr) {
        Entry* next = e->next_of_person;
        if (!pred(e)) {
          push_back(e);
        }
        e = next;
      }
    }
  };
  struct Person {
    EntryList entries;    // in queue order
    bool busy = false;    // some entry is in a plugin call
    bool queued = false;  // in ready_ (at most once)
  };
  struct Batch {
    std::vector<Entry*> entries;
    std::vector<sdk::Event> events;
    std::vector<sdk::Outcome> outcomes;
    std::chrono::steady_clock::time_point started{};
  };

  void dispatcherLoop();
  void deliveryLoop();
  bool fillWindow();
  void takeReplays();
  bool skipDeleted(const sdk::Event& event);
  void purgeDeleted();
  // `now`: when the caller read the entry (one clock read per read batch, not per event).
  void addEntry(Entry& entry, std::chrono::steady_clock::time_point now);
  void schedule(Person& person, PersonKey key, std::chrono::steady_clock::time_point now);
  void promoteWaiting(std::chrono::steady_clock::time_point now);
  std::optional<std::chrono::steady_clock::time_point> dispatch(std::chrono::steady_clock::time_point now);
  void complete(Batch& batch);
  void deadLetter(std::vector<Entry*>& entries, std::vector<std::string>& reasons);
  void finish(Entry& entry);
  // Commits the cursor (at most every kCommitInterval unless `force`): the low watermark, the
  // delivered count, and the finished ranges above the watermark (see queue::CursorState).
  void advanceCursor(bool force = false);
  // The finished ranges above `low`, and how many delivered events they hold.
  std::vector<std::pair<queue::Offset, queue::Offset>> doneRanges(queue::Offset low,
                                                                   std::uint64_t& delivered) const;
  void runPlugin(Batch& batch);

  const std::string id_;
  const config::ConnectorConfig& config_;
  std::shared_ptr<sdk::Destination> plugin_;
  WorkerDeps deps_;
  WorkerLimits limits_;
  RoutePolicy policy_;
  privacy::PiiTransform pii_;
  std::uint64_t deletion_generation_ = 0;  // of the privacy store, last rescanned
  Backoff backoff_;
  TokenBucket bucket_;
  std::shared_ptr<AccountThrottle> throttle_;

  // Signals into the dispatcher.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool append_signal_ = false;
  bool replay_signal_ = false;
  std::vector<std::unique_ptr<Batch>> completed_;

  // Batches handed to delivery threads.
  std::mutex batch_mutex_;
  std::condition_variable batch_ready_;
  std::deque<std::unique_ptr<Batch>> batches_;
  bool closing_ = false;

  // Dispatcher-only state.
  queue::Offset read_pos_ = 0;
  std::deque<Entry> window_;  // main-log entries in offset order (a deque: they never move)
  std::unordered_map<std::int64_t, std::unique_ptr<Entry>> replays_;
  HashTable<Person> persons_{1024};
  std::deque<PersonKey> ready_;
  const bool ordered_;                     // ordering: person
  PersonKey next_unordered_key_ = 1;       // ordering: none
  std::uint64_t durable_delivered_ = 0;    // counted as the cursor passed (CursorState::delivered)
  queue::CursorState committed_state_;
  std::size_t done_in_window_ = 0;         // main-log entries finished, not yet passed
  // Finished ranges from the stored cursor: read past without delivering again.
  std::vector<std::pair<queue::Offset, queue::Offset>> skip_;
  std::size_t skip_at_ = 0;
  std::chrono::steady_clock::time_point next_commit_{};
  bool commit_pending_ = false;  // a change waits for the next commit slot
  bool cursor_dirty_ = false;    // something finished or passed since the last commit
  std::vector<PersonKey> keys_;  // fillWindow's scratch
  using Waiting = std::pair<std::chrono::steady_clock::time_point, PersonKey>;
  std::priority_queue<Waiting, std::vector<Waiting>, std::greater<>> waiting_;
  std::size_t window_bytes_ = 0;
  std::size_t in_flight_batches_ = 0;
  std::optional<std::chrono::steady_clock::time_point> ready_since_;

  std::atomic<queue::Offset> committed_{0};
  std::atomic<std::int64_t> progress_at_ms_{0};
  std::atomic<std::size_t> stat_window_{0};
  std::atomic<std::size_t> stat_in_flight_{0};
  std::atomic<std::uint64_t> stat_delivered_{0};
  std::atomic<std::uint64_t> stat_dead_{0};
  std::atomic<queue::Offset> stat_read_{0};
  std::atomic<std::int64_t> stat_oldest_ms_{0};
  std::atomic<std::int64_t> stat_retrying_{0};
  std::atomic<std::int64_t> last_success_ms_{0};
  std::atomic<bool> paused_{false};
  mutable std::mutex error_mutex_;
  std::int64_t last_error_ms_ = 0;  // guarded by error_mutex_
  std::string last_error_;          // guarded by error_mutex_

  std::mutex start_mutex_;
  bool plugin_started_ = false;

  // Metrics.
  sdk::Counter& routed_;  // events this worker took up: each ends in exactly one other counter
  sdk::Counter& delivered_;
  sdk::Counter& retried_;
  sdk::Counter& dead_lettered_;
  sdk::Counter& faults_;
  sdk::Counter& batches_total_;
  sdk::Histogram& batch_seconds_;
  sdk::Gauge& backlog_bytes_;
  sdk::Gauge& oldest_age_;
  sdk::Histogram& delivery_latency_;
  sdk::Gauge& window_gauge_;
  sdk::Gauge& in_flight_gauge_;
  sdk::Gauge& adaptive_rate_gauge_;
  sdk::Metrics& metrics_;

  std::thread dispatcher_;
  std::vector<std::thread> deliverers_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace junction::core::delivery
