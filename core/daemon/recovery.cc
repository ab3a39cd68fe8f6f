#include "core/daemon/recovery.h"

#include <boost/json.hpp>
#include <filesystem>
#include <system_error>

#include "core/daemon/daemon.h"
#include "core/delivery/dead_letter_store.h"
#include "core/privacy/audit_log.h"
#include "core/profiles/rocksdb_profile_store.h"
#include "core/profiles/sqlite_profile_store.h"
#include "core/queue/cursor_store.h"
#include "core/queue/log.h"
#include "core/runtime/dir_lock.h"
#include "core/runtime/runtime.h"

namespace junction::core::daemon {

namespace fs = std::filesystem;
namespace json = boost::json;

sdk::Result<std::string> recoverCursors(const config::DaemonConfig& config) {
  const fs::path storage(config.storage.path);
  auto lock = runtime::DirectoryLock::acquire(storage, "storage.path");
  if (!lock) {
    return sdk::makeError(lock.error().code,
                          lock.error().message + " (stop junctiond before recovering its state)");
  }
  const fs::path file = storage / "cursors" / "cursors.dat";
  queue::CursorStoreOptions options;
  options.path = storage.string();
  options.flush_interval = std::chrono::milliseconds(0);

  std::string moved_to;
  std::string why = "missing";
  if (fs::exists(file)) {
    auto intact = queue::CursorStore::open(options);
    if (intact && intact->get()->fileExisted()) {
      return sdk::makeError(sdk::ErrorCode::NotFound,
                            file.string() + " is intact: there is nothing to recover");
    }
    why = intact ? "unreadable" : intact.error().message;
    const runtime::SystemClock clock;
    moved_to = file.string() + ".damaged-" + std::to_string(clock.nowMs());
    std::error_code ec;
    fs::rename(file, moved_to, ec);
    if (ec) {
      return sdk::makeError(sdk::ErrorCode::Unavailable,
                            "cannot move " + file.string() + " aside: " + ec.message());
    }
  }

  auto log = queue::Log::open(queueOptions(config), nullptr);
  if (!log) {
    return sdk::makeError(log.error().code, "cannot open the queue: " + log.error().message);
  }
  const queue::Offset begin = (*log)->beginOffset();
  const queue::Offset end = (*log)->durableEnd();

  auto store = queue::CursorStore::open(options);
  if (!store) {
    return store.error();
  }
  json::array destinations;
  for (const auto& d : config.destinations) {
    if (!d.enabled) {
      continue;
    }
    if (auto s = (*store)->commit(d.id, begin); !s.ok()) {
      return s.error();
    }
    destinations.emplace_back(d.id);
  }
  if (auto s = (*store)->createFile(); !s.ok()) {
    return s.error();
  }
  if (auto s = (*store)->flush(); !s.ok()) {
    return s.error();
  }

  const runtime::SystemClock clock;
  auto audit = privacy::AuditLog::open((storage / "audit.log").string(), clock);
  if (!audit) {
    return sdk::makeError(audit.error().code,
                          "cursors recovered, but the audit log cannot be opened: " +
                              audit.error().message);
  }
  json::object detail{{"file", file.string()},
                      {"damage", why},
                      {"destinations", destinations},
                      {"from_offset", begin},
                      {"queue_end", end}};
  if (!moved_to.empty()) {
    detail["moved_to"] = moved_to;
  }
  if (auto s = (*audit)->append("cursors_recovered", std::move(detail)); !s.ok()) {
    return sdk::makeError(s.error().code,
                          "cursors recovered, but the audit entry failed: " + s.message());
  }

  std::string report = "cursor file " + file.string() + " was " + why + ".\n";
  if (!moved_to.empty()) {
    report += "moved the damaged file to " + moved_to + "\n";
  }
  report += "every destination (" + std::to_string(destinations.size()) +
            ") restarts at offset " + std::to_string(begin) + ", the oldest event the queue holds (" +
            std::to_string(end - begin) +
            " bytes up to offset " + std::to_string(end) +
            "): nothing retained is skipped; events already delivered are delivered again "
            "(destinations deduplicate on messageId).\n"
            "written to the audit log as cursors_recovered.\n";
  return report;
}

sdk::Result<std::string> recoverDeadLetters(const config::DaemonConfig& config) {
  const fs::path storage(config.storage.path);
  auto lock = runtime::DirectoryLock::acquire(storage, "storage.path");
  if (!lock) {
    return sdk::makeError(lock.error().code,
                          lock.error().message + " (stop junctiond before recovering its state)");
  }
  const fs::path file = storage / "dead_letters.db";
  std::error_code ec;
  std::string damage = "missing";
  if (fs::exists(file, ec)) {
    auto intact = delivery::DeadLetterStore::open(file.string(), /*must_exist=*/true);
    if (intact) {
      return sdk::makeError(sdk::ErrorCode::NotFound,
                            file.string() + " is intact: there is nothing to recover");
    }
    const std::string& m = intact.error().message;
    const auto is = m.find(" is ");
    const auto colon = m.find(": the events");
    damage = is != std::string::npos && colon != std::string::npos && colon > is
                 ? m.substr(is + 4, colon - is - 4)
                 : "damaged";
  }
  const runtime::SystemClock clock;
  std::string moved_to;
  if (fs::exists(file, ec)) {
    moved_to = file.string() + ".damaged-" + std::to_string(clock.nowMs());
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const fs::path from = file.string() + suffix;
      if (fs::exists(from, ec)) {
        fs::rename(from, moved_to + suffix, ec);
        if (ec) {
          return sdk::makeError(sdk::ErrorCode::Unavailable,
                                "cannot move " + from.string() + " aside: " + ec.message());
        }
      }
    }
  }
  auto store = delivery::DeadLetterStore::open(file.string());
  if (!store) {
    return store.error();
  }
  delivery::DeadLetterStore::Salvage salvage;
  if (!moved_to.empty() && fs::file_size(moved_to, ec) > 0) {
    auto copied = (*store)->salvageFrom(moved_to);
    if (!copied) {
      // Nothing could be read (not a database at all): every row it held is lost.
      salvage.unreadable = 0;
      damage += "; nothing could be read from it (" + copied.error().message + ")";
    } else {
      salvage = *copied;
    }
  }
  auto audit = privacy::AuditLog::open((storage / "audit.log").string(), clock);
  if (!audit) {
    return sdk::makeError(audit.error().code,
                          "dead letters recovered, but the audit log cannot be opened: " +
                              audit.error().message);
  }
  json::object detail{{"file", file.string()},
                      {"damage", damage},
                      {"copied", salvage.copied},
                      {"unreadable", salvage.unreadable},
                      {"highest_id", salvage.max_id}};
  if (!moved_to.empty()) {
    detail["moved_to"] = moved_to;
  }
  if (auto s = (*audit)->append("dead_letters_recovered", std::move(detail)); !s.ok()) {
    return sdk::makeError(s.error().code,
                          "dead letters recovered, but the audit entry failed: " + s.message());
  }
  std::string report = "dead-letter store " + file.string() + " was " + damage + ".\n";
  if (!moved_to.empty()) {
    report += "moved it to " + moved_to + "\n";
  }
  report += "copied " + std::to_string(salvage.copied) + " dead letters into a new store; " +
            std::to_string(salvage.unreadable) + " could not be read" +
            (salvage.max_id > 0 ? " (ids up to " + std::to_string(salvage.max_id) + ")" : "") +
            (moved_to.empty() ? " (the file was gone: how many it held is not known)" : "") +
            ".\nwritten to the audit log as dead_letters_recovered.\n";
  return report;
}

namespace {

// `junction recover profiles` for either embedded store: `Store` is SqliteProfileStore (one
// file, with -wal and -shm) or RocksDbProfileStore (a directory).
template <typename Store>
sdk::Result<std::string> recoverProfileStore(const fs::path& storage, const std::string& target,
                                             std::initializer_list<const char*> suffixes) {
  std::error_code ec;
  std::string damage = "missing";
  if (auto intact = Store::open(storage.string())) {
    return sdk::makeError(sdk::ErrorCode::NotFound,
                          target + " is intact: there is nothing to recover");
  } else if (fs::exists(target, ec) &&
             (fs::is_directory(target, ec) ? !fs::is_empty(target, ec)
                                           : fs::file_size(target, ec) > 0)) {
    const std::string& m = intact.error().message;
    const auto open_paren = m.find(" (");
    const auto close_paren = m.rfind(").");
    damage = m.find("is damaged") != std::string::npos && open_paren != std::string::npos &&
                     close_paren != std::string::npos && close_paren > open_paren
                 ? "damaged (" + m.substr(open_paren + 2, close_paren - open_paren - 2) + ")"
                 : "damaged";
  }
  const runtime::SystemClock clock;
  std::string moved_to;
  if (fs::exists(target, ec)) {
    moved_to = target + ".damaged-" + std::to_string(clock.nowMs());
    for (const char* suffix : suffixes) {
      const fs::path from = target + suffix;
      if (fs::exists(from, ec)) {
        fs::rename(from, moved_to + suffix, ec);
        if (ec) {
          return sdk::makeError(sdk::ErrorCode::Unavailable,
                                "cannot move " + from.string() + " aside: " + ec.message());
        }
      }
    }
  }
  fs::remove(Store::markerIn(storage.string()), ec);
  auto store = Store::open(storage.string());
  if (!store) {
    return store.error();
  }
  typename Store::Salvage salvage;
  salvage.complete = moved_to.empty();
  std::string unreadable;
  if (!moved_to.empty()) {
    auto copied = (*store)->salvageFrom(moved_to);
    if (!copied) {
      salvage.complete = false;
      unreadable = copied.error().message;
    } else {
      salvage = *copied;
    }
  }
  auto audit = privacy::AuditLog::open((storage / "audit.log").string(), clock);
  if (!audit) {
    return sdk::makeError(audit.error().code,
                          "profiles recovered, but the audit log cannot be opened: " +
                              audit.error().message);
  }
  json::object detail{{"store", target},
                      {"damage", damage},
                      {"profiles", salvage.profiles},
                      {"identities", salvage.identities},
                      {"outbox", salvage.outbox},
                      {"sync_marks", salvage.sync_marks},
                      {"complete", salvage.complete}};
  if (salvage.applied) {
    detail["applied_offset"] = *salvage.applied;
  }
  if (!moved_to.empty()) {
    detail["moved_to"] = moved_to;
  }
  if (auto s = (*audit)->append("profiles_recovered", std::move(detail)); !s.ok()) {
    return sdk::makeError(s.error().code,
                          "profiles recovered, but the audit entry failed: " + s.message());
  }
  std::string report = "profile store " + target + " was " + damage + ".\n";
  if (!moved_to.empty()) {
    report += "moved it to " + moved_to + "\n";
  }
  if (!unreadable.empty()) {
    report += "nothing could be read from it (" + unreadable + ")\n";
  }
  report += "copied " + std::to_string(salvage.profiles) + " profiles and " +
            std::to_string(salvage.identities) + " identity links into a new store" +
            (salvage.complete ? "" : "; some records could not be read") + ".\n";
  if (salvage.outbox > 0 || salvage.sync_marks > 0) {
    report += "kept " + std::to_string(salvage.outbox) + " pending profile-change events and " +
              std::to_string(salvage.sync_marks) +
              " scheduled-sync marks (people a scheduled destination's next run sends).\n";
  }
  report += std::string("junctiond now applies every event the queue still holds") +
            (salvage.applied ? " (the damaged store had applied up to offset " +
                                   std::to_string(*salvage.applied) + ")"
                             : std::string()) +
            ": nothing retained is skipped; counters of salvaged people may count some recent "
            "events twice, and people whose events have all left the queue keep only what was "
            "salvaged.\n";
  report += "written to the audit log as profiles_recovered.\n";
  return report;
}

}  // namespace

sdk::Result<std::string> recoverProfiles(const config::DaemonConfig& config) {
  if (config.profiles.backend == "postgres") {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "profiles.backend is postgres: its store is repaired in PostgreSQL, "
                          "not here");
  }
  const fs::path storage(config.storage.path);
  auto lock = runtime::DirectoryLock::acquire(storage, "storage.path");
  if (!lock) {
    return sdk::makeError(lock.error().code,
                          lock.error().message + " (stop junctiond before recovering its state)");
  }
  if (config.profiles.backend == "sqlite") {
    return recoverProfileStore<profiles::SqliteProfileStore>(
        storage, profiles::SqliteProfileStore::fileIn(storage.string()), {"", "-wal", "-shm"});
  }
  return recoverProfileStore<profiles::RocksDbProfileStore>(
      storage, profiles::RocksDbProfileStore::pathIn(storage.string()), {""});
}

}  // namespace junction::core::daemon
