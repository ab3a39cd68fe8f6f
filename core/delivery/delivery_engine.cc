#include "core/delivery/delivery_engine.h"

#include <boost/json.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>
#include <charconv>
#include <filesystem>

#include "core/http/admin_auth.h"
#include "core/runtime/thread.h"
#include "junction/sdk/crypto.h"

namespace junction::core::delivery {

namespace json = boost::json;

DeliveryEngine::DeliveryEngine(queue::Log& log, sdk::Metrics& metrics, sdk::Logger& logger,
                               const sdk::Clock& clock)
    : log_(log), metrics_(metrics), logger_(logger), clock_(clock) {}

DeliveryEngine::~DeliveryEngine() { stop(); }

sdk::Status DeliveryEngine::open(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot create " + state_dir + ": " + ec.message());
  }
  queue::CursorStoreOptions options;
  options.path = state_dir;
  auto cursors = queue::CursorStore::open(options);
  if (!cursors) {
    return std::move(cursors).error();
  }
  cursors_ = std::move(cursors).value();
  if (!cursors_->fileExisted()) {
    // No cursor file beside a queue that still holds events: the delivery positions were lost
    // (deleted, or a disk replaced). Starting each destination at `start:` would skip or
    // repeat events without a word; refuse and say how to go on.
    const queue::Offset begin = log_.beginOffset();
    const queue::Offset end = log_.durableEnd();
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
  auto dlq = DeadLetterStore::open((std::filesystem::path(state_dir) / "dead_letters.db").string());
  if (!dlq) {
    return std::move(dlq).error();
  }
  dead_letters_ = std::move(dlq).value();
  return {};
}

sdk::Status DeliveryEngine::add(const config::ConnectorConfig& config,
                                std::shared_ptr<sdk::Destination> plugin, WorkerLimits limits,
                                std::shared_ptr<AccountThrottle> throttle) {
  WorkerDeps deps{log_, *cursors_, *dead_letters_, metrics_, logger_, clock_, privacy_,
                  std::move(throttle)};
  workers_.push_back(std::make_unique<DestinationWorker>(config, std::move(plugin), deps, limits));
  return {};
}

sdk::Status DeliveryEngine::start() {
  for (auto& w : workers_) {
    if (auto s = w->start(); !s.ok()) {
      return sdk::makeError(s.error().code, "destination '" + w->id() + "': " + s.message());
    }
  }
  log_.setAppendListener([this] {
    for (auto& w : workers_) {
      w->notifyAppend();
    }
  });
  started_ = true;
  retention_ = std::thread([this] {
    runtime::makeThisThreadBackground();  // before the name: a named thread is settled
    runtime::nameThisThread("jn-retention");
    retentionLoop();
  });
  return {};
}

void DeliveryEngine::stop() {
  if (!started_) {
    for (auto& w : workers_) {
      w->stop();
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
  log_.setAppendListener(nullptr);
  for (auto& w : workers_) {
    w->stop();
  }
  if (cursors_) {
    (void)cursors_->flush();
  }
}

void DeliveryEngine::wakeWorkers() {
  for (auto& w : workers_) {
    w->notifyAppend();
  }
}

DestinationWorker* DeliveryEngine::worker(std::string_view id) {
  for (auto& w : workers_) {
    if (w->id() == id) {
      return w.get();
    }
  }
  return nullptr;
}

std::size_t DeliveryEngine::applyRetention() {
  queue::Offset low = log_.durableEnd();
  for (auto& w : workers_) {
    low = std::min(low, w->cursor());
  }
  auto deleted = log_.truncateBefore(low);
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
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) {
      break;
    }
    lock.unlock();
    applyRetention();
    lock.lock();
  }
}

// --- admin API --------------------------------------------------------------------------------

namespace {

using http::checkAdmin;
using http::jsonError;

std::int64_t toInt(std::string_view s) {
  std::int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// A filter from a query string (GET) or a JSON body (POST).
sdk::Result<DeadLetterFilter> filterFrom(const sdk::HttpRequest& request) {
  DeadLetterFilter f;
  auto readTime = [](const json::value& v) -> std::int64_t {
    if (v.is_int64()) {
      return v.as_int64();
    }
    if (v.is_string()) {
      return sdk::parseIsoTimestamp(v.as_string()).value_or(0);
    }
    return 0;
  };
  if (request.method == "GET") {
    if (!boost::urls::parse_query(request.query)) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, "malformed query string");
    }
    for (auto p : boost::urls::params_view(request.query)) {
      std::string value = p.value;
      if (p.key == "destination") {
        f.destination = value;
      } else if (p.key == "person") {
        f.person = value;
      } else if (p.key == "since") {
        f.since_ms = readTime(json::value(value));
      } else if (p.key == "until") {
        f.until_ms = readTime(json::value(value));
      } else if (p.key == "limit") {
        f.limit = static_cast<std::size_t>(toInt(value));
      } else if (p.key == "id") {
        f.ids.push_back(toInt(value));
      }
    }
    return f;
  }
  boost::system::error_code ec;
  json::value body = request.body.empty() ? json::value(json::object{}) : json::parse(request.body, ec);
  if (ec || !body.is_object()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "expected a JSON object");
  }
  const auto& o = body.as_object();
  if (const auto* v = o.if_contains("destination"); v && v->is_string()) {
    f.destination = std::string(v->as_string());
  }
  if (const auto* v = o.if_contains("person"); v && v->is_string()) {
    f.person = std::string(v->as_string());
  }
  if (const auto* v = o.if_contains("since")) {
    f.since_ms = readTime(*v);
  }
  if (const auto* v = o.if_contains("until")) {
    f.until_ms = readTime(*v);
  }
  if (const auto* v = o.if_contains("ids"); v && v->is_array()) {
    for (const auto& id : v->as_array()) {
      if (id.is_int64()) {
        f.ids.push_back(id.as_int64());
      }
    }
  }
  return f;
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
  auto filter = filterFrom(req);
  if (!filter) {
    respond(jsonError(400, filter.error().message));
    return std::nullopt;
  }
  return std::move(filter).value();
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
        for (auto& w : workers_) {
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
                     json::array list;
                     for (auto& w : workers_) {
                       auto s = w->stats();
                       auto dead = dead_letters_->count(w->id());
                       list.push_back(json::object{{"id", w->id()},
                                                   {"cursor", w->cursor()},
                                                   {"read_position", s.read_position},
                                                   {"pending", s.window_events},
                                                   {"in_flight", s.in_flight},
                                                   {"delivered", s.delivered},
                                                   {"dead_lettered", s.dead_lettered},
                                                   {"dead_letters_stored", dead ? *dead : 0}});
                     }
                     respond(sdk::HttpResponse::json(
                         200, json::serialize(json::object{{"destinations", std::move(list)}})));
                   });
}

}  // namespace junction::core::delivery
