#include "core/privacy/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "junction/sdk/crypto.h"
#include "junction/sdk/event.h"

namespace junction::core::privacy {

namespace json = boost::json;

namespace {

constexpr std::string_view kHashKey = R"(,"hash":")";

sdk::Error ioError(const std::string& what, const std::string& file) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        "audit log " + file + ": " + what + ": " + std::strerror(errno));
}

bool isHex64(std::string_view s) {
  if (s.size() != 64) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

sdk::Result<AuditLine> splitAuditLine(std::string_view line) {
  // ... ,"hash":"<64 hex>"}
  constexpr std::size_t kTail = kHashKey.size() + 64 + 2;
  if (line.size() < kTail + 2 || line.back() != '}' || line[line.size() - 2] != '"' ||
      line.substr(line.size() - kTail, kHashKey.size()) != kHashKey) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "not an audit entry (no trailing hash)");
  }
  AuditLine out;
  out.hash = std::string(line.substr(line.size() - 66, 64));
  if (!isHex64(out.hash)) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "malformed hash");
  }
  out.canonical = std::string(line.substr(0, line.size() - kTail)) + "}";
  return out;
}

AuditLog::AuditLog(std::string file, int fd, const sdk::Clock& clock, std::uint64_t seq,
                   std::string hash)
    : file_(std::move(file)), fd_(fd), clock_(clock), seq_(seq), hash_(std::move(hash)) {}

AuditLog::~AuditLog() { ::close(fd_); }

sdk::Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& file,
                                                      const sdk::Clock& clock) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ioError("cannot open", file);
  }
  // Read the whole file to find the last complete line (the log is small: one line per
  // regulation or admin action).
  std::string text;
  {
    std::ifstream in(file, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (!text.empty() && text.back() != '\n') {
    auto cut = text.rfind('\n');
    std::size_t keep = cut == std::string::npos ? 0 : cut + 1;
    if (::ftruncate(fd, static_cast<off_t>(keep)) != 0) {
      auto e = ioError("cannot cut a torn last line", file);
      ::close(fd);
      return e;
    }
    text.resize(keep);
  }
  std::uint64_t seq = 0;
  std::string hash(kAuditGenesis);
  if (!text.empty()) {
    std::size_t end = text.size() - 1;  // the final '\n'
    std::size_t begin = text.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    std::string_view last(text.data() + begin, end - begin);
    auto split = splitAuditLine(last);
    boost::system::error_code ec;
    json::value v = split ? json::parse(split->canonical, ec) : json::value();
    const json::value* s = v.is_object() ? v.as_object().if_contains("seq") : nullptr;
    if (!split || ec || s == nullptr || !s->is_int64()) {
      ::close(fd);
      return sdk::makeError(sdk::ErrorCode::Internal,
                            "audit log " + file + ": the last entry is unreadable; run "
                            "`junction audit verify " + file + "`");
    }
    seq = static_cast<std::uint64_t>(s->as_int64());
    hash = split->hash;
  }
  return std::unique_ptr<AuditLog>(new AuditLog(file, fd, clock, seq, std::move(hash)));
}

sdk::Status AuditLog::append(std::string_view kind, json::object detail) {
  std::lock_guard lock(mutex_);
  json::object entry;
  entry["seq"] = seq_ + 1;
  entry["ts"] = sdk::formatIsoTimestamp(clock_.nowMs());
  entry["kind"] = kind;
  entry["detail"] = std::move(detail);
  entry["prev"] = hash_;
  std::string canonical = json::serialize(entry);
  std::string hash = sdk::sha256Hex(hash_ + canonical);
  std::string line = canonical.substr(0, canonical.size() - 1);
  line.append(kHashKey).append(hash).append("\"}\n");
  std::size_t written = 0;
  while (written < line.size()) {
    ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return ioError("write failed", file_);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    return ioError("fdatasync failed", file_);
  }
  ++seq_;
  hash_ = std::move(hash);
  return {};
}

std::uint64_t AuditLog::lastSeq() const {
  std::lock_guard lock(mutex_);
  return seq_;
}

std::string AuditLog::lastHash() const {
  std::lock_guard lock(mutex_);
  return hash_;
}

AuditVerification verifyAuditLog(const std::string& file) {
  AuditVerification out;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    out.problem = "cannot read " + file;
    return out;
  }
  std::string prev(kAuditGenesis);
  std::string line;
  std::uint64_t number = 0;
  auto fail = [&](std::string problem) {
    out.bad_line = number;
    out.problem = std::move(problem);
    return out;
  };
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!text.empty() && text.back() != '\n') {
    text += '\n';  // a torn or edited last line is checked like any other (and fails)
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    std::string_view l(text.data() + pos, end - pos);
    pos = end + 1;
    ++number;
    auto split = splitAuditLine(l);
    if (!split) {
      return fail(split.error().message);
    }
    boost::system::error_code ec;
    json::value v = json::parse(split->canonical, ec);
    if (ec || !v.is_object()) {
      return fail("not a JSON object");
    }
    const auto& o = v.as_object();
    const json::value* seq = o.if_contains("seq");
    const json::value* p = o.if_contains("prev");
    if (seq == nullptr || !seq->is_int64() || p == nullptr || !p->is_string() ||
        !o.contains("kind") || !o.contains("ts") || !o.contains("detail")) {
      return fail("missing seq, ts, kind, detail or prev");
    }
    if (static_cast<std::uint64_t>(seq->as_int64()) != out.entries + 1) {
      return fail("seq " + std::to_string(seq->as_int64()) + " where " +
                  std::to_string(out.entries + 1) + " was expected");
    }
    if (p->as_string() != prev) {
      return fail("prev does not match the hash of the entry before it");
    }
    if (sdk::sha256Hex(prev + split->canonical) != split->hash) {
      return fail("hash mismatch: the entry was changed");
    }
    prev = split->hash;
    ++out.entries;
  }
  out.ok = true;
  return out;
}

}  // namespace junction::core::privacy
