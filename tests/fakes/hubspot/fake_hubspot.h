#pragma once

// A fake HubSpot CRM v3 API on a loopback ScriptedHttpServer, for the hubspot plugin's tests,
// the end-to-end tests and the benchmarks. It implements what the plugin uses, as HubSpot
// documents it:
//
//   POST /crm/v3/objects/contacts/batch/upsert   inputs [{idProperty: "email", id, properties}],
//        1..100 of them (400 VALIDATION_ERROR otherwise); 200 {"status":"COMPLETE","results":
//        [{"id","properties",...}]}, or 207 with "errors" [{"category","message","context":
//        {"ids":[...]}}] for the inputs it refuses (an id that is not an email; failEmail());
//        400 VALIDATION_ERROR for a property the account does not have (defineProperties())
//   POST /events/v3/send                          {eventName, email | objectId, occurredAt?,
//        properties?}: 204
//   POST /crm/v3/objects/contacts/gdpr-delete     {objectId, idProperty: "email"}: 204, or 404
//        OBJECT_NOT_FOUND
//   POST /crm/v3/objects/contacts/search          the CRM search: {filterGroups (at most 5, each
//        at most 6 filters; OR of ANDs), sorts (at most one), properties, limit (1..200, default
//        10), after (an offset)}. Filters on lastmodifieddate, createdate, hs_object_id (EQ, NEQ,
//        LT, LTE, GT, GTE, BETWEEN with highValue; epoch milliseconds or ISO 8601) and on other
//        properties (EQ, NEQ, HAS_PROPERTY, NOT_HAS_PROPERTY). 200 {"total", "results": [{"id",
//        "properties", "createdAt", "updatedAt", "archived"}], "paging": {"next": {"after"}}};
//        the default properties (createdate, email, firstname, hs_object_id, lastmodifieddate,
//        lastname) plus the requested ones (null when unset). At most 10,000 results per query:
//        `after` at or past the cap is 400 VALIDATION_ERROR. Search calls have their own limit
//        (`search_requests_per_second`, HubSpot's is 5), answered 429 with policyName SECONDLY,
//        and carry no X-HubSpot-RateLimit headers, as HubSpot documents.
//
// Contacts carry lastmodifieddate and createdate (epoch ms, served as ISO 8601); an upsert sets
// lastmodifieddate to the fake's clock, putContact() to a given time, so tests serve changing
// data.
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
  // Search calls per second (rolling second), when not 0: HubSpot allows 5 per account.
  double search_requests_per_second = 0;
  // Results one search query can page through (HubSpot: 10,000).
  std::size_t search_result_cap = 10'000;
};

class FakeHubspot {
 public:
  using Options = FakeHubspotOptions;

  struct Contact {
    std::string id;
    boost::json::object properties;  // every value a string, as HubSpot keeps them
    std::int64_t created_ms = 0;
    std::int64_t last_modified_ms = 0;
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
  // The account's contact properties: once set, an upsert naming any other property is refused
  // whole, 400 VALIDATION_ERROR "Property values were not valid: [… PROPERTY_DOESNT_EXIST …]",
  // as HubSpot does. Unset (the default): every property exists.
  void defineProperties(std::set<std::string> names);
  // Upserts answer 200 with no result for this email (a 2xx that wrote nothing).
  void dropEmail(std::string email);
  // Creates or updates the contact with this email (properties merged) and sets its
  // lastmodifieddate; returns its id.
  std::string putContact(std::string email, boost::json::object properties,
                         std::int64_t last_modified_ms);
  // `n` contacts contact<first+i>@example.com (firstname, lastname), modified at
  // first_modified_ms + i * step_ms.
  void seedContacts(std::size_t n, std::int64_t first_modified_ms, std::int64_t step_ms,
                    std::size_t first = 0);
  // Epoch ms the fake stamps on upserts (default: the system clock).
  void setNowMs(std::optional<std::int64_t> now_ms);
  // Search requests answered (any status).
  std::size_t searchCount() const;
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
  sdk::HttpResponse search(const sdk::testing::RecordedRequest& request);
  // Sets a contact's lastmodifieddate, keeping by_modified_ in step. mutex_ held.
  void touch(Contact& contact, std::int64_t last_modified_ms);
  Contact& contactFor(const std::string& email, std::int64_t now_ms);  // mutex_ held
  std::int64_t nowMs() const;                                          // mutex_ held
  void installRule();  // rule_mutex_ held
  // HubSpot's error body ({"status":"error","message","correlationId","category"}).
  sdk::HttpResponse errorAnswer(int status, std::string_view message, std::string_view category);
  std::string correlationId();

  const Options options_;
  const std::size_t window_max_;  // X-HubSpot-RateLimit-Max: the limit, or 1,000,000
  const bool window_limited_;     // false: the window is only reported
  mutable std::mutex mutex_;
  std::map<std::string, Contact> contacts_;  // by lower-cased email
  std::map<std::uint64_t, std::string> email_by_id_;
  std::set<std::pair<std::int64_t, std::uint64_t>> by_modified_;  // (lastmodifieddate, id)
  std::vector<std::pair<std::int64_t, std::uint64_t>> sorted_;     // by_modified_, for searches
  bool sorted_dirty_ = true;
  std::optional<std::int64_t> now_ms_;
  std::deque<std::chrono::steady_clock::time_point> search_window_;  // searches, last second
  std::size_t searches_ = 0;
  std::vector<BehavioralEvent> events_;
  std::vector<std::string> gdpr_deleted_;
  std::map<std::string, Refusal> fail_emails_;
  std::set<std::string> drop_emails_;
  std::optional<std::set<std::string>> defined_properties_;
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
