#pragma once

// A fake HubSpot CRM v3 API on a loopback ScriptedHttpServer, for the hubspot plugin's tests,
// the end-to-end tests and the benchmarks. It implements what the plugin uses, as HubSpot
// documents it:
//
//   POST /crm/v3/objects/contacts/batch/upsert   inputs [{idProperty: "email", id, properties}],
//        1..100 of them (400 VALIDATION_ERROR otherwise); 200 {"status":"COMPLETE","results":
//        [{"id","properties",...}]}, or 207 with "errors" [{"category","message","context":
//        {"ids":[...]}}] for the inputs it refuses (an id that is not an email; failEmail())
//   POST /events/v3/send                          {eventName, email | objectId, occurredAt?,
//        properties?}: 204
//   POST /crm/v3/objects/contacts/gdpr-delete     {objectId, idProperty: "email"}: 204, or 404
//        OBJECT_NOT_FOUND
//
// Every request needs `Authorization: Bearer <access token>` (401 INVALID_AUTHENTICATION
// otherwise). Every answer carries the rolling ten-second window's X-HubSpot-RateLimit-Max,
// -Remaining and -Interval-Milliseconds (and, with a daily limit, -Daily and -Daily-Remaining);
// past a limit it answers 429 {"status":"error","message","errorType":"RATE_LIMIT",
// "correlationId","policyName":"TEN_SECONDLY_ROLLING" | "DAILY","requestId"} without
// Retry-After, as HubSpot does. Other error bodies are HubSpot's: {"status":"error","message",
// "correlationId","category"}. Thread-safe.

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::tests::fakes {

struct FakeHubspotOptions {
  std::string access_token = "pat-na1-fake-hubspot-token";
  // Calls per second, enforced the way HubSpot enforces its limit: over a rolling ten seconds
  // whose X-HubSpot-RateLimit-Max is ten times this (rounded up). 0 = no limit (the headers
  // then say 1,000,000).
  double requests_per_second = 0;
  // Calls per rolling ten seconds, when not 0 (it wins over requests_per_second): HubSpot's
  // private apps get 100 (Free, Starter) or 190 (Professional, Enterprise).
  std::size_t ten_secondly_limit = 0;
  // Calls per day (250,000 on Free and Starter), counted from the fake's start; 0 = no daily
  // limit and no -Daily headers (as for OAuth apps).
  std::size_t daily_limit = 0;
};

class FakeHubspot {
 public:
  using Options = FakeHubspotOptions;

  struct Contact {
    std::string id;
    boost::json::object properties;  // every value a string, as HubSpot keeps them
  };
  struct BehavioralEvent {
    std::string event_name;
    std::string email;
    std::string occurred_at;
    boost::json::object properties;
  };

  explicit FakeHubspot(Options options = {});
  ~FakeHubspot();
  FakeHubspot(const FakeHubspot&) = delete;
  FakeHubspot& operator=(const FakeHubspot&) = delete;

  std::string baseUrl() const;
  const std::string& accessToken() const noexcept { return options_.access_token; }

  // The next `n` requests (whose path starts with `path_prefix`, when given) get this answer.
  void failNext(std::size_t n, int status, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string path_prefix = "");
  // Upserts naming this email are refused in the 207 answer with this error (HubSpot's
  // categories: VALIDATION_ERROR, RATE_LIMITS, INTERNAL_ERROR, ...).
  void failEmail(std::string email, std::string message = "Property values were not valid",
                 std::string category = "VALIDATION_ERROR");
  // Upserts answer 200 with no result for this email (a 2xx that wrote nothing).
  void dropEmail(std::string email);
  void setDelay(std::chrono::milliseconds delay);
  // While down, every connection is reset without an answer.
  void setDown(bool down);

  std::vector<sdk::testing::RecordedRequest> requests() const;
  std::size_t requestCount() const;
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;
  void clearRequests();

  std::size_t contactCount() const;
  // By email, case-insensitively.
  std::optional<Contact> contact(std::string_view email) const;
  // Every contact, by email (properties.email) in order.
  std::vector<Contact> contacts() const;
  std::vector<BehavioralEvent> behavioralEvents() const;
  // Emails whose contact a GDPR delete removed, in order.
  std::vector<std::string> gdprDeleted() const;
  // 429s the fake's own limits answered (not failNext's).
  std::size_t rateLimitedCount() const;
  // The rolling window's X-HubSpot-RateLimit-Max (1,000,000 without a limit).
  std::size_t windowMax() const noexcept { return window_max_; }

 private:
  struct Failure {
    std::size_t remaining = 0;
    int status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string path_prefix;
  };
  struct Refusal {
    std::string message;
    std::string category;
  };

  sdk::HttpResponse handle(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse upsert(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse sendEvent(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse gdprDelete(const sdk::testing::RecordedRequest& request);
  void installRule();  // rule_mutex_ held
  // HubSpot's error body ({"status":"error","message","correlationId","category"}).
  sdk::HttpResponse errorAnswer(int status, std::string_view message, std::string_view category);
  std::string correlationId();

  const Options options_;
  const std::size_t window_max_;  // X-HubSpot-RateLimit-Max: the limit, or 1,000,000
  const bool window_limited_;     // false: the window is only reported
  mutable std::mutex mutex_;
  std::map<std::string, Contact> contacts_;  // by lower-cased email
  std::vector<BehavioralEvent> events_;
  std::vector<std::string> gdpr_deleted_;
  std::map<std::string, Refusal> fail_emails_;
  std::set<std::string> drop_emails_;
  std::deque<Failure> failures_;
  std::deque<std::chrono::steady_clock::time_point> window_;  // calls in the last ten seconds
  std::size_t daily_calls_ = 0;
  std::size_t rate_limited_ = 0;
  std::size_t next_id_ = 1001;
  std::atomic<std::uint64_t> correlation_{1};

  std::mutex rule_mutex_;
  std::chrono::milliseconds delay_{0};
  bool down_ = false;
  sdk::testing::ScriptedHttpServer server_;
  std::optional<sdk::testing::ScriptedHttpServer::RuleBuilder> rule_;
};

}  // namespace junction::tests::fakes
