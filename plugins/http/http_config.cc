#include "http_config.h"

#include "tracking_plan.h"

namespace junction::plugins::http {

using sdk::option;

const sdk::OptionTable<HttpSourceConfig>& httpSourceOptions() {
  static const sdk::OptionTable<HttpSourceConfig> table{
      option("write_keys", &HttpSourceConfig::write_keys,
             "Write keys accepted (HTTP basic user name or `writeKey` in the body); list several "
             "to rotate keys")
          .required()
          .secret(),
      option("max_event_bytes", &HttpSourceConfig::max_event_bytes,
             "Largest event accepted (Segment: 32 KB); larger ones are rejected as too_large")
          .defaultValue("32KiB")
          .range(1024, 64.0 * 1024 * 1024),
      option("max_batch_bytes", &HttpSourceConfig::max_batch_bytes,
             "Largest request body, after gzip decoding (Segment: 500 KB); larger ones get 413")
          .defaultValue("500KiB")
          .range(1024, 256.0 * 1024 * 1024),
      option("cors_origins", &HttpSourceConfig::cors_origins,
             "Origins browsers may send from (CORS); \"*\" allows any")
          .defaultValue(boost::json::array{"*"}),
      option("client_ip", &HttpSourceConfig::client_ip,
             "What goes into context.ip: keep the client's address, drop it, or truncate it "
             "(IPv4 /24, IPv6 /48)")
          .defaultValue("keep")
          .oneOf({"keep", "drop", "truncate"}),
      option("trust_forwarded_for", &HttpSourceConfig::trust_forwarded_for,
             "Take the client address from X-Forwarded-For (only behind a trusted proxy)")
          .defaultValue(false),
      option("dedup_window", &HttpSourceConfig::dedup_window,
             "Drop an event whose messageId was accepted within this window (0 = off)")
          .defaultValue("10m")
          .range(0, 7.0 * 24 * 3600 * 1000),
      option("dedup_max_entries", &HttpSourceConfig::dedup_max_entries,
             "messageIds remembered for de-duplication (the oldest are forgotten first; 112-224 "
             "bytes each, allocated when the source starts: at R events/s the window covers at "
             "most this / R seconds)")
          .defaultValue(1000000)
          .range(16, 1e9),
      option("public_url", &HttpSourceConfig::public_url,
             "Public base URL of this server (https://junction.example.com), for the "
             "analytics.js settings; default: from the request's Host header")
          .defaultValue(""),
      option("tracking_plan", &HttpSourceConfig::tracking_plan,
             "{events: {NAME: JSON Schema of properties}, unplanned: allow|drop, "
             "violations: allow|flag|drop}"),
  };
  return table;
}

std::vector<sdk::OptionError> HttpSourceConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (write_keys.empty()) {
    errors.push_back({"write_keys", "needs at least one write key"});
  }
  for (std::size_t i = 0; i < write_keys.size(); ++i) {
    // Never echo the key itself: only its position.
    if (write_keys[i].empty()) {
      errors.push_back({"write_keys", "write key #" + std::to_string(i + 1) + " is empty"});
    } else if (write_keys[i].find(':') != std::string::npos) {
      errors.push_back({"write_keys", "write key #" + std::to_string(i + 1) +
                                          " contains ':' (it could not be an HTTP basic user name)"});
    }
  }
  if (max_event_bytes > max_batch_bytes) {
    errors.push_back({"max_event_bytes", "is larger than max_batch_bytes"});
  }
  for (const auto& origin : cors_origins) {
    if (origin != "*" && origin.rfind("http://", 0) != 0 && origin.rfind("https://", 0) != 0) {
      errors.push_back({"cors_origins", "'" + origin +
                                            "' is not \"*\" or an origin like https://shop.example.com"});
    }
  }
  if (!public_url.empty() && public_url.rfind("http://", 0) != 0 &&
      public_url.rfind("https://", 0) != 0) {
    errors.push_back({"public_url", "must start with http:// or https://"});
  }
  if (!tracking_plan.empty()) {
    auto plan = TrackingPlan::compile(tracking_plan);
    if (!plan) {
      errors.push_back({"tracking_plan", plan.error().message});
    }
  }
  return errors;
}

}  // namespace junction::plugins::http
