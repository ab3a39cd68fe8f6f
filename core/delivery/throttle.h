#pragma once

// Account-wide throttling of one destination: a plugin says "the vendor limits the whole
// account" (sdk::DestinationContext::throttle), and the destination's dispatcher slows down as a
// whole instead of retrying other people's events into the same limit.
//
// Two parts:
//   - a pause: no new plugin call starts before it has passed;
//   - an adaptive rate of plugin calls (AIMD): each signal halves it, from the rate the
//     destination was actually making calls at; each second without a signal raises it by a
//     quarter, until it is unlimited again.
//
// Threads: `signal` is called from delivery threads (inside the plugin's deliver); everything
// else from the dispatcher thread. The shared part is behind a mutex (signals are rare).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

namespace junction::core::delivery {

class AccountThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  // The lowest adaptive rate, in calls per second: a throttled destination still probes.
  static constexpr double kMinRate = 0.2;
  // How much the rate grows per second without a signal (multiplicative: a quarter).
  static constexpr double kGrowthPerSecond = 1.25;

  // From a delivery thread: the vendor limits the account. Extends the pause (never shortens
  // it) and records the signal for the dispatcher.
  void signal(std::chrono::milliseconds pause, Clock::time_point now) noexcept {
    std::lock_guard lock(mutex_);
    if (pause.count() > 0) {
      paused_until_ = std::max(paused_until_, now + pause);
    }
    signals_.fetch_add(1, std::memory_order_release);
  }

  // Dispatcher: a call starts now (after nextCallAt allowed it).
  void take(Clock::time_point now) {
    last_call_ = now;
    starts_.push_back(now);
    while (!starts_.empty() && now - starts_.front() > kObserveWindow) {
      starts_.pop_front();
    }
  }

  // Dispatcher: when the next plugin call may start (now when it may start at once). Applies
  // new signals first.
  Clock::time_point nextCallAt(Clock::time_point now) {
    const std::uint64_t signals = signals_.load(std::memory_order_acquire);
    if (signals == 0) {
      return now;  // never throttled: the common case costs one load
    }
    Clock::time_point paused_until;
    {
      std::lock_guard lock(mutex_);
      paused_until = paused_until_;
    }
    if (signals != seen_signals_) {
      seen_signals_ = signals;
      // Halve from what the destination was doing (or from the adaptive rate, when lower), at
      // most once a second: parallel calls that hit the same limit together halve it once.
      if (!last_decrease_ || now - *last_decrease_ >= kDecreaseInterval) {
        double observed = observedRate(now);
        double from = rate_ ? std::min(*rate_, observed) : observed;
        rate_ = std::max(kMinRate, from / 2.0);
        last_decrease_ = now;
      }
      last_growth_ = std::max(now, paused_until);
    } else if (rate_) {
      grow(now, paused_until);
    }
    Clock::time_point at = std::max(now, paused_until);
    if (rate_ && last_call_) {
      auto spacing = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(1.0 / *rate_));
      at = std::max(at, *last_call_ + spacing);
    }
    return at;
  }

  // The adaptive rate in calls per second; nullopt while unlimited. Dispatcher only.
  std::optional<double> rate() const noexcept { return rate_; }
  bool paused(Clock::time_point now) const {
    std::lock_guard lock(mutex_);
    return now < paused_until_;
  }
  std::uint64_t signals() const noexcept { return signals_.load(std::memory_order_acquire); }

 private:
  static constexpr std::chrono::seconds kObserveWindow{5};
  static constexpr std::chrono::seconds kDecreaseInterval{1};
  // Once the adaptive rate has grown this far, the destination is unlimited again.
  static constexpr double kUnlimitedAbove = 10'000.0;

  double observedRate(Clock::time_point now) const {
    if (starts_.size() < 2) {
      return 1.0;
    }
    double span = std::chrono::duration<double>(now - starts_.front()).count();
    return static_cast<double>(starts_.size()) / std::max(span, 0.001);
  }

  // Growth counts only time after the pause: a long Retry-After must not come back at full rate.
  void grow(Clock::time_point now, Clock::time_point paused_until) {
    last_growth_ = std::max(last_growth_, paused_until);
    if (now <= last_growth_) {
      return;
    }
    double seconds = std::chrono::duration<double>(now - last_growth_).count();
    if (seconds < 1.0) {
      return;
    }
    double whole = std::floor(seconds);
    *rate_ *= std::pow(kGrowthPerSecond, whole);
    last_growth_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(whole));
    if (*rate_ > kUnlimitedAbove) {
      rate_.reset();
    }
  }

  mutable std::mutex mutex_;
  Clock::time_point paused_until_{};  // guarded by mutex_
  std::atomic<std::uint64_t> signals_{0};

  // Dispatcher-only.
  std::uint64_t seen_signals_ = 0;
  std::optional<double> rate_;
  std::optional<Clock::time_point> last_decrease_;
  Clock::time_point last_growth_{};
  std::optional<Clock::time_point> last_call_;
  std::deque<Clock::time_point> starts_;
};

}  // namespace junction::core::delivery
