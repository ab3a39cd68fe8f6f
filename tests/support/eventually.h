#pragma once

// Waiting in tests for something another thread or process does.

#include <chrono>
#include <thread>

namespace junction::testing {

// Polls `condition` every `poll` until it holds (true) or `timeout` passes (then its last
// answer). The timeout only bounds a failing test: a passing one returns at once.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = std::chrono::seconds(15),
                std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(poll);
  }
  return condition();
}

}  // namespace junction::testing
