#include "core/queue/jetstream_queue.h"

#include <nats/nats.h>

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/queue/record.h"

namespace junction::core::queue {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::int64_t kNanosPerMilli = 1'000'000;
// How long a pull request may go without its end before it is given up (its partition then
// pauses for an ack wait).
constexpr auto kPullAnswerTimeout = std::chrono::milliseconds(2000);
// How long open() keeps asking for the stream while the servers do not answer.
constexpr auto kStreamPatience = std::chrono::seconds(20);
// How long the order check waits for the server (a flush, then the consumer's info), and how
// long after one went unanswered the others do not ask (during an election none would answer):
// it runs while the partitions are held, and a takeover waits for them.
constexpr auto kOrderCheckTimeout = std::chrono::milliseconds(250);
constexpr auto kOrderCheckQuiet = std::chrono::milliseconds(1000);
// Largest message append() builds of several events (a single larger event goes alone).
constexpr std::size_t kMessageBytes = 256 << 10;
constexpr int kRoundsInFlight = 2;  // see publishRounds()
constexpr std::chrono::microseconds kIdlePullBackoff{10'000};  // see fetchFrom()

sdk::Error natsError(sdk::ErrorCode code, const std::string& what, natsStatus status,
                     jsErrCode js_error = static_cast<jsErrCode>(0)) {
  return sdk::makeError(code, what + ": " + natsErrorText(status, js_error));
}

std::string randomHex(int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string out;
  while (static_cast<int>(out.size()) < digits) {
    out += kHex[random() & 15];
  }
  return out;
}

// "<hostname>-<pid>-<4 random hex digits>": unique per process, readable in a lease.
std::string defaultNodeId() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) {
    host[0] = '\0';
  }
  std::string name;
  for (const char c : std::string_view(host).substr(0, 64)) {
    name += validNodeId(std::string_view(&c, 1)) ? c : '-';
  }
  return (name.empty() ? "node" : name) + "-" + std::to_string(::getpid()) + "-" + randomHex(4);
}

std::string_view entryValue(kvEntry* entry) {
  const int length = kvEntry_ValueLen(entry);
  if (length <= 0) {
    return {};
  }
  return {static_cast<const char*>(kvEntry_Value(entry)), static_cast<std::size_t>(length)};
}

std::int64_t steadyNanos(Clock::time_point at) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
}

}  // namespace

std::string natsErrorText(int status, int js_error) {
  std::string text = natsStatus_GetText(static_cast<natsStatus>(status));
  if (js_error != 0) {
    text += " (JetStream error " + std::to_string(js_error) + ")";
  }
  return text;
}

// One name's consumption: a durable pull consumer per partition, pulled (one request at a time,
// answered on an inbox of the partition's) only while this node holds the partition's lease. A NATS message holds the events one append call had for one
// partition; each event is handed out and settled on its own, and the message is acknowledged
// once all of its events are. A nak waits here (the message stays outstanding on the server,
// kept in progress by the caller). When the consumer closes, or hands a partition over, every
// message not finished goes back to the server with a nak, in stream order; for one that was
// partly finished, which of its events were finished is written to the `<stream>-done` bucket
// first, so whoever gets it next skips them.
//
// Threads: fetch/ack/nak/term/inProgress on the caller's; rebalance() on the queue's ownership
// thread (or in consumer(), before the consumer is registered). mu_ guards the messages,
// lease_mu_ the leases, and fetch_mu_ makes "stop reading a partition" wait for a fetch that is
// reading it, so that every message it fetched is outstanding before a handover looks.
class JetStreamQueue::JetStreamConsumer final : public Consumer {
 public:
  JetStreamConsumer(JetStreamQueue& queue, std::string name)
      : Consumer(std::move(name)),
        queue_(queue),
        leases_(queue.options_.partitions),
        phase_(std::make_unique<std::atomic<LeasePhase>[]>(queue.options_.partitions)) {
    for (std::uint32_t p = 0; p < queue.options_.partitions; ++p) {
      phase_[p].store(LeasePhase::Free);
    }
  }

  ~JetStreamConsumer() override {
    queue_.unregisterConsumer(this);  // no ownership pass touches this consumer any more
    {
      std::lock_guard lock(lease_mu_);
      std::vector<std::shared_ptr<Message>> back;
      {
        std::lock_guard messages_lock(mu_);
        back = takeBackLocked([](std::uint32_t) { return true; });
      }
      (void)giveBack(back);
      // A lease still waiting for a dead holder's messages to come back is left as it is: its
      // next taker finds it held by a node that is gone and waits as this one did. Likewise a
      // lease whose last pull got no answer: what that pull got is not back yet.
      for (std::uint32_t p = 0; p < leases_.size(); ++p) {
        const bool held =
            leases_[p].phase == LeasePhase::Reading || leases_[p].phase == LeasePhase::Draining;
        if (held && Clock::now() >= readableFrom(partitions_[p])) {
          (void)releaseLease(p);
        }
      }
    }
    // Acks and naks are sent without waiting: the flush's round trip makes sure the server has
    // them. The server's consumers stay.
    natsConnection_FlushTimeout(queue_.connection_, 2000);
    for (auto& partition : partitions_) {
      closeInbox(partition);
    }
  }

  sdk::Status subscribe(StartAt start) {
    for (std::uint32_t p = 0; p < queue_.options_.partitions; ++p) {
      const std::string durable = durableName(name(), p);
      const std::string subject = queue_.subjectOf(p);
      // The ack wait the server applies is the one the consumer was created with (by any node).
      auto ack_wait = queue_.options_.ack_wait;
      auto created = patiently([&]() -> sdk::Status {
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
        if (status == NATS_OK && info->Config != nullptr && info->Config->AckWait > 0) {
          ack_wait = std::chrono::milliseconds(info->Config->AckWait / kNanosPerMilli);
        }
        jsConsumerInfo_Destroy(info);
        if (status != NATS_OK) {
          return natsError(sdk::ErrorCode::Unavailable,
                           "creating JetStream consumer '" + durable + "'", status, js_error);
        }
        return {};
      });
      if (!created.ok()) {
        return created;
      }
      Partition partition;
      partition.number = p;
      partition.durable = durable;
      partition.next_subject =
          "$JS.API.CONSUMER.MSG.NEXT." + queue_.options_.stream + "." + durable;
      partition.ack_wait = ack_wait;
      partitions_.push_back(std::move(partition));
      if (auto opened = openInbox(partitions_.back()); !opened.ok()) {
        return opened;
      }
    }
    return {};
  }

  // One ownership pass over this consumer's partitions, with the live nodes of `view`: takes
  // the free leases of the partitions assigned to this node (at once), takes those of dead
  // holders (reading after takeoverReadAt), hands over those assigned elsewhere once drained.
  // `check` also re-reads every lease held (after a gap in heartbeats, and now and then).
  void rebalance(const MembershipView& view, bool check) {
    std::lock_guard lock(lease_mu_);
    for (std::uint32_t p = 0; p < partitions_.size(); ++p) {
      if (check && leases_[p].phase != LeasePhase::Free) {
        checkLease(p);
      }
      const bool mine = view.assignee(name(), p) == queue_.self_.id;
      switch (leases_[p].phase) {
        case LeasePhase::Free:
          if (mine) {
            acquire(p, view);
          }
          break;
        case LeasePhase::Waiting:
          // Not handed over before it is read: the dead holder's messages must come back
          // first, whoever reads next.
          if (view.serverNow() >= leases_[p].read_from_ns) {
            setPhase(p, LeasePhase::Reading);
          }
          break;
        case LeasePhase::Reading:
          if (!mine) {
            setPhase(p, LeasePhase::Draining);
            finishDraining(p);
          }
          break;
        case LeasePhase::Draining:
          if (mine) {
            setPhase(p, LeasePhase::Reading);
          } else {
            finishDraining(p);
          }
          break;
      }
    }
  }

  // The earliest server time from which a lease taken from a dead node may be read; nullopt
  // when no lease waits.
  std::optional<std::int64_t> nextReadFrom() {
    std::lock_guard lock(lease_mu_);
    std::optional<std::int64_t> next;
    for (const Lease& lease : leases_) {
      if (lease.phase == LeasePhase::Waiting) {
        next = std::min(next.value_or(lease.read_from_ns), lease.read_from_ns);
      }
    }
    return next;
  }

  // Reads the leases waiting after a takeover whose time has come by server time `server_now`
  // (between heartbeats: a takeover does not wait for the next one).
  void readDue(std::int64_t server_now) {
    std::lock_guard lock(lease_mu_);
    for (std::uint32_t p = 0; p < leases_.size(); ++p) {
      if (leases_[p].phase == LeasePhase::Waiting && server_now >= leases_[p].read_from_ns) {
        setPhase(p, LeasePhase::Reading);
      }
    }
  }

  std::vector<std::uint32_t> readingPartitions() const {
    std::vector<std::uint32_t> out;
    for (std::uint32_t p = 0; p < partitions_.size(); ++p) {
      if (phase_[p].load() == LeasePhase::Reading) {
        out.push_back(p);
      }
    }
    return out;
  }

  // How many times new messages were left for later because earlier ones of their partition
  // were pending elsewhere (keepInOrder).
  std::uint64_t orderWaits() const { return order_waits_.load(); }

  sdk::Result<std::vector<QueueMessage>> fetch(std::size_t max_messages, std::size_t max_bytes,
                                               std::chrono::milliseconds wait) override {
    const auto deadline = Clock::now() + wait;
    std::vector<QueueMessage> out;
    auto pause = std::chrono::milliseconds(1);
    while (max_messages > 0) {
      std::size_t bytes = 0;
      takeDue(max_messages, max_bytes, out, bytes);
      const std::string problem = readPartitions(max_messages, max_bytes, out, bytes);
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

  // Not sent for a partition this node does not hold, or while it is fenced: its messages must
  // run out their ack wait, since another node may be about to take the partition over and
  // counts on them coming back by then.
  sdk::Status inProgress(const QueueMessage& message) override {
    std::lock_guard lock(mu_);
    auto it = outstanding_.find(message.handle);
    if (it == outstanding_.end()) {
      return notOutstanding(message);
    }
    Message& held = *it->second.message;
    if (!holds(held.partition) || !queue_.fresh()) {
      return {};
    }
    const auto now = Clock::now();
    if (now - held.progress_at < std::chrono::milliseconds(500)) {
      return {};  // told for another of its events just now
    }
    held.progress_at = now;
    const natsStatus status = sendAck(held.msg, "+WPI");
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
    std::string durable;       // also the key of its lease
    std::string next_subject;  // where pull requests go
    std::chrono::milliseconds ack_wait{0};
    // Pulls are answered here (a plain subscription on an inbox of its own). Under fetch_mu_.
    std::string inbox;
    natsSubscription* subscription = nullptr;
    // After a pull got no answer: what the server sent for it may be lost on the way, and comes
    // back only after the ack wait; reading (or handing over) before would put later messages
    // first. Under fetch_mu_.
    Clock::time_point paused_until{};
    // After pulls that found nothing: not asked again before idle_until. Under fetch_mu_.
    std::chrono::microseconds idle_backoff{0};
    Clock::time_point idle_until{};
    // Some of the partition's earlier messages may be pending elsewhere (keepInOrder): set when
    // the lease starts being read, after a reconnect (seen_reconnect_ns), a pull that got no
    // answer, or a gap in the consumer's delivery sequence (next_delivery, 0: unknown). Under
    // fetch_mu_.
    bool confirm_order = true;
    std::int64_t seen_reconnect_ns = 0;
    std::uint64_t next_delivery = 0;
  };
  // A message as a pull brought it.
  struct Fetched {
    std::uint64_t sequence = 0;  // in the stream
    std::uint64_t delivery = 0;  // the consumer's delivery sequence
    std::uint64_t deliveries = 1;
    natsMsg* msg = nullptr;
  };
  // A partition's lease, as this node sees it:
  //   Free      not held (or lost)
  //   Waiting   held, taken from a dead node: not read until read_from_ns (server time)
  //   Reading   held and read
  //   Draining  held, assigned to another node: not read; handed over once nothing of it is
  //             handed out
  enum class LeasePhase : std::uint8_t { Free, Waiting, Reading, Draining };
  struct Lease {
    LeasePhase phase = LeasePhase::Free;
    std::uint64_t revision = 0;  // of the lease entry that names this node
    std::int64_t read_from_ns = 0;
    // A handover's last nak whose answer did not come: asked again before the lease is freed.
    std::string unconfirmed_nak;
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

  // When the partition may be read (or handed over) again: after a pull that got no answer
  // (paused_until), and after the connection came back. Pulls sent while it was down wait in
  // the client and reach the new server after the reconnect; what the server sends for them
  // goes to an inbox no longer listened to and comes back only an ack wait later, behind the
  // partition's later messages if it were read before.
  Clock::time_point readableFrom(const Partition& partition) const {
    const std::int64_t reconnected = queue_.reconnected_at_ns_.load();
    const Clock::time_point after_reconnect =
        reconnected == 0 ? Clock::time_point{}
                         : Clock::time_point(std::chrono::nanoseconds(reconnected)) +
                               partition.ack_wait + kTakeoverMargin;
    return std::max(partition.paused_until, after_reconnect);
  }

  bool holds(std::uint32_t partition) const {
    const LeasePhase phase = phase_[partition].load();
    return phase == LeasePhase::Reading || phase == LeasePhase::Draining;
  }

  // Under lease_mu_. Taking fetch_mu_ makes a fetch that is reading the partition finish first.
  void setPhase(std::uint32_t partition, LeasePhase phase) {
    bool starts_reading = false;
    {
      std::lock_guard lock(fetch_mu_);
      starts_reading = phase == LeasePhase::Reading && leases_[partition].phase != LeasePhase::Reading;
      if (starts_reading) {
        partitions_[partition].confirm_order = true;
        partitions_[partition].next_delivery = 0;
      }
      leases_[partition].phase = phase;
      phase_[partition].store(phase);
    }
    if (starts_reading && queue_.options_.on_partition_read) {
      queue_.options_.on_partition_read(name());
    }
  }

  // New messages of the partitions this node reads, round robin from a rotating start; the
  // last problem met, "" if none.
  std::string readPartitions(std::size_t max_messages, std::size_t max_bytes,
                             std::vector<QueueMessage>& out, std::size_t& bytes) {
    std::string problem;
    std::size_t first = 0;
    {
      std::lock_guard lock(fetch_mu_);
      first = next_;
      next_ = (next_ + 1) % std::max<std::size_t>(partitions_.size(), 1);
    }
    for (std::size_t i = 0; i < partitions_.size() && out.size() < max_messages && bytes < max_bytes;
         ++i) {
      // One partition at a time: a lease's phase may change between two (a takeover waits for
      // at most one pull).
      std::lock_guard lock(fetch_mu_);
      if (!queue_.connected()) {
        return "not connected to NATS";  // a pull now would wait in the client (readableFrom)
      }
      if (!queue_.fresh()) {
        break;
      }
      Partition& partition = partitions_[(first + i) % partitions_.size()];
      const auto now = Clock::now();
      if (phase_[partition.number].load() != LeasePhase::Reading ||
          now < readableFrom(partition) || now < partition.idle_until) {
        continue;
      }
      auto status = fetchFrom(partition, max_messages - out.size(), out, bytes);
      if (!status.ok()) {
        problem = status.message();
      }
    }
    return problem;
  }

  // A free lease (absent, or released: empty) is taken at once; one held by a live node is
  // left to it (it hands it over); one whose holder is gone (judgeHolder) is taken and read
  // from takeoverReadAt() on.
  void acquire(std::uint32_t p, const MembershipView& view) {
    const std::string& key = partitions_[p].durable;
    const std::string value = encodeNodeIdentity(queue_.self_);
    kvEntry* entry = nullptr;
    const natsStatus status = kvStore_Get(&entry, queue_.owners_, key.c_str());
    if (status == NATS_NOT_FOUND) {
      std::uint64_t revision = 0;
      if (kvStore_Create(&revision, queue_.owners_, key.c_str(), value.data(),
                         static_cast<int>(value.size())) == NATS_OK) {
        leases_[p].revision = revision;
        setPhase(p, LeasePhase::Reading);
      }
      return;
    }
    if (status != NATS_OK) {
      return;  // tried again at the next heartbeat
    }
    const std::uint64_t held_revision = kvEntry_Revision(entry);
    const std::int64_t held_since = kvEntry_Created(entry);
    const auto holder = decodeNodeIdentity(entryValue(entry));
    kvEntry_Destroy(entry);
    const LeaseHolder judged = judgeHolder(view, holder, held_since, name(), queue_.self_);
    if (judged == LeaseHolder::Live) {
      return;
    }
    std::uint64_t revision = 0;
    if (kvStore_Update(&revision, queue_.owners_, key.c_str(), value.data(),
                       static_cast<int>(value.size()), held_revision) != NATS_OK) {
      return;  // someone else was quicker, or NATS did not answer: seen at the next heartbeat
    }
    leases_[p].revision = revision;
    leases_[p].read_from_ns = view.serverNow();
    if (judged == LeaseHolder::Gone) {
      const auto heartbeat = *holder == queue_.self_ ? std::nullopt : view.lastHeartbeat(*holder);
      leases_[p].read_from_ns =
          takeoverReadAt(heartbeat, view.serverNow(), pendingMessages(p),
                         std::max(fenceAfter(queue_.options_.heartbeat), queue_.options_.node_ttl),
                         partitions_[p].ack_wait);
    }
    setPhase(p, view.serverNow() >= leases_[p].read_from_ns ? LeasePhase::Reading
                                                            : LeasePhase::Waiting);
  }

  // The partition consumer's NumAckPending; 1 (something may be pending) when unknown.
  std::int64_t pendingMessages(std::uint32_t p) {
    jsConsumerInfo* info = nullptr;
    const natsStatus status =
        js_GetConsumerInfo(&info, queue_.membership_js_, queue_.options_.stream.c_str(),
                           partitions_[p].durable.c_str(), nullptr, nullptr);
    const std::int64_t pending = status == NATS_OK ? info->NumAckPending : 1;
    jsConsumerInfo_Destroy(info);
    return pending;
  }

  // Whether the lease still names this node. A read older than ours (a lagging replica) says
  // nothing; a lease naming another node, or gone (removeConsumer), is lost: the partition is
  // not read, its messages' ack waits not extended. NATS not answering changes nothing (the
  // fence stops reading meanwhile).
  void checkLease(std::uint32_t p) {
    kvEntry* entry = nullptr;
    const natsStatus status = kvStore_Get(&entry, queue_.owners_, partitions_[p].durable.c_str());
    if (status == NATS_NOT_FOUND) {
      setPhase(p, LeasePhase::Free);
      return;
    }
    if (status != NATS_OK) {
      return;
    }
    const std::uint64_t revision = kvEntry_Revision(entry);
    const auto holder = decodeNodeIdentity(entryValue(entry));
    kvEntry_Destroy(entry);
    if (holder && *holder == queue_.self_) {
      leases_[p].revision = revision;
    } else if (revision > leases_[p].revision) {
      setPhase(p, LeasePhase::Free);
    }
  }

  // Frees the lease (empty value, at our revision). True when it is not ours any more.
  bool releaseLease(std::uint32_t p) {
    std::uint64_t revision = 0;
    const natsStatus status =
        kvStore_Update(&revision, queue_.owners_, partitions_[p].durable.c_str(), "", 0,
                       leases_[p].revision);
    if (status != NATS_OK) {
      // Changed by someone else (ours no more), or NATS did not answer (still ours).
      checkLease(p);
      if (leases_[p].phase != LeasePhase::Free) {
        return false;
      }
    }
    setPhase(p, LeasePhase::Free);
    return true;
  }

  // Draining: once nothing of the partition is handed out (every event acked, dead-lettered or
  // nak'd), hands the nak'd ones back, and frees the lease when the server confirmed the naks.
  void finishDraining(std::uint32_t p) {
    Lease& lease = leases_[p];
    if (!lease.unconfirmed_nak.empty()) {
      if (!confirmNak(lease.unconfirmed_nak)) {
        return;
      }
      lease.unconfirmed_nak.clear();
    }
    std::vector<std::shared_ptr<Message>> back;
    {
      std::lock_guard reading(fetch_mu_);
      if (Clock::now() < readableFrom(partitions_[p])) {
        return;
      }
      back = unreadMessages(partitions_[p]);
    }
    bool drained = false;
    {
      std::lock_guard lock(mu_);
      drained = std::none_of(outstanding_.begin(), outstanding_.end(), [p](const auto& entry) {
        return entry.second.message->partition == p;
      });
      if (drained) {
        auto taken = takeBackLocked([p](std::uint32_t partition) { return partition == p; });
        back.insert(back.end(), taken.begin(), taken.end());
      }
    }
    std::stable_sort(back.begin(), back.end(),
                     [](const auto& a, const auto& b) { return a->sequence < b->sequence; });
    lease.unconfirmed_nak = giveBack(back);
    if (drained && lease.unconfirmed_nak.empty()) {
      (void)releaseLease(p);
    }
  }

  // Removes and returns the messages of the partitions `which` selects, whatever their state,
  // in (partition, stream sequence) order. Under mu_.
  template <typename Which>
  std::vector<std::shared_ptr<Message>> takeBackLocked(Which which) {
    std::vector<std::shared_ptr<Message>> back;
    for (auto it = live_.begin(); it != live_.end();) {
      if (which(it->first.first)) {
        back.push_back(std::move(it->second));
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
    std::erase_if(outstanding_,
                  [&](const auto& entry) { return which(entry.second.message->partition); });
    std::erase_if(waiting_,
                  [&](const auto& entry) { return which(entry.second.ref.message->partition); });
    return back;
  }

  // Hands `messages` back to the server: a partly finished one's finished events into
  // <stream>-done first, then a nak. The last nak of each partition is a request: the server
  // answers once it has handled it, and it handles one connection's acks for one consumer in
  // order, so the answer covers the partition's earlier naks, and a node taking the lease after
  // that gets these messages before the partition's later ones. A message of a partition this
  // node lost is only dropped: its new holder may have it already. Returns "" or the ack subject
  // of a last nak that got no answer.
  std::string giveBack(std::vector<std::shared_ptr<Message>>& messages) {
    std::string unconfirmed;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      Message& message = *messages[i];
      if (message.msg == nullptr) {
        continue;
      }
      const char* reply = natsMsg_GetReply(message.msg);
      const bool last = i + 1 == messages.size() || messages[i + 1]->partition != message.partition;
      if (holds(message.partition)) {
        if (message.open < message.finished.size()) {
          (void)queue_.putDone(doneKey(message), message.finished);
        }
        if (last && reply != nullptr) {
          if (!confirmNak(reply)) {
            unconfirmed = reply;
          }
        } else {
          (void)sendAck(message.msg, "-NAK");
        }
      }
      natsMsg_Destroy(message.msg);
      message.msg = nullptr;
    }
    return unconfirmed;
  }

  // A nak sent as a request to the message's ack subject. Sending it again is harmless while
  // this node holds the lease: a message already queued for redelivery is not queued twice.
  bool confirmNak(const std::string& ack_subject) {
    natsMsg* answer = nullptr;
    const natsStatus status = natsConnection_RequestString(&answer, queue_.connection_,
                                                           ack_subject.c_str(), "-NAK", 2000);
    natsMsg_Destroy(answer);
    return status == NATS_OK;
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
    const natsStatus status = sendAck(message.msg, "+ACK");
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

  // What is there now in one partition, decoded into `out`. One pull request (no_wait, no
  // expiry) at a time, read until the server ends it: `batch` messages, or a status (404
  // nothing there, 408 fewer than asked). libnats' fetch with no_wait returns before the answer
  // arrives and leaves the request to the server, which keeps one that got nothing registered
  // and answers it with messages that come later: after a handover those would reach a node
  // that no longer reads the partition and come back to the new holder only after the ack
  // wait, behind the partition's later messages.
  sdk::Status fetchFrom(Partition& partition, std::size_t max, std::vector<QueueMessage>& out,
                        std::size_t& bytes) {
    // A message holds up to one call's events of this partition: ask for few, they are big.
    const std::size_t batch = std::clamp<std::size_t>(max / 8, 1, 1000);
    if (partition.subscription == nullptr) {
      if (auto opened = openInbox(partition); !opened.ok()) {
        return opened;
      }
    }
    const std::string request = "{\"batch\":" + std::to_string(batch) + ",\"no_wait\":true}";
    natsStatus status = natsConnection_PublishRequest(
        queue_.connection_, partition.next_subject.c_str(), partition.inbox.c_str(),
        request.data(), static_cast<int>(request.size()));
    std::vector<Fetched> fetched;
    const auto deadline = Clock::now() + kPullAnswerTimeout;
    while (status == NATS_OK && fetched.size() < batch) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      natsMsg* msg = nullptr;
      status = natsSubscription_NextMsg(&msg, partition.subscription,
                                        std::max<std::int64_t>(left.count(), 1));
      if (status != NATS_OK) {
        break;
      }
      if (isStatus(msg)) {
        natsMsg_Destroy(msg);
        break;  // the request is over
      }
      fetched.push_back(fetchedOf(msg));
    }
    if (status == NATS_OK && fetched.empty()) {
      // Nothing there: asked again a little later, the longer it stays empty (up to
      // kIdlePullBackoff): each pull costs the server as much as a message, and the other
      // partitions may have plenty.
      partition.idle_backoff =
          std::clamp(partition.idle_backoff * 2, std::chrono::microseconds(500), kIdlePullBackoff);
      partition.idle_until = Clock::now() + partition.idle_backoff;
    } else {
      partition.idle_backoff = std::chrono::microseconds(0);
      partition.idle_until = Clock::time_point{};
    }
    if (status == NATS_TIMEOUT) {
      // No end seen: the request may still stand. A new inbox makes the server drop it.
      partition.paused_until = Clock::now() + partition.ack_wait + kTakeoverMargin;
      partition.confirm_order = true;
      closeInbox(partition);
      (void)openInbox(partition);
    }
    if (const std::int64_t reconnected = queue_.reconnected_at_ns_.load();
        reconnected != partition.seen_reconnect_ns) {
      partition.seen_reconnect_ns = reconnected;
      partition.confirm_order = true;
    }
    for (const Fetched& f : fetched) {  // in the order the server sent them
      if (partition.next_delivery != 0 && f.delivery != partition.next_delivery) {
        partition.confirm_order = true;  // deliveries this node never got, or a rolled back leader
      }
      partition.next_delivery = f.delivery + 1;
    }
    // In stream order: JetStream queues redeliveries by expiry, and a message kept in progress
    // longer than a later one of the same person expires after it (after a takeover, say).
    std::stable_sort(fetched.begin(), fetched.end(),
                     [](const Fetched& a, const Fetched& b) { return a.sequence < b.sequence; });
    if (partition.confirm_order) {
      keepInOrder(partition, fetched);
    }
    for (const Fetched& f : fetched) {
      take(partition, f, out, bytes);
    }
    if (status != NATS_OK) {
      return natsError(sdk::ErrorCode::Unavailable,
                       "fetching from " + queue_.subjectOf(partition.number), status);
    }
    return {};
  }

  // Whether `fetched` (in stream order) may be handed out while some of the partition's earlier
  // messages may be pending elsewhere: given to a dead holder, or lost on the way here.
  // JetStream serves those again once their ack wait passed *and* the consumer's leader looked
  // (one elected moments ago, after a server died, first looks 0.5-1.5 s later), and serves new
  // messages meanwhile. So a first delivery is kept only when the consumer has nothing pending
  // beyond what this node holds; else it and what follows it are dropped unacknowledged (the
  // server sends them again after the ack wait, after the earlier ones, sorted together) and
  // the partition rests for an ack wait. Under fetch_mu_.
  void keepInOrder(Partition& partition, std::vector<Fetched>& fetched) {
    const auto first_new = std::find_if(fetched.begin(), fetched.end(),
                                        [](const Fetched& f) { return f.deliveries == 1; });
    if (first_new == fetched.end()) {
      return;  // redeliveries only: the dead holder's, say; earlier ones come first
    }
    // The server counts this node's acks sent so far before it answers (nearly: the consumer
    // leader handles acks and requests on two queues; a late ack only makes this wait once more).
    // No answer counts as "something may be pending".
    std::int64_t pending = -1;
    if (Clock::now() >= order_checks_quiet_until_) {
      jsConsumerInfo* info = nullptr;
      if (natsConnection_FlushTimeout(queue_.connection_, kOrderCheckTimeout.count()) == NATS_OK &&
          js_GetConsumerInfo(&info, queue_.order_check_js_, queue_.options_.stream.c_str(),
                             partition.durable.c_str(), nullptr, nullptr) == NATS_OK) {
        pending = info->NumAckPending;
      } else {
        order_checks_quiet_until_ = Clock::now() + kOrderCheckQuiet;
      }
      jsConsumerInfo_Destroy(info);
    }
    std::set<std::uint64_t> held;
    for (const Fetched& f : fetched) {
      held.insert(f.sequence);
    }
    {
      std::lock_guard lock(mu_);
      for (auto it = live_.lower_bound({partition.number, 0});
           it != live_.end() && it->first.first == partition.number; ++it) {
        if (it->second->msg != nullptr) {
          held.insert(it->first.second);
        }
      }
    }
    if (pending >= 0 && static_cast<std::size_t>(pending) <= held.size()) {
      partition.confirm_order = false;
      return;
    }
    for (auto it = first_new; it != fetched.end(); ++it) {
      natsMsg_Destroy(it->msg);
    }
    fetched.erase(first_new, fetched.end());
    partition.paused_until = Clock::now() + partition.ack_wait + kTakeoverMargin;
    ++order_waits_;
  }

  static Fetched fetchedOf(natsMsg* msg) {
    Fetched f;
    f.msg = msg;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      f.sequence = meta->Sequence.Stream;
      f.delivery = meta->Sequence.Consumer;
      f.deliveries = meta->NumDelivered;
      jsMsgMetaData_Destroy(meta);
    }
    return f;
  }

  // Messages that reached the partition's inbox and were not read (none expected: every pull is
  // read to its end), as messages to hand back. Under fetch_mu_.
  std::vector<std::shared_ptr<Message>> unreadMessages(Partition& partition) {
    std::vector<std::shared_ptr<Message>> unread;
    int queued = 0;
    if (partition.subscription == nullptr ||
        natsSubscription_GetPending(partition.subscription, &queued, nullptr) != NATS_OK) {
      return unread;
    }
    for (int i = 0; i < queued; ++i) {
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, partition.subscription, 1) != NATS_OK) {
        break;
      }
      if (isStatus(msg)) {
        natsMsg_Destroy(msg);
        continue;
      }
      auto message = std::make_shared<Message>();
      message->msg = msg;
      message->partition = partition.number;
      message->sequence = streamSequence(msg);
      unread.push_back(std::move(message));
    }
    return unread;
  }

  // A pull's end: no data, a "Status" header (404, 408, 409...).
  static bool isStatus(natsMsg* msg) {
    const char* value = nullptr;
    return natsMsg_GetDataLength(msg) == 0 &&
           natsMsgHeader_Get(msg, "Status", &value) == NATS_OK;
  }

  sdk::Status openInbox(Partition& partition) {
    natsInbox* inbox = nullptr;
    natsStatus status = natsInbox_Create(&inbox);
    if (status == NATS_OK) {
      partition.inbox = inbox;
      natsInbox_Destroy(inbox);
      status = natsConnection_SubscribeSync(&partition.subscription, queue_.connection_,
                                            partition.inbox.c_str());
    }
    if (status != NATS_OK) {
      partition.subscription = nullptr;
      return natsError(sdk::ErrorCode::Unavailable,
                       "subscribing for JetStream consumer '" + partition.durable + "'", status);
    }
    return {};
  }

  static void closeInbox(Partition& partition) {
    if (partition.subscription != nullptr) {
      natsSubscription_Unsubscribe(partition.subscription);
      natsSubscription_Destroy(partition.subscription);
      partition.subscription = nullptr;
    }
  }

  // An acknowledgement of any kind (+ACK, -NAK, +WPI, +TERM) to the message's $JS.ACK subject.
  // Published directly: libnats' natsMsg_Ack and friends take only messages of its JetStream
  // subscriptions.
  natsStatus sendAck(natsMsg* msg, const char* kind) {
    const char* reply = natsMsg_GetReply(msg);
    if (reply == nullptr || *reply == '\0') {
      return NATS_INVALID_ARG;
    }
    return natsConnection_PublishString(queue_.connection_, reply, kind);
  }

  static std::uint64_t streamSequence(natsMsg* msg) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
      return 0;
    }
    const std::uint64_t sequence = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    return sequence;
  }

  // `fetched`'s metadata is read once, in fetchedOf().
  void take(Partition& partition, const Fetched& fetched, std::vector<QueueMessage>& out,
            std::size_t& bytes) {
    natsMsg* msg = fetched.msg;
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
      (void)sendAck(msg, "+TERM");
      natsMsg_Destroy(msg);
      return;
    }
    auto message = std::make_shared<Message>();
    message->msg = msg;
    message->partition = partition.number;
    message->finished.assign(events.size(), false);
    message->open = events.size();
    message->sequence = fetched.sequence;
    const auto deliveries = static_cast<std::uint32_t>(fetched.deliveries);
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
  std::vector<Partition> partitions_;  // by partition number; fixed after subscribe()
  std::mutex fetch_mu_;
  Clock::time_point order_checks_quiet_until_{};  // fetch_mu_
  std::size_t next_ = 0;  // the partition a fetch starts with, rotating for fairness (fetch_mu_)

  std::mutex lease_mu_;
  std::vector<Lease> leases_;  // by partition, under lease_mu_
  // leases_[p].phase, readable without lease_mu_ (fetch, inProgress, ownedPartitions).
  std::unique_ptr<std::atomic<LeasePhase>[]> phase_;
  std::atomic<std::uint64_t> order_waits_{0};

  mutable std::mutex mu_;
  std::uint64_t next_handle_ = 0;
  std::unordered_map<std::uint64_t, Ref> outstanding_;
  std::multimap<Clock::time_point, Waiting> waiting_;
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::shared_ptr<Message>> live_;
  ConsumerStats stats_;
};

JetStreamQueue::JetStreamQueue(JetStreamOptions options, NodeIdentity self)
    : options_(std::move(options)), self_(std::move(self)), node_key_(escapeName(self_.id)) {}

sdk::Result<std::unique_ptr<JetStreamQueue>> JetStreamQueue::open(JetStreamOptions options) {
  if (options.urls.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "queue.url names no NATS server");
  }
  if (options.partitions == 0) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "queue.partitions must be at least 1");
  }
  if (options.heartbeat.count() <= 0 || options.node_ttl < 3 * options.heartbeat) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "queue.node_ttl must be at least 3 heartbeats (a node stops reading 2 "
                          "heartbeats after its last one, before the others call it dead)");
  }
  if (!options.node_id.empty() && !validNodeId(options.node_id)) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "queue.node_id '" + options.node_id +
                              "' must be 1 to 128 of [A-Za-z0-9._-]");
  }
  NodeIdentity self{options.node_id.empty() ? defaultNodeId() : options.node_id, randomHex(16)};
  std::unique_ptr<JetStreamQueue> queue(new JetStreamQueue(std::move(options), std::move(self)));
  if (auto status = queue->connect(); !status.ok()) {
    return status.error();
  }
  if (auto status = queue->ensureStream(); !status.ok()) {
    return status.error();
  }
  if (auto status = patiently([&] { return queue->openDoneBucket(); }); !status.ok()) {
    return status.error();
  }
  if (auto status = patiently([&] { return queue->openOwnershipBuckets(); }); !status.ok()) {
    return status.error();
  }
  // The first heartbeat before any consumer: a lone node then takes every free lease at once.
  if (auto status = patiently([&] { return queue->heartbeat(); }); !status.ok()) {
    return status.error();
  }
  queue->heartbeat_thread_ = std::thread([q = queue.get()] { q->heartbeatLoop(); });
  queue->ownership_thread_ = std::thread([q = queue.get()] { q->ownershipLoop(); });
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
  if (status == NATS_OK) {
    // libnats calls these on a thread of its own, also after this object is gone (the close
    // in the destructor is reported later): they find the listener in a registry the
    // destructor leaves.
    std::lock_guard lock(connectionListenersMutex());
    connectionListeners()[this] = [this](bool connected, const std::string& server) {
      if (connected) {
        reconnected_at_ns_.store(steadyNanos(Clock::now()));
      }
      if (options_.on_connection) {
        options_.on_connection(connected, server);
      }
    };
    status = natsOptions_SetDisconnectedCB(opts, &JetStreamQueue::onDisconnected, this);
  }
  if (status == NATS_OK) {
    status = natsOptions_SetReconnectedCB(opts, &JetStreamQueue::onReconnected, this);
  }
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
  if (status == NATS_OK) {
    // Heartbeats and leases: a request the servers cannot answer now (a bucket's leader died
    // with its server, until the others elect a new one) is given up after one heartbeat and
    // sent again at the next, so a node sees a dead node, and takes its partitions, as soon as
    // the cluster answers again rather than a publish timeout later.
    jsOptions membership_options;
    jsOptions_Init(&membership_options);
    membership_options.Wait = std::max<std::int64_t>(options_.heartbeat.count(), 250);
    status = natsConnection_JetStream(&membership_js_, connection_, &membership_options);
  }
  if (status == NATS_OK) {
    // The order check (keepInOrder) asks while holding the partitions: it gives up quickly.
    jsOptions check_options;
    jsOptions_Init(&check_options);
    check_options.Wait = kOrderCheckTimeout.count();
    status = natsConnection_JetStream(&order_check_js_, connection_, &check_options);
  }
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "opening the JetStream context", status);
  }
  return {};
}

sdk::Status patiently(const std::function<sdk::Status()>& step, std::chrono::milliseconds patience) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    auto status = step();
    if (status.ok() || status.error().code != sdk::ErrorCode::Unavailable ||
        Clock::now() >= deadline) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

sdk::Status JetStreamQueue::ensureStream() {
  // A cluster that is starting, or electing a leader, does not answer for a while (the test
  // suite met a 5 s timeout creating a stream on a loaded machine): asked again, within reason.
  const auto deadline = Clock::now() + kStreamPatience;
  for (;;) {
    bool retryable = false;
    auto status = ensureStreamOnce(retryable);
    if (status.ok() || !retryable || Clock::now() >= deadline) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

sdk::Status JetStreamQueue::ensureStreamOnce(bool& retryable) {
  const auto transient = [](natsStatus s, jsErrCode e) {
    return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || e == JSClusterNotAvailErr;
  };
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
    retryable = transient(status, js_error);
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
    retryable = transient(status, js_error);  // created meanwhile: the lookup finds it next time
    return natsError(sdk::ErrorCode::Unavailable,
                     "creating the JetStream stream '" + options_.stream + "'", status, js_error);
  }
  return {};
}

JetStreamQueue::~JetStreamQueue() {
  stopMembership();
  {
    // Calls queued go out: with the rounds under way, or here once those are acknowledged (or
    // given up on).
    std::unique_lock lock(publish_mu_);
    publisher_stopping_ = true;
    publish_cv_.wait_for(lock, options_.publish_timeout, [this] {
      return !publishing_ && (queued_.empty() || rounds_in_flight_ < kRoundsInFlight);
    });
    publish_cv_.wait(lock, [this] { return !publishing_; });
    if (!queued_.empty()) {
      publishRounds(lock, std::numeric_limits<int>::max());
    }
  }
  if (js_ != nullptr) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = options_.publish_timeout.count();
    js_PublishAsyncComplete(js_, &wait);
  }
  {
    std::lock_guard lock(connectionListenersMutex());
    connectionListeners().erase(this);  // the close below is not news to anyone
  }
  if (connection_ != nullptr) {
    natsConnection_FlushTimeout(connection_, 2000);
    natsConnection_Close(connection_);
  }
  // Publishes never answered: their calls fail now (nothing of them may be relied on).
  std::unordered_map<natsMsg*, PendingMessage> left;
  {
    std::lock_guard lock(pending_mu_);
    left.swap(pending_);
  }
  for (auto& [msg, message] : left) {
    for (const auto& call : message.calls) {
      settleMessage(call, true, "the queue closed before NATS acknowledged the events");
    }
  }
  kvStore_Destroy(done_);
  kvStore_Destroy(nodes_);
  kvStore_Destroy(owners_);
  jsCtx_Destroy(membership_js_);
  jsCtx_Destroy(order_check_js_);
  jsCtx_Destroy(js_);
  natsConnection_Destroy(connection_);
}

std::mutex& JetStreamQueue::connectionListenersMutex() {
  static std::mutex mutex;
  return mutex;
}

std::unordered_map<const void*, std::function<void(bool, const std::string&)>>&
JetStreamQueue::connectionListeners() {
  static std::unordered_map<const void*, std::function<void(bool, const std::string&)>> listeners;
  return listeners;
}

void JetStreamQueue::onDisconnected(natsConnection*, void* closure) {
  std::lock_guard lock(connectionListenersMutex());
  if (auto it = connectionListeners().find(closure); it != connectionListeners().end()) {
    it->second(false, {});
  }
}

void JetStreamQueue::onReconnected(natsConnection* connection, void* closure) {
  std::lock_guard lock(connectionListenersMutex());
  if (auto it = connectionListeners().find(closure); it != connectionListeners().end()) {
    char url[256] = {};
    natsConnection_GetConnectedUrl(connection, url, sizeof url);
    it->second(true, url);
  }
}

bool JetStreamQueue::connected() const {
  return connection_ != nullptr && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED;
}

std::string JetStreamQueue::subjectOf(std::uint32_t partition) const {
  return options_.stream + ".p." + std::to_string(partition);
}

std::string JetStreamQueue::durableName(const std::string& name, std::uint32_t partition) {
  return escapeName(name) + "-p" + std::to_string(partition);
}

void JetStreamQueue::onPublishAck(jsCtx*, natsMsg* msg, jsPubAck*, jsPubAckErr* error,
                                  void* closure) {
  static_cast<JetStreamQueue*>(closure)->published(msg, error);
  natsMsg_Destroy(msg);
}

void JetStreamQueue::published(natsMsg* msg, const jsPubAckErr* error) {
  PendingMessage message;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(msg);
    if (it == pending_.end()) {
      return;
    }
    message = std::move(it->second);
    pending_.erase(it);
  }
  const std::string problem =
      error == nullptr ? std::string()
      : error->ErrText != nullptr && *error->ErrText != '\0'
          ? std::string(error->ErrText)
          : natsErrorText(error->Err, error->ErrCode);
  for (const auto& call : message.calls) {
    settleMessage(call, error != nullptr, problem);
  }
  roundMessageSettled(*message.round);
}

void JetStreamQueue::settleMessage(const std::shared_ptr<PendingCall>& call, bool failed,
                                   const std::string& problem) {
  {
    std::lock_guard lock(pending_mu_);
    if (failed && !call->failed) {
      call->failed = true;
      call->error = problem;
    }
    if (--call->remaining != 0) {
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
  // Encoded here, on the caller's thread, by partition and in call order; a call is refused
  // whole (InvalidArgument) before anything is queued.
  const std::int64_t max_payload = natsConnection_GetMaxPayload(connection_);
  auto call = std::make_shared<PendingCall>();
  for (const auto& event : events) {
    auto& records = call->records[partitionOf(personOf(event), options_.partitions)];
    const std::size_t before = records.bytes.size();
    if (auto status = encodeRecord(event, records.bytes); !status.ok()) {
      return status;
    }
    const std::size_t size = records.bytes.size() - before;
    if (max_payload > 0 && size > static_cast<std::uint64_t>(max_payload)) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "an event of " + std::to_string(size) +
                                " bytes exceeds the NATS server's max_payload (" +
                                std::to_string(max_payload) + " bytes)");
    }
    records.sizes.push_back(static_cast<std::uint32_t>(size));
  }
  call->done = std::move(done);
  std::unique_lock lock(publish_mu_);
  if (publisher_stopping_) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, "the queue is closing");
  }
  queued_.push_back(std::move(call));
  appended_.fetch_add(events.size(), std::memory_order_relaxed);
  if (!publishing_ && rounds_in_flight_ < kRoundsInFlight) {
    publishRounds(lock, kRoundsInFlight);
  }
  // Else it goes with the next round, once a round in flight is acknowledged (published()).
  return {};
}

// Publishing in rounds: every call queued meanwhile is published together, one message per
// partition (split at kMessageBytes) holding those calls' events of it in call order; the next
// round goes out when fewer than kRoundsInFlight rounds wait for their acknowledgements.
// Per-message costs, on the servers and in the client, are what limits a stream's rate; so
// under load every call arriving while rounds are on their way shares the next round's
// messages (like a log's group commit), and a lone call goes out at once. Two rounds in flight,
// not one: one would leave the server idle while its acknowledgements travel and the next
// round is built. Rounds run on the thread that finds the way free: an appending caller, or the
// library's thread that delivered a round's last acknowledgement (no hand-over to a thread of
// our own, whose wake-up would cost as much as the publish).
void JetStreamQueue::publishRounds(std::unique_lock<std::mutex>& lock, int max_rounds) {
  publishing_ = true;
  while (!queued_.empty() && rounds_in_flight_ < max_rounds) {
    std::vector<std::shared_ptr<PendingCall>> calls;
    calls.swap(queued_);
    ++rounds_in_flight_;
    auto round = std::make_shared<Round>();
    lock.unlock();
    publishCalls(calls, round);
    lock.lock();
    if (--round->remaining == 0) {  // the round's own token: every message was answered
      --rounds_in_flight_;
    }
  }
  publishing_ = false;
  publish_cv_.notify_all();
}

void JetStreamQueue::roundMessageSettled(Round& round) {
  std::unique_lock lock(publish_mu_);
  if (--round.remaining == 0) {
    --rounds_in_flight_;
    publish_cv_.notify_all();
    if (!publishing_ && !queued_.empty()) {
      publishRounds(lock, kRoundsInFlight);
    }
  }
}

void JetStreamQueue::publishCalls(const std::vector<std::shared_ptr<PendingCall>>& calls,
                                  const std::shared_ptr<Round>& round) {
  const std::int64_t max_payload = natsConnection_GetMaxPayload(connection_);
  const std::size_t limit =
      std::min<std::size_t>(kMessageBytes, max_payload > 0 ? static_cast<std::size_t>(max_payload)
                                                           : kMessageBytes);
  struct Outgoing {
    std::string body;
    std::vector<std::shared_ptr<PendingCall>> calls;
  };
  std::map<std::uint32_t, std::vector<Outgoing>> by_partition;
  for (const auto& call : calls) {
    for (const auto& [partition, records] : call->records) {
      auto& list = by_partition[partition];
      auto add = [&](std::string_view bytes) {
        if (list.empty() || list.back().body.size() + bytes.size() > limit) {
          list.emplace_back();
        }
        Outgoing& out = list.back();
        out.body += bytes;
        if (out.calls.empty() || out.calls.back() != call) {
          out.calls.push_back(call);
          ++call->remaining;  // no message of this round is sent yet
        }
      };
      if (!list.empty() && list.back().body.size() + records.bytes.size() <= limit) {
        add(records.bytes);  // the usual case: the call's events of the partition fit whole
        continue;
      }
      std::size_t at = 0;
      for (const std::uint32_t size : records.sizes) {
        add(std::string_view(records.bytes).substr(at, size));
        at += size;
      }
    }
    call->records.clear();
  }
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MaxWait = options_.publish_timeout.count();
  std::string problem;
  for (auto& [partition, list] : by_partition) {
    const std::string subject = subjectOf(partition);
    for (auto& out : list) {
      natsMsg* msg = nullptr;
      natsStatus status = NATS_OK;
      if (problem.empty()) {
        status = natsMsg_Create(&msg, subject.c_str(), nullptr, out.body.data(),
                                static_cast<int>(out.body.size()));
        if (status == NATS_OK) {
          {
            std::lock_guard lock(pending_mu_);
            pending_.emplace(msg, PendingMessage{out.calls, round});
          }
          natsMsg* sent = msg;
          {
            std::lock_guard lock(publish_mu_);
            ++round->remaining;
          }
          status = js_PublishMsgAsync(js_, &sent, &publish);
          if (status != NATS_OK) {
            // Not taken by the library: no acknowledgement will come for it.
            {
              std::lock_guard lock(publish_mu_);
              --round->remaining;  // never 0 here: the round's token is still held
            }
            std::lock_guard lock(pending_mu_);
            pending_.erase(msg);
            natsMsg_Destroy(msg);
          }
        }
        if (status != NATS_OK) {
          // Nor will the library take the rest of this round: their calls fail now. What was
          // sent may be stored (a retry by the client repeats it: at least once).
          problem = "publishing to NATS: " + natsErrorText(status);
        }
      }
      if (!problem.empty()) {
        for (const auto& call : out.calls) {
          settleMessage(call, true, problem);
        }
      }
    }
  }
}

sdk::Status JetStreamQueue::openDoneBucket() {
  if (done_ != nullptr) {
    return {};  // opened by an earlier attempt
  }
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

sdk::Status JetStreamQueue::openOwnershipBuckets() {
  const auto open_bucket = [this](kvStore** bucket, const std::string& name, jsStorageType storage,
                                  std::chrono::milliseconds ttl) -> sdk::Status {
    if (*bucket != nullptr) {
      return {};  // opened by an earlier attempt
    }
    natsStatus status = js_KeyValue(bucket, js_, name.c_str());
    if (status == NATS_NOT_FOUND) {
      kvConfig config;
      kvConfig_Init(&config);
      config.Bucket = name.c_str();
      config.History = 1;
      config.TTL = ttl.count() * kNanosPerMilli;
      config.StorageType = storage;
      config.Replicas = options_.replicas;
      status = js_CreateKeyValue(bucket, js_, &config);
    }
    if (status == NATS_OK) {
      // Created or found with the patient context; used with the quick one.
      kvStore_Destroy(*bucket);
      *bucket = nullptr;
      status = js_KeyValue(bucket, membership_js_, name.c_str());
    }
    if (status != NATS_OK) {
      return natsError(sdk::ErrorCode::Unavailable, "opening the JetStream bucket '" + name + "'",
                       status);
    }
    return {};
  };
  // Heartbeats are rewritten every second and worth nothing once every server restarted:
  // memory. A key silent for 12 node_ttl (a minute at least) goes: its node is long gone, far
  // longer than any takeover needs its last heartbeat.
  const auto forget_after = std::max<std::chrono::milliseconds>(std::chrono::minutes(1),
                                                                12 * options_.node_ttl);
  if (auto status = open_bucket(&nodes_, options_.stream + "-nodes", js_MemoryStorage,
                                forget_after);
      !status.ok()) {
    return status;
  }
  // Leases stay until released, on every replica.
  return open_bucket(&owners_, options_.stream + "-owners", js_FileStorage,
                     std::chrono::milliseconds(0));
}

sdk::Status JetStreamQueue::heartbeat() {
  std::lock_guard one_at_a_time(heartbeat_mu_);  // views are published in the order they are read
  std::vector<std::string> consumers;
  {
    std::lock_guard lock(consumers_mu_);
    for (const JetStreamConsumer* consumer : consumers_) {
      consumers.push_back(consumer->name());
    }
  }
  const std::string value = encodeHeartbeat(self_, std::move(consumers));
  const auto sent = Clock::now();
  std::uint64_t revision = 0;
  const natsStatus status = kvStore_Put(&revision, nodes_, node_key_.c_str(), value.data(),
                                        static_cast<int>(value.size()));
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "sending this node's heartbeat", status);
  }
  const auto stored = Clock::now();
  // Fresh from when the heartbeat was sent: the server stamped it later, so this node always
  // stops reading before the others, counting from the stamp, may call it dead.
  const std::int64_t was_fresh_until =
      fresh_until_ns_.exchange(steadyNanos(sent + fenceAfter(options_.heartbeat)));
  if (was_fresh_until != 0 && was_fresh_until < steadyNanos(sent)) {
    heartbeat_gaps_.fetch_add(1);  // fenced meanwhile: not fresh until the leases are checked
  }
  auto records = readNodes();
  if (!records.ok()) {
    return records.error();
  }
  // The server's time: this heartbeat's stamp plus the time since the put returned. A little
  // behind the server's clock (the stamp is from before the put returned), so an age computed
  // from it is a little short: a node is called dead a little late, a takeover waits a little
  // long, never the other way round.
  std::optional<std::int64_t> own_stamp;
  for (const auto& record : *records) {
    if (record.node == self_) {
      own_stamp = record.heartbeat_ns;
    }
  }
  if (!own_stamp) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "this node's heartbeat is missing from '" + options_.stream + "-nodes'");
  }
  const auto now = Clock::now();
  const std::int64_t server_now = *own_stamp + steadyNanos(now) - steadyNanos(stored);
  {
    std::lock_guard lock(view_mu_);
    view_ = MembershipView(std::move(records).value(), server_now, options_.node_ttl);
    view_at_ = now;
    ++view_generation_;
  }
  view_cv_.notify_all();
  return {};
}

// Every node's newest heartbeat, with the server's stamp (kvEntry_Created), through a watcher
// that stops after the current values: one short-lived ordered consumer per heartbeat, nothing
// to keep in step across reconnects.
sdk::Result<std::vector<NodeRecord>> JetStreamQueue::readNodes() {
  kvWatchOptions watch;
  kvWatchOptions_Init(&watch);
  watch.IgnoreDeletes = true;
  kvWatcher* watcher = nullptr;
  natsStatus status = kvStore_WatchAll(&watcher, nodes_, &watch);
  std::vector<NodeRecord> records;
  const std::int64_t timeout =
      std::max<std::int64_t>(options_.heartbeat.count(), 500);
  while (status == NATS_OK) {
    kvEntry* entry = nullptr;
    status = kvWatcher_Next(&entry, watcher, timeout);
    if (status != NATS_OK || entry == nullptr) {
      break;  // entry == nullptr: every current value was delivered
    }
    auto record = decodeHeartbeat(entryValue(entry), kvEntry_Created(entry));
    if (record && kvEntry_Operation(entry) == kvOp_Put) {
      records.push_back(std::move(*record));
    }
    kvEntry_Destroy(entry);
  }
  kvWatcher_Destroy(watcher);
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable,
                     "reading the heartbeats in '" + options_.stream + "-nodes'", status);
  }
  return records;
}

void JetStreamQueue::heartbeatLoop() {
  std::unique_lock lock(view_mu_);
  while (!stopping_) {
    const auto next = Clock::now() + options_.heartbeat;
    lock.unlock();
    // A failed heartbeat is tried again at the next one; after 2 heartbeats without one the
    // node stops reading (fresh()), after node_ttl the others take its partitions.
    (void)heartbeat();
    lock.lock();
    view_cv_.wait_until(lock, next, [this] { return stopping_; });
  }
}

void JetStreamQueue::ownershipLoop() {
  // Leases are checked again after a gap in heartbeats (another node may have taken one
  // meanwhile) and about once per node_ttl anyway.
  const std::uint64_t check_every = static_cast<std::uint64_t>(
      std::max<std::int64_t>(1, options_.node_ttl / options_.heartbeat));
  std::uint64_t seen = 0;
  std::uint64_t passes = 0;
  // When a lease taken from a dead node is due to be read; max(): none is waiting.
  Clock::time_point next_read = Clock::time_point::max();
  std::unique_lock lock(view_mu_);
  for (;;) {
    const auto woken = [&] { return stopping_ || view_generation_ != seen; };
    if (next_read != Clock::time_point::max()) {
      view_cv_.wait_until(lock, next_read, woken);
    } else {
      view_cv_.wait(lock, woken);
    }
    if (stopping_) {
      return;
    }
    const bool new_view = view_generation_ != seen;
    seen = view_generation_;
    const MembershipView view = view_;
    const Clock::time_point view_at = view_at_;
    lock.unlock();
    // The server's time now, estimated from the view's.
    const std::int64_t server_now =
        view.serverNow() + steadyNanos(Clock::now()) - steadyNanos(view_at);
    std::optional<std::int64_t> earliest;
    {
      std::lock_guard pass(rebalance_mu_);
      const std::vector<JetStreamConsumer*> consumers = this->consumers();
      if (heartbeatRecent()) {
        if (new_view) {
          const std::uint64_t gaps = heartbeat_gaps_.load();
          const bool check = gaps != gaps_checked_.load() || ++passes % check_every == 0;
          for (JetStreamConsumer* consumer : consumers) {
            consumer->rebalance(view, check);
          }
          gaps_checked_.store(gaps);
        }
        for (JetStreamConsumer* consumer : consumers) {
          consumer->readDue(server_now);
        }
      }
      for (JetStreamConsumer* consumer : consumers) {
        if (const auto at = consumer->nextReadFrom(); at) {
          earliest = std::min(earliest.value_or(*at), *at);
        }
      }
    }
    next_read = earliest ? view_at + std::chrono::nanoseconds(*earliest - view.serverNow())
                         : Clock::time_point::max();
    lock.lock();
  }
}

void JetStreamQueue::stopMembership() {
  {
    std::lock_guard lock(view_mu_);
    stopping_ = true;
  }
  view_cv_.notify_all();
  if (heartbeat_thread_.joinable()) {
    heartbeat_thread_.join();
  }
  if (ownership_thread_.joinable()) {
    ownership_thread_.join();
  }
  if (nodes_ != nullptr) {
    kvStore_Delete(nodes_, node_key_.c_str());  // the others rebalance at their next heartbeat
  }
}

bool JetStreamQueue::heartbeatRecent() const {
  return steadyNanos(Clock::now()) < fresh_until_ns_.load();
}

bool JetStreamQueue::fresh() const {
  return heartbeatRecent() && heartbeat_gaps_.load() == gaps_checked_.load();
}

MembershipView JetStreamQueue::currentView() const {
  std::lock_guard lock(view_mu_);
  return view_;
}

void JetStreamQueue::registerConsumer(JetStreamConsumer* consumer) {
  std::lock_guard lock(consumers_mu_);
  consumers_.push_back(consumer);
}

void JetStreamQueue::unregisterConsumer(JetStreamConsumer* consumer) {
  std::lock_guard pass(rebalance_mu_);
  std::lock_guard lock(consumers_mu_);
  std::erase(consumers_, consumer);
}

std::vector<JetStreamQueue::JetStreamConsumer*> JetStreamQueue::consumers() const {
  std::lock_guard lock(consumers_mu_);
  return consumers_;
}

std::vector<std::uint32_t> JetStreamQueue::ownedPartitions(const std::string& consumer_name) const {
  std::lock_guard lock(consumers_mu_);
  for (const JetStreamConsumer* consumer : consumers_) {
    if (consumer->name() == consumer_name) {
      return consumer->readingPartitions();
    }
  }
  return {};
}

std::uint64_t JetStreamQueue::orderWaits(const std::string& consumer_name) const {
  std::lock_guard lock(consumers_mu_);
  for (const JetStreamConsumer* consumer : consumers_) {
    if (consumer->name() == consumer_name) {
      return consumer->orderWaits();
    }
  }
  return 0;
}

sdk::Result<std::unique_ptr<Consumer>> JetStreamQueue::consumer(const std::string& name,
                                                                StartAt start) {
  auto consumer = std::make_unique<JetStreamConsumer>(*this, name);
  if (auto status = consumer->subscribe(start); !status.ok()) {
    return status.error();
  }
  // A heartbeat listing the consumer, then its free leases: a lone node reads at once; the
  // rest follows at the next heartbeats.
  registerConsumer(consumer.get());
  if (heartbeat().ok() && fresh()) {
    consumer->rebalance(currentView(), false);
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
    kvStore_Purge(owners_, durable.c_str(), nullptr);  // its lease goes with it
  }
  return {};
}

sdk::Result<std::size_t> JetStreamQueue::retain() {
  // The stream's last sequence before any consumer is looked at: a consumer found with nothing
  // pending and nothing left to read (a partition nobody sent to lately: its acknowledgement
  // floor stays where its last ack left it) needs nothing up to there, since every message up
  // to there existed when it was looked at.
  jsStreamInfo* stream = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus status =
      js_GetStreamInfo(&stream, js_, options_.stream.c_str(), nullptr, &js_error);
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "reading the stream's state", status, js_error);
  }
  const std::uint64_t first = stream->State.FirstSeq;
  const std::uint64_t last = stream->State.LastSeq;
  jsStreamInfo_Destroy(stream);

  jsConsumerInfoList* list = nullptr;
  status = js_Consumers(&list, js_, options_.stream.c_str(), nullptr, &js_error);
  if (status == NATS_NOT_FOUND) {
    return std::size_t{0};  // no consumer at all
  }
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "listing JetStream consumers", status, js_error);
  }
  // While a consumer has no leader (its server died, the others have not elected one yet) the
  // list leaves it out: purging at the others' floors would drop what it has not acknowledged.
  // Then nothing is purged this time.
  jsConsumerNamesList* names = nullptr;
  status = js_ConsumerNames(&names, js_, options_.stream.c_str(), nullptr, &js_error);
  const int named = status == NATS_OK ? names->Count : -1;
  jsConsumerNamesList_Destroy(names);
  if (named != list->Count || list->Count == 0) {
    jsConsumerInfoList_Destroy(list);
    return std::size_t{0};
  }
  // The lowest acknowledgement floor over every consumer, whatever its filter.
  std::uint64_t floor = last;
  for (int i = 0; i < list->Count; ++i) {
    const jsConsumerInfo* info = list->List[i];
    const bool idle = info->NumAckPending == 0 && info->NumPending == 0;
    floor = std::min(floor, idle ? last : info->AckFloor.Stream);
  }
  jsConsumerInfoList_Destroy(list);
  if (floor < first) {
    return std::size_t{0};
  }
  // One purge of the whole stream below the floor, with no subject filter. nats-server 2.9
  // resets every consumer whose filter matches a purge's subject (it forgets the messages it
  // handed out and has not had acknowledged, so they are never redelivered); our consumers
  // each filter one partition's subject, which an unfiltered purge does not match.
  jsOptions options;
  jsOptions_Init(&options);
  options.Stream.Purge.Sequence = floor + 1;  // up to, not including
  status = js_PurgeStream(js_, options_.stream.c_str(), &options, &js_error);
  if (status != NATS_OK) {
    return natsError(sdk::ErrorCode::Unavailable, "purging the stream", status, js_error);
  }
  return static_cast<std::size_t>(floor + 1 - first);
}

QueueStats JetStreamQueue::stats() const {
  QueueStats stats;
  stats.appended = appended_.load(std::memory_order_relaxed);
  stats.stored_messages = std::numeric_limits<std::uint64_t>::max();
  jsStreamInfo* info = nullptr;
  // Quick: a status page must not hang while the cluster elects a leader.
  if (js_GetStreamInfo(&info, membership_js_, options_.stream.c_str(), nullptr, nullptr) == NATS_OK) {
    stats.stored_messages = info->State.Msgs;
    stats.stored_bytes = info->State.Bytes;
  }
  jsStreamInfo_Destroy(info);
  return stats;
}

}  // namespace junction::core::queue
