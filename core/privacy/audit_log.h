#pragma once

// The audit log: an append-only file (`storage.path/audit.log`) of every regulation, erasure
// result, dead-letter replay/purge and daemon start, one JSON object per line:
//
//   {"seq":1,"ts":"2026-11-28T15:11:01.123Z","kind":"regulation","detail":{...},"prev":"000…0","hash":"…"}
//
// Each entry is chained to the one before it: `hash` = SHA-256 (hex) of `prev` followed by the
// line's text up to, and without, `,"hash":"…"}` (its "canonical" text, the entry with `}`
// closing it). `prev` is the previous entry's hash (64 zeros for the first). Changing, removing
// or reordering any byte of any line breaks the chain from that line on; `verifyAuditLog`
// names the first bad line. (A chain alone cannot detect the loss of trailing entries: anchor
// the latest hash elsewhere — it is logged at start — if that matters.)
//
// Details must never hold event bodies or secrets; subjects of regulations are recorded as
// SHA-256 of their value.
//
// Thread-safe. Each append is written with one write(2) and fdatasync'ed before it returns.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "junction/sdk/context.h"
#include "junction/sdk/result.h"

namespace junction::core::privacy {

inline constexpr std::string_view kAuditGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

class AuditLog {
 public:
  // Opens (creating) `file` and reads its last entry to continue the chain. A torn last line
  // (no newline: a crash mid-append, never acknowledged) is cut off.
  static sdk::Result<std::unique_ptr<AuditLog>> open(const std::string& file,
                                                     const sdk::Clock& clock);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one entry; durable when it returns ok.
  sdk::Status append(std::string_view kind, boost::json::object detail);

  std::uint64_t lastSeq() const;
  std::string lastHash() const;
  const std::string& file() const noexcept { return file_; }

 private:
  AuditLog(std::string file, int fd, const sdk::Clock& clock, std::uint64_t seq, std::string hash);

  const std::string file_;
  int fd_;
  const sdk::Clock& clock_;
  mutable std::mutex mutex_;
  std::uint64_t seq_;
  std::string hash_;
};

struct AuditVerification {
  bool ok = false;
  std::uint64_t entries = 0;  // entries verified (all of them when ok)
  std::uint64_t bad_line = 0;  // 1-based line of the first problem when !ok
  std::string problem;
};

// Checks every line of `file`: well-formed, seq increasing by one, prev = previous hash,
// hash = SHA-256(prev + canonical text). A missing file is an error.
AuditVerification verifyAuditLog(const std::string& file);

// The canonical text and hash of one line, as verify computes them (exposed for tests).
struct AuditLine {
  std::string canonical;
  std::string hash;
};
sdk::Result<AuditLine> splitAuditLine(std::string_view line);

}  // namespace junction::core::privacy
