#include "core/daemon/shared_dead_letters.h"

#include <boost/json.hpp>
#include <algorithm>
#include <fstream>
#include <limits>
#include <thread>

#include "core/queue/record.h"
#include "junction/sdk/crypto.h"

namespace junction::core::daemon {

namespace json = boost::json;

namespace {
constexpr const char* kNextId = "next-id";
constexpr std::string_view kRowPrefix = "dl.";
constexpr int kReserveAttempts = 50;

// next-id is stored like the channel's records, so that the channel passes it over quietly.
std::string counterValue(const std::string& node, std::int64_t next) {
  return json::serialize(json::object{{"origin", node}, {"data", json::object{{"next", next}}}});
}

std::int64_t counterOf(const std::string& value) {
  boost::system::error_code ec;
  auto v = json::parse(value, ec);
  const auto* data = !ec && v.is_object() ? v.as_object().if_contains("data") : nullptr;
  const auto* next = data != nullptr && data->is_object() ? data->as_object().if_contains("next")
                                                         : nullptr;
  return next != nullptr && next->is_int64() ? next->as_int64() : 0;
}
}  // namespace

SharedDeadLetters::SharedDeadLetters(queue::NatsBucket& bucket, delivery::DeadLetterStore& store,
                                     std::string node_id, std::filesystem::path marker,
                                     sdk::Logger& logger, sdk::Metrics& metrics,
                                     std::function<bool(const delivery::DeadLetter&)> replays_here,
                                     std::function<void()> on_adopted)
    : bucket_(bucket),
      store_(store),
      node_id_(std::move(node_id)),
      marker_(std::move(marker)),
      logger_(logger),
      adopted_(metrics.counter("junction_shared_dead_letter_changes_total",
                               "Dead-letter changes of the other nodes applied here")),
      errors_(metrics.counter("junction_shared_dead_letter_errors_total",
                              "Dead-letter changes not written to the shared bucket yet, or not "
                              "applied here (see the log)")),
      replays_here_(std::move(replays_here)),
      on_adopted_(std::move(on_adopted)) {
  SharedChannel::Options options;
  options.on_written = [this](const std::string& key, std::uint64_t revision) {
    written(key, revision);
  };
  channel_ = std::make_unique<SharedChannel>(
      bucket_, node_id_, logger_, errors_,
      [this](const std::string& key, const json::object& data, const std::string&,
             std::uint64_t revision) { received(key, data, revision); },
      std::move(options));
}

SharedDeadLetters::~SharedDeadLetters() { stop(); }

void SharedDeadLetters::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  store_.share({});
  channel_.reset();
}

std::string SharedDeadLetters::keyOf(std::int64_t id) {
  return std::string(kRowPrefix) + std::to_string(id);
}

std::optional<std::int64_t> SharedDeadLetters::idOf(const std::string& key) {
  if (!key.starts_with(kRowPrefix) || key.size() == kRowPrefix.size()) {
    return std::nullopt;
  }
  std::int64_t id = 0;
  for (std::size_t i = kRowPrefix.size(); i < key.size(); ++i) {
    if (key[i] < '0' || key[i] > '9' || id > (INT64_MAX - 9) / 10) {
      return std::nullopt;
    }
    id = id * 10 + (key[i] - '0');
  }
  return id;
}

json::object SharedDeadLetters::encode(const delivery::DeadLetter& row) {
  std::string record;
  (void)queue::encodeRecord(row.event, record);  // the event was encoded into the store already
  return json::object{{"destination", row.destination},
                      {"record", sdk::base64Encode(record)},
                      {"failed_at", row.failed_at_ms},
                      {"attempts", row.attempts},
                      {"reason", row.reason},
                      {"replaying", row.replaying}};
}

std::optional<delivery::DeadLetter> SharedDeadLetters::decode(std::int64_t id,
                                                              const json::object& data) {
  const auto* destination = data.if_contains("destination");
  const auto* record = data.if_contains("record");
  const auto* failed_at = data.if_contains("failed_at");
  const auto* attempts = data.if_contains("attempts");
  const auto* reason = data.if_contains("reason");
  const auto* replaying = data.if_contains("replaying");
  if (destination == nullptr || !destination->is_string() || record == nullptr ||
      !record->is_string() || failed_at == nullptr || !failed_at->is_int64() ||
      attempts == nullptr || !attempts->is_int64() || reason == nullptr || !reason->is_string() ||
      replaying == nullptr || !replaying->is_bool()) {
    return std::nullopt;
  }
  auto bytes = sdk::base64Decode(record->as_string());
  if (!bytes) {
    return std::nullopt;
  }
  auto event = queue::decodeRecord(*bytes);
  if (!event) {
    return std::nullopt;
  }
  delivery::DeadLetter row;
  row.id = id;
  row.destination = std::string(destination->as_string());
  row.event = std::move(event->event);
  row.failed_at_ms = failed_at->as_int64();
  row.attempts = attempts->as_int64();
  row.reason = std::string(reason->as_string());
  row.replaying = replaying->as_bool();
  return row;
}

sdk::Status SharedDeadLetters::start(std::chrono::milliseconds catch_up) {
  auto max_id = store_.maxId();
  if (!max_id) {
    return max_id.error();
  }
  floor_ = *max_id + 1;
  // From now on no node reserves an id this node holds; ids below what was reserved before may
  // be another node's (reserved, or kept from before sharing).
  // A cluster that has just formed may not answer for the bucket yet (its leader is being
  // elected): tried again until `catch_up` has passed.
  const auto deadline = std::chrono::steady_clock::now() + catch_up;
  auto reserved_before = raiseCounter();
  for (bool warned = false; !reserved_before &&
                            reserved_before.error().code == sdk::ErrorCode::Unavailable &&
                            std::chrono::steady_clock::now() < deadline;) {
    if (!warned) {
      logger_.warn("the dead-letter bucket does not answer yet; trying again",
                   {{"bucket", bucket_.name()}, {"error", reserved_before.error().message}});
      warned = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    reserved_before = raiseCounter();
  }
  if (!reserved_before) {
    return reserved_before.error();
  }
  // The bucket is held back until this node's rows that might collide are renumbered.
  if (auto s = channel_->start(catch_up); !s.ok()) {
    return s;
  }
  std::error_code ec;
  const bool shared_before = std::filesystem::exists(marker_, ec);
  if (auto s = shareOwnRows(*reserved_before, shared_before); !s.ok()) {
    return s;
  }
  if (!shared_before) {
    std::ofstream(marker_) << "dead letters shared with the other nodes (queue.backend: nats)\n";
  }
  delivery::DeadLetterStore::Sharing sharing;
  sharing.reserve_ids = [this](std::size_t n) { return reserve(n); };
  sharing.changed = [this](const std::vector<delivery::DeadLetter>& rows,
                           const std::vector<std::int64_t>& gone) { changed(rows, gone); };
  sharing.replays_here = replays_here_;
  store_.share(std::move(sharing));
  return {};
}

sdk::Status SharedDeadLetters::shareOwnRows(std::int64_t reserved_before, bool shared_before) {
  std::map<std::string, json::object> held;
  {
    std::lock_guard lock(mu_);
    held.swap(pending_);
  }
  delivery::DeadLetterFilter all;
  all.limit = std::numeric_limits<std::size_t>::max() / 2;
  auto own = store_.list(all);
  if (!own) {
    return own.error();
  }
  std::size_t written = 0;
  std::size_t renumbered = 0;
  for (auto& row : *own) {
    if (shared_before && held.contains(keyOf(row.id))) {
      continue;  // the bucket has it (or had it, and it is gone): applied below
    }
    if (!shared_before && row.id < reserved_before) {
      // Its id may be another node's: a fresh one.
      auto fresh = reserve(1);
      if (!fresh) {
        return fresh.error();
      }
      const std::int64_t old_id = row.id;
      row.id = *fresh;
      if (auto s = store_.forget(old_id); !s.ok()) {
        return s;
      }
      if (auto s = store_.adopt(row); !s.ok()) {
        return s;
      }
      ++renumbered;
    }
    changed({row}, {});
    ++written;
  }
  {
    std::lock_guard lock(mu_);
    caught_up_ = true;
    for (auto& [key, data] : pending_) {  // arrived meanwhile, after `held`
      held[key] = std::move(data);
    }
    pending_.clear();
  }
  for (const auto& [key, data] : held) {
    apply(key, data);
  }
  if (written > 0) {
    logger_.info("dead letters kept here shared with the other nodes",
                 {{"count", std::to_string(written)}, {"renumbered", std::to_string(renumbered)}});
  }
  return {};
}

sdk::Result<std::int64_t> SharedDeadLetters::raiseCounter() {
  for (int attempt = 0; attempt < kReserveAttempts; ++attempt) {
    auto current = bucket_.get(kNextId);
    if (!current) {
      return current.error();
    }
    std::int64_t value = 0;
    std::uint64_t revision = 0;
    if (*current) {
      revision = (*current)->revision;
      value = counterOf((*current)->value);
    }
    if (value >= floor_) {
      return value;
    }
    auto written = bucket_.putIf(kNextId, counterValue(node_id_, floor_), revision);
    if (written) {
      return value;
    }
    if (written.error().code != sdk::ErrorCode::AlreadyExists) {
      return written.error();
    }
  }
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        "dead-letter ids: too many nodes reserving at once; try again");
}

sdk::Result<std::int64_t> SharedDeadLetters::reserve(std::size_t n) {
  for (int attempt = 0; attempt < kReserveAttempts; ++attempt) {
    auto current = bucket_.get(kNextId);
    if (!current) {
      return current.error();
    }
    std::int64_t next = floor_;
    std::uint64_t revision = 0;
    if (*current) {
      revision = (*current)->revision;
      next = std::max(next, counterOf((*current)->value));  // unreadable: this node's floor
    }
    auto written = bucket_.putIf(
        kNextId, counterValue(node_id_, next + static_cast<std::int64_t>(n)), revision);
    if (written) {
      return next;
    }
    if (written.error().code != sdk::ErrorCode::AlreadyExists) {
      return written.error();
    }
    // Another node reserved meanwhile: read again.
  }
  return sdk::makeError(sdk::ErrorCode::Unavailable,
                        "dead-letter ids: too many nodes reserving at once; try again");
}

void SharedDeadLetters::changed(const std::vector<delivery::DeadLetter>& rows,
                                const std::vector<std::int64_t>& gone) {
  std::lock_guard lock(mu_);
  if (stopping_ || !channel_) {
    return;
  }
  for (const auto& row : rows) {
    ++own_[row.id].unsent;
    channel_->publish(keyOf(row.id), encode(row));
  }
  for (const auto id : gone) {
    ++own_[id].unsent;
    channel_->publish(keyOf(id), json::object{{"removed", true}});
  }
}

void SharedDeadLetters::written(const std::string& key, std::uint64_t revision) {
  const auto id = idOf(key);
  if (!id) {
    return;
  }
  std::optional<json::object> later;
  {
    std::lock_guard lock(mu_);
    auto it = own_.find(*id);
    if (it == own_.end()) {
      return;
    }
    Own& own = it->second;
    own.unsent = std::max(own.unsent - 1, 0);
    own.revision = std::max(own.revision, revision);
    if (own.unsent == 0 && own.held && own.held_revision > own.revision) {
      later = std::move(own.held);  // another node wrote after this one: it wins
    }
    if (own.unsent == 0) {
      own.held.reset();
    }
  }
  if (later) {
    apply(key, *later);
  }
}

void SharedDeadLetters::received(const std::string& key, const json::object& data,
                                 std::uint64_t revision) {
  const auto id = idOf(key);
  if (!id) {
    return;  // next-id
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      return;
    }
    if (!caught_up_) {
      pending_[key] = data;
      return;
    }
    if (auto it = own_.find(*id); it != own_.end()) {
      Own& own = it->second;
      if (own.unsent > 0) {
        if (revision > own.held_revision) {  // decided once this node's writes are stored
          own.held = data;
          own.held_revision = revision;
        }
        return;
      }
      if (revision <= own.revision) {
        return;  // older than this node's last write of it
      }
    }
  }
  apply(key, data);
}

void SharedDeadLetters::apply(const std::string& key, const json::object& data) {
  const auto id = idOf(key);
  if (!id) {
    return;
  }
  sdk::Status status;
  if (const auto* removed = data.if_contains("removed"); removed != nullptr) {
    status = store_.forget(*id);
  } else if (auto row = decode(*id, data); row) {
    status = store_.adopt(*row);
  } else {
    status = sdk::makeError(sdk::ErrorCode::Internal, "unreadable dead letter");
  }
  if (!status.ok()) {
    errors_.inc();
    logger_.error("a dead-letter change of the shared bucket not applied here",
                  {{"key", key}, {"error", status.message()}});
    return;
  }
  adopted_.inc();
  if (on_adopted_) {
    on_adopted_();
  }
}

}  // namespace junction::core::daemon
