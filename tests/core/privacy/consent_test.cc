// mayStateConsent: the filter that spares most events a parse before their consent is read. It
// must never say "no" to an event that states consent, wherever the key falls in the text (the
// SIMD loop's 16-byte blocks, the tail after them) and however the key is written.

#include <gtest/gtest.h>

#include <string>

#include "core/privacy/consent.h"

namespace junction::core::privacy {
namespace {

TEST(MayStateConsentTest, FindsTheKeyAtEveryOffset) {
  for (const std::string key : {"consent", "consentManagement", "onsent"}) {
    for (std::size_t before = 0; before < 48; ++before) {
      for (std::size_t after = 0; after < 20; ++after) {
        const std::string text = std::string(before, 'x') + key + std::string(after, 'y');
        EXPECT_TRUE(mayStateConsent(text)) << text;
      }
    }
  }
}

TEST(MayStateConsentTest, SaysNoToTextsWithoutIt) {
  EXPECT_FALSE(mayStateConsent(""));
  EXPECT_FALSE(mayStateConsent("onsen"));
  for (std::size_t before = 0; before < 40; ++before) {
    // 'o' and 't' five apart (the two bytes the SIMD loop tests), but not "onsent".
    for (const std::string near : {"onsenT", "oXXXXt", "onsext", "Onsent", "onsen t"}) {
      const std::string text = std::string(before, 'o') + near + std::string(before % 7, 't');
      EXPECT_FALSE(mayStateConsent(text)) << text;
    }
  }
  EXPECT_FALSE(mayStateConsent(
      R"({"type":"track","event":"Product Viewed","userId":"u1","properties":{"path":"a\\b"},)"
      R"("context":{"library":{"name":"analytics.js"}}})"));
}

TEST(MayStateConsentTest, AKeyWrittenWithUnicodeEscapesMightSpellIt) {
  EXPECT_TRUE(mayStateConsent(R"({"context":{"c\u006fnsent":{}}})"));
  EXPECT_TRUE(mayStateConsent(R"({"x":"\n","context":{"\u0063onsent":{}}})"));
}

TEST(ReadConsentTest, ReadsAConsentKeyWrittenWithEscapes) {
  sdk::EventHeader h;
  h.user_id = "u1";
  const sdk::Event event(
      h, R"({"type":"identify","userId":"u1","context":{"c\u006fnsent":)"
         R"({"categoryPreferences":{"Marketing":false,"analytics":true}}}})");
  const EventConsent consent = readConsent(event);
  EXPECT_TRUE(consent.stated);
  EXPECT_TRUE(consent.denied.contains("marketing"));
  EXPECT_TRUE(consent.granted.contains("analytics"));
}

TEST(ReadConsentTest, AnEventThatNamesNoConsentStatesNone) {
  sdk::EventHeader h;
  h.user_id = "u1";
  const sdk::Event event(h, R"({"type":"track","event":"A","userId":"u1","context":{}})");
  EXPECT_FALSE(readConsent(event).stated);
}

}  // namespace
}  // namespace junction::core::privacy
