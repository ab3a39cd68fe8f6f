// OAuthTokenCache against a scripted token endpoint over loopback HTTP: one fetch for many
// requests, expiry, replacement once on a 401, and how refusals of the token request read.

#include "junction/sdk/oauth_token.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>
#include <vector>

#include "junction/sdk/json.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::sdk {
namespace {

using namespace std::chrono_literals;
using testing::RecordedRequest;
using testing::ScriptedHttpServer;

class OAuthTokenCacheTest : public ::testing::Test {
 protected:
  OAuthTokenCacheTest() {
    server_.when("POST", "/token").respond([this](const RecordedRequest&) {
      const int n = ++issued_;
      return HttpResponse::json(200, R"({"access_token":"tok-)" + std::to_string(n) +
                                         R"(","instance_url":")" + server_.baseUrl() +
                                         R"(/","expires_in":)" + std::to_string(expires_in_) +
                                         "}");
    });
    server_.when("GET", "/api").respond([this](const RecordedRequest& r) {
      return r.headers.get("Authorization") == "Bearer tok-" + std::to_string(issued_.load())
                 ? HttpResponse::json(200, "{}")
                 : HttpResponse::json(401, R"({"error":"expired"})");
    });
  }

  OAuthTokenEndpoint endpoint() {
    return {.vendor = "Vendor",
            .request = [this] { return HttpClientRequest{.method = "POST",
                                                         .url = server_.baseUrl() + "/token",
                                                         .headers = {},
                                                         .body = "secret=s3cr3t",
                                                         .timeout = 2s}; },
            .parse = [](std::string_view body) -> Result<OAuthGrant> {
              auto v = parseJson(body);
              if (!v || !stringAt(*v, "access_token")) {
                return makeError(ErrorCode::InvalidArgument, "no access_token");
              }
              return OAuthGrant{*stringAt(*v, "access_token"), *stringAt(*v, "instance_url"),
                                std::chrono::seconds(intAt(*v, "expires_in").value_or(0))};
            },
            .error_text = [](std::string_view body) -> std::optional<std::string> {
              auto v = parseJson(body);
              return v ? stringAt(*v, "error") : std::nullopt;
            },
            .counted = [this](int status) { statuses_.push_back(status); }};
  }

  std::size_t tokenRequests() const {
    std::size_t n = 0;
    for (const auto& r : server_.requests()) {
      n += r.path == "/token" ? 1 : 0;
    }
    return n;
  }

  ScriptedHttpServer server_;
  std::atomic<int> issued_{0};
  int expires_in_ = 3600;
  std::vector<int> statuses_;
  testing::FakeDestinationContext ctx_;
};

TEST_F(OAuthTokenCacheTest, OneFetchServesManyRequestsOnSeveralThreads) {
  OAuthTokenCache cache(endpoint(), ctx_);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto sent = cache.send({.method = "GET", .url = "api"}, "api");
        ok += !sent.no_token && sent.response.status == 200 ? 1 : 0;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 20);
  EXPECT_EQ(tokenRequests(), 1u);
  EXPECT_EQ(statuses_, std::vector<int>{200});
}

TEST_F(OAuthTokenCacheTest, ATokenIsReplacedAMinuteBeforeItExpires) {
  OAuthTokenCache cache(endpoint(), ctx_);
  ASSERT_TRUE(cache.get().token);
  ctx_.manualClock().advance(3539s);
  EXPECT_EQ(cache.get().token->access_token, "tok-1");
  ctx_.manualClock().advance(2s);
  EXPECT_EQ(cache.get().token->access_token, "tok-2");
}

TEST_F(OAuthTokenCacheTest, WithoutExpiresInATokenIsKeptUntilRefused) {
  expires_in_ = 0;
  OAuthTokenCache cache(endpoint(), ctx_);
  ASSERT_TRUE(cache.get().token);
  ctx_.manualClock().advance(std::chrono::hours(24 * 30));
  EXPECT_EQ(cache.get().token->access_token, "tok-1");
  const std::string rejected = "tok-1";
  EXPECT_EQ(cache.get(&rejected).token->access_token, "tok-2");
  // Another thread's rejection of the old token does not replace the new one.
  EXPECT_EQ(cache.get(&rejected).token->access_token, "tok-2");
  EXPECT_EQ(tokenRequests(), 2u);
}

TEST_F(OAuthTokenCacheTest, A401IsSentAgainWithANewToken) {
  OAuthTokenCache cache(endpoint(), ctx_);
  ASSERT_TRUE(cache.get().token);
  ++issued_;  // the vendor now refuses tok-1 and accepts the next token it issues (tok-3)
  auto sent = cache.send({.method = "GET", .url = "api"}, "api");
  ASSERT_FALSE(sent.no_token);
  EXPECT_EQ(sent.response.status, 200);
  EXPECT_EQ(tokenRequests(), 2u);
  EXPECT_EQ(server_.requests().back().headers.get("Authorization"), "Bearer tok-3");
  EXPECT_TRUE(ctx_.log().contains("Vendor refused the access token"));
}

TEST_F(OAuthTokenCacheTest, OnlyOnce) {
  server_.when("GET", "/always-401").reply(401, R"({"error":"no"})");
  OAuthTokenCache cache(endpoint(), ctx_);
  auto sent = cache.send({.method = "GET", .url = "always-401"}, "api");
  ASSERT_FALSE(sent.no_token);
  EXPECT_EQ(sent.response.status, 401);
  EXPECT_EQ(tokenRequests(), 2u);
  EXPECT_EQ(server_.requests().size(), 4u);  // token, call, token, call
}

TEST_F(OAuthTokenCacheTest, RefusedCredentialsFailAndOtherTroubleRetries) {
  server_.clearRules();
  server_.when("POST", "/token").reply(400, R"({"error":"invalid_client"})").times(1);
  server_.when("POST", "/token").reply(503, "busy").times(1);
  server_.when("POST", "/token").reply(200, R"({"nothing":1})").times(1);
  OAuthTokenCache cache(endpoint(), ctx_);
  auto refused = cache.get();
  EXPECT_FALSE(refused.token);
  EXPECT_EQ(refused.failure.kind, Outcome::Kind::Failed);
  EXPECT_EQ(refused.failure.reason, "authentication failed: invalid_client");
  auto busy = cache.get();
  EXPECT_EQ(busy.failure.kind, Outcome::Kind::Retry);
  EXPECT_NE(busy.failure.reason.find("Vendor token request failed: HTTP 503"), std::string::npos);
  auto odd = cache.get();
  EXPECT_EQ(odd.failure.kind, Outcome::Kind::Retry);
  EXPECT_EQ(odd.failure.reason, "Vendor answered the token request with HTTP 200 but no access_token");
  EXPECT_EQ(statuses_, (std::vector<int>{400, 503, 200}));
  EXPECT_FALSE(ctx_.log().contains("s3cr3t"));
}

}  // namespace
}  // namespace junction::sdk
