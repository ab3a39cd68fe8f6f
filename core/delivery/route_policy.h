#pragma once

// Whether an event goes to a destination: the pipeline stages that run in the core, before the
// plugin sees anything — source (`from`), filter (`types`, `events`), consent. Pure: testable
// without a queue or a plugin.
//
// Consent (DESIGN.md "Consent"): the event's categories come from
// `context.consent.categoryPreferences` (Segment: {"marketing": true}), else from
// `context.consentManagement.allowedConsentIds` / `deniedConsentIds` (RudderStack). Names compare
// case-insensitively; a category both allowed and denied is denied. A destination requiring
// categories gets the event when all of them (mode all) or one of them (mode any) are granted;
// a category the event says nothing about counts as `consent_default` (deny unless configured).

#include <set>
#include <string>
#include <vector>

#include "core/config/daemon_config.h"
#include "junction/sdk/event.h"

namespace junction::core::delivery {

enum class RouteVerdict {
  Deliver,
  FilteredSource,  // not from a source in `from`
  FilteredType,    // type not in filter.types
  FilteredEvent,   // track event name not in filter.events
  ConsentDenied,   // the person denied a required category
  ConsentUnknown,  // required consent not known and consent_default is deny
};

// The label used in metrics and logs: "source", "type", "event", "consent_denied",
// "consent_unknown" ("" for Deliver).
const char* reasonOf(RouteVerdict verdict) noexcept;
bool isConsentVerdict(RouteVerdict verdict) noexcept;

// Consent an event states, lower-cased.
struct EventConsent {
  bool stated = false;  // the event carries a consent object of either form
  std::set<std::string> granted;
  std::set<std::string> denied;
};
EventConsent readConsent(const sdk::Event& event);

class RoutePolicy {
 public:
  static RoutePolicy fromConfig(const config::ConnectorConfig& destination);

  RouteVerdict decide(const sdk::Event& event) const;
  bool requiresConsent() const noexcept { return !consent_.empty(); }

 private:
  std::set<std::string> from_;
  std::set<sdk::EventType> types_;
  std::set<std::string> events_;
  std::vector<std::string> consent_;  // lower-cased
  bool consent_any_ = false;
  bool default_grant_ = false;
};

}  // namespace junction::core::delivery
