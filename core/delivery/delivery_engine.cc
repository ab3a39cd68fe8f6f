#include "core/delivery/delivery_engine.h"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>
#include <charconv>
#include <filesystem>

#include "core/http/admin_auth.h"
#include "core/runtime/thread.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/text.h"

namespace junction::core::delivery {

namespace json = boost::json;

DeliveryEngine::DeliveryEngine(queue::Log& log, sdk::Metrics& metrics, sdk::Logger& logger,
                               const sdk::Clock& clock)
    : log_(&log), metrics_(metrics), logger_(logger), clock_(clock) {}

DeliveryEngine::DeliveryEngine(queue::EventQueue& queue, sdk::Metrics& metrics,
                               sdk::Logger& logger, const sdk::Clock& clock)
    : queue_(&queue), metrics_(metrics), logger_(logger), clock_(clock) {}

DeliveryEngine::~DeliveryEngine() { stop(); }

sdk::Status DeliveryEngine::open(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot create " + state_dir + ": " + ec.message());
  }
  state_dir_ = state_dir;
  if (queue_ != nullptr) {
    // Positions live in the queue's consumers; only the dead letters are kept here (this
    // node's: each node holds the dead letters of the deliveries it made).
    auto dlq = DeadLetterStore::open(
        (std::filesystem::path(state_dir) / "dead_letters.db").string(), /*must_exist=*/false);
    if (!dlq) {
      return std::move(dlq).error();
    }
    dead_letters_ = std::move(dlq).value();
    return {};
  }
  queue::CursorStoreOptions options;
  options.path = state_dir;
  auto cursors = queue::CursorStore::open(options);
  if (!cursors) {
    return std::move(cursors).error();
  }
  cursors_ = std::move(cursors).value();
  log_source_ = std::make_unique<LogSource>(*log_, *cursors_);
  // cursors.dat exists from the first start on: the daemon ran here before, so a missing
  // dead-letter store is damage.
  const bool ran_before = cursors_->fileExisted();
  cursor_flush_errors_ = &metrics_.counter(
      "junction_cursor_write_errors_total",
      "Cursor file writes that failed (retried; a restart repeats deliveries since the last one)");
  if (!cursors_->fastFileProblem().empty()) {
    // Only the last few milliseconds of deliveries before a power loss are repeated.
    logger_.warn("cursors.fast ignored: the durable cursor file is used, and deliveries since "
                 "its last write are repeated",
                 {{"problem", cursors_->fastFileProblem()}});
  }
  if (!cursors_->fileExisted()) {
    // No cursor file beside a queue that still holds events: the delivery positions were lost
    // (deleted, or a disk replaced). Starting each destination at `start:` would skip or
    // repeat events without a word; refuse and say how to go on.
    const queue::Offset begin = log_->beginOffset();
    const queue::Offset end = log_->durableEnd();
    if (begin < end) {
      const std::string file = (std::filesystem::path(state_dir) / "cursors" / "cursors.dat").string();
      return sdk::makeError(
          sdk::ErrorCode::Internal,
          "cursor file " + file + " is missing, but the queue holds " + std::to_string(end - begin) +
              " bytes of events (offsets " + std::to_string(begin) + ".." + std::to_string(end) +
              ") that destinations may not have received: every destination's delivery position "
              "is lost, and nothing was skipped. `junction recover cursors --config FILE` "
              "restarts every destination at the oldest event the queue holds (already delivered "
              "ones are delivered again; destinations deduplicate on messageId)");
    }
    // A first start (or a queue with nothing left to deliver): from now on the file exists, so
    // its absence is damage.
    if (auto s = cursors_->createFile(); !s.ok()) {
      return s;
    }
  }
  auto dlq = DeadLetterStore::open((std::filesystem::path(state_dir) / "dead_letters.db").string(),
                                   /*must_exist=*/ran_before);
  if (!dlq) {
    return std::move(dlq).error();
  }
  dead_letters_ = std::move(dlq).value();
  return {};
}

sdk::Status DeliveryEngine::add(const config::ConnectorConfig& config,
                                std::shared_ptr<sdk::Destination> plugin, WorkerLimits limits,
                                std::shared_ptr<AccountThrottle> throttle) {
  std::unique_ptr<ConsumerSource> source;
  if (queue_ != nullptr) {
    auto consumer = queue_->consumer(
        config.id, config.start == "earliest" ? queue::StartAt::Earliest : queue::StartAt::Latest);
    if (!consumer) {
      return sdk::makeError(consumer.error().code,
                            "destination '" + config.id + "': " + consumer.error().message);
    }
    source = std::make_unique<ConsumerSource>(std::move(consumer).value());
  }
  WorkerDeps deps{source ? static_cast<WorkerSource&>(*source) : *log_source_,
                  *dead_letters_, metrics_, logger_, clock_, privacy_, std::move(throttle), tap_};
  auto w = std::make_shared<DestinationWorker>(config, std::move(plugin), deps, limits);
  std::error_code ec;
  if (!state_dir_.empty() &&
      std::filesystem::exists(std::filesystem::path(state_dir_) / "paused" / config.id, ec)) {
    w->setPaused(true);
    logger_.warn("destination starts paused (resume it with `junction resume " + config.id + "`)",
                 {{"destination", config.id}});
  }
  std::lock_guard lock(change_mutex_);
  if (source) {
    sources_[config.id] = std::move(source);
  }
  auto next = std::make_shared<Workers>(*workers());
  next->push_back(std::move(w));
  workers_.store(std::move(next));
  return {};
}

void DeliveryEngine::startSource(const std::shared_ptr<DestinationWorker>& w) {
  std::lock_guard lock(change_mutex_);
  if (auto it = sources_.find(w->id()); it != sources_.end()) {
    std::weak_ptr<DestinationWorker> weak = w;
    it->second->start([weak] {
      if (auto worker = weak.lock()) {
        worker->notifyAppend();
      }
    });
  }
}

void DeliveryEngine::stopSource(std::string_view id, bool erase) {
  std::lock_guard lock(change_mutex_);
  auto it = sources_.find(id);
  if (it == sources_.end()) {
    return;
  }
  it->second->stop();  // hands back, in order, what the worker did not finish
  if (erase) {
    sources_.erase(it);
  }
}

sdk::Status DeliveryEngine::addRunning(const config::ConnectorConfig& config,
                                       std::shared_ptr<sdk::Destination> plugin,
                                       std::shared_ptr<AccountThrottle> throttle) {
  if (worker(config.id) != nullptr) {
    return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                          "destination '" + config.id + "' is running already");
  }
  if (auto s = add(config, std::move(plugin), {}, std::move(throttle)); !s.ok()) {
    return s;
  }
  auto w = worker(config.id);
  if (auto s = w->start(); !s.ok()) {
    (void)remove(config.id);
    return sdk::makeError(s.error().code, "destination '" + config.id + "': " + s.message());
  }
  startSource(w);
  return {};
}

sdk::Status DeliveryEngine::remove(std::string_view id) {
  std::shared_ptr<DestinationWorker> gone;
  {
    std::lock_guard lock(change_mutex_);
    auto next = std::make_shared<Workers>();
    for (const auto& w : *workers()) {
      if (w->id() == id) {
        gone = w;
      } else {
        next->push_back(w);
      }
    }
    if (!gone) {
      return sdk::makeError(sdk::ErrorCode::NotFound, "no running destination '" + std::string(id) + "'");
    }
    workers_.store(std::move(next));
  }
  gone->stop();  // deliveries in flight finish; the cursor is committed and kept
  stopSource(id, /*erase=*/true);
  if (cursors_) {
    (void)cursors_->flush();
  }
  return {};
}

std::vector<std::pair<std::string, std::uint64_t>> DeliveryEngine::removedWithBacklog() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  if (!cursors_) {
    return out;
  }
  const auto running = workers();
  const queue::Offset end = log_->durableEnd();
  for (const auto& [name, offset] : cursors_->all()) {
    bool runs = false;
    for (const auto& w : *running) {
      runs = runs || w->id() == name;
    }
    if (!runs) {
      out.emplace_back(name, end > offset ? end - offset : 0);
    }
  }
  return out;
}

sdk::Status DeliveryEngine::forget(std::string_view id) {
  if (worker(id) != nullptr) {
    return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                          "destination '" + std::string(id) +
                              "' is running: remove it from the configuration and reload first");
  }
  if (queue_ != nullptr) {
    if (auto s = queue_->removeConsumer(std::string(id)); !s.ok()) {
      return s;
    }
    logger_.warn("removed destination forgotten: its consumer is deleted from the queue",
                 {{"destination", std::string(id)}});
    if (audit_ != nullptr) {
      (void)audit_->append("destination_forget", json::object{{"destination", std::string(id)}});
    }
    return {};
  }
  if (!cursors_->load(std::string(id))) {
    return sdk::makeError(sdk::ErrorCode::NotFound,
                          "no stored position for destination '" + std::string(id) + "'");
  }
  if (auto s = cursors_->remove(std::string(id)); !s.ok()) {
    return s;
  }
  logger_.warn("removed destination forgotten: its backlog may be deleted",
               {{"destination", std::string(id)}});
  if (audit_ != nullptr) {
    (void)audit_->append("destination_forget", json::object{{"destination", std::string(id)}});
  }
  return cursors_->flush();
}

sdk::Status DeliveryEngine::setPaused(std::string_view id, bool paused) {
  auto w = worker(id);
  if (w == nullptr) {
    return sdk::makeError(sdk::ErrorCode::NotFound, "no running destination '" + std::string(id) + "'");
  }
  // The marker first: a pause that cannot be kept is refused, not half done.
  const auto dir = std::filesystem::path(state_dir_) / "paused";
  const auto marker = dir / std::string(id);
  std::error_code ec;
  if (paused) {
    std::filesystem::create_directories(dir, ec);
    if (!ec) {
      std::FILE* f = std::fopen(marker.c_str(), "w");
      if (f == nullptr || std::fclose(f) != 0) {
        ec = std::error_code(errno, std::generic_category());
      }
    }
  } else {
    std::filesystem::remove(marker, ec);
  }
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot " + std::string(paused ? "write " : "remove ") + marker.string() +
                              ": " + ec.message());
  }
  w->setPaused(paused);
  if (audit_ != nullptr) {
    if (auto s = audit_->append(paused ? "destination_pause" : "destination_resume",
                                json::object{{"destination", std::string(id)}});
        !s.ok()) {
      logger_.error("cannot write the audit log", {{"error", s.message()}});
    }
  }
  return {};
}

// A destination's state, most pressing first: paused (an operator's choice), stalled (events
// waiting, no progress for a minute), retrying (some events wait for a retry), backlogged
// (events waiting, moving), idle.
json::array DeliveryEngine::describe() const {
  json::array list;
  const std::int64_t now = clock_.nowMs();
  for (const auto& w : *workers()) {
    const auto s = w->stats();
    const queue::Offset end = w->sourceEnd();
    const queue::Offset cursor = w->cursor();
    const auto dead = dead_letters_->count(w->id());
    const std::uint64_t backlog = end > cursor ? end - cursor : 0;
    const char* state = w->paused()                                        ? "paused"
                        : backlog > 0 && now - w->progressAtMs() >= 60'000 ? "stalled"
                        : s.retrying > 0                                   ? "retrying"
                        : backlog > 0 || s.window_events > 0               ? "delivering"
                                                                           : "idle";
    json::object o{{"id", w->id()},
                   {"state", state},
                   {"cursor", cursor},
                   {"read_position", s.read_position},
                   // On the embedded log, bytes of log; on another backend, the messages this
                   // node took from the queue and has not finished.
                   {log_ != nullptr ? "backlog_bytes" : "backlog_messages", backlog},
                   {"pending", s.window_events},
                   {"in_flight", s.in_flight},
                   {"retrying", s.retrying},
                   {"oldest_pending_age_seconds",
                    s.oldest_received_ms > 0 ? std::max<std::int64_t>(0, now - s.oldest_received_ms) / 1000.0
                                             : 0.0},
                   {"delivered", s.delivered},
                   {"dead_lettered", s.dead_lettered},
                   {"dead_letters_stored", dead ? *dead : 0},
                   {"last_success_ms", s.last_success_ms},
                   {"last_progress_ms", w->progressAtMs()}};
    if (s.last_error_ms > 0) {
      o["last_error"] = json::object{{"at_ms", s.last_error_ms}, {"reason", s.last_error}};
    } else {
      o["last_error"] = nullptr;
    }
    list.push_back(std::move(o));
  }
  return list;
}

sdk::Status DeliveryEngine::start() {
  for (const auto& w : *workers()) {
    if (auto s = w->start(); !s.ok()) {
      return sdk::makeError(s.error().code, "destination '" + w->id() + "': " + s.message());
    }
    startSource(w);
  }
  if (log_ != nullptr) {
    log_->setAppendListener([this] {
      for (const auto& w : *workers()) {
        w->notifyAppend();
      }
      for (auto& r : readers_) {
        r.on_append();
      }
    });
  }
  started_ = true;
  retention_ = std::thread([this] {
    runtime::makeThisThreadBackground();  // before the name: a named thread is settled
    runtime::nameThisThread("jn-retention");
    retentionLoop();
  });
  return {};
}

void DeliveryEngine::addReader(std::function<void()> on_append,
                               std::function<queue::Offset()> needs) {
  readers_.push_back({std::move(on_append), std::move(needs)});
}

void DeliveryEngine::stop() {
  if (!started_) {
    for (const auto& w : *workers()) {
      w->stop();
      stopSource(w->id(), /*erase=*/false);
    }
    return;
  }
  started_ = false;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  retention_.join();
  if (log_ != nullptr) {
    log_->setAppendListener(nullptr);
  }
  for (const auto& w : *workers()) {
    w->stop();
    stopSource(w->id(), /*erase=*/false);
  }
  if (cursors_) {
    (void)cursors_->flush();
  }
}

void DeliveryEngine::wakeWorkers() {
  for (const auto& w : *workers()) {
    w->notifyAppend();
  }
}

void DeliveryEngine::notifyReplays() {
  for (const auto& w : *workers()) {
    w->notifyReplay();
  }
}

std::vector<std::string> DeliveryEngine::stalled(std::int64_t stall_ms) const {
  std::vector<std::string> out;
  const std::int64_t now = clock_.nowMs();
  for (const auto& w : *workers()) {
    if (w->paused()) {
      continue;
    }
    const queue::Offset end = w->sourceEnd();
    const queue::Offset cursor = w->cursor();
    const std::int64_t idle_ms = now - w->progressAtMs();
    if (cursor < end && idle_ms >= stall_ms) {
      out.push_back("destination " + w->id() + ": " + std::to_string(end - cursor) +
                    (log_ != nullptr ? " bytes" : " messages") + " waiting, no progress for " +
                    std::to_string(idle_ms / 1000) + " s");
    }
  }
  return out;
}

std::shared_ptr<DestinationWorker> DeliveryEngine::worker(std::string_view id) const {
  for (const auto& w : *workers()) {
    if (w->id() == id) {
      return w;
    }
  }
  return nullptr;
}

std::size_t DeliveryEngine::applyRetention() {
  if (queue_ != nullptr) {
    auto freed = queue_->retain();
    if (!freed) {
      logger_.warn("queue retention failed (retried)", {{"error", freed.error().message}});
      return 0;
    }
    return *freed;
  }
  queue::Offset low = log_->durableEnd();
  for (const auto& w : *workers()) {
    low = std::min(low, w->cursor());
  }
  // A destination removed from the configuration keeps its backlog until it is added again
  // or forgotten (junction forget): its stored cursor holds retention back too.
  for (const auto& [name, offset] : cursors_->all()) {
    low = std::min(low, offset);
  }
  for (auto& r : readers_) {
    low = std::min(low, r.needs());
  }
  auto deleted = log_->truncateBefore(low);
  if (!deleted) {
    logger_.error("queue retention failed", {{"error", deleted.error().message}});
    return 0;
  }
  if (*deleted > 0) {
    logger_.debug("queue segments deleted", {{"count", *deleted}, {"below", low}});
  }
  return *deleted;
}

void DeliveryEngine::retentionLoop() {
  std::unique_lock lock(mutex_);
  if (!cursors_) {
    // Another backend: retain() asks the servers for every consumer's position, so it runs
    // less often; what it frees is only the servers' disk.
    while (!stop_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return stopping_; })) {
      lock.unlock();
      applyRetention();
      lock.lock();
    }
    return;
  }
  std::uint64_t reported_errors = cursors_->flushErrors();
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) {
      break;
    }
    lock.unlock();
    applyRetention();
    // Failed cursor writes (a full disk, an I/O error) are retried every interval; say so once
    // a second while they fail: a restart would repeat every delivery since the last write.
    if (const std::uint64_t errors = cursors_->flushErrors(); errors != reported_errors) {
      cursor_flush_errors_->inc(errors - reported_errors);
      logger_.error("cursor file cannot be written: a restart now would deliver again every event "
                    "delivered since its last write",
                    {{"failed_writes", errors - reported_errors},
                     {"error", cursors_->lastFlushError()}});
      reported_errors = errors;
    }
    lock.lock();
  }
}

// --- admin API --------------------------------------------------------------------------------

namespace {

using http::checkAdmin;
using http::jsonError;

// A filter the API could not read: answered 400 with the field named (empty: the body itself).
struct FilterProblem {
  std::string field;
  std::string message;
};

// What a DLQ call selects. `all` is the explicit "every dead letter" a purge or replay needs.
struct Selection {
  DeadLetterFilter filter;
  bool all = false;

  bool empty() const {
    return filter.destination.empty() && filter.person.empty() && filter.ids.empty() &&
           filter.since_ms == 0 && filter.until_ms == 0;
  }
};

sdk::HttpResponse filterError(const FilterProblem& p) {
  json::object body{{"success", false}, {"error", p.message}};
  if (!p.field.empty()) {
    body["field"] = p.field;
  }
  return sdk::HttpResponse::json(400, json::serialize(body));
}

constexpr std::size_t kMaxListLimit = 10000;
constexpr std::string_view kNoFilter =
    "no filter: send ids, destination, person, since, until or all: true";

using http::parseWholeNumber;

// `since` / `until`: an ISO-8601 date-time, or Unix epoch milliseconds (a JSON integer, or
// digits in a query string), after 1970.
std::optional<FilterProblem> readTime(std::string_view field, const json::value& v,
                                      std::int64_t& out) {
  std::optional<std::int64_t> ms;
  if (v.is_int64()) {
    ms = v.as_int64();
  } else if (v.is_string()) {
    std::string_view text = v.as_string();
    ms = sdk::parseIsoTimestamp(text);
    if (!ms) {
      ms = parseWholeNumber(text);
    }
  }
  if (!ms || *ms <= 0) {
    return FilterProblem{std::string(field),
                         "`" + std::string(field) +
                             "` must be an ISO-8601 date-time (2026-11-28T15:11:01Z) or epoch "
                             "milliseconds after 1970"};
  }
  out = *ms;
  return std::nullopt;
}

std::optional<FilterProblem> readId(const json::value& v, std::vector<std::int64_t>& ids) {
  if (!v.is_int64() || v.as_int64() <= 0) {
    return FilterProblem{"ids", "`ids` must be an array of dead-letter ids (integers), as "
                                "GET /admin/dlq lists them"};
  }
  ids.push_back(v.as_int64());
  return std::nullopt;
}

std::optional<FilterProblem> readText(std::string_view field, const json::value& v,
                                      std::string& out) {
  if (!v.is_string()) {
    return FilterProblem{std::string(field), "`" + std::string(field) + "` must be a string"};
  }
  if (v.as_string().empty()) {
    return FilterProblem{std::string(field), "`" + std::string(field) + "` is empty"};
  }
  out = std::string(v.as_string());
  return std::nullopt;
}

// GET /admin/dlq?destination=&person=&since=&until=&id=N&id=M&limit=N: every parameter is
// read strictly; an unknown, repeated or unreadable one is a problem, never ignored.
std::optional<FilterProblem> selectionFromQuery(std::string_view query, Selection& out) {
  auto& f = out.filter;
  if (!boost::urls::parse_query(query)) {
    return FilterProblem{"", "malformed query string"};
  }
  std::vector<std::string> seen;
  for (auto p : boost::urls::params_view(query)) {
    const std::string key = p.key;
    if (!sdk::isUtf8(key) || !sdk::isUtf8(p.value)) {
      // Not quoted back: the answer is JSON, and these bytes are not text.
      return FilterProblem{"", "a query parameter name or value is not UTF-8 text"};
    }
    const json::value value(std::string(p.value));
    if (key != "id") {
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        return FilterProblem{key, "`" + key + "` is given twice"};
      }
      seen.push_back(key);
    }
    std::optional<FilterProblem> problem;
    if (key == "destination") {
      problem = readText(key, value, f.destination);
    } else if (key == "person") {
      problem = readText(key, value, f.person);
    } else if (key == "since") {
      problem = readTime(key, value, f.since_ms);
    } else if (key == "until") {
      problem = readTime(key, value, f.until_ms);
    } else if (key == "limit") {
      auto n = parseWholeNumber(p.value);
      if (!n || *n < 1 || static_cast<std::size_t>(*n) > kMaxListLimit) {
        return FilterProblem{key, "`limit` must be an integer from 1 to " +
                                      std::to_string(kMaxListLimit)};
      }
      f.limit = static_cast<std::size_t>(*n);
    } else if (key == "id") {
      auto n = parseWholeNumber(p.value);
      if (!n || *n <= 0) {
        return FilterProblem{key, "`id` must be a dead-letter id (a positive integer)"};
      }
      f.ids.push_back(*n);
    } else {
      return FilterProblem{key, "unknown parameter `" + key +
                                    "` (destination, person, since, until, id, limit)"};
    }
    if (problem) {
      return problem;
    }
  }
  return std::nullopt;
}

// POST /admin/dlq/replay|purge: a JSON object of {destination, person, since, until, ids} or
// {"all": true}. Anything the API cannot read is a problem: an unreadable filter must never
// widen the selection to every dead letter.
std::optional<FilterProblem> selectionFromBody(std::string_view text, Selection& out) {
  auto& f = out.filter;
  boost::system::error_code ec;
  json::value body = text.empty() ? json::value(json::object{}) : json::parse(text, ec);
  if (ec || !body.is_object()) {
    return FilterProblem{"", "expected a JSON object: {\"ids\": [1, 2]}, {\"destination\": "
                             "\"...\"}, ... or {\"all\": true}"};
  }
  for (const auto& [k, v] : body.as_object()) {
    const std::string key(k);
    std::optional<FilterProblem> problem;
    if (key == "destination") {
      problem = readText(key, v, f.destination);
    } else if (key == "person") {
      problem = readText(key, v, f.person);
    } else if (key == "since") {
      problem = readTime(key, v, f.since_ms);
    } else if (key == "until") {
      problem = readTime(key, v, f.until_ms);
    } else if (key == "ids") {
      if (!v.is_array()) {
        return FilterProblem{key, "`ids` must be an array of dead-letter ids (integers), as "
                                  "GET /admin/dlq lists them"};
      }
      if (v.as_array().empty()) {
        return FilterProblem{key, "`ids` is empty"};
      }
      for (const auto& id : v.as_array()) {
        if ((problem = readId(id, f.ids))) {
          break;
        }
      }
    } else if (key == "all") {
      if (!v.is_bool()) {
        return FilterProblem{key, "`all` must be true or false"};
      }
      out.all = v.as_bool();
    } else {
      return FilterProblem{key, "unknown field `" + key +
                                    "` (destination, person, since, until, ids, all)"};
    }
    if (problem) {
      return problem;
    }
  }
  if (out.all && !out.empty()) {
    return FilterProblem{"all", "`all: true` cannot be combined with other filters"};
  }
  if (!out.all && out.empty()) {
    return FilterProblem{"", std::string(kNoFilter)};
  }
  return std::nullopt;
}

json::object toJson(const DeadLetter& d) {
  const auto& h = d.event.header();
  boost::system::error_code ec;
  json::value event = json::parse(d.event.json(), ec);
  return json::object{{"id", d.id},
                      {"destination", d.destination},
                      {"messageId", h.message_id},
                      {"person", h.personKey()},
                      {"source", h.source_id},
                      {"receivedAt", sdk::formatIsoTimestamp(h.received_at_ms)},
                      {"failedAt", sdk::formatIsoTimestamp(d.failed_at_ms)},
                      {"attempts", d.attempts},
                      {"reason", d.reason},
                      {"replaying", d.replaying},
                      {"event", ec ? json::value(std::string(d.event.json())) : std::move(event)}};
}

// The admin check and the selection, common to every DLQ call; nullopt when already answered.
std::optional<DeadLetterFilter> admitted(const sdk::HttpRequest& req, const std::string& token,
                                         sdk::HttpResponder& respond) {
  if (auto denied = checkAdmin(req, token)) {
    respond(std::move(*denied));
    return std::nullopt;
  }
  Selection selection;
  auto problem = req.method == "GET" ? selectionFromQuery(req.query, selection)
                                     : selectionFromBody(req.body, selection);
  if (problem) {
    respond(filterError(*problem));
    return std::nullopt;
  }
  return std::move(selection.filter);
}

}  // namespace

void DeliveryEngine::registerAdminRoutes(http::Router& router, std::string admin_token) {
  auto token = std::make_shared<std::string>(std::move(admin_token));
  (void)router.add("GET", "/admin/dlq", [this, token](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    auto filter = admitted(req, *token, respond);
    if (!filter) {
      return;
    }
    auto rows = dead_letters_->list(*filter);
    if (!rows) {
      respond(jsonError(500, rows.error().message));
      return;
    }
    json::array list;
    for (const auto& d : *rows) {
      list.push_back(toJson(d));
    }
    json::object out{{"count", list.size()}, {"dead_letters", std::move(list)}};
    respond(sdk::HttpResponse::json(200, json::serialize(out)));
  });
  auto mutate = [this, token](bool replay) {
    return [this, token, replay](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
      auto filter = admitted(req, *token, respond);
      if (!filter) {
        return;
      }
      if (replay && !filter->destination.empty() && worker(filter->destination) == nullptr) {
        respond(jsonError(404, "no running destination '" + filter->destination + "'"));
        return;
      }
      auto n = replay ? dead_letters_->markForReplay(*filter) : dead_letters_->purge(*filter);
      if (!n) {
        respond(jsonError(500, n.error().message));
        return;
      }
      if (replay) {
        for (const auto& w : *workers()) {
          if (filter->destination.empty() || w->id() == filter->destination) {
            w->notifyReplay();
          }
        }
      }
      logger_.info(replay ? "dead letters replayed" : "dead letters purged",
                   {{"count", *n}, {"destination", filter->destination}});
      if (audit_ != nullptr) {
        json::array ids;
        for (auto id : filter->ids) {
          ids.push_back(id);
        }
        // The person (a userId or anonymousId) is recorded hashed, like regulation subjects.
        json::object detail{{"count", *n}, {"destination", filter->destination}, {"ids", ids}};
        if (!filter->person.empty()) {
          detail["person_sha256"] = sdk::sha256Hex(filter->person);
        }
        if (auto s = audit_->append(replay ? "dlq_replay" : "dlq_purge", std::move(detail)); !s.ok()) {
          logger_.error("cannot write the audit log", {{"error", s.message()}});
        }
      }
      respond(sdk::HttpResponse::json(
          200, json::serialize(json::object{{"success", true}, {replay ? "replayed" : "purged", *n}})));
    };
  };
  (void)router.add("POST", "/admin/dlq/replay", mutate(true));
  (void)router.add("POST", "/admin/dlq/purge", mutate(false));
  (void)router.add("GET", "/admin/destinations",
                   [this, token](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
                     if (auto denied = checkAdmin(req, *token)) {
                       respond(std::move(*denied));
                       return;
                     }
                     respond(sdk::HttpResponse::json(
                         200, json::serialize(json::object{{"destinations", describe()}})));
                   });
  auto pause = [this, token](bool paused) {
    return [this, token, paused](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
      if (auto denied = checkAdmin(req, *token)) {
        respond(std::move(*denied));
        return;
      }
      const std::string id = req.params["id"];
      if (auto s = setPaused(id, paused); !s.ok()) {
        respond(jsonError(s.error().code == sdk::ErrorCode::NotFound ? 404 : 500, s.message()));
        return;
      }
      respond(sdk::HttpResponse::json(
          200, json::serialize(json::object{{"success", true},
                                            {"destination", id},
                                            {"state", paused ? "paused" : "resumed"}})));
    };
  };
  (void)router.add("POST", "/admin/destinations/{id}/pause", pause(true));
  (void)router.add("POST", "/admin/destinations/{id}/resume", pause(false));
}

}  // namespace junction::core::delivery
