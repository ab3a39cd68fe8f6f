#include "core/daemon/shared_state.h"

#include <boost/json.hpp>
#include <future>

#include "core/runtime/thread.h"
#include "junction/sdk/crypto.h"

namespace junction::core::daemon {

namespace json = boost::json;

// --- SharedChannel ------------------------------------------------------------------------------

SharedChannel::SharedChannel(queue::NatsBucket& bucket, std::string node_id, sdk::Logger& logger,
                             sdk::Counter& errors, OnRemote on_remote, Options options)
    : bucket_(bucket),
      node_id_(std::move(node_id)),
      logger_(logger),
      errors_(errors),
      on_remote_(std::move(on_remote)),
      options_(std::move(options)) {}

SharedChannel::~SharedChannel() {
  {
    std::lock_guard lock(receiver_->mu);
    receiver_->channel = nullptr;
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) {
    writer_.join();
  }
}

sdk::Status SharedChannel::start(std::chrono::milliseconds catch_up) {
  auto caught_up = std::make_shared<std::promise<void>>();
  auto done = caught_up->get_future();
  {
    std::lock_guard lock(receiver_->mu);
    receiver_->channel = this;
  }
  auto status = bucket_.watch(
      [receiver = receiver_](const queue::NatsBucket::Entry& e) {
        std::lock_guard lock(receiver->mu);
        if (receiver->channel != nullptr) {
          receiver->channel->received(e);
        }
      },
      [caught_up] { caught_up->set_value(); });
  if (!status.ok()) {
    return status;
  }
  if (done.wait_for(catch_up) != std::future_status::ready) {
    logger_.warn("shared state of the other nodes is still being read; it applies as it arrives",
                 {{"bucket", bucket_.name()}});
  }
  writer_ = std::thread([this] {
    runtime::makeThisThreadBackground();
    runtime::nameThisThread("jn-share");
    writeLoop();
  });
  return {};
}

void SharedChannel::publish(std::string key, json::object data) {
  queueWrite({std::move(key),
              json::serialize(json::object{{"origin", node_id_}, {"data", std::move(data)}}),
              false});
}

void SharedChannel::erase(std::string key) { queueWrite({std::move(key), {}, true}); }

void SharedChannel::queueWrite(Write write) {
  {
    std::lock_guard lock(mu_);
    if (unsent_.size() >= options_.max_unsent) {
      unsent_.pop_front();
      errors_.inc();
    }
    unsent_.push_back(std::move(write));
  }
  cv_.notify_all();
}

void SharedChannel::writeLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Failing: once a second. Otherwise as soon as something is queued.
    cv_.wait_for(lock, std::chrono::seconds(1),
                 [this] { return stopping_ || (!failing_ && !unsent_.empty()); });
    while (!stopping_ && !unsent_.empty()) {
      Write write = unsent_.front();
      lock.unlock();
      std::uint64_t revision = 0;
      sdk::Status s;
      if (write.erase) {
        s = bucket_.erase(write.key);
      } else if (auto written = bucket_.write(write.key, write.value); written) {
        revision = *written;
      } else {
        s = written.error();
      }
      if (s.ok() && revision != 0 && options_.on_written) {
        options_.on_written(write.key, revision);
      }
      lock.lock();
      if (!s.ok() && s.error().code == sdk::ErrorCode::InvalidArgument) {
        // Larger than the servers take: trying again would hold back every later write.
        errors_.inc();
        logger_.error("shared record too large for the NATS servers (max_payload): kept on this "
                      "node only",
                      {{"bucket", bucket_.name()}, {"key", write.key}, {"error", s.message()}});
        unsent_.pop_front();
        continue;
      }
      if (!s.ok()) {
        errors_.inc();
        if (!failing_) {
          logger_.error("shared state not written for the other nodes yet (retried every second)",
                        {{"bucket", bucket_.name()}, {"error", s.message()}});
        }
        failing_ = true;
        break;
      }
      if (failing_) {
        logger_.info("shared state written for the other nodes again", {{"bucket", bucket_.name()}});
        failing_ = false;
      }
      unsent_.pop_front();
    }
  }
}

void SharedChannel::received(const queue::NatsBucket::Entry& entry) {
  if (entry.deleted) {
    return;  // a removal: nothing to adopt
  }
  boost::system::error_code ec;
  json::value v = json::parse(entry.value, ec);
  const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
  const json::value* origin = o != nullptr ? o->if_contains("origin") : nullptr;
  const json::value* data = o != nullptr ? o->if_contains("data") : nullptr;
  if (origin == nullptr || !origin->is_string() || data == nullptr || !data->is_object()) {
    errors_.inc();
    logger_.error("unreadable shared record ignored", {{"bucket", bucket_.name()}, {"key", entry.key}});
    return;
  }
  if (origin->as_string() == node_id_) {
    return;  // written here
  }
  on_remote_(entry.key, data->as_object(), std::string(origin->as_string()), entry.revision);
}

// --- SharedPrivacy ------------------------------------------------------------------------------

SharedPrivacy::SharedPrivacy(queue::NatsBucket& regulations, queue::NatsBucket& consent,
                             privacy::PrivacyStore& store, std::string node_id,
                             sdk::Logger& logger, sdk::Metrics& metrics,
                             std::function<void(const privacy::Regulation&)> on_adopted)
    : store_(store),
      logger_(logger),
      adopted_(metrics.counter("junction_regulations_adopted_total",
                               "Regulations made on another node and applied here")),
      errors_(metrics.counter("junction_shared_state_errors_total",
                              "Writes of regulations or consent for the other nodes that failed "
                              "(retried every second), and unreadable records of theirs")),
      on_adopted_(std::move(on_adopted)),
      regulations_(regulations, node_id, logger, errors_,
                   [this](const std::string&, const json::object& data, const std::string& origin,
                          std::uint64_t) { adoptRegulation(data, origin); }),
      consent_(consent, node_id, logger, errors_,
               [this](const std::string&, const json::object& data, const std::string& origin,
                      std::uint64_t) { adoptConsent(data, origin); }) {}

SharedPrivacy::~SharedPrivacy() { store_.setConsentListener(nullptr); }

sdk::Status SharedPrivacy::start(std::chrono::milliseconds catch_up) {
  store_.setConsentListener([this](const std::vector<privacy::PrivacyStore::ConsentChange>& changes) {
    for (const auto& c : changes) {
      consent_.publish(consentKey(c.person), json::object{{"person", c.person},
                                                          {"categories", c.categories},
                                                          {"timestamp_ms", c.timestamp_ms}});
    }
  });
  // Regulations first: consent read afterwards is checked against the deletions.
  if (auto s = regulations_.start(catch_up); !s.ok()) {
    return s;
  }
  return consent_.start(catch_up);
}

std::string SharedPrivacy::consentKey(const std::string& person) { return sdk::sha256Hex(person); }

json::object SharedPrivacy::encode(const privacy::Regulation& r) {
  return json::object{{"id", r.id},
                      {"type", privacy::toString(r.type)},
                      {"subject_kind", privacy::toString(r.subject.kind)},
                      {"subject", r.subject.value},
                      {"created_at_ms", r.created_at_ms}};
}

std::optional<privacy::Regulation> SharedPrivacy::decode(const json::object& data,
                                                         const std::string& origin) {
  auto text = [&](const char* key) -> std::optional<std::string> {
    const json::value* f = data.if_contains(key);
    return f != nullptr && f->is_string() ? std::optional(std::string(f->as_string()))
                                          : std::nullopt;
  };
  auto id = text("id");
  auto type = text("type");
  auto kind = text("subject_kind");
  auto subject = text("subject");
  const json::value* created = data.if_contains("created_at_ms");
  if (!id || !type || !kind || !subject || created == nullptr || !created->is_int64()) {
    return std::nullopt;
  }
  auto parsed_type = privacy::parseRegulationType(*type);
  auto parsed_kind = privacy::parseSubjectKind(*kind);
  if (!parsed_type || !parsed_kind) {
    return std::nullopt;
  }
  privacy::Regulation r;
  r.id = std::move(*id);
  r.type = *parsed_type;
  r.subject = privacy::Subject{*parsed_kind, std::move(*subject)};
  r.created_at_ms = created->as_int64();
  r.status = std::string(privacy::kStatusDone);
  r.detail["origin"] = origin;
  if (r.type == privacy::RegulationType::Delete) {
    r.detail["destinations"] = "erased by node " + origin + " (its status is there)";
  }
  return r;
}

void SharedPrivacy::publish(const privacy::Regulation& r) {
  regulations_.publish(r.id, encode(r));
  if (r.type == privacy::RegulationType::Delete) {
    // The person's consent is erased here; it goes from the shared bucket too.
    const char* prefix = r.subject.kind == privacy::SubjectKind::UserId        ? "u:"
                         : r.subject.kind == privacy::SubjectKind::AnonymousId ? "a:"
                                                                               : nullptr;
    if (prefix != nullptr) {
      consent_.erase(consentKey(prefix + r.subject.value));
    }
  }
}

void SharedPrivacy::adoptRegulation(const json::object& data, const std::string& origin) {
  auto regulation = decode(data, origin);
  if (!regulation) {
    errors_.inc();
    logger_.error("unreadable regulation of another node ignored", {{"origin", origin}});
    return;
  }
  auto adopted = store_.adopt(*regulation);
  if (!adopted) {
    errors_.inc();
    // Not applied: it is read again only after a restart, so say it loudly.
    logger_.error("regulation of another node NOT applied here",
                  {{"regulation", regulation->id}, {"origin", origin},
                   {"error", adopted.error().message}});
    return;
  }
  if (!*adopted) {
    return;  // known already (read again after a restart)
  }
  adopted_.inc();
  logger_.info("regulation of another node applied",
               {{"regulation", regulation->id},
                {"type", privacy::toString(regulation->type)},
                {"origin", origin}});
  if (on_adopted_) {
    on_adopted_(*regulation);
  }
}

void SharedPrivacy::adoptConsent(const json::object& data, const std::string& origin) {
  const json::value* person = data.if_contains("person");
  const json::value* categories = data.if_contains("categories");
  const json::value* at = data.if_contains("timestamp_ms");
  if (person == nullptr || !person->is_string() || categories == nullptr ||
      !categories->is_string() || at == nullptr || !at->is_int64()) {
    errors_.inc();
    logger_.error("unreadable consent of another node ignored", {{"origin", origin}});
    return;
  }
  auto adopted = store_.adoptConsent({std::string(person->as_string()),
                                      std::string(categories->as_string()), at->as_int64()});
  if (!adopted) {
    errors_.inc();
    logger_.warn("consent of another node not remembered here",
                 {{"origin", origin}, {"error", adopted.error().message}});
  }
}

}  // namespace junction::core::daemon
