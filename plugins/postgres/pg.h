#pragma once

// A thin RAII layer over libpq for the postgres plugin: a connection, a result, and the
// classification of an error by SQLSTATE (data error in one row, or a transient failure).

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace junction::plugins::postgres {

struct PgResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// What kind of failure an error is.
//   Data:      this statement's data is wrong (SQLSTATE class 22 data exception, 23 integrity
//              constraint, 42804 datatype mismatch): the batch is split to find the event.
//   Transient: the server, the network or a lock (08, 40, 53, 57, 55P03, no SQLSTATE at all):
//              retry later.
//   Other:     anything else (permissions, a dropped table): retried like Transient, the retry
//              budget of the destination sends it to the dead-letter queue in the end.
enum class ErrorKind { Data, Transient, Other };

ErrorKind classifySqlState(std::string_view sqlstate) noexcept;

// One failed statement: its SQLSTATE, kind and the server's message (primary + detail, no
// connection parameters: never a password).
struct PgError {
  std::string sqlstate;
  ErrorKind kind = ErrorKind::Other;
  std::string message;
};

class PgConnection {
 public:
  // Connects with `dsn` (a libpq connection string or URI). Defaults that the DSN may override:
  // application_name=junction, connect_timeout=10.
  static std::unique_ptr<PgConnection> connect(const std::string& dsn, PgError* error);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  bool ok() const noexcept;
  // Runs `sql` (one or more statements without parameters). False with `error` filled on
  // failure.
  bool exec(const std::string& sql, PgError* error);
  // Runs one statement with text parameters; returns the result (tuples or command ok), or
  // nullptr with `error` filled.
  PgResult query(const std::string& sql, const std::vector<std::string>& params, PgError* error);
  // COPY ... FROM STDIN with `data` in text format. False with `error` on failure.
  bool copyIn(const std::string& copy_sql, std::string_view data, PgError* error);

  PGconn* raw() noexcept { return conn_; }

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  PgError errorOf(const PGresult* result) const;

  PGconn* conn_ = nullptr;
};

// `name` as a quoted SQL identifier ("my""table").
std::string quoteIdent(std::string_view name);
// `text` as a quoted SQL string literal ('it''s').
std::string quoteLiteral(std::string_view text);
// Appends `value` to a COPY text-format buffer, escaping \ tab newline and carriage return.
void appendCopyField(std::string& out, std::string_view value);

}  // namespace junction::plugins::postgres
