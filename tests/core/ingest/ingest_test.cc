// The ingest stage over a real queue: what it adds to an event (messageId, receivedAt, source)
// and what it refuses rather than queue.

#include "core/ingest/ingest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>

#include "core/runtime/runtime.h"
#include "core/telemetry/metrics_registry.h"
#include "junction/sdk/testing/temp_dir.h"

namespace junction::core::ingest {
namespace {

using ::testing::HasSubstr;

sdk::Event rawEvent(std::string user, std::string text) {
  sdk::EventHeader header;
  header.type = sdk::EventType::Track;
  header.user_id = std::move(user);
  header.name = "E";
  return sdk::Event(std::move(header), std::move(text));  // no messageId: ingest adds one
}

TEST(IngestTest, AnEventJsonCannotWriteBackIsRefusedAndCountedNotQueued) {
  sdk::testing::TempDir dir;
  queue::LogOptions options;
  options.path = (dir.path() / "queue").string();
  options.fsync = queue::FsyncPolicy::Never;
  auto log = queue::Log::open(options, nullptr);
  ASSERT_TRUE(log) << log.error().message;
  telemetry::MetricsRegistry metrics;
  runtime::SystemClock clock;
  Ingest ingest(**log, metrics, clock, nullptr);

  std::promise<sdk::EmitResult> result;
  ingest.emit("raw", {rawEvent("u1", R"({"type":"track","userId":"u1","event":"E"})"),
                      rawEvent("u2", R"({"type":"track","userId":"u2","event":"E","properties":{"n":1e400}})")},
              [&](sdk::EmitResult r) { result.set_value(std::move(r)); });
  auto r = result.get_future().get();
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.accepted, 1u);
  EXPECT_EQ(metrics.valueOf("junction_events_rejected_total", {{"source", "raw"}, {"reason", "invalid"}})
                .value_or(0),
            1.0);
  auto read = (*log)->read((*log)->beginOffset(), 10, 1 << 20);
  ASSERT_TRUE(read);
  ASSERT_EQ(read->records.size(), 1u);
  EXPECT_EQ(read->records[0].event.userId(), "u1");
  EXPECT_THAT(std::string(read->records[0].event.json()), HasSubstr("\"messageId\":"));
  EXPECT_THAT(std::string(read->records[0].event.json()), ::testing::Not(HasSubstr("Infinity")));

  // Only unwritable events: nothing is queued and the source is told none was.
  std::promise<sdk::EmitResult> none;
  ingest.emit("raw", {rawEvent("u3", R"({"type":"track","userId":"u3","event":"E","x":-1e999})")},
              [&](sdk::EmitResult res) { none.set_value(std::move(res)); });
  EXPECT_EQ(none.get_future().get().accepted, 0u);
}

}  // namespace
}  // namespace junction::core::ingest
