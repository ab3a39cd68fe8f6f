#include "enrich.h"

#include <arpa/inet.h>

#include <boost/json.hpp>
#include <cstring>

namespace junction::plugins::http {

namespace json = boost::json;

ClientIpPolicy parseClientIpPolicy(std::string_view text) noexcept {
  if (text == "drop") {
    return ClientIpPolicy::Drop;
  }
  if (text == "truncate") {
    return ClientIpPolicy::Truncate;
  }
  return ClientIpPolicy::Keep;
}

std::optional<std::string> truncateIp(std::string_view ip) {
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char text[INET6_ADDRSTRLEN];
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  char out[INET6_ADDRSTRLEN];
  in_addr v4{};
  if (::inet_pton(AF_INET, text, &v4) == 1) {
    v4.s_addr &= htonl(0xffffff00U);
    if (::inet_ntop(AF_INET, &v4, out, sizeof out) != nullptr) {
      return std::string(out);
    }
    return std::nullopt;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text, &v6) == 1) {
    std::memset(v6.s6_addr + 6, 0, 10);
    if (::inet_ntop(AF_INET6, &v6, out, sizeof out) != nullptr) {
      return std::string(out);
    }
  }
  return std::nullopt;
}

namespace {

// The object at `key` of `parent`, made when absent; null when present but not an object.
json::object* objectAt(json::object& parent, std::string_view key) {
  auto it = parent.find(key);
  if (it == parent.end()) {
    return &parent.emplace(key, json::object(parent.storage())).first->value().as_object();
  }
  return it->value().if_object();
}

void mergeMissing(json::object& event, std::string_view key, const json::object* from) {
  if (from == nullptr || from->empty()) {
    return;
  }
  json::object* into = objectAt(event, key);
  if (into == nullptr) {
    return;
  }
  for (const auto& [k, v] : *from) {
    if (!into->contains(k)) {
      into->emplace(k, v);
    }
  }
}

bool isAbsentId(const json::value* v) {
  return v == nullptr || v->is_null() || (v->is_string() && v->as_string().empty());
}

std::optional<std::int64_t> timeAt(const json::object& event, std::string_view key,
                                   bool& malformed) {
  const json::value* v = event.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return std::nullopt;
  }
  if (v->is_string()) {
    if (auto ms = sdk::parseIsoTimestamp(v->as_string())) {
      return ms;
    }
  }
  malformed = true;
  return std::nullopt;
}

}  // namespace

sdk::Result<EnrichOutcome> enrichEvent(json::object& event, const EnrichInput& input) {
  EnrichOutcome outcome;
  if (input.forced_type) {
    event["type"] = sdk::toString(*input.forced_type);
  }
  event.erase("writeKey");
  mergeMissing(event, "context", input.batch_context);
  mergeMissing(event, "integrations", input.batch_integrations);

  if (isAbsentId(event.if_contains("messageId"))) {
    event["messageId"] = sdk::makeUuidV4();
    outcome.generated_message_id = true;
  }

  const std::string received_at = sdk::formatIsoTimestamp(input.received_at_ms);
  bool malformed = false;
  std::optional<std::int64_t> original = timeAt(event, "originalTimestamp", malformed);
  if (malformed) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "\"originalTimestamp\" is not an ISO-8601 date-time");
  }
  std::string_view client_key = "originalTimestamp";
  if (!original) {
    original = timeAt(event, "timestamp", malformed);
    client_key = "timestamp";
    if (malformed) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "\"timestamp\" is not an ISO-8601 date-time");
    }
  }
  std::optional<std::int64_t> sent_at;
  {
    bool bad_sent_at = false;  // an unreadable sentAt only disables the correction
    sent_at = timeAt(event, "sentAt", bad_sent_at);
    if (!sent_at && input.batch_sent_at) {
      sent_at = sdk::parseIsoTimestamp(*input.batch_sent_at);
    }
  }
  if (original && sent_at) {
    if (client_key == "timestamp") {
      json::value client_time = event.at("timestamp");  // a copy: inserting may move the table
      event["originalTimestamp"] = std::move(client_time);
    }
    event["timestamp"] = sdk::formatIsoTimestamp(input.received_at_ms - (*sent_at - *original));
  } else if (original) {
    if (client_key == "originalTimestamp") {
      json::value client_time = event.at("originalTimestamp");
      event["timestamp"] = std::move(client_time);
    }
  } else {
    event["timestamp"] = received_at;
  }
  event["receivedAt"] = received_at;

  // context.ip: what the event says (server-side libraries relay the end user's), else ours.
  std::string ip;
  json::object* context = nullptr;
  if (auto it = event.find("context"); it != event.end()) {
    context = it->value().if_object();
    if (context != nullptr) {
      if (const json::value* v = context->if_contains("ip"); v != nullptr && v->is_string()) {
        ip = std::string(v->as_string());
      }
    }
  }
  if (ip.empty()) {
    ip = std::string(input.client_ip);
  }
  if (input.ip_policy == ClientIpPolicy::Truncate && !ip.empty()) {
    ip = truncateIp(ip).value_or("");
  }
  if (input.ip_policy == ClientIpPolicy::Drop || ip.empty()) {
    if (context != nullptr) {
      context->erase("ip");
    }
  } else {
    if (context == nullptr && !event.contains("context")) {
      context = objectAt(event, "context");
    }
    if (context != nullptr) {
      (*context)["ip"] = ip;
    }
  }
  return outcome;
}

sdk::Result<sdk::Event> toEvent(const json::object& event, std::string_view source_id,
                                std::int64_t received_at_ms) {
  auto made = sdk::makeEvent(event, source_id);
  if (!made) {
    return std::move(made).error();
  }
  sdk::EventHeader header = made->header();
  header.received_at_ms = received_at_ms;
  if (header.timestamp_ms == 0) {
    header.timestamp_ms = received_at_ms;
  }
  return sdk::Event(std::move(header), std::string(made->json()));
}

}  // namespace junction::plugins::http
