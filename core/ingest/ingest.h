#pragma once

// The ingest stage: what happens to events a source emits, before the client is answered.
// Fills what the source left out (source id, messageId, receivedAt), appends the events to the
// queue, and reports back once they are durable. Counted per source.
//
// Privacy (when a PrivacyStore is given): events of suppressed people are dropped here — counted
// in junction_events_suppressed_total{source}, never queued, reported in EmitResult::suppressed —
// and the consent stated by events is remembered for the person (PrivacyStore::rememberConsent)
// before they are queued, so a worker reading them finds it.

#include <atomic>
#include <string>
#include <vector>

#include "core/ingest/catalog.h"
#include "core/privacy/privacy_store.h"
#include "core/queue/event_queue.h"
#include "core/queue/log.h"
#include "core/telemetry/event_tap.h"
#include "junction/sdk/context.h"
#include "junction/sdk/source.h"

namespace junction::core::ingest {

// Thread-safe. Must outlive every emit in flight (the daemon closes the queue, which completes
// every accepted append, before destroying it).
class Ingest {
 public:
  // Events go to the embedded log itself (its own append path, the fastest), or to any backend
  // of the queue seam (NATS JetStream). `privacy` may be null (no suppression, no consent
  // memory); it must outlive the Ingest.
  Ingest(queue::Log& log, sdk::Metrics& metrics, const sdk::Clock& clock,
         privacy::PrivacyStore* privacy = nullptr);
  Ingest(queue::EventQueue& queue, sdk::Metrics& metrics, const sdk::Clock& clock,
         privacy::PrivacyStore* privacy = nullptr);

  // See sdk::SourceContext::emit. `done` runs exactly once.
  void emit(const std::string& source_id, std::vector<sdk::Event> events, sdk::EmitCallback done);

  // Before the first emit: the live debugger's tap (arrivals and suppressions are published
  // while someone watches). May stay null; must outlive the Ingest.
  void setTap(telemetry::EventTap* tap) noexcept { tap_ = tap; }
  // Before the first emit: the event catalog events are recorded in as they are queued (may
  // stay null; must outlive the Ingest).
  void setCatalog(EventCatalog* catalog) noexcept { catalog_ = catalog; }

  // Refuse new emits (Unavailable) from now on: the daemon is stopping.
  void close() noexcept { closed_.store(true); }

 private:
  queue::Log* log_ = nullptr;           // exactly one of the two
  queue::EventQueue* queue_ = nullptr;
  sdk::Metrics& metrics_;
  const sdk::Clock& clock_;
  privacy::PrivacyStore* privacy_;
  telemetry::EventTap* tap_ = nullptr;
  EventCatalog* catalog_ = nullptr;
  std::atomic<bool> closed_{false};
};

}  // namespace junction::core::ingest
