#pragma once

// The `webhook` source: inbound JSON webhooks (a shop's order webhook, a form tool) at
// `POST /v1/webhooks/{source id}`, signed with the scheme the webhook destination signs with
// (sdk/webhook_signature.h), turned into events by an inbound field mapping (sdk/mapping.h).
// See README.md ("webhook source").
//
// Threading: the handler runs on the daemon's I/O threads and never blocks; the sender is
// answered from emit's callback once the events are durable. The instance is immutable after
// start() except `stopped_` (atomic) and the counters (atomic, owned by the context's registry).

#include <atomic>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "junction/sdk/mapping.h"
#include "junction/sdk/options.h"
#include "junction/sdk/source.h"

namespace junction::plugins::webhook {

struct WebhookSourceConfig {
  std::vector<std::string> secret;  // secret; several while a secret is rotated
  std::string signature_header{"X-Junction-Signature"};
  std::chrono::milliseconds tolerance{300'000};
  std::uint64_t max_body_bytes = 1024 * 1024;
  std::int64_t max_events = 1000;
  boost::json::object mapping;  // merged over defaultInboundMapping()

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<WebhookSourceConfig>& webhookSourceOptions();

// What a payload becomes without a `mapping`: a track event "Webhook Received" with the whole
// payload as its properties, the user from the usual places (userId, user_id, customer.id,
// email), and its time from timestamp / created_at when they hold one.
const boost::json::object& defaultInboundMapping();

// The pure part of a request: a received body (already verified) to Segment events, all or
// nothing. An object is one event, an array one event per element (each an object, at most
// `max_events`). InvalidArgument naming the problem and, for an array, the element:
// "invalid JSON at line 1 ...", "element 3: track event without \"event\"".
sdk::Result<std::vector<sdk::Event>> mapPayload(std::string_view body,
                                                const sdk::FieldMapping& mapping,
                                                std::string_view source_id,
                                                std::uint64_t max_events);

class WebhookSource final : public sdk::Source {
 public:
  WebhookSource(WebhookSourceConfig config, sdk::SourceContext& ctx);

  // Parses the mapping and registers POST /v1/webhooks/{id}.
  sdk::Status start() override;
  // Later requests get 503; answers of emits in flight still go out.
  void stop() override { stopped_.store(true); }

 private:
  void handle(sdk::HttpRequest&& request, sdk::HttpResponder respond);
  // nullopt when the signature verifies under one of the secrets; otherwise the 401's message.
  std::optional<std::string> refusal(const sdk::HttpRequest& request) const;
  void count(int status);

  WebhookSourceConfig config_;
  sdk::SourceContext& ctx_;
  sdk::FieldMapping mapping_;
  std::atomic<bool> stopped_{false};
};

}  // namespace junction::plugins::webhook
