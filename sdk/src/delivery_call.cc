#include "junction/sdk/delivery_call.h"

#include <cstdint>

#include "junction/sdk/log.h"

namespace junction::sdk {

Outcome DeliveryCall::limited(std::string reason, std::chrono::milliseconds pause) {
  Outcome o = Outcome::retry(std::move(reason), pause);
  if (!throttled_) {
    throttled_ = true;
    ctx_.throttle(pause);
    ctx_.log().warn(vendor_ + " limits the account; the destination slows down",
                    {{"pause_ms", static_cast<std::int64_t>(pause.count())}});
  }
  stop_ = o;
  return o;
}

Outcome DeliveryCall::classify(const HttpClientResponse& response, const std::string& reason,
                               const std::string& auth_text) {
  switch (response.classification) {
    case HttpClassification::Success:
      return Outcome::delivered();
    case HttpClassification::RateLimited:
      return limited(vendor_ + " rate limit: " + reason, response.retry_after);
    case HttpClassification::Retryable: {
      Outcome o = Outcome::retry(reason, response.retry_after);
      if (response.status == 0) {
        stop_ = o;
      }
      return o;
    }
    case HttpClassification::AuthExpired:
      return Outcome::failed("authentication failed: " + auth_text);
    case HttpClassification::Permanent:
      return Outcome::failed(reason);
  }
  return Outcome::retry(response.describe());
}

}  // namespace junction::sdk
