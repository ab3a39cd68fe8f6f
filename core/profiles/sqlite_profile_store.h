#pragma once

// The embedded profile store: SQLite in WAL mode, `storage.path/profiles.db`.
//
// Why SQLite: it is already in the daemon (privacy, dead letters), it gives atomic batches with
// the queue offset in the same transaction, readers that never block the writer (WAL), and
// point lookups by primary key in microseconds from its page cache; Debian ships it. RocksDB
// would be faster at write-heavy loads but adds a second storage engine to operate and back up.
//
// Tables: identities (key TEXT PRIMARY KEY, profile_id), profiles (id TEXT PRIMARY KEY, data
// TEXT: Profile::serialize()), outbox (profile_id PRIMARY KEY, due_ms), sync_marks (channel,
// profile_id, seq; PRIMARY KEY (channel, profile_id)), meta (applied offset).
// One writer connection (the engine's thread, under a mutex); reads go to a small pool of
// reader connections so that API lookups run in parallel with each other and with the writer.
//
// Damage: an existing file is checked (PRAGMA quick_check) at open; a damaged one, or a missing
// one that existed before (profiles.db.created says so), is refused with the file named and
// `junction recover profiles --config FILE`, never recreated silently.

#include <sqlite3.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/profiles/profile_store.h"

namespace junction::core::profiles {

class SqliteProfileStore final : public ProfileStore {
 public:
  // `dir` is storage.path.
  static sdk::Result<std::unique_ptr<SqliteProfileStore>> open(const std::string& dir);
  ~SqliteProfileStore() override;

  sdk::Result<std::optional<std::string>> findIdentity(const std::string& key) override;
  sdk::Result<std::optional<std::string>> loadProfile(const std::string& id) override;
  sdk::Status commit(const Changes& changes) override;
  sdk::Result<std::uint64_t> appliedOffset() override;
  sdk::Result<std::vector<OutboxEntry>> dueOutbox(std::int64_t now_ms, std::size_t limit) override;
  sdk::Result<std::uint64_t> profileCount() override;
  sdk::Result<std::vector<SyncMark>> syncMarks(const std::string& channel,
                                               const std::string& after_profile_id,
                                               std::size_t limit) override;
  sdk::Result<std::uint64_t> syncMarkCount(const std::string& channel) override;
  sdk::Result<std::vector<std::string>> profileIds(const std::string& after,
                                                   std::size_t limit) override;
  sdk::Status dropSyncChannel(const std::string& channel) override;
  std::uint64_t sizeBytes() override;
  bool exclusiveWriter() const override { return true; }  // storage.path is locked
  std::string describe() const override { return "SQLite " + file_; }
  void beginBatch() override;
  void endBatch() override;

  // What `junction recover profiles` could copy out of a damaged store into this (new) one:
  // each table is read in key order from both ends, so a damaged page loses only the rows
  // between the first and last unreadable key.
  using Salvage = profiles::Salvage;
  sdk::Result<Salvage> salvageFrom(const std::string& damaged_file);

  static std::string fileIn(const std::string& dir);
  static std::string markerIn(const std::string& dir);

 private:
  SqliteProfileStore(std::string file, sqlite3* writer);

  // A read-only connection with its two lookups prepared once.
  struct Reader {
    std::mutex mutex;
    sqlite3* db = nullptr;
    sqlite3_stmt* identity = nullptr;
    sqlite3_stmt* profile = nullptr;
    void close();
  };
  Reader& reader();
  sdk::Result<std::optional<std::string>> lookup(bool identity, const std::string& key);
  static sdk::Status openReader(const std::string& file, Reader& r);

  std::string file_;
  std::mutex writer_mutex_;
  sqlite3* writer_;
  std::array<Reader, 4> readers_;
  // The applier's reads between beginBatch() and endBatch(): one read transaction on its own
  // connection for the whole batch.
  Reader batch_reader_;
  std::atomic<std::thread::id> batch_thread_{};
};

}  // namespace junction::core::profiles
