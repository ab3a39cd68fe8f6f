#pragma once

// An OAuth 2.0 access token (client-credentials grant) cached for a plugin's threads: fetched on
// first use, kept for the grant's lifetime (replaced a minute early), and replaced once when the
// vendor answers a request with 401. The vendor-specific parts (the token request, how its answer
// and errors read) come from an OAuthTokenEndpoint; the rest is the same for every vendor.
//
//   OAuthTokenCache tokens_{{.vendor = "Salesforce",
//                            .request = [this] { return tokenRequest(config_); },
//                            .parse = parseTokenResponse,
//                            .error_text = vendorError},
//                           ctx};
//   auto sent = tokens_.send({.method = "PATCH", .url = "services/data/v62.0/...", ...}, "upsert");
//   if (sent.no_token) return *sent.no_token;  // the outcome for the events: no token to be had
//
// Thread-safety: get() and send() may be called from several threads at once; one token fetch
// runs at a time and the others wait for it. The endpoint's functions run under that lock.
// Secrets (the client secret, access tokens) never appear in outcomes or log lines written here.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "junction/sdk/context.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/result.h"

namespace junction::sdk {

// A token endpoint's successful answer.
struct OAuthGrant {
  std::string access_token;
  // The API base the token is for (SFMC's rest_instance_url, Salesforce's instance_url).
  std::string instance_url;
  // 0: the vendor does not say; the token is then kept until a request is answered 401.
  std::chrono::seconds expires_in{0};
};

struct OAuthTokenEndpoint {
  std::string vendor;  // in outcome reasons and log lines: "SFMC", "Salesforce"
  // The token request, complete (URL, headers, body with the credentials, timeout).
  std::function<HttpClientRequest()> request;
  // Reads a 2xx answer; an error names what is missing (never the token).
  std::function<Result<OAuthGrant>(std::string_view body)> parse;
  // The vendor's error text in an error answer, or nullopt (then the response's description).
  std::function<std::optional<std::string>(std::string_view body)> error_text;
  // Called with the HTTP status (0: no response) of every token request, for metrics.
  std::function<void(int status)> counted;
};

class OAuthTokenCache {
 public:
  struct Token {
    std::string access_token;
    std::string instance_url;
    std::chrono::steady_clock::time_point refresh_at;  // max(): until the vendor refuses it
  };
  // A token, or (token null) the outcome for the events that needed one: failed when the
  // vendor refused the credentials, retry when it could not be asked or answered oddly.
  struct Lease {
    std::shared_ptr<const Token> token;
    Outcome failure;
  };
  // The answer to a request sent with a token, or the outcome when no token could be had.
  struct Sent {
    std::optional<Outcome> no_token;
    HttpClientResponse response;
  };

  // `context` must outlive the cache. Only stores its arguments.
  OAuthTokenCache(OAuthTokenEndpoint endpoint, PluginContext& context) noexcept;

  // The cached token, or a new one. `rejected`: a token the vendor answered 401 to; it is
  // replaced unless another thread replaced it already.
  Lease get(const std::string* rejected = nullptr);

  // Sends `request`, whose url is relative to the token's instance_url, with
  // `Authorization: Bearer <token>`; on a 401, fetches a new token and sends it once more.
  // `counted` (optional) sees every response, for metrics; `endpoint` names the request in logs.
  Sent send(HttpClientRequest request, std::string_view endpoint,
            const std::function<void(const HttpClientResponse&)>& counted = {});

  // How long before its expiry a token is replaced: a minute, or half its life when shorter.
  static std::chrono::seconds refreshMargin(std::chrono::seconds expires_in) noexcept;

 private:
  OAuthTokenEndpoint endpoint_;
  PluginContext& ctx_;
  std::mutex mutex_;                    // held while a token is fetched
  std::shared_ptr<const Token> token_;  // guarded by mutex_
};

}  // namespace junction::sdk
