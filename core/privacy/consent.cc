#include "core/privacy/consent.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

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

EventConsent readConsent(const sdk::Event& event) { return readConsent(event.body()); }

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
