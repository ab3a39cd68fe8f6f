#include "core/profiles/profile_service.h"

#include <boost/json.hpp>
#include <boost/url/decode_view.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/pct_string_view.hpp>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <future>
#include <variant>

#include "core/http/admin_auth.h"
#include "core/runtime/thread.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/text.h"

namespace junction::core::profiles {

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kBatchEvents = 5000;
constexpr std::size_t kBatchBytes = 16u << 20;
constexpr std::size_t kAnnounceBatch = 500;
constexpr std::size_t kMaxEventsPage = 1000;
// The applier at SCHED_IDLE with events to apply is lifted to normal priority for a batch when
// it ran less than kMinShare in the last kWatchTick (4 %: starved, not merely slow).
constexpr auto kWatchTick = 250ms;
constexpr std::int64_t kMinShare = 10'000'000;  // ns
// Where it may not leave SCHED_IDLE: against a nice-0 thread it gets ~1.5 % of a core (weights
// 15 vs 1024), never nothing.
constexpr int kCatchUpNice = 19;
// A page's `limit`: 1..kMaxEventsPage (nullopt: answer badLimit()).
std::optional<std::size_t> pageLimit(const std::string& value) {
  auto n = http::parseWholeNumber(value);
  if (!n || *n < 1 || static_cast<std::size_t>(*n) > kMaxEventsPage) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(*n);
}
sdk::HttpResponse badLimit() {
  return http::jsonError(400,
                         "`limit` must be an integer from 1 to " + std::to_string(kMaxEventsPage));
}
constexpr const char* kTransitionsHelp =
    "People entering or leaving audiences (events emitted from the source `audiences`)";

// CPU time thread `tid` of this process has run, from /proc (-1 when unreadable).
std::int64_t threadRunNs(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  std::int64_t ns = -1;
  return in >> ns ? ns : -1;
}

}  // namespace

ProfileService::ProfileService(const config::ProfilesConfig& config,
                               std::unique_ptr<ProfileStore> store, queue::Log& log,
                               ingest::Ingest& ingest, const privacy::PrivacyStore* privacy,
                               sdk::Metrics& metrics, sdk::Logger& logger,
                               const sdk::Clock& clock)
    : ProfileService(config, std::move(store), nullptr, ingest, privacy, metrics, logger, clock) {
  log_ = &log;
}

ProfileService::ProfileService(const config::ProfilesConfig& config,
                               std::unique_ptr<ProfileStore> store, delivery::WorkerSource& source,
                               ingest::Ingest& ingest, const privacy::PrivacyStore* privacy,
                               sdk::Metrics& metrics, sdk::Logger& logger,
                               const sdk::Clock& clock)
    : ProfileService(config, std::move(store), &source, ingest, privacy, metrics, logger, clock) {}

ProfileService::ProfileService(const config::ProfilesConfig& config,
                               std::unique_ptr<ProfileStore> store, delivery::WorkerSource* source,
                               ingest::Ingest& ingest, const privacy::PrivacyStore* privacy,
                               sdk::Metrics& metrics, sdk::Logger& logger,
                               const sdk::Clock& clock)
    : store_(std::move(store)),
      source_(source),
      ingest_(ingest),
      privacy_(privacy),
      logger_(logger),
      clock_(clock),
      engine_(*store_, EngineOptions::from(config), metrics, logger, clock),
      lost_(metrics.counter("junction_profile_events_lost_total",
                            "Queue bytes the profiles had not applied when they were found gone "
                            "(deleted or corrupt segments)")),
      entered_(metrics.counter("junction_audience_transitions_total", kTransitionsHelp,
                               {{"direction", "entered"}})),
      exited_(metrics.counter("junction_audience_transitions_total", kTransitionsHelp,
                              {{"direction", "exited"}})),
      store_errors_(metrics.counter("junction_profile_store_errors_total",
                                    "Profile batches the store refused (retried)")),
      announced_(metrics.counter("junction_profile_change_events_total",
                                 "Profile-change events emitted from the source `profiles`")),
      lag_(metrics.gauge("junction_profile_lag_bytes",
                         "Queue bytes accepted and not yet applied to profiles")),
      boosts_(metrics.counter("junction_profile_applier_boosts_total",
                              "Batches the profile applier ran at normal priority: at idle "
                              "priority, with events to apply, it had run under 10 ms in 250 ms")),
      answer_hits_(metrics.counter("junction_profile_api_cache_total",
                                   "Profile API reads by person, from the answer cache (hit) or "
                                   "from the store (miss)",
                                   {{"result", "hit"}})),
      answer_misses_(metrics.counter("junction_profile_api_cache_total",
                                     "Profile API reads by person, from the answer cache (hit) "
                                     "or from the store (miss)",
                                     {{"result", "miss"}})),
      answer_bytes_(metrics.gauge("junction_profile_api_cache_bytes",
                                  "Memory the Profile API's answer cache holds")) {
  if (config.api_cache_bytes > 0 && store_->exclusiveWriter()) {
    answers_ = std::make_unique<AnswerCache>(config.api_cache_bytes);
  }
}

ProfileService::~ProfileService() { stop(); }

sdk::Status ProfileService::start() {
  auto applied = store_->appliedOffset();
  if (!applied) {
    return applied.error();
  }
  // From a consumer, the position is the queue's: offsets start again at each start.
  const queue::Offset begin = log_ != nullptr ? log_->beginOffset() : source_->begin();
  queue::Offset from = log_ != nullptr ? *applied : begin;
  if (from < begin) {
    if (from > 0) {
      // Applied up to `from`, and the queue now starts later: events in between are gone.
      lost_.inc(begin - from);
      logger_.error("profiles: queue events were gone before profiles applied them",
                    {{"from_offset", from}, {"to_offset", begin}, {"bytes", begin - from}});
    }
    from = begin;
  }
  if (from > end()) {
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "profile store " + store_->describe() + " was applied up to offset " +
                              std::to_string(from) + ", past the end of the queue (" +
                              std::to_string(end()) +
                              "): it belongs to another queue. Run `" +
                              std::string(kRecoverProfilesCommand) + "`");
  }
  applied_.store(from);
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
    started_ = true;
  }
  // Profiles are a view of the durable queue that catches up by itself: under a CPU shortage,
  // ingest and delivery come first and the applier lags (junction_profile_lag_bytes). At
  // SCHED_IDLE it could starve outright while anything else keeps the cores busy, so a watchdog
  // lifts it to normal priority for one batch when, with events to apply, it ran less than
  // kMinShare of the last kWatchTick.
  // Where a thread may not leave SCHED_IDLE again (unprivileged, RLIMIT_NICE below 20), it
  // runs at nice 19 instead, which never starves it.
  const bool idle = runtime::mayLeaveIdle();
  applier_ = std::thread([this, idle] {
    if (idle) {
      runtime::makeThisThreadIdle();
    } else {
      runtime::makeThisThreadBackground(kCatchUpNice);
    }
    applier_tid_.store(runtime::thisThreadId());
    runtime::nameThisThread("jn-profiles");
    applyLoop();
  });
  if (idle) {
    watchdog_ = std::thread([this] {
      runtime::nameThisThread("jn-prof-watch");
      watchLoop();
    });
  }
  // Always: audience reviews go through it too (audiences may come with a reload).
  announcer_ = std::thread([this] {
    runtime::nameThisThread("jn-prof-announce");
    announceLoop();
  });
  logger_.info("profiles started", {{"store", store_->describe()}, {"from_offset", from}});
  return {};
}

void ProfileService::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!started_) {
      return;
    }
    started_ = false;
    stopping_ = true;
  }
  wake_.notify_all();
  watch_cv_.notify_all();
  if (applier_.joinable()) {
    applier_.join();
  }
  if (watchdog_.joinable()) {
    watchdog_.join();
  }
  if (announcer_.joinable()) {
    announcer_.join();
  }
  // Announcements emitted and not yet durable: their callbacks touch the store.
  std::unique_lock lock(mutex_);
  announced_cv_.wait_for(lock, 10s, [&] { return in_flight_ == 0; });
}

void ProfileService::notifyAppend() {
  {
    std::lock_guard lock(mutex_);
    appended_ = true;
  }
  wake_.notify_all();
}

void ProfileService::applyLoop() {
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        return;
      }
    }
    if (applyOnce()) {
      continue;
    }
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, 200ms, [&] { return stopping_ || appended_; });
    appended_ = false;
  }
}

// One batch; true when it did something (read again at once).
bool ProfileService::applyOnce() {
  const queue::Offset from = applied_.load();
  const queue::Offset until = end();
  lag_.set(static_cast<double>(until - from));
  if (from >= until) {
    return false;
  }
  auto batch = log_ != nullptr ? log_->read(from, kBatchEvents, kBatchBytes)
                               : source_->read(from, kBatchEvents, kBatchBytes);
  if (!batch) {
    store_errors_.inc();
    logger_.error("profiles: cannot read the queue", {{"offset", from},
                                                       {"error", batch.error().message}});
    std::this_thread::sleep_for(1s);
    return false;
  }
  if (batch->skipped_bytes > 0) {
    lost_.inc(batch->skipped_bytes);
    logger_.error("profiles: queue bytes skipped (deleted segments or corrupt records)",
                  {{"from_offset", from}, {"bytes", batch->skipped_bytes}});
  }
  std::vector<const sdk::Event*> events;
  events.reserve(batch->records.size());
  sdk::Status status;
  {
    // Under the lock an erasure takes too: a person deleted while this batch is made is either
    // skipped here or erased after its commit, never brought back.
    std::lock_guard lock(write_mutex_);
    for (const auto& r : batch->records) {
      const sdk::Event& e = r.event;
      if (e.header().source_id == config::kProfilesSource ||
          e.header().source_id == config::kAudiencesSource ||
          e.header().source_id.starts_with(config::kSyncSourcePrefix)) {
        continue;  // our own announcements, and scheduled syncs' snapshots of profiles
      }
      if (privacy_ != nullptr && privacy_->isDeleted(e)) {
        continue;  // received before the person's delete regulation
      }
      events.push_back(&e);
    }
    store_->beginBatch();
    auto changes = engine_.apply(events);
    if (!changes) {
      status = changes.error();
    } else {
      changes->applied = batch->next;
      status = store_->commit(*changes);
      forget(*changes);  // committed or not (a commit's answer can be lost while it lands)
      if (status.ok() && !changes->outbox_put.empty()) {
        wake_.notify_all();
      }
    }
    engine_.settle(status.ok());
    store_->endBatch();
  }
  if (!status.ok()) {
    // A commit whose answer was lost (a connection dropped during COMMIT) may have landed:
    // the store's own offset tells, and a batch that landed is not applied twice.
    if (auto landed = store_->appliedOffset(); landed && *landed == batch->next) {
      applied(batch->next);
      return true;
    }
    // Nothing of the batch was committed: the same batch again, after a pause.
    store_errors_.inc();
    logger_.error("profiles: batch not applied, retrying",
                  {{"from_offset", from}, {"events", events.size()}, {"error", status.message()}});
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, 1s, [&] { return stopping_; });
    return false;
  }
  applied(batch->next);
  if (boosted_.exchange(false)) {
    runtime::makeThisThreadIdle();  // the batch the watchdog lifted it for is done
  }
  return true;
}

void ProfileService::applied(queue::Offset next) {
  applied_.store(next, std::memory_order_release);
  if (source_ != nullptr) {
    // Acknowledged only now that the store holds the batch.
    if (auto s = source_->commit(std::string(kConsumerName), next); !s.ok()) {
      logger_.warn("profiles: cannot acknowledge applied events (they are applied again)",
                   {{"error", s.message()}});
    }
  }
}

void ProfileService::watchLoop() {
  std::int64_t ran_before = -1;
  while (true) {
    {
      std::unique_lock lock(mutex_);  // not held below: notifyAppend() takes it on the writer
      if (watch_cv_.wait_for(lock, kWatchTick, [&] { return stopping_; })) {
        return;
      }
    }
    const pid_t tid = applier_tid_.load();
    const std::int64_t ran = tid == 0 ? -1 : threadRunNs(tid);
    const bool starved = ran >= 0 && ran_before >= 0 && ran - ran_before < kMinShare;
    ran_before = ran;
    if (!starved || boosted_.load() ||
        applied_.load(std::memory_order_acquire) >= end()) {
      continue;
    }
    if (runtime::makeThreadNormal(tid)) {
      boosted_.store(true);
      boosts_.inc();
    }
  }
}

namespace {

// A profile's identifiers as keys ("user:42"), the answer cache's and hidden()'s form.
std::vector<std::string> identityKeys(const Profile& p) {
  std::vector<std::string> keys;
  for (const auto& [kind, values] : p.identities) {
    for (const auto& v : values) {
      keys.push_back(kind + ":" + v);
    }
  }
  return keys;
}

}  // namespace

bool ProfileService::hidden(const std::vector<std::string>& keys) const {
  if (privacy_ == nullptr || !privacy_->hasSuppressions()) {
    return false;
  }
  for (const auto& key : keys) {
    const std::size_t colon = key.find(':');  // kinds have no colon; values may
    const std::string_view kind = std::string_view(key).substr(0, colon);
    privacy::SubjectKind sk;
    if (kind == kUserKind) {
      sk = privacy::SubjectKind::UserId;
    } else if (kind == kAnonymousKind) {
      sk = privacy::SubjectKind::AnonymousId;
    } else if (kind == kEmailKind) {
      sk = privacy::SubjectKind::Email;
    } else {
      continue;
    }
    if (privacy_->isSuppressed(privacy::Subject{sk, key.substr(colon + 1)})) {
      return true;
    }
  }
  return false;
}

void ProfileService::announceLoop() {
  while (true) {
    reviewEveryonePage();
    std::size_t n = announceOnce();
    std::unique_lock lock(mutex_);
    if (stopping_) {
      return;
    }
    if (n < kAnnounceBatch && !reviewing_) {
      wake_.wait_for(lock, 100ms, [&] { return stopping_; });
    }
  }
}

namespace {

// Who `profile` is, on an event made from it: userId (else anonymousId), and in `context` the
// profile id, consent and e-mail.
void statePerson(const Profile& profile, json::object& body) {
  auto first = [&](std::string_view kind) -> std::string {
    auto it = profile.identities.find(std::string(kind));
    return it == profile.identities.end() || it->second.empty() ? std::string()
                                                                 : it->second.front();
  };
  if (const std::string u = first(kUserKind); !u.empty()) {
    body["userId"] = u;
  }
  const std::string a = first(kAnonymousKind);
  if (!a.empty()) {
    body["anonymousId"] = a;
  }
  if (!body.contains("userId") && a.empty()) {
    body["anonymousId"] = profile.id;  // known by an e-mail or external id only
  }
  json::object context{{"junction", json::object{{"profile_id", profile.id}}}};
  if (const json::value* g = profile.consent.if_contains("granted"); g && g->is_array()) {
    json::object prefs;
    for (const auto& c : g->as_array()) {
      prefs[c.as_string()] = true;
    }
    if (const json::value* d = profile.consent.if_contains("denied"); d && d->is_array()) {
      for (const auto& c : d->as_array()) {
        prefs[c.as_string()] = false;
      }
    }
    context["consent"] = json::object{{"categoryPreferences", std::move(prefs)}};
  }
  if (const std::string e = first(kEmailKind); !e.empty()) {
    context["traits"] = json::object{{"email", e}};
  }
  body["context"] = std::move(context);
}

}  // namespace

sdk::Result<sdk::Event> ProfileService::identifyEvent(const Profile& profile,
                                                      std::string_view source,
                                                      std::string message_id, std::int64_t now,
                                                      const std::vector<std::string>& audiences) const {
  json::object traits = profile.traits;
  for (auto& [k, v] : engine_.computedValues(profile, now)) {
    traits[k] = std::move(v);
  }
  json::object body{{"type", "identify"},
                    {"traits", std::move(traits)},
                    {"timestamp", sdk::formatIsoTimestamp(now)},
                    {"messageId", std::move(message_id)}};
  statePerson(profile, body);
  if (!audiences.empty()) {
    json::object membership;
    for (const auto& name : audiences) {
      membership[name] = profile.audiences.contains(name);
    }
    body["context"].as_object()["junction"].as_object()["audiences"] = std::move(membership);
  }
  return sdk::makeEvent(body, source);
}

sdk::Result<sdk::Event> ProfileService::audienceEvent(const Profile& profile,
                                                      const AudienceTransition& transition,
                                                      std::int64_t now) const {
  json::object body{
      {"type", "track"},
      {"event", transition.entered ? "Audience Entered" : "Audience Exited"},
      {"properties",
       json::object{{"audience", transition.audience}, {"audience_key", transition.audience}}},
      {"timestamp", sdk::formatIsoTimestamp(now)},
      {"messageId", transition.message_id}};
  statePerson(profile, body);
  return sdk::makeEvent(body, config::kAudiencesSource);
}

sdk::Result<std::optional<Profile>> ProfileService::current(const std::string& profile_id) {
  auto text = store_->loadProfile(profile_id);
  if (!text) {
    return text.error();
  }
  if (!*text) {
    return std::optional<Profile>();
  }
  auto parsed = Profile::parse(**text);
  if (!parsed) {
    return parsed.error();
  }
  if (hidden(identityKeys(*parsed))) {
    return std::optional<Profile>();
  }
  return std::optional<Profile>(std::move(parsed).value());
}

void ProfileService::setSyncChannels(std::vector<std::string> channels) {
  std::lock_guard lock(write_mutex_);
  engine_.setSyncChannels(std::move(channels));
}

sdk::Status ProfileService::commitSyncDone(std::vector<SyncMark> marks) {
  Changes done;
  done.sync_done = std::move(marks);
  std::lock_guard lock(write_mutex_);
  return store_->commit(done);
}

std::size_t ProfileService::announceOnce() {
  auto due = store_->dueOutbox(clock_.nowMs(), kAnnounceBatch);
  if (!due) {
    store_errors_.inc();
    // Once a second at most while the store is unreachable (this loop runs every 100 ms).
    const auto now = std::chrono::steady_clock::now();
    if (now - outbox_error_logged_ >= 1s) {
      outbox_error_logged_ = now;
      logger_.error("profiles: cannot read the outbox", {{"error", due.error().message}});
    }
    return 0;
  }
  if (due->empty()) {
    return 0;
  }
  std::vector<OutboxEntry> people;  // profile-change announcements
  std::vector<OutboxEntry> reviews;
  for (auto& entry : *due) {
    (entry.profile_id.starts_with(kAudienceReviewPrefix) ? reviews : people)
        .push_back(std::move(entry));
  }
  if (!reviews.empty() && !reviewAudiences(reviews)) {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, 1s, [&] { return stopping_; });
    return 0;
  }
  if (people.empty()) {
    return due->size();
  }
  std::vector<sdk::Event> events;
  auto done = std::make_shared<Changes>();
  const std::int64_t now = clock_.nowMs();
  for (const auto& entry : people) {
    auto text = store_->loadProfile(entry.profile_id);
    if (!text) {
      return 0;
    }
    std::optional<Profile> profile;
    if (*text) {
      if (auto parsed = Profile::parse(**text)) {
        profile = std::move(parsed).value();
      }
    }
    if (!profile || hidden(identityKeys(*profile))) {
      done->outbox_done.emplace_back(entry.profile_id, entry.seq);  // gone or suppressed
      continue;
    }
    auto event = identifyEvent(*profile, config::kProfilesSource,
                               "profile-" + profile->id + "-" + std::to_string(entry.seq) + "-" +
                                   std::to_string(entry.due_ms),
                               now);
    if (!event) {
      logger_.error("profiles: a profile-change event could not be made",
                    {{"profile", profile->id}, {"error", event.error().message}});
      done->outbox_done.emplace_back(entry.profile_id, entry.seq);
      continue;
    }
    events.push_back(std::move(event).value());
    done->outbox_done.emplace_back(entry.profile_id, entry.seq);
  }
  const std::size_t count = events.size();
  if (events.empty()) {
    std::lock_guard lock(write_mutex_);
    (void)store_->commit(*done);
    return due->size();
  }
  {
    std::lock_guard lock(mutex_);
    ++in_flight_;
  }
  // Entries are deleted once their events are durable; until then a second read must not
  // emit them again: wait for the answer (emit never blocks, its callback is quick).
  auto finished = std::make_shared<std::promise<bool>>();
  auto result = finished->get_future();
  ingest_.emit(std::string(config::kProfilesSource), std::move(events),
               [this, done, finished, count](sdk::EmitResult r) {
                 bool ok = r.status.ok();
                 if (ok) {
                   std::lock_guard lock(write_mutex_);
                   if (auto s = store_->commit(*done); !s.ok()) {
                     logger_.error("profiles: announced entries not cleared (they will be "
                                   "announced again)",
                                   {{"error", s.message()}});
                   }
                   announced_.inc(count);
                 }
                 finished->set_value(ok);
                 std::lock_guard lock(mutex_);
                 --in_flight_;
                 announced_cv_.notify_all();
               });
  if (!result.get()) {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, 1s, [&] { return stopping_; });
    return 0;
  }
  return due->size();
}

bool ProfileService::reviewAudiences(const std::vector<OutboxEntry>& entries) {
  struct Review {
    std::string profile_id;
    std::int64_t seq = 0;
    std::vector<AudienceTransition> transitions;
    bool reschedule = true;
  };
  std::vector<Review> reviews;
  std::vector<sdk::Event> events;
  const std::int64_t now = clock_.nowMs();
  {
    std::lock_guard lock(write_mutex_);
    for (const auto& entry : entries) {
      Review r{entry.profile_id.substr(kAudienceReviewPrefix.size()), entry.seq, {}, true};
      auto review = engine_.reviewAudiences(r.profile_id, now);
      if (!review) {
        store_errors_.inc();
        logger_.error("profiles: cannot review a person's audiences",
                      {{"profile", r.profile_id}, {"error", review.error().message}});
        return false;
      }
      if (!review->profile || hidden(identityKeys(*review->profile))) {
        // Gone, or suppressed: nothing announced, nothing recorded, no next review (a
        // suppressed person's next event brings one).
        r.reschedule = false;
      } else {
        for (const auto& t : review->transitions) {
          auto event = audienceEvent(*review->profile, t, now);
          if (!event) {
            logger_.error("profiles: an audience event could not be made",
                          {{"profile", r.profile_id}, {"error", event.error().message}});
            return false;
          }
          events.push_back(std::move(event).value());
        }
        r.transitions = std::move(review->transitions);
      }
      reviews.push_back(std::move(r));
    }
  }
  if (!events.empty()) {
    // Recorded only once their events are durable: a crash in between announces them again,
    // with the same message ids.
    {
      std::lock_guard lock(mutex_);
      ++in_flight_;
    }
    auto finished = std::make_shared<std::promise<bool>>();
    auto result = finished->get_future();
    ingest_.emit(std::string(config::kAudiencesSource), std::move(events),
                 [this, finished](sdk::EmitResult r) {
                   finished->set_value(r.status.ok());
                   std::lock_guard lock(mutex_);
                   --in_flight_;
                   announced_cv_.notify_all();
                 });
    if (!result.get()) {
      logger_.warn("profiles: audience events not accepted by the queue (retried)");
      return false;
    }
  }
  std::vector<ProfileEngine::AudienceRecord> records;
  records.reserve(reviews.size());
  for (auto& r : reviews) {
    records.push_back({std::move(r.profile_id), std::move(r.transitions), r.seq, r.reschedule});
  }
  std::lock_guard lock(write_mutex_);
  auto changes = engine_.recordAudiences(records, now);  // one commit for them all
  sdk::Status status = changes ? store_->commit(*changes) : changes.error();
  if (changes) {
    forget(*changes);
  }
  engine_.settle(status.ok());
  if (!status.ok()) {
    store_errors_.inc();
    logger_.error("profiles: audience changes not recorded (reviewed again)",
                  {{"people", records.size()}, {"error", status.message()}});
    return false;
  }
  for (const auto& r : records) {
    for (const auto& t : r.transitions) {
      (t.entered ? entered_ : exited_).inc();
    }
  }
  return true;
}

namespace {

// What decides who is in an audience, as text: equal for equal definitions.
void describeCondition(const audiences::Condition& c, std::string& out) {
  out += std::to_string(static_cast<int>(c.kind));
  out += '(';
  out += c.trait;
  out += '|';
  out += std::to_string(static_cast<int>(c.op));
  out += '|';
  out += json::serialize(c.value);
  out += '|';
  out += c.event;
  out += '|';
  out += std::to_string(c.within_ms);
  out += '|';
  out += std::to_string(c.count);
  for (const auto& child : c.children) {
    out += ',';
    describeCondition(child, out);
  }
  out += ')';
}

std::string fingerprintOf(const audiences::AudienceSet* set) {
  std::string text;
  if (set != nullptr) {
    for (const auto& a : set->audiences()) {
      text += a.name;
      text += ':';
      describeCondition(a.where, text);
      text += ';';
    }
  }
  return sdk::sha256Hex(text);
}

}  // namespace

bool ProfileService::setAudiences(std::shared_ptr<const audiences::AudienceSet> set,
                                  std::string state_file) {
  bool changed = false;
  const std::string fingerprint = fingerprintOf(set.get());
  {
    std::lock_guard lock(write_mutex_);
    engine_.setAudiences(std::move(set));
  }
  std::lock_guard lock(mutex_);
  audiences_ = engine_.options().audiences;  // set above; read by the API's threads under mutex_
  audience_state_file_ = std::move(state_file);
  // The file: {"fingerprint": ..., "after": last id queued, "done": bool}.
  std::string saved_fingerprint;
  std::string after;
  bool done = false;
  bool have = false;
  if (std::ifstream in(audience_state_file_); in) {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (!ec && v.is_object()) {
      const json::object& o = v.as_object();
      auto str = [&](const char* k) {
        const json::value* x = o.if_contains(k);
        return x && x->is_string() ? std::string(x->as_string()) : std::string();
      };
      saved_fingerprint = str("fingerprint");
      after = str("after");
      const json::value* d = o.if_contains("done");
      done = d && d->is_bool() && d->as_bool();
      have = true;
    } else {
      logger_.warn("profiles: the audiences' review state is unreadable; everyone is reviewed",
                   {{"file", audience_state_file_}});
    }
  }
  if (have && saved_fingerprint == fingerprint) {
    reviewing_ = !done;  // a review of everyone cut short by a stop goes on
    review_after_ = after;
  } else if (have || fingerprint != fingerprintOf(nullptr)) {
    reviewing_ = true;  // the definitions changed: everyone again, from the start
    review_after_.clear();
    changed = have && saved_fingerprint != fingerprint;
    logger_.info("profiles: audiences changed, every person's membership is reviewed");
  }
  audience_fingerprint_ = fingerprint;
  if (reviewing_ || !have) {
    saveReviewState();
  }
  wake_.notify_all();
  return changed;
}

bool ProfileService::reviewingEveryone() const {
  std::lock_guard lock(mutex_);
  return reviewing_;
}

void ProfileService::saveReviewState() {
  if (audience_state_file_.empty()) {
    return;
  }
  const std::string text = json::serialize(json::object{{"fingerprint", audience_fingerprint_},
                                                        {"after", review_after_},
                                                        {"done", !reviewing_}});
  const std::string tmp = audience_state_file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      logger_.warn("profiles: cannot write the audiences' review state",
                   {{"file", audience_state_file_}});
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, audience_state_file_, ec);
}

void ProfileService::reviewEveryonePage() {
  constexpr std::size_t kPage = 1000;
  std::string after;
  {
    std::lock_guard lock(mutex_);
    if (!reviewing_) {
      return;
    }
    after = review_after_;
  }
  auto ids = store_->profileIds(after, kPage);
  if (!ids) {
    store_errors_.inc();
    logger_.error("profiles: cannot list profiles to review their audiences",
                  {{"error", ids.error().message}});
    return;
  }
  if (!ids->empty()) {
    Changes c;
    const std::int64_t now = clock_.nowMs();
    for (const auto& id : *ids) {
      c.outbox_put.emplace_back(audienceReviewKey(id), now);
    }
    std::lock_guard lock(write_mutex_);
    if (auto s = store_->commit(c); !s.ok()) {
      store_errors_.inc();
      logger_.error("profiles: cannot queue audience reviews", {{"error", s.message()}});
      return;
    }
  }
  std::lock_guard lock(mutex_);
  if (ids->size() < kPage) {
    reviewing_ = false;
    logger_.info("profiles: every person's audiences queued for review");
  } else {
    review_after_ = ids->back();
  }
  saveReviewState();
}

sdk::Status ProfileService::erase(const privacy::Subject& subject) {
  std::string kind = subject.kind == privacy::SubjectKind::UserId        ? std::string(kUserKind)
                     : subject.kind == privacy::SubjectKind::AnonymousId ? std::string(kAnonymousKind)
                                                                         : std::string(kEmailKind);
  std::lock_guard lock(write_mutex_);
  auto changes = engine_.erase(kind + ":" + subject.value);
  if (!changes) {
    return changes.error();
  }
  if (!*changes) {
    return {};
  }
  sdk::Status status = store_->commit(**changes);
  forget(**changes);
  return status;
}

// --- the API ----------------------------------------------------------------------------------

std::optional<sdk::HttpResponse> ProfileService::checkReader(const sdk::HttpRequest& request) const {
  std::string_view auth = request.headers.get("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer) {
    const std::string_view token = auth.substr(kBearer.size());
    bool ok = !admin_token_.empty() && sdk::constantTimeEquals(token, admin_token_);
    for (const auto& t : tokens_) {
      ok = (!t.empty() && sdk::constantTimeEquals(token, t)) || ok;
    }
    if (ok) {
      return std::nullopt;
    }
  }
  auto r = http::jsonError(401, "missing or wrong token (the admin token or one of profiles.tokens)");
  r.headers.set("WWW-Authenticate", "Bearer");
  return r;
}

namespace {

// The identifier an API id names ("user:42"), decoded.
sdk::Result<std::string> identityKeyOf(const std::string& raw_id) {
  std::string decoded;
  if (auto pct = boost::urls::make_pct_string_view(raw_id)) {
    decoded = std::string(pct->decode());
  } else {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the profile id is not URL-encoded text");
  }
  if (!sdk::isUtf8(decoded)) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the profile id is not UTF-8 text");
  }
  auto id = parseIdentityKey(decoded);
  if (!id) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "expected user:<userId>, anon:<anonymousId>, email:<email> or "
                          "<external id>:<value>");
  }
  return id->key();
}

}  // namespace

sdk::Result<std::optional<Profile>> ProfileService::load(const std::string& key) {
  auto pid = store_->findIdentity(key);
  if (!pid) {
    return pid.error();
  }
  if (!*pid) {
    return std::optional<Profile>();
  }
  auto text = store_->loadProfile(**pid);
  if (!text) {
    return text.error();
  }
  if (!*text) {
    return std::optional<Profile>();
  }
  auto profile = Profile::parse(**text);
  if (!profile) {
    return profile.error();
  }
  return std::optional<Profile>(std::move(profile).value());
}

sdk::Result<std::optional<Profile>> ProfileService::find(const std::string& raw_id) {
  auto key = identityKeyOf(raw_id);
  if (!key) {
    return key.error();
  }
  auto profile = load(*key);
  if (profile && *profile && hidden(identityKeys(**profile))) {
    return std::optional<Profile>();
  }
  return profile;
}

namespace {

sdk::HttpResponse notFound() {
  return sdk::HttpResponse::json(404, R"({"success":false,"error":"not found"})");
}

sdk::HttpResponse failure(const sdk::Error& e) {
  return http::jsonError(e.code == sdk::ErrorCode::InvalidArgument ? 400 : 500, e.message);
}

}  // namespace

std::variant<Profile, sdk::HttpResponse> ProfileService::requested(
    sdk::HttpRequest& request) {
  auto profile = find(request.params["id"]);
  if (!profile) {
    return failure(profile.error());
  }
  if (!*profile) {
    return notFound();
  }
  return std::move(**profile);
}

sdk::HttpResponse ProfileService::answer(const std::string& raw_id) {
  auto key = identityKeyOf(raw_id);
  if (!key) {
    return failure(key.error());
  }
  const std::int64_t now = clock_.nowMs();
  if (answers_) {
    if (auto hit = answers_->find(*key, now)) {
      answer_hits_.inc();
      return hidden(hit->keys) ? notFound() : sdk::HttpResponse::json(200, hit->body);
    }
    answer_misses_.inc();
  }
  const std::uint64_t epoch = answers_ ? answers_->epoch() : 0;  // before the store is read
  auto profile = load(*key);
  if (!profile) {
    return failure(profile.error());
  }
  if (!*profile) {
    return notFound();
  }
  auto fresh = std::make_shared<AnswerCache::Answer>();
  fresh->keys = identityKeys(**profile);
  const bool suppressed = hidden(fresh->keys);
  if (suppressed && !answers_) {
    return notFound();
  }
  fresh->body = json::serialize(engine_.render(**profile, now, engine_.options().recent_events));
  sdk::HttpResponse response =
      suppressed ? notFound() : sdk::HttpResponse::json(200, fresh->body);
  if (answers_) {
    fresh->profile_id = (*profile)->id;
    fresh->valid_until_ms = engine_.renderedUntil(**profile, now);
    answers_->put(epoch, *key, std::move(fresh));
    answer_bytes_.set(static_cast<double>(answers_->bytes()));
  }
  return response;
}

void ProfileService::registerRoutes(http::Router& router, std::string admin_token,
                                    std::vector<std::string> tokens) {
  admin_token_ = std::move(admin_token);
  tokens_ = std::move(tokens);
  (void)router.add("GET", "/v1/profiles/{id}",
                   [this](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
                     if (auto refused = checkReader(request)) {
                       respond(std::move(*refused));
                       return;
                     }
                     respond(answer(request.params["id"]));
                   });
  (void)router.add(
      "GET", "/v1/profiles/{id}/events",
      [this](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
        if (auto refused = checkReader(request)) {
          respond(std::move(*refused));
          return;
        }
        std::size_t limit = 20;
        std::optional<std::int64_t> before;
        if (!boost::urls::parse_query(request.query)) {
          respond(http::jsonError(400, "malformed query string"));
          return;
        }
        for (auto p : boost::urls::params_view(request.query)) {
          const std::string key = p.key;
          const std::string value = p.value;
          if (key == "limit") {
            auto n = pageLimit(value);
            if (!n) {
              respond(badLimit());
              return;
            }
            limit = *n;
          } else if (key == "before") {
            before = sdk::parseIsoTimestamp(value);
            if (!before) {
              before = http::parseWholeNumber(value);
            }
            if (!before) {
              respond(http::jsonError(
                  400, "`before` must be an ISO-8601 date-time or epoch milliseconds"));
              return;
            }
          } else {
            respond(http::jsonError(400, sdk::isUtf8(key)
                                             ? "unknown parameter `" + key + "` (limit, before)"
                                             : std::string("unknown parameter (limit, before)")));
            return;
          }
        }
        auto found = requested(request);
        if (auto* answer = std::get_if<sdk::HttpResponse>(&found)) {
          respond(std::move(*answer));
          return;
        }
        const Profile& profile = std::get<Profile>(found);
        json::array page;
        std::int64_t last = 0;
        bool more = false;
        for (const auto& e : profile.events) {
          const json::object& o = e.as_object();
          const std::int64_t ts = o.at("ts").as_int64();
          if (before && ts >= *before) {
            continue;
          }
          if (page.size() == limit) {
            more = true;
            break;
          }
          json::object copy = o;
          copy.erase("ts");
          page.push_back(std::move(copy));
          last = ts;
        }
        json::object body{{"id", profile.id}, {"events", std::move(page)}};
        if (more) {
          body["next_before"] = sdk::formatIsoTimestamp(last);
        }
        respond(sdk::HttpResponse::json(200, json::serialize(body)));
      });
  (void)router.add("GET", "/v1/audiences",
                   [this](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
                     if (auto refused = checkReader(request)) {
                       respond(std::move(*refused));
                       return;
                     }
                     respond(listAudiences());
                   });
  (void)router.add("GET", "/v1/audiences/{name}/members",
                   [this](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
                     if (auto refused = checkReader(request)) {
                       respond(std::move(*refused));
                       return;
                     }
                     respond(listMembers(request));
                   });
}

sdk::HttpResponse ProfileService::listAudiences() {
  std::shared_ptr<const audiences::AudienceSet> set;
  {
    std::lock_guard lock(mutex_);
    set = audiences_;
  }
  json::array list;
  if (set) {
    for (const auto& a : set->audiences()) {
      auto size = store_->syncMarkCount(audienceChannel(a.name));
      if (!size) {
        return http::jsonError(500, "the profile store failed: " + size.error().message);
      }
      json::array destinations(a.destinations.begin(), a.destinations.end());
      list.push_back(json::object{
          {"name", a.name}, {"size", *size}, {"destinations", std::move(destinations)}});
    }
  }
  bool reviewing = false;
  {
    std::lock_guard lock(mutex_);
    reviewing = reviewing_;
  }
  return sdk::HttpResponse::json(
      200, json::serialize(json::object{{"audiences", std::move(list)},
                                        {"reviewing_everyone", reviewing}}));
}

sdk::HttpResponse ProfileService::listMembers(sdk::HttpRequest& request) {
  std::string name = request.params["name"];
  if (auto pct = boost::urls::make_pct_string_view(name)) {
    name = std::string(pct->decode());
  }
  std::shared_ptr<const audiences::AudienceSet> set;
  {
    std::lock_guard lock(mutex_);
    set = audiences_;
  }
  if (!set || set->find(name) == nullptr) {
    return http::jsonError(404, "no audience of that name");
  }
  std::size_t limit = 100;
  std::string after;
  if (!boost::urls::parse_query(request.query)) {
    return http::jsonError(400, "malformed query string");
  }
  for (auto p : boost::urls::params_view(request.query)) {
    const std::string key = p.key;
    const std::string value = p.value;
    if (key == "limit") {
      auto n = pageLimit(value);
      if (!n) {
        return badLimit();
      }
      limit = *n;
    } else if (key == "after") {
      after = value;
    } else {
      return http::jsonError(400, sdk::isUtf8(key)
                                      ? "unknown parameter `" + key + "` (limit, after)"
                                      : std::string("unknown parameter (limit, after)"));
    }
  }
  auto marks = store_->syncMarks(audienceChannel(name), after, limit);
  if (!marks) {
    return http::jsonError(500, "the profile store failed: " + marks.error().message);
  }
  json::array members;
  for (const auto& mark : *marks) {
    auto profile = current(mark.profile_id);  // nullopt: gone meanwhile, or suppressed
    if (!profile) {
      return http::jsonError(500, "the profile store failed: " + profile.error().message);
    }
    if (!*profile) {
      continue;
    }
    const Profile& p = **profile;
    json::object member{{"id", p.id}};
    for (const auto& [kind, label] :
         {std::pair{kUserKind, "userId"}, std::pair{kEmailKind, "email"}}) {
      auto it = p.identities.find(std::string(kind));
      if (it != p.identities.end() && !it->second.empty()) {
        member[label] = it->second.front();
      }
    }
    if (const json::value* since = p.audiences.if_contains(name); since && since->is_int64()) {
      member["since"] = sdk::formatIsoTimestamp(since->as_int64());
    }
    members.push_back(std::move(member));
  }
  json::object body{{"audience", name}, {"members", std::move(members)}};
  if (marks->size() == limit) {
    body["next_after"] = marks->back().profile_id;
  }
  return sdk::HttpResponse::json(200, json::serialize(body));
}

}  // namespace junction::core::profiles
