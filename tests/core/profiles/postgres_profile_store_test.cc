// The profile store's contract, one test body run unchanged against SQLite, RocksDB and
// PostgreSQL (a real server, tests/support/postgres): lookups absent and present, every part of
// a commit and its order, the outbox's sequence rule, sync marks (their seq rule, paging in id
// order, counts, dropping a channel) and profile ids in order, the applied offset across a
// reopen, a failing commit that leaves nothing, readers running while the writer commits, any
// bytes stored as given. Then what only the shared store has: two nodes committing at once, the
// schema version and its upgrade, a restarted server, a connection lost during COMMIT, and no
// DSN (password) in any message.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "core/profiles/postgres_profile_store.h"
#include "tests/core/profiles/profile_store_backends.h"

namespace junction::core::profiles {
namespace {

using testing::makeStoreBackend;
using testing::PostgresBackend;
using testing::StoreBackend;
using ::testing::HasSubstr;
using ::testing::Not;
using Id = std::optional<std::string>;

// A string literal with every byte, NULs included.
template <std::size_t N>
std::string bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

class ProfileStoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = makeStoreBackend(GetParam());
    store_ = backend_->open();
    ASSERT_NE(store_, nullptr);
  }
  void reopen() {
    store_.reset();
    store_ = backend_->open();
    ASSERT_NE(store_, nullptr);
  }
  void commit(const Changes& c) {
    auto s = store_->commit(c);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  std::vector<OutboxEntry> due(std::int64_t now = 1'000'000, std::size_t limit = 100) {
    auto d = store_->dueOutbox(now, limit);
    EXPECT_TRUE(d) << d.error().message;
    return d ? *d : std::vector<OutboxEntry>{};
  }
  std::vector<SyncMark> marks(const std::string& channel, const std::string& after = "",
                              std::size_t limit = 100'000) {
    auto m = store_->syncMarks(channel, after, limit);
    EXPECT_TRUE(m) << m.error().message;
    return m ? *m : std::vector<SyncMark>{};
  }
  std::uint64_t markCount(const std::string& channel) {
    auto n = store_->syncMarkCount(channel);
    EXPECT_TRUE(n) << n.error().message;
    return n ? *n : 0;
  }
  std::vector<std::string> profileIds(const std::string& after = "", std::size_t limit = 100'000) {
    auto ids = store_->profileIds(after, limit);
    EXPECT_TRUE(ids) << ids.error().message;
    return ids ? *ids : std::vector<std::string>{};
  }

  std::unique_ptr<StoreBackend> backend_;
  std::unique_ptr<ProfileStore> store_;
};

TEST_P(ProfileStoreConformanceTest, LookupsAreEmptyThenFindWhatWasCommitted) {
  EXPECT_EQ(store_->findIdentity("user:u1").value(), Id());
  EXPECT_EQ(store_->loadProfile("p_1").value(), Id());
  EXPECT_EQ(store_->appliedOffset().value(), 0u);
  EXPECT_EQ(store_->profileCount().value(), 0u);
  EXPECT_TRUE(due().empty());
  ASSERT_TRUE(store_->commit(Changes{}).ok());  // nothing to do

  Changes c;
  c.identities_put = {{"user:u1", "p_1"}, {"anon:a1", "p_1"}};
  c.profiles_put = {{"p_1", R"({"id":"p_1","traits":{"plan":"pro"}})"}};
  commit(c);
  EXPECT_EQ(store_->findIdentity("user:u1").value(), Id("p_1"));
  EXPECT_EQ(store_->findIdentity("anon:a1").value(), Id("p_1"));
  EXPECT_EQ(store_->findIdentity("user:U1").value(), Id());  // exact keys
  EXPECT_EQ(store_->loadProfile("p_1").value(), Id(R"({"id":"p_1","traits":{"plan":"pro"}})"));
  EXPECT_EQ(store_->profileCount().value(), 1u);
  EXPECT_GT(store_->sizeBytes(), 0u);
  EXPECT_FALSE(store_->describe().empty());
}

TEST_P(ProfileStoreConformanceTest, ACommitAppliesEveryPartInOrder) {
  Changes first;
  first.identities_put = {{"user:u1", "p_1"}, {"user:u2", "p_2"}, {"user:u3", "p_3"}};
  first.profiles_put = {{"p_1", "one"}, {"p_2", "two"}, {"p_3", "three"}};
  first.outbox_put = {{"p_1", 300}, {"p_2", 100}, {"p_3", 100}};
  first.applied = 10;
  commit(first);

  Changes c;
  // Deleted and put again in one commit: the put comes after the delete.
  c.identities_deleted = {"user:u2", "user:u3", "user:absent"};
  c.identities_put = {{"user:u3", "p_1"},
                      {"user:u4", "p_3"},
                      {"user:u4", "p_1"}};  // the same key twice: the last one stands
  c.profiles_deleted = {"p_2", "p_3"};
  c.profiles_put = {{"p_3", "three again"}, {"p_1", "one v2"}, {"p_1", "one v3"}};
  c.outbox_deleted = {"p_2", "p_3"};
  c.outbox_put = {{"p_3", 50},    // deleted above, so new: seq 0, this time
                  {"p_1", 999},   // waiting: seq + 1, keeps its time (300)
                  {"p_4", 200},   // new...
                  {"p_4", 150}};  // ...and put again in the same commit: seq 1, first time
  c.applied = 20;
  commit(c);

  EXPECT_EQ(store_->findIdentity("user:u1").value(), Id("p_1"));
  EXPECT_EQ(store_->findIdentity("user:u2").value(), Id());
  EXPECT_EQ(store_->findIdentity("user:u3").value(), Id("p_1"));
  EXPECT_EQ(store_->findIdentity("user:u4").value(), Id("p_1"));
  EXPECT_EQ(store_->loadProfile("p_1").value(), Id("one v3"));
  EXPECT_EQ(store_->loadProfile("p_2").value(), Id());
  EXPECT_EQ(store_->loadProfile("p_3").value(), Id("three again"));
  EXPECT_EQ(store_->profileCount().value(), 2u);
  EXPECT_EQ(store_->appliedOffset().value(), 20u);

  // Earliest first, ties in id order, at most `limit`, only what is due.
  auto d = due();
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].profile_id, "p_3");
  EXPECT_EQ(d[0].due_ms, 50);
  EXPECT_EQ(d[0].seq, 0);
  EXPECT_EQ(d[1].profile_id, "p_4");
  EXPECT_EQ(d[1].due_ms, 200);
  EXPECT_EQ(d[1].seq, 1);
  EXPECT_EQ(d[2].profile_id, "p_1");
  EXPECT_EQ(d[2].due_ms, 300);
  EXPECT_EQ(d[2].seq, 1);
  EXPECT_EQ(due(200).size(), 2u);
  EXPECT_EQ(due(1'000'000, 1).size(), 1u);
  EXPECT_TRUE(due(49).empty());

  Changes ties;
  ties.outbox_put = {{"p_b", 7}, {"p_c", 7}, {"p_a", 7}};
  commit(ties);
  d = due(7);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].profile_id, "p_a");
  EXPECT_EQ(d[1].profile_id, "p_b");
  EXPECT_EQ(d[2].profile_id, "p_c");

  // A commit with only an offset moves the offset.
  Changes offset_only;
  offset_only.applied = 30;
  commit(offset_only);
  EXPECT_EQ(store_->appliedOffset().value(), 30u);
  EXPECT_EQ(store_->profileCount().value(), 2u);
}

// profile_engine_test's AChangeRecordedWhileAnAnnouncementIsInFlightIsNotLost, at the store.
TEST_P(ProfileStoreConformanceTest, AnEntryPutAgainWhileAnnouncedIsNotDeletedByTheOldSeq) {
  Changes put;
  put.outbox_put = {{"p_1", 100}, {"p_2", 100}};
  commit(put);
  auto announced = due();  // being announced...
  ASSERT_EQ(announced.size(), 2u);
  commit(put);  // ...while both change again (seq 1)

  Changes done;
  done.outbox_done = {{announced[0].profile_id, announced[0].seq},
                      {announced[1].profile_id, announced[1].seq}};
  commit(done);
  auto waiting = due();
  ASSERT_EQ(waiting.size(), 2u);  // not lost
  EXPECT_EQ(waiting[0].seq, 1);

  Changes done_again;
  done_again.outbox_done = {{"p_1", 1}, {"p_2", 0}};  // p_2's seq is stale
  commit(done_again);
  waiting = due();
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_EQ(waiting[0].profile_id, "p_2");

  Changes deleted;  // outbox_deleted: whatever the seq (an erased person)
  deleted.outbox_deleted = {"p_2"};
  commit(deleted);
  EXPECT_TRUE(due().empty());
}

TEST_P(ProfileStoreConformanceTest, TheAppliedOffsetAndEverythingElseSurviveAReopen) {
  Changes c;
  c.identities_put = {{"user:u1", "p_1"}};
  c.profiles_put = {{"p_1", "{}"}};
  c.outbox_put = {{"p_1", 5}};
  c.sync_put = {{"crm", "p_1"}, {"crm", "p_1"}};
  c.applied = 1ull << 40;
  commit(c);
  reopen();
  EXPECT_EQ(store_->appliedOffset().value(), 1ull << 40);
  EXPECT_EQ(store_->findIdentity("user:u1").value(), Id("p_1"));
  EXPECT_EQ(store_->loadProfile("p_1").value(), Id("{}"));
  ASSERT_EQ(due().size(), 1u);
  ASSERT_EQ(marks("crm").size(), 1u);
  EXPECT_EQ(marks("crm")[0].seq, 1);
  c = {};
  c.applied = 7;
  commit(c);
  reopen();
  EXPECT_EQ(store_->appliedOffset().value(), 7u);
}

TEST_P(ProfileStoreConformanceTest, AFailingCommitLeavesNothingHalfWritten) {
  if (!backend_->hasTables()) {
    GTEST_SKIP() << "no table to drop behind the store's back";
  }
  Changes before;
  before.identities_put = {{"user:u0", "p_0"}};
  before.applied = 5;
  commit(before);
  // The outbox is written after identities and profiles: with it gone, the commit fails there.
  backend_->dropTable("outbox");
  Changes c;
  c.identities_deleted = {"user:u0"};
  c.identities_put = {{"user:u1", "p_1"}};
  c.profiles_put = {{"p_1", "{}"}};
  c.outbox_put = {{"p_1", 5}};
  c.sync_put = {{"crm", "p_1"}};
  c.applied = 9;
  auto s = store_->commit(c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_THAT(s.message(), HasSubstr("outbox"));
  EXPECT_EQ(store_->findIdentity("user:u0").value(), Id("p_0"));
  EXPECT_EQ(store_->findIdentity("user:u1").value(), Id());
  EXPECT_EQ(store_->loadProfile("p_1").value(), Id());
  EXPECT_EQ(markCount("crm"), 0u);
  EXPECT_EQ(store_->appliedOffset().value(), 5u);
  // The store still works for what does not need the outbox.
  Changes after;
  after.identities_put = {{"user:u2", "p_2"}};
  after.applied = 10;
  commit(after);
  EXPECT_EQ(store_->findIdentity("user:u2").value(), Id("p_2"));
}

TEST_P(ProfileStoreConformanceTest, ReadersRunWhileTheWriterCommitsAndSeeWholeCommits) {
  // Each commit i moves profile p to "v<i>" and links key k<i> to it: a reader that sees v<i>
  // must then find k<i> (one transaction), and never sees p go back.
  constexpr int kCommits = 150;
  Changes c;
  c.profiles_put = {{"p", "v0"}};
  c.identities_put = {{"k0", "p"}};
  commit(c);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      int last = 0;
      while (!stop.load()) {
        auto data = store_->loadProfile("p");
        if (!data || !*data) {
          ++failures;
          continue;
        }
        const int seen = std::stoi(data->value().substr(1));
        auto link = store_->findIdentity("k" + std::to_string(seen));
        if (seen < last || !link || *link != Id("p") || !store_->profileCount()) {
          ++failures;
        }
        last = seen;
        ++reads;
      }
    });
  }
  for (int i = 1; i <= kCommits; ++i) {
    Changes next;
    next.profiles_put = {{"p", "v" + std::to_string(i)}};
    next.identities_put = {{"k" + std::to_string(i), "p"}};
    next.outbox_put = {{"p", i}};
    next.applied = static_cast<std::uint64_t>(i);
    auto s = store_->commit(next);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  while (reads.load() < 100) {
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : readers) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->loadProfile("p").value(), Id("v" + std::to_string(kCommits)));
  EXPECT_EQ(due().at(0).seq, kCommits - 1);
}

TEST_P(ProfileStoreConformanceTest, AnyBytesAreStoredAsGiven) {
  // NUL (PostgreSQL's text cannot hold it), the store's own escape byte, quotes, backslashes,
  // array syntax, UTF-8.
  const std::string odd_key = bytes("user:a\0b");
  const std::string odd_key2 = bytes("user:a\1" "0b");  // what the store escapes NUL to
  const std::string odd_id = bytes("p_\0\1\"{},\\ \xc3\xa9");
  const std::string data = bytes("{\"x\":\"\\u0000\"}\0\1\x7f" " end");
  Changes c;
  c.identities_put = {{odd_key, odd_id}, {odd_key2, "p_other"}, {"user:\"{a,b}\"", odd_id}};
  c.profiles_put = {{odd_id, data}};
  c.outbox_put = {{odd_id, 1}};
  commit(c);
  EXPECT_EQ(store_->findIdentity(odd_key).value(), Id(odd_id));
  EXPECT_EQ(store_->findIdentity(odd_key2).value(), Id("p_other"));
  EXPECT_EQ(store_->findIdentity("user:a").value(), Id());  // not cut at the NUL
  EXPECT_EQ(store_->findIdentity("user:\"{a,b}\"").value(), Id(odd_id));
  EXPECT_EQ(store_->loadProfile(odd_id).value(), Id(data));
  auto d = due();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].profile_id, odd_id);
  Changes done;
  done.outbox_done = {{odd_id, 0}};
  done.identities_deleted = {odd_key};
  commit(done);
  EXPECT_TRUE(due().empty());
  EXPECT_EQ(store_->findIdentity(odd_key).value(), Id());
  EXPECT_EQ(store_->findIdentity(odd_key2).value(), Id("p_other"));
}

TEST_P(ProfileStoreConformanceTest, ABatchOfThousandsOfRowsIsOneCommit) {
  Changes c;
  for (int i = 0; i < 5000; ++i) {
    const std::string id = "p_" + std::to_string(i);
    c.identities_put.emplace_back("user:" + std::to_string(i), id);
    c.profiles_put.emplace_back(id, std::string(300, static_cast<char>('a' + i % 26)));
    c.outbox_put.emplace_back(id, i);
    c.sync_put.emplace_back("crm", id);
    c.sync_put.emplace_back("ads", id);
  }
  c.applied = 5000;
  commit(c);
  EXPECT_EQ(store_->profileCount().value(), 5000u);
  EXPECT_EQ(store_->findIdentity("user:4999").value(), Id("p_4999"));
  EXPECT_EQ(due(1'000'000, 10'000).size(), 5000u);
  EXPECT_EQ(markCount("crm"), 5000u);
  EXPECT_EQ(markCount("ads"), 5000u);
  Changes d;
  for (int i = 0; i < 5000; i += 2) {
    d.profiles_deleted.push_back("p_" + std::to_string(i));
    d.outbox_done.emplace_back("p_" + std::to_string(i), 0);
    d.sync_done.push_back({"crm", "p_" + std::to_string(i), 0});
    d.sync_deleted.emplace_back("ads", "p_" + std::to_string(i + 1));
  }
  commit(d);
  EXPECT_EQ(store_->profileCount().value(), 2500u);
  EXPECT_EQ(due(1'000'000, 10'000).size(), 2500u);
  EXPECT_EQ(markCount("crm"), 2500u);
  EXPECT_EQ(markCount("ads"), 2500u);
  EXPECT_EQ(marks("crm", "", 1).at(0).profile_id, "p_1");
  EXPECT_EQ(marks("ads", "", 1).at(0).profile_id, "p_0");
}

// --- sync marks ------------------------------------------------------------------------------

TEST_P(ProfileStoreConformanceTest, SyncMarksArePerChannelAndEveryPutBumpsTheSeq) {
  EXPECT_TRUE(marks("crm").empty());
  EXPECT_EQ(markCount("crm"), 0u);
  Changes c;
  c.sync_put = {{"crm", "p_2"}, {"crm", "p_1"}, {"ads", "p_1"}};
  commit(c);
  auto m = marks("crm");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].channel, "crm");
  EXPECT_EQ(m[0].profile_id, "p_1");
  EXPECT_EQ(m[0].seq, 0);
  EXPECT_EQ(m[1].channel, "crm");
  EXPECT_EQ(m[1].profile_id, "p_2");
  EXPECT_EQ(m[1].seq, 0);
  EXPECT_EQ(markCount("crm"), 2u);
  EXPECT_EQ(markCount("ads"), 1u);
  EXPECT_EQ(markCount("other"), 0u);

  Changes again;  // p_1 changes twice in one batch, p_3 once; nothing in ads
  again.sync_put = {{"crm", "p_1"}, {"crm", "p_3"}, {"crm", "p_1"}};
  commit(again);
  m = marks("crm");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].seq, 2);  // p_1
  EXPECT_EQ(m[1].seq, 0);  // p_2
  EXPECT_EQ(m[2].seq, 0);  // p_3
  ASSERT_EQ(marks("ads").size(), 1u);
  EXPECT_EQ(marks("ads")[0].seq, 0);
}

// A run reads a channel's marks, sends them, then clears what it sent with sync_done: a mark
// changed meanwhile stays for the next run.
TEST_P(ProfileStoreConformanceTest, ARunClearsOnlyTheMarksThatDidNotChangeSinceItReadThem) {
  Changes c;
  c.sync_put = {{"crm", "p_1"}, {"crm", "p_2"}, {"ads", "p_1"}};
  commit(c);
  const auto run = marks("crm");
  ASSERT_EQ(run.size(), 2u);
  Changes meanwhile;
  meanwhile.sync_put = {{"crm", "p_2"}};
  commit(meanwhile);
  Changes done;
  done.sync_done = run;
  commit(done);
  auto left = marks("crm");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].profile_id, "p_2");
  EXPECT_EQ(left[0].seq, 1);
  EXPECT_EQ(markCount("ads"), 1u);  // another channel's marks are its own

  // A stale seq, an absent mark, a seq of another channel's mark: nothing cleared.
  Changes stale;
  stale.sync_done = {{"crm", "p_2", 0}, {"crm", "p_9", 0}, {"ads", "p_2", 1}};
  commit(stale);
  EXPECT_EQ(marks("crm").size(), 1u);
  Changes next_run;
  next_run.sync_done = left;
  commit(next_run);
  EXPECT_TRUE(marks("crm").empty());

  // Cleared and changed in one commit: marked again, from seq 0.
  Changes cleared_and_changed;
  cleared_and_changed.sync_done = {{"ads", "p_1", 0}};
  cleared_and_changed.sync_put = {{"ads", "p_1"}};
  commit(cleared_and_changed);
  ASSERT_EQ(marks("ads").size(), 1u);
  EXPECT_EQ(marks("ads")[0].seq, 0);

  // sync_deleted whatever the seq (a person merged away or erased); deleted and put again in
  // one commit starts over at seq 0.
  Changes bump;
  bump.sync_put = {{"ads", "p_1"}, {"ads", "p_2"}, {"ads", "p_2"}};
  commit(bump);
  Changes deleted;
  deleted.sync_deleted = {{"ads", "p_1"}, {"ads", "p_2"}, {"ads", "p_absent"}, {"crm", "p_1"}};
  deleted.sync_put = {{"ads", "p_2"}};
  commit(deleted);
  auto ads = marks("ads");
  ASSERT_EQ(ads.size(), 1u);
  EXPECT_EQ(ads[0].profile_id, "p_2");
  EXPECT_EQ(ads[0].seq, 0);
}

TEST_P(ProfileStoreConformanceTest, SyncMarksPageInProfileIdOrderAndAChannelDropsAlone) {
  // 250 marks put in a scrambled order over three commits, beside channels named alike.
  std::vector<std::string> ids;
  for (int i = 0; i < 250; ++i) {
    ids.push_back("p_" + std::to_string(i * 7919 % 1000));  // distinct
  }
  for (std::size_t from = 0; from < ids.size(); from += 100) {
    Changes c;
    for (std::size_t i = from; i < std::min(ids.size(), from + 100); ++i) {
      c.sync_put.emplace_back("crm", ids[i]);
    }
    commit(c);
  }
  const std::vector<std::string> alike = {"", "cr", "crm2", "crm-x", "crm/x", "crm%2Fx", "crm%"};
  Changes others;
  for (const auto& channel : alike) {
    others.sync_put.emplace_back(channel, "p_" + channel);
  }
  commit(others);
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> paged;
  std::string after;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = marks("crm", after, 32);
    EXPECT_LE(page.size(), 32u);
    if (page.empty()) {
      break;
    }
    for (const auto& m : page) {
      EXPECT_EQ(m.channel, "crm");
      paged.push_back(m.profile_id);
    }
    after = page.back().profile_id;
  }
  EXPECT_EQ(paged, ids);
  EXPECT_EQ(markCount("crm"), 250u);

  // After an id that is no mark: the marks after it.
  auto page = marks("crm", "p_5", 3);
  const auto next = std::upper_bound(ids.begin(), ids.end(), std::string("p_5"));
  ASSERT_EQ(page.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(page[i].profile_id, *(next + static_cast<std::ptrdiff_t>(i)));
  }
  EXPECT_TRUE(marks("crm", "", 0).empty());
  EXPECT_TRUE(marks("crm", "q").empty());
  for (const auto& channel : alike) {
    auto m = marks(channel);
    ASSERT_EQ(m.size(), 1u) << "'" << channel << "'";
    EXPECT_EQ(m[0].channel, channel);
    EXPECT_EQ(m[0].profile_id, "p_" + channel);
    EXPECT_EQ(markCount(channel), 1u);
  }

  ASSERT_TRUE(store_->dropSyncChannel("crm").ok());
  EXPECT_EQ(markCount("crm"), 0u);
  EXPECT_TRUE(marks("crm").empty());
  for (const auto& channel : alike) {
    EXPECT_EQ(markCount(channel), 1u) << "'" << channel << "'";
  }
  ASSERT_TRUE(store_->dropSyncChannel("crm").ok());  // again: nothing left to do
  ASSERT_TRUE(store_->dropSyncChannel("absent").ok());
  // Marked again after the drop: a new mark.
  Changes again;
  again.sync_put = {{"crm", "p_1"}};
  commit(again);
  ASSERT_EQ(marks("crm").size(), 1u);
  EXPECT_EQ(marks("crm")[0].seq, 0);
  reopen();
  EXPECT_EQ(markCount("crm"), 1u);
  EXPECT_EQ(markCount("crm/x"), 1u);
}

TEST_P(ProfileStoreConformanceTest, ProfileIdsPageInIdOrder) {
  EXPECT_TRUE(profileIds().empty());
  std::vector<std::string> ids;
  Changes c;
  for (int i = 0; i < 300; ++i) {
    ids.push_back("p_" + std::to_string(i * 7919 % 1000));
    c.profiles_put.emplace_back(ids.back(), "{}");
    c.identities_put.emplace_back("user:" + ids.back(), ids.back());  // not profiles
  }
  c.profiles_deleted = {"p_absent"};
  commit(c);
  Changes d;
  d.profiles_deleted = {ids[0], ids[1]};
  commit(d);
  ids.erase(ids.begin(), ids.begin() + 2);
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> paged;
  std::string after;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = profileIds(after, 64);
    EXPECT_LE(page.size(), 64u);
    if (page.empty()) {
      break;
    }
    paged.insert(paged.end(), page.begin(), page.end());
    after = page.back();
  }
  EXPECT_EQ(paged, ids);
  EXPECT_EQ(profileIds("p_5", 2),
            std::vector<std::string>(std::upper_bound(ids.begin(), ids.end(), "p_5"),
                                     std::upper_bound(ids.begin(), ids.end(), "p_5") + 2));
  EXPECT_TRUE(profileIds("", 0).empty());
  EXPECT_TRUE(profileIds("q").empty());
}

// Byte order (as memcmp), NULs and the PostgreSQL store's escape byte included.
TEST_P(ProfileStoreConformanceTest, SyncMarksAndProfileIdsAreInByteOrderWhateverTheBytes) {
  const std::vector<std::string> ids = {
      bytes("p"),   bytes("p\0"),  bytes("p\0\1"), bytes("p\1"), bytes("p\1" "0"),
      bytes("p\2"), bytes("p\"{"), bytes("pA"),    bytes("pa"),  bytes("p\xc3\xa9")};
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  const std::string channel = bytes("c\0h/%\1\xc3\xa9");
  Changes c;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    c.profiles_put.emplace_back(*it, "{}");
    c.sync_put.emplace_back(channel, *it);
  }
  c.sync_put.emplace_back("c", "p_other");  // the channel up to its NUL is another
  commit(c);
  std::vector<std::string> marked;
  std::string after;
  for (int pages = 0; pages < 20; ++pages) {
    auto page = marks(channel, after, 3);
    if (page.empty()) {
      break;
    }
    for (const auto& m : page) {
      EXPECT_EQ(m.channel, channel);
      marked.push_back(m.profile_id);
    }
    after = page.back().profile_id;
  }
  EXPECT_EQ(marked, ids);
  EXPECT_EQ(markCount(channel), ids.size());
  EXPECT_EQ(markCount("c"), 1u);
  std::vector<std::string> listed;
  after.clear();
  for (int pages = 0; pages < 20; ++pages) {
    auto page = profileIds(after, 3);
    if (page.empty()) {
      break;
    }
    listed.insert(listed.end(), page.begin(), page.end());
    after = page.back();
  }
  EXPECT_EQ(listed, ids);
  Changes done;
  done.sync_done = marks(channel, "", 2);  // "p" and "p\0"
  commit(done);
  EXPECT_EQ(marks(channel, "", 1).at(0).profile_id, bytes("p\0\1"));
  ASSERT_TRUE(store_->dropSyncChannel(channel).ok());
  EXPECT_EQ(markCount(channel), 0u);
  EXPECT_EQ(markCount("c"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ProfileStoreConformanceTest,
                         ::testing::Values("sqlite", "rocksdb", "postgres"), testing::backendName);

// ---------------------------------------------------------------------------------------------
// PostgreSQL only.

class PostgresProfileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(backend_.database().empty()); }

  std::unique_ptr<PostgresProfileStore> open(const std::string& dsn) {
    auto s = PostgresProfileStore::open(dsn);
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(s).value() : nullptr;
  }
  std::string scalar(const std::string& sql) {
    return backend_.server().scalar(sql, backend_.database());
  }
  // pg_ctl on the test server (as nobody when root, as PostgresServer runs it). `restart`
  // starts it again with the options it was started with (postmaster.opts), port included.
  // A fast shutdown: sessions are ended as in any restart, and what was committed is kept
  // (the server runs with synchronous_commit off: an immediate stop loses the last commits).
  int pgCtl(const std::string& action) {
    auto& pg = backend_.server();
    std::string cmd = pg.binDir() + "/pg_ctl " + action + " -w -t 30 -m fast -D " +
                      pg.directory() + "/data -l " + pg.logFile() + " >/dev/null 2>&1";
    if (::geteuid() == 0) {
      cmd = "runuser -u nobody -- " + cmd;
    }
    return std::system(cmd.c_str());
  }

  PostgresBackend backend_;
};

TEST_F(PostgresProfileStoreTest, TwoNodesCommittingAtOnceLoseNoRow) {
  auto a = open(backend_.dsn());
  auto b = open(backend_.dsn());
  ASSERT_TRUE(a && b);
  constexpr int kBatches = 40;
  constexpr int kRows = 200;
  auto node = [&](PostgresProfileStore& store, const std::string& name) {
    for (int i = 0; i < kBatches; ++i) {
      Changes c;
      for (int r = 0; r < kRows; ++r) {
        const std::string id = name + "_" + std::to_string(i) + "_" + std::to_string(r);
        c.identities_put.emplace_back("user:" + id, "p_" + id);
        c.profiles_put.emplace_back("p_" + id, "{}");
      }
      // The same people changed by both nodes: upserts in both orders (a deadlock without
      // the lock), and a seq that must count every put.
      c.profiles_put.emplace_back("p_shared1", name);
      c.profiles_put.emplace_back("p_shared2", name);
      if (name == "b") {
        std::swap(c.profiles_put[kRows], c.profiles_put[kRows + 1]);
      }
      c.outbox_put = {{"p_shared1", 1}, {"p_shared2", 1}};
      c.sync_put = {{"crm", "p_shared2"}, {"crm", "p_shared1"}};
      if (name == "b") {
        std::swap(c.sync_put[0], c.sync_put[1]);
      }
      c.applied = static_cast<std::uint64_t>(i);
      auto s = store.commit(c);
      ASSERT_TRUE(s.ok()) << s.message();
    }
  };
  std::thread ta([&] { node(*a, "a"); });
  std::thread tb([&] { node(*b, "b"); });
  ta.join();
  tb.join();
  EXPECT_EQ(scalar("SELECT count(*) FROM junction_profiles.identities"),
            std::to_string(2 * kBatches * kRows));
  EXPECT_EQ(a->profileCount().value(), static_cast<std::uint64_t>(2 * kBatches * kRows + 2));
  auto due = b->dueOutbox(10, 10).value();
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].seq, 2 * kBatches - 1);
  EXPECT_EQ(due[1].seq, 2 * kBatches - 1);
  auto marks = a->syncMarks("crm", "", 10).value();
  ASSERT_EQ(marks.size(), 2u);
  EXPECT_EQ(marks[0].seq, 2 * kBatches - 1);
  EXPECT_EQ(marks[1].seq, 2 * kBatches - 1);
  EXPECT_EQ(a->appliedOffset().value(), static_cast<std::uint64_t>(kBatches - 1));
}

TEST_F(PostgresProfileStoreTest, TheSchemaIsCreatedOnceVersionedAndANewerOneRefused) {
  std::vector<std::thread> nodes;
  std::atomic<int> opened{0};
  for (int i = 0; i < 3; ++i) {
    nodes.emplace_back([&] {
      if (open(backend_.dsn())) {
        ++opened;
      }
    });
  }
  for (auto& t : nodes) {
    t.join();
  }
  EXPECT_EQ(opened.load(), 3);
  EXPECT_EQ(scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM "
                   "junction_profiles._migrations"),
            "1,2");
  EXPECT_EQ(scalar("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                   "'junction_profiles' AND table_name = 'outbox' AND column_name = 'due_ms'"),
            "bigint");

  // Another schema in the same database is another store.
  auto other = PostgresProfileStore::open(backend_.dsn(), "Other \"Schema\"");
  ASSERT_TRUE(other) << other.error().message;
  Changes c;
  c.identities_put = {{"user:u1", "p_1"}};
  ASSERT_TRUE((*other)->commit(c).ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM \"Other \"\"Schema\"\"\".identities"), "1");
  EXPECT_EQ(open(backend_.dsn())->findIdentity("user:u1").value(), Id());

  backend_.server().query("INSERT INTO junction_profiles._migrations (version) VALUES (3)",
                          backend_.database());
  auto newer = PostgresProfileStore::open(backend_.dsn());
  ASSERT_FALSE(newer);
  EXPECT_THAT(newer.error().message, HasSubstr("version 3"));
  EXPECT_THAT(newer.error().message, HasSubstr("newer junctiond"));
}

TEST_F(PostgresProfileStoreTest, AStoreOfVersion1GetsTheSyncMarksTableAtItsNextOpen) {
  {
    auto store = open(backend_.dsn());
    ASSERT_TRUE(store);
    Changes c;
    c.identities_put = {{"user:u1", "p_1"}};
    c.profiles_put = {{"p_1", "{}"}};
    c.applied = 12;
    ASSERT_TRUE(store->commit(c).ok());
  }
  // As a junctiond of schema version 1 left it.
  backend_.server().query("DROP TABLE junction_profiles.sync_marks; "
                          "DELETE FROM junction_profiles._migrations WHERE version = 2",
                          backend_.database());
  auto store = open(backend_.dsn());
  ASSERT_TRUE(store);
  EXPECT_EQ(scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM "
                   "junction_profiles._migrations"),
            "1,2");
  EXPECT_EQ(store->loadProfile("p_1").value(), Id("{}"));
  EXPECT_EQ(store->appliedOffset().value(), 12u);
  Changes c;
  c.sync_put = {{"crm", "p_1"}};
  ASSERT_TRUE(store->commit(c).ok());
  EXPECT_EQ(store->syncMarkCount("crm").value(), 1u);
  // A page of a channel's marks is a range of the primary key, in its order: no scan, no sort
  // (with sequential scans off, the plan shows what an index allows).
  std::string plan;
  for (const auto& row : backend_.server().query(
           "SET enable_seqscan = off; EXPLAIN SELECT profile_id, seq FROM "
           "junction_profiles.sync_marks WHERE channel = 'crm' AND profile_id > 'p' "
           "ORDER BY profile_id LIMIT 10",
           backend_.database())) {
    plan += row.at(0) + "\n";
  }
  EXPECT_THAT(plan, HasSubstr("Index Scan using sync_marks_pkey"));
  EXPECT_THAT(plan, Not(HasSubstr("Sort")));
}

TEST_F(PostgresProfileStoreTest, ADropWhileAnotherNodeMarksTheChannelWaitsForItsCommit) {
  auto a = open(backend_.dsn());
  auto b = open(backend_.dsn());
  ASSERT_TRUE(a && b);
  constexpr int kRounds = 30;
  std::atomic<int> failures{0};
  std::thread marker([&] {
    for (int i = 0; i < kRounds; ++i) {
      Changes c;
      // Every other commit in descending order: the drop's delete (in the order of the rows on
      // disk, or of the key) meets some of them the other way round.
      for (int r = 1; r <= 200; ++r) {
        c.sync_put.emplace_back("crm", "p_" + std::to_string(1000 + (i % 2 == 0 ? r : 201 - r)));
      }
      if (auto s = a->commit(c); !s.ok()) {
        ADD_FAILURE() << s.message();
        ++failures;
      }
    }
  });
  std::thread dropper([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (auto s = b->dropSyncChannel("crm"); !s.ok()) {
        ADD_FAILURE() << s.message();
        ++failures;
      }
    }
  });
  marker.join();
  dropper.join();
  EXPECT_EQ(failures.load(), 0);
  const auto left = a->syncMarkCount("crm").value();
  EXPECT_TRUE(left == 0u || left == 200u) << left;  // whole commits, whole drops
}

TEST_F(PostgresProfileStoreTest, MessagesNameTheServerNeverTheDsnOrItsPassword) {
  // The test server trusts every connection: the password is accepted and ignored.
  const std::string secret = "s3cret-Pa55word";
  const std::string dsn = backend_.dsn() + " password=" + secret;
  auto store = open(dsn);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->describe(), "PostgreSQL 127.0.0.1:" + std::to_string(backend_.server().port()) +
                                   "/" + backend_.database() + " schema junction_profiles");

  // Nobody listens on that port.
  const int closed_port = backend_.server().port() == 1 ? 2 : 1;
  auto refused = PostgresProfileStore::open("host=127.0.0.1 port=" + std::to_string(closed_port) +
                                            " user=postgres password=" + secret + " dbname=x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_THAT(refused.error().message, HasSubstr("127.0.0.1:" + std::to_string(closed_port)));
  EXPECT_THAT(refused.error().message, Not(HasSubstr(secret)));
  auto uri = PostgresProfileStore::open("postgresql://postgres:" + secret + "@127.0.0.1:" +
                                        std::to_string(closed_port) + "/x");
  ASSERT_FALSE(uri);
  EXPECT_THAT(uri.error().message, Not(HasSubstr(secret)));
  // libpq would quote the malformed part of the string: not repeated.
  auto malformed = PostgresProfileStore::open("host=127.0.0.1 password=" + secret + " oops");
  ASSERT_FALSE(malformed);
  EXPECT_THAT(malformed.error().message, Not(HasSubstr(secret)));
  EXPECT_THAT(malformed.error().message, Not(HasSubstr("oops")));

  // A statement's error on a live connection.
  backend_.dropTable("profiles");
  auto failed = store->loadProfile("p_1");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_THAT(failed.error().message, Not(HasSubstr(secret)));
  EXPECT_THAT(failed.error().message, HasSubstr("profiles"));
}

TEST_F(PostgresProfileStoreTest, AServerRestartIsInvisibleAndAStoppedOneUnavailable) {
  const std::string secret = "s3cret-Pa55word";
  auto store = open(backend_.dsn() + " password=" + secret);
  ASSERT_TRUE(store);
  Changes c;
  c.identities_put = {{"user:u1", "p_1"}};
  c.applied = 1;
  ASSERT_TRUE(store->commit(c).ok());
  // Every reader connection used once, so that each has to find out about the restart.
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] { EXPECT_TRUE(store->findIdentity("user:u1")); });
  }
  for (auto& t : threads) {
    t.join();
  }
  threads.clear();

  ASSERT_EQ(pgCtl("restart"), 0);
  // The next calls reconnect: the caller sees nothing.
  auto first = store->findIdentity("user:u1");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*first, Id("p_1"));
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      auto found = store->findIdentity("user:u1");
      EXPECT_TRUE(found) << found.error().message;
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  threads.clear();
  c.identities_put = {{"user:u2", "p_2"}};
  c.applied = 2;
  auto s = store->commit(c);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(store->appliedOffset().value(), 2u);

  ASSERT_EQ(pgCtl("stop"), 0);
  auto down = store->findIdentity("user:u1");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_THAT(down.error().message, HasSubstr(std::to_string(backend_.server().port())));
  EXPECT_THAT(down.error().message, Not(HasSubstr(secret)));
  c.applied = 3;
  auto refused = store->commit(c);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_THAT(refused.message(), Not(HasSubstr(secret)));
  EXPECT_FALSE(store->appliedOffset());

  ASSERT_EQ(pgCtl("restart"), 0);  // started again, same port
  EXPECT_EQ(store->appliedOffset().value(), 2u);
  ASSERT_TRUE(store->commit(c).ok());
  EXPECT_EQ(store->appliedOffset().value(), 3u);
  EXPECT_EQ(store->findIdentity("user:u2").value(), Id("p_2"));
}

TEST_F(PostgresProfileStoreTest, AConnectionLostDuringCommitIsResolvedByTheOffset) {
  auto store = open(backend_.dsn());
  ASSERT_TRUE(store);
  Changes c;
  c.applied = 1;
  ASSERT_TRUE(store->commit(c).ok());
  // A check deferred to COMMIT that ends the writer's session: the transaction dies with its
  // connection, before it commits.
  backend_.server().query(
      "CREATE FUNCTION junction_profiles.die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "  PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; "
      "END $$;"
      "CREATE CONSTRAINT TRIGGER die AFTER INSERT ON junction_profiles.identities "
      "  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION junction_profiles.die()",
      backend_.database());
  c.identities_put = {{"user:u1", "p_1"}};
  c.applied = 2;
  auto s = store->commit(c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, sdk::ErrorCode::Unavailable);
  EXPECT_THAT(s.message(), Not(HasSubstr("unknown")));  // the offset says: not written
  EXPECT_EQ(store->appliedOffset().value(), 1u);
  EXPECT_EQ(store->findIdentity("user:u1").value(), Id());

  backend_.server().query("DROP TRIGGER die ON junction_profiles.identities",
                          backend_.database());
  ASSERT_TRUE(store->commit(c).ok());
  EXPECT_EQ(store->appliedOffset().value(), 2u);
  EXPECT_EQ(store->findIdentity("user:u1").value(), Id("p_1"));
}

}  // namespace
}  // namespace junction::core::profiles
