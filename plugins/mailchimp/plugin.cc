// The one export of the `mailchimp` destination plugin.

#include "junction/sdk/plugin.h"

#include "mailchimp_destination.h"

// 500 events a delivery fill one batch subscribe (Mailchimp's limit: 1,000 people take two
// requests); 4 deliveries in flight stay inside the account's 10 connections, which the plugin
// also enforces itself across deliveries.
JUNCTION_DESTINATION_PLUGIN(
    junction::plugins::mailchimp::MailchimpDestination,
    junction::plugins::mailchimp::MailchimpConfig, junction::plugins::mailchimp::mailchimpOptions(),
    {.name = "mailchimp",
     .version = "1.0.0",
     .summary = "Mailchimp audiences: members added or updated from "
                "identify, member events from track, tags, permanent "
                "deletes",
     .delivery = {.max_events = 500, .max_bytes = 0, .max_wait = std::nullopt, .concurrency = 4}})
