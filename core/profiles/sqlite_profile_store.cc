#include "core/profiles/sqlite_profile_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <thread>

#include "core/sqlite/statement.h"

namespace junction::core::profiles {

using sqlite::Statement;

namespace {

constexpr std::string_view kStore = "profile store";

sdk::Status failed(sqlite3* db, std::string_view what) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        std::string(kStore) + ": " + std::string(what) + ": " + sqlite3_errmsg(db));
}

}  // namespace

std::string SqliteProfileStore::fileIn(const std::string& dir) {
  return (std::filesystem::path(dir) / "profiles.db").string();
}

std::string SqliteProfileStore::markerIn(const std::string& dir) {
  return (std::filesystem::path(dir) / "profiles.db.created").string();
}

sdk::Result<std::unique_ptr<SqliteProfileStore>> SqliteProfileStore::open(const std::string& dir) {
  const std::string file = fileIn(dir);
  const std::string marker = markerIn(dir);
  std::error_code ec;
  const bool existed = std::filesystem::exists(file, ec) && std::filesystem::file_size(file, ec) > 0;
  if (!existed && std::filesystem::exists(marker, ec)) {
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "profile store " + file +
                              " is missing or empty, but it existed (" + marker +
                              " says so): every profile would be lost. Restore it from a backup, "
                              "or accept the loss with `" + std::string(kRecoverProfilesCommand) +
                              "` (profiles are then rebuilt from the events still in the queue)");
  }
  auto opened = sqlite::open(file);
  if (!opened) {
    return opened.error();
  }
  sqlite3* db = *opened;
  std::unique_ptr<SqliteProfileStore> store(new SqliteProfileStore(file, db));
  if (existed) {
    Statement check(db, "PRAGMA quick_check");
    const int rc = check.ok() ? check.step() : SQLITE_ERROR;
    const std::string verdict = rc == SQLITE_ROW ? check.text(0) : sqlite3_errmsg(db);
    if (verdict != "ok") {
      return sdk::makeError(sdk::ErrorCode::Internal,
                            "profile store " + file + " is damaged (" + verdict + "). Run `" +
                                std::string(kRecoverProfilesCommand) +
                                "`: it moves the file aside and rebuilds profiles from the events "
                                "still in the queue");
    }
  }
  if (auto s = sqlite::exec(db,
                            "PRAGMA journal_mode=WAL;"
                            "PRAGMA synchronous=FULL;"
                            // Pages read through a memory map and a large cache: a lookup is
                            // then a few memory reads, not pread() calls (perf: they were most
                            // of the applier's time).
                            "PRAGMA mmap_size=4294967296;"
                            "PRAGMA cache_size=-262144;"
                            // Checkpoints every 64 MiB of WAL rather than 4 MiB.
                            "PRAGMA wal_autocheckpoint=16384;"
                            "CREATE TABLE IF NOT EXISTS identities ("
                            "  key TEXT PRIMARY KEY, profile_id TEXT NOT NULL) WITHOUT ROWID;"
                            "CREATE INDEX IF NOT EXISTS identities_profile ON identities(profile_id);"
                            "CREATE TABLE IF NOT EXISTS profiles ("
                            "  id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;"
                            "CREATE TABLE IF NOT EXISTS outbox ("
                            "  profile_id TEXT PRIMARY KEY, due_ms INTEGER NOT NULL,"
                            "  seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
                            "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(due_ms);"
                            // Sync marks in key order: a page of a channel is one range.
                            "CREATE TABLE IF NOT EXISTS sync_marks ("
                            "  channel TEXT NOT NULL, profile_id TEXT NOT NULL,"
                            "  seq INTEGER NOT NULL DEFAULT 0,"
                            "  PRIMARY KEY (channel, profile_id)) WITHOUT ROWID;"
                            "CREATE TABLE IF NOT EXISTS meta ("
                            "  key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
                            kStore);
      !s.ok()) {
    return s.error();
  }
  if (!existed) {
    std::ofstream out(marker, std::ios::trunc);
    out << "profiles.db was created here; if it goes missing, the daemon refuses to start.\n";
    if (!out.flush()) {
      return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot write " + marker);
    }
  }
  for (auto& r : store->readers_) {
    if (auto s = openReader(file, r); !s.ok()) {
      return s.error();
    }
  }
  if (auto s = openReader(file, store->batch_reader_); !s.ok()) {
    return s.error();
  }
  return store;
}

sdk::Status SqliteProfileStore::openReader(const std::string& file, Reader& r) {
  if (sqlite3_open_v2(file.c_str(), &r.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = r.db != nullptr ? sqlite3_errmsg(r.db) : "out of memory";
    return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot open " + file + ": " + why);
  }
  sqlite3_busy_timeout(r.db, 5000);
  (void)sqlite::exec(r.db, "PRAGMA mmap_size=4294967296; PRAGMA cache_size=-65536;", kStore);
  auto prepare = [&](const char* sql, sqlite3_stmt** out) {
    return sqlite3_prepare_v3(r.db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, nullptr) == SQLITE_OK;
  };
  if (!prepare("SELECT profile_id FROM identities WHERE key = ?", &r.identity) ||
      !prepare("SELECT data FROM profiles WHERE id = ?", &r.profile)) {
    return failed(r.db, "prepare the lookups");
  }
  return {};
}

void SqliteProfileStore::Reader::close() {
  sqlite3_finalize(identity);
  sqlite3_finalize(profile);
  sqlite3_close_v2(db);
  identity = profile = nullptr;
  db = nullptr;
}

void SqliteProfileStore::beginBatch() {
  batch_reader_.mutex.lock();
  (void)sqlite::exec(batch_reader_.db, "BEGIN", kStore);
  batch_thread_.store(std::this_thread::get_id());
}

void SqliteProfileStore::endBatch() {
  batch_thread_.store(std::thread::id{});
  (void)sqlite::exec(batch_reader_.db, "COMMIT", kStore);
  batch_reader_.mutex.unlock();
}

SqliteProfileStore::SqliteProfileStore(std::string file, sqlite3* writer)
    : file_(std::move(file)), writer_(writer) {}

SqliteProfileStore::~SqliteProfileStore() {
  // The writer last: the last connection to close checkpoints the WAL into the file (a
  // read-only one cannot).
  for (auto& r : readers_) {
    r.close();
  }
  batch_reader_.close();
  sqlite3_close_v2(writer_);
}

SqliteProfileStore::Reader& SqliteProfileStore::reader() {
  const std::size_t i = std::hash<std::thread::id>{}(std::this_thread::get_id()) % readers_.size();
  return readers_[i];
}

sdk::Result<std::optional<std::string>> SqliteProfileStore::lookup(bool identity,
                                                                   const std::string& key) {
  // The applier's thread inside a batch reads in the batch's transaction (its lock is held).
  const bool in_batch = batch_thread_.load() == std::this_thread::get_id();
  Reader& r = in_batch ? batch_reader_ : reader();
  std::unique_lock lock(r.mutex, std::defer_lock);
  if (!in_batch) {
    lock.lock();
  }
  sqlite3_stmt* st = identity ? r.identity : r.profile;
  sqlite3_bind_text(st, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(st);
  std::optional<std::string> out;
  if (rc == SQLITE_ROW) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    out.emplace(p == nullptr ? "" : p, static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return failed(r.db, "lookup").error();
  }
  return out;
}

sdk::Result<std::optional<std::string>> SqliteProfileStore::findIdentity(const std::string& key) {
  return lookup(true, key);
}

sdk::Result<std::optional<std::string>> SqliteProfileStore::loadProfile(const std::string& id) {
  return lookup(false, id);
}

sdk::Status SqliteProfileStore::commit(const Changes& c) {
  if (c.empty()) {
    return {};
  }
  std::lock_guard lock(writer_mutex_);
  if (auto s = sqlite::exec(writer_, "BEGIN IMMEDIATE", kStore); !s.ok()) {
    return s;
  }
  auto run = [&]() -> sdk::Status {
    auto each = [&](const char* sql, auto&& rows, auto&& bind) -> sdk::Status {
      if (rows.empty()) {
        return {};
      }
      Statement st(writer_, sql);
      if (!st.ok()) {
        return failed(writer_, "prepare");
      }
      for (const auto& row : rows) {
        bind(st, row);
        if (st.step() != SQLITE_DONE) {
          return failed(writer_, "write");
        }
        st.reset();
      }
      return {};
    };
    using Pair = std::pair<std::string, std::string>;
    sdk::Status s = each("DELETE FROM identities WHERE key = ?", c.identities_deleted,
                         [](Statement& st, const std::string& k) { st.bind(1, k); });
    if (s.ok()) {
      s = each("INSERT OR REPLACE INTO identities (key, profile_id) VALUES (?, ?)",
               c.identities_put, [](Statement& st, const Pair& p) {
                 st.bind(1, p.first);
                 st.bind(2, p.second);
               });
    }
    if (s.ok()) {
      s = each("DELETE FROM profiles WHERE id = ?", c.profiles_deleted,
               [](Statement& st, const std::string& k) { st.bind(1, k); });
    }
    if (s.ok()) {
      s = each("INSERT OR REPLACE INTO profiles (id, data) VALUES (?, ?)", c.profiles_put,
               [](Statement& st, const Pair& p) {
                 st.bind(1, p.first);
                 st.bind(2, p.second);
               });
    }
    if (s.ok()) {
      s = each("DELETE FROM outbox WHERE profile_id = ?", c.outbox_deleted,
               [](Statement& st, const std::string& k) { st.bind(1, k); });
    }
    if (s.ok()) {
      s = each("DELETE FROM outbox WHERE profile_id = ? AND seq = ?", c.outbox_done,
               [](Statement& st, const std::pair<std::string, std::int64_t>& p) {
                 st.bind(1, p.first);
                 st.bind(2, p.second);
               });
    }
    if (s.ok()) {
      s = each("INSERT INTO outbox (profile_id, due_ms) VALUES (?, ?) "
               "ON CONFLICT (profile_id) DO UPDATE SET seq = seq + 1",
               c.outbox_put,
               [](Statement& st, const std::pair<std::string, std::int64_t>& p) {
                 st.bind(1, p.first);
                 st.bind(2, p.second);
               });
    }
    if (s.ok()) {
      s = each("DELETE FROM sync_marks WHERE channel = ? AND profile_id = ?", c.sync_deleted,
               [](Statement& st, const Pair& p) {
                 st.bind(1, p.first);
                 st.bind(2, p.second);
               });
    }
    if (s.ok()) {
      s = each("DELETE FROM sync_marks WHERE channel = ? AND profile_id = ? AND seq = ?",
               c.sync_done, [](Statement& st, const SyncMark& m) {
                 st.bind(1, m.channel);
                 st.bind(2, m.profile_id);
                 st.bind(3, m.seq);
               });
    }
    if (s.ok()) {
      s = each("INSERT INTO sync_marks (channel, profile_id) VALUES (?, ?) "
               "ON CONFLICT (channel, profile_id) DO UPDATE SET seq = seq + 1",
               c.sync_put, [](Statement& st, const Pair& p) {
                 st.bind(1, p.first);
                 st.bind(2, p.second);
               });
    }
    if (s.ok() && c.applied) {
      Statement st(writer_, "INSERT OR REPLACE INTO meta (key, value) VALUES ('applied', ?)");
      st.bind(1, static_cast<std::int64_t>(*c.applied));
      if (!st.ok() || st.step() != SQLITE_DONE) {
        s = failed(writer_, "write the applied offset");
      }
    }
    return s;
  };
  sdk::Status s = run();
  if (!s.ok()) {
    (void)sqlite::exec(writer_, "ROLLBACK", kStore);
    return s;
  }
  return sqlite::exec(writer_, "COMMIT", kStore);
}

sdk::Result<SqliteProfileStore::Salvage> SqliteProfileStore::salvageFrom(
    const std::string& damaged_file) {
  sqlite3* from = nullptr;
  if (sqlite3_open_v2(damaged_file.c_str(), &from, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string why = from != nullptr ? sqlite3_errmsg(from) : "out of memory";
    sqlite3_close_v2(from);
    return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot open " + damaged_file + ": " + why);
  }
  Salvage result;
  Changes c;
  // Rows of `table` (key, value) read forwards, then backwards from the end: on a damaged
  // page each direction stops, and together they keep everything on either side of it.
  auto scan = [&](const char* table, const char* key, const char* value, auto&& keep) {
    std::set<std::string> seen;
    for (const char* order : {"ASC", "DESC"}) {
      const std::string sql = std::string("SELECT ") + key + ", " + value + " FROM " + table +
                              " ORDER BY " + key + " " + order;
      Statement st(from, sql);
      if (!st.ok()) {
        result.complete = false;
        return;
      }
      int rc;
      while ((rc = st.step()) == SQLITE_ROW) {
        std::string k = st.text(0);
        if (seen.insert(k).second) {
          keep(std::move(k), st);
        }
      }
      if (rc != SQLITE_DONE) {
        result.complete = false;
      }
    }
  };
  scan("profiles", "id", "data", [&](std::string k, Statement& st) {
    c.profiles_put.emplace_back(std::move(k), st.text(1));
  });
  scan("identities", "key", "profile_id", [&](std::string k, Statement& st) {
    c.identities_put.emplace_back(std::move(k), st.text(1));
  });
  scan("outbox", "profile_id", "due_ms", [&](std::string k, Statement& st) {
    c.outbox_put.emplace_back(std::move(k), st.integer(1));
  });
  // Marks by (channel, profile id); a store older than the marks has no such table (not a
  // damage: nothing was marked).
  bool has_marks = false;
  {
    Statement st(from, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_marks'");
    has_marks = st.ok() && st.step() == SQLITE_ROW;
  }
  if (has_marks) {
    std::set<std::pair<std::string, std::string>> marks;
    for (const char* order : {"ASC", "DESC"}) {
      Statement st(from, std::string("SELECT channel, profile_id FROM sync_marks ORDER BY "
                                     "channel ") + order + ", profile_id " + order);
      if (!st.ok()) {
        result.complete = false;
        break;
      }
      int rc;
      while ((rc = st.step()) == SQLITE_ROW) {
        if (auto m = std::make_pair(st.text(0), st.text(1)); marks.insert(m).second) {
          c.sync_put.push_back(std::move(m));
        }
      }
      if (rc != SQLITE_DONE) {
        result.complete = false;
      }
    }
  }
  {
    Statement st(from, "SELECT value FROM meta WHERE key = 'applied'");
    if (st.ok() && st.step() == SQLITE_ROW) {
      result.applied = static_cast<std::uint64_t>(st.integer(0));
    }
  }
  sqlite3_close_v2(from);
  // Links and marks of a profile that could not be read lead nowhere: dropped (the person's
  // next event links and marks them again).
  std::set<std::string> ids;
  for (const auto& [id, data] : c.profiles_put) {
    ids.insert(id);
  }
  std::erase_if(c.identities_put, [&](const auto& p) { return !ids.contains(p.second); });
  std::erase_if(c.sync_put, [&](const auto& m) { return !ids.contains(m.second); });
  result.profiles = c.profiles_put.size();
  result.identities = c.identities_put.size();
  result.outbox = c.outbox_put.size();
  result.sync_marks = c.sync_put.size();
  // Not the damaged store's offset: what it had applied up to is not all readable (a damaged
  // page or log record can lose a batch whose offset a later, readable batch moved past). The
  // daemon applies every event the queue still holds instead: nothing retained is skipped.
  if (auto s = commit(c); !s.ok()) {
    return s.error();
  }
  return result;
}

sdk::Result<std::uint64_t> SqliteProfileStore::appliedOffset() {
  std::lock_guard lock(writer_mutex_);
  Statement st(writer_, "SELECT value FROM meta WHERE key = 'applied'");
  if (!st.ok()) {
    return failed(writer_, "read the applied offset").error();
  }
  const int rc = st.step();
  if (rc == SQLITE_ROW) {
    return static_cast<std::uint64_t>(st.integer(0));
  }
  if (rc == SQLITE_DONE) {
    return std::uint64_t{0};
  }
  return failed(writer_, "read the applied offset").error();
}

sdk::Result<std::vector<OutboxEntry>> SqliteProfileStore::dueOutbox(std::int64_t now_ms,
                                                                    std::size_t limit) {
  std::lock_guard lock(writer_mutex_);
  Statement st(writer_,
               "SELECT profile_id, due_ms, seq FROM outbox WHERE due_ms <= ? ORDER BY due_ms "
               "LIMIT ?");
  if (!st.ok()) {
    return failed(writer_, "read the outbox").error();
  }
  st.bind(1, now_ms);
  st.bind(2, static_cast<std::int64_t>(limit));
  std::vector<OutboxEntry> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    out.push_back({st.text(0), st.integer(1), st.integer(2)});
  }
  if (rc != SQLITE_DONE) {
    return failed(writer_, "read the outbox").error();
  }
  return out;
}

sdk::Result<std::uint64_t> SqliteProfileStore::profileCount() {
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  Statement st(r.db, "SELECT count(*) FROM profiles");
  if (!st.ok() || st.step() != SQLITE_ROW) {
    return failed(r.db, "count").error();
  }
  return static_cast<std::uint64_t>(st.integer(0));
}

sdk::Result<std::vector<SyncMark>> SqliteProfileStore::syncMarks(
    const std::string& channel, const std::string& after_profile_id, std::size_t limit) {
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  Statement st(r.db,
               "SELECT profile_id, seq FROM sync_marks WHERE channel = ? AND profile_id > ? "
               "ORDER BY profile_id LIMIT ?");
  if (!st.ok()) {
    return failed(r.db, "read the sync marks").error();
  }
  st.bind(1, channel);
  st.bind(2, after_profile_id);
  st.bind(3, static_cast<std::int64_t>(
                 std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
  std::vector<SyncMark> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    out.push_back({channel, st.text(0), st.integer(1)});
  }
  if (rc != SQLITE_DONE) {
    return failed(r.db, "read the sync marks").error();
  }
  return out;
}

sdk::Result<std::uint64_t> SqliteProfileStore::syncMarkCount(const std::string& channel) {
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  Statement st(r.db, "SELECT count(*) FROM sync_marks WHERE channel = ?");
  if (!st.ok()) {
    return failed(r.db, "count the sync marks").error();
  }
  st.bind(1, channel);
  if (st.step() != SQLITE_ROW) {
    return failed(r.db, "count the sync marks").error();
  }
  return static_cast<std::uint64_t>(st.integer(0));
}

sdk::Result<std::vector<std::string>> SqliteProfileStore::profileIds(const std::string& after,
                                                                     std::size_t limit) {
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  Statement st(r.db, "SELECT id FROM profiles WHERE id > ? ORDER BY id LIMIT ?");
  if (!st.ok()) {
    return failed(r.db, "list the profiles").error();
  }
  st.bind(1, after);
  st.bind(2, static_cast<std::int64_t>(
                 std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
  std::vector<std::string> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    out.push_back(st.text(0));
  }
  if (rc != SQLITE_DONE) {
    return failed(r.db, "list the profiles").error();
  }
  return out;
}

sdk::Status SqliteProfileStore::dropSyncChannel(const std::string& channel) {
  std::lock_guard lock(writer_mutex_);
  Statement st(writer_, "DELETE FROM sync_marks WHERE channel = ?");
  if (!st.ok()) {
    return failed(writer_, "drop the sync channel");
  }
  st.bind(1, channel);
  if (st.step() != SQLITE_DONE) {
    return failed(writer_, "drop the sync channel");
  }
  return {};
}

std::uint64_t SqliteProfileStore::sizeBytes() {
  std::uint64_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(file_ + suffix, ec);
    if (!ec) {
      total += n;
    }
  }
  return total;
}

}  // namespace junction::core::profiles
