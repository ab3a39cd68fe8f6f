#pragma once

// Enrichment of one event as Segment does it, in place on its JSON object: the endpoint's
// type, batch-level context/integrations, messageId (UUID v4) when absent, receivedAt,
// timestamp corrected for the client's clock skew, and context.ip under the privacy policy.
// Pure functions (the caller passes the time): unit-tested and fuzzed.

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::plugins::http {

enum class ClientIpPolicy { Keep, Drop, Truncate };

// "keep" | "drop" | "truncate" (anything else: Keep; the option table restricts the values).
ClientIpPolicy parseClientIpPolicy(std::string_view text) noexcept;

struct EnrichInput {
  std::int64_t received_at_ms = 0;
  std::string_view client_ip;  // of the connection (or X-Forwarded-For); may be empty
  ClientIpPolicy ip_policy = ClientIpPolicy::Keep;
  std::optional<sdk::EventType> forced_type;        // single-event endpoints
  std::optional<std::string_view> batch_sent_at;    // a batch's `sentAt`
  const boost::json::object* batch_context = nullptr;
  const boost::json::object* batch_integrations = nullptr;
};

struct EnrichOutcome {
  bool generated_message_id = false;  // no messageId was sent: nothing to de-duplicate on
};

// Enriches `event`:
// - `type` := the endpoint's type (single-event endpoints); `writeKey` is removed (a secret);
// - keys of the batch's `context` / `integrations` the event lacks are copied in;
// - `messageId` := a new UUID v4 when absent, null or "";
// - `receivedAt` := received_at_ms;
// - with a client time (`originalTimestamp`, else `timestamp`) and `sentAt` (the event's, else
//   the batch's): `timestamp` := receivedAt - (sentAt - client time), and `originalTimestamp`
//   keeps the client time; without sentAt the client time stays; without either, receivedAt;
// - `context.ip` := the event's own context.ip, else `client_ip`; then kept, dropped or
//   truncated (IPv4 /24, IPv6 /48) per `ip_policy`.
// InvalidArgument when `timestamp` / `originalTimestamp` is present but not an ISO-8601 time.
sdk::Result<EnrichOutcome> enrichEvent(boost::json::object& event, const EnrichInput& input);

// The address with its host part zeroed: IPv4 to /24 ("203.0.113.7" -> "203.0.113.0"), IPv6
// to /48 ("2001:db8:85a3::8a2e:370:7334" -> "2001:db8:85a3::"). nullopt for a non-address.
std::optional<std::string> truncateIp(std::string_view ip);

// Validates and serializes an enriched event (sdk::makeEvent) and completes its header
// (`received_at_ms`), so that ingest takes it as is.
sdk::Result<sdk::Event> toEvent(const boost::json::object& event, std::string_view source_id,
                                std::int64_t received_at_ms);

}  // namespace junction::plugins::http
