#include "core/queue/nats_bucket.h"

#include <nats/nats.h>

namespace junction::core::queue {

namespace {

constexpr std::int64_t kNanosPerMilli = 1'000'000;

// Unavailable: worth trying again (the connection or the servers; a request cut off by a
// server's death ends in an IO error); InvalidArgument: a value larger than the server's
// max_payload, never stored.
sdk::Error bucketError(const std::string& what, natsStatus status) {
  sdk::ErrorCode code = sdk::ErrorCode::Internal;
  if (status == NATS_TIMEOUT || status == NATS_CONNECTION_CLOSED ||
      status == NATS_CONNECTION_DISCONNECTED || status == NATS_NO_SERVER ||
      status == NATS_NO_RESPONDERS || status == NATS_IO_ERROR || status == NATS_STALE_CONNECTION) {
    code = sdk::ErrorCode::Unavailable;
  } else if (status == NATS_MAX_PAYLOAD) {
    code = sdk::ErrorCode::InvalidArgument;
  }
  return sdk::makeError(code, what + ": " + natsErrorText(status));
}

NatsBucket::Entry entryOf(kvEntry* e) {
  NatsBucket::Entry out;
  out.key = kvEntry_Key(e);
  const int length = kvEntry_ValueLen(e);
  if (length > 0) {
    out.value.assign(static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(length));
  }
  const kvOperation op = kvEntry_Operation(e);
  out.deleted = op == kvOp_Delete || op == kvOp_Purge;
  out.revision = kvEntry_Revision(e);
  out.created_ms = kvEntry_Created(e) / kNanosPerMilli;
  return out;
}

}  // namespace

sdk::Result<std::unique_ptr<NatsBucket>> NatsBucket::open(JetStreamQueue& queue,
                                                          const std::string& name,
                                                          NatsBucketOptions options) {
  kvStore* kv = nullptr;
  auto opened = patiently([&]() -> sdk::Status {
    natsStatus status = js_KeyValue(&kv, queue.jetStream(), name.c_str());
    if (status == NATS_NOT_FOUND) {
      kvConfig config;
      kvConfig_Init(&config);
      config.Bucket = name.c_str();
      config.History = options.history;
      config.TTL = options.ttl.count() * kNanosPerMilli;
      config.StorageType = js_FileStorage;
      config.Replicas = options.replicas;
      status = js_CreateKeyValue(&kv, queue.jetStream(), &config);
    }
    if (status != NATS_OK) {
      return bucketError("opening the JetStream bucket '" + name + "'", status);
    }
    return {};
  });
  if (!opened.ok()) {
    return opened.error();
  }
  return std::unique_ptr<NatsBucket>(new NatsBucket(name, kv));
}

NatsBucket::~NatsBucket() {
  stopping_.store(true);
  if (watcher_ != nullptr) {
    kvWatcher_Stop(watcher_);  // wakes kvWatcher_Next
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  if (watcher_ != nullptr) {
    kvWatcher_Destroy(watcher_);
  }
  kvStore_Destroy(kv_);
}

sdk::Status NatsBucket::put(const std::string& key, std::string_view value) {
  auto written = write(key, value);
  return written ? sdk::Status{} : sdk::Status(written.error());
}

sdk::Result<std::uint64_t> NatsBucket::write(const std::string& key, std::string_view value) {
  std::uint64_t revision = 0;
  const natsStatus status =
      kvStore_Put(&revision, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  if (status != NATS_OK) {
    return bucketError("writing to the JetStream bucket '" + name_ + "'", status);
  }
  return revision;
}

sdk::Result<std::optional<NatsBucket::Entry>> NatsBucket::get(const std::string& key) {
  kvEntry* entry = nullptr;
  const natsStatus status = kvStore_Get(&entry, kv_, key.c_str());
  if (status == NATS_NOT_FOUND) {
    return std::optional<Entry>();
  }
  if (status != NATS_OK) {
    return bucketError("reading the JetStream bucket '" + name_ + "'", status);
  }
  Entry out = entryOf(entry);
  kvEntry_Destroy(entry);
  return std::optional<Entry>(std::move(out));
}

sdk::Status NatsBucket::erase(const std::string& key) {
  const natsStatus status = kvStore_Delete(kv_, key.c_str());
  if (status != NATS_OK) {
    return bucketError("deleting from the JetStream bucket '" + name_ + "'", status);
  }
  return {};
}

sdk::Result<std::uint64_t> NatsBucket::putIf(const std::string& key, std::string_view value,
                                             std::uint64_t expected) {
  std::uint64_t revision = 0;
  const int length = static_cast<int>(value.size());
  const natsStatus status =
      expected == 0 ? kvStore_Create(&revision, kv_, key.c_str(), value.data(), length)
                    : kvStore_Update(&revision, kv_, key.c_str(), value.data(), length, expected);
  if (status == NATS_OK) {
    return revision;
  }
  if (status == NATS_ERR) {
    // The server refused it: the key's last revision is not the expected one.
    return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                          "key '" + key + "' of the JetStream bucket '" + name_ +
                              "' was written by someone else");
  }
  return bucketError("writing to the JetStream bucket '" + name_ + "'", status);
}

sdk::Status NatsBucket::watch(std::function<void(const Entry&)> on_entry,
                              std::function<void()> on_caught_up) {
  if (watcher_ != nullptr) {
    return sdk::makeError(sdk::ErrorCode::AlreadyExists, "the bucket is watched already");
  }
  kvWatchOptions options;
  kvWatchOptions_Init(&options);
  const natsStatus status = kvStore_WatchAll(&watcher_, kv_, &options);
  if (status != NATS_OK) {
    watcher_ = nullptr;
    return bucketError("watching the JetStream bucket '" + name_ + "'", status);
  }
  thread_ = std::thread([this, on_entry = std::move(on_entry),
                         on_caught_up = std::move(on_caught_up)]() mutable {
    watchLoop(std::move(on_entry), std::move(on_caught_up));
  });
  return {};
}

void NatsBucket::watchLoop(std::function<void(const Entry&)> on_entry,
                           std::function<void()> on_caught_up) {
  while (!stopping_.load()) {
    kvEntry* entry = nullptr;
    const natsStatus status = kvWatcher_Next(&entry, watcher_, 1000);
    if (status == NATS_TIMEOUT) {
      continue;
    }
    if (status != NATS_OK) {
      if (stopping_.load() || status == NATS_ILLEGAL_STATE) {
        return;  // stopped
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (entry == nullptr) {
      // The values present when the watch began have all been given.
      if (on_caught_up) {
        on_caught_up();
        on_caught_up = nullptr;
      }
      continue;
    }
    const Entry e = entryOf(entry);
    kvEntry_Destroy(entry);
    on_entry(e);
  }
}

}  // namespace junction::core::queue
