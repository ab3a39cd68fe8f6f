#pragma once

// The `webhook` destination: POSTs each batch as `{"batch":[<event>,...]}` to a URL, signed
// with X-Junction-Signature so that the receiver (an email platform's inbound endpoint, a
// serverless function) can check it came from this daemon. See README.md for the contract.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/mapping.h"
#include "junction/sdk/metrics.h"
#include "junction/sdk/options.h"

namespace junction::plugins::webhook {

struct WebhookConfig {
  std::string url;
  std::string secret;
  std::string previous_secret;
  boost::json::object headers;
  std::chrono::milliseconds timeout{0};
  boost::json::object mapping;

  // url scheme, header names and values, the mapping, previous_secret without secret.
  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<WebhookConfig>& webhookOptions();

// Headers the plugin writes itself, or that only the HTTP client may write: refused in
// `headers` (case-insensitively), as is every name starting with "X-Junction-".
inline constexpr std::string_view kReservedHeaders[] = {"Content-Type",      "Content-Length",
                                                        "Content-Encoding",  "Host",
                                                        "Transfer-Encoding", "Connection"};

// `{"batch":[<event.json()>,...]}` appended to `out`: the events' text as received, no parse.
void appendBatchBody(std::span<const sdk::Event> batch, std::string& out);

// X-Junction-Batch-Id: 32 hex digits of SHA-256 over the batch's messageIds, each followed by
// '\n'. The same events in the same order give the same id; a retry may regroup events into
// other batches, so receivers deduplicate on messageId, not on this.
std::string batchId(std::span<const sdk::Event> batch);

// One outcome per event of `batch` for the receiver's `response`:
//   - 2xx: delivered, except the events named in a `{"failed":[{"messageId","error","retry"}]}`
//     answer (retry true: Retry; otherwise Failed with the receiver's error). Anything else in
//     a 2xx body is ignored;
//   - 408, 429, 5xx, timeouts, transport errors: Retry, after Retry-After when given;
//   - 401, 403 and every other 4xx (and 3xx: redirects are not followed): Failed with the
//     status and the receiver's answer.
std::vector<sdk::Outcome> outcomesOf(const sdk::HttpClientResponse& response,
                                     std::span<const sdk::Event> batch);

// Thread-safe: deliver() keeps no state between calls besides metrics; concurrent calls are
// independent requests on the context's pooled HTTP client.
class WebhookDestination final : public sdk::Destination {
 public:
  // `config` has passed the option table and validate().
  WebhookDestination(WebhookConfig config, sdk::DestinationContext& context);

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override;

  // The request deliver() sends for `batch`, signed at `unix_seconds` (pure: no network).
  sdk::HttpClientRequest makeRequest(std::span<const sdk::Event> batch,
                                     std::int64_t unix_seconds) const;

 private:
  sdk::Counter& requestsWith(int status) noexcept;

  WebhookConfig config_;
  sdk::DestinationContext& context_;
  std::optional<sdk::FieldMapping> mapping_;  // set when config.mapping is not empty
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  sdk::Counter& sent_bytes_;
  sdk::Counter& rejected_events_;
  sdk::Counter* requests_[6];  // by status class: transport error, 1xx..5xx
};

}  // namespace junction::plugins::webhook
