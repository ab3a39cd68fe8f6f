#include "core/telemetry/event_tap.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>

#include "junction/sdk/json.h"

namespace junction::core::telemetry {

namespace json = boost::json;

struct EventTap::Subscription::Shared {
  std::mutex mutex;
  // Strong references: a record is pushed only to a subscription that is alive, even while its
  // last user lets go of it (the Handle below takes it out of this list under the mutex).
  std::vector<std::shared_ptr<Subscription>> subscriptions;
  std::shared_ptr<std::atomic<std::size_t>> count;
};

namespace {

// What subscribe() hands out (through an aliasing shared_ptr): when the subscriber's last
// reference goes, the subscription leaves the tap.
struct Handle {
  std::shared_ptr<EventTap::Subscription::Shared> shared;
  std::shared_ptr<EventTap::Subscription> subscription;
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (!shared || !subscription) {
      return;
    }
    std::lock_guard lock(shared->mutex);
    std::erase(shared->subscriptions, subscription);
    shared->count->fetch_sub(1);
  }
};

}  // namespace

struct EventTap::Record {
  const sdk::Event& event;
  std::string_view kind;
  std::string_view destination;
  std::string_view reason;
  bool with_body = false;
};

namespace {

// Keys whose values are secrets wherever they appear, compared without case, `_` or `-`.
bool secretKey(std::string_view key) {
  std::string k;
  for (char c : key) {
    if (c != '_' && c != '-') {
      k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  static constexpr std::string_view kParts[] = {"password", "passwd", "secret", "token",
                                                "apikey",   "authorization", "writekey",
                                                "cardnumber", "cvv", "ssn"};
  for (auto part : kParts) {
    if (k.find(part) != std::string::npos) {
      return true;
    }
  }
  return false;
}

void maskSecrets(json::value& v) {
  if (v.is_object()) {
    for (auto& [key, value] : v.as_object()) {
      if (secretKey(key) && !value.is_object() && !value.is_array()) {
        value = "***";
      } else {
        maskSecrets(value);
      }
    }
  } else if (v.is_array()) {
    for (auto& item : v.as_array()) {
      maskSecrets(item);
    }
  }
}

void maskPath(json::value& v, const std::vector<std::string>& path, std::size_t at) {
  if (!v.is_object()) {
    return;
  }
  auto& o = v.as_object();
  auto it = o.find(path[at]);
  if (it == o.end()) {
    return;
  }
  if (at + 1 == path.size()) {
    it->value() = "***";
  } else {
    maskPath(it->value(), path, at + 1);
  }
}

bool matches(const TapFilter& f, const sdk::Event& e, std::string_view destination) {
  const auto& h = e.header();
  if (!f.source.empty() && f.source != h.source_id) {
    return false;
  }
  if (!f.destination.empty() && !destination.empty() && f.destination != destination) {
    return false;
  }
  if (!f.event.empty() && f.event != h.name && f.event != sdk::toString(h.type)) {
    return false;
  }
  if (!f.person.empty() && f.person != h.user_id && f.person != h.anonymous_id) {
    return false;
  }
  return true;
}

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

EventTap::EventTap(std::vector<std::string> masked_paths)
    : shared_(std::make_shared<Subscription::Shared>()),
      subscribers_(std::make_shared<std::atomic<std::size_t>>(0)) {
  shared_->count = subscribers_;
  addMaskedPaths(masked_paths);
}

void EventTap::addMaskedPaths(const std::vector<std::string>& paths) {
  std::lock_guard lock(masked_mutex_);
  for (const auto& p : paths) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      auto dot = p.find('.', start);
      parts.push_back(p.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) {
        break;
      }
      start = dot + 1;
    }
    if (parts.size() == 1 && (parts[0] == "userId" || parts[0] == "anonymousId")) {
      mask_person_ = true;
    }
    if (std::find(masked_paths_.begin(), masked_paths_.end(), parts) == masked_paths_.end()) {
      masked_paths_.push_back(std::move(parts));
    }
  }
}

EventTap::~EventTap() = default;

std::string EventTap::maskedBody(const sdk::Event& event) const {
  boost::system::error_code ec;
  json::value v = json::parse(event.json(), ec);
  if (ec) {
    return "\"(not JSON)\"";
  }
  maskSecrets(v);
  std::lock_guard lock(masked_mutex_);
  for (const auto& path : masked_paths_) {
    maskPath(v, path, 0);
  }
  return json::serialize(v);
}

bool EventTap::wants(const sdk::Event& event, std::string_view destination) {
  if (!active()) {
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  bool wanted = false;
  std::lock_guard lock(shared_->mutex);
  for (const auto& s : shared_->subscriptions) {
    if (matches(s->filter(), event, destination) && s->admit(now)) {
      wanted = true;
    }
  }
  return wanted;
}

void EventTap::arrived(const sdk::Event& event, std::string_view kind, bool admitted) {
  if (!active()) {
    return;
  }
  publish(Record{event, kind, {}, {}, /*with_body=*/true}, admitted);
}

void EventTap::decided(const sdk::Event& event, std::string_view destination,
                       std::string_view kind, std::string_view reason) {
  if (!active()) {
    return;
  }
  publish(Record{event, kind, destination, reason}, /*admitted=*/false);
}

void EventTap::publish(const Record& r, bool admitted) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(shared_->mutex);
  std::string line;  // built once, for the first subscriber that wants it
  for (const auto& s : shared_->subscriptions) {
    if (!matches(s->filter(), r.event, r.destination) || (!admitted && !s->admit(now))) {
      continue;
    }
    if (line.empty()) {
      const auto& h = r.event.header();
      json::object o{{"at_ms", nowMs()},
                     {"kind", r.kind},
                     {"source", h.source_id},
                     {"messageId", h.message_id},
                     {"type", sdk::toString(h.type)},
                     {"event", h.name},
                     {"person", maskPerson() ? std::string("***") : h.personKey()},
                     {"timestamp_ms", h.timestamp_ms}};
      if (!r.destination.empty()) {
        o["destination"] = r.destination;
      }
      if (!r.reason.empty()) {
        o["reason"] = r.reason;
      }
      line = "data: " + json::serialize(o);
      if (r.with_body) {
        line.pop_back();  // the closing brace: the body goes in as it is (already JSON)
        line += ",\"body\":" + maskedBody(r.event) + "}";
      }
      line += "\n\n";
    }
    s->push(line);
  }
}

std::shared_ptr<EventTap::Subscription> EventTap::subscribe(TapFilter filter, std::size_t capacity,
                                                            double per_second) {
  std::shared_ptr<Subscription> s(new Subscription(std::move(filter), capacity, per_second));
  auto handle = std::make_shared<Handle>();  // built in place: a temporary would unregister
  handle->shared = shared_;
  handle->subscription = s;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->subscriptions.push_back(s);
    shared_->count->fetch_add(1);
  }
  return std::shared_ptr<Subscription>(handle, s.get());
}

EventTap::Subscription::Subscription(TapFilter filter, std::size_t capacity, double per_second)
    : filter_(std::move(filter)),
      capacity_(std::max<std::size_t>(1, capacity)),
      per_second_(std::max(1.0, per_second)),
      tokens_(2 * per_second_),
      refilled_(std::chrono::steady_clock::now()) {}

bool EventTap::Subscription::admit(std::chrono::steady_clock::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  if (elapsed > 0) {
    tokens_ = std::min(2 * per_second_, tokens_ + elapsed * per_second_);
    refilled_ = now;
  }
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  over_budget_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void EventTap::Subscription::push(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (lines_.size() >= capacity_) {
    lines_.pop_front();
    ++dropped_;
  }
  lines_.push_back(line);
}

std::string EventTap::Subscription::take() {
  std::lock_guard lock(mutex_);
  std::string out;
  if (dropped_ > 0) {
    out = "data: {\"kind\":\"dropped\",\"count\":" + std::to_string(dropped_) +
          ",\"reason\":\"the viewer fell behind; these records were not shown\"}\n\n";
    dropped_ = 0;
  }
  if (auto over = over_budget_.exchange(0); over > 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.0f", per_second_);
    out += "data: {\"kind\":\"dropped\",\"count\":" + std::to_string(over) +
           ",\"reason\":\"more than " + rate +
           " records per second match this view; narrow the filters to see them all\"}\n\n";
  }
  for (auto& l : lines_) {
    out += l;
  }
  lines_.clear();
  return out;
}

}  // namespace junction::core::telemetry
