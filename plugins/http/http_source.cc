#include "http_source.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>

#include "dedup.h"
#include "junction/sdk/json.h"
#include "splice.h"
#include "tracking_plan.h"

namespace junction::plugins::http {

namespace json = boost::json;

namespace {

constexpr std::array<int, 10> kStatuses{200, 204, 400, 401, 403, 404, 413, 415, 500, 503};
constexpr std::array<const char*, 10> kRouteLabels{"track",     "identify", "page",   "screen",
                                                   "group",     "alias",    "batch",  "telemetry",
                                                   "settings", "preflight"};

std::string errorBody(std::string_view message) {
  return json::serialize(json::object{{"success", false}, {"error", message}});
}

}  // namespace

const char* HttpSource::toString(Reason reason) noexcept {
  switch (reason) {
    case Reason::Invalid: return "invalid";
    case Reason::TooLarge: return "too_large";
    case Reason::Unplanned: return "unplanned";
    case Reason::Violation: return "violation";
    case Reason::Duplicate: return "duplicate";
    case Reason::Unauthorized: return "unauthorized";
    case Reason::kCount: break;
  }
  return "unknown";
}

// What outlives the instance while emits are in flight: the counters (owned by the context's
// registry, which outlives every callback) and the de-duplication window.
struct HttpSource::State {
  State(sdk::Metrics& metrics, std::chrono::milliseconds window, std::size_t max_entries)
      : metrics(metrics),
        dedup(window, max_entries),
        telemetry(metrics.counter("junction_http_source_telemetry_total",
                                  "SDK telemetry requests (/v1/m) accepted and discarded")),
        flagged(metrics.counter("junction_http_source_flagged_events_total",
                                "Events let through with context.violations (tracking plan)")) {
    for (std::size_t i = 0; i < rejected.size(); ++i) {
      rejected[i] = &metrics.counter("junction_http_source_rejected_events_total",
                                     "Events the http source refused or dropped, by reason",
                                     {{"reason", toString(static_cast<Reason>(i))}});
    }
  }

  sdk::Counter& requestCounter(const char* route, int status) {
    return metrics.counter("junction_http_source_requests_total",
                           "Requests answered by the http source, by endpoint and status",
                           {{"endpoint", route}, {"status", std::to_string(status)}});
  }
  void countRequest(Route route, int status) {
    auto at = std::find(kStatuses.begin(), kStatuses.end(), status);
    auto r = static_cast<std::size_t>(route);
    if (at != kStatuses.end()) {
      // Series are made on first use (no hundred zero series in /metrics), then cached.
      auto& slot = requests[r][static_cast<std::size_t>(at - kStatuses.begin())];
      sdk::Counter* counter = slot.load(std::memory_order_acquire);
      if (counter == nullptr) {
        counter = &requestCounter(kRouteLabels[r], status);
        slot.store(counter, std::memory_order_release);
      }
      counter->inc();
    } else {
      requestCounter(kRouteLabels[r], status).inc();
    }
  }
  void reject(Reason reason, std::uint64_t n = 1) {
    if (n > 0) {
      rejected[static_cast<std::size_t>(reason)]->inc(n);
    }
  }

  sdk::Metrics& metrics;
  Deduplicator dedup;
  sdk::Counter& telemetry;
  sdk::Counter& flagged;
  std::array<std::array<std::atomic<sdk::Counter*>, kStatuses.size()>,
             static_cast<std::size_t>(Route::kCount)>
      requests{};
  std::array<sdk::Counter*, static_cast<std::size_t>(Reason::kCount)> rejected{};
};

HttpSource::HttpSource(HttpSourceConfig config, sdk::SourceContext& ctx)
    : config_(std::move(config)),
      ctx_(ctx),
      keys_(config_.write_keys),
      ip_policy_(parseClientIpPolicy(config_.client_ip)),
      any_origin_(std::find(config_.cors_origins.begin(), config_.cors_origins.end(), "*") !=
                  config_.cors_origins.end()),
      state_(std::make_shared<State>(ctx.metrics(), config_.dedup_window,
                                     static_cast<std::size_t>(config_.dedup_max_entries))) {}

HttpSource::~HttpSource() = default;

sdk::Status HttpSource::start() {
  if (!config_.tracking_plan.empty()) {
    auto plan = TrackingPlan::compile(config_.tracking_plan);
    if (!plan) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "tracking_plan: " + plan.error().message);
    }
    plan_ = std::move(plan).value();
  }
  sdk::RouteOptions events_options;
  events_options.max_body_bytes = config_.max_batch_bytes;
  auto add = [&](const std::string& method, const std::string& path, sdk::HttpHandler handler,
                 sdk::RouteOptions options) -> sdk::Status {
    if (auto s = ctx_.addRoute(method, path, std::move(handler), options); !s.ok()) {
      return s;
    }
    return ctx_.addRoute("OPTIONS", path,
                         [this](sdk::HttpRequest&& r, sdk::HttpResponder respond) {
                           handlePreflight(std::move(r), std::move(respond));
                         });
  };
  static constexpr std::pair<const char*, const char*> kPaths[] = {
      {"track", "t"}, {"identify", "i"}, {"page", "p"}, {"screen", "s"},
      {"group", "g"}, {"alias", "a"},    {"batch", "b"},
  };
  for (const auto& [long_name, short_name] : kPaths) {
    for (const char* name : {long_name, short_name}) {
      const std::string path = std::string("/v1/") + name;
      const Endpoint endpoint = *endpointForPath(path);
      auto s = add("POST", path,
                   [this, endpoint](sdk::HttpRequest&& r, sdk::HttpResponder respond) {
                     handleEvents(endpoint, std::move(r), std::move(respond));
                   },
                   events_options);
      if (!s.ok()) {
        return s;
      }
    }
  }
  sdk::RouteOptions small;
  small.max_body_bytes = 64 * 1024;
  if (auto s = add("POST", "/v1/m",
                   [this](sdk::HttpRequest&& r, sdk::HttpResponder respond) {
                     handleTelemetry(std::move(r), std::move(respond));
                   },
                   small);
      !s.ok()) {
    return s;
  }
  if (auto s = add("GET", "/v1/projects/{writeKey}/settings",
                   [this](sdk::HttpRequest&& r, sdk::HttpResponder respond) {
                     handleSettings(std::move(r), std::move(respond));
                   },
                   small);
      !s.ok()) {
    return s;
  }
  ctx_.log().info("http source started",
                  {{"write_keys", config_.write_keys.size()},
                   {"tracking_plan_events", plan_ ? plan_->size() : 0},
                   {"dedup_window_ms", config_.dedup_window.count()},
                   {"client_ip", config_.client_ip}});
  return {};
}

void HttpSource::stop() { stopped_.store(true); }

bool HttpSource::originAllowed(std::string_view origin) const noexcept {
  if (origin.empty() || any_origin_) {
    return true;
  }
  return std::find(config_.cors_origins.begin(), config_.cors_origins.end(), origin) !=
         config_.cors_origins.end();
}

void HttpSource::addCorsHeaders(std::string_view origin, sdk::HttpHeaders& headers) const {
  if (origin.empty()) {
    return;
  }
  if (any_origin_) {
    headers.set("Access-Control-Allow-Origin", "*");
  } else {
    headers.set("Access-Control-Allow-Origin", std::string(origin));
    headers.set("Vary", "Origin");
  }
}

std::string HttpSource::clientIp(const sdk::HttpRequest& request) const {
  if (config_.trust_forwarded_for) {
    std::string_view forwarded = request.headers.get("X-Forwarded-For");
    forwarded = forwarded.substr(0, forwarded.find(','));
    while (!forwarded.empty() && forwarded.front() == ' ') {
      forwarded.remove_prefix(1);
    }
    while (!forwarded.empty() && forwarded.back() == ' ') {
      forwarded.remove_suffix(1);
    }
    if (!forwarded.empty()) {
      return std::string(forwarded);
    }
  }
  return request.remote_address;
}

void HttpSource::handlePreflight(sdk::HttpRequest&& request, sdk::HttpResponder respond) {
  const std::string_view origin = request.headers.get("Origin");
  if (origin.empty() || !originAllowed(origin)) {
    state_->countRequest(Route::Preflight, 403);
    respond(sdk::HttpResponse::json(403, errorBody("origin not allowed")));
    return;
  }
  sdk::HttpResponse r;
  r.status = 204;
  addCorsHeaders(origin, r.headers);
  r.headers.set("Access-Control-Allow-Methods", "POST, GET, OPTIONS");
  std::string_view asked = request.headers.get("Access-Control-Request-Headers");
  r.headers.set("Access-Control-Allow-Headers",
                asked.empty() ? std::string("Content-Type, Authorization, Content-Encoding")
                              : std::string(asked));
  r.headers.set("Access-Control-Max-Age", "86400");
  state_->countRequest(Route::Preflight, 204);
  respond(std::move(r));
}

void HttpSource::handleTelemetry(sdk::HttpRequest&& request, sdk::HttpResponder respond) {
  const std::string_view origin = request.headers.get("Origin");
  sdk::HttpResponse r = sdk::HttpResponse::json(200, R"({"success":true})");
  addCorsHeaders(originAllowed(origin) ? origin : std::string_view(), r.headers);
  state_->telemetry.inc();
  state_->countRequest(Route::Telemetry, 200);
  respond(std::move(r));
}

void HttpSource::handleSettings(sdk::HttpRequest&& request, sdk::HttpResponder respond) {
  const std::string_view origin = request.headers.get("Origin");
  auto answer = [&](sdk::HttpResponse r) {
    if (originAllowed(origin)) {
      addCorsHeaders(origin, r.headers);
    }
    state_->countRequest(Route::Settings, r.status);
    respond(std::move(r));
  };
  auto key = request.params.find("writeKey");
  if (key == request.params.end() || !keys_.accepts(key->second)) {
    answer(sdk::HttpResponse::json(401, errorBody("invalid write key")));
    return;
  }
  // Where analytics.js sends events: this server (public_url, else the Host it was reached by).
  std::string protocol = "http";
  std::string host;
  if (!config_.public_url.empty()) {
    std::string_view url = config_.public_url;
    auto scheme_end = url.find("://");
    protocol = std::string(url.substr(0, scheme_end));
    host = std::string(url.substr(scheme_end + 3));
    while (!host.empty() && host.back() == '/') {
      host.pop_back();
    }
  } else {
    host = std::string(request.headers.get("Host"));
    // host[:port] or [v6]:port only: anything else is not where a browser could send events.
    const bool plain_host = !host.empty() && host.size() <= 255 &&
                            host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                   "0123456789.-:[]") == std::string::npos;
    if (!plain_host) {
      answer(sdk::HttpResponse::json(400, errorBody("a Host header naming this server is needed "
                                                    "(or set the source's public_url)")));
      return;
    }
    if (std::string_view proto = request.headers.get("X-Forwarded-Proto");
        config_.trust_forwarded_for && (proto == "https" || proto == "http")) {
      protocol = std::string(proto);
    }
  }
  json::object segment{
      {"apiKey", key->second},
      {"apiHost", host + "/v1"},
      {"protocol", protocol},
      {"unbundledIntegrations", json::array()},
      {"addBundledMetadata", true},
      {"maybeBundledConfigIds", json::object()},
      {"versionSettings", json::object{{"version", "4.4.7"}, {"componentTypes", {"browser"}}}},
  };
  json::object settings{
      {"integrations", json::object{{"Segment.io", std::move(segment)}}},
      {"plan", json::object{{"track", {{"__default", {{"enabled", true}, {"integrations", json::object()}}}}},
                            {"identify", {{"__default", {{"enabled", true}}}}},
                            {"group", {{"__default", {{"enabled", true}}}}}}},
      {"edgeFunction", json::object()},
      {"analyticsNextEnabled", true},
      {"middlewareSettings", json::object()},
      {"enabledMiddleware", json::object()},
      {"metrics", json::object{{"sampleRate", 0}}},
      {"legacyVideoPluginsEnabled", false},
      {"remotePlugins", json::array()},
  };
  sdk::HttpResponse r = sdk::HttpResponse::json(200, json::serialize(settings));
  if (config_.public_url.empty()) {
    // The answer names the Host it was asked by: a shared cache (CDN, proxy) must not hand one
    // client's Host to everyone, or a request with a forged Host would point every browser's
    // events elsewhere.
    r.headers.set("Cache-Control", "private, max-age=300");
    r.headers.set("Vary", "Host, X-Forwarded-Proto");
  } else {
    r.headers.set("Cache-Control", "public, max-age=300");
  }
  answer(std::move(r));
}

void HttpSource::handleEvents(Endpoint endpoint, sdk::HttpRequest&& request,
                              sdk::HttpResponder respond) {
  const auto route = static_cast<Route>(endpoint);
  const std::string origin(request.headers.get("Origin"));
  auto state = state_;
  auto answer = [&](sdk::HttpResponse r) {
    addCorsHeaders(origin, r.headers);
    state->countRequest(route, r.status);
    respond(std::move(r));
  };
  if (stopped_.load()) {
    answer(sdk::HttpResponse::json(503, errorBody("the source is stopping")));
    return;
  }
  if (!originAllowed(origin)) {
    state->countRequest(route, 403);
    respond(sdk::HttpResponse::json(403, errorBody("origin not allowed")));
    return;
  }

  auto decoded = decodeBody(request.headers.get("Content-Encoding"), std::move(request.body),
                            config_.max_batch_bytes);
  if (!decoded) {
    const auto code = decoded.error().code;
    const int status = code == sdk::ErrorCode::ResourceExhausted ? 413
                       : decoded.error().message.rfind("unsupported", 0) == 0 ? 415
                                                                               : 400;
    state->reject(status == 413 ? Reason::TooLarge : Reason::Invalid);
    answer(sdk::HttpResponse::json(status, errorBody(decoded.error().message)));
    return;
  }
  const std::size_t body_size = decoded->size();
  const bool single = endpoint != Endpoint::Batch;
  if (single && body_size > config_.max_event_bytes) {
    state->reject(Reason::TooLarge);
    answer(sdk::HttpResponse::json(
        400, errorBody("event larger than " + std::to_string(config_.max_event_bytes) + " bytes")));
    return;
  }
  // The fast path reads the body as slices of its text; the tree path (Boost.JSON) takes what
  // it declines (and always a source with a tracking plan, whose schemas need the tree).
  std::optional<ScannedBody> scanned;
  if (!plan_) {
    scanned = scanBody(endpoint, *decoded);
  }
  // Authentication: HTTP basic (the key as user name), else `writeKey` in the body.
  std::optional<std::string> key;
  if (const std::string* header = request.headers.find("Authorization")) {
    key = basicAuthUser(*header);
  }
  if (!key && scanned) {
    if (scanned->write_key) {
      key = std::string(*scanned->write_key);
    } else {
      // analytics.js' batching dispatcher puts the key in each event, not on the batch.
      for (const ScannedEvent& item : scanned->items) {
        bool declined = false;
        auto event_key = eventWriteKey(item, declined);
        if (declined) {
          scanned.reset();  // the tree path finds it
          break;
        }
        if (event_key) {
          key = std::string(*event_key);
          break;
        }
      }
    }
  }
  std::optional<ParsedBody> parsed;
  if (!scanned) {
    auto tree = parseBody(endpoint, *decoded);
    if (!tree) {
      state->reject(Reason::Invalid);
      answer(sdk::HttpResponse::json(400, errorBody(tree.error().message)));
      return;
    }
    parsed = std::move(tree).value();
    if (!key) {
      if (auto body_key = parsed->writeKey()) {
        key = std::string(*body_key);
      }
    }
  }
  const std::size_t item_count = scanned ? scanned->items.size() : parsed->items().size();
  if (!key || !keys_.accepts(*key)) {
    state->reject(Reason::Unauthorized, std::max<std::size_t>(item_count, 1));
    auto r = sdk::HttpResponse::json(401, errorBody(key ? "invalid write key" : "missing write key"));
    r.headers.set("WWW-Authenticate", "Basic realm=\"junction\"");
    answer(std::move(r));
    return;
  }

  const std::int64_t now = ctx_.clock().nowMs();
  const std::string ip = clientIp(request);
  EnrichInput input;
  input.received_at_ms = now;
  input.client_ip = ip;
  input.ip_policy = ip_policy_;
  input.forced_type = eventTypeOf(endpoint);
  if (scanned) {
    input.batch_sent_at = scanned->sent_at;
  } else {
    input.batch_sent_at = parsed->batchSentAt();
    input.batch_context = parsed->batchContext();
    input.batch_integrations = parsed->batchIntegrations();
  }

  std::vector<sdk::Event> events;
  events.reserve(item_count);
  // messageIds this request put in the window, kept to forget them should the queue refuse the
  // events: back to back in one string (not a string per id, on every request for a rare case).
  std::string remembered;
  std::vector<std::size_t> remembered_ends;
  json::array errors;                   // rejected events: index, reason, message
  std::size_t rejected = 0;
  std::size_t duplicates = 0;
  std::string first_error;
  auto reject = [&](std::size_t index, Reason reason, std::string message) {
    state->reject(reason);
    ++rejected;
    if (first_error.empty()) {
      first_error = message;
    }
    if (errors.size() < 100) {
      errors.push_back(json::object{{"index", index}, {"reason", toString(reason)},
                                    {"error", std::move(message)}});
    }
  };
  const std::string too_large =
      "event larger than " + std::to_string(config_.max_event_bytes) + " bytes";
  // An enriched event: kept, and de-duplicated below on the messageId the client sent.
  std::vector<std::size_t> client_ids;  // positions in `events` of messageIds from the client
  auto accept = [&](sdk::Event&& event, bool generated_message_id) {
    if (!generated_message_id) {
      client_ids.push_back(events.size());
    }
    events.push_back(std::move(event));
  };
  // The tree path for one event object.
  auto processObject = [&](std::size_t i, json::object& object) {
    auto enriched = enrichEvent(object, input);
    if (!enriched) {
      reject(i, Reason::Invalid, enriched.error().message);
      return;
    }
    auto event = toEvent(object, ctx_.id(), now);
    if (!event) {
      reject(i, Reason::Invalid, event.error().message);
      return;
    }
    if (plan_) {
      TrackingPlan::Verdict verdict = plan_->check(object);
      if (verdict.drop) {
        const bool unplanned = verdict.kind == TrackingPlan::Verdict::Kind::Unplanned;
        reject(i, unplanned ? Reason::Unplanned : Reason::Violation,
               unplanned ? "event not in the tracking plan" : "event violates the tracking plan");
        return;
      }
      if (verdict.flag) {
        json::value& context = object["context"];
        if (!context.is_object()) {
          context = json::object();
        }
        context.as_object()["violations"] = std::move(verdict.violations);
        event = toEvent(object, ctx_.id(), now);
        if (!event) {
          reject(i, Reason::Invalid, event.error().message);
          return;
        }
        state->flagged.inc();
      }
    }
    accept(std::move(event).value(), enriched->generated_message_id);
  };

  if (scanned) {
    const SpliceInput splice_input = makeSpliceInput(input, scanned->batch);
    for (std::size_t i = 0; i < scanned->items.size(); ++i) {
      const ScannedEvent& scanned_event = scanned->items[i];
      const std::string_view item = scanned_event.text;
      if (!scanned_event.object) {
        reject(i, Reason::Invalid, "event is not a JSON object");
        continue;
      }
      // A batch may hold events over the per-event limit; below it, none can be.
      if (!single && item.size() > config_.max_event_bytes) {
        reject(i, Reason::TooLarge, too_large);
        continue;
      }
      if (auto spliced =
              spliceEvent(scanned_event, scanned->members, splice_input, ctx_.id())) {
        accept(std::move(spliced->event), spliced->generated_message_id);
        continue;
      }
      auto tree = sdk::parseJson(item);
      if (!tree || !tree->is_object()) {
        reject(i, Reason::Invalid, tree ? "event is not a JSON object" : tree.error().message);
        continue;
      }
      processObject(i, tree->as_object());
    }
  } else {
    std::span<json::value> items = parsed->items();
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (const std::string* problem = parsed->problemOf(i)) {
        reject(i, Reason::Invalid, *problem);  // a key given twice, a number out of range
        continue;
      }
      json::object* object = items[i].if_object();
      if (object == nullptr) {
        reject(i, Reason::Invalid, "event is not a JSON object");
        continue;
      }
      if (!single && body_size > config_.max_event_bytes &&
          json::serialize(*object).size() > config_.max_event_bytes) {
        reject(i, Reason::TooLarge, too_large);
        continue;
      }
      processObject(i, *object);
    }
  }
  if (state->dedup.enabled() && !client_ids.empty()) {
    // One pass over the window for the whole request (the ids' table slots are fetched
    // together); in order, so a messageId repeated inside the request is a duplicate too. New
    // ids count as duplicates for other requests only once their events are stored (confirm
    // below): a retry sent while this request still waits for the queue gets through.
    std::vector<std::string_view> ids;
    ids.reserve(client_ids.size());
    for (std::size_t i : client_ids) {
      ids.push_back(events[i].messageId());
    }
    std::vector<char> duplicate;
    state->dedup.admitMany(ids, now, duplicate);
    std::vector<char> drop(events.size(), 0);
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if (duplicate[k] != 0) {
        drop[client_ids[k]] = 1;
        ++duplicates;
      } else {
        remembered += ids[k];
        remembered_ends.push_back(remembered.size());
      }
    }
    if (duplicates > 0) {
      state->reject(Reason::Duplicate, duplicates);
      std::size_t kept = 0;
      for (std::size_t i = 0; i < events.size(); ++i) {
        if (drop[i] == 0) {
          if (kept != i) {
            events[kept] = std::move(events[i]);
          }
          ++kept;
        }
      }
      events.resize(kept);
    }
  }

  if (events.empty() && rejected > 0 && (single || rejected == item_count)) {
    json::object body{{"success", false}, {"error", first_error}};
    if (!single) {
      body["rejected"] = rejected;
      body["errors"] = std::move(errors);
    }
    answer(sdk::HttpResponse::json(400, json::serialize(body)));
    return;
  }
  std::string ok_body = R"({"success":true})";
  if (rejected > 0 || duplicates > 0) {
    json::object body{{"success", true}, {"accepted", events.size()}};
    if (duplicates > 0) {
      body["duplicates"] = duplicates;
    }
    if (rejected > 0) {
      body["rejected"] = rejected;
      body["errors"] = std::move(errors);
    }
    ok_body = json::serialize(body);
  }
  if (events.empty()) {
    answer(sdk::HttpResponse::json(200, std::move(ok_body)));
    return;
  }

  // Answer once durable: the responder and what the answer needs move into the callback.
  struct Pending {
    sdk::HttpResponder respond;
    std::shared_ptr<State> state;
    Route route;
    std::string origin_header;  // the CORS header value, "" for none
    bool vary = false;
    std::string ok_body;
    std::string remembered;
    std::vector<std::size_t> remembered_ends;
  };
  sdk::HttpHeaders cors;
  addCorsHeaders(origin, cors);
  auto pending = std::make_shared<Pending>(Pending{
      std::move(respond), state, route, std::string(cors.get("Access-Control-Allow-Origin")),
      cors.find("Vary") != nullptr, std::move(ok_body), std::move(remembered),
      std::move(remembered_ends)});
  ctx_.emit(std::move(events), [pending](sdk::EmitResult result) {
    sdk::HttpResponse r;
    // Stored: a repeat is a duplicate from now on. Not queued: the client's retry must get
    // through.
    const bool stored = result.status.ok();
    const std::string_view ids = pending->remembered;
    std::size_t begin = 0;
    for (std::size_t end : pending->remembered_ends) {
      if (stored) {
        pending->state->dedup.confirm(ids.substr(begin, end - begin));
      } else {
        pending->state->dedup.forget(ids.substr(begin, end - begin));
      }
      begin = end;
    }
    if (stored) {
      r = sdk::HttpResponse::json(200, std::move(pending->ok_body));
    } else {
      r = sdk::refusedEmitResponse(result);
    }
    if (!pending->origin_header.empty()) {
      r.headers.set("Access-Control-Allow-Origin", pending->origin_header);
      if (pending->vary) {
        r.headers.set("Vary", "Origin");
      }
    }
    pending->state->countRequest(pending->route, r.status);
    pending->respond(std::move(r));
  });
}

}  // namespace junction::plugins::http
