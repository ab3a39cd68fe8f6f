#pragma once

// A destination for the worker and engine tests: the outcome of each event is decided by the
// test (by the event and its attempt number), and what was delivered is recorded in call order.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "junction/sdk/destination.h"

namespace junction::core::delivery {

class ScriptedDestination final : public sdk::Destination {
 public:
  using Decide = std::function<sdk::Outcome(const sdk::Event&, int attempt)>;
  explicit ScriptedDestination(Decide decide = {}, std::chrono::milliseconds latency = std::chrono::milliseconds(0))
      : decide_(std::move(decide)), latency_(latency) {}

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    if (latency_.count() > 0) {
      std::this_thread::sleep_for(latency_);
    }
    std::vector<sdk::Outcome> out;
    std::lock_guard lock(mutex_);
    ++calls_;
    for (const auto& e : batch) {
      int attempt = ++attempts_[e.messageId()];
      sdk::Outcome o = decide_ ? decide_(e, attempt) : sdk::Outcome::delivered();
      if (o.isDelivered()) {
        delivered_.push_back(e.messageId());
      }
      out.push_back(std::move(o));
    }
    return out;
  }

  std::vector<std::string> delivered() const {
    std::lock_guard lock(mutex_);
    return delivered_;
  }
  std::size_t calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  Decide decide_;
  std::chrono::milliseconds latency_;
  mutable std::mutex mutex_;
  std::map<std::string, int> attempts_;
  std::vector<std::string> delivered_;
  std::size_t calls_ = 0;
};

}  // namespace junction::core::delivery
