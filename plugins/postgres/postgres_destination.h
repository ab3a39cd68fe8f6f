#pragma once

// The `postgres` destination: a customer data warehouse in PostgreSQL (star schema, see
// warehouse_schema.h), loaded continuously and idempotently.
//
// One deliver() call is one transaction on one pooled connection:
//   1. each event is checked and turned into a staging row (a malformed event fails alone);
//   2. the day partitions the rows need are created if missing (own transaction, advisory lock);
//   3. COPY into a temporary staging table; INSERT into events, pages and purchases with
//      ON CONFLICT (message_id, "timestamp") DO NOTHING; identities and profiles upserted; one
//      _junction_loads row with the counts and the checksum of the inserted message ids; COMMIT.
// A redelivered batch inserts nothing twice. Should the server still refuse the batch for its
// data (SQLSTATE class 22/23), it is split in halves until the refused events are alone: they
// fail (dead-letter queue) with the server's message, the rest loads. Connection, lock and
// resource errors retry the whole batch.
//
// Person id: "user:<userId>", else "anon:<anonymousId>". An event carrying both links the
// anonymous id to the user in `identities` (so does an email); the view events_by_person
// attributes an anonymous visitor's earlier events to who they became.
//
// Thread-safety: deliver(), erase() and verify() may run concurrently; each takes its own
// connection from the pool.

#include <boost/json/object.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "junction/sdk/destination.h"
#include "junction/sdk/options.h"
#include "pg.h"

namespace junction::plugins::postgres {

struct PostgresConfig {
  std::string dsn;       // secret: a libpq connection string or URI
  std::string schema;    // default "junction"
  boost::json::object traits;  // trait name -> column type, as columns of profiles
  std::int64_t partitions_ahead = 7;
  std::int64_t retention_days = 0;  // 0: keep every partition

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<PostgresConfig>& postgresOptions();

// The column types a configured trait may have.
const std::set<std::string>& traitTypes();

// An identity tuple (kind, value, person) as 128 bits: two independent 64-bit hashes of its text.
// Two tuples that differ share a key with a chance of about 2^-128: the set of written tuples
// holds these, not the text (no allocation, no string compare, a flat table).
struct IdentityKey {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  bool operator==(const IdentityKey&) const = default;
  static IdentityKey of(std::string_view tuple);
};
struct IdentityKeyHash {
  std::size_t operator()(const IdentityKey& key) const noexcept { return key.a; }
};

// One event made ready for the staging table, or why it cannot be loaded.
struct StagedRow {
  // A COPY text-format line of the staging table, '\n' included. Built for identify events (their
  // traits go through the staging table) or when asked; empty if failed.
  std::string copy_line;
  const sdk::Event* event = nullptr;  // what it was staged from, while deliver() runs
  std::string failure;    // non-empty: the event fails with this reason
  std::int64_t day = 0;   // its partition day
  // The fast path's lines: straight into events, pages, purchases (empty when not one).
  std::string events_line;
  std::string page_line;
  std::string purchase_line;
  bool identify = false;
  // Identity tuples "kind\tvalue\tperson\tts\n" (COPY lines of the identity staging table).
  std::vector<std::string> identity_lines;
  std::vector<IdentityKey> identity_keys;  // of each line's kind, value and person
  std::uint64_t checksum = 0;  // the message id's checksum term (see checksumTerm)
  std::int64_t ts_ms = 0;
};

// Builds the staging row of `event`; the staging table's line for every event only with
// `staging_line` (the fallback path for redeliveries needs it, the direct COPY does not). Pure;
// tested directly.
StagedRow stageEvent(const sdk::Event& event, bool staging_line = true);

class PostgresDestination final : public sdk::Destination {
 public:
  PostgresDestination(PostgresConfig config, sdk::DestinationContext& ctx);
  ~PostgresDestination() override;

  sdk::Status start() override;
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;
  void stop() override;

  bool supportsErasure() const override { return true; }
  sdk::Outcome erase(const sdk::Person& person) override;

  bool supportsVerify() const override { return true; }
  sdk::Result<sdk::Verification> verify(const sdk::DeliveredCount& daemon) override;

  // Drops the partitions older than `retention_days` (recording the events they held); run
  // at start and hourly. Returns the number of days dropped.
  sdk::Result<int> applyRetention();

 private:
  class Lease;
  std::unique_ptr<PgConnection> acquire(PgError* error);
  void release(std::unique_ptr<PgConnection> conn);
  bool migrate(PgConnection& conn, PgError* error);
  bool evolveTraitColumns(PgConnection& conn, PgError* error);
  bool ensurePartitions(PgConnection& conn, const std::set<std::int64_t>& days, PgError* error);
  // Loads the rows at `positions` in one transaction. False with `error` when it failed.
  bool load(PgConnection& conn, const std::vector<const StagedRow*>& rows, std::size_t failed,
            PgError* error);
  // The common case, no row loaded before: COPY straight into the fact tables. False with
  // SQLSTATE 23505 in `error` when some row is there already (a redelivery): then `load` takes
  // the staging path with ON CONFLICT DO NOTHING.
  bool loadDirect(PgConnection& conn, const std::vector<const StagedRow*>& rows,
                  std::size_t failed, PgError* error);
  bool loadStaged(PgConnection& conn, const std::vector<const StagedRow*>& rows,
                  std::size_t failed, PgError* error);
  // Loads `positions`, splitting on data errors; fills `outcomes` for them.
  void loadSplitting(PgConnection& conn, std::span<const sdk::Event> batch,
                     const std::vector<StagedRow>& staged, std::vector<std::size_t> positions,
                     std::size_t failed, std::vector<sdk::Outcome>& outcomes);
  void maybeApplyRetention();

  PostgresConfig config_;
  sdk::DestinationContext& ctx_;
  const std::string schema_;  // quoted
  // The statements after the staging COPY (built once).
  std::string pages_sql_;       // pages and purchases from the staging table, ON CONFLICT
  std::string identities_sql_;  // identities from the identity staging table
  std::string profiles_sql_;    // profiles from the identify rows of the staging table

  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<PgConnection>> pool_;

  // Identity tuples known to be in `identities` as they are (not sent again); bounded, cleared
  // when full and by every erasure.
  std::mutex identities_mutex_;
  boost::unordered_flat_set<IdentityKey, IdentityKeyHash> written_identities_;

  std::mutex days_mutex_;
  std::set<std::int64_t> known_days_;
  std::int64_t last_retention_ms_ = 0;

  sdk::Counter& rows_inserted_;
  sdk::Counter& rows_duplicate_;
  sdk::Counter& batches_split_;
};

}  // namespace junction::plugins::postgres
