// The hubspot source's pull rate through the real junctiond, against the fake HubSpot (no rate
// limit): CONTACTS contacts (default 100,000) in the fake, a daemon whose only source is
// `hubspot` (first run at start), and the time until that run has made every contact durable in
// the queue (fsync: batch; a checkpoint stored after each page). Records/s is CONTACTS over the
// run's own duration (junction_sync_run_duration_seconds); wall time from the daemon's start to
// the run's end is printed too.
//
// Usage: [HUBSPOT_BENCH_FSYNC=batch|always|never] hubspot_source_bench [CONTACTS] [PAGE_SIZE...]
//        (page sizes default: 100 200)
// It runs the junctiond of the build tree it was built in (tests/bench/run builds it in Release).
// The fake runs in this process, junctiond as a child: they share the machine's cores. HubSpot
// itself allows 5 search requests a second, so a real account pulls at most 500 (limit 100) or
// 1,000 (limit 200) contacts a second: this figure says how far below that ceiling the source's
// own cost is.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "hubspot_source.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/fakes/hubspot/fake_hubspot.h"
#include "tests/integration/daemon_harness.h"

namespace {

namespace fakes = junction::tests::fakes;
using junction::integration::DaemonProcess;
using junction::integration::HttpClient;
using junction::integration::readFile;
using junction::integration::TempDir;
using junction::integration::writeFile;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kT0 = 1'767'225'600'000;

double metric(const std::string& text, const std::string& series) {
  const auto pos = text.find(series + " ");
  return pos == std::string::npos ? -1 : std::atof(text.c_str() + pos + series.size());
}

// storage.fsync of the daemon: HUBSPOT_BENCH_FSYNC (default batch).
std::string fsyncPolicy() {
  const char* v = std::getenv("HUBSPOT_BENCH_FSYNC");
  return v != nullptr && *v != '\0' ? v : "batch";
}

int runOnce(std::size_t contacts, int page_size) {
  fakes::FakeHubspot fake;
  fake.seedContacts(contacts, kT0, 7);
  TempDir dir;
  const auto config = dir.path() / "junction.yaml";
  writeFile(config,
            "server: { listen: \"127.0.0.1:0\" }\n"
            "storage: { path: \"" + (dir.path() / "data").string() + "\", fsync: " + fsyncPolicy() +
                " }\n"
            "profiles: { enabled: false }\n"
            "sources:\n"
            "  - id: crm\n"
            "    plugin: hubspot\n"
            "    config:\n"
            "      access_token: \"" + fake.accessToken() + "\"\n"
            "      base_url: \"" + fake.baseUrl() + "\"\n"
            "      every: 1h\n"
            "      page_size: " + std::to_string(page_size) + "\n"
            "destinations:\n"
            "  - id: sink\n"
            "    plugin: file\n"
            "    config: { path: \"" + (dir.path() / "out.ndjson").string() + "\" }\n");
  DaemonProcess daemon(config);
  const auto started = Clock::now();
  auto port = daemon.start(dir.path() / "junctiond.log");
  if (!port) {
    std::fprintf(stderr, "junctiond did not start:\n%s\n", readFile(dir.path() / "junctiond.log").c_str());
    return 1;
  }
  HttpClient client(*port);
  const std::string done = "junction_sync_runs_total{result=\"success\",source=\"crm\"}";
  const std::string failed = "junction_sync_runs_total{result=\"error\",source=\"crm\"}";
  std::string text;
  const auto deadline = Clock::now() + std::chrono::minutes(10);
  while (Clock::now() < deadline) {
    text = client.request("GET", "/metrics").body;
    if (metric(text, done) >= 1 || metric(text, failed) >= 1) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  const double records = metric(text, "junction_sync_records_total{source=\"crm\"}");
  const double pages = metric(text, "junction_sync_pages_total{source=\"crm\"}");
  const double seconds = metric(text, "junction_sync_run_duration_seconds_sum{source=\"crm\"}");
  daemon.terminate();
  if (metric(text, done) < 1 || records != static_cast<double>(contacts)) {
    std::fprintf(stderr, "the run did not finish with every contact (records %.0f of %zu)\n%s\n",
                 records, contacts, readFile(dir.path() / "junctiond.log").c_str());
    return 1;
  }
  std::printf("fsync %-6s contacts %zu  page_size %3d  pages %6.0f  searches %6zu  run %6.2f s  "
              "%8.0f records/s  (wall from daemon start %6.2f s)\n",
              fsyncPolicy().c_str(), contacts, page_size, pages, fake.searchCount(), seconds, records / seconds, wall);
  return 0;
}

// The source's pull alone, in this process: HubspotSource::pull page after page against the fake
// (HTTP over loopback, parsing, events made), without the daemon's queue and checkpoints.
int pullOnly(std::size_t contacts, int page_size) {
  fakes::FakeHubspot fake;
  fake.seedContacts(contacts, kT0, 7);
  junction::sdk::testing::FakeSourceContext ctx("crm");
  junction::plugins::hubspot::HubspotSourceConfig config;
  config.access_token = fake.accessToken();
  config.base_url = fake.baseUrl();
  config.every = std::chrono::hours(1);
  config.properties = {"email", "firstname", "lastname"};
  config.user_id = "id";
  config.page_size = page_size;
  config.timeout = std::chrono::seconds(30);
  junction::plugins::hubspot::HubspotSource source(config, ctx);
  junction::sdk::SyncRequest request;
  std::size_t records = 0;
  const auto started = Clock::now();
  for (;;) {
    auto page = source.pull(request);
    if (!page || page->retry_after.count() > 0) {
      std::fprintf(stderr, "pull failed\n");
      return 1;
    }
    records += page->events.size();
    if (page->next_page.empty()) {
      break;
    }
    request.page = page->next_page;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("pull only (no daemon)   page_size %3d  records %zu  %6.2f s  %8.0f records/s\n",
              page_size, records, seconds, static_cast<double>(records) / seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t contacts = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100'000;
  std::vector<int> page_sizes;
  for (int i = 2; i < argc; ++i) {
    page_sizes.push_back(std::atoi(argv[i]));
  }
  if (page_sizes.empty()) {
    page_sizes = {100, 200};
  }
  for (int page_size : page_sizes) {
    if (int rc = runOnce(contacts, page_size); rc != 0) {
      return rc;
    }
  }
  for (int page_size : page_sizes) {
    if (int rc = pullOnly(contacts, page_size); rc != 0) {
      return rc;
    }
  }
  return 0;
}
