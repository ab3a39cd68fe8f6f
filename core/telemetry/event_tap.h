#pragma once

// The live event debugger's tap: events as they arrive and each destination's decision about
// them (delivered, filtered, blocked by consent, suppressed, retried or dead-lettered with the
// vendor's reason), fanned out to subscribers (GET /admin/debug/events, `junction tail`, the
// dashboard) that each keep a bounded backlog.
//
// Free when nobody watches: every publishing site first checks active(), one relaxed atomic
// load, and builds nothing otherwise. With a subscriber, each event and decision is matched
// against the subscribers' filters (header fields only), and a record is built only when a
// matching subscriber has room in its rate budget (records per second, what a person can read;
// the rest are counted and reported as not shown). Filters apply before the budget: a view of
// one person sees all of that person's events however busy the daemon is.
//
// Masking: an event's body is shown with the values of secret-looking keys (password, secret,
// token, api key, authorization, write key, card number, ssn, at any depth) and of the PII
// paths configured on destinations (`hash:` and `drop:`) replaced by "***". The person field is
// masked too when userId/anonymousId are among those paths.
//
// Thread-safe.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/event.h"

namespace junction::core::telemetry {

// What a subscriber wants; an empty field matches everything. `destination` keeps the
// decisions of that destination and the arrivals (which precede every decision).
struct TapFilter {
  std::string source;
  std::string destination;
  std::string event;   // the event name (track's `event`, page's `name`) or its type
  std::string person;  // userId or anonymousId
};

class EventTap {
 public:
  // `masked_paths`: dotted JSON paths ("traits.email") shown as "***".
  explicit EventTap(std::vector<std::string> masked_paths = {});
  ~EventTap();
  EventTap(const EventTap&) = delete;
  EventTap& operator=(const EventTap&) = delete;

  // More paths to mask (a reload added destinations that hash or drop them). Paths are only
  // ever added: a record never shows what an earlier configuration masked.
  void addMaskedPaths(const std::vector<std::string>& paths);

  bool active() const noexcept { return subscribers_->load(std::memory_order_relaxed) != 0; }

  // Whether some subscriber wants this record (its filter matches and its budget has room, which
  // this takes); for a caller that must copy an event now to publish it later.
  bool wants(const sdk::Event& event, std::string_view destination = {});
  // An event accepted durably from `source` ("received"), or dropped at ingest ("suppressed").
  // `admitted`: wants() already said yes (the budget is not asked again).
  void arrived(const sdk::Event& event, std::string_view kind, bool admitted = false);
  // A destination's decision: "delivered", "filtered", "consent_blocked", "retry",
  // "dead_lettered"; `reason` as the core or the vendor gave it.
  void decided(const sdk::Event& event, std::string_view destination, std::string_view kind,
               std::string_view reason = {});

  // One subscriber: take() hands over what arrived since the last call as server-sent-event
  // text ("data: {json}\n\n" per record). At most `capacity` records wait; older ones are
  // dropped and the next take() starts with a record saying how many.
  class Subscription {
   public:
    struct Shared;  // the tap's list of subscriptions (event_tap.cc)
    std::string take();
    const TapFilter& filter() const noexcept { return filter_; }

   private:
    friend class EventTap;
    Subscription(TapFilter filter, std::size_t capacity, double per_second);
    void push(const std::string& line);
    // Takes one record from the budget (under the tap's lock); false: over it, counted.
    bool admit(std::chrono::steady_clock::time_point now);

    TapFilter filter_;
    std::size_t capacity_;
    std::mutex mutex_;
    std::deque<std::string> lines_;
    std::uint64_t dropped_ = 0;       // fell out of the backlog (guarded by mutex_)
    std::atomic<std::uint64_t> over_budget_{0};
    const double per_second_;
    double tokens_;                                  // guarded by the tap's lock
    std::chrono::steady_clock::time_point refilled_;  // guarded by the tap's lock
  };
  // `per_second`: the subscriber's budget (burst: 2 s of it).
  std::shared_ptr<Subscription> subscribe(TapFilter filter, std::size_t capacity = 2000,
                                          double per_second = 1000);

  // The body as the debugger shows it (masked); public for tests.
  std::string maskedBody(const sdk::Event& event) const;

 private:
  struct Record;
  void publish(const Record& record, bool admitted);
  bool maskPerson() const {
    std::lock_guard lock(masked_mutex_);
    return mask_person_;
  }

  mutable std::mutex masked_mutex_;
  std::vector<std::vector<std::string>> masked_paths_;  // split on '.'; guarded by masked_mutex_
  bool mask_person_ = false;                            // guarded by masked_mutex_
  std::shared_ptr<Subscription::Shared> shared_;
  std::shared_ptr<std::atomic<std::size_t>> subscribers_;
};

}  // namespace junction::core::telemetry
