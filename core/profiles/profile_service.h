#pragma once

// Profiles in the daemon: a reader of the queue that folds every accepted event into the
// profile store (off the ingest path, in batches), the Profile API, erasure for delete
// regulations, and profile-change events.
//
// - Applying: one thread reads the queue from the store's applied offset (kept in the same
//   transaction as the batch's writes: exactly once across crashes), skips events of the
//   built-in source `profiles` and of deleted people, and commits a batch per read. Retention
//   keeps the segments it has not applied yet (DeliveryEngine::addReader).
// - GET /v1/profiles/{id} and /v1/profiles/{id}/events?limit=&before= (admin token or one of
//   profiles.tokens). A suppressed person's profile is not served (404).
// - Profile-change events: a change records an outbox entry, due change_window later (changes
//   meanwhile coalesce); a second thread turns due entries into `identify` events of the
//   profile's merged traits and computed traits, emitted from the source `profiles` through
//   ingest (so consent, suppression and routing apply), and deletes each entry once its event
//   is durable in the queue.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

#include "core/config/daemon_config.h"
#include "core/http/router.h"
#include "core/ingest/ingest.h"
#include "core/profiles/answer_cache.h"
#include "core/privacy/privacy_store.h"
#include "core/profiles/profile_engine.h"
#include "core/profiles/profile_store.h"
#include "core/delivery/worker_source.h"
#include "core/queue/log.h"

namespace junction::core::profiles {

class ProfileService {
 public:
  // The queue consumer profiles read through on another backend than the embedded log.
  static constexpr std::string_view kConsumerName = "_profiles";

  // On the embedded log: the store keeps the offset applied, in the batch's own commit
  // (exactly once), and retention keeps what needs() says.
  ProfileService(const config::ProfilesConfig& config, std::unique_ptr<ProfileStore> store,
                 queue::Log& log, ingest::Ingest& ingest, const privacy::PrivacyStore* privacy,
                 sdk::Metrics& metrics, sdk::Logger& logger, const sdk::Clock& clock);
  // On another backend (NATS JetStream): events come from a consumer of the queue
  // (delivery::ConsumerSource, started by the caller with notifyAppend as its callback); a
  // batch is acknowledged once the store committed it, so a crash in between applies it again
  // (at least once). `source` must outlive the service.
  ProfileService(const config::ProfilesConfig& config, std::unique_ptr<ProfileStore> store,
                 delivery::WorkerSource& source, ingest::Ingest& ingest,
                 const privacy::PrivacyStore* privacy, sdk::Metrics& metrics, sdk::Logger& logger,
                 const sdk::Clock& clock);
  ~ProfileService();

  // Reads where to start; a stretch of the queue it had not applied and that is gone is
  // logged at ERROR with its offsets and counted (junction_profile_events_lost_total).
  sdk::Status start();
  // Finishes the batch in progress and the announcements in flight. Idempotent.
  void stop();

  void notifyAppend();
  // The lowest queue offset still to apply (for retention).
  queue::Offset needs() const noexcept { return applied_.load(std::memory_order_acquire); }

  void registerRoutes(http::Router& router, std::string admin_token,
                      std::vector<std::string> tokens);

  // Erases the person `subject` names: profile, identity links, pending announcement.
  sdk::Status erase(const privacy::Subject& subject);

  ProfileStore& store() { return *store_; }

  // The identify event that states `profile` as it is at `now`: its merged traits and computed
  // values, userId (else anonymousId), e-mail and consent in `context`, the profile id in
  // `context.junction.profile_id`. What profile-change events and scheduled syncs send.
  // With `audiences` (the audiences naming the destination it is for), the person's recorded
  // membership of each is in `context.junction.audiences` ({name: true|false}).
  sdk::Result<sdk::Event> identifyEvent(const Profile& profile, std::string_view source,
                                        std::string message_id, std::int64_t now,
                                        const std::vector<std::string>& audiences = {}) const;
  // The track event ("Audience Entered" / "Audience Exited", properties.audience and
  // audience_key the audience's name) that announces `transition` of `profile`, from the
  // built-in source `audiences`, identified and with consent as identifyEvent's.
  sdk::Result<sdk::Event> audienceEvent(const Profile& profile,
                                        const AudienceTransition& transition,
                                        std::int64_t now) const;

  // The audiences to evaluate (at start, and on each reload). Where the definitions differ from
  // those `state_file` says the people were last reviewed against (first start with audiences,
  // a reload that changed one), every person is reviewed again, in the background, a page at a
  // time; the file keeps where that got to, so a restart goes on from there. Call before
  // start() the first time. True when the definitions changed (a review of everyone starts).
  bool setAudiences(std::shared_ptr<const audiences::AudienceSet> set, std::string state_file);
  // Whether a review of everyone is under way (for tests and status).
  bool reviewingEveryone() const;
  // The profile `profile_id` as stored now; nullopt when it is gone (erased, merged away) or
  // the person is suppressed.
  sdk::Result<std::optional<Profile>> current(const std::string& profile_id);
  // The destinations in scheduled mode: each change of a profile marks it for each of them
  // (sync marks), from the next batch on.
  void setSyncChannels(std::vector<std::string> channels);
  // Deletes sync marks a scheduled run delivered (each only if no change came since it was
  // read), serialized with the applier's batches.
  sdk::Status commitSyncDone(std::vector<SyncMark> marks);

 private:
  void applyLoop();
  void announceLoop();
  bool applyOnce();
  void watchLoop();
  ProfileService(const config::ProfilesConfig& config, std::unique_ptr<ProfileStore> store,
                 delivery::WorkerSource* source, ingest::Ingest& ingest,
                 const privacy::PrivacyStore* privacy, sdk::Metrics& metrics,
                 sdk::Logger& logger, const sdk::Clock& clock);
  // A batch up to `next` is in the store.
  void applied(queue::Offset next);
  queue::Offset end() const { return log_ != nullptr ? log_->durableEnd() : source_->end(); }
  std::size_t announceOnce();
  // The audience reviews among the due outbox entries: evaluated, their events emitted and,
  // once durable, recorded. False when the store or the queue failed (retried later).
  bool reviewAudiences(const std::vector<OutboxEntry>& entries);
  // One page of a review of everyone (setAudiences): their review entries, due now.
  void reviewEveryonePage();
  void saveReviewState();
  // Whether one of `keys` ("user:42", ...: a person's identifiers) is suppressed.
  bool hidden(const std::vector<std::string>& keys) const;
  std::optional<sdk::HttpResponse> checkReader(const sdk::HttpRequest& request) const;
  // The profile an identifier names (nullopt: nobody; suppression not checked).
  sdk::Result<std::optional<Profile>> load(const std::string& key);
  // The profile an API id names (nullopt: nobody, or suppressed).
  sdk::Result<std::optional<Profile>> find(const std::string& raw_id);
  // GET /v1/profiles/{id}: from the answer cache when it holds the person.
  sdk::HttpResponse answer(const std::string& raw_id);
  // After a commit of `changes` (whatever its outcome): the answers they touch go.
  void forget(const Changes& changes) {
    if (answers_) {
      answers_->forget(changes);
    }
  }
  // GET /v1/audiences: each audience's name, size and destinations.
  sdk::HttpResponse listAudiences();
  // GET /v1/audiences/{name}/members?limit=&after=: a page of members, by profile id.
  sdk::HttpResponse listMembers(sdk::HttpRequest& request);
  // The profile the request's {id} names, or the answer to send instead (400, 404, 500).
  std::variant<Profile, sdk::HttpResponse> requested(sdk::HttpRequest& request);

  std::unique_ptr<ProfileStore> store_;
  queue::Log* log_ = nullptr;               // exactly one of the two
  delivery::WorkerSource* source_ = nullptr;
  ingest::Ingest& ingest_;
  const privacy::PrivacyStore* privacy_;
  sdk::Logger& logger_;
  const sdk::Clock& clock_;
  ProfileEngine engine_;
  std::unique_ptr<AnswerCache> answers_;  // null: off, or a store other nodes write too

  std::string admin_token_;
  std::vector<std::string> tokens_;

  std::mutex write_mutex_;  // one batch or one erasure at a time
  std::atomic<queue::Offset> applied_{0};

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable announced_cv_;
  bool stopping_ = false;
  bool appended_ = false;
  bool started_ = false;
  std::size_t in_flight_ = 0;  // announcements emitted, not yet durable
  std::chrono::steady_clock::time_point outbox_error_logged_{};  // the announcer's thread
  std::condition_variable watch_cv_;
  std::thread applier_;
  std::thread announcer_;
  std::thread watchdog_;  // lifts a starved applier (see start())
  std::atomic<pid_t> applier_tid_{0};
  std::atomic<bool> boosted_{false};

  // A review of everyone (setAudiences): the definitions' fingerprint, the last profile id
  // whose review was queued, whether it is done. Under mutex_.
  std::shared_ptr<const audiences::AudienceSet> audiences_;  // for the API
  std::string audience_state_file_;
  std::string audience_fingerprint_;
  std::string review_after_;
  bool reviewing_ = false;

  sdk::Counter& lost_;
  sdk::Counter& entered_;
  sdk::Counter& exited_;
  sdk::Counter& store_errors_;
  sdk::Counter& announced_;
  sdk::Gauge& lag_;
  sdk::Counter& boosts_;
  sdk::Counter& answer_hits_;
  sdk::Counter& answer_misses_;
  sdk::Gauge& answer_bytes_;
};

}  // namespace junction::core::profiles
