#include "core/privacy/privacy_recovery.h"

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <vector>

#include "core/privacy/audit_log.h"
#include "core/privacy/privacy_store.h"
#include "junction/sdk/event.h"

namespace junction::core::privacy {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::uintmax_t sizeOf(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  return ec ? 0 : size;
}

bool present(const fs::path& file) {
  std::error_code ec;
  return fs::exists(file, ec);
}

// Missing, or empty (with no write-ahead log holding its pages): "missing", "empty", or "".
std::string lost(const fs::path& db) {
  if (!present(db)) {
    return "missing";
  }
  if (sizeOf(db) == 0 && sizeOf(db.string() + "-wal") == 0) {
    return "empty";
  }
  return "";
}

std::string readAll(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t countRegulations(const fs::path& audit) {
  const std::string text = readAll(audit);
  std::size_t n = 0;
  for (std::size_t at = text.find("\"kind\":\"regulation\""); at != std::string::npos;
       at = text.find("\"kind\":\"regulation\"", at + 1)) {
    ++n;
  }
  return n;
}

// What under storage.path shows that the daemon ran here before.
std::vector<std::string> stateFound(const fs::path& dir) {
  std::vector<std::string> found;
  const fs::path audit = dir / "audit.log";
  if (sizeOf(audit) > 0) {
    found.push_back(audit.string() + " (" + std::to_string(countRegulations(audit)) +
                    " regulations recorded)");
  }
  if (present(dir / "cursors" / "cursors.dat")) {
    found.push_back((dir / "cursors" / "cursors.dat").string());
  }
  std::error_code ec;
  if (fs::directory_iterator it(dir / "queue", ec); !ec && it != fs::directory_iterator()) {
    found.push_back((dir / "queue").string() + " (queue segments)");
  }
  if (present(dir / "dead_letters.db")) {
    found.push_back((dir / "dead_letters.db").string());
  }
  return found;
}

// The regulations of the audit log's text (verified before), applied in order; erasure results
// go into their regulation's detail as the regulation service writes them.
std::vector<RestoredRegulation> regulationsOf(const std::string& text) {
  std::vector<RestoredRegulation> out;
  std::map<std::string, std::size_t> by_id;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto split = splitAuditLine(line);
    if (!split) {
      continue;
    }
    boost::system::error_code ec;
    const json::value entry = json::parse(split->canonical, ec);
    if (ec || !entry.is_object()) {
      continue;
    }
    const json::object& e = entry.as_object();
    const json::value* kind = e.if_contains("kind");
    const json::value* ts = e.if_contains("ts");
    const json::value* dv = e.if_contains("detail");
    if (kind == nullptr || !kind->is_string() || dv == nullptr || !dv->is_object()) {
      continue;
    }
    const json::object& d = dv->as_object();
    auto text_of = [&](const char* key) -> std::string {
      const json::value* v = d.if_contains(key);
      return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
    };
    if (kind->as_string() == "regulation") {
      auto type = parseRegulationType(text_of("type"));
      auto subject_kind = parseSubjectKind(text_of("subject_kind"));
      const std::string digest = text_of("subject_sha256");
      const std::string id = text_of("id");
      if (!type || !subject_kind || digest.size() != 64 || id.empty()) {
        continue;
      }
      RestoredRegulation r;
      r.id = id;
      r.type = *type;
      r.kind = *subject_kind;
      r.subject_sha256 = digest;
      r.created_at_ms = ts != nullptr && ts->is_string()
                            ? sdk::parseIsoTimestamp(ts->as_string()).value_or(0)
                            : 0;
      r.status = std::string(kStatusDone);
      r.detail = json::object{
          {"recovered", "rebuilt from the audit log: the subject is known only by its SHA-256"},
          {"subject_sha256", digest}};
      by_id[r.id] = out.size();
      out.push_back(std::move(r));
    } else if (kind->as_string() == "erasure") {
      auto it = by_id.find(text_of("regulation"));
      if (it == by_id.end()) {
        continue;
      }
      RestoredRegulation& r = out[it->second];
      json::value& destinations = r.detail["destinations"];
      if (!destinations.is_object()) {
        destinations = json::object{};
      }
      json::object progress{{"status", text_of("status")}};
      if (const json::value* a = d.if_contains("attempts")) {
        progress["attempts"] = *a;
      }
      destinations.as_object()[text_of("destination")] = std::move(progress);
      if (text_of("status") == kStatusFailed) {
        r.status = std::string(kStatusFailed);
      }
    }
  }
  return out;
}

std::string recoverCommand() { return "`" + std::string(kRecoverPrivacyCommand) + "`"; }

}  // namespace

sdk::Status checkPrivacyStoreFile(const fs::path& storage_dir) {
  const fs::path db = storage_dir / "privacy.db";
  const std::string damage = lost(db);
  if (damage.empty()) {
    return {};
  }
  const std::vector<std::string> state = stateFound(storage_dir);
  if (state.empty()) {
    return {};  // a first start: created
  }
  std::string list;
  for (const auto& s : state) {
    list += (list.empty() ? "" : ", ") + s;
  }
  return sdk::makeError(
      sdk::ErrorCode::Internal,
      "privacy store " + db.string() + " is " + damage +
          ", but storage.path already holds state (" + list + "): it was lost, this is not a first start, and starting would deliver "
          "suppressed and deleted people's events again. Stop here; " + recoverCommand() +
          " rebuilds it from the audit log");
}

sdk::Result<std::string> recoverPrivacyStore(const fs::path& storage_dir, const sdk::Clock& clock,
                                             bool accept_loss) {
  const fs::path db = storage_dir / "privacy.db";
  const fs::path audit_file = storage_dir / "audit.log";
  std::string damage = lost(db);
  if (damage.empty()) {
    auto intact = PrivacyStore::open(db.string());
    if (intact) {
      return sdk::makeError(sdk::ErrorCode::NotFound,
                            db.string() + " is intact: there is nothing to recover");
    }
    damage = "corrupt";
  }

  // The source of truth must be sound before anything is moved.
  std::vector<RestoredRegulation> regulations;
  std::uint64_t entries = 0;
  if (sizeOf(audit_file) == 0) {
    if (!accept_loss) {
      return sdk::makeError(
          sdk::ErrorCode::NotFound,
          "privacy store " + db.string() + " is " + damage + " and there is no audit log (" +
              audit_file.string() + ") to rebuild its regulations from. Restore privacy.db from "
              "a backup; or, to start with no suppression or deletion at all, run again with "
              "--accept-loss (the loss is written to a new audit log)");
    }
  } else {
    const AuditVerification verified = verifyAuditLog(audit_file.string());
    if (!verified.ok) {
      return sdk::makeError(
          sdk::ErrorCode::Internal,
          "the audit log " + audit_file.string() + " does not verify (line " +
              std::to_string(verified.bad_line) + ": " + verified.problem +
              "): its regulations cannot be trusted, and " + db.string() +
              " was left as it is. Restore audit.log or privacy.db from a backup");
    }
    entries = verified.entries;
    regulations = regulationsOf(readAll(audit_file));
  }

  const std::string moved_to = db.string() + ".damaged-" + std::to_string(clock.nowMs());
  bool moved = false;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const fs::path from = db.string() + suffix;
    if (!present(from)) {
      continue;
    }
    std::error_code ec;
    fs::rename(from, moved_to + suffix, ec);
    if (ec) {
      return sdk::makeError(sdk::ErrorCode::Unavailable,
                            "cannot move " + from.string() + " aside: " + ec.message());
    }
    moved = true;
  }
  auto store = PrivacyStore::open(db.string());
  if (!store) {
    return store.error();
  }
  if (auto s = (*store)->restore(regulations); !s.ok()) {
    return s.error();
  }
  std::size_t suppressions = 0;
  std::size_t deletions = 0;
  std::size_t failed = 0;
  {
    std::map<std::string, bool> suppressed;  // subject -> suppressed after every regulation
    std::map<std::string, bool> deleted;
    for (const auto& r : regulations) {
      const std::string subject = std::string(toString(r.kind)) + ":" + r.subject_sha256;
      if (r.type == RegulationType::Delete) {
        deleted[subject] = true;
      } else {
        suppressed[subject] = r.type == RegulationType::Suppress;
      }
      failed += r.status == kStatusFailed ? 1 : 0;
    }
    for (const auto& [subject, on] : suppressed) {
      suppressions += on ? 1 : 0;
    }
    deletions = deleted.size();
  }

  auto audit = AuditLog::open(audit_file.string(), clock);
  if (!audit) {
    return sdk::makeError(audit.error().code, "privacy.db rebuilt, but the audit log cannot be "
                                              "opened: " + audit.error().message);
  }
  json::object detail{{"file", db.string()},
                      {"damage", damage},
                      {"regulations", regulations.size()},
                      {"suppressed", suppressions},
                      {"deleted", deletions},
                      {"audit_entries_read", entries}};
  if (moved) {
    detail["moved_to"] = moved_to;
  }
  if (regulations.empty() && accept_loss) {
    detail["regulations_lost"] = true;
  }
  if (auto s = (*audit)->append("privacy_recovered", std::move(detail)); !s.ok()) {
    return sdk::makeError(s.error().code,
                          "privacy.db rebuilt, but the audit entry failed: " + s.message());
  }

  std::string report = "privacy store " + db.string() + " was " + damage + ".\n";
  if (moved) {
    report += "moved the damaged file to " + moved_to + "\n";
  }
  report += "rebuilt from " + std::to_string(entries) + " verified audit log entries: " +
            std::to_string(regulations.size()) + " regulations, " +
            std::to_string(suppressions) + " people suppressed, " + std::to_string(deletions) +
            " deleted (known by the SHA-256 of their id or e-mail, as the audit log records "
            "them: their events are still dropped).\n";
  if (failed > 0) {
    report += std::to_string(failed) + " deletions had an erasure that failed at a destination.\n";
  }
  report += "not in the audit log, so not rebuilt: the consent people stated in earlier events "
            "(learned again from their next events; meanwhile destinations follow "
            "consent_default), and erasures still running at destinations when the file was "
            "lost (send those deletes again).\n"
            "written to the audit log as privacy_recovered.\n";
  return report;
}

}  // namespace junction::core::privacy
