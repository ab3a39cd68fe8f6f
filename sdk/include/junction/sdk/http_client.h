#pragma once

// An HTTP client for plugins (libcurl): connection reuse, timeouts, TLS verification, and a
// classification of every response that the delivery engine's retry logic relies on.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "junction/sdk/abi.h"
#include "junction/sdk/http_server.h"

namespace junction::sdk {

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  HttpHeaders headers;
  std::string body;
  std::chrono::milliseconds timeout{0};  // whole request; 0 = the client's default
};

// How a response should be treated. Decided once, here, for every plugin.
enum class HttpClassification {
  Success,      // 2xx
  Retryable,    // 408, 5xx, timeouts, connection refused/reset, DNS failure, truncated reply
  RateLimited,  // 429 (retry_after from Retry-After when given)
  AuthExpired,  // 401: credentials expired or revoked (refresh, then retry)
  Permanent,    // any other 4xx, 3xx (redirects are not followed), unparseable status
};

const char* toString(HttpClassification c) noexcept;

struct HttpClientResponse {
  int status = 0;  // 0 when no HTTP response arrived (see transport_error)
  HttpHeaders headers;
  std::string body;             // truncated at max_response_bytes
  std::string transport_error;  // curl's message when status == 0
  HttpClassification classification = HttpClassification::Retryable;
  std::chrono::milliseconds retry_after{0};  // from Retry-After (seconds or HTTP-date); 0 = none
  std::chrono::microseconds elapsed{0};

  bool ok() const noexcept { return classification == HttpClassification::Success; }
  // "HTTP 429: {\"detail\":\"slow down\"}" or "transport: Connection refused", at most ~300
  // chars of the body; suitable for an Outcome reason. Never contains request headers.
  std::string describe() const;
};

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  bool verify_tls = true;
  std::string ca_file;  // empty = system store
  std::string user_agent = "junction/" JUNCTION_SDK_VERSION;
  std::size_t max_idle_connections = 16;
  std::size_t max_response_bytes = 16 * 1024 * 1024;
};

// Thread-safe: `send` may be called from several threads at once; idle connections are pooled
// and reused across calls. Never throws. Destroying the client closes its connections; it must
// outlive every `send` in progress.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpClientResponse send(const HttpClientRequest& request) noexcept;

  const HttpClientOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Classifies a status code (0 = transport failure).
HttpClassification classifyStatus(int status) noexcept;

// Parses a Retry-After value: delta-seconds or an HTTP-date, relative to `now_epoch_ms`.
// Returns 0 when absent or unparseable.
std::chrono::milliseconds parseRetryAfter(std::string_view value, std::int64_t now_epoch_ms) noexcept;

}  // namespace junction::sdk
