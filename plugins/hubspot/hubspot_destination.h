#pragma once

// The `hubspot` destination: HubSpot CRM v3 with a private app's access token.
//
//   identify            -> contacts upserted by email, POST /crm/v3/objects/contacts/batch/upsert
//                          (at most 100 inputs a request; 200/201 all written, 207 some refused)
//   track named in      -> a custom behavioral event, POST /events/v3/send (one a request)
//     `events`
//   audiences named in  -> the contact upsert above, the audience's property "true" / "false"
//     `audience_properties`   ("Audience Entered" / "Audience Exited" tracks, and identify's
//                             context.junction.audiences)
//   anything else       -> nothing to do (delivered; junction_hubspot_skipped_total{type})
//   erasure             -> POST /crm/v3/objects/contacts/gdpr-delete by email
//
// Rate limits are per account: a 429, X-HubSpot-RateLimit-Remaining under a tenth of -Max, or
// the daily limit spent (-Daily-Remaining 0) throttles the whole destination
// (DestinationContext::throttle), at most once per deliver() call.
//
// Thread-safety: deliver() and erase() may run on several delivery threads at once; the
// instance holds only immutable configuration and thread-safe metrics.

#include <boost/json/object.hpp>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hubspot_api.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/mapping.h"
#include "junction/sdk/metrics.h"
#include "junction/sdk/options.h"

namespace junction::plugins::hubspot {

// HubSpot's limit of inputs in one batch upsert.
inline constexpr std::int64_t kMaxBatchInputs = 100;

struct HubspotConfig {
  std::string access_token;     // secret: a private app's token
  std::string base_url;         // https://api.hubapi.com
  boost::json::object events;   // Segment track event name -> HubSpot custom event name
  boost::json::object mapping;  // contact properties over defaultMapping()
  boost::json::object audience_properties;  // audience name -> contact property ("true"/"false")
  std::int64_t batch_size = kMaxBatchInputs;
  std::chrono::milliseconds timeout{0};

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<HubspotConfig>& hubspotOptions();

// Segment's traits to HubSpot's default contact properties (see README.md).
const boost::json::object& defaultMapping();

// One request the plugin sends: pure data, built without a network (tests compare them).
struct Request {
  std::string method;
  std::string path;  // under base_url: "/crm/v3/objects/contacts/batch/upsert"
  std::string body;
  std::vector<std::size_t> events;  // positions in the batch it carries
};

// The batch upserts for the identify events at `positions` of `batch`, at most `batch_size`
// inputs each; an email already in a request goes to a later one (HubSpot refuses a batch that
// names one contact twice). `emails[i]` is the lower-cased email of batch[positions[i]].
// An identify's input holds its mapped properties and the properties of its audience snapshot;
// an audience track's input only the email and its audience's property (audienceProperties()).
std::vector<Request> buildUpserts(std::span<const sdk::Event> batch,
                                  const std::vector<std::size_t>& positions,
                                  const std::vector<std::string>& emails,
                                  const sdk::FieldMapping& mapping, std::size_t batch_size,
                                  const boost::json::object& audience_properties = {});

// A track "Audience Entered" or "Audience Exited".
bool isAudienceTrack(const sdk::Event& event);

// The contact properties an event sets through `audience_properties` (audience name -> property
// name): an "Audience Entered" track its audience's property "true", "Audience Exited" "false";
// an identify each audience of context.junction.audiences with a boolean value. Audiences not
// named in `audience_properties` set nothing.
boost::json::object audienceProperties(const sdk::Event& event,
                                       const boost::json::object& audience_properties);

// A custom behavioral event for a track event.
Request buildBehavioralEvent(const sdk::Event& event, std::size_t position,
                             const std::string& hubspot_name, const std::string& email);

// The outcome of each event of an upsert from HubSpot's answer: 200/201 delivered for every
// input with a result (an input with neither a result nor an error: retry, "wrote nothing");
// 207 per error's context.ids (VALIDATION_ERROR and the like: failed with its message; rate
// limit and server categories: retry). `emails` is the upsert's emails in input order.
std::vector<sdk::Outcome> upsertOutcomes(const sdk::HttpClientResponse& response,
                                         const std::vector<std::string>& emails);

class HubspotDestination final : public sdk::Destination {
 public:
  // `config` must have passed validate(); a mapping that does not parse throws
  // std::invalid_argument (the daemon's barrier reports it).
  HubspotDestination(HubspotConfig config, sdk::DestinationContext& context);

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;

  bool supportsErasure() const override { return true; }
  sdk::Outcome erase(const sdk::Person& person) override;

 private:
  // Sends one request and counts it; `throttled` says whether this deliver() call has already
  // throttled the destination (once per call).
  sdk::HttpClientResponse send(const Request& request, const char* endpoint, bool& throttled);
  // Throttles the destination when `response` says the account's limit is reached or close:
  // a 429, X-HubSpot-RateLimit-Daily-Remaining 0, -Remaining under a tenth of -Max, or
  // -Secondly-Remaining 0. Returns whether it did.
  bool throttleFor(const sdk::HttpClientResponse& response);
  // The outcome of a request that did not succeed, for every event it carried.
  sdk::Outcome failureOf(const sdk::HttpClientResponse& response) const;

  HubspotConfig config_;
  sdk::DestinationContext& context_;
  sdk::FieldMapping mapping_;
  std::string base_url_;  // without a trailing '/'
};

}  // namespace junction::plugins::hubspot
