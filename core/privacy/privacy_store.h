#pragma once

// The core's privacy state (DESIGN.md "Consent", "Suppression and deletion"): regulations and
// their progress, suppressed people, deletion tombstones, and each person's latest consent.
//
// Stored in SQLite (`storage.path/privacy.db`, WAL, synchronous=FULL): regulations must survive
// restarts and are queried by id. Everything the hot paths read — the suppression check at
// ingest, the tombstone check and remembered consent in the delivery workers — is also kept in
// memory behind a shared_mutex, loaded at open and updated with each write, so a check is a hash
// lookup and never touches the disk. With no suppression (deletion) recorded at all, the check
// is one atomic load.
//
// People are matched by userId, anonymousId, or e-mail (traits.email, context.traits.email or
// properties.email, trimmed and lower-cased). There is no identity graph yet: a regulation by
// e-mail matches only events that carry that e-mail.
//
// Thread-safe. Lifetime: owned by the daemon; outlives ingest, the delivery workers and the
// regulation service, which hold references.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/json/object.hpp>

#include "core/privacy/consent.h"
#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

struct sqlite3;

namespace junction::core::privacy {

enum class SubjectKind { UserId, AnonymousId, Email };
const char* toString(SubjectKind kind) noexcept;  // "userId", "anonymousId", "email"
std::optional<SubjectKind> parseSubjectKind(std::string_view text);

// Whom a regulation is about. An e-mail is stored normalized (trimmed, lower-cased).
struct Subject {
  SubjectKind kind = SubjectKind::UserId;
  std::string value;
  std::string key() const;  // "u:<id>", "a:<id>", "e:<email>"
};

enum class RegulationType { Suppress, Unsuppress, Delete };
const char* toString(RegulationType type) noexcept;  // "suppress", "unsuppress", "delete"
std::optional<RegulationType> parseRegulationType(std::string_view text) noexcept;

// Regulation status values.
inline constexpr std::string_view kStatusDone = "done";
inline constexpr std::string_view kStatusPending = "pending";  // erasures still running
inline constexpr std::string_view kStatusFailed = "failed";    // some erasure failed for good

struct Regulation {
  std::string id;
  RegulationType type = RegulationType::Suppress;
  Subject subject;
  std::int64_t created_at_ms = 0;
  std::string status;
  boost::json::object detail;  // delete: {"destinations": {id: {"status", "attempts", ...}}}
};

// A regulation known only from the audit log, which records subjects as the SHA-256 (hex) of
// their value (an e-mail normalized first), never in clear.
struct RestoredRegulation {
  std::string id;
  RegulationType type = RegulationType::Suppress;
  SubjectKind kind = SubjectKind::UserId;
  std::string subject_sha256;
  std::int64_t created_at_ms = 0;
  std::string status;
  boost::json::object detail;
};

// What an operator runs when privacy.db is lost or damaged (see privacy_recovery.h).
inline constexpr std::string_view kRecoverPrivacyCommand =
    "junction recover privacy --config FILE";

// Trimmed, lower-cased.
std::string normalizeEmail(std::string_view email);
// The event's e-mail (traits.email, context.traits.email, properties.email), normalized.
std::optional<std::string> eventEmail(const boost::json::object& body);

class PrivacyStore final : public ConsentMemory {
 public:
  // Opens `file`, creating it when absent. An existing file is checked first (PRAGMA
  // quick_check): a damaged one is Internal naming the file, the damage and
  // kRecoverPrivacyCommand, never recreated.
  static sdk::Result<std::unique_ptr<PrivacyStore>> open(const std::string& file,
                                                         ConsentAliases aliases = {});
  ~PrivacyStore() override;
  PrivacyStore(const PrivacyStore&) = delete;
  PrivacyStore& operator=(const PrivacyStore&) = delete;

  // --- regulations --------------------------------------------------------------------------
  // Records a regulation and applies it, in one transaction: suppress adds the subject to the
  // suppressed set, unsuppress removes it, delete adds a tombstone at `now_ms` (events of the
  // person received until then are not delivered any more) and erases their remembered consent.
  // A delete starts with status pending when `detail` lists destinations to erase at, else done.
  sdk::Result<Regulation> record(RegulationType type, Subject subject, std::int64_t now_ms,
                                 boost::json::object detail = {});
  // Records and applies a regulation another node made (its id, type, subject, created_at,
  // status and detail as given), unless one with its id is known already. True when it was new.
  sdk::Result<bool> adopt(Regulation regulation);
  sdk::Result<std::optional<Regulation>> regulation(const std::string& id);
  // Regulations whose status is pending (erasures to resume after a restart).
  sdk::Result<std::vector<Regulation>> pending();
  // The `limit` most recent regulations, newest first (GET /v1/regulations, the dashboard).
  sdk::Result<std::vector<Regulation>> recent(std::size_t limit);
  sdk::Status updateRegulation(const std::string& id, std::string_view status,
                               const boost::json::object& detail);

  // Records and applies regulations rebuilt from the audit log, in order, in one transaction.
  // Their people are known by digest: the checks below also hash an event's ids while any such
  // suppression (deletion) exists, and an unsuppress in clear lifts a digest's suppression.
  // For `junction recover privacy`, on a new store nobody else uses yet.
  sdk::Status restore(const std::vector<RestoredRegulation>& regulations);

  // --- hot path -----------------------------------------------------------------------------
  bool hasSuppressions() const noexcept { return suppressed_count_.load() > 0; }
  bool isSuppressed(const sdk::Event& event) const;
  // Whether this person (an e-mail normalized) is suppressed: for what is not an event (a
  // profile read through the API, a profile-change event about to be made).
  bool isSuppressed(const Subject& subject) const;

  bool hasDeletions() const noexcept { return deletion_count_.load() > 0; }
  // A tombstone matches the event's person and the event was received at or before it.
  bool isDeleted(const sdk::Event& event) const;
  // Bumped by every delete: a worker rescans the events it holds when it changes.
  std::uint64_t deletionGeneration() const noexcept { return deletion_generation_.load(); }

  // --- consent ------------------------------------------------------------------------------
  // Remembers the consent stated by each of `events` that carries one, under its userId and
  // anonymousId; an event older (by timestamp) than what is remembered does not replace it.
  // Writes only when something changed.
  sdk::Status rememberConsent(const std::vector<sdk::Event>& events);
  // A person's remembered consent as it changed: the person's key ("u:<userId>",
  // "a:<anonymousId>"), the categories (consentToJson) and the stating event's timestamp.
  struct ConsentChange {
    std::string person;
    std::string categories;
    std::int64_t timestamp_ms = 0;
  };
  // Before the first rememberConsent(): told (on the caller's thread, after the write) of each
  // change rememberConsent() made — the daemon shares them with the other nodes.
  void setConsentListener(std::function<void(const std::vector<ConsentChange>&)> listener) {
    consent_listener_ = std::move(listener);
  }
  // Remembers consent another node saw, unless what is remembered is as new or newer, or the
  // person was deleted at or after it. True when it was taken.
  sdk::Result<bool> adoptConsent(const ConsentChange& change);
  std::optional<EventConsent> rememberedConsent(const sdk::EventHeader& header) const override;

  // From `consent.aliases`; fixed at open.
  const ConsentAliases& aliases() const noexcept { return aliases_; }

 private:
  sdk::Result<std::vector<Regulation>> selectRegulations(const char* tail, std::int64_t limit,
                                                         const char* what);
  explicit PrivacyStore(sqlite3* db, ConsentAliases aliases);
  sdk::Status exec(const char* sql);
  // record() and adopt(): writes `r` and applies it to the sets, in one transaction. With
  // `only_if_new`, a known id changes nothing and gives false.
  sdk::Result<bool> apply(const Regulation& r, bool only_if_new);
  sdk::Status load();
  // Upserts one remembered consent row unless the stored one is newer (db_mutex_ held).
  sdk::Status writeConsent(const ConsentChange& change);
  sdk::Status write(const std::vector<RestoredRegulation>& regulations);

  struct Remembered {
    EventConsent consent;
    std::int64_t timestamp_ms = 0;
  };

  sqlite3* db_;
  const ConsentAliases aliases_;
  std::mutex db_mutex_;  // the connection; taken before state_mutex_ when both are needed

  mutable std::shared_mutex state_mutex_;
  std::unordered_set<std::string> suppressed_;            // subject keys
  std::unordered_map<std::string, std::int64_t> deleted_;  // subject key -> deleted_at_ms
  std::unordered_map<std::string, Remembered> consent_;    // "u:"/"a:" key -> latest consent
  std::atomic<std::size_t> suppressed_count_{0};
  std::atomic<std::size_t> suppressed_emails_{0};
  std::atomic<std::size_t> deletion_count_{0};
  std::atomic<std::size_t> deleted_emails_{0};
  std::atomic<std::size_t> suppressed_hashed_{0};  // people known by digest ("u=<sha256>")
  std::atomic<std::size_t> deleted_hashed_{0};
  std::atomic<std::uint64_t> deletion_generation_{0};
  std::function<void(const std::vector<ConsentChange>&)> consent_listener_;
};

}  // namespace junction::core::privacy
