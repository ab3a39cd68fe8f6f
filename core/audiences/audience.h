#pragma once

// Audiences: named conditions over a person's traits (computed traits included) and the history
// of their events within time windows, and the destinations each audience is synced to. A pure
// library: definitions parsed from YAML once, then evaluated against the traits and the event
// history the caller keeps (as JSON, in the profile). No store, no clock, no threads of its own;
// every function is reentrant and thread-compatible (an AudienceSet may be shared read-only).
//
// The grammar and the exact meaning of every window are in core/audiences/README.md. In short:
//
//   audiences:
//     abandoned_cart:
//       where:
//         all:
//           - performed: {event: Product Added, within: 1h}
//           - not_performed: {event: Order Completed, within: 30m}   # after that add
//           - {trait: email, exists: true}
//       destinations: [braze]
//
// Windows are closed: an event at `ts` is within D at `now` when now - D <= ts <= now, as in the
// computed traits (core/profiles/profile.h); events dated after `now` do not count yet.

#include <yaml-cpp/yaml.h>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config_error.h"
#include "core/config/yaml_checker.h"
#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::core::audiences {

// Timestamps an event history keeps per event name at most (newest first), like the computed
// traits' kMaxWindowEvents; `performed.count` is at most this.
inline constexpr std::size_t kMaxHistoryEvents = 1000;
// The longest `within` accepted (3650 days), so that no window arithmetic overflows.
inline constexpr std::int64_t kMaxWithinMs = 3650LL * 86'400'000;
inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

struct Condition {
  enum class Kind { All, Any, Not, Compare, Performed, NotPerformed };
  enum class Op { Equals, NotEquals, Gt, Gte, Lt, Lte, In, Contains, Exists };

  Kind kind = Kind::All;
  std::vector<Condition> children;  // all, any: the items in order; not: exactly one

  // Compare: `trait` is a dotted path into the merged traits; `value` the operand as written
  // (typed: plain YAML scalars are numbers/booleans, quoted ones strings). In: an array;
  // Exists: a bool.
  std::string trait;
  Op op = Op::Equals;
  boost::json::value value;

  // Performed, NotPerformed.
  std::string event;           // a track event's name
  std::int64_t within_ms = 0;  // 0: all time
  std::int64_t count = 1;      // Performed: at least this many events (1..kMaxHistoryEvents)

  // Where it was written: `key_path` names the condition ("audiences.x.where.all[1]"); `mark`
  // is the line and column of the trait path or event name for leaves, else of the condition.
  std::string key_path;
  config::KeyMark mark;
};

struct Audience {
  std::string name;
  Condition where;
  std::vector<std::string> destinations;  // ids as written; the caller checks they exist
  std::vector<config::KeyMark> destination_marks;  // where each of `destinations` was written
  std::string key_path;                   // "audiences.abandoned_cart"
  config::KeyMark mark;
};

// Reads the mapping under `audiences:` (null or absent: none). Every problem is reported to
// `checker` with its line and key path ("audiences.abandoned_cart.where.all[1].performed.within")
// and the audience it is in is left out of the result; the others are returned in file order.
// This is the call for daemon_config's readDocument (which owns the checker and the file name).
std::vector<Audience> readAudiences(config::YamlChecker& checker, const YAML::Node& audiences);

// The same for callers without a checker: every error goes to `errors`, and the result is an
// InvalidArgument error whose message lists them (config::formatErrors) when there was any.
sdk::Result<std::vector<Audience>> parseAudiences(const YAML::Node& audiences,
                                                  const std::string& file,
                                                  config::ConfigErrors& errors);

// A trait path or event name a definition uses, where it was written.
struct AudienceReference {
  enum class Kind { Trait, Event };
  Kind kind = Kind::Event;
  std::string name;      // trait path ("address.city") or event name
  std::string key_path;  // "audiences.x.where.all[0].performed.event", "...any[1].trait"
  config::KeyMark mark;
};
std::vector<AudienceReference> references(const Audience& audience);

// The names the event catalog has seen: track event names, and the top-level traits of identify
// events. The caller adds the computed traits' names (they are traits to an audience).
struct KnownNames {
  std::set<std::string, std::less<>> events;
  std::set<std::string, std::less<>> traits;
};
// From GET /admin/catalog's document (ingest::EventCatalog::toJson()).
KnownNames knownNamesFromCatalog(const boost::json::object& catalog);

// Warnings (not errors: the catalog only knows what was sent so far) for each event name and
// each trait path whose first segment the catalog has not seen, with a "did you mean" when a
// known name is close, located as the errors are. A kind of name the catalog has none of (no
// events yet, no identify yet) is not checked.
config::ConfigErrors unknownNameWarnings(const std::vector<Audience>& audiences,
                                         const std::string& file, const KnownNames& known);

// The parsed audiences and what their histories need: for each event name some `performed` or
// `not_performed` references, how far back its timestamps matter (the longest window referencing
// it; kNever: all time). Immutable once built.
class AudienceSet {
 public:
  AudienceSet() = default;
  explicit AudienceSet(std::vector<Audience> audiences);

  const std::vector<Audience>& audiences() const noexcept { return audiences_; }
  const Audience* find(std::string_view name) const;
  const std::map<std::string, std::int64_t, std::less<>>& retention() const noexcept {
    return retention_;
  }
  bool tracks(std::string_view event) const { return retention_.contains(event); }

 private:
  std::vector<Audience> audiences_;
  std::map<std::string, std::int64_t, std::less<>> retention_;
};

// --- event history ------------------------------------------------------------------------------
// The state: {"Product Added": [ts, ...], ...}, epoch ms, newest first, one list per tracked
// event name, at most kMaxHistoryEvents each, none older than the name's retention. Owned by the
// caller (it lives in the profile). `now_ms` must not go backwards from one call to the next for
// the same history: what a call prunes is gone.

// Records a track event of a tracked name at its timestamp (a late one in order), then prunes
// every list to its retention at `now_ms` and the bound, and drops names no audience tracks
// (after a configuration change). Other events only prune.
void foldEvent(const AudienceSet& set, boost::json::object& history, const sdk::Event& event,
               std::int64_t now_ms);
// Prunes as foldEvent does, with no event (for a timer).
void pruneHistory(const AudienceSet& set, boost::json::object& history, std::int64_t now_ms);
// `from` (another person's history, being merged into this one) added to `into`, in order,
// bounded; names no audience tracks are dropped.
void mergeHistory(const AudienceSet& set, boost::json::object& into,
                  const boost::json::object& from);

// --- evaluation ---------------------------------------------------------------------------------

// Whether the person is in `audience` at `now_ms`. `traits` are the merged traits with the
// computed traits' values under their names; a null trait counts as missing.
bool isMember(const Audience& audience, const boost::json::object& traits,
              const boost::json::object& history, std::int64_t now_ms);

// The first time after `now_ms` at which isMember answers otherwise with no new event and no
// trait change: exactly (isMember(t) is the same for every t in [now_ms, changesAt - 1]); kNever
// when the answer no longer depends on the clock. A timer at that time sees the change.
std::int64_t changesAt(const Audience& audience, const boost::json::object& traits,
                       const boost::json::object& history, std::int64_t now_ms);

}  // namespace junction::core::audiences
