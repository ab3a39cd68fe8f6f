#include "core/queue/cursor_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "core/queue/crc32c.h"
#include "core/queue/io.h"
#include "core/runtime/thread.h"

namespace junction::core::queue {
namespace {

constexpr std::uint32_t kCursorMagic = 0x5255434Au;  // "JCUR"
constexpr std::uint32_t kCursorVersion = 3;  // 1: offsets; 2: + delivered; 3: + generation, done
constexpr const char* kFileName = "cursors.dat";
constexpr const char* kTempName = "cursors.dat.tmp";
constexpr const char* kFastName = "cursors.fast";
constexpr std::size_t kMaxDoneRanges = 4096;

void putLe(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
  }
}

bool getLe(std::string_view& in, std::uint64_t& v, int bytes) {
  if (in.size() < static_cast<std::size_t>(bytes)) {
    return false;
  }
  v = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  }
  in.remove_prefix(static_cast<std::size_t>(bytes));
  return true;
}

sdk::Error fileError(const std::string& what, const std::string& path, int err) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        what + " " + path + ": " + std::strerror(err));
}

}  // namespace

CursorStore::CursorStore(CursorStoreOptions options)
    : options_(std::move(options)), dir_(options_.path + "/cursors") {}

sdk::Result<std::unique_ptr<CursorStore>> CursorStore::open(CursorStoreOptions options) {
  if (options.path.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "cursor store path is empty");
  }
  std::unique_ptr<CursorStore> store(new CursorStore(std::move(options)));
  std::error_code ec;
  std::filesystem::create_directories(store->dir_, ec);
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot create cursor directory " + store->dir_ + ": " + ec.message());
  }
  if (sdk::Status st = store->loadFile(); !st.ok()) {
    return st.error();
  }
  if (store->options_.flush_interval.count() > 0) {
    store->flusher_ = std::thread([raw = store.get()] {
      runtime::nameThisThread("jn-cursors");
      raw->flusherLoop();
    });
  }
  return store;
}

CursorStore::~CursorStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (flusher_.joinable()) {
    flusher_.join();
  }
  (void)flush();
  if (fast_fd_ >= 0) {
    ::close(fast_fd_);
  }
}

namespace {

// Reads cursors.dat. NotFound when it does not exist.
sdk::Result<std::string> readCursorFile(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return sdk::makeError(sdk::ErrorCode::NotFound, "no cursor file " + file);
    }
    return fileError("cannot open cursor file", file, errno);
  }
  struct stat st {};
  std::string data;
  int err = ::fstat(fd, &st) == 0 ? 0 : errno;
  if (err == 0) {
    data.resize(static_cast<std::size_t>(st.st_size));
    const long long n = preadAll(fd, data.data(), data.size(), 0);
    err = n < 0 ? static_cast<int>(-n) : 0;
    data.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (err != 0) {
    return fileError("cannot read cursor file", file, err);
  }
  return data;
}

struct ParsedCursors {
  std::uint64_t generation = 0;
  std::map<std::string, CursorState> cursors;
};

sdk::Result<ParsedCursors> parseCursorFile(const std::string& data, const std::string& file) {
  auto corrupt = [&](const char* why) {
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "cursor file " + file + " is corrupt (" + why +
                              "): every destination's delivery position is lost, and nothing "
                              "was skipped. `junction recover cursors --config FILE` moves it "
                              "aside and restarts every destination at the oldest event the "
                              "queue holds (already delivered ones are delivered again; "
                              "destinations deduplicate on messageId)");
  };
  if (data.size() < 16) {
    return corrupt("too short");
  }
  std::string_view body(data.data(), data.size() - 4);
  std::string_view tail(data.data() + body.size(), 4);
  std::uint64_t stored_crc = 0;
  getLe(tail, stored_crc, 4);
  if (crc32c(body) != stored_crc) {
    return corrupt("checksum mismatch");
  }
  std::uint64_t magic = 0;
  std::uint64_t version = 0;
  std::uint64_t count = 0;
  getLe(body, magic, 4);
  getLe(body, version, 4);
  getLe(body, count, 4);
  if (magic != kCursorMagic || version < 1 || version > kCursorVersion) {
    return corrupt("unknown magic or version");
  }
  ParsedCursors parsed;
  if (version >= 3) {
    // The generation sits between the version and the count.
    std::uint64_t high = 0;
    parsed.generation = count;
    if (!getLe(body, high, 4)) {
      return corrupt("too short");
    }
    parsed.generation |= high << 32;
    if (!getLe(body, count, 4)) {
      return corrupt("too short");
    }
  }
  std::map<std::string, CursorState>& cursors = parsed.cursors;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t len = 0;
    std::uint64_t offset = 0;
    if (!getLe(body, len, 2) || body.size() < len) {
      return corrupt("entry past the end");
    }
    std::string name(body.substr(0, len));
    body.remove_prefix(len);
    std::uint64_t delivered = 0;
    if (!getLe(body, offset, 8) || (version >= 2 && !getLe(body, delivered, 8))) {
      return corrupt("entry past the end");
    }
    CursorState state{offset, delivered, {}};
    std::uint64_t ranges = 0;
    if (version >= 3 && (!getLe(body, ranges, 4) || ranges > kMaxDoneRanges)) {
      return corrupt("entry past the end");
    }
    Offset previous = offset;
    for (std::uint64_t r = 0; r < ranges; ++r) {
      std::uint64_t begin = 0;
      std::uint64_t end = 0;
      if (!getLe(body, begin, 8) || !getLe(body, end, 8)) {
        return corrupt("entry past the end");
      }
      if (begin < previous || end <= begin) {
        return corrupt("done ranges out of order");
      }
      state.done.emplace_back(begin, end);
      previous = end;
    }
    cursors[std::move(name)] = std::move(state);
  }
  if (!body.empty()) {
    return corrupt("bytes after the last entry");
  }
  return parsed;
}

std::string encodeCursors(const std::map<std::string, CursorState>& cursors,
                          std::uint64_t generation) {
  std::string data;
  putLe(data, kCursorMagic, 4);
  putLe(data, kCursorVersion, 4);
  putLe(data, generation, 8);
  putLe(data, cursors.size(), 4);
  for (const auto& [name, state] : cursors) {
    putLe(data, name.size(), 2);
    data.append(name);
    putLe(data, state.offset, 8);
    putLe(data, state.delivered, 8);
    const std::size_t ranges = std::min(state.done.size(), kMaxDoneRanges);
    putLe(data, ranges, 4);
    for (std::size_t r = 0; r < ranges; ++r) {
      putLe(data, state.done[r].first, 8);
      putLe(data, state.done[r].second, 8);
    }
  }
  putLe(data, crc32c(data), 4);
  return data;
}

}  // namespace

sdk::Result<std::map<std::string, CursorState>> CursorStore::read(const std::string& path) {
  const std::string file = path + "/cursors/" + kFileName;
  auto data = readCursorFile(file);
  if (!data) {
    return std::move(data).error();
  }
  auto parsed = parseCursorFile(*data, file);
  if (!parsed) {
    return std::move(parsed).error();
  }
  // A newer cursors.fast (see the class comment) is what a restart would use.
  if (auto fast = readCursorFile(path + "/cursors/" + kFastName); fast && fast->size() > 4) {
    std::uint64_t len = 0;
    std::string_view view(*fast);
    getLe(view, len, 4);
    if (len <= view.size()) {
      auto newer = parseCursorFile(std::string(view.substr(0, len)), file);
      if (newer && newer->generation > parsed->generation) {
        return std::move(newer->cursors);
      }
    }
  }
  return std::move(parsed->cursors);
}

sdk::Status CursorStore::loadFile() {
  const std::string file = dir_ + "/" + kFileName;
  ::unlink((dir_ + "/" + kTempName).c_str());  // a write interrupted by a crash
  const std::string fast_file = dir_ + "/" + kFastName;
  auto data = readCursorFile(file);
  if (!data) {
    if (data.error().code == sdk::ErrorCode::NotFound) {
      ::unlink(fast_file.c_str());  // never read without cursors.dat (recovery moved it aside)
      return sdk::Status::success();
    }
    return data.error();
  }
  file_existed_ = true;
  auto parsed = parseCursorFile(*data, file);
  if (!parsed) {
    return parsed.error();
  }
  cursors_ = std::move(parsed->cursors);
  version_ = written_version_ = published_version_ = parsed->generation;
  if (auto fast = readCursorFile(fast_file); fast) {
    std::uint64_t len = 0;
    std::string_view view(*fast);
    if (view.size() < 4 || !getLe(view, len, 4) || len > view.size()) {
      fast_problem_ = fast_file + " is torn (shorter than its length)";
    } else if (auto newer = parseCursorFile(std::string(view.substr(0, len)), fast_file); !newer) {
      fast_problem_ = newer.error().message.substr(0, newer.error().message.find("):") + 1);
    } else if (newer->generation > parsed->generation) {
      cursors_ = std::move(newer->cursors);
      version_ = written_version_ = published_version_ = newer->generation;
      written_version_ = parsed->generation;  // cursors.dat is behind: the next flush writes it
    }
  } else if (fast.error().code != sdk::ErrorCode::NotFound) {
    fast_problem_ = fast.error().message;
  }
  return sdk::Status::success();
}

sdk::Status CursorStore::writeFile(const std::map<std::string, CursorState>& cursors,
                                   std::uint64_t generation) {
  const std::string data = encodeCursors(cursors, generation);

  const std::string temp = dir_ + "/" + kTempName;
  const std::string file = dir_ + "/" + kFileName;
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    sdk::Error e = fileError("cannot create", temp, errno);
    ++flush_count_;
    ++flush_errors_;
    std::lock_guard lk(mu_);
    last_error_ = e.message;
    return e;
  }
  int err = pwriteAll(fd, data.data(), data.size(), 0);
  if (err == 0 && ::fdatasync(fd) != 0) {
    err = errno;
  }
  ::close(fd);
  if (err == 0 && ::rename(temp.c_str(), file.c_str()) != 0) {
    err = errno;
  }
  if (err == 0) {
    err = fsyncDirectory(dir_);
  }
  ++flush_count_;
  if (err != 0) {
    ++flush_errors_;
    sdk::Error e = fileError("cannot persist cursors to", file, err);
    std::lock_guard lk(mu_);
    last_error_ = e.message;
    return e;
  }
  return sdk::Status::success();
}

sdk::Status CursorStore::createFile() {
  std::lock_guard wlk(write_mu_);
  std::unique_lock lk(mu_);
  if (file_existed_) {
    return sdk::Status::success();
  }
  const std::map<std::string, CursorState> snapshot = cursors_;
  lk.unlock();
  sdk::Status st = writeFile(snapshot, version_);
  lk.lock();
  if (st.ok()) {
    file_existed_ = true;
  }
  return st;
}

sdk::Status CursorStore::flush() {
  // write_mu_ is held from the snapshot to the rename, so files land in version order.
  std::lock_guard wlk(write_mu_);
  std::unique_lock lk(mu_);
  if (written_version_ == version_) {
    return sdk::Status::success();
  }
  const std::uint64_t version = version_;
  const std::map<std::string, CursorState> snapshot = cursors_;
  lk.unlock();
  sdk::Status st = writeFile(snapshot, version);
  lk.lock();
  if (st.ok()) {
    written_version_ = version;
  }
  return st;
}

// Writes the current set to cursors.fast in place, without a sync: [length][encoding]. A write
// cut short (power loss) fails its length or checksum and is ignored at open.
void CursorStore::publishFast() {
  std::lock_guard wlk(write_mu_);
  std::unique_lock lk(mu_);
  if (published_version_ == version_ || written_version_ == version_) {
    return;
  }
  const std::uint64_t version = version_;
  const std::map<std::string, CursorState> snapshot = cursors_;
  lk.unlock();
  if (fast_fd_ < 0) {
    fast_fd_ = ::open((dir_ + "/" + kFastName).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fast_fd_ < 0) {
      ++flush_errors_;
      std::lock_guard elk(mu_);
      last_error_ = fileError("cannot create", dir_ + "/" + kFastName, errno).message;
      return;
    }
  }
  const std::string body = encodeCursors(snapshot, version);
  std::string data;
  putLe(data, body.size(), 4);
  data += body;
  if (int err = pwriteAll(fast_fd_, data.data(), data.size(), 0); err != 0) {
    ++flush_errors_;
    std::lock_guard elk(mu_);
    last_error_ = fileError("cannot write", dir_ + "/" + kFastName, err).message;
    return;
  }
  lk.lock();
  published_version_ = version;
}

void CursorStore::flusherLoop() {
  const bool fast = options_.publish_interval.count() > 0 &&
                    options_.publish_interval < options_.flush_interval;
  const auto tick = fast ? options_.publish_interval : options_.flush_interval;
  auto next_flush = std::chrono::steady_clock::now() + options_.flush_interval;
  std::unique_lock lk(mu_);
  while (!stopping_) {
    cv_.wait_for(lk, tick, [this] { return stopping_; });
    if (stopping_) {
      break;
    }
    lk.unlock();
    if (std::chrono::steady_clock::now() >= next_flush) {
      (void)flush();  // failures are counted; the next tick retries
      next_flush = std::chrono::steady_clock::now() + options_.flush_interval;
    } else if (fast) {
      publishFast();
    }
    lk.lock();
  }
}

std::string CursorStore::lastFlushError() const {
  std::lock_guard lk(mu_);
  return last_error_;
}

std::optional<Offset> CursorStore::load(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = cursors_.find(name);
  if (it == cursors_.end()) {
    return std::nullopt;
  }
  return it->second.offset;
}

std::optional<CursorState> CursorStore::state(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = cursors_.find(name);
  if (it == cursors_.end()) {
    return std::nullopt;
  }
  return it->second;
}

sdk::Status CursorStore::commit(const std::string& name, Offset offset) {
  std::optional<CursorState> current = state(name);
  CursorState next{offset, current ? current->delivered : 0, {}};
  if (current) {
    for (const auto& range : current->done) {
      if (range.first >= offset) {
        next.done.push_back(range);
      }
    }
  }
  return commit(name, std::move(next));
}

sdk::Status CursorStore::commit(const std::string& name, CursorState state) {
  if (name.empty() || name.size() > 0xFFFF) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "cursor name must be 1 to 65535 bytes long");
  }
  std::unique_lock lk(mu_);
  auto [it, inserted] = cursors_.try_emplace(name, state);
  if (!inserted) {
    if (it->second == state) {
      return sdk::Status::success();
    }
    it->second = std::move(state);
  }
  ++version_;
  lk.unlock();
  if (options_.flush_interval.count() == 0) {
    return flush();
  }
  return sdk::Status::success();
}

sdk::Status CursorStore::remove(const std::string& name) {
  std::unique_lock lk(mu_);
  if (cursors_.erase(name) == 0) {
    return sdk::Status::success();
  }
  ++version_;
  lk.unlock();
  return flush();
}

std::map<std::string, Offset> CursorStore::all() const {
  std::lock_guard lk(mu_);
  std::map<std::string, Offset> out;
  for (const auto& [name, state] : cursors_) {
    out.emplace(name, state.offset);
  }
  return out;
}

}  // namespace junction::core::queue
