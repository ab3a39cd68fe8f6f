#include "salesforce_api.h"

#include <boost/json.hpp>

#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::plugins::salesforce {

namespace json = boost::json;

namespace {

// Vendor texts put in outcome reasons are cut here: enough to act on, bounded in the DLQ.
constexpr std::size_t kMaxErrorText = 600;

std::string withoutTrailingSlash(std::string_view url) {
  while (!url.empty() && url.back() == '/') {
    url.remove_suffix(1);
  }
  return std::string(url);
}

}  // namespace

sdk::HttpClientRequest tokenRequest(const Credentials& credentials) {
  sdk::HttpClientRequest request{
      .method = "POST",
      .url = withoutTrailingSlash(credentials.login_url) + "/services/oauth2/token",
      .headers = {},
      .body = "grant_type=client_credentials&client_id=" +
              sdk::percentEncode(credentials.client_id) +
              "&client_secret=" + sdk::percentEncode(credentials.client_secret),
      .timeout = credentials.timeout};
  request.headers.set("Content-Type", "application/x-www-form-urlencoded");
  request.headers.set("Accept", "application/json");
  return request;
}

sdk::Result<sdk::OAuthGrant> parseTokenResponse(std::string_view body) {
  auto parsed = sdk::parseJson(body);
  if (!parsed || !parsed->is_object()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the answer is not a JSON object");
  }
  auto token = sdk::stringAt(*parsed, "access_token");
  auto instance = sdk::stringAt(*parsed, "instance_url");
  if (!token || token->empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the answer has no access_token");
  }
  if (!instance || !(instance->starts_with("https://") || instance->starts_with("http://"))) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the answer has no instance_url (an http(s) URL)");
  }
  return sdk::OAuthGrant{std::move(*token), withoutTrailingSlash(*instance) + "/",
                         std::chrono::seconds(0)};
}

std::optional<std::string> vendorError(std::string_view body) {
  auto parsed = sdk::parseJson(body);
  if (!parsed) {
    return std::nullopt;
  }
  if (const json::array* list = parsed->if_array()) {
    std::string out;
    for (const auto& entry : *list) {
      const auto code = sdk::stringAt(entry, "errorCode");
      const auto message = sdk::stringAt(entry, "message");
      if (!code && !message) {
        continue;
      }
      out += (out.empty() ? "" : "; ") + code.value_or("ERROR") + ": " + message.value_or("");
    }
    if (out.empty()) {
      return std::nullopt;
    }
    return sdk::clipReason(std::move(out), kMaxErrorText);
  }
  if (const auto error = sdk::stringAt(*parsed, "error")) {
    const auto description = sdk::stringAt(*parsed, "error_description");
    return sdk::clipReason(*error + (description ? ": " + *description : ""), kMaxErrorText);
  }
  return std::nullopt;
}

std::string errorCode(std::string_view body) {
  auto parsed = sdk::parseJson(body);
  if (!parsed || !parsed->is_array() || parsed->get_array().empty()) {
    return "";
  }
  return sdk::stringAt(parsed->get_array()[0], "errorCode").value_or("");
}

sdk::OAuthTokenEndpoint tokenEndpoint(Credentials credentials,
                                      std::function<void(int status)> counted) {
  return {.vendor = "Salesforce",
          .request = [credentials = std::move(credentials)] { return tokenRequest(credentials); },
          .parse = parseTokenResponse,
          .error_text = vendorError,
          .counted = std::move(counted)};
}

std::string dataPath(std::string_view api_version) {
  return "services/data/v" + std::string(api_version) + "/";
}

std::string vendorReason(const sdk::HttpClientResponse& response) {
  if (response.status != 0) {
    if (auto text = vendorError(response.body)) {
      return "HTTP " + std::to_string(response.status) + " from Salesforce: " + *text;
    }
  }
  return response.describe();
}

}  // namespace junction::plugins::salesforce
