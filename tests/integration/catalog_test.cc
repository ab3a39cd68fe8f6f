// The event catalog through the real daemon: event names per source and type with exact
// volumes, the properties and traits seen with their JSON types and the share of events carrying
// them (GET /admin/catalog, `junction catalog`), kept across a restart; and the draft tracking
// plan `junction catalog --tracking-plan` exports, which the http source loads as it is and
// enforces (a violating event is flagged, a conforming one is not).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "tests/integration/web_config.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

constexpr const char* kKey = "wk-catalog-1";
constexpr const char* kAdmin = "admin-catalog-2";

std::string configText(const fs::path& dir, const std::string& plan = "") {
  return webConfig(dir, kKey, kAdmin, fileDestination("all", dir, "all.ndjson"), {}, plan);
}

const json::object* eventIn(const json::object& catalog, std::string_view type, std::string_view name) {
  for (const auto& e : catalog.at("sources").at("web").at("events").as_array()) {
    if (e.at("type").as_string() == type && e.at("name").as_string() == name) {
      return &e.as_object();
    }
  }
  return nullptr;
}

const json::object* keyIn(const json::object& event, std::string_view in, std::string_view key) {
  for (const auto& k : event.at("keys").as_array()) {
    if (k.at("in").as_string() == in && k.at("key").as_string() == key) {
      return &k.as_object();
    }
  }
  return nullptr;
}

TEST(CatalogTest, NamesPropertiesTypesAndSharesAndADraftTrackingPlanTheSourceLoads) {
  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, configText(dir.path()));
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << daemon.log();
  HttpClient client(*port);
  const std::string auth = basicAuth(kKey);
  const std::string admin = bearerAuth(kAdmin);
  for (int i = 0; i < 10; ++i) {
    // revenue on every order, sku on half, coupon a string or null
    std::string props = R"({"revenue":)" + std::to_string(10 + i) +
                        (i % 2 ? R"(,"sku":"s-)" + std::to_string(i) + "\"" : std::string()) +
                        (i < 2 ? (i == 0 ? R"(,"coupon":"X1")" : R"(,"coupon":null)") : std::string()) + "}";
    ASSERT_EQ(client.request("POST", "/v1/track",
                             R"({"userId":"u)" + std::to_string(i) + R"(","event":"Order Completed","properties":)" + props + "}",
                             auth).status, 200);
  }
  ASSERT_EQ(client.request("POST", "/v1/identify", R"({"userId":"u1","traits":{"email":"a@b.c","age":41}})", auth).status,
            200);
  ASSERT_EQ(client.request("POST", "/v1/page", R"({"userId":"u1","name":"Pricing"})", auth).status, 200);

  auto r = client.request("GET", "/admin/catalog", {}, admin);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(client.request("GET", "/admin/catalog").status, 401);
  auto catalog = json::parse(r.body).as_object();
  const json::object* order = eventIn(catalog, "track", "Order Completed");
  ASSERT_NE(order, nullptr) << r.body;
  EXPECT_EQ(order->at("count").to_number<std::int64_t>(), 10);
  const json::object* revenue = keyIn(*order, "properties", "revenue");
  ASSERT_NE(revenue, nullptr);
  EXPECT_EQ(json::serialize(revenue->at("types")), R"(["number"])");
  EXPECT_DOUBLE_EQ(revenue->at("share").to_number<double>(), 1.0);
  const json::object* sku = keyIn(*order, "properties", "sku");
  ASSERT_NE(sku, nullptr);
  EXPECT_DOUBLE_EQ(sku->at("share").to_number<double>(), 0.5);
  EXPECT_EQ(json::serialize(keyIn(*order, "properties", "coupon")->at("types")), R"(["null","string"])");
  const json::object* identify = eventIn(catalog, "identify", "");
  ASSERT_NE(identify, nullptr) << r.body;
  EXPECT_EQ(json::serialize(keyIn(*identify, "traits", "age")->at("types")), R"(["number"])");
  EXPECT_NE(eventIn(catalog, "page", "Pricing"), nullptr) << r.body;

  const std::string url = " --url http://127.0.0.1:" + std::to_string(*port);
  auto table = runJunction("catalog --config " + config.string() + url);
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("Order Completed"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("properties.sku 50% string"), std::string::npos) << table.out;
  auto plan = runJunction("catalog --tracking-plan --config " + config.string() + url);
  ASSERT_EQ(plan.code, 0) << plan.out;
  EXPECT_NE(plan.out.find("required: [revenue]"), std::string::npos) << plan.out;

  // Kept across a restart.
  ASSERT_TRUE(daemon.terminate()) << daemon.exitDescription();
  port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << daemon.log();
  client.close();
  client.setPort(*port);
  auto after = json::parse(client.request("GET", "/admin/catalog", {}, admin).body).as_object();
  const json::object* kept = eventIn(after, "track", "Order Completed");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->at("count").to_number<std::int64_t>(), 10);
  EXPECT_EQ(kept->at("first_seen_ms"), order->at("first_seen_ms"));

  // The draft plan, indented under the http source's config, is a valid configuration...
  ASSERT_TRUE(daemon.terminate());
  std::string indented;
  for (std::size_t at = 0; at < plan.out.size();) {
    auto nl = plan.out.find('\n', at);
    std::string line = plan.out.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    indented += "      " + line + "\n";
    at = nl == std::string::npos ? plan.out.size() : nl + 1;
  }
  writeFile(config, configText(dir.path(), indented));
  auto check = runJunction("check " + config.string());
  ASSERT_EQ(check.code, 0) << check.out << "\n" << readFile(config);
  // ...and the source enforces it: a string revenue is flagged, a number is not.
  port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << daemon.log();
  client.close();
  client.setPort(*port);
  ASSERT_EQ(client.request("POST", "/v1/track",
                           R"({"userId":"p","event":"Order Completed","messageId":"bad","properties":{"revenue":"ten"}})",
                           auth).status, 200);
  ASSERT_EQ(client.request("POST", "/v1/track",
                           R"({"userId":"p","event":"Order Completed","messageId":"good","properties":{"revenue":10}})",
                           auth).status, 200);
  ASSERT_TRUE(eventually([&] {
    const std::string out = readFile(dir.path() / "all.ndjson");
    return out.find("\"good\"") != std::string::npos && out.find("\"bad\"") != std::string::npos;
  }));
  const std::string out = readFile(dir.path() / "all.ndjson");
  for (std::size_t at = 0; at < out.size();) {
    auto nl = out.find('\n', at);
    const std::string line = out.substr(at, nl - at);
    if (line.find("\"messageId\":\"bad\"") != std::string::npos) {
      EXPECT_NE(line.find("violations"), std::string::npos) << line;
    }
    if (line.find("\"messageId\":\"good\"") != std::string::npos) {
      EXPECT_EQ(line.find("violations"), std::string::npos) << line;
    }
    at = nl == std::string::npos ? out.size() : nl + 1;
  }
}

}  // namespace
}  // namespace junction::integration
