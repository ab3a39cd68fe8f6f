#pragma once

// Where profiles live. The engine reads through it and writes one Changes per batch of events,
// committed atomically with the queue offset the batch ends at: after a crash the batch is
// applied again from that offset, never twice, never skipped.
//
// Implementations: RocksDbProfileStore (embedded, the default), SqliteProfileStore
// (`backend: sqlite`) and PostgresProfileStore (`backend: postgres`, shared by several nodes).
// Thread-safe: the engine's thread writes, any thread reads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "junction/sdk/result.h"

namespace junction::core::profiles {

// What an operator runs when the profile store is lost or damaged.
inline constexpr std::string_view kRecoverProfilesCommand =
    "junction recover profiles --config FILE";

// A profile changed since a sync channel's last run (a destination in scheduled mode; the
// channel is the destination's id). `seq` is bumped by every sync_put of the same (channel,
// profile): a run clears what it sent with sync_done, which keeps a mark changed meanwhile.
struct SyncMark {
  std::string channel;
  std::string profile_id;
  std::int64_t seq = 0;
};

// One batch's writes.
struct Changes {
  std::vector<std::pair<std::string, std::string>> identities_put;  // key -> profile id
  std::vector<std::string> identities_deleted;
  std::vector<std::pair<std::string, std::string>> profiles_put;  // id -> serialized Profile
  std::vector<std::string> profiles_deleted;
  // Profiles whose change is to be announced (a profile-change event) at or after a time; an
  // id already waiting keeps its earlier time (changes within the window coalesce).
  std::vector<std::pair<std::string, std::int64_t>> outbox_put;
  std::vector<std::string> outbox_deleted;
  // Entries announced: deleted only if no change came since they were read (same seq).
  std::vector<std::pair<std::string, std::int64_t>> outbox_done;
  // Sync marks, applied after the outbox in this order: deleted, done, put (a mark deleted and
  // put again in one commit starts over at seq 0; each further put adds 1 to its seq).
  // (channel, profile id): changed since the channel's last run
  std::vector<std::pair<std::string, std::string>> sync_put;
  std::vector<std::pair<std::string, std::string>> sync_deleted;  // (channel, profile id)
  std::vector<SyncMark> sync_done;  // delete only if seq unchanged
  std::optional<std::uint64_t> applied;  // the queue offset applied up to

  bool empty() const {
    return identities_put.empty() && identities_deleted.empty() && profiles_put.empty() &&
           profiles_deleted.empty() && outbox_put.empty() && outbox_deleted.empty() &&
           outbox_done.empty() && sync_put.empty() && sync_deleted.empty() &&
           sync_done.empty() && !applied;
  }
};

// What `junction recover profiles` copied out of a damaged embedded store into a new one.
struct Salvage {
  std::uint64_t profiles = 0;
  std::uint64_t identities = 0;
  std::uint64_t outbox = 0;
  std::uint64_t sync_marks = 0;
  bool complete = true;                  // every record read (nothing unreadable met)
  std::optional<std::uint64_t> applied;  // the damaged store's offset (reported, not kept)
};

struct OutboxEntry {
  std::string profile_id;
  std::int64_t due_ms = 0;
  std::int64_t seq = 0;  // bumped by every change recorded while the entry waits
};

class ProfileStore {
 public:
  virtual ~ProfileStore() = default;

  // The profile an identifier key ("user:42") belongs to.
  virtual sdk::Result<std::optional<std::string>> findIdentity(const std::string& key) = 0;
  // A profile's serialized form.
  virtual sdk::Result<std::optional<std::string>> loadProfile(const std::string& id) = 0;
  virtual sdk::Status commit(const Changes& changes) = 0;
  // The queue offset applied up to (0 before the first commit).
  virtual sdk::Result<std::uint64_t> appliedOffset() = 0;
  // Entries due at `now_ms`, the earliest first, at most `limit`.
  virtual sdk::Result<std::vector<OutboxEntry>> dueOutbox(std::int64_t now_ms,
                                                          std::size_t limit) = 0;
  virtual sdk::Result<std::uint64_t> profileCount() = 0;

  // Sync marks (Changes::sync_*), for the runner of scheduled syncs. Any thread; each call reads
  // committed marks, a page need not be one snapshot with the next.
  //
  // The channel's marks with a profile id after `after_profile_id` ("" = from the start), in
  // profile-id order (bytes), at most `limit`. A page is one index range read, whatever the
  // number of marks before it: page on with the last id returned.
  virtual sdk::Result<std::vector<SyncMark>> syncMarks(const std::string& channel,
                                                       const std::string& after_profile_id,
                                                       std::size_t limit) = 0;
  // The number of the channel's marks (counted: proportional to them).
  virtual sdk::Result<std::uint64_t> syncMarkCount(const std::string& channel) = 0;
  // Every profile id after `after` ("" = from the start), in id order, at most `limit` (a
  // channel's first run sends everyone).
  virtual sdk::Result<std::vector<std::string>> profileIds(const std::string& after,
                                                           std::size_t limit) = 0;
  // Deletes all of a channel's marks (a destination no longer scheduled). Idempotent.
  virtual sdk::Status dropSyncChannel(const std::string& channel) = 0;

  // The reads of one batch, made by the calling thread between beginBatch() and endBatch(),
  // may share one snapshot (nothing else writes meanwhile): an implementation can then skip
  // a transaction per lookup. Optional.
  virtual void beginBatch() {}
  virtual void endBatch() {}
  // True when nothing but this process's engine writes the store (embedded stores): the engine
  // may then keep what it committed in memory and skip reading it back.
  virtual bool exclusiveWriter() const { return false; }
  // Bytes the store takes (file sizes, or the relations' sizes).
  virtual std::uint64_t sizeBytes() = 0;
  virtual std::string describe() const = 0;  // "SQLite /data/profiles.db"
};

}  // namespace junction::core::profiles
