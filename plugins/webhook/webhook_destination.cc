#include "webhook_destination.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <unordered_map>

#include "junction/sdk/text.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/plugin.h"
#include "junction/sdk/webhook_signature.h"

namespace junction::plugins::webhook {

namespace json = boost::json;
using sdk::option;

namespace {

// An Outcome reason carries at most this much of a receiver's error text.
constexpr std::size_t kMaxReasonBytes = 300;

bool equalsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// RFC 9110 token characters, what a header name is made of.
bool isTokenChar(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A header value from YAML: strings as they are, numbers and booleans as their text.
std::optional<std::string> headerValue(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.get_string());
  }
  if (v.is_double()) {
    // The shortest text that reads back as the same number ("1.5", not Boost's "1.5E0").
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, v.get_double()).ptr;
    return std::string(text, end);
  }
  if (v.is_number() || v.is_bool()) {
    return json::serialize(v);
  }
  return std::nullopt;
}

std::string clip(std::string text) { return sdk::clipReason(std::move(text), kMaxReasonBytes); }

}  // namespace

const sdk::OptionTable<WebhookConfig>& webhookOptions() {
  static const sdk::OptionTable<WebhookConfig> table{
      option("url", &WebhookConfig::url,
             "Where each batch is POSTed as {\"batch\":[...]} (http:// or https://)")
          .required(),
      option("secret", &WebhookConfig::secret,
             "Signs every request: X-Junction-Signature: t=<unix seconds>,v1=<hex "
             "HMAC-SHA256(secret, \"<t>.<body>\")>; empty sends unsigned requests")
          .defaultValue("")
          .secret(),
      option("previous_secret", &WebhookConfig::previous_secret,
             "While rotating `secret`: the one being replaced; requests carry a v1= signature "
             "under each, so receivers holding either accept them")
          .defaultValue("")
          .secret(),
      option(
          "headers", &WebhookConfig::headers,
          "Extra request headers, e.g. {Authorization: \"Bearer ...\"}; not Content-Type, "
          "Content-Length, Content-Encoding, Host, Transfer-Encoding, Connection or X-Junction-*")
          .secret(),
      option("timeout", &WebhookConfig::timeout,
             "Time for one request, connection included; past it the batch is retried")
          .defaultValue("30s")
          .range(100, 600000),
      option("mapping", &WebhookConfig::mapping,
             "Send each event as these fields instead of as received (field mapping: "
             "{field: path | {from, default, transform, value}}); messageId is always included"),
  };
  return table;
}

std::vector<sdk::OptionError> WebhookConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    errors.push_back({"url", "must start with http:// or https://"});
  } else if (url.find_first_of(" \t\r\n") != std::string::npos) {
    errors.push_back({"url", "must not contain spaces or line breaks"});
  }
  if (!previous_secret.empty() && secret.empty()) {
    errors.push_back({"previous_secret", "is only used together with secret"});
  }
  for (const auto& [key, value] : headers) {
    const std::string name(key);
    const std::string where = "headers." + name;
    if (name.empty() || !std::all_of(name.begin(), name.end(), isTokenChar)) {
      errors.push_back({where, "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)"});
      continue;
    }
    bool reserved = name.size() >= 11 && equalsIgnoreCase(name.substr(0, 11), "X-Junction-");
    for (const auto reserved_name : kReservedHeaders) {
      reserved = reserved || equalsIgnoreCase(name, reserved_name);
    }
    if (reserved) {
      errors.push_back({where,
                        "is set by the webhook destination or its HTTP client and cannot be "
                        "configured"});
      continue;
    }
    // Values are secret (Authorization...): errors say what is wrong, never what they hold.
    const auto text = headerValue(value);
    if (!text) {
      errors.push_back({where, "must be a string"});
    } else if (text->find_first_of("\r\n") != std::string::npos ||
               text->find('\0') != std::string::npos) {
      errors.push_back({where, "must not contain line breaks"});
    }
  }
  if (!mapping.empty()) {
    auto mapping_errors = sdk::FieldMapping::check({}, mapping, "mapping");
    errors.insert(errors.end(), mapping_errors.begin(), mapping_errors.end());
  }
  return errors;
}

void appendBatchBody(std::span<const sdk::Event> batch, std::string& out) {
  std::size_t size = out.size() + 12 + batch.size();
  for (const auto& event : batch) {
    size += event.json().size();
  }
  out.reserve(size);
  out += "{\"batch\":[";
  bool first = true;
  for (const auto& event : batch) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += event.json();
  }
  out += "]}";
}

std::string batchId(std::span<const sdk::Event> batch) {
  std::string ids;
  std::size_t size = 0;
  for (const auto& event : batch) {
    size += event.messageId().size() + 1;
  }
  ids.reserve(size);
  for (const auto& event : batch) {
    ids += event.messageId();
    ids += '\n';
  }
  return sdk::sha256Hex(ids).substr(0, 32);
}

std::vector<sdk::Outcome> outcomesOf(const sdk::HttpClientResponse& response,
                                     std::span<const sdk::Event> batch) {
  if (!response.ok()) {
    sdk::Outcome outcome;
    switch (response.classification) {
      case sdk::HttpClassification::RateLimited:
      case sdk::HttpClassification::Retryable:
        outcome = sdk::Outcome::retry(response.describe(), response.retry_after);
        break;
      case sdk::HttpClassification::AuthExpired:
        // No token to refresh: the receiver refuses the signature or the configured headers.
        outcome = sdk::Outcome::failed(response.describe() +
                                       " (the receiver refused the request's credentials: check "
                                       "`secret` and `headers`)");
        break;
      case sdk::HttpClassification::Permanent:
      case sdk::HttpClassification::Success:
        outcome = sdk::Outcome::failed(response.status == 403
                                           ? response.describe() +
                                                 " (the receiver refused the request's "
                                                 "credentials: check `secret` and `headers`)"
                                           : response.describe());
        break;
    }
    return std::vector<sdk::Outcome>(batch.size(), outcome);
  }

  std::vector<sdk::Outcome> outcomes(batch.size(), sdk::Outcome::delivered());
  // Per-event refusals: `{"failed":[{"messageId":"...","error":"...","retry":false}]}`. The
  // common answer says nothing of the kind; look for the key before parsing anything.
  if (response.body.find("\"failed\"") == std::string::npos) {
    return outcomes;
  }
  boost::system::error_code ec;
  const json::value answer = json::parse(response.body, ec);
  const json::object* object = ec ? nullptr : answer.if_object();
  const json::value* failed = object != nullptr ? object->if_contains("failed") : nullptr;
  if (failed == nullptr || !failed->is_array() || failed->get_array().empty()) {
    return outcomes;
  }
  std::unordered_multimap<std::string_view, std::size_t> positions;
  positions.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    positions.emplace(batch[i].messageId(), i);
  }
  for (const auto& entry : failed->get_array()) {
    const auto* item = entry.if_object();
    const auto* id = item != nullptr ? item->if_contains("messageId") : nullptr;
    if (id == nullptr || !id->is_string()) {
      continue;
    }
    std::string error = "no reason given";
    if (const auto* e = item->if_contains("error"); e != nullptr && !e->is_null()) {
      error = e->is_string() ? std::string(e->get_string()) : json::serialize(*e);
    }
    const auto* retry = item->if_contains("retry");
    const bool again = retry != nullptr && retry->is_bool() && retry->get_bool();
    const auto [begin, end] = positions.equal_range(std::string_view(id->get_string()));
    for (auto it = begin; it != end; ++it) {
      outcomes[it->second] =
          again ? sdk::Outcome::retry(clip("the receiver asked to retry the event: " + error))
                : sdk::Outcome::failed(clip("the receiver rejected the event: " + error));
    }
  }
  return outcomes;
}

WebhookDestination::WebhookDestination(WebhookConfig config, sdk::DestinationContext& context)
    : config_(std::move(config)),
      context_(context),
      sent_bytes_(
          context.metrics().counter("junction_webhook_sent_bytes_total",
                                    "Request body bytes POSTed by the webhook destination")),
      rejected_events_(context.metrics().counter(
          "junction_webhook_rejected_events_total",
          "Events a receiver refused one by one in a 2xx answer's `failed` list")) {
  static constexpr const char* kClasses[] = {"transport", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (std::size_t i = 0; i < std::size(kClasses); ++i) {
    requests_[i] = &context.metrics().counter("junction_webhook_requests_total",
                                              "Requests sent by the webhook destination, by "
                                              "status class (transport: no HTTP answer)",
                                              {{"status", kClasses[i]}});
  }
  if (!config_.mapping.empty()) {
    // validate() has checked the mapping: parse cannot fail here.
    auto parsed = sdk::FieldMapping::parse({}, config_.mapping);
    if (parsed.ok()) {
      mapping_ = std::move(parsed).value();
    }
  }
  for (const auto& [key, value] : config_.headers) {
    if (auto text = headerValue(value)) {
      extra_headers_.emplace_back(std::string(key), std::move(*text));
    }
  }
}

sdk::Counter& WebhookDestination::requestsWith(int status) noexcept {
  const int cls = status / 100;
  return *requests_[cls >= 1 && cls <= 5 ? cls : 0];
}

sdk::HttpClientRequest WebhookDestination::makeRequest(std::span<const sdk::Event> batch,
                                                       std::int64_t unix_seconds) const {
  sdk::HttpClientRequest request{
      .method = "POST", .url = config_.url, .headers = {}, .body = {}, .timeout = config_.timeout};
  if (!mapping_) {
    appendBatchBody(batch, request.body);
  } else {
    json::array events;
    events.reserve(batch.size());
    for (const auto& event : batch) {
      json::object mapped;
      mapped["messageId"] = event.messageId();
      for (auto& field : mapping_->apply(event.body())) {
        mapped[field.key()] = std::move(field.value());
      }
      events.push_back(std::move(mapped));
    }
    request.body = json::serialize(json::object{{"batch", std::move(events)}});
  }
  request.headers.entries.reserve(extra_headers_.size() + 4);
  request.headers.entries.emplace_back("Content-Type", "application/json");
  for (const auto& [name, value] : extra_headers_) {
    request.headers.entries.emplace_back(name, value);
  }
  request.headers.entries.emplace_back("X-Junction-Batch-Size", std::to_string(batch.size()));
  request.headers.entries.emplace_back("X-Junction-Batch-Id", batchId(batch));
  if (!config_.secret.empty()) {
    std::string signature = sdk::signWebhook(config_.secret, unix_seconds, request.body);
    if (!config_.previous_secret.empty()) {
      signature += ",v1=";
      signature += sdk::webhookSignatureHex(config_.previous_secret, unix_seconds, request.body);
    }
    request.headers.entries.emplace_back(std::string(sdk::kWebhookSignatureHeader),
                                         std::move(signature));
  }
  return request;
}

std::vector<sdk::Outcome> WebhookDestination::deliver(std::span<const sdk::Event> batch) {
  if (batch.empty()) {
    return {};
  }
  const auto request = makeRequest(batch, context_.clock().nowMs() / 1000);
  const auto response = context_.http().send(request);
  requestsWith(response.status).inc();
  sent_bytes_.inc(request.body.size());
  if (response.classification == sdk::HttpClassification::RateLimited) {
    // A receiver's limit holds for every event, not for this batch's people: slow down the
    // destination as a whole (the engine logs and counts it).
    context_.throttle(response.retry_after);
  } else if (response.classification == sdk::HttpClassification::AuthExpired ||
             response.status == 403) {
    context_.log().warn("webhook receiver refused the request's credentials",
                        {{"status", response.status}});
  } else if (response.classification == sdk::HttpClassification::Permanent) {
    context_.log().warn("webhook receiver refused the batch", {{"status", response.status}});
  }
  auto outcomes = outcomesOf(response, batch);
  if (response.ok()) {
    std::size_t refused = 0;
    for (const auto& outcome : outcomes) {
      refused += outcome.isDelivered() ? 0 : 1;
    }
    if (refused > 0) {
      rejected_events_.inc(refused);
    }
  }
  return outcomes;
}

}  // namespace junction::plugins::webhook

JUNCTION_DESTINATION_PLUGIN(junction::plugins::webhook::WebhookDestination,
                            junction::plugins::webhook::WebhookConfig,
                            junction::plugins::webhook::webhookOptions(),
                            {.name = "webhook",
                             .version = "1.0.0",
                             .summary = "POSTs batches of events as signed JSON to a URL",
                             // A receiver takes a batch per request: larger batches than the
                             // daemon's 100 cut requests per event; two requests in flight hide
                             // one round trip. 1 MiB bodies suit common gateway limits.
                             .delivery = {.max_events = 500, .concurrency = 2}})
