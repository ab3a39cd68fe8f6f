// The postgres destination against a real PostgreSQL (started on a temp directory and a free
// port): schema creation and migration from version 1, loading into day partitions, duplicate
// deliveries, malformed events dead-lettered alone, erasure, retention, trait columns, verify,
// and the README's example queries run against loaded data.

#include "postgres_destination.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "junction/sdk/testing/fake_context.h"
#include "tests/support/postgres/postgres_server.h"
#include "warehouse_schema.h"

namespace junction::plugins::postgres {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Rows = std::vector<std::vector<std::string>>;
using Kind = sdk::Outcome::Kind;

constexpr std::int64_t kDayMs = 86'400'000;

class PostgresDestinationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    server_ = junction::testing::PostgresServer::start(&error).release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    static int n = 0;
    db_ = server_->createDatabase("wh" + std::to_string(++n));
  }

  PostgresConfig config(json::object traits = {{"email", "text"}}) const {
    PostgresConfig c;
    c.dsn = server_->dsn(db_);
    c.schema = "junction";
    c.traits = std::move(traits);
    c.partitions_ahead = 2;
    return c;
  }
  std::unique_ptr<PostgresDestination> started(PostgresConfig c) {
    auto dest = std::make_unique<PostgresDestination>(std::move(c), ctx_);
    auto s = dest->start();
    EXPECT_TRUE(s.ok()) << s.message();
    return dest;
  }
  Rows sql(const std::string& q) const { return server_->query(q, db_); }
  std::string scalar(const std::string& q) const { return server_->scalar(q, db_); }

  // An event from its JSON; `at_ms` is its timestamp (and receipt time).
  static sdk::Event event(std::string text, std::int64_t at_ms) {
    auto body = json::parse(text).as_object();
    body["timestamp"] = sdk::formatIsoTimestamp(at_ms);
    auto e = sdk::makeEvent(body, "web");
    EXPECT_TRUE(e) << text;
    auto h = e->header();
    h.received_at_ms = at_ms;
    return sdk::Event(h, json::serialize(body));
  }

  static std::vector<Kind> kinds(const std::vector<sdk::Outcome>& outcomes) {
    std::vector<Kind> out;
    for (const auto& o : outcomes) {
      out.push_back(o.kind);
    }
    return out;
  }

  static junction::testing::PostgresServer* server_;
  std::string db_;
  sdk::testing::FakeDestinationContext ctx_{"warehouse"};
};

junction::testing::PostgresServer* PostgresDestinationTest::server_ = nullptr;

const std::int64_t kT0 = 1767225600000;  // 2026-01-01T00:00:00Z, the fake context's clock

TEST(PostgresStagingTest, RefusesWhatPostgresCannotStoreWithAReason) {
  auto stage = [](std::string text) {
    auto body = json::parse(text).as_object();
    auto e = sdk::makeEvent(body, "web");
    EXPECT_TRUE(e);
    return stageEvent(*e).failure;
  };
  EXPECT_EQ(stage(R"({"type":"track","event":"x","userId":"u","messageId":"m","properties":"a"})"),
            "properties is not an object");
  EXPECT_EQ(stage(R"({"type":"identify","userId":"u","messageId":"m","traits":[1]})"),
            "traits is not an object");
  EXPECT_EQ(stage(R"({"type":"track","event":"Order Completed","userId":"u","messageId":"m",)"
                  R"("properties":{"revenue":"12,50"}})"),
            "properties.revenue is not a number: \"12,50\"");
  EXPECT_EQ(stage(R"({"type":"track","event":"Order Completed","userId":"u","messageId":"m",)"
                  R"("properties":{"revenue":"12.50","products":{"a":1}}})"),
            "properties.products is not a list");
  EXPECT_THAT(stage(R"({"type":"track","event":"x","userId":"u","messageId":"m",)"
                    R"("properties":{"note":"a\u0000b"}})"),
              HasSubstr("NUL character"));
  EXPECT_EQ(stage(R"({"type":"track","event":"x","userId":"u","messageId":"m"})"), "");
}

TEST(PostgresStagingTest, CopyFieldsAreEscaped) {
  auto body = json::parse(R"({"type":"page","name":"a\tb\\c\nd","userId":"u","messageId":"m"})")
                  .as_object();
  auto e = sdk::makeEvent(body, "web");
  ASSERT_TRUE(e);
  auto row = stageEvent(*e);
  EXPECT_THAT(row.copy_line, HasSubstr("a\\tb\\\\c\\nd\t"));
  EXPECT_EQ(row.copy_line.back(), '\n');
  EXPECT_EQ(std::count(row.copy_line.begin(), row.copy_line.end(), '\n'), 1);
}

TEST(PostgresStagingTest, IdentityKeysNameKindValueAndPersonNotTheTime) {
  auto stage = [](std::string text) {
    auto body = json::parse(text).as_object();
    auto e = sdk::makeEvent(body, "web");
    EXPECT_TRUE(e);
    return stageEvent(*e, false);
  };
  auto a = stage(R"({"type":"track","event":"x","userId":"u1","anonymousId":"a1","messageId":"m1",)"
                 R"("timestamp":"2026-01-01T00:00:00Z"})");
  auto later = stage(R"({"type":"track","event":"x","userId":"u1","anonymousId":"a1",)"
                     R"("messageId":"m2","timestamp":"2026-01-02T00:00:00Z"})");
  auto anonymous = stage(R"({"type":"track","event":"x","anonymousId":"a1","messageId":"m3"})");
  ASSERT_EQ(a.identity_lines.size(), 2u);
  ASSERT_EQ(a.identity_keys.size(), 2u);
  EXPECT_THAT(a.identity_lines[0], StartsWith("userId\tu1\tuser:u1\t2026-01-01"));
  EXPECT_EQ(a.identity_keys, later.identity_keys);  // another time, the same tuples
  EXPECT_NE(a.identity_keys[0], a.identity_keys[1]);
  ASSERT_EQ(anonymous.identity_keys.size(), 1u);  // a1 -> anon:a1 is another tuple than a1 -> user:u1
  EXPECT_NE(anonymous.identity_keys[0], a.identity_keys[1]);
  EXPECT_EQ(IdentityKey::of("anonymousId\ta1\tuser:u1\t"), a.identity_keys[1]);
}

TEST_F(PostgresDestinationTest, CreatesTheSchemaRecordsEachMigrationAndPartitionsAhead) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  EXPECT_EQ(sql("SELECT version FROM junction._junction_migrations ORDER BY 1"),
            (Rows{{"1"}, {"2"}, {"3"}, {"4"}, {"5"}}));
  // Yesterday, today and two days ahead, for each fact table.
  EXPECT_EQ(sql("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'junction.events'::regclass ORDER BY 1"),
            (Rows{{"events_p20251231"}, {"events_p20260101"}, {"events_p20260102"},
                  {"events_p20260103"}}));
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'junction.purchases'::regclass"), "4");
  // A second start (another daemon, a restart) applies nothing again.
  auto again = started(config());
  EXPECT_EQ(scalar("SELECT count(*) FROM junction._junction_migrations"), "5");
}

TEST_F(PostgresDestinationTest, MigratesAVersion1SchemaKeepingItsRows) {
  std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/tests/fixtures/postgres/schema_v1.sql");
  std::stringstream text;
  text << in.rdbuf();
  ASSERT_FALSE(text.str().empty());
  sql(renderSql(text.str(), "\"junction\""));
  sql("CREATE TABLE junction.events_p20251230 PARTITION OF junction.events FOR VALUES FROM "
      "('2025-12-30 00:00:00+00') TO ('2025-12-31 00:00:00+00');"
      "INSERT INTO junction.events (message_id, type, name, \"timestamp\", received_at, source, "
      "person_id, user_id) VALUES ('old-1', 'track', 'Signed Up', '2025-12-30 10:00+00', "
      "'2025-12-30 10:00+00', 'web', 'user:u1', 'u1')");
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  EXPECT_EQ(sql("SELECT version FROM junction._junction_migrations ORDER BY 1"),
            (Rows{{"1"}, {"2"}, {"3"}, {"4"}, {"5"}}));
  EXPECT_EQ(scalar("SELECT name FROM junction.events WHERE message_id = 'old-1'"), "Signed Up");
  // Version 5: the person index of events is a hash index now, on the existing day too.
  EXPECT_EQ(sql("SELECT indexname, indexdef LIKE '%USING hash (person_id)%' FROM pg_indexes "
                "WHERE schemaname = 'junction' AND tablename IN ('events', 'events_p20251230') "
                "AND indexdef LIKE '%person_id%' ORDER BY 1"),
            (Rows{{"events_p20251230_person_id_idx", "t"}, {"events_person_hash", "t"}}));
  EXPECT_EQ(scalar("SELECT count(*) FROM junction.events WHERE person_id = 'user:u1'"), "1");
  // The existing day got its pages and purchases partitions too.
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_class WHERE relname = 'pages_p20251230'"), "1");
  auto out = dest->deliver(std::vector<sdk::Event>{
      event(R"({"type":"page","name":"Home","userId":"u1","messageId":"new-1",)"
            R"("properties":{"url":"https://shop.example/","path":"/"}})",
            kT0 - 2 * kDayMs + 1000)});
  EXPECT_THAT(kinds(out), ElementsAre(Kind::Delivered));
  EXPECT_EQ(scalar("SELECT count(*) FROM junction.pages_p20251230"), "1");
}

TEST_F(PostgresDestinationTest, RefusesASchemaNewerThanThePlugin) {
  auto dest = started(config());
  sql("INSERT INTO junction._junction_migrations (version, description) VALUES (99, 'future')");
  PostgresDestination second(config(), ctx_);
  auto s = second.start();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("version 99, newer than this plugin's 5"));
}

TEST_F(PostgresDestinationTest, LoadsEachEventIntoItsTablesAndDayPartition) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config({{"email", "text"}, {"plan", "text"}}));
  const std::int64_t last_ms_of_day = kT0 + kDayMs - 1;  // 2026-01-01T23:59:59.999Z
  std::vector<sdk::Event> batch{
      event(R"({"type":"track","event":"Product Viewed","anonymousId":"a1","messageId":"m1",)"
            R"("properties":{"sku":"SKU-1","price":20}})",
            last_ms_of_day),
      event(R"({"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m2",)"
            R"("traits":{"email":"Ada@Example.com","plan":"pro"}})",
            last_ms_of_day + 1),
      event(R"({"type":"page","name":"Cart","userId":"u1","messageId":"m3",)"
            R"("properties":{"url":"https://shop.example/cart","path":"/cart","title":"Cart"}})",
            last_ms_of_day + 2),
      event(R"({"type":"track","event":"Order Completed","userId":"u1","messageId":"m4",)"
            R"("properties":{"order_id":"o-1","revenue":"40.50","total":45,"currency":"EUR",)"
            R"("products":[{"sku":"SKU-1","quantity":2}]}})",
            last_ms_of_day + 3),
  };
  auto out = dest->deliver(batch);
  EXPECT_THAT(kinds(out), ElementsAre(Kind::Delivered, Kind::Delivered, Kind::Delivered, Kind::Delivered));
  // Each row in the partition of its own day: the first on Jan 1, the rest on Jan 2.
  EXPECT_EQ(sql("SELECT message_id, tableoid::regclass::text, person_id FROM junction.events ORDER BY 1"),
            (Rows{{"m1", "junction.events_p20260101", "anon:a1"},
                  {"m2", "junction.events_p20260102", "user:u1"},
                  {"m3", "junction.events_p20260102", "user:u1"},
                  {"m4", "junction.events_p20260102", "user:u1"}}));
  EXPECT_EQ(sql("SELECT path, title, url FROM junction.pages"),
            (Rows{{"/cart", "Cart", "https://shop.example/cart"}}));
  EXPECT_EQ(sql("SELECT order_id, revenue::text, total::text, currency, products->0->>'sku' FROM junction.purchases"),
            (Rows{{"o-1", "40.50", "45", "EUR", "SKU-1"}}));
  EXPECT_EQ(sql("SELECT kind, value, person_id FROM junction.identities ORDER BY 1, 2"),
            (Rows{{"anonymousId", "a1", "user:u1"}, {"email", "ada@example.com", "user:u1"},
                  {"userId", "u1", "user:u1"}}));
  EXPECT_EQ(sql("SELECT person_id, email, plan FROM junction.profiles"),
            (Rows{{"user:u1", "Ada@Example.com", "pro"}}));
  // The anonymous view is attributed to who the visitor became.
  EXPECT_EQ(scalar("SELECT person FROM junction.events_by_person WHERE message_id = 'm1'"), "user:u1");
  EXPECT_EQ(sql("SELECT rows_offered, rows_inserted, duplicates, failed FROM junction._junction_loads"),
            (Rows{{"4", "4", "0", "0"}}));
}

TEST_F(PostgresDestinationTest, DeliveringTheSameBatchAgainInsertsNothingTwice) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 50; ++i) {
    batch.push_back(event(R"({"type":"track","event":"Clicked","userId":"u)" + std::to_string(i % 7) +
                              R"(","messageId":"m)" + std::to_string(i) + R"("})",
                          kT0 + i));
  }
  batch.push_back(batch[3]);  // the same event twice in one batch
  EXPECT_EQ(kinds(dest->deliver(batch)), std::vector<Kind>(51, Kind::Delivered));
  EXPECT_EQ(kinds(dest->deliver(batch)), std::vector<Kind>(51, Kind::Delivered));
  EXPECT_EQ(scalar("SELECT count(*) FROM junction.events"), "50");
  EXPECT_EQ(sql("SELECT rows_offered, rows_inserted, duplicates FROM junction._junction_loads ORDER BY load_id"),
            (Rows{{"51", "50", "1"}, {"51", "0", "51"}}));
  EXPECT_EQ(ctx_.metrics().counterValue("junction_postgres_rows_inserted_total"), 50u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_postgres_rows_duplicate_total"), 52u);
  auto v = dest->verify({.events = 102});
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->matches) << v->report;
}

TEST_F(PostgresDestinationTest, AMalformedEventFailsAloneWhileTheRestOfItsBatchLoads) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  // A constraint of the operator's: the server refuses one event of the batch.
  sql("ALTER TABLE junction.events ADD CONSTRAINT no_test_events CHECK (name IS DISTINCT FROM 'Forbidden')");
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 20; ++i) {
    std::string name = i == 13 ? "Forbidden" : "Clicked";
    batch.push_back(event(R"({"type":"track","event":")" + name + R"(","userId":"u)" +
                              std::to_string(i) + R"(","messageId":"m)" + std::to_string(i) + R"("})",
                          kT0 + i));
  }
  batch.push_back(event(R"({"type":"track","event":"Order Completed","userId":"x","messageId":"bad-revenue",)"
                        R"("properties":{"revenue":"lots"}})",
                        kT0));
  auto out = dest->deliver(batch);
  ASSERT_EQ(out.size(), 21u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(out[i].kind, i == 13 ? Kind::Failed : Kind::Delivered) << i;
  }
  EXPECT_THAT(out[13].reason, HasSubstr("SQLSTATE 23514"));
  EXPECT_THAT(out[13].reason, HasSubstr("no_test_events"));
  EXPECT_EQ(out[20].kind, Kind::Failed);
  EXPECT_EQ(out[20].reason, "properties.revenue is not a number: \"lots\"");
  EXPECT_EQ(scalar("SELECT count(*) FROM junction.events"), "19");
  EXPECT_GE(ctx_.metrics().counterValue("junction_postgres_batches_split_total"), 1u);
  auto v = dest->verify({.events = 19});
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->matches) << v->report;
}

TEST_F(PostgresDestinationTest, AnUnreachableServerRetriesTheBatch) {
  PostgresConfig c = config();
  c.dsn = "host=127.0.0.1 port=1 dbname=x user=postgres password=s3cret-pw connect_timeout=2";
  PostgresDestination dest(c, ctx_);
  auto out = dest.deliver(std::vector<sdk::Event>{
      event(R"({"type":"track","event":"x","userId":"u","messageId":"m"})", kT0)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::Retry);
  EXPECT_THAT(out[0].reason, HasSubstr("cannot connect to PostgreSQL"));
  EXPECT_THAT(out[0].reason, ::testing::Not(HasSubstr("s3cret-pw")));
}

TEST_F(PostgresDestinationTest, AnOlderIdentifyNeverOverwritesNewerTraits) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config({{"email", "text"}, {"plan", "text"}}));
  dest->deliver(std::vector<sdk::Event>{event(
      R"({"type":"identify","userId":"u1","messageId":"new","traits":{"plan":"pro","email":"a@x.io"}})",
      kT0 + 5000)});
  dest->deliver(std::vector<sdk::Event>{event(
      R"({"type":"identify","userId":"u1","messageId":"old","traits":{"plan":"free","city":"Oslo"}})",
      kT0 + 1000)});
  EXPECT_EQ(sql("SELECT plan, traits->>'city', email FROM junction.profiles"),
            (Rows{{"pro", "Oslo", "a@x.io"}}));
}

TEST_F(PostgresDestinationTest, ConfiguredTraitColumnsAreAddedAndFilledForEveryone) {
  ctx_.manualClock().setNowMs(kT0);
  {
    auto dest = started(config());
    dest->deliver(std::vector<sdk::Event>{
        event(R"({"type":"identify","userId":"u1","messageId":"i1","traits":{"ltv":"12.5","vip":true}})", kT0),
        event(R"({"type":"identify","userId":"u2","messageId":"i2","traits":{"ltv":"lots"}})", kT0)});
  }
  auto dest = started(config({{"email", "text"}, {"ltv", "numeric"}, {"vip", "boolean"}}));
  EXPECT_EQ(sql("SELECT person_id, ltv::text, vip::text FROM junction.profiles ORDER BY 1"),
            (Rows{{"user:u1", "12.5", "true"}, {"user:u2", "\\N", "\\N"}}));
  EXPECT_EQ(scalar("SELECT traits->>'ltv' FROM junction.profiles WHERE person_id = 'user:u2'"), "lots");
}

TEST_F(PostgresDestinationTest, IdentitiesFollowAVisitorAcrossBatchesAndAreWrittenAgainAfterAnErase) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  auto deliver = [&](std::string text, std::int64_t at_ms) {
    auto out = dest->deliver(std::vector<sdk::Event>{event(std::move(text), at_ms)});
    EXPECT_THAT(kinds(out), ElementsAre(Kind::Delivered));
  };
  auto identities = [&] { return sql("SELECT kind, value, person_id FROM junction.identities ORDER BY 1, 2"); };
  deliver(R"({"type":"page","name":"Home","anonymousId":"a1","messageId":"m1"})", kT0);
  EXPECT_EQ(identities(), (Rows{{"anonymousId", "a1", "anon:a1"}}));
  deliver(R"({"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m2"})", kT0 + 1);
  EXPECT_EQ(identities(), (Rows{{"anonymousId", "a1", "user:u1"}, {"userId", "u1", "user:u1"}}));
  // The visitor's anonymous id alone again: the link to the user stays.
  deliver(R"({"type":"page","name":"Home","anonymousId":"a1","messageId":"m3"})", kT0 + 2);
  EXPECT_EQ(identities(), (Rows{{"anonymousId", "a1", "user:u1"}, {"userId", "u1", "user:u1"}}));
  EXPECT_EQ(dest->erase(sdk::Person{.user_id = "u1", .anonymous_id = "a1", .email = ""}).kind,
            Kind::Delivered);
  EXPECT_EQ(identities(), Rows{});
  // Known as written before the erasure, gone since: written again.
  deliver(R"({"type":"track","event":"Back","userId":"u1","anonymousId":"a1","messageId":"m4"})", kT0 + 3);
  EXPECT_EQ(identities(), (Rows{{"anonymousId", "a1", "user:u1"}, {"userId", "u1", "user:u1"}}));
}

TEST_F(PostgresDestinationTest, EraseRemovesThePersonFromEveryTable) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  dest->deliver(std::vector<sdk::Event>{
      event(R"({"type":"page","name":"Home","anonymousId":"a1","messageId":"p1","properties":{"path":"/"}})", kT0),
      event(R"({"type":"identify","userId":"u1","anonymousId":"a1","messageId":"i1","traits":{"email":"ada@x.io"}})", kT0 + 1),
      event(R"({"type":"track","event":"Order Completed","userId":"u1","messageId":"o1","properties":{"revenue":5}})", kT0 + 2),
      event(R"({"type":"track","event":"Clicked","userId":"u2","messageId":"c2"})", kT0 + 3)});
  auto done = dest->erase(sdk::Person{.user_id = "", .anonymous_id = "", .email = "ADA@x.io"});
  EXPECT_EQ(done.kind, Kind::Delivered) << done.reason;
  EXPECT_THAT(done.reason, HasSubstr("removed 3 events"));
  EXPECT_EQ(sql("SELECT message_id FROM junction.events"), (Rows{{"c2"}}));
  for (const char* table : {"pages", "purchases", "profiles"}) {
    EXPECT_EQ(scalar(std::string("SELECT count(*) FROM junction.") + table), "0") << table;
  }
  EXPECT_EQ(sql("SELECT kind, value FROM junction.identities ORDER BY 1"), (Rows{{"userId", "u2"}}));
  auto v = dest->verify({.events = 4});
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->matches) << v->report;
  EXPECT_THAT(v->report, HasSubstr("removed: 3 rows"));
}

TEST_F(PostgresDestinationTest, RetentionDropsOldDaysAndRecordsTheirEvents) {
  ctx_.manualClock().setNowMs(kT0);
  PostgresConfig c = config();
  c.retention_days = 3;
  auto dest = started(c);
  dest->deliver(std::vector<sdk::Event>{
      event(R"({"type":"track","event":"Old","userId":"u","messageId":"old1"})", kT0 - 10 * kDayMs),
      event(R"({"type":"track","event":"Old","userId":"u","messageId":"old2"})", kT0 - 10 * kDayMs + 5),
      event(R"({"type":"track","event":"Recent","userId":"u","messageId":"new1"})", kT0 - 2 * kDayMs),
      event(R"({"type":"track","event":"Now","userId":"u","messageId":"now1"})", kT0)});
  EXPECT_EQ(scalar("SELECT count(*) FROM junction.events"), "4");
  auto dropped = dest->applyRetention();
  ASSERT_TRUE(dropped) << dropped.error().message;
  EXPECT_EQ(*dropped, 1);
  EXPECT_EQ(sql("SELECT message_id FROM junction.events ORDER BY 1"), (Rows{{"new1"}, {"now1"}}));
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_class WHERE relname LIKE '%_p20251222'"), "0");
  EXPECT_EQ(sql("SELECT reason, rows_removed FROM junction._junction_removals"),
            (Rows{{"retention 2025-12-22", "2"}}));
  auto v = dest->verify({.events = 4});
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->matches) << v->report;
}

TEST_F(PostgresDestinationTest, VerifyReportsMissingExtraAndTamperedRows) {
  ctx_.manualClock().setNowMs(kT0);
  auto dest = started(config());
  dest->deliver(std::vector<sdk::Event>{
      event(R"({"type":"track","event":"A","userId":"u","messageId":"v1"})", kT0),
      event(R"({"type":"track","event":"B","userId":"u","messageId":"v2"})", kT0 + 1),
      event(R"({"type":"track","event":"C","userId":"u","messageId":"v3"})", kT0 + 2)});
  auto ok = dest->verify({.events = 3});
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->matches) << ok->report;
  EXPECT_THAT(ok->report, HasSubstr("3 inserted"));

  auto missing = dest->verify({.events = 5});
  EXPECT_FALSE(missing->matches);
  EXPECT_THAT(missing->report, HasSubstr("2 events the daemon delivered are in no load"));

  auto extra = dest->verify({.events = 1});
  EXPECT_FALSE(extra->matches);
  EXPECT_THAT(extra->report, HasSubstr("2 more events inserted than the daemon has committed"));

  sql("UPDATE junction.events SET message_id = 'forged' WHERE message_id = 'v2'");
  auto tampered = dest->verify({.events = 3});
  EXPECT_FALSE(tampered->matches);
  EXPECT_THAT(tampered->report, HasSubstr("checksum"));
}

// The README's example queries, run against loaded data (timestamps relative to now()).
TEST_F(PostgresDestinationTest, TheReadmeExampleQueriesRunAndAnswerRight) {
  std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/plugins/postgres/README.md");
  std::stringstream text;
  text << in.rdbuf();
  std::map<std::string, std::string> queries;
  const std::string s = text.str();
  const std::regex block("```sql\\n-- name: (\\w+)\\n([\\s\\S]*?)```");
  for (std::sregex_iterator it(s.begin(), s.end(), block), end; it != end; ++it) {
    queries[(*it)[1]] = (*it)[2];
  }
  ASSERT_EQ(queries.size(), 4u);

  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  ctx_.manualClock().setNowMs(now);
  auto dest = started(config());
  const std::int64_t min = 60'000;
  auto out = dest->deliver(std::vector<sdk::Event>{
      // ada viewed, anonymously, then identified; did not buy.
      event(R"({"type":"track","event":"Product Viewed","anonymousId":"anon-ada","messageId":"q1","properties":{"sku":"S1"}})", now - 30 * min),
      event(R"({"type":"identify","userId":"ada","anonymousId":"anon-ada","messageId":"q2","traits":{"email":"ada@example.com"}})", now - 25 * min),
      // bob viewed and bought.
      event(R"({"type":"track","event":"Product Viewed","userId":"bob","messageId":"q3","properties":{"sku":"S2"}})", now - 20 * min),
      event(R"({"type":"track","event":"Order Completed","userId":"bob","messageId":"q4","properties":{"order_id":"1","revenue":30}})", now - 10 * min),
      // cy viewed two hours ago: out of the window.
      event(R"({"type":"track","event":"Product Viewed","userId":"cy","messageId":"q5","properties":{"sku":"S3"}})", now - 120 * min),
      event(R"({"type":"page","name":"Home","userId":"cy","messageId":"q6","properties":{"path":"/"}})", now - 5 * min),
      event(R"({"type":"page","name":"Home","userId":"bob","messageId":"q7","properties":{"path":"/"}})", now - 4 * min),
      event(R"({"type":"page","name":"Shoes","userId":"bob","messageId":"q8","properties":{"path":"/shoes"}})", now - 3 * min)});
  EXPECT_EQ(kinds(out), std::vector<Kind>(8, Kind::Delivered));

  EXPECT_EQ(sql(queries["viewed_not_bought"]), (Rows{{"user:ada"}}));
  auto revenue = sql(queries["revenue_by_day"]);
  ASSERT_EQ(revenue.size(), 1u);
  EXPECT_EQ(revenue[0][1], "1");
  EXPECT_EQ(revenue[0][2], "30");
  auto profile = sql(queries["profile_by_email"]);
  ASSERT_EQ(profile.size(), 1u);
  EXPECT_EQ(profile[0][0], "user:ada");
  EXPECT_EQ(profile[0][1], "ada@example.com");
  EXPECT_EQ(sql(queries["top_pages"]), (Rows{{"/", "2", "2"}, {"/shoes", "1", "1"}}));
}

}  // namespace
}  // namespace junction::plugins::postgres
