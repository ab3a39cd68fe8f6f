#include "junction/sdk/crypto.h"

#include <gtest/gtest.h>

#include <string>

namespace junction::sdk {
namespace {

TEST(CryptoTest, Md5KnownVectors) {
  // RFC 1321 appendix A.5.
  EXPECT_EQ(md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5Hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
}

TEST(CryptoTest, Md5OfLowercasedEmailAsMailchimpUsesIt) {
  EXPECT_EQ(md5Hex("urist.mcvankab@freddiesjokes.com"), "62eeb292278cc15f5817cb78f7790b08");
}

TEST(CryptoTest, Sha256KnownVectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CryptoTest, Sha256RawIs32BytesMatchingHex) {
  const std::string raw = sha256Raw("abc");
  ASSERT_EQ(raw.size(), 32u);
  EXPECT_EQ(hexEncode(raw), sha256Hex("abc"));
  EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0xba);
}

TEST(CryptoTest, HmacSha256Rfc4231) {
  // Test case 1: 20 bytes of 0x0b, "Hi There".
  EXPECT_EQ(hmacSha256Hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 2: key "Jefe".
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block size is hashed first.
  EXPECT_EQ(hmacSha256Hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(CryptoTest, HmacWithEmptyKeyIsDefined) {
  // HMAC-SHA256("", "") — a well-known value.
  EXPECT_EQ(hmacSha256Hex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(CryptoTest, HmacBase64MatchesRawEncoding) {
  EXPECT_EQ(hmacSha256Base64("Jefe", "what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
  EXPECT_EQ(hmacSha256Base64("k", "d"), base64Encode(hmacSha256Raw("k", "d")));
}

TEST(CryptoTest, Base64Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64Encode(plain), encoded) << plain;
    auto decoded = base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.error().message;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(CryptoTest, Base64RoundTripsBinary) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) {
    bytes.push_back(static_cast<char>(i));
  }
  auto decoded = base64Decode(base64Encode(bytes));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, bytes);
}

TEST(CryptoTest, Base64DecodeAcceptsMissingPadding) {
  auto decoded = base64Decode("Zm9vYg");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "foob");
}

TEST(CryptoTest, Base64DecodeRefusesGarbage) {
  for (const char* bad :
       {"Zm9v!", "Z", "Zm=v", "Zm9vY===", "Zm9v Yg==", "Zh==", "Zm9vYg=", "-_8="}) {
    auto decoded = base64Decode(bad);
    EXPECT_FALSE(decoded.ok()) << bad;
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.error().code, ErrorCode::InvalidArgument);
      EXPECT_NE(decoded.error().message.find("offset"), std::string::npos);
    }
  }
}

TEST(CryptoTest, HexEncode) {
  EXPECT_EQ(hexEncode(""), "");
  EXPECT_EQ(hexEncode(std::string("\x00\x01\xab\xff", 4)), "0001abff");
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals("secret", "secret"));
  EXPECT_FALSE(constantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(constantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(constantTimeEquals("", "x"));
}

}  // namespace
}  // namespace junction::sdk
