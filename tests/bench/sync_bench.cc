// A scheduled sync run over many changed profiles, through the real junctiond, to the Mailchimp
// destination against the fake Mailchimp (no rate limit):
//
//   1. PROFILES people (default 1,000,000) identified over POST /v1/batch (500 per request),
//      applied to profiles (the lag back to 0);
//   2. the first run (everyone: the destination's first), started with
//      POST /admin/destinations/mailchimp/sync: duration (from the request to the run recorded
//      done: every member upserted at the fake) and requests the fake received;
//   3. every person changes one trait (the same load again), then a second run: the run over
//      PROFILES changed profiles the issue asks for, read from the sync marks.
// Baseline in the same run: the same PROFILES identify events delivered in real time (a
// realtime mailchimp destination next to the scheduled one), events/s.
//
// Usage: sync_bench [PROFILES]
// It runs the junctiond of the build tree it was built in (tests/bench/run builds it in Release).
// The fake runs in this process, junctiond is a child: they share the machine's cores.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "junction/sdk/crypto.h"
#include "tests/fakes/mailchimp/fake_mailchimp.h"
#include "tests/integration/daemon_harness.h"

namespace {

namespace fakes = junction::tests::fakes;
namespace sdk = junction::sdk;
namespace json = boost::json;
using junction::integration::DaemonProcess;
using junction::integration::HttpClient;
using junction::integration::readFile;
using junction::integration::TempDir;
using junction::integration::writeFile;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kWriteKey = "bench-key";
constexpr const char* kAdmin = "bench-admin-token";

double metric(HttpClient& client, const std::string& name, const std::string& labels = "") {
  auto reply = client.request("GET", "/metrics");
  std::istringstream in(reply.body);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) == 0 && (line[name.size()] == ' ' || line[name.size()] == '{') &&
        line.find(labels) != std::string::npos) {
      sum += std::atof(line.c_str() + line.rfind(' ') + 1);
    }
  }
  return sum;
}

// Sends identify events for people 0..n-1 with `plan`, four senders of 500 per request.
void load(std::uint16_t port, std::size_t n, const std::string& plan) {
  const std::string auth =
      "Authorization: Basic " + sdk::base64Encode(std::string(kWriteKey) + ":") + "\r\n";
  constexpr std::size_t kSenders = 4;
  constexpr std::size_t kPer = 500;
  std::vector<std::thread> senders;
  for (std::size_t t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      HttpClient sender(port, std::chrono::seconds(60));
      for (std::size_t first = t * kPer; first < n; first += kSenders * kPer) {
        std::string body = "{\"batch\":[";
        for (std::size_t i = first; i < std::min(n, first + kPer); ++i) {
          const std::string id = std::to_string(i);
          body += std::string(i > first ? "," : "") + R"({"type":"identify","userId":"person-)" +
                  id + R"(","traits":{"email":"person-)" + id +
                  R"(@example.com","first_name":"Ada","last_name":"Lovelace","plan":")" + plan +
                  R"("}})";
        }
        body += "]}";
        auto reply = sender.request("POST", "/v1/batch", body, auth);
        if (reply.status != 200) {
          std::fprintf(stderr, "POST /v1/batch answered %d %s\n", reply.status, reply.body.c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& s : senders) {
    s.join();
  }
}

std::int64_t runs(HttpClient& client) {
  auto reply = client.request("GET", "/admin/status", {},
                              "Authorization: Bearer " + std::string(kAdmin) + "\r\n");
  auto status = json::parse(reply.body).as_object();
  for (const auto& d : status.at("destinations").as_array()) {
    if (d.at("id") == "mailchimp" && d.as_object().contains("sync")) {
      return d.at("sync").at("runs").as_int64();
    }
  }
  return -1;
}

struct RunFigures {
  double seconds = 0;
  std::size_t requests = 0;
  double people = 0;
};

RunFigures syncRun(HttpClient& client, fakes::FakeMailchimp& fake, std::int64_t expect_runs) {
  const std::size_t before = fake.requestCount();
  const double sent_before = metric(client, "junction_scheduled_sync_people_sent_total");
  const auto started = Clock::now();
  auto reply = client.request("POST", "/admin/destinations/mailchimp/sync", {},
                              "Authorization: Bearer " + std::string(kAdmin) + "\r\n");
  if (reply.status != 202) {
    std::fprintf(stderr, "run now answered %d %s\n", reply.status, reply.body.c_str());
    std::exit(1);
  }
  while (runs(client) < expect_runs) {
    if (Clock::now() - started > std::chrono::minutes(30)) {
      std::fprintf(stderr, "the run did not end in 30 minutes\n");
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  RunFigures f;
  f.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  f.requests = fake.requestCount() - before;
  f.people = metric(client, "junction_scheduled_sync_people_sent_total") - sent_before;
  return f;
}

void waitApplied(HttpClient& client) {
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  while (metric(client, "junction_profile_lag_bytes") > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? static_cast<std::size_t>(std::atoll(argv[1])) : 1'000'000;
  fakes::FakeMailchimp fake;
  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  const std::string mc = "{ api_key: \"" + fake.apiKey() + "\", list_id: \"" + fake.listId() +
                         "\", base_url: \"" + fake.baseUrl() + "\" }";
  writeFile(config, std::string("server: { listen: \"127.0.0.1:0\", admin_token: ") + kAdmin +
                        " }\n"
                        "storage: { path: \"" + (dir.path() / "data").string() +
                        "\", fsync: batch }\n"
                        "profiles: { cache_bytes: 1GiB }\n"
                        "sources:\n"
                        "  - id: web\n"
                        "    plugin: http\n"
                        "    config: { write_keys: [\"" + kWriteKey + "\"] }\n"
                        "destinations:\n"
                        "  - id: mailchimp\n"
                        "    plugin: mailchimp\n"
                        "    sync: { mode: scheduled, every: 24h }\n"
                        "    config: " + mc + "\n"
                        "  - id: realtime\n"
                        "    plugin: mailchimp\n"
                        "    config: " + mc + "\n");
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  if (!port) {
    std::fprintf(stderr, "junctiond did not start:\n%s\n",
                 readFile(dir.path() / "junctiond.log").c_str());
    return 1;
  }
  HttpClient client(*port, std::chrono::seconds(60));

  auto started = Clock::now();
  load(*port, n, "pro");
  const double load_s = std::chrono::duration<double>(Clock::now() - started).count();
  // The realtime destination: every identify delivered (the baseline).
  while (metric(client, "junction_events_delivered_total", "destination=\"realtime\"") +
             metric(client, "junction_events_dead_lettered_total", "destination=\"realtime\"") <
         static_cast<double>(n)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double realtime_s = std::chrono::duration<double>(Clock::now() - started).count();
  waitApplied(client);
  const double applied_s = std::chrono::duration<double>(Clock::now() - started).count();

  const RunFigures first = syncRun(client, fake, 1);
  load(*port, n, "enterprise");  // everyone changes
  while (metric(client, "junction_events_delivered_total", "destination=\"realtime\"") +
             metric(client, "junction_events_dead_lettered_total", "destination=\"realtime\"") <
         static_cast<double>(2 * n)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the run alone on the CPU
  }
  waitApplied(client);
  const RunFigures second = syncRun(client, fake, 2);
  const double dead = metric(client, "junction_events_dead_lettered_total");

  std::printf("profiles                         %zu\n", n);
  std::printf("load (POST /v1/batch)            %.1f s\n", load_s);
  std::printf("realtime delivery (baseline)     %.0f events/s (%.1f s from the first request)\n",
              static_cast<double>(n) / realtime_s, realtime_s);
  std::printf("profiles applied                 %.1f s from the first request\n", applied_s);
  std::printf("first run (everyone)             %.1f s, %.0f people, %zu requests, %.0f people/s\n",
              first.seconds, first.people, first.requests, first.people / first.seconds);
  std::printf("run over %zu changed profiles  %.1f s, %.0f people, %zu requests, %.0f people/s\n", n,
              second.seconds, second.people, second.requests, second.people / second.seconds);
  std::printf("run vs realtime delivery         %.2f x the events/s\n",
              (second.people / second.seconds) / (static_cast<double>(n) / realtime_s));
  std::printf("dead-lettered                    %.0f\n", dead);
  if (!daemon.terminate()) {
    std::fprintf(stderr, "junctiond did not stop\n");
  }
  return 0;
}
