// libFuzzer target for the http source's request-body path: Content-Encoding decoding (with
// its decoded-size limit), JSON parsing per endpoint, enrichment and event building — all the
// code that sees untrusted bytes before the queue. Built and run by run_fuzz.sh (ctest
// http_body_fuzz) with clang++ -fsanitize=fuzzer,address.
//
// Input: byte 0 picks the endpoint (low 3 bits) and the encoding (bit 3: gzip), byte 1 the
// client-IP policy; the rest is the body.

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "auth.h"
#include "body.h"
#include "enrich.h"

using namespace junction::plugins::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const auto endpoint = static_cast<Endpoint>(data[0] % 7);
  const bool gzip = (data[0] & 0x08) != 0;
  const auto policy = static_cast<ClientIpPolicy>(data[1] % 3);
  std::string body(reinterpret_cast<const char*>(data + 2), size - 2);

  (void)basicAuthUser(body.substr(0, 64));
  auto decoded = decodeBody(gzip ? "gzip" : "", std::move(body), 256 * 1024);
  if (!decoded) {
    return 0;
  }
  auto parsed = parseBody(endpoint, *decoded);
  if (!parsed) {
    return 0;
  }
  (void)parsed->writeKey();
  EnrichInput input;
  input.received_at_ms = 1767225600000;
  input.client_ip = "2001:db8::1";
  input.ip_policy = policy;
  input.forced_type = eventTypeOf(endpoint);
  input.batch_sent_at = parsed->batchSentAt();
  input.batch_context = parsed->batchContext();
  input.batch_integrations = parsed->batchIntegrations();
  for (auto& item : parsed->items()) {
    boost::json::object* object = item.if_object();
    if (object == nullptr) {
      continue;
    }
    auto enriched = enrichEvent(*object, input);
    if (!enriched) {
      continue;
    }
    auto event = toEvent(*object, "fuzz", input.received_at_ms);
    if (event && event->messageId().empty()) {
      __builtin_trap();  // enrichment always leaves a messageId
    }
  }
  return 0;
}
