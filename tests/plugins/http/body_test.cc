#include "body.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "auth.h"
#include "junction/sdk/crypto.h"
#include "tests/plugins/http/test_util.h"

namespace junction::plugins::http {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

TEST(EndpointTest, LongAndShortPaths) {
  EXPECT_EQ(endpointForPath("/v1/track"), Endpoint::Track);
  EXPECT_EQ(endpointForPath("/v1/t"), Endpoint::Track);
  EXPECT_EQ(endpointForPath("/v1/i"), Endpoint::Identify);
  EXPECT_EQ(endpointForPath("/v1/p"), Endpoint::Page);
  EXPECT_EQ(endpointForPath("/v1/s"), Endpoint::Screen);
  EXPECT_EQ(endpointForPath("/v1/g"), Endpoint::Group);
  EXPECT_EQ(endpointForPath("/v1/a"), Endpoint::Alias);
  EXPECT_EQ(endpointForPath("/v1/b"), Endpoint::Batch);
  EXPECT_EQ(endpointForPath("/v1/batch"), Endpoint::Batch);
  EXPECT_EQ(endpointForPath("/v1/m"), std::nullopt);
  EXPECT_EQ(endpointForPath("/v2/track"), std::nullopt);
  EXPECT_EQ(eventTypeOf(Endpoint::Alias), sdk::EventType::Alias);
  EXPECT_EQ(eventTypeOf(Endpoint::Batch), std::nullopt);
}

TEST(DecodeBodyTest, IdentityPassesThroughWithinTheLimit) {
  auto r = decodeBody("", "{\"a\":1}", 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "{\"a\":1}");
  EXPECT_TRUE(decodeBody("identity", "x", 10).ok());
  auto big = decodeBody("", std::string(11, 'x'), 10);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, sdk::ErrorCode::ResourceExhausted);
}

TEST(DecodeBodyTest, GzipAndZlib) {
  const std::string text = R"({"type":"track","event":"E","userId":"u"})";
  auto gz = decodeBody("gzip", testing::compress(text, true), 1000);
  ASSERT_TRUE(gz.ok()) << gz.error().message;
  EXPECT_EQ(*gz, text);
  auto z = decodeBody("deflate", testing::compress(text, false), 1000);
  ASSERT_TRUE(z.ok()) << z.error().message;
  EXPECT_EQ(*z, text);
  auto upper = decodeBody(" GZIP ", testing::compress(text, true), 1000);
  ASSERT_TRUE(upper.ok());
}

TEST(DecodeBodyTest, ZipBombIsStoppedAtTheLimit) {
  const std::string zeros(50 * 1024 * 1024, '0');
  const std::string bomb = testing::compress(zeros);
  EXPECT_LT(bomb.size(), 500u * 1024);  // under the body limit: only decoding finds it
  auto r = decodeBody("gzip", bomb, 500 * 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, sdk::ErrorCode::ResourceExhausted);
  EXPECT_THAT(r.error().message, HasSubstr("larger than 512000 bytes"));
}

TEST(DecodeBodyTest, CorruptTruncatedAndUnsupported) {
  auto corrupt = decodeBody("gzip", "not gzip at all", 1000);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.error().code, sdk::ErrorCode::InvalidArgument);
  std::string gz = testing::compress(std::string(1000, 'a'));
  auto truncated = decodeBody("gzip", gz.substr(0, gz.size() / 2), 10000);
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(truncated.error().message, HasSubstr("truncated"));
  auto br = decodeBody("br", "x", 100);
  ASSERT_FALSE(br.ok());
  EXPECT_THAT(br.error().message, HasSubstr("unsupported Content-Encoding"));
}

TEST(ParseBodyTest, SingleEventNeedsAnObject) {
  auto ok = parseBody(Endpoint::Track, R"({"event":"E","writeKey":"k"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->items().size(), 1u);
  EXPECT_EQ(ok->writeKey(), "k");
  EXPECT_FALSE(ok->isBatch());
  auto arr = parseBody(Endpoint::Track, "[1]");
  ASSERT_FALSE(arr.ok());
  EXPECT_EQ(arr.error().message, "expected a JSON object");
  auto bad = parseBody(Endpoint::Track, "{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("invalid JSON at line 1"));
}

TEST(ParseBodyTest, BatchFieldsAndKeys) {
  auto p = parseBody(Endpoint::Batch,
                     R"({"batch":[{"type":"track"},2],"context":{"library":{"name":"x"}},
                         "integrations":{"All":true},"sentAt":"2026-01-01T00:00:00Z"})");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->isBatch());
  EXPECT_EQ(p->items().size(), 2u);
  ASSERT_NE(p->batchContext(), nullptr);
  EXPECT_TRUE(p->batchContext()->contains("library"));
  ASSERT_NE(p->batchIntegrations(), nullptr);
  EXPECT_EQ(p->batchSentAt(), "2026-01-01T00:00:00Z");
  EXPECT_EQ(p->writeKey(), std::nullopt);

  // analytics.js' batching dispatcher: the key is in the events.
  auto inner = parseBody(Endpoint::Batch, R"({"batch":[{"writeKey":"wk"}]})");
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(inner->writeKey(), "wk");
  // A bare array is a batch too.
  auto bare = parseBody(Endpoint::Batch, R"([{"type":"track"}])");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->items().size(), 1u);
  EXPECT_EQ(bare->batchContext(), nullptr);
  auto none = parseBody(Endpoint::Batch, R"({"events":[]})");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, "batch body without a \"batch\" array");
}

TEST(AuthTest, BasicAuthUserName) {
  EXPECT_EQ(basicAuthUser("Basic " + sdk::base64Encode("key1:")), "key1");
  EXPECT_EQ(basicAuthUser("basic " + sdk::base64Encode("key1:pw")), "key1");
  EXPECT_EQ(basicAuthUser("Basic " + sdk::base64Encode("bare")), "bare");
  EXPECT_EQ(basicAuthUser("Bearer abc"), std::nullopt);
  EXPECT_EQ(basicAuthUser("Basic !!!"), std::nullopt);
  EXPECT_EQ(basicAuthUser(""), std::nullopt);
}

TEST(AuthTest, SeveralKeysForRotation) {
  WriteKeys keys({"old", "new"});
  EXPECT_TRUE(keys.accepts("old"));
  EXPECT_TRUE(keys.accepts("new"));
  EXPECT_FALSE(keys.accepts("ne"));
  EXPECT_FALSE(keys.accepts(""));
  EXPECT_FALSE(WriteKeys({}).accepts("x"));
}

}  // namespace
}  // namespace junction::plugins::http
