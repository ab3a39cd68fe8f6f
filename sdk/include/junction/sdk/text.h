#pragma once

// Text helpers for plugins.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace junction::sdk {

// `text` cut to at most `max_bytes` (then "..." appended) without splitting a UTF-8 character:
// for outcome reasons that quote a vendor's answer, which the dead-letter API serves as JSON
// (a character cut in half is not UTF-8, so not JSON). Thread-safe.
std::string clipReason(std::string text, std::size_t max_bytes);

// Whether `text` is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF):
// text that is not must never be quoted into a JSON answer or a reason. Thread-safe.
bool isUtf8(std::string_view text) noexcept;

// `text` with every byte but RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~) written as
// %XX: for a value in a URL path segment, a query string or a form-encoded body. Thread-safe.
std::string percentEncode(std::string_view text);

// The inverse: %XX sequences decoded (a malformed one is kept as it is), and '+' read as a space
// when `plus_as_space` (form-encoded bodies and query strings). Thread-safe.
std::string percentDecode(std::string_view text, bool plus_as_space = false);

// The decoded value of `name` in an application/x-www-form-urlencoded text (a form body or a
// URL's query string, without '?'), or nullopt when absent. Thread-safe.
std::optional<std::string> formValue(std::string_view form, std::string_view name);

}  // namespace junction::sdk
