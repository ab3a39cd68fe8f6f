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

class HubspotSourceE2ETest : public SyncE2ETest {
 protected:
  void SetUp() override {
    fake_.seedContacts(kContacts, kT0, 1000);
    // Slow searches, so that a run of 30 pages is still going when the test kills the daemon.
    fake_.setDelay(40ms);
  }

  std::string configText(bool source_enabled) override {
    return "server: { listen: \"127.0.0.1:0\" }\n"
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
           "      base_url: \"" + fake_.baseUrl() + "\"\n";
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

  fakes::FakeHubspot fake_;
};

TEST_F(HubspotSourceE2ETest, ASigkillInMidRunResumesWithoutGapsAndTheCheckpointIsNeverAhead) {
  std::int64_t at_kill = 0;
  killInMidRunThenDrain(kT0 + 500'000, kT0 + (kContacts - 1) * 1000, [&](std::int64_t checkpoint) {
    std::size_t n = 0;
    for (const auto& c : fake_.contacts()) {
      n += c.last_modified_ms <= checkpoint ? 1 : 0;
    }
    return n;
  }, "hubspot-contact-", at_kill);
  if (HasFatalFailure()) {
    return;
  }

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
