#include "core/profiles/rocksdb_profile_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace junction::core::profiles {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kIdentity = "i/";
constexpr std::string_view kProfile = "p/";
constexpr std::string_view kOutbox = "o/";
constexpr std::string_view kDue = "d/";
constexpr std::string_view kSync = "s/";
constexpr std::string_view kApplied = "m/applied";

sdk::Error failed(const rocksdb::Status& s, std::string_view what) {
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        "profile store: " + std::string(what) + ": " + s.ToString());
}

std::string dueKey(std::int64_t due_ms, std::string_view id) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%016lld", static_cast<long long>(std::max<std::int64_t>(due_ms, 0)));
  return std::string(kDue) + digits + "/" + std::string(id);
}

struct Pending {
  std::int64_t due_ms = 0;
  std::int64_t seq = 0;
};

std::optional<Pending> parsePending(std::string_view text) {
  Pending p;
  const auto space = text.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  auto a = std::from_chars(text.data(), text.data() + space, p.due_ms);
  auto b = std::from_chars(text.data() + space + 1, text.data() + text.size(), p.seq);
  if (a.ec != std::errc() || b.ec != std::errc()) {
    return std::nullopt;
  }
  return p;
}

std::string formatPending(const Pending& p) {
  return std::to_string(p.due_ms) + " " + std::to_string(p.seq);
}

// `s/<channel>/`: the prefix of a channel's marks, unique to it. A channel is a destination id
// (letters, digits, '_', '-'); '%' and '/' in any other are written %25 and %2F, so that no
// channel's prefix begins another's.
std::string syncPrefix(std::string_view channel) {
  std::string out(kSync);
  for (char c : channel) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  out += '/';
  return out;
}

std::string syncKey(std::string_view channel, std::string_view profile_id) {
  return syncPrefix(channel) + std::string(profile_id);
}

// The first key after every key that starts with `prefix` (its last byte, '/', plus one).
std::string prefixEnd(std::string prefix) {
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

// (channel, profile id) of a mark's key; nullopt for a key this build did not write.
std::optional<std::pair<std::string, std::string>> parseSyncKey(std::string_view key) {
  if (!key.starts_with(kSync)) {
    return std::nullopt;
  }
  key.remove_prefix(kSync.size());
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  std::string channel;
  for (std::size_t i = 0; i < slash; ++i) {
    if (key[i] == '%' && key.substr(i, 3) == "%25") {
      channel += '%';
      i += 2;
    } else if (key[i] == '%' && key.substr(i, 3) == "%2F") {
      channel += '/';
      i += 2;
    } else {
      channel += key[i];
    }
  }
  return std::make_pair(std::move(channel), std::string(key.substr(slash + 1)));
}

std::optional<std::int64_t> parseSeq(std::string_view text) {
  std::int64_t seq = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), seq);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return seq;
}

rocksdb::Options storeOptions(std::uint64_t cache_bytes = RocksDbProfileStore::kDefaultCacheBytes) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  options.IncreaseParallelism(2);
  // Flushes and compactions only keep the store compact: like the applier (ProfileService), they
  // yield the cores to ingest and delivery under load (nice 19).
  (void)options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW,
                                                rocksdb::CpuPriority::kLow);
  (void)options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH,
                                                rocksdb::CpuPriority::kLow);
  options.max_background_jobs = 2;
  options.write_buffer_size = 64u << 20;
  options.max_write_buffer_number = 3;
  options.target_file_size_base = 64u << 20;
  options.keep_log_file_num = 3;
  options.max_manifest_file_size = 64u << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.compression = rocksdb::kLZ4Compression;
  // Commits are synced, so only a write in progress at a crash can be torn (its batch and
  // offset are then applied again from the queue); damage anywhere else in the log is
  // refused, not skipped silently as point-in-time recovery would.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  return options;
}

bool holdsDatabase(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::path(path) / "CURRENT", ec);
}

}  // namespace

std::string RocksDbProfileStore::pathIn(const std::string& dir) {
  return (fs::path(dir) / "profiles").string();
}

std::string RocksDbProfileStore::markerIn(const std::string& dir) {
  return (fs::path(dir) / "profiles.created").string();
}

sdk::Result<std::unique_ptr<RocksDbProfileStore>> RocksDbProfileStore::open(const std::string& dir,
                                                                           std::uint64_t cache_bytes) {
  const std::string path = pathIn(dir);
  const std::string marker = markerIn(dir);
  std::error_code ec;
  const bool existed = holdsDatabase(path);
  if (!existed && fs::exists(marker, ec)) {
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "profile store " + path + " is missing or empty, but it existed (" +
                              marker + " says so): every profile would be lost. Restore it from "
                              "a backup, or accept the loss with `" +
                              std::string(kRecoverProfilesCommand) +
                              "` (profiles are then rebuilt from the events still in the queue)");
  }
  fs::create_directories(path, ec);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(storeOptions(cache_bytes), path, &raw);
  if (!s.ok()) {
    if (s.IsCorruption() || (existed && !s.IsIOError() && !s.IsBusy())) {
      return sdk::makeError(sdk::ErrorCode::Internal,
                            "profile store " + path + " is damaged (" + s.ToString() +
                                "). Run `" + std::string(kRecoverProfilesCommand) +
                                "`: it keeps every readable profile and rebuilds the rest from "
                                "the events still in the queue");
    }
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "cannot open the profile store " + path + ": " + s.ToString());
  }
  std::unique_ptr<RocksDbProfileStore> store(
      new RocksDbProfileStore(path, std::unique_ptr<rocksdb::DB>(raw)));
  if (existed) {
    // Every block's checksum, once per start (as SQLite's quick_check): damage is said now,
    // naming the repair, rather than as failed reads later.
    if (rocksdb::Status v = store->db_->VerifyChecksum(); !v.ok()) {
      return sdk::makeError(sdk::ErrorCode::Internal,
                            "profile store " + path + " is damaged (" + v.ToString() +
                                "). Run `" + std::string(kRecoverProfilesCommand) +
                                "`: it keeps every readable profile and rebuilds the rest from "
                                "the events still in the queue");
    }
  }
  if (!existed) {
    std::ofstream out(marker, std::ios::trunc);
    out << "profiles/ was created here; if it goes missing, the daemon refuses to start.\n";
    if (!out.flush()) {
      return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot write " + marker);
    }
  }
  return store;
}

RocksDbProfileStore::RocksDbProfileStore(std::string path, std::unique_ptr<rocksdb::DB> db)
    : path_(std::move(path)), db_(std::move(db)) {}

RocksDbProfileStore::~RocksDbProfileStore() {
  if (db_) {
    (void)db_->Close();
  }
}

sdk::Result<std::optional<std::string>> RocksDbProfileStore::get(const std::string& key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) {
    return std::optional<std::string>();
  }
  if (!s.ok()) {
    return failed(s, "read");
  }
  return std::optional<std::string>(std::move(value));
}

sdk::Result<std::optional<std::string>> RocksDbProfileStore::findIdentity(const std::string& key) {
  return get(std::string(kIdentity) + key);
}

sdk::Result<std::optional<std::string>> RocksDbProfileStore::loadProfile(const std::string& id) {
  return get(std::string(kProfile) + id);
}

sdk::Status RocksDbProfileStore::commit(const Changes& c) {
  if (c.empty()) {
    return {};
  }
  std::lock_guard lock(writer_mutex_);
  // Sized up front: growing the batch's buffer copied it over and over (a fifth of the
  // applier's time).
  std::size_t reserve = 64;
  for (const auto& [k, v] : c.identities_put) {
    reserve += k.size() + v.size() + 16;
  }
  for (const auto& [k, v] : c.profiles_put) {
    reserve += k.size() + v.size() + 16;
  }
  reserve += (c.identities_deleted.size() + c.profiles_deleted.size()) * 64 +
             (c.outbox_put.size() + c.outbox_deleted.size() + c.outbox_done.size()) * 128 +
             (c.sync_put.size() + c.sync_deleted.size() + c.sync_done.size()) * 96;
  rocksdb::WriteBatch batch(reserve);
  for (const auto& key : c.identities_deleted) {
    batch.Delete(std::string(kIdentity) + key);
  }
  for (const auto& [key, id] : c.identities_put) {
    batch.Put(std::string(kIdentity) + key, id);
  }
  for (const auto& id : c.profiles_deleted) {
    batch.Delete(std::string(kProfile) + id);
  }
  for (const auto& [id, data] : c.profiles_put) {
    batch.Put(std::string(kProfile) + id, data);
  }
  // The outbox, read-modify-write (only this thread writes it, under the lock): the state of
  // each entry as the batch leaves it.
  std::map<std::string, std::optional<Pending>> outbox;
  auto current = [&](const std::string& id) -> sdk::Result<std::optional<Pending>*> {
    auto it = outbox.find(id);
    if (it == outbox.end()) {
      auto stored = get(std::string(kOutbox) + id);
      if (!stored) {
        return stored.error();
      }
      std::optional<Pending> p = *stored ? parsePending(**stored) : std::nullopt;
      it = outbox.emplace(id, p).first;
    }
    return &it->second;
  };
  auto remove = [&](const std::string& id, std::optional<Pending>& p) {
    batch.Delete(std::string(kOutbox) + id);
    batch.Delete(dueKey(p->due_ms, id));
    p.reset();
  };
  for (const auto& id : c.outbox_deleted) {
    auto p = current(id);
    if (!p) {
      return p.error();
    }
    if (**p) {
      remove(id, **p);
    }
  }
  for (const auto& [id, seq] : c.outbox_done) {
    auto p = current(id);
    if (!p) {
      return p.error();
    }
    if (**p && (**p)->seq == seq) {
      remove(id, **p);
    }
  }
  for (const auto& [id, due] : c.outbox_put) {
    auto p = current(id);
    if (!p) {
      return p.error();
    }
    if (**p) {
      ++(**p)->seq;  // a change while waiting: keeps the earlier time
    } else {
      **p = Pending{due, 0};
      batch.Put(dueKey(due, id), "");
    }
    batch.Put(std::string(kOutbox) + id, formatPending(***p));
  }
  // The sync marks likewise: the seq of each mark as the batch leaves it (nullopt: none).
  std::map<std::string, std::optional<std::int64_t>> marks;
  auto seqOf = [&](const std::string& key) -> sdk::Result<std::optional<std::int64_t>*> {
    auto it = marks.find(key);
    if (it == marks.end()) {
      auto stored = get(key);
      if (!stored) {
        return stored.error();
      }
      it = marks.emplace(key, *stored ? parseSeq(**stored) : std::nullopt).first;
    }
    return &it->second;
  };
  for (const auto& [channel, id] : c.sync_deleted) {
    const std::string key = syncKey(channel, id);
    batch.Delete(key);
    marks[key].reset();
  }
  for (const auto& done : c.sync_done) {
    const std::string key = syncKey(done.channel, done.profile_id);
    auto seq = seqOf(key);
    if (!seq) {
      return seq.error();
    }
    if (**seq == done.seq) {
      batch.Delete(key);
      (*seq)->reset();
    }
  }
  for (const auto& [channel, id] : c.sync_put) {
    const std::string key = syncKey(channel, id);
    auto seq = seqOf(key);
    if (!seq) {
      return seq.error();
    }
    **seq = **seq ? ***seq + 1 : 0;  // a change since the mark was read: a new seq
    batch.Put(key, std::to_string(***seq));
  }
  if (c.applied) {
    batch.Put(kApplied, std::to_string(*c.applied));
  }
  rocksdb::WriteOptions options;
  options.sync = true;
  if (rocksdb::Status s = db_->Write(options, &batch); !s.ok()) {
    return failed(s, "write");
  }
  return {};
}

sdk::Result<std::uint64_t> RocksDbProfileStore::appliedOffset() {
  auto v = get(std::string(kApplied));
  if (!v) {
    return v.error();
  }
  std::uint64_t offset = 0;
  if (*v) {
    auto r = std::from_chars((*v)->data(), (*v)->data() + (*v)->size(), offset);
    if (r.ec != std::errc()) {
      return sdk::makeError(sdk::ErrorCode::Internal,
                            "profile store " + path_ + ": the applied offset is unreadable");
    }
  }
  return offset;
}

sdk::Result<std::vector<OutboxEntry>> RocksDbProfileStore::dueOutbox(std::int64_t now_ms,
                                                                     std::size_t limit) {
  std::vector<OutboxEntry> out;
  const std::string end = dueKey(now_ms, "\xff");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(kDue)); it->Valid() && out.size() < limit; it->Next()) {
    const std::string key = it->key().ToString();
    if (key.compare(0, kDue.size(), kDue) != 0 || key > end) {
      break;
    }
    const std::string id = key.substr(kDue.size() + 17);
    auto p = get(std::string(kOutbox) + id);
    if (!p) {
      return p.error();
    }
    if (!*p) {
      continue;  // deleted since the iterator's snapshot
    }
    auto pending = parsePending(**p);
    if (pending) {
      out.push_back({id, pending->due_ms, pending->seq});
    }
  }
  if (!it->status().ok()) {
    return failed(it->status(), "read the outbox");
  }
  return out;
}

sdk::Result<std::uint64_t> RocksDbProfileStore::profileCount() {
  std::uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(kProfile)); it->Valid() && it->key().starts_with(kProfile); it->Next()) {
    ++n;
  }
  if (!it->status().ok()) {
    return failed(it->status(), "count");
  }
  return n;
}

// Scans read without filling the block cache: a run of a sync channel reads every mark, its
// first run every profile id, and neither is to evict what the API's lookups keep there.
sdk::Result<std::vector<SyncMark>> RocksDbProfileStore::syncMarks(
    const std::string& channel, const std::string& after_profile_id, std::size_t limit) {
  std::vector<SyncMark> out;
  const std::string prefix = syncPrefix(channel);
  const std::string end = prefixEnd(prefix);
  const std::string from = prefix + after_profile_id;
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (it->Seek(from); it->Valid() && out.size() < limit; it->Next()) {
    if (it->key() == rocksdb::Slice(from)) {
      continue;  // ids after it only
    }
    auto seq = parseSeq(it->value().ToStringView());
    if (!seq) {
      return sdk::makeError(sdk::ErrorCode::Internal, "profile store " + path_ +
                                                          ": an unreadable sync mark in " +
                                                          channel);
    }
    out.push_back({channel, it->key().ToString().substr(prefix.size()), *seq});
  }
  if (!it->status().ok()) {
    return failed(it->status(), "read the sync marks");
  }
  return out;
}

sdk::Result<std::uint64_t> RocksDbProfileStore::syncMarkCount(const std::string& channel) {
  const std::string prefix = syncPrefix(channel);
  const std::string end = prefixEnd(prefix);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  read.fill_cache = false;
  std::uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    ++n;
  }
  if (!it->status().ok()) {
    return failed(it->status(), "count the sync marks");
  }
  return n;
}

sdk::Result<std::vector<std::string>> RocksDbProfileStore::profileIds(const std::string& after,
                                                                      std::size_t limit) {
  std::vector<std::string> out;
  const std::string end = prefixEnd(std::string(kProfile));
  const std::string from = std::string(kProfile) + after;
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (it->Seek(from); it->Valid() && out.size() < limit; it->Next()) {
    if (it->key() != rocksdb::Slice(from)) {
      out.push_back(it->key().ToString().substr(kProfile.size()));
    }
  }
  if (!it->status().ok()) {
    return failed(it->status(), "list the profiles");
  }
  return out;
}

sdk::Status RocksDbProfileStore::dropSyncChannel(const std::string& channel) {
  const std::string prefix = syncPrefix(channel);
  std::lock_guard lock(writer_mutex_);  // not between a commit's reads of marks and its write
  rocksdb::WriteBatch batch;
  batch.DeleteRange(prefix, prefixEnd(prefix));
  rocksdb::WriteOptions options;
  options.sync = true;
  if (rocksdb::Status s = db_->Write(options, &batch); !s.ok()) {
    return failed(s, "drop the sync channel " + channel);
  }
  return {};
}

std::uint64_t RocksDbProfileStore::sizeBytes() {
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    if (entry.is_regular_file(ec)) {
      total += entry.file_size(ec);
    }
  }
  return total;
}

sdk::Result<RocksDbProfileStore::Salvage> RocksDbProfileStore::salvageFrom(
    const std::string& damaged_dir) {
  Salvage result;
  rocksdb::Options options = storeOptions();
  options.create_if_missing = false;
  options.paranoid_checks = false;
  if (rocksdb::Status s = rocksdb::RepairDB(damaged_dir, options); !s.ok()) {
    result.complete = false;
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, damaged_dir, &raw);
  if (!s.ok()) {
    return failed(s, "open " + damaged_dir + " to salvage it");
  }
  std::unique_ptr<rocksdb::DB> from(raw);
  Changes c;
  std::set<std::string> profiles;
  rocksdb::ReadOptions read;
  read.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(from->NewIterator(read));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    std::string value = it->value().ToString();
    if (key.starts_with(kProfile)) {
      profiles.insert(key.substr(kProfile.size()));
      c.profiles_put.emplace_back(key.substr(kProfile.size()), std::move(value));
    } else if (key.starts_with(kIdentity)) {
      c.identities_put.emplace_back(key.substr(kIdentity.size()), std::move(value));
    } else if (key.starts_with(kOutbox)) {
      if (auto p = parsePending(value)) {
        c.outbox_put.emplace_back(key.substr(kOutbox.size()), p->due_ms);
      }
    } else if (key.starts_with(kSync)) {
      if (auto m = parseSyncKey(key)) {
        c.sync_put.push_back(std::move(*m));
      }
    } else if (key == kApplied) {
      std::uint64_t offset = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), offset).ec == std::errc()) {
        result.applied = offset;
      }
    }
  }
  if (!it->status().ok()) {
    result.complete = false;
  }
  it.reset();
  (void)from->Close();
  // Links and marks of a profile that could not be read lead nowhere.
  std::erase_if(c.identities_put, [&](const auto& p) { return !profiles.contains(p.second); });
  std::erase_if(c.sync_put, [&](const auto& m) { return !profiles.contains(m.second); });
  result.profiles = c.profiles_put.size();
  result.identities = c.identities_put.size();
  result.outbox = c.outbox_put.size();
  result.sync_marks = c.sync_put.size();
  // Not the damaged store's offset: what it had applied up to is not all readable (a damaged
  // page or log record can lose a batch whose offset a later, readable batch moved past). The
  // daemon applies every event the queue still holds instead: nothing retained is skipped.
  if (auto st = commit(c); !st.ok()) {
    return st.error();
  }
  return result;
}

}  // namespace junction::core::profiles
