#pragma once

// A fake webhook receiver: what an email platform's inbound endpoint does with the webhook
// destination's pushes, over real HTTP on 127.0.0.1.
//
// The contract it implements (the one plugins/webhook/README.md documents for receivers):
//   - `POST <path>` with `Content-Type: application/json` (else 404 / 405 / 415);
//   - `X-Junction-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//     when the receiver has a secret: a missing, malformed or wrong signature is answered 401,
//     a right one whose `t` is beyond the tolerance 400 (sdk::verifyWebhookSignature decides);
//   - the body is `{"batch":[<event>,...]}`, each event a JSON object with a string
//     `messageId`; anything else is answered 400 naming what is wrong. When the request says
//     `X-Junction-Batch-Size`, it must equal the number of events (400 otherwise);
//   - 200 `{"accepted":N,"duplicates":D}`, plus `"failed":[{"messageId","error","retry"}]` for
//     events it was told to reject (rejectEvent). Accepted events are stored by messageId; an
//     event arriving again is counted as a duplicate, not stored twice.
//
//   sdk::testing::FakeDestinationContext ctx;
//   FakeWebhookReceiver receiver(FakeWebhookReceiver::Options{
//       .secrets = {"whsec_1"},
//       // the sender signs with its context's clock (a ManualClock in unit tests)
//       .now_unix_seconds = [&ctx] { return ctx.clock().nowMs() / 1000; }});
//   receiver.failNext(1, 503, R"({"error":"busy"})", {{"Retry-After", "1"}});
//   ... point the webhook destination at receiver.url() ...
//   ASSERT_TRUE(receiver.waitForEvents(100, 5s));
//   EXPECT_EQ(receiver.duplicateCount(), 0u);
//
// Fast enough for benchmarks (~250k events/s in batches of hundreds on one I/O thread): the
// body is checked with sdk::json_scan in one pass, without a tree, and the signature is
// computed once over the body as received. Turn off `record_requests` and `keep_event_json`
// for long runs so memory stays flat.
//
// Thread-safety: every method may be called from any thread while requests arrive; requests
// are answered on the server's one I/O thread. Test-only code: the constructor throws when it
// cannot listen.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "junction/sdk/http_server.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "junction/sdk/webhook_signature.h"

namespace junction::tests::fakes {

// One event the receiver accepted.
struct WebhookEvent {
  std::string message_id;
  std::string json;            // the event's text exactly as it was in the batch (if kept)
  std::size_t deliveries = 1;  // accepted arrivals; more than 1 means duplicates
};

struct FakeWebhookOptions {
  // The receiving path; other paths get 404.
  std::string path = "/hook";
  // Empty: requests need no signature (a receiver without a secret). Otherwise a request is
  // accepted when its signature verifies under any of these (a receiver mid-rotation).
  std::vector<std::string> secrets;
  std::chrono::seconds tolerance = sdk::kDefaultWebhookTolerance;
  // The receiver's clock in Unix seconds; default the system clock. Tests whose sender uses a
  // manual clock pass that clock here.
  std::function<std::int64_t()> now_unix_seconds;
  // Keep every request for requests() (bodies included). Off: only counters.
  bool record_requests = true;
  // Keep each accepted event's text for events(). Off: message ids and counts only.
  bool keep_event_json = true;
};

class FakeWebhookReceiver {
 public:
  using Options = FakeWebhookOptions;

  // Listens on 127.0.0.1 (ephemeral port). Throws when it cannot.
  explicit FakeWebhookReceiver(Options options = {});
  // Stops the server first: no request is answered during destruction.
  ~FakeWebhookReceiver();
  FakeWebhookReceiver(const FakeWebhookReceiver&) = delete;
  FakeWebhookReceiver& operator=(const FakeWebhookReceiver&) = delete;

  // "http://127.0.0.1:PORT" + path: what the destination's `url` is set to.
  std::string url() const;
  std::string baseUrl() const;
  std::uint16_t port() const noexcept;

  // --- scripting ---
  // The next `n` requests are answered `status` with `body` and `headers`, before any check
  // and without storing their events (a receiver failing or overloaded). Adds to any pending.
  void failNext(std::size_t n, int status, std::string body = {},
                std::vector<std::pair<std::string, std::string>> headers = {});
  // The next arrival of `message_id` is refused in the 200 answer's `failed` list with `error`
  // and `retry`, and not stored (the other events of its batch are).
  void rejectEvent(std::string message_id, std::string error, bool retry);
  // Every answer (or reset, while down) waits this long first. 0 = none.
  void setDelay(std::chrono::milliseconds delay);
  // While down, every connection is reset (RST) once its request is read: no answer at all.
  void setDown(bool down);
  // Replaces the secrets (see Options::secrets).
  void setSecrets(std::vector<std::string> secrets);

  // --- what arrived ---
  // Requests as received (empty unless Options::record_requests), resets while down included.
  std::vector<sdk::testing::RecordedRequest> requests() const;
  // Requests answered, whatever the status (not those reset while down).
  std::size_t requestCount() const;
  // Requests answered with `status`.
  std::size_t answeredWith(int status) const;
  // Distinct events accepted (by messageId).
  std::size_t eventCount() const;
  // Accepted arrivals of an event already held.
  std::size_t duplicateCount() const;
  // Accepted events in order of first arrival.
  std::vector<WebhookEvent> events() const;
  std::optional<WebhookEvent> event(std::string_view message_id) const;
  // Blocks until at least `n` distinct events were accepted (true) or `timeout` passes.
  bool waitForEvents(std::size_t n, std::chrono::milliseconds timeout) const;
  // Forgets events, requests and counters (scripting is kept).
  void clear();

  // The answer to one request, as the server gives it (also called directly by tests, without
  // a socket). Updates the state like a received request; while down it changes nothing.
  sdk::HttpResponse answer(const sdk::testing::RecordedRequest& request);

  sdk::testing::ScriptedHttpServer& server() noexcept { return server_; }

 private:
  struct ScriptedFailure {
    std::size_t remaining = 0;
    sdk::HttpResponse response;
  };
  struct Rejection {
    std::string error;
    bool retry = false;
  };

  sdk::HttpResponse reply(int status, std::string body);
  std::int64_t now() const;

  const Options options_;
  std::atomic<bool> down_{false};
  sdk::testing::ScriptedHttpServer server_;
  sdk::testing::ScriptedHttpServer::RuleBuilder rule_;  // the one rule: every request

  mutable std::mutex mutex_;
  mutable std::condition_variable events_changed_;
  std::vector<std::string> secrets_;                       // guarded by mutex_
  std::deque<ScriptedFailure> failures_;                   // guarded by mutex_
  std::unordered_map<std::string, Rejection> rejections_;  // guarded by mutex_
  std::vector<WebhookEvent> events_;                       // guarded by mutex_
  std::unordered_map<std::string, std::size_t> index_;     // messageId -> events_; mutex_
  std::size_t duplicates_ = 0;                             // guarded by mutex_
  std::size_t requests_ = 0;                               // guarded by mutex_
  std::map<int, std::size_t> statuses_;                    // guarded by mutex_
};

}  // namespace junction::tests::fakes
