// The fake webhook receiver keeps the contract the webhook destination's README gives
// receivers: signature checks, body checks, storage by messageId, and its failure scripting.

#include "tests/fakes/webhook/fake_webhook.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

#include "junction/sdk/crypto.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/webhook_signature.h"

namespace junction::tests::fakes {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using sdk::testing::RecordedRequest;
using ::testing::HasSubstr;

constexpr std::int64_t kNow = 1767225600;
constexpr std::string_view kSecret = "whsec_fake";

FakeWebhookReceiver::Options signedOptions() {
  FakeWebhookReceiver::Options options;
  options.secrets = {std::string(kSecret)};
  options.now_unix_seconds = [] { return kNow; };
  return options;
}

// A request as the server would record it, signed at `t` under `secret` unless empty.
RecordedRequest post(std::string body, std::string_view secret = kSecret, std::int64_t t = kNow) {
  RecordedRequest r;
  r.method = "POST";
  r.target = "/hook";
  r.path = "/hook";
  r.headers.set("Content-Type", "application/json");
  if (!secret.empty()) {
    r.headers.set("X-Junction-Signature",
                  "t=" + std::to_string(t) +
                      ",v1=" + sdk::hmacSha256Hex(secret, std::to_string(t) + "." + body));
  }
  r.body = std::move(body);
  return r;
}

std::string errorOf(const sdk::HttpResponse& response) {
  return std::string(json::parse(response.body).at("error").as_string());
}

TEST(FakeWebhookTest, AcceptsASignedBatchAndStoresEventsByMessageId) {
  FakeWebhookReceiver receiver(signedOptions());
  const std::string body =
      R"({"batch":[{"type":"track","messageId":"a","event":"X"}, {"messageId":"b","n":[1,{"m":2}]}]})";
  const auto response = receiver.answer(post(body));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(json::parse(response.body), json::parse(R"({"accepted":2,"duplicates":0})"));
  ASSERT_EQ(receiver.eventCount(), 2u);
  const auto events = receiver.events();
  EXPECT_EQ(events[0].message_id, "a");
  EXPECT_EQ(events[0].json, R"({"type":"track","messageId":"a","event":"X"})");
  EXPECT_EQ(events[1].json, R"({"messageId":"b","n":[1,{"m":2}]})");
  EXPECT_EQ(receiver.requestCount(), 1u);
  EXPECT_EQ(receiver.answeredWith(200), 1u);
}

TEST(FakeWebhookTest, CountsDuplicatesAcrossAndWithinBatches) {
  FakeWebhookReceiver receiver(signedOptions());
  EXPECT_EQ(receiver.answer(post(R"({"batch":[{"messageId":"a"},{"messageId":"b"}]})")).status,
            200);
  const auto again =
      receiver.answer(post(R"({"batch":[{"messageId":"b"},{"messageId":"b"},{"messageId":"c"}]})"));
  EXPECT_EQ(json::parse(again.body), json::parse(R"({"accepted":3,"duplicates":2})"));
  EXPECT_EQ(receiver.eventCount(), 3u);
  EXPECT_EQ(receiver.duplicateCount(), 2u);
  EXPECT_EQ(receiver.event("b")->deliveries, 3u);
  EXPECT_EQ(receiver.event("a")->deliveries, 1u);
  EXPECT_FALSE(receiver.event("z").has_value());
}

TEST(FakeWebhookTest, SignatureProblems) {
  FakeWebhookReceiver receiver(signedOptions());
  const std::string body = R"({"batch":[{"messageId":"a"}]})";

  auto missing = post(body, "");
  EXPECT_EQ(receiver.answer(missing).status, 401);
  EXPECT_THAT(errorOf(receiver.answer(missing)), HasSubstr("is missing"));

  auto wrong = receiver.answer(post(body, "other"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_THAT(errorOf(wrong), HasSubstr("does not match"));

  auto tampered = post(body);
  tampered.body = R"({"batch":[{"messageId":"b"}]})";
  EXPECT_EQ(receiver.answer(tampered).status, 401);

  auto stale = receiver.answer(post(body, kSecret, kNow - 301));
  EXPECT_EQ(stale.status, 400);
  EXPECT_THAT(errorOf(stale), HasSubstr("301 s old"));
  EXPECT_EQ(receiver.answer(post(body, kSecret, kNow - 300)).status, 200);
  EXPECT_EQ(receiver.answer(post(body, kSecret, kNow + 301)).status, 400);

  auto malformed = post(body);
  malformed.headers.set("X-Junction-Signature", "v1=abc");
  EXPECT_EQ(receiver.answer(malformed).status, 401);

  EXPECT_EQ(receiver.eventCount(), 1u);
  EXPECT_EQ(receiver.answeredWith(401), 5u);
  EXPECT_EQ(receiver.answeredWith(400), 2u);
}

TEST(FakeWebhookTest, RotationAcceptsEitherSecret) {
  FakeWebhookReceiver receiver(signedOptions());
  receiver.setSecrets({"new", std::string(kSecret)});
  const std::string body = R"({"batch":[{"messageId":"a"}]})";
  EXPECT_EQ(receiver.answer(post(body, "new")).status, 200);
  EXPECT_EQ(receiver.answer(post(body, kSecret)).status, 200);
  EXPECT_EQ(receiver.answer(post(body, "neither")).status, 401);
  // A stale request signed with the second secret is reported stale, not as a mismatch.
  EXPECT_EQ(receiver.answer(post(body, kSecret, kNow - 1000)).status, 400);
}

TEST(FakeWebhookTest, WithoutSecretsSignaturesAreNotRequired) {
  FakeWebhookReceiver receiver;
  EXPECT_EQ(receiver.answer(post(R"({"batch":[{"messageId":"a"}]})", "")).status, 200);
}

TEST(FakeWebhookTest, BodiesThatAreNotABatch) {
  FakeWebhookReceiver receiver(signedOptions());
  struct Case {
    std::string body;
    std::string error;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"", "not JSON"},
           {"{", "not JSON"},
           {R"({"batch":[{"messageId":"a"}]} x)", "not JSON"},
           {"[]", "one member"},
           {R"({"events":[]})", "one member"},
           {R"({"batch":[],"extra":1})", "one member"},
           {R"({"batch":{}})", "must be an array"},
           {R"({"batch":[1]})", "batch[0] is not an object"},
           {R"({"batch":[{"messageId":"a"},{"id":"b"}]})", "batch[1] has no messageId"},
           {R"({"batch":[{"messageId":7}]})", "batch[0] has no messageId"},
           {R"({"batch":[{"messageId":""}]})", "batch[0] has no messageId"},
       }) {
    const auto response = receiver.answer(post(c.body));
    EXPECT_EQ(response.status, 400) << c.body;
    EXPECT_THAT(errorOf(response), HasSubstr(c.error)) << c.body;
  }
  EXPECT_EQ(receiver.eventCount(), 0u);
}

TEST(FakeWebhookTest, EscapesAreReadByAFullParser) {
  FakeWebhookReceiver receiver(signedOptions());
  // An escaped key, and an escaped messageId.
  const auto response = receiver.answer(post(
      R"({"batch":[{"messageId":"a\u00e9","k\u0065y":"\ud83d\ude00"},{"messageId":"b\"q"}]})"));
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(receiver.event("a\xc3\xa9").has_value());
  EXPECT_TRUE(receiver.event("b\"q").has_value());
  EXPECT_EQ(receiver.answer(post(R"({"batch":[]})")).status, 200);
}

TEST(FakeWebhookTest, BatchSizeHeaderMustMatch) {
  FakeWebhookReceiver receiver(signedOptions());
  auto request = post(R"({"batch":[{"messageId":"a"},{"messageId":"b"}]})");
  request.headers.set("X-Junction-Batch-Size", "3");
  auto response = receiver.answer(request);
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(errorOf(response), HasSubstr("X-Junction-Batch-Size is 3 but the batch has 2"));
  request.headers.set("X-Junction-Batch-Size", "2");
  EXPECT_EQ(receiver.answer(request).status, 200);
}

TEST(FakeWebhookTest, MethodPathAndContentType) {
  FakeWebhookReceiver receiver(signedOptions());
  auto request = post(R"({"batch":[]})");
  request.path = "/other";
  EXPECT_EQ(receiver.answer(request).status, 404);
  request = post(R"({"batch":[]})");
  request.method = "PUT";
  const auto put = receiver.answer(request);
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.headers.get("Allow"), "POST");
  request = post(R"({"batch":[]})");
  request.headers.set("Content-Type", "text/plain");
  EXPECT_EQ(receiver.answer(request).status, 415);
  request.headers.set("Content-Type", "application/json; charset=utf-8");
  EXPECT_EQ(receiver.answer(request).status, 200);
}

TEST(FakeWebhookTest, FailNextAnswersFirstAndStoresNothing) {
  FakeWebhookReceiver receiver(signedOptions());
  receiver.failNext(2, 503, R"({"error":"busy"})", {{"Retry-After", "4"}});
  receiver.failNext(1, 429, "");
  const std::string body = R"({"batch":[{"messageId":"a"}]})";
  for (int i = 0; i < 2; ++i) {
    const auto response = receiver.answer(post(body));
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(response.body, R"({"error":"busy"})");
    EXPECT_EQ(response.headers.get("Retry-After"), "4");
  }
  EXPECT_EQ(receiver.answer(post(body)).status, 429);
  EXPECT_EQ(receiver.eventCount(), 0u);
  EXPECT_EQ(receiver.answer(post(body)).status, 200);
  EXPECT_EQ(receiver.eventCount(), 1u);
  EXPECT_EQ(receiver.requestCount(), 4u);
}

TEST(FakeWebhookTest, RejectEventOnce) {
  FakeWebhookReceiver receiver(signedOptions());
  receiver.rejectEvent("b", "invalid email", false);
  const std::string body = R"({"batch":[{"messageId":"a"},{"messageId":"b"}]})";
  const auto first = receiver.answer(post(body));
  EXPECT_EQ(json::parse(first.body),
            json::parse(R"({"accepted":1,"duplicates":0,)"
                        R"("failed":[{"messageId":"b","error":"invalid email","retry":false}]})"));
  EXPECT_EQ(receiver.eventCount(), 1u);
  EXPECT_EQ(json::parse(receiver.answer(post(body)).body),
            json::parse(R"({"accepted":2,"duplicates":1})"));
  EXPECT_EQ(receiver.eventCount(), 2u);
}

// Over real HTTP: the scripted server in front of answer(), delays and resets.
TEST(FakeWebhookTest, OverHttpWithDelayAndDowntime) {
  FakeWebhookReceiver receiver(signedOptions());
  sdk::HttpClient client;
  const std::string body = R"({"batch":[{"messageId":"a"}]})";
  auto request = [&](std::chrono::milliseconds timeout) {
    sdk::HttpClientRequest r{
        .method = "POST", .url = receiver.url(), .headers = {}, .body = body, .timeout = timeout};
    r.headers.set("Content-Type", "application/json");
    r.headers.set("X-Junction-Signature", sdk::signWebhook(kSecret, kNow, body));
    return client.send(r);
  };
  EXPECT_EQ(request(5s).status, 200);
  EXPECT_TRUE(receiver.waitForEvents(1, 1s));
  EXPECT_FALSE(receiver.waitForEvents(2, 10ms));

  receiver.setDown(true);
  const auto reset = request(5s);
  EXPECT_EQ(reset.status, 0);
  EXPECT_FALSE(reset.transport_error.empty());
  EXPECT_EQ(receiver.requestCount(), 1u);  // resets are not answers

  receiver.setDown(false);
  receiver.setDelay(300ms);
  const auto slow = request(100ms);
  EXPECT_EQ(slow.status, 0);
  EXPECT_EQ(slow.classification, sdk::HttpClassification::Retryable);
  receiver.setDelay(0ms);
  EXPECT_EQ(request(5s).status, 200);
  // The slow request was processed before its late answer: its retry is a duplicate, which
  // receivers must expect (at-least-once delivery).
  EXPECT_EQ(receiver.event("a")->deliveries, 3u);
  EXPECT_EQ(receiver.duplicateCount(), 2u);
  EXPECT_EQ(receiver.eventCount(), 1u);
}

TEST(FakeWebhookTest, WithoutRecordingMemoryStaysFlat) {
  auto options = signedOptions();
  options.record_requests = false;
  options.keep_event_json = false;
  FakeWebhookReceiver receiver(options);
  sdk::HttpClient client;
  for (int i = 0; i < 5; ++i) {
    const std::string body = R"({"batch":[{"messageId":"m)" + std::to_string(i) + R"("}]})";
    sdk::HttpClientRequest r{.method = "POST", .url = receiver.url(), .headers = {}, .body = body};
    r.headers.set("Content-Type", "application/json");
    r.headers.set("X-Junction-Signature", sdk::signWebhook(kSecret, kNow, body));
    EXPECT_EQ(client.send(r).status, 200);
  }
  EXPECT_EQ(receiver.requestCount(), 5u);
  EXPECT_LE(receiver.requests().size(), 1u);
  EXPECT_EQ(receiver.eventCount(), 5u);
  EXPECT_TRUE(receiver.events()[0].json.empty());
  receiver.clear();
  EXPECT_EQ(receiver.eventCount(), 0u);
  EXPECT_EQ(receiver.requestCount(), 0u);
}

// Benchmarks push ~250k events/s through one receiver thread; this checks the order of
// magnitude (a DOM per request would be several times slower), with a bound loose enough for a
// busy 2-core machine.
// Benchmark-sized traffic without keeping bodies: every event counted once, nothing recorded.
// (Its speed is measured by tests/bench/webhook_bench and vendor_bench, not here.)
TEST(FakeWebhookTest, CountsBenchmarkSizedTrafficWithoutKeepingIt) {
  auto options = signedOptions();
  options.record_requests = false;
  options.keep_event_json = false;
  FakeWebhookReceiver receiver(options);
  constexpr int kRequests = 200;
  constexpr int kPerBatch = 500;
  for (int r = 0; r < kRequests; ++r) {
    std::string body = R"({"batch":[)";
    for (int i = 0; i < kPerBatch; ++i) {
      if (i > 0) {
        body += ',';
      }
      body +=
          R"({"type":"track","event":"Viewed Product","userId":"user-)" + std::to_string(i) +
          R"(","messageId":"bench-)" + std::to_string(r) + "-" + std::to_string(i) +
          R"(","properties":{"sku":"S-1","price":19.99,"name":"A product name"},)"
          R"("context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"2.11.1"}},)"
          R"("timestamp":"2026-01-01T00:00:00.000Z","receivedAt":"2026-01-01T00:00:00.010Z"})";
    }
    body += "]}";
    ASSERT_EQ(receiver.answer(post(std::move(body))).status, 200);
  }
  EXPECT_EQ(receiver.eventCount(), static_cast<std::size_t>(kRequests * kPerBatch));
  EXPECT_EQ(receiver.duplicateCount(), 0u);
  EXPECT_TRUE(receiver.requests().empty());
  EXPECT_FALSE(receiver.event("bench-0-0").has_value() && !receiver.event("bench-0-0")->json.empty());
}

}  // namespace
}  // namespace junction::tests::fakes
