#pragma once

// One person's profile, as the profile store keeps it (a JSON document) and as the engine
// changes it. Pure data and pure functions; no thread-safety of its own.
//
// Identifiers are keys "<kind>:<value>", the form GET /v1/profiles/{id} takes: `user:<userId>`,
// `anon:<anonymousId>`, `email:<e-mail, trimmed and lower-cased>`, `<external id>:<value>`.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/daemon_config.h"
#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::core::profiles {

inline constexpr std::string_view kUserKind = "user";
inline constexpr std::string_view kAnonymousKind = "anon";
inline constexpr std::string_view kEmailKind = "email";

// The identifier kinds as GET /v1/profiles/{id} names them under "identities".
std::string identityLabel(std::string_view kind);  // user -> userId, anon -> anonymousId

struct Identifier {
  std::string kind;   // user, anon, email, or an external id name
  std::string value;  // e-mail normalized
  std::string key() const { return kind + ":" + value; }
};

// "user:42" -> {user, 42}; nullopt when there is no ':' or either side is empty. An e-mail is
// normalized.
std::optional<Identifier> parseIdentityKey(std::string_view key);

struct Profile {
  std::string id;  // "p_" + 32 hex digits, stable for the person's life
  // kind -> values, in the order they were linked.
  std::map<std::string, std::vector<std::string>> identities;
  boost::json::object traits;
  boost::json::object trait_times;  // trait -> epoch ms of the event that set it
  boost::json::object consent;      // {"granted": [...], "denied": [...]} (lower-cased)
  std::int64_t consent_time = 0;
  std::int64_t first_seen = 0;  // event time, epoch ms
  std::int64_t last_seen = 0;
  boost::json::object counters;  // event name (track) or type (others) -> count
  boost::json::object computed;  // computed trait -> its state (see computed.h)
  boost::json::array events;     // recent events, newest first (see summarize())
  // Audiences (core/audiences): the event history their windows need ({"Product Added": [ts,
  // ...]}, see audiences::foldEvent), the audiences the person is recorded in (name -> epoch ms
  // entered; what the "Audience Entered" events said), and the number of transitions recorded
  // so far (their events' message ids count with it). Serialized only when not empty.
  boost::json::object audience_history;
  boost::json::object audiences;
  std::int64_t audience_seq = 0;

  bool hasUserId() const;
  std::size_t count(std::string_view kind) const;
  bool has(const Identifier& id) const;
  void add(const Identifier& id);

  std::string serialize() const;
  static sdk::Result<Profile> parse(std::string_view text);
};

std::string newProfileId();

// What a profile keeps of an event: type, event/name, timestamp, messageId, source, and the
// properties that say what the person looked at or bought (product ids, names, prices, cart
// contents, order totals, page url/title), each bounded.
boost::json::object summarize(const sdk::Event& event);

// Inserts `summary` by timestamp (newest first) and keeps at most `keep`.
void addRecentEvent(boost::json::array& events, boost::json::object summary, std::size_t keep);
// Both lists merged by timestamp, newest first, at most `keep`, no messageId twice.
boost::json::array mergeRecentEvents(const boost::json::array& a, const boost::json::array& b,
                                     std::size_t keep);

// A dotted path into the event's JSON ("properties.sku"); nullptr when absent.
const boost::json::value* lookupPath(const boost::json::object& body, std::string_view path);

// --- computed traits ----------------------------------------------------------------------------
// The state each kind keeps (JSON, in Profile::computed[name]):
//   last    {"v": [[value, ts], ...]}   newest first, distinct values, at most N
//   count   {"n": total} without `within`; {"t": [ts, ...]} (newest first, at most
//           kMaxWindowEvents) with it
//   sum     {"s": total} without `within`; {"t": [[ts, number], ...]} with it
//   latest  {"v": value, "ts": ts}
inline constexpr std::size_t kMaxWindowEvents = 1000;

bool computedMatches(const config::ComputedTraitConfig& trait, const sdk::Event& event);
// Folds a matching event into `state`; `now_ms` prunes what left the window.
void computedApply(const config::ComputedTraitConfig& trait, boost::json::object& state,
                   const sdk::Event& event, std::int64_t now_ms);
// The trait's value at `now_ms` (null when nothing matched yet).
boost::json::value computedValue(const config::ComputedTraitConfig& trait,
                                 const boost::json::object& state, std::int64_t now_ms);
// The first time after `now_ms` at which the trait's value can differ from its value at `now_ms`
// with no new event: a timestamp leaving the window, or one from the future entering it.
// INT64_MAX when the value does not depend on the clock.
std::int64_t computedChangesAt(const config::ComputedTraitConfig& trait,
                               const boost::json::object& state, std::int64_t now_ms);
// `into` and `from` of two profiles being merged, combined.
void computedMerge(const config::ComputedTraitConfig& trait, boost::json::object& into,
                   const boost::json::object& from);

}  // namespace junction::core::profiles
