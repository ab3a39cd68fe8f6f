// The `http` source in the real daemon: the Segment HTTP Tracking API over loopback, as curl or
// an SDK would call it, with events checked where they land (a file destination). Also the
// official @segment/analytics-node client, installed with npm into the build tree (skipped
// only when node/npm are absent).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "junction/sdk/crypto.h"
#include "junction/sdk/event.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kKeyOld = "wk-old-5f2a";
constexpr const char* kKeyNew = "wk-new-9c1d";

std::string configYaml(const fs::path& dir) {
  return "server:\n"
         "  listen: \"127.0.0.1:0\"\n"
         "storage:\n"
         "  path: " + (dir / "data").string() + "\n"
         "  fsync: batch\n"
         "sources:\n"
         "  - id: web\n"
         "    plugin: http\n"
         "    config:\n"
         "      write_keys: [\"" + std::string(kKeyOld) + "\", \"" + kKeyNew + "\"]\n"
         "      client_ip: truncate\n"
         "      max_batch_bytes: 200KiB\n"
         "      tracking_plan:\n"
         "        events:\n"
         "          \"Order Completed\": {type: object, required: [revenue],\n"
         "                                properties: {revenue: {type: number}}}\n"
         "        violations: flag\n"
         "destinations:\n"
         "  - id: out\n"
         "    plugin: file\n"
         "    batch: { max_wait: 0ms }\n"
         "    config:\n"
         "      path: " + (dir / "out" / "events.ndjson").string() + "\n";
}

std::string basicAuth(std::string_view key) {
  return "Authorization: Basic " + sdk::base64Encode(std::string(key) + ":") + "\r\n";
}

std::string gzip(std::string_view data) {
  z_stream zs{};
  deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// The events in the NDJSON file once it has at least `n` lines (or what is there at the deadline).
std::vector<json::object> waitForEvents(const fs::path& file, std::size_t n,
                                        std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<json::object> events;
  for (;;) {
    events.clear();
    std::string text = readFile(file);
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) {
        break;  // a line still being written
      }
      boost::system::error_code ec;
      json::value v = json::parse(std::string_view(text).substr(pos, end - pos), ec);
      if (!ec && v.is_object()) {
        events.push_back(std::move(v.as_object()));
      }
      pos = end + 1;
    }
    if (events.size() >= n || std::chrono::steady_clock::now() > deadline) {
      return events;
    }
    std::this_thread::sleep_for(20ms);
  }
}

const json::object* findEvent(const std::vector<json::object>& events, std::string_view key,
                              std::string_view value) {
  for (const auto& e : events) {
    if (const json::value* v = e.if_contains(key); v != nullptr && v->is_string() && v->as_string() == value) {
      return &e;
    }
  }
  return nullptr;
}

class HttpSourceE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, configYaml(dir_.path()));
    daemon_ = std::make_unique<DaemonProcess>(config_);
    auto port = daemon_->start(dir_.path() / "daemon.log");
    ASSERT_TRUE(port.has_value()) << readFile(dir_.path() / "daemon.log");
    port_ = *port;
  }
  void TearDown() override {
    if (daemon_) {
      const std::string log = daemon_->log();
      EXPECT_THAT(log, Not(HasSubstr(kKeyOld)));  // secrets never logged
      EXPECT_THAT(log, Not(HasSubstr(kKeyNew)));
      EXPECT_TRUE(daemon_->terminate()) << log;
    }
  }
  fs::path outFile() const { return dir_.path() / "out" / "events.ndjson"; }

  TempDir dir_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::uint16_t port_ = 0;
};

TEST_F(HttpSourceE2ETest, CurlLikeRequestsLandInTheFileDestination) {
  HttpClient client(port_);
  // curl -u KEY: -d '{"type":"track",...}' /v1/track
  auto track = client.request("POST", "/v1/track",
                              R"({"type":"track","userId":"u1","event":"Signed Up","messageId":"e2e-1",
                                  "timestamp":"2020-01-01T00:00:00.000Z","sentAt":"2020-01-01T00:00:01.000Z"})",
                              basicAuth(kKeyOld));
  ASSERT_EQ(track.status, 200) << track.body;
  EXPECT_EQ(track.body, R"({"success":true})");
  // analytics-next: short path, text/plain, key in the body, rotated key.
  auto ident = client.request("POST", "/v1/i",
                              std::string(R"({"writeKey":")") + kKeyNew +
                                  R"(","userId":"u1","traits":{"email":"u1@example.com"},"messageId":"e2e-2"})",
                              "Content-Type: text/plain\r\n");
  ASSERT_EQ(ident.status, 200) << ident.body;
  // A gzip batch with one invalid event and one violating the tracking plan.
  std::string batch = R"({"batch":[
      {"type":"page","anonymousId":"a1","name":"Home","messageId":"e2e-3"},
      {"type":"track","anonymousId":"a1"},
      {"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":"12"},"messageId":"e2e-4"}]})";
  auto b = client.request("POST", "/v1/batch", gzip(batch), basicAuth(kKeyNew) + "Content-Encoding: gzip\r\n");
  ASSERT_EQ(b.status, 200) << b.body;
  auto report = json::parse(b.body).as_object();
  EXPECT_EQ(report.at("accepted"), 2);
  EXPECT_EQ(report.at("rejected"), 1);
  // A duplicate is acknowledged but not stored again.
  auto dup = client.request("POST", "/v1/track", R"({"userId":"u1","event":"Signed Up","messageId":"e2e-1"})",
                            basicAuth(kKeyOld));
  EXPECT_EQ(dup.status, 200);

  auto events = waitForEvents(outFile(), 4);
  ASSERT_EQ(events.size(), 4u);
  const json::object* t = findEvent(events, "messageId", "e2e-1");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->at("type"), "track");
  EXPECT_EQ(t->at("event"), "Signed Up");
  EXPECT_EQ(t->at("originalTimestamp"), "2020-01-01T00:00:00.000Z");
  EXPECT_EQ(t->at("context").at("ip"), "127.0.0.0");  // client_ip: truncate
  // Clock skew: timestamp = receivedAt - 1 s.
  auto received = sdk::parseIsoTimestamp(t->at("receivedAt").as_string());
  auto ts = sdk::parseIsoTimestamp(t->at("timestamp").as_string());
  ASSERT_TRUE(received && ts);
  EXPECT_EQ(*received - *ts, 1000);
  const json::object* i = findEvent(events, "messageId", "e2e-2");
  ASSERT_NE(i, nullptr);
  EXPECT_EQ(i->at("type"), "identify");
  EXPECT_FALSE(i->contains("writeKey"));
  const json::object* o = findEvent(events, "messageId", "e2e-4");
  ASSERT_NE(o, nullptr);
  EXPECT_TRUE(o->at("context").as_object().contains("violations"));
  EXPECT_THAT(readFile(outFile()), Not(HasSubstr(kKeyNew)));

  auto metrics = client.request("GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr(R"(junction_http_source_rejected_events_total{reason="duplicate",source="web"} 1)"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(junction_http_source_rejected_events_total{reason="invalid",source="web"} 1)"));
  EXPECT_THAT(metrics.body, Not(HasSubstr(kKeyOld)));
}

TEST_F(HttpSourceE2ETest, ErrorPathsOverTheWire) {
  HttpClient client(port_);
  auto no_key = client.request("POST", "/v1/track", R"({"userId":"u","event":"E"})");
  EXPECT_EQ(no_key.status, 401);
  EXPECT_EQ(no_key.header("content-type"), "application/json");
  EXPECT_EQ(json::parse(no_key.body).at("error"), "missing write key");
  EXPECT_EQ(client.request("POST", "/v1/track", R"({"userId":"u","event":"E"})", basicAuth("nope")).status, 401);
  auto malformed = client.request("POST", "/v1/track", "{nope", basicAuth(kKeyOld));
  EXPECT_EQ(malformed.status, 400);
  EXPECT_THAT(malformed.body, HasSubstr("invalid JSON"));
  auto no_user = client.request("POST", "/v1/track", R"({"event":"E"})", basicAuth(kKeyOld));
  EXPECT_EQ(no_user.status, 400);
  EXPECT_THAT(no_user.body, HasSubstr("userId"));
  auto no_event = client.request("POST", "/v1/t", R"({"userId":"u"})", basicAuth(kKeyOld));
  EXPECT_EQ(no_event.status, 400);
  EXPECT_THAT(no_event.body, HasSubstr("without \\\"event\\\""));
  // Over max_batch_bytes: the server refuses it before the handler.
  auto huge = client.request("POST", "/v1/batch", std::string(300 * 1024, ' '), basicAuth(kKeyOld));
  EXPECT_EQ(huge.status, 413);
  HttpClient fresh(port_);  // the 413 closed that connection
  auto pre = fresh.request("OPTIONS", "/v1/b", "",
                           "Origin: https://shop.example.com\r\nAccess-Control-Request-Method: POST\r\n");
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.header("access-control-allow-origin"), "*");
  auto settings = fresh.request("GET", std::string("/v1/projects/") + kKeyOld + "/settings");
  ASSERT_EQ(settings.status, 200);
  EXPECT_EQ(json::parse(settings.body).at("integrations").at("Segment.io").at("apiHost"),
            "127.0.0.1/v1");
  EXPECT_EQ(fresh.request("POST", "/v1/m", R"({"series":[]})").status, 200);
  EXPECT_EQ(fresh.request("GET", "/healthz").status, 200);
}

// --- @segment/analytics-node --------------------------------------------------------------------

bool haveCommand(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

TEST_F(HttpSourceE2ETest, SegmentAnalyticsNodeClient) {
  if (!haveCommand("node") || !haveCommand("npm")) {
    GTEST_SKIP() << "node/npm not found: the @segment/analytics-node end-to-end test needs Node.js";
  }
  const fs::path dir = kBinaryDir / "node_e2e";
  fs::create_directories(dir);
  if (!fs::exists(dir / "node_modules" / "@segment" / "analytics-node" / "package.json")) {
    if (!fs::exists(dir / "package.json")) {
      writeFile(dir / "package.json", R"({"name":"junction-node-e2e","private":true,"type":"module"})");
    }
    const std::string cmd = "cd '" + dir.string() +
                            "' && timeout 300 npm install --no-audit --no-fund @segment/analytics-node"
                            " > npm-install.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << readFile(dir / "npm-install.log");
  }
  fs::copy_file(fs::path(JUNCTION_SOURCE_DIR) / "tests" / "integration" / "analytics_node_e2e.mjs",
                dir / "analytics_node_e2e.mjs", fs::copy_options::overwrite_existing);
  const std::string cmd = "cd '" + dir.string() + "' && timeout 60 node analytics_node_e2e.mjs " +
                          std::to_string(port_) + " " + kKeyNew + " > node-run.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << readFile(dir / "node-run.log");

  auto events = waitForEvents(outFile(), 5);
  ASSERT_EQ(events.size(), 5u) << readFile(dir / "node-run.log");
  const json::object* track = findEvent(events, "type", "track");
  ASSERT_NE(track, nullptr);
  EXPECT_EQ(track->at("event"), "Order Completed");
  EXPECT_EQ(track->at("userId"), "node-user-1");
  EXPECT_EQ(track->at("properties").at("revenue"), 42.5);
  EXPECT_EQ(track->at("context").at("library").at("name"), "@segment/analytics-node");
  EXPECT_TRUE(track->contains("messageId"));
  EXPECT_TRUE(track->contains("receivedAt"));
  EXPECT_TRUE(track->contains("originalTimestamp"));  // the SDK sends timestamp + sentAt
  EXPECT_FALSE(track->at("context").as_object().contains("violations"));
  const json::object* identify = findEvent(events, "type", "identify");
  ASSERT_NE(identify, nullptr);
  EXPECT_EQ(identify->at("traits").at("email"), "node@example.com");
  const json::object* page = findEvent(events, "type", "page");
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page->at("name"), "Pricing");
  const json::object* alias = findEvent(events, "type", "alias");
  ASSERT_NE(alias, nullptr);
  EXPECT_EQ(alias->at("previousId"), "anon-42");
  const json::object* group = findEvent(events, "type", "group");
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->at("groupId"), "acme");
  EXPECT_EQ(group->at("traits").at("plan"), "enterprise");
}

}  // namespace
}  // namespace junction::integration
