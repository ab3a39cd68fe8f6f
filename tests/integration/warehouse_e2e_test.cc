// The warehouse end to end: events sent over HTTP to the real junctiond are loaded by the
// postgres destination into a real PostgreSQL; junctiond is SIGKILLed in the middle of the
// loads and restarted; every event ends up in the warehouse exactly once, and
// `junction warehouse verify` reconciles the loads with the daemon's durable delivered count.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "junction/sdk/crypto.h"
#include "junction/sdk/event.h"
#include "tests/integration/daemon_harness.h"
#include "tests/support/postgres/postgres_server.h"

namespace junction::integration {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr const char* kWriteKey = "warehouse-e2e-key";

std::string basicAuth() {
  return "Authorization: Basic " + sdk::base64Encode(std::string(kWriteKey) + ":") +
         "\r\nContent-Type: application/json\r\n";
}

// `count` events from `first` on: tracks of 50 people, every tenth an identify with an email.
std::string batchBody(int first, int count) {
  std::string body = R"({"batch":[)";
  const std::string now = sdk::formatIsoTimestamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (int i = first; i < first + count; ++i) {
    const std::string person = std::to_string(i % 50);
    if (i > first) {
      body += ',';
    }
    if (i % 10 == 0) {
      body += R"({"type":"identify","userId":"u)" + person + R"(","anonymousId":"a)" + person +
              R"(","messageId":"e-)" + std::to_string(i) + R"(","timestamp":")" + now +
              R"(","traits":{"email":"p)" + person + R"(@example.com","plan":"pro"}})";
    } else {
      body += R"({"type":"track","event":"Product Viewed","userId":"u)" + person +
              R"(","messageId":"e-)" + std::to_string(i) + R"(","timestamp":")" + now +
              R"(","properties":{"sku":"SKU-)" + std::to_string(i % 97) + R"(","price":12.5}})";
    }
  }
  return body + "]}";
}

TEST(WarehouseE2ETest, EveryEventIsLoadedOnceAcrossASigkillAndVerifyAgrees) {
  std::string error;
  auto pg = testing::PostgresServer::start(&error);
  ASSERT_NE(pg, nullptr) << error;
  const std::string db = pg->createDatabase("warehouse");

  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config,
            "server: { listen: \"127.0.0.1:0\" }\n"
            "storage: { path: \"" + (dir.path() / "data").string() + "\" }\n"
            "sources:\n"
            "  - id: web\n"
            "    plugin: http\n"
            "    config: { write_keys: [\"" + std::string(kWriteKey) + "\"] }\n"
            "destinations:\n"
            "  - id: warehouse\n"
            "    plugin: postgres\n"
            "    start: earliest\n"
            "    batch: { max_events: 200, max_wait: 10ms }\n"
            "    retry: { initial_backoff: 50ms, max_backoff: 500ms, max_attempts: 100000, max_age: 1h }\n"
            "    config:\n"
            "      dsn: \"" + pg->dsn(db) + "\"\n"
            "      traits: { email: text, plan: text }\n");
  auto check = runJunction("check " + config.string());
  ASSERT_EQ(check.code, 0) << check.out;

  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond-1.log");
  ASSERT_TRUE(port) << readFile(dir.path() / "junctiond-1.log");
  constexpr int kPerRequest = 250;
  constexpr int kRequests = 40;  // 10,000 events
  // 0 until the destination's first delivery has created the schema.
  auto count = [&] {
    try {
      return std::stoi(pg->scalar("SELECT count(*) FROM junction.events", db));
    } catch (const std::exception&) {
      return 0;
    }
  };
  {
    HttpClient client(*port);
    for (int r = 0; r < kRequests / 2; ++r) {
      auto reply = client.request("POST", "/v1/batch", batchBody(r * kPerRequest, kPerRequest), basicAuth());
      ASSERT_EQ(reply.status, 200) << reply.body;
    }
  }
  // Killed as soon as loading has begun: batches are being loaded, others wait in the queue.
  ASSERT_TRUE(eventually([&] { return count() > 0; }, 30s)) << daemon.log();
  daemon.kill();
  const int at_kill = count();

  port = daemon.start(dir.path() / "junctiond-2.log");
  ASSERT_TRUE(port) << readFile(dir.path() / "junctiond-2.log");
  {
    HttpClient client(*port);
    for (int r = kRequests / 2; r < kRequests; ++r) {
      auto reply = client.request("POST", "/v1/batch", batchBody(r * kPerRequest, kPerRequest), basicAuth());
      ASSERT_EQ(reply.status, 200) << reply.body;
    }
  }
  const int total = kPerRequest * kRequests;
  ASSERT_TRUE(eventually([&] { return count() == total; }, 60s))
      << count() << " of " << total << " loaded (" << at_kill << " at the kill)\n" << daemon.log();
  EXPECT_EQ(pg->scalar("SELECT count(DISTINCT message_id) FROM junction.events", db), std::to_string(total));
  EXPECT_EQ(pg->scalar("SELECT count(*) FROM junction.profiles", db), "5");  // identifies: i % 10 == 0
  EXPECT_EQ(pg->scalar("SELECT count(*) FROM junction.identities WHERE kind = 'email'", db), "5");

  // The daemon commits its delivered count with the cursor: once it has, verify agrees.
  CliRun verify;
  EXPECT_TRUE(eventually([&] {
    verify = runJunction("warehouse verify --config " + config.string() + " --destination warehouse");
    return verify.code == 0;
  }, 15s)) << verify.out;
  std::printf("%d events in the warehouse when junctiond was killed; then:\n%s", at_kill,
              verify.out.c_str());
  EXPECT_THAT(verify.out, HasSubstr("daemon: " + std::to_string(total) + " events delivered"));
  EXPECT_THAT(verify.out, HasSubstr(std::to_string(total) + " inserted"));
  EXPECT_THAT(verify.out, HasSubstr("OK: the warehouse holds every event the daemon delivered, once"));
  EXPECT_THAT(verify.out, ::testing::Not(HasSubstr(pg->dsn(db))));

  // Rows removed behind Junction's back are a difference, and exit 1.
  pg->query("DELETE FROM junction.events WHERE message_id = 'e-7'", db);
  auto after = runJunction("warehouse verify --config " + config.string() + " --destination warehouse");
  EXPECT_EQ(after.code, 1) << after.out;
  EXPECT_THAT(after.out, HasSubstr("DIFFERENCE"));
  EXPECT_TRUE(daemon.terminate()) << daemon.exitDescription();
}

}  // namespace
}  // namespace junction::integration
