// The webhook source in the real daemon: `plugin: webhook` under sources: next to the webhook
// destination's name, a signed shop webhook mapped to an event that reaches a file destination,
// and bad, missing and stale signatures refused with 401 before anything is queued.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <ctime>
#include <string>

#include "junction/sdk/webhook_signature.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string configYaml(const fs::path& dir) {
  return "server:\n"
         "  listen: \"127.0.0.1:0\"\n"
         "storage:\n"
         "  path: " + (dir / "data").string() + "\n"
         "sources:\n"
         "  - id: shop\n"
         "    plugin: webhook\n"
         "    config:\n"
         "      secret: \"${SHOP_SECRET:-whsec-test}\"\n"
         "      mapping:\n"
         "        event: { from: topic, default: Order Created }\n"
         "        userId: customer.id\n"
         "        properties.order_id: id\n"
         "        properties.total: { from: total_price, transform: number }\n"
         "        traits.email: customer.email\n"
         "destinations:\n"
         "  - id: out\n"
         "    plugin: file\n"
         "    batch: { max_wait: 0ms }\n"
         "    config: { path: " + (dir / "out.ndjson").string() + " }\n";
}

std::string signature(std::string_view body, std::int64_t t) {
  return "X-Junction-Signature: " + sdk::signWebhook("whsec-test", t, body) + "\r\n";
}

TEST(WebhookSourceE2eTest, SignedWebhookIsMappedAndDeliveredBadSignaturesAre401) {
  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, configYaml(dir.path()));
  auto check = runJunction("plugins webhook");
  EXPECT_THAT(check.out, HasSubstr("signature_header"));  // both kinds documented

  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "daemon.log");
  ASSERT_TRUE(port.has_value()) << readFile(dir.path() / "daemon.log");
  HttpClient client(*port);
  const std::int64_t now = std::time(nullptr);

  const std::string order =
      R"({"id":5001,"total_price":"42.50","customer":{"id":"cust-7","email":"ada@shop.test"},"line_items":[{"sku":"S-1"}]})";
  // Refused before anything is queued: missing, wrong secret, tampered body, stale timestamp.
  EXPECT_EQ(client.request("POST", "/v1/webhooks/shop", order).status, 401);
  EXPECT_EQ(client.request("POST", "/v1/webhooks/shop", order,
                           "X-Junction-Signature: " + sdk::signWebhook("wrong", now, order) + "\r\n")
                .status, 401);
  EXPECT_EQ(client.request("POST", "/v1/webhooks/shop", order + " ", signature(order, now)).status, 401);
  auto stale = client.request("POST", "/v1/webhooks/shop", order, signature(order, now - 3600));
  EXPECT_EQ(stale.status, 401);
  EXPECT_THAT(stale.body, HasSubstr("tolerance"));
  EXPECT_EQ(client.request("POST", "/v1/webhooks/other", order, signature(order, now)).status, 404);
  auto malformed = client.request("POST", "/v1/webhooks/shop", "{\"id\":", signature("{\"id\":", now));
  EXPECT_EQ(malformed.status, 400);

  auto ok = client.request("POST", "/v1/webhooks/shop", order, signature(order, now));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_THAT(ok.body, HasSubstr("\"accepted\":1"));

  const fs::path out = dir.path() / "out.ndjson";
  ASSERT_TRUE(eventually([&] { return !readFile(out).empty(); }, 10s)) << daemon.log();
  const std::string text = readFile(out);
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;  // only the signed one
  const auto event = boost::json::parse(text).as_object();
  EXPECT_EQ(event.at("type"), "track");
  EXPECT_EQ(event.at("event"), "Order Created");
  EXPECT_EQ(event.at("userId"), "cust-7");
  EXPECT_EQ(event.at("properties").at("order_id"), 5001);
  EXPECT_EQ(event.at("properties").at("total"), 42.5);
  EXPECT_EQ(event.at("properties").at("line_items").at(0).at("sku"), "S-1");
  EXPECT_EQ(event.at("traits").at("email"), "ada@shop.test");
  EXPECT_TRUE(event.contains("messageId"));
  EXPECT_THAT(daemon.log(), ::testing::Not(HasSubstr("whsec-test")));
  EXPECT_TRUE(daemon.terminate());
}

}  // namespace
}  // namespace junction::integration
