#include "webhook_source.h"

#include <algorithm>
#include <boost/json.hpp>
#include <memory>
#include <utility>

#include "junction/sdk/json.h"
#include "junction/sdk/webhook_signature.h"

namespace junction::plugins::webhook {

namespace json = boost::json;
using sdk::option;

namespace {

std::string errorBody(std::string_view message) {
  return json::serialize(json::object{{"success", false}, {"error", message}});
}

}  // namespace

const sdk::OptionTable<WebhookSourceConfig>& webhookSourceOptions() {
  static const sdk::OptionTable<WebhookSourceConfig> table{
      option("secret", &WebhookSourceConfig::secret,
             "Shared secret of the HMAC-SHA256 signature (t=…,v1=…); list two while rotating")
          .required()
          .secret(),
      option("signature_header", &WebhookSourceConfig::signature_header,
             "Request header carrying the signature")
          .defaultValue("X-Junction-Signature"),
      option("tolerance", &WebhookSourceConfig::tolerance,
             "How far the signature's timestamp may be from our clock (older requests are "
             "refused as replays)")
          .defaultValue("5m")
          .range(1000, 24.0 * 3600 * 1000),
      option("max_body_bytes", &WebhookSourceConfig::max_body_bytes,
             "Largest request body; larger ones get 413")
          .defaultValue("1MiB")
          .range(1024, 64.0 * 1024 * 1024),
      option("max_events", &WebhookSourceConfig::max_events,
             "Most elements of a JSON array body (one event each); more get 413")
          .defaultValue(1000)
          .range(1, 1e6),
      option("mapping", &WebhookSourceConfig::mapping,
             "Event field -> path in the payload (type, event, userId, anonymousId, timestamp, "
             "properties, traits...; `$` = the whole payload), merged over the default mapping"),
  };
  return table;
}

const json::object& defaultInboundMapping() {
  static const json::object mapping = json::parse(R"({
    "type": {"value": "track"},
    "event": {"value": "Webhook Received"},
    "userId": {"from": ["userId", "user_id", "customer.id", "email", "customer.email"]},
    "anonymousId": {"from": ["anonymousId", "anonymous_id"]},
    "timestamp": {"from": ["timestamp", "created_at"], "transform": "iso8601"},
    "properties": "$"
  })").as_object();
  return mapping;
}

std::vector<sdk::OptionError> WebhookSourceConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  for (std::size_t i = 0; i < secret.size(); ++i) {
    if (secret[i].empty()) {  // position only: never the value
      errors.push_back({"secret", "secret #" + std::to_string(i + 1) + " is empty"});
    }
  }
  if (secret.empty()) {
    errors.push_back({"secret", "needs a secret"});
  }
  if (signature_header.empty() ||
      signature_header.find_first_of(" :\r\n") != std::string::npos) {
    errors.push_back({"signature_header", "must be an HTTP header name"});
  }
  std::vector<sdk::OptionError> mapping_errors;
  auto parsed = sdk::FieldMapping::parse(defaultInboundMapping(), mapping, &mapping_errors);
  if (parsed) {
    mapping_errors = sdk::checkInboundMapping(*parsed);
  }
  errors.insert(errors.end(), mapping_errors.begin(), mapping_errors.end());
  return errors;
}

sdk::Result<std::vector<sdk::Event>> mapPayload(std::string_view body,
                                                const sdk::FieldMapping& mapping,
                                                std::string_view source_id,
                                                std::uint64_t max_events) {
  auto parsed = sdk::parseJson(body);
  if (!parsed) {
    return parsed.error();
  }
  const json::value& root = *parsed;
  std::span<const json::value> items(&root, 1);
  const bool array = root.is_array();
  if (array) {
    const auto& a = root.get_array();
    if (a.empty()) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, "empty JSON array: no event");
    }
    if (a.size() > max_events) {
      return sdk::makeError(sdk::ErrorCode::ResourceExhausted,
                            std::to_string(a.size()) + " elements, more than max_events (" +
                                std::to_string(max_events) + ")");
    }
    items = std::span<const json::value>(a.data(), a.size());
  }
  std::vector<sdk::Event> events;
  events.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string where = array ? "element " + std::to_string(i) + ": " : std::string();
    if (!items[i].is_object()) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            where + "expected a JSON object (or an array of objects)");
    }
    json::object fields = mapping.apply(items[i].get_object());
    if (const auto* t = fields.if_contains("timestamp");
        t != nullptr && !(t->is_string() && sdk::parseIsoTimestamp(t->get_string()))) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            where + "the mapped timestamp is not an ISO-8601 time (add "
                                    "`transform: iso8601` for epoch seconds)");
    }
    auto event = sdk::makeEvent(fields, source_id);
    if (!event) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            where + "the mapped event is refused: " + event.error().message);
    }
    events.push_back(std::move(event).value());
  }
  return events;
}

WebhookSource::WebhookSource(WebhookSourceConfig config, sdk::SourceContext& ctx)
    : config_(std::move(config)), ctx_(ctx) {}

sdk::Status WebhookSource::start() {
  auto mapping = sdk::FieldMapping::parse(defaultInboundMapping(), config_.mapping);
  if (!mapping) {
    return mapping.error();
  }
  mapping_ = std::move(mapping).value();
  // The sender's own retries of a body over the limit are refused by the server before us.
  return ctx_.addRoute(
      "POST", "/v1/webhooks/" + ctx_.id(),
      [this](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
        handle(std::move(request), std::move(respond));
      },
      sdk::RouteOptions{.max_body_bytes = config_.max_body_bytes});
}

std::optional<std::string> WebhookSource::refusal(const sdk::HttpRequest& request) const {
  const std::string_view header = request.headers.get(config_.signature_header);
  if (header.empty()) {
    return "missing " + config_.signature_header + " header";
  }
  const auto now_s = ctx_.clock().nowMs() / 1000;
  const auto tolerance = std::chrono::duration_cast<std::chrono::seconds>(config_.tolerance);
  std::optional<std::string> why;
  for (const auto& secret : config_.secret) {
    auto verified = sdk::verifyWebhookSignature(header, secret, request.body, now_s, tolerance);
    if (verified.ok()) {
      return std::nullopt;
    }
    // A right signature with a stale time says more than another secret's mismatch.
    if (!why || verified.error().code == sdk::ErrorCode::InvalidArgument) {
      why = verified.error().code == sdk::ErrorCode::InvalidArgument
                ? "signature timestamp outside the tolerance (a replay, or clocks apart)"
                : "signature does not match";
    }
  }
  return why;
}

void WebhookSource::count(int status) {
  ctx_.metrics()
      .counter("junction_webhook_source_requests_total",
               "Inbound webhook requests, by HTTP status answered",
               {{"status", std::to_string(status)}})
      .inc();
}

void WebhookSource::handle(sdk::HttpRequest&& request, sdk::HttpResponder respond) {
  auto answer = [this, &respond](int status, std::string_view message) {
    count(status);
    respond(sdk::HttpResponse::json(status, errorBody(message)));
  };
  if (stopped_.load()) {
    answer(503, "shutting down");
    return;
  }
  if (auto why = refusal(request)) {
    ctx_.log().warn("webhook refused", {{"reason", *why}, {"remote", request.remote_address}});
    answer(401, *why);
    return;
  }
  auto events = mapPayload(request.body, mapping_, ctx_.id(),
                           static_cast<std::uint64_t>(config_.max_events));
  if (!events) {
    answer(events.error().code == sdk::ErrorCode::ResourceExhausted ? 413 : 400,
           events.error().message);
    return;
  }
  auto* metrics = &ctx_.metrics();
  ctx_.emit(std::move(events).value(), [respond = std::make_shared<sdk::HttpResponder>(
                                            std::move(respond)),
                                        metrics](sdk::EmitResult result) {
    sdk::HttpResponse r;
    if (result.status.ok()) {
      r = sdk::HttpResponse::json(200, json::serialize(json::object{
                                           {"success", true},
                                           {"accepted", result.accepted},
                                           {"suppressed", result.suppressed}}));
    } else {
      r = sdk::refusedEmitResponse(result);
    }
    metrics
        ->counter("junction_webhook_source_requests_total",
                  "Inbound webhook requests, by HTTP status answered",
                  {{"status", std::to_string(r.status)}})
        .inc();
    (*respond)(std::move(r));
  });
}

}  // namespace junction::plugins::webhook
