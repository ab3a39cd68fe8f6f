// A missing, empty or corrupt dead-letter store through the real daemon: junctiond refuses to
// start, naming the file, the damage and the recovery command; `junction recover dead-letters`
// copies every row still readable into a new store (audited), and the daemon starts with them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>

#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr const char* kToken = "dlq-damage-admin";
constexpr int kEvents = 60;

enum class Damage { Deleted, Emptied, Corrupted };

class DeadLetterDamageTest : public ::testing::TestWithParam<Damage> {
 protected:
  void SetUp() override {
    // The vendor refuses every event for good: each becomes a dead letter.
    server_.when("POST", "/hook").reply(400, R"({"error":"invalid contact"})");
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, R"(server: { listen: "127.0.0.1:0", admin_token: ")" + std::string(kToken) + R"(" }
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

  std::optional<std::uint16_t> start() { return daemon_->start(dir_.path() / "junctiond.log"); }

  std::int64_t deadLetters(std::uint16_t port) {
    HttpClient client(port);
    auto reply = client.request("GET", "/admin/dlq?limit=1000", {},
                                "Authorization: Bearer " + std::string(kToken) + "\r\n");
    if (reply.status != 200) {
      return -1;
    }
    return boost::json::parse(reply.body).as_object().at("count").as_int64();
  }

  TempDir dir_;
  sdk::testing::ScriptedHttpServer server_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_P(DeadLetterDamageTest, RefusesToStartThenRecoversEveryReadableRow) {
  auto port = start();
  ASSERT_TRUE(port) << readFile(dir_.path() / "junctiond.log");
  std::string batch = "[";
  for (int i = 0; i < kEvents; ++i) {
    batch += std::string(i ? "," : "") + R"({"type":"track","userId":"u)" + std::to_string(i) +
             R"(","event":"Cart Abandoned","messageId":"m-)" + std::to_string(i) +
             R"(","properties":{"note":")" + std::string(300, 'n') + "\"}}";
  }
  ASSERT_EQ(HttpClient(*port).request("POST", "/test/events", batch + "]").status, 200);
  ASSERT_TRUE(eventually([&] { return deadLetters(*port) == kEvents; }, 15s)) << deadLetters(*port);
  ASSERT_TRUE(daemon_->terminate());

  const fs::path db = dir_.path() / "data" / "dead_letters.db";
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
      // The page holding dead letter m-30 turned to garbage (SQLite's default 4 KiB pages).
      std::string data = readFile(db);
      const auto at = data.find(R"("messageId":"m-30")");
      ASSERT_NE(at, std::string::npos);
      const std::size_t page = at / 4096 * 4096;
      ASSERT_GT(page, 0u);
      for (std::size_t i = page; i < page + 4096 && i < data.size(); ++i) {
        data[i] = static_cast<char>(0xA5);
      }
      writeFile(db, data);
      break;
    }
  }

  ASSERT_FALSE(start());
  const std::string log = readFile(dir_.path() / "junctiond.log");
  EXPECT_THAT(log, HasSubstr(db.string()));
  EXPECT_THAT(log, HasSubstr(GetParam() == Damage::Deleted   ? "is missing"
                             : GetParam() == Damage::Emptied ? "is empty"
                                                             : "is corrupt"));
  EXPECT_THAT(log, HasSubstr("junction recover dead-letters --config"));

  auto recovered = runJunction("recover dead-letters --config " + config_.string());
  ASSERT_EQ(recovered.code, 0) << recovered.out;
  EXPECT_THAT(recovered.out, HasSubstr("written to the audit log as dead_letters_recovered"));
  EXPECT_THAT(readFile(dir_.path() / "data" / "audit.log"), HasSubstr("dead_letters_recovered"));

  port = start();
  ASSERT_TRUE(port) << readFile(dir_.path() / "junctiond.log");
  const std::int64_t kept = deadLetters(*port);
  if (GetParam() == Damage::Corrupted) {
    // Every row is either copied or counted unreadable; the rest of the file was readable.
    EXPECT_THAT(recovered.out, HasSubstr("ids up to " + std::to_string(kEvents)));
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, kEvents);
    EXPECT_THAT(recovered.out, HasSubstr("copied " + std::to_string(kept) + " dead letters"));
    EXPECT_THAT(recovered.out,
                HasSubstr(std::to_string(kEvents - kept) + " could not be read"));
  } else {
    EXPECT_EQ(kept, 0);
  }
  // A second recovery finds nothing to do.
  ASSERT_TRUE(daemon_->terminate());
  auto again = runJunction("recover dead-letters --config " + config_.string());
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_THAT(again.out, HasSubstr("is intact: there is nothing to recover"));
}

INSTANTIATE_TEST_SUITE_P(Damages, DeadLetterDamageTest,
                         ::testing::Values(Damage::Deleted, Damage::Emptied, Damage::Corrupted),
                         [](const auto& p) {
                           switch (p.param) {
                             case Damage::Deleted:
                               return std::string("Deleted");
                             case Damage::Emptied:
                               return std::string("Emptied");
                             default:
                               return std::string("Corrupted");
                           }
                         });

}  // namespace
}  // namespace junction::integration
