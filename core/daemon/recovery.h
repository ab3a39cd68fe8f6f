#pragma once

// Offline repair of damaged state under storage.path, run by `junction recover …` while
// junctiond is stopped (each takes the storage directory's lock, so it refuses to run beside a
// daemon). Each repair loses nothing it need not, says what it did and why, and writes it to the
// audit log.

#include <string>

#include "core/config/daemon_config.h"
#include "junction/sdk/result.h"

namespace junction::core::daemon {

// The cursor file (storage.path/cursors/cursors.dat) is missing, empty or corrupt: every
// destination's delivery position is lost. Moves a damaged file aside (cursors.dat.damaged-<ms>),
// then sets every enabled destination of `config` to the oldest event the queue holds, so
// nothing retained is skipped (events already delivered are delivered again; destinations
// deduplicate on messageId). An intact cursor file is left alone (NotFound: nothing to
// recover). Returns a report for the operator.
sdk::Result<std::string> recoverCursors(const config::DaemonConfig& config);

// The dead-letter store (storage.path/dead_letters.db) is missing, empty or corrupt. Moves a
// damaged file aside (dead_letters.db.damaged-<ms>, with its -wal), starts a new store and
// copies into it every row that can still be read from the damaged one (by id: a damaged page
// loses only its own rows), keeping ids, reasons and replay marks. What could not be read is
// counted. An intact store is left alone (NotFound). Written to the audit log.
sdk::Result<std::string> recoverDeadLetters(const config::DaemonConfig& config);

// The embedded profile store (storage.path/profiles/, or profiles.db with backend: sqlite) is
// missing, empty or corrupt. Moves a damaged store aside (<name>.damaged-<ms>), starts a new one
// and copies into it every profile, identity link and pending announcement still readable.
// The daemon then applies every event the queue still holds (the damaged store's offset cannot
// be trusted: a lost batch may lie behind a readable later one): nothing retained is skipped;
// counters of salvaged people may count some recent events twice; people whose events have all
// left the queue keep only what was salvaged. An intact store is left alone (NotFound).
// Written to the audit log.
sdk::Result<std::string> recoverProfiles(const config::DaemonConfig& config);

}  // namespace junction::core::daemon
