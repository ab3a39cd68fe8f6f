// The configuration check (`junctiond --check`, `junction check`): after a valid parse, the
// audiences' event and trait names the saved event catalog has not seen are warnings, located as
// errors are, and never make the check fail.

#include "core/daemon/config_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace junction::core::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::IsEmpty;

// A catalog as ingest::EventCatalog::toJson() writes it: one track event, one identify with two
// traits.
constexpr const char* kCatalog = R"({"sources":{"web":{"events":[
  {"type":"track","name":"Product Added","count":3,"keys":[{"key":"sku","in":"properties"}]},
  {"type":"identify","name":"","count":2,"keys":[{"key":"email","in":"traits"},
                                                  {"key":"plan","in":"traits"}]}]}}})";

class ConfigCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/junction-check-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = (dir_ / "junction.yaml").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  // A configuration with audiences naming a misspelled event, an unknown trait, a known trait
  // and a computed trait (known to audiences though the catalog has never seen it).
  void writeConfig() {
    write(file_, "storage: { path: \"" + dir_.string() + R"(" }
profiles:
  computed:
    orders_30d: {count: Order Completed, within: 30d}
audiences:
  cart:
    where:
      all:
        - performed: {event: Product Addded, within: 1h}
        - {trait: orders_30d, gte: 1}
        - {trait: plan, equals: pro}
        - {trait: address.city, equals: Paris}
)");
  }
  CheckOutcome check() {
    plugin::PluginRegistry registry;
    return checkConfigFile(file_, registry, config::processEnvironment());
  }

  fs::path dir_;
  std::string file_;
};

TEST_F(ConfigCheckTest, NamesTheCatalogHasNotSeenAreWarnings) {
  writeConfig();
  write(dir_ / "catalog.json", kCatalog);
  const CheckOutcome outcome = check();
  ASSERT_TRUE(outcome.ok()) << outcome.report();
  ASSERT_EQ(outcome.warnings.size(), 2u) << outcome.warningsReport();
  EXPECT_EQ(outcome.warningsReport(),
            "warning: " + file_ +
                ":9:30: audiences.cart.where.all[0].performed.event: the event catalog has no "
                "track event 'Product Addded'; did you mean 'Product Added'?\n"
                "warning: " + file_ +
                ":12:19: audiences.cart.where.all[3].trait: the event catalog has no trait "
                "'address'\n");
}

TEST_F(ConfigCheckTest, NoCatalogOrADamagedOneGivesNoWarning) {
  writeConfig();
  CheckOutcome outcome = check();
  ASSERT_TRUE(outcome.ok()) << outcome.report();
  EXPECT_THAT(outcome.warnings, IsEmpty());

  write(dir_ / "catalog.json", "{not json");
  outcome = check();
  ASSERT_TRUE(outcome.ok()) << outcome.report();
  EXPECT_THAT(outcome.warnings, IsEmpty());
  EXPECT_TRUE(fs::exists(dir_ / "catalog.json"));  // a check moves nothing aside
}

TEST_F(ConfigCheckTest, AnInvalidConfigurationHasErrorsAndNoWarnings) {
  write(file_, "storage: { path: \"" + dir_.string() + R"(" }
audiences:
  cart:
    where: {performed: {event: Product Addded}}
    destinations: [nowhere]
)");
  write(dir_ / "catalog.json", kCatalog);
  const CheckOutcome outcome = check();
  EXPECT_FALSE(outcome.ok());
  EXPECT_THAT(outcome.warnings, IsEmpty());
  EXPECT_EQ(outcome.report(), file_ +
                                  ":5:20: audiences.cart.destinations[0]: no destination with id "
                                  "'nowhere'\n");
}

TEST(AudienceCatalogWarningsTest, ComputedTraitsAreNotCheckedWhenTheCatalogHasNoTraits) {
  config::ConfigErrors errors;
  auto config = config::loadConfigText(R"(profiles:
  computed:
    orders_30d: {count: Order Completed, within: 30d}
audiences:
  a:
    where: {trait: anything, exists: true}
)",
                                       "test.yaml", config::processEnvironment(), errors);
  ASSERT_TRUE(config) << config::formatErrors(errors);
  char tmpl[] = "/tmp/junction-check-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path catalog = fs::path(tmpl) / "catalog.json";
  std::ofstream(catalog) << R"({"sources":{"web":{"events":[{"type":"track","name":"E"}]}}})";
  EXPECT_THAT(audienceCatalogWarnings(*config, catalog.string()), IsEmpty());
  fs::remove_all(tmpl);
}

}  // namespace
}  // namespace junction::core::daemon
