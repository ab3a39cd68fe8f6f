#include "core/daemon/daemon.h"

#include <boost/json.hpp>
#include <yaml-cpp/yaml.h>
#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <ctime>
#include <fstream>
#include <map>
#include <tuple>
#include <set>
#include <sstream>

#include "core/daemon/ui_files.h"
#include "core/http/admin_auth.h"
#include "core/privacy/privacy_recovery.h"
#include "core/profiles/postgres_profile_store.h"
#include "core/profiles/rocksdb_profile_store.h"
#include "core/profiles/sqlite_profile_store.h"
#include "core/runtime/thread.h"
#include "junction/sdk/crypto.h"

namespace junction::core::daemon {

namespace {

// A server address as it may be shown: without the user and password it may carry.
std::string withoutUserInfo(const std::string& url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string::npos ? 0 : scheme + 3;
  const auto at = url.find('@', start);
  return at == std::string::npos ? url : url.substr(0, start) + "***@" + url.substr(at + 1);
}

std::string shownUrls(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& url : urls) {
    out += (out.empty() ? "" : ",") + withoutUserInfo(url);
  }
  return out;
}

}  // namespace

namespace asio = boost::asio;

namespace {
// How long /readyz reports the queue's disk budget exhausted after an append was refused.
constexpr std::chrono::seconds kBudgetRefusalShown{5};
}  // namespace

Daemon::Daemon(config::DaemonConfig config, const plugin::PluginRegistry& plugins,
               telemetry::LogSink& sink)
    : config_(std::move(config)), plugins_(plugins), sink_(sink), log_(sink, "core") {
  // The debugger masks every field a destination hashes or drops: configured PII.
  std::vector<std::string> masked;
  for (const auto& d : config_.destinations) {
    masked.insert(masked.end(), d.hash.begin(), d.hash.end());
    masked.insert(masked.end(), d.drop.begin(), d.drop.end());
  }
  std::sort(masked.begin(), masked.end());
  masked.erase(std::unique(masked.begin(), masked.end()), masked.end());
  tap_ = std::make_unique<telemetry::EventTap>(std::move(masked));
}

namespace {

// GET /admin/debug/events: the live debugger's records as server-sent events.
class TapStream final : public http::StreamSource {
 public:
  explicit TapStream(std::shared_ptr<telemetry::EventTap::Subscription> subscription)
      : subscription_(std::move(subscription)) {}
  std::string take() override { return subscription_->take(); }

 private:
  std::shared_ptr<telemetry::EventTap::Subscription> subscription_;
};

// ?source=&destination=&event=&person=, each at most once; anything else is refused.
std::optional<std::string> readTapFilter(std::string_view query, telemetry::TapFilter& f) {
  if (!boost::urls::parse_query(query)) {
    return "malformed query string";
  }
  std::set<std::string> seen;
  for (auto p : boost::urls::params_view(query)) {
    const std::string key = p.key;
    std::string* field = key == "source"        ? &f.source
                         : key == "destination" ? &f.destination
                         : key == "event"       ? &f.event
                         : key == "person"      ? &f.person
                                                : nullptr;
    if (field == nullptr) {
      return "unknown parameter; use source, destination, event and person";
    }
    if (!seen.insert(key).second) {
      return "`" + key + "` is given twice";
    }
    *field = std::string(p.value);
  }
  return std::nullopt;
}

}  // namespace

Daemon::~Daemon() { stop(); }

std::uint16_t Daemon::port() const noexcept { return server_ ? server_->port() : 0; }

ContextParts Daemon::partsFor(const std::string& id) const {
  ContextParts parts;
  parts.id = id;
  parts.sink = &sink_;
  parts.metrics = const_cast<telemetry::MetricsRegistry*>(&metrics_);
  parts.clock = &clock_;
  parts.work = const_cast<asio::io_context*>(&work_);
  parts.checkpoint_file = std::filesystem::path(config_.storage.path) / "checkpoints" / (id + ".json");
  return parts;
}

ContextParts Daemon::sourcePartsFor(const std::string& id) const {
  ContextParts parts = partsFor(id);
  if (source_leases_) {
    SourceLeases* leases = source_leases_.get();
    auto runs_here = [leases, id] { return leases->holds(id); };
    parts.may_run_periodic = runs_here;
    parts.checkpoints = std::make_shared<NatsCheckpointStore>(*checkpoint_bucket_, id,
                                                              parts.checkpoint_file, runs_here);
  }
  return parts;
}

void Daemon::addCoreRoutes() {
  (void)router_.add("GET", "/healthz", [](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    respond(sdk::HttpResponse::json(200, R"({"status":"ok"})"));
  });
  (void)router_.add("GET", "/readyz", [this](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    auto reasons = notReadyReasons();
    if (reasons.empty()) {
      respond(sdk::HttpResponse::json(200, R"({"status":"ready"})"));
      return;
    }
    boost::json::array list(reasons.begin(), reasons.end());
    respond(sdk::HttpResponse::json(
        503, boost::json::serialize(boost::json::object{{"status", "not ready"},
                                                        {"reasons", std::move(list)}})));
  });
  (void)router_.addStream("GET", "/admin/debug/events", [this](sdk::HttpRequest&& req) -> http::StreamStart {
    if (auto denied = http::checkAdmin(req, config_.server.admin_token)) {
      return std::move(*denied);
    }
    telemetry::TapFilter filter;
    if (auto problem = readTapFilter(req.query, filter)) {
      return http::jsonError(400, *problem);
    }
    // Subscribed before it is logged: whoever waits for the line (a test) sees every event
    // received after it.
    auto stream = std::make_shared<TapStream>(tap_->subscribe(std::move(filter)));
    log_.info("live debugger attached", {{"remote", req.remote_address}});
    return stream;
  });
  // The dashboard: static files compiled in (core/daemon/ui). The shell is public; every datum
  // it shows comes from the admin API with the token the operator types in.
  auto serveUi = [](std::string_view name, sdk::HttpResponder& respond) {
    for (const auto& f : uiFiles()) {
      if (f.name == name) {
        sdk::HttpResponse r;
        r.status = 200;
        r.headers.set("Content-Type", std::string(f.content_type));
        r.headers.set("Cache-Control", "no-cache");
        r.headers.set("Content-Security-Policy",
                      "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                      "base-uri 'none'; form-action 'self'");
        r.headers.set("X-Content-Type-Options", "nosniff");
        r.headers.set("Referrer-Policy", "no-referrer");
        r.body = std::string(f.data);
        respond(std::move(r));
        return;
      }
    }
    respond(http::jsonError(404, "not found"));
  };
  (void)router_.add("GET", "/ui", [](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    sdk::HttpResponse r;
    r.status = 301;
    r.headers.set("Location", "/ui/");
    respond(std::move(r));
  });
  (void)router_.add("GET", "/ui/", [serveUi](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    serveUi("index.html", respond);
  });
  (void)router_.add("GET", "/ui/{file}", [serveUi](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    serveUi(req.params["file"], respond);
  });
  (void)router_.add("POST", "/admin/reload", [this](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    if (auto denied = http::checkAdmin(req, config_.server.admin_token)) {
      respond(std::move(*denied));
      return;
    }
    // Off the I/O thread: stopping a destination waits for its deliveries in flight.
    asio::post(work_, [this, respond = std::move(respond)]() mutable {
      auto r = reload();
      boost::json::object out{{"success", r.ok},
                              {"changes", boost::json::array(r.changes.begin(), r.changes.end())}};
      if (!r.errors.empty()) {
        out["errors"] = boost::json::array(r.errors.begin(), r.errors.end());
      }
      respond(sdk::HttpResponse::json(r.ok ? 200 : 400, boost::json::serialize(out)));
    });
  });
  (void)router_.add("POST", "/admin/destinations/{id}/forget",
                    [this](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    if (auto denied = http::checkAdmin(req, config_.server.admin_token)) {
      respond(std::move(*denied));
      return;
    }
    const std::string id = req.params["id"];
    auto s = engine_ ? engine_->forget(id) : sdk::makeError(sdk::ErrorCode::Unavailable, "starting");
    if (!s.ok()) {
      respond(http::jsonError(s.error().code == sdk::ErrorCode::NotFound        ? 404
                              : s.error().code == sdk::ErrorCode::AlreadyExists ? 409
                                                                                : 500,
                              s.message()));
      return;
    }
    respond(sdk::HttpResponse::json(
        200, boost::json::serialize(boost::json::object{{"success", true}, {"forgotten", id}})));
  });
  // A scheduled destination's run, now (the schedule carries on from it).
  (void)router_.add("POST", "/admin/destinations/{id}/sync",
                    [this](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    if (auto denied = http::checkAdmin(req, config_.server.admin_token)) {
      respond(std::move(*denied));
      return;
    }
    const std::string id = req.params["id"];
    std::optional<bool> started;
    {
      std::lock_guard lock(connectors_mutex_);
      for (const auto& sync : syncs_) {
        if (sync->destination() == id) {
          started = sync->runNow();
        }
      }
    }
    if (!started) {
      respond(http::jsonError(404, "no destination '" + id + "' in sync.mode scheduled"));
      return;
    }
    if (!*started) {
      respond(http::jsonError(409, "a run of '" + id + "' is going on"));
      return;
    }
    respond(sdk::HttpResponse::json(
        202, boost::json::serialize(boost::json::object{{"success", true}, {"destination", id}})));
  });
  (void)router_.add("GET", "/admin/catalog", [this](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    if (auto denied = http::checkAdmin(req, config_.server.admin_token)) {
      respond(std::move(*denied));
      return;
    }
    std::string source;
    if (!req.query.empty()) {
      if (req.query.rfind("source=", 0) != 0 || req.query.find('&') != std::string::npos) {
        respond(http::jsonError(400, "the only parameter is source"));
        return;
      }
      auto decoded = boost::urls::parse_query(req.query);
      source = decoded ? std::string((*decoded->begin()).value) : req.query.substr(7);
    }
    if (!catalog_) {
      respond(http::jsonError(503, "starting"));
      return;
    }
    respond(sdk::HttpResponse::json(200, boost::json::serialize(catalog_->toJson(source))));
  });
  (void)router_.add("GET", "/admin/status", [this](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
    if (auto denied = http::checkAdmin(req, config_.server.admin_token)) {
      respond(std::move(*denied));
      return;
    }
    respond(sdk::HttpResponse::json(200, boost::json::serialize(status())));
  });
  (void)router_.add("GET", "/metrics", [this](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    sdk::HttpResponse r;
    r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.body = metrics_.renderPrometheus();
    respond(std::move(r));
  });
}

std::vector<std::string> Daemon::notReadyReasons() const {
  if (!ready_.load()) {
    return {"starting or stopping"};
  }
  std::vector<std::string> reasons;
  if (nats_queue_ && !nats_queue_->connected()) {
    reasons.push_back("queue: not connected to NATS (" + shownUrls(config_.queue.urls) +
                      "); ingest answers 503 until the client reconnects by itself");
  }
  if (log_store_) {
    if (auto refused = log_store_->lastBudgetRefusal();
        refused && std::chrono::steady_clock::now() - *refused < kBudgetRefusalShown) {
      reasons.push_back("queue disk budget exhausted: appends were refused in the last " +
                        std::to_string(kBudgetRefusalShown.count()) + " s (storage.max_bytes " +
                        std::to_string(config_.storage.max_bytes) + ", " +
                        std::to_string(log_store_->diskBytes()) + " bytes on disk)");
    }
  }
  if (engine_ && config_.server.readiness_stall.count() > 0) {
    for (auto& r : engine_->stalled(config_.server.readiness_stall.count())) {
      reasons.push_back(r + " (server.readiness_stall)");
    }
  }
  return reasons;
}

boost::json::object Daemon::status() const {
  namespace json = boost::json;
  const std::int64_t now = clock_.nowMs();
  auto reasons = notReadyReasons();
  json::object out{{"version", JUNCTION_SDK_VERSION},
                   {"listen", config_.server.listen},
                   {"started_at_ms", started_at_ms_},
                   {"uptime_seconds", started_at_ms_ > 0 ? (now - started_at_ms_) / 1000 : 0},
                   {"ready", reasons.empty()},
                   {"reasons", json::array(reasons.begin(), reasons.end())}};
  if (nats_queue_) {
    const auto stats = nats_queue_->stats();
    out["queue"] = json::object{{"backend", "nats"},
                                {"servers", shownUrls(config_.queue.urls)},
                                {"connected", nats_queue_->connected()},
                                {"stream", config_.queue.stream},
                                {"partitions", static_cast<std::int64_t>(config_.queue.partitions)},
                                {"appended", stats.appended},
                                {"stored_messages", stats.stored_messages},
                                {"stored_bytes", stats.stored_bytes},
                                {"node_id", nats_queue_->nodeId()}};
  }
  if (log_store_) {
    out["queue"] = json::object{{"disk_bytes", log_store_->diskBytes()},
                                {"max_bytes", config_.storage.max_bytes},
                                {"begin_offset", log_store_->beginOffset()},
                                {"end_offset", log_store_->durableEnd()}};
  }
  std::lock_guard lock(connectors_mutex_);
  json::array sources;
  for (const auto& slot : sources_) {
    json::object source{{"id", slot.config->id},
                        {"plugin", slot.config->plugin},
                        {"state", slot.started ? "running" : "stopped"}};
    if (source_leases_) {
      // Which node runs its scheduled syncs (a pulling source's), by node id.
      source["runs_here"] = source_leases_->holds(slot.config->id);
      source["lease_holder"] = source_leases_->holder(slot.config->id);
    }
    sources.push_back(std::move(source));
  }
  out["sources"] = std::move(sources);
  json::array destinations = engine_ ? engine_->describe() : json::array{};
  for (auto& d : destinations) {
    auto& o = d.as_object();
    for (const auto& slot : destinations_) {
      if (slot.config->id == o.at("id").as_string()) {
        o["plugin"] = slot.config->plugin;
      }
    }
    for (const auto& sync : syncs_) {
      if (sync->destination() == o.at("id").as_string()) {
        o["sync"] = sync->statusJson();
      }
    }
  }
  out["destinations"] = std::move(destinations);
  if (nats_queue_) {
    // Which partitions of each consumer this node reads now, and how often it left a
    // partition's new messages for later while earlier ones were pending elsewhere.
    json::object owned;
    json::object order_waits;
    auto add = [&](const std::string& consumer) {
      json::array list;
      for (auto p : nats_queue_->ownedPartitions(consumer)) {
        list.push_back(p);
      }
      owned[consumer] = std::move(list);
      order_waits[consumer] = nats_queue_->orderWaits(consumer);
    };
    for (const auto& slot : destinations_) {
      add(slot.config->id);
    }
    if (profiles_) {
      add(std::string(profiles::ProfileService::kConsumerName));
    }
    out["queue"].as_object()["partitions_owned"] = std::move(owned);
    out["queue"].as_object()["order_waits"] = std::move(order_waits);
  }
  json::array removed;
  if (engine_) {
    for (const auto& [id, backlog] : engine_->removedWithBacklog()) {
      removed.push_back(json::object{{"id", id}, {"backlog_bytes", backlog}});
    }
  }
  out["removed_destinations"] = std::move(removed);
  out["profiles"] = config_.profiles.enabled ? "enabled" : "disabled";
  return out;
}

namespace {

// Each top-level section of a configuration's text, and each connector (by id) of `sources`
// and `destinations`, as YAML text: what a reload compares.
struct Sections {
  std::map<std::string, std::string> top;
  std::map<std::string, std::string> sources;
  std::map<std::string, std::string> destinations;
};

Sections sectionsOf(const std::string& text) {
  Sections out;
  YAML::Node root = YAML::Load(text);
  if (!root.IsMap()) {
    return out;
  }
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key == "sources" || key == "destinations") {
      auto& into = key == "sources" ? out.sources : out.destinations;
      if (kv.second.IsSequence()) {
        for (const auto& c : kv.second) {
          if (c.IsMap() && c["id"]) {
            into[c["id"].as<std::string>()] = YAML::Dump(c);
          }
        }
      }
      continue;
    }
    out.top[key] = YAML::Dump(kv.second);
  }
  return out;
}

}  // namespace

Daemon::ReloadResult Daemon::reload() {
  std::lock_guard reload_lock(reload_mutex_);
  ReloadResult result;
  if (!ready_.load() || reloads_closed_) {
    result.errors.push_back("the daemon is starting or stopping");
    return result;
  }
  const std::string file = config_.file;
  std::string text;
  {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      result.errors.push_back("cannot read " + file);
      return result;
    }
    std::ostringstream all;
    all << in.rdbuf();
    text = all.str();
  }
  // The whole check, as at start: syntax, every key, every connector's options.
  config::ConfigErrors errors;
  auto loaded = config::loadConfigText(text, file, config::processEnvironment(), errors);
  if (loaded) {
    config::checkConnectors(*loaded, plugins_, errors);
  }
  if (!loaded || !errors.empty()) {
    std::istringstream lines(config::formatErrors(errors));
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) {
        result.errors.push_back(line);
      }
    }
    if (result.errors.empty()) {
      result.errors.push_back(file + ": not a valid configuration");
    }
    log_.error("reload refused: the configuration is not valid; the running one is kept",
               {{"file", file}, {"errors", result.errors.size()}});
    for (const auto& e : result.errors) {
      log_.error("reload: " + e);
    }
    return result;
  }
  Sections before;
  Sections after;
  try {
    before = sectionsOf(loaded_text_);
    after = sectionsOf(text);
  } catch (const std::exception& e) {
    result.errors.push_back(file + ": " + e.what());
    return result;
  }
  std::set<std::string> keys;
  for (const auto& m : {before.top, after.top}) {
    for (const auto& [k, v] : m) {
      keys.insert(k);
    }
  }
  for (const auto& k : keys) {
    if (k == "audiences") {
      continue;  // applied below: members reviewed, destinations restarted as needed
    }
    auto b = before.top.find(k);
    auto a = after.top.find(k);
    const bool same = b != before.top.end() && a != after.top.end() ? b->second == a->second
                                                                     : b == before.top.end() && a == after.top.end();
    if (!same) {
      result.errors.push_back(k + ": changed, and `" + k +
                              "` is read only at start: restart junctiond to apply it "
                              "(a reload changes sources, destinations and audiences)");
    }
  }
  if (!result.errors.empty()) {
    log_.error("reload refused: a section that needs a restart changed; the running "
               "configuration is kept", {{"file", file}});
    for (const auto& e : result.errors) {
      log_.error("reload: " + e);
    }
    return result;
  }

  // What changed, by id. A disabled connector counts as absent.
  auto plan = [](const std::map<std::string, std::string>& was,
                 const std::map<std::string, std::string>& now,
                 const std::vector<config::ConnectorConfig>& running,
                 const std::vector<config::ConnectorConfig>& wanted) {
    std::vector<std::string> removed;
    std::vector<std::string> changed;
    std::vector<std::string> added;
    auto enabled = [](const std::vector<config::ConnectorConfig>& list, const std::string& id) {
      for (const auto& c : list) {
        if (c.id == id) {
          return c.enabled;
        }
      }
      return false;
    };
    for (const auto& [id, yaml] : was) {
      const bool ran = enabled(running, id);
      const bool wants = enabled(wanted, id);
      if (ran && !wants) {
        removed.push_back(id);
      } else if (ran && wants && now.at(id) != yaml) {
        changed.push_back(id);
      }
    }
    for (const auto& c : wanted) {
      if (c.enabled && !enabled(running, c.id)) {
        added.push_back(c.id);
      }
    }
    return std::make_tuple(removed, changed, added);
  };
  const auto& running = generations_.empty() ? config_ : *generations_.back();
  auto [d_removed, d_changed, d_added] =
      plan(before.destinations, after.destinations, running.destinations, loaded->destinations);
  auto [s_removed, s_changed, s_added] =
      plan(before.sources, after.sources, running.sources, loaded->sources);
  // A destination an audience now names, or no longer names, routes its events otherwise:
  // restarted like one whose own block changed.
  for (const auto& was : running.destinations) {
    for (const auto& now : loaded->destinations) {
      if (was.id == now.id && was.enabled && now.enabled && was.audiences != now.audiences &&
          std::find(d_changed.begin(), d_changed.end(), now.id) == d_changed.end()) {
        d_changed.push_back(now.id);
      }
    }
  }
  result.ok = true;
  if (profiles_ && profiles_->setAudiences(
                       std::make_shared<const audiences::AudienceSet>(loaded->audiences),
                       audienceStateFile())) {
    result.changes.push_back("audiences changed: every person's membership is reviewed");
    log_.info("reload: audiences changed, every person's membership is reviewed");
  }
  if (d_removed.empty() && d_changed.empty() && d_added.empty() && s_removed.empty() &&
      s_changed.empty() && s_added.empty()) {
    loaded_text_ = std::move(text);
    if (result.changes.empty()) {
      result.changes.push_back("no connector changed");
    }
    log_.info("reload: no connector changed", {{"file", file}});
    return result;
  }
  // The new configuration stays alive: workers and contexts hold references into it.
  generations_.push_back(std::make_unique<config::DaemonConfig>(std::move(*loaded)));
  const config::DaemonConfig& next = *generations_.back();
  auto find = [](const std::vector<config::ConnectorConfig>& list, const std::string& id) {
    for (const auto& c : list) {
      if (c.id == id) {
        return &c;
      }
    }
    return static_cast<const config::ConnectorConfig*>(nullptr);
  };
  {
    auto secrets = next.secrets();
    auto old = config_.secrets();
    secrets.insert(secrets.end(), old.begin(), old.end());  // old values may still be in flight
    sink_.setSecrets(std::move(secrets));
  }

  // The debugger masks what the new destinations hash or drop too.
  {
    std::vector<std::string> masked;
    for (const auto& d : next.destinations) {
      masked.insert(masked.end(), d.hash.begin(), d.hash.end());
      masked.insert(masked.end(), d.drop.begin(), d.drop.end());
    }
    tap_->addMaskedPaths(masked);
  }
  auto registerErasure = [&](const std::string& id) {
    std::lock_guard lock(connectors_mutex_);
    for (const auto& slot : destinations_) {
      if (slot.config->id == id && regulations_) {
        regulations_->addDestination(id, slot.instance);
      }
    }
  };
  // Destinations first, so a source's new events find the destinations they are meant for.
  auto stopDestination = [&](const std::string& id) {
    stopSync(id);
    (void)engine_->remove(id);
    if (regulations_) {
      regulations_->removeDestination(id);
    }
    std::lock_guard lock(connectors_mutex_);
    auto it = std::find_if(destinations_.begin(), destinations_.end(),
                           [&](const DestinationSlot& d) { return d.config->id == id; });
    if (it != destinations_.end()) {
      it->context->shutdown();
      destinations_.erase(it);
    }
  };
  // A destination's scheduled runs follow its new settings: started, restarted or forgotten.
  auto syncAfterReload = [&](const config::ConnectorConfig& c) -> sdk::Status {
    if (c.sync.mode != config::SyncConfig::Mode::Scheduled) {
      resetSync(c.id);
      return {};
    }
    if (profiles_) {
      profiles_->setSyncChannels(syncChannels(next));  // before its first run reads
    }
    return startSync(c);
  };
  for (const auto& id : d_removed) {
    stopDestination(id);
    result.changes.push_back("destination " + id +
                             " removed (its undelivered events stay on disk until it is added "
                             "again or `junction forget " + id + "`)");
  }
  for (const auto& id : d_changed) {
    stopDestination(id);
    if (auto st = startDestination(*find(next.destinations, id), /*running=*/true); !st.ok()) {
      result.ok = false;
      result.errors.push_back(st.message());
      continue;
    }
    registerErasure(id);
    if (auto st = syncAfterReload(*find(next.destinations, id)); !st.ok()) {
      result.ok = false;
      result.errors.push_back(st.message());
    }
    result.changes.push_back("destination " + id + " restarted with its new settings");
  }
  for (const auto& id : d_added) {
    if (auto st = startDestination(*find(next.destinations, id), /*running=*/true); !st.ok()) {
      result.ok = false;
      result.errors.push_back(st.message());
      continue;
    }
    registerErasure(id);
    if (auto st = syncAfterReload(*find(next.destinations, id)); !st.ok()) {
      result.ok = false;
      result.errors.push_back(st.message());
    }
    result.changes.push_back("destination " + id + " added");
  }
  if (profiles_) {
    profiles_->setSyncChannels(syncChannels(next));
  }
  for (const auto& id : s_removed) {
    stopSource(id);
    result.changes.push_back("source " + id + " removed");
  }
  for (const auto& id : s_changed) {
    stopSource(id);
    if (auto st = startSource(*find(next.sources, id)); !st.ok()) {
      result.ok = false;
      result.errors.push_back(st.message());
      continue;
    }
    result.changes.push_back("source " + id + " restarted with its new settings");
  }
  for (const auto& id : s_added) {
    if (auto st = startSource(*find(next.sources, id)); !st.ok()) {
      result.ok = false;
      result.errors.push_back(st.message());
      continue;
    }
    result.changes.push_back("source " + id + " added");
  }
  loaded_text_ = std::move(text);
  for (const auto& c : result.changes) {
    log_.info("reload: " + c);
  }
  for (const auto& e : result.errors) {
    log_.error("reload: " + e);
  }
  return result;
}

queue::LogOptions queueOptions(const config::DaemonConfig& config) {
  queue::LogOptions options;
  options.path = (std::filesystem::path(config.storage.path) / "queue").string();
  options.fsync = config.storage.fsync == "always"  ? queue::FsyncPolicy::Always
                  : config.storage.fsync == "never" ? queue::FsyncPolicy::Never
                                                    : queue::FsyncPolicy::Batch;
  options.fsync_interval = config.storage.fsync_interval;
  options.segment_bytes = config.storage.segment_bytes;
  options.max_bytes = config.storage.max_bytes;
  options.recycle_segments = static_cast<std::size_t>(config.storage.recycle_segments);
  return options;
}

sdk::Status Daemon::openQueue() {
  queue::LogOptions options = queueOptions(config_);
  queue::RecoveryReport report;
  auto opened = queue::Log::open(options, &report);
  if (!opened) {
    return sdk::makeError(opened.error().code,
                          "cannot open the queue in " + options.path + ": " + opened.error().message);
  }
  log_store_ = std::move(opened).value();
  if (report.truncated_bytes > 0) {
    log_.warn("queue recovery: removed a torn or corrupt tail",
              {{"bytes", report.truncated_bytes}, {"offset", report.truncated_at},
               {"moved_to", report.moved_to}});
  }
  // Data lost between segments (a file deleted or truncated behind the daemon's back): the
  // daemon goes on, with the loss counted, logged with its extents, and audited.
  auto& gaps = metrics_.counter("junction_queue_gaps_total",
                                "Stretches of the queue found missing at start (deleted or "
                                "truncated segment files)");
  auto& lost = metrics_.counter("junction_queue_lost_events_total",
                                "Events known lost in those stretches (segments.idx counts them)");
  for (const auto& gap : report.gaps) {
    gaps.inc();
    if (gap.events > 0) {
      lost.inc(static_cast<std::uint64_t>(gap.events));
    }
    log_.error("queue: events lost", {{"what", gap.what},
                                      {"from_offset", gap.begin},
                                      {"to_offset", gap.end},
                                      {"bytes", gap.end - gap.begin},
                                      {"events", gap.events >= 0 ? std::to_string(gap.events)
                                                                 : std::string("unknown")}});
    if (audit_) {
      (void)audit_->append("queue_gap", boost::json::object{{"what", gap.what},
                                                            {"from_offset", gap.begin},
                                                            {"to_offset", gap.end},
                                                            {"events", gap.events}});
    }
  }
  log_.info("queue opened", {{"path", options.path}, {"segments", report.segments},
                             {"end", report.end}, {"fsync", config_.storage.fsync}});
  auto& corrupt = metrics_.counter("junction_queue_corrupt_records_total",
                                   "Corrupt queue regions detected and skipped");
  corrupt.inc(report.truncated_bytes > 0 ? 1 : 0);
  log_store_->setCorruptionListener([this, &corrupt](const queue::CorruptionReport& r) {
    corrupt.inc();
    log_.error("queue: corrupt record skipped",
               {{"offset", r.offset}, {"bytes", r.length}, {"moved_to", r.moved_to}});
  });
  static constexpr double kSyncBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
  auto& sync_seconds = metrics_.histogram(
      "junction_queue_fsync_duration_seconds",
      "Time an fdatasync of the queue took (clients wait for it under fsync: batch/always)",
      kSyncBuckets);
  // A full disk or an I/O error: clients get 503 and retry, nothing is lost, but the operator
  // must hear of it. Once a second at most, with what failed since the last line.
  log_store_->setWriteFailureListener(
      [this, last = std::chrono::steady_clock::time_point{}, pending = std::size_t{0}](
          const sdk::Status& status, std::size_t records) mutable {
        pending += records;
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::seconds(1)) {
          return;
        }
        last = now;
        log_.error("queue write failed: events refused with 503 (clients retry)",
                   {{"events", pending}, {"error", status.message()}});
        pending = 0;
      });
  log_store_->setSyncListener([&sync_seconds](std::chrono::nanoseconds took) {
    sync_seconds.observe(std::chrono::duration<double>(took).count());
  });
  auto& disk = metrics_.gauge("junction_queue_disk_bytes",
                              "Bytes of queue segment files on disk, spares included");
  auto& recycled = metrics_.counter("junction_queue_recycled_segments_total",
                                    "New queue segments written over a delivered segment's file");
  auto& appended = metrics_.counter("junction_queue_appended_records_total",
                                    "Records appended durably to the queue");
  auto& fsyncs = metrics_.counter("junction_queue_fsyncs_total", "fdatasync calls on the queue");
  metrics_
      .gauge("junction_queue_max_bytes",
             "The queue's disk budget, storage.max_bytes (0: none); ingest answers 503 at it")
      .set(static_cast<double>(config_.storage.max_bytes));
  auto& ready = metrics_.gauge(
      "junction_ready", "1 when GET /readyz answers 200, else 0 (its body says why: /readyz)");
  metrics_.addCollector([this, &ready] { ready.set(notReadyReasons().empty() ? 1.0 : 0.0); });
  metrics_.addCollector([this, &disk, &appended, &fsyncs, &recycled] {
    std::lock_guard lock(log_store_mutex_);
    if (!log_store_) {
      return;
    }
    disk.set(static_cast<double>(log_store_->diskBytes()));
    auto bump = [](sdk::Counter& c, std::uint64_t now) {
      if (now > c.value()) {
        c.inc(now - c.value());
      }
    };
    bump(appended, log_store_->appendedRecords());
    bump(fsyncs, log_store_->fsyncCount());
    bump(recycled, log_store_->recycledSegments());
  });
  return openPipeline();
}

sdk::Status Daemon::openPipeline() {
  catalog_ = std::make_unique<ingest::EventCatalog>(
      (std::filesystem::path(config_.storage.path) / "catalog.json").string());
  if (nats_queue_) {
    ingest_ = std::make_unique<ingest::Ingest>(*nats_queue_, metrics_, clock_, privacy_.get());
    engine_ = std::make_unique<delivery::DeliveryEngine>(*nats_queue_, metrics_, log_, clock_);
  } else {
    ingest_ = std::make_unique<ingest::Ingest>(*log_store_, metrics_, clock_, privacy_.get());
    engine_ = std::make_unique<delivery::DeliveryEngine>(*log_store_, metrics_, log_, clock_);
  }
  ingest_->setTap(tap_.get());
  ingest_->setCatalog(catalog_.get());
  engine_->setTap(tap_.get());
  engine_->setPrivacy(privacy_.get(), audit_.get());
  return engine_->open(config_.storage.path);
}


sdk::Status Daemon::openNatsQueue() {
  const auto& q = config_.queue;
  queue::JetStreamOptions options;
  options.urls = q.urls;
  options.stream = q.stream;
  options.replicas = static_cast<int>(q.replicas);
  options.partitions = static_cast<std::uint32_t>(q.partitions);
  options.credentials_file = q.credentials_file;
  options.tls = q.tls;
  options.tls_ca_file = q.tls_ca_file;
  options.max_bytes = q.max_bytes;
  options.ack_wait = q.ack_wait;
  options.node_id = q.node_id;  // "" = derived by the queue
  options.on_connection = [this](bool connected, const std::string& server) {
    if (connected) {
      log_.info("NATS connection back: ingest accepts events again",
                {{"server", withoutUserInfo(server)}});
    } else {
      log_.warn("NATS connection lost: ingest answers 503 until the client reconnects (it "
                "tries every server of queue.url)");
    }
  };
  options.client_name = "junctiond";
  // A dead letter marked for replay is delivered by the node that reads its person's partition
  // (shareDeadLetters): one that comes to read a partition looks for such replays.
  options.on_partition_read = [this](const std::string&) {
    if (dead_letters_shared_.load(std::memory_order_acquire)) {
      engine_->notifyReplays();
    }
  };
  // The engine's workers dead-letter through their own store; a consumer's term() lands there
  // too.
  options.dead_letters = [this](const std::string& consumer, const sdk::Event& event,
                                std::string_view reason, std::uint32_t deliveries) {
    std::vector<delivery::DeadLetter> letters(1);
    letters[0].destination = consumer;
    letters[0].event = event;
    letters[0].reason = std::string(reason);
    letters[0].attempts = deliveries;
    letters[0].failed_at_ms = clock_.nowMs();
    return engine_->deadLetters().add(letters);
  };
  auto opened = queue::JetStreamQueue::open(std::move(options));
  if (!opened) {
    std::string message = opened.error().message;
    for (const auto& url : q.urls) {  // no password of a url in the error
      for (auto at = message.find(url); at != std::string::npos; at = message.find(url, at + 1)) {
        message.replace(at, url.size(), withoutUserInfo(url));
      }
    }
    return sdk::makeError(opened.error().code, "queue.backend: nats: " + message);
  }
  nats_queue_ = std::move(opened).value();
  log_.info("queue opened on NATS JetStream",
            {{"servers", shownUrls(q.urls)}, {"stream", q.stream}, {"replicas", q.replicas},
             {"partitions", q.partitions}, {"node", nats_queue_->nodeId()}});
  auto& ready = metrics_.gauge(
      "junction_ready", "1 when GET /readyz answers 200, else 0 (its body says why: /readyz)");
  metrics_.addCollector([this, &ready] { ready.set(notReadyReasons().empty() ? 1.0 : 0.0); });
  auto& connected = metrics_.gauge("junction_queue_connected",
                                   "1 while connected to a NATS server of the queue, else 0");
  auto& appended = metrics_.counter("junction_queue_appended_records_total",
                                    "Records appended durably to the queue");
  metrics_.addCollector([this, &connected, &appended] {
    std::lock_guard lock(log_store_mutex_);
    if (!nats_queue_) {
      return;
    }
    connected.set(nats_queue_->connected() ? 1.0 : 0.0);
    const std::uint64_t now = nats_queue_->stats().appended;
    if (now > appended.value()) {
      appended.inc(now - appended.value());
    }
  });
  return openPipeline();
}

sdk::Status Daemon::openPrivacy() {
  const std::filesystem::path dir(config_.storage.path);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  privacy::ConsentAliases aliases;
  for (const auto& [id, name] : config_.consent.aliases) {
    if (name.is_string()) {
      aliases.emplace(privacy::lowerAscii(id), privacy::lowerAscii(name.as_string()));
    }
  }
  // A lost privacy.db is refused, not recreated (core/privacy/privacy_recovery.h).
  if (auto s = privacy::checkPrivacyStoreFile(dir); !s.ok()) {
    return s;
  }
  auto store = privacy::PrivacyStore::open((dir / "privacy.db").string(), std::move(aliases));
  if (!store) {
    return store.error();
  }
  privacy_ = std::move(store).value();
  // A tampered or damaged audit log is said loudly at every start (and kept as a gauge), but
  // does not stop the daemon: new entries still chain onto the last line.
  const std::string audit_file = (dir / "audit.log").string();
  auto& audit_ok = metrics_.gauge("junction_audit_log_verified",
                                  "1 when the audit log's hash chain verified at start, else 0");
  audit_ok.set(1);
  if (std::filesystem::exists(audit_file)) {
    auto verified = privacy::verifyAuditLog(audit_file);
    if (!verified.ok) {
      audit_ok.set(0);
      log_.error("audit log does not verify: it was altered or damaged",
                 {{"file", audit_file},
                  {"line", verified.bad_line},
                  {"problem", verified.problem},
                  {"entries_verified", verified.entries},
                  {"check", "junction audit verify --config " + config_.file}});
    }
  }
  auto audit = privacy::AuditLog::open(audit_file, clock_);
  if (!audit) {
    return audit.error();
  }
  audit_ = std::move(audit).value();
  // The configuration this run starts with, by digest (the file may hold secrets).
  std::ifstream in(config_.file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  const std::string digest = in ? sdk::sha256Hex(text.str()) : std::string();
  if (auto s = audit_->append("daemon_start", boost::json::object{{"config_file", config_.file},
                                                                  {"config_sha256", digest},
                                                                  {"version", JUNCTION_SDK_VERSION}});
      !s.ok()) {
    return s;
  }
  log_.info("audit log opened", {{"path", audit_->file()},
                                 {"entries", audit_->lastSeq()},
                                 {"last_hash", audit_->lastHash()}});
  return {};
}

void Daemon::forgetDeleted(const privacy::Regulation& r) {
  // Dead letters are undelivered events too.
  if (r.subject.kind != privacy::SubjectKind::Email) {
    delivery::DeadLetterFilter filter;
    filter.person = r.subject.value;
    if (auto n = engine_->deadLetters().purge(filter); n && *n > 0) {
      log_.info("dead letters of a deleted person purged", {{"regulation", r.id}, {"count", *n}});
    }
  }
  engine_->wakeWorkers();
  if (profiles_) {
    if (auto s = profiles_->erase(r.subject); !s.ok()) {
      log_.error("profile of a deleted person not erased", {{"regulation", r.id},
                                                             {"error", s.message()}});
    }
  }
}

sdk::Status Daemon::sharePrivacy() {
  queue::NatsBucketOptions options;
  options.replicas = static_cast<int>(config_.queue.replicas);
  for (auto [bucket, suffix] : {std::pair{&regulation_bucket_, "-regulations"},
                                std::pair{&consent_bucket_, "-consent"}}) {
    auto opened = queue::NatsBucket::open(*nats_queue_, config_.queue.stream + suffix, options);
    if (!opened) {
      return sdk::makeError(opened.error().code, "queue.backend: nats: " + opened.error().message);
    }
    *bucket = std::move(opened).value();
  }
  shared_privacy_ = std::make_unique<SharedPrivacy>(
      *regulation_bucket_, *consent_bucket_, *privacy_, nats_queue_->nodeId(), log_, metrics_,
      [this](const privacy::Regulation& r) {
        if (audit_) {
          (void)audit_->append("regulation_adopted",
                               boost::json::object{{"id", r.id},
                                                   {"type", privacy::toString(r.type)},
                                                   {"subject_kind", privacy::toString(r.subject.kind)}});
        }
        if (r.type == privacy::RegulationType::Delete) {
          forgetDeleted(r);
        }
      });
  return shared_privacy_->start();
}

sdk::Status Daemon::shareSources() {
  const auto& q = nats_queue_->options();
  queue::NatsBucketOptions options;
  options.replicas = static_cast<int>(config_.queue.replicas);
  auto checkpoints =
      queue::NatsBucket::open(*nats_queue_, config_.queue.stream + "-checkpoints", options);
  if (!checkpoints) {
    return sdk::makeError(checkpoints.error().code,
                          "queue.backend: nats: " + checkpoints.error().message);
  }
  options.ttl = q.node_ttl;  // a dead node's leases end
  auto leases = queue::NatsBucket::open(*nats_queue_, config_.queue.stream + "-sources", options);
  if (!leases) {
    return sdk::makeError(leases.error().code, "queue.backend: nats: " + leases.error().message);
  }
  checkpoint_bucket_ = std::move(checkpoints).value();
  source_lease_bucket_ = std::move(leases).value();
  source_leases_ = std::make_unique<SourceLeases>(*source_lease_bucket_, nats_queue_->nodeId(),
                                                  q.heartbeat, log_);
  source_leases_->start();
  return {};
}

sdk::Status Daemon::shareDeadLetters() {
  queue::NatsBucketOptions options;
  options.replicas = static_cast<int>(config_.queue.replicas);
  auto bucket =
      queue::NatsBucket::open(*nats_queue_, config_.queue.stream + "-dead-letters", options);
  if (!bucket) {
    return sdk::makeError(bucket.error().code, "queue.backend: nats: " + bucket.error().message);
  }
  dead_letter_bucket_ = std::move(bucket).value();
  const auto partitions = static_cast<std::uint32_t>(config_.queue.partitions);
  shared_dead_letters_ = std::make_unique<SharedDeadLetters>(
      *dead_letter_bucket_, engine_->deadLetters(), nats_queue_->nodeId(),
      std::filesystem::path(config_.storage.path) / "dead_letters.shared", log_, metrics_,
      // Replayed by the node that reads the person's partition: in order, once.
      [this, partitions](const delivery::DeadLetter& row) {
        const auto owned = nats_queue_->ownedPartitions(row.destination);
        const auto p = queue::partitionOf(queue::personOf(row.event), partitions);
        return std::find(owned.begin(), owned.end(), p) != owned.end();
      },
      [this] { engine_->notifyReplays(); });
  if (auto s = shared_dead_letters_->start(); !s.ok()) {
    return s;
  }
  dead_letters_shared_.store(true, std::memory_order_release);
  return {};
}

sdk::Status Daemon::startRegulations() {
  regulations_ = std::make_unique<privacy::RegulationService>(*privacy_, audit_.get(), log_,
                                                              metrics_, clock_);
  for (const auto& slot : destinations_) {
    regulations_->addDestination(slot.config->id, slot.instance);
  }
  regulations_->onDelete([this](const privacy::Regulation& r) { forgetDeleted(r); });
  if (shared_privacy_) {
    regulations_->onRecorded([this](const privacy::Regulation& r) {
      std::lock_guard lock(shared_mutex_);
      if (shared_privacy_) {
        shared_privacy_->publish(r);
      }
    });
  }
  if (auto s = regulations_->start(); !s.ok()) {
    return s;
  }
  regulations_->registerRoutes(router_, config_.server.admin_token);
  return {};
}

sdk::Status Daemon::startSources() {
  for (const auto& c : config_.sources) {
    if (!c.enabled) {
      log_.info("source disabled", {{"id", c.id}, {"plugin", c.plugin}});
      continue;
    }
    if (auto s = startSource(c); !s.ok()) {
      return s;
    }
  }
  return {};
}

sdk::Status Daemon::startSource(const config::ConnectorConfig& c) {
  auto plugin = plugins_.get(sdk::PluginKind::Source, c.plugin);
  SourceSlot slot;
  slot.config = &c;
  if (source_leases_) {
    source_leases_->add(c.id);  // taken at once when free: a lone node runs its syncs at start
  }
  slot.context = std::make_unique<SourceConnectorContext>(sourcePartsFor(c.id), *ingest_, router_);
  auto made = plugin->createSource(c.config, *slot.context);
  if (!made) {
    if (source_leases_) {
      source_leases_->remove(c.id);
    }
    return sdk::makeError(made.error().code,
                          "source '" + c.id + "' (" + c.plugin + "): " + made.error().message);
  }
  slot.instance = std::move(made).value();
  slot.context->setStarting(true);
  sdk::Status started;
  try {
    started = slot.instance->start();
  } catch (const std::exception& e) {
    started = sdk::makeError(sdk::ErrorCode::Internal, std::string("start() threw: ") + e.what());
  } catch (...) {
    started = sdk::makeError(sdk::ErrorCode::Internal, "start() threw an unknown exception");
  }
  slot.context->setStarting(false);
  if (!started.ok()) {
    router_.removeOwner("source." + c.id);
    if (source_leases_) {
      source_leases_->remove(c.id);
    }
    return sdk::makeError(started.error().code, "source '" + c.id + "' (" + c.plugin +
                                                    ") failed to start: " + started.error().message);
  }
  slot.started = true;
  log_.info("source started", {{"id", c.id}, {"plugin", c.plugin},
                               {"version", plugin->descriptor().version}});
  std::lock_guard lock(connectors_mutex_);
  sources_.push_back(std::move(slot));
  return {};
}

void Daemon::stopSource(std::string_view id) {
  SourceSlot slot;
  {
    std::lock_guard lock(connectors_mutex_);
    auto it = std::find_if(sources_.begin(), sources_.end(),
                           [&](const SourceSlot& s) { return s.config->id == id; });
    if (it == sources_.end()) {
      return;
    }
    slot = std::move(*it);
    sources_.erase(it);
  }
  if (slot.started) {
    try {
      slot.instance->stop();
    } catch (...) {
      log_.error("source stop() threw", {{"id", slot.config->id}});
    }
  }
  router_.removeOwner("source." + slot.config->id);
  slot.context->shutdown();
  if (source_leases_) {
    source_leases_->remove(slot.config->id);  // another node that has it runs it now
  }
  log_.info("source stopped", {{"id", slot.config->id}});
}

sdk::Status Daemon::createDestinations() {
  for (const auto& c : config_.destinations) {
    if (!c.enabled) {
      log_.info("destination disabled", {{"id", c.id}, {"plugin", c.plugin}});
      continue;
    }
    if (auto s = startDestination(c, /*running=*/false); !s.ok()) {
      return s;
    }
  }
  return {};
}

// `running`: the engine runs already (a reload): the worker starts at once.
sdk::Status Daemon::startDestination(const config::ConnectorConfig& c, bool running) {
  auto plugin = plugins_.get(sdk::PluginKind::Destination, c.plugin);
  DestinationSlot slot;
  slot.config = &c;
  slot.context = std::make_unique<DestinationConnectorContext>(partsFor(c.id));
  auto made = plugin->createDestination(c.config, *slot.context);
  if (!made) {
    return sdk::makeError(made.error().code,
                          "destination '" + c.id + "' (" + c.plugin + "): " + made.error().message);
  }
  slot.instance = std::move(made).value();
  auto status = running ? engine_->addRunning(c, slot.instance, slot.context->accountThrottle())
                        : engine_->add(c, slot.instance, {}, slot.context->accountThrottle());
  if (!status.ok()) {
    return status;
  }
  log_.info("destination started", {{"id", c.id}, {"plugin", c.plugin},
                                    {"version", plugin->descriptor().version}});
  std::lock_guard lock(connectors_mutex_);
  destinations_.push_back(std::move(slot));
  return {};
}

std::vector<std::string> Daemon::syncChannels(const config::DaemonConfig& config) {
  std::vector<std::string> ids;
  for (const auto& d : config.destinations) {
    if (d.enabled && d.sync.mode == config::SyncConfig::Mode::Scheduled) {
      ids.push_back(d.id);
    }
  }
  return ids;
}

sdk::Status Daemon::startSyncs() {
  sync_state_ = std::make_unique<runtime::FileCheckpointStore>(
      std::filesystem::path(config_.storage.path) / "sync.json");
  auto known = sync_state_->keys();
  if (!known) {
    return known.error();
  }
  const auto scheduled = syncChannels(config_);
  for (const auto& id : *known) {
    if (std::ranges::find(scheduled, id) != scheduled.end()) {
      continue;
    }
    // Scheduled in an earlier configuration, and not forgotten yet (forgotten: an empty value,
    // and no marks, since nothing marks a destination that is not scheduled).
    if (auto stored = sync_state_->load(id); stored && *stored && !(*stored)->empty()) {
      resetSync(id);
    }
  }
  for (const auto& c : config_.destinations) {
    if (c.enabled && c.sync.mode == config::SyncConfig::Mode::Scheduled) {
      if (auto s = startSync(c); !s.ok()) {
        return s;
      }
    }
  }
  return {};
}

sdk::Status Daemon::startSync(const config::ConnectorConfig& c) {
  if (!profiles_ || !sync_state_) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "destination '" + c.id + "': sync.mode scheduled needs profiles");
  }
  auto schedule = sync::makeSchedule(c.sync.every_ms, c.sync.at_minute, c.sync.timezone);
  if (!schedule) {
    return sdk::makeError(schedule.error().code,
                          "destination '" + c.id + "': " + schedule.error().message);
  }
  auto sync = std::make_unique<ScheduledSync>(
      c.id, std::move(schedule).value(),
      ScheduledSyncDeps{*profiles_, *ingest_, *engine_, *sync_state_, metrics_, log_, clock_},
      ScheduledSyncOptions{.audiences = c.audiences});
  if (auto s = sync->start(); !s.ok()) {
    return s;
  }
  log_.info("destination scheduled",
            {{"id", c.id}, {"next_run", sdk::formatIsoTimestamp(sync->status().next_run_ms)}});
  std::lock_guard lock(connectors_mutex_);
  syncs_.push_back(std::move(sync));
  return {};
}

void Daemon::stopSync(std::string_view id) {
  std::unique_ptr<ScheduledSync> stopping;
  {
    std::lock_guard lock(connectors_mutex_);
    auto it = std::find_if(syncs_.begin(), syncs_.end(),
                           [&](const auto& s) { return s->destination() == id; });
    if (it == syncs_.end()) {
      return;
    }
    stopping = std::move(*it);
    syncs_.erase(it);
  }
  stopping->stop();
}

void Daemon::resetSync(const std::string& id) {
  stopSync(id);
  if (sync_state_) {
    auto stored = sync_state_->load(id);
    if (stored && *stored && !(*stored)->empty()) {
      if (auto s = sync_state_->store(id, ""); !s.ok()) {
        log_.warn("sync: cannot forget a destination's sync state",
                  {{"destination", id}, {"error", s.message()}});
      }
    }
  }
  if (profiles_) {
    if (auto s = profiles_->store().dropSyncChannel(id); !s.ok()) {
      log_.warn("sync: cannot drop a destination's sync marks",
                {{"destination", id}, {"error", s.message()}});
    }
  }
}

sdk::Status Daemon::openProfiles() {
  if (!config_.profiles.enabled) {
    log_.info("profiles disabled");
    return {};
  }
  // Profile-change events are made only for a destination that takes them (`from:
  // [profiles]`): without one, each change would be written to the outbox, rendered, queued and
  // then filtered out by every destination, for nothing.
  config::ProfilesConfig c = config_.profiles;
  if (c.change_events) {
    const bool wanted = std::ranges::any_of(config_.destinations, [](const auto& d) {
      return d.enabled && std::ranges::find(d.from, config::kProfilesSource) != d.from.end();
    });
    if (!wanted) {
      c.change_events = false;
      log_.info("profiles: no destination has from: [profiles]; profile-change events are not made");
    }
  }
  std::unique_ptr<profiles::ProfileStore> store;
  if (c.backend == "embedded") {
    auto opened = profiles::RocksDbProfileStore::open(config_.storage.path, c.cache_bytes);
    if (!opened) {
      return opened.error();
    }
    store = std::move(opened).value();
  } else if (c.backend == "sqlite") {
    auto opened = profiles::SqliteProfileStore::open(config_.storage.path);
    if (!opened) {
      return opened.error();
    }
    store = std::move(opened).value();
  } else if (c.backend == "postgres") {
    auto opened = profiles::PostgresProfileStore::open(c.dsn);
    if (!opened) {
      return opened.error();
    }
    store = std::move(opened).value();
  } else {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "profiles.backend: " + c.backend + " is not available in this build");
  }
  if (nats_queue_) {
    // Each node applies the events of the partitions it reads; with several nodes, the store is
    // one they share (profiles.backend: postgres).
    if (c.backend != "postgres") {
      log_.warn("profiles: with queue.backend: nats each node applies the events of the "
                "partitions it reads; with several nodes, profiles need a store they share "
                "(profiles.backend: postgres)",
                {{"backend", c.backend}});
    }
    auto consumer = nats_queue_->consumer(std::string(profiles::ProfileService::kConsumerName),
                                          queue::StartAt::Earliest);
    if (!consumer) {
      return sdk::makeError(consumer.error().code, "profiles: " + consumer.error().message);
    }
    profile_source_ = std::make_unique<delivery::ConsumerSource>(std::move(consumer).value());
    profiles_ = std::make_unique<profiles::ProfileService>(
        c, std::move(store), *profile_source_, *ingest_, privacy_.get(), metrics_, log_, clock_);
  } else {
    profiles_ = std::make_unique<profiles::ProfileService>(
        c, std::move(store), *log_store_, *ingest_, privacy_.get(), metrics_, log_, clock_);
    engine_->addReader([this] { profiles_->notifyAppend(); },
                       [this] { return profiles_->needs(); });
  }
  profiles_->setSyncChannels(syncChannels(config_));
  profiles_->setAudiences(std::make_shared<const audiences::AudienceSet>(config_.audiences),
                          audienceStateFile());
  profiles_->registerRoutes(router_, config_.server.admin_token, c.tokens);
  return {};
}

sdk::Status Daemon::start() {
  sink_.setSecrets(config_.secrets());
  {
    std::ifstream in(config_.file, std::ios::binary);  // what a reload compares against
    std::ostringstream all;
    all << in.rdbuf();
    loaded_text_ = all.str();
  }
  addCoreRoutes();
  work_guard_ = std::make_unique<WorkGuard>(work_.get_executor());
  std::size_t io_threads = config_.server.threads > 0
                               ? static_cast<std::size_t>(config_.server.threads)
                               : std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < io_threads; ++i) {
    io_.push_back(std::make_unique<asio::io_context>(1));  // 1: run by one thread
    io_guards_.push_back(asio::make_work_guard(*io_.back()));
  }
  for (std::size_t i = 0; i < io_threads; ++i) {
    threads_.emplace_back([this, i] {
      runtime::nameThisThread("jn-io");
      io_[i]->run();
    });
  }
  for (int i = 0; i < 2; ++i) {
    threads_.emplace_back([this] {
      runtime::nameThisThread("jn-work");
      work_.run();
    });
  }

  sdk::Status status;
  if (auto lock = runtime::DirectoryLock::acquire(config_.storage.path, "storage.path")) {
    storage_lock_.emplace(std::move(lock).value());
  } else {
    status = lock.error();
  }
  // The address first: a port in use (or a TLS file that does not load) fails the start before
  // the queue is opened or the audit log written. Connections wait in the backlog until every
  // part is up and the server accepts, at the end.
  if (status.ok()) {
    http::ServerOptions options;
    options.host = config_.server.host;
    options.port = config_.server.port;
    options.max_body_bytes = config_.server.max_body_bytes;
    options.request_timeout = config_.server.request_timeout;
    options.idle_timeout = config_.server.idle_timeout;
    options.max_connections = static_cast<std::size_t>(config_.server.max_connections);
    options.health_reserve = static_cast<std::size_t>(config_.server.health_reserve);
    options.max_connections_per_client =
        static_cast<std::size_t>(config_.server.max_connections_per_client);
    options.tls_cert_file = config_.server.tls_cert_file;
    options.tls_key_file = config_.server.tls_key_file;
    std::vector<asio::io_context*> contexts;
    for (auto& io : io_) {
      contexts.push_back(io.get());
    }
    server_ = std::make_unique<http::Server>(contexts, router_, options, log_, metrics_);
    status = server_->bind();
  }
  if (status.ok()) {
    status = openPrivacy();
  }
  if (status.ok()) {
    status = config_.queue.backend == "nats" ? openNatsQueue() : openQueue();
  }
  if (status.ok()) {
    status = createDestinations();
  }
  if (status.ok()) {
    status = openProfiles();
  }
  // Before the workers: a dead letter's id comes from the other nodes.
  if (status.ok() && nats_queue_) {
    status = shareDeadLetters();
  }
  if (status.ok()) {
    status = engine_->start();
    engine_->registerAdminRoutes(router_, config_.server.admin_token);
  }
  if (status.ok() && profiles_) {
    status = profiles_->start();
    if (status.ok() && profile_source_) {
      profile_source_->start([this] { profiles_->notifyAppend(); });
    }
  }
  if (status.ok() && profiles_) {
    status = startSyncs();
  }
  // Before sources: ingest consults (and shares) what the other nodes decided.
  if (status.ok() && nats_queue_) {
    status = sharePrivacy();
  }
  if (status.ok() && nats_queue_) {
    status = shareSources();
  }
  // Sources last: a pulling source's first run emits at once, and a new destination starts at
  // the queue's end (`start: latest`), so its cursor must exist before the first event.
  if (status.ok()) {
    status = startSources();
  }
  if (status.ok()) {
    status = startRegulations();
  }
  if (status.ok() && catalog_) {
    asio::post(work_, [this] { scheduleCatalogSave(); });
  }
  if (status.ok()) {
    std::vector<std::string> source_ids;
    for (const auto& c : config_.sources) {
      if (c.enabled) {
        source_ids.push_back(c.id);
      }
    }
    imports_ = std::make_unique<ImportService>(
        *ingest_, std::move(source_ids), std::filesystem::path(config_.storage.path) / "imports.json",
        work_, log_);
    imports_->registerRoutes(router_, config_.server.admin_token);
  }
  if (status.ok()) {
    server_->startAccepting();
  }
  if (!status.ok()) {
    log_.error("start-up failed", {{"error", status.message()}});
    stop();
    return status;
  }
  started_at_ms_ = clock_.nowMs();
  ready_.store(true);
  log_.info("junctiond ready", {{"listen", config_.server.host + ":" + std::to_string(port())},
                                {"sources", sources_.size()},
                                {"destinations", destinations_.size()}});
  return {};
}

void Daemon::requestStop() noexcept { stop_requested_.store(true); }

// The catalog is a summary: written every 30 s and at stop, not with every event.
void Daemon::scheduleCatalogSave() {
  if (!catalog_timer_) {
    catalog_timer_ = std::make_unique<asio::steady_timer>(work_);
  }
  catalog_timer_->expires_after(std::chrono::seconds(30));
  catalog_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) {
      return;  // cancelled: stopping
    }
    if (auto s = catalog_->save(); !s.ok()) {
      log_.warn("cannot save the event catalog", {{"error", s.message()}});
    }
    scheduleCatalogSave();
  });
}

void Daemon::runUntilStopped() {
  // The signals are blocked in every thread (main() blocks them before any thread starts), so
  // they are taken here, synchronously, and not by a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  while (!stop_requested_.load()) {
    timespec timeout{0, 200'000'000};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGHUP) {
      log_.info("SIGHUP: reloading the configuration", {{"file", config_.file}});
      (void)reload();
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      log_.info("signal received, draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      break;
    }
  }
  stop();
}

void Daemon::stopSources() {
  for (auto& slot : sources_) {
    if (slot.started) {
      try {
        slot.instance->stop();
      } catch (...) {
        log_.error("source stop() threw", {{"id", slot.config->id}});
      }
      slot.started = false;
    }
    router_.removeOwner("source." + slot.config->id);
    slot.context->shutdown();
  }
}

void Daemon::stop() {
  {
    std::lock_guard reload_lock(reload_mutex_);  // a reload in progress finishes first
    reloads_closed_ = true;
  }
  if (stopped_) {
    return;
  }
  stopped_ = true;
  ready_.store(false);
  if (server_) {
    server_->drain();
    auto deadline = std::chrono::steady_clock::now() + config_.server.shutdown_grace;
    while (server_->connections() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  stopSources();
  // Scheduled runs stop at their next page (a run cut short runs again at start).
  for (;;) {
    std::string id;
    {
      std::lock_guard lock(connectors_mutex_);
      if (syncs_.empty()) {
        break;
      }
      id = syncs_.back()->destination();
    }
    stopSync(id);
  }
  if (ingest_) {
    ingest_->close();
  }
  if (catalog_) {
    if (catalog_timer_) {
      asio::post(work_, [this] { catalog_timer_->cancel(); });
    }
    if (auto s = catalog_->save(); !s.ok()) {
      log_.warn("cannot save the event catalog", {{"error", s.message()}});
    }
  }
  // Erasures in progress finish before the plugins stop.
  if (regulations_) {
    regulations_->stop();
  }
  // Deliveries in flight finish and cursors are flushed; plugins' stop() is called.
  if (engine_) {
    engine_->stop();
  }
  for (auto& slot : destinations_) {
    slot.context->shutdown();
  }
  // The batch being applied is committed; announcements in flight are answered.
  if (profiles_) {
    profiles_->stop();
  }
  if (profile_source_) {
    profile_source_->stop();  // what was not applied goes back to the queue
  }
  // Completes every accepted append (their callbacks answer the last clients).
  {
    {
      std::lock_guard shared(shared_mutex_);
      shared_privacy_.reset();
    }
    dead_letters_shared_.store(false, std::memory_order_release);
    if (shared_dead_letters_) {
      shared_dead_letters_->stop();
    }
    dead_letter_bucket_.reset();
    shared_dead_letters_.reset();
    source_leases_.reset();  // released: another node runs the syncs at its next pass
    source_lease_bucket_.reset();
    checkpoint_bucket_.reset();
    regulation_bucket_.reset();
    consent_bucket_.reset();
    std::lock_guard lock(log_store_mutex_);
    log_store_.reset();
    nats_queue_.reset();  // the engine's and profiles' consumers were closed above
  }
  if (server_) {
    server_->closeAll();
  }
  io_guards_.clear();
  work_guard_.reset();
  // Give the last responses a moment to be written, then stop the loops.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (server_ && server_->connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& io : io_) {
    io->stop();
  }
  work_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
  sources_.clear();
  profiles_.reset();
  profile_source_.reset();
  engine_.reset();
  destinations_.clear();
  server_.reset();
  ingest_.reset();
  regulations_.reset();
  audit_.reset();
  privacy_.reset();
  log_.info("junctiond stopped");
}

}  // namespace junction::core::daemon
