#pragma once

// The daemon's own threads: a name each (seen in top -H, perf, /proc/PID/task/*/comm, gdb), and
// background work below the acknowledgement path in the scheduler's eyes.
//
// Names are cut to the 15 characters Linux keeps. Nice values apply per thread on Linux.

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string_view>

namespace junction::core::runtime {

inline void nameThisThread(std::string_view name) noexcept {
  char buf[16];
  const std::size_t n = name.size() < sizeof buf - 1 ? name.size() : sizeof buf - 1;
  name.copy(buf, n);
  buf[n] = '\0';
  (void)pthread_setname_np(pthread_self(), buf);
}

inline pid_t thisThreadId() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Background threads (delivery, retention) run at this nice value: under a CPU shortage the
// threads that answer clients (HTTP I/O, the queue's writer) get ~3x their share, so ingest
// latency holds and delivery catches up when the load passes; with CPU to spare it changes
// nothing. Delivery is never starved: CFS gives every runnable thread its weighted share.
inline constexpr int kBackgroundNice = 5;

inline void makeThisThreadBackground(int nice = kBackgroundNice) noexcept {
  // SCHED_BATCH: a waking background thread does not preempt the running one (a thread about to
  // answer a client); then the nice value sets its share.
  sched_param param{};
  param.sched_priority = 0;
  (void)sched_setscheduler(0, SCHED_BATCH, &param);  // 0: the calling thread on Linux
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(thisThreadId()), nice);
}

// Work that keeps a derived view up to date and catches up from the durable queue by itself (the
// profile applier) can run at SCHED_IDLE: only on CPU that nothing else wants, preempted by any
// thread that wakes. A thread that may starve there needs a way back: a thread leaves SCHED_IDLE
// for SCHED_OTHER at nice 0 only as root, with CAP_SYS_NICE or with RLIMIT_NICE >= 20 (sched(7)).
inline bool mayLeaveIdle() noexcept {
  if (::geteuid() == 0) {
    return true;
  }
  rlimit limit{};
  return ::getrlimit(RLIMIT_NICE, &limit) == 0 &&
         (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= 20);
}

inline void makeThisThreadIdle() noexcept {
  sched_param param{};
  param.sched_priority = 0;
  (void)sched_setscheduler(0, SCHED_IDLE, &param);
}

// Thread `tid` back to SCHED_OTHER at nice 0; false when not allowed (see mayLeaveIdle()).
inline bool makeThreadNormal(pid_t tid) noexcept {
  sched_param param{};
  param.sched_priority = 0;
  return ::sched_setscheduler(tid, SCHED_OTHER, &param) == 0 &&
         ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 0) == 0;
}

}  // namespace junction::core::runtime
