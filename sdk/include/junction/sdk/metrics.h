#pragma once

// Metrics for plugins, exported by the daemon at GET /metrics (Prometheus text format). The
// daemon adds a `source="<id>"` or `destination="<id>"` label to every series a plugin makes.
//
// Names follow Prometheus conventions: `junction_<plugin>_<what>_<unit>`, counters end in
// `_total`. Label values must not carry personal data or secrets.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace junction::sdk {

using Labels = std::vector<std::pair<std::string, std::string>>;

// All metric objects are thread-safe and lock-free on the hot path; references stay valid for
// the lifetime of the registry that made them (at least as long as the plugin's context).
class Counter {
 public:
  virtual ~Counter() = default;
  virtual void inc(std::uint64_t n = 1) noexcept = 0;
  virtual std::uint64_t value() const noexcept = 0;
};

class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void set(double v) noexcept = 0;
  virtual void add(double delta) noexcept = 0;
  virtual double value() const noexcept = 0;
};

class Histogram {
 public:
  virtual ~Histogram() = default;
  virtual void observe(double v) noexcept = 0;
  virtual std::uint64_t count() const noexcept = 0;
  virtual double sum() const noexcept = 0;
};

// Finds or makes a series. Asking twice for the same name and labels returns the same object;
// asking for an existing name with another kind returns a detached object (and the registry
// logs the clash) rather than failing. Thread-safe; not for the hot path (keep the reference).
class Metrics {
 public:
  virtual ~Metrics() = default;
  virtual Counter& counter(std::string_view name, std::string_view help,
                           const Labels& labels = {}) noexcept = 0;
  virtual Gauge& gauge(std::string_view name, std::string_view help,
                       const Labels& labels = {}) noexcept = 0;
  // `buckets`: upper bounds, ascending; empty means the default latency buckets (seconds).
  virtual Histogram& histogram(std::string_view name, std::string_view help,
                               std::span<const double> buckets = {},
                               const Labels& labels = {}) noexcept = 0;
};

}  // namespace junction::sdk
