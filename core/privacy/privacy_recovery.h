#pragma once

// privacy.db lost or damaged. It holds every suppression and deletion: recreating it empty would
// deliver suppressed and deleted people's events again, silently — the worst privacy failure
// there is. The audit log (hash-chained) records every regulation, its subject as a SHA-256, so
// the store can be rebuilt from it.
//
// At start, junctiond refuses a missing or empty privacy.db when storage.path already holds state
// (an audit log with entries, the cursor file, queue segments, dead letters): that is a loss, not
// a first start. A file SQLite cannot read, or whose PRAGMA quick_check fails, is refused by
// PrivacyStore::open. Both messages name the file, the damage and kRecoverPrivacyCommand.
//
// Free functions over storage.path; the recovery runs with junctiond stopped (the caller holds
// the storage directory's lock).

#include <filesystem>
#include <string>

#include "junction/sdk/context.h"
#include "junction/sdk/result.h"

namespace junction::core::privacy {

// Ok when privacy.db under `storage_dir` is present and not empty, or when nothing else is
// there yet (a first start: it is created). Otherwise Internal with the message for the
// operator.
sdk::Status checkPrivacyStoreFile(const std::filesystem::path& storage_dir);

// `junction recover privacy`: verifies the audit log's chain (a broken chain is refused: its
// regulations cannot be trusted), moves a damaged privacy.db aside (privacy.db.damaged-<ms>,
// with its -wal and -shm), creates a new one holding every regulation of the audit log applied
// in order (people known by digest: see PrivacyStore::restore), and writes privacy_recovered to
// the audit log. NotFound when privacy.db is intact (nothing to recover). Without an audit log
// the regulations cannot be rebuilt: refused, unless `accept_loss` (an empty store, the loss
// audited). Returns a report for the operator.
sdk::Result<std::string> recoverPrivacyStore(const std::filesystem::path& storage_dir,
                                             const sdk::Clock& clock, bool accept_loss);

}  // namespace junction::core::privacy
