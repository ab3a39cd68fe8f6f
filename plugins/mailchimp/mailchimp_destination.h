#pragma once

// The `mailchimp` destination: Mailchimp Marketing API 3.0, one audience (list).
//
//   identify, one person     -> PUT  /lists/{list_id}/members/{md5(lower-cased email)}
//   identify, several people -> POST /lists/{list_id}  (batch subscribe, at most 500 members,
//                               update_existing: true; its `errors` map to single events)
//   tags (tags_trait)        -> POST /lists/{list_id}/members/{hash}/tags  (status active)
//   audiences (audience_tags) -> the same tags endpoint: a tag named after the audience, active
//                               while the person is in it ("Audience Entered" / "Audience
//                               Exited" tracks, and identify's context.junction.audiences)
//   track                    -> POST /lists/{list_id}/members/{hash}/events
//   anything else            -> nothing to do (delivered; junction_mailchimp_skipped_total{type})
//   erasure                  -> POST /lists/{list_id}/members/{hash}/actions/delete-permanent
//
// Members are added with `status_if_new` (default subscribed) and never have their status
// changed: someone who unsubscribed stays unsubscribed. At most `max_connections` (10,
// Mailchimp's limit per account) requests are in flight across all deliveries of the instance.
//
// Thread-safety: deliver() and erase() may run on several delivery threads at once.

#include <boost/json/object.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/mapping.h"
#include "junction/sdk/options.h"

namespace junction::plugins::mailchimp {

// Mailchimp's limit of members in one batch subscribe.
inline constexpr std::int64_t kMaxBatchMembers = 500;
// Mailchimp's limit of simultaneous connections per account.
inline constexpr std::int64_t kMaxConnections = 10;

struct MailchimpConfig {
  std::string api_key;          // secret: "<32 hex>-us6"
  std::string list_id;          // the audience
  std::string base_url;         // empty: https://<dc>.api.mailchimp.com/3.0 from the key's suffix
  std::string status_if_new;    // subscribed | pending | unsubscribed | transactional
  std::string tags_trait;       // path of the tags to set (a list, or a comma-separated string)
  bool audience_tags = true;    // audience membership as tags named after the audience
  boost::json::object mapping;  // merge fields over defaultMapping()
  std::int64_t batch_size = kMaxBatchMembers;
  std::int64_t max_connections = kMaxConnections;
  std::chrono::milliseconds timeout{0};

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<MailchimpConfig>& mailchimpOptions();

// Identify events' traits to Mailchimp's default merge fields (see README.md).
const boost::json::object& defaultMapping();

// "https://us6.api.mailchimp.com/3.0" for "…-us6"; empty when the key has no data-center suffix.
std::string baseUrlForKey(const std::string& api_key);

// Mailchimp's subscriber hash: MD5 of the lower-cased email, lower-case hex.
std::string subscriberHash(std::string_view email);

// A member event's name made to Mailchimp's rules (2-30 characters: letters, digits, '_' and
// '-'): other characters become '_', longer names are cut. Empty when nothing usable is left.
std::string eventName(std::string_view name);

// One request the plugin sends: pure data (tests compare them).
struct Request {
  std::string method;
  std::string path;  // under base_url: "/lists/abc/members/<hash>"
  std::string body;
  std::vector<std::size_t> events;  // positions in the batch it carries
};

// The member upserts for identify events at `positions` (`emails[i]` lower-cased, of
// batch[positions[i]]): one PUT when there is a single person, else batch subscribes of at most
// `batch_size` members, a member named twice going to a later request.
std::vector<Request> buildUpserts(std::span<const sdk::Event> batch,
                                  const std::vector<std::size_t>& positions,
                                  const std::vector<std::string>& emails,
                                  const sdk::FieldMapping& mapping, const MailchimpConfig& config);

// A member event for a track event.
Request buildMemberEvent(const sdk::Event& event, std::size_t position, const std::string& email,
                         const std::string& list_id);

// One tag and whether it is set (active) or removed (inactive).
struct Tag {
  std::string name;
  bool active = true;
};

// The audience memberships an event states, for `audience_tags`: a track "Audience Entered" /
// "Audience Exited" gives its properties.audience (active / inactive); an identify gives each
// entry of context.junction.audiences whose value is a boolean. Empty for anything else, and for
// an "Audience …" track without a properties.audience string (isAudienceTrack() tells them apart).
std::vector<Tag> audienceTags(const sdk::Event& event);
// A track "Audience Entered" or "Audience Exited".
bool isAudienceTrack(const sdk::Event& event);

// POST /lists/{list_id}/members/{hash}/tags setting `tags` (active or inactive), in order.
Request buildTags(const std::vector<Tag>& tags, std::size_t position, const std::string& email,
                  const std::string& list_id);

// The outcome of each member of a batch subscribe from its 200 answer: in new_members or
// updated_members: delivered; in errors: failed with Mailchimp's error; in neither: retry.
std::vector<sdk::Outcome> batchOutcomes(const sdk::HttpClientResponse& response,
                                        const std::vector<std::string>& emails);

// The outcome of a member PUT from its 2xx answer: delivered when the body is the member (a JSON
// object with its email_address), else retry (a garbled answer says nothing of what was stored).
sdk::Outcome memberPutOutcome(const sdk::HttpClientResponse& response);

// Mailchimp's error text (problem detail: `title`, `detail`, and `errors[].message` of a 400),
// else the response's description. Never holds request headers.
std::string vendorReason(const sdk::HttpClientResponse& response);

class MailchimpDestination final : public sdk::Destination {
 public:
  // `config` must have passed validate(); a mapping that does not parse throws
  // std::invalid_argument (the daemon's barrier reports it).
  MailchimpDestination(MailchimpConfig config, sdk::DestinationContext& context);

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;

  bool supportsErasure() const override { return true; }
  sdk::Outcome erase(const sdk::Person& person) override;

 private:
  // Sends one request within the connection limit, counts it, and throttles the destination on
  // a 429 (once per deliver call: `throttled`).
  sdk::HttpClientResponse send(const Request& request, const char* endpoint, bool& throttled);
  sdk::Outcome failureOf(const sdk::HttpClientResponse& response) const;

  MailchimpConfig config_;
  sdk::DestinationContext& context_;
  sdk::FieldMapping mapping_;
  std::string base_url_;       // without a trailing '/'
  std::string authorization_;  // "Basic …"

  std::mutex slots_mutex_;
  std::condition_variable slot_free_;
  std::int64_t in_flight_ = 0;  // guarded by slots_mutex_
};

}  // namespace junction::plugins::mailchimp
