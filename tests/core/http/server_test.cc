// The HTTP server over real loopback sockets: keep-alive, body and header limits (413, 431),
// `Expect: 100-continue`, malformed requests (400), handler timeouts (503), idle timeouts,
// drain and max_connections. Raw sockets where the exact bytes matter, sdk::HttpClient (curl)
// where a real client's behaviour does.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/http/server.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/testing/fake_context.h"

#include "tests/support/eventually.h"

namespace junction::core::http {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

struct RawResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;

  // The value of header `name` (case-insensitive), or "".
  std::string header(std::string_view name) const {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      std::size_t start = pos + 2;
      std::size_t end = head.find("\r\n", start);
      std::string_view line(head.data() + start,
                            (end == std::string::npos ? head.size() : end) - start);
      auto colon = line.find(':');
      if (colon == name.size() && ::strncasecmp(line.data(), name.data(), name.size()) == 0) {
        auto value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') {
          value.remove_prefix(1);
        }
        return std::string(value);
      }
      pos = end;
    }
    return "";
  }
};

// A blocking loopback client that sends exact bytes and reads responses with a deadline.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      connect_errno_ = errno;
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawClient() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int connectErrno() const { return connect_errno_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One response (head, then a Content-Length body), or nullopt on EOF or timeout.
  std::optional<RawResponse> readResponse(std::chrono::milliseconds timeout = 3s) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto end_of_head = buffer_.find("\r\n\r\n");
      if (end_of_head != std::string::npos) {
        RawResponse r;
        r.head = buffer_.substr(0, end_of_head);
        if (r.head.size() >= 12 && r.head.starts_with("HTTP/1.")) {
          r.status = std::stoi(r.head.substr(9, 3));
        }
        std::string length = r.header("Content-Length");
        std::size_t body_size = length.empty() ? 0 : std::stoul(length);
        if (buffer_.size() >= end_of_head + 4 + body_size) {
          r.body = buffer_.substr(end_of_head + 4, body_size);
          buffer_.erase(0, end_of_head + 4 + body_size);
          return r;
        }
      }
      if (!readSome(deadline)) {
        return std::nullopt;
      }
    }
  }

  // True when the peer closes (EOF or reset) before `timeout`; bytes received meanwhile are kept.
  bool closedWithin(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (readSome(deadline)) {
    }
    return closed_;
  }

  const std::string& pending() const { return buffer_; }

 private:
  // Appends what arrives before `deadline`. False on EOF, error or timeout.
  bool readSome(Clock::time_point deadline) {
    if (fd_ < 0 || closed_) {
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  int connect_errno_ = 0;
  bool closed_ = false;
  std::string buffer_;
};

std::string get(std::string_view path, std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
         std::string(extra_headers) + "\r\n";
}

std::string post(std::string_view path, std::string_view body) {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

using testing::eventually;

// A responder a handler parks, for the test to answer (or drop) later.
class Parked {
 public:
  void park(sdk::HttpResponder r) {
    std::lock_guard lock(mutex_);
    responders_.push_back(std::make_unique<sdk::HttpResponder>(std::move(r)));
    count_.fetch_add(1);
  }
  std::size_t count() const { return count_.load(); }
  void answerAll(const sdk::HttpResponse& response) {
    std::lock_guard lock(mutex_);
    for (auto& r : responders_) {
      (*r)(response);
    }
  }
  void clear() {
    std::lock_guard lock(mutex_);
    responders_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<sdk::HttpResponder>> responders_;
  std::atomic<std::size_t> count_{0};
};

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() {
    (void)router_.add("GET", "/healthz", [](sdk::HttpRequest&&, sdk::HttpResponder respond) {
      respond(sdk::HttpResponse::json(200, R"({"status":"ok"})"));
    });
    (void)router_.add("POST", "/echo", [](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
      respond(sdk::HttpResponse::text(200, std::move(req.body)));
    });
    (void)router_.add(
        "POST", "/tiny",
        [](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
          respond(sdk::HttpResponse::text(200, std::move(req.body)));
        },
        sdk::RouteOptions{.max_body_bytes = 8});
    (void)router_.add("GET", "/slow", [this](sdk::HttpRequest&&, sdk::HttpResponder respond) {
      parked_.park(std::move(respond));
    });
  }

  void start(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<Server>(io_, router_, options, log_, metrics_);
    auto status = server_->listen();
    ASSERT_TRUE(status.ok()) << status.message();
    ASSERT_NE(server_->port(), 0);
    guard_.emplace(io_.get_executor());
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
  }

  void TearDown() override {
    parked_.clear();
    if (server_) {
      server_->closeAll();
    }
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) {
      t.join();
    }
  }

  std::uint16_t port() const { return server_->port(); }

  boost::asio::io_context io_;
  Router router_;
  sdk::testing::RecordingLogger log_;
  sdk::testing::FakeMetrics metrics_;
  Parked parked_;
  std::unique_ptr<Server> server_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::vector<std::thread> threads_;
};

TEST_F(ServerTest, AnswersAGet) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/healthz")));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"status":"ok"})");
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  EXPECT_EQ(r->header("Server"), "junction");
  EXPECT_EQ(metrics_.counterValue("junction_http_requests_total"), 1u);
  EXPECT_EQ(metrics_.histogramCount("junction_http_request_duration_seconds"), 1u);
}

TEST_F(ServerTest, TimesEachStageOfARequest) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  // The first answer's write is timed once it completes; the server reads the second request
  // only after that.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.send(get("/healthz")));
    ASSERT_TRUE(c.readResponse());
  }
  auto count = [&](const char* stage) {
    return metrics_.histogramCount("junction_http_request_stage_seconds", {{"stage", stage}});
  };
  EXPECT_EQ(count("receive"), 2u);
  EXPECT_EQ(count("handle"), 2u);
  EXPECT_EQ(count("answer"), 2u);
  EXPECT_GE(count("write"), 1u);
  EXPECT_LE(count("write"), 2u);
}

TEST_F(ServerTest, UnknownPathIs404AndQueryIsNotPartOfThePath) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/nope")));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  ASSERT_TRUE(c.send(get("/healthz?verbose=1")));
  r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // Answers are counted by route pattern and status.
  EXPECT_EQ(metrics_.counterValue("junction_http_responses_total",
                                  {{"route", "unmatched"}, {"status", "404"}}),
            1u);
  EXPECT_EQ(metrics_.counterValue("junction_http_responses_total",
                                  {{"route", "/healthz"}, {"status", "200"}}),
            1u);
}

TEST_F(ServerTest, CountsAnswersByRoutePatternAndStatus) {
  start();
  RawClient c(port());
  for (const char* body : {"ok", "also ok", "far too long a body"}) {
    ASSERT_TRUE(c.send(post("/tiny", body)));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    if (r->status == 413) {
      break;  // the server closes the connection after it
    }
  }
  EXPECT_EQ(metrics_.counterValue("junction_http_responses_total",
                                  {{"route", "/tiny"}, {"status", "200"}}),
            2u);
  EXPECT_EQ(metrics_.counterValue("junction_http_responses_total",
                                  {{"route", "/tiny"}, {"status", "413"}}),
            1u);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  RawClient c(port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(post("/echo", "request " + std::to_string(i))));
    auto r = c.readResponse();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "request " + std::to_string(i));
    EXPECT_EQ(server_->connections(), 1u);
  }
  // Pipelined: two requests in one write, two answers in order.
  ASSERT_TRUE(c.send(post("/echo", "first") + post("/echo", "second")));
  auto first = c.readResponse();
  auto second = c.readResponse();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, "first");
  EXPECT_EQ(second->body, "second");
  // `Connection: close` is honoured.
  ASSERT_TRUE(c.send(get("/healthz", "Connection: close\r\n")));
  auto last = c.readResponse();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->status, 200);
  EXPECT_TRUE(c.closedWithin(2s));
}

// Large bodies are read with room made for them first (a few large reads, not hundreds of
// 512-byte ones), and the room is given back: bodies below, at and above the read-ahead size
// arrive intact, and a request pipelined behind a large one (already in the buffer when it is
// shrunk) is served too.
TEST_F(ServerTest, LargeBodiesAndWhatFollowsThemArriveIntact) {
  start();
  RawClient c(port());
  for (std::size_t size : {16u * 1024 + 1, 30u * 1024, 256u * 1024, 300u * 1024 + 7}) {
    std::string body(size, 'a');
    for (std::size_t i = 0; i < size; ++i) {
      body[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
    }
    ASSERT_TRUE(c.send(post("/echo", body) + post("/echo", "after " + std::to_string(size))));
    auto big = c.readResponse(5s);
    auto small = c.readResponse(5s);
    ASSERT_TRUE(big && small) << size;
    EXPECT_EQ(big->status, 200);
    EXPECT_TRUE(big->body == body) << size;
    EXPECT_EQ(small->body, "after " + std::to_string(size));
  }
}

TEST_F(ServerTest, BodyOverTheLimitWithContentLengthIs413) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  start(options);
  RawClient c(port());
  // Only the head: the server must refuse from the Content-Length, without reading a body.
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_THAT(r->body, HasSubstr("1024"));
  EXPECT_TRUE(c.closedWithin(2s));

  // Exactly at the limit is fine.
  RawClient ok(port());
  ASSERT_TRUE(ok.send(post("/echo", std::string(1024, 'x'))));
  auto at_limit = ok.readResponse();
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(at_limit->status, 200);
  EXPECT_EQ(at_limit->body.size(), 1024u);
}

TEST_F(ServerTest, BodyOverTheDefaultParserLimitButUnderTheServerLimitIsAccepted) {
  // Beast's own default (1 MiB) must not apply: the server's max_body_bytes does.
  ServerOptions options;
  options.max_body_bytes = 3 * 1024 * 1024;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send(post("/echo", std::string(2 * 1024 * 1024, 'y'))));
  auto r = c.readResponse(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), 2u * 1024 * 1024);
}

TEST_F(ServerTest, ClientSendingAWholeOversizedBodyStillReads413) {
  // A client that does not wait (no Expect) has sent much of the body when the 413 is written:
  // the server must not reset the connection before the client could read the answer.
  ServerOptions options;
  options.max_body_bytes = 1024;
  start(options);
  sdk::HttpClient client;
  for (int i = 0; i < 5; ++i) {
    sdk::HttpClientRequest request;
    request.method = "POST";
    request.url = "http://127.0.0.1:" + std::to_string(port()) + "/echo";
    request.body = std::string(512 * 1024, 'b');
    request.timeout = 5s;
    auto response = client.send(request);
    EXPECT_EQ(response.status, 413) << i << ": " << response.describe();
  }
  for (int i = 0; i < 5; ++i) {
    RawClient c(port());
    (void)c.send(post("/echo", std::string(256 * 1024, 'r')));  // may fail once refused
    auto r = c.readResponse();
    ASSERT_TRUE(r) << i << ": connection reset before the answer could be read";
    EXPECT_EQ(r->status, 413);
  }
}

TEST_F(ServerTest, ChunkedBodyOverTheLimitIs413) {
  ServerOptions options;
  options.max_body_bytes = 64;
  start(options);
  {
    RawClient c(port());
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello world");
  }
  RawClient c(port());
  std::string chunk(40, 'z');
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "28\r\n" + chunk + "\r\n28\r\n" + chunk + "\r\n0\r\n\r\n"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(c.closedWithin(2s));
}

TEST_F(ServerTest, RouteLimitLowerThanTheServerLimitApplies) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send(post("/tiny", "12345678")));
  auto fits = c.readResponse();
  ASSERT_TRUE(fits);
  EXPECT_EQ(fits->status, 200);
  ASSERT_TRUE(c.send(post("/tiny", "123456789")));
  auto too_big = c.readResponse();
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 413);
  EXPECT_THAT(too_big->body, HasSubstr("8 bytes"));

  // The same size elsewhere is fine, and chunked bodies obey the route's limit too.
  RawClient other(port());
  ASSERT_TRUE(other.send(post("/echo", "123456789")));
  auto echo = other.readResponse();
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->status, 200);
  RawClient chunked(port());
  ASSERT_TRUE(chunked.send("POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"));
  auto chunked_too_big = chunked.readResponse();
  ASSERT_TRUE(chunked_too_big);
  EXPECT_EQ(chunked_too_big->status, 413);
}

TEST_F(ServerTest, ExpectContinueGets100ThenTheAnswer) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n"));
  auto interim = c.readResponse();
  ASSERT_TRUE(interim) << "no 100 Continue; got: " << c.pending();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send("hello"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");

  // Too large: refused at once, without asking for the body.
  RawClient big(port());
  ASSERT_TRUE(big.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                       "Expect: 100-continue\r\n\r\n"));
  auto refused = big.readResponse();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 413);
}

TEST_F(ServerTest, CurlWithExpectContinueDoesNotWaitForItsTimeout) {
  start();
  sdk::HttpClient client;
  sdk::HttpClientRequest request;
  request.method = "POST";
  request.url = "http://127.0.0.1:" + std::to_string(port()) + "/echo";
  request.headers.set("Expect", "100-continue");
  request.body = std::string(4096, 'c');
  request.timeout = 5s;
  auto started = Clock::now();
  auto response = client.send(request);
  auto elapsed = Clock::now() - started;
  ASSERT_EQ(response.status, 200) << response.describe();
  EXPECT_EQ(response.body, request.body);
  // curl gives up waiting for "100 Continue" after 1 s and sends the body anyway.
  EXPECT_LT(elapsed, 900ms);
}

TEST_F(ServerTest, MalformedRequestIs400) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("THIS IS NOT HTTP\r\n\r\n"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  EXPECT_TRUE(c.closedWithin(2s));

  RawClient bad_length(port());
  ASSERT_TRUE(bad_length.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"));
  auto r2 = bad_length.readResponse();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 400);
}

TEST_F(ServerTest, HandlerThatNeverAnswersGets503AfterRequestTimeout) {
  ServerOptions options;
  options.request_timeout = 200ms;
  start(options);
  RawClient c(port());
  auto started = Clock::now();
  ASSERT_TRUE(c.send(get("/slow")));
  auto r = c.readResponse(3s);
  auto elapsed = Clock::now() - started;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_GE(elapsed, 180ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_EQ(parked_.count(), 1u);
  // A late answer is dropped quietly.
  parked_.answerAll(sdk::HttpResponse::text(200, "too late"));
  EXPECT_TRUE(c.closedWithin(2s));
  EXPECT_THAT(c.pending(), Not(HasSubstr("too late")));

  // The server still serves.
  RawClient next(port());
  ASSERT_TRUE(next.send(get("/healthz")));
  auto ok = next.readResponse();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServerTest, HandlerMayAnswerFromAnotherThread) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/slow")));
  ASSERT_TRUE(eventually([&] { return parked_.count() == 1; }));
  std::thread([this] { parked_.answerAll(sdk::HttpResponse::text(201, "later")); }).join();
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "later");
}

// The daemon runs one io_context per I/O thread: connections are spread over them, each stays
// on its thread, and answers given from other threads (the queue's writer) reach them.
TEST(ServerContextsTest, ConnectionsAreSpreadOverTheContextsAndStayOnTheirThread) {
  Router router;
  std::mutex mutex;
  std::vector<std::thread::id> seen;  // the thread of each request, in order
  std::vector<std::unique_ptr<sdk::HttpResponder>> parked;
  (void)router.add("GET", "/where", [&](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    std::lock_guard lock(mutex);
    seen.push_back(std::this_thread::get_id());
    parked.push_back(std::make_unique<sdk::HttpResponder>(std::move(respond)));
  });
  sdk::testing::RecordingLogger log;
  sdk::testing::FakeMetrics metrics;
  boost::asio::io_context first(1);
  boost::asio::io_context second(1);
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  Server server({&first, &second}, router, options, log, metrics);
  ASSERT_TRUE(server.listen().ok());
  auto guard_first = boost::asio::make_work_guard(first);
  auto guard_second = boost::asio::make_work_guard(second);
  std::thread run_first([&] { first.run(); });
  std::thread run_second([&] { second.run(); });

  constexpr int kConnections = 4;
  constexpr int kRounds = 3;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int c = 0; c < kConnections; ++c) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    ASSERT_TRUE(clients.back()->connected());
  }
  std::vector<std::vector<std::thread::id>> threads_of(kConnections);
  for (int round = 0; round < kRounds; ++round) {
    for (int c = 0; c < kConnections; ++c) {
      ASSERT_TRUE(clients[c]->send(get("/where")));
      ASSERT_TRUE(eventually([&] {
        std::lock_guard lock(mutex);
        return parked.size() == 1;
      }));
      std::unique_ptr<sdk::HttpResponder> respond;
      {
        std::lock_guard lock(mutex);
        threads_of[c].push_back(seen.back());
        respond = std::move(parked.back());
        parked.clear();
      }
      // Answered from a thread of neither context, as the queue's writer answers.
      std::thread([&] { (*respond)(sdk::HttpResponse::text(200, "here")); }).join();
      auto r = clients[c]->readResponse();
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(r->body, "here");
    }
  }
  std::vector<std::thread::id> distinct;
  for (const auto& ids : threads_of) {
    for (const auto& id : ids) {
      EXPECT_EQ(id, ids.front()) << "a connection moved between threads";
    }
    if (std::find(distinct.begin(), distinct.end(), ids.front()) == distinct.end()) {
      distinct.push_back(ids.front());
    }
  }
  EXPECT_EQ(distinct.size(), 2u) << "connections were not spread over both contexts";

  server.closeAll();
  guard_first.reset();
  guard_second.reset();
  first.stop();
  second.stop();
  run_first.join();
  run_second.join();
}

TEST_F(ServerTest, HeaderTooLargeIs431) {
  ServerOptions options;
  options.max_header_bytes = 1024;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/healthz", "X-Big: " + std::string(4096, 'h') + "\r\n")));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_TRUE(c.closedWithin(2s));
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions options;
  options.idle_timeout = 200ms;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/healthz")));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto idle_since = Clock::now();
  EXPECT_TRUE(c.closedWithin(3s));
  EXPECT_GE(Clock::now() - idle_since, 150ms);
  EXPECT_TRUE(eventually([&] { return server_->connections() == 0; }));
}

TEST_F(ServerTest, DrainClosesIdleConnectionsAndLetsBusyOnesFinish) {
  start();
  RawClient idle(port());
  ASSERT_TRUE(idle.send(get("/healthz")));
  ASSERT_TRUE(idle.readResponse());
  RawClient busy(port());
  ASSERT_TRUE(busy.send(get("/slow")));
  ASSERT_TRUE(eventually([&] { return parked_.count() == 1; }));
  ASSERT_EQ(server_->connections(), 2u);

  server_->drain();
  EXPECT_TRUE(idle.closedWithin(2s)) << "the idle connection is closed at once";
  EXPECT_FALSE(busy.closedWithin(100ms)) << "the busy one waits for its answer";

  parked_.answerAll(sdk::HttpResponse::text(200, "finished"));
  auto r = busy.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "finished");
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(busy.closedWithin(2s));
  EXPECT_TRUE(eventually([&] { return server_->connections() == 0; }));

  // No new connections once draining.
  RawClient late(port());
  if (late.connected()) {
    EXPECT_TRUE(late.closedWithin(2s));
  } else {
    EXPECT_EQ(late.connectErrno(), ECONNREFUSED);
  }
}

TEST_F(ServerTest, MaxConnectionsRefusesTheExtraConnection) {
  ServerOptions options;
  options.max_connections = 1;
  options.health_reserve = 0;
  start(options);
  auto first = std::make_unique<RawClient>(port());
  ASSERT_TRUE(first->send(get("/healthz")));
  ASSERT_TRUE(first->readResponse());

  RawClient extra(port());
  ASSERT_TRUE(extra.connected()) << "the kernel accepts; the server then closes it";
  (void)extra.send(get("/healthz"));
  EXPECT_TRUE(extra.closedWithin(2s));
  EXPECT_EQ(extra.pending(), "") << "no answer on a refused connection";
  EXPECT_EQ(metrics_.counterValue("junction_http_rejected_connections_total"), 1u);

  // The first still works; once it is gone a new one is served.
  ASSERT_TRUE(first->send(get("/healthz")));
  auto again = first->readResponse();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  first.reset();
  ASSERT_TRUE(eventually([&] { return server_->connections() == 0; }));
  RawClient next(port());
  ASSERT_TRUE(next.send(get("/healthz")));
  auto r = next.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServerTest, HealthChecksGetThroughWhenOneClientHoldsEverySlot) {
  ServerOptions options;
  options.max_connections = 3;
  options.health_reserve = 1;
  options.max_connections_per_client = 10;  // every test connection is from 127.0.0.1
  start(options);
  // One client takes every ordinary slot and keeps them.
  std::vector<std::unique_ptr<RawClient>> hog;
  for (int i = 0; i < 3; ++i) {
    hog.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(hog.back()->send(get("/healthz")));
    ASSERT_TRUE(hog.back()->readResponse());
  }
  // The orchestrator's probe still gets its answer, on the reserve...
  auto probe = std::make_unique<RawClient>(port());
  ASSERT_TRUE(probe->send(get("/healthz")));
  auto healthy = probe->readResponse();
  ASSERT_TRUE(healthy);
  EXPECT_EQ(healthy->status, 200);
  ASSERT_TRUE(probe->send(get("/readyz")));
  auto ready = probe->readResponse();
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->status, 503) << "refused as a reserve connection";
  probe.reset();
  ASSERT_TRUE(eventually([&] { return server_->connections() == 3; }));
  // ... which serves nothing else: 503 with Retry-After, then closed.
  RawClient sneaky(port());
  ASSERT_TRUE(sneaky.send(get("/other")));
  auto refused = sneaky.readResponse();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->header("Retry-After"), "1");
  EXPECT_THAT(refused->body, HasSubstr("may only ask GET /healthz and /readyz"));
  EXPECT_TRUE(sneaky.closedWithin(2s));
}

TEST_F(ServerTest, OneClientCannotHoldMoreThanItsShare) {
  ServerOptions options;
  options.max_connections = 4;  // per client: half, 2
  start(options);
  RawClient a(port());
  auto b = std::make_unique<RawClient>(port());
  ASSERT_TRUE(a.send(get("/healthz")) && a.readResponse());
  ASSERT_TRUE(b->send(get("/healthz")) && b->readResponse());
  RawClient third(port());
  (void)third.send(get("/healthz"));
  EXPECT_TRUE(third.closedWithin(2s));
  EXPECT_EQ(third.pending(), "");
  EXPECT_EQ(metrics_.counterValue("junction_http_rejected_client_connections_total"), 1u);
  // Once one of its connections is gone, the client may open another.
  b.reset();
  ASSERT_TRUE(eventually([&] { return server_->connections() == 1; }));
  RawClient fourth(port());
  ASSERT_TRUE(fourth.send(get("/healthz")));
  auto r = fourth.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace junction::core::http
