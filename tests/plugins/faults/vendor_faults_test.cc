// Fault injection (issue 13): every destination plugin against a vendor that hangs, resets the
// connection, answers slowly, answers bytes that are not HTTP or an HTTP response cut short, or
// answers 2xx with an error body (or with a body that is not JSON). For every (plugin, fault):
//
//   - every event gets exactly one outcome, and deliver() neither throws nor crashes;
//   - nothing is Delivered unless the vendor accepted it (the expected outcomes below);
//   - transient faults give Retry with a reason naming what happened (timed out, reset, not
//     HTTP, cut short), never Failed;
//   - deliver() returns within the plugin's `timeout` plus a margin: a vendor that never answers
//     does not hang a delivery thread.
//
// The vendor is a ScriptedHttpServer with the vendor's endpoints: the fault is scripted on the
// endpoints a scenario names, the others answer as the vendor does on success. Each plugin is
// built from its option table the way the daemon builds it, with `timeout: 500ms`.

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "hubspot_destination.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/destination.h"
#include "junction/sdk/event.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/options.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "mailchimp_destination.h"
#include "sfmc_config.h"
#include "sfmc_destination.h"
#include "webhook_destination.h"

namespace junction::plugins::faults {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using sdk::HttpResponse;
using sdk::testing::PathMatch;
using sdk::testing::RecordedRequest;
using sdk::testing::ScriptedHttpServer;

// The plugins' `timeout` option in every case.
constexpr std::chrono::milliseconds kTimeout = 500ms;
// A hang: far past kTimeout (a plugin that ignored its timeout would get the success answer
// after this long, and fail both the outcome and the time checks).
constexpr std::chrono::milliseconds kHangDelay = 4000ms;
// Slow but within kTimeout.
constexpr std::chrono::milliseconds kSlowDelay = 100ms;
// deliver() must return within this in every case; it is a hang check, not a speed test (the
// slowest case sends a token request and one request that times out: ~2 x kTimeout).
constexpr std::chrono::milliseconds kNoHangBound = 10'000ms;
// Past this the process gives up on a deliver() that never returns (and fails).
constexpr std::chrono::milliseconds kWatchdog = 30'000ms;

// Garbage: not HTTP at all (curl refuses HTTP/0.9), and a 200 whose Content-Length promises more
// than the body that comes before the connection closes.
constexpr std::string_view kNotHttp = "not http at all\r\n\r\n";
constexpr std::string_view kTruncated =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    "{\"new_members\":[{\"email_address\":\"person1@exa";
constexpr std::string_view kHtml =
    "<html><body><h1>200 OK</h1><p>Your request has been received.</p></body></html>";

enum class Fault { Hang, Reset, Slow, NotHttp, Truncated, ErrorBody200, NotJson200 };

constexpr Fault kFaults[] = {Fault::Hang,    Fault::Reset,     Fault::Slow,
                             Fault::NotHttp, Fault::Truncated, Fault::ErrorBody200,
                             Fault::NotJson200};

const char* faultName(Fault f) {
  switch (f) {
    case Fault::Hang:
      return "Hang";
    case Fault::Reset:
      return "Reset";
    case Fault::Slow:
      return "Slow";
    case Fault::NotHttp:
      return "NotHttp";
    case Fault::Truncated:
      return "Truncated";
    case Fault::ErrorBody200:
      return "ErrorBody200";
    case Fault::NotJson200:
      return "NotJson200";
  }
  return "?";
}

// What a reason must mention for a transport fault (any of these: curl's wording).
std::vector<std::string> transportWords(Fault f) {
  switch (f) {
    case Fault::Hang:
      return {"timed out", "Timeout"};
    case Fault::Reset:
      return {"reset", "Recv failure", "Empty reply"};
    case Fault::NotHttp:
      return {"HTTP/0.9", "Unsupported protocol", "Weird server reply"};
    case Fault::Truncated:
      return {"transfer closed", "bytes remaining", "Partial"};
    default:
      return {};
  }
}

// --- events ----------------------------------------------------------------------------------

sdk::Event event(const json::object& body) {
  auto made = sdk::makeEvent(body, "web");
  EXPECT_TRUE(made) << made.error().message << " in " << json::serialize(body);
  if (!made) {
    return sdk::Event{};
  }
  auto header = made->header();
  header.message_id = "m-" + header.user_id;
  header.timestamp_ms = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  return sdk::Event(header, std::string(made->json()));
}

std::string emailOf(int i) { return "person" + std::to_string(i) + "@example.com"; }

sdk::Event identify(int i) {
  return event(json::object{
      {"type", "identify"},
      {"userId", "u" + std::to_string(i)},
      {"traits", json::object{{"email", emailOf(i)}, {"first_name", "Ada"}, {"phone", "+44 1"}}}});
}

sdk::Event track(int i) {
  return event(json::object{
      {"type", "track"},
      {"userId", "u" + std::to_string(i)},
      {"event", "Cart Abandoned"},
      {"context", json::object{{"traits", json::object{{"email", emailOf(i)}}}}},
      {"properties", json::object{{"cart_id", "c-1"}, {"value", 42.5}}}});
}

// Three people identified and one track event: person1..3, then person4's "Cart Abandoned".
std::vector<sdk::Event> fourEvents() { return {identify(1), identify(2), identify(3), track(4)}; }

// The config the daemon would bind for `given` (keys as in YAML): each value normalized against
// the option table, defaults filled; then the plugin's cross-field validation.
template <typename Config>
Config bindChecked(const sdk::OptionTable<Config>& table, const json::object& given) {
  sdk::ConfigObject checked;
  for (const auto& spec : table.specs()) {
    if (const auto* v = given.if_contains(spec.key)) {
      auto normalized = sdk::normalizeOption(spec, *v);
      EXPECT_TRUE(normalized) << spec.key << ": " << normalized.error().message;
      if (normalized) {
        checked[spec.key] = std::move(*normalized);
      }
    } else if (spec.default_value) {
      checked[spec.key] = sdk::normalizeOption(spec, *spec.default_value).value();
    }
  }
  for (const auto& [key, value] : given) {
    EXPECT_TRUE(checked.contains(key)) << "not an option: " << std::string(key);
  }
  Config config = table.bind(checked);
  const auto errors = config.validate();
  for (const auto& e : errors) {
    ADD_FAILURE() << e.key << ": " << e.message;
  }
  return config;
}

// --- vendors ---------------------------------------------------------------------------------

using Responder = std::function<HttpResponse(const RecordedRequest&)>;

Responder fixed(int status, std::string body) {
  return [status, body = std::move(body)](const RecordedRequest&) {
    return body.empty() ? HttpResponse{status, {}, {}} : HttpResponse::json(status, body);
  };
}

// One vendor endpoint: its success answer, and its documented "2xx but failed" answer where it
// has one (else its success answer: the fault then only concerns the other endpoints).
struct Endpoint {
  std::string method;
  std::string path;
  PathMatch match = PathMatch::Exact;
  Responder ok;
  Responder error_body;
};

struct Scenario {
  std::string name;
  std::function<std::vector<Endpoint>(const std::string& base_url)> endpoints;
  std::function<std::unique_ptr<sdk::Destination>(const std::string& base_url,
                                                  sdk::DestinationContext& ctx)>
      make;
  std::function<std::vector<sdk::Event>()> events;
  // The endpoints (their `path`) the fault is scripted on; the others answer `ok`. Empty: all.
  std::vector<std::string> faulted;
  // Per fault, one letter per event: D delivered, R retry, F failed.
  std::map<Fault, std::string> expected;
};

// Webhook: one POST of the whole batch; a 2xx may refuse events one by one in a `failed` list;
// anything else in a 2xx body (HTML, not JSON) means delivered (plugins/webhook/README.md).
Scenario webhookScenario() {
  Scenario s;
  s.name = "Webhook";
  s.endpoints = [](const std::string&) {
    return std::vector<Endpoint>{
        {"POST", "/hook", PathMatch::Exact, fixed(200, R"({"ok":true})"),
         fixed(200, R"({"failed":[)"
                    R"({"messageId":"m-u1","error":"no consent record","retry":false},)"
                    R"({"messageId":"m-u2","error":"contact locked","retry":true}]})")}};
  };
  s.make = [](const std::string& base, sdk::DestinationContext& ctx) {
    return std::make_unique<webhook::WebhookDestination>(
        bindChecked(webhook::webhookOptions(),
                    json::object{{"url", base + "/hook"},
                                 {"secret", "whsec_5f2b8c"},
                                 {"timeout", "500ms"}}),
        ctx);
  };
  s.events = fourEvents;
  s.expected = {{Fault::Hang, "RRRR"},         {Fault::Reset, "RRRR"},
                {Fault::Slow, "DDDD"},         {Fault::NotHttp, "RRRR"},
                {Fault::Truncated, "RRRR"},    {Fault::ErrorBody200, "FRDD"},
                {Fault::NotJson200, "DDDD"}};  // documented: a 2xx body is only read for `failed`
  return s;
}

// Mailchimp's batch subscribe answers 200 and lists each member in new_members,
// updated_members or errors; member events answer 204 (no body, no "200 but failed").
Responder mailchimpBatchOk() {
  return [](const RecordedRequest& request) {
    const json::value body = json::parse(request.body);
    json::array added;
    for (const auto& m : body.at("members").as_array()) {
      const std::string email(m.at("email_address").as_string());
      added.push_back(json::object{
          {"id", sdk::md5Hex(email)}, {"email_address", email}, {"status", "subscribed"}});
    }
    const auto created = added.size();
    return HttpResponse::json(
        200, json::serialize(json::object{{"new_members", std::move(added)},
                                          {"updated_members", json::array{}},
                                          {"errors", json::array{}},
                                          {"total_created", created},
                                          {"total_updated", 0},
                                          {"error_count", 0}}));
  };
}

std::unique_ptr<sdk::Destination> makeMailchimp(const std::string& base,
                                                sdk::DestinationContext& ctx) {
  return std::make_unique<mailchimp::MailchimpDestination>(
      bindChecked(mailchimp::mailchimpOptions(),
                  json::object{{"api_key", "0123456789abcdef0123456789abcdef-us6"},
                               {"list_id", "L1"},
                               {"base_url", base + "/3.0"},
                               {"timeout", "500ms"}}),
      ctx);
}

constexpr const char* kMemberPath = R"(/3\.0/lists/L1/members/[0-9a-f]{32})";

// Three people: one batch subscribe, then person4's member event.
Scenario mailchimpBatchScenario() {
  Scenario s;
  s.name = "MailchimpBatch";
  s.endpoints = [](const std::string&) {
    return std::vector<Endpoint>{
        {"POST", "/3.0/lists/L1", PathMatch::Exact, mailchimpBatchOk(),
         // Mailchimp's 200 with per-member errors: a fake address (ERROR_GENERIC: failed) and
         // one that signed up to many lists recently (retry later); person3 was added.
         fixed(200,
               R"({"new_members":[{"id":")" + sdk::md5Hex(emailOf(3)) +
                   R"(","email_address":"person3@example.com","status":"subscribed"}],)"
                   R"("updated_members":[],"errors":[)"
                   R"({"email_address":"person1@example.com","error":"person1@example.com looks )"
                   R"(fake or invalid, please enter a real email address.","error_code":)"
                   R"("ERROR_GENERIC"},{"email_address":"person2@example.com","error":")"
                   R"(person2@example.com has signed up to a lot of lists very recently; we're )"
                   R"(not allowing more signups for now","error_code":"ERROR_GENERIC"}],)"
                   R"("total_created":1,"total_updated":0,"error_count":2})")},
        {"POST", std::string(kMemberPath) + "/events", PathMatch::Regex, fixed(204, ""),
         fixed(204, "")}};
  };
  s.make = makeMailchimp;
  s.events = fourEvents;
  // NotJson200: the batch's body was to say each member's fate (retry); a member event's answer
  // is a bare 2xx (documented 204) whose body says nothing, so a 200 delivers it.
  s.expected = {{Fault::Hang, "RRRR"},      {Fault::Reset, "RRRR"},
                {Fault::Slow, "DDDD"},      {Fault::NotHttp, "RRRR"},
                {Fault::Truncated, "RRRR"}, {Fault::ErrorBody200, "FRDD"},
                {Fault::NotJson200, "RRRD"}};
  return s;
}

// One person: a member PUT, whose 200 answer is the member.
Scenario mailchimpMemberScenario() {
  Scenario s;
  s.name = "MailchimpMember";
  s.endpoints = [](const std::string&) {
    return std::vector<Endpoint>{
        {"PUT", kMemberPath, PathMatch::Regex,
         [](const RecordedRequest& request) {
           const std::string email(json::parse(request.body).at("email_address").as_string());
           return HttpResponse::json(
               200, json::serialize(json::object{{"id", sdk::md5Hex(email)},
                                                 {"email_address", email},
                                                 {"status", "subscribed"}}));
         },
         // A problem detail under a 200: not the member.
         fixed(200, R"({"type":"https://mailchimp.com/developer/marketing/docs/errors/",)"
                    R"("title":"Invalid Resource","status":400,"detail":"person1@example.com )"
                    R"(looks fake or invalid, please enter a real email address.",)"
                    R"("instance":"2b5a0c6e-8f7e-4c1d-9d1e-0a1b2c3d4e5f"})")}};
  };
  s.make = makeMailchimp;
  s.events = [] { return std::vector<sdk::Event>{identify(1)}; };
  s.expected = {{Fault::Hang, "R"},      {Fault::Reset, "R"},        {Fault::Slow, "D"},
                {Fault::NotHttp, "R"},   {Fault::Truncated, "R"},    {Fault::ErrorBody200, "R"},
                {Fault::NotJson200, "R"}};
  return s;
}

// HubSpot: a batch upsert (200/201 with results; 207 with per-contact errors), then person4's
// behavioral event (204).
Scenario hubspotScenario() {
  Scenario s;
  s.name = "Hubspot";
  s.endpoints = [](const std::string&) {
    return std::vector<Endpoint>{
        {"POST", "/crm/v3/objects/contacts/batch/upsert", PathMatch::Exact,
         [](const RecordedRequest& request) {
           const json::value body = json::parse(request.body);
           json::array results;
           int id = 100;
           for (const auto& input : body.at("inputs").as_array()) {
             results.push_back(json::object{
                 {"id", std::to_string(++id)},
                 {"properties", json::object{{"email", input.at("id")}}},
                 {"new", true}});
           }
           return HttpResponse::json(
               200, json::serialize(json::object{{"status", "COMPLETE"},
                                                 {"results", std::move(results)}}));
         },
         // 207 Multi-Status: person3 written; person1 refused (VALIDATION_ERROR: failed),
         // person2 hit the secondly limit (RATE_LIMITS: retry).
         fixed(207, R"({"status":"COMPLETE","results":[{"id":"103","properties":)"
                    R"({"email":"person3@example.com"},"new":true}],"numErrors":2,"errors":[)"
                    R"({"status":"error","category":"VALIDATION_ERROR","message":"Property )"
                    R"(values were not valid: phone","context":{"ids":["person1@example.com"]}},)"
                    R"({"status":"error","category":"RATE_LIMITS","message":"You have reached )"
                    R"(your secondly limit.","context":{"ids":["person2@example.com"]}}]})")},
        {"POST", "/events/v3/send", PathMatch::Exact, fixed(204, ""), fixed(204, "")}};
  };
  s.make = [](const std::string& base, sdk::DestinationContext& ctx) {
    return std::make_unique<hubspot::HubspotDestination>(
        bindChecked(hubspot::hubspotOptions(),
                    json::object{{"access_token", "pat-na1-fault-token"},
                                 {"base_url", base},
                                 {"events", json::object{{"Cart Abandoned", "pe1_cart"}}},
                                 {"timeout", "500ms"}}),
        ctx);
  };
  s.events = fourEvents;
  s.expected = {{Fault::Hang, "RRRR"},      {Fault::Reset, "RRRR"},
                {Fault::Slow, "DDDD"},      {Fault::NotHttp, "RRRR"},
                {Fault::Truncated, "RRRR"}, {Fault::ErrorBody200, "FRDD"},
                {Fault::NotJson200, "RRRD"}};  // the event's 2xx is bare (204), as Mailchimp's
  return s;
}

// SFMC: the token at {auth_url}/v2/token, a rowset of the three people, person4's journey entry
// event (201 with eventInstanceId).
constexpr const char* kSfmcTokenPath = "/v2/token";
constexpr const char* kSfmcRowsetPath = "/rest/hub/v1/dataevents/key:Contacts/rowset";
constexpr const char* kSfmcJourneyPath = "/rest/interaction/v1/events";

std::vector<Endpoint> sfmcEndpoints(const std::string& base) {
  const std::string token = json::serialize(json::object{
      {"access_token", "eyJhbGciOiJIUzI1NiJ9.fault"},
      {"token_type", "Bearer"},
      {"expires_in", 1079},
      {"scope", "data_extensions_read data_extensions_write journeys_execute"},
      {"soap_instance_url", base + "/soap/"},
      {"rest_instance_url", base + "/rest/"}});
  return {
      {"POST", kSfmcTokenPath, PathMatch::Exact, fixed(200, token),
       // An OAuth error under a 200.
       fixed(200, R"({"error":"invalid_client","error_description":"Client authentication )"
                  R"(failed.","error_uri":"https://developer.salesforce.com/docs"})")},
      {"POST", kSfmcRowsetPath, PathMatch::Exact,
       [](const RecordedRequest& request) { return HttpResponse::json(200, request.body); },
       // The REST error shape under a 200: the rows were not saved.
       fixed(200, R"({"message":"Unable to save rows for data extension ID )"
                  R"(6d6a2c1e-0b3f-ee11-a5e8-48df37d1de8b","errorcode":10006,)"
                  R"("documentation":"","additionalErrors":[{"message":"The value for column )"
                  R"([EmailAddress] is not a valid email address: person1@example.com",)"
                  R"("errorcode":10000,"documentation":""}]})")},
      {"POST", kSfmcJourneyPath, PathMatch::Exact,
       fixed(201, R"({"eventInstanceId":"8c1e6f5a-4b1d-4f3e-9a2b-6c7d8e9f0a1b"})"),
       fixed(200, R"({"message":"Event definition key APIEvent-cart is not active",)"
                  R"("errorcode":30000,"documentation":""})")},
  };
}

std::unique_ptr<sdk::Destination> makeSfmc(const std::string& base, sdk::DestinationContext& ctx) {
  return std::make_unique<sfmc::SfmcDestination>(
      bindChecked(sfmc::sfmcOptions(),
                  json::object{{"auth_url", base},
                               {"client_id", "fault-client-id"},
                               {"client_secret", "fault-client-secret"},
                               {"data_extension", "Contacts"},
                               {"journeys", json::object{{"Cart Abandoned", "APIEvent-cart"}}},
                               {"timeout", "500ms"}}),
      ctx);
}

// Faults at the REST endpoints (the token is granted).
Scenario sfmcScenario() {
  Scenario s;
  s.name = "Sfmc";
  s.endpoints = sfmcEndpoints;
  s.make = makeSfmc;
  s.events = fourEvents;
  s.faulted = {kSfmcRowsetPath, kSfmcJourneyPath};
  s.expected = {{Fault::Hang, "RRRR"},      {Fault::Reset, "RRRR"},
                {Fault::Slow, "DDDD"},      {Fault::NotHttp, "RRRR"},
                {Fault::Truncated, "RRRR"}, {Fault::ErrorBody200, "RRRR"},
                {Fault::NotJson200, "RRRR"}};
  return s;
}

// Faults at the OAuth token endpoint (the REST endpoints would accept everything).
Scenario sfmcAuthScenario() {
  Scenario s;
  s.name = "SfmcAuth";
  s.endpoints = sfmcEndpoints;
  s.make = makeSfmc;
  s.events = fourEvents;
  s.faulted = {kSfmcTokenPath};
  s.expected = {{Fault::Hang, "RRRR"},      {Fault::Reset, "RRRR"},
                {Fault::Slow, "DDDD"},      {Fault::NotHttp, "RRRR"},
                {Fault::Truncated, "RRRR"}, {Fault::ErrorBody200, "RRRR"},
                {Fault::NotJson200, "RRRR"}};
  return s;
}

// The same deliveries with the fault only at the track event's endpoint, after the people were
// written: their Delivered outcomes stand, only the track event is retried. Member events and
// HubSpot's behavioral events answer a bare 204 (no "2xx but failed"); a journey entry event's
// 2xx must carry its eventInstanceId.
Scenario trackOnly(Scenario s, std::string name, std::string path) {
  s.name = std::move(name);
  s.faulted = {std::move(path)};
  const bool bare_2xx = s.name != "SfmcJourney";
  s.expected = {{Fault::Hang, "DDDR"},
                {Fault::Reset, "DDDR"},
                {Fault::Slow, "DDDD"},
                {Fault::NotHttp, "DDDR"},
                {Fault::Truncated, "DDDR"},
                {Fault::ErrorBody200, bare_2xx ? "DDDD" : "DDDR"},
                {Fault::NotJson200, bare_2xx ? "DDDD" : "DDDR"}};
  return s;
}

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> all{
      webhookScenario(),
      mailchimpBatchScenario(),
      mailchimpMemberScenario(),
      trackOnly(mailchimpBatchScenario(), "MailchimpTrack", std::string(kMemberPath) + "/events"),
      hubspotScenario(),
      trackOnly(hubspotScenario(), "HubspotTrack", "/events/v3/send"),
      sfmcScenario(),
      sfmcAuthScenario(),
      trackOnly(sfmcScenario(), "SfmcJourney", kSfmcJourneyPath)};
  return all;
}

// --- the suite -------------------------------------------------------------------------------

char letter(sdk::Outcome::Kind kind) {
  switch (kind) {
    case sdk::Outcome::Kind::Delivered:
      return 'D';
    case sdk::Outcome::Kind::Retry:
      return 'R';
    case sdk::Outcome::Kind::Failed:
      return 'F';
  }
  return '?';
}

void install(ScriptedHttpServer& server, const Endpoint& e, bool faulty, Fault fault,
             std::vector<ScriptedHttpServer::RuleBuilder>& faulted) {
  auto rule = server.when(e.method, e.path, e.match);
  if (!faulty) {
    rule.respond(e.ok);
    return;
  }
  switch (fault) {
    case Fault::Hang:
      rule.respond(e.ok).delay(kHangDelay);
      break;
    case Fault::Reset:
      rule.closeConnection();
      break;
    case Fault::Slow:
      rule.respond(e.ok).delay(kSlowDelay);
      break;
    case Fault::NotHttp:
      rule.rawReply(std::string(kNotHttp));
      break;
    case Fault::Truncated:
      rule.rawReply(std::string(kTruncated));
      break;
    case Fault::ErrorBody200:
      rule.respond(e.error_body);
      break;
    case Fault::NotJson200:
      rule.reply(200, std::string(kHtml), {{"Content-Type", "text/html; charset=utf-8"}});
      break;
  }
  faulted.push_back(rule);
}

// deliver() on a thread of its own, so that a hang fails the suite instead of stalling it.
std::vector<sdk::Outcome> deliverWatched(sdk::Destination& destination,
                                         std::span<const sdk::Event> events,
                                         std::chrono::milliseconds& elapsed) {
  auto result = std::make_shared<std::promise<std::vector<sdk::Outcome>>>();
  auto future = result->get_future();
  const auto started = std::chrono::steady_clock::now();
  std::thread worker([&destination, events, result] {
    try {
      result->set_value(destination.deliver(events));
    } catch (...) {
      result->set_exception(std::current_exception());
    }
  });
  if (future.wait_for(kWatchdog) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: deliver() has not returned after %lld ms: a hang\n",
                 static_cast<long long>(kWatchdog.count()));
    std::fflush(stderr);
    std::_Exit(3);
  }
  elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  worker.join();
  return future.get();
}

struct Case {
  std::size_t scenario;
  Fault fault;
};

// gtest prints a failing case's parameter with this.
void PrintTo(const Case& c, std::ostream* os) {
  *os << scenarios()[c.scenario].name << " x " << faultName(c.fault);
}

std::vector<Case> allCases() {
  std::vector<Case> cases;
  for (std::size_t s = 0; s < scenarios().size(); ++s) {
    for (const Fault f : kFaults) {
      cases.push_back({s, f});
    }
  }
  return cases;
}

// One line per case, printed after the suite: the matrix.
std::mutex g_matrix_mutex;
std::map<std::string, std::map<std::string, std::string>> g_matrix;  // scenario -> fault -> cell

class VendorFaultsTest : public ::testing::TestWithParam<Case> {
 public:
  static void TearDownTestSuite() {
    std::lock_guard lock(g_matrix_mutex);
    if (g_matrix.empty()) {
      return;
    }
    std::printf("\nplugin x fault -> outcomes (one letter per event: D delivered, R retry, F "
                "failed), time of deliver()\n");
    std::printf("%-16s", "");
    for (const Fault f : kFaults) {
      std::printf(" %-14s", faultName(f));
    }
    std::printf("\n");
    for (const auto& s : scenarios()) {
      const auto row = g_matrix.find(s.name);
      if (row == g_matrix.end()) {
        continue;
      }
      std::printf("%-16s", s.name.c_str());
      for (const Fault f : kFaults) {
        const auto cell = row->second.find(faultName(f));
        std::printf(" %-14s", cell == row->second.end() ? "-" : cell->second.c_str());
      }
      std::printf("\n");
    }
    std::fflush(stdout);
  }
};

TEST_P(VendorFaultsTest, EveryEventGetsAnHonestOutcomeInTime) {
  const Scenario& scenario = scenarios()[GetParam().scenario];
  const Fault fault = GetParam().fault;
  const std::string& expected = scenario.expected.at(fault);

  ScriptedHttpServer server;
  std::vector<ScriptedHttpServer::RuleBuilder> faulted;
  for (const auto& endpoint : scenario.endpoints(server.baseUrl())) {
    const bool faulty =
        scenario.faulted.empty() || std::find(scenario.faulted.begin(), scenario.faulted.end(),
                                              endpoint.path) != scenario.faulted.end();
    install(server, endpoint, faulty, fault, faulted);
  }
  sdk::testing::FakeDestinationContext ctx;
  auto destination = scenario.make(server.baseUrl(), ctx);
  const auto events = scenario.events();
  ASSERT_EQ(events.size(), expected.size());

  std::chrono::milliseconds elapsed{0};
  std::vector<sdk::Outcome> outcomes;
  try {
    outcomes = deliverWatched(*destination, events, elapsed);
  } catch (const std::exception& e) {
    FAIL() << "deliver() threw: " << e.what();
  } catch (...) {
    FAIL() << "deliver() threw";
  }

  // Every event has exactly one outcome.
  ASSERT_EQ(outcomes.size(), events.size());
  std::string got;
  for (const auto& o : outcomes) {
    got += letter(o.kind);
  }
  {
    std::lock_guard lock(g_matrix_mutex);
    g_matrix[scenario.name][faultName(fault)] = got + " " + std::to_string(elapsed.count()) + "ms";
  }

  // The fault was met: the vendor's faulted endpoint was called.
  std::size_t fault_hits = 0;
  for (const auto& rule : faulted) {
    fault_hits += rule.hits();
  }
  EXPECT_GT(fault_hits, 0u) << "the plugin never called the faulted endpoint";

  // Nothing delivered unless the vendor accepted it; the expected outcome for each event.
  std::string detail;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    detail += "\n  " + events[i].messageId() + ": " + sdk::toString(outcomes[i].kind) + " " +
              outcomes[i].reason;
  }
  RecordProperty("outcomes", detail);  // in --gtest_output=xml
  EXPECT_EQ(got, expected) << detail;

  // Every outcome that is not Delivered says why; a transport fault is named.
  const auto words = transportWords(fault);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    if (o.isDelivered()) {
      continue;
    }
    EXPECT_FALSE(o.reason.empty()) << events[i].messageId() << " has no reason";
    if (!words.empty()) {
      EXPECT_EQ(o.kind, sdk::Outcome::Kind::Retry) << o.reason;
      EXPECT_TRUE(std::any_of(words.begin(), words.end(),
                              [&](const std::string& w) {
                                return o.reason.find(w) != std::string::npos;
                              }))
          << events[i].messageId() << ": the reason does not say what happened: " << o.reason;
    }
  }

  // Never a hang: deliver() returns within the plugin's timeout per request, plus a margin.
  EXPECT_LT(elapsed, kNoHangBound) << "deliver() took " << elapsed.count() << " ms";
  if (fault == Fault::Hang) {
    EXPECT_GE(elapsed, kTimeout - 50ms) << "returned before the timeout: was the request sent?";
  }

  // Secrets never end up in reasons.
  for (const auto& o : outcomes) {
    EXPECT_EQ(o.reason.find("fault-client-secret"), std::string::npos) << o.reason;
    EXPECT_EQ(o.reason.find("0123456789abcdef0123456789abcdef"), std::string::npos) << o.reason;
    EXPECT_EQ(o.reason.find("pat-na1-fault-token"), std::string::npos) << o.reason;
  }
}

INSTANTIATE_TEST_SUITE_P(AllPlugins, VendorFaultsTest, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return scenarios()[param_info.param.scenario].name + "_" +
                                  faultName(param_info.param.fault);
                         });

// --- the scripted server's rawReply itself ---------------------------------------------------

TEST(ScriptedServerRawReplyTest, WritesTheBytesVerbatimThenCloses) {
  ScriptedHttpServer server;
  server.when("GET", "/valid")
      .rawReply("HTTP/1.1 203 Odd\r\nX-Raw: yes\r\nContent-Length: 2\r\n\r\nok");
  server.when("GET", "/garbage").rawReply(std::string(kNotHttp));
  server.when("GET", "/short").rawReply(std::string(kTruncated));
  // A later reply() replaces the raw bytes.
  auto replaced = server.when("GET", "/replaced");
  replaced.rawReply("junk").reply(200, R"({"fine":true})");

  sdk::HttpClient client;
  auto get = [&](const std::string& path) {
    return client.send({.method = "GET", .url = server.baseUrl() + path, .timeout = 2000ms});
  };
  const auto valid = get("/valid");
  EXPECT_EQ(valid.status, 203);
  EXPECT_EQ(valid.body, "ok");
  EXPECT_EQ(valid.headers.get("X-Raw"), "yes");

  const auto garbage = get("/garbage");
  EXPECT_EQ(garbage.status, 0);
  EXPECT_EQ(garbage.classification, sdk::HttpClassification::Retryable);
  EXPECT_FALSE(garbage.transport_error.empty());

  const auto cut = get("/short");
  EXPECT_EQ(cut.status, 0) << cut.describe();
  EXPECT_EQ(cut.classification, sdk::HttpClassification::Retryable);

  const auto fine = get("/replaced");
  EXPECT_EQ(fine.status, 200);
  EXPECT_EQ(fine.body, R"({"fine":true})");
  EXPECT_EQ(server.requests().size(), 4u);
}

}  // namespace
}  // namespace junction::plugins::faults
