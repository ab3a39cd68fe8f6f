#pragma once

// The ingest stage: what happens to events a source emits, before the client is answered.
// Fills what the source left out (source id, messageId, receivedAt), appends the events to the
// queue, and reports back once they are durable. Counted per source.

#include <atomic>
#include <string>
#include <vector>

#include "core/queue/log.h"
#include "junction/sdk/context.h"
#include "junction/sdk/source.h"

namespace junction::core::ingest {

// Thread-safe. Must outlive every emit in flight (the daemon closes the queue, which completes
// every accepted append, before destroying it).
class Ingest {
 public:
  Ingest(queue::Log& log, sdk::Metrics& metrics, const sdk::Clock& clock);

  // See sdk::SourceContext::emit. `done` runs exactly once.
  void emit(const std::string& source_id, std::vector<sdk::Event> events, sdk::EmitCallback done);

  // Refuse new emits (Unavailable) from now on: the daemon is stopping.
  void close() noexcept { closed_.store(true); }

 private:
  queue::Log& log_;
  sdk::Metrics& metrics_;
  const sdk::Clock& clock_;
  std::atomic<bool> closed_{false};
};

// A random (version 4) UUID, as Segment's libraries make messageIds.
std::string makeUuid();

}  // namespace junction::core::ingest
