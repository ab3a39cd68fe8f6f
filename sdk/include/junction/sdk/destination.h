#pragma once

// Destination plugins: where events go.
//
// A complete small destination — it POSTs each event to a URL and reports one outcome per
// event. Build it with find_package(Junction) and junction_add_plugin() (see sdk/README.md).
//
//   #include <junction/sdk/destination.h>
//   #include <junction/sdk/http_client.h>
//   #include <junction/sdk/plugin.h>
//
//   namespace sdk = junction::sdk;
//
//   struct Config {
//     std::string url;
//     std::string token;
//   };
//
//   class PostDestination final : public sdk::Destination {
//    public:
//     PostDestination(Config config, sdk::DestinationContext& ctx)
//         : config_(std::move(config)), ctx_(ctx) {}
//
//     std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
//       std::vector<sdk::Outcome> outcomes;
//       for (const auto& event : batch) {
//         sdk::HttpClientRequest req{.method = "POST", .url = config_.url,
//                                    .body = std::string(event.json())};
//         req.headers.set("Content-Type", "application/json");
//         req.headers.set("Authorization", "Bearer " + config_.token);
//         outcomes.push_back(sdk::Outcome::fromResponse(ctx_.http().send(req)));
//       }
//       return outcomes;
//     }
//
//    private:
//     Config config_;
//     sdk::DestinationContext& ctx_;
//   };
//
//   const sdk::OptionTable<Config>& options() {
//     static const sdk::OptionTable<Config> table{
//         sdk::option("url", &Config::url, "Where events are POSTed").required(),
//         sdk::option("token", &Config::token, "Bearer token").required().secret(),
//     };
//     return table;
//   }
//
//   JUNCTION_DESTINATION_PLUGIN(PostDestination, Config, options(),
//                               {.name = "post", .version = "1.0.0",
//                                .summary = "POSTs each event to a URL"})

#include <chrono>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "junction/sdk/context.h"
#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::sdk {

struct HttpClientResponse;

// What happened to one event.
//   Delivered: the vendor has it; the event is done for this destination.
//   Retry:     a transient failure (5xx, 429, timeout, connection refused); deliver again later,
//              not before `retry_after` when it is non-zero (e.g. from Retry-After).
//   Failed:    a permanent failure (a 4xx other than 408/429, a mapping error); the event goes
//              to the dead-letter queue with `reason`, and no retry is made.
struct Outcome {
  enum class Kind { Delivered, Retry, Failed };

  Kind kind = Kind::Delivered;
  std::chrono::milliseconds retry_after{0};
  std::string reason;  // for Retry/Failed: what the vendor said (status, error body excerpt)

  static Outcome delivered() { return {}; }
  static Outcome retry(std::string reason, std::chrono::milliseconds after = {}) {
    return {Kind::Retry, after, std::move(reason)};
  }
  static Outcome failed(std::string reason) { return {Kind::Failed, {}, std::move(reason)}; }
  // Classifies an HTTP response (see HttpClientResponse::classification).
  static Outcome fromResponse(const HttpClientResponse& response);

  bool isDelivered() const noexcept { return kind == Kind::Delivered; }
};

const char* toString(Outcome::Kind kind) noexcept;

// Whom an erasure request (GDPR/CCPA delete) is about. Any of the fields may be empty.
struct Person {
  std::string user_id;
  std::string anonymous_id;
  std::string email;
};

// What the daemon counted as delivered to one destination: events finished with a Delivered
// outcome, each counted once when the destination's committed cursor passed it (so the count
// survives a crash, and redeliveries after a crash are not counted twice). Replayed dead
// letters that were delivered count too.
struct DeliveredCount {
  std::uint64_t events = 0;
};

// A destination's reconciliation report: `matches` is false when it holds fewer (or more)
// events than the daemon delivered; `report` is a human-readable account, one line per figure.
struct Verification {
  bool matches = false;
  std::string report;
};

// What a destination sees of the daemon: the PluginContext, plus a way to tell the engine that
// the vendor limits the whole account.
class DestinationContext : public PluginContext {
 public:
  // The vendor limits the whole account, not one person: a 429, or rate-limit headers running
  // low (HubSpot's X-HubSpot-RateLimit-Remaining). Retrying other people's events into the same
  // limit would only spend it, so the engine slows the destination as a whole:
  //   - no new `deliver` call starts before `pause` has passed (0 = no pause, only slow down);
  //   - the rate of `deliver` calls is halved (from what the destination has been doing), and
  //     grows back by a quarter each second in which no call throttled, until it is unlimited
  //     again (or back at the destination's configured `rate_limit`).
  // Calls already running are not interrupted. The events of the calling `deliver` still need
  // their own outcomes (Outcome::retry with the same `retry_after` for those not delivered).
  // Thread-safe; meant to be called from inside `deliver`. Counted per destination
  // (junction_destination_throttled_total) and logged.
  virtual void throttle(std::chrono::milliseconds pause) noexcept = 0;
};

// A destination instance. Created by its plugin with a checked config and its context; the
// context outlives the instance.
//
// Exceptions: the methods below are called by the daemon inside a barrier. An exception that
// escapes one is caught, logged and counted (junction_plugin_faults_total); for `deliver` the
// whole batch is then retried. Plugins should still report failures as outcomes.
class Destination {
 public:
  virtual ~Destination() = default;

  // Called once, before the first `deliver`, on a delivery thread. May authenticate or check
  // the vendor. An error is logged and retried by the daemon with backoff; events wait.
  virtual Status start() { return {}; }

  // Delivers `batch` (1..batch.max_events events) and returns exactly one outcome per event, in
  // the same order. With the default `ordering: person`, a batch holds at most one event per
  // person, each person's events come in the order received across calls, and concurrent calls
  // have different people; with `ordering: none` (Ordering::None) any events may come together.
  // Called on a delivery thread; up to the destination's `concurrency` calls may run at once.
  // May block (network I/O); must return.
  virtual std::vector<Outcome> deliver(std::span<const Event> batch) = 0;

  // Called once after the last `deliver` returned.
  virtual void stop() {}

  // Erasure at the vendor (GDPR/CCPA delete). Plugins that can, override both. A Delivered
  // outcome may carry a `reason` as a note, which the regulation's progress and the audit log
  // keep: a vendor that erases asynchronously names its operation id there.
  virtual bool supportsErasure() const { return false; }
  virtual Outcome erase(const Person& /*person*/) {
    return Outcome::failed("this destination does not support erasure");
  }

  // Reconciliation (`junction warehouse verify`): a destination that stores what it receives
  // compares its own records with what the daemon counted as delivered, and reports. Called
  // outside the daemon, after `start()`, never concurrently with `deliver`.
  virtual bool supportsVerify() const { return false; }
  virtual Result<Verification> verify(const DeliveredCount& /*daemon*/) {
    return makeError(ErrorCode::InvalidArgument, "this destination cannot be verified");
  }
};

}  // namespace junction::sdk
