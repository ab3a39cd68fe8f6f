#pragma once

// Where a destination worker reads its events and records its progress. The worker thinks in
// offsets: it reads records from a position, and commits a cursor (the low watermark of what it
// finished, and the finished ranges above it, queue::CursorState).
//
// - LogSource: the embedded log and the cursor store, as they are (exact across crashes, with
//   the delivered count `junction warehouse verify` uses).
// - ConsumerSource (consumer_source.h): any queue::Consumer (NATS JetStream): messages get
//   offsets in the order they are fetched, and a commit acknowledges every message the cursor
//   covers.

#include <optional>
#include <string>

#include "core/queue/cursor_store.h"
#include "core/queue/log.h"

namespace junction::core::delivery {

class WorkerSource {
 public:
  virtual ~WorkerSource() = default;

  // The cursor stored for `id`, or nullopt: none (start at begin() or end() by `start:`).
  virtual std::optional<queue::CursorState> stored(const std::string& id) const = 0;
  virtual queue::Offset begin() const = 0;
  // Records below end() can be read now. notify() (given by the owner) says when it moves.
  virtual queue::Offset end() const = 0;
  virtual sdk::Result<queue::ReadBatch> read(queue::Offset from, std::size_t max_records,
                                             std::size_t max_bytes) = 0;
  // A fresh cursor at `offset` (keeping a stored delivered count).
  virtual sdk::Status commit(const std::string& id, queue::Offset offset) = 0;
  virtual sdk::Status commit(const std::string& id, const queue::CursorState& state) = 0;
  // Makes committed cursors durable.
  virtual sdk::Status flush() = 0;
};

class LogSource final : public WorkerSource {
 public:
  LogSource(queue::Log& log, queue::CursorStore& cursors) : log_(log), cursors_(cursors) {}

  std::optional<queue::CursorState> stored(const std::string& id) const override {
    return cursors_.state(id);
  }
  queue::Offset begin() const override { return log_.beginOffset(); }
  queue::Offset end() const override { return log_.durableEnd(); }
  sdk::Result<queue::ReadBatch> read(queue::Offset from, std::size_t max_records,
                                     std::size_t max_bytes) override {
    return log_.read(from, max_records, max_bytes);
  }
  sdk::Status commit(const std::string& id, queue::Offset offset) override {
    return cursors_.commit(id, offset);
  }
  sdk::Status commit(const std::string& id, const queue::CursorState& state) override {
    return cursors_.commit(id, state);
  }
  sdk::Status flush() override { return cursors_.flush(); }

 private:
  queue::Log& log_;
  queue::CursorStore& cursors_;
};

}  // namespace junction::core::delivery
