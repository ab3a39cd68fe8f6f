#include "junction/sdk/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::sdk {
namespace {

using std::chrono::milliseconds;
using testing::ScriptedHttpServer;

std::int64_t nowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string httpDate(std::int64_t epoch_seconds) {
  const std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof(buffer), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buffer;
}

HttpClientRequest post(const ScriptedHttpServer& server, std::string path, std::string body) {
  HttpClientRequest request;
  request.method = "POST";
  request.url = server.baseUrl() + path;
  request.body = std::move(body);
  request.headers.set("Content-Type", "application/json");
  return request;
}

class HttpClientTest : public ::testing::Test {
 protected:
  ScriptedHttpServer server_;
  HttpClient client_;
};

TEST_F(HttpClientTest, SuccessCarriesStatusBodyAndHeaders) {
  server_.when("POST", "/3.0/lists/abc/members")
      .reply(200, R"({"id":"m1"})", {{"X-Request-Id", "req-7"}});
  auto request = post(server_, "/3.0/lists/abc/members", R"({"email":"a@b.c"})");
  request.headers.set("Authorization", "Bearer t0k");
  const HttpClientResponse response = client_.send(request);

  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.classification, HttpClassification::Success);
  EXPECT_TRUE(response.ok());
  EXPECT_EQ(response.body, R"({"id":"m1"})");
  EXPECT_EQ(response.headers.get("x-request-id"), "req-7");
  EXPECT_EQ(response.retry_after, milliseconds(0));
  EXPECT_TRUE(response.transport_error.empty());
  EXPECT_GT(response.elapsed.count(), 0);

  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/3.0/lists/abc/members");
  EXPECT_EQ(requests[0].body, R"({"email":"a@b.c"})");
  EXPECT_EQ(requests[0].headers.get("Authorization"), "Bearer t0k");
  EXPECT_EQ(requests[0].headers.get("Content-Type"), "application/json");
  EXPECT_EQ(requests[0].headers.get("User-Agent"), "junction/" JUNCTION_SDK_VERSION);
  EXPECT_EQ(requests[0].headers.find("Expect"), nullptr);
}

TEST_F(HttpClientTest, PostWithoutContentTypeGetsNoInventedFormType) {
  server_.when("POST", "/raw").reply(204);
  HttpClientRequest request;
  request.method = "POST";
  request.url = server_.baseUrl() + "/raw";
  request.body = "x=1";
  EXPECT_EQ(client_.send(request).status, 204);
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.find("Content-Type"), nullptr);
  EXPECT_EQ(requests[0].body, "x=1");
}

TEST_F(HttpClientTest, OtherMethodsAndQueryAreSentAsGiven) {
  server_.when("*", "/members/", testing::PathMatch::Prefix).reply(200, "{}");
  for (const char* method : {"GET", "PUT", "PATCH", "DELETE", "HEAD"}) {
    HttpClientRequest request;
    request.method = method;
    request.url = server_.baseUrl() + "/members/42?fields=id";
    if (std::string(method) == "PUT" || std::string(method) == "PATCH") {
      request.body = R"({"status":"unsubscribed"})";
    }
    EXPECT_EQ(client_.send(request).status, 200) << method;
  }
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].query, "fields=id");
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].body, R"({"status":"unsubscribed"})");
  EXPECT_EQ(requests[2].method, "PATCH");
  EXPECT_EQ(requests[3].method, "DELETE");
  EXPECT_TRUE(requests[3].body.empty());
  EXPECT_EQ(requests[4].method, "HEAD");
}

TEST_F(HttpClientTest, RateLimitedWithRetryAfterSeconds) {
  server_.when("POST", "/x").reply(429, R"({"detail":"slow"})", {{"Retry-After", "2"}});
  const auto response = client_.send(post(server_, "/x", "{}"));
  EXPECT_EQ(response.status, 429);
  EXPECT_EQ(response.classification, HttpClassification::RateLimited);
  EXPECT_EQ(response.retry_after, milliseconds(2000));
  EXPECT_EQ(response.describe(), R"(HTTP 429: {"detail":"slow"})");
}

TEST_F(HttpClientTest, RateLimitedWithRetryAfterHttpDate) {
  const std::string date = httpDate(nowMs() / 1000 + 120);
  server_.when("POST", "/x").reply(429, "", {{"Retry-After", date}});
  const auto response = client_.send(post(server_, "/x", "{}"));
  EXPECT_EQ(response.classification, HttpClassification::RateLimited);
  EXPECT_GT(response.retry_after, milliseconds(100'000)) << date;
  EXPECT_LE(response.retry_after, milliseconds(120'000)) << date;
}

TEST_F(HttpClientTest, ClassifiesServerErrorsAuthAndClientErrors) {
  server_.when("GET", "/500").reply(500, "boom");
  server_.when("GET", "/503").reply(503, "", {{"Retry-After", "7"}});
  server_.when("GET", "/401").reply(401, R"({"title":"API Key Invalid"})");
  server_.when("GET", "/400").reply(400, "bad");
  server_.when("GET", "/408").reply(408);
  const auto get = [&](const std::string& path) {
    HttpClientRequest request;
    request.url = server_.baseUrl() + path;
    return client_.send(request);
  };
  EXPECT_EQ(get("/500").classification, HttpClassification::Retryable);
  const auto unavailable = get("/503");
  EXPECT_EQ(unavailable.classification, HttpClassification::Retryable);
  EXPECT_EQ(unavailable.retry_after, milliseconds(7000));
  EXPECT_EQ(get("/401").classification, HttpClassification::AuthExpired);
  EXPECT_EQ(get("/400").classification, HttpClassification::Permanent);
  EXPECT_EQ(get("/408").classification, HttpClassification::Retryable);
  const auto missing = get("/not-scripted");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.classification, HttpClassification::Permanent);
}

TEST_F(HttpClientTest, RedirectsAreNotFollowed) {
  server_.when("GET", "/old").reply(302, "", {{"Location", "/new"}});
  server_.when("GET", "/new").reply(200, "{}");
  HttpClientRequest request;
  request.url = server_.baseUrl() + "/old";
  const auto response = client_.send(request);
  EXPECT_EQ(response.status, 302);
  EXPECT_EQ(response.classification, HttpClassification::Permanent);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(HttpClientTest, TimeoutIsRetryableTransportFailure) {
  server_.when("POST", "/slow").delay(milliseconds(3000)).reply(200, "{}");
  auto request = post(server_, "/slow", "{}");
  request.timeout = milliseconds(200);
  const auto started = std::chrono::steady_clock::now();
  const auto response = client_.send(request);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.classification, HttpClassification::Retryable);
  EXPECT_FALSE(response.transport_error.empty());
  EXPECT_NE(response.transport_error.find("timed out"), std::string::npos)
      << response.transport_error;
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_EQ(response.describe().rfind("transport: ", 0), 0u) << response.describe();
}

TEST_F(HttpClientTest, OptionsRequestTimeoutIsTheDefault) {
  server_.when("GET", "/slow").delay(milliseconds(3000)).reply(200);
  HttpClient client(HttpClientOptions{.request_timeout = milliseconds(150)});
  HttpClientRequest request;
  request.url = server_.baseUrl() + "/slow";
  const auto response = client.send(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_LT(response.elapsed, std::chrono::microseconds(2'000'000));
}

TEST(HttpClientStandaloneTest, ConnectionRefusedIsRetryable) {
  std::string url;
  {
    ScriptedHttpServer closed;
    url = closed.baseUrl() + "/x";
  }  // the port is closed now
  HttpClient client;
  HttpClientRequest request;
  request.url = url;
  const auto response = client.send(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.classification, HttpClassification::Retryable);
  EXPECT_NE(response.transport_error.find("refused"), std::string::npos)
      << response.transport_error;
}

TEST(HttpClientStandaloneTest, UnsupportedSchemeIsRefused) {
  HttpClient client;
  HttpClientRequest request;
  request.url = "file:///etc/passwd";
  const auto response = client.send(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_TRUE(response.body.empty());
}

TEST_F(HttpClientTest, ConnectionResetIsRetryable) {
  server_.when("POST", "/reset").closeConnection();
  const auto response = client_.send(post(server_, "/reset", "{}"));
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.classification, HttpClassification::Retryable);
  EXPECT_FALSE(response.transport_error.empty());
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(HttpClientTest, BodyIsCappedAtMaxResponseBytes) {
  server_.when("GET", "/big").reply(200, std::string(100'000, 'x'));
  HttpClient client(HttpClientOptions{.max_response_bytes = 1000});
  HttpClientRequest request;
  request.url = server_.baseUrl() + "/big";
  const auto response = client.send(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body.size(), 1000u);
}

TEST_F(HttpClientTest, SequentialRequestsReuseOneConnection) {
  server_.when("POST", "/x").reply(200, "{}");
  constexpr int kRequests = 5;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(client_.send(post(server_, "/x", "{}")).status, 200);
  }
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), static_cast<std::size_t>(kRequests));
  for (const auto& r : requests) {
    EXPECT_EQ(r.connection_id, requests.front().connection_id);
  }
  EXPECT_EQ(server_.connectionCount(), 1u);
}

TEST_F(HttpClientTest, NoPoolingMeansNewConnections) {
  server_.when("POST", "/x").reply(200, "{}");
  HttpClient client(HttpClientOptions{.max_idle_connections = 0});
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(client.send(post(server_, "/x", "{}")).status, 200);
  }
  EXPECT_EQ(server_.connectionCount(), 3u);
}

TEST_F(HttpClientTest, ConcurrentSendsFromFourThreads) {
  server_.when("POST", "/batch").delay(milliseconds(2)).reply(200, "{}");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 15;
  std::atomic<int> successes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto body = R"({"t":)" + std::to_string(t) + R"(,"i":)" + std::to_string(i) + "}";
        if (client_.send(post(server_, "/batch", body)).status == 200) {
          ++successes;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(successes.load(), kThreads * kPerThread);
  const auto requests = server_.requests();
  EXPECT_EQ(requests.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::set<std::string> bodies;
  for (const auto& r : requests) {
    bodies.insert(r.body);
  }
  EXPECT_EQ(bodies.size(), static_cast<std::size_t>(kThreads * kPerThread));
  // At most one pooled handle per thread, each keeping its connection alive.
  EXPECT_LE(server_.connectionCount(), static_cast<std::uint64_t>(kThreads));
}

TEST(ClassifyStatusTest, Table) {
  EXPECT_EQ(classifyStatus(0), HttpClassification::Retryable);
  EXPECT_EQ(classifyStatus(100), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(200), HttpClassification::Success);
  EXPECT_EQ(classifyStatus(204), HttpClassification::Success);
  EXPECT_EQ(classifyStatus(299), HttpClassification::Success);
  EXPECT_EQ(classifyStatus(301), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(304), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(400), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(401), HttpClassification::AuthExpired);
  EXPECT_EQ(classifyStatus(403), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(404), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(408), HttpClassification::Retryable);
  EXPECT_EQ(classifyStatus(422), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(429), HttpClassification::RateLimited);
  EXPECT_EQ(classifyStatus(500), HttpClassification::Retryable);
  EXPECT_EQ(classifyStatus(503), HttpClassification::Retryable);
  EXPECT_EQ(classifyStatus(599), HttpClassification::Retryable);
  EXPECT_EQ(classifyStatus(600), HttpClassification::Permanent);
  EXPECT_EQ(classifyStatus(-1), HttpClassification::Permanent);
}

TEST(ClassifyStatusTest, Names) {
  EXPECT_STREQ(toString(HttpClassification::RateLimited), "rate_limited");
  EXPECT_STREQ(toString(HttpClassification::AuthExpired), "auth_expired");
}

TEST(ParseRetryAfterTest, DeltaSeconds) {
  EXPECT_EQ(parseRetryAfter("120", 0), milliseconds(120'000));
  EXPECT_EQ(parseRetryAfter(" 5 ", 0), milliseconds(5000));
  EXPECT_EQ(parseRetryAfter("0", 0), milliseconds(0));
}

TEST(ParseRetryAfterTest, CappedAtOneDay) {
  EXPECT_EQ(parseRetryAfter("86401", 0), milliseconds(86'400'000));
  EXPECT_EQ(parseRetryAfter("99999999999999999999999", 0), milliseconds(86'400'000));
}

TEST(ParseRetryAfterTest, HttpDate) {
  // Sun, 06 Nov 1994 08:49:37 GMT = 784111777.
  const std::int64_t date_ms = 784111777LL * 1000;
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", date_ms - 30'000),
            milliseconds(30'000));
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", date_ms + 1000), milliseconds(0));
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", date_ms - 3LL * 86'400'000),
            milliseconds(86'400'000));
}

TEST(ParseRetryAfterTest, GarbageIsZero) {
  for (const char* garbage : {"", "   ", "soon", "-5", "1.5", "+3", "Sun, 06 Nov 1994 08:49:37",
                              "Sun, 06 Foo 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                              "Sun, 32 Nov 1994 08:49:37 GMT"}) {
    EXPECT_EQ(parseRetryAfter(garbage, 0), milliseconds(0)) << garbage;
  }
}

TEST(DescribeTest, TruncatesAndFlattensBody) {
  HttpClientResponse response;
  response.status = 500;
  response.body = "line1\nline2" + std::string(1000, 'z');
  const std::string text = response.describe();
  EXPECT_EQ(text.rfind("HTTP 500: line1 line2", 0), 0u) << text;
  EXPECT_LE(text.size(), 320u);
  EXPECT_EQ(text.substr(text.size() - 3), "...");
  EXPECT_EQ(text.find('\n'), std::string::npos);
}

TEST(DescribeTest, DoesNotSplitUtf8) {
  HttpClientResponse response;
  response.status = 400;
  response.body = "a";
  for (int i = 0; i < 200; ++i) {
    response.body += "\xc3\xa9";  // é
  }
  const std::string text = response.describe();
  const std::string excerpt = text.substr(std::string("HTTP 400: ").size(),
                                          text.size() - std::string("HTTP 400: ").size() - 3);
  EXPECT_EQ(excerpt.size() % 2, 1u);  // "a" + whole two-byte characters
}

TEST(DescribeTest, EmptyBodyAndTransport) {
  HttpClientResponse ok;
  ok.status = 204;
  EXPECT_EQ(ok.describe(), "HTTP 204");
  HttpClientResponse failed;
  failed.transport_error = "Connection refused";
  EXPECT_EQ(failed.describe(), "transport: Connection refused");
}

}  // namespace
}  // namespace junction::sdk
