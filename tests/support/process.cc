#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>

namespace junction::testing {

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

bool isExecutable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

std::vector<int> pickFreePorts(int count, std::string* error) {
  // All sockets stay bound until every port is read: closing one before binding the next
  // could hand out the same port twice.
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *error = errnoText("socket");
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      *error = errnoText("bind 127.0.0.1:0");
      break;
    }
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      *error = errnoText("getsockname");
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  if (static_cast<int>(ports.size()) != count) ports.clear();
  return ports;
}

pid_t spawnWithLog(const std::vector<std::string>& argv, const std::string& log_file,
                   const std::string& cwd, std::string* error) {
  // Everything the child needs is built before fork: after it only async-signal-safe calls
  // (another thread may hold malloc's lock).
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (std::string& arg : args) c_argv.push_back(arg.data());
  c_argv.push_back(nullptr);

  const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    *error = errnoText("open " + log_file);
    return -1;
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    *error = errnoText("open /dev/null");
    ::close(log_fd);
    return -1;
  }
  const long max_fd = ::sysconf(_SC_OPEN_MAX);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: output to the log, no stdin, cwd the server's directory (a user the program runs
    // as may not reach the test's), default signals (the test's handlers and blocked signals
    // would otherwise be inherited), and none of the test's descriptors (a listening socket
    // inherited by a server would outlive its owner).
    if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) _exit(126);
    if (::chdir(cwd.c_str()) != 0) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD}) {
      sigaction(sig, &dfl, nullptr);
    }
    // close_range needs Linux 5.9; older kernels get the loop.
    if (::close_range(3, ~0U, 0) != 0) {
      for (long fd = 3; fd < max_fd; ++fd) ::close(static_cast<int>(fd));
    }
    ::execv(c_argv[0], c_argv.data());
    _exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) {
    errno = fork_errno;
    *error = errnoText("fork");
    return -1;
  }
  return pid;
}

std::string fileTail(const std::string& path, std::size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& l : tail) out += l + "\n";
  return out;
}

}  // namespace junction::testing
