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
// infinities downstream); nesting is limited (kMaxDepth, as sdk::parseJson); no object holds a
// key twice (sdk::parseJson refuses that too: parsers disagree on which value wins), checked
// in every object with a KeySet. A `false` from any method means "not handled here", never
// "valid": the caller falls back to a full parser, which then either accepts the text or
// names the error.
//
// Thread-safety: a Cursor is a value over the caller's text; one thread at a time.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace junction::sdk::json_scan {

inline constexpr int kMaxDepth = 64;

// The keys of one object, as read so far, to find a key given twice. Fixed storage on the
// reader's stack (no allocation, nothing initialized but two words): a 64-bit filter of key
// hashes answers "new" for most keys without a comparison; a key whose bit is set is compared
// with the earlier keys. Keys are compared as written, so an escaped key (which may spell
// another) cannot be judged here, nor an object of more than kMaxKeys keys: insert() then
// answers false too, and the caller declines (the full parser decides). Inline: it runs for
// every key of every event.
class KeySet {
 public:
  static constexpr std::size_t kMaxKeys = 64;

  KeySet() noexcept {}  // user-provided: `KeySet keys{}` leaves the entries uninitialized too

  // Adds `name` (the raw text between the quotes; it must outlive the set). False when it is
  // already there, or when this set cannot tell (see above).
  bool insert(std::string_view name, bool escaped) noexcept {
    if (escaped || count_ == kMaxKeys) [[unlikely]] {
      return false;
    }
    const std::uint64_t bit = std::uint64_t{1} << (hash(name) >> 58);
    if ((filter_ & bit) != 0 && contains(name)) {
      return false;
    }
    filter_ |= bit;
    entries_[count_++] = Entry{name.data(), name.size()};
    return true;
  }

 private:
  // From the length and the first and last (up to) eight bytes, read in place: O(1) for any
  // key. Multiplicative: the top bits are the well-mixed ones.
  static std::uint64_t hash(std::string_view key) noexcept {
    const std::size_t n = key.size();
    const auto* p = reinterpret_cast<const unsigned char*>(key.data());
    std::uint64_t head = 0;
    std::uint64_t tail = 0;
    if (n >= 8) {
      std::memcpy(&head, p, 8);
      std::memcpy(&tail, p + n - 8, 8);
    } else if (n >= 4) {
      std::uint32_t a;
      std::uint32_t b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      head = a;
      tail = b;
    } else if (n > 0) {
      head = p[0] | std::uint64_t{p[n / 2]} << 8;
      tail = p[n - 1];
    }
    return ((head ^ (tail << 31 | tail >> 33)) + n) * 0x9E3779B97F4A7C15ULL;
  }
  bool contains(std::string_view name) const noexcept;  // compares with every entry

  struct Entry {  // trivial (not a string_view): the array is left uninitialized
    const char* data;
    std::size_t size;
  };
  std::uint64_t filter_ = 0;
  std::size_t count_ = 0;
  Entry entries_[kMaxKeys];
};

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
  bool skipObject(int depth) noexcept;  // skipContainer's object half, with its KeySet

  const char* begin_;
  const char* p_;
  const char* end_;
};

// True when `text` is exactly one valid JSON value (whitespace around it allowed), by the rules
// above.
bool valid(std::string_view text) noexcept;

// The raw text of the top-level member `key` of the JSON object `object_text`. nullopt when
// absent, when `object_text` is not a valid object by the rules above (a key given twice
// included), or when some top-level key is written with escapes (it might spell `key`).
std::optional<std::string_view> topLevelMember(std::string_view object_text,
                                               std::string_view key) noexcept;

}  // namespace junction::sdk::json_scan
