#include "junction/sdk/json_scan.h"
#include "junction/sdk/text.h"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace junction::sdk::json_scan {

namespace {

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;

// Bytes of `x` that are zero: their high bit set in the result (exact for the first one, and
// "any" is exact — all this code needs).
constexpr std::uint64_t zeroBytes(std::uint64_t x) noexcept { return (x - kOnes) & ~x & kHighs; }

// The bytes of `x` (8 bytes of a string, little-endian) that need a closer look: '"', '\\', a
// control character (< 0x20) or a byte of a multi-byte UTF-8 sequence (>= 0x80). Each flagged
// byte has its high bit set in the result; the lowest flagged one is exact (borrows only run
// upwards), which is all the caller uses.
constexpr std::uint64_t special(std::uint64_t x) noexcept {
  return zeroBytes(x ^ (kOnes * '"')) | zeroBytes(x ^ (kOnes * '\\')) |
         ((x - kOnes * 0x20) & ~x & kHighs) | (x & kHighs);
}

// The first byte at or after `p` that special() would flag, 8 bytes a step, or the point where
// fewer than `left` bytes are left.
inline const char* toSpecialByWords(const char* p, const char* end, std::ptrdiff_t left) noexcept {
  while (end - p >= left) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    if (const std::uint64_t flagged = special(word); flagged != 0) {
      return p + __builtin_ctzll(flagged) / 8;
    }
    p += 8;
  }
  return p;
}

// The same, or the point where fewer than 16 bytes are left. Sixteen bytes a step with SSE2
// (every x86-64): most strings of an event are shorter than that and are crossed in one step. A
// signed compare below 0x20 flags both control characters and bytes >= 0x80.
inline const char* toSpecial(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i flagged =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                     _mm_cmplt_epi8(x, space));
    if (const int mask = _mm_movemask_epi8(flagged); mask != 0) {
      return p + __builtin_ctz(static_cast<unsigned>(mask));
    }
    p += 16;
  }
  return p;
#else
  return toSpecialByWords(p, end, 16);
#endif
}

constexpr bool isDigit(char c) noexcept { return c >= '0' && c <= '9'; }

constexpr int hexValue(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Length of the valid UTF-8 sequence starting at `p` (a byte >= 0x80), 0 when invalid:
// overlong forms, surrogates and code points above U+10FFFF are refused.
std::size_t utf8Sequence(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned char c = p[0];
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return p + i < end && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) {
    return cont(1) ? 2 : 0;
  }
  if (c == 0xE0) {
    return cont(1, 0xA0) && cont(2) ? 3 : 0;
  }
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (c == 0xED) {
    return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  }
  if (c == 0xF0) {
    return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  }
  if (c >= 0xF1 && c <= 0xF3) {
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  if (c == 0xF4) {
    return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

bool KeySet::contains(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < count_; ++i) {
    if (entries_[i].size == name.size() &&
        std::memcmp(entries_[i].data, name.data(), name.size()) == 0) {
      return true;
    }
  }
  return false;
}

// Most strings hold nothing but printable ASCII: they end at the first flagged byte, a quote.
// Escapes, UTF-8 and the last bytes of the text are skipStringRest's, out of line, so that this
// stays small enough to be inlined where strings are read.
inline bool Cursor::skipString(bool& escaped) noexcept {
  // At the opening quote.
  escaped = false;
  const char* p = toSpecial(p_ + 1, end_);
  if (p != end_ && *p == '"') {  // flagged, or the first byte not looked at: the end either way
    p_ = p + 1;
    return true;
  }
  p_ = p;
  return skipStringRest(escaped);
}

bool Cursor::skipStringRest(bool& escaped) noexcept {
  for (;;) {
    p_ = toSpecial(p_, end_);  // to the first byte that needs a look (or the last few)
    if (end_ - p_ < 16) {
      p_ = toSpecialByWords(p_, end_, 8);  // the last bytes of the text
    }
    if (p_ == end_) {
      return false;
    }
    const auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      ++p_;
      return true;
    }
    if (c < 0x20) {
      return false;
    }
    if (c == '\\') {
      escaped = true;
      if (end_ - p_ < 2) {
        return false;
      }
      const char e = p_[1];
      if (e == 'u') {
        if (end_ - p_ < 6) {
          return false;
        }
        int code = 0;
        for (int i = 2; i < 6; ++i) {
          const int h = hexValue(p_[i]);
          if (h < 0) {
            return false;
          }
          code = code * 16 + h;
        }
        if (code >= 0xD800 && code <= 0xDFFF) {
          return false;  // surrogates: left to the full parser
        }
        p_ += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                 e == 'r' || e == 't') {
        p_ += 2;
      } else {
        return false;
      }
      continue;
    }
    if (c >= 0x80) {
      const std::size_t n = utf8Sequence(reinterpret_cast<const unsigned char*>(p_),
                                         reinterpret_cast<const unsigned char*>(end_));
      if (n == 0) {
        return false;
      }
      p_ += n;
      continue;
    }
    ++p_;
  }
}

inline bool Cursor::readString(std::string_view& raw, bool& escaped) noexcept {
  if (peek() != '"') {
    return false;
  }
  const char* start = p_ + 1;
  if (!skipString(escaped)) {
    return false;
  }
  raw = std::string_view(start, static_cast<std::size_t>(p_ - 1 - start));
  return true;
}

bool Cursor::string(std::string_view& raw, bool& escaped) noexcept {
  return readString(raw, escaped);
}

bool Cursor::key(std::string_view& name, bool& escaped) noexcept {
  return readString(name, escaped) && consume(':');
}

bool Cursor::member(std::string_view& name, bool& escaped, std::string_view& raw,
                    int depth) noexcept {
  if (!key(name, escaped)) {
    return false;
  }
  if (peek() == '"') {  // most values are strings
    const char* start = p_;
    bool value_escaped = false;
    if (!skipString(value_escaped)) {
      return false;
    }
    raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
    return true;
  }
  return value(raw, depth);
}

bool Cursor::skipNumber() noexcept {
  // Digit runs are bounded so that every number accepted here is a finite double for any parser.
  auto digits = [this]() noexcept {
    const char* start = p_;
    while (p_ != end_ && isDigit(*p_)) {
      ++p_;
    }
    return p_ - start;
  };
  if (p_ != end_ && *p_ == '-') {
    ++p_;
  }
  if (p_ != end_ && *p_ == '0') {
    ++p_;
  } else if (const auto n = digits(); n == 0 || n > 64) {
    return false;
  }
  if (p_ != end_ && *p_ == '.') {
    ++p_;
    if (const auto n = digits(); n == 0 || n > 64) {
      return false;
    }
  }
  if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
    ++p_;
    if (p_ != end_ && (*p_ == '+' || *p_ == '-')) {
      ++p_;
    }
    if (const auto n = digits(); n == 0 || n > 2) {
      return false;
    }
  }
  return true;
}

bool Cursor::skipLiteral(std::string_view word) noexcept {
  if (static_cast<std::size_t>(end_ - p_) < word.size() ||
      std::memcmp(p_, word.data(), word.size()) != 0) {
    return false;
  }
  p_ += word.size();
  return true;
}

bool Cursor::skipContainer(int depth) noexcept {
  // At '{' or '['; the container itself is one level deeper than `depth`.
  if (depth + 1 >= kMaxDepth) {
    return false;
  }
  std::string_view ignored;
  if (*p_ == '[') {
    ++p_;
    if (consume(']')) {
      return true;
    }
    do {
      if (!value(ignored, depth + 1)) {
        return false;
      }
    } while (consume(','));
    return consume(']');
  }
  return skipObject(depth);
}

bool Cursor::skipObject(int depth) noexcept {
  ++p_;
  if (consume('}')) {
    return true;
  }
  KeySet keys;
  std::string_view ignored;
  do {
    bool escaped = false;
    std::string_view name;
    if (!member(name, escaped, ignored, depth + 1) || !keys.insert(name, escaped)) {
      return false;
    }
  } while (consume(','));
  return consume('}');
}

bool Cursor::value(std::string_view& raw, int depth) noexcept {
  const char c = peek();
  const char* start = p_;
  bool ok = false;
  switch (c) {
    case '"': {
      bool escaped = false;
      ok = skipString(escaped);
      break;
    }
    case '{':
    case '[':
      ok = skipContainer(depth);
      break;
    case 't':
      ok = skipLiteral("true");
      break;
    case 'f':
      ok = skipLiteral("false");
      break;
    case 'n':
      ok = skipLiteral("null");
      break;
    default:
      ok = (c == '-' || isDigit(c)) && skipNumber();
      break;
  }
  if (ok) {
    raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
  }
  return ok;
}

bool valid(std::string_view text) noexcept {
  Cursor cursor(text);
  std::string_view raw;
  return cursor.value(raw) && cursor.atEnd();
}

std::optional<std::string_view> topLevelMember(std::string_view object_text,
                                               std::string_view key) noexcept {
  Cursor cursor(object_text);
  if (!cursor.consume('{')) {
    return std::nullopt;
  }
  std::optional<std::string_view> found;
  if (!cursor.consume('}')) {
    KeySet keys;
    do {
      std::string_view name;
      std::string_view value;
      bool escaped = false;
      if (!cursor.string(name, escaped) || !keys.insert(name, escaped) || !cursor.consume(':') ||
          !cursor.value(value, 1)) {
        return std::nullopt;
      }
      if (name == key) {
        found = value;
      }
    } while (cursor.consume(','));
    if (!cursor.consume('}')) {
      return std::nullopt;
    }
  }
  if (!cursor.atEnd()) {
    return std::nullopt;
  }
  return found;
}

}  // namespace junction::sdk::json_scan

namespace junction::sdk {

bool isUtf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const std::size_t n = json_scan::utf8Sequence(p, end);
    if (n == 0) {
      return false;
    }
    p += n;
  }
  return true;
}

}  // namespace junction::sdk
