#pragma once

// `junction tail`: the live event debugger in the terminal. Streams GET /admin/debug/events of
// a running daemon (found from --config, or --url) and prints one line per record: events as
// they arrive and each destination's decision, with the same filters the dashboard has.
// See core/cli/README.md.

#include <cstdint>
#include <string>

#include "core/cli/status.h"

namespace junction::cli {

struct TailArgs {
  AdminArgs admin;
  std::string source;
  std::string destination;
  std::string event;
  std::string person;
  std::uint64_t count = 0;  // stop after this many records; 0 = until interrupted
};

// Exit status: 0 (stopped by --count or the daemon closing the stream), 1 error.
int runTail(const TailArgs& args);

}  // namespace junction::cli
