// The live event debugger through the real daemon and the real CLI (`junction tail`, which
// reads GET /admin/debug/events as server-sent events): events as they arrive with secrets and
// configured PII masked, each destination's decision (delivered, consent-blocked, filtered,
// retried with the vendor's reason, dead-lettered), the filters, and the admin token.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fakes/webhook/fake_webhook.h"
#include "tests/integration/web_config.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using tests::fakes::FakeWebhookReceiver;
namespace json = boost::json;

constexpr const char* kKey = "wk-debugger-1";
constexpr const char* kAdmin = "admin-debugger-2";

class LiveDebuggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, webConfig(dir_.path(), kKey, kAdmin, R"(  - id: hook
    plugin: webhook
    consent: [marketing]
    filter: { types: [track] }
    hash: [properties.email]
    batch: { max_wait: 0ms }
    retry: { initial_backoff: 20ms, max_backoff: 100ms }
    config: { url: ")" + hook_.url() + "\" }\n"));
    auto port = daemon_.start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << daemon_.log();
    port_ = *port;
    client_ = std::make_unique<HttpClient>(port_);
  }

  // `junction tail ARGS --count N --json` in the background; waits until it is attached.
  std::future<CliRun> tail(const std::string& args, int count) {
    const std::size_t attached = attachedCount();
    auto run = std::async(std::launch::async, [this, args, count] {
      return runJunction("tail " + args + " --count " + std::to_string(count) + " --json --config " +
                         config_.string() + " --url http://127.0.0.1:" + std::to_string(port_));
    });
    EXPECT_TRUE(eventually([&] { return attachedCount() > attached; })) << daemon_.log();
    return run;
  }

  std::size_t attachedCount() {
    const std::string log = daemon_.log();
    std::size_t n = 0;
    for (auto at = log.find("live debugger attached"); at != std::string::npos;
         at = log.find("live debugger attached", at + 1)) {
      ++n;
    }
    return n;
  }

  void send(const std::string& path, const std::string& body) {
    auto r = client_->request("POST", path, body, auth_);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  static std::vector<json::object> records(const CliRun& run) {
    std::vector<json::object> out;
    std::istringstream in(run.out);
    std::string line;
    while (std::getline(in, line)) {
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (!ec && v.is_object()) {
        out.push_back(v.as_object());
      }
    }
    return out;
  }

  static const json::object* find(const std::vector<json::object>& list, std::string_view kind,
                                  std::string_view message_id) {
    for (const auto& r : list) {
      if (r.at("kind").as_string() == kind && r.at("messageId").as_string() == message_id) {
        return &r;
      }
    }
    return nullptr;
  }

  TempDir dir_;
  FakeWebhookReceiver hook_;
  fs::path config_;
  DaemonProcess daemon_{dir_.path() / "junction.yaml"};
  std::uint16_t port_ = 0;
  std::unique_ptr<HttpClient> client_;
  const std::string auth_ = basicAuth(kKey);
};

TEST_F(LiveDebuggerTest, ShowsArrivalsMaskedAndEveryDecisionWithItsReason) {
  // 4 arrivals; a1 retried then delivered; a2 consent denied; a3 filtered (type); a4 consent
  // unknown: 9 records.
  auto watching = tail("", 9);
  hook_.failNext(1, 503, R"({"error":"receiver overloaded"})");
  send("/v1/track", R"({"userId":"p1","event":"Signed Up","messageId":"a1",
      "properties":{"email":"Ann@Example.com","password":"hunter2","plan":"pro"},
      "context":{"consent":{"categoryPreferences":{"marketing":true}}}})");
  ASSERT_TRUE(hook_.waitForEvents(1, 10s));
  send("/v1/track", R"({"userId":"p2","event":"Viewed","messageId":"a2",
      "context":{"consent":{"categoryPreferences":{"marketing":false}}}})");
  send("/v1/identify", R"({"userId":"p1","messageId":"a3","traits":{"apiKey":"k-123"}})");
  send("/v1/track", R"({"userId":"p3","event":"Viewed","messageId":"a4"})");
  auto run = watching.get();
  ASSERT_EQ(run.code, 0) << run.out;
  auto list = records(run);

  const json::object* arrived = find(list, "received", "a1");
  ASSERT_NE(arrived, nullptr) << run.out;
  EXPECT_EQ(arrived->at("source").as_string(), "web");
  EXPECT_EQ(arrived->at("event").as_string(), "Signed Up");
  EXPECT_EQ(arrived->at("person").as_string(), "p1");
  const auto& props = arrived->at("body").as_object().at("properties").as_object();
  EXPECT_EQ(props.at("password").as_string(), "***") << "a secret shown";
  EXPECT_EQ(props.at("email").as_string(), "***") << "configured PII (hash:) shown";
  EXPECT_EQ(props.at("plan").as_string(), "pro");
  EXPECT_EQ(run.out.find("hunter2"), std::string::npos);
  EXPECT_EQ(run.out.find("Ann@Example.com"), std::string::npos);
  EXPECT_EQ(run.out.find("k-123"), std::string::npos);

  const json::object* retry = find(list, "retry", "a1");
  ASSERT_NE(retry, nullptr) << run.out;
  EXPECT_EQ(retry->at("destination").as_string(), "hook");
  EXPECT_NE(retry->at("reason").as_string().find("503"), std::string::npos) << run.out;
  ASSERT_NE(find(list, "delivered", "a1"), nullptr) << run.out;
  const json::object* blocked = find(list, "consent_blocked", "a2");
  ASSERT_NE(blocked, nullptr) << run.out;
  EXPECT_EQ(blocked->at("reason").as_string(), "consent_denied") << run.out;
  const json::object* filtered = find(list, "filtered", "a3");
  ASSERT_NE(filtered, nullptr) << run.out;
  EXPECT_EQ(filtered->at("reason").as_string(), "type") << run.out;
  ASSERT_NE(find(list, "received", "a4"), nullptr) << run.out;
}

TEST_F(LiveDebuggerTest, FiltersByPersonDestinationAndEventAndNeedsTheToken) {
  auto person = tail("--person p2 --destination hook", 2);  // p2's arrival and its decision
  auto event = tail("--event Bought", 1);
  send("/v1/track", R"({"userId":"p1","event":"Viewed","messageId":"b1",
      "context":{"consent":{"categoryPreferences":{"marketing":true}}}})");
  send("/v1/track", R"({"userId":"p2","event":"Bought","messageId":"b2",
      "context":{"consent":{"categoryPreferences":{"marketing":true}}}})");
  auto by_person = records(person.get());
  ASSERT_EQ(by_person.size(), 2u);
  for (const auto& r : by_person) {
    EXPECT_EQ(r.at("person").as_string(), "p2");
    EXPECT_EQ(r.at("messageId").as_string(), "b2");
  }
  EXPECT_NE(find(by_person, "received", "b2"), nullptr);
  EXPECT_NE(find(by_person, "delivered", "b2"), nullptr);
  auto by_event = records(event.get());
  ASSERT_EQ(by_event.size(), 1u);
  EXPECT_EQ(by_event[0].at("event").as_string(), "Bought");

  EXPECT_EQ(client_->request("GET", "/admin/debug/events").status, 401);
  auto bad = client_->request("GET", "/admin/debug/events?who=p1", {}, bearerAuth(kAdmin));
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("unknown parameter"), std::string::npos) << bad.body;
}

}  // namespace
}  // namespace junction::integration
