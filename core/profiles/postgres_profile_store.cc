#include "core/profiles/postgres_profile_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <functional>
#include <limits>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace junction::core::profiles {

namespace {

constexpr std::string_view kStore = "profile store";

// Type oids of the array parameters (pg_type.h; fixed since PostgreSQL 7).
constexpr Oid kTextOid = 25;
constexpr Oid kInt8Oid = 20;

struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// PostgreSQL's text cannot hold a NUL byte, which SQLite's can (an identifier such as
// `"userId":"a\u0000b"` reaches the store as is). Rather than refuse a batch forever, the
// store writes NUL as \x01 '0' and \x01 itself as \x01 '1': reversible, and every string
// without either byte (all in practice) is stored unchanged.
constexpr std::string_view kEscaped("\0\1", 2);

void appendEncoded(std::string& out, std::string_view s) {
  if (s.find_first_of(kEscaped) == std::string_view::npos) {
    out.append(s);
    return;
  }
  for (char c : s) {
    if (c == '\0' || c == '\1') {
      out += '\1';
      out += c == '\0' ? '0' : '1';
    } else {
      out += c;
    }
  }
}

std::string encoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  appendEncoded(out, s);
  return out;
}

std::string decoded(const char* p, std::size_t n) {
  std::string_view s(p, n);
  if (s.find('\1') == std::string_view::npos) {
    return std::string(s);
  }
  std::string out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (s[i] == '\1' && i + 1 < n) {
      out += s[++i] == '0' ? '\0' : '\1';
    } else {
      out += s[i];
    }
  }
  return out;
}

void putInt32(std::string& out, std::uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void putInt64(std::string& out, std::int64_t value) {
  const auto v = static_cast<std::uint64_t>(value);
  putInt32(out, static_cast<std::uint32_t>(v >> 32));
  putInt32(out, static_cast<std::uint32_t>(v));
}

// A one-dimensional array parameter in PostgreSQL's binary format (array_recv): no quoting
// and no escaping, whatever the text holds; the server only checks each element's encoding.
class ArrayParam {
 public:
  explicit ArrayParam(Oid element) {
    putInt32(bytes_, 1);  // dimensions
    putInt32(bytes_, 0);  // no NULLs
    putInt32(bytes_, element);
    putInt32(bytes_, 0);  // length, counted by add()
    putInt32(bytes_, 1);  // lower bound
  }
  void add(std::string_view text) {
    const std::size_t at = bytes_.size();
    putInt32(bytes_, 0);
    appendEncoded(bytes_, text);
    setInt32(at, bytes_.size() - at - 4);
    setInt32(kLengthAt, ++count_);
  }
  void add(std::int64_t v) {
    putInt32(bytes_, 8);
    putInt64(bytes_, v);
    setInt32(kLengthAt, ++count_);
  }
  std::string_view bytes() const { return bytes_; }

 private:
  static constexpr std::size_t kLengthAt = 12;
  void setInt32(std::size_t at, std::size_t value) {
    const auto v = static_cast<std::uint32_t>(value);
    bytes_[at] = static_cast<char>(v >> 24);
    bytes_[at + 1] = static_cast<char>(v >> 16);
    bytes_[at + 2] = static_cast<char>(v >> 8);
    bytes_[at + 3] = static_cast<char>(v);
  }
  std::string bytes_;
  std::uint32_t count_ = 0;
};

std::string_view int64Param(std::string& buffer, std::int64_t v) {
  buffer.clear();
  putInt64(buffer, v);
  return buffer;
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

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  return s;
}

void replaceAll(std::string& s, std::string_view what, std::string_view with) {
  if (what.empty()) {
    return;
  }
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) {
    s.replace(at, what.size(), with);
  }
}

// The advisory lock every commit takes: a key fixed per schema (FNV-1a, 64 bits), so that two
// stores in one database but different schemas do not wait for each other.
std::int64_t lockKey(const std::string& schema) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : "junction.profiles:" + schema) {
    h = (h ^ c) * 1099511628211ull;
  }
  return static_cast<std::int64_t>(h);
}

std::optional<std::int64_t> int64At(const PGresult* r, int row, int column) {
  if (PQntuples(r) <= row || PQgetisnull(r, row, column)) {
    return std::nullopt;
  }
  const char* p = PQgetvalue(r, row, column);
  std::int64_t v = 0;
  if (std::from_chars(p, p + PQgetlength(r, row, column), v).ec != std::errc()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

class PostgresProfileStore::Connection {
 public:
  struct Statement {
    const char* name;
    std::string sql;
  };

  // Connects. Defaults the DSN may override: application_name, connect_timeout (10 s) and TCP
  // keepalives/user timeout (a server that vanished without a reset fails calls in ~30 s, not
  // after the kernel's 15 minutes). The client encoding is forced to UTF8: parameters are sent
  // as UTF-8 bytes.
  static sdk::Result<std::unique_ptr<Connection>> open(const std::string& dsn) {
    // The DSN is parsed first: libpq's message for a malformed one quotes it (and so perhaps
    // the password), so that message is not repeated.
    char* parse_error = nullptr;
    PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &parse_error);
    if (options == nullptr) {
      PQfreemem(parse_error);
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            std::string(kStore) +
                                ": profiles.dsn is not a valid libpq connection string or URI");
    }
    std::string password;
    for (auto* o = options; o->keyword != nullptr; ++o) {
      if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr) {
        password = o->val;
      }
    }
    PQconninfoFree(options);

    const char* keys[] = {"application_name",   "connect_timeout", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                          "dbname",             "client_encoding", nullptr};
    const char* values[] = {"junction-profiles", "10", "30", "10", "3", "30000",
                            dsn.c_str(),        "UTF8", nullptr};
    std::unique_ptr<Connection> c(new Connection(PQconnectdbParams(keys, values, 1), dsn,
                                                 std::move(password)));
    if (c->conn_ == nullptr) {
      return sdk::makeError(sdk::ErrorCode::Unavailable,
                            std::string(kStore) + ": out of memory connecting to PostgreSQL");
    }
    if (PQstatus(c->conn_) != CONNECTION_OK) {
      return c->failure("cannot connect", nullptr);
    }
    PQsetNoticeProcessor(c->conn_, [](void*, const char*) {}, nullptr);
    const char* encoding = PQparameterStatus(c->conn_, "server_encoding");
    const std::string server_encoding = encoding != nullptr ? encoding : "";
    if (server_encoding != "UTF8" && server_encoding != "SQL_ASCII") {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            std::string(kStore) + " (PostgreSQL " + c->where() +
                                "): the database's encoding "
                                "is " + server_encoding + "; profiles need UTF8 (CREATE DATABASE "
                                "... ENCODING 'UTF8')");
    }
    return c;
  }

  ~Connection() {
    if (conn_ != nullptr) {
      PQfinish(conn_);
    }
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Statements prepared (by ready()) on this connection, again after each reconnection.
  void setStatements(std::vector<Statement> statements) {
    statements_ = std::move(statements);
    prepared_ = false;
  }

  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }

  // Makes the connection usable: resets a broken one, prepares the statements.
  sdk::Status ready() {
    if (broken()) {
      PQreset(conn_);
      prepared_ = false;
      if (broken()) {
        return failure("cannot reconnect", nullptr);
      }
      PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
    }
    if (!prepared_) {
      // Whatever a failed earlier attempt prepared goes first.
      if (PgResult r(PQexec(conn_, "DEALLOCATE ALL")); !succeeded(r.get())) {
        return failure("prepare", r.get());
      }
      for (const auto& s : statements_) {
        PgResult r(PQprepare(conn_, s.name, s.sql.c_str(), 0, nullptr));
        if (!succeeded(r.get())) {
          return failure("prepare", r.get());
        }
      }
      prepared_ = true;
    }
    return {};
  }

  // Runs a prepared statement, parameters in binary form. On failure, nullptr and *error. A
  // `repeatable` statement (a read outside a transaction) gets a usable connection first, and
  // is run once more on a new one if the connection broke; any other (a step of a transaction)
  // never reconnects: its transaction died with the connection.
  PgResult run(const char* name, const std::vector<std::string_view>& params, std::string_view what,
               sdk::Error* error, bool repeatable) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    const std::vector<int> formats(params.size(), 1);
    for (const auto& p : params) {
      values.push_back(p.data());
      lengths.push_back(static_cast<int>(p.size()));
    }
    for (int attempt = 0;; ++attempt) {
      if (!repeatable && broken()) {
        *error = failure(what, nullptr);
        return nullptr;
      }
      if (auto s = ready(); !s.ok()) {
        *error = s.error();
        return nullptr;
      }
      PgResult r(PQexecPrepared(conn_, name, static_cast<int>(params.size()), values.data(),
                                lengths.data(), formats.data(), 0));
      if (succeeded(r.get())) {
        return r;
      }
      if (!(repeatable && attempt == 0 && broken())) {
        *error = failure(what, r.get());
        return nullptr;
      }
    }
  }

  // Runs `sql` (statements without parameters). On failure, nullptr and *error.
  PgResult exec(const char* sql, std::string_view what, sdk::Error* error) {
    PgResult r(PQexec(conn_, sql));
    if (succeeded(r.get())) {
      return r;
    }
    *error = failure(what, r.get());
    return nullptr;
  }

  // "host:port/db", as libpq resolved them (never from the DSN text).
  std::string where() const {
    const char* host = PQhost(conn_);
    const char* port = PQport(conn_);
    const char* db = PQdb(conn_);
    return std::string(host != nullptr ? host : "") + ":" + (port != nullptr ? port : "") + "/" +
           (db != nullptr ? db : "");
  }

  // Unavailable, naming the server and what failed, with the server's message (SQLSTATE,
  // primary, detail) or libpq's. Never the DSN nor its password.
  sdk::Error failure(std::string_view what, const PGresult* r) const {
    std::string message;
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary = r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    if (primary != nullptr) {
      message = primary;
      if (const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) {
        message += std::string(" (") + detail + ")";
      }
    } else {
      message = conn_ != nullptr ? PQerrorMessage(conn_) : "no connection";
    }
    message = trimmed(std::move(message));
    replaceAll(message, "\n", " ");
    replaceAll(message, "\t", " ");
    if (state != nullptr) {
      message = "SQLSTATE " + std::string(state) + ": " + message;
    }
    // Belt and braces: libpq does not print either. A DSN that is only a database name is
    // not a secret (and scrubbing it would garble the message).
    if (dsn_.find_first_of("=:") != std::string::npos) {
      replaceAll(message, dsn_, "***");
    }
    replaceAll(message, password_, "***");
    return sdk::makeError(sdk::ErrorCode::Unavailable, std::string(kStore) + " (PostgreSQL " +
                                                           where() + "): " + std::string(what) +
                                                           ": " + message);
  }

 private:
  Connection(PGconn* conn, std::string dsn, std::string password)
      : conn_(conn), dsn_(std::move(dsn)), password_(std::move(password)) {}

  static bool succeeded(const PGresult* r) {
    const auto status = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  }

  PGconn* conn_;
  std::string dsn_;       // only to keep it out of messages
  std::string password_;  // likewise
  std::vector<Statement> statements_;
  bool prepared_ = false;
};

// ---------------------------------------------------------------------------------------------

namespace {

// Schema versions, each applied once in order (rows of _migrations). Version 1 is the SQLite
// store's layout. Key columns use the "C" collation: byte order, as SQLite's BINARY, and
// comparisons by memcmp rather than the database locale's strcoll in every B-tree probe.
// `data` is text, not jsonb: the store never looks inside a profile, and text keeps exactly the
// bytes Profile::serialize() wrote (jsonb would parse them on every write and print them on
// every read, reorder members and drop duplicate keys). profiles and outbox leave a fifth of
// each page free so that an update can stay on its page (a HOT update, no index write).
std::string migration(int version, const std::string& s) {
  switch (version) {
    case 1:
      return "CREATE TABLE " + s + ".identities (key text COLLATE \"C\" PRIMARY KEY,"
             "  profile_id text COLLATE \"C\" NOT NULL);"
             "CREATE INDEX identities_profile ON " + s + ".identities (profile_id);"
             "CREATE TABLE " + s + ".profiles (id text COLLATE \"C\" PRIMARY KEY,"
             "  data text NOT NULL) WITH (fillfactor = 80);"
             "CREATE TABLE " + s + ".outbox (profile_id text COLLATE \"C\" PRIMARY KEY,"
             "  due_ms bigint NOT NULL, seq bigint NOT NULL DEFAULT 0) WITH (fillfactor = 80);"
             // (due_ms, profile_id): dueOutbox's order, ties in key order as in SQLite's index.
             "CREATE INDEX outbox_due ON " + s + ".outbox (due_ms, profile_id);"
             "CREATE TABLE " + s + ".meta (key text COLLATE \"C\" PRIMARY KEY,"
             "  value bigint NOT NULL);";
    case 2:
      // Sync marks: a channel's marks are one range of the primary key, in profile-id order.
      return "CREATE TABLE " + s + ".sync_marks (channel text COLLATE \"C\" NOT NULL,"
             "  profile_id text COLLATE \"C\" NOT NULL, seq bigint NOT NULL DEFAULT 0,"
             "  PRIMARY KEY (channel, profile_id)) WITH (fillfactor = 80);";
    default:
      return {};
  }
}

}  // namespace

sdk::Result<std::unique_ptr<PostgresProfileStore>> PostgresProfileStore::open(
    const std::string& dsn, const std::string& schema) {
  if (schema.empty() || schema.size() > 63 || schema.find('\0') != std::string::npos) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          std::string(kStore) + ": the schema name must be 1 to 63 bytes");
  }
  auto writer = Connection::open(dsn);
  if (!writer) {
    return writer.error();
  }
  Connection& w = **writer;
  const std::string s = quoteIdent(schema);
  const std::string key = std::to_string(lockKey(schema));
  sdk::Error error;

  // The schema: created or brought up to date under the commits' lock, so that nodes starting
  // together do not race; a newer one is refused before anything is read or written.
  auto migrate = [&]() -> sdk::Status {
    // Read committed whatever the server's default: each statement then sees what a node that
    // held the lock before created.
    if (!w.exec(("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(" + key + ")")
                    .c_str(),
                "lock", &error)) {
      return error;
    }
    // Only what is absent is created: CREATE ... IF NOT EXISTS would need the CREATE privilege
    // even where everything exists.
    auto present = w.exec(("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = " +
                           quoteLiteral(schema) + "), to_regclass(" +
                           quoteLiteral(s + "._migrations") + ") IS NOT NULL")
                              .c_str(),
                          "read the schema", &error);
    if (!present) {
      return error;
    }
    const bool has_schema = std::string_view(PQgetvalue(present.get(), 0, 0)) == "t";
    const bool has_migrations = std::string_view(PQgetvalue(present.get(), 0, 1)) == "t";
    if (!has_schema && !w.exec(("CREATE SCHEMA " + s).c_str(), "create the schema", &error)) {
      return error;
    }
    if (!has_migrations &&
        !w.exec(("CREATE TABLE " + s +
                 "._migrations (version integer PRIMARY KEY,"
                 " applied_at timestamptz NOT NULL DEFAULT now())")
                    .c_str(),
                "create the schema", &error)) {
      return error;
    }
    auto current = w.exec(("SELECT coalesce(max(version), 0) FROM " + s + "._migrations").c_str(),
                          "read the schema version", &error);
    if (!current) {
      return error;
    }
    const std::int64_t version = int64At(current.get(), 0, 0).value_or(0);
    if (version > kSchemaVersion) {
      return sdk::makeError(sdk::ErrorCode::Internal,
                            std::string(kStore) + " (PostgreSQL " + w.where() + " schema " +
                                schema + ") is at version " + std::to_string(version) +
                                ", written by a newer junctiond; this one knows up to version " +
                                std::to_string(kSchemaVersion) + ". Upgrade junctiond");
    }
    for (int v = static_cast<int>(version) + 1; v <= kSchemaVersion; ++v) {
      if (!w.exec(migration(v, s).c_str(), "create the tables", &error) ||
          !w.exec(("INSERT INTO " + s + "._migrations (version) VALUES (" + std::to_string(v) +
                   ")")
                      .c_str(),
                  "create the tables", &error)) {
        return error;
      }
    }
    if (!w.exec("COMMIT", "create the tables", &error)) {
      return error;
    }
    return {};
  };
  if (auto st = migrate(); !st.ok()) {
    sdk::Error ignored;
    (void)w.exec("ROLLBACK", "roll back", &ignored);
    return st.error();
  }

  const std::string applied = "SELECT value FROM " + s + ".meta WHERE key = 'applied'";
  w.setStatements({
      {"identities_delete", "DELETE FROM " + s + ".identities WHERE key = ANY ($1::text[])"},
      {"identities_put", "INSERT INTO " + s + ".identities (key, profile_id) "
                         "SELECT * FROM unnest($1::text[], $2::text[]) "
                         "ON CONFLICT (key) DO UPDATE SET profile_id = EXCLUDED.profile_id"},
      {"profiles_delete", "DELETE FROM " + s + ".profiles WHERE id = ANY ($1::text[])"},
      {"profiles_put", "INSERT INTO " + s + ".profiles (id, data) "
                       "SELECT * FROM unnest($1::text[], $2::text[]) "
                       "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data"},
      {"outbox_delete", "DELETE FROM " + s + ".outbox WHERE profile_id = ANY ($1::text[])"},
      {"outbox_done", "DELETE FROM " + s + ".outbox AS o USING unnest($1::text[], $2::bigint[]) "
                      "AS d (id, seq) WHERE o.profile_id = d.id AND o.seq = d.seq"},
      // $3 is the number of times an id was put in this batch, minus one: SQLite's
      // insert-or-bump row by row, folded into one row per id (see commitParams).
      {"outbox_put", "INSERT INTO " + s + ".outbox AS o (profile_id, due_ms, seq) "
                     "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) "
                     "ON CONFLICT (profile_id) DO UPDATE SET seq = o.seq + EXCLUDED.seq + 1"},
      // One 'applied' row, as in SQLite: an offset in one queue, so nodes sharing this store
      // must read one queue. When several nodes share one queue (NATS, a later issue), the key
      // becomes per partition ('applied/<partition>').
      {"applied_put", "INSERT INTO " + s + ".meta (key, value) VALUES ('applied', $1::bigint) "
                      "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"},
      {"applied", applied},
      {"due", "SELECT profile_id, due_ms, seq FROM " + s + ".outbox WHERE due_ms <= $1::bigint "
              "ORDER BY due_ms, profile_id LIMIT $2::bigint"},
      {"sync_delete", "DELETE FROM " + s + ".sync_marks AS m "
                      "USING unnest($1::text[], $2::text[]) AS d (channel, id) "
                      "WHERE m.channel = d.channel AND m.profile_id = d.id"},
      {"sync_done", "DELETE FROM " + s + ".sync_marks AS m "
                    "USING unnest($1::text[], $2::text[], $3::bigint[]) AS d (channel, id, seq) "
                    "WHERE m.channel = d.channel AND m.profile_id = d.id AND m.seq = d.seq"},
      // $3 as in outbox_put: the puts of a mark in this batch, minus one.
      {"sync_put", "INSERT INTO " + s + ".sync_marks AS m (channel, profile_id, seq) "
                   "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
                   "ON CONFLICT (channel, profile_id) "
                   "DO UPDATE SET seq = m.seq + EXCLUDED.seq + 1"},
      {"sync_drop", "DELETE FROM " + s + ".sync_marks WHERE channel = $1::text"},
  });
  if (auto st = w.ready(); !st.ok()) {
    return st.error();
  }
  std::unique_ptr<PostgresProfileStore> store(new PostgresProfileStore(
      schema, "PostgreSQL " + w.where() + " schema " + schema, std::move(writer).value()));
  store->begin_sql_ = "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(" +
                      key + "); " + applied;
  for (auto& r : store->readers_) {
    auto c = Connection::open(dsn);
    if (!c) {
      return c.error();
    }
    (*c)->setStatements({
        {"identity", "SELECT profile_id FROM " + s + ".identities WHERE key = $1::text"},
        {"profile", "SELECT data FROM " + s + ".profiles WHERE id = $1::text"},
        {"count", "SELECT count(*) FROM " + s + ".profiles"},
        {"sync_marks", "SELECT profile_id, seq FROM " + s + ".sync_marks WHERE channel = $1::text "
                       "AND profile_id > $2::text ORDER BY profile_id LIMIT $3::bigint"},
        {"sync_count", "SELECT count(*) FROM " + s + ".sync_marks WHERE channel = $1::text"},
        {"profile_ids", "SELECT id FROM " + s + ".profiles WHERE id > $1::text ORDER BY id "
                        "LIMIT $2::bigint"},
        {"size", "SELECT sum(coalesce(pg_total_relation_size(to_regclass(n)), 0))::bigint "
                 "FROM unnest(ARRAY[" + quoteLiteral(s + ".identities") + ", " +
                     quoteLiteral(s + ".profiles") + ", " + quoteLiteral(s + ".outbox") + ", " +
                     quoteLiteral(s + ".sync_marks") + ", " + quoteLiteral(s + ".meta") +
                     "]) AS t (n)"},
    });
    if (auto st = (*c)->ready(); !st.ok()) {
      return st.error();
    }
    r.conn = std::move(c).value();
  }
  return store;
}

PostgresProfileStore::PostgresProfileStore(std::string schema, std::string describe,
                                           std::unique_ptr<Connection> writer)
    : schema_(std::move(schema)), describe_(std::move(describe)), writer_(std::move(writer)) {}

PostgresProfileStore::~PostgresProfileStore() = default;

PostgresProfileStore::Reader& PostgresProfileStore::reader() {
  const std::size_t i = std::hash<std::thread::id>{}(std::this_thread::get_id()) % readers_.size();
  return readers_[i];
}

sdk::Result<std::optional<std::string>> PostgresProfileStore::lookup(const char* statement,
                                                                     const std::string& key) {
  const std::string param = encoded(key);
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  sdk::Error error;
  PgResult result = r.conn->run(statement, {param}, "lookup", &error, true);
  if (!result) {
    return error;
  }
  std::optional<std::string> out;
  if (PQntuples(result.get()) > 0) {
    out = decoded(PQgetvalue(result.get(), 0, 0),
                  static_cast<std::size_t>(PQgetlength(result.get(), 0, 0)));
  }
  return out;
}

sdk::Result<std::optional<std::string>> PostgresProfileStore::findIdentity(const std::string& key) {
  return lookup("identity", key);
}

sdk::Result<std::optional<std::string>> PostgresProfileStore::loadProfile(const std::string& id) {
  return lookup("profile", id);
}

// The parameters of one commit, built before the writer's lock is taken.
struct PostgresProfileStore::CommitParams {
  std::optional<std::pair<ArrayParam, ArrayParam>> identities_put;
  std::optional<ArrayParam> identities_deleted;
  std::optional<std::pair<ArrayParam, ArrayParam>> profiles_put;
  std::optional<ArrayParam> profiles_deleted;
  std::optional<ArrayParam> outbox_deleted;
  std::optional<std::pair<ArrayParam, ArrayParam>> outbox_done;
  std::optional<std::array<ArrayParam, 3>> outbox_put;
  std::optional<std::pair<ArrayParam, ArrayParam>> sync_deleted;
  std::optional<std::array<ArrayParam, 3>> sync_done;
  std::optional<std::array<ArrayParam, 3>> sync_put;
  std::string applied;
};

namespace {

std::optional<ArrayParam> keysParam(const std::vector<std::string>& keys) {
  if (keys.empty()) {
    return std::nullopt;
  }
  ArrayParam a(kTextOid);
  for (const auto& k : keys) {
    a.add(std::string_view(k));
  }
  return a;
}

// key -> value rows, the last one of each key only: SQLite replaces row by row, and one
// PostgreSQL statement may not update a row twice.
std::optional<std::pair<ArrayParam, ArrayParam>> upsertParams(
    const std::vector<std::pair<std::string, std::string>>& rows) {
  if (rows.empty()) {
    return std::nullopt;
  }
  std::unordered_map<std::string_view, std::size_t> last;
  last.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    last[rows[i].first] = i;
  }
  std::pair<ArrayParam, ArrayParam> out{ArrayParam(kTextOid), ArrayParam(kTextOid)};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (last.size() == rows.size() || last[rows[i].first] == i) {
      out.first.add(std::string_view(rows[i].first));
      out.second.add(std::string_view(rows[i].second));
    }
  }
  return out;
}

struct PairHash {
  std::size_t operator()(const std::pair<std::string_view, std::string_view>& p) const noexcept {
    const std::size_t a = std::hash<std::string_view>{}(p.first);
    return a ^ (std::hash<std::string_view>{}(p.second) + 0x9e3779b97f4a7c15ull + (a << 6) +
                (a >> 2));
  }
};

// Each distinct key of `rows` (keyOf(row)) once, in first-seen order: the row it first appears
// in and how many rows name it.
template <typename Key, typename Hash, typename Rows, typename KeyOf>
std::vector<std::pair<std::size_t, std::int64_t>> firstRowsAndPuts(const Rows& rows, KeyOf keyOf) {
  std::unordered_map<Key, std::size_t, Hash> index;  // key -> position in `out`
  std::vector<std::pair<std::size_t, std::int64_t>> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto [it, fresh] = index.try_emplace(keyOf(rows[i]), out.size());
    if (fresh) {
      out.emplace_back(i, 1);
    } else {
      ++out[it->second].second;
    }
  }
  return out;
}

PostgresProfileStore::CommitParams commitParams(const Changes& c) {
  PostgresProfileStore::CommitParams p;
  p.identities_deleted = keysParam(c.identities_deleted);
  p.identities_put = upsertParams(c.identities_put);
  p.profiles_deleted = keysParam(c.profiles_deleted);
  p.profiles_put = upsertParams(c.profiles_put);
  p.outbox_deleted = keysParam(c.outbox_deleted);
  if (!c.outbox_done.empty()) {
    p.outbox_done.emplace(ArrayParam(kTextOid), ArrayParam(kInt8Oid));
    for (const auto& [id, seq] : c.outbox_done) {
      p.outbox_done->first.add(std::string_view(id));
      p.outbox_done->second.add(seq);
    }
  }
  if (!c.outbox_put.empty()) {
    // SQLite, row by row: the first put of an absent id inserts it (seq 0) with its due time,
    // each further put adds 1 to seq and keeps the time. Here: one row per id with the first
    // time and (puts - 1), which the statement inserts as is or adds (+ 1) to the seq.
    const auto ids = firstRowsAndPuts<std::string_view, std::hash<std::string_view>>(
        c.outbox_put, [](const auto& put) { return std::string_view(put.first); });
    p.outbox_put.emplace(std::array<ArrayParam, 3>{ArrayParam(kTextOid), ArrayParam(kInt8Oid),
                                                   ArrayParam(kInt8Oid)});
    for (const auto& [row, puts] : ids) {
      (*p.outbox_put)[0].add(std::string_view(c.outbox_put[row].first));
      (*p.outbox_put)[1].add(c.outbox_put[row].second);
      (*p.outbox_put)[2].add(puts - 1);
    }
  }
  if (!c.sync_deleted.empty()) {
    p.sync_deleted.emplace(ArrayParam(kTextOid), ArrayParam(kTextOid));
    for (const auto& [channel, id] : c.sync_deleted) {
      p.sync_deleted->first.add(std::string_view(channel));
      p.sync_deleted->second.add(std::string_view(id));
    }
  }
  if (!c.sync_done.empty()) {
    p.sync_done.emplace(std::array<ArrayParam, 3>{ArrayParam(kTextOid), ArrayParam(kTextOid),
                                                  ArrayParam(kInt8Oid)});
    for (const auto& m : c.sync_done) {
      (*p.sync_done)[0].add(std::string_view(m.channel));
      (*p.sync_done)[1].add(std::string_view(m.profile_id));
      (*p.sync_done)[2].add(m.seq);
    }
  }
  if (!c.sync_put.empty()) {
    // As outbox_put: one row per mark, with its puts in this batch minus one.
    const auto marks =
        firstRowsAndPuts<std::pair<std::string_view, std::string_view>, PairHash>(
            c.sync_put, [](const auto& put) {
              return std::pair<std::string_view, std::string_view>(put.first, put.second);
            });
    p.sync_put.emplace(std::array<ArrayParam, 3>{ArrayParam(kTextOid), ArrayParam(kTextOid),
                                                 ArrayParam(kInt8Oid)});
    for (const auto& [row, puts] : marks) {
      (*p.sync_put)[0].add(std::string_view(c.sync_put[row].first));
      (*p.sync_put)[1].add(std::string_view(c.sync_put[row].second));
      (*p.sync_put)[2].add(puts - 1);
    }
  }
  if (c.applied) {
    int64Param(p.applied, static_cast<std::int64_t>(*c.applied));
  }
  return p;
}

}  // namespace

sdk::Status PostgresProfileStore::commit(const Changes& c) {
  if (c.empty()) {
    return {};
  }
  const CommitParams p = commitParams(c);
  std::lock_guard lock(writer_mutex_);
  bool retry = false;
  sdk::Status s = commitOnce(c, p, &retry);
  if (!s.ok() && retry) {
    // The connection had broken while idle (a restarted server): nothing was written.
    s = commitOnce(c, p, &retry);
  }
  return s;
}

sdk::Status PostgresProfileStore::commitOnce(const Changes& c, const CommitParams& p,
                                             bool* retry) {
  *retry = false;
  Connection& w = *writer_;
  if (auto s = w.ready(); !s.ok()) {
    return s;
  }
  sdk::Error error;
  auto rollback = [&] {
    if (!w.broken()) {
      sdk::Error ignored;
      (void)w.exec("ROLLBACK", "roll back", &ignored);
    }
  };
  // BEGIN, the lock (commits of every node, one at a time) and the offset before this commit.
  PgResult begun = w.exec(begin_sql_.c_str(), "begin", &error);
  if (!begun) {
    *retry = w.broken();
    rollback();
    return error;
  }
  const std::optional<std::int64_t> before = int64At(begun.get(), 0, 0);

  auto step = [&](const char* name, std::vector<std::string_view> params) {
    return static_cast<bool>(w.run(name, params, name, &error, false));
  };
  // The order of SqliteProfileStore::commit.
  const bool written =
      (!p.identities_deleted || step("identities_delete", {p.identities_deleted->bytes()})) &&
      (!p.identities_put || step("identities_put", {p.identities_put->first.bytes(),
                                                    p.identities_put->second.bytes()})) &&
      (!p.profiles_deleted || step("profiles_delete", {p.profiles_deleted->bytes()})) &&
      (!p.profiles_put ||
       step("profiles_put", {p.profiles_put->first.bytes(), p.profiles_put->second.bytes()})) &&
      (!p.outbox_deleted || step("outbox_delete", {p.outbox_deleted->bytes()})) &&
      (!p.outbox_done ||
       step("outbox_done", {p.outbox_done->first.bytes(), p.outbox_done->second.bytes()})) &&
      (!p.outbox_put || step("outbox_put", {(*p.outbox_put)[0].bytes(), (*p.outbox_put)[1].bytes(),
                                            (*p.outbox_put)[2].bytes()})) &&
      (!p.sync_deleted ||
       step("sync_delete", {p.sync_deleted->first.bytes(), p.sync_deleted->second.bytes()})) &&
      (!p.sync_done || step("sync_done", {(*p.sync_done)[0].bytes(), (*p.sync_done)[1].bytes(),
                                          (*p.sync_done)[2].bytes()})) &&
      (!p.sync_put || step("sync_put", {(*p.sync_put)[0].bytes(), (*p.sync_put)[1].bytes(),
                                        (*p.sync_put)[2].bytes()})) &&
      (!c.applied || step("applied_put", {p.applied}));
  if (!written) {
    rollback();
    return error;
  }
  if (w.exec("COMMIT", "commit", &error)) {
    return {};
  }
  if (!w.broken()) {
    return error;  // refused by the server (a deferred check): rolled back
  }
  // The connection broke during COMMIT: the transaction may or may not have committed. With an
  // offset in the batch, the offset read back tells (unless another node moved it meanwhile:
  // then the outcome stays unknown).
  if (c.applied && w.ready().ok()) {
    sdk::Error ignored;
    if (PgResult now = w.run("applied", {}, "read the applied offset", &ignored, true)) {
      const auto after = int64At(now.get(), 0, 0);
      const auto target = static_cast<std::int64_t>(*c.applied);
      if (before != target && after == target) {
        return {};  // it did
      }
      if (before != target && after == before) {
        return error;  // it did not: nothing written, the batch may simply be retried
      }
    }
  }
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        error.message + " (the connection was lost during COMMIT: whether this "
                                        "batch was written is unknown)");
}

sdk::Result<std::uint64_t> PostgresProfileStore::appliedOffset() {
  std::lock_guard lock(writer_mutex_);
  sdk::Error error;
  PgResult r = writer_->run("applied", {}, "read the applied offset", &error, true);
  if (!r) {
    return error;
  }
  return static_cast<std::uint64_t>(int64At(r.get(), 0, 0).value_or(0));
}

sdk::Result<std::vector<OutboxEntry>> PostgresProfileStore::dueOutbox(std::int64_t now_ms,
                                                                      std::size_t limit) {
  std::string now_param;
  std::string limit_param;
  int64Param(now_param, now_ms);
  int64Param(limit_param, static_cast<std::int64_t>(std::min<std::size_t>(
                              limit, std::numeric_limits<std::int64_t>::max())));
  std::lock_guard lock(writer_mutex_);
  sdk::Error error;
  PgResult r = writer_->run("due", {now_param, limit_param}, "read the outbox", &error, true);
  if (!r) {
    return error;
  }
  std::vector<OutboxEntry> out;
  const int rows = PQntuples(r.get());
  out.reserve(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) {
    out.push_back({decoded(PQgetvalue(r.get(), i, 0),
                           static_cast<std::size_t>(PQgetlength(r.get(), i, 0))),
                   int64At(r.get(), i, 1).value_or(0), int64At(r.get(), i, 2).value_or(0)});
  }
  return out;
}

sdk::Result<std::uint64_t> PostgresProfileStore::profileCount() {
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  sdk::Error error;
  PgResult result = r.conn->run("count", {}, "count", &error, true);
  if (!result) {
    return error;
  }
  return static_cast<std::uint64_t>(int64At(result.get(), 0, 0).value_or(0));
}

sdk::Result<std::vector<SyncMark>> PostgresProfileStore::syncMarks(
    const std::string& channel, const std::string& after_profile_id, std::size_t limit) {
  const std::string channel_param = encoded(channel);
  const std::string after_param = encoded(after_profile_id);  // the encoding keeps the order
  std::string limit_param;
  int64Param(limit_param, static_cast<std::int64_t>(std::min<std::size_t>(
                              limit, std::numeric_limits<std::int64_t>::max())));
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  sdk::Error error;
  PgResult result = r.conn->run("sync_marks", {channel_param, after_param, limit_param},
                                "read the sync marks", &error, true);
  if (!result) {
    return error;
  }
  std::vector<SyncMark> out;
  const int rows = PQntuples(result.get());
  out.reserve(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) {
    out.push_back({channel,
                   decoded(PQgetvalue(result.get(), i, 0),
                           static_cast<std::size_t>(PQgetlength(result.get(), i, 0))),
                   int64At(result.get(), i, 1).value_or(0)});
  }
  return out;
}

sdk::Result<std::uint64_t> PostgresProfileStore::syncMarkCount(const std::string& channel) {
  const std::string param = encoded(channel);
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  sdk::Error error;
  PgResult result = r.conn->run("sync_count", {param}, "count the sync marks", &error, true);
  if (!result) {
    return error;
  }
  return static_cast<std::uint64_t>(int64At(result.get(), 0, 0).value_or(0));
}

sdk::Result<std::vector<std::string>> PostgresProfileStore::profileIds(const std::string& after,
                                                                       std::size_t limit) {
  const std::string after_param = encoded(after);
  std::string limit_param;
  int64Param(limit_param, static_cast<std::int64_t>(std::min<std::size_t>(
                              limit, std::numeric_limits<std::int64_t>::max())));
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  sdk::Error error;
  PgResult result =
      r.conn->run("profile_ids", {after_param, limit_param}, "list the profiles", &error, true);
  if (!result) {
    return error;
  }
  std::vector<std::string> out;
  const int rows = PQntuples(result.get());
  out.reserve(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) {
    out.push_back(decoded(PQgetvalue(result.get(), i, 0),
                          static_cast<std::size_t>(PQgetlength(result.get(), i, 0))));
  }
  return out;
}

sdk::Status PostgresProfileStore::dropSyncChannel(const std::string& channel) {
  const std::string param = encoded(channel);
  std::lock_guard lock(writer_mutex_);
  Connection& w = *writer_;
  // Deleting is idempotent: a connection that broke on the way is reset and the whole
  // transaction run once more, whatever it had done.
  sdk::Error error;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto s = w.ready(); !s.ok()) {
      return s;
    }
    // Under the commits' lock: a commit of another node marking the channel meanwhile would
    // otherwise lock its rows in another order (a deadlock, one of the two refused).
    const bool done = w.exec(begin_sql_.c_str(), "begin", &error) &&
                      w.run("sync_drop", {param}, "drop the sync channel", &error, false) &&
                      w.exec("COMMIT", "commit", &error);
    if (done) {
      return {};
    }
    if (!w.broken()) {
      sdk::Error ignored;
      (void)w.exec("ROLLBACK", "roll back", &ignored);
      break;
    }
  }
  return error;
}

std::uint64_t PostgresProfileStore::sizeBytes() {
  Reader& r = reader();
  std::lock_guard lock(r.mutex);
  sdk::Error error;
  PgResult result = r.conn->run("size", {}, "size", &error, true);
  return result ? static_cast<std::uint64_t>(int64At(result.get(), 0, 0).value_or(0)) : 0;
}

}  // namespace junction::core::profiles
