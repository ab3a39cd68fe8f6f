#pragma once

// Process plumbing shared by the real-server test helpers (PostgresServer, NatsServer): start
// a program detached from the test's stdin, descriptors and signal set-up with its output in a
// log file, pick free loopback ports, read the end of a log.
//
//   std::string error;
//   const std::vector<int> ports = junction::testing::pickFreePorts(2, &error);
//   const pid_t pid = junction::testing::spawnWithLog({"/usr/bin/prog", "-p", "1234"},
//                                                     "/tmp/x/prog.log", "/tmp/x", &error);
//   if (pid < 0) ... error says what failed ...
//
// Errors are described without a prefix ("open /tmp/x/prog.log: No such file or directory"):
// the callers put their own name in front.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace junction::testing {

// "<what>: <strerror(errno)>".
std::string errnoText(const std::string& what);

bool isExecutable(const std::string& path);

// `count` distinct ports on 127.0.0.1 nobody listens on now: all bound to port 0 at once (so
// they differ), read back, closed. Empty and *error when a socket call fails.
std::vector<int> pickFreePorts(int count, std::string* error);

// Forks and execs argv (argv[0] a path: no PATH search) with stdin from /dev/null, stdout and
// stderr appended to log_file (created 0644 if missing), cwd `cwd`, an empty signal mask and
// default dispositions, and no descriptor of the test beyond 0-2. The child exits 126 when the
// set-up fails and 127 when argv[0] cannot be executed. The child's pid, or -1 and *error when
// the log, /dev/null or fork fail. The caller reaps the child.
pid_t spawnWithLog(const std::vector<std::string>& argv, const std::string& log_file,
                   const std::string& cwd, std::string* error);

// The last `lines` lines of a file, each ending in "\n"; "" when it cannot be read.
std::string fileTail(const std::string& path, std::size_t lines);

}  // namespace junction::testing
