#pragma once

// A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) for destination tests, scripted per test
// and recording every request it gets:
//
//   sdk::testing::ScriptedHttpServer server;
//   server.when("POST", "/3.0/lists/abc/members")
//       .reply(429, R"({"detail":"slow"})", {{"Retry-After", "2"}})
//       .times(1);                                    // then the next matching rule answers
//   server.when("POST", "/3.0/lists/abc/members").reply(200, "{}");
//   ... point the plugin at server.baseUrl() ...
//   ASSERT_TRUE(server.waitForRequests(2, std::chrono::seconds(5)));
//   EXPECT_EQ(server.requests()[1].body, R"({"email_address":"a@b.c"})");
//
// Rules are tried in the order they were added; the first that matches the method and path and
// has uses left answers. A request no rule matches gets 404 with a JSON body naming it.
// Keep-alive is supported: every request records the id of the TCP connection it came on, so a
// test can check that a client reuses its connections.
//
// Test-only code: unlike the SDK proper it may throw (the constructor throws
// boost::system::system_error when it cannot listen).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "junction/sdk/http_server.h"

namespace junction::sdk::testing {

// One request as the server received it.
struct RecordedRequest {
  std::string method;  // "POST"
  std::string target;  // as sent: "/3.0/lists/abc/members?skip_merge_validation=true"
  std::string path;    // target without the query
  std::string query;   // without '?'; may be empty
  HttpHeaders headers;
  std::string body;
  std::uint64_t connection_id = 0;  // 1 for the first TCP connection accepted, 2 for the next...
  std::size_t index = 0;            // position in requests()
};

enum class PathMatch {
  Exact,   // the path (without the query) equals the pattern
  Prefix,  // the path starts with the pattern
  Regex,   // std::regex_match of the whole path against the pattern (ECMAScript)
};

class ScriptedHttpServer {
  struct Rule;

 public:
  // Builds one rule. Every call changes the rule in place (under the server's lock) and returns
  // the builder, so calls chain; the rule is live from `when()` on, answering 200 with an empty
  // body until `reply` says otherwise, so script rules before sending requests.
  // Thread-safe; valid as long as the server.
  class RuleBuilder {
   public:
    // The reply: status, body and extra headers (Content-Length is set by the server).
    RuleBuilder& reply(int status, std::string body = {},
                       std::initializer_list<std::pair<std::string, std::string>> headers = {});
    // Computes the reply from the request (runs on the server thread; must not block long).
    RuleBuilder& respond(std::function<HttpResponse(const RecordedRequest&)> responder);
    // Answer only `n` requests, then let later rules match (0 = unlimited, the default).
    RuleBuilder& times(std::size_t n);
    // Wait this long before answering (or before closing, with closeConnection).
    RuleBuilder& delay(std::chrono::milliseconds d);
    // Read the request, then reset the connection (RST) without answering.
    RuleBuilder& closeConnection();
    // Read the request, then write exactly `bytes` (no status line, headers or Content-Length
    // are added) and close the connection after them (FIN, not RST, so the client reads them
    // all): for vendors that answer garbage, e.g. rawReply("not http at all\r\n\r\n"), or a
    // broken HTTP response such as a Content-Length larger than the body that follows it.
    // With delay(), waits before writing. Like reply(), it replaces respond() and
    // closeConnection(); a later reply(), respond() or closeConnection() replaces it.
    RuleBuilder& rawReply(std::string bytes);
    // How many requests this rule has answered so far.
    std::size_t hits() const;

   private:
    friend class ScriptedHttpServer;
    RuleBuilder(ScriptedHttpServer& server, std::shared_ptr<Rule> rule)
        : server_(&server), rule_(std::move(rule)) {}
    ScriptedHttpServer* server_;
    std::shared_ptr<Rule> rule_;
  };

  // Listens on 127.0.0.1:0 and starts its I/O thread. Throws when it cannot listen.
  ScriptedHttpServer();
  // Calls stop().
  ~ScriptedHttpServer();
  ScriptedHttpServer(const ScriptedHttpServer&) = delete;
  ScriptedHttpServer& operator=(const ScriptedHttpServer&) = delete;

  // Adds a rule for `method` ("*" = any) and `path`. Thread-safe.
  RuleBuilder when(std::string method, std::string path, PathMatch match = PathMatch::Exact);

  // Forgets every rule (and their hit counts). Thread-safe.
  void clearRules();

  // A copy of every request received so far, in arrival order. Thread-safe.
  std::vector<RecordedRequest> requests() const;

  // Forgets the recorded requests (rules and connection ids are kept). Thread-safe.
  void clearRequests();

  // Blocks until at least `n` requests have been received (true) or `timeout` passes (false).
  // Thread-safe; do not call from a `respond` callback.
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;

  // How many TCP connections have been accepted so far. Thread-safe.
  std::uint64_t connectionCount() const;

  // "http://127.0.0.1:PORT", no trailing slash. Thread-safe; stays valid after stop().
  std::string baseUrl() const;
  std::uint16_t port() const noexcept { return port_; }

  // Stops accepting, resets every open connection (delayed replies are abandoned) and joins the
  // I/O thread. Idempotent. Not from the server's own thread (a `respond` callback).
  void stop();

 private:
  struct Action;
  struct Io;

  // Called on the I/O thread for each request: records it, picks the rule and returns what to do.
  Action handle(RecordedRequest request);

  mutable std::mutex mutex_;
  mutable std::condition_variable requests_changed_;
  std::vector<std::shared_ptr<Rule>> rules_;  // guarded by mutex_
  std::vector<RecordedRequest> requests_;     // guarded by mutex_
  std::uint16_t port_ = 0;
  std::unique_ptr<Io> io_;  // the io_context, acceptor and thread
  std::mutex stop_mutex_;   // serializes stop()
};

}  // namespace junction::sdk::testing
