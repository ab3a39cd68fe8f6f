#include "junction/sdk/oauth_token.h"

#include <utility>

#include "junction/sdk/log.h"

namespace junction::sdk {

OAuthTokenCache::OAuthTokenCache(OAuthTokenEndpoint endpoint, PluginContext& context) noexcept
    : endpoint_(std::move(endpoint)), ctx_(context) {}

std::chrono::seconds OAuthTokenCache::refreshMargin(std::chrono::seconds expires_in) noexcept {
  return expires_in > std::chrono::seconds(120) ? std::chrono::seconds(60) : expires_in / 2;
}

OAuthTokenCache::Lease OAuthTokenCache::get(const std::string* rejected) {
  std::lock_guard lock(mutex_);
  const auto now = ctx_.clock().steadyNow();
  if (token_ && now < token_->refresh_at &&
      (rejected == nullptr || token_->access_token != *rejected)) {
    return {token_, {}};
  }
  token_.reset();
  const std::string& vendor = endpoint_.vendor;
  const HttpClientResponse response = ctx_.http().send(endpoint_.request());
  if (endpoint_.counted) {
    endpoint_.counted(response.status);
  }
  if (!response.ok()) {
    switch (response.classification) {
      case HttpClassification::AuthExpired:
      case HttpClassification::Permanent: {
        std::string why = endpoint_.error_text(response.body).value_or(response.describe());
        ctx_.log().error(vendor + " authentication failed",
                         {{"status", response.status}, {"error", why}});
        return {nullptr, Outcome::failed("authentication failed: " + why)};
      }
      case HttpClassification::RateLimited:
        return {nullptr, Outcome::retry(vendor + " token request rate limited: " +
                                            response.describe(),
                                        response.retry_after)};
      default:
        return {nullptr, Outcome::retry(vendor + " token request failed: " + response.describe(),
                                        response.retry_after)};
    }
  }
  auto grant = endpoint_.parse(response.body);
  if (!grant) {
    ctx_.log().warn(vendor + " token response unusable", {{"error", grant.error().message}});
    return {nullptr, Outcome::retry(vendor + " answered the token request with HTTP " +
                                    std::to_string(response.status) + " but " +
                                    grant.error().message)};
  }
  const auto refresh_at =
      grant->expires_in.count() > 0
          ? now + grant->expires_in - refreshMargin(grant->expires_in)
          : std::chrono::steady_clock::time_point::max();
  token_ = std::make_shared<const Token>(
      Token{std::move(grant->access_token), std::move(grant->instance_url), refresh_at});
  ctx_.log().debug(vendor + " access token obtained",
                   {{"expires_in_s", grant->expires_in.count()}});
  return {token_, {}};
}

OAuthTokenCache::Sent OAuthTokenCache::send(
    HttpClientRequest request, std::string_view endpoint,
    const std::function<void(const HttpClientResponse&)>& counted) {
  auto current = get();
  if (!current.token) {
    return {current.failure, {}};
  }
  const std::string path = std::move(request.url);
  const auto attempt = [&](const Token& t) {
    request.url = t.instance_url + path;
    request.headers.set("Authorization", "Bearer " + t.access_token);
    HttpClientResponse response = ctx_.http().send(request);
    if (counted) {
      counted(response);
    }
    return response;
  };
  HttpClientResponse response = attempt(*current.token);
  if (response.status == 401) {
    auto fresh = get(&current.token->access_token);
    if (!fresh.token) {
      return {fresh.failure, {}};
    }
    ctx_.log().info(endpoint_.vendor + " refused the access token; sending again with a new one",
                    {{"endpoint", endpoint}});
    response = attempt(*fresh.token);
  }
  return {std::nullopt, std::move(response)};
}

}  // namespace junction::sdk
