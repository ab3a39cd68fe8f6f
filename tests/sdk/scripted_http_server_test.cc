#include "junction/sdk/testing/scripted_http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "junction/sdk/http_client.h"

namespace junction::sdk::testing {
namespace {

using std::chrono::milliseconds;

HttpClientResponse send(HttpClient& client, const ScriptedHttpServer& server, std::string method,
                        std::string target, std::string body = {}) {
  HttpClientRequest request;
  request.method = std::move(method);
  request.url = server.baseUrl() + target;
  request.body = std::move(body);
  request.headers.set("Content-Type", "application/json");
  return client.send(request);
}

TEST(ScriptedHttpServerTest, BaseUrlIsLoopbackWithEphemeralPort) {
  ScriptedHttpServer server;
  EXPECT_NE(server.port(), 0);
  EXPECT_EQ(server.baseUrl(), "http://127.0.0.1:" + std::to_string(server.port()));
  ScriptedHttpServer other;
  EXPECT_NE(other.port(), server.port());
}

TEST(ScriptedHttpServerTest, UnscriptedRequestsGet404AndAreRecorded) {
  ScriptedHttpServer server;
  HttpClient client;
  const auto response = send(client, server, "POST", "/nothing?a=1", R"({"x":1})");
  EXPECT_EQ(response.status, 404);
  EXPECT_NE(response.body.find("POST /nothing"), std::string::npos) << response.body;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/nothing?a=1");
  EXPECT_EQ(requests[0].path, "/nothing");
  EXPECT_EQ(requests[0].query, "a=1");
  EXPECT_EQ(requests[0].body, R"({"x":1})");
  EXPECT_EQ(requests[0].headers.get("content-type"), "application/json");
  EXPECT_EQ(requests[0].index, 0u);
  EXPECT_EQ(requests[0].connection_id, 1u);
}

TEST(ScriptedHttpServerTest, TimesFallsThroughToTheNextRule) {
  ScriptedHttpServer server;
  auto limited =
      server.when("POST", "/m").reply(429, R"({"detail":"slow"})", {{"Retry-After", "2"}});
  limited.times(2);
  server.when("POST", "/m").reply(200, R"({"id":"1"})");
  HttpClient client;
  const auto first = send(client, server, "POST", "/m");
  EXPECT_EQ(first.status, 429);
  EXPECT_EQ(first.headers.get("Retry-After"), "2");
  EXPECT_EQ(first.body, R"({"detail":"slow"})");
  EXPECT_EQ(send(client, server, "POST", "/m").status, 429);
  EXPECT_EQ(send(client, server, "POST", "/m").status, 200);
  EXPECT_EQ(send(client, server, "POST", "/m").status, 200);
  EXPECT_EQ(limited.hits(), 2u);
}

TEST(ScriptedHttpServerTest, MethodMustMatchUnlessWildcard) {
  ScriptedHttpServer server;
  server.when("GET", "/only-get").reply(200);
  server.when("*", "/any").reply(201);
  HttpClient client;
  EXPECT_EQ(send(client, server, "POST", "/only-get").status, 404);
  EXPECT_EQ(send(client, server, "GET", "/only-get").status, 200);
  EXPECT_EQ(send(client, server, "DELETE", "/any").status, 201);
}

TEST(ScriptedHttpServerTest, PrefixAndRegexMatching) {
  ScriptedHttpServer server;
  server.when("PUT", "/3.0/lists/abc/members/", PathMatch::Prefix).reply(200, "prefix");
  server.when("GET", R"(/v1/users/[0-9]+)", PathMatch::Regex).reply(200, "regex");
  HttpClient client;
  EXPECT_EQ(send(client, server, "PUT", "/3.0/lists/abc/members/0123abcd").body, "prefix");
  EXPECT_EQ(send(client, server, "PUT", "/3.0/lists/xyz/members/1").status, 404);
  EXPECT_EQ(send(client, server, "GET", "/v1/users/42?x=1").body, "regex");
  EXPECT_EQ(send(client, server, "GET", "/v1/users/42/extra").status, 404);
  EXPECT_EQ(send(client, server, "GET", "/v1/users/abc").status, 404);
}

TEST(ScriptedHttpServerTest, RespondComputesTheReplyFromTheRequest) {
  ScriptedHttpServer server;
  server.when("POST", "/echo").respond([](const RecordedRequest& request) {
    HttpResponse response;
    response.status = 202;
    response.body = "got " + request.body;
    response.headers.set("Content-Type", "text/plain");
    return response;
  });
  HttpClient client;
  const auto response = send(client, server, "POST", "/echo", "ping");
  EXPECT_EQ(response.status, 202);
  EXPECT_EQ(response.body, "got ping");
  EXPECT_EQ(response.headers.get("Content-Type"), "text/plain");
}

TEST(ScriptedHttpServerTest, DefaultContentTypeIsJsonForNonEmptyBodies) {
  ScriptedHttpServer server;
  server.when("GET", "/j").reply(200, "{}");
  HttpClient client;
  EXPECT_EQ(send(client, server, "GET", "/j").headers.get("Content-Type"), "application/json");
}

TEST(ScriptedHttpServerTest, DelayHoldsTheReply) {
  ScriptedHttpServer server;
  server.when("GET", "/slow").delay(milliseconds(300)).reply(200);
  HttpClient client;
  const auto response = send(client, server, "GET", "/slow");
  EXPECT_EQ(response.status, 200);
  EXPECT_GE(response.elapsed, std::chrono::microseconds(290'000));
}

TEST(ScriptedHttpServerTest, CloseConnectionGivesNoReplyThenNextRule) {
  ScriptedHttpServer server;
  server.when("POST", "/flaky").closeConnection().times(1);
  server.when("POST", "/flaky").reply(200, "{}");
  HttpClient client;
  EXPECT_EQ(send(client, server, "POST", "/flaky").status, 0);
  EXPECT_EQ(send(client, server, "POST", "/flaky").status, 200);
  EXPECT_EQ(server.connectionCount(), 2u);  // the reset connection cannot be reused
}

TEST(ScriptedHttpServerTest, WaitForRequests) {
  ScriptedHttpServer server;
  server.when("POST", "/x").reply(200);
  EXPECT_FALSE(server.waitForRequests(1, milliseconds(50)));
  std::thread sender([&] {
    HttpClient client;
    for (int i = 0; i < 3; ++i) {
      (void)send(client, server, "POST", "/x");
    }
  });
  EXPECT_TRUE(server.waitForRequests(3, std::chrono::seconds(10)));
  sender.join();
  EXPECT_EQ(server.requests().size(), 3u);
  server.clearRequests();
  EXPECT_TRUE(server.requests().empty());
}

TEST(ScriptedHttpServerTest, ConnectionIdsDistinguishConnections) {
  ScriptedHttpServer server;
  server.when("GET", "/x").reply(200);
  HttpClient first;
  HttpClient second;
  EXPECT_EQ(send(first, server, "GET", "/x").status, 200);
  EXPECT_EQ(send(second, server, "GET", "/x").status, 200);
  EXPECT_EQ(send(first, server, "GET", "/x").status, 200);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_NE(requests[0].connection_id, requests[1].connection_id);
  EXPECT_EQ(requests[0].connection_id, requests[2].connection_id);
  EXPECT_EQ(server.connectionCount(), 2u);
}

TEST(ScriptedHttpServerTest, ClearRulesRestoresDefault404) {
  ScriptedHttpServer server;
  server.when("GET", "/x").reply(200);
  HttpClient client;
  EXPECT_EQ(send(client, server, "GET", "/x").status, 200);
  server.clearRules();
  EXPECT_EQ(send(client, server, "GET", "/x").status, 404);
}

TEST(ScriptedHttpServerTest, StopResetsConnectionsAndIsIdempotent) {
  auto server = std::make_unique<ScriptedHttpServer>();
  server->when("GET", "/hang").delay(std::chrono::seconds(30)).reply(200);
  std::thread client_thread([url = server->baseUrl()] {
    HttpClient client;
    HttpClientRequest request;
    request.url = url + "/hang";
    const auto response = client.send(request);
    EXPECT_EQ(response.status, 0);  // the server went away mid-request
  });
  ASSERT_TRUE(server->waitForRequests(1, std::chrono::seconds(10)));
  const auto started = std::chrono::steady_clock::now();
  server->stop();
  server->stop();
  client_thread.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  server.reset();
}

}  // namespace
}  // namespace junction::sdk::testing
