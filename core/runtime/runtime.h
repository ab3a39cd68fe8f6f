#pragma once

// What the daemon gives plugins besides logging and metrics: time, scheduled work, and durable
// checkpoints. Each is an implementation of an SDK interface.

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "junction/sdk/context.h"

namespace junction::core::runtime {

class SystemClock final : public sdk::Clock {
 public:
  std::int64_t nowMs() const noexcept override;
  std::chrono::steady_clock::time_point steadyNow() const noexcept override;
};

// Runs a connector's tasks on the daemon's worker io_context, all on one strand, so that tasks
// of one connector never run concurrently. Must outlive its handles' callbacks; `shutdown()`
// cancels every task and waits for runs in progress.
class StrandScheduler final : public sdk::Scheduler {
 public:
  explicit StrandScheduler(boost::asio::io_context& io);
  ~StrandScheduler() override;

  std::unique_ptr<sdk::TaskHandle> every(std::chrono::milliseconds interval,
                                         std::function<void()> task,
                                         bool run_now = false) noexcept override;
  std::unique_ptr<sdk::TaskHandle> after(std::chrono::milliseconds delay,
                                         std::function<void()> task) noexcept override;
  void shutdown() noexcept;
  // Periodic tasks (every) scheduled from now on run only while `may_run` says so: a run that
  // comes while it says no waits, asking again every `recheck`, and happens as soon as it says
  // yes (then the interval starts again). One-shot tasks (after) always run: they continue
  // what a periodic run started. The daemon gates a source's syncs with its lease when several
  // nodes share the queue.
  void gatePeriodic(std::function<bool()> may_run, std::chrono::milliseconds recheck);

  struct Task;  // runtime.cc

 private:
  std::unique_ptr<sdk::TaskHandle> schedule(std::chrono::milliseconds first,
                                            std::chrono::milliseconds interval,
                                            std::function<void()> task) noexcept;

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  std::mutex mutex_;
  std::vector<std::weak_ptr<Task>> tasks_;
  std::function<bool()> gate_;  // under mutex_
  std::chrono::milliseconds recheck_{1000};
};

// Checkpoints in one small JSON file per connector (`<dir>/<id>.json`), rewritten atomically
// (temp file, fdatasync, rename, directory fsync) on every store. Checkpoints change at the
// pace of incremental syncs (seconds to minutes), so a rewrite per store is cheap.
class FileCheckpointStore final : public sdk::CheckpointStore {
 public:
  explicit FileCheckpointStore(std::filesystem::path file);

  sdk::Result<std::optional<std::string>> load(std::string_view key) noexcept override;
  sdk::Status store(std::string_view key, std::string_view value) noexcept override;
  // Every key stored (an empty value included).
  sdk::Result<std::vector<std::string>> keys() noexcept;

 private:
  std::filesystem::path file_;
  std::mutex mutex_;
};

}  // namespace junction::core::runtime
