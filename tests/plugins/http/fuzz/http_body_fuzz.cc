// libFuzzer target for the http source's request-body path: Content-Encoding decoding (with
// its decoded-size limit), JSON parsing per endpoint, enrichment and event building — all the
// code that sees untrusted bytes before the queue — on both paths: the fast one (slices of the
// text, splice.h) must never accept what the tree path refuses, and the events both make must
// be the same (a difference traps), and no event the tree path refuses for a key given twice or
// a number out of range may come out of either. Built and run by run_fuzz.sh (ctest
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
#include "junction/sdk/json.h"
#include "junction/sdk/json_scan.h"
#include "splice.h"

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
  auto scanned = scanBody(endpoint, *decoded);
  if (junction::sdk::json_scan::valid(*decoded)) {
    if (!junction::sdk::parseJson(*decoded)) {
      __builtin_trap();  // the scanner called valid what the full parser refuses (a key twice,
                         // a number out of range, or not JSON)
    }
  }
  if (!parsed) {
    if (scanned) {
      __builtin_trap();  // the fast path took a body the tree path refuses
    }
    return 0;
  }
  if (scanned && scanned->items.size() != parsed->items().size()) {
    __builtin_trap();
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
  const SpliceInput splice_input = makeSpliceInput(input, endpoint == Endpoint::Batch);
  auto items = parsed->items();
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::optional<SplicedEvent> spliced;
    if (scanned && scanned->items[i].object) {
      spliced = spliceEvent(scanned->items[i], scanned->members, splice_input, "fuzz");
    }
    boost::json::object* object = items[i].if_object();
    if (parsed->problemOf(i) != nullptr) {
      if (spliced) {
        __builtin_trap();  // the fast path took an event with a key twice or a number out of range
      }
      continue;  // its tree must not be used
    }
    if (object == nullptr) {
      continue;
    }
    auto enriched = enrichEvent(*object, input);
    if (!enriched) {
      if (spliced) {
        __builtin_trap();  // the fast path took an event the tree path refuses
      }
      continue;
    }
    auto event = toEvent(*object, "fuzz", input.received_at_ms);
    if (event && event->messageId().empty()) {
      __builtin_trap();  // enrichment always leaves a messageId
    }
    if (spliced) {
      if (!event) {
        __builtin_trap();
      }
      boost::json::value fast = boost::json::parse(spliced->event.json());
      boost::json::value tree = boost::json::parse(event->json());
      if (enriched->generated_message_id) {
        tree.as_object()["messageId"] = spliced->event.messageId();
      }
      const auto& a = spliced->event.header();
      const auto& b = event->header();
      if (fast != tree || a.type != b.type || a.user_id != b.user_id ||
          a.anonymous_id != b.anonymous_id || a.name != b.name ||
          a.timestamp_ms != b.timestamp_ms ||
          (!enriched->generated_message_id && a.message_id != b.message_id)) {
        __builtin_trap();  // the two paths made different events
      }
    }
  }
  return 0;
}
