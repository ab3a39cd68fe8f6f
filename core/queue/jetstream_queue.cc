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
// Largest message append() builds of several events (a single larger event goes alone).
constexpr std::size_t kMessageBytes = 256 << 10;

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

// One name's consumption: a bound pull subscription per partition this node reads. A NATS
// message holds the events one append call had for one partition; each event is handed out and
// settled on its own, and the message is acknowledged once all of its events are. A nak waits
// here (the message stays outstanding on the server, kept in progress by the caller). When the
// consumer closes, every message not finished goes back to the server with a nak, in stream
// order; for one that was partly finished, which of its events were finished is written to the
// `<stream>-done` bucket first, so whoever gets it next skips them.
class JetStreamQueue::JetStreamConsumer final : public Consumer {
 public:
  JetStreamConsumer(JetStreamQueue& queue, std::string name)
      : Consumer(std::move(name)), queue_(queue) {}

  ~JetStreamConsumer() override {
    std::vector<std::shared_ptr<Message>> live;
    {
      std::lock_guard lock(mu_);
      for (auto& [key, message] : live_) {
        live.push_back(message);
      }
      live_.clear();
      outstanding_.clear();
      waiting_.clear();
    }
    for (auto& message : live) {  // (partition, stream sequence) order
      if (message->open < message->finished.size()) {
        (void)queue_.putDone(doneKey(*message), message->finished);
      }
      natsMsg_NakWithDelay(message->msg, 0, nullptr);
      natsMsg_Destroy(message->msg);
      message->msg = nullptr;
    }
    // Unsubscribe (bound subscriptions: the server's consumers stay), then a flush: acks and
    // naks are sent without waiting, and the flush's round trip makes sure the server has them
    // and that the client's reader is past every message for these subscriptions. libnats 3.4
    // crashes when a subscription is destroyed while its reader is still handing it a message
    // (nats.c issue 637, fixed in 3.6); after the flush none can be in flight.
    for (auto& partition : partitions_) {
      natsSubscription_Unsubscribe(partition.subscription);
    }
    natsConnection_FlushTimeout(queue_.connection_, 2000);
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
      takeDue(max_messages, max_bytes, out, bytes);
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
      // Nothing anywhere: poll again soon, less often the longer the queue stays empty, and no
      // later than the next nak's due time.
      auto sleep = std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
      {
        std::lock_guard lock(mu_);
        if (!waiting_.empty()) {
          sleep = std::min(sleep, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      waiting_.begin()->first - now) + std::chrono::milliseconds(1));
        }
      }
      std::this_thread::sleep_for(std::max(sleep, std::chrono::milliseconds(0)));
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    return out;
  }

  sdk::Status ack(const QueueMessage& message) override {
    std::lock_guard lock(mu_);
    return settleLocked(message, stats_.acked);
  }

  sdk::Status nak(const QueueMessage& message, std::chrono::milliseconds delay) override {
    std::lock_guard lock(mu_);
    auto it = outstanding_.find(message.handle);
    if (it == outstanding_.end()) {
      return notOutstanding(message);
    }
    // It waits here; its NATS message stays outstanding (the caller keeps it in progress).
    waiting_.emplace(Clock::now() + std::max(delay, std::chrono::milliseconds(0)),
                     Waiting{it->second, message.deliveries + 1, message.event});
    outstanding_.erase(it);
    ++stats_.nacked;
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
      return stored;  // still outstanding
    }
    std::lock_guard lock(mu_);
    return settleLocked(message, stats_.terminated);
  }

  sdk::Status inProgress(const QueueMessage& message) override {
    std::lock_guard lock(mu_);
    auto it = outstanding_.find(message.handle);
    if (it == outstanding_.end()) {
      return notOutstanding(message);
    }
    Message& held = *it->second.message;
    const auto now = Clock::now();
    if (now - held.progress_at < std::chrono::milliseconds(500)) {
      return {};  // told for another of its events just now
    }
    held.progress_at = now;
    const natsStatus status = natsMsg_InProgress(held.msg, nullptr);
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
    stats.outstanding = outstanding_.size() + waiting_.size();
    return stats;
  }

 private:
  struct Partition {
    std::uint32_t number = 0;
    natsSubscription* subscription = nullptr;
  };
  // One NATS message and the settlement of its events.
  struct Message {
    natsMsg* msg = nullptr;
    std::uint32_t partition = 0;
    std::uint64_t sequence = 0;
    std::vector<bool> finished;
    std::size_t open = 0;  // events not finished
    bool had_done_record = false;
    Clock::time_point progress_at{};
  };
  struct Ref {
    std::shared_ptr<Message> message;
    std::size_t index = 0;
  };
  struct Waiting {
    Ref ref;
    std::uint32_t deliveries = 1;
    sdk::Event event;
  };

  std::string doneKey(const Message& message) const {
    return durableName(name(), message.partition) + "." + std::to_string(message.sequence);
  }

  sdk::Status notOutstanding(const QueueMessage& message) const {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "message " + std::to_string(message.sequence) +
                              " is not outstanding for consumer '" + name() + "'");
  }

  // Finishes an outstanding event (acked or dead-lettered), counted in `counter`.
  sdk::Status settleLocked(const QueueMessage& message, std::uint64_t& counter) {
    auto it = outstanding_.find(message.handle);
    if (it == outstanding_.end()) {
      return notOutstanding(message);
    }
    Ref ref = it->second;
    outstanding_.erase(it);
    ++counter;
    return finishLocked(ref);
  }

  sdk::Status finishLocked(const Ref& ref) {
    Message& message = *ref.message;
    if (!message.finished[ref.index]) {
      message.finished[ref.index] = true;
      --message.open;
    }
    if (message.open != 0 || message.msg == nullptr) {
      return {};
    }
    const natsStatus status = natsMsg_Ack(message.msg, nullptr);
    if (message.had_done_record) {
      queue_.deleteDone(doneKey(message));
    }
    natsMsg_Destroy(message.msg);
    message.msg = nullptr;
    live_.erase({message.partition, message.sequence});
    if (status != NATS_OK) {
      // The server redelivers it after ack_wait: delivered twice, never lost.
      return natsError(sdk::ErrorCode::Unavailable, "acknowledging a message", status);
    }
    return {};
  }

  // Naks whose delay passed, first.
  void takeDue(std::size_t max, std::size_t max_bytes, std::vector<QueueMessage>& out,
               std::size_t& bytes) {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    while (!waiting_.empty() && waiting_.begin()->first <= now && out.size() < max) {
      Waiting& w = waiting_.begin()->second;
      const std::size_t size = w.event.json().size();
      if (!out.empty() && bytes + size > max_bytes) {
        return;
      }
      bytes += size;
      QueueMessage message;
      message.handle = ++next_handle_;
      message.sequence = w.ref.message->sequence;
      message.partition = w.ref.message->partition;
      message.deliveries = w.deliveries;
      message.event = std::move(w.event);
      outstanding_.emplace(message.handle, std::move(w.ref));
      out.push_back(std::move(message));
      waiting_.erase(waiting_.begin());
    }
  }

  // What is there now in one partition (no wait), decoded into `out`.
  sdk::Status fetchFrom(Partition& partition, std::size_t max, std::vector<QueueMessage>& out,
                        std::size_t& bytes) {
    jsFetchRequest request;
    jsFetchRequest_Init(&request);
    // A message holds up to one call's events of this partition: ask for few, they are big.
    request.Batch = static_cast<int>(std::clamp<std::size_t>(max / 8, 1, 1000));
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
      take(partition, msg, out, bytes);
    }
    natsMsgList_Destroy(&list);
    return {};
  }

  void take(Partition& partition, natsMsg* msg, std::vector<QueueMessage>& out,
            std::size_t& bytes) {
    std::string_view data(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    bytes += data.size();
    std::vector<sdk::Event> events;
    while (!data.empty()) {
      auto decoded = decodeRecord(data);
      if (!decoded.ok() || decoded->size == 0 || decoded->size > data.size()) {
        events.clear();
        break;
      }
      events.push_back(std::move(decoded->event));
      data.remove_prefix(decoded->size);
    }
    if (events.empty()) {
      // Not something junctiond published: it can never be delivered; drop it for good.
      natsMsg_Term(msg, nullptr);
      natsMsg_Destroy(msg);
      return;
    }
    auto message = std::make_shared<Message>();
    message->msg = msg;
    message->partition = partition.number;
    message->finished.assign(events.size(), false);
    message->open = events.size();
    std::uint32_t deliveries = 1;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      message->sequence = meta->Sequence.Stream;
      deliveries = static_cast<std::uint32_t>(meta->NumDelivered);
      jsMsgMetaData_Destroy(meta);
    }
    if (deliveries > 1) {
      // Handed back before: some of its events may be finished already.
      if (auto done = queue_.getDone(doneKey(*message)); done) {
        message->had_done_record = true;
        for (std::size_t i = 0; i < done->size() && i < events.size(); ++i) {
          if ((*done)[i]) {
            message->finished[i] = true;
            --message->open;
          }
        }
      }
    }
    std::lock_guard lock(mu_);
    live_.emplace(std::make_pair(message->partition, message->sequence), message);
    if (message->open == 0) {
      (void)finishLocked(Ref{message, 0});
      return;
    }
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (message->finished[i]) {
        continue;
      }
      QueueMessage out_message;
      out_message.handle = ++next_handle_;
      out_message.sequence = message->sequence;
      out_message.partition = partition.number;
      out_message.deliveries = deliveries;
      out_message.event = std::move(events[i]);
      outstanding_.emplace(out_message.handle, Ref{message, i});
      out.push_back(std::move(out_message));
    }
  }

  JetStreamQueue& queue_;
  std::vector<Partition> partitions_;
  std::size_t next_ = 0;  // the partition a fetch starts with, rotating for fairness

  mutable std::mutex mu_;
  std::uint64_t next_handle_ = 0;
  std::unordered_map<std::uint64_t, Ref> outstanding_;
  std::multimap<Clock::time_point, Waiting> waiting_;
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::shared_ptr<Message>> live_;
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
  if (auto status = queue->openDoneBucket(); !status.ok()) {
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
  kvStore_Destroy(done_);
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
  // One message per partition the call touches (split at kMessageBytes), each holding that
  // partition's events in call order: per-message costs on both sides are what limits a
  // JetStream stream's rate. Everything is encoded first: a call is refused whole
  // (InvalidArgument) before anything is sent.
  const std::int64_t max_payload = natsConnection_GetMaxPayload(connection_);
  const std::size_t limit =
      std::min<std::size_t>(kMessageBytes, max_payload > 0 ? static_cast<std::size_t>(max_payload)
                                                           : kMessageBytes);
  std::map<std::uint32_t, std::vector<std::string>> bodies;  // partition -> message bodies
  std::string record;
  for (const auto& event : events) {
    record.clear();
    if (auto status = encodeRecord(event, record); !status.ok()) {
      return status;
    }
    if (max_payload > 0 && record.size() > static_cast<std::uint64_t>(max_payload)) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "an event of " + std::to_string(record.size()) +
                                " bytes exceeds the NATS server's max_payload (" +
                                std::to_string(max_payload) + " bytes)");
    }
    auto& list = bodies[partitionOf(personOf(event), options_.partitions)];
    if (list.empty() || list.back().size() + record.size() > limit) {
      list.emplace_back();
    }
    list.back() += record;
  }
  std::vector<natsMsg*> messages;
  for (const auto& [partition, list] : bodies) {
    const std::string subject = subjectOf(partition);
    for (const auto& body : list) {
      natsMsg* msg = nullptr;
      const natsStatus status = natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(),
                                               static_cast<int>(body.size()));
      if (status != NATS_OK) {
        for (natsMsg* m : messages) natsMsg_Destroy(m);
        return natsError(sdk::ErrorCode::Internal, "building a NATS message", status);
      }
      messages.push_back(msg);
    }
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
  appended_.fetch_add(events.size(), std::memory_order_relaxed);
  return {};
}

sdk::Status JetStreamQueue::openDoneBucket() {
  const std::string bucket = options_.stream + "-done";
  natsStatus status = js_KeyValue(&done_, js_, bucket.c_str());
  if (status == NATS_NOT_FOUND) {
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = bucket.c_str();
    config.History = 1;
    config.TTL = 7LL * 24 * 3600 * 1000 * kNanosPerMilli;  // a record outlives any handback
    config.StorageType = js_FileStorage;
    config.Replicas = options_.replicas;
    status = js_CreateKeyValue(&done_, js_, &config);
  }
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "opening the JetStream bucket '" + bucket + "'",
                     status);
  }
  return {};
}

sdk::Status JetStreamQueue::putDone(const std::string& key, const std::vector<bool>& finished) {
  std::string bits((finished.size() + 7) / 8, '\0');
  for (std::size_t i = 0; i < finished.size(); ++i) {
    if (finished[i]) bits[i / 8] = static_cast<char>(bits[i / 8] | (1 << (i % 8)));
  }
  std::uint64_t revision = 0;
  const natsStatus status =
      kvStore_Put(&revision, done_, key.c_str(), bits.data(), static_cast<int>(bits.size()));
  if (status != NATS_OK) {
    // Without it the finished events of that message are delivered again (at least once).
    return natsError(sdk::ErrorCode::Unavailable, "recording finished events", status);
  }
  return {};
}

std::optional<std::vector<bool>> JetStreamQueue::getDone(const std::string& key) {
  kvEntry* entry = nullptr;
  if (kvStore_Get(&entry, done_, key.c_str()) != NATS_OK) {
    return std::nullopt;
  }
  const auto* bits = static_cast<const unsigned char*>(kvEntry_Value(entry));
  const int length = kvEntry_ValueLen(entry);
  std::vector<bool> finished(static_cast<std::size_t>(std::max(length, 0)) * 8, false);
  for (std::size_t i = 0; i < finished.size(); ++i) {
    finished[i] = (bits[i / 8] >> (i % 8)) & 1;
  }
  kvEntry_Destroy(entry);
  return finished;
}

void JetStreamQueue::deleteDone(const std::string& key) {
  kvStore_Purge(done_, key.c_str(), nullptr);
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
