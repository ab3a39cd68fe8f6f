// The audit log: appends chain with SHA-256, reopen continues the chain, a torn last line is cut,
// and verify detects any changed byte, a removed or reordered line.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "core/privacy/audit_log.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/core/privacy/test_util.h"

namespace junction::core::privacy {
namespace {

using testing::TempDir;

std::string readAll(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void writeAll(const std::string& file, const std::string& text) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
}

void appendThree(const std::string& file, const sdk::Clock& clock) {
  auto log = AuditLog::open(file, clock);
  ASSERT_TRUE(log) << log.error().message;
  ASSERT_TRUE((*log)->append("daemon_start", {{"config_sha256", "abc"}}).ok());
  ASSERT_TRUE((*log)->append("regulation", {{"id", "reg_1"}, {"type", "delete"}}).ok());
  ASSERT_TRUE((*log)->append("erasure", {{"regulation", "reg_1"}, {"status", "done"}}).ok());
}

TEST(AuditLogTest, EntriesAreChainedAndVerify) {
  TempDir dir;
  sdk::testing::ManualClock clock;
  const auto file = dir.file("audit.log");
  appendThree(file, clock);
  auto v = verifyAuditLog(file);
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 3u);

  const std::string text = readAll(file);
  std::istringstream lines(text);
  std::string line;
  std::string prev(kAuditGenesis);
  int seq = 0;
  while (std::getline(lines, line)) {
    auto o = boost::json::parse(line).as_object();
    EXPECT_EQ(o.at("seq").as_int64(), ++seq);
    EXPECT_EQ(o.at("prev").as_string(), prev);
    auto split = splitAuditLine(line);
    ASSERT_TRUE(split);
    EXPECT_EQ(sdk::sha256Hex(prev + split->canonical), o.at("hash").as_string());
    prev = std::string(o.at("hash").as_string());
  }
  EXPECT_EQ(seq, 3);
}

TEST(AuditLogTest, ReopenContinuesTheChain) {
  TempDir dir;
  sdk::testing::ManualClock clock;
  const auto file = dir.file("audit.log");
  appendThree(file, clock);
  auto log = AuditLog::open(file, clock);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)->lastSeq(), 3u);
  ASSERT_TRUE((*log)->append("dlq_purge", {{"count", 2}}).ok());
  auto v = verifyAuditLog(file);
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 4u);
}

TEST(AuditLogTest, TornLastLineIsCutOnOpen) {
  TempDir dir;
  sdk::testing::ManualClock clock;
  const auto file = dir.file("audit.log");
  appendThree(file, clock);
  writeAll(file, readAll(file) + R"({"seq":4,"ts":"2026)");
  EXPECT_FALSE(verifyAuditLog(file).ok);
  auto log = AuditLog::open(file, clock);
  ASSERT_TRUE(log) << log.error().message;
  ASSERT_TRUE((*log)->append("daemon_start", {}).ok());
  auto v = verifyAuditLog(file);
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 4u);
}

TEST(AuditLogTest, VerifyDetectsEveryChangedByte) {
  TempDir dir;
  sdk::testing::ManualClock clock;
  const auto file = dir.file("audit.log");
  appendThree(file, clock);
  const std::string original = readAll(file);
  const auto first_newline = original.find('\n');
  for (std::size_t i = 0; i < original.size(); ++i) {
    std::string changed = original;
    changed[i] = changed[i] == 'x' ? 'y' : 'x';
    writeAll(dir.file("changed.log"), changed);
    auto v = verifyAuditLog(dir.file("changed.log"));
    ASSERT_FALSE(v.ok) << "byte " << i << " changed undetected";
    EXPECT_EQ(v.bad_line, i <= first_newline ? 1u : v.bad_line) << v.problem;
  }
}

TEST(AuditLogTest, VerifyDetectsRemovedAndReorderedLines) {
  TempDir dir;
  sdk::testing::ManualClock clock;
  const auto file = dir.file("audit.log");
  appendThree(file, clock);
  std::vector<std::string> lines;
  std::istringstream in(readAll(file));
  for (std::string l; std::getline(in, l);) {
    lines.push_back(l);
  }
  ASSERT_EQ(lines.size(), 3u);
  writeAll(dir.file("removed.log"), lines[0] + "\n" + lines[2] + "\n");
  auto v = verifyAuditLog(dir.file("removed.log"));
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.bad_line, 2u);
  writeAll(dir.file("swapped.log"), lines[1] + "\n" + lines[0] + "\n" + lines[2] + "\n");
  v = verifyAuditLog(dir.file("swapped.log"));
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.bad_line, 1u);
  EXPECT_FALSE(verifyAuditLog(dir.file("absent.log")).ok);
}

}  // namespace
}  // namespace junction::core::privacy
