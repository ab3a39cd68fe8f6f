#include "warehouse_schema.h"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace junction::plugins::postgres {

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list{
      {1, "events, identities and profiles", R"SQL(
CREATE TABLE {S}.events (
  message_id   text        NOT NULL,
  type         text        NOT NULL,
  name         text,
  "timestamp"  timestamptz NOT NULL,
  received_at  timestamptz NOT NULL,
  loaded_at    timestamptz NOT NULL DEFAULT now(),
  source       text        NOT NULL,
  person_id    text        NOT NULL,
  user_id      text,
  anonymous_id text,
  properties   jsonb       NOT NULL DEFAULT '{}',
  context      jsonb       NOT NULL DEFAULT '{}',
  PRIMARY KEY (message_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE INDEX events_person_idx ON {S}.events (person_id, "timestamp");
CREATE INDEX events_timestamp_idx ON {S}.events ("timestamp");

CREATE TABLE {S}.identities (
  kind       text        NOT NULL,
  value      text        NOT NULL,
  person_id  text        NOT NULL,
  first_seen timestamptz NOT NULL,
  PRIMARY KEY (kind, value)
);
CREATE INDEX identities_person_idx ON {S}.identities (person_id);

CREATE TABLE {S}.profiles (
  person_id  text        PRIMARY KEY,
  traits     jsonb       NOT NULL DEFAULT '{}',
  traits_at  timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
)SQL"},
      {2, "pages and purchases", R"SQL(
CREATE TABLE {S}.pages (
  message_id  text        NOT NULL,
  "timestamp" timestamptz NOT NULL,
  person_id   text        NOT NULL,
  name        text,
  category    text,
  url         text,
  path        text,
  title       text,
  referrer    text,
  search      text,
  properties  jsonb       NOT NULL DEFAULT '{}',
  PRIMARY KEY (message_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE INDEX pages_person_idx ON {S}.pages (person_id, "timestamp");

CREATE TABLE {S}.purchases (
  message_id  text        NOT NULL,
  "timestamp" timestamptz NOT NULL,
  person_id   text        NOT NULL,
  order_id    text,
  revenue     numeric,
  total       numeric,
  currency    text,
  products    jsonb       NOT NULL DEFAULT '[]',
  PRIMARY KEY (message_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE INDEX purchases_person_idx ON {S}.purchases (person_id, "timestamp");

-- Each existing day partition of events gets its pages and purchases partitions.
DO $$
DECLARE part record;
BEGIN
  FOR part IN
    SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = '{S}.events'::regclass
  LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS {S}.%I PARTITION OF {S}.pages %s',
                   replace(part.relname, 'events_', 'pages_'), part.bound);
    EXECUTE format('CREATE TABLE IF NOT EXISTS {S}.%I PARTITION OF {S}.purchases %s',
                   replace(part.relname, 'events_', 'purchases_'), part.bound);
  END LOOP;
END $$;
)SQL"},
      {3, "load records, removals, safe casts and the events_by_person view", R"SQL(
CREATE TABLE {S}._junction_loads (
  load_id        bigserial   PRIMARY KEY,
  loaded_at      timestamptz NOT NULL DEFAULT now(),
  rows_offered   integer     NOT NULL,
  rows_inserted  integer     NOT NULL,
  duplicates     integer     NOT NULL,
  failed         integer     NOT NULL,
  checksum       numeric     NOT NULL,
  min_event_time timestamptz,
  max_event_time timestamptz
);
CREATE TABLE {S}._junction_removals (
  removal_id   bigserial   PRIMARY KEY,
  removed_at   timestamptz NOT NULL DEFAULT now(),
  reason       text        NOT NULL,
  rows_removed bigint      NOT NULL,
  checksum     numeric     NOT NULL
);

-- Trait columns of profiles are generated from traits with these: a value of the wrong type
-- is NULL in its column (and stays in traits), never a failed load.
CREATE FUNCTION {S}._junction_numeric(v text) RETURNS numeric
  LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::numeric; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION {S}._junction_bigint(v text) RETURNS bigint
  LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::bigint; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION {S}._junction_boolean(v text) RETURNS boolean
  LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::boolean; EXCEPTION WHEN others THEN RETURN NULL; END $$;
-- ISO-8601 with an offset or Z is one instant whatever the session's TimeZone.
CREATE FUNCTION {S}._junction_timestamptz(v text) RETURNS timestamptz
  LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END $$;

CREATE VIEW {S}.events_by_person AS
  SELECT COALESCE(i.person_id, e.person_id) AS person, e.*
  FROM {S}.events e
  LEFT JOIN {S}.identities i ON i.kind = 'anonymousId' AND i.value = e.anonymous_id;
)SQL"},
      {4, "a BRIN index on the events' timestamp instead of a B-tree", R"SQL(
-- Events arrive in about time order, day by day: a block-range index finds a time range at a
-- fraction of a B-tree's cost to keep up while loading.
DROP INDEX IF EXISTS {S}.events_timestamp_idx;
CREATE INDEX events_timestamp_brin ON {S}.events USING brin ("timestamp");
)SQL"},
      {5, "a hash index on the events' person id instead of a B-tree", R"SQL(
-- A person's events are found by equality on person_id, within the day partitions a time range
-- keeps: a hash index answers that and costs less to keep up while loading than a B-tree over
-- (person_id, timestamp) (random keys, two columns). Rebuilt once here for existing partitions.
DROP INDEX IF EXISTS {S}.events_person_idx;
CREATE INDEX events_person_hash ON {S}.events USING hash (person_id);
)SQL"},
  };
  return list;
}

std::string renderSql(std::string_view sql, std::string_view quoted_schema) {
  std::string out;
  out.reserve(sql.size() + 256);
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql.compare(i, 3, "{S}") == 0) {
      out.append(quoted_schema);
      i += 2;
    } else {
      out.push_back(sql[i]);
    }
  }
  return out;
}

std::int64_t dayOf(std::int64_t epoch_ms) noexcept {
  constexpr std::int64_t kDay = 86'400'000;
  return epoch_ms >= 0 ? epoch_ms / kDay : -((-epoch_ms + kDay - 1) / kDay);
}

namespace {
std::chrono::year_month_day civil(std::int64_t day) {
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{day}}};
}
}  // namespace

std::string dayName(std::int64_t day) {
  const auto ymd = civil(day);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string dayStart(std::int64_t day) {
  const auto ymd = civil(day);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u 00:00:00+00", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::int64_t dayOfPartition(std::string_view table, std::string_view name) {
  const std::string prefix = std::string(table) + "_p";
  if (name.size() != prefix.size() + 8 || name.substr(0, prefix.size()) != prefix) {
    return -1;
  }
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  const char* p = name.data() + prefix.size();
  if (std::from_chars(p, p + 4, y).ec != std::errc() ||
      std::from_chars(p + 4, p + 6, m).ec != std::errc() ||
      std::from_chars(p + 6, p + 8, d).ec != std::errc()) {
    return -1;
  }
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m},
                                        std::chrono::day{d}};
  if (!ymd.ok()) {
    return -1;
  }
  return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

std::string checksumTerm(std::string_view column) {
  return "('x' || substr(md5(" + std::string(column) + "), 1, 15))::bit(60)::bigint";
}

}  // namespace junction::plugins::postgres
