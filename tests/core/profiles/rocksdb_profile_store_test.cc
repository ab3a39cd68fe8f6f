// The embedded profile store on RocksDB: every part of a commit, the outbox's coalescing and
// sequence rule, the applied offset across a reopen, the engine on top of it, and damage (a
// lost store, a damaged log) refused naming the repair, which salvages what is readable (sync
// marks included). The store's contract is checked on RocksDB too, by the conformance suite of
// postgres_profile_store_test.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "core/profiles/profile_engine.h"
#include "core/profiles/rocksdb_profile_store.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/core/privacy/test_util.h"

namespace junction::core::profiles {
namespace {

namespace fs = std::filesystem;
using privacy::testing::TempDir;

std::unique_ptr<RocksDbProfileStore> openStore(const TempDir& dir) {
  auto s = RocksDbProfileStore::open(dir.file(""));
  EXPECT_TRUE(s) << s.error().message;
  return s ? std::move(s).value() : nullptr;
}

TEST(RocksDbProfileStoreTest, CommitsEveryPartAndKeepsItAcrossAReopen) {
  TempDir dir;
  {
    auto store = openStore(dir);
    EXPECT_FALSE(store->findIdentity("user:u1").value());
    EXPECT_EQ(store->appliedOffset().value(), 0u);
    Changes c;
    c.identities_put = {{"user:u1", "p_1"}, {"anon:a1", "p_1"}, {"user:u2", "p_2"}};
    c.profiles_put = {{"p_1", R"({"id":"p_1"})"}, {"p_2", R"({"id":"p_2"})"}};
    c.outbox_put = {{"p_1", 1000}, {"p_2", 500}};
    c.applied = 4242;
    ASSERT_TRUE(store->commit(c).ok());
    Changes d;
    d.identities_deleted = {"user:u2"};
    d.profiles_deleted = {"p_2"};
    d.outbox_deleted = {"p_2"};
    ASSERT_TRUE(store->commit(d).ok());
  }
  auto store = openStore(dir);
  EXPECT_EQ(store->findIdentity("anon:a1").value(), std::optional<std::string>("p_1"));
  EXPECT_EQ(store->loadProfile("p_1").value(), std::optional<std::string>(R"({"id":"p_1"})"));
  EXPECT_FALSE(store->findIdentity("user:u2").value());
  EXPECT_FALSE(store->loadProfile("p_2").value());
  EXPECT_EQ(store->appliedOffset().value(), 4242u);
  EXPECT_EQ(store->profileCount().value(), 1u);
  EXPECT_GT(store->sizeBytes(), 0u);
  EXPECT_TRUE(store->dueOutbox(999, 10).value().empty());  // not due yet
  auto due = store->dueOutbox(1000, 10).value();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].profile_id, "p_1");
  EXPECT_EQ(due[0].due_ms, 1000);
}

TEST(RocksDbProfileStoreTest, AnEntryChangedWhileAnnouncedStaysAndKeepsItsTime) {
  TempDir dir;
  auto store = openStore(dir);
  Changes put;
  put.outbox_put = {{"p_1", 100}};
  ASSERT_TRUE(store->commit(put).ok());
  auto read = store->dueOutbox(1000, 10).value();
  ASSERT_EQ(read.size(), 1u);
  Changes again;
  again.outbox_put = {{"p_1", 900}};  // a change while the announcement is made
  ASSERT_TRUE(store->commit(again).ok());
  Changes done;
  done.outbox_done = {{"p_1", read[0].seq}};
  ASSERT_TRUE(store->commit(done).ok());
  auto left = store->dueOutbox(1000, 10).value();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].due_ms, 100);  // coalesced into the earlier time
  Changes done2;
  done2.outbox_done = {{"p_1", left[0].seq}};
  ASSERT_TRUE(store->commit(done2).ok());
  EXPECT_TRUE(store->dueOutbox(1'000'000, 10).value().empty());
}

TEST(RocksDbProfileStoreTest, TheEngineMergesOnIt) {
  TempDir dir;
  auto store = openStore(dir);
  sdk::testing::FakeMetrics metrics;
  sdk::testing::RecordingLogger logger;
  sdk::testing::ManualClock clock;
  ProfileEngine engine(*store, EngineOptions{}, metrics, logger, clock);
  auto make = [](const char* text, std::int64_t ts) {
    auto e = sdk::makeEvent(boost::json::parse(text).as_object(), "web").value();
    auto h = e.header();
    h.timestamp_ms = ts;
    h.message_id = sdk::makeUuidV4();
    return sdk::Event(h, std::string(e.json()));
  };
  auto a = make(R"({"type":"track","anonymousId":"a1","event":"Viewed"})", 1);
  auto b = make(R"({"type":"identify","anonymousId":"a1","userId":"u1","traits":{"x":1}})", 2);
  store->beginBatch();
  auto c1 = engine.apply({&a});
  store->endBatch();
  ASSERT_TRUE(c1 && store->commit(*c1).ok());
  auto c2 = engine.apply({&b});
  ASSERT_TRUE(c2 && store->commit(*c2).ok());
  auto pid = store->findIdentity("user:u1").value();
  ASSERT_TRUE(pid);
  EXPECT_EQ(store->findIdentity("anon:a1").value(), pid);
  auto p = Profile::parse(*store->loadProfile(*pid).value()).value();
  EXPECT_EQ(p.events.size(), 2u);
}

TEST(RocksDbProfileStoreTest, ALostOrDamagedStoreIsRefusedAndSalvaged) {
  TempDir dir;
  {
    auto store = openStore(dir);
    for (int batch = 0; batch < 20; ++batch) {
      Changes c;
      for (int i = 0; i < 50; ++i) {
        const std::string id = "p_" + std::to_string(batch * 50 + i);
        c.identities_put.emplace_back("user:" + id, id);
        c.profiles_put.emplace_back(id, R"({"id":")" + id + R"(","traits":{"pad":")" +
                                            std::string(300, 'x') + R"("}})");
        c.sync_put.emplace_back("crm", id);
      }
      c.applied = static_cast<std::uint64_t>(batch + 1) * 100;
      ASSERT_TRUE(store->commit(c).ok());
    }
  }
  const std::string path = RocksDbProfileStore::pathIn(dir.file(""));
  // Lost (the marker remembers it existed).
  fs::rename(path, path + ".elsewhere");
  auto lost = RocksDbProfileStore::open(dir.file(""));
  ASSERT_FALSE(lost);
  EXPECT_NE(lost.error().message.find("junction recover profiles"), std::string::npos);
  EXPECT_NE(lost.error().message.find(path), std::string::npos);
  fs::rename(path + ".elsewhere", path);

  // The write-ahead log damaged in its middle.
  fs::path log;
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.path().extension() == ".log") {
      log = e.path();
    }
  }
  ASSERT_FALSE(log.empty());
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(log) / 2));
    const std::string junk(2048, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto damaged = RocksDbProfileStore::open(dir.file(""));
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().message.find("is damaged"), std::string::npos)
      << damaged.error().message;
  EXPECT_NE(damaged.error().message.find("junction recover profiles"), std::string::npos);

  // What `junction recover profiles` does: aside, a new store, salvage.
  fs::rename(path, path + ".damaged");
  fs::remove(RocksDbProfileStore::markerIn(dir.file("")));
  auto fresh = openStore(dir);
  auto salvage = fresh->salvageFrom(path + ".damaged");
  ASSERT_TRUE(salvage) << salvage.error().message;
  EXPECT_GT(salvage->profiles, 0u);
  EXPECT_LT(salvage->profiles, 1000u);  // the batches after the damage are gone
  EXPECT_EQ(salvage->identities, salvage->profiles);
  EXPECT_EQ(salvage->sync_marks, salvage->profiles);
  EXPECT_EQ(fresh->syncMarkCount("crm").value(), salvage->profiles);
  ASSERT_TRUE(salvage->applied);  // reported, not kept: a lost batch may lie behind it
  EXPECT_EQ(fresh->appliedOffset().value(), 0u);
  EXPECT_EQ(fresh->profileCount().value(), salvage->profiles);
}

}  // namespace
}  // namespace junction::core::profiles
