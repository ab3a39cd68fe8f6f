#include "core/queue/jetstream_queue.h"

#include <nats/nats.h>

#include <algorithm>
#include <limits>
#include <map>
#include <thread>

#include "core/queue/record.h"

namespace junction::core::queue {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::int64_t kNanosPerMilli = 1'000'000;

sdk::Error natsError(sdk::ErrorCode code, const std::string& what, natsStatus status,
                     jsErrCode js_error = static_cast<jsErrCode>(0)) {
  return sdk::makeError(code, what + ": " + natsErrorText(status, js_error));
}

// The partition a durable consumer's filter subject names ("<stream>.p.<n>"), or -1.
long partitionOfSubject(const std::string& stream, const char* subject) {
  if (subject == nullptr) {
    return -1;
  }
  const std::string prefix = stream + ".p.";
  const std::string_view text(subject);
  if (text.size() <= prefix.size() || text.substr(0, prefix.size()) != prefix) {
    return -1;
  }
  long n = 0;
  for (const char c : text.substr(prefix.size())) {
    if (c < '0' || c > '9') {
      return -1;
    }
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

std::string natsErrorText(int status, int js_error) {
  std::string text = natsStatus_GetText(static_cast<natsStatus>(status));
  if (js_error != 0) {
    text += " (JetStream error " + std::to_string(js_error) + ")";
  }
  return text;
}

// One name's consumption: a bound pull subscription per partition this node reads.
class JetStreamQueue::JetStreamConsumer final : public Consumer {
 public:
  JetStreamConsumer(JetStreamQueue& queue, std::string name)
      : Consumer(std::move(name)), queue_(queue) {}

  ~JetStreamConsumer() override {
    // Unsubscribe first (bound subscriptions: the server's consumers stay), then a flush: acks
    // are sent without waiting, and the flush's round trip makes sure the server has them and
    // that the client's reader is past every message for these subscriptions. libnats 3.4
    // crashes when a subscription is destroyed while its reader is still handing it a message
    // (nats.c issue 637, fixed in 3.6); after the flush none can be in flight.
    for (auto& partition : partitions_) {
      natsSubscription_Unsubscribe(partition.subscription);
    }
    natsConnection_FlushTimeout(queue_.connection_, 2000);
    std::lock_guard lock(mu_);
    for (auto& [handle, message] : outstanding_) {
      natsMsg_Destroy(message);  // not acknowledged: the server redelivers after ack_wait
    }
    outstanding_.clear();
    for (auto& partition : partitions_) {
      natsSubscription_Destroy(partition.subscription);
    }
  }

  sdk::Status subscribe(StartAt start) {
    for (std::uint32_t p = 0; p < queue_.options_.partitions; ++p) {
      const std::string durable = durableName(name(), p);
      const std::string subject = queue_.subjectOf(p);
      jsConsumerInfo* info = nullptr;
      jsErrCode js_error = static_cast<jsErrCode>(0);
      natsStatus status = js_GetConsumerInfo(&info, queue_.js_, queue_.options_.stream.c_str(),
                                             durable.c_str(), nullptr, &js_error);
      if (status == NATS_NOT_FOUND) {
        jsConsumerConfig config;
        jsConsumerConfig_Init(&config);
        config.Durable = durable.c_str();
        config.Name = durable.c_str();
        config.FilterSubject = subject.c_str();
        config.AckPolicy = js_AckExplicit;
        config.AckWait = queue_.options_.ack_wait.count() * kNanosPerMilli;
        config.MaxDeliver = -1;
        config.MaxAckPending = 100'000;
        config.DeliverPolicy = start == StartAt::Earliest ? js_DeliverAll : js_DeliverNew;
        status = js_AddConsumer(&info, queue_.js_, queue_.options_.stream.c_str(), &config,
                                nullptr, &js_error);
      }
      jsConsumerInfo_Destroy(info);
      if (status != NATS_OK) {
        return natsError(sdk::ErrorCode::Unavailable,
                         "creating JetStream consumer '" + durable + "'", status, js_error);
      }
      jsSubOptions sub_options;
      jsSubOptions_Init(&sub_options);
      sub_options.Stream = queue_.options_.stream.c_str();
      sub_options.Consumer = durable.c_str();
      sub_options.ManualAck = true;
      natsSubscription* subscription = nullptr;
      status = js_PullSubscribe(&subscription, queue_.js_, subject.c_str(), durable.c_str(),
                                nullptr, &sub_options, &js_error);
      if (status != NATS_OK) {
        return natsError(sdk::ErrorCode::Unavailable,
                         "subscribing to JetStream consumer '" + durable + "'", status, js_error);
      }
      partitions_.push_back(Partition{p, subscription});
    }
    return {};
  }

  sdk::Result<std::vector<QueueMessage>> fetch(std::size_t max_messages, std::size_t max_bytes,
                                               std::chrono::milliseconds wait) override {
    const auto deadline = Clock::now() + wait;
    std::vector<QueueMessage> out;
    auto pause = std::chrono::milliseconds(1);
    while (max_messages > 0) {
      std::size_t bytes = 0;
      std::string problem;
      for (std::size_t i = 0; i < partitions_.size() && out.size() < max_messages &&
                              bytes < max_bytes;
           ++i) {
        Partition& partition = partitions_[(next_ + i) % partitions_.size()];
        auto status = fetchFrom(partition, max_messages - out.size(), out, bytes);
        if (!status.ok()) {
          problem = status.message();
        }
      }
      next_ = (next_ + 1) % std::max<std::size_t>(partitions_.size(), 1);
      if (!out.empty()) {
        std::lock_guard lock(mu_);
        stats_.fetched += out.size();
        return out;
      }
      if (!problem.empty() && Clock::now() >= deadline) {
        return sdk::makeError(sdk::ErrorCode::Unavailable, problem);
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        break;
      }
      // Nothing anywhere: poll again soon, less often the longer the queue stays empty.
      std::this_thread::sleep_for(
          std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    return out;
  }

  sdk::Status ack(const QueueMessage& message) override {
    natsMsg* msg = take(message.handle);
    if (msg == nullptr) {
      return notOutstanding(message);
    }
    const natsStatus status = natsMsg_Ack(msg, nullptr);
    natsMsg_Destroy(msg);
    std::lock_guard lock(mu_);
    ++stats_.acked;
    if (status != NATS_OK) {
      // The server redelivers it after ack_wait: delivered twice, never lost.
      return natsError(sdk::ErrorCode::Unavailable, "acknowledging a message", status);
    }
    return {};
  }

  sdk::Status nak(const QueueMessage& message, std::chrono::milliseconds delay) override {
    natsMsg* msg = take(message.handle);
    if (msg == nullptr) {
      return notOutstanding(message);
    }
    const natsStatus status =
        natsMsg_NakWithDelay(msg, std::max<std::int64_t>(delay.count(), 0), nullptr);
    natsMsg_Destroy(msg);
    std::lock_guard lock(mu_);
    ++stats_.nacked;
    if (status != NATS_OK) {
      return natsError(sdk::ErrorCode::Unavailable, "nak of a message", status);
    }
    return {};
  }

  sdk::Status term(const QueueMessage& message, std::string_view reason) override {
    {
      std::lock_guard lock(mu_);
      if (!outstanding_.contains(message.handle)) {
        return notOutstanding(message);
      }
    }
    if (!queue_.options_.dead_letters) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the queue has no dead-letter sink");
    }
    auto stored = queue_.options_.dead_letters(name(), message.event, reason, message.deliveries);
    if (!stored.ok()) {
      return stored;  // still outstanding: redelivered after ack_wait if nothing else happens
    }
    natsMsg* msg = take(message.handle);
    if (msg == nullptr) {
      return notOutstanding(message);
    }
    // Synchronous: the dead letter is stored; once the server confirms the termination, the
    // message cannot come back as well.
    const natsStatus status = natsMsg_Term(msg, nullptr);
    natsMsg_Destroy(msg);
    std::lock_guard lock(mu_);
    ++stats_.terminated;
    if (status != NATS_OK) {
      return natsError(sdk::ErrorCode::Unavailable, "terminating a message", status);
    }
    return {};
  }

  sdk::Status inProgress(const QueueMessage& message) override {
    std::lock_guard lock(mu_);  // held: the message must not be destroyed meanwhile
    auto it = outstanding_.find(message.handle);
    if (it == outstanding_.end()) {
      return notOutstanding(message);
    }
    const natsStatus status = natsMsg_InProgress(it->second, nullptr);
    if (status != NATS_OK) {
      return natsError(sdk::ErrorCode::Unavailable, "extending a message's ack wait", status);
    }
    return {};
  }

  std::chrono::milliseconds redeliveryTimeout() const noexcept override {
    return queue_.options_.ack_wait;
  }

  ConsumerStats stats() const override {
    std::lock_guard lock(mu_);
    ConsumerStats stats = stats_;
    stats.outstanding = outstanding_.size();
    return stats;
  }

 private:
  struct Partition {
    std::uint32_t number = 0;
    natsSubscription* subscription = nullptr;
  };

  sdk::Status notOutstanding(const QueueMessage& message) const {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "message " + std::to_string(message.sequence) +
                              " is not outstanding for consumer '" + name() + "'");
  }

  natsMsg* take(std::uint64_t handle) {
    std::lock_guard lock(mu_);
    auto it = outstanding_.find(handle);
    if (it == outstanding_.end()) {
      return nullptr;
    }
    natsMsg* msg = it->second;
    outstanding_.erase(it);
    return msg;
  }

  // What is there now in one partition (no wait), decoded into `out`.
  sdk::Status fetchFrom(Partition& partition, std::size_t max, std::vector<QueueMessage>& out,
                        std::size_t& bytes) {
    jsFetchRequest request;
    jsFetchRequest_Init(&request);
    request.Batch = static_cast<int>(std::min<std::size_t>(max, 10'000));
    request.NoWait = true;
    request.Expires = 0;
    natsMsgList list{nullptr, 0};
    const natsStatus status = natsSubscription_FetchRequest(&list, partition.subscription, &request);
    if (status == NATS_TIMEOUT || status == NATS_NOT_FOUND) {
      natsMsgList_Destroy(&list);
      return {};
    }
    if (status != NATS_OK) {
      natsMsgList_Destroy(&list);
      return natsError(sdk::ErrorCode::Unavailable,
                       "fetching from " + queue_.subjectOf(partition.number), status);
    }
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* msg = list.Msgs[i];
      list.Msgs[i] = nullptr;
      const std::string_view data(natsMsg_GetData(msg),
                                  static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
      auto decoded = decodeRecord(data);
      if (!decoded.ok()) {
        // Not something junctiond published: it can never be delivered; drop it for good.
        natsMsg_Term(msg, nullptr);
        natsMsg_Destroy(msg);
        continue;
      }
      QueueMessage message;
      message.partition = partition.number;
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        message.sequence = meta->Sequence.Stream;
        message.deliveries = static_cast<std::uint32_t>(meta->NumDelivered);
        jsMsgMetaData_Destroy(meta);
      }
      message.event = std::move(decoded->event);
      bytes += data.size();
      {
        std::lock_guard lock(mu_);
        message.handle = ++next_handle_;
        outstanding_.emplace(message.handle, msg);
      }
      out.push_back(std::move(message));
    }
    natsMsgList_Destroy(&list);
    return {};
  }

  JetStreamQueue& queue_;
  std::vector<Partition> partitions_;
  std::size_t next_ = 0;  // the partition a fetch starts with, rotating for fairness

  mutable std::mutex mu_;
  std::uint64_t next_handle_ = 0;
  std::unordered_map<std::uint64_t, natsMsg*> outstanding_;
  ConsumerStats stats_;
};

JetStreamQueue::JetStreamQueue(JetStreamOptions options) : options_(std::move(options)) {}

sdk::Result<std::unique_ptr<JetStreamQueue>> JetStreamQueue::open(JetStreamOptions options) {
  if (options.urls.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "queue.url names no NATS server");
  }
  if (options.partitions == 0) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "queue.partitions must be at least 1");
  }
  std::unique_ptr<JetStreamQueue> queue(new JetStreamQueue(std::move(options)));
  if (auto status = queue->connect(); !status.ok()) {
    return status.error();
  }
  if (auto status = queue->ensureStream(); !status.ok()) {
    return status.error();
  }
  return queue;
}

sdk::Status JetStreamQueue::connect() {
  natsOptions* opts = nullptr;
  natsStatus status = natsOptions_Create(&opts);
  std::vector<const char*> servers;
  for (const auto& url : options_.urls) {
    servers.push_back(url.c_str());
  }
  if (status == NATS_OK) {
    status = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
  }
  if (status == NATS_OK) status = natsOptions_SetName(opts, options_.client_name.c_str());
  if (status == NATS_OK) status = natsOptions_SetTimeout(opts, options_.connect_timeout.count());
  if (status == NATS_OK) status = natsOptions_SetMaxReconnect(opts, -1);  // forever
  if (status == NATS_OK) status = natsOptions_SetReconnectWait(opts, 250);
  if (status == NATS_OK && !options_.credentials_file.empty()) {
    status = natsOptions_SetUserCredentialsFromFiles(opts, options_.credentials_file.c_str(),
                                                     nullptr);
  }
  if (status == NATS_OK && options_.tls) {
    status = natsOptions_SetSecure(opts, true);
    if (status == NATS_OK && !options_.tls_ca_file.empty()) {
      status = natsOptions_LoadCATrustedCertificates(opts, options_.tls_ca_file.c_str());
    }
  }
  if (status != NATS_OK) {
    natsOptions_Destroy(opts);
    return natsError(sdk::ErrorCode::InvalidArgument, "NATS client options", status);
  }
  status = natsConnection_Connect(&connection_, opts);
  natsOptions_Destroy(opts);
  if (status != NATS_OK) {
    std::string urls;
    for (const auto& url : options_.urls) {
      urls += (urls.empty() ? "" : ",") + url;
    }
    // No credentials in the text: only the servers tried and the client's reason.
    return natsError(sdk::ErrorCode::Unavailable, "connecting to NATS at " + urls, status);
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = options_.publish_timeout.count();
  js_options.PublishAsync.MaxPending = options_.max_pending_publishes;
  js_options.PublishAsync.AckHandler = &JetStreamQueue::onPublishAck;
  js_options.PublishAsync.AckHandlerClosure = this;
  js_options.PublishAsync.StallWait = 1000;
  status = natsConnection_JetStream(&js_, connection_, &js_options);
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "opening the JetStream context", status);
  }
  return {};
}

sdk::Status JetStreamQueue::ensureStream() {
  const std::string subjects = options_.stream + ".p.*";
  jsStreamInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus status =
      js_GetStreamInfo(&info, js_, options_.stream.c_str(), nullptr, &js_error);
  if (status == NATS_OK) {
    bool matches = false;
    for (int i = 0; info->Config != nullptr && i < info->Config->SubjectsLen; ++i) {
      matches = matches || subjects == info->Config->Subjects[i];
    }
    jsStreamInfo_Destroy(info);
    if (!matches) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "the JetStream stream '" + options_.stream +
                                "' exists and does not hold the subjects " + subjects +
                                ": choose another queue.stream");
    }
    return {};
  }
  if (status != NATS_NOT_FOUND) {
    return natsError(sdk::ErrorCode::Unavailable,
                     "looking up the JetStream stream '" + options_.stream + "'", status,
                     js_error);
  }
  const char* subject_list[] = {subjects.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = options_.stream.c_str();
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Retention = js_LimitsPolicy;
  config.Replicas = options_.replicas;
  config.MaxBytes = options_.max_bytes == 0 ? -1 : static_cast<std::int64_t>(options_.max_bytes);
  config.Discard = js_DiscardNew;  // a full queue refuses new events; it never drops old ones
  config.MaxMsgSize = static_cast<std::int32_t>(kMaxPayloadBytes + kRecordHeaderSize);
  status = js_AddStream(&info, js_, &config, nullptr, &js_error);
  jsStreamInfo_Destroy(info);
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable,
                     "creating the JetStream stream '" + options_.stream + "'", status, js_error);
  }
  return {};
}

JetStreamQueue::~JetStreamQueue() {
  if (js_ != nullptr) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = options_.publish_timeout.count();
    js_PublishAsyncComplete(js_, &wait);
  }
  if (connection_ != nullptr) {
    natsConnection_FlushTimeout(connection_, 2000);
    natsConnection_Close(connection_);
  }
  // Publishes never answered: their calls fail now (nothing of them may be relied on).
  std::unordered_map<natsMsg*, std::shared_ptr<PendingCall>> left;
  {
    std::lock_guard lock(pending_mu_);
    left.swap(pending_);
  }
  for (auto& [msg, call] : left) {
    if (--call->remaining == 0 && !call->abandoned) {
      call->done(sdk::makeError(sdk::ErrorCode::Unavailable,
                                "the queue closed before NATS acknowledged the events"));
    }
  }
  jsCtx_Destroy(js_);
  natsConnection_Destroy(connection_);
}

bool JetStreamQueue::connected() const {
  return connection_ != nullptr && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED;
}

std::string JetStreamQueue::subjectOf(std::uint32_t partition) const {
  return options_.stream + ".p." + std::to_string(partition);
}

std::string JetStreamQueue::durableName(const std::string& name, std::uint32_t partition) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '_';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + "-p" + std::to_string(partition);
}

void JetStreamQueue::onPublishAck(jsCtx*, natsMsg* msg, jsPubAck*, jsPubAckErr* error,
                                  void* closure) {
  static_cast<JetStreamQueue*>(closure)->published(msg, error);
  natsMsg_Destroy(msg);
}

void JetStreamQueue::published(natsMsg* msg, const jsPubAckErr* error) {
  std::shared_ptr<PendingCall> call;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(msg);
    if (it == pending_.end()) {
      return;
    }
    call = std::move(it->second);
    pending_.erase(it);
    if (error != nullptr && !call->failed) {
      call->failed = true;
      call->error = error->ErrText != nullptr && *error->ErrText != '\0'
                        ? std::string(error->ErrText)
                        : natsErrorText(error->Err, error->ErrCode);
    }
    if (--call->remaining != 0 || call->abandoned) {
      return;
    }
  }
  if (call->failed) {
    call->done(sdk::makeError(sdk::ErrorCode::Unavailable,
                              "NATS did not store the events: " + call->error));
  } else {
    call->done(sdk::Status::success());
  }
}

sdk::Status JetStreamQueue::append(std::vector<sdk::Event> events, AppendCallback done) {
  if (events.empty()) {
    done(sdk::Status::success());
    return {};
  }
  if (!connected()) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, "not connected to NATS");
  }
  // Encode everything first: a call is refused whole (InvalidArgument) before anything is sent.
  std::vector<natsMsg*> messages;
  messages.reserve(events.size());
  std::string buffer;
  auto destroyAll = [&messages] {
    for (natsMsg* m : messages) natsMsg_Destroy(m);
  };
  for (const auto& event : events) {
    buffer.clear();
    if (auto status = encodeRecord(event, buffer); !status.ok()) {
      destroyAll();
      return status;
    }
    const std::int64_t max_payload = natsConnection_GetMaxPayload(connection_);
    if (max_payload > 0 && buffer.size() > static_cast<std::uint64_t>(max_payload)) {
      destroyAll();
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "an event of " + std::to_string(buffer.size()) +
                                " bytes exceeds the NATS server's max_payload (" +
                                std::to_string(max_payload) + " bytes)");
    }
    natsMsg* msg = nullptr;
    const std::string subject =
        subjectOf(partitionOf(personOf(event), options_.partitions));
    const natsStatus status = natsMsg_Create(&msg, subject.c_str(), nullptr, buffer.data(),
                                             static_cast<int>(buffer.size()));
    if (status != NATS_OK) {
      destroyAll();
      return natsError(sdk::ErrorCode::Internal, "building a NATS message", status);
    }
    messages.push_back(msg);
  }
  auto call = std::make_shared<PendingCall>();
  call->done = std::move(done);
  call->remaining = messages.size();
  {
    std::lock_guard lock(pending_mu_);
    for (natsMsg* msg : messages) {
      pending_.emplace(msg, call);
    }
  }
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MaxWait = options_.publish_timeout.count();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    natsMsg* msg = messages[i];
    const natsStatus status = js_PublishMsgAsync(js_, &msg, &publish);
    if (status != NATS_OK) {
      // The library did not take this one, nor will it take the rest: the call fails now. The
      // ones already sent may be stored (a retry by the client repeats them: at least once).
      std::lock_guard lock(pending_mu_);
      call->abandoned = true;
      for (std::size_t j = i; j < messages.size(); ++j) {
        pending_.erase(messages[j]);
        natsMsg_Destroy(messages[j]);
      }
      return natsError(status == NATS_TIMEOUT ? sdk::ErrorCode::ResourceExhausted
                                              : sdk::ErrorCode::Unavailable,
                       "publishing to NATS", status);
    }
  }
  appended_.fetch_add(messages.size(), std::memory_order_relaxed);
  return {};
}

sdk::Result<std::unique_ptr<Consumer>> JetStreamQueue::consumer(const std::string& name,
                                                                StartAt start) {
  auto consumer = std::make_unique<JetStreamConsumer>(*this, name);
  if (auto status = consumer->subscribe(start); !status.ok()) {
    return status.error();
  }
  return std::unique_ptr<Consumer>(std::move(consumer));
}

sdk::Status JetStreamQueue::removeConsumer(const std::string& name) {
  for (std::uint32_t p = 0; p < options_.partitions; ++p) {
    const std::string durable = durableName(name, p);
    jsErrCode js_error = static_cast<jsErrCode>(0);
    const natsStatus status =
        js_DeleteConsumer(js_, options_.stream.c_str(), durable.c_str(), nullptr, &js_error);
    if (status != NATS_OK && status != NATS_NOT_FOUND) {
      return natsError(sdk::ErrorCode::Unavailable, "deleting JetStream consumer '" + durable + "'",
                       status, js_error);
    }
  }
  return {};
}

sdk::Result<std::size_t> JetStreamQueue::retain() {
  jsConsumerInfoList* list = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus status = js_Consumers(&list, js_, options_.stream.c_str(), nullptr, &js_error);
  if (status == NATS_NOT_FOUND) {
    return std::size_t{0};  // no consumer at all
  }
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "listing JetStream consumers", status, js_error);
  }
  // Per partition: the lowest acknowledgement floor over its consumers.
  std::map<long, std::uint64_t> floor;
  for (int i = 0; i < list->Count; ++i) {
    const jsConsumerInfo* info = list->List[i];
    const long p = partitionOfSubject(options_.stream,
                                      info->Config != nullptr ? info->Config->FilterSubject
                                                              : nullptr);
    if (p < 0) {
      continue;
    }
    auto [it, inserted] = floor.emplace(p, info->AckFloor.Stream);
    if (!inserted) {
      it->second = std::min(it->second, info->AckFloor.Stream);
    }
  }
  jsConsumerInfoList_Destroy(list);
  std::size_t purged = 0;
  for (const auto& [p, acked] : floor) {
    if (acked == 0) {
      continue;
    }
    const std::string subject = subjectOf(static_cast<std::uint32_t>(p));
    jsOptions options;
    jsOptions_Init(&options);
    options.Stream.Purge.Subject = subject.c_str();
    options.Stream.Purge.Sequence = acked + 1;  // up to, not including
    status = js_PurgeStream(js_, options_.stream.c_str(), &options, &js_error);
    if (status != NATS_OK) {
      return natsError(sdk::ErrorCode::Unavailable, "purging " + subject, status, js_error);
    }
    ++purged;
  }
  return purged;
}

QueueStats JetStreamQueue::stats() const {
  QueueStats stats;
  stats.appended = appended_.load(std::memory_order_relaxed);
  stats.stored_messages = std::numeric_limits<std::uint64_t>::max();
  jsStreamInfo* info = nullptr;
  if (js_GetStreamInfo(&info, js_, options_.stream.c_str(), nullptr, nullptr) == NATS_OK) {
    stats.stored_messages = info->State.Msgs;
    stats.stored_bytes = info->State.Bytes;
  }
  jsStreamInfo_Destroy(info);
  return stats;
}

}  // namespace junction::core::queue
