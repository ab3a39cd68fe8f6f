#pragma once

// Signed webhooks: the `X-Junction-Signature` header that the webhook destination sends with
// every push and that inbound webhooks must carry.
//
//   X-Junction-Signature: t=1767225600,v1=<64 lower-case hex digits>
//
// `t` is the sender's clock in Unix seconds; each `v1` is the lower-case hex of
// HMAC-SHA256(secret, "<t>.<raw body>"), one per secret the sender signs with (two while a
// secret is being rotated). A receiver recomputes the HMAC over the body bytes exactly as
// received, compares it in constant time with every `v1`, and refuses a `t` too far from its own
// clock: without that check an eavesdropper could replay a captured request forever.
//
// Every function here is pure and thread-safe. They allocate, so they may throw std::bad_alloc
// and nothing else.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "junction/sdk/result.h"

namespace junction::sdk {

inline constexpr std::string_view kWebhookSignatureHeader = "X-Junction-Signature";

// How far `t` may be from the receiver's clock, either way. Five minutes covers ordinary clock
// skew between hosts plus a request's time in flight and in retries of one attempt, and still
// limits a replayed request to a short window (receivers that remember messageIds for that
// long refuse replays altogether).
inline constexpr std::chrono::seconds kDefaultWebhookTolerance{300};

// Lower-case hex of HMAC-SHA256(secret, "<unix_seconds>.<body>"): one `v1` value, 64 characters.
// The body is hashed in place, not copied.
std::string webhookSignatureHex(std::string_view secret, std::int64_t unix_seconds,
                                std::string_view body);

// The header value "t=<unix_seconds>,v1=<webhookSignatureHex(...)>".
std::string signWebhook(std::string_view secret, std::int64_t unix_seconds, std::string_view body);

// Checks a header value against `body` (the raw bytes received) under `secret`:
//   - PermissionDenied (answer 401) when the header is empty, has no `t=` or a `t` that is not
//     an integer, has no `v1=`, or when no `v1` equals the HMAC recomputed here (constant-time
//     comparison; other schemes such as a future `v2=` are ignored). An empty secret verifies
//     nothing and is refused the same way;
//   - InvalidArgument (answer 400) when the signature is right but `t` is more than `tolerance`
//     away from `now_unix_seconds`, in the past or the future (a stale or replayed request).
// The signature is checked before the time, so a caller without the secret learns nothing but
// "mismatch". Messages say which part failed and never contain the secret or the HMAC.
// Items are comma-separated `key=value` pairs; spaces around them are allowed; unknown keys are
// ignored. A receiver holding several secrets (rotation) calls this once per secret.
Status verifyWebhookSignature(std::string_view header, std::string_view secret,
                              std::string_view body, std::int64_t now_unix_seconds,
                              std::chrono::seconds tolerance = kDefaultWebhookTolerance);

}  // namespace junction::sdk
