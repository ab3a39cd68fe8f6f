// The salesforce source's pull rate against the fake Salesforce (no API limit): RECORDS Contacts
// (default 100,000) in the fake, each changed in its own second.
//   1. Through the real junctiond: a daemon whose only source is `salesforce` (first run at start)
//      and a `file` destination; records/s is RECORDS over the run's own duration
//      (junction_sync_run_duration_seconds), every record made durable in the queue (fsync:
//      batch) with a checkpoint stored after each page.
//   2. The pull alone, in this process: SalesforceSource::pull page after page (HTTP over
//      loopback, JSON, events made), without the daemon's queue and checkpoints.
// Pages are 2,000 records (Salesforce's default query batch). The fake runs in this process and
// junctiond as a child: they share the machine's cores.
//
// Usage: salesforce_source_bench [RECORDS]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "junction/sdk/testing/fake_context.h"
#include "salesforce_source.h"
#include "tests/fakes/salesforce/fake_salesforce.h"
#include "tests/integration/sync_harness.h"

namespace {

namespace fakes = junction::tests::fakes;
namespace it = junction::integration;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kT0 = 1'767'225'600'000;

void seed(fakes::FakeSalesforce& fake, std::size_t records) {
  for (std::size_t i = 0; i < records; ++i) {
    fake.setNow(kT0 + static_cast<std::int64_t>(i) * 1000);
    fake.putRecord("Contact", {{"LastName", "L" + std::to_string(i)},
                               {"FirstName", "F" + std::to_string(i)},
                               {"Email", "p" + std::to_string(i) + "@example.com"}});
  }
}

int throughDaemon(std::size_t records) {
  fakes::FakeSalesforce fake;
  seed(fake, records);
  it::TempDir dir;
  const auto config = dir.path() / "junction.yaml";
  it::writeFile(config,
                "server: { listen: \"127.0.0.1:0\" }\n"
                "storage: { path: \"" + (dir.path() / "data").string() + "\", fsync: batch }\n"
                "profiles: { enabled: false }\n"
                "sources:\n"
                "  - id: crm\n"
                "    plugin: salesforce\n"
                "    config:\n"
                "      login_url: \"" + fake.baseUrl() + "\"\n"
                "      client_id: fake-sf-client-id\n"
                "      client_secret: fake-sf-client-secret\n"
                "      every: 1h\n"
                "destinations:\n"
                "  - id: sink\n"
                "    plugin: file\n"
                "    config: { path: \"" + (dir.path() / "out.ndjson").string() + "\" }\n");
  it::DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  if (!port) {
    std::fprintf(stderr, "junctiond did not start:\n%s\n",
                 it::readFile(dir.path() / "junctiond.log").c_str());
    return 1;
  }
  const std::string done = "junction_sync_runs_total{result=\"success\",source=\"crm\"}";
  const bool finished = it::eventually([&] { return it::metricValue(*port, done) >= 1; },
                                       std::chrono::minutes(10));
  const double got = it::metricValue(*port, "junction_sync_records_total{source=\"crm\"}");
  const double seconds =
      it::metricValue(*port, "junction_sync_run_duration_seconds_sum{source=\"crm\"}");
  daemon.terminate();
  if (!finished || got != static_cast<double>(records)) {
    std::fprintf(stderr, "the run did not finish with every record (%.0f of %zu)\n%s\n", got,
                 records, it::readFile(dir.path() / "junctiond.log").c_str());
    return 1;
  }
  std::printf("through junctiond (durable)  records %zu  run %6.2f s  %8.0f records/s\n", records,
              seconds, got / seconds);
  return 0;
}

int pullOnly(std::size_t records) {
  fakes::FakeSalesforce fake;
  seed(fake, records);
  junction::sdk::testing::FakeSourceContext ctx("crm");
  junction::plugins::salesforce::SalesforceSourceConfig config;
  config.login_url = fake.baseUrl();
  config.client_id = "fake-sf-client-id";
  config.client_secret = "fake-sf-client-secret";
  config.object = "Contact";
  config.every = std::chrono::hours(1);
  config.fields = {"Email", "FirstName", "LastName"};
  config.user_id = "Id";
  config.api_version = "62.0";
  config.timeout = std::chrono::seconds(60);
  junction::plugins::salesforce::SalesforceSource source(config, ctx);
  junction::sdk::SyncRequest request;
  std::size_t got = 0;
  const auto started = Clock::now();
  for (;;) {
    auto page = source.pull(request);
    if (!page || page->retry_after.count() > 0) {
      std::fprintf(stderr, "pull failed: %s\n", page ? "asked to wait" : page.error().message.c_str());
      return 1;
    }
    got += page->events.size();
    if (page->next_page.empty()) {
      break;
    }
    request.page = page->next_page;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("pull only (no daemon)        records %zu  %6.2f s  %8.0f records/s\n", got, seconds,
              static_cast<double>(got) / seconds);
  return got == records ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t records = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100'000;
  if (int rc = throughDaemon(records); rc != 0) {
    return rc;
  }
  return pullOnly(records);
}
