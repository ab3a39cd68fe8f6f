// A queue segment file deleted behind junctiond's back, through the real daemon: the daemon
// goes on (what is gone cannot be brought back), but the loss is logged at ERROR with its
// offsets and event count, counted in metrics and written to the audit log; every other event
// is still delivered.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::size_t countOf(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST(QueueDamageTest, ADeletedSegmentIsReportedCountedAndAuditedAndTheRestIsDelivered) {
  TempDir dir;
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/hook").reply(503, R"({"error":"maintenance"})").times(1);
  server.when("POST", "/hook").reply(503, R"({"error":"maintenance"})");
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, R"(server: { listen: "127.0.0.1:0", admin_token: "qd-admin" }
storage: { path: ")" + (dir.path() / "data").string() + R"(", segment_bytes: 64KiB }
plugins: { paths: [")" + (kBinaryDir / "tests/fixtures/sources").string() + R"("] }
sources:
  - id: web
    plugin: test_source
destinations:
  - id: hook
    plugin: test_webhook
    batch: { max_wait: 0, max_events: 500 }
    retry: { initial_backoff: 20ms, max_backoff: 100ms, max_attempts: 100000, max_age: 1h }
    config: { url: ")" + server.baseUrl() + R"(/hook" }
)");
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond-1.log");
  ASSERT_TRUE(port) << readFile(dir.path() / "junctiond-1.log");
  constexpr int kEvents = 1000;
  {
    HttpClient client(*port);
    for (int b = 0; b < kEvents / 100; ++b) {
      std::string batch = "[";
      for (int i = b * 100; i < (b + 1) * 100; ++i) {
        batch += std::string(i % 100 ? "," : "") + R"({"type":"track","userId":"u)" +
                 std::to_string(i) + R"(","event":"Cart Abandoned","messageId":"m-)" +
                 std::to_string(i) + R"(","properties":{"padding":")" + std::string(200, 'x') +
                 "\"}}";
      }
      ASSERT_EQ(client.request("POST", "/test/events", batch + "]").status, 200);
    }
  }
  ASSERT_TRUE(server.waitForRequests(1, 10s));  // tried, refused: the events wait
  ASSERT_TRUE(daemon.terminate()) << daemon.exitDescription();

  std::vector<fs::path> segments;
  for (const auto& e : fs::directory_iterator(dir.path() / "data" / "queue")) {
    if (e.path().extension() == ".seg") {
      segments.push_back(e.path());
    }
  }
  std::sort(segments.begin(), segments.end());
  ASSERT_GE(segments.size(), 3u);
  const fs::path victim = segments[1];
  const std::string victim_bytes = readFile(victim);
  const std::size_t lost = countOf(victim_bytes, "\"messageId\":\"m-");
  ASSERT_GT(lost, 0u);
  const std::string victim_base = victim.filename().string().substr(0, 20);
  fs::remove(victim);

  server.clearRules();
  server.clearRequests();
  server.when("POST", "/hook").reply(200, R"({"ok":true})");
  port = daemon.start(dir.path() / "junctiond-2.log");
  ASSERT_TRUE(port) << readFile(dir.path() / "junctiond-2.log");
  const std::string log = readFile(dir.path() / "junctiond-2.log");
  EXPECT_THAT(log, HasSubstr("queue: events lost"));
  EXPECT_THAT(log, HasSubstr("segment file " + victim.filename().string() + " is missing"));
  EXPECT_THAT(log, HasSubstr("events=" + std::to_string(lost)));
  EXPECT_THAT(log, HasSubstr("from_offset=" + std::to_string(std::stoull(victim_base))));
  EXPECT_THAT(readFile(dir.path() / "data" / "audit.log"), HasSubstr("queue_gap"));

  HttpClient client(*port);
  auto metrics = client.request("GET", "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("junction_queue_lost_events_total " + std::to_string(lost)));
  EXPECT_THAT(metrics, HasSubstr("junction_queue_gaps_total 1"));

  // Everything else arrives.
  std::set<std::string> received;
  EXPECT_TRUE(eventually([&] {
    received.clear();
    for (const auto& r : server.requests()) {
      if (r.body.empty() || r.body[0] != '[') {
        continue;
      }
      const boost::json::value batch = boost::json::parse(r.body);
      for (const auto& e : batch.as_array()) {
        received.insert(std::string(e.as_object().at("messageId").as_string()));
      }
    }
    return received.size() == kEvents - lost;
  }, 20s)) << received.size() << " of " << kEvents - lost;
  EXPECT_TRUE(daemon.terminate()) << daemon.exitDescription();
}

}  // namespace
}  // namespace junction::integration
