#include "core/profiles/profile_engine.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <limits>
#include <set>

#include "core/privacy/consent.h"
#include "core/privacy/privacy_store.h"

namespace junction::core::profiles {

namespace json = boost::json;

std::string audienceReviewKey(std::string_view profile_id) {
  std::string key(kAudienceReviewPrefix);
  key += profile_id;
  return key;
}

std::string audienceChannel(std::string_view audience) {
  std::string channel = "audience:";
  channel += audience;
  return channel;
}

EngineOptions EngineOptions::from(const config::ProfilesConfig& config) {
  EngineOptions o;
  o.recent_events = static_cast<std::size_t>(config.recent_events);
  o.external_ids = config.external_ids;
  for (const auto& v : config.blocked_values) {
    o.blocked_values.insert(privacy::lowerAscii(v));
  }
  o.max_anonymous_ids = static_cast<std::size_t>(config.max_anonymous_ids);
  o.identified_merges = config.identified_merges == "always" ? IdentifiedMerges::Always
                        : config.identified_merges == "alias" ? IdentifiedMerges::Alias
                                                              : IdentifiedMerges::Never;
  o.computed = config.computed_traits;
  o.change_events = config.change_events;
  o.change_window_ms = config.change_window.count();
  return o;
}

bool isBlockedValue(std::string_view value, const std::unordered_set<std::string>& extra) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return true;
  }
  const std::string lower = privacy::lowerAscii(value);
  static const std::unordered_set<std::string> kBuiltIn = {
      "null", "undefined", "0", "-1", "none", "nil", "nan", "n/a", "na", "unknown", "anonymous",
      "[object object]", "true", "false", "{}", "[]", "\"\""};
  return kBuiltIn.contains(lower) || extra.contains(lower);
}

// --- the profiles and identities one batch touches ------------------------------------------------

// Profiles and identity links as last committed, kept between batches when this engine is the
// store's only writer (embedded stores): a person seen again is neither read nor parsed again.
// Used under the service's write lock only. Bounded: profiles by an estimate of their memory
// (kCacheBytes), links by count; past a bound, entries are dropped (read again when needed).
struct ProfileEngine::Cache {
  static constexpr std::size_t kCacheBytes = 256u << 20;
  static constexpr std::size_t kCacheIdentities = 2'000'000;
  struct Entry {
    std::unique_ptr<Profile> profile;
    std::size_t bytes = 0;
  };
  std::unordered_map<std::string, std::string> identities;  // key -> profile id
  std::unordered_map<std::string, Entry> profiles;
  std::size_t bytes = 0;

  // Takes a profile out (the batch owns it while it changes it).
  std::unique_ptr<Profile> take(const std::string& id) {
    auto it = profiles.find(id);
    if (it == profiles.end()) {
      return nullptr;
    }
    auto p = std::move(it->second.profile);
    bytes -= it->second.bytes;
    profiles.erase(it);
    return p;
  }
  void put(std::unique_ptr<Profile> p, std::size_t serialized_bytes) {
    const std::size_t b = serialized_bytes * 4 + 256;  // the DOM is larger than its text
    std::string id = p->id;
    take(id);
    bytes += b;
    profiles[std::move(id)] = Entry{std::move(p), b};
    if (bytes > kCacheBytes) {
      for (auto it = profiles.begin(); it != profiles.end() && bytes > kCacheBytes * 3 / 4;) {
        bytes -= it->second.bytes;
        it = profiles.erase(it);
      }
    }
  }
  void forget(const Profile& p) {
    for (const auto& [kind, values] : p.identities) {
      for (const auto& v : values) {
        identities.erase(Identifier{kind, v}.key());
      }
    }
    take(p.id);
  }
};

class ProfileEngine::Batch {
 public:
  Batch(ProfileStore& store, Cache* cache) : store_(store), cache_(cache) {}

  sdk::Result<std::optional<std::string>> identity(const std::string& key) {
    if (auto it = identities_.find(key); it != identities_.end()) {
      return it->second;
    }
    if (cache_ != nullptr) {
      if (auto it = cache_->identities.find(key); it != cache_->identities.end()) {
        identities_.emplace(key, it->second);
        return std::optional<std::string>(it->second);
      }
    }
    auto found = store_.findIdentity(key);
    if (!found) {
      return found.error();
    }
    identities_.emplace(key, *found);
    return *found;
  }

  sdk::Result<Profile*> profile(const std::string& id) {
    if (auto it = profiles_.find(id); it != profiles_.end()) {
      return it->second.get();
    }
    if (cache_ != nullptr) {
      if (auto cached = cache_->take(id)) {
        auto& slot = profiles_[id];
        slot = std::move(cached);
        return slot.get();
      }
    }
    auto text = store_.loadProfile(id);
    if (!text) {
      return text.error();
    }
    if (!*text) {
      profiles_.emplace(id, nullptr);
      return static_cast<Profile*>(nullptr);
    }
    auto parsed = Profile::parse(**text);
    if (!parsed) {
      return sdk::makeError(parsed.error().code,
                            "profile " + id + ": " + parsed.error().message);
    }
    auto& slot = profiles_[id];
    slot = std::make_unique<Profile>(std::move(parsed).value());
    return slot.get();
  }

  Profile* create() {
    auto p = std::make_unique<Profile>();
    p->id = newProfileId();
    Profile* raw = p.get();
    profiles_[p->id] = std::move(p);
    dirty_.insert(raw->id);
    return raw;
  }

  void link(const std::string& key, const std::string& profile_id) {
    identities_[key] = profile_id;
    linked_.insert(key);
    unlinked_.erase(key);
  }

  void unlink(const std::string& key) {
    identities_[key] = std::nullopt;
    unlinked_.insert(key);
    linked_.erase(key);
  }

  void touch(const std::string& id) { dirty_.insert(id); }
  void announce(const std::string& id, std::int64_t due) { outbox_.emplace(id, due); }
  void mark(const std::string& id) { marked_.insert(id); }
  // A member added to (or removed from) an audience's channel.
  void member(std::string channel, const std::string& id, bool in) {
    (in ? members_put_ : members_deleted_).emplace_back(std::move(channel), id);
  }
  template <typename F>
  void forEachChanged(F&& f) {
    for (const auto& id : dirty_) {
      if (const auto& p = profiles_.at(id)) {
        f(*p);
      }
    }
  }

  void drop(std::string id) {  // by value: `id` is often the profile's own, destroyed here
    profiles_[id] = nullptr;
    dirty_.erase(id);
    dropped_.insert(id);
    outbox_.erase(id);
    marked_.erase(id);
  }

  Changes changes(const std::vector<std::string>& channels) {
    Changes c;
    for (const auto& key : linked_) {
      c.identities_put.emplace_back(key, *identities_.at(key));
    }
    c.identities_deleted.assign(unlinked_.begin(), unlinked_.end());
    for (const auto& id : dirty_) {
      const auto& p = profiles_.at(id);
      if (p) {
        c.profiles_put.emplace_back(id, p->serialize());
        sizes_[id] = c.profiles_put.back().second.size();
      }
    }
    c.profiles_deleted.assign(dropped_.begin(), dropped_.end());
    c.outbox_deleted.assign(dropped_.begin(), dropped_.end());
    for (const auto& id : dropped_) {
      c.outbox_deleted.push_back(audienceReviewKey(id));
    }
    for (const auto& [id, due] : outbox_) {
      c.outbox_put.emplace_back(id, due);
    }
    for (const auto& channel : channels) {
      for (const auto& id : marked_) {
        c.sync_put.emplace_back(channel, id);
      }
      for (const auto& id : dropped_) {
        c.sync_deleted.emplace_back(channel, id);
      }
    }
    c.sync_put.insert(c.sync_put.end(), members_put_.begin(), members_put_.end());
    c.sync_deleted.insert(c.sync_deleted.end(), members_deleted_.begin(), members_deleted_.end());
    return c;
  }

  // The batch was committed: what it read and wrote is the store's state, kept for the next.
  void settle() {
    if (cache_ == nullptr) {
      return;
    }
    for (const auto& key : unlinked_) {
      cache_->identities.erase(key);
    }
    if (cache_->identities.size() + identities_.size() > Cache::kCacheIdentities) {
      cache_->identities.clear();
    }
    for (auto& [key, pid] : identities_) {
      if (pid) {
        cache_->identities[key] = *pid;
      }
    }
    for (auto& [id, p] : profiles_) {
      if (!p) {
        continue;
      }
      auto size = sizes_.find(id);
      cache_->put(std::move(p), size != sizes_.end() ? size->second : 2048);
    }
  }

 private:
  ProfileStore& store_;
  Cache* cache_;
  std::unordered_map<std::string, std::size_t> sizes_;  // serialized, of the profiles written
  std::unordered_map<std::string, std::optional<std::string>> identities_;
  std::unordered_map<std::string, std::unique_ptr<Profile>> profiles_;
  std::unordered_set<std::string> linked_;
  std::unordered_set<std::string> unlinked_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> dropped_;
  std::unordered_map<std::string, std::int64_t> outbox_;
  std::unordered_set<std::string> marked_;  // changed: marked in every sync channel
  std::vector<std::pair<std::string, std::string>> members_put_;      // (channel, profile id)
  std::vector<std::pair<std::string, std::string>> members_deleted_;  // (channel, profile id)
};

// --- the engine -----------------------------------------------------------------------------------

ProfileEngine::ProfileEngine(ProfileStore& store, EngineOptions options, sdk::Metrics& metrics,
                             sdk::Logger& logger, const sdk::Clock& clock)
    : store_(store),
      options_(std::move(options)),
      metrics_(metrics),
      logger_(logger),
      clock_(clock),
      applied_(metrics.counter("junction_profile_events_applied_total",
                               "Events folded into profiles")),
      created_(metrics.counter("junction_profiles_created_total", "Profiles created")),
      merged_(metrics.counter("junction_profile_merges_total",
                              "Profiles merged into another (identity stitching)")),
      refused_blocked_(metrics.counter(
          "junction_profile_merges_refused_total",
          "Identifier links and merges refused by the merge guards", {{"reason", "blocked_value"}})),
      refused_identified_(metrics.counter(
          "junction_profile_merges_refused_total",
          "Identifier links and merges refused by the merge guards", {{"reason", "identified"}})),
      refused_anonymous_(metrics.counter(
          "junction_profile_merges_refused_total",
          "Identifier links and merges refused by the merge guards",
          {{"reason", "anonymous_limit"}})),
      unattributed_(metrics.counter(
          "junction_profile_events_unattributed_total",
          "Events with no usable identifier (every one blocked): in no profile")),
      cache_(store.exclusiveWriter() ? std::make_unique<Cache>() : nullptr) {
  setAudiences(options_.audiences);
}

namespace {

std::string scalarText(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.as_string());
  }
  if (v.is_int64()) {
    return std::to_string(v.as_int64());
  }
  if (v.is_uint64()) {
    return std::to_string(v.as_uint64());
  }
  return {};
}

const json::value* traitOf(const json::object& body, std::string_view name) {
  if (const json::value* t = body.if_contains("traits"); t && t->is_object()) {
    if (const json::value* v = t->as_object().if_contains(name)) {
      return v;
    }
  }
  if (const json::value* c = body.if_contains("context"); c && c->is_object()) {
    if (const json::value* t = c->as_object().if_contains("traits"); t && t->is_object()) {
      return t->as_object().if_contains(name);
    }
  }
  return nullptr;
}

std::int64_t timeOf(const json::object& times, std::string_view key) {
  const json::value* v = times.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : std::numeric_limits<std::int64_t>::min();
}

// Folds `from` into `into` (two profiles of one person); `into` keeps its id.
void mergeProfiles(Profile& into, const Profile& from, const EngineOptions& options) {
  for (const auto& [kind, values] : from.identities) {
    for (const auto& v : values) {
      into.add({kind, v});
    }
  }
  for (const auto& [k, v] : from.traits) {
    const std::int64_t theirs = timeOf(from.trait_times, k);
    if (!into.traits.contains(k) || theirs > timeOf(into.trait_times, k)) {
      into.traits[k] = v;
      into.trait_times[k] = theirs == std::numeric_limits<std::int64_t>::min() ? 0 : theirs;
    }
  }
  if (from.consent_time > into.consent_time) {
    into.consent = from.consent;
    into.consent_time = from.consent_time;
  }
  if (from.first_seen != 0 && (into.first_seen == 0 || from.first_seen < into.first_seen)) {
    into.first_seen = from.first_seen;
  }
  into.last_seen = std::max(into.last_seen, from.last_seen);
  for (const auto& [k, v] : from.counters) {
    const json::value* mine = into.counters.if_contains(k);
    into.counters[k] = (mine != nullptr && mine->is_int64() ? mine->as_int64() : 0) +
                       (v.is_int64() ? v.as_int64() : 0);
  }
  for (const auto& trait : options.computed) {
    const json::value* theirs = from.computed.if_contains(trait.name);
    if (theirs == nullptr || !theirs->is_object()) {
      continue;
    }
    json::value& mine = into.computed[trait.name];
    if (!mine.is_object()) {
      mine = json::object{};
    }
    computedMerge(trait, mine.as_object(), theirs->as_object());
  }
  into.events = mergeRecentEvents(into.events, from.events, options.recent_events);
}

}  // namespace

ProfileEngine::~ProfileEngine() = default;

void ProfileEngine::settle(bool committed) {
  if (pending_ && committed) {
    pending_->settle();
    applied_.inc(tally_.applied);
    created_.inc(tally_.created);
    merged_.inc(tally_.merged);
    refused_blocked_.inc(tally_.refused_blocked);
    refused_identified_.inc(tally_.refused_identified);
    refused_anonymous_.inc(tally_.refused_anonymous);
    unattributed_.inc(tally_.unattributed);
  }
  pending_.reset();
  tally_ = Tally{};
}

sdk::Result<Changes> ProfileEngine::apply(const std::vector<const sdk::Event*>& events) {
  pending_.reset();
  tally_ = Tally{};
  // Profiles this batch takes out of the cache are back only if it commits (settle()).
  pending_ = std::make_unique<Batch>(store_, cache_.get());
  Batch& batch = *pending_;
  const std::int64_t now = clock_.nowMs();
  const bool identified_always = options_.identified_merges == EngineOptions::IdentifiedMerges::Always;
  for (const sdk::Event* event : events) {
    const auto& h = event->header();
    const json::object& body = event->body();
    const bool is_alias = h.type == sdk::EventType::Alias;
    const bool identified_allowed =
        identified_always ||
        (is_alias && options_.identified_merges == EngineOptions::IdentifiedMerges::Alias);

    // 1. Identifiers, the userId first (it decides where the event goes).
    std::vector<Identifier> ids;
    auto consider = [&](std::string_view kind, std::string value) {
      if (isBlockedValue(value, options_.blocked_values)) {
        ++tally_.refused_blocked;
        return;
      }
      Identifier id{std::string(kind), std::move(value)};
      if (std::none_of(ids.begin(), ids.end(),
                       [&](const Identifier& x) { return x.key() == id.key(); })) {
        ids.push_back(std::move(id));
      }
    };
    if (!h.user_id.empty()) {
      consider(kUserKind, h.user_id);
    }
    if (auto email = privacy::eventEmail(body)) {
      consider(kEmailKind, *email);
    }
    for (const auto& name : options_.external_ids) {
      if (const json::value* v = traitOf(body, name)) {
        if (std::string text = scalarText(*v); !text.empty() || v->is_string()) {
          consider(name, std::move(text));
        }
      }
    }
    if (!h.anonymous_id.empty()) {
      consider(kAnonymousKind, h.anonymous_id);
    }
    if (is_alias) {
      if (const json::value* prev = body.if_contains("previousId")) {
        std::string text = scalarText(*prev);
        auto as_user = batch.identity(std::string(kUserKind) + ":" + text);
        if (!as_user) {
          return as_user.error();
        }
        consider(*as_user ? kUserKind : kAnonymousKind, std::move(text));
      }
    }
    if (ids.empty()) {
      ++tally_.unattributed;
      continue;
    }

    // 2. The profiles they belong to, the userId's first.
    std::vector<std::string> found;
    std::vector<std::optional<std::string>> owner(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto pid = batch.identity(ids[i].key());
      if (!pid) {
        return pid.error();
      }
      owner[i] = *pid;
      if (*pid && std::find(found.begin(), found.end(), **pid) == found.end()) {
        found.push_back(**pid);
      }
    }
    const bool has_user = ids.front().kind == kUserKind && ids.front().value == h.user_id &&
                          !h.user_id.empty();
    const bool new_user = has_user && !owner.front();

    Profile* target = nullptr;
    bool refused_identified = false;
    for (const auto& pid : found) {
      auto p = batch.profile(pid);
      if (!p) {
        return p.error();
      }
      if (*p == nullptr) {
        continue;  // an identity pointing at a profile that is gone: relinked below
      }
      if (new_user && (*p)->hasUserId() && !identified_allowed) {
        refused_identified = true;  // another user's profile: the new userId stays apart
        continue;
      }
      target = *p;
      break;
    }
    if (target == nullptr) {
      target = batch.create();
      ++tally_.created;
    }
    bool changed = false;

    // Merge the other profiles in, where the guards allow.
    for (const auto& pid : found) {
      if (pid == target->id) {
        continue;
      }
      auto p = batch.profile(pid);
      if (!p) {
        return p.error();
      }
      Profile* other = *p;
      if (other == nullptr) {
        continue;
      }
      const bool target_identified = target->hasUserId() || has_user;
      if (target_identified && other->hasUserId() && !identified_allowed) {
        refused_identified = true;
        continue;
      }
      if ((target_identified || other->hasUserId()) &&
          target->count(kAnonymousKind) + other->count(kAnonymousKind) >
              options_.max_anonymous_ids) {
        ++tally_.refused_anonymous;
        logger_.warn("profiles: merge refused, too many anonymous ids for one person",
                     {{"profile", target->id},
                      {"other", other->id},
                      {"max_anonymous_ids", options_.max_anonymous_ids}});
        continue;
      }
      mergeProfiles(*target, *other, options_);
      // The person is recorded in what either was in (what was announced for them); their
      // next review sends what no longer holds.
      if (options_.audiences) {
        audiences::mergeHistory(*options_.audiences, target->audience_history,
                                other->audience_history);
      }
      for (const auto& [name, since] : other->audiences) {
        batch.member(audienceChannel(name), other->id, false);
        if (!target->audiences.contains(name)) {
          target->audiences[name] = since;
          batch.member(audienceChannel(name), target->id, true);
        }
      }
      target->audience_seq = std::max(target->audience_seq, other->audience_seq);
      for (const auto& [kind, values] : other->identities) {
        for (const auto& v : values) {
          batch.link(Identifier{kind, v}.key(), target->id);
        }
      }
      batch.drop(other->id);
      ++tally_.merged;
      changed = true;
    }
    if (refused_identified) {
      ++tally_.refused_identified;
      logger_.warn("profiles: merge of two identified people refused (profiles.identified_merges)",
                   {{"profile", target->id}, {"event_type", sdk::toString(h.type)}});
    }

    // Link the identifiers nobody had (or whose profile is gone).
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const std::string key = ids[i].key();
      auto current = batch.identity(key);
      if (!current) {
        return current.error();
      }
      if (*current) {
        auto p = batch.profile(**current);
        if (!p) {
          return p.error();
        }
        if (*p != nullptr) {
          continue;  // it belongs to a profile (this one, or one a guard kept apart)
        }
      }
      if (ids[i].kind == kUserKind && target->hasUserId() && !target->has(ids[i]) &&
          !identified_allowed) {
        ++tally_.refused_identified;
        continue;
      }
      if (ids[i].kind == kAnonymousKind && target->count(kAnonymousKind) >= options_.max_anonymous_ids &&
          (target->hasUserId() || has_user)) {
        ++tally_.refused_anonymous;
        logger_.warn("profiles: anonymous id not linked, the person has max_anonymous_ids",
                     {{"profile", target->id}, {"max_anonymous_ids", options_.max_anonymous_ids}});
        continue;
      }
      target->add(ids[i]);
      batch.link(key, target->id);
      changed = true;
    }

    // 3. Fold the event in.
    const std::int64_t ts = h.timestamp_ms;
    if (target->first_seen == 0 || ts < target->first_seen) {
      target->first_seen = ts;
    }
    target->last_seen = std::max(target->last_seen, ts);
    const std::string counter = h.name.empty() ? std::string(sdk::toString(h.type)) : h.name;
    {
      json::value& n = target->counters[counter];
      n = (n.is_int64() ? n.as_int64() : 0) + 1;
    }
    addRecentEvent(target->events, summarize(*event), options_.recent_events);
    if (h.type == sdk::EventType::Identify) {
      if (const json::value* traits = body.if_contains("traits"); traits && traits->is_object()) {
        for (const auto& [k, v] : traits->as_object()) {
          if (ts >= timeOf(target->trait_times, k)) {
            const json::value* old = target->traits.if_contains(k);
            if (old == nullptr || *old != v) {
              target->traits[k] = v;
              changed = true;
            }
            target->trait_times[k] = ts;
          }
        }
      }
    }
    if (privacy::mayStateConsent(event->json())) {
      privacy::EventConsent consent = privacy::readConsent(body);
      if (consent.stated && ts >= target->consent_time) {
        json::array granted(consent.granted.begin(), consent.granted.end());
        json::array denied(consent.denied.begin(), consent.denied.end());
        json::object now_consent{{"granted", std::move(granted)}, {"denied", std::move(denied)}};
        if (target->consent != now_consent) {
          target->consent = std::move(now_consent);
          changed = true;
        }
        target->consent_time = ts;
      }
    }
    for (const auto& trait : options_.computed) {
      if (!computedMatches(trait, *event)) {
        continue;
      }
      json::value& state = target->computed[trait.name];
      if (!state.is_object()) {
        state = json::object{};
      }
      const json::value before = computedValue(trait, state.as_object(), now);
      computedApply(trait, state.as_object(), *event, now);
      if (computedValue(trait, state.as_object(), now) != before) {
        changed = true;
      }
    }
    if (options_.audiences && h.type == sdk::EventType::Track &&
        options_.audiences->tracks(h.name)) {
      audiences::foldEvent(*options_.audiences, target->audience_history, *event, now);
    }
    batch.touch(target->id);
    if (changed && options_.change_events) {
      batch.announce(target->id, now + options_.change_window_ms);
    }
    if (changed) {
      batch.mark(target->id);
    }
    ++tally_.applied;
  }
  if (options_.audiences && !options_.audiences->audiences().empty()) {
    batch.forEachChanged([&](const Profile& p) {
      if (const std::int64_t due = reviewDue(p, now); due != audiences::kNever) {
        batch.announce(audienceReviewKey(p.id), due);
      }
    });
  } else {
    // No audiences (any more): members recorded leave them at a review.
    batch.forEachChanged([&](const Profile& p) {
      if (!p.audiences.empty()) {
        batch.announce(audienceReviewKey(p.id), now);
      }
    });
  }
  return batch.changes(options_.sync_channels);
}

void ProfileEngine::setAudiences(std::shared_ptr<const audiences::AudienceSet> set) {
  options_.audiences = std::move(set);
  audiences_use_computed_ = false;
  if (!options_.audiences) {
    return;
  }
  for (const auto& a : options_.audiences->audiences()) {
    for (const auto& ref : audiences::references(a)) {
      if (ref.kind != audiences::AudienceReference::Kind::Trait) {
        continue;
      }
      const std::string_view first = std::string_view(ref.name).substr(0, ref.name.find('.'));
      for (const auto& trait : options_.computed) {
        audiences_use_computed_ = audiences_use_computed_ || trait.name == first;
      }
    }
  }
}

ProfileEngine::Evaluation ProfileEngine::evaluate(const Profile& p, std::int64_t now_ms) const {
  Evaluation e;
  const audiences::AudienceSet* set = options_.audiences.get();
  if (set != nullptr && !set->audiences().empty()) {
    // The computed values join the traits only when some audience reads one: else no copy.
    std::optional<json::object> with_computed;
    if (audiences_use_computed_) {
      with_computed = p.traits;
      for (auto& [k, v] : computedValues(p, now_ms)) {
        (*with_computed)[k] = std::move(v);
      }
    }
    const json::object& traits = with_computed ? *with_computed : p.traits;
    std::int64_t next = audiences::kNever;
    for (const auto& a : set->audiences()) {
      const bool member = audiences::isMember(a, traits, p.audience_history, now_ms);
      if (member != p.audiences.contains(a.name)) {
        e.differ.emplace_back(a.name, member);
      } else if (e.differ.empty()) {
        next = std::min(next, audiences::changesAt(a, traits, p.audience_history, now_ms));
      }
    }
    if (audiences_use_computed_) {
      next = std::min(next, renderedUntil(p, now_ms));  // a computed value the clock moves
    }
    e.next = next;
  }
  for (const auto& [name, since] : p.audiences) {
    if (set == nullptr || set->find(name) == nullptr) {
      e.differ.emplace_back(std::string(name), false);  // an audience removed
    }
  }
  if (!e.differ.empty()) {
    e.next = audiences::kNever;
  }
  return e;
}

std::int64_t ProfileEngine::reviewDue(const Profile& p, std::int64_t now_ms) const {
  Evaluation e = evaluate(p, now_ms);
  return e.differ.empty() ? e.next : now_ms;
}

sdk::Result<AudienceReview> ProfileEngine::reviewAudiences(const std::string& profile_id,
                                                           std::int64_t now_ms) {
  AudienceReview review;
  const Profile* p = nullptr;
  std::optional<Profile> loaded;
  if (cache_) {
    if (auto it = cache_->profiles.find(profile_id); it != cache_->profiles.end() &&
                                                     it->second.profile) {
      p = it->second.profile.get();
    }
  }
  if (p == nullptr) {
    auto text = store_.loadProfile(profile_id);
    if (!text) {
      return text.error();
    }
    if (!*text) {
      return review;
    }
    auto parsed = Profile::parse(**text);
    if (!parsed) {
      return sdk::makeError(parsed.error().code,
                            "profile " + profile_id + ": " + parsed.error().message);
    }
    loaded = std::move(parsed).value();
    p = &*loaded;
  }
  std::int64_t seq = p->audience_seq;
  for (auto& [name, entered] : evaluate(*p, now_ms).differ) {
    review.transitions.push_back(AudienceTransition{
        name, entered,
        "audience-" + profile_id + "-" + std::to_string(++seq) + (entered ? "-in-" : "-out-") +
            name});
  }
  // Who the person is (for their events), not the rest: no copy of traits and events.
  review.profile.emplace();
  review.profile->id = p->id;
  review.profile->identities = p->identities;
  review.profile->consent = p->consent;
  review.profile->consent_time = p->consent_time;
  review.profile->audiences = p->audiences;
  return review;
}

sdk::Result<Changes> ProfileEngine::recordAudiences(
    const std::string& profile_id, const std::vector<AudienceTransition>& transitions,
    std::int64_t entry_seq, std::int64_t now_ms, bool reschedule) {
  return recordAudiences({AudienceRecord{profile_id, transitions, entry_seq, reschedule}},
                         now_ms);
}

sdk::Result<Changes> ProfileEngine::recordAudiences(const std::vector<AudienceRecord>& records,
                                                    std::int64_t now_ms) {
  pending_.reset();
  tally_ = Tally{};
  pending_ = std::make_unique<Batch>(store_, cache_.get());
  Batch& batch = *pending_;
  std::vector<std::pair<std::string, std::int64_t>> done;
  std::vector<std::pair<std::string, std::int64_t>> next;
  for (const auto& r : records) {
    auto p = batch.profile(r.profile_id);
    if (!p) {
      return p.error();
    }
    std::int64_t due = audiences::kNever;
    if (Profile* profile = *p) {
      for (const auto& t : r.transitions) {
        if (t.entered) {
          profile->audiences[t.audience] = now_ms;
        } else {
          profile->audiences.erase(t.audience);
        }
        batch.member(audienceChannel(t.audience), r.profile_id, t.entered);
      }
      if (!r.transitions.empty()) {
        profile->audience_seq += static_cast<std::int64_t>(r.transitions.size());
        if (options_.audiences) {
          audiences::pruneHistory(*options_.audiences, profile->audience_history, now_ms);
        } else {
          profile->audience_history.clear();
        }
        batch.touch(r.profile_id);
        batch.mark(r.profile_id);  // a scheduled destination's next run sends the membership
      }
      if (r.reschedule) {
        due = reviewDue(*profile, now_ms);
      }
    }
    const std::string key = audienceReviewKey(r.profile_id);
    done.emplace_back(key, r.entry_seq);
    if (due != audiences::kNever) {
      next.emplace_back(key, due);
    }
  }
  Changes c = batch.changes(options_.sync_channels);
  c.outbox_done.insert(c.outbox_done.end(), done.begin(), done.end());
  c.outbox_put.insert(c.outbox_put.end(), next.begin(), next.end());
  return c;
}

sdk::Result<std::optional<Changes>> ProfileEngine::erase(const std::string& key) {
  Batch batch(store_, nullptr);
  auto pid = batch.identity(key);
  if (!pid) {
    return pid.error();
  }
  if (!*pid) {
    return std::optional<Changes>();
  }
  auto p = batch.profile(**pid);
  if (!p) {
    return p.error();
  }
  Changes c;
  if (*p != nullptr) {
    if (cache_) {
      cache_->forget(**p);
    }
    for (const auto& [kind, values] : (*p)->identities) {
      for (const auto& v : values) {
        c.identities_deleted.push_back(Identifier{kind, v}.key());
      }
    }
  }
  if (std::find(c.identities_deleted.begin(), c.identities_deleted.end(), key) ==
      c.identities_deleted.end()) {
    c.identities_deleted.push_back(key);
  }
  c.profiles_deleted.push_back(**pid);
  c.outbox_deleted.push_back(**pid);
  c.outbox_deleted.push_back(audienceReviewKey(**pid));
  std::set<std::string, std::less<>> audience_names;
  if (*p != nullptr) {
    for (const auto& [name, since] : (*p)->audiences) {
      audience_names.emplace(name);
    }
  }
  if (options_.audiences) {
    for (const auto& a : options_.audiences->audiences()) {
      audience_names.insert(a.name);
    }
  }
  for (const auto& name : audience_names) {
    c.sync_deleted.emplace_back(audienceChannel(name), **pid);
  }
  for (const auto& channel : options_.sync_channels) {
    c.sync_deleted.emplace_back(channel, **pid);
  }
  return std::optional<Changes>(std::move(c));
}

json::object ProfileEngine::computedValues(const Profile& p, std::int64_t now_ms) const {
  json::object computed;
  for (const auto& trait : options_.computed) {
    const json::value* state = p.computed.if_contains(trait.name);
    computed[trait.name] =
        computedValue(trait, state && state->is_object() ? state->as_object() : json::object{},
                      now_ms);
  }
  return computed;
}

json::object ProfileEngine::render(const Profile& p, std::int64_t now_ms,
                                   std::size_t events) const {
  json::object identities;
  for (const char* label : {"userId", "anonymousId", "email"}) {
    identities[label] = json::array{};
  }
  for (const auto& [kind, values] : p.identities) {
    json::array a;
    for (const auto& v : values) {
      a.emplace_back(v);
    }
    identities[identityLabel(kind)] = std::move(a);
  }
  json::object times;
  for (const auto& [k, v] : p.trait_times) {
    times[k] = v.is_int64() ? json::value(sdk::formatIsoTimestamp(v.as_int64())) : v;
  }
  json::object computed = computedValues(p, now_ms);
  json::array recent;
  for (const auto& e : p.events) {
    if (recent.size() == events) {
      break;
    }
    json::object copy = e.as_object();
    copy.erase("ts");
    recent.push_back(std::move(copy));
  }
  json::object audiences;  // name -> when the person entered it
  for (const auto& [name, since] : p.audiences) {
    audiences[name] = since.is_int64() ? json::value(sdk::formatIsoTimestamp(since.as_int64()))
                                       : since;
  }
  json::object consent = p.consent;
  if (p.consent_time != 0) {
    consent["updated_at"] = sdk::formatIsoTimestamp(p.consent_time);
  }
  return json::object{{"id", p.id},
                      {"identities", std::move(identities)},
                      {"traits", p.traits},
                      {"trait_times", std::move(times)},
                      {"consent", std::move(consent)},
                      {"first_seen", sdk::formatIsoTimestamp(p.first_seen)},
                      {"last_seen", sdk::formatIsoTimestamp(p.last_seen)},
                      {"counters", p.counters},
                      {"computed", std::move(computed)},
                      {"audiences", std::move(audiences)},
                      {"events", std::move(recent)}};
}

std::int64_t ProfileEngine::renderedUntil(const Profile& p, std::int64_t now_ms) const {
  std::int64_t until = std::numeric_limits<std::int64_t>::max();
  for (const auto& trait : options_.computed) {
    const json::value* state = p.computed.if_contains(trait.name);
    if (state != nullptr && state->is_object()) {
      until = std::min(until, computedChangesAt(trait, state->as_object(), now_ms));
    }
  }
  return until;
}

}  // namespace junction::core::profiles
