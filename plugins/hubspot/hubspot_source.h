#pragma once

// The `hubspot` source: contacts changed in HubSpot since the last run, pulled on a schedule
// through the CRM search API and emitted as `identify` events.
//
//   POST /crm/v3/objects/contacts/search
//     {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
//                                     "value": "<checkpoint, epoch ms>"}]}],
//      "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
//      "properties": [...], "limit": 100, "after": "<offset>"}
//
// Each contact becomes {"type": "identify", "userId": <contact id, or the `user_id` property>,
// "traits": {email, firstName, lastName, ..., hubspot_id}, "timestamp": <lastmodifieddate>,
// "context": {"externalIds": [{"id", "type": "hubspot_id", ...}]}} with a messageId made of the
// contact id and its lastmodifieddate, so a contact read twice (after a crash) is the same event.
//
// The checkpoint (sdk::IncrementalSync) is the lastmodifieddate of the last contact of a durable
// page, inclusive (GTE): a restart re-reads contacts modified in that millisecond, never skips.
//
// Paging moves the time window: each page is a search from the last lastmodifieddate seen, with
// `after` skipping only the contacts of that same millisecond already read. So `after` stays far
// below HubSpot's 10,000-result cap of one search, and a contact modified during a run (which
// moves to the end of the order) cannot shift an offset over an unread contact, as plain
// `after` paging of one search would. Only more than 10,000 contacts modified in one
// millisecond could reach the cap: the rest of that millisecond is then skipped, with an error
// logged and junction_hubspot_source_overflows_total counted.
// 429s wait as HubSpot asks (Retry-After, policyName SECONDLY / DAILY, the window headers);
// 5xx and transport failures are retried three times with backoff, then fail the run (the next
// run resumes from the checkpoint). Runs use SourceContext::http() and never log the token.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "junction/sdk/incremental_sync.h"
#include "junction/sdk/metrics.h"
#include "junction/sdk/options.h"
#include "junction/sdk/source.h"

namespace junction::plugins::hubspot {

// HubSpot's cap on the results one search query pages through.
inline constexpr std::size_t kSearchResultCap = 10'000;

struct HubspotSourceConfig {
  std::string access_token;             // secret: a private app's token (crm.objects.contacts.read)
  std::string base_url;                 // https://api.hubapi.com
  std::chrono::milliseconds every{0};   // how often a run starts
  std::vector<std::string> properties;  // contact properties read into traits
  std::string user_id;                  // "id" (the contact id) or a property name ("email")
  std::int64_t page_size = 100;         // search `limit`
  std::chrono::milliseconds timeout{0};
  // Not an option: HubSpot's cap, lowered by tests against a fake with a lower one.
  std::size_t search_result_cap = kSearchResultCap;

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<HubspotSourceConfig>& hubspotSourceOptions();

// The search request body for a window starting at `since_ms` (inclusive), at offset `after`.
std::string buildSearchBody(std::int64_t since_ms, std::size_t after,
                            const std::vector<std::string>& properties, std::int64_t limit);

// Where a run goes on: the window's lower bound and the offset within it ("<since>:<after>").
struct SearchCursor {
  std::int64_t since_ms = 0;
  std::size_t after = 0;
  std::string toString() const;
  static std::optional<SearchCursor> parse(std::string_view text);
};

// One contact of a search answer as an identify event body (nullopt: no user id; `why` says).
std::optional<boost::json::object> contactEvent(const boost::json::object& contact,
                                                const std::string& user_id, std::string& why);

class HubspotSource final : public sdk::Source {
 public:
  HubspotSource(HubspotSourceConfig config, sdk::SourceContext& context);

  sdk::Status start() override;
  void stop() override;

  // One page: exposed for tests (the sync calls it on its schedule).
  sdk::Result<sdk::SyncPage> pull(const sdk::SyncRequest& request);
  const sdk::IncrementalSync& sync() const noexcept { return sync_; }

 private:
  HubspotSourceConfig config_;
  sdk::SourceContext& context_;
  std::string search_url_;
  std::vector<std::string> properties_;  // requested: the configured ones and the user id's
  sdk::Counter& contacts_;
  sdk::Counter& skipped_;
  sdk::Counter& overflows_;
  sdk::Counter& rate_limited_;
  int transient_failures_ = 0;  // in a row, within a run (scheduler tasks only)
  sdk::IncrementalSync sync_;   // last: stopped and destroyed first
};

}  // namespace junction::plugins::hubspot
