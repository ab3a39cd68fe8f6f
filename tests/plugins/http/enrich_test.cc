#include "enrich.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <regex>
#include <set>

namespace junction::plugins::http {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr std::int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00.000Z

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

EnrichInput input(ClientIpPolicy policy = ClientIpPolicy::Keep, std::string_view ip = "203.0.113.7") {
  EnrichInput in;
  in.received_at_ms = kNow;
  in.client_ip = ip;
  in.ip_policy = policy;
  return in;
}

TEST(EnrichTest, GeneratesMessageIdAndReceivedAt) {
  auto e = obj(R"({"type":"track","event":"E","userId":"u"})");
  auto r = enrichEvent(e, input());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->generated_message_id);
  const std::string id(e.at("messageId").as_string());
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << id;
  EXPECT_EQ(e.at("receivedAt"), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(e.at("timestamp"), "2026-01-01T00:00:00.000Z");  // no client time: receivedAt
}

TEST(EnrichTest, KeepsAClientMessageId) {
  auto e = obj(R"({"type":"track","event":"E","userId":"u","messageId":"m-1"})");
  auto r = enrichEvent(e, input());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->generated_message_id);
  EXPECT_EQ(e.at("messageId"), "m-1");
  auto empty = obj(R"({"messageId":""})");
  EXPECT_TRUE(enrichEvent(empty, input())->generated_message_id);
}

TEST(EnrichTest, GeneratedMessageIdsAreDistinct) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    auto e = obj(R"({"type":"track","event":"E","userId":"u"})");
    ASSERT_TRUE(enrichEvent(e, input()).ok());
    ids.insert(std::string(e.at("messageId").as_string()));
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(EnrichTest, CorrectsClockSkewFromSentAt) {
  // The client's clock is 1 hour fast: it stamped the event at 01:00:00 and sent it 2 s later
  // (01:00:02 on its clock); we received it at 00:00:00. Corrected: 00:00:00 - 2 s.
  auto e = obj(R"({"type":"track","event":"E","userId":"u",
                   "timestamp":"2026-01-01T01:00:00.000Z","sentAt":"2026-01-01T01:00:02.000Z"})");
  ASSERT_TRUE(enrichEvent(e, input()).ok());
  EXPECT_EQ(e.at("timestamp"), "2025-12-31T23:59:58.000Z");
  EXPECT_EQ(e.at("originalTimestamp"), "2026-01-01T01:00:00.000Z");
  EXPECT_EQ(e.at("sentAt"), "2026-01-01T01:00:02.000Z");
}

TEST(EnrichTest, OriginalTimestampAndBatchSentAt) {
  auto e = obj(R"({"originalTimestamp":"2026-01-01T00:00:10+00:00"})");
  EnrichInput in = input();
  in.batch_sent_at = "2026-01-01T00:00:15Z";
  ASSERT_TRUE(enrichEvent(e, in).ok());
  EXPECT_EQ(e.at("timestamp"), "2025-12-31T23:59:55.000Z");
  EXPECT_EQ(e.at("originalTimestamp"), "2026-01-01T00:00:10+00:00");
}

TEST(EnrichTest, WithoutSentAtTheClientTimeStays) {
  auto e = obj(R"({"timestamp":"2025-06-01T12:00:00Z"})");
  ASSERT_TRUE(enrichEvent(e, input()).ok());
  EXPECT_EQ(e.at("timestamp"), "2025-06-01T12:00:00Z");
  EXPECT_FALSE(e.contains("originalTimestamp"));
  auto bad_sent = obj(R"({"timestamp":"2025-06-01T12:00:00Z","sentAt":"yesterday"})");
  ASSERT_TRUE(enrichEvent(bad_sent, input()).ok());
  EXPECT_EQ(bad_sent.at("timestamp"), "2025-06-01T12:00:00Z");
}

TEST(EnrichTest, MalformedTimestampIsAnError) {
  auto e = obj(R"({"timestamp":"last tuesday"})");
  auto r = enrichEvent(e, input());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "\"timestamp\" is not an ISO-8601 date-time");
  auto n = obj(R"({"originalTimestamp":12})");
  EXPECT_FALSE(enrichEvent(n, input()).ok());
}

TEST(EnrichTest, ForcesTheEndpointTypeAndRemovesTheWriteKey) {
  auto e = obj(R"({"type":"page","writeKey":"secret","userId":"u"})");
  EnrichInput in = input();
  in.forced_type = sdk::EventType::Identify;
  ASSERT_TRUE(enrichEvent(e, in).ok());
  EXPECT_EQ(e.at("type"), "identify");
  EXPECT_FALSE(e.contains("writeKey"));
}

TEST(EnrichTest, MergesBatchContextWithoutOverriding) {
  auto e = obj(R"({"context":{"locale":"fr"}})");
  json::object ctx = obj(R"({"locale":"en","library":{"name":"analytics-python"}})");
  json::object integ = obj(R"({"All":false})");
  EnrichInput in = input();
  in.batch_context = &ctx;
  in.batch_integrations = &integ;
  ASSERT_TRUE(enrichEvent(e, in).ok());
  EXPECT_EQ(e.at("context").at("locale"), "fr");
  EXPECT_EQ(e.at("context").at("library").at("name"), "analytics-python");
  EXPECT_EQ(e.at("integrations").at("All"), false);
}

TEST(EnrichTest, ClientIpPolicies) {
  auto keep = obj(R"({})");
  ASSERT_TRUE(enrichEvent(keep, input(ClientIpPolicy::Keep)).ok());
  EXPECT_EQ(keep.at("context").at("ip"), "203.0.113.7");

  auto own = obj(R"({"context":{"ip":"198.51.100.23"}})");
  ASSERT_TRUE(enrichEvent(own, input(ClientIpPolicy::Keep)).ok());
  EXPECT_EQ(own.at("context").at("ip"), "198.51.100.23");  // relayed by a server-side SDK

  auto drop = obj(R"({"context":{"ip":"198.51.100.23"}})");
  ASSERT_TRUE(enrichEvent(drop, input(ClientIpPolicy::Drop)).ok());
  EXPECT_FALSE(drop.at("context").as_object().contains("ip"));

  auto trunc = obj(R"({})");
  ASSERT_TRUE(enrichEvent(trunc, input(ClientIpPolicy::Truncate)).ok());
  EXPECT_EQ(trunc.at("context").at("ip"), "203.0.113.0");

  auto trunc6 = obj(R"({})");
  ASSERT_TRUE(enrichEvent(trunc6, input(ClientIpPolicy::Truncate, "2001:db8:85a3:1:2:8a2e:370:7334")).ok());
  EXPECT_EQ(trunc6.at("context").at("ip"), "2001:db8:85a3::");

  auto garbage = obj(R"({"context":{"ip":"not an ip"}})");
  ASSERT_TRUE(enrichEvent(garbage, input(ClientIpPolicy::Truncate)).ok());
  EXPECT_FALSE(garbage.at("context").as_object().contains("ip"));

  auto no_ip = obj(R"({})");
  ASSERT_TRUE(enrichEvent(no_ip, input(ClientIpPolicy::Keep, "")).ok());
  EXPECT_FALSE(no_ip.contains("context"));
}

TEST(EnrichTest, TruncateIp) {
  EXPECT_EQ(truncateIp("10.1.2.3"), "10.1.2.0");
  EXPECT_EQ(truncateIp("::1"), "::");
  EXPECT_EQ(truncateIp("2001:db8:1234:ffff::1"), "2001:db8:1234::");
  EXPECT_EQ(truncateIp("1.2.3"), std::nullopt);
  EXPECT_EQ(truncateIp(""), std::nullopt);
  EXPECT_EQ(truncateIp(std::string(100, '1')), std::nullopt);
}

TEST(EnrichTest, ToEventFillsTheHeaderSoIngestKeepsIt) {
  auto e = obj(R"({"type":"track","event":"Signed Up","userId":"u1"})");
  ASSERT_TRUE(enrichEvent(e, input()).ok());
  auto event = toEvent(e, "web", kNow);
  ASSERT_TRUE(event.ok()) << event.error().message;
  EXPECT_EQ(event->header().source_id, "web");
  EXPECT_EQ(event->header().received_at_ms, kNow);
  EXPECT_EQ(event->header().timestamp_ms, kNow);
  EXPECT_FALSE(event->messageId().empty());
  EXPECT_EQ(event->name(), "Signed Up");
  EXPECT_THAT(std::string(event->json()), HasSubstr("\"receivedAt\":\"2026-01-01T00:00:00.000Z\""));

  auto no_event = obj(R"({"type":"track","userId":"u1"})");
  auto bad = toEvent(no_event, "web", kNow);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "track event without \"event\"");
  auto no_user = obj(R"({"type":"identify"})");
  EXPECT_EQ(toEvent(no_user, "web", kNow).error().message, "missing \"userId\" or \"anonymousId\"");
}

}  // namespace
}  // namespace junction::plugins::http
