#include "core/cli/import.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/config/config_error.h"
#include "core/config/daemon_config.h"
#include "enrich.h"
#include "http_config.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/json.h"
#include "junction/sdk/mapping.h"
#include "splice.h"

namespace junction::cli {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

// Reads a file in large blocks and hands out its lines with the byte offset after each.
class LineReader {
 public:
  bool open(const std::string& file, std::uint64_t offset) {
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0 || ::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
      return false;
    }
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    buffer_offset_ = offset;
    buffer_.resize(8 << 20);
    return true;
  }
  ~LineReader() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  // The next line without its "\n" (or "\r\n"), valid until the next call; false at the end.
  // `end` is the offset just past the line's newline.
  bool next(std::string_view& line, std::uint64_t& end) {
    for (;;) {
      const char* start = buffer_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      if (nl != nullptr || (eof_ && pos_ < len_)) {
        const std::size_t n = nl != nullptr ? static_cast<const char*>(nl) - start : len_ - pos_;
        line = std::string_view(start, n);
        pos_ += n + (nl != nullptr ? 1 : 0);
        end = buffer_offset_ + pos_;
        if (!line.empty() && line.back() == '\r') {
          line.remove_suffix(1);
        }
        return true;
      }
      if (eof_) {
        return false;
      }
      // Keep the partial line, read more (a line longer than the buffer grows it).
      std::memmove(buffer_.data(), start, len_ - pos_);
      buffer_offset_ += pos_;
      len_ -= pos_;
      pos_ = 0;
      if (len_ == buffer_.size()) {
        buffer_.resize(buffer_.size() * 2);
      }
      const ssize_t got = ::read(fd_, buffer_.data() + len_, buffer_.size() - len_);
      if (got <= 0) {
        eof_ = true;  // a read error ends the file too; the caller compares offsets
      } else {
        len_ += static_cast<std::size_t>(got);
      }
    }
  }

 private:
  int fd_ = -1;
  std::string buffer_;
  std::size_t pos_ = 0;
  std::size_t len_ = 0;
  std::uint64_t buffer_offset_ = 0;  // file offset of buffer_[0]
  bool eof_ = false;
};

// One RFC 4180 record's fields; false when a quote is still open (the record goes on on the
// next line: the caller appends "\n" and that line, and asks again).
bool csvFields(std::string_view record, std::vector<std::string>& fields) {
  fields.clear();
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  for (std::size_t i = 0; i < record.size(); ++i) {
    const char c = record[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < record.size() && record[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else {
      field.push_back(c);
    }
  }
  if (quoted) {
    return false;
  }
  fields.push_back(std::move(field));
  return true;
}

// CSV without --mapping: each column is named by the event field it fills ("userId",
// "properties.plan"); `timestamp` and `originalTimestamp` columns take epoch times too.
json::object headerMapping(const std::vector<std::string>& columns) {
  json::object mapping;
  for (const auto& column : columns) {
    std::string path;  // the column name is one key of the row: its dots are literal
    for (char c : column) {
      if (c == '.' || c == '\\') {
        path.push_back('\\');
      }
      path.push_back(c);
    }
    if (column == "timestamp" || column == "originalTimestamp") {
      mapping[column] = json::object{{"from", path}, {"transform", "iso8601"}};
    } else {
      mapping[column] = path;
    }
  }
  return mapping;
}

struct Chunk {
  std::string body;  // NDJSON of checked events
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  std::uint64_t line = 0;  // last line number in the chunk
  std::uint64_t rejected = 0;
  std::uint64_t events = 0;
};

struct Record {
  std::uint64_t offset = 0, line = 0, accepted = 0, rejected = 0, suppressed = 0;
};

std::optional<Record> parseRecord(std::string_view text) {
  auto v = sdk::parseJson(text);
  if (!v || !v->is_object()) {
    return std::nullopt;
  }
  auto field = [&](std::string_view k) -> std::uint64_t {
    const auto* x = v->get_object().if_contains(k);
    return x != nullptr && x->is_number() ? x->to_number<std::uint64_t>() : 0;
  };
  return Record{field("offset"), field("line"), field("accepted"), field("rejected"),
                field("suppressed")};
}

std::string humanCount(double n) {
  char buf[32];
  if (n >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  } else if (n >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.0fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", n);
  }
  return buf;
}

std::string duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

// The chunks between the reader and the sender: at most two waiting, so that the next chunk is
// checked while one is being written.
class ChunkQueue {
 public:
  // False when the sender failed (stop reading).
  bool push(Chunk chunk) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return chunks_.size() < 2 || failed_; });
    if (failed_) {
      return false;
    }
    chunks_.push_back(std::move(chunk));
    changed_.notify_all();
    return true;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }
  void fail() {
    std::lock_guard lock(mutex_);
    failed_ = true;
    changed_.notify_all();
  }
  std::optional<Chunk> pop() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !chunks_.empty() || closed_; });
    if (chunks_.empty()) {
      return std::nullopt;
    }
    Chunk c = std::move(chunks_.front());
    chunks_.pop_front();
    changed_.notify_all();
    return c;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Chunk> chunks_;
  bool closed_ = false;
  bool failed_ = false;
};

class Importer {
 public:
  Importer(const ImportArgs& args, std::string base, std::string token, std::string import_id,
           std::uint64_t max_chunk_bytes)
      : args_(args), base_(std::move(base)), token_(std::move(token)),
        import_id_(std::move(import_id)), max_chunk_bytes_(max_chunk_bytes) {}

  int run();

 private:
  sdk::HttpClientRequest request(std::string method, std::string query) const {
    sdk::HttpClientRequest r;
    r.method = std::move(method);
    r.url = base_ + "/admin/import/" + args_.source + "?import=" + import_id_ + query;
    r.headers.set("Authorization", "Bearer " + token_);
    r.timeout = std::chrono::minutes(2);
    return r;
  }
  std::optional<Record> fetchRecord(std::string& error);
  void sendAll();
  bool sendChunk(const Chunk& chunk, bool restart);
  void progressLoop();
  void printProgress(bool final_line);
  void reject(std::uint64_t line, std::string_view why);
  bool emitChunk(Chunk& chunk, std::uint64_t from, std::uint64_t to, std::uint64_t line);

  const ImportArgs& args_;
  std::string base_;
  std::string token_;
  std::string import_id_;
  std::uint64_t max_chunk_bytes_;
  sdk::HttpClient client_;
  ChunkQueue queue_;
  bool tty_ = false;
  std::uint64_t file_size_ = 0;
  std::uint64_t start_offset_ = 0;
  std::uint64_t start_line_ = 0;
  SteadyClock::time_point started_;

  std::mutex state_mutex_;
  std::condition_variable state_changed_;
  Record durable_;            // guarded by state_mutex_: the daemon's record after each chunk
  bool sending_done_ = false;  // guarded by state_mutex_
  std::string failure_;        // guarded by state_mutex_
  std::uint64_t rejected_shown_ = 0;
  std::vector<std::string> csv_columns_;  // the CSV header
};

std::optional<Record> Importer::fetchRecord(std::string& error) {
  auto r = client_.send(request("GET", ""));
  if (r.status == 200) {
    if (auto record = parseRecord(r.body)) {
      return record;
    }
    error = "unexpected answer from " + base_ + ": " + r.body;
  } else if (r.status == 0) {
    error = "cannot reach junctiond at " + base_ + " (" + r.transport_error +
            "): import sends to the running daemon, which owns the queue";
  } else if (r.status == 404) {
    error = "the running junctiond has no enabled source '" + args_.source + "' (" +
            r.describe() + ")";
  } else {
    error = base_ + ": " + r.describe();
  }
  return std::nullopt;
}

bool Importer::sendChunk(const Chunk& chunk, bool restart) {
  const std::string query = "&from=" + std::to_string(chunk.from) + "&to=" + std::to_string(chunk.to) +
                            "&line=" + std::to_string(chunk.line) +
                            "&rejected=" + std::to_string(chunk.rejected) + (restart ? "&restart=1" : "");
  auto req = request("POST", query);
  req.headers.set("Content-Type", "application/x-ndjson");
  req.body = chunk.body;
  const auto give_up = SteadyClock::now() + std::chrono::seconds(60);
  std::chrono::milliseconds backoff{200};
  for (;;) {
    auto r = client_.send(req);
    std::optional<Record> record;
    if (r.status == 200) {
      record = parseRecord(r.body);
    } else if (r.status == 409) {
      // Our chunk may be durable already (an answer lost to a timeout): the record says.
      std::string error;
      record = fetchRecord(error);
      if (record && record->offset != chunk.to) {
        std::lock_guard lock(state_mutex_);
        failure_ = "the daemon's record of this import stands at line " +
                   std::to_string(record->line) + " (byte " + std::to_string(record->offset) +
                   "), not at this chunk: another import of the file running? (" + r.describe() + ")";
        return false;
      }
      if (!record && r.body.find("being written") != std::string::npos) {
        std::this_thread::sleep_for(backoff);
        continue;
      }
    } else if ((r.status == 0 || r.status == 503) && SteadyClock::now() < give_up) {
      std::this_thread::sleep_for(r.status == 503 ? std::max<std::chrono::milliseconds>(r.retry_after, backoff)
                                                  : backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
      continue;
    }
    if (!record) {
      std::lock_guard lock(state_mutex_);
      failure_ = "chunk ending at line " + std::to_string(chunk.line) + " not imported: " +
                 r.describe();
      return false;
    }
    std::lock_guard lock(state_mutex_);
    durable_ = *record;
    state_changed_.notify_all();
    return true;
  }
}

void Importer::sendAll() {
  bool restart = args_.restart;
  while (auto chunk = queue_.pop()) {
    if (!sendChunk(*chunk, restart)) {
      queue_.fail();
      break;
    }
    restart = false;
  }
  std::lock_guard lock(state_mutex_);
  sending_done_ = true;
  state_changed_.notify_all();
}

void Importer::printProgress(bool final_line) {
  Record d;
  {
    std::lock_guard lock(state_mutex_);
    d = durable_;
  }
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started_).count();
  const double lines = static_cast<double>(d.line - start_line_);
  const double bytes = static_cast<double>(d.offset - start_offset_);
  const double total_bytes = static_cast<double>(file_size_ - start_offset_);
  const double fraction = total_bytes > 0 ? static_cast<double>(d.offset) / static_cast<double>(file_size_) : 1;
  const double rate = elapsed > 0 ? lines / elapsed : 0;
  const double byte_rate = elapsed > 0 ? bytes / elapsed : 0;
  const std::string eta = byte_rate > 0 ? duration((total_bytes - bytes) / byte_rate) : "?";
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(kWidth - filled), '-');
    std::fprintf(stderr, "\r\033[K%3.0f%% [%s] %s lines  %s lines/s  ETA %s%s", fraction * 100,
                 bar.c_str(), humanCount(static_cast<double>(d.line)).c_str(),
                 humanCount(rate).c_str(), eta.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "import: %.1f%% line %llu, %.0f lines/s, ETA %s\n", fraction * 100,
                 static_cast<unsigned long long>(d.line), rate, eta.c_str());
  }
  std::fflush(stderr);
}

void Importer::progressLoop() {
  const double interval = args_.progress_interval_s > 0 ? args_.progress_interval_s : (tty_ ? 0.2 : 5.0);
  std::unique_lock lock(state_mutex_);
  while (!sending_done_) {
    state_changed_.wait_for(lock, std::chrono::duration<double>(interval),
                            [&] { return sending_done_; });
    if (sending_done_) {
      break;
    }
    lock.unlock();
    printProgress(false);
    lock.lock();
  }
}

void Importer::reject(std::uint64_t line, std::string_view why) {
  constexpr std::uint64_t kShown = 1000;
  if (++rejected_shown_ <= kShown) {
    std::fprintf(stderr, "%sline %llu: rejected: %.*s\n", tty_ ? "\r\033[K" : "",
                 static_cast<unsigned long long>(line), static_cast<int>(why.size()), why.data());
  } else if (rejected_shown_ == kShown + 1) {
    std::fprintf(stderr, "(more rejected lines are counted, not listed)\n");
  }
}

int Importer::run() {
  tty_ = ::isatty(STDERR_FILENO) == 1;
  std::error_code ec;
  file_size_ = fs::file_size(args_.file, ec);
  std::string error;
  auto record = fetchRecord(error);
  if (!record) {
    std::fprintf(stderr, "junction: %s\n", error.c_str());
    return 1;
  }
  if (record->offset > 0 && !args_.resume && !args_.restart) {
    std::fprintf(stderr,
                 "junction: %s was already imported into '%s' up to line %llu (%s); run with "
                 "--resume to continue, or --restart to import it again from the start\n",
                 args_.file.c_str(), args_.source.c_str(),
                 static_cast<unsigned long long>(record->line),
                 record->offset >= file_size_ ? "complete" : "interrupted");
    return 1;
  }
  if (args_.resume && record->offset > file_size_) {
    std::fprintf(stderr, "junction: %s is shorter than what was imported (byte %llu): not the same "
                 "file; --restart to import it from the start\n", args_.file.c_str(),
                 static_cast<unsigned long long>(record->offset));
    return 1;
  }
  if (args_.resume) {
    start_offset_ = record->offset;
    start_line_ = record->line;
    if (record->offset > 0) {
      std::fprintf(stderr, "resuming at line %llu (byte %llu): %llu accepted, %llu rejected so far\n",
                   static_cast<unsigned long long>(record->line + 1),
                   static_cast<unsigned long long>(record->offset),
                   static_cast<unsigned long long>(record->accepted),
                   static_cast<unsigned long long>(record->rejected));
    }
  }
  durable_ = args_.resume ? *record : Record{};

  const bool csv = args_.format == "csv";
  sdk::FieldMapping mapping;
  std::uint64_t line_no = 0;
  std::uint64_t offset = 0;
  LineReader reader;
  if (!reader.open(args_.file, 0)) {
    std::fprintf(stderr, "junction: %s: cannot read: %s\n", args_.file.c_str(), std::strerror(errno));
    return 1;
  }
  std::string_view text;
  std::uint64_t end = 0;
  if (csv) {
    // The header names the columns; with --mapping they are mapped by it, else by name.
    std::vector<std::string> columns;
    if (!reader.next(text, end) || !csvFields(text, columns)) {
      std::fprintf(stderr, "junction: %s: no CSV header line\n", args_.file.c_str());
      return 1;
    }
    line_no = 1;
    offset = end;
    csv_columns_ = columns;
    json::object spec = headerMapping(columns);
    if (!args_.mapping_file.empty()) {
      std::FILE* f = std::fopen(args_.mapping_file.c_str(), "rb");
      std::string content;
      if (f != nullptr) {
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
          content.append(buf, n);
        }
        std::fclose(f);
      }
      auto parsed = sdk::parseJson(content);
      if (f == nullptr || !parsed || !parsed->is_object()) {
        std::fprintf(stderr, "junction: --mapping %s: %s\n", args_.mapping_file.c_str(),
                     f == nullptr ? "cannot read the file"
                     : !parsed    ? parsed.error().message.c_str()
                                  : "expected a JSON object (event field -> column)");
        return 1;
      }
      spec = parsed->get_object();
    }
    std::vector<sdk::OptionError> problems;
    auto made = sdk::FieldMapping::parse({}, spec, &problems);
    if (made) {
      problems = sdk::checkInboundMapping(*made);
    }
    if (!problems.empty()) {
      for (const auto& p : problems) {
        std::fprintf(stderr, "junction: CSV mapping: %s: %s\n", p.key.c_str(), p.message.c_str());
      }
      return 1;
    }
    mapping = std::move(made).value();
  }
  // Skip what is durable already (lines are counted to keep their numbers).
  while (offset < start_offset_ && reader.next(text, end)) {
    ++line_no;
    offset = end;
  }
  if (offset != start_offset_ && start_offset_ > 0) {
    std::fprintf(stderr, "junction: %s changed since the interrupted import (byte %llu is not a "
                 "line start); --restart\n", args_.file.c_str(),
                 static_cast<unsigned long long>(start_offset_));
    return 1;
  }
  if (start_offset_ > 0) {
    start_line_ = line_no;
  }

  started_ = SteadyClock::now();
  std::thread sender([this] { sendAll(); });
  std::thread progress([this] { progressLoop(); });

  const std::uint64_t max_event_bytes = plugins::http::HttpSourceConfig{}.max_event_bytes;
  plugins::http::EnrichInput enrich;
  Chunk chunk;
  chunk.from = start_offset_;  // a fresh CSV import's first chunk carries the header line too
  auto beginChunk = [&] {
    enrich.received_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    return plugins::http::makeSpliceInput(enrich, false);
  };
  auto splice = beginChunk();
  bool ok = true;
  auto flush = [&] {
    chunk.to = offset;
    chunk.line = line_no;
    const bool pushed = queue_.push(std::move(chunk));
    chunk = Chunk{};
    chunk.from = offset;
    splice = beginChunk();
    return pushed;
  };
  std::vector<std::string> fields;
  std::string record_text;
  while (ok && reader.next(text, end)) {
    ++line_no;
    const std::uint64_t first_line = line_no;
    std::string_view event_text = text;
    std::optional<json::object> row_event;  // CSV: the mapped row
    if (csv) {
      record_text.assign(text);
      while (!csvFields(record_text, fields) && reader.next(text, end)) {
        ++line_no;  // a quoted field spanning lines
        record_text.append("\n").append(text);
      }
      if (record_text.empty()) {
        offset = end;
        continue;
      }
      json::object row;  // column name -> cell (empty cells are no value)
      for (std::size_t i = 0; i < fields.size() && i < csv_columns_.size(); ++i) {
        if (!fields[i].empty()) {
          row[csv_columns_[i]] = fields[i];
        }
      }
      row_event = mapping.apply(row);
    } else {
      std::size_t a = 0;
      while (a < event_text.size() && (event_text[a] == ' ' || event_text[a] == '\t')) {
        ++a;
      }
      event_text.remove_prefix(a);
      if (event_text.empty()) {
        offset = end;
        continue;  // blank lines are not events
      }
    }
    offset = end;
    // The tracking API's checks and enrichment (plugins/http), as /v1/batch runs them.
    sdk::Result<sdk::Event> made = sdk::makeError(sdk::ErrorCode::InvalidArgument, "");
    if (row_event) {
      auto enriched = plugins::http::enrichEvent(*row_event, enrich);
      made = enriched ? plugins::http::toEvent(*row_event, args_.source, enrich.received_at_ms)
                      : sdk::Result<sdk::Event>(enriched.error());
    } else if (event_text.size() > max_event_bytes) {
      made = sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "event larger than " + std::to_string(max_event_bytes) + " bytes");
    } else if (auto spliced = plugins::http::eventFromText(event_text, splice, enrich, args_.source)) {
      made = std::move(spliced->event);
    } else {
      made = spliced.error();
    }
    if (!made) {
      reject(first_line, made.error().message);
      ++chunk.rejected;
    } else {
      chunk.body.append(made->json()).push_back('\n');
      ++chunk.events;
    }
    if (chunk.events >= args_.chunk_events || chunk.body.size() >= max_chunk_bytes_) {
      ok = flush();
    }
  }
  if (ok && (chunk.events > 0 || chunk.rejected > 0 || offset != chunk.from)) {
    ok = flush();
  }
  queue_.close();
  sender.join();
  progress.join();
  std::string failure;
  Record d;
  {
    std::lock_guard lock(state_mutex_);
    failure = failure_;
    d = durable_;
  }
  printProgress(true);
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started_).count();
  if (!failure.empty()) {
    std::fprintf(stderr, "junction: import stopped: %s\njunction: durable up to line %llu; run the "
                 "same command with --resume to continue\n", failure.c_str(),
                 static_cast<unsigned long long>(d.line));
    return 1;
  }
  std::printf("imported %s into '%s': %llu lines, %llu accepted, %llu rejected, %llu suppressed "
              "in %.1f s (%.0f lines/s)\n",
              args_.file.c_str(), args_.source.c_str(), static_cast<unsigned long long>(d.line),
              static_cast<unsigned long long>(d.accepted),
              static_cast<unsigned long long>(d.rejected),
              static_cast<unsigned long long>(d.suppressed), elapsed,
              elapsed > 0 ? static_cast<double>(d.line - start_line_) / elapsed : 0.0);
  return d.rejected > 0 ? 3 : 0;
}

}  // namespace

int runImport(const ImportArgs& args) {
  std::error_code ec;
  if (!fs::exists(args.file, ec)) {
    std::fprintf(stderr, "junction: %s: no such file\n", args.file.c_str());
    return 1;
  }
  if (!fs::is_regular_file(args.file, ec)) {
    std::fprintf(stderr, "junction: %s: not a regular file\n", args.file.c_str());
    return 1;
  }
  core::config::ConfigErrors errors;
  auto config = core::config::loadConfig(args.config_file, core::config::processEnvironment(), errors);
  if (!config) {
    std::fputs(core::config::formatErrors(errors).c_str(), stderr);
    return 1;
  }
  std::vector<std::string> ids;
  for (const auto& s : config->sources) {
    ids.push_back(s.id);
  }
  if (std::find(ids.begin(), ids.end(), args.source) == ids.end()) {
    const std::string hint = core::config::closestMatch(args.source, ids);
    std::string known;
    for (const auto& id : ids) {
      known += (known.empty() ? "" : ", ") + id;
    }
    std::fprintf(stderr, "junction: no source '%s' in %s (sources: %s)%s\n", args.source.c_str(),
                 args.config_file.c_str(), known.empty() ? "none" : known.c_str(),
                 hint.empty() ? "" : ("; did you mean '" + hint + "'?").c_str());
    return 1;
  }
  ImportArgs a = args;
  if (a.format.empty()) {
    a.format = fs::path(a.file).extension() == ".csv" ? "csv" : "ndjson";
  }
  // The first non-blank line says whether the file is what --format says.
  {
    LineReader sniff;
    std::string_view line;
    std::uint64_t end = 0;
    std::uint64_t n = 0;
    if (!sniff.open(a.file, 0)) {
      std::fprintf(stderr, "junction: %s: cannot read: %s\n", a.file.c_str(), std::strerror(errno));
      return 1;
    }
    while (sniff.next(line, end)) {
      ++n;
      auto first = line.find_first_not_of(" \t");
      if (first == std::string_view::npos) {
        continue;
      }
      const bool json_like = line[first] == '{' || line[first] == '[';
      const std::string start(line.substr(first, 24));
      if (a.format == "ndjson" && line[first] != '{') {
        std::fprintf(stderr, "junction: %s does not look like NDJSON (one JSON object per line): "
                     "line %llu starts with '%s'%s\n", a.file.c_str(),
                     static_cast<unsigned long long>(n), start.c_str(),
                     json_like ? "" : "; a CSV file? --format csv");
        return 1;
      }
      if (a.format == "csv" && json_like) {
        std::fprintf(stderr, "junction: %s does not look like CSV: line %llu starts with '%s'; "
                     "--format ndjson\n", a.file.c_str(), static_cast<unsigned long long>(n),
                     start.c_str());
        return 1;
      }
      break;
    }
  }
  if (config->server.admin_token.empty()) {
    std::fprintf(stderr, "junction: %s has no server.admin_token; import uses the admin API\n",
                 a.config_file.c_str());
    return 1;
  }
  const std::string base = a.url.empty() ? "http://" + config->server.listen : a.url;
  const std::string id =
      sdk::sha256Hex(a.source + "\n" + fs::weakly_canonical(a.file, ec).string()).substr(0, 32);
  // Chunks stay well under the daemon's body limit.
  const std::uint64_t limit = config->server.max_body_bytes > 0 ? config->server.max_body_bytes
                                                                : 4ull << 20;
  Importer importer(a, base, config->server.admin_token, id, std::max<std::uint64_t>(limit / 2, 512));
  return importer.run();
}

}  // namespace junction::cli
