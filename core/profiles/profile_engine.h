#pragma once

// The identity graph and the merge of events into profiles: given a batch of events, what
// changes in the store (ProfileStore::Changes). Used by one thread at a time (the profile
// service's), reading the store it writes to.
//
// Per event:
//   1. Identifiers: userId (`user:`), anonymousId (`anon:`), the e-mail (`email:`, from
//      traits.email, context.traits.email or properties.email) and each configured external id
//      (`hubspot_id:` from traits or context.traits); alias adds previousId. Blocked values
//      ("null", "undefined", "0", empty, ...) are never linked.
//   2. The profiles they already belong to are merged into one (the userId's, else the first
//      found), unless two of them each have a userId and identified merges are not allowed
//      (profiles.identified_merges): then the event goes to the userId's profile and the other
//      stays apart. A profile with a userId takes at most max_anonymous_ids anonymous ids.
//      Every refusal is counted (junction_profile_merges_refused_total{reason}) and logged.
//   3. The event is folded in: traits last-writer-wins by event timestamp (per trait, so a late
//      or replayed older event never overwrites a newer value), consent likewise, first/last
//      seen, a counter per event name, the recent events, the computed traits.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/audiences/audience.h"
#include "core/config/daemon_config.h"
#include "core/profiles/profile.h"
#include "core/profiles/profile_store.h"
#include "junction/sdk/context.h"
#include "junction/sdk/event.h"

namespace junction::core::profiles {

struct EngineOptions {
  std::size_t recent_events = 50;
  std::vector<std::string> external_ids;
  std::unordered_set<std::string> blocked_values;  // lower-cased
  std::size_t max_anonymous_ids = 100;
  enum class IdentifiedMerges { Never, Alias, Always } identified_merges = IdentifiedMerges::Never;
  std::vector<config::ComputedTraitConfig> computed;
  bool change_events = true;
  std::int64_t change_window_ms = 1000;
  // Sync channels (the ids of destinations in scheduled mode): every profile that changes as a
  // profile-change event would report (whether or not change_events is on) is marked in each
  // (Changes::sync_put). Not set by from(): the caller knows the destinations.
  std::vector<std::string> sync_channels;
  // The audiences (core/audiences) evaluated for every profile a batch changes; null or empty:
  // none. Not set by from(): the caller parses them with the rest of the configuration.
  std::shared_ptr<const audiences::AudienceSet> audiences;

  static EngineOptions from(const config::ProfilesConfig& config);
};

// Audiences keep two things in the store beside the profiles, under names of their own:
// - a review of a person's audiences is an outbox entry keyed "a:<profile id>" (the profile-change
//   announcements are keyed by the bare id), due when an event changed what the person is in, or
//   when the clock alone will (a window opening or closing);
// - the members of an audience are the sync marks of the channel "audience:<name>" (no
//   destination id has a ':'), one per member: GET /v1/audiences pages through them.
inline constexpr std::string_view kAudienceReviewPrefix = "a:";
std::string audienceReviewKey(std::string_view profile_id);
std::string audienceChannel(std::string_view audience);

// A person entering (or leaving) an audience, found by a review and not recorded yet. The
// message id is the transition's, the same however often the review is made before it is
// recorded (the events of a review interrupted by a crash go out again with their ids).
struct AudienceTransition {
  std::string audience;
  bool entered = false;
  std::string message_id;
};

struct AudienceReview {
  // Who the person is: id, identities, consent and the audiences recorded (not the traits or
  // events). nullopt: gone (erased, merged away).
  std::optional<Profile> profile;
  std::vector<AudienceTransition> transitions;
};

// Built-in values that never identify anyone (compared lower-cased, after trimming).
bool isBlockedValue(std::string_view value, const std::unordered_set<std::string>& extra);

class ProfileEngine {
 public:
  ProfileEngine(ProfileStore& store, EngineOptions options, sdk::Metrics& metrics,
                sdk::Logger& logger, const sdk::Clock& clock);

  ~ProfileEngine();

  // Applies `events` and returns what to commit (with `applied` left for the caller to set).
  // An error of the store stops the batch: nothing of it is to be committed. Then call
  // settle(true) once the changes are committed, settle(false) when they were not. The
  // junction_profile_* counters count a batch at settle(true).
  sdk::Result<Changes> apply(const std::vector<const sdk::Event*>& events);
  void settle(bool committed);

  // The changes that erase the person `key` ("user:42") belongs to: the profile, every
  // identifier linked to it, its outbox entry, its marks in every sync channel. nullopt when
  // nobody has that identifier. The person leaves the cache at once (commit the changes before
  // the next apply()).
  sdk::Result<std::optional<Changes>> erase(const std::string& key);

  const EngineOptions& options() const noexcept { return options_; }
  // The destinations in scheduled mode, from the next apply() on (a reload changed them).
  void setSyncChannels(std::vector<std::string> channels) {
    options_.sync_channels = std::move(channels);
  }

  // The audiences, from the next apply() on (a reload changed them). Members of audiences
  // that are gone leave them at their next review.
  void setAudiences(std::shared_ptr<const audiences::AudienceSet> set);
  const audiences::AudienceSet* audiences() const noexcept { return options_.audiences.get(); }

  // What the person `profile_id` enters and leaves at `now_ms`: their audiences evaluated, less
  // what their profile records. Changes nothing. Under the write lock, like apply().
  sdk::Result<AudienceReview> reviewAudiences(const std::string& profile_id, std::int64_t now_ms);
  // The changes that record `transitions` (their events are durable) in the person's profile
  // and in the audiences' members, clear the review entry read with `entry_seq`, and, with
  // `reschedule`, add the person's next review (now when they still differ from what is
  // recorded, else when the clock alone changes an audience). Then settle(), as after apply().
  sdk::Result<Changes> recordAudiences(const std::string& profile_id,
                                       const std::vector<AudienceTransition>& transitions,
                                       std::int64_t entry_seq, std::int64_t now_ms,
                                       bool reschedule);
  // The same for several people, in one commit.
  struct AudienceRecord {
    std::string profile_id;
    std::vector<AudienceTransition> transitions;
    std::int64_t entry_seq = 0;
    bool reschedule = true;
  };
  sdk::Result<Changes> recordAudiences(const std::vector<AudienceRecord>& records,
                                       std::int64_t now_ms);

  // The API's view of a profile at `now_ms`: identities by label, traits, trait_times (ISO),
  // consent, first/last seen, counters, computed values, recent events (up to `events`).
  boost::json::object render(const Profile& profile, std::int64_t now_ms,
                             std::size_t events) const;
  // Each computed trait's value at `now_ms` (render()'s "computed").
  boost::json::object computedValues(const Profile& profile, std::int64_t now_ms) const;
  // The first time after `now_ms` at which render() can answer otherwise with no change to
  // the profile (a computed value over a time window moving on); INT64_MAX for never.
  std::int64_t renderedUntil(const Profile& profile, std::int64_t now_ms) const;

 private:
  class Batch;
  struct Cache;

  // The audiences `p` is in at `now_ms` that its profile does not record (entered) and those it
  // records that it is not in (left, audiences removed included), and, when there is none, the
  // first time the clock alone changes that (kNever: never).
  struct Evaluation {
    std::vector<std::pair<std::string, bool>> differ;  // audience, entered
    std::int64_t next = audiences::kNever;
  };
  Evaluation evaluate(const Profile& p, std::int64_t now_ms) const;
  // When the next review of `p` is due (now_ms if it differs now; kNever: no review).
  std::int64_t reviewDue(const Profile& p, std::int64_t now_ms) const;
  bool audiences_use_computed_ = false;  // some audience reads a computed trait

  ProfileStore& store_;
  EngineOptions options_;  // sync_channels change (setSyncChannels); the rest never
  sdk::Metrics& metrics_;
  sdk::Logger& logger_;
  const sdk::Clock& clock_;
  sdk::Counter& applied_;
  sdk::Counter& created_;
  sdk::Counter& merged_;
  sdk::Counter& refused_blocked_;
  sdk::Counter& refused_identified_;
  sdk::Counter& refused_anonymous_;
  sdk::Counter& unattributed_;
  std::unique_ptr<Cache> cache_;  // when the store has no other writer
  std::unique_ptr<Batch> pending_;  // the last apply()'s, until settle()
  // The last apply()'s counts, added to the counters by settle(true) only: a batch that is
  // not committed is applied again, and must not count twice.
  struct Tally {
    std::uint64_t applied = 0;
    std::uint64_t created = 0;
    std::uint64_t merged = 0;
    std::uint64_t refused_blocked = 0;
    std::uint64_t refused_identified = 0;
    std::uint64_t refused_anonymous = 0;
    std::uint64_t unattributed = 0;
  };
  Tally tally_;
};

}  // namespace junction::core::profiles
