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
// Paging moves the time window: after a page, the next search starts at the last
// lastmodifieddate seen and skips, by id, the contacts of that millisecond already read. So a
// search never pages deep (HubSpot's cap: 10,000 results a search), a contact modified during a
// run (which moves to the end of the order) cannot shift an offset over an unread contact, and
// nothing depends on the order HubSpot gives contacts of the same millisecond. Only a page whose
// contacts all share one millisecond pages on with `after` in that same search; should that
// reach the cap (more than 10,000 contacts modified in one millisecond), the rest of that
// millisecond is read by id (lastmodifieddate EQ t, hs_object_id GT the last id, sorted by
// hs_object_id; junction_hubspot_source_overflows_total), then the window moves past it.
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

// Where a run goes on (the page token): the window's lower bound, the contacts of that
// millisecond already read, and the offset within the search; or, past the cap, the last id of
// that millisecond read by id.
struct SearchCursor {
  std::int64_t since_ms = 0;
  std::size_t after = 0;
  std::vector<std::string> seen;              // ids modified at since_ms, already read
  std::optional<std::uint64_t> by_id_after;   // set: reading since_ms alone, by hs_object_id
  std::string toString() const;
  static std::optional<SearchCursor> parse(std::string_view text);
};

// The search request body for `cursor`.
std::string buildSearchBody(const SearchCursor& cursor, const std::vector<std::string>& properties,
                            std::int64_t limit);

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
