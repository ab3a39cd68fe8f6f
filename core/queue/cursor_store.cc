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
constexpr std::uint32_t kCursorVersion = 2;  // 1: no delivered counts (still read)
constexpr const char* kFileName = "cursors.dat";
constexpr const char* kTempName = "cursors.dat.tmp";

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

sdk::Result<std::map<std::string, CursorState>> parseCursorFile(const std::string& data,
                                                                const std::string& file) {
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
  std::map<std::string, CursorState> cursors;
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
    cursors[std::move(name)] = CursorState{offset, delivered};
  }
  return cursors;
}

}  // namespace

sdk::Result<std::map<std::string, CursorState>> CursorStore::read(const std::string& path) {
  const std::string file = path + "/cursors/" + kFileName;
  auto data = readCursorFile(file);
  if (!data) {
    return std::move(data).error();
  }
  return parseCursorFile(*data, file);
}

sdk::Status CursorStore::loadFile() {
  const std::string file = dir_ + "/" + kFileName;
  ::unlink((dir_ + "/" + kTempName).c_str());  // a write interrupted by a crash
  auto data = readCursorFile(file);
  if (!data) {
    return data.error().code == sdk::ErrorCode::NotFound ? sdk::Status::success()
                                                         : sdk::Status(data.error());
  }
  file_existed_ = true;
  auto parsed = parseCursorFile(*data, file);
  if (!parsed) {
    return parsed.error();
  }
  cursors_ = std::move(parsed).value();
  return sdk::Status::success();
}

sdk::Status CursorStore::writeFile(const std::map<std::string, CursorState>& cursors) {
  std::string data;
  putLe(data, kCursorMagic, 4);
  putLe(data, kCursorVersion, 4);
  putLe(data, cursors.size(), 4);
  for (const auto& [name, state] : cursors) {
    putLe(data, name.size(), 2);
    data.append(name);
    putLe(data, state.offset, 8);
    putLe(data, state.delivered, 8);
  }
  putLe(data, crc32c(data), 4);

  const std::string temp = dir_ + "/" + kTempName;
  const std::string file = dir_ + "/" + kFileName;
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return fileError("cannot create", temp, errno);
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
    return fileError("cannot persist cursors to", file, err);
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
  sdk::Status st = writeFile(snapshot);
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
  sdk::Status st = writeFile(snapshot);
  lk.lock();
  if (st.ok()) {
    written_version_ = version;
  }
  return st;
}

void CursorStore::flusherLoop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    cv_.wait_for(lk, options_.flush_interval, [this] { return stopping_; });
    if (stopping_) {
      break;
    }
    lk.unlock();
    (void)flush();  // failures are counted; the next tick retries
    lk.lock();
  }
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
  return commit(name, CursorState{offset, current ? current->delivered : 0});
}

sdk::Status CursorStore::commit(const std::string& name, CursorState state) {
  if (name.empty() || name.size() > 0xFFFF) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "cursor name must be 1 to 65535 bytes long");
  }
  std::unique_lock lk(mu_);
  auto [it, inserted] = cursors_.try_emplace(name, state);
  if (!inserted) {
    if (it->second.offset == state.offset && it->second.delivered == state.delivered) {
      return sdk::Status::success();
    }
    it->second = state;
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
