#pragma once

// The profile store backends that the store-conformance test and the engine tests run
// against, behind one small interface: SQLite and RocksDB in a temp directory, and (with
// JUNCTION_TEST_POSTGRES) PostgreSQL in a fresh database of a real server started once per test
// process (tests/support/postgres).
//
//   auto backend = makeStoreBackend("postgres");
//   auto store = backend->open();   // a second open() is a reopen, or a second node
//   backend->dropTable("outbox");   // from another connection than the store's

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>

#include "core/profiles/profile_store.h"
#include "core/profiles/rocksdb_profile_store.h"
#include "core/profiles/sqlite_profile_store.h"
#include "tests/core/privacy/test_util.h"

#ifdef JUNCTION_TEST_POSTGRES
#include "core/profiles/postgres_profile_store.h"
#include "tests/support/postgres/postgres_server.h"
#endif

namespace junction::core::profiles::testing {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  // A store on this backend's storage (the same storage at each call). Fails the test and
  // returns nullptr when it cannot be opened.
  virtual std::unique_ptr<ProfileStore> open() = 0;
  // Drops one of the store's tables behind its back (when it has tables).
  virtual void dropTable(const std::string& table) = 0;
  virtual bool hasTables() const { return true; }
};

class SqliteBackend final : public StoreBackend {
 public:
  std::unique_ptr<ProfileStore> open() override {
    auto s = SqliteProfileStore::open(dir_.file(""));
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(s).value() : nullptr;
  }
  void dropTable(const std::string& table) override {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(SqliteProfileStore::fileIn(dir_.file("")).c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    const int rc = sqlite3_exec(db, ("DROP TABLE " + table).c_str(), nullptr, nullptr, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close_v2(db);
  }

 private:
  privacy::testing::TempDir dir_;
};

class RocksDbBackend final : public StoreBackend {
 public:
  std::unique_ptr<ProfileStore> open() override {
    auto s = RocksDbProfileStore::open(dir_.file(""));
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(s).value() : nullptr;
  }
  void dropTable(const std::string&) override { ADD_FAILURE() << "RocksDB has no tables"; }
  bool hasTables() const override { return false; }

 private:
  privacy::testing::TempDir dir_;
};

#ifdef JUNCTION_TEST_POSTGRES
// The server of this test process, started at the first call (nullptr and *error when it
// cannot start), stopped at exit.
inline junction::testing::PostgresServer* sharedPostgres(std::string* error) {
  static std::string start_error;
  static std::unique_ptr<junction::testing::PostgresServer> server =
      junction::testing::PostgresServer::start(&start_error);
  *error = start_error;
  return server.get();
}

class PostgresBackend final : public StoreBackend {
 public:
  PostgresBackend() {
    std::string error;
    server_ = sharedPostgres(&error);
    EXPECT_NE(server_, nullptr) << error;
    if (server_ != nullptr) {
      static int n = 0;
      db_ = server_->createDatabase("profiles" + std::to_string(++n));
    }
  }
  std::unique_ptr<ProfileStore> open() override {
    if (server_ == nullptr) {
      ADD_FAILURE() << "no PostgreSQL server";
      return nullptr;
    }
    auto s = PostgresProfileStore::open(dsn());
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(s).value() : nullptr;
  }
  void dropTable(const std::string& table) override {
    server_->query("DROP TABLE junction_profiles." + table, db_);
  }

  junction::testing::PostgresServer& server() { return *server_; }
  const std::string& database() const { return db_; }
  std::string dsn() const { return server_->dsn(db_); }

 private:
  junction::testing::PostgresServer* server_ = nullptr;
  std::string db_;
};
#endif

// "sqlite", "rocksdb" or "postgres".
inline std::unique_ptr<StoreBackend> makeStoreBackend(const std::string& name) {
#ifdef JUNCTION_TEST_POSTGRES
  if (name == "postgres") {
    return std::make_unique<PostgresBackend>();
  }
#endif
  if (name == "rocksdb") {
    return std::make_unique<RocksDbBackend>();
  }
  EXPECT_EQ(name, "sqlite");
  return std::make_unique<SqliteBackend>();
}

// Test-name suffixes: Backends/ProfileEngineTest.Alias/sqlite.
inline std::string backendName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace junction::core::profiles::testing
