// The file destination: the exact lines it writes, rotation, and its option table.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "file_destination.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/temp_dir.h"

namespace junction::plugins::file {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

sdk::Event event(const std::string& json_text, std::int64_t received_at_ms = 1764340261123) {
  auto made = sdk::makeEvent(boost::json::parse(json_text).as_object(), "web");
  EXPECT_TRUE(made) << made.error().message;
  auto h = made->header();
  h.received_at_ms = received_at_ms;
  return sdk::Event(h, std::string(made->json()));
}

// An event with exactly this text (makeEvent would re-serialize it).
sdk::Event rawEvent(const std::string& json_text) {
  sdk::EventHeader h;
  h.user_id = "u";
  h.received_at_ms = 1764340261123;
  return sdk::Event(h, json_text);
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using sdk::testing::TempDir;

TEST(FileFormatTest, AddsReceivedAtToTheEventAsReceived) {
  EXPECT_EQ(formatLine(event(R"({"type":"track","event":"A","userId":"u1"})")),
            R"({"receivedAt":"2025-11-28T14:31:01.123Z","type":"track","event":"A","userId":"u1"})"
            "\n");
}

TEST(FileFormatTest, KeepsAReceivedAtTheEventAlreadyHas) {
  auto e = event(R"({"type":"identify","userId":"u1","receivedAt":"2020-01-01T00:00:00.000Z"})");
  EXPECT_EQ(formatLine(e), std::string(e.json()) + "\n");
}

TEST(FileFormatTest, ANestedReceivedAtIsNotTheTopLevelOne) {
  auto line = formatLine(
      event(R"({"type":"track","event":"A","userId":"u","properties":{"receivedAt":"x"}})"));
  EXPECT_EQ(line.rfind(R"({"receivedAt":"2025-11-28T14:31:01.123Z",)", 0), 0u) << line;
}

TEST(FileFormatTest, AReceivedAtEndingTheEventIsKept) {
  // As the http source writes it: last, no spaces (seen from the end, without a scan).
  for (const char* text :
       {R"({"type":"track","event":"A","userId":"u","receivedAt":"2020-01-01T00:00:00.000Z"})",
        R"({"receivedAt":"2020-01-01T00:00:00.000Z"})",
        R"({"type":"identify","userId":"u","receivedAt":"x\\"})",
        R"({"type":"identify","userId":"u","receivedAt":"2020-01-01T00:00:00.000Z" })",
        R"({"type":"identify","userId":"u","receivedAt" : "x"})"}) {
    EXPECT_EQ(formatLine(rawEvent(text)), std::string(text) + "\n") << text;
  }
}

TEST(FileFormatTest, TextThatOnlyEndsLikeAReceivedAtIsNotOne) {
  // Inside a string value, and inside a nested object: the top level has no receivedAt.
  for (const char* text :
       {R"({"type":"track","event":"A","userId":"u","p":"x\",\"receivedAt\":\"y"})",
        R"({"type":"track","event":"A","userId":"u","p":{"receivedAt":"y"}})",
        R"({"type":"track","event":"A","userId":"u","p":["receivedAt","y"]})"}) {
    EXPECT_EQ(formatLine(rawEvent(text)),
              std::string(R"({"receivedAt":"2025-11-28T14:31:01.123Z",)") + (text + 1) + "\n");
  }
}

FileConfig config(const fs::path& path, std::uint64_t max_bytes = 1 << 20, std::int64_t files = 2) {
  FileConfig c;
  c.path = path.string();
  c.max_file_bytes = max_bytes;
  c.max_files = files;
  c.sync = true;
  return c;
}

// Delivers `count` events of about 1 KB, one per call, each reported delivered.
void deliverKilobyteEvents(FileDestination& dest, int count) {
  const std::string big(900, 'x');
  for (int i = 0; i < count; ++i) {
    std::vector<sdk::Event> batch{
        event(R"({"type":"track","event":"A","userId":"u","properties":{"p":")" + big + "\"}}")};
    ASSERT_TRUE(dest.deliver(batch)[0].isDelivered());
  }
}

TEST(FileDestinationTest, AppendsOneLinePerEventAndReportsDelivered) {
  TempDir dir;
  sdk::testing::FakeDestinationContext ctx;
  FileDestination dest(config(dir.path() / "sub" / "events.ndjson"), ctx);
  ASSERT_TRUE(dest.start().ok());
  std::vector<sdk::Event> batch{event(R"({"type":"track","event":"A","userId":"u1"})"),
                                event(R"({"type":"page","name":"Home","anonymousId":"a1"})")};
  auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_TRUE(outcomes[1].isDelivered());
  dest.stop();
  std::string text = slurp(dir.path() / "sub" / "events.ndjson");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_THAT(text, HasSubstr(R"("name":"Home")"));
  EXPECT_GT(ctx.metrics().counterValue("junction_file_written_bytes_total"), 0u);
}

TEST(FileDestinationTest, RotatesBySizeAndKeepsMaxFiles) {
  TempDir dir;
  sdk::testing::FakeDestinationContext ctx;
  const fs::path path = dir.path() / "events.ndjson";
  FileDestination dest(config(path, 4096, 2), ctx);
  ASSERT_TRUE(dest.start().ok());
  deliverKilobyteEvents(dest, 30);
  dest.stop();
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(fs::exists(path.string() + ".1"));
  EXPECT_TRUE(fs::exists(path.string() + ".2"));
  EXPECT_FALSE(fs::exists(path.string() + ".3"));  // max_files: 2
  EXPECT_LE(fs::file_size(path), 4096u);
  EXPECT_GE(ctx.metrics().counterValue("junction_file_rotations_total"), 3u);
}

TEST(FileDestinationTest, WithMaxFilesZeroAFullFileIsDroppedAndANewOneStarted) {
  TempDir dir;
  sdk::testing::FakeDestinationContext ctx;
  const fs::path path = dir.path() / "events.ndjson";
  FileDestination dest(config(path, 4096, 0), ctx);
  ASSERT_TRUE(dest.start().ok());
  deliverKilobyteEvents(dest, 12);
  dest.stop();
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".1"));
  EXPECT_LE(fs::file_size(path), 4096u);
  EXPECT_GE(ctx.metrics().counterValue("junction_file_rotations_total"), 2u);
  // Every line in the file is whole: the dropped file's descriptor went to the releaser, not
  // back into use.
  std::istringstream lines(slurp(path));
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(boost::json::parse(line).is_object());
  }
}

TEST(FileDestinationTest, AnUnwritablePathIsARetryNotALoss) {
  TempDir dir;
  std::ofstream(dir.path() / "not-a-dir") << "x";
  sdk::testing::FakeDestinationContext ctx;
  FileDestination dest(config(dir.path() / "not-a-dir" / "events.ndjson"), ctx);
  std::vector<sdk::Event> batch{event(R"({"type":"track","event":"A","userId":"u1"})")};
  auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("cannot open"));
}

// The process may write files up to `bytes` long while it lives (RLIMIT_FSIZE, as a full disk
// would stop a write part way), and SIGXFSZ is ignored so write() fails with EFBIG instead.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_ = nullptr;
};

TEST(FileDestinationTest, AWriteCutShortLeavesNoPartialLineForTheNextEvent) {
  TempDir dir;
  sdk::testing::FakeDestinationContext ctx;
  const fs::path path = dir.path() / "events.ndjson";
  FileDestination dest(config(path), ctx);
  ASSERT_TRUE(dest.start().ok());
  deliverKilobyteEvents(dest, 2);
  const auto before = fs::file_size(path);
  const std::string big(900, 'y');
  std::vector<sdk::Event> batch{
      event(R"({"type":"track","event":"B","userId":"u1","properties":{"p":")" + big + "\"}}"),
      event(R"({"type":"track","event":"B","userId":"u2","properties":{"p":")" + big + "\"}}")};
  {
    // The disk fills half way through the batch's second line.
    FileSizeLimit full(static_cast<rlim_t>(before + 1500));
    auto outcomes = dest.deliver(batch);
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
    EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Retry);
    EXPECT_THAT(outcomes[0].reason, HasSubstr("failed after"));
    EXPECT_TRUE(ctx.log().contains(sdk::LogLevel::Error, "write failed"));
  }
  // Nothing of the failed batch stays: the file ends with the last complete line.
  EXPECT_EQ(fs::file_size(path), before);
  // Space again: the retry and the next event are whole lines.
  ASSERT_TRUE(dest.deliver(batch)[0].isDelivered());
  deliverKilobyteEvents(dest, 1);
  dest.stop();
  std::istringstream lines(slurp(path));
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(boost::json::parse(line).is_object()) << line.substr(0, 80);
    ++count;
  }
  EXPECT_EQ(count, 5);
}

// Pages of `file` in the page cache (mincore on a mapping of it, which faults nothing in).
std::size_t residentPages(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  const auto size = static_cast<std::size_t>(fs::file_size(file));
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return 0;
  }
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((size + page - 1) / page);
  std::size_t resident = 0;
  if (::mincore(map, size, in_core.data()) == 0) {
    for (unsigned char c : in_core) {
      resident += c & 1;
    }
  }
  ::munmap(map, size);
  return resident;
}

TEST(FileDestinationTest, SyncedPagesLeaveThePageCacheUnlessAskedToStay) {
  TempDir dir;
  sdk::testing::FakeDestinationContext ctx;
  const fs::path dropped = dir.path() / "dropped.ndjson";
  FileDestination drop(config(dropped), ctx);
  ASSERT_TRUE(drop.start().ok());
  deliverKilobyteEvents(drop, 200);  // ~200 KiB: about 50 pages

  FileConfig keep_config = config(dir.path() / "kept.ndjson");
  keep_config.keep_page_cache = true;
  FileDestination keep(keep_config, ctx);
  ASSERT_TRUE(keep.start().ok());
  deliverKilobyteEvents(keep, 200);

  // At most the last, partial page stays (the next batch writes into it).
  EXPECT_LE(residentPages(dropped), 1u);
  EXPECT_GE(residentPages(dir.path() / "kept.ndjson"), 40u);
  drop.stop();
  keep.stop();
  const std::string text = slurp(dropped);  // dropped from memory, not from the file
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 200);
}

TEST(FileOptionsTest, TableAndValidation) {
  auto specs = fileOptions().specs();
  EXPECT_TRUE(sdk::checkOptionTable(specs).empty());
  ASSERT_EQ(specs.size(), 5u);
  EXPECT_EQ(specs[0].key, "path");
  EXPECT_TRUE(specs[0].required);
  auto bad = config("/tmp/dir/");
  auto errors = bad.validate();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "path");
}

}  // namespace
}  // namespace junction::plugins::file
