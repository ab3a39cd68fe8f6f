#include "junction/sdk/destination.h"
#include "junction/sdk/text.h"

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

std::string clipReason(std::string text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return text;
  }
  std::size_t end = max_bytes;
  // Back to the start of the character the cut would split (continuation bytes are 10xxxxxx).
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  text.resize(end);
  return text + "...";
}

}  // namespace junction::sdk
