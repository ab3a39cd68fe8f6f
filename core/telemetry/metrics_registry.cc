#include "core/telemetry/metrics_registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace junction::core::telemetry {

namespace {

class AtomicCounter final : public sdk::Counter {
 public:
  void inc(std::uint64_t n) noexcept override { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept override { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

void atomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

class AtomicGauge final : public sdk::Gauge {
 public:
  void set(double v) noexcept override { value_.store(v, std::memory_order_relaxed); }
  void add(double delta) noexcept override { atomicAdd(value_, delta); }
  double value() const noexcept override { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class AtomicHistogram final : public sdk::Histogram {
 public:
  explicit AtomicHistogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}

  void observe(double v) noexcept override {
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    atomicAdd(sum_, v);
  }
  std::uint64_t count() const noexcept override { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept override { return sum_.load(std::memory_order_relaxed); }

  const std::vector<double>& bounds() const { return bounds_; }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> buckets_;  // last one is +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

std::string escapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text escapes only backslash and newline (exposition format 0.0.4).
std::string escapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string renderLabels(const sdk::Labels& labels, std::string_view extra_key = {},
                         std::string_view extra_value = {}) {
  if (labels.empty() && extra_key.empty()) {
    return "";
  }
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += first ? "" : ",";
    first = false;
    out += k + "=\"" + escapeLabelValue(v) + "\"";
  }
  if (!extra_key.empty()) {
    out += first ? "" : ",";
    out += std::string(extra_key) + "=\"" + std::string(extra_value) + "\"";
  }
  out += "}";
  return out;
}

std::string formatNumber(double v) {
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (std::isnan(v)) {
    return "NaN";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

sdk::Labels sorted(sdk::Labels labels) {
  std::sort(labels.begin(), labels.end());
  return labels;
}

std::string labelKey(const sdk::Labels& labels) {
  std::string key;
  for (const auto& [k, v] : labels) {
    key += k;
    key += '\x1f';
    key += v;
    key += '\x1e';
  }
  return key;
}

}  // namespace

struct MetricsRegistry::Series {
  sdk::Labels labels;
  std::unique_ptr<AtomicCounter> counter;
  std::unique_ptr<AtomicGauge> gauge;
  std::unique_ptr<AtomicHistogram> histogram;
};

struct MetricsRegistry::Family {
  Kind kind;
  std::string help;
  std::map<std::string, std::unique_ptr<Series>> series;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Series* MetricsRegistry::findOrCreate(Kind kind, std::string_view name,
                                                       std::string_view help,
                                                       const sdk::Labels& labels,
                                                       std::span<const double> buckets) {
  auto make = [&] {
    auto s = std::make_unique<Series>();
    s->labels = sorted(labels);
    switch (kind) {
      case Kind::Counter:
        s->counter = std::make_unique<AtomicCounter>();
        break;
      case Kind::Gauge:
        s->gauge = std::make_unique<AtomicGauge>();
        break;
      case Kind::Histogram: {
        std::vector<double> bounds(buckets.begin(), buckets.end());
        if (bounds.empty()) {
          bounds.assign(std::begin(kDefaultBuckets), std::end(kDefaultBuckets));
        }
        std::sort(bounds.begin(), bounds.end());
        s->histogram = std::make_unique<AtomicHistogram>(std::move(bounds));
        break;
      }
    }
    return s;
  };
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->kind = kind;
    family->help = std::string(help);
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  Family& family = *it->second;
  if (family.kind != kind) {
    // A clash of kinds is a plugin bug; the caller still gets a working, unexported object.
    detached_.push_back(make());
    return detached_.back().get();
  }
  std::string key = labelKey(sorted(labels));
  auto& slot = family.series[key];
  if (!slot) {
    slot = make();
  }
  return slot.get();
}

sdk::Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                       const sdk::Labels& labels) noexcept {
  return *findOrCreate(Kind::Counter, name, help, labels, {})->counter;
}

sdk::Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help,
                                   const sdk::Labels& labels) noexcept {
  return *findOrCreate(Kind::Gauge, name, help, labels, {})->gauge;
}

sdk::Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                           std::span<const double> buckets,
                                           const sdk::Labels& labels) noexcept {
  return *findOrCreate(Kind::Histogram, name, help, labels, buckets)->histogram;
}

void MetricsRegistry::addCollector(std::function<void()> collect) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsRegistry::renderPrometheus() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mutex_);
    collectors = collectors_;
  }
  for (const auto& collect : collectors) {
    collect();
  }
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, family] : families_) {
    static constexpr const char* kTypes[] = {"counter", "gauge", "histogram"};
    out += "# HELP " + name + " " + escapeHelp(family->help) + "\n";
    out += "# TYPE " + name + " " + kTypes[static_cast<int>(family->kind)] + "\n";
    for (const auto& [key, s] : family->series) {
      switch (family->kind) {
        case Kind::Counter:
          out += name + renderLabels(s->labels) + " " + std::to_string(s->counter->value()) + "\n";
          break;
        case Kind::Gauge:
          out += name + renderLabels(s->labels) + " " + formatNumber(s->gauge->value()) + "\n";
          break;
        case Kind::Histogram: {
          const auto& h = *s->histogram;
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
            cumulative += h.bucket(i);
            std::string le = i < h.bounds().size() ? formatNumber(h.bounds()[i]) : "+Inf";
            out += name + "_bucket" + renderLabels(s->labels, "le", le) + " " +
                   std::to_string(cumulative) + "\n";
          }
          out += name + "_sum" + renderLabels(s->labels) + " " + formatNumber(h.sum()) + "\n";
          out += name + "_count" + renderLabels(s->labels) + " " + std::to_string(h.count()) + "\n";
          break;
        }
      }
    }
  }
  return out;
}

std::optional<double> MetricsRegistry::valueOf(std::string_view name,
                                               const sdk::Labels& labels) const {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    return std::nullopt;
  }
  auto s = it->second->series.find(labelKey(sorted(labels)));
  if (s == it->second->series.end()) {
    return std::nullopt;
  }
  if (s->second->counter) {
    return static_cast<double>(s->second->counter->value());
  }
  if (s->second->gauge) {
    return s->second->gauge->value();
  }
  return static_cast<double>(s->second->histogram->count());
}

sdk::Labels LabeledMetrics::merge(const sdk::Labels& labels) const {
  sdk::Labels out = extra_;
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

sdk::Counter& LabeledMetrics::counter(std::string_view name, std::string_view help,
                                      const sdk::Labels& labels) noexcept {
  return inner_.counter(name, help, merge(labels));
}

sdk::Gauge& LabeledMetrics::gauge(std::string_view name, std::string_view help,
                                  const sdk::Labels& labels) noexcept {
  return inner_.gauge(name, help, merge(labels));
}

sdk::Histogram& LabeledMetrics::histogram(std::string_view name, std::string_view help,
                                          std::span<const double> buckets,
                                          const sdk::Labels& labels) noexcept {
  return inner_.histogram(name, help, buckets, merge(labels));
}

}  // namespace junction::core::telemetry
