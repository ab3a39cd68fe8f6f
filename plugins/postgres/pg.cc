#include "pg.h"

namespace junction::plugins::postgres {

ErrorKind classifySqlState(std::string_view sqlstate) noexcept {
  if (sqlstate.size() != 5) {
    return ErrorKind::Transient;  // no SQLSTATE: the connection broke
  }
  const std::string_view cls = sqlstate.substr(0, 2);
  if (cls == "22" || cls == "23" || sqlstate == "42804") {
    return ErrorKind::Data;
  }
  if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || sqlstate == "55P03" ||
      sqlstate == "55006") {
    return ErrorKind::Transient;
  }
  return ErrorKind::Other;
}

std::unique_ptr<PgConnection> PgConnection::connect(const std::string& dsn, PgError* error) {
  // Later entries override earlier ones; the DSN (expanded from `dbname`) comes last.
  const char* keys[] = {"application_name", "connect_timeout", "dbname", nullptr};
  const char* values[] = {"junction", "10", dsn.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    *error = {"", ErrorKind::Transient, "out of memory connecting to PostgreSQL"};
    return nullptr;
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    PQfinish(conn);
    *error = {"", ErrorKind::Transient, "cannot connect to PostgreSQL: " + message};
    return nullptr;
  }
  // NOTICEs ("already exists, skipping") would go to stderr, into the daemon's log unformatted.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<PgConnection>(new PgConnection(conn));
}

PgConnection::~PgConnection() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
  }
}

bool PgConnection::ok() const noexcept { return PQstatus(conn_) == CONNECTION_OK; }

PgError PgConnection::errorOf(const PGresult* result) const {
  PgError e;
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  e.sqlstate = state != nullptr ? state : "";
  e.kind = classifySqlState(e.sqlstate);
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  e.message = primary != nullptr ? primary : PQerrorMessage(conn_);
  if (const char* detail =
          result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL) : nullptr) {
    e.message += " (" + std::string(detail) + ")";
  }
  while (!e.message.empty() && (e.message.back() == '\n' || e.message.back() == ' ')) {
    e.message.pop_back();
  }
  if (!e.sqlstate.empty()) {
    e.message = "SQLSTATE " + e.sqlstate + ": " + e.message;
  }
  return e;
}

bool PgConnection::exec(const std::string& sql, PgError* error) {
  PgResult r(PQexec(conn_, sql.c_str()));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return true;
  }
  *error = errorOf(r.get());
  return false;
}

PgResult PgConnection::query(const std::string& sql, const std::vector<std::string>& params,
                             PgError* error) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    values.push_back(p.c_str());
  }
  PgResult r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return r;
  }
  *error = errorOf(r.get());
  return nullptr;
}

bool PgConnection::copyIn(const std::string& copy_sql, std::string_view data, PgError* error) {
  PgResult start(PQexec(conn_, copy_sql.c_str()));
  if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN) {
    *error = errorOf(start.get());
    return false;
  }
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t at = 0; at < data.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, data.size() - at);
    if (PQputCopyData(conn_, data.data() + at, static_cast<int>(n)) != 1) {
      break;  // the end below reports the error
    }
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) {
    *error = errorOf(nullptr);
    return false;
  }
  bool ok = true;
  while (PgResult r{PQgetResult(conn_)}) {
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      if (ok) {
        *error = errorOf(r.get());
      }
      ok = false;
    }
  }
  return ok;
}

std::string quoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') {
      out += '"';
    }
    out += c;
  }
  return out + "\"";
}

std::string quoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += '\'';
    }
    out += c;
  }
  return out + "'";
}

void appendCopyField(std::string& out, std::string_view value) {
  // Runs of ordinary bytes are appended whole: most values have nothing to escape.
  std::size_t run = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r') {
      continue;
    }
    out.append(value.data() + run, i - run);
    out += '\\';
    out += c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
    run = i + 1;
  }
  out.append(value.data() + run, value.size() - run);
}

}  // namespace junction::plugins::postgres
