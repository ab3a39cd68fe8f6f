#pragma once

// The shared profile store (`profiles.backend: postgres`): PostgreSQL through libpq (Debian's
// libpq, the official client), so that several junctiond nodes can serve and update the same
// profiles. Same contract and the same semantics as SqliteProfileStore, statement for statement.
//
// Tables, in their own schema (`junction_profiles` unless told), created at open and versioned
// in `<schema>._migrations` (a store written by a newer junctiond is refused, never altered):
//   identities (key text PRIMARY KEY, profile_id text)   + index on profile_id
//   profiles   (id text PRIMARY KEY, data text)          Profile::serialize(), as written
//   outbox     (profile_id text PRIMARY KEY, due_ms bigint, seq bigint) + index on due_ms
//   sync_marks (channel text, profile_id text, seq bigint, PRIMARY KEY (channel, profile_id))
//              (version 2: an existing store gets it at the next open)
//   meta       (key text PRIMARY KEY, value bigint)      'applied': the queue offset (one, as
//                                                         in SQLite; per partition once nodes
//                                                         share one queue)
//
// Writes: commit() is one transaction that first takes a transaction-scoped advisory lock on a
// key fixed per schema, so commits of several nodes serialize (no deadlock between two batches
// upserting the same people in a different order, no lost seq increment). Each part of Changes
// is one statement over arrays (unnest), whatever the number of rows.
//
// Threads: any thread may call any method. The writer connection (commit, appliedOffset,
// dueOutbox, dropSyncChannel) is under a mutex; findIdentity/loadProfile/profileCount and the
// reads of sync marks and profile ids go to a pool of reader connections picked by thread,
// each under its own mutex, with their statements prepared once.
// A connection that broke (the server restarted) is reset on its next use, and a read, or a
// commit that failed before anything was written, is run again once on the new connection.
//
// Errors are sdk::ErrorCode::Unavailable, naming host:port/db as libpq reports them, never the
// DSN (it may hold a password).

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/profiles/profile_store.h"

namespace junction::core::profiles {

class PostgresProfileStore final : public ProfileStore {
 public:
  // Connects (the writer and the readers), creates or checks the schema. `dsn` is a libpq
  // connection string or URI (profiles.dsn); `schema` a PostgreSQL identifier.
  static sdk::Result<std::unique_ptr<PostgresProfileStore>> open(
      const std::string& dsn, const std::string& schema = "junction_profiles");
  ~PostgresProfileStore() override;

  sdk::Result<std::optional<std::string>> findIdentity(const std::string& key) override;
  sdk::Result<std::optional<std::string>> loadProfile(const std::string& id) override;
  sdk::Status commit(const Changes& changes) override;
  sdk::Result<std::uint64_t> appliedOffset() override;
  sdk::Result<std::vector<OutboxEntry>> dueOutbox(std::int64_t now_ms, std::size_t limit) override;
  sdk::Result<std::uint64_t> profileCount() override;
  // A page is a range of the primary key once the table has statistics (autovacuum analyzes
  // it as it grows); before, the planner may read the channel's marks and sort them.
  sdk::Result<std::vector<SyncMark>> syncMarks(const std::string& channel,
                                               const std::string& after_profile_id,
                                               std::size_t limit) override;
  sdk::Result<std::uint64_t> syncMarkCount(const std::string& channel) override;
  sdk::Result<std::vector<std::string>> profileIds(const std::string& after,
                                                   std::size_t limit) override;
  // One transaction under the commits' lock (no deadlock with a commit marking the channel).
  sdk::Status dropSyncChannel(const std::string& channel) override;
  // Other nodes may write: the engine reads every profile back from the store.
  bool exclusiveWriter() const override { return false; }
  std::uint64_t sizeBytes() override;
  std::string describe() const override { return describe_; }  // "PostgreSQL h:5432/db schema s"

  // The schema version this build writes (rows of `_migrations`): 1 the tables of SQLite's
  // first layout, 2 sync_marks.
  static constexpr int kSchemaVersion = 2;

  struct CommitParams;  // (postgres_profile_store.cc)

 private:
  // One libpq connection and the statements it has prepared. Not thread-safe: its owner's
  // mutex guards it.
  class Connection;
  struct Reader {
    std::mutex mutex;
    std::unique_ptr<Connection> conn;
  };

  PostgresProfileStore(std::string schema, std::string describe,
                       std::unique_ptr<Connection> writer);
  Reader& reader();
  sdk::Result<std::optional<std::string>> lookup(const char* statement, const std::string& key);
  // One attempt at a commit's transaction. `*retry` says whether it failed before anything was
  // sent that could have written (the connection was found broken at BEGIN).
  sdk::Status commitOnce(const Changes& c, const CommitParams& p, bool* retry);

  std::string schema_;
  std::string describe_;
  std::mutex writer_mutex_;
  std::unique_ptr<Connection> writer_;
  std::string begin_sql_;  // BEGIN, the advisory lock, the applied offset before the commit
  std::array<Reader, 4> readers_;
};

}  // namespace junction::core::profiles
