#pragma once

// What the hubspot destination and the hubspot source share of HubSpot's API: reading its error
// bodies and its rate-limit answers (headers and policy names).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "junction/sdk/http_client.h"

namespace junction::plugins::hubspot {

inline constexpr std::string_view kMaxHeader = "X-HubSpot-RateLimit-Max";
inline constexpr std::string_view kRemainingHeader = "X-HubSpot-RateLimit-Remaining";
inline constexpr std::string_view kIntervalHeader = "X-HubSpot-RateLimit-Interval-Milliseconds";
inline constexpr std::string_view kDailyHeader = "X-HubSpot-RateLimit-Daily";
inline constexpr std::string_view kDailyRemainingHeader = "X-HubSpot-RateLimit-Daily-Remaining";

// A header's integer value; -1 when absent or not a number.
std::int64_t headerNumber(const sdk::HttpHeaders& headers, std::string_view name);

// The day's calls are spent (private apps get the -Daily headers; OAuth apps do not).
bool dailySpent(const sdk::HttpHeaders& headers);

// When an answer says the account has no calls left (the day's or the window's): how long until
// it has some again.
std::optional<std::chrono::milliseconds> spentFor(const sdk::HttpClientResponse& response);

// How long HubSpot's limit asks to wait after `response` (a 429): its Retry-After; else, for the
// daily limit (policyName DAILY), an hour (it resets at midnight in the account's time zone);
// for the per-second limits of the search endpoints (policyName SECONDLY), a second; else the
// window, X-HubSpot-RateLimit-Interval-Milliseconds; else 10 s.
std::chrono::milliseconds rateLimitWait(const sdk::HttpClientResponse& response);

// HubSpot's error text: `message` (and `category`) of its error body, else the response's
// description. Never holds request headers.
std::string vendorReason(const sdk::HttpClientResponse& response);

}  // namespace junction::plugins::hubspot
