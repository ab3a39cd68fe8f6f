// Privacy end to end with the real junctiond: consent per destination (both wire forms, aliases,
// remembered consent) with every other event counted by reason; PII hash/drop; suppress at
// ingest and unsuppress; delete (waiting events of the person dropped, erase() called on the
// plugin, progress in GET /v1/regulations/{id}); the audit log and `junction audit verify`,
// which fails once one byte of the log is changed.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <set>
#include <sys/wait.h>

#include "junction/sdk/crypto.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
namespace json = boost::json;

constexpr std::string_view kToken = "privacy-test-admin-token";
const std::string kAuth = "Authorization: Bearer " + std::string(kToken) + "\r\n";

std::string configYaml(const fs::path& dir) {
  const fs::path fixtures = kBinaryDir / "tests" / "fixtures";
  const fs::path out = dir / "out";
  return "server:\n"
         "  listen: \"127.0.0.1:0\"\n"
         "  admin_token: \"" + std::string(kToken) + "\"\n"
         "storage:\n"
         "  path: " + (dir / "data").string() + "\n"
         "log:\n"
         "  level: debug\n"
         "plugins:\n"
         "  paths: [\"" + (fixtures / "sources").string() + "\", \"" + (fixtures / "good").string() + "\"]\n"
         "consent:\n"
         "  aliases: { C0004: marketing, C0002: analytics }\n"
         "sources:\n"
         "  - id: web\n"
         "    plugin: test_source\n"
         "destinations:\n"
         "  - id: marketing\n"
         "    plugin: file\n"
         "    consent: [marketing]\n"
         "    hash: [properties.email]\n"
         "    drop: [context.ip]\n"
         "    batch: { max_wait: 0ms }\n"
         "    config: { path: " + (out / "marketing.ndjson").string() + " }\n"
         "  - id: analytics\n"
         "    plugin: file\n"
         "    consent: [analytics]\n"
         "    batch: { max_wait: 0ms }\n"
         "    config: { path: " + (out / "analytics.ndjson").string() + " }\n"
         "  - id: vendor\n"
         "    plugin: fixture_good\n"
         "    batch: { max_wait: 0ms }\n"
         "    config: { list_id: l1, api_key: k1, record_to: " + (out / "vendor.txt").string() + " }\n"
         "  - id: held\n"
         "    plugin: test_webhook\n"
         "    retry: { initial_backoff: 30s, max_backoff: 60s }\n"
         "    config: { url: \"http://127.0.0.1:1/unreachable\" }\n";
}

// The value of the series `name` whose labels include every `labels` pair ("k=\"v\""), or 0.
double metric(const std::string& text, const std::string& name,
              std::initializer_list<std::string> labels) {
  std::size_t pos = 0;
  while ((pos = text.find(name + "{", pos)) != std::string::npos) {
    if (pos > 0 && text[pos - 1] != '\n') {
      pos += name.size();
      continue;
    }
    std::size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    bool all = true;
    for (const auto& l : labels) {
      all = all && line.find(l) != std::string::npos;
    }
    if (all) {
      return std::strtod(line.substr(line.rfind(' ') + 1).c_str(), nullptr);
    }
    pos = end;
  }
  return 0;
}

std::set<std::string> idsIn(const fs::path& file) {
  std::vector<std::string_view> ids;
  const std::string text = readFile(file);
  collectMessageIds(text, ids);
  return {ids.begin(), ids.end()};
}

class PrivacyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    fs::create_directories(dir_.path() / "out");  // fixture_good's record_to needs it
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, configYaml(dir_.path()));
    auto port = daemon_.start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << daemon_.log();
    http_ = std::make_unique<HttpClient>(*port);
  }

  HttpReply send(const std::string& events) { return http_->request("POST", "/test/events", events); }
  std::string metrics() { return http_->request("GET", "/metrics").body; }
  HttpReply regulate(const std::string& body) {
    return http_->request("POST", "/v1/regulations", body, kAuth);
  }
  fs::path out(const std::string& name) const { return dir_.path() / "out" / name; }
  fs::path auditLog() const { return dir_.path() / "data" / "audit.log"; }

  // `junction audit verify ARGS`: exit status and output.
  std::pair<int, std::string> verify(const std::string& args) {
    const std::string cmd = (kBinaryDir / "bin" / "junction").string() + " audit verify " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string output;
    char buf[512];
    while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) {
      output += buf;
    }
    int status = p != nullptr ? ::pclose(p) : -1;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
  }

  TempDir dir_;
  fs::path config_;
  DaemonProcess daemon_{dir_.path() / "junction.yaml"};
  std::unique_ptr<HttpClient> http_;
};

TEST_F(PrivacyTest, EachDestinationGetsExactlyTheEventsItsConsentAllows) {
  // m1 Segment form; m2 RudderStack with a CMP id aliased to marketing; m3 no consent, nothing
  // remembered; m4 states analytics, m5 (same person, no consent) is routed by what m4 stated;
  // m6 empty consent; m7 RudderStack denial of marketing.
  const std::string events = R"([
    {"type":"track","event":"Bought","userId":"u1","messageId":"m1","properties":{"email":"Jo@Example.com"},
     "context":{"ip":"10.1.2.3","consent":{"categoryPreferences":{"marketing":true,"analytics":false}}}},
    {"type":"track","event":"Bought","userId":"u2","messageId":"m2",
     "context":{"consentManagement":{"allowedConsentIds":["C0004"],"deniedConsentIds":[]}}},
    {"type":"track","event":"Bought","userId":"u3","messageId":"m3"},
    {"type":"identify","userId":"u4","messageId":"m4","timestamp":"2026-01-01T00:00:00Z",
     "context":{"consent":{"categoryPreferences":{"Analytics":true}}}},
    {"type":"track","event":"Bought","userId":"u4","messageId":"m5","timestamp":"2026-01-01T00:00:01Z"},
    {"type":"track","event":"Bought","userId":"u5","messageId":"m6","context":{"consent":{"categoryPreferences":{}}}},
    {"type":"track","event":"Bought","userId":"u6","messageId":"m7",
     "context":{"consentManagement":{"allowedConsentIds":["analytics"],"deniedConsentIds":["marketing"]}}}
  ])";
  auto reply = send(events);
  ASSERT_EQ(reply.status, 200) << reply.body;

  ASSERT_TRUE(eventually([&] {
    const std::string m = metrics();
    return idsIn(out("marketing.ndjson")).size() >= 2 && idsIn(out("analytics.ndjson")).size() >= 3 &&
           metric(m, "junction_events_delivered_total", {"destination=\"vendor\""}) >= 7;
  })) << daemon_.log();
  std::this_thread::sleep_for(300ms);  // nothing more arrives

  EXPECT_EQ(idsIn(out("marketing.ndjson")), (std::set<std::string>{"m1", "m2"}));
  EXPECT_EQ(idsIn(out("analytics.ndjson")), (std::set<std::string>{"m4", "m5", "m7"}));

  const std::string m = metrics();
  auto blocked = [&](const char* destination, const char* reason) {
    return metric(m, "junction_events_consent_blocked_total",
                  {std::string("destination=\"") + destination + "\"",
                   std::string("reason=\"") + reason + "\""});
  };
  EXPECT_EQ(blocked("marketing", "consent_denied"), 1);   // m7
  EXPECT_EQ(blocked("marketing", "consent_unknown"), 4);  // m3 m4 m5 m6
  EXPECT_EQ(blocked("analytics", "consent_denied"), 1);   // m1
  EXPECT_EQ(blocked("analytics", "consent_unknown"), 3);  // m2 m3 m6
  EXPECT_EQ(metric(m, "junction_events_delivered_total", {"destination=\"marketing\""}), 2);
  EXPECT_EQ(metric(m, "junction_events_delivered_total", {"destination=\"analytics\""}), 3);

  // PII: hashed e-mail, dropped IP — for the marketing destination only.
  const std::string marketing = readFile(out("marketing.ndjson"));
  EXPECT_THAT(marketing, HasSubstr(sdk::sha256Hex("jo@example.com")));
  EXPECT_THAT(marketing, Not(HasSubstr("Jo@Example.com")));
  EXPECT_THAT(marketing, Not(HasSubstr("10.1.2.3")));

  // Decisions are logged at debug with the messageId, never the body.
  const std::string log = daemon_.log();
  EXPECT_THAT(log, HasSubstr("consent blocked"));
  EXPECT_THAT(log, HasSubstr("m7"));
  EXPECT_THAT(log, Not(HasSubstr("Jo@Example.com")));
}

TEST_F(PrivacyTest, SuppressDeleteAndTheAuditLog) {
  // Suppress: dropped at ingest, counted, never queued.
  EXPECT_EQ(http_->request("POST", "/v1/regulations", R"({"type":"suppress","userId":"s1"})").status, 401);
  auto r = regulate(R"({"type":"suppress","userId":"s1"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto reply = send(R"([{"type":"track","event":"E","userId":"s1","messageId":"sup-1"},
                        {"type":"track","event":"E","userId":"k1","messageId":"keep-1"}])");
  ASSERT_EQ(reply.status, 200) << reply.body;
  ASSERT_TRUE(eventually([&] {
    return metric(metrics(), "junction_events_delivered_total", {"destination=\"vendor\""}) >= 1;
  }));
  std::string m = metrics();
  EXPECT_EQ(metric(m, "junction_events_suppressed_total", {"source=\"web\""}), 1);
  EXPECT_EQ(metric(m, "junction_events_received_total", {"source=\"web\""}), 1);

  // Unsuppress: flows again.
  ASSERT_EQ(regulate(R"({"type":"unsuppress","userId":"s1"})").status, 200);
  ASSERT_EQ(send(R"([{"type":"track","event":"E","userId":"s1","messageId":"sup-2"}])").status, 200);
  ASSERT_TRUE(eventually([&] {
    return metric(metrics(), "junction_events_delivered_total", {"destination=\"vendor\""}) >= 2;
  }));
  EXPECT_EQ(metric(metrics(), "junction_events_suppressed_total", {"source=\"web\""}), 1);

  // Delete: the person's events waiting at `held` (its endpoint is down) are dropped; erase() is
  // called on the plugin that supports it; progress is visible.
  ASSERT_EQ(send(R"([{"type":"track","event":"E","userId":"d1","messageId":"del-1"},
                     {"type":"track","event":"E","userId":"d1","messageId":"del-2"},
                     {"type":"track","event":"E","userId":"k2","messageId":"keep-2"}])").status, 200);
  ASSERT_TRUE(eventually([&] {
    // keep-1, sup-2, del-1 and keep-2 each failed once (del-2 waits behind del-1).
    return metric(metrics(), "junction_events_retried_total", {"destination=\"held\""}) >= 4;
  })) << daemon_.log();
  // `vendor` has delivered all five (keep-1, sup-2, del-1, del-2, keep-2) before the delete:
  // none of them is the deletion's to drop there.
  ASSERT_TRUE(eventually([&] {
    return metric(metrics(), "junction_events_delivered_total", {"destination=\"vendor\""}) >= 5;
  })) << metrics();
  r = regulate(R"({"type":"delete","userId":"d1"})");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id(json::parse(r.body).as_object().at("id").as_string());
  ASSERT_TRUE(eventually([&] {
    auto got = http_->request("GET", "/v1/regulations/" + id, "", kAuth);
    return got.status == 200 && json::parse(got.body).as_object().at("status").as_string() == "done";
  })) << http_->request("GET", "/v1/regulations/" + id, "", kAuth).body;
  auto got = json::parse(http_->request("GET", "/v1/regulations/" + id, "", kAuth).body).as_object();
  EXPECT_EQ(got.at("destinations").as_object().at("vendor").as_object().at("status").as_string(), "done");
  EXPECT_FALSE(got.at("destinations").as_object().contains("marketing"));  // file cannot erase
  EXPECT_THAT(readFile(out("vendor.txt")), HasSubstr("erase d1"));
  ASSERT_TRUE(eventually([&] {
    return metric(metrics(), "junction_events_filtered_total",
                  {"destination=\"held\"", "reason=\"deleted\""}) == 2;
  })) << metrics();
  EXPECT_EQ(metric(metrics(), "junction_events_filtered_total", {"destination=\"vendor\"", "reason=\"deleted\""}), 0);
  // Events of the person after the delete flow again.
  ASSERT_EQ(send(R"([{"type":"track","event":"E","userId":"d1","messageId":"del-3"}])").status, 200);
  EXPECT_EQ(http_->request("GET", "/v1/regulations/reg_missing", "", kAuth).status, 404);

  // Regulations persist across restarts.
  ASSERT_TRUE(daemon_.terminate()) << daemon_.exitDescription() << "\n" << daemon_.log();
  auto port = daemon_.start(dir_.path() / "junctiond.2.log");
  ASSERT_TRUE(port) << daemon_.log();
  http_->setPort(*port);
  got = json::parse(http_->request("GET", "/v1/regulations/" + id, "", kAuth).body).as_object();
  EXPECT_EQ(got.at("status").as_string(), "done");
  ASSERT_EQ(regulate(R"({"type":"suppress","anonymousId":"a9"})").status, 200);
  ASSERT_TRUE(daemon_.terminate());
  port = daemon_.start(dir_.path() / "junctiond.3.log");
  ASSERT_TRUE(port) << daemon_.log();
  http_->setPort(*port);
  ASSERT_EQ(send(R"([{"type":"track","event":"E","anonymousId":"a9","messageId":"sup-3"}])").status, 200);
  EXPECT_EQ(metric(metrics(), "junction_events_suppressed_total", {"source=\"web\""}), 1);
  ASSERT_TRUE(daemon_.terminate());

  // The audit log: regulations (subjects hashed), erasure results, starts with the config digest.
  const std::string audit = readFile(auditLog());
  EXPECT_THAT(audit, HasSubstr(R"("kind":"daemon_start")"));
  EXPECT_THAT(audit, HasSubstr(sdk::sha256Hex(readFile(config_))));
  EXPECT_THAT(audit, HasSubstr(R"("kind":"regulation")"));
  EXPECT_THAT(audit, HasSubstr(R"("type":"delete")"));
  EXPECT_THAT(audit, HasSubstr(sdk::sha256Hex("d1")));
  EXPECT_THAT(audit, HasSubstr(R"("kind":"erasure")"));
  EXPECT_THAT(audit, Not(HasSubstr(kToken)));
  auto [ok_status, ok_output] = verify("--config " + config_.string());
  EXPECT_EQ(ok_status, 0) << ok_output;
  EXPECT_THAT(ok_output, HasSubstr("OK, "));

  // One byte changed: verify fails and names the line.
  std::string tampered = audit;
  const auto at = tampered.find(R"("type":"delete")");
  ASSERT_NE(at, std::string::npos);
  tampered[at + 9] = 'D';
  writeFile(auditLog(), tampered);
  auto [bad_status, bad_output] = verify(auditLog().string());
  EXPECT_EQ(bad_status, 1) << bad_output;
  const auto line = 1 + std::count(tampered.begin(), tampered.begin() + static_cast<long>(at), '\n');
  EXPECT_THAT(bad_output, HasSubstr("audit.log:" + std::to_string(line) + ":"));

  // The daemon (stopped above) checks the chain at every start: it says so at ERROR, naming
  // the line, and exposes it as a gauge, but runs.
  auto restarted = daemon_.start(dir_.path() / "junctiond.4.log");
  ASSERT_TRUE(restarted) << daemon_.log();
  http_ = std::make_unique<HttpClient>(*restarted);
  EXPECT_THAT(daemon_.log(), HasSubstr("audit log does not verify"));
  EXPECT_THAT(daemon_.log(), HasSubstr("line=" + std::to_string(line)));
  EXPECT_THAT(metrics(), HasSubstr("\njunction_audit_log_verified 0\n"));
}

}  // namespace
}  // namespace junction::integration
