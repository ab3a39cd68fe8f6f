// PrivacyStore: suppression by userId / anonymousId / e-mail, unsuppress, deletion tombstones
// (received_at <= deleted_at), remembered consent (newer timestamp wins, both ids, erased by
// delete), persistence across reopen; PII transforms.

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/privacy/pii.h"
#include "core/privacy/privacy_store.h"
#include "junction/sdk/crypto.h"
#include "tests/core/privacy/test_util.h"

namespace junction::core::privacy {
namespace {

using testing::event;
using testing::TempDir;

std::unique_ptr<PrivacyStore> openStore(const TempDir& dir, ConsentAliases aliases = {}) {
  auto store = PrivacyStore::open(dir.file("privacy.db"), std::move(aliases));
  EXPECT_TRUE(store) << store.error().message;
  return std::move(store).value();
}

TEST(PrivacyStoreTest, SuppressAndUnsuppressByEachSubjectKind) {
  TempDir dir;
  auto store = openStore(dir);
  auto by_user = event(R"({"type":"track","event":"E","userId":"u1"})");
  auto by_anon = event(R"({"type":"track","event":"E","anonymousId":"a1"})");
  auto by_email = event(R"({"type":"identify","userId":"u9","traits":{"email":" Jo@Example.COM "}})");
  auto by_context_email =
      event(R"({"type":"track","event":"E","userId":"u8","context":{"traits":{"email":"jo@example.com"}}})");
  auto other = event(R"({"type":"track","event":"E","userId":"u2"})");
  EXPECT_FALSE(store->hasSuppressions());
  EXPECT_FALSE(store->isSuppressed(by_user));

  ASSERT_TRUE(store->record(RegulationType::Suppress, {SubjectKind::UserId, "u1"}, 10));
  ASSERT_TRUE(store->record(RegulationType::Suppress, {SubjectKind::AnonymousId, "a1"}, 10));
  auto r = store->record(RegulationType::Suppress, {SubjectKind::Email, "JO@example.com"}, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->subject.value, "jo@example.com");
  EXPECT_EQ(r->status, kStatusDone);
  EXPECT_TRUE(store->isSuppressed(by_user));
  EXPECT_TRUE(store->isSuppressed(by_anon));
  EXPECT_TRUE(store->isSuppressed(by_email));
  EXPECT_TRUE(store->isSuppressed(by_context_email));
  EXPECT_FALSE(store->isSuppressed(other));

  ASSERT_TRUE(store->record(RegulationType::Unsuppress, {SubjectKind::UserId, "u1"}, 20));
  EXPECT_FALSE(store->isSuppressed(by_user));
  EXPECT_TRUE(store->isSuppressed(by_anon));
}

// Regulations rebuilt from the audit log know their people only by SHA-256: events still match
// (by userId, anonymousId, e-mail), tombstones keep their time, an unsuppress in clear lifts a
// digest's suppression, and all of it survives a reopen.
TEST(PrivacyStoreTest, RestoredRegulationsMatchPeopleByDigest) {
  TempDir dir;
  {
    auto store = openStore(dir);
    std::vector<RestoredRegulation> regulations{
        {"reg_1", RegulationType::Suppress, SubjectKind::UserId, sdk::sha256Hex("u1"), 10, "done", {}},
        {"reg_2", RegulationType::Suppress, SubjectKind::Email, sdk::sha256Hex("jo@example.com"), 11, "done", {}},
        {"reg_3", RegulationType::Suppress, SubjectKind::AnonymousId, sdk::sha256Hex("a1"), 12, "done", {}},
        {"reg_4", RegulationType::Unsuppress, SubjectKind::AnonymousId, sdk::sha256Hex("a1"), 13, "done", {}},
        {"reg_5", RegulationType::Delete, SubjectKind::UserId, sdk::sha256Hex("d1"), 5000, "done", {}},
    };
    ASSERT_TRUE(store->restore(regulations).ok());
  }
  auto store = openStore(dir);
  EXPECT_TRUE(store->isSuppressed(event(R"({"type":"track","event":"E","userId":"u1"})")));
  EXPECT_TRUE(store->isSuppressed(event(R"({"type":"identify","userId":"x","traits":{"email":" JO@example.com"}})")));
  EXPECT_FALSE(store->isSuppressed(event(R"({"type":"track","event":"E","anonymousId":"a1"})")));
  EXPECT_FALSE(store->isSuppressed(event(R"({"type":"track","event":"E","userId":"u2"})")));
  EXPECT_TRUE(store->isDeleted(event(R"({"type":"track","event":"E","userId":"d1"})", 4000)));
  EXPECT_FALSE(store->isDeleted(event(R"({"type":"track","event":"E","userId":"d1"})", 6000)));
  auto r = store->regulation("reg_5");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->type, RegulationType::Delete);
  ASSERT_TRUE(store->record(RegulationType::Unsuppress, {SubjectKind::UserId, "u1"}, 20));
  EXPECT_FALSE(store->isSuppressed(event(R"({"type":"track","event":"E","userId":"u1"})")));
  EXPECT_TRUE(store->hasSuppressions());  // the e-mail's
}

// A damaged file is refused, naming it and the recovery command, never recreated.
TEST(PrivacyStoreTest, ADamagedFileIsRefusedNamingTheRecovery) {
  TempDir dir;
  {
    auto store = openStore(dir);
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(store->record(RegulationType::Suppress, {SubjectKind::UserId, "user-" + std::to_string(i)}, i));
    }
  }
  std::string data;
  {
    std::ifstream in(dir.file("privacy.db"), std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(data.size(), 8192u);
  for (std::size_t i = 4096 + 100; i < data.size(); i += 3) {
    data[i] = static_cast<char>(0x5A);
  }
  {
    std::ofstream out(dir.file("privacy.db"), std::ios::binary | std::ios::trunc);
    out << data;
  }
  auto reopened = PrivacyStore::open(dir.file("privacy.db"));
  ASSERT_FALSE(reopened);
  EXPECT_NE(reopened.error().message.find(dir.file("privacy.db") + " is corrupt"), std::string::npos)
      << reopened.error().message;
  EXPECT_NE(reopened.error().message.find("junction recover privacy --config FILE"), std::string::npos);
}

TEST(PrivacyStoreTest, EmptySubjectIsRefused) {
  TempDir dir;
  auto store = openStore(dir);
  auto r = store->record(RegulationType::Suppress, {SubjectKind::Email, "   "}, 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, sdk::ErrorCode::InvalidArgument);
}

TEST(PrivacyStoreTest, DeletionTombstoneCoversEventsReceivedUntilThen) {
  TempDir dir;
  auto store = openStore(dir);
  EXPECT_FALSE(store->hasDeletions());
  const auto generation = store->deletionGeneration();
  boost::json::object detail{{"destinations", boost::json::object{{"crm", boost::json::object{{"status", "pending"}}}}}};
  auto r = store->record(RegulationType::Delete, {SubjectKind::UserId, "u1"}, 5000, detail);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, kStatusPending);
  EXPECT_TRUE(store->hasDeletions());
  EXPECT_NE(store->deletionGeneration(), generation);
  EXPECT_TRUE(store->isDeleted(event(R"({"type":"track","event":"E","userId":"u1"})", 4000)));
  EXPECT_TRUE(store->isDeleted(event(R"({"type":"track","event":"E","userId":"u1"})", 5000)));
  EXPECT_FALSE(store->isDeleted(event(R"({"type":"track","event":"E","userId":"u1"})", 5001)));
  EXPECT_FALSE(store->isDeleted(event(R"({"type":"track","event":"E","userId":"u2"})", 4000)));
  // A delete without destinations to erase at is done at once.
  auto by_email = store->record(RegulationType::Delete, {SubjectKind::Email, "x@y.z"}, 5000);
  ASSERT_TRUE(by_email);
  EXPECT_EQ(by_email->status, kStatusDone);
  EXPECT_TRUE(store->isDeleted(
      event(R"({"type":"track","event":"E","userId":"u3","properties":{"email":"X@y.z"}})", 10)));
}

TEST(PrivacyStoreTest, RemembersTheNewestConsentUnderBothIds) {
  TempDir dir;
  auto store = openStore(dir);
  std::vector<sdk::Event> events;
  events.push_back(event(
      R"({"type":"identify","userId":"u1","anonymousId":"a1","context":{"consent":{"categoryPreferences":{"Marketing":true,"analytics":false}}}})",
      100, 2000));
  // Older (by event timestamp) and different: ignored.
  events.push_back(event(
      R"({"type":"track","event":"E","userId":"u1","context":{"consent":{"categoryPreferences":{"marketing":false}}}})",
      101, 1000));
  events.push_back(event(R"({"type":"track","event":"E","userId":"u1"})", 102, 3000));  // no consent
  ASSERT_TRUE(store->rememberConsent(events).ok());

  sdk::EventHeader by_user;
  by_user.user_id = "u1";
  auto c = store->rememberedConsent(by_user);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->granted.contains("marketing"));
  EXPECT_TRUE(c->denied.contains("analytics"));
  sdk::EventHeader by_anon;
  by_anon.anonymous_id = "a1";
  ASSERT_TRUE(store->rememberedConsent(by_anon));
  sdk::EventHeader nobody;
  nobody.user_id = "u2";
  EXPECT_FALSE(store->rememberedConsent(nobody));

  // Newer, in the RudderStack form: replaces.
  events.clear();
  events.push_back(event(
      R"({"type":"track","event":"E","userId":"u1","context":{"consentManagement":{"allowedConsentIds":[],"deniedConsentIds":["marketing"]}}})",
      103, 4000));
  ASSERT_TRUE(store->rememberConsent(events).ok());
  c = store->rememberedConsent(by_user);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->denied.contains("marketing"));
  EXPECT_FALSE(c->granted.contains("marketing"));

  // Survives a restart; a delete erases it.
  store.reset();
  store = openStore(dir);
  c = store->rememberedConsent(by_user);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->denied.contains("marketing"));
  ASSERT_TRUE(store->record(RegulationType::Delete, {SubjectKind::UserId, "u1"}, 5000));
  EXPECT_FALSE(store->rememberedConsent(by_user));
  store.reset();
  store = openStore(dir);
  EXPECT_FALSE(store->rememberedConsent(by_user));
  EXPECT_TRUE(store->rememberedConsent(by_anon));  // a different id, not named by the delete
}

TEST(PrivacyStoreTest, RegulationsSuppressionsAndTombstonesPersist) {
  TempDir dir;
  std::string id;
  {
    auto store = openStore(dir);
    ASSERT_TRUE(store->record(RegulationType::Suppress, {SubjectKind::UserId, "u1"}, 10));
    boost::json::object detail{{"destinations", boost::json::object{{"crm", boost::json::object{{"status", "pending"}}}}}};
    auto r = store->record(RegulationType::Delete, {SubjectKind::AnonymousId, "a1"}, 5000, detail);
    ASSERT_TRUE(r);
    id = r->id;
  }
  auto store = openStore(dir);
  EXPECT_TRUE(store->isSuppressed(event(R"({"type":"track","event":"E","userId":"u1"})")));
  EXPECT_TRUE(store->isDeleted(event(R"({"type":"track","event":"E","anonymousId":"a1"})", 10)));
  auto r = store->regulation(id);
  ASSERT_TRUE(r);
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->type, RegulationType::Delete);
  EXPECT_EQ((*r)->subject.kind, SubjectKind::AnonymousId);
  EXPECT_EQ((*r)->subject.value, "a1");
  EXPECT_EQ((*r)->status, kStatusPending);
  auto pending = store->pending();
  ASSERT_TRUE(pending);
  ASSERT_EQ(pending->size(), 1u);
  ASSERT_TRUE(store->updateRegulation(id, kStatusDone, (*r)->detail).ok());
  EXPECT_TRUE(store->pending()->empty());
  auto missing = store->regulation("reg_nope");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST(PiiTransformTest, HashesNormalizedValuesAndDropsPaths) {
  PiiTransform pii({"traits.email", "properties.phone", "traits.missing"}, {"context.ip", "traits.age"});
  auto in = event(
      R"({"type":"identify","userId":"u1","traits":{"email":"  Jo@Example.com","age":40,"name":"Jo"},"properties":{"phone":5551234},"context":{"ip":"10.0.0.1","locale":"fr"}})");
  auto out = pii.apply(in);
  const auto& body = out.body();
  EXPECT_EQ(body.at("traits").as_object().at("email").as_string(), sdk::sha256Hex("jo@example.com"));
  EXPECT_FALSE(body.at("traits").as_object().contains("age"));
  EXPECT_EQ(body.at("traits").as_object().at("name").as_string(), "Jo");
  EXPECT_FALSE(body.at("properties").as_object().contains("phone"));  // not a string: dropped
  EXPECT_FALSE(body.at("context").as_object().contains("ip"));
  EXPECT_EQ(body.at("context").as_object().at("locale").as_string(), "fr");
  EXPECT_EQ(out.header().user_id, "u1");
  EXPECT_EQ(out.messageId(), in.messageId());
  EXPECT_EQ(out.json().find("10.0.0.1"), std::string_view::npos);

  PiiTransform none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.apply(in).json(), in.json());
}

}  // namespace
}  // namespace junction::core::privacy
