#pragma once

// The `salesforce` source: Contacts or Leads changed in Salesforce since the last run, pulled on
// a schedule with a SOQL query and emitted as `identify` events.
//
//   GET {instance_url}/services/data/v62.0/query?q=
//       SELECT Id, SystemModstamp, Email, ... FROM Contact
//       WHERE SystemModstamp >= 2026-12-05T07:41:27Z ORDER BY SystemModstamp, Id
//   then GET {nextRecordsUrl} while the answer is not `done`.
//
// Each record becomes {"type": "identify", "userId": <Id, or the `user_id` field>,
// "traits": {email, firstName, lastName, phone, title, company.name, <other fields by API name>,
// salesforce_id}, "timestamp": <SystemModstamp>, "context": {"externalIds": [{"id", "type":
// "salesforce_id", ...}]}} with a messageId made of the record id and its SystemModstamp, so a
// record read twice (after a crash, or at the checkpoint's second) is the same event.
//
// The checkpoint (sdk::IncrementalSync) is the SystemModstamp of the last record of a durable
// page, inclusive (>=): SystemModstamp has whole seconds, and a record changed later in that
// same second has no later stamp, so a strict `>` could skip it. The next run reads the records
// of that second again (same messageIds). Within a run, pages come from the query's cursor
// (nextRecordsUrl), a snapshot: a record changed during the run is read by the next run.
// REQUEST_LIMIT_EXCEEDED waits (Retry-After, else `limit_pause`) and asks again; 5xx and transport
// failures are retried three times with backoff, then fail the run (the next one resumes from the
// checkpoint). The token is cached and replaced once on 401 INVALID_SESSION_ID; never logged.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "junction/sdk/incremental_sync.h"
#include "junction/sdk/oauth_token.h"
#include "junction/sdk/source.h"
#include "salesforce_config.h"

namespace junction::plugins::salesforce {

// The first query of a run: records of `object` with SystemModstamp >= since_ms (all when
// nullopt), in (SystemModstamp, Id) order, with Id, SystemModstamp and `fields`.
std::string buildQuery(const std::string& object, const std::vector<std::string>& fields,
                       std::optional<std::int64_t> since_ms);

// One query record as an identify event body (nullopt: no user id or no SystemModstamp; `why`
// says which).
std::optional<boost::json::object> recordEvent(const boost::json::object& record,
                                               const std::string& user_id, std::string& why);

// SystemModstamp's text ("2026-12-05T07:41:27.000+0000") in epoch ms.
std::optional<std::int64_t> parseSalesforceTime(std::string_view text);

class SalesforceSource final : public sdk::Source {
 public:
  SalesforceSource(SalesforceSourceConfig config, sdk::SourceContext& context);

  sdk::Status start() override;
  void stop() override;

  // One page: exposed for tests (the sync calls it on its schedule).
  sdk::Result<sdk::SyncPage> pull(const sdk::SyncRequest& request);
  const sdk::IncrementalSync& sync() const noexcept { return sync_; }

 private:
  SalesforceSourceConfig config_;
  sdk::SourceContext& context_;
  std::vector<std::string> fields_;  // queried: Id, SystemModstamp, the configured ones, user_id
  sdk::OAuthTokenCache tokens_;
  int transient_failures_ = 0;  // in a row, within a run (scheduler tasks only)
  sdk::IncrementalSync sync_;   // last: stopped and destroyed first
};

}  // namespace junction::plugins::salesforce
