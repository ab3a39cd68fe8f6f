// The http source driven through FakeSourceContext: routes are called as the daemon's server
// would (body limits, params), emits are recorded, and their callbacks can be held or failed.

#include "http_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/crypto.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/plugins/http/test_util.h"

namespace junction::plugins::http {
namespace {

namespace json = boost::json;
namespace sdk = junction::sdk;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr const char* kRejected = "junction_http_source_rejected_events_total";
constexpr const char* kRequests = "junction_http_source_requests_total";

sdk::HttpHeaders basic(std::string_view key) {
  sdk::HttpHeaders h;
  h.set("Authorization", "Basic " + sdk::base64Encode(std::string(key) + ":"));
  h.set("Content-Type", "application/json");
  return h;
}

json::object parse(std::string_view text) { return json::parse(text).as_object(); }

class HttpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { start(HttpSourceConfig{.write_keys = {"key-old", "key-new"}}); }

  void start(HttpSourceConfig config) {
    source_.reset();
    ctx_ = std::make_unique<sdk::testing::FakeSourceContext>("web");
    source_ = std::make_unique<HttpSource>(std::move(config), *ctx_);
    auto s = source_->start();
    ASSERT_TRUE(s.ok()) << s.message();
  }

  sdk::HttpResponse post(std::string path, std::string body, sdk::HttpHeaders headers = basic("key-new")) {
    auto r = ctx_->call("POST", std::move(path), std::move(body), std::move(headers));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : sdk::HttpResponse{};
  }

  json::object onlyEvent() {
    auto events = ctx_->events();
    EXPECT_EQ(events.size(), 1u);
    return events.empty() ? json::object() : parse(events.back().json());
  }

  std::uint64_t rejected(const char* reason) {
    return ctx_->metrics().counterValue(kRejected, {{"reason", reason}});
  }

  std::unique_ptr<sdk::testing::FakeSourceContext> ctx_;
  std::unique_ptr<HttpSource> source_;
};

TEST_F(HttpSourceTest, RegistersTheTrackingApiRoutes) {
  std::set<std::string> routes;
  for (const auto& r : ctx_->routes()) {
    routes.insert(r.method + " " + r.path);
    if (r.method == "POST" && r.path != "/v1/m") {
      EXPECT_EQ(r.options.max_body_bytes, 500u * 1024) << r.path;
    }
  }
  for (const char* p : {"track", "identify", "page", "screen", "group", "alias", "batch", "t", "i",
                        "p", "s", "g", "a", "b", "m"}) {
    EXPECT_TRUE(routes.contains(std::string("POST /v1/") + p)) << p;
    EXPECT_TRUE(routes.contains(std::string("OPTIONS /v1/") + p)) << p;
  }
  EXPECT_TRUE(routes.contains("GET /v1/projects/{writeKey}/settings"));
}

TEST_F(HttpSourceTest, TrackWithBasicAuthIsEnrichedAndAcked) {
  auto r = post("/v1/track", R"({"userId":"u1","event":"Signed Up","properties":{"plan":"pro"}})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"success":true})");
  auto events = ctx_->events();
  ASSERT_EQ(events.size(), 1u);
  const auto& h = events[0].header();
  EXPECT_EQ(h.type, sdk::EventType::Track);
  EXPECT_EQ(h.source_id, "web");
  EXPECT_EQ(h.user_id, "u1");
  EXPECT_EQ(h.name, "Signed Up");
  EXPECT_EQ(h.received_at_ms, sdk::testing::ManualClock::kDefaultStartMs);
  EXPECT_EQ(h.message_id.size(), 36u);
  auto body = parse(events[0].json());
  EXPECT_EQ(body.at("type"), "track");
  EXPECT_EQ(body.at("receivedAt"), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(std::string(body.at("messageId").as_string()), h.message_id);
  EXPECT_EQ(body.at("properties").at("plan"), "pro");
  EXPECT_EQ(ctx_->metrics().counterValue(kRequests, {{"endpoint", "track"}, {"status", "200"}}), 1u);
}

TEST_F(HttpSourceTest, EveryEndpointAndShortForm) {
  struct Case {
    const char* path;
    const char* body;
    sdk::EventType type;
  };
  const Case cases[] = {
      {"/v1/identify", R"({"userId":"u","traits":{"email":"a@b.c"}})", sdk::EventType::Identify},
      {"/v1/i", R"({"anonymousId":"a"})", sdk::EventType::Identify},
      {"/v1/page", R"({"userId":"u","name":"Home"})", sdk::EventType::Page},
      {"/v1/p", R"({"userId":"u"})", sdk::EventType::Page},
      {"/v1/screen", R"({"userId":"u","name":"Main"})", sdk::EventType::Screen},
      {"/v1/s", R"({"userId":"u"})", sdk::EventType::Screen},
      {"/v1/group", R"({"userId":"u","groupId":"g1"})", sdk::EventType::Group},
      {"/v1/g", R"({"userId":"u","groupId":"g1"})", sdk::EventType::Group},
      {"/v1/alias", R"({"userId":"u","previousId":"anon"})", sdk::EventType::Alias},
      {"/v1/a", R"({"userId":"u","previousId":"anon"})", sdk::EventType::Alias},
      {"/v1/t", R"({"userId":"u","event":"E"})", sdk::EventType::Track},
  };
  for (const auto& c : cases) {
    auto r = post(c.path, c.body);
    EXPECT_EQ(r.status, 200) << c.path << " " << r.body;
    auto events = ctx_->events();
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type(), c.type) << c.path;
  }
  EXPECT_EQ(ctx_->events().size(), std::size(cases));
}

TEST_F(HttpSourceTest, WriteKeyInTheBodyWhateverTheContentType) {
  // analytics-next: text/plain, writeKey in the event; some SDKs label JSON as a form.
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", ""}) {
    sdk::HttpHeaders h;
    if (*type != '\0') {
      h.set("Content-Type", type);
    }
    auto r = post("/v1/t", R"({"writeKey":"key-old","anonymousId":"a","event":"Viewed"})", h);
    EXPECT_EQ(r.status, 200) << type;
  }
  auto events = ctx_->events();
  ASSERT_EQ(events.size(), 3u);
  for (const auto& e : events) {
    EXPECT_THAT(std::string(e.json()), Not(HasSubstr("key-old")));  // the key is not stored
  }
}

TEST_F(HttpSourceTest, WrongOrMissingKeyIs401AndNeverEchoed) {
  auto wrong = post("/v1/track", R"({"userId":"u","event":"E"})", basic("key-stolen"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(parse(wrong.body).at("success"), false);
  EXPECT_EQ(parse(wrong.body).at("error"), "invalid write key");
  EXPECT_THAT(wrong.body, Not(HasSubstr("key-stolen")));
  sdk::HttpHeaders none;
  auto missing = post("/v1/track", R"({"userId":"u","event":"E"})", none);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(parse(missing.body).at("error"), "missing write key");
  auto body_wrong = post("/v1/batch", R"({"writeKey":"nope","batch":[{"type":"track","userId":"u","event":"E"}]})", none);
  EXPECT_EQ(body_wrong.status, 401);
  EXPECT_EQ(ctx_->emitCount(), 0u);
  EXPECT_EQ(rejected("unauthorized"), 3u);
  EXPECT_FALSE(ctx_->log().contains("key-"));
}

TEST_F(HttpSourceTest, KeyRotationAcceptsEveryConfiguredKey) {
  EXPECT_EQ(post("/v1/track", R"({"userId":"u","event":"E"})", basic("key-old")).status, 200);
  EXPECT_EQ(post("/v1/track", R"({"userId":"u","event":"E"})", basic("key-new")).status, 200);
  start(HttpSourceConfig{.write_keys = {"key-new"}});  // the old key retired
  EXPECT_EQ(post("/v1/track", R"({"userId":"u","event":"E"})", basic("key-old")).status, 401);
  EXPECT_EQ(post("/v1/track", R"({"userId":"u","event":"E"})", basic("key-new")).status, 200);
}

TEST_F(HttpSourceTest, ErrorPathsName400Problems) {
  auto malformed = post("/v1/track", R"({"userId":"u",)");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_THAT(std::string(parse(malformed.body).at("error").as_string()), HasSubstr("invalid JSON"));
  auto no_user = post("/v1/track", R"({"event":"E"})");
  EXPECT_EQ(no_user.status, 400);
  EXPECT_EQ(parse(no_user.body).at("error"), "missing \"userId\" or \"anonymousId\"");
  auto no_event = post("/v1/track", R"({"userId":"u"})");
  EXPECT_EQ(no_event.status, 400);
  EXPECT_EQ(parse(no_event.body).at("error"), "track event without \"event\"");
  auto not_object = post("/v1/track", R"([1,2])");
  EXPECT_EQ(not_object.status, 400);
  auto bad_ts = post("/v1/track", R"({"userId":"u","event":"E","timestamp":"soon"})");
  EXPECT_EQ(bad_ts.status, 400);
  auto no_batch = post("/v1/batch", R"({"events":[]})");
  EXPECT_EQ(no_batch.status, 400);
  EXPECT_EQ(parse(no_batch.body).at("error"), "batch body without a \"batch\" array");
  EXPECT_EQ(ctx_->emitCount(), 0u);
  EXPECT_EQ(rejected("invalid"), 6u);
  EXPECT_EQ(ctx_->metrics().counterValue(kRequests, {{"endpoint", "track"}, {"status", "400"}}), 5u);
}

TEST_F(HttpSourceTest, BatchAcceptsTheValidAndReportsTheRejected) {
  auto r = post("/v1/batch", R"({"batch":[
      {"type":"track","userId":"u","event":"A"},
      {"type":"track","userId":"u"},
      {"type":"identify","anonymousId":"x"},
      {"type":"bogus","userId":"u"},
      7,
      {"type":"alias","userId":"u"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = parse(r.body);
  EXPECT_EQ(body.at("success"), true);
  EXPECT_EQ(body.at("accepted"), 2);
  EXPECT_EQ(body.at("rejected"), 4);
  auto& errors = body.at("errors").as_array();
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].at("index"), 1);
  EXPECT_EQ(errors[0].at("reason"), "invalid");
  EXPECT_EQ(errors[0].at("error"), "track event without \"event\"");
  EXPECT_EQ(errors[2].at("error"), "event is not a JSON object");
  EXPECT_EQ(errors[3].at("error"), "alias event without \"previousId\"");
  EXPECT_EQ(ctx_->events().size(), 2u);
  EXPECT_EQ(rejected("invalid"), 4u);
}

// A number a double cannot hold was accepted and queued as `Infinity` (not JSON); a key given
// twice passed on to destinations while consent read only its last value. Both are refused,
// per event, naming the event and the path, and counted as invalid.
TEST_F(HttpSourceTest, ANumberOutOfRangeIsRefusedNamingItsPath) {
  auto r = post("/v1/track", R"({"userId":"u","event":"E","properties":{"price":1e400}})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(parse(r.body).at("error"),
            "number `1e400` at `properties.price` is out of range (beyond a double's 1.8e308)");
  auto negative = post("/v1/t", R"({"userId":"u","event":"E","properties":{"x":[1,-2E+999]}})");
  EXPECT_EQ(negative.status, 400) << negative.body;
  EXPECT_THAT(negative.body, HasSubstr("`-2E+999` at `properties.x.1`"));
  // Tiny numbers round to 0 and long integers to a double: both still JSON, accepted.
  auto fine = post("/v1/track", R"({"userId":"u","event":"E","properties":{"a":1e-400,"b":123456789012345678901234567890}})");
  EXPECT_EQ(fine.status, 200) << fine.body;
  EXPECT_EQ(ctx_->events().size(), 1u);
  EXPECT_EQ(rejected("invalid"), 2u);
  for (const auto& e : ctx_->events()) {
    EXPECT_THAT(std::string(e.json()), Not(HasSubstr("Infinity")));
  }
}

TEST_F(HttpSourceTest, ABatchRefusesOnlyTheEventsWithANumberOutOfRange) {
  auto r = post("/v1/batch", R"({"batch":[
      {"type":"track","userId":"u","event":"A","messageId":"m-0"},
      {"type":"track","userId":"u","event":"B","properties":{"n":1e400}},
      {"type":"track","userId":"u","event":"C","messageId":"m-2"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = parse(r.body);
  EXPECT_EQ(body.at("accepted"), 2);
  EXPECT_EQ(body.at("rejected"), 1);
  const auto& error = body.at("errors").as_array().at(0);
  EXPECT_EQ(error.at("index"), 1);
  EXPECT_EQ(error.at("reason"), "invalid");
  EXPECT_EQ(error.at("error"),
            "number `1e400` at `properties.n` is out of range (beyond a double's 1.8e308)");
  ASSERT_EQ(ctx_->events().size(), 2u);
  EXPECT_EQ(ctx_->events()[0].messageId(), "m-0");
  EXPECT_EQ(ctx_->events()[1].messageId(), "m-2");
  EXPECT_EQ(rejected("invalid"), 1u);
  // Alone in its batch: 400.
  auto only = post("/v1/b", R"([{"type":"identify","userId":"u","traits":{"n":-1e309}}])");
  EXPECT_EQ(only.status, 400) << only.body;
  EXPECT_THAT(only.body, HasSubstr("`-1e309` at `traits.n`"));
}

TEST_F(HttpSourceTest, AKeyGivenTwiceIsRefusedNamingItsObject) {
  auto r = post("/v1/track", R"({"userId":"u","event":"E","context":{"consent":{
      "categoryPreferences":{"marketing":false,"marketing":true}}}})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(parse(r.body).at("error"),
            "duplicate key `marketing` in `context.consent.categoryPreferences`");
  auto top = post("/v1/identify", R"({"userId":"u","userId":"v"})");
  EXPECT_EQ(top.status, 400) << top.body;
  EXPECT_EQ(parse(top.body).at("error"), "duplicate key `userId` at the top level");
  auto escaped = post("/v1/track", R"({"userId":"u","event":"E","properties":{"a":1,"\u0061":2}})");
  EXPECT_EQ(escaped.status, 400) << escaped.body;
  EXPECT_THAT(escaped.body, HasSubstr("duplicate key `a` in `properties`"));
  // In a batch, only the event holding it is refused; every nesting level is checked.
  auto batch = post("/v1/batch", R"({"batch":[
      {"type":"track","userId":"u","event":"A","messageId":"m-0"},
      {"type":"track","userId":"u","event":"B","properties":{"items":[{"sku":1},{"sku":2,"sku":3}]}},
      {"type":"track","userId":"u","event":"C","event":"D"},
      {"type":"track","userId":"u","event":"E","context":{"ip":"1.2.3.4","ip":"5.6.7.8"}},
      {"type":"track","userId":"u","event":"F","messageId":"m-4","properties":{"sku":1},"context":{"sku":2}}]})");
  ASSERT_EQ(batch.status, 200) << batch.body;
  auto body = parse(batch.body);
  EXPECT_EQ(body.at("accepted"), 2);
  EXPECT_EQ(body.at("rejected"), 3);
  const auto& errors = body.at("errors").as_array();
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].at("index"), 1);
  EXPECT_EQ(errors[0].at("error"), "duplicate key `sku` in `properties.items.1`");
  EXPECT_EQ(errors[1].at("index"), 2);
  EXPECT_EQ(errors[1].at("error"), "duplicate key `event` at the top level");
  EXPECT_EQ(errors[2].at("index"), 3);
  EXPECT_EQ(errors[2].at("error"), "duplicate key `ip` in `context`");
  EXPECT_EQ(rejected("invalid"), 6u);
  // Only on the fast path: the same batch without the refused events.
  auto fast = post("/v1/batch", R"({"batch":[{"type":"track","userId":"u","event":"A"},
      {"type":"track","userId":"u","event":"B","context":{"consent":{"a":1},"b":{"consent":2}}}]})");
  EXPECT_EQ(fast.status, 200) << fast.body;
  EXPECT_EQ(ctx_->events().size(), 4u);
  // A key given twice outside the events refuses the body.
  auto outer = post("/v1/batch", R"({"batch":[{"type":"track","userId":"u","event":"A"}],
      "sentAt":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:01Z"})");
  EXPECT_EQ(outer.status, 400) << outer.body;
  EXPECT_EQ(parse(outer.body).at("error"), "duplicate key `sentAt` at the top level");
}

TEST_F(HttpSourceTest, BatchOfOnlyInvalidEventsIs400) {
  auto r = post("/v1/b", R"({"batch":[{"type":"track"},{"type":"page"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(parse(r.body).at("rejected"), 2);
  auto empty = post("/v1/b", R"({"batch":[]})");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(ctx_->emitCount(), 0u);
}

TEST_F(HttpSourceTest, BatchLevelContextAndSentAt) {
  auto r = post("/v1/batch", R"({"batch":[{"type":"track","userId":"u","event":"A",
      "timestamp":"2026-01-01T00:10:00Z"}],
      "context":{"library":{"name":"analytics-python"}},"sentAt":"2026-01-01T00:10:05Z"})");
  ASSERT_EQ(r.status, 200);
  auto e = onlyEvent();
  EXPECT_EQ(e.at("context").at("library").at("name"), "analytics-python");
  EXPECT_EQ(e.at("timestamp"), "2025-12-31T23:59:55.000Z");
}

TEST_F(HttpSourceTest, ClockSkewCorrection) {
  // The device's clock is a day behind; the event happened 3 s before it was sent.
  auto r = post("/v1/track", R"({"userId":"u","event":"E","timestamp":"2025-12-31T00:00:00.000Z",
      "sentAt":"2025-12-31T00:00:03.000Z"})");
  ASSERT_EQ(r.status, 200);
  auto e = onlyEvent();
  EXPECT_EQ(e.at("timestamp"), "2025-12-31T23:59:57.000Z");
  EXPECT_EQ(e.at("originalTimestamp"), "2025-12-31T00:00:00.000Z");
  EXPECT_EQ(ctx_->events()[0].header().timestamp_ms, sdk::testing::ManualClock::kDefaultStartMs - 3000);
}

TEST_F(HttpSourceTest, GzipBodies) {
  sdk::HttpHeaders h = basic("key-new");
  h.set("Content-Encoding", "gzip");
  auto r = post("/v1/batch", testing::compress(R"({"batch":[{"type":"track","userId":"u","event":"Z"}]})"), h);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ctx_->events().size(), 1u);
  auto corrupt = post("/v1/batch", "definitely not gzip", h);
  EXPECT_EQ(corrupt.status, 400);
  h.set("Content-Encoding", "br");
  EXPECT_EQ(post("/v1/batch", "x", h).status, 415);
}

TEST_F(HttpSourceTest, ZipBombIs413) {
  sdk::HttpHeaders h = basic("key-new");
  h.set("Content-Encoding", "gzip");
  std::string bomb = testing::compress(std::string(20 * 1024 * 1024, ' '));
  ASSERT_LT(bomb.size(), 500u * 1024);
  auto r = post("/v1/batch", bomb, h);
  EXPECT_EQ(r.status, 413);
  EXPECT_THAT(r.body, HasSubstr("larger than 512000 bytes"));
  EXPECT_EQ(rejected("too_large"), 1u);
}

TEST_F(HttpSourceTest, SizeLimits) {
  std::string big(40 * 1024, 'x');
  auto single = post("/v1/track", R"({"userId":"u","event":"E","properties":{"p":")" + big + "\"}}");
  EXPECT_EQ(single.status, 400);
  EXPECT_EQ(parse(single.body).at("error"), "event larger than 32768 bytes");
  auto batch = post("/v1/batch", R"({"batch":[{"type":"track","userId":"u","event":"E","properties":{"p":")" +
                                      big + R"("}},{"type":"track","userId":"u","event":"ok"}]})");
  ASSERT_EQ(batch.status, 200);
  EXPECT_EQ(parse(batch.body).at("errors").at(0).at("reason"), "too_large");
  EXPECT_EQ(ctx_->events().size(), 1u);
  // Over the route's limit (max_batch_bytes): refused before the handler, as the server does.
  auto huge = ctx_->call("POST", "/v1/batch", std::string(600 * 1024, ' '), basic("key-new"));
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(huge->status, 413);
  EXPECT_EQ(rejected("too_large"), 2u);
}

TEST_F(HttpSourceTest, AnswersOnlyOnceDurable) {
  ctx_->holdCallbacks(true);
  auto future = ctx_->callAsync("POST", "/v1/track", R"({"userId":"u","event":"E"})", basic("key-new"));
  EXPECT_EQ(future.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(ctx_->releaseCallbacks(), 1u);
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto r = future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpSourceTest, QueueRefusals503WithRetryAfter) {
  ctx_->setEmitResult(sdk::EmitResult{
      sdk::makeError(sdk::ErrorCode::ResourceExhausted, "disk budget reached"), 4500ms, 0, 0});
  auto full = post("/v1/track", R"({"userId":"u","event":"E","messageId":"m-1"})");
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.headers.get("Retry-After"), "5");
  EXPECT_EQ(parse(full.body).at("success"), false);
  ctx_->setEmitResult(sdk::EmitResult{
      sdk::makeError(sdk::ErrorCode::Unavailable, "shutting down"), 0ms, 0, 0});
  auto down = post("/v1/track", R"({"userId":"u","event":"E","messageId":"m-1"})");
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.headers.get("Retry-After"), "1");
  // The refused messageId was not remembered: the retry goes through, once.
  ctx_->resetEmitPolicy();
  EXPECT_EQ(post("/v1/track", R"({"userId":"u","event":"E","messageId":"m-1"})").status, 200);
  EXPECT_EQ(ctx_->events().size(), 1u);
  EXPECT_EQ(ctx_->metrics().counterValue(kRequests, {{"endpoint", "track"}, {"status", "503"}}), 2u);
}

TEST_F(HttpSourceTest, QueueRefusalForgetsEveryMessageIdOfABatch) {
  const std::string batch =
      R"({"batch":[{"type":"track","userId":"u","event":"E","messageId":"b-1"},)"
      R"({"type":"track","userId":"u","event":"E","messageId":"batch-id-2"},)"
      R"({"type":"track","userId":"u","event":"E","messageId":"b-3"}]})";
  ctx_->setEmitResult(sdk::EmitResult{
      sdk::makeError(sdk::ErrorCode::ResourceExhausted, "disk budget reached"), 1000ms, 0, 0});
  EXPECT_EQ(post("/v1/batch", batch).status, 503);
  ctx_->resetEmitPolicy();
  auto retry = post("/v1/batch", batch);
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.body, R"({"success":true})") << "no id of the refused batch may count as seen";
  EXPECT_EQ(ctx_->events().size(), 3u);
}

// A client that timed out resends while its first attempt still waits for the queue: the
// resend is not a duplicate of an attempt that may yet fail. Here the first fails and the
// resend is stored: the event is in the queue once. (The failed attempt forgets the id, so a
// third send would be stored again: a duplicate downstream, never a loss.)
TEST_F(HttpSourceTest, ARetryWhileTheFirstAttemptIsInFlightIsNotTakenForADuplicate) {
  int calls = 0;
  ctx_->setEmitPolicy([&calls](const std::vector<sdk::Event>& events) {
    if (++calls == 1) {
      return sdk::EmitResult{sdk::makeError(sdk::ErrorCode::Unavailable, "NATS did not answer"),
                             1000ms, 0, 0};
    }
    return sdk::EmitResult{{}, {}, events.size(), 0};
  });
  ctx_->holdCallbacks(true);
  const std::string e1 = R"({"userId":"u","event":"E","messageId":"in-flight-1"})";
  auto first = ctx_->callAsync("POST", "/v1/track", e1, basic("key-new"));
  auto resend = ctx_->callAsync("POST", "/v1/track", e1, basic("key-new"));
  EXPECT_EQ(resend.wait_for(100ms), std::future_status::timeout)
      << "the resend was answered without being queued";
  EXPECT_EQ(ctx_->emitCalls().size(), 2u);
  ctx_->holdCallbacks(false);
  EXPECT_EQ(ctx_->releaseCallbacks(), 2u);
  ASSERT_EQ(first.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(resend.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(first.get()->status, 503);
  auto answered = resend.get();
  EXPECT_EQ(answered->status, 200);
  EXPECT_EQ(answered->body, R"({"success":true})");
  EXPECT_EQ(ctx_->events().size(), 1u);
}

TEST_F(HttpSourceTest, DuplicatesWithinTheWindowAreDroppedAndCounted) {
  const std::string e1 = R"({"userId":"u","event":"E","messageId":"dup-1"})";
  EXPECT_EQ(post("/v1/track", e1).status, 200);
  auto again = post("/v1/track", e1);
  EXPECT_EQ(again.status, 200);  // success: the client's retry is idempotent
  EXPECT_EQ(parse(again.body).at("duplicates"), 1);
  EXPECT_EQ(ctx_->events().size(), 1u);
  // Within one batch too.
  auto batch = post("/v1/batch", R"({"batch":[{"type":"track","userId":"u","event":"E","messageId":"b1"},
      {"type":"track","userId":"u","event":"E","messageId":"b1"}]})");
  EXPECT_EQ(parse(batch.body).at("duplicates"), 1);
  EXPECT_EQ(ctx_->events().size(), 2u);
  EXPECT_EQ(rejected("duplicate"), 2u);
  ctx_->manualClock().advance(11min);  // past the 10 min window
  EXPECT_EQ(post("/v1/track", e1).body, R"({"success":true})");
  EXPECT_EQ(ctx_->events().size(), 3u);
}

TEST_F(HttpSourceTest, DedupOff) {
  start(HttpSourceConfig{.write_keys = {"key-new"}, .dedup_window = 0ms});
  const std::string e1 = R"({"userId":"u","event":"E","messageId":"dup-1"})";
  EXPECT_EQ(post("/v1/track", e1).status, 200);
  EXPECT_EQ(post("/v1/track", e1).status, 200);
  EXPECT_EQ(ctx_->events().size(), 2u);
}

TEST_F(HttpSourceTest, CorsPreflightAnyOrigin) {
  sdk::HttpHeaders h;
  h.set("Origin", "https://shop.example.com");
  h.set("Access-Control-Request-Method", "POST");
  h.set("Access-Control-Request-Headers", "content-type");
  auto r = ctx_->call("OPTIONS", "/v1/t", "", h);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->headers.get("Access-Control-Allow-Origin"), "*");
  EXPECT_THAT(std::string(r->headers.get("Access-Control-Allow-Methods")), HasSubstr("POST"));
  EXPECT_EQ(r->headers.get("Access-Control-Allow-Headers"), "content-type");
  h.set("Content-Type", "text/plain");
  auto post_r = post("/v1/t", R"({"writeKey":"key-new","userId":"u","event":"E"})", h);
  EXPECT_EQ(post_r.status, 200);
  EXPECT_EQ(post_r.headers.get("Access-Control-Allow-Origin"), "*");
}

TEST_F(HttpSourceTest, CorsConfiguredOrigins) {
  start(HttpSourceConfig{.write_keys = {"key-new"}, .cors_origins = {"https://shop.example.com"}});
  sdk::HttpHeaders ok;
  ok.set("Origin", "https://shop.example.com");
  auto pre = ctx_->call("OPTIONS", "/v1/batch", "", ok);
  ASSERT_TRUE(pre.ok());
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->headers.get("Access-Control-Allow-Origin"), "https://shop.example.com");
  EXPECT_EQ(pre->headers.get("Vary"), "Origin");
  sdk::HttpHeaders evil;
  evil.set("Origin", "https://evil.example.net");
  auto denied = ctx_->call("OPTIONS", "/v1/batch", "", evil);
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 403);
  EXPECT_EQ(denied->headers.find("Access-Control-Allow-Origin"), nullptr);
  auto post_evil = post("/v1/t", R"({"writeKey":"key-new","userId":"u","event":"E"})", evil);
  EXPECT_EQ(post_evil.status, 403);
  auto post_ok = post("/v1/t", R"({"writeKey":"key-new","userId":"u","event":"E"})", ok);
  EXPECT_EQ(post_ok.status, 200);
  EXPECT_EQ(post_ok.headers.get("Access-Control-Allow-Origin"), "https://shop.example.com");
  EXPECT_EQ(ctx_->events().size(), 1u);
}

TEST_F(HttpSourceTest, SettingsForAnalyticsJs) {
  sdk::HttpHeaders h;
  h.set("Host", "127.0.0.1:8080");
  auto r = ctx_->call("GET", "/v1/projects/key-old/settings", "", h);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  auto settings = parse(r->body);
  const auto& seg = settings.at("integrations").at("Segment.io");
  EXPECT_EQ(seg.at("apiHost"), "127.0.0.1:8080/v1");
  EXPECT_EQ(seg.at("protocol"), "http");
  EXPECT_EQ(seg.at("apiKey"), "key-old");
  // Built from the request's Host: no shared cache may keep it for other clients.
  EXPECT_EQ(r->headers.get("Cache-Control"), "private, max-age=300");
  EXPECT_EQ(r->headers.get("Vary"), "Host, X-Forwarded-Proto");
  auto bad = ctx_->call("GET", "/v1/projects/nope/settings", "", h);
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 401);
  for (const char* forged : {"", "evil.example/x", "evil.example\"><script>", "a b"}) {
    sdk::HttpHeaders f;
    f.set("Host", forged);
    auto refused = ctx_->call("GET", "/v1/projects/key-old/settings", "", f);
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->status, 400) << forged;
  }

  start(HttpSourceConfig{.write_keys = {"k"}, .public_url = "https://cdp.example.com/"});
  auto pub = ctx_->call("GET", "/v1/projects/k/settings", "", h);
  ASSERT_TRUE(pub.ok());
  const auto settings2 = parse(pub->body);
  const auto& seg2 = settings2.at("integrations").at("Segment.io");
  EXPECT_EQ(seg2.at("apiHost"), "cdp.example.com/v1");
  EXPECT_EQ(seg2.at("protocol"), "https");
  EXPECT_EQ(pub->headers.get("Cache-Control"), "public, max-age=300");  // the same for everyone
}

TEST_F(HttpSourceTest, TelemetryIsAcceptedAndCounted) {
  auto r = ctx_->call("POST", "/v1/m", R"({"series":[{"type":"Counter","metric":"x","value":1}]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(ctx_->metrics().counterValue("junction_http_source_telemetry_total"), 1u);
  EXPECT_EQ(ctx_->emitCount(), 0u);
}

HttpSourceConfig withPlan(std::string_view actions) {
  json::object plan = parse(R"({"events":{"Order Completed":{"type":"object","required":["revenue"],
      "properties":{"revenue":{"type":"number"}}}}})");
  for (const auto& [k, v] : parse(actions)) {
    plan[k] = v;
  }
  return HttpSourceConfig{.write_keys = {"key-new"}, .tracking_plan = plan};
}

constexpr const char* kPlanBatch = R"({"batch":[
    {"type":"track","userId":"u","event":"Order Completed","properties":{"revenue":10}},
    {"type":"track","userId":"u","event":"Order Completed","properties":{"revenue":"ten"}},
    {"type":"track","userId":"u","event":"Unplanned Thing"},
    {"type":"identify","userId":"u"}]})";

TEST_F(HttpSourceTest, TrackingPlanFlagAndAllow) {
  start(withPlan(R"({"unplanned":"allow","violations":"flag"})"));
  auto r = post("/v1/batch", kPlanBatch);
  ASSERT_EQ(r.status, 200);
  auto events = ctx_->events();
  ASSERT_EQ(events.size(), 4u);
  auto flagged = parse(events[1].json());
  ASSERT_TRUE(flagged.at("context").as_object().contains("violations"));
  EXPECT_EQ(flagged.at("context").at("violations").at(0).at("path"), "/revenue");
  EXPECT_FALSE(parse(events[0].json()).at("context").as_object().contains("violations"));
  EXPECT_EQ(ctx_->metrics().counterValue("junction_http_source_flagged_events_total"), 1u);
}

TEST_F(HttpSourceTest, TrackingPlanDrop) {
  start(withPlan(R"({"unplanned":"drop","violations":"drop"})"));
  auto r = post("/v1/batch", kPlanBatch);
  ASSERT_EQ(r.status, 200);
  auto body = parse(r.body);
  EXPECT_EQ(body.at("accepted"), 2);
  EXPECT_EQ(body.at("errors").at(0).at("reason"), "violation");
  EXPECT_EQ(body.at("errors").at(1).at("reason"), "unplanned");
  EXPECT_EQ(ctx_->events().size(), 2u);
  EXPECT_EQ(rejected("violation"), 1u);
  EXPECT_EQ(rejected("unplanned"), 1u);
}

TEST_F(HttpSourceTest, TrackingPlanViolationsAllow) {
  start(withPlan(R"({"violations":"allow"})"));
  ASSERT_EQ(post("/v1/batch", kPlanBatch).status, 200);
  auto events = ctx_->events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_FALSE(parse(events[1].json()).at("context").as_object().contains("violations"));
}

TEST_F(HttpSourceTest, BadTrackingPlanFailsStart) {
  sdk::testing::FakeSourceContext ctx("web");
  HttpSource source(HttpSourceConfig{.write_keys = {"k"},
                                     .tracking_plan = parse(R"({"unplanned":"explode"})")},
                    ctx);
  auto s = source.start();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("tracking_plan: unplanned"));
}

TEST_F(HttpSourceTest, StoppedSourceAnswers503) {
  source_->stop();
  EXPECT_EQ(post("/v1/track", R"({"userId":"u","event":"E"})").status, 503);
  EXPECT_EQ(ctx_->emitCount(), 0u);
}

}  // namespace
}  // namespace junction::plugins::http
