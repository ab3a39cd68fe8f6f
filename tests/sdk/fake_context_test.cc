#include "junction/sdk/testing/fake_context.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <thread>

#include "junction/sdk/http_client.h"
#include "junction/sdk/testing/scripted_http_server.h"

namespace junction::sdk::testing {
namespace {

using std::chrono::milliseconds;

Event makeTestEvent(const std::string& user) {
  EventHeader header;
  header.type = EventType::Track;
  header.user_id = user;
  header.name = "Order Completed";
  return Event(header, R"({"type":"track","userId":")" + user + R"(","event":"Order Completed"})");
}

// --- RecordingLogger ------------------------------------------------------------------------

TEST(RecordingLoggerTest, RecordsLevelsMessagesAndFields) {
  RecordingLogger logger;
  logger.info("delivered batch", {{"events", 3}, {"status", "ok"}});
  logger.warn("rate limited", {{"retry_after_ms", std::string("2000")}});
  logger.debug("details");
  const auto records = logger.records();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].level, LogLevel::Info);
  EXPECT_EQ(records[0].message, "delivered batch");
  EXPECT_EQ(records[0].field("events"), "3");
  EXPECT_EQ(records[0].field("status"), "ok");
  EXPECT_EQ(records[0].field("missing"), std::nullopt);
  EXPECT_TRUE(logger.contains("rate limited"));
  EXPECT_TRUE(logger.contains("2000"));  // field values too
  EXPECT_TRUE(logger.contains(LogLevel::Warn, "rate"));
  EXPECT_FALSE(logger.contains(LogLevel::Error, "rate"));
  EXPECT_FALSE(logger.contains("nope"));
  EXPECT_EQ(logger.count(LogLevel::Debug), 1u);
  logger.clear();
  EXPECT_TRUE(logger.records().empty());
}

TEST(RecordingLoggerTest, MinimumLevelFilters) {
  RecordingLogger logger(LogLevel::Warn);
  EXPECT_FALSE(logger.enabled(LogLevel::Info));
  EXPECT_TRUE(logger.enabled(LogLevel::Error));
  logger.info("quiet");
  logger.error("loud");
  EXPECT_FALSE(logger.contains("quiet"));
  EXPECT_TRUE(logger.contains("loud"));
}

// --- FakeMetrics ----------------------------------------------------------------------------

TEST(FakeMetricsTest, SameNameAndLabelsIsTheSameSeriesInAnyLabelOrder) {
  FakeMetrics metrics;
  Counter& a =
      metrics.counter("junction_x_requests_total", "help", {{"status", "200"}, {"method", "POST"}});
  Counter& b =
      metrics.counter("junction_x_requests_total", "help", {{"method", "POST"}, {"status", "200"}});
  EXPECT_EQ(&a, &b);
  a.inc();
  b.inc(4);
  EXPECT_EQ(
      metrics.counterValue("junction_x_requests_total", {{"status", "200"}, {"method", "POST"}}),
      5u);
  metrics.counter("junction_x_requests_total", "help", {{"status", "500"}}).inc(2);
  EXPECT_EQ(metrics.counterValue("junction_x_requests_total", {{"status", "500"}}), 2u);
  EXPECT_EQ(metrics.counterValue("junction_x_requests_total"), 0u);  // no such label set
  EXPECT_EQ(metrics.counterTotal("junction_x_requests_total"), 7u);
  EXPECT_TRUE(metrics.has("junction_x_requests_total", {{"status", "500"}}));
  EXPECT_FALSE(metrics.has("junction_y_total"));
}

TEST(FakeMetricsTest, GaugesAndHistograms) {
  FakeMetrics metrics;
  Gauge& g = metrics.gauge("junction_x_backlog", "help");
  g.set(3);
  g.add(-1.5);
  EXPECT_EQ(metrics.gaugeValue("junction_x_backlog"), 1.5);
  EXPECT_EQ(metrics.gaugeValue("junction_x_absent"), std::nullopt);
  Histogram& h = metrics.histogram("junction_x_latency_seconds", "help", {}, {{"op", "send"}});
  h.observe(0.25);
  h.observe(0.5);
  EXPECT_EQ(metrics.histogramCount("junction_x_latency_seconds", {{"op", "send"}}), 2u);
  EXPECT_DOUBLE_EQ(metrics.histogramSum("junction_x_latency_seconds", {{"op", "send"}}), 0.75);
}

TEST(FakeMetricsTest, KindClashGivesDetachedObject) {
  FakeMetrics metrics;
  metrics.counter("junction_x_total", "help").inc();
  Gauge& clash = metrics.gauge("junction_x_total", "help");
  clash.set(99);
  EXPECT_EQ(metrics.kindClashes(), 1u);
  EXPECT_EQ(metrics.counterValue("junction_x_total"), 1u);
  EXPECT_EQ(metrics.gaugeValue("junction_x_total"), std::nullopt);
}

TEST(FakeMetricsTest, ConcurrentIncrements) {
  FakeMetrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        metrics.counter("junction_c_total", "help", {{"k", "v"}}).inc();
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(metrics.counterValue("junction_c_total", {{"k", "v"}}), 4000u);
}

// --- ManualClock / ManualScheduler ----------------------------------------------------------

TEST(ManualClockTest, AdvancesWallAndSteadyTogether) {
  ManualClock clock(1'000'000);
  const auto steady = clock.steadyNow();
  EXPECT_EQ(clock.nowMs(), 1'000'000);
  clock.advance(milliseconds(1500));
  EXPECT_EQ(clock.nowMs(), 1'001'500);
  EXPECT_EQ(clock.steadyNow() - steady, milliseconds(1500));
  clock.advance(milliseconds(-10));
  EXPECT_EQ(clock.nowMs(), 1'001'500);
  clock.setNowMs(5);
  EXPECT_EQ(clock.nowMs(), 5);
  EXPECT_EQ(clock.steadyNow() - steady, milliseconds(1500));
}

TEST(ManualSchedulerTest, AfterRunsOnceWhenDue) {
  ManualClock clock;
  ManualScheduler scheduler(clock);
  int runs = 0;
  auto handle = scheduler.after(milliseconds(100), [&] { ++runs; });
  EXPECT_EQ(scheduler.runDue(), 0u);
  EXPECT_EQ(scheduler.nextDueIn(), milliseconds(100));
  clock.advance(milliseconds(99));
  EXPECT_EQ(scheduler.runDue(), 0u);
  clock.advance(milliseconds(1));
  EXPECT_EQ(scheduler.runDue(), 1u);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(scheduler.advanceAndRun(clock, milliseconds(1000)), 0u);
  EXPECT_EQ(scheduler.pendingCount(), 0u);
}

TEST(ManualSchedulerTest, EveryRepeatsAndCatchesUp) {
  ManualClock clock;
  ManualScheduler scheduler(clock);
  int runs = 0;
  auto handle = scheduler.every(milliseconds(10), [&] { ++runs; });
  EXPECT_EQ(scheduler.runDue(), 0u);
  EXPECT_EQ(scheduler.advanceAndRun(clock, milliseconds(35)), 3u);
  EXPECT_EQ(runs, 3);
  handle->cancel();
  EXPECT_EQ(scheduler.advanceAndRun(clock, milliseconds(100)), 0u);
  EXPECT_EQ(scheduler.pendingCount(), 0u);
}

TEST(ManualSchedulerTest, RunNowAndOrdering) {
  ManualClock clock;
  ManualScheduler scheduler(clock);
  std::vector<std::string> order;
  auto late = scheduler.after(milliseconds(20), [&] { order.push_back("late"); });
  auto early = scheduler.after(milliseconds(10), [&] { order.push_back("early"); });
  auto now = scheduler.every(
      milliseconds(1000), [&] { order.push_back("now"); }, true);
  EXPECT_EQ(scheduler.runDue(), 1u);
  scheduler.advanceAndRun(clock, milliseconds(50));
  EXPECT_EQ(order, (std::vector<std::string>{"now", "early", "late"}));
}

TEST(ManualSchedulerTest, DestroyingTheHandleCancels) {
  ManualClock clock;
  ManualScheduler scheduler(clock);
  int runs = 0;
  {
    auto handle = scheduler.every(milliseconds(10), [&] { ++runs; });
    EXPECT_EQ(scheduler.pendingCount(), 1u);
  }
  EXPECT_EQ(scheduler.advanceAndRun(clock, milliseconds(100)), 0u);
  EXPECT_EQ(runs, 0);
}

TEST(ManualSchedulerTest, TaskMayCancelItself) {
  ManualClock clock;
  ManualScheduler scheduler(clock);
  int runs = 0;
  std::unique_ptr<TaskHandle> handle;
  handle = scheduler.every(milliseconds(10), [&] {
    if (++runs == 2) {
      handle->cancel();
    }
  });
  EXPECT_EQ(scheduler.advanceAndRun(clock, milliseconds(100)), 2u);
  EXPECT_EQ(runs, 2);
}

TEST(ManualSchedulerTest, HandleMayOutliveScheduler) {
  ManualClock clock;
  std::unique_ptr<TaskHandle> handle;
  {
    ManualScheduler scheduler(clock);
    handle = scheduler.after(milliseconds(1), [] {});
  }
  handle->cancel();  // must not touch the destroyed scheduler
  handle.reset();
}

// --- MemoryCheckpointStore ------------------------------------------------------------------

TEST(MemoryCheckpointStoreTest, StoresLoadsAndInjectsFailures) {
  MemoryCheckpointStore store;
  auto missing = store.load("cursor");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store.store("cursor", "page-2").ok());
  auto loaded = store.load("cursor");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->value(), "page-2");
  store.setFailure(makeError(ErrorCode::Unavailable, "disk gone"));
  EXPECT_FALSE(store.store("cursor", "page-3").ok());
  EXPECT_FALSE(store.load("cursor").ok());
  store.setFailure(std::nullopt);
  EXPECT_EQ(store.values().at("cursor"), "page-2");
  EXPECT_EQ(store.storeCount(), 1u);
}

// --- FakeDestinationContext -----------------------------------------------------------------

TEST(FakeDestinationContextTest, ExposesFakesAndARealHttpClient) {
  FakeDestinationContext ctx("newsletter");
  DestinationContext& base = ctx;
  EXPECT_EQ(base.id(), "newsletter");
  base.log().warn("hello");
  EXPECT_TRUE(ctx.log().contains("hello"));
  base.metrics().counter("junction_t_total", "h").inc();
  EXPECT_EQ(ctx.metrics().counterValue("junction_t_total"), 1u);
  const std::int64_t before = base.clock().nowMs();
  ctx.manualClock().advance(milliseconds(5000));
  EXPECT_EQ(base.clock().nowMs(), before + 5000);
  ASSERT_TRUE(base.checkpoints().store("k", "v").ok());
  EXPECT_EQ(ctx.checkpoints().values().at("k"), "v");

  int runs = 0;
  auto task = base.scheduler().after(milliseconds(10), [&] { ++runs; });
  ctx.manualClock().advance(milliseconds(10));
  EXPECT_EQ(ctx.scheduler().runDue(), 1u);
  EXPECT_EQ(runs, 1);

  ScriptedHttpServer server;
  server.when("GET", "/ping").reply(200, "pong");
  HttpClientRequest request;
  request.url = server.baseUrl() + "/ping";
  const auto response = base.http().send(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "pong");
}

// --- FakeSourceContext: emit ----------------------------------------------------------------

TEST(FakeSourceContextTest, EmitAcceptsAllByDefault) {
  FakeSourceContext ctx;
  std::optional<EmitResult> got;
  ctx.emit({makeTestEvent("u1"), makeTestEvent("u2")}, [&](EmitResult r) { got = r; });
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->status.ok());
  EXPECT_EQ(got->accepted, 2u);
  ASSERT_EQ(ctx.events().size(), 2u);
  EXPECT_EQ(ctx.events()[1].userId(), "u2");
  EXPECT_EQ(ctx.emitCount(), 1u);
  EXPECT_TRUE(ctx.waitForEvents(2, milliseconds(10)));
  EXPECT_FALSE(ctx.waitForEvents(3, milliseconds(10)));
}

TEST(FakeSourceContextTest, EmitResultAndPolicy) {
  FakeSourceContext ctx;
  EmitResult full;
  full.status = makeError(ErrorCode::ResourceExhausted, "disk budget");
  full.retry_after = milliseconds(1000);
  ctx.setEmitResult(full);
  std::optional<EmitResult> got;
  ctx.emit({makeTestEvent("u1")}, [&](EmitResult r) { got = r; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.error().code, ErrorCode::ResourceExhausted);
  EXPECT_EQ(got->retry_after, milliseconds(1000));
  EXPECT_TRUE(ctx.events().empty());  // refused emits are recorded as calls, not as events
  ASSERT_EQ(ctx.emitCalls().size(), 1u);

  ctx.setEmitPolicy([](const std::vector<Event>& events) {
    EmitResult r;
    r.accepted = events.size() - 1;
    r.suppressed = 1;
    return r;
  });
  ctx.emit({makeTestEvent("a"), makeTestEvent("b")}, [&](EmitResult r) { got = r; });
  EXPECT_EQ(got->accepted, 1u);
  EXPECT_EQ(got->suppressed, 1u);

  ctx.resetEmitPolicy();
  ctx.emit({makeTestEvent("c")}, [&](EmitResult r) { got = r; });
  EXPECT_EQ(got->accepted, 1u);
  EXPECT_EQ(ctx.events().size(), 3u);
}

TEST(FakeSourceContextTest, HeldCallbacksRunOnRelease) {
  FakeSourceContext ctx;
  ctx.holdCallbacks(true);
  int done = 0;
  ctx.emit({makeTestEvent("u1")}, [&](EmitResult) { ++done; });
  EXPECT_EQ(done, 0);
  EXPECT_EQ(ctx.releaseCallbacks(), 1u);
  EXPECT_EQ(done, 1);
  EXPECT_EQ(ctx.releaseCallbacks(), 0u);
}

// --- FakeSourceContext: routes --------------------------------------------------------------

TEST(FakeSourceContextTest, AddRouteRecordsAndRefusesDuplicates) {
  FakeSourceContext ctx;
  auto handler = [](HttpRequest&&, HttpResponder respond) {
    respond(HttpResponse::json(200, "{}"));
  };
  ASSERT_TRUE(ctx.addRoute("POST", "/v1/batch", handler, {.max_body_bytes = 500}).ok());
  const Status dup = ctx.addRoute("POST", "/v1/batch", handler);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::AlreadyExists);
  EXPECT_TRUE(ctx.addRoute("GET", "/v1/batch", handler).ok());
  EXPECT_FALSE(ctx.addRoute("GET", "no-slash", handler).ok());
  const auto routes = ctx.routes();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].method, "POST");
  EXPECT_EQ(routes[0].path, "/v1/batch");
  EXPECT_EQ(routes[0].options.max_body_bytes, 500u);
}

TEST(FakeSourceContextTest, CallFillsRequestAndParams) {
  FakeSourceContext ctx;
  HttpRequest seen;
  ASSERT_TRUE(ctx.addRoute("GET", "/v1/projects/{writeKey}/settings",
                           [&](HttpRequest&& request, HttpResponder respond) {
                             seen = request;
                             respond(HttpResponse::json(200, R"({"ok":true})"));
                           })
                  .ok());
  HttpHeaders headers;
  headers.set("Authorization", "Basic abc");
  auto response = ctx.call("get", "/v1/projects/WK1/settings?v=2", "", headers);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, R"({"ok":true})");
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.path, "/v1/projects/WK1/settings");
  EXPECT_EQ(seen.query, "v=2");
  EXPECT_EQ(seen.params.at("writeKey"), "WK1");
  EXPECT_EQ(seen.headers.get("authorization"), "Basic abc");

  auto missing = ctx.call("GET", "/v1/projects//settings");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::NotFound);
  EXPECT_FALSE(ctx.call("POST", "/v1/projects/WK1/settings").ok());
}

TEST(FakeSourceContextTest, OversizedBodyGets413WithoutHandler) {
  FakeSourceContext ctx;
  int calls = 0;
  ASSERT_TRUE(ctx.addRoute("POST", "/v1/track",
                           [&](HttpRequest&&, HttpResponder respond) {
                             ++calls;
                             respond(HttpResponse::json(200, "{}"));
                           },
                           {.max_body_bytes = 10})
                  .ok());
  auto small = ctx.call("POST", "/v1/track", "0123456789");
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->status, 200);
  auto big = ctx.call("POST", "/v1/track", "0123456789X");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(calls, 1);
}

TEST(FakeSourceContextTest, HandlerAnsweringOnceDurable) {
  FakeSourceContext ctx;
  ctx.holdCallbacks(true);
  ASSERT_TRUE(ctx.addRoute("POST", "/v1/track",
                           [&](HttpRequest&& request, HttpResponder respond) {
                             auto shared = std::make_shared<HttpResponder>(std::move(respond));
                             ctx.emit({makeTestEvent(request.body)}, [shared](EmitResult r) {
                               (*shared)(HttpResponse::json(r.status.ok() ? 200 : 503,
                                                            R"({"success":true})"));
                             });
                           })
                  .ok());
  auto future = ctx.callAsync("POST", "/v1/track", "u9");
  EXPECT_EQ(future.wait_for(milliseconds(20)), std::future_status::timeout);
  EXPECT_EQ(ctx.releaseCallbacks(), 1u);
  ASSERT_EQ(future.wait_for(milliseconds(1000)), std::future_status::ready);
  auto response = future.get();
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(ctx.events().at(0).userId(), "u9");
}

TEST(FakeSourceContextTest, SyncCallTimesOutWhenHandlerNeverAnswers) {
  FakeSourceContext ctx;
  std::vector<HttpResponder> parked;
  ASSERT_TRUE(ctx.addRoute("POST", "/park",
                           [&](HttpRequest&&, HttpResponder respond) {
                             parked.push_back(std::move(respond));
                           })
                  .ok());
  auto response = ctx.call("POST", "/park", "", {}, milliseconds(20));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::Unavailable);
}

TEST(FakeSourceContextTest, DroppedResponderGives500AndThrowingHandlerIsInternal) {
  FakeSourceContext ctx;
  ASSERT_TRUE(ctx.addRoute("POST", "/drop", [](HttpRequest&&, HttpResponder) {}).ok());
  ASSERT_TRUE(
      ctx.addRoute("POST", "/throw",
                   [](HttpRequest&&, HttpResponder) -> void { throw std::runtime_error("kaboom"); })
          .ok());
  auto dropped = ctx.call("POST", "/drop");
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->status, 500);
  auto threw = ctx.call("POST", "/throw");
  ASSERT_FALSE(threw.ok());
  EXPECT_EQ(threw.error().code, ErrorCode::Internal);
  EXPECT_NE(threw.error().message.find("kaboom"), std::string::npos);
}

}  // namespace
}  // namespace junction::sdk::testing
