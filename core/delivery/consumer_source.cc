#include "core/delivery/consumer_source.h"

#include <algorithm>

#include "core/runtime/thread.h"

namespace junction::core::delivery {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

ConsumerSource::ConsumerSource(std::unique_ptr<queue::Consumer> consumer,
                               ConsumerSourceLimits limits)
    : consumer_(std::move(consumer)), limits_(limits) {}

ConsumerSource::~ConsumerSource() { stop(); }

void ConsumerSource::start(std::function<void()> on_data) {
  on_data_ = std::move(on_data);
  thread_ = std::thread([this] {
    runtime::makeThisThreadBackground();
    runtime::nameThisThread("jn-fetch-" + consumer_->name());
    fetchLoop();
  });
}

void ConsumerSource::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  room_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  // What the worker did not finish goes back now, in queue order, rather than after the
  // backend's redelivery timeout: the next reader (this node again, or another) gets a
  // person's unfinished events before that person's later ones.
  std::vector<queue::QueueMessage> unfinished;
  {
    std::lock_guard lock(mu_);
    for (auto& [offset, message] : read_) {
      unfinished.push_back(std::move(message));
    }
    read_.clear();
    for (auto& fetched : buffer_) {
      unfinished.push_back(std::move(fetched.message));
    }
    buffer_.clear();
    buffer_bytes_ = 0;
  }
  if (!consumer_) {
    return;  // stopped before
  }
  for (const auto& message : unfinished) {
    if (auto s = consumer_->nak(message, std::chrono::milliseconds(0)); !s.ok()) {
      noteError(s);  // it comes back after the redelivery timeout instead
    }
  }
  // Closing the consumer settles with the backend at once (JetStream: the naks are sent, the
  // partitions released), not when this object goes, and before the queue itself closes.
  consumer_.reset();
}

queue::Offset ConsumerSource::begin() const {
  std::lock_guard lock(mu_);
  return buffer_.empty() ? next_offset_ : buffer_.front().offset;
}

void ConsumerSource::fetchLoop() {
  for (;;) {
    std::size_t room = 0;
    {
      std::unique_lock lock(mu_);
      // Wait for room, waking now and then to keep the worker's messages in progress.
      room_.wait_for(lock, 200ms, [&] {
        return stopping_ || (buffer_.size() < limits_.prefetch_messages &&
                             buffer_bytes_ < limits_.prefetch_bytes);
      });
      if (stopping_) {
        return;
      }
      if (buffer_.size() < limits_.prefetch_messages && buffer_bytes_ < limits_.prefetch_bytes) {
        room = limits_.prefetch_messages - buffer_.size();
      }
    }
    keepAlive();
    if (room == 0) {
      continue;
    }
    auto fetched = consumer_->fetch(std::min<std::size_t>(room, 1000),
                                    limits_.prefetch_bytes, 200ms);
    if (!fetched.ok()) {
      noteError(fetched.error());
      std::unique_lock lock(mu_);
      room_.wait_for(lock, 200ms, [&] { return stopping_; });
      continue;
    }
    if (fetched->empty()) {
      continue;
    }
    {
      std::lock_guard lock(mu_);
      for (auto& message : *fetched) {
        buffer_bytes_ += message.event.json().size();
        buffer_.push_back(Fetched{next_offset_++, std::move(message)});
      }
      end_.store(next_offset_, std::memory_order_release);
    }
    if (on_data_) {
      on_data_();
    }
  }
}

// Messages the worker holds (read, not acknowledged) are still being worked on: tell the
// backend, at a third of its redelivery timeout.
void ConsumerSource::keepAlive() {
  const auto timeout = consumer_->redeliveryTimeout();
  if (timeout.count() <= 0) {
    return;
  }
  const auto now = SteadyClock::now();
  std::lock_guard lock(mu_);
  if (now < next_keep_alive_) {
    return;
  }
  next_keep_alive_ = now + timeout / 3;
  for (const auto& [offset, message] : read_) {
    if (auto s = consumer_->inProgress(message); !s.ok()) {
      noteError(s);
      break;
    }
  }
  // Fetched but not read yet: also waiting for the worker.
  for (const auto& fetched : buffer_) {
    if (auto s = consumer_->inProgress(fetched.message); !s.ok()) {
      noteError(s);
      break;
    }
  }
}

sdk::Result<queue::ReadBatch> ConsumerSource::read(queue::Offset from, std::size_t max_records,
                                                   std::size_t max_bytes) {
  queue::ReadBatch batch;
  batch.next = from;
  {
    std::lock_guard lock(mu_);
    std::size_t bytes = 0;
    while (!buffer_.empty() && batch.records.size() < max_records) {
      Fetched& front = buffer_.front();
      if (front.offset < from) {  // not expected: the worker reads in order
        buffer_bytes_ -= front.message.event.json().size();
        buffer_.pop_front();
        continue;
      }
      const std::size_t size = front.message.event.json().size();
      if (!batch.records.empty() && bytes + size > max_bytes) {
        break;
      }
      bytes += size;
      buffer_bytes_ -= size;
      batch.records.push_back(queue::StoredRecord{front.offset, std::move(front.message.event)});
      batch.next = front.offset + 1;
      read_.emplace(front.offset, std::move(front.message));
      buffer_.pop_front();
    }
  }
  room_.notify_all();
  return batch;
}

sdk::Status ConsumerSource::commit(const std::string&, queue::Offset offset) {
  settleBelow(offset, {});
  return {};
}

sdk::Status ConsumerSource::commit(const std::string&, const queue::CursorState& state) {
  settleBelow(state.offset, state.done);
  return {};
}

void ConsumerSource::settleBelow(queue::Offset low,
                                 const std::vector<std::pair<queue::Offset, queue::Offset>>& done) {
  std::vector<queue::QueueMessage> finished;
  {
    std::lock_guard lock(mu_);
    while (!read_.empty() && read_.begin()->first < low) {
      finished.push_back(std::move(read_.begin()->second));
      read_.erase(read_.begin());
    }
    for (const auto& [begin, end] : done) {
      for (auto it = read_.lower_bound(begin); it != read_.end() && it->first < end;) {
        finished.push_back(std::move(it->second));
        it = read_.erase(it);
      }
    }
  }
  for (const auto& message : finished) {
    // A failed ack is redelivered by the backend: delivered twice, never lost.
    if (auto s = consumer_->ack(message); !s.ok()) {
      noteError(s);
    }
  }
}

void ConsumerSource::noteError(const sdk::Status& status) {
  errors_.fetch_add(1);
  std::lock_guard lock(error_mu_);
  last_error_ = status.message();
}

std::string ConsumerSource::lastError() const {
  std::lock_guard lock(error_mu_);
  return last_error_;
}

}  // namespace junction::core::delivery
