// The hubspot source in the real daemon against the fake HubSpot: a first full sync, incremental
// ones over changing data, a SIGKILL in mid-run that resumes without gaps, and a checkpoint that
// is never ahead of the events durable in the queue. Events are read back from a `file`
// destination (NDJSON); each identify's messageId names its contact and lastmodifieddate.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "tests/fakes/hubspot/fake_hubspot.h"
#include "tests/integration/daemon_harness.h"
#include "tests/integration/sync_harness.h"

namespace junction::integration {
namespace {

namespace fakes = junction::tests::fakes;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::size_t kContacts = 3000;

class HubspotSourceE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.seedContacts(kContacts, kT0, 1000);
    // Slow searches, so that a run of 30 pages is still going when the test kills the daemon.
    fake_.setDelay(40ms);
  }

  void writeConfig(bool source_enabled) {
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_,
              "server: { listen: \"127.0.0.1:0\" }\n"
              "storage: { path: \"" + (dir_.path() / "data").string() + "\" }\n"
              "sources:\n"
              "  - id: crm\n"
              "    plugin: hubspot\n"
              "    enabled: " + std::string(source_enabled ? "true" : "false") + "\n"
              "    config:\n"
              "      access_token: \"" + fake_.accessToken() + "\"\n"
              "      base_url: \"" + fake_.baseUrl() + "\"\n"
              "      every: 1s\n"
              "      properties: [email, firstname, lastname]\n"
              "destinations:\n"
              "  - id: archive\n"
              "    plugin: file\n"
              "    batch: { max_wait: 20ms }\n"
              "    config: { path: \"" + out_.string() + "\" }\n"
              // Loop protection: what the hubspot source pulled is not upserted back.
              "  - id: crm_back\n"
              "    plugin: hubspot\n"
              "    config:\n"
              "      access_token: \"" + fake_.accessToken() + "\"\n"
              "      base_url: \"" + fake_.baseUrl() + "\"\n");
  }

  std::uint16_t start(bool source_enabled, const std::string& log) {
    writeConfig(source_enabled);
    daemon_ = std::make_unique<DaemonProcess>(config_);
    auto port = daemon_->start(dir_.path() / log);
    EXPECT_TRUE(port) << readFile(dir_.path() / log);
    return port.value_or(0);
  }

  std::optional<std::int64_t> checkpoint() {
    return storedCheckpoint(dir_.path() / "data", "crm");
  }

  // Every contact's current version is in the file.
  std::vector<std::string> missing() {
    const auto got = deliveredVersions(out_, "hubspot-contact-");
    std::vector<std::string> out;
    for (const auto& c : fake_.contacts()) {
      if (!got.contains({c.id, c.last_modified_ms})) {
        out.push_back(c.id + "@" + std::to_string(c.last_modified_ms));
      }
    }
    return out;
  }

  TempDir dir_;
  fs::path config_;
  fs::path out_ = dir_.path() / "out" / "events.ndjson";
  fakes::FakeHubspot fake_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(HubspotSourceE2ETest, ASigkillInMidRunResumesWithoutGapsAndTheCheckpointIsNeverAhead) {
  start(true, "run1.log");
  // Some pages committed, the run not finished: kill -9.
  ASSERT_TRUE(eventually([&] { return checkpoint().value_or(0) >= kT0 + 500'000; }, 30s))
      << daemon_->log();
  daemon_->kill();
  const auto at_kill = checkpoint();
  ASSERT_TRUE(at_kill);
  ASSERT_LT(*at_kill, kT0 + (kContacts - 1) * 1000) << "the run finished before the kill";

  // The source off: the daemon only drains its queue. Every contact at or before the checkpoint
  // must have been durable in the queue when the checkpoint was written.
  const auto port = start(false, "drain.log");
  ASSERT_NE(port, 0);
  std::size_t at_or_before = 0;
  for (const auto& c : fake_.contacts()) {
    at_or_before += c.last_modified_ms <= *at_kill ? 1 : 0;
  }
  ASSERT_TRUE(eventually([&] {
    const auto got = deliveredVersions(out_, "hubspot-contact-");
    return std::count_if(got.begin(), got.end(), [&](const auto& p) { return p.second <= *at_kill; }) >=
           static_cast<long>(at_or_before);
  }, 30s)) << "events up to the checkpoint are missing from the queue";
  daemon_->terminate();
  EXPECT_EQ(checkpoint(), at_kill);

  // Contacts change while the daemon is down; then the source resumes from the checkpoint.
  fake_.setDelay(0ms);
  fake_.putContact("contact5@example.com", json::object{{"lastname", "Early"}}, kT0 + 9'000'000);
  fake_.putContact("contact2999@example.com", json::object{{"lastname", "Late"}}, kT0 + 9'001'000);
  const auto port2 = start(true, "run2.log");
  ASSERT_NE(port2, 0);
  ASSERT_TRUE(eventually([&] { return missing().empty(); }, 60s))
      << missing().size() << " contacts missing, first " << missing().front() << "\n"
      << daemon_->log();
  EXPECT_TRUE(eventually([&] { return checkpoint() == kT0 + 9'001'000; }));

  // Incremental: a change is picked up by the next run (every 1s), and only what changed is read.
  const auto searches = fake_.searchCount();
  fake_.putContact("new@example.com", json::object{{"firstname", "New"}}, kT0 + 9'100'000);
  ASSERT_TRUE(eventually([&] { return missing().empty(); }, 30s)) << daemon_->log();
  EXPECT_LT(fake_.searchCount() - searches, 20u);
  EXPECT_GE(metricValue(port2, "junction_sync_runs_total{result=\"success\",source=\"crm\"}"), 1.0);
  EXPECT_GE(metricValue(port2, "junction_events_filtered_total{destination=\"crm_back\",reason=\"loop\"}"),
            3.0);
  for (const auto& r : fake_.requests()) {
    EXPECT_EQ(r.path, "/crm/v3/objects/contacts/search") << "sent back to HubSpot: " << r.body;
  }
  EXPECT_TRUE(daemon_->terminate()) << daemon_->exitDescription();
  EXPECT_THAT(readFile(dir_.path() / "run2.log"), ::testing::HasSubstr("sync run finished"));
  EXPECT_THAT(readFile(dir_.path() / "run2.log"),
              ::testing::Not(::testing::HasSubstr(fake_.accessToken())));
}

}  // namespace
}  // namespace junction::integration
