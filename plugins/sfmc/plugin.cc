// The one export of the `sfmc` destination plugin.

#include "junction/sdk/plugin.h"
#include "sfmc_config.h"
#include "sfmc_destination.h"

// Batches of 500 events make 10 rowsets of 50 rows; 4 deliveries in flight keep a slow vendor
// busy without crowding the account's API limits.
JUNCTION_DESTINATION_PLUGIN(junction::plugins::sfmc::SfmcDestination,
                            junction::plugins::sfmc::SfmcConfig,
                            junction::plugins::sfmc::sfmcOptions(),
                            {.name = "sfmc",
                             .version = "1.0.0",
                             .summary = "Salesforce Marketing Cloud: data extension rows from "
                                        "identify, journey entry events from track, contact deletes",
                             .delivery = {.max_events = 500, .max_bytes = 4 * 1024 * 1024,
                                          .max_wait = std::nullopt, .concurrency = 4}})
