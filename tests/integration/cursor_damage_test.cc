// A missing, empty or corrupt cursor file through the real daemon: acknowledged events a
// destination has not received yet must not be skipped. junctiond refuses to start, names the
// file and the recovery command; `junction recover cursors` restarts every destination at the
// oldest queued event (audited), and then every event arrives.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <set>

#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

enum class Damage { Deleted, Emptied, Corrupted };

class CursorDamageTest : public ::testing::TestWithParam<Damage> {
 protected:
  void SetUp() override {
    // The vendor is down at first: events stay acknowledged and undelivered.
    server_.when("POST", "/hook").reply(503, R"({"error":"maintenance"})");
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, R"(server: { listen: "127.0.0.1:0" }
storage: { path: ")" + (dir_.path() / "data").string() + R"(" }
plugins: { paths: [")" + (kBinaryDir / "tests/fixtures/sources").string() + R"("] }
sources:
  - id: web
    plugin: test_source
destinations:
  - id: hook
    plugin: test_webhook
    batch: { max_wait: 0 }
    retry: { initial_backoff: 20ms, max_backoff: 100ms, max_attempts: 1000, max_age: 1h }
    config: { url: ")" + server_.baseUrl() + R"(/hook" }
)");
    daemon_ = std::make_unique<DaemonProcess>(config_);
  }

  std::optional<std::uint16_t> start() { return daemon_->start(dir_.path() / "junctiond.log"); }

  std::set<std::string> receivedIds() {
    std::set<std::string> ids;
    for (const auto& r : server_.requests()) {
      if (r.body.empty() || r.body[0] != '[') {
        continue;
      }
      const boost::json::value batch = boost::json::parse(r.body);
      for (const auto& e : batch.as_array()) {
        ids.insert(std::string(e.as_object().at("messageId").as_string()));
      }
    }
    return ids;
  }

  TempDir dir_;
  sdk::testing::ScriptedHttpServer server_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_P(CursorDamageTest, RefusesToStartThenRecoversWithoutSkippingAnEvent) {
  auto port = start();
  ASSERT_TRUE(port) << readFile(dir_.path() / "junctiond.log");
  HttpClient client(*port);
  std::string batch = "[";
  for (int i = 0; i < 40; ++i) {
    batch += std::string(i ? "," : "") + R"({"type":"track","userId":"u)" + std::to_string(i) +
             R"(","event":"Cart Abandoned","messageId":"m-)" + std::to_string(i) + "\"}";
  }
  batch += "]";
  ASSERT_EQ(client.request("POST", "/test/events", batch).status, 200);
  ASSERT_TRUE(server_.waitForRequests(1, 10s));  // tried, refused: the events wait
  ASSERT_TRUE(daemon_->terminate());

  const fs::path cursors = dir_.path() / "data" / "cursors" / "cursors.dat";
  ASSERT_TRUE(fs::exists(cursors));
  switch (GetParam()) {
    case Damage::Deleted:
      fs::remove(cursors);
      break;
    case Damage::Emptied:
      writeFile(cursors, "");
      break;
    case Damage::Corrupted: {
      std::string data = readFile(cursors);
      data[data.size() / 2] ^= 0x5a;
      writeFile(cursors, data);
      break;
    }
  }

  // Refused, loudly and precisely: the file, the damage, and the command that loses nothing.
  ASSERT_FALSE(start());
  const std::string log = readFile(dir_.path() / "junctiond.log");
  EXPECT_THAT(log, HasSubstr(cursors.string()));
  EXPECT_THAT(log, HasSubstr(GetParam() == Damage::Deleted ? "is missing" : "is corrupt"));
  EXPECT_THAT(log, HasSubstr("junction recover cursors --config"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("move it aside")));

  auto recovered = runJunction("recover cursors --config " + config_.string());
  ASSERT_EQ(recovered.code, 0) << recovered.out;
  EXPECT_THAT(recovered.out, HasSubstr("every destination (1) restarts at offset"));
  if (GetParam() != Damage::Deleted) {
    EXPECT_THAT(recovered.out, HasSubstr("moved the damaged file to"));
  }
  // A second run finds nothing to do, and says so.
  auto again = runJunction("recover cursors --config " + config_.string());
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_THAT(again.out, HasSubstr("nothing to recover"));
  // The recovery is in the audit log, whose chain still verifies.
  EXPECT_THAT(readFile(dir_.path() / "data" / "audit.log"), HasSubstr("cursors_recovered"));
  auto verify = runJunction("audit verify --config " + config_.string());
  EXPECT_EQ(verify.code, 0) << verify.out;

  // The vendor is back: every acknowledged event arrives.
  server_.clearRules();
  server_.when("POST", "/hook").reply(200, "{}");
  server_.clearRequests();
  ASSERT_TRUE(start()) << readFile(dir_.path() / "junctiond.log");
  ASSERT_TRUE(eventually([&] { return receivedIds().size() == 40; })) << receivedIds().size();
}

INSTANTIATE_TEST_SUITE_P(Damages, CursorDamageTest,
                         ::testing::Values(Damage::Deleted, Damage::Emptied, Damage::Corrupted),
                         [](const ::testing::TestParamInfo<Damage>& param_info) {
                           switch (param_info.param) {
                             case Damage::Deleted:
                               return "Deleted";
                             case Damage::Emptied:
                               return "Emptied";
                             case Damage::Corrupted:
                               return "Corrupted";
                           }
                           return "Unknown";
                         });

TEST(CursorFileTest, AFirstStartCreatesItAndAnEmptyQueueNeedsNoRecovery) {
  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, R"(server: { listen: "127.0.0.1:0" }
storage: { path: ")" + (dir.path() / "data").string() + R"(" }
plugins: { paths: [")" + (kBinaryDir / "tests/fixtures/sources").string() + R"("] }
sources:
  - id: web
    plugin: test_source
)");
  DaemonProcess daemon(config);
  ASSERT_TRUE(daemon.start(dir.path() / "junctiond.log")) << readFile(dir.path() / "junctiond.log");
  ASSERT_TRUE(daemon.terminate());
  const fs::path cursors = dir.path() / "data" / "cursors" / "cursors.dat";
  EXPECT_TRUE(fs::exists(cursors));  // written at the first start, even with no destination
  // Deleted while the queue holds nothing undelivered: nothing can be lost, so it starts.
  fs::remove(cursors);
  EXPECT_TRUE(daemon.start(dir.path() / "junctiond.log")) << readFile(dir.path() / "junctiond.log");
}

}  // namespace
}  // namespace junction::integration
