#include "junction/sdk/destination.h"

#include "junction/sdk/http_client.h"

namespace junction::sdk {

Outcome Outcome::fromResponse(const HttpClientResponse& response) {
  switch (response.classification) {
    case HttpClassification::Success:
      return delivered();
    case HttpClassification::RateLimited:
      return retry(response.describe(), response.retry_after);
    case HttpClassification::Retryable:
      return retry(response.describe(), response.retry_after);
    case HttpClassification::AuthExpired:
      // Credentials rotate; events wait (within the retry budget) rather than dead-letter.
      return retry(response.describe());
    case HttpClassification::Permanent:
      return failed(response.describe());
  }
  return failed(response.describe());
}

}  // namespace junction::sdk
