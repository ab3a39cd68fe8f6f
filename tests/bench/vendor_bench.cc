// Each email-platform destination end to end through the real junctiond, against its fake
// vendor server (no rate limit): identify events of distinct people in over POST /v1/batch,
// out through the plugin with its default batching (the plugin's delivery defaults), until the
// daemon counts every one delivered.
//
//   - requests per 1,000 identify events of 1,000 different people (batching efficiency; the
//     issue's bounds: Mailchimp <= 3, HubSpot <= 12, SFMC <= 25; OAuth token requests included);
//   - events/s delivered for EVENTS identify events (default 50,000), from the first request in
//     to the last event counted delivered.
//
// Usage: vendor_bench [EVENTS] [VENDOR...]   (vendors: mailchimp hubspot sfmc webhook)
// It runs the junctiond of the build tree it was built in (tests/bench/run builds it in Release).
// The fakes run in this process; junctiond is a child process. Everything shares the machine's
// cores, as in production a daemon would share nothing with its vendors: the figures are a lower
// bound of what the plugins can do.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "junction/sdk/crypto.h"
#include "tests/fakes/hubspot/fake_hubspot.h"
#include "tests/fakes/mailchimp/fake_mailchimp.h"
#include "tests/fakes/sfmc/fake_sfmc.h"
#include "tests/fakes/webhook/fake_webhook.h"
#include "tests/integration/daemon_harness.h"

namespace {

namespace fakes = junction::tests::fakes;
namespace sdk = junction::sdk;
using junction::integration::DaemonProcess;
using junction::integration::HttpClient;
using junction::integration::TempDir;
using junction::integration::writeFile;
using junction::integration::readFile;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kWriteKey = "bench-key";

// A fake vendor as the benchmark needs it: where the plugin points, the destination block's
// config, and how many requests the fake got.
struct Vendor {
  std::string name;
  std::function<std::string()> config;  // the `config:` block, one line of YAML flow mapping
  std::function<std::size_t()> requests;
  std::shared_ptr<void> keep_alive;
};

Vendor makeVendor(const std::string& name) {
  if (name == "webhook") {
    fakes::FakeWebhookReceiver::Options options;
    options.secrets = {"bench-secret"};
    options.record_requests = false;
    options.keep_event_json = false;
    auto fake = std::make_shared<fakes::FakeWebhookReceiver>(options);
    return {name,
            [fake] { return "{ url: \"" + fake->url() + "\", secret: bench-secret }"; },
            [fake] { return fake->requestCount(); }, fake};
  }
  if (name == "sfmc") {
    auto fake = std::make_shared<fakes::FakeSfmc>();
    return {name,
            [fake] {
              return "{ auth_url: \"" + fake->baseUrl() + "\", client_id: fake-sfmc-client-id, " +
                     "client_secret: fake-sfmc-client-secret, data_extension: Contacts }";
            },
            [fake] { return fake->requestCount(); }, fake};
  }
  if (name == "mailchimp") {
    auto fake = std::make_shared<fakes::FakeMailchimp>();
    return {name,
            [fake] {
              return "{ api_key: \"" + fake->apiKey() + "\", list_id: \"" + fake->listId() +
                     "\", base_url: \"" + fake->baseUrl() + "\" }";
            },
            [fake] { return fake->requestCount(); }, fake};
  }
  if (name == "hubspot") {
    auto fake = std::make_shared<fakes::FakeHubspot>();
    return {name,
            [fake] {
              return "{ access_token: \"" + fake->accessToken() + "\", base_url: \"" +
                     fake->baseUrl() + "\" }";
            },
            [fake] { return fake->requestCount(); }, fake};
  }
  std::fprintf(stderr, "unknown vendor %s\n", name.c_str());
  std::exit(2);
}

double metric(HttpClient& client, const std::string& name, const std::string& destination) {
  auto reply = client.request("GET", "/metrics");
  const std::string prefix = name + "{destination=\"" + destination + "\"}";
  for (std::size_t pos = reply.body.find(prefix); pos != std::string::npos;
       pos = reply.body.find(prefix, pos + 1)) {
    if (pos == 0 || reply.body[pos - 1] == '\n') {
      return std::atof(reply.body.c_str() + pos + prefix.size());
    }
  }
  return 0;
}

struct Run {
  std::size_t events = 0;
  std::size_t requests = 0;
  double seconds = 0;
  double dead = 0;
  bool complete = false;
};

Run runOnce(const std::string& name, std::size_t events) {
  Vendor vendor = makeVendor(name);
  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, "server: { listen: \"127.0.0.1:0\" }\n"
                    "storage: { path: \"" + (dir.path() / "data").string() + "\", fsync: batch }\n"
                    "log: { level: info }\n"
                    "sources:\n"
                    "  - id: web\n"
                    "    plugin: http\n"
                    "    config: { write_keys: [\"" + kWriteKey + "\"] }\n"
                    "destinations:\n"
                    "  - id: " + name + "\n"
                    "    plugin: " + name + "\n"
                    "    config: " + vendor.config() + "\n");
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  if (!port) {
    std::fprintf(stderr, "%s: junctiond did not start:\n%s\n", name.c_str(),
                 readFile(dir.path() / "junctiond.log").c_str());
    std::exit(1);
  }
  HttpClient client(*port);
  const std::string auth = "Authorization: Basic " + sdk::base64Encode(std::string(kWriteKey) + ":") + "\r\n";
  const auto started = Clock::now();
  const std::string run_tag = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  // Four senders, so that one client waiting for each batch's fsync does not set the pace.
  constexpr std::size_t kSenders = 4;
  std::vector<std::thread> senders;
  for (std::size_t t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      HttpClient sender(*port);
      for (std::size_t first = t * 100; first < events; first += kSenders * 100) {
        std::string body = "{\"batch\":[";
        for (std::size_t i = first; i < std::min(events, first + 100); ++i) {
          const std::string n = std::to_string(i);
          body += std::string(i > first ? "," : "") + R"({"type":"identify","userId":"person-)" + n +
                  R"(","messageId":")" + run_tag + "-" + n + R"(","traits":{"email":"person-)" + n +
                  R"(@example.com","first_name":"Ada","last_name":"Lovelace","phone":"+44 20 7946 0)" +
                  std::to_string(100 + i % 900) + R"(","plan":"pro"}})";
        }
        body += "]}";
        auto reply = sender.request("POST", "/v1/batch", body, auth);
        if (reply.status != 200) {
          std::fprintf(stderr, "%s: POST /v1/batch answered %d %s\n", name.c_str(), reply.status,
                       reply.body.c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& s : senders) {
    s.join();
  }
  Run run;
  run.events = events;
  const auto deadline = started + std::chrono::minutes(3);
  while (Clock::now() < deadline) {
    double delivered = metric(client, "junction_events_delivered_total", name);
    run.dead = metric(client, "junction_events_dead_lettered_total", name);
    if (delivered + run.dead >= static_cast<double>(events)) {
      run.complete = delivered >= static_cast<double>(events);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  run.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  run.requests = vendor.requests();
  if (!daemon.terminate()) {
    std::fprintf(stderr, "%s: junctiond did not stop\n", name.c_str());
  }
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t events = argc > 1 ? static_cast<std::size_t>(std::atoll(argv[1])) : 50'000;
  std::vector<std::string> vendors;
  for (int i = 2; i < argc; ++i) {
    vendors.emplace_back(argv[i]);
  }
  if (vendors.empty()) {
    vendors = {"mailchimp", "hubspot", "sfmc", "webhook"};
  }
  std::printf("%-10s %22s %14s %16s %10s\n", "vendor", "requests/1000 identify", "events", "events/s",
              "dead");
  for (const auto& name : vendors) {
    Run small = runOnce(name, 1000);
    Run big = runOnce(name, events);
    std::printf("%-10s %22zu %14zu %16.0f %10.0f%s\n", name.c_str(), small.requests, big.events,
                big.complete ? static_cast<double>(big.events) / big.seconds : 0.0, big.dead + small.dead,
                big.complete && small.complete ? "" : "  INCOMPLETE");
    std::fflush(stdout);
  }
  return 0;
}
