#pragma once

// A fake Mailchimp Marketing API 3.0 (one audience) on a loopback ScriptedHttpServer, for the
// mailchimp plugin's tests, the end-to-end tests and the benchmarks. What the plugin uses, as
// Mailchimp documents it, under /3.0:
//
//   PUT  /lists/{list_id}/members/{hash}               add or update a member (hash = MD5 of
//        the lower-cased email_address, else 400); status_if_new for new members
//   POST /lists/{list_id}                              batch subscribe, 1..500 members: 200
//        {new_members, updated_members, errors [{email_address, error, error_code}], ...}
//   POST /lists/{list_id}/members/{hash}/events        204; 404 for a person not in the audience
//   POST /lists/{list_id}/members/{hash}/tags          204 (each tag active: added, inactive:
//        removed); 404 for a person not in the audience
//   POST /lists/{list_id}/members/{hash}/actions/delete-permanent   204, or 404; the address
//        cannot be added again (400 "Forgotten Email Not Subscribed"; a batch error)
//
// Every request needs HTTP basic auth with the API key as password (401 "API Key Missing" without
// one, "API Key Invalid" with another); another list id is 404. More than `max_connections`
// requests in flight at once (Mailchimp's 10 simultaneous connections) get 429, as does a request
// past `requests_per_second`. Request bodies are validated against the operation's JSON Schema
// from tests/fixtures/mailchimp (400 "Invalid Resource" with `errors` naming the field), email
// addresses must look real (400 "… looks fake or invalid"), and merge fields must fit the
// audience's default fields: FNAME, LNAME (text), PHONE (text), BIRTHDAY ("MM/DD"), ADDRESS (an
// object with addr1, city, state and zip; 400 "Your merge fields were invalid." otherwise). Errors
// are problem details:
// {"type","title","status","detail","instance"}. Thread-safe.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::tests::fakes {

struct FakeMailchimpOptions {
  std::string api_key = "0123456789abcdef0123456789abcdef-us6";
  std::string list_id = "a1b2c3d4e5";
  // Requests per second before 429 "Too Many Requests"; 0 = no limit.
  double requests_per_second = 0;
  // Requests in flight at once (received, not yet answered) before 429; Mailchimp allows 10.
  std::size_t max_connections = 10;
};

class FakeMailchimp {
 public:
  using Options = FakeMailchimpOptions;

  struct Member {
    std::string email_address;
    std::string status;
    boost::json::object merge_fields;
    std::vector<std::string> tags;
  };
  struct MemberEvent {
    std::string email_address;
    std::string name;
    boost::json::object properties;
    std::string occurred_at;
  };

  explicit FakeMailchimp(Options options = {});
  ~FakeMailchimp();
  FakeMailchimp(const FakeMailchimp&) = delete;
  FakeMailchimp& operator=(const FakeMailchimp&) = delete;

  // "http://127.0.0.1:PORT/3.0": what the plugin's base_url gets.
  std::string baseUrl() const;
  const std::string& apiKey() const noexcept { return options_.api_key; }
  const std::string& listId() const noexcept { return options_.list_id; }

  // The next `n` requests (whose path starts with `path_prefix`, when given, a full path like
  // "/3.0/lists/a1b2c3d4e5/members/<hash>/tags") get this answer instead of Mailchimp's.
  void failNext(std::size_t n, int status, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string path_prefix = "");
  void setDelay(std::chrono::milliseconds delay);
  // While down, every connection is reset without an answer.
  void setDown(bool down);
  // An existing member with this status (say "unsubscribed"), as if they had been there before.
  void addMember(std::string email, std::string status);

  std::vector<sdk::testing::RecordedRequest> requests() const;
  std::size_t requestCount() const;
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;
  void clearRequests();

  std::size_t memberCount() const;
  // Every member, ordered by email.
  std::vector<Member> members() const;
  // By email, case-insensitively.
  std::optional<Member> member(std::string_view email) const;
  std::size_t memberEventCount() const;
  std::vector<MemberEvent> memberEvents() const;
  // Permanently deleted addresses, in order.
  std::vector<std::string> deleted() const;
  // Bodies refused by the JSON Schemas, with valijson's reasons.
  std::vector<std::string> schemaViolations() const;

  // Validates `body` (a request body) against an operation's schema ("putListsIdMembersId",
  // "postListsId", "postListMemberEvents", "postListMemberTags"), with the path parameters the
  // schema also describes. Empty when valid, else the problems. For tests of the plugin too.
  // "postListsId.out" validates a batch subscribe's 200 answer (what the fake sends) instead.
  static std::vector<std::string> validate(std::string_view operation,
                                           const boost::json::value& body);

 private:
  struct Failure {
    std::size_t remaining = 0;
    int status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string path_prefix;
  };

  sdk::HttpResponse handle(const sdk::testing::RecordedRequest& request);
  sdk::HttpResponse putMember(const std::string& hash, const boost::json::value& body);
  sdk::HttpResponse batch(const boost::json::value& body);
  sdk::HttpResponse upsertLocked(const boost::json::object& member, bool use_status_if_new,
                                 bool& created, std::string& refusal);  // mutex_ held
  void installRule();                                                   // rule_mutex_ held
  // Problems of a member's merge fields, as Mailchimp's `errors` ({field, message}).
  static boost::json::array mergeFieldProblems(const boost::json::object& member);

  const Options options_;
  mutable std::mutex mutex_;
  std::map<std::string, Member> members_;                          // by lower-cased email
  std::unordered_map<std::string, std::string> by_hash_;           // subscriber hash -> email
  std::deque<std::chrono::steady_clock::time_point> answers_due_;  // of requests in flight
  std::chrono::milliseconds answer_delay_{0};                      // delay_, read under mutex_
  std::vector<MemberEvent> events_;
  std::vector<std::string> deleted_;
  std::vector<std::string> violations_;
  std::deque<Failure> failures_;
  double bucket_ = 0;
  std::chrono::steady_clock::time_point bucket_at_;

  std::mutex rule_mutex_;
  std::chrono::milliseconds delay_{0};
  bool down_ = false;
  sdk::testing::ScriptedHttpServer server_;
  std::optional<sdk::testing::ScriptedHttpServer::RuleBuilder> rule_;
};

}  // namespace junction::tests::fakes
