#include "core/delivery/route_policy.h"

#include <algorithm>
#include <cctype>

namespace junction::core::delivery {

namespace json = boost::json;

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

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
      out.insert(lower(id.as_string()));
    }
  }
}
}  // namespace

const char* reasonOf(RouteVerdict verdict) noexcept {
  switch (verdict) {
    case RouteVerdict::Deliver:
      return "";
    case RouteVerdict::FilteredSource:
      return "source";
    case RouteVerdict::FilteredType:
      return "type";
    case RouteVerdict::FilteredEvent:
      return "event";
    case RouteVerdict::ConsentDenied:
      return "consent_denied";
    case RouteVerdict::ConsentUnknown:
      return "consent_unknown";
  }
  return "";
}

bool isConsentVerdict(RouteVerdict verdict) noexcept {
  return verdict == RouteVerdict::ConsentDenied || verdict == RouteVerdict::ConsentUnknown;
}

EventConsent readConsent(const sdk::Event& event) {
  EventConsent out;
  const json::object* context = objectAt(event.body(), "context");
  if (context == nullptr) {
    return out;
  }
  if (const json::object* consent = objectAt(*context, "consent")) {
    if (const json::object* prefs = objectAt(*consent, "categoryPreferences")) {
      out.stated = true;
      for (const auto& [name, value] : *prefs) {
        if (value.is_bool()) {
          (value.as_bool() ? out.granted : out.denied).insert(lower(name));
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

RoutePolicy RoutePolicy::fromConfig(const config::ConnectorConfig& d) {
  RoutePolicy p;
  p.from_.insert(d.from.begin(), d.from.end());
  for (const auto& t : d.filter.types) {
    if (auto type = sdk::parseEventType(t)) {
      p.types_.insert(*type);
    }
  }
  p.events_.insert(d.filter.events.begin(), d.filter.events.end());
  for (const auto& c : d.consent) {
    p.consent_.push_back(lower(c));
  }
  p.consent_any_ = d.consent_mode == "any";
  p.default_grant_ = d.consent_default == "grant";
  return p;
}

RouteVerdict RoutePolicy::decide(const sdk::Event& event) const {
  const auto& h = event.header();
  if (!from_.empty() && !from_.contains(h.source_id)) {
    return RouteVerdict::FilteredSource;
  }
  if (!types_.empty() && !types_.contains(h.type)) {
    return RouteVerdict::FilteredType;
  }
  if (!events_.empty() && h.type == sdk::EventType::Track && !events_.contains(h.name)) {
    return RouteVerdict::FilteredEvent;
  }
  if (consent_.empty()) {
    return RouteVerdict::Deliver;
  }
  EventConsent consent = readConsent(event);
  bool any_granted = false;
  bool all_granted = true;
  bool any_denied = false;
  for (const auto& category : consent_) {
    bool granted = false;
    if (consent.denied.contains(category)) {
      any_denied = true;  // denied wins over allowed
    } else if (consent.granted.contains(category)) {
      granted = true;
    } else {
      granted = default_grant_;
    }
    any_granted = any_granted || granted;
    all_granted = all_granted && granted;
  }
  if (consent_any_ ? any_granted : all_granted) {
    return RouteVerdict::Deliver;
  }
  return any_denied ? RouteVerdict::ConsentDenied : RouteVerdict::ConsentUnknown;
}

}  // namespace junction::core::delivery
