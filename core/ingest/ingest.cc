#include "core/ingest/ingest.h"

#include <boost/json.hpp>

#include "junction/sdk/event.h"
#include "junction/sdk/json.h"

namespace junction::core::ingest {

namespace json = boost::json;

Ingest::Ingest(queue::Log& log, sdk::Metrics& metrics, const sdk::Clock& clock,
               privacy::PrivacyStore* privacy)
    : log_(&log), metrics_(metrics), clock_(clock), privacy_(privacy) {}

Ingest::Ingest(queue::EventQueue& queue, sdk::Metrics& metrics, const sdk::Clock& clock,
               privacy::PrivacyStore* privacy)
    : queue_(&queue), metrics_(metrics), clock_(clock), privacy_(privacy) {}

void Ingest::emit(const std::string& source_id, std::vector<sdk::Event> events,
                  sdk::EmitCallback done) {
  auto& received = metrics_.counter("junction_events_received_total",
                                    "Events accepted durably into the queue", {{"source", source_id}});
  auto rejected = [&](const char* reason) -> sdk::Counter& {
    return metrics_.counter("junction_events_rejected_total",
                            "Events refused at ingest, by reason",
                            {{"source", source_id}, {"reason", reason}});
  };
  if (closed_.load()) {
    rejected("shutting_down").inc(events.size());
    done(sdk::EmitResult{sdk::makeError(sdk::ErrorCode::Unavailable, "the daemon is shutting down"),
                         std::chrono::seconds(1), 0, 0});
    return;
  }
  const std::int64_t now = clock_.nowMs();
  std::size_t unwritable = 0;
  for (auto& event : events) {
    const sdk::EventHeader& h = event.header();
    if (h.source_id == source_id && !h.message_id.empty() && h.received_at_ms != 0) {
      continue;  // the source enriched it already
    }
    sdk::EventHeader header = h;
    header.source_id = source_id;
    if (header.received_at_ms == 0) {
      header.received_at_ms = now;
    }
    std::string body(event.json());
    if (header.message_id.empty()) {
      header.message_id = sdk::makeUuidV4();
      json::object object = event.body();
      object["messageId"] = header.message_id;
      auto text = sdk::serialize(object);
      if (!text) {
        // A body JSON cannot write (a number out of range that a source let through): refused
        // here, counted and logged, rather than queued as text no destination could read.
        ++unwritable;
        event = sdk::Event();
        continue;
      }
      body = std::move(text).value();
    }
    if (header.timestamp_ms == 0) {
      header.timestamp_ms = header.received_at_ms;
    }
    event = sdk::Event(std::move(header), std::move(body));
  }
  if (unwritable > 0) {
    rejected("invalid").inc(unwritable);
    std::erase_if(events, [](const sdk::Event& e) { return e.messageId().empty(); });
    if (events.empty()) {
      done(sdk::EmitResult{{}, {}, 0, 0});  // accepted 0: the source sees that none was queued
      return;
    }
  }
  std::size_t suppressed = 0;
  if (privacy_ != nullptr) {
    if (privacy_->hasSuppressions()) {
      const bool watched = tap_ != nullptr && tap_->active();
      suppressed = std::erase_if(events, [&](const sdk::Event& e) {
        if (!privacy_->isSuppressed(e)) {
          return false;
        }
        if (watched) {
          tap_->arrived(e, "suppressed");
        }
        return true;
      });
      if (suppressed > 0) {
        metrics_
            .counter("junction_events_suppressed_total",
                     "Events dropped at ingest: the person is under a suppress regulation",
                     {{"source", source_id}})
            .inc(suppressed);
      }
    }
    if (auto s = privacy_->rememberConsent(events); !s.ok()) {
      // Routing still works from the consent the events state; only the memory is missing.
      metrics_
          .counter("junction_privacy_store_errors_total", "Writes to the privacy store that failed",
                   {{"source", source_id}})
          .inc();
    }
    if (events.empty()) {
      done(sdk::EmitResult{{}, {}, 0, suppressed});
      return;
    }
  }
  const std::size_t count = events.size();
  if (catalog_ != nullptr) {
    catalog_->observe(source_id, events, now);  // what is handed to the queue
  }
  auto& write_failed = rejected("write_failed");
  // Someone watches the live debugger: the events are shown once they are durable (a copy;
  // nothing is copied otherwise).
  std::shared_ptr<std::vector<sdk::Event>> shown;
  if (tap_ != nullptr && tap_->active()) {
    for (const auto& e : events) {
      if (tap_->wants(e)) {
        if (!shown) {
          shown = std::make_shared<std::vector<sdk::Event>>();
        }
        shown->push_back(e);
      }
    }
  }
  auto stored = [&received, &write_failed, count, suppressed, done, shown,
                 tap = tap_](const sdk::Status& status) {
    if (status.ok()) {
      received.inc(count);
      if (shown) {
        for (const auto& e : *shown) {
          tap->arrived(e, "received", /*admitted=*/true);
        }
      }
      done(sdk::EmitResult{{}, {}, count, suppressed});
    } else {
      write_failed.inc(count);
      done(sdk::EmitResult{status, std::chrono::seconds(1), 0, 0});
    }
  };
  auto status = log_ != nullptr
                    ? log_->append(std::move(events),
                                   [stored = std::move(stored)](queue::AppendResult r) {
                                     stored(r.status);
                                   })
                    : queue_->append(std::move(events), std::move(stored));
  if (!status.ok()) {
    const bool full = status.error().code == sdk::ErrorCode::ResourceExhausted;
    rejected(full                                                 ? "disk_budget"
             : status.error().code == sdk::ErrorCode::InvalidArgument ? "too_large"
                                                                      : "queue_unavailable")
        .inc(count);
    done(sdk::EmitResult{status, std::chrono::seconds(full ? 5 : 1), 0, 0});
  }
}

}  // namespace junction::core::ingest
