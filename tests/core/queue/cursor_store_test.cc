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

}  // namespace
}  // namespace junction::core::queue
