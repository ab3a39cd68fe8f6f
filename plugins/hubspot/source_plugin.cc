// The one export of the `hubspot` source plugin (libjunction_hubspot_source.so). The destination
// of the same name is libjunction_hubspot.so: the daemon keys plugins by kind and name.

#include "hubspot_source.h"
#include "junction/sdk/plugin.h"

JUNCTION_SOURCE_PLUGIN(junction::plugins::hubspot::HubspotSource,
                       junction::plugins::hubspot::HubspotSourceConfig,
                       junction::plugins::hubspot::hubspotSourceOptions(),
                       {.name = "hubspot",
                        .version = "1.0.0",
                        .summary = "HubSpot CRM: contacts changed since the last run (CRM search "
                                   "on lastmodifieddate, every `every`) as identify events"})
