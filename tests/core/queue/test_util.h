#pragma once

// Helpers shared by the queue tests: a temp directory per test and event builders.

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "core/queue/log.h"
#include "junction/sdk/event.h"

namespace junction::core::queue::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/junction_queue_test.XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline sdk::Event makeTestEvent(int producer, int seq, std::size_t json_bytes = 0) {
  sdk::EventHeader h;
  h.type = sdk::EventType::Track;
  h.message_id = "m-" + std::to_string(producer) + "-" + std::to_string(seq);
  h.user_id = "user-" + std::to_string(seq % 17);
  h.name = "Order Completed";
  h.source_id = "src";
  h.timestamp_ms = 1700000000000 + seq;
  h.received_at_ms = 1700000000500 + seq;
  std::string json = R"({"type":"track","event":"Order Completed","p":)" +
                     std::to_string(producer) + R"(,"seq":)" + std::to_string(seq);
  if (json.size() + 2 < json_bytes) {
    json += R"(,"pad":")" + std::string(json_bytes - json.size() - 10, 'x') + "\"";
  }
  json += "}";
  return sdk::Event(std::move(h), std::move(json));
}

// Appends and waits for `done`. Returns the AppendResult (or the synchronous refusal).
inline AppendResult appendAndWait(Log& log, std::vector<sdk::Event> events) {
  std::promise<AppendResult> promise;
  auto future = promise.get_future();
  sdk::Status st =
      log.append(std::move(events), [&promise](AppendResult r) { promise.set_value(std::move(r)); });
  if (!st.ok()) {
    AppendResult refused;
    refused.status = st;
    return refused;
  }
  return future.get();
}

inline std::vector<StoredRecord> readAll(Log& log, Offset from = 0, std::size_t batch = 7) {
  std::vector<StoredRecord> out;
  while (true) {
    auto r = log.read(from, batch, 1u << 20);
    if (!r.ok() || r->records.empty()) {
      break;
    }
    for (auto& rec : r->records) {
      out.push_back(std::move(rec));
    }
    from = r->next;
  }
  return out;
}

inline std::vector<std::string> segmentFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace junction::core::queue::testing
