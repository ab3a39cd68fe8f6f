#pragma once

// A real PostgreSQL server for tests and benchmarks: a fresh cluster in a temp directory under
// /tmp, listening on a free 127.0.0.1 port (and a Unix socket in that directory), stopped and
// deleted when the object is destroyed.
//
//   std::string error;
//   auto pg = junction::testing::PostgresServer::start(&error);
//   ASSERT_NE(pg, nullptr) << error;
//   pg->query("create table t (id int primary key, name text)");
//   pg->query("insert into t values (1, 'a'), (2, null)");
//   auto rows = pg->query("select id, name from t order by id");  // {{"1","a"},{"2","\\N"}}
//   std::string db = pg->createDatabase("other");
//   ... connect the code under test with pg->dsn(db) ...
//
// The binaries are the newest version under /usr/lib/postgresql/<version>/bin (Debian's
// `postgresql` package). The cluster is made with initdb (-A trust -U postgres --no-sync
// -E UTF8 --locale=C) and started with pg_ctl, durability off (fsync, synchronous_commit and
// full_page_writes off), max_connections=50. Superuser `postgres`, no password. When the test
// runs as root, which PostgreSQL refuses, initdb, pg_ctl and the server run as `nobody` (via
// runuser) and the temp directory belongs to nobody.
//
// Start-up (initdb + start) takes about a second. The destructor stops the server
// (pg_ctl stop -m immediate, then SIGKILL if it is still there) and removes the directory, so a
// failing test leaves nothing behind; only a test process killed outright (SIGKILL, abort)
// leaves a server running, in /tmp/junction_pg.*.
//
// Thread-safety: query/scalar/createDatabase open their own connection per call and may be
// called from any thread. Test-only code: query() throws std::runtime_error.

#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace junction::testing {

class PostgresServer {
 public:
  // Starts a fresh cluster. nullptr and *error (what failed, with the last lines of the log)
  // when it cannot: no PostgreSQL installed, initdb or the server failing.
  static std::unique_ptr<PostgresServer> start(std::string* error);

  // Stops the server (immediate shutdown) and removes the temp directory. Never throws.
  ~PostgresServer();

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // libpq connection string: "host=127.0.0.1 port=N user=postgres dbname=<dbname>".
  std::string dsn(const std::string& dbname = "postgres") const;
  int port() const { return port_; }

  // Runs SQL (one or more statements, through PQexec on a new connection) and returns the
  // rows of the last statement's result, each value as text, NULL as "\N"; no rows for
  // statements that return none. Throws std::runtime_error with the server's message.
  std::vector<std::vector<std::string>> query(const std::string& sql,
                                              const std::string& dbname = "postgres") const;
  // The one value of a query returning one row of one column (throws otherwise).
  std::string scalar(const std::string& sql, const std::string& dbname = "postgres") const;
  // CREATE DATABASE "<name>" (the name quoted as an identifier, so its case is kept); returns
  // the name, ready for dsn().
  std::string createDatabase(const std::string& name) const;

  // The directory with psql, pg_ctl, pg_dump... of the running version.
  const std::string& binDir() const { return bin_dir_; }
  // The server's log (and initdb's and pg_ctl's output).
  const std::string& logFile() const { return log_file_; }
  // The temp directory: data/ is the cluster, the Unix socket is in the directory itself.
  const std::string& directory() const { return dir_; }

 private:
  PostgresServer() = default;
  bool init(std::string* error);
  bool startServer(std::string* error);
  void stop() noexcept;
  // Runs a PostgreSQL binary (as nobody when root), its output appended to the log; returns
  // the exit status, or -1 and *error when it could not be run.
  int run(const std::vector<std::string>& args, std::string* error) const;
  std::string logTail(std::size_t lines) const;

  std::string bin_dir_;
  std::string dir_;
  std::string data_dir_;
  std::string log_file_;
  int port_ = 0;
  bool as_nobody_ = false;
  uid_t nobody_uid_ = 0;
  gid_t nobody_gid_ = 0;
  std::string runuser_;
};

}  // namespace junction::testing
