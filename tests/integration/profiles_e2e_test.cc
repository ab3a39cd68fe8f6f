// Profiles through the real daemon: events sent to the http source show up merged in
// GET /v1/profiles/{id} within a second of their acknowledgement; a destination with
// `from: [profiles]` receives the merged profile (coalesced, consent applied) and one without
// `from` does not; profiles survive SIGKILL with nothing counted twice; suppression hides a
// profile and delete erases it.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <boost/json.hpp>
#include <atomic>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include "junction/sdk/crypto.h"
#include "tests/integration/daemon_harness.h"
#include "tests/support/ndjson.h"

namespace junction::integration {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using junction::testing::readNdjson;
using ::testing::HasSubstr;

constexpr const char* kKey = "wk-profiles-1";
constexpr const char* kAdmin = "admin-profiles-token-77";
constexpr const char* kReader = "reader-profiles-token-42";

std::string basicAuth() {
  return "Authorization: Basic " + sdk::base64Encode(std::string(kKey) + ":") + "\r\n";
}

std::string bearer(const char* token) { return "Authorization: Bearer " + std::string(token) + "\r\n"; }

class ProfilesE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, std::string(R"(server: { listen: "127.0.0.1:0", admin_token: ")") + kAdmin +
                           R"(" }
storage: { path: ")" + (dir_.path() / "data").string() + R"(" }
profiles:
  tokens: [")" + kReader + R"("]
  change_window: 300ms
  computed:
    last_viewed: {last: 3, of: properties.sku, where: {event: "Product Viewed"}}
    orders_30d: {count: "Order Completed", within: 30d}
sources:
  - id: web
    plugin: http
    config: { write_keys: [")" + kKey + R"("] }
destinations:
  - id: raw
    plugin: file
    batch: { max_wait: 0ms }
    config: { path: ")" + (dir_.path() / "raw.ndjson").string() + R"(" }
  - id: crm
    plugin: file
    from: [profiles]
    consent: [marketing]
    batch: { max_wait: 0ms }
    config: { path: ")" + (dir_.path() / "crm.ndjson").string() + R"(" }
)");
    daemon_ = std::make_unique<DaemonProcess>(config_);
    start();
  }

  void start() {
    auto port = daemon_->start(dir_.path() / ("junctiond" + std::to_string(++starts_) + ".log"));
    ASSERT_TRUE(port) << daemon_->log();
    client_.close();
    client_.setPort(*port);
  }

  void send(const std::string& type, const std::string& body) {
    auto r = client_.request("POST", "/v1/" + type, body, basicAuth());
    ASSERT_EQ(r.status, 200) << r.body;
  }

  HttpReply get(const std::string& id, const char* token = kReader) {
    return client_.request("GET", "/v1/profiles/" + id, {}, token ? bearer(token) : "");
  }

  json::object profile(const std::string& id) {
    auto r = get(id);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? json::parse(r.body).as_object() : json::object{};
  }

  std::int64_t metric(const std::string& name) {
    auto r = client_.request("GET", "/metrics");
    std::istringstream in(r.body);
    std::string line;
    std::int64_t sum = 0;
    while (std::getline(in, line)) {
      if (line.rfind(name, 0) == 0 && (line[name.size()] == ' ' || line[name.size()] == '{')) {
        sum += std::stoll(line.substr(line.rfind(' ') + 1));
      }
    }
    return sum;
  }

  TempDir dir_;
  fs::path config_;
  std::unique_ptr<DaemonProcess> daemon_;
  HttpClient client_{0};
  int starts_ = 0;
};

TEST_F(ProfilesE2eTest, TheProfileApiShowsTheMergedPersonWithinASecondOfIngest) {
  send("page", R"({"anonymousId":"anon-7","name":"Pricing","properties":{"url":"https://x/p"},
                   "timestamp":"2026-12-01T10:00:00Z"})");
  send("track", R"({"anonymousId":"anon-7","event":"Product Viewed",
                    "properties":{"sku":"SKU-1","price":12.5},"timestamp":"2026-12-01T10:01:00Z"})");
  send("identify", R"({"anonymousId":"anon-7","userId":"user-7",
                       "traits":{"email":"Seven@Example.com","plan":"pro"},
                       "timestamp":"2026-12-01T10:02:00Z"})");
  const auto acked = std::chrono::steady_clock::now();
  // Polled as an email platform would right before a send.
  json::object p;
  ASSERT_TRUE(eventually(
      [&] {
        auto r = get("email:seven@example.com");
        if (r.status != 200) {
          return false;
        }
        p = json::parse(r.body).as_object();
        return p["events"].as_array().size() == 3;
      },
      5s));
  const auto took = std::chrono::steady_clock::now() - acked;
  EXPECT_LT(took, 1s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms from the last acknowledgement to the merged profile";
  EXPECT_EQ(p["identities"].at("userId"), (json::array{"user-7"}));
  EXPECT_EQ(p["identities"].at("anonymousId"), (json::array{"anon-7"}));
  EXPECT_EQ(p["identities"].at("email"), (json::array{"seven@example.com"}));
  EXPECT_EQ(p["traits"].at("plan"), "pro");
  EXPECT_EQ(p["trait_times"].at("plan"), "2026-12-01T10:02:00.000Z");
  EXPECT_EQ(p["first_seen"], "2026-12-01T10:00:00.000Z");
  EXPECT_EQ(p["last_seen"], "2026-12-01T10:02:00.000Z");
  EXPECT_EQ(p["computed"].at("last_viewed"), (json::array{"SKU-1"}));
  EXPECT_EQ(p["events"].as_array()[1].at("properties"),
            (json::object{{"sku", "SKU-1"}, {"price", 12.5}}));
  // The same person by each of their ids, with the admin token too.
  EXPECT_EQ(profile("user:user-7")["id"], p["id"]);
  auto by_anon = get("anon:anon-7", kAdmin);
  ASSERT_EQ(by_anon.status, 200);
  EXPECT_EQ(json::parse(by_anon.body).at("id"), p["id"]);
  EXPECT_EQ(get("email:SEVEN%40example.com").status, 200);  // percent-encoded, any case

  // Refusals.
  EXPECT_EQ(get("user:user-7", nullptr).status, 401);
  EXPECT_EQ(get("user:user-7", "wrong").status, 401);
  auto unknown = get("user:nobody");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body, R"({"success":false,"error":"not found"})");
  EXPECT_EQ(get("no-kind").status, 400);

  // Paging through the recent events.
  auto page = client_.request("GET", "/v1/profiles/user:user-7/events?limit=2", {}, bearer(kReader));
  ASSERT_EQ(page.status, 200) << page.body;
  json::object first = json::parse(page.body).as_object();
  ASSERT_EQ(first["events"].as_array().size(), 2u);
  EXPECT_EQ(first["events"].as_array()[0].at("type"), "identify");
  const std::string next(first["next_before"].as_string());
  auto rest = client_.request("GET", "/v1/profiles/user:user-7/events?limit=2&before=" + next, {},
                              bearer(kReader));
  ASSERT_EQ(rest.status, 200) << rest.body;
  json::object second = json::parse(rest.body).as_object();
  ASSERT_EQ(second["events"].as_array().size(), 1u);
  EXPECT_EQ(second["events"].as_array()[0].at("type"), "page");
  EXPECT_FALSE(second.contains("next_before"));
  EXPECT_EQ(client_.request("GET", "/v1/profiles/user:user-7/events?limit=0", {}, bearer(kReader)).status,
            400);
  EXPECT_EQ(client_.request("GET", "/v1/profiles/user:user-7/events?bogus=1", {}, bearer(kReader)).status,
            400);
}

// Repeated reads come from the answer cache (profiles.api_cache_bytes, on by default), and
// a change, a merge or a suppression shows at once all the same.
TEST_F(ProfilesE2eTest, RepeatedReadsComeFromMemoryAndFollowEveryChange) {
  const std::string hit = R"(junction_profile_api_cache_total{result="hit"})";
  send("identify", R"({"userId":"c1","traits":{"email":"c1@example.com","plan":"free"},
                       "timestamp":"2026-12-01T10:00:00Z"})");
  send("track", R"({"anonymousId":"c-phone","event":"Product Viewed",
                    "properties":{"sku":"S-9"},"timestamp":"2026-12-01T10:01:00Z"})");
  ASSERT_TRUE(eventually([&] { return get("user:c1").status == 200 && get("anon:c-phone").status == 200; }));
  const std::string phone_id(profile("anon:c-phone")["id"].as_string());
  const std::int64_t hits_before = metric(hit);
  EXPECT_EQ(profile("user:c1")["traits"].at("plan"), "free");
  EXPECT_EQ(profile("user:c1")["traits"].at("plan"), "free");
  EXPECT_EQ(profile("anon:c-phone")["id"].as_string(), phone_id);
  EXPECT_GE(metric(hit), hits_before + 2);

  // A newer trait.
  send("identify", R"({"userId":"c1","traits":{"plan":"pro"},"timestamp":"2026-12-01T10:02:00Z"})");
  ASSERT_TRUE(eventually([&] { return profile("user:c1")["traits"].at("plan") == "pro"; }, 1s));
  // The phone's visitor signs in: its identifier now answers with the merged person.
  send("identify", R"({"userId":"c1","anonymousId":"c-phone","timestamp":"2026-12-01T10:03:00Z"})");
  ASSERT_TRUE(eventually(
      [&] { return profile("anon:c-phone")["id"] == profile("user:c1")["id"]; }, 1s));
  json::object merged = profile("anon:c-phone");
  EXPECT_EQ(merged["computed"].at("last_viewed"), (json::array{"S-9"}));
  EXPECT_EQ(merged["identities"].at("anonymousId"), (json::array{"c-phone"}));
  // Suppressed: not served from memory either.
  auto r = client_.request("POST", "/v1/regulations",
                           R"({"type":"suppress","userId":"c1"})", bearer(kAdmin));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(get("anon:c-phone").status, 404);
  EXPECT_EQ(get("email:c1@example.com").status, 404);
  EXPECT_GT(metric("junction_profile_api_cache_bytes"), 0);
}

TEST_F(ProfilesE2eTest, ADestinationFromProfilesReceivesTheMergedProfile) {
  // Consent granted: the merged person is pushed (once for the burst: changes coalesce).
  send("identify", R"({"userId":"ann","traits":{"email":"ann@example.com","plan":"free"},
                       "context":{"consent":{"categoryPreferences":{"marketing":true}}}})");
  send("track", R"({"userId":"ann","event":"Order Completed","properties":{"revenue":5}})");
  send("identify", R"({"userId":"ann","traits":{"plan":"pro"}})");
  // No consent stated: not pushed to a destination that needs marketing.
  send("identify", R"({"userId":"bob","traits":{"plan":"free"}})");

  const fs::path crm = dir_.path() / "crm.ndjson";
  ASSERT_TRUE(eventually([&] { return readNdjson(crm).size() >= 1; }, 10s)) << daemon_->log();
  std::this_thread::sleep_for(800ms);  // a second announcement would come by now
  auto pushed = readNdjson(crm);
  ASSERT_EQ(pushed.size(), 1u);
  const json::object& ann = pushed[0];
  EXPECT_EQ(ann.at("type"), "identify");
  EXPECT_EQ(ann.at("userId"), "ann");
  EXPECT_EQ(ann.at("traits").at("plan"), "pro");
  EXPECT_EQ(ann.at("traits").at("email"), "ann@example.com");
  EXPECT_EQ(ann.at("traits").at("orders_30d"), 1);
  EXPECT_EQ(ann.at("context").at("junction").at("profile_id"), profile("user:ann")["id"]);
  EXPECT_EQ(metric("junction_events_consent_blocked_total"), 1) << "bob, at crm";

  // The destination without `from` got the raw events only, never the profile changes.
  ASSERT_TRUE(eventually([&] { return readNdjson(dir_.path() / "raw.ndjson").size() == 4; }));
  std::this_thread::sleep_for(300ms);
  for (const auto& e : readNdjson(dir_.path() / "raw.ndjson")) {
    EXPECT_NE(e.at("messageId").as_string().subview().substr(0, 8), "profile-") << e;
  }
  EXPECT_EQ(readNdjson(dir_.path() / "raw.ndjson").size(), 4u);

  // A later change is pushed again.
  send("identify", R"({"userId":"ann","traits":{"plan":"team"}})");
  ASSERT_TRUE(eventually([&] { return readNdjson(crm).size() == 2; }, 10s));
  EXPECT_EQ(readNdjson(crm)[1].at("traits").at("plan"), "team");
}

TEST_F(ProfilesE2eTest, WithoutADestinationFromProfilesNoProfileChangeEventIsMade) {
  // The same configuration without the `from: [profiles]` destination.
  ASSERT_TRUE(daemon_->terminate());
  const std::string yaml = readFile(config_);
  writeFile(config_, yaml.substr(0, yaml.find("  - id: crm")));
  start();
  EXPECT_THAT(daemon_->log(), HasSubstr("profile-change events are not made"));

  send("identify", R"({"userId":"cy","traits":{"email":"cy@example.com","plan":"pro"}})");
  send("track", R"({"userId":"cy","event":"Order Completed"})");
  ASSERT_TRUE(eventually([&] {
    auto r = get("user:cy");
    return r.status == 200 && json::parse(r.body).at("computed").at("orders_30d") == 1;
  }));
  EXPECT_EQ(profile("user:cy")["traits"].at("plan"), "pro");
  std::this_thread::sleep_for(700ms);  // change_window 300ms: an announcement would be out by now
  EXPECT_EQ(metric("junction_profile_change_events_total"), 0);
  EXPECT_EQ(metric(R"(junction_events_received_total{source="profiles"})"), 0);
  EXPECT_EQ(metric(R"(junction_events_received_total{source="web"})"), 2);
  ASSERT_TRUE(eventually([&] { return readNdjson(dir_.path() / "raw.ndjson").size() == 2; }));
  EXPECT_EQ(metric(R"(junction_events_filtered_total{destination="raw",reason="source"})"), 0);
}

TEST_F(ProfilesE2eTest, AnApplierStarvedOfCpuIsLiftedAndCatchesUp) {
  // Both cores kept busy at normal priority (as by a neighbour process): the applier, at
  // SCHED_IDLE, would get ~0.3 % of a core and need minutes for this batch; its watchdog lifts
  // it for a batch at a time, so it catches up while the load lasts.
  constexpr int kPeople = 3000;
  std::string body = R"({"batch":[)";
  for (int i = 0; i < kPeople; ++i) {
    body += (i ? "," : "") + std::string(R"({"type":"track","event":"Product Viewed","userId":"s)") +
            std::to_string(i) + R"(","properties":{"sku":"SKU-)" + std::to_string(i) + R"("}})";
  }
  body += "]}";
  std::atomic<bool> stop{false};
  std::vector<std::thread> hogs;
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < cores; ++i) {
    hogs.emplace_back([&] {
      volatile std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        n = n + 1;
      }
    });
  }
  auto r = client_.request("POST", "/v1/batch", body, basicAuth());
  // Everyone's profile, the first and the last of the batch included.
  const bool applied = r.status == 200 && eventually([&] {
    return metric("junction_profile_events_applied_total") >= kPeople &&
           get("user:s0").status == 200 && get("user:s" + std::to_string(kPeople - 1)).status == 200;
  }, 30s);
  stop = true;
  for (auto& t : hogs) {
    t.join();
  }
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(applied) << metric("junction_profile_events_applied_total") << " of " << kPeople
                       << " applied";
  if (::geteuid() == 0) {  // else it runs at nice 19, never idle, and needs no lift
    EXPECT_GE(metric("junction_profile_applier_boosts_total"), 1);
  }
  EXPECT_EQ(profile("user:s42")["computed"].at("last_viewed"), (json::array{"SKU-42"}));
}

TEST_F(ProfilesE2eTest, ProfilesSurviveSigkillWithNothingCountedTwice) {
  constexpr int kEvents = 300;
  for (int i = 0; i < kEvents; ++i) {
    send("track", R"({"userId":"u)" + std::to_string(i % 10) +
                      R"(","event":"Clicked","properties":{"n":)" + std::to_string(i) + "}}");
  }
  // Killed while applying (or just after): what was acknowledged is applied exactly once.
  daemon_->kill();
  start();
  for (int i = 0; i < 10; ++i) {
    send("track", R"({"userId":"u)" + std::to_string(i) + R"(","event":"Clicked"})");
  }
  ASSERT_TRUE(eventually([&] {
    for (int u = 0; u < 10; ++u) {
      auto r = get("user:u" + std::to_string(u));
      if (r.status != 200 ||
          json::parse(r.body).at("counters").at("Clicked").as_int64() != kEvents / 10 + 1) {
        return false;
      }
    }
    return true;
  }, 15s));
  for (int u = 0; u < 10; ++u) {
    EXPECT_EQ(profile("user:u" + std::to_string(u))["counters"].at("Clicked"), kEvents / 10 + 1);
  }
  // And after a clean restart too.
  ASSERT_TRUE(daemon_->terminate());
  start();
  EXPECT_EQ(profile("user:u3")["counters"].at("Clicked"), kEvents / 10 + 1);
}

TEST_F(ProfilesE2eTest, SuppressionHidesAProfileAndDeleteErasesIt) {
  send("identify", R"({"userId":"gone","anonymousId":"gone-anon","traits":{"email":"gone@example.com"}})");
  send("identify", R"({"userId":"quiet","traits":{"email":"quiet@example.com"}})");
  ASSERT_TRUE(eventually([&] { return get("user:gone").status == 200 && get("user:quiet").status == 200; }));

  auto reg = [&](const std::string& body) {
    auto r = client_.request("POST", "/v1/regulations", body, bearer(kAdmin));
    ASSERT_EQ(r.status, 200) << r.body;
  };
  reg(R"({"type":"suppress","email":"quiet@example.com"})");
  EXPECT_EQ(get("user:quiet").status, 404);
  reg(R"({"type":"unsuppress","email":"quiet@example.com"})");
  EXPECT_EQ(get("user:quiet").status, 200);

  reg(R"({"type":"delete","userId":"gone"})");
  EXPECT_EQ(get("user:gone").status, 404);
  EXPECT_EQ(get("anon:gone-anon").status, 404);
  EXPECT_EQ(get("email:gone@example.com").status, 404);
  // Not brought back by a restart (events received before the delete are never applied again).
  ASSERT_TRUE(daemon_->terminate());
  start();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(get("anon:gone-anon").status, 404);
  // A person who comes back after the delete starts a new profile.
  send("track", R"({"userId":"gone","event":"Returned"})");
  ASSERT_TRUE(eventually([&] { return get("user:gone").status == 200; }));
  auto back = profile("user:gone");
  EXPECT_EQ(back["events"].as_array().size(), 1u);
  EXPECT_EQ(back["identities"].at("anonymousId"), json::array{});
}

// A damaged or lost profiles.db stops the daemon with the file and the recovery command named;
// `junction recover profiles` keeps what is readable and rebuilds the rest from the queue.
TEST_F(ProfilesE2eTest, ADamagedOrLostStoreIsRefusedThenRecovered) {
  constexpr int kPeople = 300;
  for (int i = 0; i < kPeople; ++i) {
    send("identify", R"({"userId":"p)" + std::to_string(i) +
                         R"(","traits":{"note":")" + std::string(200, 'x') + R"("}})");
  }
  ASSERT_TRUE(eventually([&] { return get("user:p" + std::to_string(kPeople - 1)).status == 200; }));
  ASSERT_TRUE(daemon_->terminate());
  const fs::path db = dir_.path() / "data" / "profiles";  // the embedded store (RocksDB)

  // 1. Lost: refused, then rebuilt from the queue (which still holds every event).
  fs::remove_all(db);
  auto port = daemon_->start(dir_.path() / "refused1.log");
  ASSERT_FALSE(port);
  EXPECT_THAT(readFile(dir_.path() / "refused1.log"), HasSubstr(db.string()));
  EXPECT_THAT(readFile(dir_.path() / "refused1.log"),
              HasSubstr("junction recover profiles --config FILE"));
  auto recovered = runJunction("recover profiles --config " + config_.string());
  ASSERT_EQ(recovered.code, 0) << recovered.out;
  EXPECT_THAT(recovered.out, HasSubstr("was missing"));
  start();
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < kPeople; i += 37) {
      if (get("user:p" + std::to_string(i)).status != 200) {
        return false;
      }
    }
    return true;
  }));
  EXPECT_EQ(profile("user:p5")["counters"].at("identify"), 1);  // applied once
  auto again = runJunction("recover profiles --config " + config_.string());
  EXPECT_NE(again.code, 0) << "refused beside a running daemon: " << again.out;

  // 2. Corrupted pages: refused, then every readable row kept, the rest rebuilt.
  ASSERT_TRUE(daemon_->terminate());
  {
    // The largest data file (a table file, or the write-ahead log), damaged in its middle.
    fs::path largest;
    for (const auto& entry : fs::directory_iterator(db)) {
      const std::string ext = entry.path().extension().string();
      if ((ext == ".sst" || ext == ".log") &&
          (largest.empty() || entry.file_size() > fs::file_size(largest))) {
        largest = entry.path();
      }
    }
    ASSERT_FALSE(largest.empty());
    std::fstream f(largest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(largest) / 2));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  port = daemon_->start(dir_.path() / "refused2.log");
  ASSERT_FALSE(port);
  EXPECT_THAT(readFile(dir_.path() / "refused2.log"), HasSubstr("is damaged"));
  recovered = runJunction("recover profiles --config " + config_.string());
  ASSERT_EQ(recovered.code, 0) << recovered.out;
  EXPECT_THAT(recovered.out, HasSubstr("copied"));
  EXPECT_THAT(readFile(dir_.path() / "data" / "audit.log"), HasSubstr("profiles_recovered"));
  start();
  send("track", R"({"userId":"p1","event":"After"})");
  ASSERT_TRUE(eventually([&] {
    auto r = get("user:p1");
    return r.status == 200 && json::parse(r.body).at("counters").as_object().contains("After");
  }));
  int found = 0;
  for (int i = 0; i < kPeople; ++i) {
    found += get("user:p" + std::to_string(i)).status == 200 ? 1 : 0;
  }
  EXPECT_GT(found, kPeople / 2) << "most profiles are salvaged from the damaged file";
}

}  // namespace
}  // namespace junction::integration
