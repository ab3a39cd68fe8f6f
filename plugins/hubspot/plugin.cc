// The one export of the `hubspot` destination plugin.

#include "hubspot_destination.h"
#include "junction/sdk/plugin.h"

// 100 events a delivery fill one batch upsert (HubSpot's limit); two deliveries in flight stay
// well inside a private app's 100 (or 190) calls per ten seconds.
JUNCTION_DESTINATION_PLUGIN(junction::plugins::hubspot::HubspotDestination,
                            junction::plugins::hubspot::HubspotConfig,
                            junction::plugins::hubspot::hubspotOptions(),
                            {.name = "hubspot",
                             .version = "1.0.0",
                             .summary = "HubSpot CRM: contacts upserted by email from identify, "
                                        "custom behavioral events from track, GDPR deletes",
                             .delivery = {.max_events = 100, .max_bytes = 0,
                                          .max_wait = std::nullopt, .concurrency = 2}})
