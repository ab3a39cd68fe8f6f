#include "core/privacy/privacy_store.h"

#include <sqlite3.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/sqlite/statement.h"
#include "junction/sdk/crypto.h"

namespace junction::core::privacy {

namespace json = boost::json;

namespace {

using sqlite::Statement;

sdk::Error dbError(sqlite3* db, std::string_view what) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        "privacy store: " + std::string(what) + ": " + sqlite3_errmsg(db));
}

std::string newRegulationId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "reg_%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

// A person known only by the SHA-256 of their id (a regulation rebuilt from the audit log):
// "u=<hex>", "a=<hex>", "e=<hex>", beside the plain "u:<id>" keys.
std::string hashedKey(char kind, std::string_view value) {
  return std::string(1, kind) + "=" + sdk::sha256Hex(value);
}
bool isHashedKey(std::string_view key) { return key.size() > 2 && key[1] == '='; }
char kindLetter(SubjectKind kind) {
  return kind == SubjectKind::UserId ? 'u' : kind == SubjectKind::AnonymousId ? 'a' : 'e';
}

}  // namespace

std::optional<SubjectKind> parseSubjectKind(std::string_view text) {
  if (text == "userId") {
    return SubjectKind::UserId;
  }
  if (text == "anonymousId") {
    return SubjectKind::AnonymousId;
  }
  if (text == "email") {
    return SubjectKind::Email;
  }
  return std::nullopt;
}

namespace {

// A transaction on a connection the caller has locked; rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Transaction() {
    if (ok_ && !committed_) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  bool ok() const { return ok_; }
  bool commit() {
    committed_ = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
    return committed_;
  }

 private:
  sqlite3* db_;
  bool ok_ = false;
  bool committed_ = false;
};

}  // namespace

const char* toString(SubjectKind kind) noexcept {
  switch (kind) {
    case SubjectKind::UserId:
      return "userId";
    case SubjectKind::AnonymousId:
      return "anonymousId";
    case SubjectKind::Email:
      return "email";
  }
  return "";
}

std::string Subject::key() const {
  const char* prefix = kind == SubjectKind::UserId ? "u:" : kind == SubjectKind::AnonymousId ? "a:" : "e:";
  return prefix + value;
}

const char* toString(RegulationType type) noexcept {
  switch (type) {
    case RegulationType::Suppress:
      return "suppress";
    case RegulationType::Unsuppress:
      return "unsuppress";
    case RegulationType::Delete:
      return "delete";
  }
  return "";
}

std::optional<RegulationType> parseRegulationType(std::string_view text) noexcept {
  if (text == "suppress") {
    return RegulationType::Suppress;
  }
  if (text == "unsuppress") {
    return RegulationType::Unsuppress;
  }
  if (text == "delete") {
    return RegulationType::Delete;
  }
  return std::nullopt;
}

std::string normalizeEmail(std::string_view email) {
  const auto first = email.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = email.find_last_not_of(" \t\r\n");
  return lowerAscii(email.substr(first, last - first + 1));
}

std::optional<std::string> eventEmail(const json::object& body) {
  auto at = [&](std::initializer_list<std::string_view> path) -> std::optional<std::string> {
    const json::object* o = &body;
    const json::value* v = nullptr;
    for (auto key : path) {
      if (o == nullptr) {
        return std::nullopt;
      }
      v = o->if_contains(key);
      if (v == nullptr) {
        return std::nullopt;
      }
      o = v->is_object() ? &v->as_object() : nullptr;
    }
    if (v == nullptr || !v->is_string()) {
      return std::nullopt;
    }
    std::string email = normalizeEmail(v->as_string());
    return email.empty() ? std::nullopt : std::optional<std::string>(std::move(email));
  };
  if (auto e = at({"traits", "email"})) {
    return e;
  }
  if (auto e = at({"context", "traits", "email"})) {
    return e;
  }
  return at({"properties", "email"});
}

PrivacyStore::PrivacyStore(sqlite3* db, ConsentAliases aliases)
    : db_(db), aliases_(std::move(aliases)) {}

PrivacyStore::~PrivacyStore() { sqlite3_close(db_); }

sdk::Status PrivacyStore::exec(const char* sql) { return sqlite::exec(db_, sql, "privacy store"); }

sdk::Result<std::unique_ptr<PrivacyStore>> PrivacyStore::open(const std::string& file,
                                                               ConsentAliases aliases) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(file, ec);
  // A damaged existing file: refused, naming it and the repair (never recreated silently).
  auto damaged = [&](const std::string& what) {
    return sdk::makeError(
        sdk::ErrorCode::Internal,
        "privacy store " + file + " is corrupt (" + what +
            "): suppressions, deletions and regulations cannot be trusted. Stop junctiond and run "
            "`" + std::string(kRecoverPrivacyCommand) + "`: it moves the file aside and rebuilds "
            "it from the audit log");
  };
  auto opened = sqlite::open(file);
  if (!opened) {
    if (existed) {
      return damaged(opened.error().message);
    }
    return std::move(opened).error();
  }
  sqlite3* db = *opened;
  std::unique_ptr<PrivacyStore> store(new PrivacyStore(db, std::move(aliases)));
  if (existed) {
    // Every start: a corrupted page would otherwise surface later as a failed regulation.
    Statement check(db, "PRAGMA quick_check");
    const int rc = check.ok() ? check.step() : SQLITE_ERROR;
    const std::string verdict = rc == SQLITE_ROW ? check.text(0) : sqlite3_errmsg(db);
    if (verdict != "ok") {
      return damaged(verdict);
    }
  }
  auto status = store->exec(
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS regulations ("
      "  id TEXT PRIMARY KEY,"
      "  type TEXT NOT NULL,"
      "  subject_kind TEXT NOT NULL,"
      "  subject_value TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL,"
      "  status TEXT NOT NULL,"
      "  detail TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS regulations_status ON regulations(status);"
      "CREATE TABLE IF NOT EXISTS suppressions ("
      "  person TEXT PRIMARY KEY, regulation_id TEXT NOT NULL, created_at INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS deletions ("
      "  person TEXT PRIMARY KEY, deleted_at INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS consent ("
      "  person TEXT PRIMARY KEY, categories TEXT NOT NULL, event_timestamp INTEGER NOT NULL);");
  if (!status.ok()) {
    return existed ? damaged(status.message()) : status.error();
  }
  if (auto loaded = store->load(); !loaded.ok()) {
    return existed ? damaged(loaded.message()) : loaded.error();
  }
  return store;
}

sdk::Status PrivacyStore::load() {
  std::lock_guard db_lock(db_mutex_);
  std::unique_lock lock(state_mutex_);
  {
    Statement s(db_, "SELECT person FROM suppressions");
    if (!s.ok()) {
      return dbError(db_, "load suppressions");
    }
    while (s.step() == SQLITE_ROW) {
      suppressed_.insert(s.text(0));
    }
  }
  {
    Statement s(db_, "SELECT person, deleted_at FROM deletions");
    if (!s.ok()) {
      return dbError(db_, "load deletions");
    }
    while (s.step() == SQLITE_ROW) {
      deleted_[s.text(0)] = s.integer(1);
    }
  }
  {
    Statement s(db_, "SELECT person, categories, event_timestamp FROM consent");
    if (!s.ok()) {
      return dbError(db_, "load consent");
    }
    while (s.step() == SQLITE_ROW) {
      if (auto c = consentFromJson(s.text(1))) {
        consent_[s.text(0)] = Remembered{std::move(*c), s.integer(2)};
      }
    }
  }
  std::size_t emails = 0;
  std::size_t hashed = 0;
  for (const auto& k : suppressed_) {
    emails += k[0] == 'e' ? 1 : 0;
    hashed += isHashedKey(k) ? 1 : 0;
  }
  suppressed_count_.store(suppressed_.size());
  suppressed_emails_.store(emails);
  suppressed_hashed_.store(hashed);
  emails = 0;
  hashed = 0;
  for (const auto& [k, at] : deleted_) {
    emails += k[0] == 'e' ? 1 : 0;
    hashed += isHashedKey(k) ? 1 : 0;
  }
  deletion_count_.store(deleted_.size());
  deleted_emails_.store(emails);
  deleted_hashed_.store(hashed);
  return {};
}

sdk::Result<Regulation> PrivacyStore::record(RegulationType type, Subject subject,
                                             std::int64_t now_ms, json::object detail) {
  if (subject.kind == SubjectKind::Email) {
    subject.value = normalizeEmail(subject.value);
  }
  if (subject.value.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the subject is empty");
  }
  Regulation r;
  r.id = newRegulationId();
  r.type = type;
  r.subject = std::move(subject);
  r.created_at_ms = now_ms;
  const json::value* destinations = detail.if_contains("destinations");
  const bool erasing = type == RegulationType::Delete && destinations != nullptr &&
                       destinations->is_object() && !destinations->as_object().empty();
  r.status = std::string(erasing ? kStatusPending : kStatusDone);
  r.detail = std::move(detail);
  auto applied = apply(r, /*only_if_new=*/false);
  if (!applied) {
    return std::move(applied).error();
  }
  return r;
}

sdk::Result<bool> PrivacyStore::adopt(Regulation r) {
  if (r.subject.kind == SubjectKind::Email) {
    r.subject.value = normalizeEmail(r.subject.value);
  }
  if (r.id.empty() || r.subject.value.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "a regulation without id or subject");
  }
  return apply(r, /*only_if_new=*/true);
}

sdk::Result<bool> PrivacyStore::apply(const Regulation& r, bool only_if_new) {
  const RegulationType type = r.type;
  const std::int64_t now_ms = r.created_at_ms;
  const std::string key = r.subject.key();
  const std::string hashed_key = hashedKey(kindLetter(r.subject.kind), r.subject.value);

  std::lock_guard db_lock(db_mutex_);
  Transaction tx(db_);
  if (!tx.ok()) {
    return dbError(db_, "begin");
  }
  {
    Statement s(db_, only_if_new
                         ? "INSERT OR IGNORE INTO regulations (id, type, subject_kind, "
                           "subject_value, created_at, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
                         : "INSERT INTO regulations (id, type, subject_kind, subject_value, "
                           "created_at, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, r.id);
    s.bind(2, toString(type));
    s.bind(3, toString(r.subject.kind));
    s.bind(4, r.subject.value);
    s.bind(5, r.created_at_ms);
    s.bind(6, r.status);
    s.bind(7, json::serialize(r.detail));
    if (!s.ok() || s.step() != SQLITE_DONE) {
      return dbError(db_, "insert regulation");
    }
    if (only_if_new && sqlite3_changes(db_) == 0) {
      return false;  // known already (the transaction rolls back: nothing was written)
    }
  }
  auto run = [&](const char* sql, auto&&... values) -> bool {
    Statement s(db_, sql);
    int i = 0;
    (s.bind(++i, values), ...);
    return s.ok() && s.step() == SQLITE_DONE;
  };
  bool ok = true;
  switch (type) {
    case RegulationType::Suppress:
      ok = run("INSERT OR REPLACE INTO suppressions (person, regulation_id, created_at) "
               "VALUES (?, ?, ?)",
               std::string_view(key), std::string_view(r.id), now_ms);
      break;
    case RegulationType::Unsuppress:  // also a suppression rebuilt from the audit log
      ok = run("DELETE FROM suppressions WHERE person IN (?, ?)", std::string_view(key),
               std::string_view(hashed_key));
      break;
    case RegulationType::Delete:
      ok = run("INSERT INTO deletions (person, deleted_at) VALUES (?, ?) "
               "ON CONFLICT(person) DO UPDATE SET deleted_at = max(deleted_at, excluded.deleted_at)",
               std::string_view(key), now_ms) &&
           run("DELETE FROM consent WHERE person = ?", std::string_view(key));
      break;
  }
  if (!ok) {
    return dbError(db_, "apply regulation");
  }
  if (!tx.commit()) {
    return dbError(db_, "commit");
  }
  std::unique_lock lock(state_mutex_);
  const bool email = r.subject.kind == SubjectKind::Email;
  switch (type) {
    case RegulationType::Suppress:
      if (suppressed_.insert(key).second && email) {
        suppressed_emails_.fetch_add(1);
      }
      suppressed_count_.store(suppressed_.size());
      break;
    case RegulationType::Unsuppress:
      if (suppressed_.erase(key) > 0 && email) {
        suppressed_emails_.fetch_sub(1);
      }
      if (suppressed_.erase(hashed_key) > 0) {
        suppressed_hashed_.fetch_sub(1);
        if (email) {
          suppressed_emails_.fetch_sub(1);
        }
      }
      suppressed_count_.store(suppressed_.size());
      break;
    case RegulationType::Delete: {
      auto [it, inserted] = deleted_.try_emplace(key, now_ms);
      it->second = std::max(it->second, now_ms);
      if (inserted && email) {
        deleted_emails_.fetch_add(1);
      }
      consent_.erase(key);
      deletion_count_.store(deleted_.size());
      deletion_generation_.fetch_add(1);
      break;
    }
  }
  return true;
}

namespace {
sdk::Result<Regulation> readRegulation(Statement& s) {
  Regulation r;
  r.id = s.text(0);
  auto type = parseRegulationType(s.text(1));
  auto kind = parseSubjectKind(s.text(2));
  if (!type || !kind) {
    return sdk::makeError(sdk::ErrorCode::Internal, "regulation " + r.id + " is unreadable");
  }
  r.type = *type;
  r.subject = Subject{*kind, s.text(3)};
  r.created_at_ms = s.integer(4);
  r.status = s.text(5);
  boost::system::error_code ec;
  json::value detail = json::parse(s.text(6), ec);
  if (!ec && detail.is_object()) {
    r.detail = std::move(detail.as_object());
  }
  return r;
}
constexpr const char* kRegulationColumns =
    "id, type, subject_kind, subject_value, created_at, status, detail";
}  // namespace

sdk::Result<std::optional<Regulation>> PrivacyStore::regulation(const std::string& id) {
  std::lock_guard db_lock(db_mutex_);
  Statement s(db_, (std::string("SELECT ") + kRegulationColumns + " FROM regulations WHERE id = ?").c_str());
  if (!s.ok()) {
    return dbError(db_, "select regulation");
  }
  s.bind(1, id);
  int rc = s.step();
  if (rc == SQLITE_DONE) {
    return std::optional<Regulation>();
  }
  if (rc != SQLITE_ROW) {
    return dbError(db_, "select regulation");
  }
  auto r = readRegulation(s);
  if (!r) {
    return r.error();
  }
  return std::optional<Regulation>(std::move(r).value());
}

sdk::Result<std::vector<Regulation>> PrivacyStore::pending() {
  return selectRegulations("WHERE status = 'pending' ORDER BY created_at", -1, "pending");
}

sdk::Result<std::vector<Regulation>> PrivacyStore::recent(std::size_t limit) {
  return selectRegulations("ORDER BY created_at DESC, rowid DESC LIMIT ?",
                           static_cast<std::int64_t>(limit), "recent");
}

// SELECT of whole regulations with `tail` (WHERE / ORDER BY / LIMIT ?); `limit` >= 0 is bound
// to the `?`. `what` names the query in errors.
sdk::Result<std::vector<Regulation>> PrivacyStore::selectRegulations(const char* tail,
                                                                      std::int64_t limit,
                                                                      const char* what) {
  std::lock_guard db_lock(db_mutex_);
  Statement s(db_, (std::string("SELECT ") + kRegulationColumns + " FROM regulations " + tail).c_str());
  if (limit >= 0) {
    s.bind(1, limit);
  }
  const std::string context = std::string("select ") + what + " regulations";
  if (!s.ok()) {
    return dbError(db_, context.c_str());
  }
  std::vector<Regulation> out;
  int rc = 0;
  while ((rc = s.step()) == SQLITE_ROW) {
    auto r = readRegulation(s);
    if (!r) {
      return r.error();
    }
    out.push_back(std::move(r).value());
  }
  if (rc != SQLITE_DONE) {
    return dbError(db_, context.c_str());
  }
  return out;
}

sdk::Status PrivacyStore::updateRegulation(const std::string& id, std::string_view status,
                                           const json::object& detail) {
  std::lock_guard db_lock(db_mutex_);
  Statement s(db_, "UPDATE regulations SET status = ?, detail = ? WHERE id = ?");
  s.bind(1, status);
  s.bind(2, json::serialize(detail));
  s.bind(3, id);
  if (!s.ok() || s.step() != SQLITE_DONE) {
    return dbError(db_, "update regulation");
  }
  return {};
}

bool PrivacyStore::isSuppressed(const sdk::Event& event) const {
  if (!hasSuppressions()) {
    return false;
  }
  const auto& h = event.header();
  std::optional<std::string> email;
  if (suppressed_emails_.load() > 0) {
    email = eventEmail(event.body());  // parsed outside the lock
  }
  // People known only by digest (rebuilt from the audit log): hashed outside the lock, and
  // only while there are any.
  std::string user_hash;
  std::string anonymous_hash;
  std::string email_hash;
  if (suppressed_hashed_.load() > 0) {
    user_hash = h.user_id.empty() ? "" : hashedKey('u', h.user_id);
    anonymous_hash = h.anonymous_id.empty() ? "" : hashedKey('a', h.anonymous_id);
    email_hash = email ? hashedKey('e', *email) : "";
  }
  std::shared_lock lock(state_mutex_);
  return (!h.user_id.empty() && suppressed_.contains("u:" + h.user_id)) ||
         (!h.anonymous_id.empty() && suppressed_.contains("a:" + h.anonymous_id)) ||
         (email && suppressed_.contains("e:" + *email)) ||
         (!user_hash.empty() && suppressed_.contains(user_hash)) ||
         (!anonymous_hash.empty() && suppressed_.contains(anonymous_hash)) ||
         (!email_hash.empty() && suppressed_.contains(email_hash));
}

bool PrivacyStore::isSuppressed(const Subject& subject) const {
  if (!hasSuppressions() || subject.value.empty()) {
    return false;
  }
  const char kind = subject.kind == SubjectKind::UserId        ? 'u'
                    : subject.kind == SubjectKind::AnonymousId ? 'a'
                                                               : 'e';
  const std::string hashed =
      suppressed_hashed_.load() > 0 ? hashedKey(kind, subject.value) : std::string();
  std::shared_lock lock(state_mutex_);
  return suppressed_.contains(subject.key()) || (!hashed.empty() && suppressed_.contains(hashed));
}

bool PrivacyStore::isDeleted(const sdk::Event& event) const {
  if (!hasDeletions()) {
    return false;
  }
  const auto& h = event.header();
  std::optional<std::string> email;
  if (deleted_emails_.load() > 0) {
    email = eventEmail(event.body());
  }
  std::string user_hash;
  std::string anonymous_hash;
  std::string email_hash;
  if (deleted_hashed_.load() > 0) {
    user_hash = h.user_id.empty() ? "" : hashedKey('u', h.user_id);
    anonymous_hash = h.anonymous_id.empty() ? "" : hashedKey('a', h.anonymous_id);
    email_hash = email ? hashedKey('e', *email) : "";
  }
  std::shared_lock lock(state_mutex_);
  auto covered = [&](const std::string& key) {
    auto it = deleted_.find(key);
    return it != deleted_.end() && h.received_at_ms <= it->second;
  };
  return (!h.user_id.empty() && covered("u:" + h.user_id)) ||
         (!h.anonymous_id.empty() && covered("a:" + h.anonymous_id)) ||
         (email && covered("e:" + *email)) || (!user_hash.empty() && covered(user_hash)) ||
         (!anonymous_hash.empty() && covered(anonymous_hash)) ||
         (!email_hash.empty() && covered(email_hash));
}

sdk::Status PrivacyStore::restore(const std::vector<RestoredRegulation>& regulations) {
  if (auto s = write(regulations); !s.ok()) {
    return s;
  }
  {
    std::unique_lock lock(state_mutex_);
    suppressed_.clear();
    deleted_.clear();
    consent_.clear();
  }
  return load();
}

sdk::Status PrivacyStore::write(const std::vector<RestoredRegulation>& regulations) {
  std::lock_guard db_lock(db_mutex_);
  Transaction tx(db_);
  if (!tx.ok()) {
    return dbError(db_, "begin");
  }
  auto run = [&](const char* sql, auto&&... values) -> bool {
    Statement s(db_, sql);
    int i = 0;
    (s.bind(++i, values), ...);
    return s.ok() && s.step() == SQLITE_DONE;
  };
  for (const auto& r : regulations) {
    const std::string key = std::string(1, kindLetter(r.kind)) + "=" + r.subject_sha256;
    const std::string detail = json::serialize(r.detail);
    bool ok = run("INSERT OR REPLACE INTO regulations (id, type, subject_kind, subject_value, "
                  "created_at, status, detail) VALUES (?, ?, ?, '', ?, ?, ?)",
                  std::string_view(r.id), std::string_view(toString(r.type)),
                  std::string_view(toString(r.kind)), r.created_at_ms, std::string_view(r.status),
                  std::string_view(detail));
    switch (r.type) {
      case RegulationType::Suppress:
        ok = ok && run("INSERT OR REPLACE INTO suppressions (person, regulation_id, created_at) "
                       "VALUES (?, ?, ?)",
                       std::string_view(key), std::string_view(r.id), r.created_at_ms);
        break;
      case RegulationType::Unsuppress:
        ok = ok && run("DELETE FROM suppressions WHERE person = ?", std::string_view(key));
        break;
      case RegulationType::Delete:
        ok = ok && run("INSERT INTO deletions (person, deleted_at) VALUES (?, ?) ON "
                       "CONFLICT(person) DO UPDATE SET deleted_at = max(deleted_at, "
                       "excluded.deleted_at)",
                       std::string_view(key), r.created_at_ms);
        break;
    }
    if (!ok) {
      return dbError(db_, "restore regulation " + r.id);
    }
  }
  if (!tx.commit()) {
    return dbError(db_, "commit");
  }
  return {};
}

sdk::Status PrivacyStore::rememberConsent(const std::vector<sdk::Event>& events) {
  using Change = ConsentChange;
  // Parsed outside the lock; most events state no consent, and then nothing is locked.
  std::vector<std::pair<const sdk::Event*, EventConsent>> stated;
  for (const auto& event : events) {
    EventConsent consent = readConsent(event);  // most state none: not parsed
    if (consent.stated) {
      stated.emplace_back(&event, std::move(consent));
    }
  }
  if (stated.empty()) {
    return {};
  }
  std::vector<Change> changes;
  {
    std::unique_lock lock(state_mutex_);
    for (const auto& [event, consent] : stated) {
      const auto& h = event->header();
      for (std::string key : {h.user_id.empty() ? std::string() : "u:" + h.user_id,
                              h.anonymous_id.empty() ? std::string() : "a:" + h.anonymous_id}) {
        if (key.empty()) {
          continue;
        }
        auto [it, inserted] = consent_.try_emplace(key);
        Remembered& r = it->second;
        if (!inserted && h.timestamp_ms < r.timestamp_ms) {
          continue;  // an older event: what we remember is newer
        }
        const bool changed = inserted || r.consent != consent;
        r.consent = consent;
        r.timestamp_ms = h.timestamp_ms;
        if (changed) {
          changes.push_back({std::move(key), consentToJson(consent), h.timestamp_ms});
        }
      }
    }
  }
  if (changes.empty()) {
    return {};
  }
  std::lock_guard db_lock(db_mutex_);
  Transaction tx(db_);
  if (!tx.ok()) {
    return dbError(db_, "begin");
  }
  for (const auto& c : changes) {
    if (auto s = writeConsent(c); !s.ok()) {
      return s;
    }
  }
  if (!tx.commit()) {
    return dbError(db_, "commit");
  }
  if (consent_listener_) {
    consent_listener_(changes);
  }
  return {};
}

sdk::Status PrivacyStore::writeConsent(const ConsentChange& c) {
  Statement s(db_,
              "INSERT INTO consent (person, categories, event_timestamp) VALUES (?, ?, ?) "
              "ON CONFLICT(person) DO UPDATE SET categories = excluded.categories, "
              "event_timestamp = excluded.event_timestamp "
              "WHERE excluded.event_timestamp >= consent.event_timestamp");
  s.bind(1, c.person);
  s.bind(2, c.categories);
  s.bind(3, c.timestamp_ms);
  if (!s.ok() || s.step() != SQLITE_DONE) {
    return dbError(db_, "remember consent");
  }
  return {};
}

sdk::Result<bool> PrivacyStore::adoptConsent(const ConsentChange& change) {
  auto consent = consentFromJson(change.categories);
  if (!consent || change.person.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "unreadable consent");
  }
  std::lock_guard db_lock(db_mutex_);
  {
    std::unique_lock lock(state_mutex_);
    if (auto d = deleted_.find(change.person);
        d != deleted_.end() && d->second >= change.timestamp_ms) {
      return false;  // stated before the person's deletion
    }
    auto [it, inserted] = consent_.try_emplace(change.person);
    Remembered& r = it->second;
    if (!inserted && (change.timestamp_ms < r.timestamp_ms ||
                      (change.timestamp_ms == r.timestamp_ms && r.consent == *consent))) {
      return false;
    }
    r.consent = std::move(*consent);
    r.timestamp_ms = change.timestamp_ms;
  }
  if (auto s = writeConsent(change); !s.ok()) {
    return s.error();  // remembered in memory; after a restart it is read from the bucket again
  }
  return true;
}

std::optional<EventConsent> PrivacyStore::rememberedConsent(const sdk::EventHeader& header) const {
  std::shared_lock lock(state_mutex_);
  if (consent_.empty()) {
    return std::nullopt;
  }
  const Remembered* best = nullptr;
  for (const std::string& key : {header.user_id.empty() ? std::string() : "u:" + header.user_id,
                                 header.anonymous_id.empty() ? std::string()
                                                             : "a:" + header.anonymous_id}) {
    if (key.empty()) {
      continue;
    }
    if (auto it = consent_.find(key); it != consent_.end()) {
      if (best == nullptr || it->second.timestamp_ms > best->timestamp_ms) {
        best = &it->second;
      }
    }
  }
  if (best == nullptr) {
    return std::nullopt;
  }
  return best->consent;
}

}  // namespace junction::core::privacy
