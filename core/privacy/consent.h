#pragma once

// What an event says about the person's consent, and the category aliases that map a consent
// manager's ids to category names (OneTrust "C0004" -> "marketing"). Pure, thread-safe.
//
// Wire forms (DESIGN.md "Consent"): `context.consent.categoryPreferences` (Segment:
// {"marketing": true}) takes precedence over `context.consentManagement.allowedConsentIds` /
// `deniedConsentIds` (RudderStack). Names are lower-cased; a category both allowed and denied
// counts as denied (the reader of an EventConsent checks `denied` first).

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "junction/sdk/event.h"

namespace junction::core::privacy {

// Consent an event states (or a person's remembered consent), lower-cased.
struct EventConsent {
  bool stated = false;  // the event carries a consent object of either form
  std::set<std::string> granted;
  std::set<std::string> denied;

  bool operator==(const EventConsent&) const = default;
};

// CMP id -> category name, both lower-cased.
using ConsentAliases = std::map<std::string, std::string>;

std::string lowerAscii(std::string_view s);

// False only when the event's JSON text certainly states no consent: it names neither `consent`
// nor `consentManagement`, and no key is written with \u escapes (which could spell either).
// A filter before a parse; most events state none.
bool mayStateConsent(std::string_view json) noexcept;

// Parses the event's body only when mayStateConsent() says so.
EventConsent readConsent(const sdk::Event& event);
EventConsent readConsent(const boost::json::object& body);

// Adds, for every granted or denied id that has an alias, the aliased category name with the
// same verdict. The original ids stay (a destination may name either).
void applyAliases(EventConsent& consent, const ConsentAliases& aliases);

// Where the consent stage finds a person's remembered consent for events that state none.
// Implementations are thread-safe.
class ConsentMemory {
 public:
  virtual ~ConsentMemory() = default;
  // The latest consent recorded for the event's userId or anonymousId (the newer of the two),
  // or nullopt.
  virtual std::optional<EventConsent> rememberedConsent(const sdk::EventHeader& header) const = 0;
};

// Serialized form of a consent for storage: {"granted":[...],"denied":[...]}.
std::string consentToJson(const EventConsent& consent);
std::optional<EventConsent> consentFromJson(std::string_view text);

}  // namespace junction::core::privacy
