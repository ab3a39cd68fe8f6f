// IncrementalSync with the testing kit: a manual clock and scheduler, in-memory checkpoints, and
// a FakeSourceContext whose emit callbacks can be held (not yet durable) or refused.

#include "junction/sdk/incremental_sync.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <string>
#include <vector>

#include "junction/sdk/testing/fake_context.h"

namespace junction::sdk {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using testing::FakeSourceContext;

// A vendor of records (id, modified), read `page_size` at a time, oldest first, "modified >=
// checkpoint"; the page token is the run's bound and an offset. Records may change between runs.
class FakeVendor {
 public:
  std::map<std::string, std::int64_t> records;  // id -> modified
  std::size_t page_size = 2;
  std::vector<SyncRequest> requests;
  std::vector<Result<SyncPage>> scripted;  // answered first, in order, before the data

  Result<SyncPage> pull(const SyncRequest& request) {
    requests.push_back(request);
    if (!scripted.empty()) {
      auto next = std::move(scripted.front());
      scripted.erase(scripted.begin());
      return next;
    }
    // The page token carries the run's own bound: the checkpoint moves on during a run.
    std::int64_t since = request.checkpoint ? std::stoll(*request.checkpoint) : 0;
    std::size_t offset = 0;
    if (const auto colon = request.page.find(':'); colon != std::string::npos) {
      since = std::stoll(request.page.substr(0, colon));
      offset = std::stoul(request.page.substr(colon + 1));
    }
    std::vector<std::pair<std::int64_t, std::string>> changed;
    for (const auto& [id, modified] : records) {
      if (modified >= since) {
        changed.emplace_back(modified, id);
      }
    }
    std::sort(changed.begin(), changed.end());
    SyncPage page;
    for (std::size_t i = offset; i < std::min(changed.size(), offset + page_size); ++i) {
      boost::json::object body{{"type", "identify"},
                               {"userId", changed[i].second},
                               {"traits", {{"modified", changed[i].first}}}};
      page.events.push_back(makeEvent(body, "crm").value());
      page.checkpoint = std::to_string(changed[i].first);
    }
    if (offset + page_size < changed.size()) {
      page.next_page = std::to_string(since) + ":" + std::to_string(offset + page_size);
    }
    return page;
  }
};

std::vector<std::string> userIds(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(e.userId());
  }
  return out;
}

std::optional<std::string> storedCheckpoint(FakeSourceContext& ctx) {
  auto v = ctx.checkpoints().values();
  auto it = v.find("cursor");
  return it == v.end() ? std::nullopt : std::optional<std::string>(it->second);
}

class IncrementalSyncTest : public ::testing::Test {
 protected:
  IncrementalSyncTest() {
    vendor.records = {{"a", 100}, {"b", 200}, {"c", 300}, {"d", 400}, {"e", 500}};
  }
  std::unique_ptr<IncrementalSync> makeSync(std::chrono::milliseconds every = 60s) {
    return std::make_unique<IncrementalSync>(
        ctx, IncrementalSyncOptions{.every = every},
        [this](const SyncRequest& r) { return vendor.pull(r); });
  }
  std::size_t runDue() { return ctx.scheduler().runDue(); }
  std::size_t advance(std::chrono::milliseconds d) {
    return ctx.scheduler().advanceAndRun(ctx.manualClock(), d);
  }

  FakeSourceContext ctx{"crm"};
  FakeVendor vendor;
};

TEST_F(IncrementalSyncTest, AFirstFullSyncThenIncrementalOnes) {
  auto sync = makeSync();
  ASSERT_TRUE(sync->start().ok());
  runDue();  // the first run, at start
  EXPECT_THAT(userIds(ctx.events()), ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_EQ(storedCheckpoint(ctx), "500");
  ASSERT_EQ(vendor.requests.size(), 3u);  // pages of 2, 2, 1
  EXPECT_EQ(vendor.requests[0].checkpoint, std::nullopt);
  EXPECT_EQ(vendor.requests[0].page, "");
  EXPECT_EQ(vendor.requests[1].checkpoint, "200");  // committed after page 1
  EXPECT_EQ(vendor.requests[1].page, "0:2");
  EXPECT_EQ(vendor.requests[2].page_number, 2u);

  auto status = sync->status();
  EXPECT_FALSE(status.running);
  EXPECT_EQ(status.runs_succeeded, 1u);
  EXPECT_EQ(status.run_records, 5u);
  EXPECT_EQ(status.run_pages, 3u);
  EXPECT_EQ(status.last_success_ms, ctx.clock().nowMs());
  auto& m = ctx.metrics();
  EXPECT_EQ(m.counterValue("junction_sync_runs_total", {{"result", "success"}}), 1u);
  EXPECT_EQ(m.counterValue("junction_sync_records_total"), 5u);
  EXPECT_EQ(m.counterValue("junction_sync_pages_total"), 3u);
  EXPECT_EQ(m.counterValue("junction_sync_checkpoint_commits_total"), 3u);
  EXPECT_EQ(m.gaugeValue("junction_sync_run_records"), 5.0);
  EXPECT_EQ(m.gaugeValue("junction_sync_running"), 0.0);
  EXPECT_EQ(m.gaugeValue("junction_sync_last_success_timestamp_seconds"),
            static_cast<double>(ctx.clock().nowMs()) / 1000.0);
  EXPECT_EQ(m.histogramCount("junction_sync_run_duration_seconds"), 1u);
  EXPECT_TRUE(ctx.log().contains("sync run finished"));

  // Nothing before the next tick; then only what changed since (the checkpoint is inclusive).
  vendor.records["b"] = 600;
  vendor.records["f"] = 700;
  EXPECT_EQ(advance(59s), 0u);
  advance(1s);
  EXPECT_THAT(userIds(ctx.events()), ElementsAre("a", "b", "c", "d", "e", "e", "b", "f"));
  EXPECT_EQ(storedCheckpoint(ctx), "700");
  EXPECT_EQ(sync->status().runs_succeeded, 2u);
  EXPECT_EQ(sync->status().run_records, 3u);
}

TEST_F(IncrementalSyncTest, TheCheckpointIsNeverAheadOfDurableEvents) {
  auto sync = makeSync();
  ctx.holdCallbacks(true);
  ASSERT_TRUE(sync->start().ok());
  runDue();
  // Page 1 emitted, not yet durable: no checkpoint, no second pull.
  ASSERT_EQ(ctx.emitCount(), 1u);
  EXPECT_EQ(storedCheckpoint(ctx), std::nullopt);
  EXPECT_EQ(vendor.requests.size(), 1u);
  EXPECT_TRUE(sync->status().running);
  EXPECT_EQ(ctx.metrics().gaugeValue("junction_sync_running"), 1.0);

  // Durable now: the checkpoint of page 1 is committed, then page 2 is pulled and emitted.
  ASSERT_EQ(ctx.releaseCallbacks(), 1u);
  EXPECT_EQ(storedCheckpoint(ctx), std::nullopt);  // the commit runs on the scheduler, not in the callback
  runDue();
  EXPECT_EQ(storedCheckpoint(ctx), "200");
  ASSERT_EQ(ctx.emitCount(), 2u);
  EXPECT_EQ(sync->status().run_records, 2u);
  EXPECT_EQ(ctx.metrics().gaugeValue("junction_sync_run_pages"), 1.0);
}

TEST_F(IncrementalSyncTest, AStopInMidRunResumesFromTheLastDurablePageWithoutGaps) {
  ctx.holdCallbacks(true);
  {
    auto sync = makeSync();
    ASSERT_TRUE(sync->start().ok());
    runDue();
    ctx.releaseCallbacks();
    runDue();  // page 1 committed; page 2 emitted, its callback held: "the process dies here"
    ASSERT_EQ(storedCheckpoint(ctx), "200");
    sync->stop();
  }
  // The late callback of the dead run changes nothing.
  EXPECT_EQ(ctx.releaseCallbacks(), 1u);
  runDue();
  EXPECT_EQ(storedCheckpoint(ctx), "200");
  EXPECT_EQ(ctx.scheduler().pendingCount(), 0u);

  ctx.holdCallbacks(false);
  vendor.requests.clear();
  auto sync = makeSync();
  ASSERT_TRUE(sync->start().ok());
  runDue();
  ASSERT_FALSE(vendor.requests.empty());
  EXPECT_EQ(vendor.requests[0].checkpoint, "200");
  EXPECT_EQ(vendor.requests[0].page, "");
  // b (at the checkpoint), c and d are read again: c and d were emitted but never confirmed.
  EXPECT_THAT(userIds(ctx.events()), ElementsAre("a", "b", "c", "d", "b", "c", "d", "e"));
  EXPECT_EQ(storedCheckpoint(ctx), "500");
}

TEST_F(IncrementalSyncTest, APageTheQueueRefusesIsEmittedAgainLaterWithoutAdvancing) {
  int refusals = 1;
  ctx.setEmitPolicy([&](const std::vector<Event>& events) {
    EmitResult r;
    if (refusals-- > 0) {
      r.status = makeError(ErrorCode::ResourceExhausted, "disk budget reached");
      r.retry_after = 5s;
    } else {
      r.accepted = events.size();
    }
    return r;
  });
  auto sync = makeSync();
  ASSERT_TRUE(sync->start().ok());
  runDue();
  EXPECT_EQ(ctx.emitCount(), 1u);
  EXPECT_EQ(storedCheckpoint(ctx), std::nullopt);
  EXPECT_EQ(vendor.requests.size(), 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_page_retries_total",
                                       {{"reason", "queue_refused"}}),
            1u);
  EXPECT_TRUE(ctx.log().contains(LogLevel::Warn, "refused by the queue"));
  advance(4999ms);
  EXPECT_EQ(ctx.emitCount(), 1u);
  advance(1ms);
  // The same page again (not re-pulled), then the rest.
  EXPECT_EQ(vendor.requests.size(), 3u);
  EXPECT_THAT(userIds(ctx.events()), ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_EQ(storedCheckpoint(ctx), "500");

  // Unavailable (shutting down) is retried the same way, after at least retry_delay.
  refusals = 1;
  vendor.records["a"] = 900;
  ctx.setEmitPolicy([&](const std::vector<Event>& events) {
    EmitResult r;
    if (refusals-- > 0) {
      r.status = makeError(ErrorCode::Unavailable, "shutting down");
    } else {
      r.accepted = events.size();
    }
    return r;
  });
  advance(60s);
  EXPECT_EQ(storedCheckpoint(ctx), "500");
  advance(1s);
  EXPECT_EQ(storedCheckpoint(ctx), "900");
}

TEST_F(IncrementalSyncTest, AVendorRateLimitRetriesTheSameRequestAfterItsDelay) {
  vendor.scripted.push_back(SyncPage::wait(2s));
  auto sync = makeSync();
  ASSERT_TRUE(sync->start().ok());
  runDue();
  EXPECT_EQ(vendor.requests.size(), 1u);
  EXPECT_EQ(ctx.emitCount(), 0u);
  EXPECT_TRUE(sync->status().running);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_page_retries_total",
                                       {{"reason", "rate_limited"}}),
            1u);
  advance(2s);
  ASSERT_EQ(vendor.requests.size(), 4u);
  EXPECT_EQ(vendor.requests[1].page, vendor.requests[0].page);
  EXPECT_EQ(vendor.requests[1].checkpoint, vendor.requests[0].checkpoint);
  EXPECT_EQ(storedCheckpoint(ctx), "500");
}

TEST_F(IncrementalSyncTest, RunsNeverOverlap) {
  auto sync = makeSync(10s);
  ctx.holdCallbacks(true);
  ASSERT_TRUE(sync->start().ok());
  runDue();
  ASSERT_EQ(ctx.emitCount(), 1u);
  advance(10s);
  advance(10s);
  EXPECT_EQ(vendor.requests.size(), 1u);
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_runs_skipped_total"), 2u);
  EXPECT_FALSE(sync->runNow());
  ctx.holdCallbacks(false);
  ctx.releaseCallbacks();
  runDue();  // the run goes on to the end
  EXPECT_EQ(storedCheckpoint(ctx), "500");
  EXPECT_FALSE(sync->status().running);
  EXPECT_TRUE(sync->runNow());
  runDue();
  EXPECT_EQ(sync->status().runs_succeeded, 2u);
}

TEST_F(IncrementalSyncTest, APullErrorFailsTheRunAndTheNextTickStartsFromTheCheckpoint) {
  auto sync = makeSync();
  ASSERT_TRUE(sync->start().ok());
  runDue();
  ASSERT_EQ(storedCheckpoint(ctx), "500");
  vendor.records["z"] = 800;
  vendor.scripted.push_back(makeError(ErrorCode::Unavailable, "HTTP 502: bad gateway"));
  advance(60s);
  auto status = sync->status();
  EXPECT_EQ(status.runs_failed, 1u);
  EXPECT_EQ(status.last_error, "HTTP 502: bad gateway");
  EXPECT_EQ(status.last_error_ms, ctx.clock().nowMs());
  EXPECT_EQ(ctx.metrics().counterValue("junction_sync_runs_total", {{"result", "error"}}), 1u);
  EXPECT_EQ(ctx.metrics().gaugeValue("junction_sync_last_error_timestamp_seconds"),
            static_cast<double>(ctx.clock().nowMs()) / 1000.0);
  EXPECT_TRUE(ctx.log().contains(LogLevel::Error, "HTTP 502: bad gateway"));
  EXPECT_EQ(storedCheckpoint(ctx), "500");

  advance(60s);
  EXPECT_EQ(vendor.requests.back().checkpoint, "500");
  EXPECT_EQ(storedCheckpoint(ctx), "800");
  EXPECT_EQ(sync->status().last_error, "");
  EXPECT_EQ(sync->status().runs_succeeded, 2u);
}

TEST_F(IncrementalSyncTest, AThrowingPullOrAnotherEmitRefusalFailsTheRun) {
  auto sync = std::make_unique<IncrementalSync>(ctx, IncrementalSyncOptions{},
                                                [](const SyncRequest&) -> Result<SyncPage> {
                                                  throw std::runtime_error("parser bug");
                                                });
  ASSERT_TRUE(sync->start().ok());
  runDue();
  EXPECT_EQ(sync->status().last_error, "the pull threw: parser bug");

  FakeSourceContext other("crm2");
  other.setEmitResult(EmitResult{makeError(ErrorCode::InvalidArgument, "bad event"), 0ms, 0, 0});
  IncrementalSync sync2(other, {}, [this](const SyncRequest& r) { return vendor.pull(r); });
  ASSERT_TRUE(sync2.start().ok());
  other.scheduler().runDue();
  EXPECT_EQ(sync2.status().last_error, "the queue refused the page: bad event");
  EXPECT_TRUE(other.checkpoints().values().empty());
}

TEST_F(IncrementalSyncTest, ACheckpointStoreFailureFailsTheRun) {
  auto sync = makeSync();
  ctx.checkpoints().setFailure(Error{ErrorCode::Unavailable, "disk full"});
  ASSERT_TRUE(sync->start().ok());
  runDue();
  EXPECT_EQ(sync->status().last_error, "cannot load the checkpoint: disk full");
  EXPECT_EQ(ctx.emitCount(), 0u);
}

TEST_F(IncrementalSyncTest, StopCancelsTheScheduleAndStartTwiceIsRefused) {
  auto sync = makeSync(10s);
  ASSERT_TRUE(sync->start().ok());
  EXPECT_FALSE(sync->start().ok());
  runDue();
  sync->stop();
  sync->stop();
  EXPECT_EQ(ctx.scheduler().pendingCount(), 0u);
  const auto emits = ctx.emitCount();
  advance(30s);
  EXPECT_EQ(ctx.emitCount(), emits);
  EXPECT_FALSE(sync->runNow());
}

struct EveryConfig {
  std::chrono::milliseconds every{0};
};

TEST(EveryOptionTest, EveryPullingSourceDeclaresEveryTheSameWay) {
  static const OptionTable<EveryConfig> table{everyOption(&EveryConfig::every)};
  const auto specs = table.specs();
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].key, "every");
  EXPECT_EQ(specs[0].type, OptionType::Duration);
  EXPECT_TRUE(checkOptionTable(specs).empty());
  EXPECT_EQ(normalizeOption(specs[0], "30s").value(), 30000);
  EXPECT_EQ(normalizeOption(specs[0], "15m").value(), 900000);
  EXPECT_EQ(normalizeOption(specs[0], *specs[0].default_value).value(), 900000);
  EXPECT_FALSE(normalizeOption(specs[0], "500ms").ok());
  EXPECT_FALSE(normalizeOption(specs[0], "30d").ok());
  EXPECT_EQ(table.bind(boost::json::object{{"every", 30000}}).every, 30s);
}

}  // namespace
}  // namespace junction::sdk
