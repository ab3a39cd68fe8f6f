#include "core/queue/embedded_queue.h"

#include <algorithm>
#include <limits>
#include <map>

namespace junction::core::queue {

using Clock = std::chrono::steady_clock;

class EmbeddedQueue::EmbeddedConsumer final : public Consumer {
 public:
  EmbeddedConsumer(EmbeddedQueue& queue, std::string name, Offset position,
                   CursorState stored)
      : Consumer(std::move(name)),
        queue_(queue),
        read_pos_(position),
        delivered_(stored.delivered),
        skip_(std::move(stored.done)) {}

  ~EmbeddedConsumer() override {
    {
      std::lock_guard lock(mu_);
      // A failed commit leaves the previous position: those messages come again (at least once).
      (void)commitLocked();
    }
    std::lock_guard lock(queue_.consumers_mu_);
    queue_.open_consumers_.erase(name());
  }

  sdk::Result<std::vector<QueueMessage>> fetch(std::size_t max_messages, std::size_t max_bytes,
                                               std::chrono::milliseconds wait) override {
    const auto deadline = Clock::now() + wait;
    std::vector<QueueMessage> out;
    if (max_messages == 0) {
      return out;
    }
    for (;;) {
      std::uint64_t generation = 0;
      Offset read_from = 0;
      Clock::time_point next_due = Clock::time_point::max();
      {
        std::lock_guard lock(mu_);
        generation = queue_.wake_generation_.load();
        auto status = takeLocked(max_messages, max_bytes, out);
        if (!status.ok()) {
          return status.error();
        }
        if (!out.empty()) {
          stats_.fetched += out.size();
          return out;
        }
        read_from = read_pos_;
        if (!due_.empty()) {
          next_due = due_.begin()->first;
        }
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        return out;
      }
      queue_.waitForData(read_from, generation, std::min(deadline, next_due));
    }
  }

  sdk::Status ack(const QueueMessage& message) override {
    std::lock_guard lock(mu_);
    return settleLocked(message, stats_.acked);
  }

  sdk::Status nak(const QueueMessage& message, std::chrono::milliseconds delay) override {
    {
      std::lock_guard lock(mu_);
      auto it = outstanding_.find(message.handle);
      if (it == outstanding_.end()) {
        return notOutstanding(message);
      }
      waiting_.emplace(it->first, Waiting{it->second.end, it->second.deliveries, message.event});
      due_.emplace(Clock::now() + std::max(delay, std::chrono::milliseconds(0)), it->first);
      outstanding_.erase(it);
      ++stats_.nacked;
    }
    queue_.wake();  // a fetch waiting past the new due time re-evaluates
    return {};
  }

  sdk::Status term(const QueueMessage& message, std::string_view reason) override {
    {
      std::lock_guard lock(mu_);
      if (!outstanding_.contains(message.handle)) {
        return notOutstanding(message);
      }
    }
    if (!queue_.dead_letters_) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "the queue has no dead-letter sink");
    }
    auto stored = queue_.dead_letters_(name(), message.event, reason, message.deliveries);
    if (!stored.ok()) {
      return stored;
    }
    std::lock_guard lock(mu_);
    return settleLocked(message, stats_.terminated);
  }

  sdk::Status inProgress(const QueueMessage& message) override {
    std::lock_guard lock(mu_);
    return outstanding_.contains(message.handle) ? sdk::Status() : notOutstanding(message);
  }

  std::chrono::milliseconds redeliveryTimeout() const noexcept override {
    return std::chrono::milliseconds(0);  // one process: an outstanding message stays its own
  }

  ConsumerStats stats() const override {
    std::lock_guard lock(mu_);
    ConsumerStats stats = stats_;
    stats.outstanding = outstanding_.size() + waiting_.size();
    return stats;
  }

 private:
  struct Held {
    Offset end = 0;
    std::uint32_t deliveries = 1;
  };
  struct Waiting {
    Offset end = 0;
    std::uint32_t deliveries = 1;
    sdk::Event event;
  };

  sdk::Status notOutstanding(const QueueMessage& message) const {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "message at " + std::to_string(message.sequence) +
                              " is not outstanding for consumer '" + name() + "'");
  }

  // Finishes an outstanding message (acked or dead-lettered), counted in `counter`.
  sdk::Status settleLocked(const QueueMessage& message, std::uint64_t& counter) {
    auto it = outstanding_.find(message.handle);
    if (it == outstanding_.end()) {
      return notOutstanding(message);
    }
    finishLocked(it->first, it->second.end);
    outstanding_.erase(it);
    ++counter;
    return commitLocked();
  }

  // Due redeliveries first, then new records from the log.
  sdk::Status takeLocked(std::size_t max_messages, std::size_t max_bytes,
                         std::vector<QueueMessage>& out) {
    std::size_t bytes = 0;
    const auto now = Clock::now();
    while (!due_.empty() && due_.begin()->first <= now && out.size() < max_messages) {
      const Offset offset = due_.begin()->second;
      auto waiting = waiting_.find(offset);
      const std::size_t size = waiting->second.event.json().size();
      if (!out.empty() && bytes + size > max_bytes) {
        return {};
      }
      bytes += size;
      due_.erase(due_.begin());
      const std::uint32_t deliveries = waiting->second.deliveries + 1;
      outstanding_[offset] = Held{waiting->second.end, deliveries};
      out.push_back(QueueMessage{offset, offset, deliveries, 0, std::move(waiting->second.event)});
      waiting_.erase(waiting);
    }
    if (out.size() >= max_messages || read_pos_ >= queue_.log_->durableEnd()) {
      return {};
    }
    const std::size_t room = max_bytes > bytes ? max_bytes - bytes : 1;
    auto batch = queue_.log_->read(read_pos_, max_messages - out.size(), room);
    if (!batch.ok()) {
      return batch.error();
    }
    auto& records = batch->records;
    for (std::size_t i = 0; i < records.size(); ++i) {
      const Offset offset = records[i].offset;
      const Offset end = i + 1 < records.size() ? records[i + 1].offset : batch->next;
      if (skipped(offset)) {
        finishLocked(offset, end);  // finished before a restart
        continue;
      }
      outstanding_[offset] = Held{end, 1};
      out.push_back(QueueMessage{offset, offset, 1, 0, std::move(records[i].event)});
    }
    read_pos_ = batch->next;
    if (out.empty()) {
      return commitLocked();  // only finished records were passed: move the watermark
    }
    return {};
  }

  // Whether `offset` lies in a range the stored state says was finished; drops ranges passed.
  bool skipped(Offset offset) {
    while (!skip_.empty() && skip_.front().second <= offset) {
      skip_.erase(skip_.begin());
    }
    return !skip_.empty() && skip_.front().first <= offset;
  }

  void finishLocked(Offset begin, Offset end) {
    auto next = finished_.lower_bound(begin);
    if (next != finished_.end() && next->first == end) {
      end = next->second;
      next = finished_.erase(next);
    }
    if (next != finished_.begin()) {
      auto prev = std::prev(next);
      if (prev->second == begin) {
        prev->second = end;
        return;
      }
    }
    finished_.emplace(begin, end);
  }

  Offset watermarkLocked() const {
    Offset mark = read_pos_;
    if (!outstanding_.empty()) {
      mark = std::min(mark, outstanding_.begin()->first);
    }
    if (!waiting_.empty()) {
      mark = std::min(mark, waiting_.begin()->first);
    }
    return mark;
  }

  sdk::Status commitLocked() {
    const Offset mark = watermarkLocked();
    // Ranges below the watermark are history; one reaching it moves it no further (the
    // watermark is already the oldest unfinished offset).
    while (!finished_.empty() && finished_.begin()->second <= mark) {
      finished_.erase(finished_.begin());
    }
    CursorState state;
    state.offset = mark;
    state.delivered = delivered_;
    for (const auto& [begin, end] : finished_) {
      state.done.emplace_back(std::max(begin, mark), end);
    }
    // Finished ranges from before a restart that are not passed yet still hold.
    for (const auto& range : skip_) {
      if (range.second > mark) {
        state.done.emplace_back(std::max(range.first, mark), range.second);
      }
    }
    std::sort(state.done.begin(), state.done.end());
    return queue_.cursors_->commit(name(), std::move(state));
  }

  EmbeddedQueue& queue_;
  mutable std::mutex mu_;
  Offset read_pos_;
  std::uint64_t delivered_;
  std::vector<std::pair<Offset, Offset>> skip_;
  std::map<Offset, Held> outstanding_;
  std::map<Offset, Waiting> waiting_;
  std::multimap<Clock::time_point, Offset> due_;
  std::map<Offset, Offset> finished_;  // begin -> end, disjoint, above the watermark
  ConsumerStats stats_;
};

sdk::Result<std::unique_ptr<EmbeddedQueue>> EmbeddedQueue::open(EmbeddedQueueOptions options,
                                                                RecoveryReport* report) {
  auto log = Log::open(options.log, report);
  if (!log.ok()) {
    return log.error();
  }
  CursorStoreOptions cursor_options;
  cursor_options.path = options.log.path;
  cursor_options.flush_interval = options.cursor_flush_interval;
  auto cursors = CursorStore::open(cursor_options);
  if (!cursors.ok()) {
    return cursors.error();
  }
  return std::unique_ptr<EmbeddedQueue>(new EmbeddedQueue(
      std::move(log).value(), std::move(cursors).value(), std::move(options.dead_letters)));
}

EmbeddedQueue::EmbeddedQueue(std::unique_ptr<Log> log, std::unique_ptr<CursorStore> cursors,
                             DeadLetterSink dead_letters)
    : log_(std::move(log)), cursors_(std::move(cursors)), dead_letters_(std::move(dead_letters)) {
  log_->setAppendListener([this] { wake(); });
}

EmbeddedQueue::~EmbeddedQueue() {
  log_->setAppendListener(nullptr);
}

void EmbeddedQueue::wake() {
  {
    std::lock_guard lock(data_mu_);
    wake_generation_.fetch_add(1);
  }
  data_cv_.notify_all();
}

void EmbeddedQueue::waitForData(Offset offset, std::uint64_t generation,
                                Clock::time_point deadline) {
  std::unique_lock lock(data_mu_);
  data_cv_.wait_until(lock, deadline, [&] {
    return wake_generation_.load() != generation || log_->durableEnd() > offset;
  });
}

sdk::Status EmbeddedQueue::append(std::vector<sdk::Event> events, AppendCallback done) {
  return log_->append(std::move(events),
                      [done = std::move(done)](AppendResult result) { done(result.status); });
}

sdk::Result<std::unique_ptr<Consumer>> EmbeddedQueue::consumer(const std::string& name,
                                                               StartAt start) {
  {
    std::lock_guard lock(consumers_mu_);
    if (!open_consumers_.insert(name).second) {
      return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                            "consumer '" + name + "' is open already");
    }
  }
  CursorState state;
  Offset position = 0;
  if (auto stored = cursors_->state(name)) {
    state = *stored;
    position = state.offset;
  } else {
    position = start == StartAt::Earliest ? log_->beginOffset() : log_->durableEnd();
  }
  auto consumer = std::make_unique<EmbeddedConsumer>(*this, name, position, state);
  CursorState initial;
  initial.offset = position;
  initial.delivered = state.delivered;
  initial.done = state.done;
  if (auto status = cursors_->commit(name, std::move(initial)); !status.ok()) {
    return status.error();
  }
  return std::unique_ptr<Consumer>(std::move(consumer));
}

sdk::Status EmbeddedQueue::removeConsumer(const std::string& name) {
  {
    std::lock_guard lock(consumers_mu_);
    if (open_consumers_.contains(name)) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "consumer '" + name + "' is open");
    }
  }
  return cursors_->remove(name);
}

sdk::Result<std::size_t> EmbeddedQueue::retain() {
  const auto all = cursors_->all();
  if (all.empty()) {
    return std::size_t{0};  // nobody has read anything: a destination added later may want it
  }
  Offset low = std::numeric_limits<Offset>::max();
  for (const auto& [name, offset] : all) {
    low = std::min(low, offset);
  }
  return log_->truncateBefore(low);
}

QueueStats EmbeddedQueue::stats() const {
  QueueStats stats;
  stats.appended = log_->appendedRecords();
  stats.stored_messages = std::numeric_limits<std::uint64_t>::max();
  stats.stored_bytes = log_->diskBytes();
  return stats;
}

}  // namespace junction::core::queue
