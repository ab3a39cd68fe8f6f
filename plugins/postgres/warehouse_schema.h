#pragma once

// The warehouse schema and its versioned migrations. Every migration runs once, in order, in its
// own transaction, under an advisory lock (several daemons may start at once), and is recorded
// in <schema>._junction_migrations. Never edit a shipped migration: add the next one.
//
//   events      fact: every event (message_id, type, name, timestamp, received_at, loaded_at,
//               source, person_id, user_id, anonymous_id, properties, context)
//   pages       fact: page events (url, path, title, referrer, search, name, category)
//   purchases   fact: "Order Completed" (order_id, revenue, total, currency, products)
//   identities  dimension: identifier (userId, anonymousId, email) -> person_id
//   profiles    dimension: one row per person: traits (JSONB) and configured trait columns
//   events_by_person  view: events with the person an anonymous visitor later became
//   _junction_loads, _junction_removals  every load and every removal (erase, retention),
//               with row counts and message-id checksums, for `junction warehouse verify`
//
// Fact tables are partitioned by day (UTC) on the event timestamp: <table>_pYYYYMMDD. Their
// unique key is (message_id, timestamp): a partitioned table's unique key must hold the
// partition key, and a redelivered event is byte-identical, timestamp included.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace junction::plugins::postgres {

struct Migration {
  int version = 0;
  std::string description;
  std::string sql;  // `{S}` stands for the quoted schema name
};

const std::vector<Migration>& migrations();
inline int latestSchemaVersion() { return static_cast<int>(migrations().size()); }

// `sql` with every `{S}` replaced by `quoted_schema`.
std::string renderSql(std::string_view sql, std::string_view quoted_schema);

// The fact tables, partitioned by day.
inline constexpr const char* kFactTables[] = {"events", "pages", "purchases"};

// Days since 1970-01-01 (UTC) of a Unix epoch millisecond time.
std::int64_t dayOf(std::int64_t epoch_ms) noexcept;
// "20261204" for a day number.
std::string dayName(std::int64_t day);
// "2026-12-04 00:00:00+00" for a day number.
std::string dayStart(std::int64_t day);
// The day of a partition name "events_p20261204"; -1 if it is not one.
std::int64_t dayOfPartition(std::string_view table, std::string_view name);

// The SQL expression of a message id's 60-bit checksum term (summed over rows as numeric): the
// first 15 hex digits of md5(message_id). `column` is the message id column.
std::string checksumTerm(std::string_view column);

}  // namespace junction::plugins::postgres
