// A missing, empty or corrupt privacy.db through the real daemon. It holds every suppression and
// deletion: recreated empty, it let a suppressed person's events be delivered again. junctiond
// refuses to start, naming the file, the damage and the recovery command; `junction recover
// privacy` rebuilds it from the audit log (verified first, the rebuild audited), and then the
// suppressed person's events are still dropped.

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
using ::testing::Not;
using namespace std::chrono_literals;

constexpr const char* kToken = "privacy-damage-token-5678";

enum class Damage { Deleted, Emptied, Corrupted };

class PrivacyStoreDamageTest : public ::testing::TestWithParam<Damage> {
 protected:
  void SetUp() override {
    server_.when("POST", "/hook").reply(200, "{}");
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, std::string(R"(server: { listen: "127.0.0.1:0", admin_token: ")") + kToken +
                           R"(" }
storage: { path: ")" + (dir_.path() / "data").string() + R"(" }
plugins: { paths: [")" + (kBinaryDir / "tests/fixtures/sources").string() + R"("] }
sources:
  - id: web
    plugin: test_source
destinations:
  - id: hook
    plugin: test_webhook
    batch: { max_wait: 0 }
    config: { url: ")" + server_.baseUrl() + R"(/hook" }
)");
    daemon_ = std::make_unique<DaemonProcess>(config_);
  }

  bool start() {
    auto port = daemon_->start(dir_.path() / "junctiond.log");
    if (port) {
      client_.close();
      client_.setPort(*port);
    }
    return port.has_value();
  }

  int regulate(const std::string& body) {
    return client_
        .request("POST", "/v1/regulations", body, "Authorization: Bearer " + std::string(kToken) + "\r\n")
        .status;
  }

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

  std::string event(const std::string& who, const std::string& id) {
    return R"({"type":"track","event":"Cart Abandoned",)" + who + R"(,"messageId":")" + id + "\"}";
  }

  TempDir dir_;
  sdk::testing::ScriptedHttpServer server_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
  HttpClient client_{0};
};

TEST_P(PrivacyStoreDamageTest, RefusesToStartThenRebuildsItFromTheAuditLog) {
  ASSERT_TRUE(start()) << readFile(dir_.path() / "junctiond.log");
  ASSERT_EQ(regulate(R"({"type":"suppress","userId":"s1"})"), 200);
  ASSERT_EQ(regulate(R"({"type":"suppress","email":" Sue@Example.com "})"), 200);
  ASSERT_EQ(regulate(R"({"type":"suppress","anonymousId":"a1"})"), 200);
  ASSERT_EQ(regulate(R"({"type":"unsuppress","anonymousId":"a1"})"), 200);
  ASSERT_EQ(client_.request("POST", "/test/events",
                            "[" + event(R"("userId":"s1")", "before-s1") + "," +
                                event(R"("userId":"k1")", "before-k1") + "]")
                .status,
            200);
  ASSERT_TRUE(eventually([&] { return receivedIds().contains("before-k1"); }));
  ASSERT_TRUE(daemon_->terminate());

  const fs::path db = dir_.path() / "data" / "privacy.db";
  ASSERT_TRUE(fs::exists(db));
  switch (GetParam()) {
    case Damage::Deleted:
      for (const char* suffix : {"", "-wal", "-shm"}) {
        fs::remove(db.string() + suffix);
      }
      break;
    case Damage::Emptied:
      writeFile(db, "");
      fs::remove(db.string() + "-wal");
      break;
    case Damage::Corrupted: {
      std::string data = readFile(db);
      ASSERT_GT(data.size(), 4096u);
      for (std::size_t i = 2048; i < data.size(); i += 7) {
        data[i] = static_cast<char>(0xA5);  // pages after the header: b-tree garbage
      }
      writeFile(db, data);
      break;
    }
  }

  // Refused, loudly and precisely: the file, the damage, and the command that loses nothing.
  ASSERT_FALSE(start());
  const std::string log = readFile(dir_.path() / "junctiond.log");
  EXPECT_THAT(log, HasSubstr(db.string()));
  EXPECT_THAT(log, HasSubstr(GetParam() == Damage::Deleted   ? "is missing"
                             : GetParam() == Damage::Emptied ? "is empty"
                                                             : "is corrupt"));
  EXPECT_THAT(log, HasSubstr("junction recover privacy --config"));

  auto recovered = runJunction("recover privacy --config " + config_.string());
  ASSERT_EQ(recovered.code, 0) << recovered.out;
  EXPECT_THAT(recovered.out, HasSubstr("4 regulations, 2 people suppressed, 0 deleted"));
  if (GetParam() != Damage::Deleted) {
    EXPECT_THAT(recovered.out, HasSubstr("moved the damaged file to"));
  }
  // A second run finds nothing to do, and says so.
  auto again = runJunction("recover privacy --config " + config_.string());
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_THAT(again.out, HasSubstr("nothing to recover"));
  // The rebuild is in the audit log, whose chain still verifies.
  EXPECT_THAT(readFile(dir_.path() / "data" / "audit.log"), HasSubstr("privacy_recovered"));
  auto verify = runJunction("audit verify --config " + config_.string());
  EXPECT_EQ(verify.code, 0) << verify.out;

  // The suppressed person's events (by userId, by e-mail) are still dropped; the unsuppressed
  // one's and everyone else's flow.
  server_.clearRequests();
  ASSERT_TRUE(start()) << readFile(dir_.path() / "junctiond.log");
  ASSERT_EQ(client_.request("POST", "/test/events",
                            "[" + event(R"("userId":"s1")", "after-s1") + "," +
                                event(R"("userId":"x2","traits":{"email":"sue@example.com"})",
                                      "after-sue") + "," +
                                event(R"("anonymousId":"a1")", "after-a1") + "," +
                                event(R"("userId":"k1")", "after-k1") + "]")
                .status,
            200);
  ASSERT_TRUE(eventually([&] { return receivedIds().contains("after-k1"); }));
  ASSERT_TRUE(eventually([&] { return receivedIds().contains("after-a1"); }));
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(receivedIds().contains("after-s1"));
  EXPECT_FALSE(receivedIds().contains("after-sue"));

  // An unsuppress in clear lifts a suppression known only by digest.
  ASSERT_EQ(regulate(R"({"type":"unsuppress","userId":"s1"})"), 200);
  ASSERT_EQ(client_.request("POST", "/test/events", "[" + event(R"("userId":"s1")", "later-s1") + "]")
                .status,
            200);
  ASSERT_TRUE(eventually([&] { return receivedIds().contains("later-s1"); }));
  EXPECT_THAT(readFile(dir_.path() / "junctiond.log"), Not(HasSubstr(kToken)));
}

INSTANTIATE_TEST_SUITE_P(Damages, PrivacyStoreDamageTest,
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

// A first start (nothing under storage.path) creates privacy.db without a word; so does a start
// after its loss when nothing else was there either.
TEST(PrivacyStoreFileTest, AFirstStartCreatesIt) {
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
  EXPECT_TRUE(fs::exists(dir.path() / "data" / "privacy.db"));
  // Without an audit log the regulations cannot be rebuilt: refused, unless the loss is
  // accepted explicitly (and audited).
  for (const char* file : {"privacy.db", "privacy.db-wal", "privacy.db-shm", "audit.log"}) {
    fs::remove(dir.path() / "data" / file);
  }
  EXPECT_FALSE(daemon.start(dir.path() / "junctiond.log"));  // the queue and cursors remain
  auto refused = runJunction("recover privacy --config " + config.string());
  EXPECT_EQ(refused.code, 1) << refused.out;
  EXPECT_THAT(refused.out, HasSubstr("--accept-loss"));
  auto accepted = runJunction("recover privacy --accept-loss --config " + config.string());
  EXPECT_EQ(accepted.code, 0) << accepted.out;
  EXPECT_THAT(readFile(dir.path() / "data" / "audit.log"), HasSubstr("\"regulations_lost\":true"));
  EXPECT_TRUE(daemon.start(dir.path() / "junctiond.log")) << readFile(dir.path() / "junctiond.log");
}

}  // namespace
}  // namespace junction::integration
