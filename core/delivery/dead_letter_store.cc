#include "core/delivery/dead_letter_store.h"

#include <filesystem>

#include <sqlite3.h>

#include <algorithm>

#include "core/queue/record.h"
#include "core/sqlite/statement.h"

namespace junction::core::delivery {

namespace {

using sqlite::Statement;

sdk::Error dbError(sqlite3* db, std::string_view what) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        "dead-letter store: " + std::string(what) + ": " + sqlite3_errmsg(db));
}

constexpr const char* kColumns =
    "id, destination, event, failed_at, attempts, reason, state";

// The event is stored as a queue record (header + JSON, with its CRC), so that the parsed header
// survives a round trip without re-parsing the JSON.
sdk::Result<DeadLetter> readRow(Statement& s) {
  DeadLetter d;
  d.id = sqlite3_column_int64(s.get(), 0);
  d.destination = s.text(1);
  std::string record = s.blob(2);
  auto event = queue::decodeRecord(record);
  if (!event) {
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "dead letter " + std::to_string(d.id) + " is unreadable: " +
                              event.error().message);
  }
  d.event = std::move(event->event);
  d.failed_at_ms = sqlite3_column_int64(s.get(), 3);
  d.attempts = sqlite3_column_int64(s.get(), 4);
  d.reason = s.text(5);
  d.replaying = sqlite3_column_int64(s.get(), 6) == 1;
  return d;
}

constexpr const char* kInsertColumns =
    "destination, message_id, person, source, received_at, failed_at, attempts, reason, event, "
    "state";

// Binds `row` to an INSERT of kInsertColumns (preceded by id when `with_id`) and runs it.
sdk::Status insertRow(sqlite3* db, Statement& insert, const DeadLetter& row, bool with_id) {
  const auto& h = row.event.header();
  int i = 1;
  if (with_id) {
    insert.bind(i++, row.id);
  }
  insert.bind(i++, row.destination);
  insert.bind(i++, h.message_id);
  insert.bind(i++, h.personKey());
  insert.bind(i++, h.source_id);
  insert.bind(i++, h.received_at_ms);
  insert.bind(i++, row.failed_at_ms);
  insert.bind(i++, row.attempts);
  insert.bind(i++, row.reason);
  std::string record;
  if (auto st = queue::encodeRecord(row.event, record); !st.ok()) {
    return st;
  }
  insert.bindBlob(i++, record);
  insert.bind(i++, std::int64_t{row.replaying ? 1 : 0});
  const int step = sqlite3_step(insert.get());
  sqlite3_reset(insert.get());
  if (step != SQLITE_DONE) {
    return dbError(db, "insert");
  }
  return {};
}

}  // namespace

DeadLetterStore::DeadLetterStore(sqlite3* db) : db_(db) {}

DeadLetterStore::~DeadLetterStore() { sqlite3_close(db_); }

sdk::Status DeadLetterStore::exec(const char* sql) { return sqlite::exec(db_, sql, "dead-letter store"); }

namespace {

constexpr const char* kRecoverCommand = "`junction recover dead-letters --config FILE`";

std::uintmax_t sizeOrZero(const std::string& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  return ec ? 0 : size;
}

sdk::Error damaged(const std::string& file, const std::string& damage) {
  return sdk::makeError(
      sdk::ErrorCode::Internal,
      "dead-letter store " + file + " is " + damage +
          ": the events it holds (ones destinations refused, kept for replay) would be lost or "
          "listed wrong. Stop here; with junctiond stopped, " + kRecoverCommand +
          " moves it aside and copies every row that can still be read into a new store "
          "(written to the audit log)");
}

}  // namespace

sdk::Result<std::unique_ptr<DeadLetterStore>> DeadLetterStore::open(const std::string& file,
                                                                    bool must_exist) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(file, ec);
  if (must_exist && (!exists || (sizeOrZero(file) == 0 && sizeOrZero(file + "-wal") == 0))) {
    return damaged(file, exists ? "empty" : "missing");
  }
  auto opened = sqlite::open(file);
  if (!opened) {
    return damaged(file, "unreadable (" + opened.error().message + ")");
  }
  sqlite3* db = *opened;
  std::unique_ptr<DeadLetterStore> store(new DeadLetterStore(db));
  if (exists) {
    // quick_check reads every page: a damaged one would otherwise show as listings that
    // disagree with replays, or a 500 much later.
    Statement check(db, "PRAGMA quick_check");
    std::string verdict;
    if (!check.ok()) {
      verdict = check.error();
    } else {
      while (sqlite3_step(check.get()) == SQLITE_ROW) {
        const std::string line = check.text(0);
        if (line != "ok") {
          verdict += (verdict.empty() ? "" : "; ") + line;
        }
        if (verdict.size() > 300) {
          break;
        }
      }
      if (verdict.empty() && sqlite3_errcode(db) != SQLITE_OK && sqlite3_errcode(db) != SQLITE_DONE &&
          sqlite3_errcode(db) != SQLITE_ROW) {
        verdict = sqlite3_errmsg(db);
      }
    }
    if (!verdict.empty()) {
      return damaged(file, "corrupt (" + verdict.substr(0, 300) + ")");
    }
  }
  auto status = store->exec(
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS dead_letters ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  destination TEXT NOT NULL,"
      "  message_id TEXT NOT NULL,"
      "  person TEXT NOT NULL,"
      "  source TEXT NOT NULL,"
      "  received_at INTEGER NOT NULL,"
      "  failed_at INTEGER NOT NULL,"
      "  attempts INTEGER NOT NULL,"
      "  reason TEXT NOT NULL,"
      "  state INTEGER NOT NULL DEFAULT 0,"  // 0 dead, 1 marked for replay
      "  event BLOB NOT NULL);"
      "CREATE INDEX IF NOT EXISTS dead_letters_by_destination"
      "  ON dead_letters(destination, state, failed_at);"
      "CREATE INDEX IF NOT EXISTS dead_letters_by_person ON dead_letters(person);");
  if (!status.ok()) {
    return exists ? damaged(file, "unusable (" + status.message() + ")") : status.error();
  }
  return store;
}

sdk::Result<DeadLetterStore::Salvage> DeadLetterStore::salvageFrom(const std::string& damaged_file) {
  sqlite3* from = nullptr;
  if (sqlite3_open_v2(damaged_file.c_str(), &from, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string why = from != nullptr ? sqlite3_errmsg(from) : "out of memory";
    sqlite3_close_v2(from);  // _v2: the statements on it may still be alive
    return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot open " + damaged_file + ": " + why);
  }
  Salvage result;
  // The highest id: from the AUTOINCREMENT counter, else the table itself (either may be lost).
  for (const char* q : {"SELECT seq FROM sqlite_sequence WHERE name = 'dead_letters'",
                        "SELECT max(id) FROM dead_letters"}) {
    Statement s(from, q);
    if (s.ok() && sqlite3_step(s.get()) == SQLITE_ROW) {
      result.max_id = std::max<std::int64_t>(result.max_id, sqlite3_column_int64(s.get(), 0));
    }
  }
  std::lock_guard lock(mutex_);
  if (auto st = exec("BEGIN IMMEDIATE"); !st.ok()) {
    sqlite3_close_v2(from);  // _v2: the statements on it may still be alive
    return st.error();
  }
  Statement read(from,
                 "SELECT destination, message_id, person, source, received_at, failed_at, "
                 "attempts, reason, state, event FROM dead_letters WHERE id = ?");
  Statement write(db_,
                  "INSERT INTO dead_letters (id, destination, message_id, person, source, "
                  "received_at, failed_at, attempts, reason, state, event) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!read.ok() || !write.ok()) {
    (void)exec("ROLLBACK");
    sqlite3_close_v2(from);  // _v2: the statements on it may still be alive
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "cannot read " + damaged_file + ": " + (read.ok() ? write.error() : read.error()));
  }
  for (std::int64_t id = 1; id <= result.max_id; ++id) {
    sqlite3_reset(read.get());
    read.bind(1, id);
    const int rc = sqlite3_step(read.get());
    if (rc == SQLITE_DONE) {
      continue;  // purged or replayed: not there, not lost
    }
    if (rc != SQLITE_ROW) {
      ++result.unreadable;
      continue;
    }
    const std::string event = read.blob(9);
    if (!queue::decodeRecord(event)) {
      ++result.unreadable;  // the row is there, its event is not whole
      continue;
    }
    sqlite3_reset(write.get());
    write.bind(1, id);
    for (int c = 0; c < 4; ++c) {
      write.bind(2 + c, read.text(c));
    }
    write.bind(6, sqlite3_column_int64(read.get(), 4));
    write.bind(7, sqlite3_column_int64(read.get(), 5));
    write.bind(8, sqlite3_column_int64(read.get(), 6));
    write.bind(9, read.text(7));
    write.bind(10, sqlite3_column_int64(read.get(), 8));
    write.bindBlob(11, event);
    if (sqlite3_step(write.get()) != SQLITE_DONE) {
      ++result.unreadable;
      continue;
    }
    ++result.copied;
  }
  sqlite3_close_v2(from);  // _v2: the statements on it may still be alive
  if (auto st = exec("COMMIT"); !st.ok()) {
    (void)exec("ROLLBACK");
    return st.error();
  }
  return result;
}

sdk::Status DeadLetterStore::add(std::vector<DeadLetter>& letters) {
  if (letters.empty()) {
    return {};
  }
  std::int64_t first_id = 0;
  if (sharing_.reserve_ids) {
    auto reserved = sharing_.reserve_ids(letters.size());
    if (!reserved) {
      return sdk::makeError(reserved.error().code,
                            "dead-letter store: no ids from the other nodes: " +
                                reserved.error().message);
    }
    first_id = *reserved;
  }
  {
    std::lock_guard lock(mutex_);
    if (auto s = exec("BEGIN IMMEDIATE"); !s.ok()) {
      return s;
    }
    const bool with_id = first_id != 0;
    Statement insert(db_, std::string("INSERT INTO dead_letters (") + (with_id ? "id, " : "") +
                              kInsertColumns + ") VALUES (" + (with_id ? "?," : "") +
                              "?,?,?,?,?,?,?,?,?,?)");
    if (!insert.ok()) {
      (void)exec("ROLLBACK");
      return sdk::makeError(sdk::ErrorCode::Internal, "dead-letter store: " + insert.error());
    }
    for (std::size_t i = 0; i < letters.size(); ++i) {
      DeadLetter& d = letters[i];
      d.replaying = false;
      if (with_id) {
        d.id = first_id + static_cast<std::int64_t>(i);
      }
      if (auto st = insertRow(db_, insert, d, with_id); !st.ok()) {
        (void)exec("ROLLBACK");
        return st;
      }
      if (!with_id) {
        d.id = sqlite3_last_insert_rowid(db_);
      }
    }
    if (auto s = exec("COMMIT"); !s.ok()) {
      return s;
    }
  }
  if (sharing_.changed) {
    sharing_.changed(letters, {});
  }
  return {};
}

sdk::Result<std::vector<DeadLetter>> DeadLetterStore::select(const std::string& sql,
                                                             const std::vector<std::string>& binds) {
  Statement s(db_, sql);
  if (!s.ok()) {
    return sdk::makeError(sdk::ErrorCode::Internal, "dead-letter store: " + s.error());
  }
  for (std::size_t i = 0; i < binds.size(); ++i) {
    s.bind(static_cast<int>(i + 1), binds[i]);
  }
  std::vector<DeadLetter> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    auto row = readRow(s);
    if (!row) {
      return std::move(row).error();
    }
    out.push_back(std::move(row).value());
  }
  return out;
}

std::optional<DeadLetter> DeadLetterStore::rowById(std::int64_t id) {
  auto rows = select(std::string("SELECT ") + kColumns + " FROM dead_letters WHERE id = " +
                         std::to_string(id),
                     {});
  if (!rows || rows->empty()) {
    return std::nullopt;
  }
  return std::move(rows->front());
}

std::string DeadLetterStore::where(const DeadLetterFilter& f, std::vector<std::string>& binds) const {
  std::string sql = " WHERE 1=1";
  if (!f.destination.empty()) {
    sql += " AND destination = ?";
    binds.push_back(f.destination);
  }
  if (!f.person.empty()) {
    sql += " AND person = ?";
    binds.push_back(f.person);
  }
  if (f.since_ms > 0) {
    sql += " AND failed_at >= " + std::to_string(f.since_ms);
  }
  if (f.until_ms > 0) {
    sql += " AND failed_at < " + std::to_string(f.until_ms);
  }
  if (!f.ids.empty()) {
    sql += " AND id IN (";
    for (std::size_t i = 0; i < f.ids.size(); ++i) {
      sql += (i ? "," : "") + std::to_string(f.ids[i]);
    }
    sql += ")";
  }
  return sql;
}

sdk::Result<std::vector<DeadLetter>> DeadLetterStore::list(const DeadLetterFilter& filter) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> binds;
  std::string sql = std::string("SELECT ") + kColumns + " FROM dead_letters" + where(filter, binds) +
                    " ORDER BY id LIMIT " + std::to_string(filter.limit ? filter.limit : 1000);
  return select(sql, binds);
}

sdk::Result<std::size_t> DeadLetterStore::changeRows(const std::string& sql,
                                                    const std::vector<std::string>& binds,
                                                    std::string_view what,
                                                    const std::function<sdk::Status()>& before) {
  if (auto s = exec("BEGIN IMMEDIATE"); !s.ok()) {
    return s.error();
  }
  if (auto s = before(); !s.ok()) {
    (void)exec("ROLLBACK");
    return s.error();
  }
  Statement s(db_, sql);
  if (!s.ok()) {
    (void)exec("ROLLBACK");
    return sdk::makeError(sdk::ErrorCode::Internal, "dead-letter store: " + s.error());
  }
  for (std::size_t i = 0; i < binds.size(); ++i) {
    s.bind(static_cast<int>(i + 1), binds[i]);
  }
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    auto error = dbError(db_, what);
    (void)exec("ROLLBACK");
    return error;
  }
  const auto n = static_cast<std::size_t>(sqlite3_changes(db_));
  if (auto c = exec("COMMIT"); !c.ok()) {
    return c.error();
  }
  return n;
}

sdk::Result<std::size_t> DeadLetterStore::markForReplay(const DeadLetterFilter& filter) {
  std::vector<DeadLetter> marked;  // as the other nodes will have them
  sdk::Result<std::size_t> n = std::size_t{0};
  {
    std::lock_guard lock(mutex_);
    std::vector<std::string> binds;
    const std::string condition = where(filter, binds) + " AND state = 0";
    n = changeRows("UPDATE dead_letters SET state = 1" + condition, binds, "replay",
                   [&]() -> sdk::Status {
                     if (!sharing_.changed) {
                       return {};
                     }
                     auto rows = select(std::string("SELECT ") + kColumns + " FROM dead_letters" +
                                            condition, binds);
                     if (!rows) {
                       return std::move(rows).error();
                     }
                     marked = std::move(rows).value();
                     for (auto& row : marked) {
                       row.replaying = true;
                     }
                     return {};
                   });
  }
  if (n && sharing_.changed && !marked.empty()) {
    sharing_.changed(marked, {});
  }
  return n;
}

sdk::Result<std::size_t> DeadLetterStore::purge(const DeadLetterFilter& filter) {
  std::vector<std::int64_t> removed;
  sdk::Result<std::size_t> n = std::size_t{0};
  {
    std::lock_guard lock(mutex_);
    std::vector<std::string> binds;
    const std::string condition = where(filter, binds) + " AND state = 0";
    n = changeRows("DELETE FROM dead_letters" + condition, binds, "purge", [&]() -> sdk::Status {
      if (!sharing_.changed) {
        return {};
      }
      auto rows = select(std::string("SELECT ") + kColumns + " FROM dead_letters" + condition, binds);
      if (!rows) {
        return std::move(rows).error();
      }
      for (const auto& row : *rows) {
        removed.push_back(row.id);
      }
      return {};
    });
  }
  if (n && sharing_.changed && !removed.empty()) {
    sharing_.changed({}, removed);
  }
  return n;
}

sdk::Result<std::vector<DeadLetter>> DeadLetterStore::takeReplays(const std::string& destination,
                                                                  std::size_t limit) {
  std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + kColumns +
                    " FROM dead_letters WHERE destination = ? AND state = 1";
  if (!taken_.empty()) {
    sql += " AND id NOT IN (";
    for (std::size_t i = 0; i < taken_.size(); ++i) {
      sql += (i ? "," : "") + std::to_string(taken_[i]);
    }
    sql += ")";
  }
  sql += " ORDER BY id";
  if (!sharing_.replays_here) {
    sql += " LIMIT " + std::to_string(limit);
  }
  auto rows = select(sql, {destination});
  if (!rows) {
    return rows;
  }
  std::vector<DeadLetter> out;
  for (auto& row : *rows) {
    if (out.size() >= limit) {
      break;
    }
    if (sharing_.replays_here && !sharing_.replays_here(row)) {
      continue;  // another node replays it
    }
    taken_.push_back(row.id);
    out.push_back(std::move(row));
  }
  return out;
}

sdk::Status DeadLetterStore::replayed(std::int64_t id) {
  if (auto s = forget(id); !s.ok()) {
    return s;
  }
  if (sharing_.changed) {
    sharing_.changed({}, {id});
  }
  return {};
}

sdk::Status DeadLetterStore::failedAgain(std::int64_t id, std::int64_t attempts,
                                         std::string_view reason, std::int64_t failed_at_ms) {
  std::optional<DeadLetter> row;
  {
    std::lock_guard lock(mutex_);
    std::erase(taken_, id);
    Statement s(db_,
                "UPDATE dead_letters SET state = 0, attempts = ?, reason = ?, failed_at = ? "
                "WHERE id = ?");
    s.bind(1, attempts);
    s.bind(2, reason);
    s.bind(3, failed_at_ms);
    s.bind(4, id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) {
      return dbError(db_, "update");
    }
    if (sharing_.changed) {
      row = rowById(id);
    }
  }
  if (row) {
    sharing_.changed({*row}, {});
  }
  return {};
}

sdk::Result<std::size_t> DeadLetterStore::count(const std::string& destination) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT COUNT(*) FROM dead_letters WHERE destination = ?");
  s.bind(1, destination);
  if (sqlite3_step(s.get()) != SQLITE_ROW) {
    return dbError(db_, "count");
  }
  return static_cast<std::size_t>(sqlite3_column_int64(s.get(), 0));
}

bool DeadLetterStore::hasReplays(const std::string& destination) {
  std::lock_guard lock(mutex_);
  auto rows = select(std::string("SELECT ") + kColumns +
                         " FROM dead_letters WHERE destination = ? AND state = 1",
                     {destination});
  if (!rows) {
    return false;
  }
  return std::any_of(rows->begin(), rows->end(), [&](const DeadLetter& row) {
    return std::find(taken_.begin(), taken_.end(), row.id) == taken_.end() &&
           (!sharing_.replays_here || sharing_.replays_here(row));
  });
}

void DeadLetterStore::share(Sharing sharing) {
  std::lock_guard lock(mutex_);
  sharing_ = std::move(sharing);
}

sdk::Status DeadLetterStore::adopt(const DeadLetter& row) {
  std::lock_guard lock(mutex_);
  Statement insert(db_, std::string("INSERT OR REPLACE INTO dead_letters (id, ") + kInsertColumns +
                            ") VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!insert.ok()) {
    return sdk::makeError(sdk::ErrorCode::Internal, "dead-letter store: " + insert.error());
  }
  return insertRow(db_, insert, row, /*with_id=*/true);
}

sdk::Status DeadLetterStore::forget(std::int64_t id) {
  std::lock_guard lock(mutex_);
  std::erase(taken_, id);
  Statement s(db_, "DELETE FROM dead_letters WHERE id = ?");
  s.bind(1, id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    return dbError(db_, "delete");
  }
  return {};
}

sdk::Result<std::int64_t> DeadLetterStore::maxId() {
  std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT COALESCE(MAX(id), 0) FROM dead_letters");
  if (sqlite3_step(s.get()) != SQLITE_ROW) {
    return dbError(db_, "max id");
  }
  return static_cast<std::int64_t>(sqlite3_column_int64(s.get(), 0));
}

}  // namespace junction::core::delivery
