// libFuzzer target: every vendor plugin's reading of vendor answers (plugins/mailchimp, hubspot,
// sfmc, salesforce, webhook), with the response body as the input.
//
// Input: an HTTP response body, given to each plugin's answer readers:
//   mailchimp  vendorReason (400, 404, 500), memberPutOutcome (200), batchOutcomes (200)
//   hubspot    vendorReason (400, 429), upsertOutcomes (200, 207), rateLimitWait (429, with and
//              without rate-limit headers; one header value taken from the body's first line)
//   sfmc       parseTokenResponse, vendorError, rowsetProblems + rowsConcerned, parseDeleteResponse
//   salesforce parseTokenResponse, vendorError, errorCode, parseSalesforceTime, recordEvent
//   webhook    outcomesOf (200, 207, 400, 429, 503) for a batch of three events
// Invariants: one outcome per email/event; reasons are bounded (the plugins clip vendor text:
// a dead letter's reason must not hold a whole body), non-empty for a non-delivered outcome, and
// valid UTF-8 when the body is (a character cut in half once made GET /admin/dlq answer JSON
// that was not; sdk::clipReason fixed it);
// a parsed token grant has a token, a positive lifetime and a base URL ending in '/', and a
// refused one never quotes the token; a delete answer with an operation id has no error; the
// rows a rowset problem concerns exist, in order, once each.
// Seeds: vendor answers in the shapes tests/fakes/*/ send them, and the bodies of the plugins'
// tests (tests/plugins/*/).

#include <boost/json.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hubspot_destination.h"
#include "junction/sdk/text.h"
#include "mailchimp_destination.h"
#include "salesforce_api.h"
#include "salesforce_source.h"
#include "sfmc_requests.h"
#include "tests/fuzz/fuzz_util.h"
#include "webhook_destination.h"

namespace {

namespace sdk = junction::sdk;
namespace plugins = junction::plugins;

// Longest reason any of these may produce: clipped vendor text (300-600 bytes) plus the
// plugin's own words.
constexpr std::size_t kMaxReason = 1024;

// The emails the seeds' answers name (lower-cased, as the plugins pass them), one twice.
const std::vector<std::string> kEmails = {"person1@example.com", "person6@example.com",
                                          "person7@example.com", "person8@example.com",
                                          "ada@example.com",     "person6@example.com"};

sdk::HttpClientResponse response(int status, std::string_view body) {
  sdk::HttpClientResponse r;
  r.status = status;
  r.body = std::string(body);
  r.classification = sdk::classifyStatus(status);
  return r;
}

// Whether the body being read is valid UTF-8 (then every reason made of it must be too: reasons
// go to logs and to the dead-letter store, whose JSON listing must stay readable).
bool g_body_utf8 = true;

void checkUtf8(const std::string& reason, const char* what) {
  FUZZ_CHECK(!g_body_utf8 || junction::fuzz::validUtf8(reason),
             std::string(what) + " cut a UTF-8 character: " + reason);
}

void checkOutcomes(const std::vector<sdk::Outcome>& outcomes, std::size_t expected,
                   const char* what) {
  FUZZ_CHECK(outcomes.size() == expected, std::string(what) + ": " +
                                              std::to_string(outcomes.size()) + " outcomes for " +
                                              std::to_string(expected));
  for (const sdk::Outcome& o : outcomes) {
    FUZZ_CHECK(o.reason.size() <= kMaxReason,
               std::string(what) + ": a reason of " + std::to_string(o.reason.size()) + " bytes");
    FUZZ_CHECK(o.isDelivered() || !o.reason.empty(), std::string(what) + ": no reason");
    FUZZ_CHECK(o.retry_after.count() >= 0, what);
    checkUtf8(o.reason, what);
  }
}

void checkReason(const std::string& reason, const char* what) {
  FUZZ_CHECK(!reason.empty(), what);
  FUZZ_CHECK(reason.size() <= kMaxReason,
             std::string(what) + ": " + std::to_string(reason.size()) + " bytes");
  checkUtf8(reason, what);
}

void mailchimp(std::string_view body) {
  namespace mc = plugins::mailchimp;
  for (int status : {400, 404, 500}) {
    checkReason(mc::vendorReason(response(status, body)), "mailchimp vendorReason");
  }
  const sdk::Outcome put = mc::memberPutOutcome(response(200, body));
  checkOutcomes({put}, 1, "mailchimp memberPutOutcome");
  checkOutcomes(mc::batchOutcomes(response(200, body), kEmails), kEmails.size(),
                "mailchimp batchOutcomes");
  checkOutcomes(mc::batchOutcomes(response(200, body), {}), 0, "mailchimp batchOutcomes");
}

void hubspot(std::string_view body) {
  namespace hs = plugins::hubspot;
  for (int status : {400, 429}) {
    checkReason(hs::vendorReason(response(status, body)), "hubspot vendorReason");
  }
  for (int status : {200, 207}) {
    checkOutcomes(hs::upsertOutcomes(response(status, body), kEmails), kEmails.size(),
                  "hubspot upsertOutcomes");
  }
  sdk::HttpClientResponse limited = response(429, body);
  FUZZ_CHECK(hs::rateLimitWait(limited).count() > 0, "hubspot rateLimitWait without headers");
  const std::string_view first_line = body.substr(0, body.find('\n'));
  limited.headers.set("X-HubSpot-RateLimit-Interval-Milliseconds", std::string(first_line));
  limited.headers.set("X-HubSpot-RateLimit-Max", "100");
  limited.headers.set("X-HubSpot-RateLimit-Remaining", "0");
  FUZZ_CHECK(hs::rateLimitWait(limited).count() > 0, "hubspot rateLimitWait with headers");
  limited.retry_after = std::chrono::milliseconds(1500);
  FUZZ_CHECK(hs::rateLimitWait(limited).count() == 1500, "Retry-After is not honoured first");
}

void sfmc(std::string_view body) {
  namespace sf = plugins::sfmc;
  auto grant = sf::parseTokenResponse(body);
  if (grant.ok()) {
    FUZZ_CHECK(!grant->access_token.empty(), "");
    FUZZ_CHECK(grant->expires_in.count() > 0, "");
    FUZZ_CHECK(grant->rest_instance_url.ends_with('/'), grant->rest_instance_url);
    FUZZ_CHECK(grant->rest_instance_url.starts_with("http://") ||
                   grant->rest_instance_url.starts_with("https://"),
               grant->rest_instance_url);
  } else {
    FUZZ_CHECK(grant.error().code == sdk::ErrorCode::InvalidArgument, grant.error().message);
    // "never the token itself"
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(body, ec);
    if (!ec && v.is_object()) {
      if (const auto* token = v.get_object().if_contains("access_token");
          token != nullptr && token->is_string() && token->get_string().size() >= 8) {
        const std::string secret(token->get_string());
        if (grant.error().message.find(secret) != std::string::npos) {
          // Quoted, or only spelled by the message's own words ("esponse has " is a token the
          // fuzzer found)? The same answer with another token tells.
          boost::json::object other = v.get_object();
          other["access_token"] = std::string(secret.size(), secret[0] == 'Z' ? 'Y' : 'Z');
          auto again = sf::parseTokenResponse(boost::json::serialize(other));
          FUZZ_CHECK(!again.ok() && again.error().message.find(secret) != std::string::npos,
                     "the token response's error quotes the token: " + grant.error().message);
        }
      }
    }
  }

  if (auto error = sf::vendorError(body)) {  // may be empty: the vendor's message was ""
    FUZZ_CHECK(error->size() <= kMaxReason, "sfmc vendorError: " + std::to_string(error->size()));
    checkUtf8(*error, "sfmc vendorError");
  }

  // Rows as the destination sends them (sfmc_requests_test.cc).
  static const boost::json::object r0 =
      boost::json::parse(R"({"keys":{"ContactKey":"a"},"values":{"EmailAddress":"ok@x.io"}})")
          .as_object();
  static const boost::json::object r1 =
      boost::json::parse(
          R"({"keys":{"ContactKey":"b"},"values":{"EmailAddress":"bad@","Plan":"p"}})")
          .as_object();
  static const boost::json::object r2 =
      boost::json::parse(R"({"keys":{"ContactKey":"c"},"values":{"Plan":"q","N":5}})").as_object();
  static const boost::json::object* const rows[] = {&r0, &r1, &r2};
  for (const sf::RowsetProblem& problem : sf::rowsetProblems(body)) {
    FUZZ_CHECK(!problem.value || problem.column, "a value without its column");
    const std::vector<std::size_t> concerned = sf::rowsConcerned(problem, rows);
    FUZZ_CHECK(concerned.size() <= std::size(rows), "");
    for (std::size_t i = 0; i < concerned.size(); ++i) {
      FUZZ_CHECK(concerned[i] < std::size(rows), "");
      FUZZ_CHECK(i == 0 || concerned[i] > concerned[i - 1], "rows concerned twice or unordered");
    }
    FUZZ_CHECK(problem.column || concerned.empty(), "rows concerned by a problem naming no column");
  }

  auto deleted = sf::parseDeleteResponse(body);
  if (deleted.ok()) {
    FUZZ_CHECK(!deleted->operation_id || deleted->error.empty(),
               "a delete answer with both an operation id and an error");
    FUZZ_CHECK(deleted->error.size() <= kMaxReason, "sfmc parseDeleteResponse");
  }
}

void salesforce(std::string_view body) {
  namespace sf = plugins::salesforce;
  auto grant = sf::parseTokenResponse(body);
  if (grant.ok()) {
    FUZZ_CHECK(!grant->access_token.empty(), "");
    FUZZ_CHECK(grant->instance_url.ends_with('/'), grant->instance_url);
    FUZZ_CHECK(grant->instance_url.starts_with("http://") ||
                   grant->instance_url.starts_with("https://"),
               grant->instance_url);
  } else {
    FUZZ_CHECK(grant.error().code == sdk::ErrorCode::InvalidArgument, grant.error().message);
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(body, ec);
    if (!ec && v.is_object()) {
      if (const auto* token = v.get_object().if_contains("access_token");
          token != nullptr && token->is_string() && token->get_string().size() >= 8) {
        FUZZ_CHECK(grant.error().message.find(std::string(token->get_string())) ==
                       std::string::npos,
                   "the token response's error quotes the token: " + grant.error().message);
      }
    }
  }
  if (auto error = sf::vendorError(body)) {
    FUZZ_CHECK(error->size() <= kMaxReason,
               "salesforce vendorError: " + std::to_string(error->size()));
    checkUtf8(*error, "salesforce vendorError");
  }
  (void)sf::errorCode(body);
  (void)sf::parseSalesforceTime(body);
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    std::string why;
    if (auto event = sf::recordEvent(v.get_object(), "Id", why)) {
      // What the source emits must be a valid event (userId, type, messageId).
      FUZZ_CHECK(sdk::makeEvent(*event, "crm").ok(), boost::json::serialize(*event));
    } else {
      FUZZ_CHECK(!why.empty(), "a skipped record without a reason");
    }
  }
}

std::vector<sdk::Event> webhookBatch() {
  std::vector<sdk::Event> batch;
  for (const char* id : {"m-1", "m-2", "m-1"}) {  // a messageId twice: a redelivered event
    sdk::EventHeader h;
    h.type = sdk::EventType::Track;
    h.message_id = id;
    h.user_id = "u1";
    h.name = "Clicked";
    batch.emplace_back(h, std::string(R"({"type":"track","event":"Clicked","messageId":")") + id +
                              R"(","userId":"u1"})");
  }
  return batch;
}

void webhook(std::string_view body) {
  static const std::vector<sdk::Event> batch = webhookBatch();
  for (int status : {200, 207, 400, 429, 503}) {
    checkOutcomes(plugins::webhook::outcomesOf(response(status, body), batch), batch.size(),
                  "webhook outcomesOf");
  }
  // A 2xx with no `"failed"` in it delivers everything, whatever else it says.
  if (body.find("\"failed\"") == std::string_view::npos) {
    for (const auto& o : plugins::webhook::outcomesOf(response(200, body), batch)) {
      FUZZ_CHECK(o.isDelivered(), "a 2xx without a failed list did not deliver: " + o.reason);
    }
  }
  sdk::HttpClientResponse none = response(0, "");
  // A transport error is the HTTP client's text, cut (as the client does) on a character.
  none.transport_error = sdk::clipReason(std::string(body), 200);
  checkOutcomes(plugins::webhook::outcomesOf(none, batch), batch.size(), "webhook transport");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = junction::fuzz::asText(data, size);
  g_body_utf8 = junction::fuzz::validUtf8(body);
  mailchimp(body);
  hubspot(body);
  sfmc(body);
  salesforce(body);
  webhook(body);
  return 0;
}
