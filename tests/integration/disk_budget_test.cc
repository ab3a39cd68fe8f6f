// The queue's disk budget through the real daemon: while the only destination is down (its
// server answers 503), the backlog grows until storage.max_bytes is reached; ingest then answers
// 503 with Retry-After and a JSON error, and counts the refusal by reason. Once the destination
// recovers, the backlog drains, retention deletes the delivered segments and ingest accepts
// again. Nothing acknowledged is lost on the way.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kBatch = 20;

std::string configYaml(const fs::path& dir, const std::string& hook_url) {
  return "server:\n"
         "  listen: \"127.0.0.1:0\"\n"
         "  readiness_stall: 1s\n"
         "storage:\n"
         "  path: " + (dir / "data").string() + "\n"
         "  fsync: batch\n"
         "  max_bytes: 384KiB\n"
         "  segment_bytes: 64KiB\n"
         "plugins:\n"
         "  paths: [\"" + (kBinaryDir / "tests" / "fixtures" / "sources").string() + "\"]\n"
         "sources:\n"
         "  - id: load\n"
         "    plugin: test_source\n"
         "destinations:\n"
         "  - id: hook\n"
         "    plugin: test_webhook\n"
         "    batch: { max_events: 200, max_wait: 0ms }\n"
         "    retry: { max_attempts: 100000, initial_backoff: 50ms, max_backoff: 300ms }\n"
         "    config:\n"
         "      url: " + hook_url + "/hook\n";
}

std::string batchBody(std::uint64_t& seq, std::vector<std::string>& ids) {
  ids.clear();
  std::string body = "[";
  for (int i = 0; i < kBatch; ++i, ++seq) {
    std::string id = "budget-" + std::to_string(seq);
    if (i > 0) {
      body += ',';
    }
    // ~300 bytes per event, like a real track call.
    body += R"({"type":"track","event":"Budget Test","messageId":")" + id +
            R"(","userId":"user-)" + std::to_string(seq % 13) +
            R"(","properties":{"pad":")" + std::string(180, 'x') + R"("}})";
    ids.push_back(std::move(id));
  }
  body += ']';
  return body;
}

// The value of the first metric line starting with `name{` and containing every label.
std::optional<double> metricValue(const std::string& text, std::string_view name,
                                  std::initializer_list<std::string_view> labels) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (!line.starts_with(name) || line.size() <= name.size() ||
        (line[name.size()] != '{' && line[name.size()] != ' ')) {
      continue;
    }
    bool all = true;
    for (auto l : labels) {
      all = all && line.find(l) != std::string_view::npos;
    }
    if (all) {
      return std::strtod(std::string(line.substr(line.rfind(' ') + 1)).c_str(), nullptr);
    }
  }
  return std::nullopt;
}

TEST(DiskBudgetTest, FullQueueAnswers503ThenRecoversOnceTheBacklogDrains) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  sdk::testing::ScriptedHttpServer hook;
  auto rule = hook.when("POST", "/hook").reply(503, R"({"error":"down for the test"})");
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, configYaml(dir.path(), hook.baseUrl()));

  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << daemon.log();
  HttpClient http(*port);

  // 1. Fill the queue until ingest refuses.
  std::vector<std::string> acked;
  std::vector<std::string> ids;
  std::uint64_t seq = 0;
  HttpReply refused;
  for (int i = 0; i < 2000 && refused.status == 0; ++i) {
    HttpReply reply = http.request("POST", "/test/events", batchBody(seq, ids));
    if (reply.status == 200) {
      acked.insert(acked.end(), ids.begin(), ids.end());
    } else {
      ASSERT_EQ(reply.status, 503) << reply.body;
      refused = reply;
    }
  }
  ASSERT_EQ(refused.status, 503) << "the queue never refused: is storage.max_bytes applied?";
  // 384 KiB of ~330-byte records: the budget is reached after roughly 1 100 events.
  EXPECT_GT(acked.size(), 500u);
  EXPECT_LT(acked.size(), 1300u);
  const std::string retry_after = refused.header("retry-after");
  ASSERT_FALSE(retry_after.empty()) << "503 without Retry-After";
  EXPECT_GT(std::atoi(retry_after.c_str()), 0);
  EXPECT_NE(refused.header("content-type").find("application/json"), std::string::npos);
  boost::system::error_code ec;
  auto body = boost::json::parse(refused.body, ec);
  ASSERT_FALSE(ec) << refused.body;
  ASSERT_TRUE(body.is_object()) << refused.body;
  EXPECT_EQ(body.at("success"), false);
  ASSERT_TRUE(body.as_object().contains("error")) << refused.body;
  EXPECT_NE(std::string(body.at("error").as_string()).find("disk budget"), std::string::npos)
      << refused.body;

  HttpReply metrics = http.request("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  auto rejected = metricValue(metrics.body, "junction_events_rejected_total",
                              {"reason=\"disk_budget\"", "source=\"load\""});
  ASSERT_TRUE(rejected) << metrics.body;
  EXPECT_GE(*rejected, static_cast<double>(kBatch));
  // Every refused request is all-or-nothing: the next one is refused too while nothing drains.
  EXPECT_EQ(http.request("POST", "/test/events", batchBody(seq, ids)).status, 503);
  ASSERT_GT(hook.requests().size(), 0u) << "the destination was never tried";
  // Not ready, and why: the budget, and the destination stuck for over server.readiness_stall.
  HttpReply ready;
  ASSERT_TRUE(eventually([&] {
    ready = http.request("GET", "/readyz");
    return ready.body.find("destination hook") != std::string::npos;
  }, 10s)) << ready.status << " " << ready.body;
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_NE(ready.body.find("queue disk budget exhausted"), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("no progress for"), std::string::npos) << ready.body;

  // 2. The destination recovers: the backlog drains, retention frees the segments.
  rule.reply(200, R"({"ok":true})");
  // Requests recorded from now on are answered 200 (the rule changes under the server's lock,
  // the same lock that records a request and picks its answer).
  const std::size_t first_ok_request = hook.requests().size();
  const auto deadline = Clock::now() + 30s;
  HttpReply accepted;
  while (Clock::now() < deadline) {
    accepted = http.request("POST", "/test/events", batchBody(seq, ids));
    if (accepted.status == 200) {
      acked.insert(acked.end(), ids.begin(), ids.end());
      break;
    }
    ASSERT_EQ(accepted.status, 503) << accepted.body;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(accepted.status, 200) << "ingest still refuses 30 s after the destination recovered: "
                                  << accepted.body;
  // A few more batches go through too: the space is really back.
  for (int i = 0; i < 5; ++i) {
    HttpReply reply = http.request("POST", "/test/events", batchBody(seq, ids));
    ASSERT_EQ(reply.status, 200) << reply.body;
    acked.insert(acked.end(), ids.begin(), ids.end());
  }

  // 3. Every acknowledged event reached the server with a 200 at least once.
  std::unordered_set<std::string> missing(acked.begin(), acked.end());
  const auto drain_deadline = Clock::now() + 30s;
  std::size_t scanned = first_ok_request;
  while (!missing.empty() && Clock::now() < drain_deadline) {
    auto requests = hook.requests();
    for (; scanned < requests.size(); ++scanned) {
      std::vector<std::string_view> got;
      collectMessageIds(requests[scanned].body, got);
      for (auto id : got) {
        missing.erase(std::string(id));
      }
    }
    if (!missing.empty()) {
      std::this_thread::sleep_for(100ms);
    }
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << acked.size()
                               << " acknowledged events were never answered 200 by the destination";

  // Ready again once the backlog is delivered and no append was refused for a few seconds.
  EXPECT_TRUE(eventually([&] { return http.request("GET", "/readyz").status == 200; }, 20s))
      << http.request("GET", "/readyz").body;

  metrics = http.request("GET", "/metrics");
  auto disk = metricValue(metrics.body, "junction_queue_disk_bytes", {});
  ASSERT_TRUE(disk) << metrics.body;
  EXPECT_LT(*disk, 384.0 * 1024) << "retention did not free the delivered segments";
  std::printf("disk_budget_test: acked=%zu rejected_disk_budget=%.0f hook_requests=%zu "
              "queue_disk_bytes_after=%.0f retry_after=%s body=%s\n",
              acked.size(), *rejected, hook.requests().size(), *disk, retry_after.c_str(),
              refused.body.c_str());
  RecordProperty("acked_events", std::to_string(acked.size()));
  EXPECT_TRUE(daemon.terminate()) << daemon.log();
}

}  // namespace
}  // namespace junction::integration
