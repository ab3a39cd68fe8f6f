// The one export of the `salesforce` source plugin (libjunction_salesforce_source.so). The
// destination of the same name is libjunction_salesforce.so: the daemon keys plugins by kind and
// name.

#include "junction/sdk/plugin.h"
#include "salesforce_config.h"
#include "salesforce_source.h"

JUNCTION_SOURCE_PLUGIN(junction::plugins::salesforce::SalesforceSource,
                       junction::plugins::salesforce::SalesforceSourceConfig,
                       junction::plugins::salesforce::salesforceSourceOptions(),
                       {.name = "salesforce",
                        .version = "1.0.0",
                        .summary = "Salesforce CRM: Contacts or Leads changed since the last run "
                                   "(SOQL on SystemModstamp, every `every`) as identify events"})
