#pragma once

// What every fake vendor server needs around its own contract: a loopback ScriptedHttpServer with
// one rule that hands every request to the fake's handler, the record of what was received, and
// fault injection (scripted answers for the next requests, a delay, an outage). A fake owns one
// as its last member, so that the server stops before the state its handler uses is destroyed.
//
//   class FakeVendor {
//    public:
//     FakeVendor() : server_([this](const RecordedRequest& r) { return handle(r); }) {}
//    private:
//     sdk::HttpResponse handle(const sdk::testing::RecordedRequest& request);
//     FakeVendorServer server_;  // last
//   };
//
// Thread-safety: every method may be called from any thread while requests are served. The
// handler runs on the server's I/O thread.

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "junction/sdk/http_server.h"
#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::tests::fakes {

class FakeVendorServer {
 public:
  using Handler = std::function<sdk::HttpResponse(const sdk::testing::RecordedRequest&)>;

  // Listens on 127.0.0.1, ephemeral port. Throws when it cannot listen.
  explicit FakeVendorServer(Handler handler);
  ~FakeVendorServer();
  FakeVendorServer(const FakeVendorServer&) = delete;
  FakeVendorServer& operator=(const FakeVendorServer&) = delete;

  std::string baseUrl() const;  // "http://127.0.0.1:PORT"

  // The next `n` requests whose path starts with `path_prefix` get this answer instead of the
  // handler's (before auth and validation: 429 with Retry-After, 5xx, garbage bodies...).
  // Queued rules apply in the order added.
  void failNext(std::size_t n, int status, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string path_prefix = "");
  // Answers every request this much later (0 = at once).
  void setDelay(std::chrono::milliseconds delay);
  // While down, every connection is reset after its request is read (a vendor outage); the
  // handler does not see those requests.
  void setDown(bool down);

  std::vector<sdk::testing::RecordedRequest> requests() const;
  std::size_t requestCount() const;
  bool waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const;
  void clearRequests();

  // Stops serving; called by the destructor. Idempotent.
  void stop();

 private:
  struct Failure {
    std::size_t remaining = 0;
    int status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string path_prefix;
  };

  sdk::HttpResponse dispatch(const sdk::testing::RecordedRequest& request);

  Handler handler_;
  std::mutex mutex_;
  std::deque<Failure> failures_;  // guarded by mutex_

  std::mutex rule_mutex_;
  std::chrono::milliseconds delay_{0};  // guarded by rule_mutex_
  bool down_ = false;                   // guarded by rule_mutex_
  std::optional<sdk::testing::ScriptedHttpServer::RuleBuilder> rule_;  // guarded by rule_mutex_

  sdk::testing::ScriptedHttpServer server_;  // last: stopped first
};

}  // namespace junction::tests::fakes
