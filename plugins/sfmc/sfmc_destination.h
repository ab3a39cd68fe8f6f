#pragma once

// The `sfmc` destination: Salesforce Marketing Cloud over its REST API.
//   identify                 -> data extension rows upsert, many people per request
//   track named in journeys  -> journey entry event (one request per event); a key
//                               "Audience Entered: <audience>" names one audience's entries
//   audience membership      -> with audiences_data_extension, rows {ContactKey, Audience,
//                               Member, UpdatedAt} of Audience Entered/Exited tracks and of
//                               identify events' context.junction.audiences
//   other events             -> nothing to do: delivered, counted as skipped
//   erase(person)            -> contact delete by key (asynchronous at the vendor)
// Authentication: OAuth 2.0 client credentials at {auth_url}/v2/token; the token is cached for
// its expires_in (refreshed a minute early) and once more on a 401.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "junction/sdk/delivery_call.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/metrics.h"
#include "junction/sdk/oauth_token.h"
#include "sfmc_config.h"
#include "sfmc_requests.h"

namespace junction::plugins::sfmc {

// Thread-safe: deliver() runs on several delivery threads at once (different people); they
// share the token (one fetch at a time, in tokens_) and the metric cache.
class SfmcDestination final : public sdk::Destination {
 public:
  // `config` must have passed validate(); a mapping that does not parse throws
  // std::invalid_argument (the daemon's barrier reports it).
  SfmcDestination(SfmcConfig config, sdk::DestinationContext& context);

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;

  bool supportsErasure() const override { return true; }
  sdk::Outcome erase(const sdk::Person& person) override;

 private:
  // What one deliver() call learned so far: once the account is rate limited or the vendor is
  // unreachable, later requests of the call are not sent (their events get `stop()`).
  using CallState = sdk::DeliveryCall;
  using Sent = sdk::OAuthTokenCache::Sent;

  // POSTs `body` to the REST base + `path` (the token cache tries once more on a 401).
  Sent post(std::string_view endpoint, std::string_view path, const std::string& body);
  // The outcome for every event of a request that got `response` (non-2xx), noting a 429 or an
  // unreachable vendor in `state` (and throttling the destination once per call).
  sdk::Outcome classify(const sdk::HttpClientResponse& response, CallState& state);

  // The rows of events `indices`, in rowsets of at most rows_per_request rows, to the data
  // extension at `path`.
  void sendRows(const std::vector<Planned>& plans, std::span<const std::size_t> indices,
                std::vector<sdk::Outcome>& outcomes, CallState& state, std::string_view path);
  // The audience rows of every planned event, to audiences_data_extension; each event's outcome
  // becomes the worse of its own and its audience rows' (failed over retry over delivered).
  void sendAudienceRows(const std::vector<Planned>& plans, std::vector<sdk::Outcome>& outcomes,
                        CallState& state);
  // One rowset request for the rows of events `indices`; a 400 naming some rows fails those
  // and (once, when `may_resend`) sends the others again.
  void sendRowset(const std::vector<Planned>& plans, std::vector<std::size_t> indices,
                  std::vector<sdk::Outcome>& outcomes, CallState& state, std::string_view path,
                  bool may_resend);
  void sendJourney(const Planned& plan, std::size_t index, std::vector<sdk::Outcome>& outcomes,
                   CallState& state);

  sdk::Counter& requestCounter(std::string_view endpoint, int status);
  sdk::Counter& skippedCounter(const std::string& type);

  SfmcConfig config_;
  sdk::DestinationContext& ctx_;
  SfmcMapper mapper_;
  std::string rowset_path_;
  std::string audiences_rowset_path_;  // empty: audiences_data_extension is off

  sdk::OAuthTokenCache tokens_;

  std::mutex metrics_mutex_;
  std::map<std::pair<std::string, int>, sdk::Counter*, std::less<>> requests_;  // metrics_mutex_
  std::map<std::string, sdk::Counter*, std::less<>> skipped_;                   // metrics_mutex_
};

}  // namespace junction::plugins::sfmc
