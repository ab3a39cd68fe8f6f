#include "core/queue/cursor_store.h"

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

}  // namespace
}  // namespace junction::core::queue
