// The out-of-tree example plugin's data path and option table, tested in-tree with the SDK's
// testing kit the way sdk/README.md tells integrators to (the install test proves that it builds
// against the installed SDK and loads in junctiond). The example is one .cc by design, so it is
// included here whole.

#include "sdk/examples/hello_destination/hello_destination.cc"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"

namespace example::hello_destination {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Kind = sdk::Outcome::Kind;

sdk::Event trackEvent(const std::string& user, const std::string& message_id = "m-1") {
  auto body = boost::json::parse(R"({"type":"track","event":"Order Completed","userId":")" + user +
                                 R"(","messageId":")" + message_id + R"("})");
  auto event = sdk::makeEvent(body.as_object(), "web");
  EXPECT_TRUE(event.ok());
  return std::move(event).value();
}

class HelloDestinationTest : public ::testing::Test {
 protected:
  HelloConfig config(std::string token = "t0k3n") {
    return {.url = server_.baseUrl() + "/hook", .token = std::move(token), .timeout = 2s};
  }

  sdk::testing::ScriptedHttpServer server_;
  sdk::testing::FakeDestinationContext ctx_;
};

TEST_F(HelloDestinationTest, PostsEachEventsJsonWithTheBearerToken) {
  server_.when("POST", "/hook").reply(200, "{}");
  HelloDestination dest(config(), ctx_);
  std::vector<sdk::Event> batch{trackEvent("u1", "m-1"), trackEvent("u2", "m-2")};

  auto outcomes = dest.deliver(batch);

  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_TRUE(outcomes[1].isDelivered());
  auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].body, batch[0].json());
  EXPECT_EQ(requests[1].body, batch[1].json());
  EXPECT_EQ(requests[0].headers.get("Authorization"), "Bearer t0k3n");
  EXPECT_EQ(requests[0].headers.get("Content-Type"), "application/json");
  EXPECT_EQ(requests[1].headers.get("Idempotency-Key"), "m-2");
  EXPECT_EQ(ctx_.metrics().counterValue("junction_hello_requests_total"), 2u);
}

TEST_F(HelloDestinationTest, SendsNoAuthorizationWithoutAToken) {
  server_.when("POST", "/hook").reply(202, "");
  HelloDestination dest(config(""), ctx_);
  std::vector<sdk::Event> batch{trackEvent("u1")};
  EXPECT_TRUE(dest.deliver(batch)[0].isDelivered());
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].headers.find("Authorization"), nullptr);
}

TEST_F(HelloDestinationTest, ReportsOneClassifiedOutcomePerEventInOrder) {
  server_.when("POST", "/hook").reply(429, "slow down", {{"Retry-After", "3"}}).times(1);
  server_.when("POST", "/hook").reply(400, R"({"error":"bad event"})").times(1);
  server_.when("POST", "/hook").reply(503, "").times(1);
  server_.when("POST", "/hook").reply(401, "").times(1);
  server_.when("POST", "/hook").reply(204, "");
  HelloDestination dest(config(), ctx_);
  std::vector<sdk::Event> batch{trackEvent("a"), trackEvent("b"), trackEvent("c"), trackEvent("d"),
                                trackEvent("e")};

  auto outcomes = dest.deliver(batch);

  ASSERT_EQ(outcomes.size(), 5u);
  EXPECT_EQ(outcomes[0].kind, Kind::Retry);
  EXPECT_EQ(outcomes[0].retry_after, 3s);
  EXPECT_EQ(outcomes[1].kind, Kind::Failed);
  EXPECT_THAT(outcomes[1].reason, ::testing::HasSubstr("400"));
  EXPECT_EQ(outcomes[2].kind, Kind::Retry);
  EXPECT_EQ(outcomes[3].kind, Kind::Retry);  // 401: credentials may rotate
  EXPECT_EQ(outcomes[4].kind, Kind::Delivered);
}

TEST_F(HelloDestinationTest, ATransportFailureIsARetry) {
  auto cfg = config();
  server_.stop();  // nothing listens on the port any more
  HelloDestination dest(cfg, ctx_);
  std::vector<sdk::Event> batch{trackEvent("u1")};
  auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].kind, Kind::Retry);
  EXPECT_THAT(outcomes[0].reason, ::testing::HasSubstr("transport"));
}

TEST(HelloOptionsTest, DocumentsEveryKey) {
  auto specs = helloOptions().specs();
  EXPECT_THAT(sdk::checkOptionTable(specs), IsEmpty());
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].key, "url");
  EXPECT_TRUE(specs[0].required);
  EXPECT_EQ(specs[1].key, "token");
  EXPECT_TRUE(specs[1].secret);
  EXPECT_FALSE(specs[1].required);
  EXPECT_EQ(specs[2].key, "timeout");
  EXPECT_EQ(specs[2].type, sdk::OptionType::Duration);
  for (const auto& spec : specs) {
    EXPECT_FALSE(spec.doc.empty()) << spec.key;
  }
}

TEST(HelloOptionsTest, BindsACheckedConfig) {
  auto config = helloOptions().bind(boost::json::object{
      {"url", "https://hooks.example.com/j"}, {"token", "x"}, {"timeout", 1500}});
  EXPECT_EQ(config.url, "https://hooks.example.com/j");
  EXPECT_EQ(config.token, "x");
  EXPECT_EQ(config.timeout, 1500ms);
}

TEST(HelloOptionsTest, RefusesAUrlThatIsNotHttp) {
  HelloConfig config{.url = "ftp://example.com", .token = "", .timeout = 1s};
  auto errors = config.validate();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "url");
  HelloConfig http_config{.url = "http://x", .token = "", .timeout = 1s};
  EXPECT_THAT(http_config.validate(), IsEmpty());
}

}  // namespace
}  // namespace example::hello_destination
