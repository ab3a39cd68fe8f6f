// The email-platform destinations end to end: the official @segment/analytics-node client sends
// identify and track events to the real junctiond, which delivers them through the queue to
// fake Mailchimp, HubSpot and Salesforce Marketing Cloud servers and a webhook receiver at once.
// Then one vendor is down for a while: the others keep receiving, and once it is back it gets
// everything it missed — nothing lost, nothing dead-lettered.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "tests/fakes/hubspot/fake_hubspot.h"
#include "tests/fakes/mailchimp/fake_mailchimp.h"
#include "tests/fakes/sfmc/fake_sfmc.h"
#include "tests/fakes/webhook/fake_webhook.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

namespace fakes = junction::tests::fakes;
using namespace std::chrono_literals;

constexpr const char* kWriteKey = "email-e2e-key";
constexpr const char* kWebhookSecret = "whsec-email-e2e";
constexpr int kPeople = 15;

bool haveCommand(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

class EmailPlatformsE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!haveCommand("node") || !haveCommand("npm")) {
      GTEST_SKIP() << "node/npm not found: this end-to-end test sends with @segment/analytics-node";
    }
    installClient();
    mailchimp_ = std::make_unique<fakes::FakeMailchimp>();
    hubspot_ = std::make_unique<fakes::FakeHubspot>();
    fakes::FakeSfmc::Options sfmc;
    sfmc.event_definition_keys = {"APIEvent-cart-abandoned"};
    sfmc_ = std::make_unique<fakes::FakeSfmc>(sfmc);
    fakes::FakeWebhookReceiver::Options webhook;
    webhook.secrets = {kWebhookSecret};
    webhook_ = std::make_unique<fakes::FakeWebhookReceiver>(webhook);

    // Quick retries, and a budget no outage of this test exhausts.
    const std::string common =
        "    batch: { max_wait: 20ms }\n"
        "    retry: { initial_backoff: 50ms, max_backoff: 400ms, max_attempts: 100000, max_age: 1h }\n";
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_,
              "server: { listen: \"127.0.0.1:0\" }\n"
              "storage: { path: \"" + (dir_.path() / "data").string() + "\" }\n"
              "sources:\n"
              "  - id: web\n"
              "    plugin: http\n"
              "    config: { write_keys: [\"" + std::string(kWriteKey) + "\"] }\n"
              "destinations:\n"
              "  - id: mailchimp\n"
              "    plugin: mailchimp\n" + common +
              "    config: { api_key: \"" + mailchimp_->apiKey() + "\", list_id: \"" +
              mailchimp_->listId() + "\", base_url: \"" + mailchimp_->baseUrl() + "\" }\n"
              "  - id: hubspot\n"
              "    plugin: hubspot\n" + common +
              "    config:\n"
              "      access_token: \"" + hubspot_->accessToken() + "\"\n"
              "      base_url: \"" + hubspot_->baseUrl() + "\"\n"
              "      events: { \"Cart Abandoned\": pe1234_cart_abandoned }\n"
              "  - id: sfmc\n"
              "    plugin: sfmc\n" + common +
              "    config:\n"
              "      auth_url: \"" + sfmc_->baseUrl() + "\"\n"
              "      client_id: fake-sfmc-client-id\n"
              "      client_secret: fake-sfmc-client-secret\n"
              "      data_extension: Contacts\n"
              "      journeys: { \"Cart Abandoned\": APIEvent-cart-abandoned }\n"
              "  - id: webhook\n"
              "    plugin: webhook\n" + common +
              "    config: { url: \"" + webhook_->url() + "\", secret: \"" + kWebhookSecret + "\" }\n");
    daemon_ = std::make_unique<DaemonProcess>(config_);
    auto port = daemon_->start(dir_.path() / "junctiond.log");
    ASSERT_TRUE(port) << readFile(dir_.path() / "junctiond.log");
    port_ = *port;
  }

  void installClient() {
    node_dir_ = kBinaryDir / "node_e2e_email";
    fs::create_directories(node_dir_);
    if (!fs::exists(node_dir_ / "node_modules" / "@segment" / "analytics-node" / "package.json")) {
      writeFile(node_dir_ / "package.json",
                R"({"name":"junction-email-e2e","private":true,"type":"module"})");
      const std::string cmd = "cd '" + node_dir_.string() +
                              "' && timeout 300 npm install --no-audit --no-fund @segment/analytics-node"
                              " > npm-install.log 2>&1";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << readFile(node_dir_ / "npm-install.log");
    }
    fs::copy_file(fs::path(JUNCTION_SOURCE_DIR) / "tests" / "integration" / "email_platforms_e2e.mjs",
                  node_dir_ / "email_platforms_e2e.mjs", fs::copy_options::overwrite_existing);
  }

  // One wave: every person identifies (email, name) and abandons a cart.
  void sendWave(int wave) {
    const std::string cmd = "cd '" + node_dir_.string() + "' && timeout 60 node email_platforms_e2e.mjs " +
                            std::to_string(port_) + " " + kWriteKey + " " + std::to_string(wave) +
                            " " + std::to_string(kPeople) + " > node-run.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << readFile(node_dir_ / "node-run.log");
  }

  double metric(const std::string& name, const std::string& destination) {
    HttpClient client(port_);
    auto reply = client.request("GET", "/metrics");
    const std::string prefix = name + "{destination=\"" + destination + "\"}";
    auto pos = reply.body.find(prefix);
    return pos == std::string::npos ? 0 : std::atof(reply.body.c_str() + pos + prefix.size());
  }

  void expectEverythingDelivered(std::size_t people) {
    for (const char* d : {"mailchimp", "hubspot", "sfmc", "webhook"}) {
      EXPECT_TRUE(eventually([&] { return metric("junction_events_delivered_total", d) == 2.0 * people; }))
          << d << " delivered " << metric("junction_events_delivered_total", d) << "\n"
          << readFile(dir_.path() / "junctiond.log");
      EXPECT_EQ(metric("junction_events_dead_lettered_total", d), 0) << d;
    }
  }

  TempDir dir_;
  fs::path node_dir_;
  fs::path config_;
  std::unique_ptr<fakes::FakeMailchimp> mailchimp_;
  std::unique_ptr<fakes::FakeHubspot> hubspot_;
  std::unique_ptr<fakes::FakeSfmc> sfmc_;
  std::unique_ptr<fakes::FakeWebhookReceiver> webhook_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::uint16_t port_ = 0;
};

TEST_F(EmailPlatformsE2ETest, SegmentClientToAllFourAtOnceAndAnOutageLosesNothing) {
  sendWave(1);
  expectEverythingDelivered(kPeople);

  // What each vendor holds is what the people did.
  EXPECT_EQ(mailchimp_->memberCount(), static_cast<std::size_t>(kPeople));
  auto member = mailchimp_->member("w1.person3@example.com");
  ASSERT_TRUE(member.has_value());
  EXPECT_EQ(member->merge_fields.at("FNAME"), "Ada3");
  EXPECT_EQ(mailchimp_->memberEventCount(), static_cast<std::size_t>(kPeople));
  EXPECT_EQ(hubspot_->contactCount(), static_cast<std::size_t>(kPeople));
  auto contact = hubspot_->contact("w1.person3@example.com");
  ASSERT_TRUE(contact.has_value());
  EXPECT_EQ(contact->properties.at("firstname"), "Ada3");
  EXPECT_EQ(hubspot_->behavioralEvents().size(), static_cast<std::size_t>(kPeople));
  EXPECT_EQ(sfmc_->rowCount("Contacts"), static_cast<std::size_t>(kPeople));
  auto row = sfmc_->row("Contacts", "w1-user-3");
  ASSERT_TRUE(row.has_value());
  auto journeys = sfmc_->journeyEvents();
  ASSERT_EQ(journeys.size(), static_cast<std::size_t>(kPeople));
  EXPECT_EQ(journeys[0].event_definition_key, "APIEvent-cart-abandoned");
  EXPECT_EQ(webhook_->eventCount(), 2u * kPeople);
  EXPECT_TRUE(webhook_->event("w1-track-3").has_value());

  // HubSpot goes down. The next wave reaches the other three all the same.
  hubspot_->setDown(true);
  sendWave(2);
  ASSERT_TRUE(eventually([&] {
    return mailchimp_->memberCount() == 2u * kPeople && sfmc_->rowCount("Contacts") == 2u * kPeople &&
           webhook_->eventCount() == 4u * kPeople;
  })) << readFile(dir_.path() / "junctiond.log");
  EXPECT_EQ(hubspot_->contactCount(), static_cast<std::size_t>(kPeople));
  // HubSpot's deliveries fail meanwhile and wait for a retry.
  EXPECT_TRUE(eventually([&] { return metric("junction_events_retried_total", "hubspot") > 0; }));

  // Back up: it gets everything it missed, in order per person, nothing dead-lettered.
  hubspot_->setDown(false);
  ASSERT_TRUE(eventually([&] { return hubspot_->contactCount() == 2u * kPeople; }))
      << readFile(dir_.path() / "junctiond.log");
  expectEverythingDelivered(2 * kPeople);
  EXPECT_EQ(hubspot_->behavioralEvents().size(), 2u * kPeople);
  EXPECT_EQ(webhook_->duplicateCount(), 0u);
}

}  // namespace
}  // namespace junction::integration
