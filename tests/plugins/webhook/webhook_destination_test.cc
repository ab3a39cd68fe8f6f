// The webhook destination: its option table and validate(), the exact request it builds, and
// every answer class, delivered over real loopback HTTP to the fake receiver.

#include "webhook_destination.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/crypto.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "junction/sdk/webhook_signature.h"
#include "tests/fakes/webhook/fake_webhook.h"

namespace junction::plugins::webhook {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using tests::fakes::FakeWebhookReceiver;

constexpr std::string_view kSecret = "whsec_5f2b8c";
constexpr std::string_view kToken = "Bearer tok_9d41e7";

// An event with exactly this text (as the queue hands it over: text as received).
sdk::Event rawEvent(std::string message_id, std::string text) {
  sdk::EventHeader header;
  header.message_id = std::move(message_id);
  header.user_id = "u";
  return sdk::Event(header, std::move(text));
}

std::vector<sdk::Event> threeEvents() {
  return {
      rawEvent("m-1", R"({"type":"identify","userId":"u1","messageId":"m-1",)"
                      R"("traits":{"email":"Ada@Example.com","first_name":"Ada"}})"),
      rawEvent("m-2", R"({"type":"track", "event":"Order Completed","userId":"u2",)"
                      R"("messageId":"m-2","properties":{"total":12.5,"note":"caf\u00e9"}})"),
      rawEvent("m-3",
               R"({"type":"track","event":"Cart Viewed","anonymousId":"a3","messageId":"m-3"})"),
  };
}

WebhookConfig configFor(std::string url) {
  WebhookConfig config;
  config.url = std::move(url);
  config.secret = kSecret;
  config.headers = json::object{{"Authorization", kToken}, {"X-Tenant", "acme"}};
  config.timeout = 5s;
  return config;
}

std::vector<sdk::Outcome::Kind> kinds(const std::vector<sdk::Outcome>& outcomes) {
  std::vector<sdk::Outcome::Kind> out;
  for (const auto& o : outcomes) {
    out.push_back(o.kind);
  }
  return out;
}

// The fake receiver's clock is the destination context's, so signatures are fresh.
FakeWebhookReceiver::Options receiverOptions(const sdk::testing::FakeDestinationContext& ctx) {
  FakeWebhookReceiver::Options options;
  options.secrets = {std::string(kSecret)};
  options.now_unix_seconds = [&ctx] { return ctx.clock().nowMs() / 1000; };
  return options;
}

// --- option table and validate() -------------------------------------------------------------

TEST(WebhookOptionsTest, Table) {
  const auto specs = webhookOptions().specs();
  EXPECT_TRUE(sdk::checkOptionTable(specs).empty());
  std::map<std::string, sdk::OptionSpec> by_key;
  for (const auto& spec : specs) {
    by_key[spec.key] = spec;
  }
  ASSERT_EQ(by_key.size(), 6u);
  EXPECT_TRUE(by_key["url"].required);
  EXPECT_FALSE(by_key["url"].secret);
  EXPECT_EQ(by_key["url"].type, sdk::OptionType::String);
  for (const char* key : {"secret", "previous_secret"}) {
    EXPECT_TRUE(by_key[key].secret) << key;
    EXPECT_FALSE(by_key[key].required) << key;
    EXPECT_EQ(by_key[key].default_value, json::value("")) << key;
  }
  EXPECT_EQ(by_key["headers"].type, sdk::OptionType::Object);
  EXPECT_TRUE(by_key["headers"].secret);
  EXPECT_EQ(by_key["timeout"].type, sdk::OptionType::Duration);
  EXPECT_EQ(by_key["timeout"].default_value, json::value("30s"));
  EXPECT_EQ(by_key["timeout"].min, 100);
  EXPECT_EQ(by_key["mapping"].type, sdk::OptionType::Object);
  EXPECT_FALSE(by_key["mapping"].secret);
  EXPECT_FALSE(by_key["mapping"].default_value.has_value());
}

TEST(WebhookOptionsTest, BindsAConfig) {
  const auto config = webhookOptions().bind(json::parse(R"({
      "url":"https://hooks.example.com/junction","secret":"s1","previous_secret":"s0",
      "headers":{"Authorization":"Bearer x"},"timeout":2500,
      "mapping":{"email":"traits.email"}})")
                                                .as_object());
  EXPECT_EQ(config.url, "https://hooks.example.com/junction");
  EXPECT_EQ(config.secret, "s1");
  EXPECT_EQ(config.previous_secret, "s0");
  EXPECT_EQ(config.headers.at("Authorization"), "Bearer x");
  EXPECT_EQ(config.timeout, 2500ms);
  EXPECT_EQ(config.mapping.at("email"), "traits.email");
  EXPECT_TRUE(config.validate().empty());
}

std::vector<std::string> errorKeys(const WebhookConfig& config) {
  std::vector<std::string> keys;
  for (const auto& e : config.validate()) {
    keys.push_back(e.key);
  }
  return keys;
}

TEST(WebhookOptionsTest, RefusesHeadersThatClash) {
  for (const char* name :
       {"Content-Type", "content-length", "HOST", "X-Junction-Signature", "x-junction-batch-id",
        "X-Junction-Anything", "Transfer-Encoding", "Connection", "Content-Encoding"}) {
    WebhookConfig config = configFor("https://example.com/hook");
    config.headers = json::object{{name, "v"}};
    const auto errors = config.validate();
    ASSERT_EQ(errors.size(), 1u) << name;
    EXPECT_EQ(errors[0].key, std::string("headers.") + name);
    EXPECT_THAT(errors[0].message, HasSubstr("cannot be configured"));
  }
  WebhookConfig config = configFor("https://example.com/hook");
  config.headers = json::object{
      {"User-Agent", "acme-sync/2"}, {"X-Junctionless", "ok"}, {"X-Count", 3}, {"X-Flag", true}};
  EXPECT_TRUE(config.validate().empty());
}

TEST(WebhookOptionsTest, RefusesBadHeaderNamesAndValuesWithoutEchoingThem) {
  WebhookConfig config = configFor("https://example.com/hook");
  config.headers = json::object{{"Bad Header", "v"},
                                {"", "v"},
                                {"X-Injected", "Bearer secret-value\r\nX-Evil: 1"},
                                {"X-Object", json::object{{"a", 1}}},
                                {"X-Null", nullptr}};
  const auto errors = config.validate();
  ASSERT_EQ(errors.size(), 5u);
  std::map<std::string, std::string> by_key;
  for (const auto& e : errors) {
    by_key[e.key] = e.message;
    EXPECT_THAT(e.message, Not(HasSubstr("secret-value")));
  }
  EXPECT_THAT(by_key["headers.Bad Header"], HasSubstr("not a valid header name"));
  EXPECT_THAT(by_key["headers."], HasSubstr("not a valid header name"));
  EXPECT_THAT(by_key["headers.X-Injected"], HasSubstr("line breaks"));
  EXPECT_THAT(by_key["headers.X-Object"], HasSubstr("must be a string"));
  EXPECT_THAT(by_key["headers.X-Null"], HasSubstr("must be a string"));
}

TEST(WebhookOptionsTest, UrlPreviousSecretAndMapping) {
  WebhookConfig config = configFor("ftp://example.com/hook");
  EXPECT_THAT(errorKeys(config), ElementsAre("url"));
  config.url = "example.com/hook";
  EXPECT_THAT(errorKeys(config), ElementsAre("url"));
  config.url = "http://example.com/a b";
  EXPECT_THAT(errorKeys(config), ElementsAre("url"));
  config.url = "http://127.0.0.1:9000/hook";
  EXPECT_TRUE(config.validate().empty());

  config.secret.clear();
  config.previous_secret = "old";
  EXPECT_THAT(errorKeys(config), ElementsAre("previous_secret"));
  config.previous_secret.clear();

  config.mapping =
      json::object{{"email", json::object{{"from", "traits.email"}, {"transform", "shout"}}}};
  const auto errors = config.validate();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "mapping.email");
  EXPECT_THAT(errors[0].message, HasSubstr("shout"));
}

// --- the request, without a network --------------------------------------------------------

TEST(WebhookRequestTest, BatchBodyIsTheEventsAsReceived) {
  const auto events = threeEvents();
  std::string body;
  appendBatchBody(events, body);
  EXPECT_EQ(body, "{\"batch\":[" + std::string(events[0].json()) + "," +
                      std::string(events[1].json()) + "," + std::string(events[2].json()) + "]}");
  // Still valid JSON, and byte for byte what came in (the space and the \u escape are kept).
  EXPECT_EQ(json::parse(body).at("batch").as_array().size(), 3u);
  EXPECT_THAT(body, HasSubstr(R"("type":"track", "event")"));
  EXPECT_THAT(body, HasSubstr(R"(caf\u00e9)"));
}

TEST(WebhookRequestTest, BatchIdHashesTheMessageIdsInOrder) {
  auto events = threeEvents();
  EXPECT_EQ(batchId(events), sdk::sha256Hex("m-1\nm-2\nm-3\n").substr(0, 32));
  EXPECT_EQ(batchId(events).size(), 32u);
  std::swap(events[0], events[2]);
  EXPECT_NE(batchId(events), sdk::sha256Hex("m-1\nm-2\nm-3\n").substr(0, 32));
}

TEST(WebhookRequestTest, ExactRequestSignedWithTheContextClock) {
  sdk::testing::FakeDestinationContext ctx;
  WebhookDestination dest(configFor("http://127.0.0.1:1/hook"), ctx);
  const auto events = threeEvents();
  const auto request = dest.makeRequest(events, 1767225600);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "http://127.0.0.1:1/hook");
  EXPECT_EQ(request.timeout, 5s);
  std::string body;
  appendBatchBody(events, body);
  EXPECT_EQ(request.body, body);
  std::vector<std::pair<std::string, std::string>> expected{
      {"Content-Type", "application/json"},
      {"Authorization", std::string(kToken)},
      {"X-Tenant", "acme"},
      {"X-Junction-Batch-Size", "3"},
      {"X-Junction-Batch-Id", sdk::sha256Hex("m-1\nm-2\nm-3\n").substr(0, 32)},
      // Recomputed here from the definition, not with the code under test.
      {"X-Junction-Signature",
       "t=1767225600,v1=" + sdk::hmacSha256Hex(kSecret, "1767225600." + body)},
  };
  EXPECT_EQ(request.headers.entries, expected);
}

TEST(WebhookRequestTest, RotationSignsWithBothSecrets) {
  sdk::testing::FakeDestinationContext ctx;
  auto config = configFor("http://127.0.0.1:1/hook");
  config.previous_secret = "whsec_old";
  WebhookDestination dest(config, ctx);
  const auto events = threeEvents();
  const auto request = dest.makeRequest(events, 1767225600);
  const std::string signed_text = "1767225600." + request.body;
  EXPECT_EQ(request.headers.get("X-Junction-Signature"),
            "t=1767225600,v1=" + sdk::hmacSha256Hex(kSecret, signed_text) +
                ",v1=" + sdk::hmacSha256Hex("whsec_old", signed_text));
}

TEST(WebhookRequestTest, HeaderValuesFromYamlScalars) {
  sdk::testing::FakeDestinationContext ctx;
  auto config = configFor("http://127.0.0.1:1/hook");
  config.headers = json::object{{"X-Count", 3}, {"X-Ratio", 1.5}, {"X-Flag", true}};
  ASSERT_TRUE(config.validate().empty());
  WebhookDestination dest(config, ctx);
  const auto request = dest.makeRequest(threeEvents(), 1767225600);
  EXPECT_EQ(request.headers.get("X-Count"), "3");
  EXPECT_EQ(request.headers.get("X-Ratio"), "1.5");
  EXPECT_EQ(request.headers.get("X-Flag"), "true");
}

TEST(WebhookRequestTest, NoSecretNoSignature) {
  sdk::testing::FakeDestinationContext ctx;
  auto config = configFor("http://127.0.0.1:1/hook");
  config.secret.clear();
  config.headers = {};
  WebhookDestination dest(config, ctx);
  const auto request = dest.makeRequest(threeEvents(), 1767225600);
  EXPECT_EQ(request.headers.find("X-Junction-Signature"), nullptr);
  EXPECT_EQ(request.headers.entries.size(), 3u);
}

TEST(WebhookRequestTest, MappingReplacesEachEventAndKeepsTheMessageId) {
  sdk::testing::FakeDestinationContext ctx;
  auto config = configFor("http://127.0.0.1:1/hook");
  config.mapping = json::parse(R"({
      "email": {"from": ["traits.email", "context.traits.email"], "transform": ["trim", "lowercase"]},
      "event": {"from": "event", "default": "identify"},
      "total": "properties.total"})")
                       .as_object();
  ASSERT_TRUE(config.validate().empty());
  WebhookDestination dest(config, ctx);
  const auto events = threeEvents();
  const auto request = dest.makeRequest(std::span(events).first(2), 1767225600);
  EXPECT_EQ(request.body,
            R"({"batch":[{"messageId":"m-1","email":"ada@example.com","event":"identify"},)"
            R"({"messageId":"m-2","event":"Order Completed","total":1.25E1}]})");
  EXPECT_EQ(request.headers.get("X-Junction-Signature"),
            "t=1767225600,v1=" + sdk::hmacSha256Hex(kSecret, "1767225600." + request.body));
}

// --- outcomes of answers, without a network --------------------------------------------------

sdk::HttpClientResponse response(int status, std::string body) {
  sdk::HttpClientResponse r;
  r.status = status;
  r.body = std::move(body);
  r.classification = sdk::classifyStatus(status);
  return r;
}

TEST(WebhookOutcomesTest, PerEventFailedAnswer) {
  const auto events = threeEvents();
  const auto outcomes = outcomesOf(
      response(200, R"({"accepted":1,"failed":[)"
                    R"({"messageId":"m-3","error":"try later","retry":true},)"
                    R"({"messageId":"m-2","error":{"code":"invalid_email"},"retry":false},)"
                    R"({"messageId":"unknown","error":"ignored"}]})"),
      events);
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_EQ(outcomes[1].reason, R"(the receiver rejected the event: {"code":"invalid_email"})");
  EXPECT_EQ(outcomes[2].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(outcomes[2].reason, "the receiver asked to retry the event: try later");
}

TEST(WebhookOutcomesTest, MissingRetryMeansFailedAndLongErrorsAreClipped) {
  const auto events = threeEvents();
  const std::string long_error(1000, 'e');
  const auto outcomes =
      outcomesOf(response(202, R"({"failed":[{"messageId":"m-1","error":")" + long_error +
                                   R"("},)"
                                   R"({"messageId":"m-2"}]})"),
                 events);
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_LT(outcomes[0].reason.size(), 400u);
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[1].reason, HasSubstr("no reason given"));
  EXPECT_TRUE(outcomes[2].isDelivered());
}

TEST(WebhookOutcomesTest, Garbage2xxBodiesMeanDelivered) {
  const auto events = threeEvents();
  for (const char* body :
       {"", "OK", "<html>fine</html>", R"({"failed":)", R"({"failed":"m-1"})",
        R"({"failed":[1,"m-1",{"messageId":5},{"error":"x"}]})", R"([{"failed":[]}])",
        R"({"ok":true,"note":"\"failed\""})", R"({"failed":null})"}) {
    EXPECT_THAT(kinds(outcomesOf(response(200, body), events)),
                ElementsAre(sdk::Outcome::Kind::Delivered, sdk::Outcome::Kind::Delivered,
                            sdk::Outcome::Kind::Delivered))
        << body;
  }
}

TEST(WebhookOutcomesTest, StatusClasses) {
  const auto events = threeEvents();
  const auto all = [&](const sdk::HttpClientResponse& r) { return kinds(outcomesOf(r, events)); };
  using K = sdk::Outcome::Kind;
  for (int status : {408, 429, 500, 502, 503, 504}) {
    EXPECT_THAT(all(response(status, "")), ElementsAre(K::Retry, K::Retry, K::Retry)) << status;
  }
  for (int status : {301, 400, 401, 403, 404, 410, 413, 422}) {
    EXPECT_THAT(all(response(status, "")), ElementsAre(K::Failed, K::Failed, K::Failed)) << status;
  }
  sdk::HttpClientResponse transport;
  transport.transport_error = "Connection refused";
  EXPECT_THAT(all(transport), ElementsAre(K::Retry, K::Retry, K::Retry));
  auto unauthorized = outcomesOf(response(401, R"({"error":"bad signature"})"), events);
  EXPECT_THAT(unauthorized[0].reason, HasSubstr("HTTP 401"));
  EXPECT_THAT(unauthorized[0].reason, HasSubstr("bad signature"));
  EXPECT_THAT(unauthorized[0].reason, HasSubstr("check `secret` and `headers`"));
}

// --- over loopback, against the fake receiver -----------------------------------------------

class WebhookDeliveryTest : public ::testing::Test {
 protected:
  sdk::testing::FakeDestinationContext ctx_;
  FakeWebhookReceiver receiver_{receiverOptions(ctx_)};
  WebhookDestination dest_{configFor(receiver_.url()), ctx_};
  std::vector<sdk::Event> events_ = threeEvents();
};

TEST_F(WebhookDeliveryTest, DeliversTheExactRequest) {
  const auto outcomes = dest_.deliver(events_);
  EXPECT_THAT(kinds(outcomes),
              ElementsAre(sdk::Outcome::Kind::Delivered, sdk::Outcome::Kind::Delivered,
                          sdk::Outcome::Kind::Delivered));
  const auto requests = receiver_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/hook");
  std::string body;
  appendBatchBody(events_, body);
  EXPECT_EQ(r.body, body);
  const std::string t = std::to_string(ctx_.clock().nowMs() / 1000);
  EXPECT_EQ(r.headers.get("X-Junction-Signature"),
            "t=" + t + ",v1=" + sdk::hmacSha256Hex(kSecret, t + "." + body));
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(r.headers.get("Content-Length"), std::to_string(body.size()));
  EXPECT_EQ(r.headers.get("Authorization"), kToken);
  EXPECT_EQ(r.headers.get("X-Tenant"), "acme");
  EXPECT_EQ(r.headers.get("User-Agent"), ctx_.http().options().user_agent);
  EXPECT_EQ(r.headers.get("X-Junction-Batch-Size"), "3");
  EXPECT_EQ(r.headers.get("X-Junction-Batch-Id"), batchId(events_));

  ASSERT_EQ(receiver_.eventCount(), 3u);
  EXPECT_EQ(receiver_.event("m-2")->json, events_[1].json());
  EXPECT_EQ(ctx_.metrics().counterValue("junction_webhook_requests_total", {{"status", "2xx"}}),
            1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_webhook_sent_bytes_total"), body.size());
  EXPECT_TRUE(ctx_.throttles().empty());
}

TEST_F(WebhookDeliveryTest, EmptyBatchSendsNothing) {
  EXPECT_TRUE(dest_.deliver({}).empty());
  EXPECT_EQ(receiver_.requestCount(), 0u);
}

TEST_F(WebhookDeliveryTest, TooManyRequestsRetriesAfterRetryAfterAndThrottles) {
  receiver_.failNext(1, 429, R"({"error":"slow down"})", {{"Retry-After", "7"}});
  const auto first = dest_.deliver(events_);
  for (const auto& outcome : first) {
    EXPECT_EQ(outcome.kind, sdk::Outcome::Kind::Retry);
    EXPECT_EQ(outcome.retry_after, 7s);
    EXPECT_THAT(outcome.reason, HasSubstr("HTTP 429"));
  }
  EXPECT_THAT(ctx_.throttles(), ElementsAre(7s));
  EXPECT_EQ(receiver_.eventCount(), 0u);
  // The retry of the same events goes through.
  EXPECT_TRUE(dest_.deliver(events_)[2].isDelivered());
  EXPECT_EQ(receiver_.eventCount(), 3u);
  EXPECT_EQ(ctx_.throttles().size(), 1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_webhook_requests_total", {{"status", "4xx"}}),
            1u);
}

TEST_F(WebhookDeliveryTest, ServerErrorsRetryHonouringRetryAfter) {
  receiver_.failNext(1, 503, "maintenance", {{"Retry-After", "3"}});
  receiver_.failNext(1, 500, R"({"error":"boom"})");
  auto first = dest_.deliver(events_);
  EXPECT_EQ(first[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(first[0].retry_after, 3s);
  EXPECT_THAT(first[0].reason, HasSubstr("HTTP 503"));
  auto second = dest_.deliver(events_);
  EXPECT_EQ(second[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(second[1].retry_after, 0ms);
  EXPECT_THAT(second[1].reason, HasSubstr("boom"));
  EXPECT_TRUE(ctx_.throttles().empty());  // a 5xx is this receiver's trouble, not a rate limit
  EXPECT_TRUE(dest_.deliver(events_)[0].isDelivered());
}

TEST_F(WebhookDeliveryTest, ClientErrorsFailWithTheReceiversAnswer) {
  receiver_.failNext(1, 422, R"({"error":"unknown list 'news'"})");
  receiver_.failNext(1, 403, R"({"error":"tenant suspended"})");
  auto first = dest_.deliver(events_);
  for (const auto& outcome : first) {
    EXPECT_EQ(outcome.kind, sdk::Outcome::Kind::Failed);
    EXPECT_THAT(outcome.reason, HasSubstr("HTTP 422"));
    EXPECT_THAT(outcome.reason, HasSubstr("unknown list 'news'"));
  }
  auto second = dest_.deliver(events_);
  EXPECT_EQ(second[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(second[0].reason, HasSubstr("tenant suspended"));
  EXPECT_THAT(second[0].reason, HasSubstr("credentials"));
  EXPECT_TRUE(ctx_.log().contains(sdk::LogLevel::Warn, "refused"));
}

TEST_F(WebhookDeliveryTest, AWrongSecretIsRefusedByTheReceiverAndNeverLeaks) {
  receiver_.setSecrets({"whsec_the_receivers"});
  const auto outcomes = dest_.deliver(events_);
  for (const auto& outcome : outcomes) {
    EXPECT_EQ(outcome.kind, sdk::Outcome::Kind::Failed);
    EXPECT_THAT(outcome.reason, HasSubstr("HTTP 401"));
    EXPECT_THAT(outcome.reason, HasSubstr("does not match"));
    EXPECT_THAT(outcome.reason, Not(HasSubstr(std::string(kSecret))));
    EXPECT_THAT(outcome.reason, Not(HasSubstr("tok_9d41e7")));
  }
  EXPECT_EQ(receiver_.answeredWith(401), 1u);
  for (const auto& record : ctx_.log().records()) {
    EXPECT_THAT(record.message, Not(HasSubstr(std::string(kSecret))));
    for (const auto& [key, value] : record.fields) {
      EXPECT_THAT(value, Not(HasSubstr(std::string(kSecret))));
      EXPECT_THAT(value, Not(HasSubstr("tok_9d41e7")));
    }
  }
  // The receiver rotates to our secret: delivered.
  receiver_.setSecrets({"whsec_the_receivers", std::string(kSecret)});
  EXPECT_TRUE(dest_.deliver(events_)[0].isDelivered());
}

TEST_F(WebhookDeliveryTest, AClockFarOffGivesAStaleSignature) {
  ctx_.manualClock().setNowMs(ctx_.clock().nowMs() - 3600 * 1000);  // sender an hour behind
  FakeWebhookReceiver::Options options;
  options.secrets = {std::string(kSecret)};
  const std::int64_t receiver_now = ctx_.clock().nowMs() / 1000 + 3600;
  options.now_unix_seconds = [receiver_now] { return receiver_now; };
  FakeWebhookReceiver receiver(options);
  WebhookDestination dest(configFor(receiver.url()), ctx_);
  const auto outcomes = dest.deliver(events_);
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("HTTP 400"));
  EXPECT_THAT(outcomes[0].reason, HasSubstr("3600 s old"));
  EXPECT_EQ(receiver.answeredWith(400), 1u);
}

TEST_F(WebhookDeliveryTest, ASlowReceiverTimesOutAndIsRetried) {
  auto config = configFor(receiver_.url());
  config.timeout = 200ms;
  WebhookDestination dest(config, ctx_);
  receiver_.setDelay(2s);
  const auto started = std::chrono::steady_clock::now();
  const auto outcomes = dest.deliver(events_);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
  for (const auto& outcome : outcomes) {
    EXPECT_EQ(outcome.kind, sdk::Outcome::Kind::Retry);
    EXPECT_THAT(outcome.reason, HasSubstr("transport"));
  }
  EXPECT_EQ(
      ctx_.metrics().counterValue("junction_webhook_requests_total", {{"status", "transport"}}),
      1u);
  receiver_.setDelay(0ms);
  EXPECT_TRUE(dest.deliver(events_)[0].isDelivered());
}

TEST_F(WebhookDeliveryTest, AReceiverThatIsDownIsRetriedThenReceivesEverything) {
  receiver_.setDown(true);
  for (const auto& outcome : dest_.deliver(events_)) {
    EXPECT_EQ(outcome.kind, sdk::Outcome::Kind::Retry);
  }
  EXPECT_EQ(receiver_.eventCount(), 0u);
  receiver_.setDown(false);
  EXPECT_TRUE(dest_.deliver(events_)[1].isDelivered());
  EXPECT_EQ(receiver_.eventCount(), 3u);
  EXPECT_EQ(receiver_.duplicateCount(), 0u);
}

TEST_F(WebhookDeliveryTest, PerEventRefusalsInA200) {
  receiver_.rejectEvent("m-2", "invalid email address", false);
  receiver_.rejectEvent("m-3", "contact locked, try later", true);
  const auto outcomes = dest_.deliver(events_);
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[1].reason, HasSubstr("invalid email address"));
  EXPECT_EQ(outcomes[2].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[2].reason, HasSubstr("contact locked"));
  EXPECT_EQ(ctx_.metrics().counterValue("junction_webhook_rejected_events_total"), 2u);
  EXPECT_EQ(receiver_.eventCount(), 1u);
  // The retried event alone, next time: accepted.
  EXPECT_TRUE(dest_.deliver(std::span(events_).subspan(2, 1))[0].isDelivered());
  EXPECT_EQ(receiver_.eventCount(), 2u);
}

TEST(WebhookGarbageAnswerTest, A2xxWithAnyOtherBodyIsDelivered) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/hook").reply(200, "<html>thanks</html>", {{"Content-Type", "text/html"}});
  server.when("POST", "/hook").reply(204, "");
  sdk::testing::FakeDestinationContext ctx;
  WebhookDestination dest(configFor(server.baseUrl() + "/hook"), ctx);
  const auto events = threeEvents();
  EXPECT_EQ(kinds(dest.deliver(events)),
            std::vector<sdk::Outcome::Kind>(3, sdk::Outcome::Kind::Delivered));
  server.clearRules();
  server.when("POST", "/hook").reply(204, "");
  EXPECT_EQ(kinds(dest.deliver(events)),
            std::vector<sdk::Outcome::Kind>(3, sdk::Outcome::Kind::Delivered));
}

TEST(WebhookRedirectTest, ARedirectIsNotFollowed) {
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/hook").reply(308, "", {{"Location", "/elsewhere"}});
  server.when("POST", "/elsewhere").reply(200, "");
  sdk::testing::FakeDestinationContext ctx;
  WebhookDestination dest(configFor(server.baseUrl() + "/hook"), ctx);
  const auto outcomes = dest.deliver(threeEvents());
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("HTTP 308"));
  EXPECT_EQ(server.requests().size(), 1u);
}

}  // namespace
}  // namespace junction::plugins::webhook
