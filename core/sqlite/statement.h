#pragma once

// A prepared SQLite statement (RAII), shared by the stores that keep their state in SQLite
// (dead letters, privacy). Not thread-safe: use under the owning store's lock.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "junction/sdk/result.h"

namespace junction::core::sqlite {

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) {
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
        SQLITE_OK) {
      error_ = sqlite3_errmsg(db);
      stmt_ = nullptr;
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  const std::string& error() const { return error_; }
  sqlite3_stmt* get() { return stmt_; }

  // Parameters are 1-based, as in SQLite.
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bindBlob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  void reset() { sqlite3_reset(stmt_); }

  // Columns are 0-based.
  std::int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, bytes(col));
  }
  std::string blob(int col) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, bytes(col));
  }

 private:
  std::size_t bytes(int col) { return static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)); }

  sqlite3_stmt* stmt_ = nullptr;
  std::string error_;
};

// Runs `sql` (one or more statements without results). Unavailable, prefixed with `store`
// ("dead-letter store: ..."), when SQLite refuses it.
inline sdk::Status exec(sqlite3* db, const char* sql, std::string_view store) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message != nullptr ? message : "unknown error";
    sqlite3_free(message);
    return sdk::makeError(sdk::ErrorCode::Unavailable, std::string(store) + ": " + text);
  }
  return {};
}

// Opens (creating if needed) the database `file` for use from several threads, with a 5 s busy
// timeout. The caller owns the handle (sqlite3_close).
inline sdk::Result<sqlite3*> open(const std::string& file) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot open " + file + ": " + why);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace junction::core::sqlite
