#include "file_destination.h"

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

#include "junction/sdk/json_scan.h"
#include "junction/sdk/plugin.h"

namespace junction::plugins::file {

namespace json = boost::json;
using sdk::option;

const sdk::OptionTable<FileConfig>& fileOptions() {
  static const sdk::OptionTable<FileConfig> table{
      option("path", &FileConfig::path, "File the events are appended to (directories are created)")
          .required(),
      option("max_file_bytes", &FileConfig::max_file_bytes,
             "Rotate the file (to PATH.1, PATH.2, ...) when it would grow past this size")
          .defaultValue("64MiB")
          .range(4096, 1e13),
      option("max_files", &FileConfig::max_files, "Rotated files kept besides the current one")
          .defaultValue(5)
          .range(0, 10000),
      option("sync", &FileConfig::sync,
             "fdatasync after each batch, so that 'delivered' means on disk")
          .defaultValue(true),
      option("keep_page_cache", &FileConfig::keep_page_cache,
             "Leave written pages in the page cache; by default, with sync, each synced batch's "
             "pages are dropped (POSIX_FADV_DONTNEED) so that the output does not fill memory")
          .defaultValue(false),
  };
  return table;
}

std::vector<sdk::OptionError> FileConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (!path.empty() && path.back() == '/') {
    errors.push_back({"path", "must name a file, not a directory"});
  }
  return errors;
}

namespace {

std::uint64_t pageBytes() {
  static const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

// True when `text` (a valid JSON object) ends with a top-level `"receivedAt":"…"` member, as
// the http source writes it: `…,"receivedAt":"2026-01-01T00:00:00.000Z"}`. Read backwards
// from the closing brace without a scan of the rest; false means "look closer", not "absent".
// Sound for valid JSON: the quote before the final '}' closes the last top-level value, the
// value holds no quote, and the quotes around the key are preceded by ':', 't' and ',' or '{',
// none of them a backslash, so none is escaped.
bool endsWithReceivedAt(std::string_view text) noexcept {
  static constexpr std::string_view kKey = "\"receivedAt\":\"";
  if (text.size() < kKey.size() + 3 || text.back() != '}' || text[text.size() - 2] != '"') {
    return false;
  }
  const std::size_t close = text.size() - 2;
  const std::size_t open = text.rfind('"', close - 1);  // the value's opening quote
  if (open == std::string_view::npos || open + 1 < kKey.size() + 1) {
    return false;
  }
  const std::size_t key = open + 1 - kKey.size();
  const char before = text[key - 1];
  return text.compare(key, kKey.size(), kKey) == 0 && (before == ',' || before == '{');
}

}  // namespace

void appendLine(const sdk::Event& event, std::string& out) {
  std::string_view text = event.json();
  // Ingest has set receivedAt on most events, and the http source puts it last: seen from the
  // end. Otherwise found among the top-level keys without a parse (the tree decides only when
  // the scanner declines: a nested "receivedAt", escapes, ...). memmem, not string_view::find:
  // find stops at every '"' (memchr, then a compare), which was a fifth of this thread's time.
  static constexpr std::string_view kKey = "\"receivedAt\"";
  if (endsWithReceivedAt(text) ||
      (::memmem(text.data(), text.size(), kKey.data(), kKey.size()) != nullptr &&
       (sdk::json_scan::topLevelMember(text, "receivedAt") ||
        event.body().contains("receivedAt")))) {
    out += text;
  } else if (text.size() >= 2 && text.front() == '{') {
    // Insert the key textually: no parse and re-serialization of the event on the hot path.
    char received[sdk::kIsoTimestampMaxSize];
    const std::size_t n = sdk::formatIsoTimestamp(event.header().received_at_ms, received);
    out += "{\"receivedAt\":\"";
    out.append(received, n);
    out += '"';
    std::string_view rest = text.substr(1);
    std::size_t first = rest.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && rest[first] != '}') {
      out += ',';
    }
    out += rest;
  } else {
    out += text;
  }
  out += '\n';
}

std::string formatLine(const sdk::Event& event) {
  std::string line;
  appendLine(event, line);
  return line;
}

FileDestination::FileDestination(FileConfig config, sdk::DestinationContext& context)
    : config_(std::move(config)),
      context_(context),
      written_bytes_(context.metrics().counter("junction_file_written_bytes_total",
                                               "Bytes appended by the file destination")),
      rotations_(context.metrics().counter("junction_file_rotations_total",
                                           "Files rotated by the file destination")) {}

FileDestination::~FileDestination() { stop(); }

sdk::Status FileDestination::openFile() {
  std::error_code ec;
  auto parent = std::filesystem::path(config_.path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
  }
  fd_ = ::open(config_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot open " + config_.path + ": " + std::strerror(errno));
  }
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  dropped_until_ = 0;
  return {};
}

sdk::Status FileDestination::start() {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) {
    return {};
  }
  auto status = openFile();
  if (status.ok()) {
    context_.log().info("appending to file", {{"path", config_.path}});
  }
  return status;
}

sdk::Status FileDestination::rotate() {
  const auto n = config_.max_files;
  // The file rotated out of the set is unlinked here and its blocks given back in the background,
  // a few MiB at a time: freed at once they stall every fdatasync on the disk (the queue's
  // included) on ext4 with `discard` (see junction/sdk/files.h).
  auto drop = [this](int fd, const std::string& path) {
    if (fd < 0) {
      return;  // no such file
    }
    if (::unlink(path.c_str()) == 0) {
      releaser_.release(fd);
    } else {
      ::close(fd);
    }
  };
  if (n == 0) {
    drop(fd_, config_.path);
    fd_ = -1;
  } else {
    ::close(fd_);
    fd_ = -1;
    const std::string oldest = config_.path + "." + std::to_string(n);
    drop(::open(oldest.c_str(), O_RDWR | O_CLOEXEC), oldest);
    for (auto i = n - 1; i >= 1; --i) {
      std::string from = config_.path + "." + std::to_string(i);
      ::rename(from.c_str(), (config_.path + "." + std::to_string(i + 1)).c_str());
    }
    ::rename(config_.path.c_str(), (config_.path + ".1").c_str());
  }
  rotations_.inc();
  return openFile();
}

std::vector<sdk::Outcome> FileDestination::deliver(std::span<const sdk::Event> batch) {
  std::string data;
  std::size_t size = 0;
  for (const auto& event : batch) {
    size += event.json().size() + 48;  // the line, receivedAt if added, '\n'
  }
  data.reserve(size);
  for (const auto& event : batch) {
    appendLine(event, data);
  }
  std::lock_guard lock(mutex_);
  auto fail = [&](const std::string& reason) {
    return std::vector<sdk::Outcome>(batch.size(), sdk::Outcome::retry(reason));
  };
  if (fd_ < 0) {
    if (auto s = openFile(); !s.ok()) {
      return fail(s.message());
    }
  }
  // A failed batch is cut off the file (below); when even that failed, it is cut now, before
  // anything is appended to a torn line.
  if (torn_) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      return fail("cannot cut a partly written batch off " + config_.path + ": " +
                  std::strerror(errno));
    }
    torn_ = false;
  }
  // What this batch wrote is cut off again when it fails, so the file always ends with the last
  // complete batch: a retry writes the lines again from there, and a partial line (a full disk)
  // can never glue onto the next event.
  auto undo = [&](std::string reason) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      torn_ = true;
      reason += "; cutting the partial batch off failed too: " + std::string(std::strerror(errno)) +
                " (retried before the next write)";
    }
    context_.log().error("file destination: write failed, the batch is retried",
                         {{"path", config_.path}, {"error", reason}});
    return fail(reason);
  };
  if (size_ > 0 && size_ + data.size() > config_.max_file_bytes) {
    if (auto s = rotate(); !s.ok()) {
      return fail(s.message());
    }
  }
  std::size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return undo(std::string("write to ") + config_.path + " failed after " +
                  std::to_string(written) + " of " + std::to_string(data.size()) +
                  " bytes: " + std::strerror(errno));
    }
    written += static_cast<std::size_t>(n);
  }
  if (config_.sync && ::fdatasync(fd_) != 0) {
    return undo(std::string("fdatasync of ") + config_.path + " failed: " + std::strerror(errno));
  }
  size_ += data.size();
  if (config_.sync && !config_.keep_page_cache) {
    // Synced pages are clean: drop them. Output written once and rarely read back then does not
    // fill the page cache, and the next batches reuse the memory just freed. On a VM with free
    // page reporting, fresh page-cache memory costs a fault to the host: under load on the
    // 2-core test VM, writing here took 3 times the kernel time without this. The last, partial
    // page stays: the next batch writes into it.
    const std::uint64_t whole = size_ - size_ % pageBytes();
    if (whole > dropped_until_) {
      (void)::posix_fadvise(fd_, static_cast<off_t>(dropped_until_),
                            static_cast<off_t>(whole - dropped_until_), POSIX_FADV_DONTNEED);
      dropped_until_ = whole;
    }
  }
  written_bytes_.inc(data.size());
  return std::vector<sdk::Outcome>(batch.size(), sdk::Outcome::delivered());
}

void FileDestination::stop() {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) {
    ::fdatasync(fd_);
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace junction::plugins::file

JUNCTION_DESTINATION_PLUGIN(junction::plugins::file::FileDestination,
                            junction::plugins::file::FileConfig,
                            junction::plugins::file::fileOptions(),
                            {.name = "file",
                             .version = "1.0.0",
                             .summary = "Appends delivered events to an NDJSON file, rotating by size"})
