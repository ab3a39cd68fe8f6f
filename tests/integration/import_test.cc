// `junction import` against the real daemon: rejected lines reported by line number, clear
// errors (missing file, wrong format, unknown source), CSV with a column mapping, an import
// SIGKILLed mid-way resumed without duplicates or gaps, and (label slow) a 1 million-line file
// with progress output.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <string>

#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string configYaml(const fs::path& dir, bool with_destination) {
  std::string yaml = "server:\n"
                     "  listen: \"127.0.0.1:0\"\n"
                     "  admin_token: import-admin\n"
                     "storage:\n"
                     "  path: " + (dir / "data").string() + "\n"
                     "sources:\n"
                     "  - id: web\n"
                     "    plugin: http\n"
                     "    config: { write_keys: [\"k\"] }\n";
  if (with_destination) {
    yaml += "destinations:\n"
            "  - id: out\n"
            "    plugin: file\n"
            "    batch: { max_wait: 0ms }\n"
            "    config: { path: " + (dir / "out.ndjson").string() + " }\n";
  }
  return yaml;
}

// The daemon on port 0: the CLI finds it through a copy of the config with the real port.
struct Hub {
  explicit Hub(bool with_destination = true) : daemon(dir.path() / "junction.yaml") {
    writeFile(dir.path() / "junction.yaml", configYaml(dir.path(), with_destination));
    port = daemon.start(dir.path() / "daemon.log");
    std::string cli = configYaml(dir.path(), with_destination);
    cli.replace(cli.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(port.value_or(0)));
    writeFile(dir.path() / "cli.yaml", cli);
  }
  std::string import(const std::string& args) const {
    return "import --config " + (dir.path() / "cli.yaml").string() + " " + args;
  }
  TempDir dir;
  DaemonProcess daemon;
  std::optional<std::uint16_t> port;
};

std::string eventLine(std::size_t i) {
  return R"({"type":"track","userId":"user-)" + std::to_string(i % 1000) +
         R"(","event":"Product Viewed","messageId":"m-)" + std::to_string(i) +
         R"(","timestamp":"2026-11-28T15:11:01.123Z","properties":{"i":)" + std::to_string(i) +
         R"(,"price":19.99}})";
}

void writeEvents(const fs::path& file, std::size_t n) {
  std::string text;
  text.reserve(n * 170);
  for (std::size_t i = 1; i <= n; ++i) {
    text += eventLine(i);
    text += '\n';
  }
  writeFile(file, text);
}

// messageId -> how many times the file destination wrote it.
std::map<std::string, int> delivered(const fs::path& out) {
  std::map<std::string, int> seen;
  std::istringstream in(readFile(out));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) {
      ++seen[std::string(boost::json::parse(line).at("messageId").as_string())];
    }
  }
  return seen;
}

std::size_t lineCount(const fs::path& file) {
  const std::string text = readFile(file);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(ImportTest, BadLinesAreReportedByLineNumberAndTheRestArrives) {
  Hub hub;
  ASSERT_TRUE(hub.port) << hub.daemon.log();
  const fs::path file = hub.dir.path() / "events.ndjson";
  writeFile(file, eventLine(1) + "\n" + eventLine(2) + "\n" +
                      R"({"type":"track","userId":"u"})" "\n" +            // line 3: no event
                      eventLine(4) + "\n\n" +                               // line 5: blank
                      "{not json\n" +                                       // line 6
                      eventLine(7) + "\n" +
                      R"({"type":"track","event":"No One"})" "\n" +         // line 8: no id
                      eventLine(9) + "\n");
  auto run = runJunction(hub.import("--source web " + file.string()));
  EXPECT_EQ(run.code, 3) << run.out;
  EXPECT_THAT(run.out, HasSubstr("line 3: rejected: track event without \"event\""));
  EXPECT_THAT(run.out, HasSubstr("line 6: rejected: invalid JSON"));
  EXPECT_THAT(run.out, HasSubstr("line 8: rejected:"));
  EXPECT_THAT(run.out, ::testing::Not(HasSubstr("line 5:")));
  EXPECT_THAT(run.out, HasSubstr("9 lines, 5 accepted, 3 rejected"));
  ASSERT_TRUE(eventually([&] { return lineCount(hub.dir.path() / "out.ndjson") == 5; }, 10s));
  const auto seen = delivered(hub.dir.path() / "out.ndjson");
  EXPECT_EQ(seen.size(), 5u);
  for (const char* id : {"m-1", "m-2", "m-4", "m-7", "m-9"}) {
    EXPECT_EQ(seen.count(id), 1u) << id;
  }

  // Once complete, the same file is not imported again by accident.
  auto again = runJunction(hub.import("--source web " + file.string()));
  EXPECT_EQ(again.code, 1);
  EXPECT_THAT(again.out, HasSubstr("--resume"));
  EXPECT_THAT(again.out, HasSubstr("--restart"));
}

TEST(ImportTest, ClearErrorsForAMissingFileAWrongFormatAndAnUnknownSource) {
  Hub hub;
  ASSERT_TRUE(hub.port) << hub.daemon.log();
  const fs::path file = hub.dir.path() / "events.ndjson";
  writeEvents(file, 3);
  auto missing = runJunction(hub.import("--source web " + (hub.dir.path() / "nope.ndjson").string()));
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.out, HasSubstr("nope.ndjson: no such file"));
  auto unknown = runJunction(hub.import("--source wbe " + file.string()));
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.out, HasSubstr("no source 'wbe'"));
  EXPECT_THAT(unknown.out, HasSubstr("did you mean 'web'"));
  auto as_csv = runJunction(hub.import("--source web --format csv " + file.string()));
  EXPECT_EQ(as_csv.code, 1);
  EXPECT_THAT(as_csv.out, HasSubstr("does not look like CSV"));
  const fs::path csv = hub.dir.path() / "people.csv";
  writeFile(csv, "userId,traits.email\nu1,a@x.test\n");
  auto as_ndjson = runJunction(hub.import("--source web --format ndjson " + csv.string()));
  EXPECT_EQ(as_ndjson.code, 1);
  EXPECT_THAT(as_ndjson.out, HasSubstr("does not look like NDJSON"));
  auto bad_format = runJunction(hub.import("--source web --format xml " + file.string()));
  EXPECT_NE(bad_format.code, 0);
  EXPECT_EQ(lineCount(hub.dir.path() / "out.ndjson"), 0u);
}

TEST(ImportTest, CsvColumnsByNameOrByAMapping) {
  Hub hub;
  ASSERT_TRUE(hub.port) << hub.daemon.log();
  const fs::path by_name = hub.dir.path() / "people.csv";
  writeFile(by_name,
            "type,userId,traits.email,traits.plan,timestamp\n"
            "identify,u1,ada@x.test,pro,2026-11-28T15:11:01Z\n"
            "identify,u2,\"bob, jr@x.test\",\"multi\nline\",1764342661\n"
            "identify,,nobody@x.test,free,\n");
  auto run = runJunction(hub.import("--source web " + by_name.string()));
  EXPECT_EQ(run.code, 3) << run.out;
  EXPECT_THAT(run.out, HasSubstr("line 5: rejected"));  // the record after a two-line one
  EXPECT_THAT(run.out, HasSubstr("2 accepted, 1 rejected"));

  const fs::path mapped = hub.dir.path() / "orders.csv";
  writeFile(mapped, "customer,order total,when\nc-9,42.50,1764342661000\n");
  writeFile(hub.dir.path() / "mapping.json",
            R"({"type": {"value": "track"}, "event": {"value": "Order Completed"},
                "userId": "customer", "properties.revenue": {"from": "order total", "transform": "number"},
                "timestamp": {"from": "when", "transform": "iso8601"}})");
  auto run2 = runJunction(hub.import("--source web --mapping " +
                                     (hub.dir.path() / "mapping.json").string() + " " + mapped.string()));
  EXPECT_EQ(run2.code, 0) << run2.out;

  ASSERT_TRUE(eventually([&] { return lineCount(hub.dir.path() / "out.ndjson") == 3; }, 10s));
  std::istringstream in(readFile(hub.dir.path() / "out.ndjson"));
  std::string line;
  std::vector<boost::json::object> events;
  while (std::getline(in, line)) {
    events.push_back(boost::json::parse(line).as_object());
  }
  EXPECT_EQ(events[0].at("traits").at("email"), "ada@x.test");
  EXPECT_EQ(events[0].at("timestamp"), "2026-11-28T15:11:01.000Z");
  EXPECT_EQ(events[1].at("traits").at("email"), "bob, jr@x.test");
  EXPECT_EQ(events[1].at("traits").at("plan"), "multi\nline");
  EXPECT_EQ(events[1].at("timestamp"), "2025-11-28T15:11:01.000Z");
  EXPECT_EQ(events[2].at("event"), "Order Completed");
  EXPECT_EQ(events[2].at("userId"), "c-9");
  EXPECT_EQ(events[2].at("properties").at("revenue"), 42.5);
}

// Starts `junction ARGS` in the background, its output in `log`.
pid_t spawnJunction(const std::string& args, const fs::path& log) {
  const std::string command = "exec " + (kBinaryDir / "bin" / "junction").string() + " " + args +
                              " > '" + log.string() + "' 2>&1";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

TEST(ImportTest, AnImportKilledMidwayResumesWithoutDuplicatesOrGaps) {
  Hub hub;
  ASSERT_TRUE(hub.port) << hub.daemon.log();
  constexpr std::size_t kLines = 150'000;
  const fs::path file = hub.dir.path() / "events.ndjson";
  writeEvents(file, kLines);
  // Small chunks, so that the kill lands between many durable steps.
  const fs::path log = hub.dir.path() / "import1.log";
  pid_t pid = spawnJunction(hub.import("--source web --chunk-events 1000 --progress-interval 0.05 " +
                                       file.string()),
                            log);
  ASSERT_GT(pid, 0);
  // Kill it once some chunks are durable, well before the end.
  ASSERT_TRUE(eventually([&] { return readFile(log).find("import: ") != std::string::npos &&
                                      lineCount(log) >= 2; }, 30s)) << readFile(log);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the import finished before it was killed: " << readFile(log);

  // Without --resume the interrupted import is named, not repeated.
  auto refused = runJunction(hub.import("--source web " + file.string()));
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.out, HasSubstr("interrupted"));

  auto resumed = runJunction(hub.import("--source web --resume " + file.string()));
  EXPECT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_THAT(resumed.out, HasSubstr("resuming at line "));
  EXPECT_THAT(resumed.out, HasSubstr(std::to_string(kLines) + " lines, " + std::to_string(kLines) +
                                     " accepted, 0 rejected"));

  ASSERT_TRUE(eventually([&] { return lineCount(hub.dir.path() / "out.ndjson") >= kLines; }, 60s))
      << lineCount(hub.dir.path() / "out.ndjson");
  std::this_thread::sleep_for(300ms);  // anything more would be a duplicate
  const auto seen = delivered(hub.dir.path() / "out.ndjson");
  EXPECT_EQ(seen.size(), kLines);
  std::size_t gaps = 0;
  std::size_t duplicates = 0;
  for (std::size_t i = 1; i <= kLines; ++i) {
    auto it = seen.find("m-" + std::to_string(i));
    gaps += it == seen.end() ? 1 : 0;
    duplicates += it != seen.end() && it->second > 1 ? 1 : 0;
  }
  EXPECT_EQ(gaps, 0u);
  EXPECT_EQ(duplicates, 0u);
  EXPECT_EQ(lineCount(hub.dir.path() / "out.ndjson"), kLines);

  // A completed import resumed is a no-op.
  auto done = runJunction(hub.import("--source web --resume " + file.string()));
  EXPECT_EQ(done.code, 0) << done.out;
  EXPECT_TRUE(hub.daemon.terminate());
}

TEST(ImportTest, AMillionLinesWithProgress) {
  Hub hub(/*with_destination=*/false);
  ASSERT_TRUE(hub.port) << hub.daemon.log();
  constexpr std::size_t kLines = 1'000'000;
  const fs::path file = hub.dir.path() / "million.ndjson";
  writeEvents(file, kLines);
  const auto started = std::chrono::steady_clock::now();
  auto run = runJunction(hub.import("--source web --progress-interval 1 " + file.string()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(run.code, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr("1000000 lines, 1000000 accepted, 0 rejected"));
  EXPECT_THAT(run.out, HasSubstr("import: 100.0% line 1000000"));
  EXPECT_THAT(run.out, HasSubstr("lines/s, ETA"));
  // Reported, not asserted: the rate is measured by tests/bench/import_bench, not by a timer here.
  std::printf("1,000,000 lines imported in %.1f s\n", seconds);
  HttpClient client(*hub.port);
  auto metrics = client.request("GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("junction_events_received_total{source=\"web\"} 1000000"));
  EXPECT_TRUE(hub.daemon.terminate());
}

}  // namespace
}  // namespace junction::integration
