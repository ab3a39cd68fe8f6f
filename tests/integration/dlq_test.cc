// The dead-letter queue through the real daemon: events a vendor refuses are dead-lettered with
// its answer, listed, replayed once the vendor accepts them, and purged — through the admin API
// (Bearer token) and the `junction dlq` CLI — and they survive a restart.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>

#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr const char* kToken = "dlq-admin-token-1234";

struct Cli {
  int code = -1;
  std::string out;
};

Cli runJunction(const std::string& args) {
  std::string command = (kBinaryDir / "bin" / "junction").string() + " " + args + " 2>&1";
  Cli result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return result;
  }
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
    result.out.append(buf, n);
  }
  int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

class DlqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.when("POST", "/hook").reply(400, R"({"title":"Invalid Resource","detail":"bad email"})");
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
    startDaemon();
  }

  void startDaemon() {
    auto port = daemon_->start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << readFile(dir_.path() / "junctiond.log");
    port_ = *port;
    client_.close();
    client_.setPort(port_);
  }

  std::string cli(const std::string& action, const std::string& args = "") {
    return "dlq " + action + " --config " + config_.string() + " --url http://127.0.0.1:" +
           std::to_string(port_) + " " + args;
  }

  std::size_t listed() {
    auto reply = client_.request("GET", "/admin/dlq", {}, "Authorization: Bearer " + std::string(kToken) + "\r\n");
    if (reply.status != 200) {
      ADD_FAILURE() << "GET /admin/dlq: " << reply.status << " " << reply.body;
      return SIZE_MAX;
    }
    return boost::json::parse(reply.body).as_object().at("count").to_number<std::size_t>();
  }

  TempDir dir_;
  sdk::testing::ScriptedHttpServer server_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::uint16_t port_ = 0;
  HttpClient client_{0};
};

TEST_F(DlqTest, RefusedEventsAreListedReplayedAndPurged) {
  auto posted = client_.request(
      "POST", "/test/events",
      R"([{"type":"identify","userId":"u1","messageId":"m-u1","traits":{"email":"x"}},
          {"type":"track","userId":"u2","event":"Bought","messageId":"m-u2"}])");
  ASSERT_EQ(posted.status, 200) << posted.body;
  ASSERT_TRUE(eventually([&] { return listed() == 2; }));

  // The admin API needs the token.
  EXPECT_EQ(client_.request("GET", "/admin/dlq").status, 401);
  EXPECT_EQ(client_.request("GET", "/admin/dlq", {}, "Authorization: Bearer wrong\r\n").status, 401);

  auto list = runJunction(cli("list"));
  EXPECT_EQ(list.code, 0) << list.out;
  EXPECT_THAT(list.out, HasSubstr("m-u1"));
  EXPECT_THAT(list.out, HasSubstr("HTTP 400"));
  EXPECT_THAT(list.out, HasSubstr("Invalid Resource"));  // the vendor's answer is kept
  auto by_person = runJunction(cli("list", "--person u2 --json"));
  ASSERT_EQ(by_person.code, 0) << by_person.out;
  auto rows = boost::json::parse(by_person.out).as_object();
  ASSERT_EQ(rows.at("count").as_int64(), 1);
  EXPECT_EQ(rows.at("dead_letters").as_array()[0].as_object().at("messageId").as_string(), "m-u2");

  // Dead letters survive a restart.
  ASSERT_TRUE(daemon_->terminate());
  startDaemon();
  ASSERT_EQ(listed(), 2u);

  // The vendor is fixed: replay one person's dead letter; it is delivered and leaves the DLQ.
  server_.clearRules();
  server_.clearRequests();
  server_.when("POST", "/hook").reply(200, "{}");
  auto replay = runJunction(cli("replay", "--person u2"));
  EXPECT_EQ(replay.code, 0) << replay.out;
  EXPECT_THAT(replay.out, HasSubstr("\"replayed\":1"));
  ASSERT_TRUE(server_.waitForRequests(1, 10s));
  EXPECT_THAT(server_.requests()[0].body, HasSubstr("m-u2"));
  ASSERT_TRUE(eventually([&] { return listed() == 1; }));

  // Purge needs a selection or --all.
  auto refused = runJunction(cli("purge"));
  EXPECT_EQ(refused.code, 2);
  auto purge = runJunction(cli("purge", "--all"));
  EXPECT_EQ(purge.code, 0) << purge.out;
  EXPECT_THAT(purge.out, HasSubstr("\"purged\":1"));
  EXPECT_EQ(listed(), 0u);
  EXPECT_THAT(server_.requests().size(), 1u);  // the purged event was never sent again

  // The token never appears in the daemon's log.
  EXPECT_THAT(readFile(dir_.path() / "junctiond.log"), Not(HasSubstr(kToken)));
}

}  // namespace
}  // namespace junction::integration
