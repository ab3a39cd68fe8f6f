#pragma once

// The daemon's metrics registry: counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format (version 0.0.4) at GET /metrics.
//
// Series are created under a mutex (not on the hot path: callers keep the reference) and
// updated lock-free with atomics. Series live as long as the registry.

#include <atomic>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/metrics.h"

namespace junction::core::telemetry {

class MetricsRegistry final : public sdk::Metrics {
 public:
  MetricsRegistry();
  ~MetricsRegistry() override;

  sdk::Counter& counter(std::string_view name, std::string_view help,
                        const sdk::Labels& labels = {}) noexcept override;
  sdk::Gauge& gauge(std::string_view name, std::string_view help,
                    const sdk::Labels& labels = {}) noexcept override;
  sdk::Histogram& histogram(std::string_view name, std::string_view help,
                            std::span<const double> buckets = {},
                            const sdk::Labels& labels = {}) noexcept override;

  // A callback run before each render, to refresh gauges computed on demand (queue backlog).
  void addCollector(std::function<void()> collect);

  std::string renderPrometheus() const;

  // Value of a counter or gauge series, or nullopt (tests, dashboard).
  std::optional<double> valueOf(std::string_view name, const sdk::Labels& labels = {}) const;

  static constexpr double kDefaultBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                               5,      10};

 private:
  enum class Kind { Counter, Gauge, Histogram };
  struct Family;
  struct Series;

  Series* findOrCreate(Kind kind, std::string_view name, std::string_view help,
                       const sdk::Labels& labels, std::span<const double> buckets);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  std::vector<std::unique_ptr<Series>> detached_;
  std::vector<std::function<void()>> collectors_;
};

// An sdk::Metrics that adds fixed labels (e.g. destination="newsletter") to every series.
class LabeledMetrics final : public sdk::Metrics {
 public:
  LabeledMetrics(sdk::Metrics& inner, sdk::Labels extra)
      : inner_(inner), extra_(std::move(extra)) {}

  sdk::Counter& counter(std::string_view name, std::string_view help,
                        const sdk::Labels& labels = {}) noexcept override;
  sdk::Gauge& gauge(std::string_view name, std::string_view help,
                    const sdk::Labels& labels = {}) noexcept override;
  sdk::Histogram& histogram(std::string_view name, std::string_view help,
                            std::span<const double> buckets = {},
                            const sdk::Labels& labels = {}) noexcept override;

 private:
  sdk::Labels merge(const sdk::Labels& labels) const;

  sdk::Metrics& inner_;
  sdk::Labels extra_;
};

}  // namespace junction::core::telemetry
