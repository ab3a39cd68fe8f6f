#pragma once

// Test-only helpers for integration tests that run the real junctiond as a child process:
// a temp directory, the child process (started on port 0, its stderr in a file, killed in the
// destructor) and a small blocking HTTP/1.1 keep-alive client for 127.0.0.1.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/eventually.h"

namespace junction::integration {

namespace fs = std::filesystem;

inline const fs::path kBinaryDir = JUNCTION_BINARY_DIR;

// A fresh directory under /tmp, removed with its contents by the destructor.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/junction_it.XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
    }
  }
  ~TempDir() {
    if (const char* keep = std::getenv("JUNCTION_KEEP_TEST_DIRS"); keep != nullptr && *keep == '1') {
      std::fprintf(stderr, "kept %s (JUNCTION_KEEP_TEST_DIRS=1)\n", path_.c_str());
      return;
    }
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline void writeFile(const fs::path& file, std::string_view text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::string readFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// What `junction ARGS` printed (stdout and stderr together) and its exit status (-1 when it did
// not exit normally).
struct CliRun {
  int code = -1;
  std::string out;
};

// Runs build/bin/junction with `args` (a shell word list) and waits for it.
inline CliRun runJunction(const std::string& args) {
  const std::string command = (kBinaryDir / "bin" / "junction").string() + " " + args + " 2>&1";
  CliRun result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return result;
  }
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
    result.out.append(buf, n);
  }
  const int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

using testing::eventually;

// build/bin/junctiond as a child process. Each start() writes the child's stderr to a new file
// and waits for the "junctiond ready listen=HOST:PORT" line. The destructor SIGKILLs a child
// still running.
class DaemonProcess {
 public:
  explicit DaemonProcess(fs::path config) : config_(std::move(config)) {}
  ~DaemonProcess() { kill(); }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts the daemon with its stderr going to `log_file`; returns its port once it logged
  // "junctiond ready", or nullopt (the child is then killed) if it exited or `timeout` passed.
  std::optional<std::uint16_t> start(const fs::path& log_file,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    kill();
    log_file_ = log_file;
    // Remove the previous run's log first: otherwise its "ready" line may be read before the
    // child has truncated the file.
    std::error_code ignored;
    fs::remove(log_file, ignored);
    const std::string binary = (kBinaryDir / "bin" / "junctiond").string();
    const std::string config = config_.string();
    const std::string log = log_file.string();
    pid_t pid = ::fork();
    if (pid < 0) {
      return std::nullopt;
    }
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDERR_FILENO);
        ::dup2(fd, STDOUT_FILENO);
      }
      // The test may block signals in its threads; the daemon must start with a clean mask.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execl(binary.c_str(), binary.c_str(), "--config", config.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    constexpr std::string_view kReady = "junctiond ready";
    constexpr std::string_view kListen = "listen=127.0.0.1:";
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = readFile(log_file);
      if (auto at = text.find(kReady); at != std::string::npos) {
        auto listen = text.find(kListen, at);
        if (listen != std::string::npos) {
          std::size_t p = listen + kListen.size();
          unsigned port = 0;
          while (p < text.size() && text[p] >= '0' && text[p] <= '9') {
            port = port * 10 + static_cast<unsigned>(text[p] - '0');
            ++p;
          }
          if (port > 0 && port < 65536 && p < text.size()) {
            return static_cast<std::uint16_t>(port);
          }
        }
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return std::nullopt;  // exited before ready
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill();
    return std::nullopt;
  }

  // Sends `sig` (SIGHUP: reload) to the running daemon; false without one.
  bool signal(int sig) const { return pid_ > 0 && ::kill(pid_, sig) == 0; }

  // SIGKILL and reap; no-op without a child.
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  // SIGTERM, wait up to `timeout`, then SIGKILL. True if it exited by itself with status 0.
  bool terminate(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (pid_ <= 0) {
      return false;
    }
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_ = WIFEXITED(status)     ? "exited with status " + std::to_string(WEXITSTATUS(status))
                : WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                      : "stopped";
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exit_ = "still running after the timeout: killed";
    kill();
    return false;
  }
  // How the last terminate() ended, for failure messages.
  const std::string& exitDescription() const { return exit_; }

  bool running() const { return pid_ > 0; }
  std::string log() const { return readFile(log_file_); }

 private:
  std::string exit_;
  fs::path config_;
  fs::path log_file_;
  pid_t pid_ = -1;
};

struct HttpReply {
  int status = 0;  // 0: no answer (connection refused, reset, timeout)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) {
        return v;
      }
    }
    return {};
  }
};

// A blocking HTTP/1.1 client on one keep-alive connection to 127.0.0.1:port; reconnects when
// the connection was closed. Every socket operation has a timeout. Not thread-safe: one per
// thread.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : port_(port), timeout_(timeout) {}
  ~HttpClient() { close(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void setPort(std::uint16_t port) {
    if (port != port_) {
      close();
      port_ = port;
    }
  }
  std::uint64_t connects() const { return connects_; }

  HttpReply request(std::string_view method, std::string_view target, std::string_view body = {},
                    std::string_view extra_headers = {}) {
    // A reused connection may have been closed by the server while idle: retry once on a new
    // one only when nothing at all came back (the request may then not have been processed, or
    // may have been — callers treat status 0 as "unknown").
    const bool reused = fd_ >= 0;
    HttpReply reply = once(method, target, body, extra_headers);
    if (reply.status == 0 && reused && !got_bytes_) {
      close();
      reply = once(method, target, body, extra_headers);
    }
    return reply;
  }

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    buffer_.clear();
  }

 private:
  bool connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      return false;
    }
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout_.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close();
      return false;
    }
    ++connects_;
    return true;
  }

  HttpReply once(std::string_view method, std::string_view target, std::string_view body,
                 std::string_view extra_headers) {
    got_bytes_ = false;
    HttpReply reply;
    if (fd_ < 0 && !connect()) {
      return reply;
    }
    std::string req;
    req.reserve(body.size() + 256);
    req.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    req.append("Connection: keep-alive\r\nContent-Type: application/json\r\n");
    req.append(extra_headers);
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    req.append(body);
    std::size_t sent = 0;
    while (sent < req.size()) {
      ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        close();
        return reply;
      }
      sent += static_cast<std::size_t>(n);
    }
    // Headers.
    std::size_t header_end = std::string::npos;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        close();
        return reply;
      }
    }
    std::string_view head(buffer_.data(), header_end);
    std::size_t line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
      close();
      return reply;
    }
    int status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    std::size_t content_length = 0;
    bool close_after = false;
    std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      std::size_t e = head.find("\r\n", pos);
      if (e == std::string_view::npos) {
        e = head.size();
      }
      std::string_view line = head.substr(pos, e - pos);
      pos = e + 2;
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        continue;
      }
      std::string name(line.substr(0, colon));
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
      }
      if (name == "content-length") {
        content_length = static_cast<std::size_t>(std::strtoull(std::string(value).c_str(), nullptr, 10));
      } else if (name == "connection" && value.find("close") != std::string_view::npos) {
        close_after = true;
      }
      reply.headers.emplace_back(std::move(name), std::string(value));
    }
    const std::size_t body_start = header_end + 4;
    while (buffer_.size() < body_start + content_length) {
      if (!fill()) {
        close();
        return HttpReply{};
      }
    }
    reply.body = buffer_.substr(body_start, content_length);
    buffer_.erase(0, body_start + content_length);
    reply.status = status;
    if (close_after) {
      close();
    }
    return reply;
  }

  bool fill() {
    char chunk[16384];
    for (;;) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;
      }
      got_bytes_ = true;
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
  }

  std::uint16_t port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
  bool got_bytes_ = false;
  std::uint64_t connects_ = 0;
};

// Every value of "messageId":"..." in `text`, in order (tolerates torn or glued lines).
inline void collectMessageIds(std::string_view text, std::vector<std::string_view>& out) {
  constexpr std::string_view kKey = "\"messageId\":\"";
  std::size_t pos = 0;
  while ((pos = text.find(kKey, pos)) != std::string_view::npos) {
    pos += kKey.size();
    std::size_t end = text.find('"', pos);
    if (end == std::string_view::npos) {
      break;
    }
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
}

}  // namespace junction::integration
