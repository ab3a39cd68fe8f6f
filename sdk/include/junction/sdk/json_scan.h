#pragma once

// Reading JSON text without building a tree: a cursor that validates what it steps over and
// hands back slices of the original text. For hot paths that need a few top-level fields of
// an event and pass the rest on byte for byte (ingest splices enrichment into the received
// text; a destination checks whether a key is present). Everything else should use Boost.JSON
// (sdk/json.h): this is deliberately small.
//
// Validation follows RFC 8259 as Boost.JSON's parser applies it, and is never looser: strings
// must be valid UTF-8 without raw control characters; escapes are checked, and a \u escape of
// a UTF-16 surrogate is refused (callers fall back to Boost.JSON, which knows the pairing
// rules); numbers follow the grammar, and an exponent of more than two digits is refused (no
// infinities downstream); nesting is limited (kMaxDepth, as sdk::parseJson). A `false` from
// any method means "not handled here", never "valid": the caller falls back to a full parser,
// which then either accepts the text or names the error.
//
// Thread-safety: a Cursor is a value over the caller's text; one thread at a time.

#include <cstddef>
#include <optional>
#include <string_view>

namespace junction::sdk::json_scan {

inline constexpr int kMaxDepth = 64;

class Cursor {
 public:
  explicit Cursor(std::string_view text) noexcept
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  // Skips whitespace; the next character, or '\0' at the end.
  char peek() noexcept {
    // Compact JSON, what SDKs send, has no whitespace: one compare then (all four whitespace
    // characters are below '!').
    if (p_ != end_ && static_cast<unsigned char>(*p_) > ' ') [[likely]] {
      return *p_;
    }
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
      ++p_;
    }
    return p_ != end_ ? *p_ : '\0';
  }
  // Skips whitespace; consumes `c` when it is next.
  bool consume(char c) noexcept {
    if (peek() == c && p_ != end_) {
      ++p_;
      return true;
    }
    return false;
  }
  // Skips whitespace; true when nothing is left.
  bool atEnd() noexcept { return peek() == '\0' && p_ == end_; }

  // A string at the cursor (after whitespace). `raw` is the text between the quotes, escapes
  // as written; `escaped` tells whether it holds any.
  bool string(std::string_view& raw, bool& escaped) noexcept;

  // Any value at the cursor (after whitespace), validated and skipped; `raw` is its text
  // (strings with their quotes). `depth` is the nesting of the value's container (the root
  // value is at depth 0).
  bool value(std::string_view& raw, int depth = 0) noexcept;

  // A member's name and the colon after it (string() then consume(':') in one call).
  bool key(std::string_view& name, bool& escaped) noexcept;
  // One member of an object at the cursor (after whitespace): `"name": value`, as string() then
  // consume(':') then value(…, depth) would read it, in one call (the common case, a string
  // value, without a call per part).
  bool member(std::string_view& name, bool& escaped, std::string_view& value,
              int depth) noexcept;

  // Offset of the cursor in the text.
  std::size_t offset() const noexcept { return static_cast<std::size_t>(p_ - begin_); }
  const char* position() const noexcept { return p_; }

 private:
  bool readString(std::string_view& raw, bool& escaped) noexcept;  // string(), for inlining
  bool skipString(bool& escaped) noexcept;
  bool skipStringRest(bool& escaped) noexcept;  // from the first byte that needs a look
  bool skipNumber() noexcept;
  bool skipLiteral(std::string_view word) noexcept;
  bool skipContainer(int depth) noexcept;

  const char* begin_;
  const char* p_;
  const char* end_;
};

// True when `text` is exactly one valid JSON value (whitespace around it allowed), by the rules
// above.
bool valid(std::string_view text) noexcept;

// The raw text of the top-level member `key` of the JSON object `object_text` (its last
// occurrence). nullopt when absent, when `object_text` is not a valid object by the rules above,
// or when some top-level key is written with escapes (it might spell `key`).
std::optional<std::string_view> topLevelMember(std::string_view object_text,
                                               std::string_view key) noexcept;

}  // namespace junction::sdk::json_scan
