#pragma once

// Hashing, HMAC and encodings that vendor APIs ask for (Mailchimp's MD5 subscriber hash, hashed
// e-mail addresses for ad platforms, webhook signatures). Backed by OpenSSL 3.
//
// Every function is pure and thread-safe. They allocate, so they may throw std::bad_alloc and
// nothing else; binary data travels in std::string / std::string_view (bytes, not text).

#include <string>
#include <string_view>

#include "junction/sdk/result.h"

namespace junction::sdk {

// Lower-case hex of MD5(data): 32 characters. For vendor identifiers only, never for security.
std::string md5Hex(std::string_view data);

// Lower-case hex of SHA-256(data): 64 characters.
std::string sha256Hex(std::string_view data);

// The raw 32-byte SHA-256 digest of `data`.
std::string sha256Raw(std::string_view data);

// The raw 32-byte HMAC-SHA256 of `data` under `key` (any key length, including empty).
std::string hmacSha256Raw(std::string_view key, std::string_view data);

// Lower-case hex of HMAC-SHA256(key, data): 64 characters.
std::string hmacSha256Hex(std::string_view key, std::string_view data);

// Standard base64 (RFC 4648 section 4, with padding) of HMAC-SHA256(key, data).
std::string hmacSha256Base64(std::string_view key, std::string_view data);

// Standard base64 (RFC 4648 section 4: `+/` alphabet, `=` padding).
std::string base64Encode(std::string_view bytes);

// Decodes standard base64. Padding may be omitted; whitespace, the URL-safe alphabet, bits
// left over in the last character and bytes after padding are refused with InvalidArgument
// (naming the offset of the first bad character).
Result<std::string> base64Decode(std::string_view text);

// Lower-case hex of `bytes`: two characters per byte.
std::string hexEncode(std::string_view bytes);

// Compares two byte strings in time that depends only on their lengths, not on where they
// differ (for checking signatures and tokens). Different lengths compare unequal.
bool constantTimeEquals(std::string_view a, std::string_view b) noexcept;

}  // namespace junction::sdk
