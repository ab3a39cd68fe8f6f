#include "core/privacy/consent.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace junction::core::privacy {

namespace json = boost::json;

namespace {
const json::object* objectAt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

void addIds(const json::object& o, std::string_view key, std::set<std::string>& out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_array()) {
    return;
  }
  for (const auto& id : v->as_array()) {
    if (id.is_string()) {
      out.insert(lowerAscii(id.as_string()));
    }
  }
}

// Whether `text` contains "onsent" (in "consent" and "consentManagement"). SSE2: 16 positions
// at a time are tested for an 'o' with a 't' five bytes later, and only those pairs are compared
// in full. glibc's memmem took a tenth of the ingest threads' time here.
bool containsOnsent(std::string_view text) noexcept {
  static constexpr std::string_view kNeedle = "onsent";
  constexpr std::size_t kLast = kNeedle.size() - 1;
  const char* p = text.data();
  const std::size_t n = text.size();
#if defined(__SSE2__)
  constexpr std::size_t kSpan = kLast + 16;  // the bytes one step reads
  if (n >= kSpan) {
    const __m128i first = _mm_set1_epi8(kNeedle.front());
    const __m128i last = _mm_set1_epi8(kNeedle.back());
    // Steps of 16 positions; the last step is moved back to end exactly at the text's end
    // (positions it shares with the step before are tested twice, which is harmless).
    for (std::size_t i = 0;; i += 16) {
      if (i + kSpan > n) {
        i = n - kSpan;
      }
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + kLast));
      auto mask = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last))));
      while (mask != 0) {
        const std::size_t at = i + static_cast<std::size_t>(__builtin_ctz(mask));
        if (std::memcmp(p + at + 1, kNeedle.data() + 1, kLast - 1) == 0) {
          return true;
        }
        mask &= mask - 1;
      }
      if (i + kSpan == n) {
        return false;
      }
    }
  }
#endif
  // Short texts (or no SSE2).
  return ::memmem(p, n, kNeedle.data(), kNeedle.size()) != nullptr;
}

json::array toArray(const std::set<std::string>& values) {
  json::array out;
  for (const auto& v : values) {
    out.emplace_back(v);
  }
  return out;
}
}  // namespace

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool mayStateConsent(std::string_view json) noexcept {
  if (containsOnsent(json)) {
    return true;
  }
  // A key written with \u escapes might still spell "consent".
  const void* backslash = std::memchr(json.data(), '\\', json.size());
  if (backslash == nullptr) {
    return false;
  }
  const auto from = static_cast<std::size_t>(static_cast<const char*>(backslash) - json.data());
  return json.find("\\u", from) != std::string_view::npos;
}

EventConsent readConsent(const sdk::Event& event) {
  if (!mayStateConsent(event.json())) {
    return {};  // most events: no parse
  }
  return readConsent(event.body());
}

EventConsent readConsent(const json::object& body) {
  EventConsent out;
  const json::object* context = objectAt(body, "context");
  if (context == nullptr) {
    return out;
  }
  if (const json::object* consent = objectAt(*context, "consent")) {
    if (const json::object* prefs = objectAt(*consent, "categoryPreferences")) {
      out.stated = true;
      for (const auto& [name, value] : *prefs) {
        if (value.is_bool()) {
          (value.as_bool() ? out.granted : out.denied).insert(lowerAscii(name));
        }
      }
      return out;
    }
  }
  if (const json::object* cm = objectAt(*context, "consentManagement")) {
    out.stated = true;
    addIds(*cm, "allowedConsentIds", out.granted);
    addIds(*cm, "deniedConsentIds", out.denied);
  }
  return out;
}

void applyAliases(EventConsent& consent, const ConsentAliases& aliases) {
  if (aliases.empty()) {
    return;
  }
  for (auto* set : {&consent.granted, &consent.denied}) {
    std::set<std::string> added;
    for (const auto& id : *set) {
      if (auto it = aliases.find(id); it != aliases.end()) {
        added.insert(it->second);
      }
    }
    set->insert(added.begin(), added.end());
  }
}

std::string consentToJson(const EventConsent& consent) {
  return json::serialize(
      json::object{{"granted", toArray(consent.granted)}, {"denied", toArray(consent.denied)}});
}

std::optional<EventConsent> consentFromJson(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return std::nullopt;
  }
  EventConsent out;
  out.stated = true;
  addIds(v.as_object(), "granted", out.granted);
  addIds(v.as_object(), "denied", out.denied);
  return out;
}

}  // namespace junction::core::privacy
