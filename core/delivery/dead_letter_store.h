#pragma once

// The dead-letter queue: events a destination could not deliver (a permanent failure, or the
// retry budget spent), with the last reason, kept until replayed or purged.
//
// Stored in SQLite (WAL, synchronous=FULL): dead letters are rare, and operators need to list
// them by destination, time and person, and to replay or purge a selection — queries, not a log.
// Replay marks rows; the destination's worker takes marked rows back into its delivery window,
// deletes each row once delivered, and marks it dead again if it fails again. A crash mid-replay
// leaves rows marked, so they are replayed after restart (at least once).

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

struct sqlite3;

namespace junction::core::delivery {

struct DeadLetter {
  std::int64_t id = 0;  // assigned by the store
  std::string destination;
  sdk::Event event;
  std::int64_t failed_at_ms = 0;
  std::int64_t attempts = 0;
  std::string reason;
  bool replaying = false;
};

// Which rows an operation applies to; empty fields match everything.
struct DeadLetterFilter {
  std::string destination;
  std::string person;  // userId or anonymousId
  std::vector<std::int64_t> ids;
  std::int64_t since_ms = 0;  // failed_at >= since
  std::int64_t until_ms = 0;  // failed_at < until (0 = no bound)
  std::size_t limit = 0;      // list only; 0 = 1000
};

// Thread-safe (one connection behind a mutex).
class DeadLetterStore {
 public:
  // Opens (creating) the store. An existing file is checked first (SQLite's quick_check): a
  // damaged one is refused (Internal), naming the file, the damage and
  // `junction recover dead-letters`. With `must_exist` (the daemon ran here before), a missing
  // or empty file is refused the same way: its dead letters are lost, not "none".
  static sdk::Result<std::unique_ptr<DeadLetterStore>> open(const std::string& file,
                                                            bool must_exist = false);

  // What `junction recover dead-letters` found: the rows copied out of a damaged file (read
  // one by one, by id, so that a damaged page loses only the rows on it) and the ids that
  // could not be read.
  struct Salvage {
    std::size_t copied = 0;
    std::size_t unreadable = 0;
    std::int64_t max_id = 0;
  };
  // Copies every readable row of the damaged database `damaged` (opened read-only) into this
  // store, keeping ids, destinations, reasons and replay marks.
  sdk::Result<Salvage> salvageFrom(const std::string& damaged);
  ~DeadLetterStore();

  // Adds rows in one transaction; durable when it returns ok.
  sdk::Status add(std::vector<DeadLetter>& letters);
  sdk::Result<std::vector<DeadLetter>> list(const DeadLetterFilter& filter);
  // Marks matching rows for replay; returns how many.
  sdk::Result<std::size_t> markForReplay(const DeadLetterFilter& filter);
  // Deletes matching rows that are not being replayed; returns how many.
  sdk::Result<std::size_t> purge(const DeadLetterFilter& filter);

  // For the destination's worker: marked rows not yet taken (in id order), at most `limit`.
  // Rows taken are remembered in memory so they are not taken twice by this process.
  sdk::Result<std::vector<DeadLetter>> takeReplays(const std::string& destination,
                                                   std::size_t limit);
  // A replayed row was delivered: delete it.
  sdk::Status replayed(std::int64_t id);
  // A replayed row failed again: back to dead with the new reason.
  sdk::Status failedAgain(std::int64_t id, std::int64_t attempts, std::string_view reason,
                          std::int64_t failed_at_ms);

  sdk::Result<std::size_t> count(const std::string& destination);
  // True when some row of `destination` is marked for replay and not taken yet.
  bool hasReplays(const std::string& destination);

  // Nodes sharing the queue (queue.backend: nats) share their dead letters (SharedDeadLetters):
  // ids come from `reserve_ids` (the first of `n` consecutive ids no node uses), each change
  // made here is handed to `changed` once durable (rows added or updated, ids removed), and
  // this node replays only the rows `replays_here` names (the person's partition of the
  // destination is read here, so a replay keeps the person's order). Set before use.
  struct Sharing {
    std::function<sdk::Result<std::int64_t>(std::size_t n)> reserve_ids;
    std::function<void(const std::vector<DeadLetter>& rows,
                       const std::vector<std::int64_t>& removed)>
        changed;
    std::function<bool(const DeadLetter& row)> replays_here;
  };
  void share(Sharing sharing);
  // Another node's row as it was last written (its id, state included), or its removal:
  // applied here as is, not handed to `changed`.
  sdk::Status adopt(const DeadLetter& row);
  sdk::Status forget(std::int64_t id);
  // The largest id here; 0 when empty.
  sdk::Result<std::int64_t> maxId();

 private:
  explicit DeadLetterStore(sqlite3* db);
  sdk::Status exec(const char* sql);
  // Rows matching `sql` (a SELECT of kColumns) with `binds`. Under mutex_.
  sdk::Result<std::vector<DeadLetter>> select(const std::string& sql,
                                              const std::vector<std::string>& binds);
  // In one transaction: `before` (reads what the change is about to touch), then `sql` (an
  // UPDATE or DELETE) with `binds`; the rows changed. Under mutex_.
  sdk::Result<std::size_t> changeRows(const std::string& sql, const std::vector<std::string>& binds,
                                      std::string_view what, const std::function<sdk::Status()>& before);
  // The row `id`, if any. Under mutex_.
  std::optional<DeadLetter> rowById(std::int64_t id);
  std::string where(const DeadLetterFilter& filter, std::vector<std::string>& binds) const;

  sqlite3* db_;
  std::mutex mutex_;
  std::vector<std::int64_t> taken_;  // replay rows handed to workers in this process
  Sharing sharing_;                  // set before use
};

}  // namespace junction::core::delivery
