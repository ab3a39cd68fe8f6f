// The one export of the `webhook` source plugin (libjunction_webhook_source.so; the destination
// of the same name is libjunction_webhook.so).

#include "junction/sdk/plugin.h"
#include "webhook_source.h"

JUNCTION_SOURCE_PLUGIN(junction::plugins::webhook::WebhookSource,
                       junction::plugins::webhook::WebhookSourceConfig,
                       junction::plugins::webhook::webhookSourceOptions(),
                       {.name = "webhook", .version = "1.0.0",
                        .summary = "Inbound JSON webhooks at POST /v1/webhooks/{source id}, "
                                   "HMAC-SHA256 signed, mapped to events"})
