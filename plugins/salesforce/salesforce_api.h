#pragma once

// What the `salesforce` destination and source share about Salesforce's APIs, without a network:
// the OAuth 2.0 client-credentials token request and its answer, REST paths, and how error
// answers read.
//
//   POST {login_url}/services/oauth2/token   grant_type=client_credentials&client_id=..&
//        client_secret=.. (form-encoded) -> {"access_token","instance_url","token_type",...}.
//        Salesforce gives no expires_in: a token is kept until an API call answers 401
//        [{"errorCode":"INVALID_SESSION_ID"}], then replaced once (sdk::OAuthTokenCache).
//   API calls go to {instance_url}/services/data/v{api_version}/...
//   Errors: [{"message","errorCode","fields"}] (REST), {"error","error_description"} (OAuth).

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/array.hpp>

#include "junction/sdk/context.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/oauth_token.h"
#include "junction/sdk/result.h"

namespace junction::plugins::salesforce {

// The credentials every salesforce connector has.
struct Credentials {
  std::string login_url;
  std::string client_id;
  std::string client_secret;
  std::chrono::milliseconds timeout{0};
};

// The token request: POST {login_url without trailing '/'}/services/oauth2/token, form-encoded.
sdk::HttpClientRequest tokenRequest(const Credentials& credentials);

// access_token and instance_url of a token answer (instance_url gets a trailing '/'); an error
// names what is missing, never the token.
sdk::Result<sdk::OAuthGrant> parseTokenResponse(std::string_view body);

// The error text of an answer: "CODE: message" for each entry of the REST shape (joined by "; "),
// "error: error_description" for the OAuth shape; nullopt for anything else.
std::optional<std::string> vendorError(std::string_view body);

// The first errorCode of a REST error answer, or "".
std::string errorCode(std::string_view body);

// The token endpoint, ready for an sdk::OAuthTokenCache. `counted` sees each token request's
// status (for the plugin's request metric).
sdk::OAuthTokenEndpoint tokenEndpoint(Credentials credentials,
                                      std::function<void(int status)> counted);

// "services/data/v62.0/": the REST root relative to the instance URL.
std::string dataPath(std::string_view api_version);

// A reason quoting the vendor: "HTTP 400 from Salesforce: INVALID_FIELD: ...", bounded.
std::string vendorReason(const sdk::HttpClientResponse& response);

}  // namespace junction::plugins::salesforce
