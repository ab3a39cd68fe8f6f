// libFuzzer target: webhook signatures (sdk/include/junction/sdk/webhook_signature.h).
//
// Input: `<X-Junction-Signature header value>\n<raw body>` (no newline: all header, empty body).
// Verified with a fixed secret at a fixed clock (2026-01-01T00:00:00Z, the seeds' `t`), then the
// body is signed afresh, with the fixed secret and with a secret and a time taken from the input.
// Invariants:
//   - a verdict is Ok, PermissionDenied (bad or missing signature) or InvalidArgument (right
//     signature, `t` out of tolerance), and its message holds neither the secret nor an HMAC;
//   - Ok only when the header carries the HMAC of the body for one of its `t=` values, that
//     `t` within the tolerance;
//   - a freshly signed body verifies; under another secret, with one more byte of body, or
//     one second past the tolerance, it does not (PermissionDenied, PermissionDenied,
//     InvalidArgument); the same header stays valid with a second (rotated) v1 added.
// Seeds: headers made by signWebhook over webhook batch bodies (tests/fuzz/seed_gen.cc), with
// spaces, a second v1, a v2, an old t, a duplicated t.

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "junction/sdk/webhook_signature.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace sdk = junction::sdk;

constexpr std::string_view kSecret = "whsec_fuzz_5b7e0c1d9a";
constexpr std::int64_t kNow = 1767225600;  // the seeds' t
constexpr std::chrono::seconds kTolerance = sdk::kDefaultWebhookTolerance;

// Whether `text` has a run of 64 hex digits (an HMAC).
bool holdsHmac(std::string_view text) {
  std::size_t run = 0;
  for (const char c : text) {
    run = std::isxdigit(static_cast<unsigned char>(c)) ? run + 1 : 0;
    if (run >= 64) {
      return true;
    }
  }
  return false;
}

void checkVerdict(const sdk::Status& st) {
  if (st.ok()) {
    return;
  }
  const auto code = st.error().code;
  FUZZ_CHECK(code == sdk::ErrorCode::PermissionDenied || code == sdk::ErrorCode::InvalidArgument,
             st.message());
  FUZZ_CHECK(st.message().find(kSecret) == std::string::npos, "the message quotes the secret");
  FUZZ_CHECK(!holdsHmac(st.message()), "the message quotes an HMAC: " + st.message());
}

// Whether `header` has a `t=` item within the tolerance of kNow whose HMAC over `body` it also
// carries — read independently of the parser under test: items split at ',', spaces and tabs
// around keys and values trimmed, t = decimal digits.
bool carriesValidSignature(std::string_view header, std::string_view body) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  const std::string_view whole = header;
  while (!header.empty()) {
    const auto comma = header.find(',');
    const std::string_view item = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos || trim(item.substr(0, eq)) != "t") {
      continue;
    }
    const std::string_view value = trim(item.substr(eq + 1));
    std::int64_t t = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), t);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size() || t < 0) {
      continue;
    }
    const std::int64_t skew = kNow > t ? kNow - t : t - kNow;
    if (skew <= kTolerance.count() &&
        whole.find(sdk::webhookSignatureHex(kSecret, t, body)) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = junction::fuzz::asText(data, size);
  const auto newline = input.find('\n');
  const std::string_view header = input.substr(0, newline);
  const std::string_view body =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  // The input as a request.
  const sdk::Status verdict = sdk::verifyWebhookSignature(header, kSecret, body, kNow, kTolerance);
  checkVerdict(verdict);
  if (verdict.ok()) {
    FUZZ_CHECK(carriesValidSignature(header, body),
               "accepted a header without the body's HMAC for a t within the tolerance: " +
                   std::string(header));
  }
  // An empty secret verifies nothing.
  checkVerdict(sdk::verifyWebhookSignature(header, "", body, kNow, kTolerance));
  FUZZ_CHECK(!sdk::verifyWebhookSignature(header, "", body, kNow, kTolerance).ok(),
             "verified under an empty secret");

  // The body signed afresh verifies, and only as it was signed.
  const std::string fresh = sdk::signWebhook(kSecret, kNow, body);
  FUZZ_CHECK(sdk::verifyWebhookSignature(fresh, kSecret, body, kNow, kTolerance).ok(), fresh);
  const std::string rotated = fresh + ",v1=" + sdk::webhookSignatureHex("old-secret", kNow, body);
  FUZZ_CHECK(sdk::verifyWebhookSignature(rotated, kSecret, body, kNow, kTolerance).ok(), rotated);
  FUZZ_CHECK(sdk::verifyWebhookSignature(rotated, "old-secret", body, kNow, kTolerance).ok(),
             rotated);
  auto refused = sdk::verifyWebhookSignature(fresh, "another-secret", body, kNow, kTolerance);
  FUZZ_CHECK(!refused.ok() && refused.error().code == sdk::ErrorCode::PermissionDenied, fresh);
  const std::string longer = std::string(body) + "x";
  refused = sdk::verifyWebhookSignature(fresh, kSecret, longer, kNow, kTolerance);
  FUZZ_CHECK(!refused.ok() && refused.error().code == sdk::ErrorCode::PermissionDenied, fresh);
  refused = sdk::verifyWebhookSignature(fresh, kSecret, body, kNow + kTolerance.count() + 1,
                                        kTolerance);
  FUZZ_CHECK(!refused.ok() && refused.error().code == sdk::ErrorCode::InvalidArgument, fresh);
  checkVerdict(refused);

  // A secret and a time from the input (the first 32 bytes of the header; t from its length
  // and bytes): signing and verifying agree for any secret and any t of at most 18 digits.
  const std::string_view secret = header.substr(0, 32);
  if (!secret.empty()) {
    std::uint64_t mix = 0;
    for (const char c : header.substr(0, 8)) {
      mix = mix * 131 + static_cast<unsigned char>(c);
    }
    const auto t = static_cast<std::int64_t>(mix % 1000000000000000000u);  // at most 18 digits
    const std::string signature = sdk::signWebhook(secret, t, body);
    FUZZ_CHECK(sdk::verifyWebhookSignature(signature, secret, body, t, kTolerance).ok(),
               signature);
  }
  return 0;
}
