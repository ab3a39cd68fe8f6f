#include "hubspot_api.h"

#include <boost/json.hpp>
#include <charconv>

#include "junction/sdk/text.h"

namespace junction::plugins::hubspot {

namespace json = boost::json;

namespace {

// A 429 without Retry-After or -Interval-Milliseconds waits out HubSpot's rolling window.
constexpr std::chrono::milliseconds kDefaultRateLimitWait{10'000};
// The daily limit resets at midnight in the account's time zone, which the plugin does not
// know: it pauses this long, then one call finds out whether the day has turned.
constexpr std::chrono::milliseconds kDailyLimitWait{std::chrono::hours(1)};
// The search endpoints' own limit is per second.
constexpr std::chrono::milliseconds kSecondlyLimitWait{1'000};

std::chrono::milliseconds windowOf(const sdk::HttpHeaders& headers) {
  const std::int64_t interval = headerNumber(headers, kIntervalHeader);
  return interval > 0 ? std::chrono::milliseconds(interval) : kDefaultRateLimitWait;
}

// The policyName of HubSpot's 429 body, or "".
std::string policyName(const std::string& body) {
  if (body.find("policyName") == std::string::npos) {
    return "";
  }
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  const json::object* o = ec ? nullptr : parsed.if_object();
  const json::value* policy = o != nullptr ? o->if_contains("policyName") : nullptr;
  return policy != nullptr && policy->is_string() ? std::string(policy->get_string()) : "";
}

}  // namespace

std::int64_t headerNumber(const sdk::HttpHeaders& headers, std::string_view name) {
  std::string_view text = headers.get(name);
  std::int64_t n = -1;
  if (text.empty() ||
      std::from_chars(text.data(), text.data() + text.size(), n).ec != std::errc()) {
    return -1;
  }
  return n;
}

bool dailySpent(const sdk::HttpHeaders& headers) {
  return headerNumber(headers, kDailyHeader) > 0 &&
         headerNumber(headers, kDailyRemainingHeader) == 0;
}

std::optional<std::chrono::milliseconds> spentFor(const sdk::HttpClientResponse& response) {
  if (dailySpent(response.headers)) {
    return kDailyLimitWait;
  }
  if (headerNumber(response.headers, kMaxHeader) > 0 &&
      headerNumber(response.headers, kRemainingHeader) == 0) {
    return windowOf(response.headers);
  }
  return std::nullopt;
}

std::string vendorReason(const sdk::HttpClientResponse& response) {
  boost::system::error_code ec;
  const json::value body = json::parse(response.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  const json::value* message = o != nullptr ? o->if_contains("message") : nullptr;
  if (message == nullptr || !message->is_string()) {
    return response.describe();
  }
  std::string reason = "HTTP " + std::to_string(response.status) +
                       " from HubSpot: " + std::string(message->get_string());
  if (const auto* category = o->if_contains("category");
      category != nullptr && category->is_string()) {
    reason += " (" + std::string(category->get_string()) + ")";
  }
  return sdk::clipReason(std::move(reason), 300);
}

std::chrono::milliseconds rateLimitWait(const sdk::HttpClientResponse& response) {
  if (response.retry_after.count() > 0) {
    return response.retry_after;
  }
  const std::string policy = policyName(response.body);
  if (policy == "DAILY") {
    return kDailyLimitWait;
  }
  if (policy == "SECONDLY") {
    return kSecondlyLimitWait;
  }
  return windowOf(response.headers);
}

}  // namespace junction::plugins::hubspot
