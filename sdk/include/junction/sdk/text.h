#pragma once

// Text helpers for plugins.

#include <cstddef>
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

}  // namespace junction::sdk
