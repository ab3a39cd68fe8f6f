#include "core/runtime/runtime.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <condition_variable>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace junction::core::runtime {

namespace asio = boost::asio;

std::int64_t SystemClock::nowMs() const noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::steady_clock::time_point SystemClock::steadyNow() const noexcept {
  return std::chrono::steady_clock::now();
}

// One scheduled task. Runs on the strand; `cancel` may come from any thread.
struct StrandScheduler::Task : std::enable_shared_from_this<StrandScheduler::Task> {
  Task(asio::strand<asio::io_context::executor_type> strand, std::chrono::milliseconds every,
       std::function<void()> fn)
      : timer(strand), interval(every), work(std::move(fn)) {}

  void arm(std::chrono::milliseconds delay) {
    timer.expires_after(delay);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec) {
        return;
      }
      self->runOnce();
    });
  }

  void runOnce() {
    if (gate && !gate()) {
      std::lock_guard lock(mutex);
      if (!cancelled) {
        arm(recheck);  // owed: runs once the gate opens
      }
      return;
    }
    {
      std::lock_guard lock(mutex);
      if (cancelled) {
        return;
      }
      running = true;
      runner = std::this_thread::get_id();
    }
    try {
      work();
    } catch (...) {
      // A plugin's task must not take the worker down; the next run happens as scheduled.
    }
    bool again = false;
    {
      std::lock_guard lock(mutex);
      running = false;
      again = !cancelled && interval.count() > 0;
    }
    done.notify_all();
    if (again) {
      arm(interval);
    }
  }

  void cancel() {
    std::unique_lock lock(mutex);
    cancelled = true;
    asio::post(timer.get_executor(), [self = shared_from_this()] { self->timer.cancel(); });
    if (runner != std::this_thread::get_id()) {
      done.wait(lock, [&] { return !running; });
    }
  }

  asio::steady_timer timer;
  std::chrono::milliseconds interval;
  std::function<void()> work;
  std::function<bool()> gate;  // periodic tasks of a gated scheduler; set before the first arm
  std::chrono::milliseconds recheck{1000};
  std::mutex mutex;
  std::condition_variable done;
  bool cancelled = false;
  bool running = false;
  std::thread::id runner;
};

namespace {
class Handle final : public sdk::TaskHandle {
 public:
  explicit Handle(std::shared_ptr<StrandScheduler::Task> task) : task_(std::move(task)) {}
  ~Handle() override { cancel(); }
  void cancel() noexcept override {
    if (task_) {
      task_->cancel();
      task_.reset();
    }
  }

 private:
  std::shared_ptr<StrandScheduler::Task> task_;
};
}  // namespace

StrandScheduler::StrandScheduler(asio::io_context& io) : strand_(asio::make_strand(io)) {}

StrandScheduler::~StrandScheduler() { shutdown(); }

std::unique_ptr<sdk::TaskHandle> StrandScheduler::schedule(std::chrono::milliseconds first,
                                                           std::chrono::milliseconds interval,
                                                           std::function<void()> fn) noexcept {
  auto task = std::make_shared<Task>(strand_, interval, std::move(fn));
  {
    std::lock_guard lock(mutex_);
    if (interval.count() > 0) {
      task->gate = gate_;
      task->recheck = recheck_;
    }
    std::erase_if(tasks_, [](const auto& w) { return w.expired(); });
    tasks_.push_back(task);
  }
  asio::post(strand_, [task, first] { task->arm(first); });
  return std::make_unique<Handle>(task);
}

std::unique_ptr<sdk::TaskHandle> StrandScheduler::every(std::chrono::milliseconds interval,
                                                        std::function<void()> task,
                                                        bool run_now) noexcept {
  if (interval.count() <= 0) {
    interval = std::chrono::milliseconds(1);
  }
  return schedule(run_now ? std::chrono::milliseconds(0) : interval, interval, std::move(task));
}

std::unique_ptr<sdk::TaskHandle> StrandScheduler::after(std::chrono::milliseconds delay,
                                                        std::function<void()> task) noexcept {
  return schedule(delay, std::chrono::milliseconds(0), std::move(task));
}

void StrandScheduler::gatePeriodic(std::function<bool()> may_run,
                                   std::chrono::milliseconds recheck) {
  std::lock_guard lock(mutex_);
  gate_ = std::move(may_run);
  recheck_ = recheck.count() > 0 ? recheck : std::chrono::milliseconds(1);
}

void StrandScheduler::shutdown() noexcept {
  std::vector<std::weak_ptr<Task>> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& weak : tasks) {
    if (auto task = weak.lock()) {
      task->cancel();
    }
  }
}

FileCheckpointStore::FileCheckpointStore(std::filesystem::path file) : file_(std::move(file)) {}

namespace {
sdk::Result<boost::json::object> readCheckpoints(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return boost::json::object{};
  }
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto value = boost::json::parse(text.str(), ec);
  if (ec || !value.is_object()) {
    return sdk::makeError(sdk::ErrorCode::Internal,
                          "checkpoint file " + file.string() + " is corrupt: " + ec.message());
  }
  return std::move(value.as_object());
}
}  // namespace

sdk::Result<std::optional<std::string>> FileCheckpointStore::load(std::string_view key) noexcept {
  std::lock_guard lock(mutex_);
  auto all = readCheckpoints(file_);
  if (!all) {
    return std::move(all).error();
  }
  if (const auto* v = all->if_contains(key); v != nullptr && v->is_string()) {
    return std::optional<std::string>(std::string(v->as_string()));
  }
  return std::optional<std::string>();
}

sdk::Result<std::vector<std::string>> FileCheckpointStore::keys() noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto all = readCheckpoints(file_);
    if (!all) {
      return std::move(all).error();
    }
    std::vector<std::string> out;
    for (const auto& [k, v] : *all) {
      out.emplace_back(k);
    }
    return out;
  } catch (const std::exception& e) {
    return sdk::makeError(sdk::ErrorCode::Internal, e.what());
  }
}

sdk::Status FileCheckpointStore::store(std::string_view key, std::string_view value) noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto all = readCheckpoints(file_);
    if (!all) {
      return std::move(all).error();
    }
    (*all)[key] = value;
    std::string text = boost::json::serialize(*all);
    std::error_code fs_ec;
    std::filesystem::create_directories(file_.parent_path(), fs_ec);
    std::string tmp = file_.string() + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot write " + tmp);
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fdatasync(fd) == 0;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), file_.c_str()) != 0) {
      return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot write " + file_.string());
    }
    int dir = ::open(file_.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
    return {};
  } catch (const std::exception& e) {
    return sdk::makeError(sdk::ErrorCode::Internal, e.what());
  }
}

}  // namespace junction::core::runtime
