#pragma once

// The `salesforce` destination: Salesforce CRM over its REST API.
//   identify, one person in the call  -> upsert by external id
//                                        (PATCH sobjects/{object}/{field}/{value})
//   identify, several people          -> sObject Collections upsert, at most 200 records a request
//                                        (PATCH composite/sobjects/{object}/{field}), each
//                                        record's result mapped to its events' outcomes
//   other events                      -> nothing to do: delivered, counted as skipped
//   erase(person)                     -> DELETE sobjects/{object}/{field}/{value}
// Events of one person in one call become one record (fields merged in event order), since a
// collection may not name an external id twice.
// Authentication: OAuth 2.0 client credentials at {login_url}/services/oauth2/token; the token
// is cached and replaced once when a call answers 401 INVALID_SESSION_ID. The org's API request
// limit (403 REQUEST_LIMIT_EXCEEDED) pauses the destination: the events are retried later,
// none is dropped.

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "junction/sdk/delivery_call.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/mapping.h"
#include "junction/sdk/oauth_token.h"
#include "salesforce_config.h"

namespace junction::plugins::salesforce {

// One record to upsert: the external id value, the fields, and the events it carries.
struct PlannedRecord {
  std::string key;
  boost::json::object fields;
  std::vector<std::size_t> events;  // indices in the batch
};

// Thread-safe: deliver() runs on several delivery threads at once (different people); they
// share the token (tokens_) and nothing else that changes.
class SalesforceDestination final : public sdk::Destination {
 public:
  // `config` must have passed validate(); a mapping that does not parse throws
  // std::invalid_argument (the daemon's barrier reports it).
  SalesforceDestination(SalesforceConfig config, sdk::DestinationContext& context);

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;

  bool supportsErasure() const override { return true; }
  sdk::Outcome erase(const sdk::Person& person) override;

  // The records a batch upserts, in first-appearance order; events that cannot be upserted get
  // their outcome in `outcomes` (failed), others keep delivered. Pure: exposed for tests.
  std::vector<PlannedRecord> plan(std::span<const sdk::Event> batch,
                                  std::vector<sdk::Outcome>& outcomes);

  // The body of an sObject Collections upsert of `records`.
  std::string collectionBody(std::span<const PlannedRecord> records) const;

 private:
  // Once the org's limit is reached or Salesforce is unreachable, later requests of the call are
  // not sent: their events get `stop()`.
  using CallState = sdk::DeliveryCall;

  sdk::OAuthTokenCache::Sent send(std::string method, std::string path, std::string body,
                                  std::string_view endpoint);
  sdk::Outcome classify(const sdk::HttpClientResponse& response, CallState& state);
  sdk::Outcome limitReached(std::chrono::milliseconds hint, std::string why, CallState& state);
  void upsertOne(const PlannedRecord& record, std::vector<sdk::Outcome>& outcomes,
                 CallState& state);
  void upsertMany(std::span<const PlannedRecord> records, std::vector<sdk::Outcome>& outcomes,
                  CallState& state);

  SalesforceConfig config_;
  sdk::DestinationContext& ctx_;
  sdk::FieldMapping mapping_;
  std::string data_path_;
  sdk::OAuthTokenCache tokens_;
};

}  // namespace junction::plugins::salesforce
