// X-Junction-Signature: the exact header the sender writes, and every way a receiver's check
// can fail. Expected values come from Python's hmac module, not from this implementation.

#include "junction/sdk/webhook_signature.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "junction/sdk/crypto.h"

namespace junction::sdk {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr std::int64_t kT = 1767225600;  // 2026-01-01T00:00:00Z
constexpr std::string_view kSecret = "whsec_test";
constexpr std::string_view kBody = R"({"batch":[]})";
// python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test",
//   b"1767225600.{\"batch\":[]}", hashlib.sha256).hexdigest())'
constexpr std::string_view kExpectedHex =
    "3ca1d74f15fa2f3ecb4727ee55b5dd4d93ef40ba27f3b5124d15474b00c56e38";

TEST(WebhookSignatureTest, SignsTimestampDotBody) {
  EXPECT_EQ(webhookSignatureHex(kSecret, kT, kBody), kExpectedHex);
  EXPECT_EQ(signWebhook(kSecret, kT, kBody), "t=1767225600,v1=" + std::string(kExpectedHex));
  // The same as a one-shot HMAC over the concatenation.
  EXPECT_EQ(webhookSignatureHex(kSecret, kT, kBody),
            hmacSha256Hex(kSecret, "1767225600." + std::string(kBody)));
}

TEST(WebhookSignatureTest, EmptySecretAndBodyStillSign) {
  // hmac.new(b"", b"0.", hashlib.sha256).hexdigest()
  EXPECT_EQ(webhookSignatureHex("", 0, ""),
            "b849d5a581847b281957065739df36df2463d1977ea8d6e1e4e6cf33fadc68c3");
}

TEST(WebhookSignatureTest, LargeBodyIsHashedWhole) {
  const std::string body(3 * 1024 * 1024 + 7, 'x');
  EXPECT_EQ(webhookSignatureHex("k", 42, body), hmacSha256Hex("k", "42." + body));
}

TEST(WebhookSignatureTest, AcceptsItsOwnSignature) {
  const auto header = signWebhook(kSecret, kT, kBody);
  EXPECT_TRUE(verifyWebhookSignature(header, kSecret, kBody, kT).ok());
  EXPECT_TRUE(verifyWebhookSignature(header, kSecret, kBody, kT + 300, 300s).ok());
  EXPECT_TRUE(verifyWebhookSignature(header, kSecret, kBody, kT - 300, 300s).ok());
}

TEST(WebhookSignatureTest, WrongSecretIsAMismatch) {
  const auto status = verifyWebhookSignature(signWebhook("other", kT, kBody), kSecret, kBody, kT);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::PermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("does not match"));
  EXPECT_THAT(status.message(), Not(HasSubstr(std::string(kSecret))));
  EXPECT_THAT(status.message(), Not(HasSubstr(std::string(kExpectedHex))));
}

TEST(WebhookSignatureTest, ChangedBodyOrTimestampIsAMismatch) {
  const auto header = signWebhook(kSecret, kT, kBody);
  EXPECT_EQ(verifyWebhookSignature(header, kSecret, R"({"batch":[ ]})", kT).error().code,
            ErrorCode::PermissionDenied);
  // The timestamp is signed: moving it forward to dodge the tolerance breaks the signature.
  const std::string moved = "t=" + std::to_string(kT + 1000) + ",v1=" + std::string(kExpectedHex);
  const auto status = verifyWebhookSignature(moved, kSecret, kBody, kT + 1000);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("does not match"));
}

TEST(WebhookSignatureTest, UpperCaseHexIsNotAccepted) {
  std::string upper(kExpectedHex);
  for (auto& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  EXPECT_FALSE(verifyWebhookSignature("t=1767225600,v1=" + upper, kSecret, kBody, kT).ok());
}

TEST(WebhookSignatureTest, StaleOrFutureTimestampWithAGoodSignature) {
  const auto header = signWebhook(kSecret, kT, kBody);
  auto old = verifyWebhookSignature(header, kSecret, kBody, kT + 301, 300s);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, ErrorCode::InvalidArgument);
  EXPECT_THAT(old.message(), HasSubstr("301 s old (tolerance 300 s)"));
  auto future = verifyWebhookSignature(header, kSecret, kBody, kT - 61, 60s);
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, ErrorCode::InvalidArgument);
  EXPECT_THAT(future.message(), HasSubstr("61 s in the future (tolerance 60 s)"));
}

TEST(WebhookSignatureTest, ABadSignatureIsReportedBeforeTheTime) {
  // Without the secret nobody learns whether the timestamp would have passed.
  const auto status =
      verifyWebhookSignature(signWebhook("other", kT, kBody), kSecret, kBody, kT + 10000);
  EXPECT_EQ(status.error().code, ErrorCode::PermissionDenied);
}

TEST(WebhookSignatureTest, MissingParts) {
  struct Case {
    std::string header;
    std::string message;
  };
  const std::string v1 = "v1=" + std::string(kExpectedHex);
  for (const Case& c : std::initializer_list<Case>{
           {"", "is missing"},
           {"   ", "is missing"},
           {v1, "has no t= timestamp"},
           {"t=1767225600", "has no v1= signature"},
           {"t=1767225600,v0=" + std::string(kExpectedHex), "has no v1= signature"},
           {"t=," + v1, "not a Unix time"},
           {"t=abc," + v1, "not a Unix time"},
           {"t=12x," + v1, "not a Unix time"},
           {"t=-5," + v1, "not a Unix time"},
           {"t=99999999999999999999," + v1, "not a Unix time"},
           {"t=1767225600,t=1767225600," + v1, "more than one t="},
           {"t=1767225600,v1=", "does not match"},
           {"garbage", "has no t= timestamp"},
       }) {
    const auto status = verifyWebhookSignature(c.header, kSecret, kBody, kT);
    ASSERT_FALSE(status.ok()) << c.header;
    EXPECT_EQ(status.error().code, ErrorCode::PermissionDenied) << c.header;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.header;
    EXPECT_THAT(status.message(), HasSubstr("X-Junction-Signature")) << c.header;
  }
}

TEST(WebhookSignatureTest, EmptySecretVerifiesNothing) {
  const auto status = verifyWebhookSignature(signWebhook("", kT, kBody), "", kBody, kT);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::PermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("no secret"));
}

TEST(WebhookSignatureTest, RotatedSecretsEitherV1Verifies) {
  // During a rotation the sender signs with the new and the old secret; a receiver holding
  // either one accepts, and one holding neither refuses.
  const std::string header =
      signWebhook("new-secret", kT, kBody) + ",v1=" + webhookSignatureHex("old-secret", kT, kBody);
  EXPECT_TRUE(verifyWebhookSignature(header, "new-secret", kBody, kT).ok());
  EXPECT_TRUE(verifyWebhookSignature(header, "old-secret", kBody, kT).ok());
  EXPECT_FALSE(verifyWebhookSignature(header, "third", kBody, kT).ok());
}

TEST(WebhookSignatureTest, ToleratesSpacesOrderAndUnknownSchemes) {
  const std::string v1 = std::string(kExpectedHex);
  EXPECT_TRUE(
      verifyWebhookSignature(" t = 1767225600 , v1 = " + v1 + " ", kSecret, kBody, kT).ok());
  EXPECT_TRUE(verifyWebhookSignature("v1=" + v1 + ",t=1767225600", kSecret, kBody, kT).ok());
  EXPECT_TRUE(
      verifyWebhookSignature("t=1767225600,v2=abc,v1=" + v1 + ",x", kSecret, kBody, kT).ok());
}

}  // namespace
}  // namespace junction::sdk
