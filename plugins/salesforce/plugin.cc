// The one export of the `salesforce` destination plugin (libjunction_salesforce.so). The source
// of the same name is libjunction_salesforce_source.so: the daemon keys plugins by kind and name.

#include "junction/sdk/plugin.h"
#include "salesforce_config.h"
#include "salesforce_destination.h"

// Batches of 200 events make one sObject Collections request (Salesforce's limit per request);
// 4 deliveries in flight keep a slow org busy without spending its API allocation too fast.
JUNCTION_DESTINATION_PLUGIN(junction::plugins::salesforce::SalesforceDestination,
                            junction::plugins::salesforce::SalesforceConfig,
                            junction::plugins::salesforce::salesforceOptions(),
                            {.name = "salesforce",
                             .version = "1.0.0",
                             .summary = "Salesforce CRM: Contacts or Leads upserted by external id "
                                        "from identify (sObject Collections), deletes on erasure",
                             .delivery = {.max_events = 200, .max_bytes = 4 * 1024 * 1024,
                                          .max_wait = std::nullopt, .concurrency = 4}})
