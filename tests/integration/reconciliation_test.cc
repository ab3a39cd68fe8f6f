// The delivery counters reconcile: for every destination, at every moment,
//
//   junction_events_routed_total = delivered + dead_lettered + filtered (every reason)
//                                  + consent_blocked + junction_destination_pending_events
//
// proved through the real daemon after a mixed run against a real webhook receiver over
// loopback: whole batches answered 503 (retried), single events refused for good (dead letters)
// or for now (retried), consent refused, a type filter, a suppressed person (dropped at ingest,
// never routed), a deleted person whose events were waiting, the receiver down, a SIGKILL with
// events pending, a restart, and a dead-letter replay. Across the two processes every event is
// accounted for exactly once: what the receiver holds is what the counters say was delivered.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "tests/fakes/webhook/fake_webhook.h"
#include "tests/integration/web_config.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using tests::fakes::FakeWebhookReceiver;

constexpr const char* kKey = "wk-reconcile-1";
constexpr const char* kAdmin = "admin-reconcile-2";

// One destination's counters as /metrics shows them.
struct Counts {
  double routed = 0, delivered = 0, dead = 0, filtered = 0, consent = 0, pending = 0;
  std::map<std::string, double> filtered_by;  // reason -> count

  double finished() const { return delivered + dead + filtered + consent; }
  bool balanced() const { return routed == finished() + pending; }
  std::string describe() const {
    std::ostringstream s;
    s << "routed " << routed << " = delivered " << delivered << " + dead-lettered " << dead
      << " + filtered " << filtered << " + consent-blocked " << consent << " + pending " << pending;
    return s.str();
  }
};

// Sums the samples of `name` whose labels include destination="<destination>".
double sumOf(const std::string& metrics, const std::string& name, const std::string& destination,
             std::map<std::string, double>* by_reason = nullptr) {
  double total = 0;
  std::istringstream in(metrics);
  std::string line;
  const std::string label = "destination=\"" + destination + "\"";
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || (line.size() > name.size() && line[name.size()] != '{' &&
                                      line[name.size()] != ' ')) {
      continue;
    }
    if (line.find(label) == std::string::npos) {
      continue;
    }
    const double value = std::stod(line.substr(line.rfind(' ') + 1));
    total += value;
    if (by_reason != nullptr) {
      auto at = line.find("reason=\"");
      if (at != std::string::npos) {
        at += 8;
        (*by_reason)[line.substr(at, line.find('"', at) - at)] += value;
      }
    }
  }
  return total;
}

Counts countsOf(const std::string& metrics, const std::string& destination) {
  Counts c;
  c.routed = sumOf(metrics, "junction_events_routed_total", destination);
  c.delivered = sumOf(metrics, "junction_events_delivered_total", destination);
  c.dead = sumOf(metrics, "junction_events_dead_lettered_total", destination);
  c.filtered = sumOf(metrics, "junction_events_filtered_total", destination, &c.filtered_by);
  c.consent = sumOf(metrics, "junction_events_consent_blocked_total", destination);
  c.pending = sumOf(metrics, "junction_destination_pending_events", destination);
  return c;
}

double sourceCounter(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  std::string line;
  double total = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) == 0 && line.find("source=\"web\"") != std::string::npos) {
      total += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

class ReconciliationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, webConfig(dir_.path(), kKey, kAdmin, R"(  - id: hook
    plugin: webhook
    consent: [marketing]
    filter: { types: [track] }
    batch: { max_events: 5, max_wait: 0ms }
    retry: { max_attempts: 1000, initial_backoff: 20ms, max_backoff: 100ms }
    config: { url: ")" + hook_.url() + "\" }\n" +
                                     fileDestination("all", dir_.path(), "all.ndjson")));
  }

  void start() {
    auto port = daemon_.start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << daemon_.log();
    if (client_ == nullptr) {
      client_ = std::make_unique<HttpClient>(*port);
    } else {
      client_->close();
      client_->setPort(*port);
    }
  }

  void track(const std::string& user, const std::string& message_id, bool marketing) {
    auto r = client_->request(
        "POST", "/v1/track",
        R"({"userId":")" + user + R"(","event":"Viewed","messageId":")" + message_id +
            R"(","context":{"consent":{"categoryPreferences":{"marketing":)" +
            (marketing ? "true" : "false") + "}}}}",
        auth_);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  void identify(const std::string& user, const std::string& message_id) {
    auto r = client_->request("POST", "/v1/identify",
                              R"({"userId":")" + user + R"(","messageId":")" + message_id +
                                  R"(","traits":{"plan":"pro"},"context":{"consent":{"categoryPreferences":{"marketing":true}}}})",
                              auth_);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  std::string metrics() { return client_->request("GET", "/metrics").body; }

  // Waits until the destination's counters balance with `pending` events pending and
  // `routed` routed; returns the last reading.
  Counts settle(const std::string& destination, double routed, double pending) {
    Counts c;
    eventually(
        [&] {
          c = countsOf(metrics(), destination);
          return c.routed == routed && c.pending == pending && c.balanced();
        },
        20s);
    return c;
  }

  TempDir dir_;
  FakeWebhookReceiver hook_;
  fs::path config_;
  DaemonProcess daemon_{dir_.path() / "junction.yaml"};
  std::unique_ptr<HttpClient> client_;
  const std::string auth_ = basicAuth(kKey);
  const std::string admin_ = bearerAuth(kAdmin);
};

TEST_F(ReconciliationTest, EveryEventIsAccountedForAcrossRetriesConsentFiltersDeadLettersAndARestart) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::set<std::string> expected;  // what the receiver must end up holding

  // --- 1: a mixed run with the receiver up ------------------------------------------------
  hook_.failNext(2, 503, R"({"error":"overloaded"})");         // two whole batches retried
  hook_.rejectEvent("u0-1", "payload refused", /*retry=*/false);  // dead letters
  hook_.rejectEvent("u2-2", "payload refused", /*retry=*/false);
  hook_.rejectEvent("u4-3", "try later", /*retry=*/true);        // retried once, then delivered
  for (int u = 0; u < 10; ++u) {
    for (int i = 0; i < 4; ++i) {
      const std::string user = "u" + std::to_string(u);
      const std::string id = user + "-" + std::to_string(i);
      ASSERT_NO_FATAL_FAILURE(track(user, id, u % 2 == 0));  // odd people refused marketing
      if (u % 2 == 0 && id != "u0-1" && id != "u2-2") {
        expected.insert(id);
      }
    }
    ASSERT_NO_FATAL_FAILURE(identify("u" + std::to_string(u), "id-" + std::to_string(u)));
  }
  // A suppressed person: accepted (200) but dropped at ingest, so never routed anywhere.
  ASSERT_EQ(client_->request("POST", "/v1/regulations", R"({"type":"suppress","userId":"sup"})", admin_).status,
            200);
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(track("sup", "sup-" + std::to_string(i), true));
  }

  Counts hook1 = settle("hook", 50, 0);
  ASSERT_TRUE(hook1.balanced() && hook1.routed == 50 && hook1.pending == 0) << hook1.describe();
  EXPECT_EQ(hook1.delivered, 18);
  EXPECT_EQ(hook1.dead, 2);
  EXPECT_EQ(hook1.consent, 20);
  EXPECT_EQ(hook1.filtered, 10);
  EXPECT_EQ(hook1.filtered_by["type"], 10);
  Counts all1 = settle("all", 50, 0);
  EXPECT_TRUE(all1.balanced() && all1.delivered == 50) << all1.describe();
  {
    const std::string m = metrics();
    EXPECT_EQ(sourceCounter(m, "junction_events_suppressed_total"), 3);
    EXPECT_GE(sumOf(m, "junction_events_retried_total", "hook"), 3) << "503s and a retryable refusal";
  }
  ASSERT_TRUE(hook_.waitForEvents(18, 5s));

  // --- 2: the receiver goes down; events wait; a deleted person's waiting events are dropped
  hook_.setDown(true);
  for (int i = 0; i < 5; ++i) {
    for (const std::string user : {"u0", "u2"}) {
      const std::string id = user + "-down-" + std::to_string(i);
      ASSERT_NO_FATAL_FAILURE(track(user, id, true));
      expected.insert(id);
    }
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(track("gone", "gone-" + std::to_string(i), true));
  }
  Counts waiting = settle("hook", 63, 13);
  ASSERT_TRUE(waiting.balanced() && waiting.pending == 13) << waiting.describe();
  ASSERT_EQ(client_->request("POST", "/v1/regulations", R"({"type":"delete","userId":"gone"})", admin_).status,
            200);
  Counts after_delete = settle("hook", 63, 10);
  ASSERT_TRUE(after_delete.balanced() && after_delete.pending == 10) << after_delete.describe();
  EXPECT_EQ(after_delete.filtered_by["deleted"], 3);
  std::this_thread::sleep_for(1s);  // the cursor of what finished is committed (every 5 ms)

  // --- 3: SIGKILL with 10 events pending; the receiver comes back; restart -----------------
  const Counts before_kill = countsOf(metrics(), "hook");
  ASSERT_TRUE(before_kill.balanced()) << before_kill.describe();
  daemon_.kill();
  hook_.setDown(false);
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 5; ++i) {
    const std::string id = "u6-after-" + std::to_string(i);
    ASSERT_NO_FATAL_FAILURE(track("u6", id, true));
    expected.insert(id);
  }
  // The new process routes only what the first left pending, and the new events.
  Counts hook2 = settle("hook", 15, 0);
  ASSERT_TRUE(hook2.balanced() && hook2.routed == 15) << hook2.describe();
  EXPECT_EQ(hook2.delivered, 15);

  // --- 4: the dead letters replayed: one is refused again, one goes through -----------------
  hook_.rejectEvent("u0-1", "payload still refused", /*retry=*/false);
  expected.insert("u2-2");
  auto replay = client_->request("POST", "/admin/dlq/replay", R"({"destination":"hook"})", admin_);
  ASSERT_EQ(replay.status, 200) << replay.body;
  Counts hook3 = settle("hook", 17, 0);
  ASSERT_TRUE(hook3.balanced() && hook3.routed == 17) << hook3.describe();
  EXPECT_EQ(hook3.delivered, 16);
  EXPECT_EQ(hook3.dead, 1);

  // Every event accounted for once across both processes: the receiver holds exactly the
  // deliverable events, and the delivered counters add up to its arrivals.
  ASSERT_TRUE(hook_.waitForEvents(expected.size(), 5s));
  std::set<std::string> got;
  for (const auto& e : hook_.events()) {
    got.insert(e.message_id);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(hook_.duplicateCount(), 0u);
  EXPECT_EQ(before_kill.delivered + hook3.delivered, static_cast<double>(hook_.eventCount()));
  // Routed over both lives = distinct events + what the first left pending + replays.
  EXPECT_EQ(before_kill.routed + hook3.routed, (63 + 5) + 10 + 2);
  auto dlq = client_->request("GET", "/admin/dlq?destination=hook", {}, admin_);
  EXPECT_NE(dlq.body.find("\"count\":1"), std::string::npos) << dlq.body;
  EXPECT_NE(dlq.body.find("payload still refused"), std::string::npos) << dlq.body;

  Counts all2 = settle("all", 5, 0);  // `all` had nothing pending: only the new events
  EXPECT_TRUE(all2.balanced()) << all2.describe();
}

}  // namespace
}  // namespace junction::integration
