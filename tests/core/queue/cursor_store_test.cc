#include "core/queue/cursor_store.h"
#include "core/queue/crc32c.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/core/queue/test_util.h"

namespace junction::core::queue {
namespace {

using testing::TempDir;

std::unique_ptr<CursorStore> openStore(const std::string& path,
                                       std::chrono::milliseconds interval) {
  auto store = CursorStore::open(CursorStoreOptions{path, interval});
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(CursorStoreTest, CursorsPersistAcrossReopen) {
  TempDir dir;
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->load("mailchimp").has_value());
    ASSERT_TRUE(store->commit("mailchimp", 1234).ok());
    ASSERT_TRUE(store->commit("warehouse", 99).ok());
    ASSERT_TRUE(store->commit("hubspot", 7).ok());
    ASSERT_TRUE(store->commit("mailchimp", 5678).ok());
    ASSERT_TRUE(store->remove("hubspot").ok());
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/cursors/cursors.dat"));
  auto store = openStore(dir.path(), std::chrono::milliseconds(0));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->load("mailchimp"), std::optional<Offset>(5678));
  EXPECT_EQ(store->load("warehouse"), std::optional<Offset>(99));
  EXPECT_FALSE(store->load("hubspot").has_value());
  const auto all = store->all();
  EXPECT_EQ(all.size(), 2u);
}

TEST(CursorStoreTest, FrequentCommitsAreCoalesced) {
  TempDir dir;
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(50));
    ASSERT_TRUE(store);
    for (Offset i = 1; i <= 10000; ++i) {
      ASSERT_TRUE(store->commit("dest", i * 10).ok());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    EXPECT_GE(store->flushCount(), 1u);
    EXPECT_LE(store->flushCount(), 3u);
    ASSERT_TRUE(store->commit("dest", 123456).ok());
  }  // the destructor flushes the last commit
  auto store = openStore(dir.path(), std::chrono::milliseconds(50));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->load("dest"), std::optional<Offset>(123456));
}

TEST(CursorStoreTest, CorruptFileIsRefusedWithAClearMessage) {
  TempDir dir;
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->commit("dest", 42).ok());
  }
  {
    std::fstream f(dir.path() + "/cursors/cursors.dat",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(14);
    f.put('Z');
  }
  auto store = CursorStore::open(CursorStoreOptions{dir.path(), std::chrono::milliseconds(0)});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("corrupt"), std::string::npos) << store.error().message;
}

TEST(CursorStoreTest, LeftoverTempFileFromACrashIsIgnored) {
  TempDir dir;
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->commit("dest", 42).ok());
  }
  std::ofstream(dir.path() + "/cursors/cursors.dat.tmp") << "half written";
  auto store = openStore(dir.path(), std::chrono::milliseconds(0));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->load("dest"), std::optional<Offset>(42));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/cursors/cursors.dat.tmp"));
}

TEST(CursorStoreTest, DeliveredCountsPersistAndAVersion1FileReadsAsZero) {
  TempDir dir;
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->commit("dest", CursorState{42, 17}).ok());
    ASSERT_TRUE(store->commit("dest", 50).ok());  // the offset alone keeps the count
  }
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    ASSERT_TRUE(store);
    auto state = store->state("dest");
    ASSERT_TRUE(state);
    EXPECT_EQ(state->offset, 50u);
    EXPECT_EQ(state->delivered, 17u);
  }
  // A cursors.dat written by Junction before delivered counts existed (format version 1):
  // magic, version 1, one entry "old" at offset 7, CRC32C.
  std::string v1;
  auto put = [&v1](std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) {
      v1.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    }
  };
  put(0x5255434Au, 4);
  put(1, 4);
  put(1, 4);
  put(3, 2);
  v1 += "old";
  put(7, 8);
  put(crc32c(v1), 4);
  std::ofstream(dir.path() + "/cursors/cursors.dat", std::ios::binary | std::ios::trunc) << v1;
  auto store = openStore(dir.path(), std::chrono::milliseconds(0));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->load("old"), std::optional<Offset>(7));
  EXPECT_EQ(store->state("old")->delivered, 0u);
}

TEST(CursorStoreTest, DoneRangesPersistWithTheOffset) {
  TempDir dir;
  const CursorState state{100, 7, {{120, 180}, {200, 260}}};
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    ASSERT_TRUE(store->commit("dest", state).ok());
  }
  auto store = openStore(dir.path(), std::chrono::milliseconds(0));
  EXPECT_EQ(store->state("dest"), std::optional<CursorState>(state));
  // The offset alone passes the first range: it is dropped, the second kept.
  ASSERT_TRUE(store->commit("dest", 190).ok());
  EXPECT_EQ(store->state("dest")->done, (std::vector<std::pair<Offset, Offset>>{{200, 260}}));
}

TEST(CursorStoreTest, AProcessCrashKeepsTheFastFileWhichIsNewerThanTheDurableOne) {
  TempDir dir;
  const std::string fast = dir.path() + "/cursors/cursors.fast";
  {
    // Durable writes every hour: only the fast file, every 2 ms, sees the later commits.
    auto store = CursorStore::open(CursorStoreOptions{dir.path(), std::chrono::hours(1),
                                                      std::chrono::milliseconds(2)});
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->commit("dest", CursorState{10, 1, {}}).ok());
    ASSERT_TRUE((*store)->flush().ok());  // cursors.dat: offset 10
    ASSERT_TRUE((*store)->commit("dest", CursorState{500, 40, {{600, 700}}}).ok());
    for (int i = 0; i < 500 && !std::filesystem::exists(fast); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    // A crash: what the destructor would flush durably is copied, then the store "dies" by
    // having cursors.dat put back to its durable state.
    std::filesystem::copy_file(dir.path() + "/cursors/cursors.dat", dir.path() + "/durable.dat");
  }
  std::filesystem::copy_file(dir.path() + "/durable.dat", dir.path() + "/cursors/cursors.dat",
                             std::filesystem::copy_options::overwrite_existing);
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    EXPECT_EQ(store->state("dest"), std::optional<CursorState>(CursorState{500, 40, {{600, 700}}}));
    EXPECT_EQ(store->fastFileProblem(), "");
    auto read = CursorStore::read(dir.path());
    ASSERT_TRUE(read);
    EXPECT_EQ(read->at("dest").offset, 500u);
  }
  // A torn fast file (a power loss) is ignored, and said so: cursors.dat is the truth.
  std::filesystem::copy_file(dir.path() + "/durable.dat", dir.path() + "/cursors/cursors.dat",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(fast, std::filesystem::file_size(fast) - 3);
  {
    auto store = openStore(dir.path(), std::chrono::milliseconds(0));
    EXPECT_EQ(store->state("dest")->offset, 10u);
    EXPECT_NE(store->fastFileProblem(), "");
  }
  // Without cursors.dat (moved aside by `junction recover cursors`) it is never read.
  std::filesystem::remove(dir.path() + "/cursors/cursors.dat");
  auto store = openStore(dir.path(), std::chrono::milliseconds(0));
  EXPECT_FALSE(store->fileExisted());
  EXPECT_FALSE(store->state("dest"));
  EXPECT_FALSE(std::filesystem::exists(fast));
}

}  // namespace
}  // namespace junction::core::queue
