#include "core/privacy/regulation_service.h"

#include <charconv>

#include <boost/json.hpp>
#include <random>

#include "core/http/admin_auth.h"
#include "core/runtime/thread.h"
#include "junction/sdk/crypto.h"

namespace junction::core::privacy {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

sdk::HttpResponse jsonResponse(int status, const json::object& body) {
  return sdk::HttpResponse::json(status, json::serialize(body));
}

std::string_view overallStatus(const json::object& destinations) {
  bool failed = false;
  for (const auto& [id, d] : destinations) {
    const json::value* s = d.is_object() ? d.as_object().if_contains("status") : nullptr;
    if (s == nullptr || !s->is_string() || s->as_string() == kStatusPending) {
      return kStatusPending;
    }
    failed = failed || s->as_string() == kStatusFailed;
  }
  return failed ? kStatusFailed : kStatusDone;
}

}  // namespace

std::string subjectDigest(const Subject& subject) { return sdk::sha256Hex(subject.value); }

RegulationService::RegulationService(PrivacyStore& store, AuditLog* audit, sdk::Logger& logger,
                                     sdk::Metrics& metrics, const sdk::Clock& clock,
                                     ErasureOptions options)
    : store_(store),
      audit_(audit),
      logger_(logger),
      metrics_(metrics),
      clock_(clock),
      options_(options) {}

RegulationService::~RegulationService() { stop(); }

void RegulationService::addDestination(const std::string& id,
                                       std::shared_ptr<sdk::Destination> plugin) {
  bool supports = false;
  try {
    supports = plugin->supportsErasure();
  } catch (...) {
    logger_.error("supportsErasure() threw", {{"destination", id}});
  }
  std::lock_guard lock(erasable_mutex_);
  std::erase_if(erasable_, [&](const auto& e) { return e.first == id; });  // a reloaded one
  if (supports) {
    erasable_.emplace_back(id, std::move(plugin));
  }
}

void RegulationService::removeDestination(const std::string& id) {
  std::lock_guard lock(erasable_mutex_);
  std::erase_if(erasable_, [&](const auto& e) { return e.first == id; });
}

std::shared_ptr<sdk::Destination> RegulationService::plugin(const std::string& id) const {
  std::lock_guard lock(erasable_mutex_);
  for (const auto& [name, p] : erasable_) {
    if (name == id) {
      return p;
    }
  }
  return nullptr;
}

void RegulationService::audit(std::string_view kind, json::object detail) {
  if (audit_ == nullptr) {
    return;
  }
  if (auto s = audit_->append(kind, std::move(detail)); !s.ok()) {
    logger_.error("cannot write the audit log", {{"error", s.message()}});
  }
}

sdk::Status RegulationService::start() {
  auto pending = store_.pending();
  if (!pending) {
    return pending.error();
  }
  std::lock_guard lock(mutex_);
  for (auto& r : *pending) {
    const json::value* d = r.detail.if_contains("destinations");
    if (d == nullptr || !d->is_object()) {
      continue;
    }
    for (const auto& [id, progress] : d->as_object()) {
      const json::value* s = progress.is_object() ? progress.as_object().if_contains("status") : nullptr;
      if (s != nullptr && s->is_string() && s->as_string() == kStatusPending) {
        Job job{r.id, std::string(id), r.subject, 0, SteadyClock::now()};
        if (const json::value* a = progress.as_object().if_contains("attempts"); a && a->is_int64()) {
          job.attempts = static_cast<int>(a->as_int64());
        }
        jobs_.push_back(std::move(job));
      }
    }
  }
  if (!jobs_.empty()) {
    logger_.info("resuming erasures", {{"count", jobs_.size()}});
  }
  thread_ = std::thread([this] {
    runtime::nameThisThread("jn-regulations");
    loop();
  });
  return {};
}

void RegulationService::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void RegulationService::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (jobs_.empty()) {
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      continue;
    }
    auto next = std::min_element(jobs_.begin(), jobs_.end(),
                                 [](const Job& a, const Job& b) { return a.due < b.due; });
    if (next->due > SteadyClock::now()) {
      wake_.wait_until(lock, next->due);
      continue;
    }
    Job job = std::move(*next);
    jobs_.erase(next);
    lock.unlock();
    run(job);
    lock.lock();
  }
}

void RegulationService::run(Job& job) {
  auto target = plugin(job.destination);
  if (!target) {
    finish(job, kStatusFailed, "the destination is no longer configured or cannot erase");
    return;
  }
  sdk::Person person;
  switch (job.subject.kind) {
    case SubjectKind::UserId:
      person.user_id = job.subject.value;
      break;
    case SubjectKind::AnonymousId:
      person.anonymous_id = job.subject.value;
      break;
    case SubjectKind::Email:
      person.email = job.subject.value;
      break;
  }
  ++job.attempts;
  sdk::Outcome outcome = sdk::Outcome::retry("erase() threw");
  try {
    outcome = target->erase(person);
  } catch (const std::exception& e) {
    outcome = sdk::Outcome::retry(std::string("erase() threw: ") + e.what());
  } catch (...) {
    outcome = sdk::Outcome::retry("erase() threw an unknown exception");
  }
  switch (outcome.kind) {
    case sdk::Outcome::Kind::Delivered:
      // A vendor that erases asynchronously says so in the reason (its operation id): keep it.
      finish(job, kStatusDone, outcome.reason);
      return;
    case sdk::Outcome::Kind::Failed:
      finish(job, kStatusFailed, outcome.reason);
      return;
    case sdk::Outcome::Kind::Retry:
      break;
  }
  if (job.attempts >= options_.max_attempts) {
    finish(job, kStatusFailed,
           "gave up after " + std::to_string(job.attempts) + " attempts: " + outcome.reason);
    return;
  }
  // Exponential backoff, jittered over its upper half, never below the plugin's retry_after.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto base = options_.initial_backoff.count() << std::min(job.attempts - 1, 20);
  base = std::min<std::int64_t>(base, options_.max_backoff.count());
  std::uniform_int_distribution<std::int64_t> jitter(base / 2, std::max<std::int64_t>(base / 2, base));
  auto delay = std::max(std::chrono::milliseconds(jitter(rng)),
                        std::chrono::duration_cast<std::chrono::milliseconds>(outcome.retry_after));
  logger_.warn("erasure will be retried", {{"regulation", job.regulation},
                                           {"destination", job.destination},
                                           {"attempts", job.attempts},
                                           {"delay_ms", delay.count()},
                                           {"reason", outcome.reason}});
  {
    std::lock_guard detail_lock(detail_mutex_);
    if (auto r = store_.regulation(job.regulation); r && *r) {
      json::object detail = (*r)->detail;
      json::value& all = detail["destinations"];
      if (!all.is_object()) {
        all = json::object{};
      }
      json::value& d = all.as_object()[job.destination];
      if (!d.is_object()) {
        d = json::object{{"status", kStatusPending}};
      }
      d.as_object()["attempts"] = job.attempts;
      d.as_object()["last_error"] = outcome.reason;
      (void)store_.updateRegulation(job.regulation, (*r)->status, detail);
    }
  }
  job.due = SteadyClock::now() + delay;
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();
}

void RegulationService::finish(const Job& job, std::string_view status, const std::string& reason) {
  metrics_
      .counter("junction_erasures_total", "Erasures asked of destination plugins, by result",
               {{"destination", job.destination}, {"result", std::string(status)}})
      .inc();
  logger_.info("erasure finished", {{"regulation", job.regulation},
                                    {"destination", job.destination},
                                    {"status", status},
                                    {"attempts", job.attempts},
                                    {"reason", reason}});
  {
    std::lock_guard detail_lock(detail_mutex_);
    auto r = store_.regulation(job.regulation);
    if (r && *r) {
      json::object detail = (*r)->detail;
      json::value& dv = detail["destinations"];
      if (!dv.is_object()) {
        dv = json::object{};
      }
      json::object progress{{"status", status},
                            {"attempts", job.attempts},
                            {"finished_at", sdk::formatIsoTimestamp(clock_.nowMs())}};
      if (!reason.empty()) {
        progress["reason"] = reason;
      }
      dv.as_object()[job.destination] = std::move(progress);
      if (auto s = store_.updateRegulation(job.regulation, overallStatus(dv.as_object()), detail);
          !s.ok()) {
        logger_.error("cannot record an erasure result", {{"error", s.message()}});
      }
    } else {
      logger_.error("erasure of an unknown regulation", {{"regulation", job.regulation}});
    }
  }
  json::object entry{{"regulation", job.regulation},
                     {"destination", job.destination},
                     {"status", status},
                     {"attempts", job.attempts}};
  if (!reason.empty()) {
    entry["reason"] = reason;
  }
  audit("erasure", std::move(entry));
}

json::object RegulationService::toJson(const Regulation& r) {
  json::object out{{"id", r.id},
                   {"type", toString(r.type)},
                   {"subject", json::object{{toString(r.subject.kind), r.subject.value}}},
                   {"createdAt", sdk::formatIsoTimestamp(r.created_at_ms)},
                   {"status", r.status}};
  for (const auto& [k, v] : r.detail) {
    out[k] = v;
  }
  return out;
}

sdk::HttpResponse RegulationService::create(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return http::jsonError(400, "expected a JSON object");
  }
  const auto& o = v.as_object();
  const json::value* t = o.if_contains("type");
  auto type = t != nullptr && t->is_string() ? parseRegulationType(t->as_string()) : std::nullopt;
  if (!type) {
    return http::jsonError(400, "type must be \"suppress\", \"unsuppress\" or \"delete\"");
  }
  std::optional<Subject> subject;
  int subjects = 0;
  for (SubjectKind kind : {SubjectKind::UserId, SubjectKind::AnonymousId, SubjectKind::Email}) {
    const json::value* s = o.if_contains(toString(kind));
    if (s == nullptr) {
      continue;
    }
    ++subjects;
    if (s->is_string() && !s->as_string().empty()) {
      subject = Subject{kind, std::string(s->as_string())};
    } else if (s->is_int64() || s->is_uint64()) {
      subject = Subject{kind, json::serialize(*s)};
    }
  }
  if (subjects != 1 || !subject) {
    return http::jsonError(400, "give exactly one of userId, anonymousId or email (a non-empty string)");
  }
  json::object detail;
  if (*type == RegulationType::Delete) {
    json::object destinations;
    std::lock_guard lock(erasable_mutex_);
    for (const auto& [id, p] : erasable_) {
      destinations[id] = json::object{{"status", kStatusPending}, {"attempts", 0}};
    }
    detail["queue"] = "undelivered events of the person are skipped by every destination";
    detail["consent"] = "erased";
    detail["destinations"] = std::move(destinations);
  }
  auto recorded = store_.record(*type, *subject, clock_.nowMs(), std::move(detail));
  if (!recorded) {
    return http::jsonError(recorded.error().code == sdk::ErrorCode::InvalidArgument ? 400 : 500,
                           recorded.error().message);
  }
  const Regulation& r = *recorded;
  metrics_.counter("junction_regulations_total", "Regulations received, by type",
                   {{"type", toString(r.type)}})
      .inc();
  audit("regulation", json::object{{"id", r.id},
                                   {"type", toString(r.type)},
                                   {"subject_kind", toString(r.subject.kind)},
                                   {"subject_sha256", subjectDigest(r.subject)}});
  logger_.info("regulation recorded", {{"id", r.id}, {"type", toString(r.type)},
                                       {"subject_kind", toString(r.subject.kind)}});
  if (on_recorded_) {
    on_recorded_(r);
  }
  if (r.type == RegulationType::Delete) {
    if (on_delete_) {
      on_delete_(r);
    }
    {
      std::lock_guard lock(mutex_);
      std::lock_guard erasable_lock(erasable_mutex_);
      for (const auto& [id, p] : erasable_) {
        jobs_.push_back(Job{r.id, id, r.subject, 0, SteadyClock::now()});
      }
    }
    wake_.notify_all();
  }
  json::object out{{"success", true}, {"id", r.id}, {"regulation", toJson(r)}};
  return jsonResponse(200, out);
}

sdk::HttpResponse RegulationService::get(const std::string& id) {
  auto r = store_.regulation(id);
  if (!r) {
    return http::jsonError(500, r.error().message);
  }
  if (!*r) {
    return http::jsonError(404, "no regulation with id '" + id + "'");
  }
  return jsonResponse(200, toJson(**r));
}

sdk::HttpResponse RegulationService::list(std::string_view query) {
  std::size_t limit = 100;
  if (!query.empty()) {
    constexpr std::string_view kLimit = "limit=";
    std::size_t n = 0;
    const char* end = query.data() + query.size();
    auto [ptr, ec] = query.rfind(kLimit, 0) == 0
                         ? std::from_chars(query.data() + kLimit.size(), end, n)
                         : std::from_chars_result{query.data(), std::errc::invalid_argument};
    if (ec != std::errc() || ptr != end || n == 0 || n > 1000) {
      return http::jsonError(400, "the only parameter is limit, a whole number from 1 to 1000");
    }
    limit = n;
  }
  auto rows = store_.recent(limit);
  if (!rows) {
    return http::jsonError(500, rows.error().message);
  }
  json::array list;
  for (const auto& r : *rows) {
    list.push_back(toJson(r));
  }
  json::object out{{"count", list.size()}, {"regulations", std::move(list)}};
  return jsonResponse(200, out);
}

void RegulationService::registerRoutes(http::Router& router, std::string admin_token) {
  auto token = std::make_shared<std::string>(std::move(admin_token));
  (void)router.add("POST", "/v1/regulations",
                   [this, token](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
                     if (auto denied = http::checkAdmin(req, *token)) {
                       respond(std::move(*denied));
                       return;
                     }
                     respond(create(req.body));
                   });
  (void)router.add("GET", "/v1/regulations",
                   [this, token](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
                     if (auto denied = http::checkAdmin(req, *token)) {
                       respond(std::move(*denied));
                       return;
                     }
                     respond(list(req.query));
                   });
  (void)router.add("GET", "/v1/regulations/{id}",
                   [this, token](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
                     if (auto denied = http::checkAdmin(req, *token)) {
                       respond(std::move(*denied));
                       return;
                     }
                     respond(get(req.params["id"]));
                   });
}

}  // namespace junction::core::privacy
