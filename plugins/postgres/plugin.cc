// The one export of the `postgres` destination plugin.

#include "junction/sdk/plugin.h"

#include "postgres_destination.h"

// Large batches of anyone's events (a warehouse needs no per-person order): one COPY and one
// transaction per 5,000 events or 1 s, two loads in flight.
JUNCTION_DESTINATION_PLUGIN(
    junction::plugins::postgres::PostgresDestination,
    junction::plugins::postgres::PostgresConfig,
    junction::plugins::postgres::postgresOptions(),
    {.name = "postgres",
     .version = "1.0.0",
     .summary = "Customer data warehouse in PostgreSQL: events, pages, purchases, identities "
                "and profiles, day-partitioned, loaded idempotently with COPY",
     .delivery = {.max_events = 5000,
                  .max_bytes = 16 << 20,
                  .max_wait = std::chrono::milliseconds(1000),
                  .concurrency = 2,
                  .ordering = junction::sdk::Ordering::None}})
