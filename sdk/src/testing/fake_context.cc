#include "junction/sdk/testing/fake_context.h"

#include <algorithm>
#include <cctype>
#include <exception>

namespace junction::sdk::testing {
namespace {

Labels sortedLabels(const Labels& labels) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

std::vector<std::string> splitSegments(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    out.emplace_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RecordingLogger

std::optional<std::string> LogRecord::field(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) {
      return v;
    }
  }
  return std::nullopt;
}

bool RecordingLogger::enabled(LogLevel level) const noexcept {
  return static_cast<int>(level) >= static_cast<int>(min_level_);
}

void RecordingLogger::log(LogLevel level, std::string_view message,
                          std::initializer_list<LogField> fields) noexcept {
  if (!enabled(level)) {
    return;
  }
  try {
    LogRecord record{level, std::string(message), {}};
    for (const auto& f : fields) {
      record.fields.emplace_back(std::string(f.key), f.value);
    }
    std::lock_guard lock(mutex_);
    records_.push_back(std::move(record));
  } catch (...) {
    // A logger never throws; a line lost to bad_alloc is acceptable in a test fake.
  }
}

std::vector<LogRecord> RecordingLogger::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

bool RecordingLogger::contains(std::string_view text) const {
  std::lock_guard lock(mutex_);
  return std::any_of(records_.begin(), records_.end(), [&](const LogRecord& r) {
    return r.message.find(text) != std::string::npos ||
           std::any_of(r.fields.begin(), r.fields.end(),
                       [&](const auto& f) { return f.second.find(text) != std::string::npos; });
  });
}

bool RecordingLogger::contains(LogLevel level, std::string_view text) const {
  std::lock_guard lock(mutex_);
  return std::any_of(records_.begin(), records_.end(), [&](const LogRecord& r) {
    return r.level == level && (r.message.find(text) != std::string::npos ||
                                std::any_of(r.fields.begin(), r.fields.end(), [&](const auto& f) {
                                  return f.second.find(text) != std::string::npos;
                                }));
  });
}

std::size_t RecordingLogger::count(LogLevel level) const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(
      records_.begin(), records_.end(), [&](const LogRecord& r) { return r.level == level; }));
}

void RecordingLogger::clear() {
  std::lock_guard lock(mutex_);
  records_.clear();
}

// ---------------------------------------------------------------------------------------------
// FakeMetrics

namespace {

class FakeCounter final : public Counter {
 public:
  void inc(std::uint64_t n) noexcept override { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept override { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class FakeGauge final : public Gauge {
 public:
  void set(double v) noexcept override { value_.store(v); }
  void add(double delta) noexcept override { value_.fetch_add(delta); }
  double value() const noexcept override { return value_.load(); }

 private:
  std::atomic<double> value_{0.0};
};

class FakeHistogram final : public Histogram {
 public:
  void observe(double v) noexcept override {
    count_.fetch_add(1);
    sum_.fetch_add(v);
  }
  std::uint64_t count() const noexcept override { return count_.load(); }
  double sum() const noexcept override { return sum_.load(); }

 private:
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

enum class MetricKind { Counter, Gauge, Histogram };

}  // namespace

struct FakeMetrics::Impl {
  using Key = std::pair<std::string, Labels>;  // name, sorted labels

  mutable std::mutex mutex;
  std::map<std::string, MetricKind, std::less<>> kinds;
  std::map<Key, std::unique_ptr<FakeCounter>> counters;
  std::map<Key, std::unique_ptr<FakeGauge>> gauges;
  std::map<Key, std::unique_ptr<FakeHistogram>> histograms;
  std::vector<std::unique_ptr<Counter>> detached_counters;
  std::vector<std::unique_ptr<Gauge>> detached_gauges;
  std::vector<std::unique_ptr<Histogram>> detached_histograms;
  std::size_t clashes = 0;

  // True when `name` may be made as `kind` (recording the kind on first use).
  bool claim(std::string_view name, MetricKind kind) {
    auto it = kinds.find(name);
    if (it == kinds.end()) {
      kinds.emplace(std::string(name), kind);
      return true;
    }
    if (it->second != kind) {
      ++clashes;
      return false;
    }
    return true;
  }

  template <typename T>
  static T* lookup(const std::map<Key, std::unique_ptr<T>>& series, std::string_view name,
                   const Labels& labels) {
    auto it = series.find(Key(std::string(name), sortedLabels(labels)));
    return it == series.end() ? nullptr : it->second.get();
  }

  template <typename T, typename Detached>
  T& findOrMake(std::map<Key, std::unique_ptr<T>>& series, Detached& detached,
                std::string_view name, const Labels& labels, MetricKind kind) {
    std::lock_guard lock(mutex);
    if (!claim(name, kind)) {
      detached.push_back(std::make_unique<T>());
      return static_cast<T&>(*detached.back());
    }
    auto& slot = series[Key(std::string(name), sortedLabels(labels))];
    if (!slot) {
      slot = std::make_unique<T>();
    }
    return *slot;
  }
};

FakeMetrics::FakeMetrics() : impl_(std::make_unique<Impl>()) {}
FakeMetrics::~FakeMetrics() = default;

Counter& FakeMetrics::counter(std::string_view name, std::string_view /*help*/,
                              const Labels& labels) noexcept {
  return impl_->findOrMake(impl_->counters, impl_->detached_counters, name, labels,
                           MetricKind::Counter);
}

Gauge& FakeMetrics::gauge(std::string_view name, std::string_view /*help*/,
                          const Labels& labels) noexcept {
  return impl_->findOrMake(impl_->gauges, impl_->detached_gauges, name, labels, MetricKind::Gauge);
}

Histogram& FakeMetrics::histogram(std::string_view name, std::string_view /*help*/,
                                  std::span<const double> /*buckets*/,
                                  const Labels& labels) noexcept {
  return impl_->findOrMake(impl_->histograms, impl_->detached_histograms, name, labels,
                           MetricKind::Histogram);
}

std::uint64_t FakeMetrics::counterValue(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mutex);
  const auto* c = Impl::lookup(impl_->counters, name, labels);
  return c == nullptr ? 0 : c->value();
}

std::optional<double> FakeMetrics::gaugeValue(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mutex);
  const auto* g = Impl::lookup(impl_->gauges, name, labels);
  return g == nullptr ? std::nullopt : std::optional<double>(g->value());
}

std::uint64_t FakeMetrics::histogramCount(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mutex);
  const auto* h = Impl::lookup(impl_->histograms, name, labels);
  return h == nullptr ? 0 : h->count();
}

double FakeMetrics::histogramSum(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mutex);
  const auto* h = Impl::lookup(impl_->histograms, name, labels);
  return h == nullptr ? 0.0 : h->sum();
}

bool FakeMetrics::has(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mutex);
  return Impl::lookup(impl_->counters, name, labels) != nullptr ||
         Impl::lookup(impl_->gauges, name, labels) != nullptr ||
         Impl::lookup(impl_->histograms, name, labels) != nullptr;
}

std::uint64_t FakeMetrics::counterTotal(std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  std::uint64_t total = 0;
  for (const auto& [key, counter] : impl_->counters) {
    if (key.first == name) {
      total += counter->value();
    }
  }
  return total;
}

std::size_t FakeMetrics::kindClashes() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->clashes;
}

// ---------------------------------------------------------------------------------------------
// ManualClock

std::chrono::steady_clock::time_point ManualClock::steadyNow() const noexcept {
  // A fixed, arbitrary origin a year past steady_clock's epoch, so durations never go negative.
  return std::chrono::steady_clock::time_point{} + std::chrono::hours(24 * 365) +
         std::chrono::milliseconds(steady_ms_.load());
}

void ManualClock::advance(std::chrono::milliseconds d) noexcept {
  if (d.count() <= 0) {
    return;
  }
  wall_ms_.fetch_add(d.count());
  steady_ms_.fetch_add(d.count());
}

// ---------------------------------------------------------------------------------------------
// ManualScheduler

struct ManualScheduler::State {
  struct Task {
    std::chrono::steady_clock::time_point due;
    std::chrono::milliseconds interval{0};  // 0 = once
    std::shared_ptr<std::function<void()>> fn;
  };

  explicit State(const ManualClock& c) : clock(c) {}

  const ManualClock& clock;
  std::mutex run_mutex;  // serializes runDue(): tasks never run concurrently
  std::mutex mutex;
  std::condition_variable run_finished;
  std::map<std::uint64_t, Task> tasks;  // guarded by mutex
  std::uint64_t next_id = 1;            // guarded by mutex
  std::uint64_t running_id = 0;         // guarded by mutex; 0 = none
  std::thread::id running_thread;       // guarded by mutex

  void cancel(std::uint64_t id) {
    std::unique_lock lock(mutex);
    tasks.erase(id);
    if (running_thread != std::this_thread::get_id()) {
      run_finished.wait(lock, [&] { return running_id != id; });
    }
  }
};

class ManualScheduler::Handle final : public TaskHandle {
 public:
  Handle(std::weak_ptr<State> state, std::uint64_t id) : state_(std::move(state)), id_(id) {}
  ~Handle() override { cancel(); }

  void cancel() noexcept override {
    if (auto state = state_.lock()) {
      state->cancel(id_);
    }
    state_.reset();
  }

 private:
  std::weak_ptr<State> state_;
  std::uint64_t id_;
};

ManualScheduler::ManualScheduler(const ManualClock& clock)
    : state_(std::make_shared<State>(clock)) {}

ManualScheduler::~ManualScheduler() = default;

std::unique_ptr<TaskHandle> ManualScheduler::every(std::chrono::milliseconds interval,
                                                   std::function<void()> task,
                                                   bool run_now) noexcept {
  // A zero interval would make runDue() spin forever.
  interval = std::max(interval, std::chrono::milliseconds(1));
  std::lock_guard lock(state_->mutex);
  const std::uint64_t id = state_->next_id++;
  const auto now = state_->clock.steadyNow();
  state_->tasks.emplace(id, State::Task{run_now ? now : now + interval, interval,
                                        std::make_shared<std::function<void()>>(std::move(task))});
  return std::make_unique<Handle>(state_, id);
}

std::unique_ptr<TaskHandle> ManualScheduler::after(std::chrono::milliseconds delay,
                                                   std::function<void()> task) noexcept {
  std::lock_guard lock(state_->mutex);
  const std::uint64_t id = state_->next_id++;
  state_->tasks.emplace(id,
                        State::Task{state_->clock.steadyNow() + delay, std::chrono::milliseconds(0),
                                    std::make_shared<std::function<void()>>(std::move(task))});
  return std::make_unique<Handle>(state_, id);
}

std::size_t ManualScheduler::runDue() {
  std::lock_guard run_lock(state_->run_mutex);
  std::size_t runs = 0;
  for (;;) {
    std::shared_ptr<std::function<void()>> fn;
    {
      std::lock_guard lock(state_->mutex);
      const auto now = state_->clock.steadyNow();
      auto best = state_->tasks.end();
      for (auto it = state_->tasks.begin(); it != state_->tasks.end(); ++it) {
        if (it->second.due <= now &&
            (best == state_->tasks.end() || it->second.due < best->second.due)) {
          best = it;  // earliest due first; ties by id (map order: scheduling order)
        }
      }
      if (best == state_->tasks.end()) {
        return runs;
      }
      fn = best->second.fn;
      state_->running_id = best->first;
      state_->running_thread = std::this_thread::get_id();
      if (best->second.interval.count() > 0) {
        best->second.due += best->second.interval;
      } else {
        state_->tasks.erase(best);
      }
    }
    struct FinishRun {
      State& state;
      ~FinishRun() {
        {
          std::lock_guard lock(state.mutex);
          state.running_id = 0;
          state.running_thread = {};
        }
        state.run_finished.notify_all();
      }
    } finish{*state_};
    (*fn)();
    ++runs;
  }
}

std::size_t ManualScheduler::advanceAndRun(ManualClock& clock, std::chrono::milliseconds d) {
  clock.advance(d);
  return runDue();
}

std::size_t ManualScheduler::pendingCount() const {
  std::lock_guard lock(state_->mutex);
  return state_->tasks.size();
}

std::optional<std::chrono::milliseconds> ManualScheduler::nextDueIn() const {
  std::lock_guard lock(state_->mutex);
  if (state_->tasks.empty()) {
    return std::nullopt;
  }
  auto earliest = state_->tasks.begin()->second.due;
  for (const auto& [id, task] : state_->tasks) {
    earliest = std::min(earliest, task.due);
  }
  const auto now = state_->clock.steadyNow();
  if (earliest <= now) {
    return std::chrono::milliseconds(0);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(earliest - now);
}

// ---------------------------------------------------------------------------------------------
// MemoryCheckpointStore

Result<std::optional<std::string>> MemoryCheckpointStore::load(std::string_view key) noexcept {
  try {
    std::lock_guard lock(mutex_);
    if (failure_) {
      return *failure_;
    }
    auto it = values_.find(key);
    if (it == values_.end()) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(it->second);
  } catch (...) {
    return makeError(ErrorCode::Internal, "out of memory");
  }
}

Status MemoryCheckpointStore::store(std::string_view key, std::string_view value) noexcept {
  try {
    std::lock_guard lock(mutex_);
    if (failure_) {
      return *failure_;
    }
    values_.insert_or_assign(std::string(key), std::string(value));
    ++stores_;
    return {};
  } catch (...) {
    return makeError(ErrorCode::Internal, "out of memory");
  }
}

void MemoryCheckpointStore::setFailure(std::optional<Error> error) {
  std::lock_guard lock(mutex_);
  failure_ = std::move(error);
}

std::map<std::string, std::string> MemoryCheckpointStore::values() const {
  std::lock_guard lock(mutex_);
  return {values_.begin(), values_.end()};
}

std::size_t MemoryCheckpointStore::storeCount() const {
  std::lock_guard lock(mutex_);
  return stores_;
}

// ---------------------------------------------------------------------------------------------
// FakeSourceContext

struct FakeSourceContext::Route {
  std::string method;
  std::string pattern;
  std::vector<std::string> segments;
  HttpHandler handler;
  RouteOptions options;

  // Fills `params` and returns true when `path` matches this route's pattern.
  bool matches(const std::vector<std::string>& path_segments,
               std::map<std::string, std::string>& params) const {
    if (path_segments.size() != segments.size()) {
      return false;
    }
    std::map<std::string, std::string> found;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const std::string& want = segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        if (path_segments[i].empty()) {
          return false;
        }
        found[want.substr(1, want.size() - 2)] = path_segments[i];
      } else if (want != path_segments[i]) {
        return false;
      }
    }
    params = std::move(found);
    return true;
  }
};

namespace {

// Receives the responder's answer. While the handler is still running on the caller's thread,
// the answer is kept back, so that an exception escaping the handler (whose unwinding drops
// the responder and "sends" a 500) is reported as what it is.
class PromiseSink final : public HttpResponseSink {
 public:
  explicit PromiseSink(std::promise<Result<HttpResponse>> promise) : promise_(std::move(promise)) {}

  void send(HttpResponse response) noexcept override {
    std::lock_guard lock(mutex_);
    if (in_handler_) {
      if (!kept_) {
        kept_ = std::move(response);
      }
      return;
    }
    fulfil(std::move(response));
  }

  void handlerReturned() {
    std::lock_guard lock(mutex_);
    in_handler_ = false;
    if (kept_) {
      fulfil(std::move(*kept_));
      kept_.reset();
    }
  }

  void handlerThrew(std::string what) {
    std::lock_guard lock(mutex_);
    in_handler_ = false;
    kept_.reset();
    fulfil(makeError(ErrorCode::Internal, "the handler threw: " + what));
  }

 private:
  void fulfil(Result<HttpResponse> result) noexcept {
    if (done_) {
      return;
    }
    done_ = true;
    try {
      promise_.set_value(std::move(result));
    } catch (...) {
      // Only std::future_error (already satisfied), excluded by done_.
    }
  }

  std::mutex mutex_;
  std::promise<Result<HttpResponse>> promise_;
  bool in_handler_ = true;
  bool done_ = false;
  std::optional<HttpResponse> kept_;
};

std::future<Result<HttpResponse>> readyFuture(Result<HttpResponse> result) {
  std::promise<Result<HttpResponse>> promise;
  promise.set_value(std::move(result));
  return promise.get_future();
}

EmitResult defaultEmitResult(const std::vector<Event>& events) {
  EmitResult result;
  result.accepted = events.size();
  return result;
}

}  // namespace

FakeSourceContext::FakeSourceContext(std::string id, HttpClientOptions http_options)
    : FakePluginContext(std::move(id), std::move(http_options)) {}

FakeSourceContext::~FakeSourceContext() = default;

void FakeSourceContext::emit(std::vector<Event> events, EmitCallback done) noexcept {
  try {
    EmitPolicy policy;
    {
      std::lock_guard lock(mutex_);
      policy = policy_;
    }
    EmitResult result = policy ? policy(events) : defaultEmitResult(events);
    bool run_now = true;
    {
      std::lock_guard lock(mutex_);
      if (result.status.ok()) {
        accepted_events_ += events.size();
      }
      calls_.push_back(EmitCall{std::move(events), result});
      if (hold_) {
        held_.emplace_back(std::move(done), result);
        run_now = false;
      }
    }
    events_changed_.notify_all();
    if (run_now && done) {
      done(std::move(result));
    }
  } catch (...) {
    // A fake that cannot record (bad_alloc, a throwing policy) still answers the source.
    if (done) {
      EmitResult failed;
      failed.status = makeError(ErrorCode::Internal, "FakeSourceContext::emit failed");
      done(std::move(failed));
    }
  }
}

Status FakeSourceContext::addRoute(std::string method, std::string path, HttpHandler handler,
                                   RouteOptions options) noexcept {
  try {
    if (method.empty() || path.empty() || path.front() != '/') {
      return makeError(ErrorCode::InvalidArgument,
                       "route needs a method and a path starting with '/': " + method + " " + path);
    }
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    std::lock_guard lock(mutex_);
    for (const auto& route : routes_) {
      if (route->method == method && route->pattern == path) {
        return makeError(ErrorCode::AlreadyExists,
                         "route " + method + " " + path + " is already registered");
      }
    }
    auto route = std::make_shared<Route>();
    route->segments = splitSegments(path);
    route->method = std::move(method);
    route->pattern = std::move(path);
    route->handler = std::move(handler);
    route->options = options;
    routes_.push_back(std::move(route));
    return {};
  } catch (...) {
    return makeError(ErrorCode::Internal, "out of memory");
  }
}

void FakeSourceContext::setEmitResult(EmitResult result) {
  setEmitPolicy([result](const std::vector<Event>&) { return result; });
}

void FakeSourceContext::setEmitPolicy(EmitPolicy policy) {
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
}

void FakeSourceContext::resetEmitPolicy() { setEmitPolicy(nullptr); }

void FakeSourceContext::holdCallbacks(bool hold) {
  std::lock_guard lock(mutex_);
  hold_ = hold;
}

std::size_t FakeSourceContext::releaseCallbacks() {
  std::vector<std::pair<EmitCallback, EmitResult>> held;
  {
    std::lock_guard lock(mutex_);
    held.swap(held_);
  }
  for (auto& [done, result] : held) {
    if (done) {
      done(std::move(result));
    }
  }
  return held.size();
}

std::vector<EmitCall> FakeSourceContext::emitCalls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

std::vector<Event> FakeSourceContext::events() const {
  std::lock_guard lock(mutex_);
  std::vector<Event> out;
  for (const auto& call : calls_) {
    if (call.result.status.ok()) {
      out.insert(out.end(), call.events.begin(), call.events.end());
    }
  }
  return out;
}

std::size_t FakeSourceContext::emitCount() const {
  std::lock_guard lock(mutex_);
  return calls_.size();
}

bool FakeSourceContext::waitForEvents(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return events_changed_.wait_for(lock, timeout, [&] { return accepted_events_ >= n; });
}

std::vector<RegisteredRoute> FakeSourceContext::routes() const {
  std::lock_guard lock(mutex_);
  std::vector<RegisteredRoute> out;
  for (const auto& route : routes_) {
    out.push_back(RegisteredRoute{route->method, route->pattern, route->options});
  }
  return out;
}

Result<HttpResponse> FakeSourceContext::call(std::string method, std::string target,
                                             std::string body, HttpHeaders headers,
                                             std::chrono::milliseconds wait) {
  auto future =
      callAsync(std::move(method), std::move(target), std::move(body), std::move(headers));
  if (future.wait_for(wait) != std::future_status::ready) {
    return makeError(ErrorCode::Unavailable,
                     "the handler did not answer within " + std::to_string(wait.count()) + " ms");
  }
  return future.get();
}

std::future<Result<HttpResponse>> FakeSourceContext::callAsync(std::string method,
                                                               std::string target, std::string body,
                                                               HttpHeaders headers) {
  std::transform(method.begin(), method.end(), method.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  HttpRequest request;
  const auto question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) {
    request.query = target.substr(question + 1);
  }
  const auto path_segments = splitSegments(request.path);

  HttpHandler handler;
  RouteOptions options;
  {
    std::lock_guard lock(mutex_);
    for (const auto& route : routes_) {
      if (route->method == method && route->matches(path_segments, request.params)) {
        handler = route->handler;
        options = route->options;
        break;
      }
    }
  }
  if (!handler) {
    return readyFuture(
        makeError(ErrorCode::NotFound, "no route for " + method + " " + request.path));
  }
  const std::size_t limit =
      options.max_body_bytes == 0 ? kDefaultMaxBodyBytes : options.max_body_bytes;
  if (body.size() > limit) {
    return readyFuture(
        HttpResponse::json(413, R"({"success":false,"error":"request body exceeds )" +
                                    std::to_string(limit) + R"( bytes"})"));
  }
  request.method = std::move(method);
  request.headers = std::move(headers);
  request.body = std::move(body);
  request.remote_address = "127.0.0.1";

  std::promise<Result<HttpResponse>> promise;
  auto future = promise.get_future();
  auto sink = std::make_shared<PromiseSink>(std::move(promise));
  try {
    handler(std::move(request), HttpResponder(sink));
    sink->handlerReturned();
  } catch (const std::exception& e) {
    sink->handlerThrew(e.what());
  } catch (...) {
    sink->handlerThrew("a non-standard exception");
  }
  return future;
}

}  // namespace junction::sdk::testing
