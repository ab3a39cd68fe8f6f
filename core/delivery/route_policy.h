#pragma once

// Whether an event goes to a destination: the pipeline stages that run in the core, before the
// plugin sees anything — source (`from`), filter (`types`, `events`), consent. Pure: testable
// without a queue or a plugin.
//
// Sources: with `from`, only the sources it names. Without it, every source except the built-in
// `profiles` and `audiences` and, for loop protection, the sources of the destination's own
// plugin (what a `hubspot` source pulled from HubSpot is not written back to HubSpot by a
// `hubspot` destination, unless its `from` names that source).
//
// The built-in source `audiences` (track "Audience Entered" / "Audience Exited", with
// `properties.audience` the audience's name): a destination whose `from` names `audiences` gets
// all of them; any other gets those of the audiences that list it in their `destinations`
// (ConnectorConfig::audiences), with or without `from`, and no other (FilteredSource). A
// scheduled destination (sync.mode: scheduled) gets none: it receives membership in its scheduled
// identify snapshots. The stages below (filters, consent) then apply as to any event.
//
// Consent (DESIGN.md "Consent"): the event's categories come from
// `context.consent.categoryPreferences` (Segment: {"marketing": true}), else from
// `context.consentManagement.allowedConsentIds` / `deniedConsentIds` (RudderStack). Names compare
// case-insensitively; a category both allowed and denied is denied. A destination requiring
// categories gets the event when all of them (mode all) or one of them (mode any) are granted;
// a category the event says nothing about counts as `consent_default` (deny unless configured).
// An event that states no consent at all is routed by the person's remembered consent (from an
// earlier event that stated it; see privacy::PrivacyStore) when a ConsentMemory is given:
// consent the event states always wins. Category aliases (`consent.aliases`, e.g. C0004 ->
// marketing) apply to both wire forms and to remembered consent.

#include <set>
#include <string>
#include <vector>

#include "core/config/daemon_config.h"
#include "core/privacy/consent.h"
#include "junction/sdk/event.h"

namespace junction::core::delivery {

enum class RouteVerdict {
  Deliver,
  FilteredSource,  // not from a source in `from`
  FilteredLoop,    // from a source of the destination's own plugin, not named in `from`
  FilteredType,    // type not in filter.types
  FilteredEvent,   // track event name not in filter.events
  ConsentDenied,   // the person denied a required category
  ConsentUnknown,  // required consent not known and consent_default is deny
};

// The label used in metrics and logs: "source", "loop", "type", "event", "consent_denied",
// "consent_unknown" ("" for Deliver).
const char* reasonOf(RouteVerdict verdict) noexcept;
bool isConsentVerdict(RouteVerdict verdict) noexcept;

// Consent an event states, lower-cased (now in core/privacy, shared with ingest).
using privacy::EventConsent;
using privacy::readConsent;

class RoutePolicy {
 public:
  // `aliases`: CMP id -> category name, lower-cased (privacy::PrivacyStore::aliases()).
  static RoutePolicy fromConfig(const config::ConnectorConfig& destination,
                                const privacy::ConsentAliases& aliases = {});

  // `memory` (may be null) is asked only for events that state no consent.
  RouteVerdict decide(const sdk::Event& event,
                      const privacy::ConsentMemory* memory = nullptr) const;
  bool requiresConsent() const noexcept { return !consent_.empty(); }

 private:
  std::set<std::string> from_;
  std::set<std::string> loop_sources_;  // refused unless in from_ (so: only when from_ is empty)
  std::set<std::string, std::less<>> audiences_;  // source `audiences`: these audiences' events
  bool scheduled_ = false;                        // source `audiences`: none
  std::set<sdk::EventType> types_;
  std::set<std::string> events_;
  std::vector<std::string> consent_;  // lower-cased
  bool consent_any_ = false;
  bool default_grant_ = false;
  privacy::ConsentAliases aliases_;
};

}  // namespace junction::core::delivery
