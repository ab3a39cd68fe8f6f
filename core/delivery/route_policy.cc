#include "core/delivery/route_policy.h"

#include <algorithm>
#include <cctype>

namespace junction::core::delivery {

namespace json = boost::json;

using privacy::lowerAscii;

const char* reasonOf(RouteVerdict verdict) noexcept {
  switch (verdict) {
    case RouteVerdict::Deliver:
      return "";
    case RouteVerdict::FilteredSource:
      return "source";
    case RouteVerdict::FilteredLoop:
      return "loop";
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

RoutePolicy RoutePolicy::fromConfig(const config::ConnectorConfig& d,
                                    const privacy::ConsentAliases& aliases) {
  RoutePolicy p;
  p.from_.insert(d.from.begin(), d.from.end());
  p.loop_sources_.insert(d.loop_sources.begin(), d.loop_sources.end());
  p.audiences_.insert(d.audiences.begin(), d.audiences.end());
  p.scheduled_ = d.sync.mode == config::SyncConfig::Mode::Scheduled;
  for (const auto& t : d.filter.types) {
    if (auto type = sdk::parseEventType(t)) {
      p.types_.insert(*type);
    }
  }
  p.events_.insert(d.filter.events.begin(), d.filter.events.end());
  for (const auto& c : d.consent) {
    p.consent_.push_back(lowerAscii(c));
  }
  p.consent_any_ = d.consent_mode == "any";
  p.default_grant_ = d.consent_default == "grant";
  for (const auto& [id, name] : aliases) {
    p.aliases_.emplace(lowerAscii(id), lowerAscii(name));
  }
  return p;
}

namespace {

// `properties.audience` of an event from the built-in source `audiences`; "" when absent.
std::string_view audienceOf(const sdk::Event& event) {
  const json::value* properties = event.body().if_contains("properties");
  if (properties == nullptr || !properties->is_object()) {
    return {};
  }
  const json::value* audience = properties->get_object().if_contains("audience");
  return audience != nullptr && audience->is_string() ? std::string_view(audience->get_string())
                                                      : std::string_view();
}

}  // namespace

RouteVerdict RoutePolicy::decide(const sdk::Event& event,
                                 const privacy::ConsentMemory* memory) const {
  const auto& h = event.header();
  if (h.source_id == config::kAudiencesSource) {
    // Audience events go where `from` asks for them all, else to the destinations an audience
    // lists, whether or not they have a `from`; a scheduled destination has membership in its
    // snapshots instead.
    if (scheduled_ ||
        (!from_.contains(h.source_id) && !audiences_.contains(audienceOf(event)))) {
      return RouteVerdict::FilteredSource;
    }
  } else if (from_.empty() ? h.source_id == config::kProfilesSource ||
                                 h.source_id.starts_with(config::kSyncSourcePrefix)
                           : !from_.contains(h.source_id)) {
    // No `from`: every source but the built-in `profiles`, whose events (profile changes) go
    // only where they are asked for by name, and a scheduled destination's `sync.<id>`, whose
    // events are for that destination alone.
    return RouteVerdict::FilteredSource;
  }
  if (from_.empty() && loop_sources_.contains(h.source_id)) {
    return RouteVerdict::FilteredLoop;  // back to the vendor it came from: only when asked
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
  if (!consent.stated && memory != nullptr) {
    if (auto remembered = memory->rememberedConsent(h)) {
      consent = std::move(*remembered);
    }
  }
  privacy::applyAliases(consent, aliases_);
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
