#pragma once

// One deliver() call's view of the vendor, and the outcome of an HTTP answer classified the same
// way for every vendor destination that sends several requests per call (sfmc, salesforce):
//
//   sdk::DeliveryCall call(ctx_, "Salesforce");
//   for (auto& request : requests) {
//     if (call.stop()) { outcomes_of(request) = *call.stop(); continue; }  // not sent
//     auto response = send(request);
//     if (!response.ok()) outcomes_of(request) = call.classify(response, vendorReason(response),
//                                                              vendorText(response));
//   }
//
// Once the account is rate limited (a 429, or a vendor's own "limit reached" answer given to
// limited()) or the vendor is unreachable, the call's later requests are not sent: their events
// get the same retry outcome (stop()). The destination is throttled at most once per call.
// Not thread-safe: one object per deliver() call, on its thread.

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"

namespace junction::sdk {

class DeliveryCall {
 public:
  // `ctx` outlives the object; `vendor` names the vendor in reasons and log lines.
  DeliveryCall(DestinationContext& ctx, std::string vendor) noexcept
      : ctx_(ctx), vendor_(std::move(vendor)) {}

  // Set once the call should send nothing more; the outcome for the events not sent.
  const std::optional<Outcome>& stop() const noexcept { return stop_; }
  void stopWith(Outcome outcome) { stop_ = std::move(outcome); }
  // Whether this call throttled the destination already.
  bool throttled() const noexcept { return throttled_; }

  // The account is limited: retry(reason, pause) for the events, the call stopped, and the
  // destination throttled for `pause` (the first time in this call, logged).
  Outcome limited(std::string reason, std::chrono::milliseconds pause);

  // The outcome of a non-2xx answer:
  //   429 (RateLimited)              -> limited("<vendor> rate limit: <reason>", Retry-After)
  //   408, 5xx, transport (Retryable) -> retry(reason, Retry-After); a transport failure stops
  //                                     the call (the vendor's other requests would fail too)
  //   401 (AuthExpired)              -> failed("authentication failed: <auth_text>")
  //   other 4xx (Permanent)          -> failed(reason)
  // A 2xx is delivered.
  Outcome classify(const HttpClientResponse& response, const std::string& reason,
                   const std::string& auth_text);

 private:
  DestinationContext& ctx_;
  std::string vendor_;
  std::optional<Outcome> stop_;
  bool throttled_ = false;
};

}  // namespace junction::sdk
