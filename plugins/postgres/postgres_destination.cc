#include "postgres_destination.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <functional>
#include <limits>

#include "junction/sdk/crypto.h"
#include "junction/sdk/log.h"
#include "junction/sdk/mapping.h"
#include "junction/sdk/metrics.h"
#include "warehouse_schema.h"

namespace junction::plugins::postgres {

namespace json = boost::json;

namespace {

constexpr std::int64_t kHourMs = 3'600'000;
// Identity tuples remembered as written (not sent again): bounded, cleared when full.
constexpr std::size_t kMaxRememberedIdentities = 1'000'000;
// The trait columns a profile row has of its own (configured traits may not take these names).
const std::set<std::string> kProfileColumns = {"person_id", "traits", "traits_at", "updated_at"};

bool validIdentifier(std::string_view name) {
  if (name.empty() || name.size() > 63 ||
      !(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
           c == '_';
  });
}

// Whether any string (key or value) inside `v` holds a NUL character, which PostgreSQL's text
// and jsonb cannot store.
bool hasNul(const json::value& v);
bool hasNul(const json::object& o) {
  return std::any_of(o.begin(), o.end(), [](const auto& kv) {
    return std::string_view(kv.key()).find('\0') != std::string_view::npos || hasNul(kv.value());
  });
}
bool hasNul(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return v.get_string().find('\0') != json::string::npos;
    case json::kind::array:
      return std::any_of(v.get_array().begin(), v.get_array().end(),
                         [](const json::value& e) { return hasNul(e); });
    case json::kind::object:
      return hasNul(v.get_object());
    default:
      return false;
  }
}

// A decimal number as PostgreSQL's numeric reads it: [+-]digits[.digits][e[+-]digits].
bool isDecimal(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
    }
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    ++i;
  }
  std::size_t whole = digits();
  std::size_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    frac = digits();
  }
  if (whole + frac == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      ++i;
    }
    if (digits() == 0) {
      return false;
    }
  }
  return i == s.size();
}

// A number field of an order: a JSON number, or a string holding one. nullopt + `error` when it
// is something else; "" when absent.
std::optional<std::string> numberField(const json::object& props, const char* key,
                                       std::string& error) {
  auto it = props.find(key);
  if (it == props.end() || it->value().is_null()) {
    return std::string();
  }
  const json::value& v = it->value();
  if (v.is_int64() || v.is_uint64() || v.is_double()) {
    return json::serialize(v);
  }
  if (v.is_string() && isDecimal(std::string_view(v.get_string()))) {
    return std::string(v.get_string());
  }
  error = std::string("properties.") + key + " is not a number: " + json::serialize(v).substr(0, 64);
  return std::nullopt;
}

void field(std::string& line, std::string_view value) {
  appendCopyField(line, value);
  line += '\t';
}
void nullableField(std::string& line, std::string_view value) {
  if (value.empty()) {
    line += "\\N\t";
  } else {
    field(line, value);
  }
}

}  // namespace

IdentityKey IdentityKey::of(std::string_view tuple) {
  // std::hash (murmur) and FNV-1a, the latter through splitmix64's finalizer.
  std::uint64_t fnv = 0xcbf29ce484222325ULL;
  for (unsigned char c : tuple) {
    fnv = (fnv ^ c) * 0x100000001b3ULL;
  }
  fnv = (fnv ^ (fnv >> 30)) * 0xbf58476d1ce4e5b9ULL;
  fnv = (fnv ^ (fnv >> 27)) * 0x94d049bb133111ebULL;
  return {std::hash<std::string_view>{}(tuple), fnv ^ (fnv >> 31)};
}

namespace {

// The first 60 bits of md5(message_id): what checksumTerm() computes in SQL.
std::uint64_t checksumOf(std::string_view message_id) {
  const std::string hex = sdk::md5Hex(message_id);
  return std::strtoull(hex.substr(0, 15).c_str(), nullptr, 16);
}

// What `properties->>'key'` gives: a string as it is, any other value as JSON, absent/null "".
std::string textAt(const json::object& props, const char* key) {
  auto it = props.find(key);
  if (it == props.end() || it->value().is_null()) {
    return {};
  }
  return it->value().is_string() ? std::string(it->value().get_string())
                                 : json::serialize(it->value());
}

// Sums of 60-bit checksum terms: 5,000 of them pass 64 bits.
__extension__ using Uint128 = unsigned __int128;

std::string decimal(Uint128 v) {
  if (v == 0) {
    return "0";
  }
  std::string out;
  while (v > 0) {
    out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return out;
}

std::string personIdOf(const sdk::Event& event) {
  return event.userId().empty() ? "anon:" + event.anonymousId() : "user:" + event.userId();
}

// A PostgreSQL array literal of text values: {"a","b\"c"}.
std::string textArray(const std::set<std::string>& values) {
  std::string out = "{";
  for (const auto& v : values) {
    if (out.size() > 1) {
      out += ',';
    }
    out += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

const std::set<std::string>& traitTypes() {
  static const std::set<std::string> types = {"text", "numeric", "bigint", "boolean",
                                              "timestamptz", "jsonb"};
  return types;
}

std::vector<sdk::OptionError> PostgresConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (!validIdentifier(schema)) {
    errors.push_back({"schema", "'" + schema +
                                    "' is not a plain identifier (lower-case letters, digits and "
                                    "'_', starting with a letter or '_', at most 63)"});
  }
  for (const auto& [name, type] : traits) {
    const std::string key = "traits." + std::string(name);
    if (!validIdentifier(name)) {
      errors.push_back({key, "a trait column name must be a plain identifier (lower-case "
                             "letters, digits and '_')"});
    } else if (kProfileColumns.count(std::string(name)) != 0) {
      errors.push_back({key, "'" + std::string(name) + "' is a column of profiles already"});
    }
    if (!type.is_string() || traitTypes().count(std::string(type.get_string())) == 0) {
      errors.push_back({key, "the column type must be one of text, numeric, bigint, boolean, "
                             "timestamptz, jsonb"});
    }
  }
  return errors;
}

const sdk::OptionTable<PostgresConfig>& postgresOptions() {
  static const sdk::OptionTable<PostgresConfig> table{
      sdk::option("dsn", &PostgresConfig::dsn,
                  "libpq connection string or URI (host, port, dbname, user, password, sslmode "
                  "and every other libpq option pass through)")
          .required()
          .secret(),
      sdk::option("schema", &PostgresConfig::schema,
                  "Schema the warehouse tables live in (created and migrated by the plugin)")
          .defaultValue("junction"),
      sdk::option("traits", &PostgresConfig::traits,
                  "Traits kept as columns of profiles, name -> type (text, numeric, bigint, "
                  "boolean, timestamptz, jsonb); every trait stays in profiles.traits too")
          .defaultValue(json::object{{"email", "text"}}),
      sdk::option("partitions_ahead", &PostgresConfig::partitions_ahead,
                  "Day partitions created ahead of today")
          .defaultValue(7)
          .range(1, 366),
      sdk::option("retention_days", &PostgresConfig::retention_days,
                  "Drop day partitions older than this many days (0 keeps them all); each drop "
                  "is recorded in _junction_removals")
          .defaultValue(0)
          .range(0, 100'000),
  };
  return table;
}

StagedRow stageEvent(const sdk::Event& event, bool staging_line) {
  StagedRow row;
  const json::object& body = event.body();
  auto fail = [&](std::string why) {
    row.failure = std::move(why);
    row.copy_line.clear();
    return row;
  };
  if (event.messageId().empty()) {
    return fail("the event has no messageId");
  }
  // A NUL can only be in the JSON text as \u0000: walk the tree only when that is there.
  if (event.json().find("\\u0000") != std::string_view::npos && hasNul(body)) {
    return fail("the event holds a NUL character (\\u0000), which PostgreSQL cannot store");
  }
  static const json::object kEmpty;
  const json::object* props = &kEmpty;
  if (auto it = body.find("properties"); it != body.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      return fail("properties is not an object");
    }
    props = &it->value().get_object();
  }
  const json::object* context = &kEmpty;
  if (auto it = body.find("context"); it != body.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      return fail("context is not an object");
    }
    context = &it->value().get_object();
  }
  const json::object* traits = nullptr;
  if (event.type() == sdk::EventType::Identify) {
    if (auto it = body.find("traits"); it != body.end() && !it->value().is_null()) {
      if (!it->value().is_object()) {
        return fail("traits is not an object");
      }
      traits = &it->value().get_object();
    }
  }
  const auto& h = event.header();
  const std::int64_t ts = h.timestamp_ms != 0 ? h.timestamp_ms : h.received_at_ms;
  // Years 0001-9999: what ISO-8601 writes with four digits and a day partition can be named by.
  if (ts < -62135596800000LL || ts > 253402300799999LL) {
    return fail("timestamp " + std::to_string(ts) + " ms is outside the years 0001-9999");
  }
  row.day = dayOf(ts);

  std::string order_id;
  std::string revenue;
  std::string total;
  std::string currency;
  std::string products;
  const bool purchase = event.type() == sdk::EventType::Track && event.name() == "Order Completed";
  if (purchase) {
    std::string error;
    auto r = numberField(*props, "revenue", error);
    auto t = numberField(*props, "total", error);
    if (!r || !t) {
      return fail(error);
    }
    revenue = *r;
    total = *t;
    if (auto it = props->find("order_id"); it != props->end() && !it->value().is_null()) {
      if (it->value().is_string()) {
        order_id = std::string(it->value().get_string());
      } else if (it->value().is_int64() || it->value().is_uint64()) {
        order_id = json::serialize(it->value());
      } else {
        return fail("properties.order_id is not a string or an integer");
      }
    }
    if (auto it = props->find("currency"); it != props->end() && !it->value().is_null()) {
      if (!it->value().is_string()) {
        return fail("properties.currency is not a string");
      }
      currency = std::string(it->value().get_string());
    }
    products = "[]";
    if (auto it = props->find("products"); it != props->end() && !it->value().is_null()) {
      if (!it->value().is_array()) {
        return fail("properties.products is not a list");
      }
      products = json::serialize(it->value());
    }
  }

  std::string email;
  if (auto found = sdk::emailOf(body)) {
    email = *found;
    std::transform(email.begin(), email.end(), email.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  char ts_text[sdk::kIsoTimestampMaxSize];
  char received_text[sdk::kIsoTimestampMaxSize];
  sdk::formatIsoTimestamp(ts, ts_text);
  sdk::formatIsoTimestamp(h.received_at_ms != 0 ? h.received_at_ms : ts, received_text);
  const std::string person = personIdOf(event);
  const std::string props_text = json::serialize(*props);
  const std::string context_text = json::serialize(*context);
  const bool identify = event.type() == sdk::EventType::Identify;
  // The columns the staging table's line and the events line begin with.
  auto head = [&](std::string& out) {
    field(out, event.messageId());
    field(out, sdk::toString(event.type()));
    nullableField(out, event.name());
    field(out, ts_text);
    field(out, received_text);
    field(out, h.source_id.empty() ? "unknown" : h.source_id);
    field(out, person);
  };

  if (staging_line || identify) {
    std::string& line = row.copy_line;
    line.reserve(event.json().size() + 256);
    head(line);
    field(line, event.userId());
    field(line, event.anonymousId());
    field(line, email);
    field(line, props_text);
    field(line, context_text);
    if (traits != nullptr) {
      field(line, json::serialize(*traits));
    } else {
      line += "\\N\t";
    }
    nullableField(line, order_id);
    nullableField(line, revenue);
    nullableField(line, total);
    nullableField(line, currency);
    if (purchase) {
      field(line, products);
    } else {
      line += "\\N\t";
    }
    line.back() = '\n';
  }

  std::string& ev = row.events_line;
  ev.reserve(event.json().size() + 128);
  head(ev);
  nullableField(ev, event.userId());
  nullableField(ev, event.anonymousId());
  field(ev, props_text);
  field(ev, context_text);
  ev.back() = '\n';
  if (event.type() == sdk::EventType::Page) {
    std::string& pg = row.page_line;
    field(pg, event.messageId());
    field(pg, ts_text);
    field(pg, person);
    nullableField(pg, event.name());
    for (const char* key : {"category", "url", "path", "title", "referrer", "search"}) {
      nullableField(pg, textAt(*props, key));
    }
    field(pg, props_text);
    pg.back() = '\n';
  }
  if (purchase) {
    std::string& pu = row.purchase_line;
    field(pu, event.messageId());
    field(pu, ts_text);
    field(pu, person);
    nullableField(pu, order_id);
    nullableField(pu, revenue);
    nullableField(pu, total);
    nullableField(pu, currency);
    field(pu, products);
    pu.back() = '\n';
  }
  row.identify = identify;
  auto identity = [&](const char* kind, const std::string& value) {
    if (value.empty()) {
      return;
    }
    std::string t;
    field(t, kind);
    field(t, value);
    field(t, person);
    // Known by (kind, value, person): the time does not matter once written.
    row.identity_keys.push_back(IdentityKey::of(t));
    field(t, ts_text);
    t.back() = '\n';
    row.identity_lines.push_back(std::move(t));
  };
  identity("userId", event.userId());
  identity("anonymousId", event.anonymousId());
  identity("email", email);
  row.checksum = checksumOf(event.messageId());
  row.ts_ms = ts;
  return row;
}

// --- the destination -------------------------------------------------------------------------

PostgresDestination::PostgresDestination(PostgresConfig config, sdk::DestinationContext& ctx)
    : config_(std::move(config)),
      ctx_(ctx),
      schema_(quoteIdent(config_.schema)),
      rows_inserted_(ctx.metrics().counter("junction_postgres_rows_inserted_total",
                                           "Events inserted into the warehouse")),
      rows_duplicate_(ctx.metrics().counter(
          "junction_postgres_rows_duplicate_total",
          "Events delivered again and skipped (already in the warehouse)")),
      batches_split_(ctx.metrics().counter(
          "junction_postgres_batches_split_total",
          "Batches the server refused for their data, split to find the events at fault")) {
  const std::string stage = "pg_temp._junction_stage";
  pages_sql_ = renderSql(
      "INSERT INTO {S}.pages (message_id, \"timestamp\", person_id, name, category, url, path, "
      "title, referrer, search, properties) "
      "SELECT message_id, ts, person_id, name, properties->>'category', properties->>'url', "
      "properties->>'path', properties->>'title', properties->>'referrer', "
      "properties->>'search', properties FROM " + stage + " WHERE type = 'page' "
      "ON CONFLICT (message_id, \"timestamp\") DO NOTHING;\n"
      "INSERT INTO {S}.purchases (message_id, \"timestamp\", person_id, order_id, revenue, total, "
      "currency, products) "
      "SELECT message_id, ts, person_id, order_id, revenue, total, currency, products FROM " +
          stage + " WHERE products IS NOT NULL "
      "ON CONFLICT (message_id, \"timestamp\") DO NOTHING;\n",
      schema_);
  identities_sql_ = renderSql(
      "INSERT INTO {S}.identities AS i (kind, value, person_id, first_seen) "
      "SELECT DISTINCT ON (kind, value) kind, value, person_id, ts FROM pg_temp._junction_stage_ids "
      "ORDER BY kind, value, (person_id LIKE 'user:%') DESC, ts "
      "ON CONFLICT (kind, value) DO UPDATE SET person_id = EXCLUDED.person_id, "
      "first_seen = LEAST(i.first_seen, EXCLUDED.first_seen) "
      "WHERE i.person_id LIKE 'anon:%' AND EXCLUDED.person_id LIKE 'user:%'",
      schema_);
  profiles_sql_ = renderSql(
      "INSERT INTO {S}.profiles AS p (person_id, traits, traits_at) "
      "SELECT person_id, jsonb_object_agg(key, value), max(ts) FROM ("
      "  SELECT DISTINCT ON (person_id, key) person_id, key, value, ts "
      "  FROM " + stage + ", jsonb_each(traits) WHERE type = 'identify' "
      "  ORDER BY person_id, key, ts DESC) t GROUP BY person_id "
      "ON CONFLICT (person_id) DO UPDATE SET "
      "traits = CASE WHEN EXCLUDED.traits_at >= p.traits_at THEN p.traits || EXCLUDED.traits "
      "ELSE EXCLUDED.traits || p.traits END, "
      "traits_at = GREATEST(p.traits_at, EXCLUDED.traits_at), updated_at = now()",
      schema_);
}

PostgresDestination::~PostgresDestination() = default;

std::unique_ptr<PgConnection> PostgresDestination::acquire(PgError* error) {
  {
    std::lock_guard lock(pool_mutex_);
    while (!pool_.empty()) {
      auto conn = std::move(pool_.back());
      pool_.pop_back();
      if (conn->ok()) {
        return conn;
      }
    }
  }
  auto conn = PgConnection::connect(config_.dsn, error);
  if (!conn) {
    return nullptr;
  }
  const std::string temp =
      "SET TIME ZONE 'UTC';"
      "CREATE TEMP TABLE _junction_stage (message_id text, type text, name text, ts timestamptz, "
      "received_at timestamptz, source text, person_id text, user_id text, anonymous_id text, "
      "email text, properties jsonb, context jsonb, traits jsonb, order_id text, revenue numeric, "
      "total numeric, currency text, products jsonb) ON COMMIT DELETE ROWS;"
      "CREATE TEMP TABLE _junction_stage_ids (kind text, value text, person_id text, "
      "ts timestamptz) ON COMMIT DELETE ROWS;";
  if (!conn->exec(temp, error)) {
    return nullptr;
  }
  return conn;
}

void PostgresDestination::release(std::unique_ptr<PgConnection> conn) {
  if (!conn || !conn->ok() || PQtransactionStatus(conn->raw()) != PQTRANS_IDLE) {
    return;  // a broken connection, or one left inside a transaction: not reused
  }
  std::lock_guard lock(pool_mutex_);
  pool_.push_back(std::move(conn));
}

sdk::Status PostgresDestination::start() {
  PgError error;
  auto conn = acquire(&error);
  if (!conn) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, error.message);
  }
  if (!migrate(*conn, &error) || !evolveTraitColumns(*conn, &error)) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, "schema " + config_.schema + ": " + error.message);
  }
  const std::int64_t today = dayOf(ctx_.clock().nowMs());
  std::set<std::int64_t> days;
  for (std::int64_t d = today - 1; d <= today + config_.partitions_ahead; ++d) {
    days.insert(d);
  }
  if (!ensurePartitions(*conn, days, &error)) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, "partitions: " + error.message);
  }
  release(std::move(conn));
  if (config_.retention_days > 0) {
    if (auto dropped = applyRetention(); !dropped) {
      ctx_.log().warn("retention failed", {{"error", dropped.error().message}});
    }
  }
  last_retention_ms_ = ctx_.clock().nowMs();
  ctx_.log().info("warehouse ready", {{"schema", config_.schema},
                                      {"schema_version", latestSchemaVersion()}});
  return {};
}

void PostgresDestination::stop() {
  std::lock_guard lock(pool_mutex_);
  pool_.clear();
}

bool PostgresDestination::migrate(PgConnection& conn, PgError* error) {
  auto rollback = [&] {
    PgError ignored;
    conn.exec("ROLLBACK", &ignored);
    return false;
  };
  for (const Migration& m : migrations()) {
    // One transaction per migration, under a lock every daemon on this schema takes.
    if (!conn.exec("BEGIN", error)) {
      return false;
    }
    if (!conn.exec("SELECT pg_advisory_xact_lock(hashtext(" +
                       quoteLiteral("junction migrate " + config_.schema) + "))",
                   error) ||
        !conn.exec("CREATE SCHEMA IF NOT EXISTS " + schema_ +
                       "; CREATE TABLE IF NOT EXISTS " + schema_ +
                       "._junction_migrations (version integer PRIMARY KEY, description text "
                       "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                   error)) {
      return rollback();
    }
    auto done = conn.query("SELECT 1 FROM " + schema_ + "._junction_migrations WHERE version = $1",
                           {std::to_string(m.version)}, error);
    if (!done) {
      return rollback();
    }
    if (PQntuples(done.get()) > 0) {
      rollback();
      continue;
    }
    if (!conn.exec(renderSql(m.sql, schema_), error)) {
      error->message = "migration " + std::to_string(m.version) + " (" + m.description +
                       "): " + error->message;
      return rollback();
    }
    if (!conn.query("INSERT INTO " + schema_ +
                        "._junction_migrations (version, description) VALUES ($1, $2)",
                    {std::to_string(m.version), m.description}, error) ||
        !conn.exec("COMMIT", error)) {
      return rollback();
    }
    ctx_.log().info("schema migrated", {{"schema", config_.schema},
                                        {"version", m.version},
                                        {"description", m.description}});
  }
  // A schema newer than this plugin knows: refuse rather than load into what we do not know.
  auto newest = conn.query("SELECT max(version) FROM " + schema_ + "._junction_migrations", {}, error);
  if (!newest) {
    return false;
  }
  if (std::atoi(PQgetvalue(newest.get(), 0, 0)) > latestSchemaVersion()) {
    *error = {"", ErrorKind::Other,
              "the schema is at version " + std::string(PQgetvalue(newest.get(), 0, 0)) +
                  ", newer than this plugin's " + std::to_string(latestSchemaVersion()) +
                  " (upgrade Junction)"};
    return false;
  }
  return true;
}

bool PostgresDestination::evolveTraitColumns(PgConnection& conn, PgError* error) {
  auto existing = conn.query(
      "SELECT column_name, data_type FROM information_schema.columns "
      "WHERE table_schema = $1 AND table_name = 'profiles'",
      {config_.schema}, error);
  if (!existing) {
    return false;
  }
  std::map<std::string, std::string> columns;
  for (int i = 0; i < PQntuples(existing.get()); ++i) {
    columns[PQgetvalue(existing.get(), i, 0)] = PQgetvalue(existing.get(), i, 1);
  }
  for (const auto& [name_view, type_value] : config_.traits) {
    const std::string name(name_view);
    const std::string type(type_value.get_string());
    if (columns.count(name) != 0) {
      continue;  // kept as it is (a changed type is not migrated: see README)
    }
    const std::string value = "(traits->>" + quoteLiteral(name) + ")";
    std::string expr;
    if (type == "text") {
      expr = value;
    } else if (type == "jsonb") {
      expr = "(traits->" + quoteLiteral(name) + ")";
    } else {
      expr = schema_ + "._junction_" + type + value;
    }
    // A generated column: filled for every existing row now, and kept in step with traits.
    if (!conn.exec("ALTER TABLE " + schema_ + ".profiles ADD COLUMN IF NOT EXISTS " +
                       quoteIdent(name) + " " + type + " GENERATED ALWAYS AS (" + expr +
                       ") STORED",
                   error)) {
      error->message = "adding trait column " + name + ": " + error->message;
      return false;
    }
    ctx_.log().info("trait column added", {{"column", name}, {"type", type}});
  }
  return true;
}

bool PostgresDestination::ensurePartitions(PgConnection& conn, const std::set<std::int64_t>& days,
                                           PgError* error) {
  std::set<std::int64_t> missing;
  {
    std::lock_guard lock(days_mutex_);
    for (auto d : days) {
      if (known_days_.count(d) == 0) {
        missing.insert(d);
      }
    }
  }
  if (missing.empty()) {
    return true;
  }
  std::string sql = "BEGIN; SELECT pg_advisory_xact_lock(hashtext(" +
                    quoteLiteral("junction partitions " + config_.schema) + "));";
  for (auto d : missing) {
    for (const char* table : kFactTables) {
      sql += "CREATE TABLE IF NOT EXISTS " + schema_ + "." +
             quoteIdent(std::string(table) + "_p" + dayName(d)) + " PARTITION OF " + schema_ +
             "." + table + " FOR VALUES FROM (" + quoteLiteral(dayStart(d)) + ") TO (" +
             quoteLiteral(dayStart(d + 1)) + ");";
    }
  }
  sql += "COMMIT;";
  if (!conn.exec(sql, error)) {
    PgError ignored;
    conn.exec("ROLLBACK", &ignored);
    return false;
  }
  std::lock_guard lock(days_mutex_);
  known_days_.insert(missing.begin(), missing.end());
  return true;
}

bool PostgresDestination::load(PgConnection& conn, const std::vector<const StagedRow*>& rows,
                               std::size_t failed, PgError* error) {
  if (loadDirect(conn, rows, failed, error)) {
    return true;
  }
  if (error->sqlstate != "23505") {
    return false;
  }
  // Some row is in the warehouse already (a redelivery after a crash): the staging path skips
  // what is there.
  return loadStaged(conn, rows, failed, error);
}

bool PostgresDestination::loadDirect(PgConnection& conn, const std::vector<const StagedRow*>& rows,
                                     std::size_t failed, PgError* error) {
  std::set<std::int64_t> days;
  std::string events;
  std::string pages;
  std::string purchases;
  std::string identifies;
  std::string identities;
  std::vector<IdentityKey> new_identities;
  Uint128 checksum = 0;
  std::int64_t min_ts = std::numeric_limits<std::int64_t>::max();
  std::int64_t max_ts = std::numeric_limits<std::int64_t>::min();
  {
    std::size_t bytes = 0;
    for (const StagedRow* r : rows) {
      bytes += r->events_line.size();
    }
    events.reserve(bytes);
    std::lock_guard lock(identities_mutex_);
    boost::unordered_flat_set<IdentityKey, IdentityKeyHash> in_batch;
    for (const StagedRow* r : rows) {
      days.insert(r->day);
      events += r->events_line;
      pages += r->page_line;
      purchases += r->purchase_line;
      if (r->identify) {
        identifies += r->copy_line;
      }
      for (std::size_t i = 0; i < r->identity_lines.size(); ++i) {
        const IdentityKey key = r->identity_keys[i];
        if (!written_identities_.contains(key) && in_batch.insert(key).second) {
          identities += r->identity_lines[i];
          new_identities.push_back(key);
        }
      }
      checksum += r->checksum;
      min_ts = std::min(min_ts, r->ts_ms);
      max_ts = std::max(max_ts, r->ts_ms);
    }
  }
  if (!ensurePartitions(conn, days, error)) {
    return false;
  }
  auto rollback = [&] {
    PgError ignored;
    conn.exec("ROLLBACK", &ignored);
    return false;
  };
  if (!conn.exec("BEGIN", error)) {
    return false;
  }
  const std::string s = schema_;
  if (!conn.copyIn("COPY " + s + ".events (message_id, type, name, \"timestamp\", received_at, "
                   "source, person_id, user_id, anonymous_id, properties, context) FROM STDIN",
                   events, error) ||
      (!pages.empty() &&
       !conn.copyIn("COPY " + s + ".pages (message_id, \"timestamp\", person_id, name, category, "
                    "url, path, title, referrer, search, properties) FROM STDIN",
                    pages, error)) ||
      (!purchases.empty() &&
       !conn.copyIn("COPY " + s + ".purchases (message_id, \"timestamp\", person_id, order_id, "
                    "revenue, total, currency, products) FROM STDIN",
                    purchases, error)) ||
      (!identities.empty() &&
       (!conn.copyIn("COPY pg_temp._junction_stage_ids FROM STDIN", identities, error) ||
        !conn.exec(identities_sql_, error))) ||
      (!identifies.empty() &&
       (!conn.copyIn("COPY pg_temp._junction_stage FROM STDIN", identifies, error) ||
        !conn.exec(profiles_sql_, error)))) {
    return rollback();
  }
  if (!conn.query("INSERT INTO " + s + "._junction_loads (rows_offered, rows_inserted, duplicates, "
                  "failed, checksum, min_event_time, max_event_time) "
                  "VALUES ($1, $2, 0, $3, $4, $5, $6)",
                  {std::to_string(rows.size() + failed), std::to_string(rows.size()),
                   std::to_string(failed), decimal(checksum), sdk::formatIsoTimestamp(min_ts),
                   sdk::formatIsoTimestamp(max_ts)},
                  error) ||
      !conn.exec("COMMIT", error)) {
    return rollback();
  }
  rows_inserted_.inc(rows.size());
  std::lock_guard lock(identities_mutex_);
  if (written_identities_.size() + new_identities.size() > kMaxRememberedIdentities) {
    written_identities_.clear();
  }
  written_identities_.insert(new_identities.begin(), new_identities.end());
  return true;
}

bool PostgresDestination::loadStaged(PgConnection& conn, const std::vector<const StagedRow*>& rows,
                                     std::size_t failed, PgError* error) {
  std::set<std::int64_t> days;
  std::string data;
  for (const StagedRow* r : rows) {
    days.insert(r->day);
    // deliver() stages without the staging table's line (the direct COPY needs none): made now.
    data += r->copy_line.empty() && r->event != nullptr ? stageEvent(*r->event).copy_line
                                                        : r->copy_line;
  }
  if (!ensurePartitions(conn, days, error)) {
    return false;
  }
  auto rollback = [&] {
    PgError ignored;
    conn.exec("ROLLBACK", &ignored);
    return false;
  };
  if (!conn.exec("BEGIN", error)) {
    return false;
  }
  if (!conn.copyIn("COPY pg_temp._junction_stage FROM STDIN", data, error)) {
    return rollback();
  }
  // The identities of this batch not yet known to be written (linked people, emails).
  if (!conn.exec("INSERT INTO pg_temp._junction_stage_ids (kind, value, person_id, ts) "
                 "SELECT DISTINCT ON (kind, value) kind, value, person_id, ts FROM ("
                 "SELECT 'userId' AS kind, user_id AS value, person_id, ts FROM pg_temp._junction_stage WHERE user_id <> '' "
                 "UNION ALL SELECT 'anonymousId', anonymous_id, person_id, ts FROM pg_temp._junction_stage WHERE anonymous_id <> '' "
                 "UNION ALL SELECT 'email', email, person_id, ts FROM pg_temp._junction_stage WHERE email <> '') ids "
                 "ORDER BY kind, value, (person_id LIKE 'user:%') DESC, ts",
                 error) ||
      !conn.exec(pages_sql_, error) || !conn.exec(identities_sql_, error) ||
      !conn.exec(profiles_sql_, error)) {
    return rollback();
  }
  auto loaded = conn.query(
      "WITH ins AS (INSERT INTO " + schema_ +
          ".events (message_id, type, name, \"timestamp\", received_at, source, person_id, "
          "user_id, anonymous_id, properties, context) "
          "SELECT message_id, type, name, ts, received_at, source, person_id, "
          "NULLIF(user_id, ''), NULLIF(anonymous_id, ''), properties, context "
          "FROM pg_temp._junction_stage "
          "ON CONFLICT (message_id, \"timestamp\") DO NOTHING RETURNING message_id, \"timestamp\") "
          "INSERT INTO " + schema_ +
          "._junction_loads (rows_offered, rows_inserted, duplicates, failed, checksum, "
          "min_event_time, max_event_time) "
          "SELECT $1::integer, count(*), $2::integer - count(*), $3::integer, "
          "COALESCE(sum(" + checksumTerm("message_id") + "), 0), min(\"timestamp\"), "
          "max(\"timestamp\") FROM ins RETURNING rows_inserted, duplicates",
      {std::to_string(rows.size() + failed), std::to_string(rows.size()), std::to_string(failed)},
      error);
  if (!loaded) {
    return rollback();
  }
  if (!conn.exec("COMMIT", error)) {
    return rollback();
  }
  rows_inserted_.inc(std::strtoull(PQgetvalue(loaded.get(), 0, 0), nullptr, 10));
  rows_duplicate_.inc(std::strtoull(PQgetvalue(loaded.get(), 0, 1), nullptr, 10));
  return true;
}

void PostgresDestination::loadSplitting(PgConnection& conn, std::span<const sdk::Event> batch,
                                        const std::vector<StagedRow>& staged,
                                        std::vector<std::size_t> positions, std::size_t failed,
                                        std::vector<sdk::Outcome>& outcomes) {
  std::vector<const StagedRow*> rows;
  rows.reserve(positions.size());
  for (auto p : positions) {
    rows.push_back(&staged[p]);
  }
  PgError error;
  bool ok = load(conn, rows, failed, &error);
  if (!ok && error.sqlstate == "23514" &&
      error.message.find("no partition") != std::string::npos) {
    // A partition this instance created is gone (dropped by retention elsewhere): again.
    {
      std::lock_guard lock(days_mutex_);
      known_days_.clear();
    }
    ok = load(conn, rows, failed, &error);
  }
  if (ok) {
    for (auto p : positions) {
      outcomes[p] = sdk::Outcome::delivered();
    }
    return;
  }
  if (error.kind != ErrorKind::Data) {
    for (auto p : positions) {
      outcomes[p] = sdk::Outcome::retry("PostgreSQL: " + error.message);
    }
    return;
  }
  if (positions.size() == 1) {
    outcomes[positions[0]] = sdk::Outcome::failed("PostgreSQL refused the event: " + error.message);
    ctx_.log().warn("event refused by PostgreSQL",
                    {{"messageId", batch[positions[0]].messageId()}, {"error", error.message}});
    return;
  }
  batches_split_.inc();
  const std::size_t half = positions.size() / 2;
  std::vector<std::size_t> first(positions.begin(), positions.begin() + static_cast<std::ptrdiff_t>(half));
  std::vector<std::size_t> second(positions.begin() + static_cast<std::ptrdiff_t>(half), positions.end());
  loadSplitting(conn, batch, staged, std::move(first), failed, outcomes);
  loadSplitting(conn, batch, staged, std::move(second), 0, outcomes);
}

std::vector<sdk::Outcome> PostgresDestination::deliver(std::span<const sdk::Event> batch) {
  std::vector<sdk::Outcome> outcomes(batch.size());
  std::vector<StagedRow> staged;
  staged.reserve(batch.size());
  std::vector<std::size_t> positions;
  std::size_t failed = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    staged.push_back(stageEvent(batch[i], /*staging_line=*/false));
    staged.back().event = &batch[i];
    if (!staged.back().failure.empty()) {
      outcomes[i] = sdk::Outcome::failed(staged.back().failure);
      ++failed;
    } else {
      positions.push_back(i);
    }
  }
  if (positions.empty()) {
    return outcomes;
  }
  PgError error;
  auto conn = acquire(&error);
  if (!conn) {
    for (auto p : positions) {
      outcomes[p] = sdk::Outcome::retry(error.message);
    }
    return outcomes;
  }
  loadSplitting(*conn, batch, staged, std::move(positions), failed, outcomes);
  release(std::move(conn));
  maybeApplyRetention();
  return outcomes;
}

void PostgresDestination::maybeApplyRetention() {
  const std::int64_t now = ctx_.clock().nowMs();
  {
    std::lock_guard lock(days_mutex_);
    if (now - last_retention_ms_ < kHourMs) {
      return;
    }
    last_retention_ms_ = now;
  }
  PgError error;
  if (auto conn = acquire(&error)) {
    const std::int64_t today = dayOf(now);
    std::set<std::int64_t> ahead;
    for (std::int64_t d = today; d <= today + config_.partitions_ahead; ++d) {
      ahead.insert(d);
    }
    if (!ensurePartitions(*conn, ahead, &error)) {
      ctx_.log().warn("creating partitions ahead failed", {{"error", error.message}});
    }
    release(std::move(conn));
  }
  if (config_.retention_days > 0) {
    if (auto dropped = applyRetention(); !dropped) {
      ctx_.log().warn("retention failed", {{"error", dropped.error().message}});
    }
  }
}

sdk::Result<int> PostgresDestination::applyRetention() {
  PgError error;
  auto conn = acquire(&error);
  if (!conn) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, error.message);
  }
  auto parts = conn->query(
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
      "WHERE i.inhparent = ($1 || '.events')::regclass",
      {schema_}, &error);
  if (!parts) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, error.message);
  }
  const std::int64_t cutoff = dayOf(ctx_.clock().nowMs()) - config_.retention_days;
  std::vector<std::int64_t> old_days;
  for (int i = 0; i < PQntuples(parts.get()); ++i) {
    const std::int64_t day = dayOfPartition("events", PQgetvalue(parts.get(), i, 0));
    if (day >= 0 && day < cutoff) {
      old_days.push_back(day);
    }
  }
  int dropped = 0;
  for (auto day : old_days) {
    const std::string suffix = "_p" + dayName(day);
    std::string sql = "BEGIN; SELECT pg_advisory_xact_lock(hashtext(" +
                      quoteLiteral("junction partitions " + config_.schema) + "));" +
                      "INSERT INTO " + schema_ +
                      "._junction_removals (reason, rows_removed, checksum) SELECT " +
                      quoteLiteral("retention " + dayStart(day).substr(0, 10)) +
                      ", count(*), COALESCE(sum(" + checksumTerm("message_id") + "), 0) FROM " +
                      schema_ + "." + quoteIdent("events" + suffix) + ";";
    for (const char* table : kFactTables) {
      sql += "DROP TABLE IF EXISTS " + schema_ + "." + quoteIdent(table + suffix) + ";";
    }
    sql += "COMMIT;";
    if (!conn->exec(sql, &error)) {
      PgError ignored;
      conn->exec("ROLLBACK", &ignored);
      return sdk::makeError(sdk::ErrorCode::Unavailable, error.message);
    }
    {
      std::lock_guard lock(days_mutex_);
      known_days_.erase(day);
    }
    ++dropped;
    ctx_.log().info("partition dropped by retention", {{"day", dayStart(day).substr(0, 10)},
                                                       {"retention_days", config_.retention_days}});
  }
  release(std::move(conn));
  return dropped;
}

sdk::Outcome PostgresDestination::erase(const sdk::Person& person) {
  if (person.user_id.empty() && person.anonymous_id.empty() && person.email.empty()) {
    return sdk::Outcome::failed("nobody to erase: no userId, anonymousId or email");
  }
  PgError error;
  auto conn = acquire(&error);
  if (!conn) {
    return sdk::Outcome::retry(error.message);
  }
  auto retry = [&] {
    PgError ignored;
    conn->exec("ROLLBACK", &ignored);
    return sdk::Outcome::retry("PostgreSQL: " + error.message);
  };
  std::string email = person.email;
  std::transform(email.begin(), email.end(), email.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!conn->exec("BEGIN", &error)) {
    return retry();
  }
  // Everyone these identifiers are, and every anonymous id linked to them.
  auto found = conn->query(
      "SELECT DISTINCT person_id FROM " + schema_ +
          ".identities WHERE (kind = 'userId' AND value = $1) OR (kind = 'anonymousId' AND "
          "value = $2) OR (kind = 'email' AND value = $3)",
      {person.user_id, person.anonymous_id, email}, &error);
  if (!found) {
    return retry();
  }
  std::set<std::string> persons;
  if (!person.user_id.empty()) {
    persons.insert("user:" + person.user_id);
  }
  if (!person.anonymous_id.empty()) {
    persons.insert("anon:" + person.anonymous_id);
  }
  for (int i = 0; i < PQntuples(found.get()); ++i) {
    persons.insert(PQgetvalue(found.get(), i, 0));
  }
  auto anons = conn->query("SELECT value FROM " + schema_ +
                               ".identities WHERE kind = 'anonymousId' AND person_id = ANY($1)",
                           {textArray(persons)}, &error);
  if (!anons) {
    return retry();
  }
  std::set<std::string> anonymous_ids;
  if (!person.anonymous_id.empty()) {
    anonymous_ids.insert(person.anonymous_id);
  }
  for (int i = 0; i < PQntuples(anons.get()); ++i) {
    anonymous_ids.insert(PQgetvalue(anons.get(), i, 0));
    persons.insert("anon:" + std::string(PQgetvalue(anons.get(), i, 0)));
  }
  const std::string p = textArray(persons);
  const std::string a = textArray(anonymous_ids);
  auto removed = conn->query(
      "WITH d AS (DELETE FROM " + schema_ +
          ".events WHERE person_id = ANY($1) OR anonymous_id = ANY($2) RETURNING message_id) "
          "INSERT INTO " + schema_ +
          "._junction_removals (reason, rows_removed, checksum) SELECT 'erase', count(*), "
          "COALESCE(sum(" + checksumTerm("message_id") + "), 0) FROM d RETURNING rows_removed",
      {p, a}, &error);
  if (!removed) {
    return retry();
  }
  for (const char* table : {"pages", "purchases", "profiles"}) {
    if (!conn->query("DELETE FROM " + schema_ + "." + table + " WHERE person_id = ANY($1)", {p},
                     &error)) {
      return retry();
    }
  }
  if (!conn->query("DELETE FROM " + schema_ +
                       ".identities WHERE person_id = ANY($1) OR (kind = 'anonymousId' AND value "
                       "= ANY($2)) OR (kind = 'userId' AND value = $3) OR (kind = 'email' AND "
                       "value = $4)",
                   {p, a, person.user_id, email}, &error) ||
      !conn->exec("COMMIT", &error)) {
    return retry();
  }
  const std::string events_removed = PQgetvalue(removed.get(), 0, 0);
  release(std::move(conn));
  {
    std::lock_guard lock(identities_mutex_);
    written_identities_.clear();  // some are gone now: write them again when they come back
  }
  sdk::Outcome done = sdk::Outcome::delivered();
  done.reason = "removed " + events_removed + " events of " + std::to_string(persons.size()) +
                " person ids from the warehouse";
  return done;
}

sdk::Result<sdk::Verification> PostgresDestination::verify(const sdk::DeliveredCount& daemon) {
  PgError error;
  auto conn = acquire(&error);
  if (!conn) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, error.message);
  }
  const std::string s = schema_;
  auto r = conn->query(
      "SELECT l.n, l.offered, l.inserted, l.duplicates, l.failed, r.removed, e.rows, "
      "(l.checksum - r.checksum) = e.checksum "
      "FROM (SELECT count(*) AS n, COALESCE(sum(rows_offered), 0) AS offered, "
      "COALESCE(sum(rows_inserted), 0) AS inserted, COALESCE(sum(duplicates), 0) AS duplicates, "
      "COALESCE(sum(failed), 0) AS failed, COALESCE(sum(checksum), 0) AS checksum "
      "FROM " + s + "._junction_loads) l, "
      "(SELECT COALESCE(sum(rows_removed), 0) AS removed, COALESCE(sum(checksum), 0) AS checksum "
      "FROM " + s + "._junction_removals) r, "
      "(SELECT count(*) AS rows, COALESCE(sum(" + checksumTerm("message_id") + "), 0) AS checksum "
      "FROM " + s + ".events) e",
      {}, &error);
  if (!r) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, error.message);
  }
  release(std::move(conn));
  auto num = [&](int col) { return std::strtoull(PQgetvalue(r.get(), 0, col), nullptr, 10); };
  const std::uint64_t loads = num(0);
  const std::uint64_t offered = num(1);
  const std::uint64_t inserted = num(2);
  const std::uint64_t duplicates = num(3);
  const std::uint64_t refused = num(4);
  const std::uint64_t removed = num(5);
  const std::uint64_t rows = num(6);
  const bool checksum_ok = std::string_view(PQgetvalue(r.get(), 0, 7)) == "t";
  const std::uint64_t delivered = daemon.events;

  sdk::Verification v;
  std::vector<std::string> problems;
  if (rows + removed != inserted) {
    problems.push_back("the events table holds " + std::to_string(rows) + " rows, but loads inserted " +
                       std::to_string(inserted) + " and " + std::to_string(removed) +
                       " were removed: rows were added or deleted outside Junction");
  }
  if (!checksum_ok) {
    problems.push_back("the checksum of the events table's message ids differs from the loads' "
                       "minus the removals': rows were changed outside Junction");
  }
  if (inserted > delivered) {
    problems.push_back(std::to_string(inserted - delivered) +
                       " more events inserted than the daemon has committed as delivered: "
                       "deliveries after its last cursor commit (it is running, or was killed "
                       "and has not restarted); verify again once it is idle");
  }
  if (delivered > inserted + duplicates) {
    problems.push_back(std::to_string(delivered - inserted - duplicates) +
                       " events the daemon delivered are in no load: they are missing");
  }
  v.matches = problems.empty();
  v.report = "daemon: " + std::to_string(delivered) + " events delivered (committed)\n" +
             "warehouse: " + std::to_string(loads) + " loads, " + std::to_string(offered) +
             " events offered, " + std::to_string(inserted) + " inserted, " +
             std::to_string(duplicates) + " duplicates skipped, " + std::to_string(refused) +
             " refused\n" + "removed: " + std::to_string(removed) + " rows (erase, retention)\n" +
             "events table: " + std::to_string(rows) + " rows; message-id checksum " +
             (checksum_ok ? "matches" : "DIFFERS") + "\n";
  for (const auto& p : problems) {
    v.report += "DIFFERENCE: " + p + "\n";
  }
  v.report += v.matches ? "OK: the warehouse holds every event the daemon delivered, once\n" : "";
  return v;
}

}  // namespace junction::plugins::postgres
