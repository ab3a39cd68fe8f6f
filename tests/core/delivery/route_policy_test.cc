// Which events a destination gets: source, type and event filters, and the consent stage
// (both wire formats, missing vs empty consent, all/any, consent_default, category aliases, and
// the person's remembered consent, which applies only when the event states none).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>

#include "core/delivery/route_policy.h"

namespace junction::core::delivery {
namespace {

config::ConnectorConfig destination(std::vector<std::string> consent, std::string mode = "all",
                                    std::string fallback = "deny") {
  config::ConnectorConfig c;
  c.kind = config::ConnectorKind::Destination;
  c.id = "d";
  c.consent = std::move(consent);
  c.consent_mode = std::move(mode);
  c.consent_default = std::move(fallback);
  return c;
}

sdk::Event event(const std::string& json_text, const std::string& source = "web") {
  auto body = boost::json::parse(json_text).as_object();
  auto made = sdk::makeEvent(body, source);
  EXPECT_TRUE(made) << made.error().message;
  return std::move(made).value();
}

struct ConsentCase {
  const char* name;
  std::vector<std::string> required;
  const char* mode;
  const char* fallback;
  const char* context;  // JSON of the event's "context", or nullptr for none
  RouteVerdict expected;
  // The person's remembered consent ({"granted":[..],"denied":[..]}), or nullptr for none.
  const char* remembered = nullptr;
  privacy::ConsentAliases aliases = {};
};

// Remembered consent for one person, as PrivacyStore keeps it.
class FixedMemory final : public privacy::ConsentMemory {
 public:
  explicit FixedMemory(std::optional<privacy::EventConsent> consent) : consent_(std::move(consent)) {}
  std::optional<privacy::EventConsent> rememberedConsent(const sdk::EventHeader&) const override {
    ++asked_;
    return consent_;
  }
  mutable int asked_ = 0;

 private:
  std::optional<privacy::EventConsent> consent_;
};

class ConsentTest : public ::testing::TestWithParam<ConsentCase> {};

TEST_P(ConsentTest, Decides) {
  const auto& c = GetParam();
  std::string text = R"({"type":"track","event":"Order Completed","userId":"u1")";
  if (c.context != nullptr) {
    text += std::string(R"(,"context":)") + c.context;
  }
  text += "}";
  auto policy = RoutePolicy::fromConfig(destination(c.required, c.mode, c.fallback), c.aliases);
  FixedMemory memory(c.remembered != nullptr ? privacy::consentFromJson(c.remembered) : std::nullopt);
  EXPECT_EQ(policy.decide(event(text), &memory), c.expected) << c.name;
  if (c.remembered == nullptr) {
    EXPECT_EQ(policy.decide(event(text)), c.expected) << c.name << " (without a memory)";
  }
}

constexpr RouteVerdict kDeliver = RouteVerdict::Deliver;
constexpr RouteVerdict kDenied = RouteVerdict::ConsentDenied;
constexpr RouteVerdict kUnknown = RouteVerdict::ConsentUnknown;

INSTANTIATE_TEST_SUITE_P(
    Table, ConsentTest,
    ::testing::Values(
        ConsentCase{"no requirement", {}, "all", "deny", nullptr, kDeliver},
        ConsentCase{"segment granted", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":true}}})", kDeliver},
        ConsentCase{"segment denied", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":false}}})", kDenied},
        ConsentCase{"case-insensitive names", {"Marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"MARKETING":true}}})", kDeliver},
        ConsentCase{"missing consent, default deny", {"marketing"}, "all", "deny", nullptr, kUnknown},
        ConsentCase{"missing consent, default grant", {"marketing"}, "all", "grant", nullptr, kDeliver},
        ConsentCase{"empty preferences count as unknown", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{}}})", kUnknown},
        ConsentCase{"other category only", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"analytics":true}}})", kUnknown},
        ConsentCase{"all: one of two missing", {"marketing", "analytics"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":true}}})", kUnknown},
        ConsentCase{"all: one of two denied", {"marketing", "analytics"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":true,"analytics":false}}})", kDenied},
        ConsentCase{"any: one of two granted", {"marketing", "analytics"}, "any", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":false,"analytics":true}}})", kDeliver},
        ConsentCase{"any: none granted", {"marketing", "analytics"}, "any", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":false}}})", kDenied},
        ConsentCase{"rudderstack allowed", {"marketing"}, "all", "deny",
                    R"({"consentManagement":{"allowedConsentIds":["marketing"],"deniedConsentIds":[]}})", kDeliver},
        ConsentCase{"rudderstack denied", {"marketing"}, "all", "grant",
                    R"({"consentManagement":{"allowedConsentIds":[],"deniedConsentIds":["Marketing"]}})", kDenied},
        ConsentCase{"allowed and denied: denied wins", {"marketing"}, "all", "grant",
                    R"({"consentManagement":{"allowedConsentIds":["marketing"],"deniedConsentIds":["marketing"]}})", kDenied},
        ConsentCase{"segment form takes precedence", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":false}},"consentManagement":{"allowedConsentIds":["marketing"]}})", kDenied},
        ConsentCase{"non-boolean preference ignored", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":"yes"}}})", kUnknown},
        ConsentCase{"rudderstack empty lists count as unknown", {"marketing"}, "all", "deny",
                    R"({"consentManagement":{"allowedConsentIds":[],"deniedConsentIds":[]}})", kUnknown},
        ConsentCase{"rudderstack any: one allowed", {"marketing", "analytics"}, "any", "deny",
                    R"({"consentManagement":{"allowedConsentIds":["analytics"],"deniedConsentIds":["marketing"]}})", kDeliver},
        ConsentCase{"rudderstack all: one unknown, default grant", {"marketing", "analytics"}, "all", "grant",
                    R"({"consentManagement":{"allowedConsentIds":["analytics"]}})", kDeliver},
        // Remembered consent (from an earlier event of the person).
        ConsentCase{"missing consent: remembered grant applies", {"marketing"}, "all", "deny", nullptr,
                    kDeliver, R"({"granted":["marketing"],"denied":[]})"},
        ConsentCase{"missing consent: remembered denial applies", {"marketing"}, "all", "grant", nullptr,
                    kDenied, R"({"granted":[],"denied":["marketing"]})"},
        ConsentCase{"missing consent: remembered other category, default deny", {"marketing"}, "all", "deny",
                    nullptr, kUnknown, R"({"granted":["analytics"],"denied":[]})"},
        ConsentCase{"stated denial beats remembered grant", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{"marketing":false}}})", kDenied,
                    R"({"granted":["marketing"],"denied":[]})"},
        ConsentCase{"stated grant beats remembered denial", {"marketing"}, "all", "deny",
                    R"({"consentManagement":{"allowedConsentIds":["marketing"]}})", kDeliver,
                    R"({"granted":[],"denied":["marketing"]})"},
        ConsentCase{"empty stated consent is not filled from memory", {"marketing"}, "all", "deny",
                    R"({"consent":{"categoryPreferences":{}}})", kUnknown,
                    R"({"granted":["marketing"],"denied":[]})"},
        ConsentCase{"any: remembered grant of one category", {"marketing", "analytics"}, "any", "deny",
                    nullptr, kDeliver, R"({"granted":["analytics"],"denied":["marketing"]})"},
        // Aliases (consent.aliases): CMP ids map to category names in both forms and in memory.
        ConsentCase{"alias: onetrust id granted (rudderstack)", {"marketing"}, "all", "deny",
                    R"({"consentManagement":{"allowedConsentIds":["C0004"]}})", kDeliver, nullptr,
                    {{"c0004", "marketing"}}},
        ConsentCase{"alias: onetrust id denied (segment)", {"marketing"}, "all", "grant",
                    R"({"consent":{"categoryPreferences":{"c0004":false}}})", kDenied, nullptr,
                    {{"c0004", "marketing"}}},
        ConsentCase{"alias: denied id beats granted name", {"marketing"}, "all", "deny",
                    R"({"consentManagement":{"allowedConsentIds":["marketing"],"deniedConsentIds":["C0004"]}})",
                    kDenied, nullptr, {{"c0004", "marketing"}}},
        ConsentCase{"alias: unmapped id is not the category", {"marketing"}, "all", "deny",
                    R"({"consentManagement":{"allowedConsentIds":["C0002"]}})", kUnknown, nullptr,
                    {{"c0004", "marketing"}}},
        ConsentCase{"alias: applies to remembered consent", {"marketing"}, "all", "deny", nullptr,
                    kDeliver, R"({"granted":["c0004"],"denied":[]})", {{"c0004", "marketing"}}}),
    [](const auto& param_info) {
      std::string name = param_info.param.name;
      for (auto& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) {
          ch = '_';
        }
      }
      return name;
    });

TEST(RoutePolicyTest, MemoryIsAskedOnlyWhenTheEventStatesNoConsent) {
  auto policy = RoutePolicy::fromConfig(destination({"marketing"}));
  FixedMemory memory(privacy::consentFromJson(R"({"granted":["marketing"],"denied":[]})"));
  EXPECT_EQ(policy.decide(event(R"({"type":"track","event":"E","userId":"u1","context":{"consent":{"categoryPreferences":{"marketing":false}}}})"),
                          &memory),
            kDenied);
  EXPECT_EQ(memory.asked_, 0);
  EXPECT_EQ(policy.decide(event(R"({"type":"track","event":"E","userId":"u1"})"), &memory), kDeliver);
  EXPECT_EQ(memory.asked_, 1);
  // A destination without consent requirements never asks.
  auto open = RoutePolicy::fromConfig(destination({}));
  EXPECT_EQ(open.decide(event(R"({"type":"track","event":"E","userId":"u1"})"), &memory), kDeliver);
  EXPECT_EQ(memory.asked_, 1);
}

TEST(RoutePolicyTest, AliasesFromConfigAreCaseInsensitive) {
  auto policy = RoutePolicy::fromConfig(destination({"Marketing"}), {{"C0004", "MARKETING"}});
  EXPECT_EQ(policy.decide(event(R"({"type":"track","event":"E","userId":"u1","context":{"consentManagement":{"allowedConsentIds":["c0004"]}}})")),
            kDeliver);
}

TEST(RoutePolicyTest, FromFilterRestrictsSources) {
  auto c = destination({});
  c.from = {"web"};
  auto policy = RoutePolicy::fromConfig(c);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "web")), kDeliver);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "crm")),
            RouteVerdict::FilteredSource);
}

TEST(RoutePolicyTest, LoopProtectionKeepsACrmSourceOutOfItsOwnDestinationUnlessNamed) {
  auto c = destination({});
  c.plugin = "hubspot";
  c.loop_sources = {"crm"};  // a `hubspot` source (loadConfig fills this)
  auto policy = RoutePolicy::fromConfig(c);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "crm")),
            RouteVerdict::FilteredLoop);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "web")), kDeliver);
  EXPECT_STREQ(reasonOf(RouteVerdict::FilteredLoop), "loop");

  // Named in `from`: sent back on purpose.
  c.from = {"crm", "web"};
  auto asked = RoutePolicy::fromConfig(c);
  EXPECT_EQ(asked.decide(event(R"({"type":"identify","userId":"u"})", "crm")), kDeliver);
  EXPECT_EQ(asked.decide(event(R"({"type":"identify","userId":"u"})", "web")), kDeliver);
  // `from` without it: filtered as any unnamed source.
  c.from = {"web"};
  EXPECT_EQ(RoutePolicy::fromConfig(c).decide(event(R"({"type":"identify","userId":"u"})", "crm")),
            RouteVerdict::FilteredSource);
}

TEST(RoutePolicyTest, TypeAndEventFilters) {
  auto c = destination({});
  c.filter.types = {"track", "identify"};
  c.filter.events = {"Order Completed"};
  auto policy = RoutePolicy::fromConfig(c);
  EXPECT_EQ(policy.decide(event(R"({"type":"track","event":"Order Completed","userId":"u"})")), kDeliver);
  EXPECT_EQ(policy.decide(event(R"({"type":"track","event":"Page Scrolled","userId":"u"})")),
            RouteVerdict::FilteredEvent);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})")), kDeliver);  // not a track
  EXPECT_EQ(policy.decide(event(R"({"type":"page","name":"Home","userId":"u"})")),
            RouteVerdict::FilteredType);
  EXPECT_STREQ(reasonOf(RouteVerdict::FilteredType), "type");
  EXPECT_STREQ(reasonOf(RouteVerdict::ConsentUnknown), "consent_unknown");
}

// The built-in source `audiences`: Audience Entered / Exited with properties.audience.
sdk::Event audienceEvent(const std::string& audience, const std::string& name = "Audience Entered") {
  return event(R"({"type":"track","event":")" + name + R"(","userId":"u","properties":{"audience":")" +
                   audience + R"(","audience_key":")" + audience + R"(:u"}})",
               std::string(config::kAudiencesSource));
}

TEST(RoutePolicyTest, FromAudiencesGetsEveryAudienceEvent) {
  auto c = destination({});
  c.from = {"audiences"};
  auto policy = RoutePolicy::fromConfig(c);
  EXPECT_EQ(policy.decide(audienceEvent("vip")), kDeliver);
  EXPECT_EQ(policy.decide(audienceEvent("abandoned_cart", "Audience Exited")), kDeliver);
  // And nothing else unnamed.
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "web")),
            RouteVerdict::FilteredSource);
}

TEST(RoutePolicyTest, ADestinationGetsTheEventsOfTheAudiencesListingIt) {
  auto c = destination({});
  c.audiences = {"vip"};  // loadConfig fills this from the audiences' `destinations`
  auto without_from = RoutePolicy::fromConfig(c);
  EXPECT_EQ(without_from.decide(audienceEvent("vip")), kDeliver);
  EXPECT_EQ(without_from.decide(audienceEvent("vip", "Audience Exited")), kDeliver);
  EXPECT_EQ(without_from.decide(audienceEvent("other")), RouteVerdict::FilteredSource);
  EXPECT_EQ(without_from.decide(event(R"({"type":"identify","userId":"u"})", "web")), kDeliver);

  // With a `from` that does not name `audiences`: the same.
  c.from = {"web"};
  auto with_from = RoutePolicy::fromConfig(c);
  EXPECT_EQ(with_from.decide(audienceEvent("vip")), kDeliver);
  EXPECT_EQ(with_from.decide(audienceEvent("other")), RouteVerdict::FilteredSource);
  EXPECT_EQ(with_from.decide(event(R"({"type":"identify","userId":"u"})", "crm")),
            RouteVerdict::FilteredSource);

  // An audience event without properties.audience goes only where `from` names `audiences`.
  EXPECT_EQ(with_from.decide(event(R"({"type":"track","event":"Audience Entered","userId":"u"})",
                                   "audiences")),
            RouteVerdict::FilteredSource);
}

TEST(RoutePolicyTest, WithoutFromAndUnlistedAudienceEventsAreFilteredAsProfilesOnesAre) {
  auto policy = RoutePolicy::fromConfig(destination({}));
  EXPECT_EQ(policy.decide(audienceEvent("vip")), RouteVerdict::FilteredSource);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "profiles")),
            RouteVerdict::FilteredSource);
}

TEST(RoutePolicyTest, AScheduledDestinationNeverGetsAudienceEvents) {
  auto c = destination({});
  c.id = "crm";
  c.sync.mode = config::SyncConfig::Mode::Scheduled;
  c.from = {"sync.crm"};
  c.audiences = {"vip"};  // it gets membership in its snapshots instead
  auto policy = RoutePolicy::fromConfig(c);
  EXPECT_EQ(policy.decide(audienceEvent("vip")), RouteVerdict::FilteredSource);
  EXPECT_EQ(policy.decide(event(R"({"type":"identify","userId":"u"})", "sync.crm")), kDeliver);
  c.from = {"audiences"};  // not a configuration loadConfig accepts; still none
  EXPECT_EQ(RoutePolicy::fromConfig(c).decide(audienceEvent("vip")), RouteVerdict::FilteredSource);
}

TEST(RoutePolicyTest, FiltersAndConsentApplyToAudienceEventsAfterTheSource) {
  auto c = destination({"marketing"});
  c.audiences = {"vip"};
  c.filter.events = {"Audience Entered"};
  auto policy = RoutePolicy::fromConfig(c);
  EXPECT_EQ(policy.decide(audienceEvent("vip", "Audience Exited")), RouteVerdict::FilteredEvent);
  EXPECT_EQ(policy.decide(audienceEvent("vip")), kUnknown);  // no consent stated or remembered
  FixedMemory granted(privacy::consentFromJson(R"({"granted":["marketing"],"denied":[]})"));
  EXPECT_EQ(policy.decide(audienceEvent("vip"), &granted), kDeliver);
  c.filter.events = {};
  c.filter.types = {"identify"};
  EXPECT_EQ(RoutePolicy::fromConfig(c).decide(audienceEvent("vip")), RouteVerdict::FilteredType);
}

}  // namespace
}  // namespace junction::core::delivery
