// The webhook source without sockets (FakeSourceContext): signatures (valid, rotated, bad,
// missing, stale), the inbound mapping, arrays, limits, and the answer only once emit says the
// events are durable.

#include "webhook_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/webhook_signature.h"

namespace junction::plugins::webhook {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

class WebhookSourceTest : public ::testing::Test {
 protected:
  void start(WebhookSourceConfig config) {
    config.secret = config.secret.empty() ? std::vector<std::string>{"s3cret"} : config.secret;
    ASSERT_TRUE(config.validate().empty()) << config.validate().front().message;
    source_ = std::make_unique<WebhookSource>(std::move(config), ctx_);
    ASSERT_TRUE(source_->start().ok());
  }
  std::int64_t nowS() { return ctx_.clock().nowMs() / 1000; }
  sdk::HttpResponse post(const std::string& body, const std::string& signature,
                         const std::string& header = "X-Junction-Signature") {
    sdk::HttpHeaders headers;
    if (!signature.empty()) {
      headers.set(header, signature);
    }
    auto r = ctx_.call("POST", "/v1/webhooks/shop", body, headers);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : sdk::HttpResponse{};
  }

  sdk::testing::FakeSourceContext ctx_{"shop"};
  std::unique_ptr<WebhookSource> source_;
};

TEST_F(WebhookSourceTest, SignedOrderWebhookIsMappedToATrackEvent) {
  WebhookSourceConfig config;
  config.mapping = json::parse(R"({"event": {"from": "topic", "default": "Order Created"},
    "userId": "customer.id", "properties": {"from": "$"}, "properties.total": "total_price",
    "traits.email": "customer.email"})").as_object();
  start(std::move(config));
  ASSERT_EQ(ctx_.routes().size(), 1u);
  EXPECT_EQ(ctx_.routes()[0].path, "/v1/webhooks/shop");

  const std::string body = R"({"id":1001,"total_price":"19.90","customer":{"id":42,"email":"a@x.test"},"created_at":"2026-11-28T16:11:01+01:00"})";
  auto r = post(body, sdk::signWebhook("s3cret", nowS(), body));
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = ctx_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), sdk::EventType::Track);
  EXPECT_EQ(events[0].name(), "Order Created");
  EXPECT_EQ(events[0].userId(), "42");
  const auto& e = events[0].body();
  EXPECT_EQ(e.at("properties").at("id"), 1001);
  EXPECT_EQ(e.at("properties").at("total"), "19.90");
  EXPECT_EQ(e.at("traits").at("email"), "a@x.test");
  EXPECT_EQ(e.at("timestamp"), "2026-11-28T15:11:01.000Z");  // the default mapping's
}

TEST_F(WebhookSourceTest, BadMissingAndStaleSignaturesAre401AndEmitNothing) {
  start({});
  const std::string body = R"({"userId":"u1"})";
  EXPECT_EQ(post(body, "").status, 401);
  EXPECT_EQ(post(body, sdk::signWebhook("other", nowS(), body)).status, 401);
  EXPECT_EQ(post(body, sdk::signWebhook("s3cret", nowS(), body + " ")).status, 401);
  auto stale = post(body, sdk::signWebhook("s3cret", nowS() - 301, body));
  EXPECT_EQ(stale.status, 401);
  EXPECT_THAT(stale.body, HasSubstr("tolerance"));
  EXPECT_EQ(post(body, sdk::signWebhook("s3cret", nowS() + 301, body)).status, 401);
  EXPECT_EQ(ctx_.emitCount(), 0u);
  EXPECT_EQ(post(body, sdk::signWebhook("s3cret", nowS() - 299, body)).status, 200);
  EXPECT_TRUE(ctx_.log().contains("signature does not match"));
  EXPECT_FALSE(ctx_.log().contains("s3cret"));
  EXPECT_EQ(ctx_.metrics().counterValue("junction_webhook_source_requests_total", {{"status", "401"}}), 5u);
}

TEST_F(WebhookSourceTest, RotatedSecretsAndACustomHeader) {
  WebhookSourceConfig config;
  config.secret = {"new", "old"};
  config.signature_header = "X-Form-Signature";
  start(std::move(config));
  const std::string body = R"({"email":"f@x.test"})";
  EXPECT_EQ(post(body, sdk::signWebhook("old", nowS(), body), "X-Form-Signature").status, 200);
  EXPECT_EQ(post(body, sdk::signWebhook("new", nowS(), body), "X-Form-Signature").status, 200);
  EXPECT_EQ(post(body, sdk::signWebhook("new", nowS(), body)).status, 401);  // default header
  ASSERT_EQ(ctx_.events().size(), 2u);
  EXPECT_EQ(ctx_.events()[0].userId(), "f@x.test");
}

TEST_F(WebhookSourceTest, AnArrayIsSeveralEventsAllOrNothing) {
  WebhookSourceConfig config;
  config.max_events = 3;
  config.mapping = json::parse(R"({"timestamp": "when"})").as_object();  // no iso8601 transform
  start(std::move(config));
  auto send = [&](const std::string& body) { return post(body, sdk::signWebhook("s3cret", nowS(), body)); };
  EXPECT_EQ(send(R"([{"userId":"a"},{"userId":"b"}])").status, 200);
  EXPECT_EQ(ctx_.events().size(), 2u);
  auto second_bad = send(R"([{"userId":"a"},{"nobody":1}])");
  EXPECT_EQ(second_bad.status, 400);
  EXPECT_THAT(second_bad.body, HasSubstr("element 1"));
  EXPECT_EQ(send(R"([{"userId":"a"},{"userId":"b"},{"userId":"c"},{"userId":"d"}])").status, 413);
  auto malformed = send(R"({"userId":)");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_THAT(malformed.body, HasSubstr("invalid JSON"));
  EXPECT_EQ(send("[]").status, 400);
  EXPECT_EQ(send(R"(["x"])").status, 400);
  EXPECT_EQ(send(R"({"userId":"a","when":"last tuesday"})").status, 400);
  EXPECT_EQ(ctx_.events().size(), 2u);
}

TEST_F(WebhookSourceTest, AnsweredOnlyOnceDurableAnd503WhenTheQueueIsFull) {
  start({});
  const std::string body = R"({"userId":"u1"})";
  ctx_.holdCallbacks(true);
  auto pending = ctx_.callAsync("POST", "/v1/webhooks/shop", body,
                                [&] {
                                  sdk::HttpHeaders h;
                                  h.set("X-Junction-Signature", sdk::signWebhook("s3cret", nowS(), body));
                                  return h;
                                }());
  EXPECT_EQ(pending.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  EXPECT_EQ(ctx_.releaseCallbacks(), 1u);
  auto done = pending.get();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, 200);
  ctx_.holdCallbacks(false);

  sdk::EmitResult full;
  full.status = sdk::makeError(sdk::ErrorCode::ResourceExhausted, "disk budget reached");
  full.retry_after = std::chrono::milliseconds(1500);
  ctx_.setEmitResult(full);
  auto r = post(body, sdk::signWebhook("s3cret", nowS(), body));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers.get("Retry-After"), "2");
}

TEST(WebhookSourceConfigTest, OptionsAndMappingProblems) {
  WebhookSourceConfig config;
  EXPECT_THAT(config.validate().front().key, "secret");
  config.secret = {"x"};
  config.mapping = json::parse(R"({"user_id": "customer.id", "event": {"form": "topic"}})").as_object();
  auto errors = config.validate();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors.front().key, "mapping.event");
  config.mapping = json::parse(R"({"user_id": "customer.id"})").as_object();
  errors = config.validate();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.front().key, "mapping.user_id");
}

}  // namespace
}  // namespace junction::plugins::webhook
