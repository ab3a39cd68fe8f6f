// DeliveryCall: one deliver() call's classification of a vendor's answers (throttled once, the
// call stopped by a rate limit or an unreachable vendor).

#include "junction/sdk/delivery_call.h"

#include <gtest/gtest.h>

#include "junction/sdk/testing/fake_context.h"

namespace junction::sdk {
namespace {

using namespace std::chrono_literals;

HttpClientResponse answer(int status, std::chrono::milliseconds retry_after = {}) {
  HttpClientResponse r;
  r.status = status;
  r.classification = classifyStatus(status);
  r.retry_after = retry_after;
  return r;
}

TEST(DeliveryCallTest, EachClassificationHasItsOutcome) {
  testing::FakeDestinationContext ctx;
  DeliveryCall call(ctx, "Vendor");
  EXPECT_TRUE(call.classify(answer(200), "r", "a").isDelivered());
  const Outcome busy = call.classify(answer(503, 2s), "HTTP 503", "a");
  EXPECT_EQ(busy.kind, Outcome::Kind::Retry);
  EXPECT_EQ(busy.retry_after, 2s);
  EXPECT_FALSE(call.stop());  // a 5xx is about this request
  const Outcome auth = call.classify(answer(401), "HTTP 401", "INVALID_SESSION_ID");
  EXPECT_EQ(auth.kind, Outcome::Kind::Failed);
  EXPECT_EQ(auth.reason, "authentication failed: INVALID_SESSION_ID");
  const Outcome bad = call.classify(answer(400), "HTTP 400: bad field", "a");
  EXPECT_EQ(bad.kind, Outcome::Kind::Failed);
  EXPECT_EQ(bad.reason, "HTTP 400: bad field");
  EXPECT_TRUE(ctx.throttles().empty());
  EXPECT_FALSE(call.stop());
}

TEST(DeliveryCallTest, ARateLimitThrottlesOnceAndStopsTheCall) {
  testing::FakeDestinationContext ctx;
  DeliveryCall call(ctx, "Vendor");
  const Outcome first = call.classify(answer(429, 3s), "HTTP 429", "a");
  EXPECT_EQ(first.kind, Outcome::Kind::Retry);
  EXPECT_EQ(first.reason, "Vendor rate limit: HTTP 429");
  ASSERT_TRUE(call.stop());
  EXPECT_EQ(call.stop()->retry_after, 3s);
  EXPECT_TRUE(call.throttled());
  (void)call.limited("daily limit", 60s);
  EXPECT_EQ(ctx.throttles(), std::vector<std::chrono::milliseconds>{3s});
  EXPECT_EQ(call.stop()->reason, "daily limit");
  EXPECT_TRUE(ctx.log().contains("Vendor limits the account"));
}

TEST(DeliveryCallTest, AnUnreachableVendorStopsTheCallWithoutThrottling) {
  testing::FakeDestinationContext ctx;
  DeliveryCall call(ctx, "Vendor");
  const Outcome down = call.classify(answer(0), "transport: Connection refused", "a");
  EXPECT_EQ(down.kind, Outcome::Kind::Retry);
  ASSERT_TRUE(call.stop());
  EXPECT_EQ(call.stop()->reason, "transport: Connection refused");
  EXPECT_TRUE(ctx.throttles().empty());
}

}  // namespace
}  // namespace junction::sdk
