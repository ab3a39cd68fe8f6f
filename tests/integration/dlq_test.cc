// The dead-letter queue through the real daemon: events a vendor refuses are dead-lettered with
// its answer, listed, replayed once the vendor accepts them, and purged — through the admin API
// (Bearer token) and the `junction dlq` CLI — and they survive a restart.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstring>

#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr const char* kToken = "dlq-admin-token-1234";

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

// A filter the API cannot read is a 400 naming the field, never "every dead letter"; purging or
// replaying everything takes an explicit `"all": true`, alone. (Before: `{"ids":["21"]}`, a
// misspelled key, an unparseable `since` or `{}` all purged every dead letter.)
TEST_F(DlqTest, AFilterTheApiCannotReadIsRefusedNamingTheField) {
  auto posted = client_.request(
      "POST", "/test/events",
      R"([{"type":"track","userId":"u1","event":"A","messageId":"m-1"},
          {"type":"track","userId":"u2","event":"B","messageId":"m-2"}])");
  ASSERT_EQ(posted.status, 200) << posted.body;
  ASSERT_TRUE(eventually([&] { return listed() == 2; }));
  const std::string auth = "Authorization: Bearer " + std::string(kToken) + "\r\n";
  const std::size_t sent = server_.requests().size();

  struct Refused {
    const char* body;
    const char* field;    // the "field" of the answer
    const char* message;  // in its "error"
  };
  const Refused refused[] = {
      {R"({"ids":["21"]})", "ids", "`ids` must be an array of dead-letter ids (integers)"},
      {R"({"ids":[1.5]})", "ids", "`ids`"},
      {R"({"ids":[-1]})", "ids", "`ids`"},
      {R"({"ids":[]})", "ids", "`ids` is empty"},
      {R"({"ids":21})", "ids", "`ids`"},
      {R"({"idz":[1]})", "idz", "unknown field `idz`"},
      {R"({"since":"yesterday"})", "since", "`since`"},
      {R"({"until":"2024-13-45T00:00:00Z"})", "until", "`until`"},
      {R"({"until":true})", "until", "`until`"},
      {R"({"destination":5})", "destination", "`destination`"},
      {R"({"destination":""})", "destination", "`destination` is empty"},
      {R"({"person":null})", "person", "`person`"},
      {R"({"all":"yes"})", "all", "`all`"},
      {R"({"all":false})", "", "no filter"},
      {R"({"all":true,"destination":"hook"})", "all", "`all: true` cannot be combined"},
      {R"({})", "", "no filter: send ids, destination, person, since, until or all: true"},
      {"", "", "no filter"},
      {R"([1,2])", "", "expected a JSON object"},
      {R"({"ids":[1)", "", "expected a JSON object"},
  };
  for (const char* action : {"purge", "replay"}) {
    for (const auto& r : refused) {
      auto reply = client_.request("POST", std::string("/admin/dlq/") + action, r.body, auth);
      EXPECT_EQ(reply.status, 400) << action << " " << r.body << " -> " << reply.body;
      boost::system::error_code ec;
      auto answer = boost::json::parse(reply.body, ec);
      ASSERT_FALSE(ec) << reply.body;
      const auto& o = answer.as_object();
      EXPECT_THAT(std::string(o.at("error").as_string()), HasSubstr(r.message)) << r.body;
      if (*r.field != '\0') {
        ASSERT_TRUE(o.contains("field")) << reply.body;
        EXPECT_EQ(o.at("field").as_string(), r.field) << r.body;
      }
    }
  }
  // Nothing was purged, nothing replayed.
  EXPECT_EQ(listed(), 2u);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server_.requests().size(), sent);

  // Listing: a query parameter the API cannot read is a 400 naming it.
  for (const char* query : {"limit=-1", "limit=abc", "limit=0", "limit=", "id=x", "id=-3",
                            "since=yesterday", "until=", "destinaton=hook", "destination="}) {
    auto reply = client_.request("GET", std::string("/admin/dlq?") + query, {}, auth);
    EXPECT_EQ(reply.status, 400) << query << " -> " << reply.body;
    const std::string name(query, std::strchr(query, '='));
    EXPECT_THAT(reply.body, HasSubstr("\"field\":\"" + name + "\"")) << query;
  }
  // A name or value that decodes to bytes that are not UTF-8: a 400 that is still JSON (the
  // bytes are not quoted back), which the CLI can read.
  for (const char* query : {"%ab=1", "person=%ff%fe", "destination=%c3"}) {
    auto reply = client_.request("GET", std::string("/admin/dlq?") + query, {}, auth);
    EXPECT_EQ(reply.status, 400) << query;
    boost::system::error_code ec;
    auto answer = boost::json::parse(reply.body, ec);
    ASSERT_FALSE(ec) << query << " -> an answer that is not JSON: " << reply.body;
    EXPECT_THAT(std::string(answer.as_object().at("error").as_string()), HasSubstr("UTF-8"));
  }
  auto limited = client_.request("GET", "/admin/dlq?limit=1&since=2020-01-01T00:00:00%2B01:00", {}, auth);
  ASSERT_EQ(limited.status, 200) << limited.body;
  EXPECT_EQ(boost::json::parse(limited.body).as_object().at("count").as_int64(), 1);

  // Ids are integers; the rows they name, and only those, are purged.
  auto rows = boost::json::parse(
      client_.request("GET", "/admin/dlq?person=u1", {}, auth).body).as_object();
  ASSERT_EQ(rows.at("count").as_int64(), 1);
  const auto id = rows.at("dead_letters").as_array()[0].as_object().at("id").as_int64();
  auto purged = client_.request("POST", "/admin/dlq/purge",
                                R"({"ids":[)" + std::to_string(id) + "]}", auth);
  ASSERT_EQ(purged.status, 200) << purged.body;
  EXPECT_THAT(purged.body, HasSubstr("\"purged\":1"));
  EXPECT_EQ(listed(), 1u);

  // The CLI: --all alone purges everything; --all with a selection is refused before sending.
  auto mixed = runJunction(cli("purge", "--all --destination hook"));
  EXPECT_EQ(mixed.code, 2) << mixed.out;
  EXPECT_EQ(listed(), 1u);
  auto since = runJunction(cli("list", "--since 2020-01-01T00:00:00+01:00 --json"));
  ASSERT_EQ(since.code, 0) << since.out;
  EXPECT_THAT(since.out, HasSubstr("\"count\":1"));
  auto all = runJunction(cli("purge", "--all"));
  EXPECT_EQ(all.code, 0) << all.out;
  EXPECT_THAT(all.out, HasSubstr("\"purged\":1"));
  EXPECT_EQ(listed(), 0u);
}

}  // namespace
}  // namespace junction::integration
