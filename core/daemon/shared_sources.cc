#include "core/daemon/shared_sources.h"

#include <vector>

#include "core/queue/partition_ownership.h"

namespace junction::core::daemon {

SourceLeases::SourceLeases(queue::NatsBucket& bucket, std::string node,
                           std::chrono::milliseconds heartbeat, sdk::Logger& logger)
    : bucket_(bucket), node_(std::move(node)), heartbeat_(heartbeat), logger_(logger) {}

SourceLeases::~SourceLeases() { stop(); }

void SourceLeases::add(const std::string& source_id) {
  std::lock_guard io(io_mu_);
  Lease lease;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || leases_.contains(source_id)) {
      return;
    }
    lease.key = queue::escapeName(source_id);
    leases_[source_id] = lease;
  }
  renewOrTake(source_id, lease);
  std::lock_guard lock(mu_);
  if (auto it = leases_.find(source_id); it != leases_.end()) {
    it->second = std::move(lease);
  }
}

void SourceLeases::remove(const std::string& source_id) {
  std::lock_guard io(io_mu_);
  Lease lease;
  {
    std::lock_guard lock(mu_);
    auto it = leases_.find(source_id);
    if (it == leases_.end()) {
      return;
    }
    lease = std::move(it->second);
    leases_.erase(it);
  }
  release(source_id, lease);
}

void SourceLeases::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) {
    return;
  }
  thread_ = std::thread([this] {
    std::unique_lock waiting(mu_);
    while (!cv_.wait_for(waiting, heartbeat_, [this] { return stopping_; })) {
      waiting.unlock();
      pass();
      waiting.lock();
    }
  });
}

void SourceLeases::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  std::lock_guard io(io_mu_);
  std::map<std::string, Lease> leases;
  {
    std::lock_guard lock(mu_);
    leases.swap(leases_);
  }
  for (auto& [id, lease] : leases) {
    release(id, lease);
  }
}

bool SourceLeases::holds(const std::string& source_id) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(source_id);
  return it != leases_.end() && it->second.revision != 0 &&
         Clock::now() - it->second.renewed_at < 2 * heartbeat_;
}

std::string SourceLeases::holder(const std::string& source_id) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(source_id);
  return it == leases_.end() ? std::string() : it->second.holder;
}

void SourceLeases::pass() {
  std::lock_guard io(io_mu_);
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      return;
    }
    for (const auto& [id, lease] : leases_) {
      ids.push_back(id);
    }
  }
  for (const auto& id : ids) {
    Lease lease;
    {
      std::lock_guard lock(mu_);
      auto it = leases_.find(id);
      if (it == leases_.end()) {
        continue;
      }
      lease = it->second;
    }
    renewOrTake(id, lease);
    std::lock_guard lock(mu_);
    if (auto it = leases_.find(id); it != leases_.end()) {
      it->second = std::move(lease);
    }
  }
}

void SourceLeases::renewOrTake(const std::string& id, Lease& lease) {
  const auto sent = Clock::now();  // the fence counts from before the server stamped it
  if (lease.revision != 0) {
    auto renewed = bucket_.putIf(lease.key, node_, lease.revision);
    if (renewed) {
      lease.revision = *renewed;
      lease.renewed_at = sent;
      return;
    }
    if (renewed.error().code != sdk::ErrorCode::AlreadyExists) {
      return;  // NATS did not answer: the fence stops the syncs meanwhile
    }
    lease.revision = 0;
    logger_.warn("source lease lost: this node stops running the source's syncs",
                 {{"source", id}});
  }
  auto taken = bucket_.putIf(lease.key, node_, 0);
  if (!taken && taken.error().code == sdk::ErrorCode::AlreadyExists) {
    // Held by another node, or released (empty): a released lease is taken at its revision.
    auto current = bucket_.get(lease.key);
    if (current && *current) {
      if ((*current)->value.empty()) {
        taken = bucket_.putIf(lease.key, node_, (*current)->revision);
      } else {
        lease.holder = (*current)->value;
      }
    }
  }
  if (taken) {
    lease.revision = *taken;
    lease.renewed_at = sent;
    lease.holder = node_;
    logger_.info("source lease taken: this node runs the source's syncs", {{"source", id}});
  }
}

void SourceLeases::release(const std::string& id, Lease& lease) {
  if (lease.revision == 0) {
    return;
  }
  // Only at our revision: a lease another node took meanwhile stays its own.
  if (bucket_.putIf(lease.key, "", lease.revision)) {
    logger_.info("source lease released", {{"source", id}});
  }
  lease.revision = 0;
}

NatsCheckpointStore::NatsCheckpointStore(queue::NatsBucket& bucket, std::string source_id,
                                         std::filesystem::path legacy,
                                         std::function<bool()> may_write)
    : bucket_(bucket),
      source_id_(std::move(source_id)),
      legacy_(std::move(legacy)),
      may_write_(std::move(may_write)) {}

std::string NatsCheckpointStore::bucketKey(std::string_view source_id, std::string_view key) {
  return queue::escapeName(source_id) + "." + queue::escapeName(key);
}

sdk::Result<std::optional<std::string>> NatsCheckpointStore::load(std::string_view key) noexcept {
  try {
    const std::string k = bucketKey(source_id_, key);
    auto got = bucket_.get(k);
    if (!got) {
      return sdk::makeError(got.error().code, "reading checkpoint '" + std::string(key) +
                                                  "': " + got.error().message);
    }
    std::lock_guard lock(mu_);
    if (*got) {
      revisions_[k] = (*got)->revision;
      return std::optional<std::string>((*got)->value);
    }
    revisions_[k] = 0;
    return legacy_.load(key);
  } catch (const std::exception& e) {
    return sdk::makeError(sdk::ErrorCode::Internal, std::string("reading a checkpoint: ") + e.what());
  }
}

sdk::Status NatsCheckpointStore::store(std::string_view key, std::string_view value) noexcept {
  try {
    if (may_write_ && !may_write_()) {
      return sdk::makeError(sdk::ErrorCode::Unavailable,
                            "source '" + source_id_ + "' is not run by this node now (its lease " +
                                "is elsewhere): checkpoint '" + std::string(key) + "' not stored");
    }
    const std::string k = bucketKey(source_id_, key);
    std::lock_guard lock(mu_);
    std::uint64_t expected = 0;
    if (auto it = revisions_.find(k); it != revisions_.end()) {
      expected = it->second;
    } else {
      auto got = bucket_.get(k);
      if (!got) {
        return sdk::makeError(got.error().code, "storing checkpoint '" + std::string(key) +
                                                    "': " + got.error().message);
      }
      expected = *got ? (*got)->revision : 0;
    }
    auto written = bucket_.putIf(k, value, expected);
    if (written) {
      revisions_[k] = *written;
      return {};
    }
    revisions_.erase(k);
    if (written.error().code == sdk::ErrorCode::AlreadyExists) {
      return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                            "checkpoint '" + std::string(key) + "' of source '" + source_id_ +
                                "' was moved by another node since this node read it: not "
                                "overwritten");
    }
    return sdk::makeError(written.error().code, "storing checkpoint '" + std::string(key) +
                                                    "': " + written.error().message);
  } catch (const std::exception& e) {
    return sdk::makeError(sdk::ErrorCode::Internal, std::string("storing a checkpoint: ") + e.what());
  }
}

}  // namespace junction::core::daemon
