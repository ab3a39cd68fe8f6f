#pragma once

// Retry backoff and rate limiting for the delivery engine.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace junction::core::delivery {

// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
// a uniformly random delay in [0, min(max, initial * 2^(attempt-1))], never below the vendor's
// Retry-After. `attempt` counts from 1. Not thread-safe (one per worker).
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
          std::uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), rng_(seed) {}

  std::chrono::milliseconds delay(std::int64_t attempt, std::chrono::milliseconds retry_after) {
    double ceiling = static_cast<double>(initial_.count()) *
                     std::pow(2.0, static_cast<double>(std::clamp<std::int64_t>(attempt - 1, 0, 40)));
    ceiling = std::min(ceiling, static_cast<double>(max_.count()));
    std::uniform_real_distribution<double> jitter(0.0, ceiling);
    auto d = std::chrono::milliseconds(static_cast<std::int64_t>(jitter(rng_)));
    return std::max(d, retry_after);
  }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::mt19937_64 rng_;
};

// A token bucket: `rate` tokens per second, at most `burst`. Rate 0 = unlimited. Not
// thread-safe (one per destination, used by its dispatcher).
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double rate, double burst)
      : rate_(rate), burst_(burst > 0 ? burst : std::max(1.0, rate)), tokens_(burst_),
        last_(Clock::now()) {}

  bool unlimited() const noexcept { return rate_ <= 0; }
  // The most events one batch may take (the bucket can never hold more).
  std::size_t capacity() const noexcept {
    return unlimited() ? SIZE_MAX : static_cast<std::size_t>(std::max(1.0, burst_));
  }

  // Whole tokens available now.
  std::size_t available(Clock::time_point now) {
    if (unlimited()) {
      return SIZE_MAX;
    }
    refill(now);
    return static_cast<std::size_t>(tokens_);
  }
  void consume(std::size_t n) {
    if (!unlimited()) {
      tokens_ -= static_cast<double>(n);
    }
  }
  // Time until one token is available.
  std::chrono::milliseconds untilOne(Clock::time_point now) {
    if (unlimited()) {
      return std::chrono::milliseconds(0);
    }
    refill(now);
    if (tokens_ >= 1.0) {
      return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil((1.0 - tokens_) / rate_ * 1000.0)));
  }

  // Takes `n` tokens if available now; else returns how long until they are.
  std::chrono::milliseconds take(std::size_t n, Clock::time_point now) {
    if (unlimited()) {
      return std::chrono::milliseconds(0);
    }
    refill(now);
    double need = static_cast<double>(n);
    if (tokens_ >= need) {
      tokens_ -= need;
      return std::chrono::milliseconds(0);
    }
    double wait_s = (need - tokens_) / rate_;
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_s * 1000.0)));
  }

 private:
  void refill(Clock::time_point now) {
    double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  }

  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace junction::core::delivery
