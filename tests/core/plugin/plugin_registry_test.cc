// The loader: what it accepts, and each refusal with its exact one-line message.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/plugin/plugin_registry.h"
#include "junction/sdk/testing/fake_context.h"

// Under LeakSanitizer (scripts/test --sanitize), this binary's leak check does not walk
// thread-local storage: with glibc 2.36, LSan's walk of the dynamic TLS of a plugin library that
// was loaded and unloaded here read a garbage entry and crashed at exit ("Tracer caught signal
// 11"), depending on the working directory's length. Leaks are still checked; only roots held
// in TLS are not. A weak hook LSan reads; unused without the sanitizer.
extern "C" const char* __lsan_default_options() { return "use_tls=0"; }

namespace junction::core::plugin {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const fs::path kFixtures = fs::path(JUNCTION_BINARY_DIR) / "tests" / "fixtures";

fs::path fixture(const std::string& dir, const std::string& name) {
  return kFixtures / dir / ("libjunction_" + name + ".so");
}

std::string refusal(PluginRegistry& registry, const fs::path& file) {
  auto loaded = registry.load(file);
  if (loaded) {
    return "loaded";
  }
  return LoadError{file.string(), loaded.error().message}.toString();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/junction-loader-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(PluginRegistryTest, LoadsAGoodPlugin) {
  PluginRegistry registry;
  auto loaded = registry.load(fixture("good", "fixture_good"));
  ASSERT_TRUE(loaded) << loaded.error().message;
  const auto& d = (*loaded)->descriptor();
  EXPECT_EQ(d.name, "fixture_good");
  EXPECT_EQ(d.kind, sdk::PluginKind::Destination);
  EXPECT_EQ(d.version, "2.3.4");
  EXPECT_EQ((*loaded)->sdkVersion(), sdk::kSdkVersion);
  ASSERT_EQ(d.options.size(), 11u);
  EXPECT_EQ(d.options[1].key, "api_key");
  EXPECT_TRUE(d.options[1].secret);
  EXPECT_THAT(registry.names(), ElementsAre("fixture_good"));
  EXPECT_NE(registry.find(sdk::PluginKind::Destination, "fixture_good"), nullptr);
  EXPECT_EQ(registry.find(sdk::PluginKind::Source, "fixture_good"), nullptr);
  EXPECT_EQ(registry.find(sdk::PluginKind::Destination, "nope"), nullptr);
}

TEST(PluginRegistryTest, RefusesAFileThatIsNotASharedLibrary) {
  TempDir dir;
  fs::path file = dir.path() / "libjunction_text.so";
  std::ofstream(file) << "just text\n";
  PluginRegistry registry;
  EXPECT_EQ(refusal(registry, file),
            file.string() + ": not a Junction plugin (not a shared library)");
}

TEST(PluginRegistryTest, RefusesALibraryWithoutTheEntryPoint) {
  PluginRegistry registry;
  auto file = fixture("not_a_plugin", "not_a_plugin");
  EXPECT_EQ(refusal(registry, file),
            file.string() + ": not a Junction plugin (no junction_plugin_entry_v3 symbol)");
}

TEST(PluginRegistryTest, RefusesAPluginBuiltForAnotherAbiVersion) {
  PluginRegistry registry;
  auto file = fixture("wrong_abi", "fixture_wrong_abi");
  EXPECT_EQ(refusal(registry, file),
            file.string() +
                ": built for plugin ABI v4, this junctiond loads ABI v3 (rebuild it against "
                "Junction SDK 1.2.0)");
}

TEST(PluginRegistryTest, RefusesAPluginWithAnotherBuildFingerprintWithoutCallingIt) {
  PluginRegistry registry;
  auto file = fixture("wrong_fingerprint", "fixture_wrong_fingerprint");
  // The fixture's factory traps if called: reaching the assertion proves it was not.
  EXPECT_EQ(refusal(registry, file),
            file.string() + ": built with gcc-9/libstdc++-cxx11abi0/boost-107400/abi-3, but this "
                            "junctiond with " +
                std::string(sdk::kBuildFingerprint) +
                " (rebuild it with the same compiler and Boost)");
}

TEST(PluginRegistryTest, RefusesAPluginWhoseFactoryThrows) {
  PluginRegistry registry;
  auto file = fixture("throws", "fixture_throws");
  EXPECT_EQ(refusal(registry, file),
            file.string() + ": plugin factory failed: cannot read my licence file");
}

TEST(PluginRegistryTest, RefusesADuplicateName) {
  PluginRegistry registry;
  auto good = fixture("good", "fixture_good");
  ASSERT_TRUE(registry.load(good));
  auto dup = fixture("duplicate", "fixture_duplicate");
  EXPECT_EQ(refusal(registry, dup),
            dup.string() + ": plugin name 'fixture_good' (destination) is already taken by " +
                good.string());
  EXPECT_EQ(registry.get(sdk::PluginKind::Destination, "fixture_good")->descriptor().version,
            "2.3.4");
}

TEST(PluginRegistryTest, OneNameLoadsAsASourceAndAsADestination) {
  PluginRegistry registry;
  auto dest_file = fixture("good", "fixture_good");
  auto source_file = fixture("good_source", "fixture_good_source");
  ASSERT_TRUE(registry.load(dest_file));
  ASSERT_TRUE(registry.load(source_file));
  EXPECT_THAT(registry.names(), ElementsAre("fixture_good"));
  auto source = registry.get(sdk::PluginKind::Source, "fixture_good");
  auto dest = registry.get(sdk::PluginKind::Destination, "fixture_good");
  ASSERT_TRUE(source);
  ASSERT_TRUE(dest);
  EXPECT_EQ(source->file(), source_file);
  EXPECT_EQ(source->descriptor().kind, sdk::PluginKind::Source);
  EXPECT_EQ(dest->file(), dest_file);
  EXPECT_EQ(dest->descriptor().kind, sdk::PluginKind::Destination);
  EXPECT_EQ(registry.find(sdk::PluginKind::Source, "fixture_good"), &source->plugin());
  EXPECT_THAT(registry.named("fixture_good"), ElementsAre(source, dest));
  EXPECT_THAT(registry.all(), ElementsAre(source, dest));

  // A second source of that name is still refused; the first one stays.
  TempDir dir;
  const fs::path copy = dir.path() / "libjunction_other_source.so";
  fs::copy_file(source_file, copy);
  EXPECT_EQ(refusal(registry, copy), copy.string() +
                                         ": plugin name 'fixture_good' (source) is already taken "
                                         "by " +
                                         source_file.string());
  EXPECT_EQ(registry.get(sdk::PluginKind::Source, "fixture_good")->file(), source_file);
}

TEST(PluginRegistryTest, ScanLoadsGoodFilesAndReportsEachRefusal) {
  TempDir dir;
  for (const auto& [sub, name] : std::vector<std::pair<std::string, std::string>>{
           {"good", "fixture_good"}, {"wrong_abi", "fixture_wrong_abi"},
           {"not_a_plugin", "not_a_plugin"}, {"throws", "fixture_throws"}}) {
    fs::copy_file(fixture(sub, name), dir.path() / ("libjunction_" + name + ".so"));
  }
  std::ofstream(dir.path() / "README.txt") << "not a .so, ignored\n";
  PluginRegistry registry;
  std::vector<LoadError> refused;
  // The same directory twice, and a missing one: no double load, no error.
  registry.scan({dir.path(), dir.path(), dir.path() / "missing"}, refused);
  EXPECT_THAT(registry.names(), ElementsAre("fixture_good"));
  ASSERT_EQ(refused.size(), 3u);
  EXPECT_THAT(refused[0].reason, HasSubstr("plugin factory failed"));
  EXPECT_THAT(refused[1].reason, HasSubstr("ABI v3"));
  EXPECT_THAT(refused[2].reason, HasSubstr("no junction_plugin_entry_v3 symbol"));
}

TEST(PluginRegistryTest, InstancesKeepTheLibraryLoadedAfterTheRegistryIsGone) {
  sdk::testing::FakeDestinationContext context;
  std::shared_ptr<sdk::Destination> instance;
  std::string record;
  {
    PluginRegistry registry;
    ASSERT_TRUE(registry.load(fixture("good", "fixture_good")));
    char tmpl[] = "/tmp/junction-record-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    record = tmpl;
    boost::json::object config{{"list_id", "l"}, {"api_key", "k"}, {"retries", 1}, {"ratio", 0.5},
                               {"verbose", false}, {"timeout", 10}, {"max_bytes", 10},
                               {"tags", boost::json::array{}}, {"mode", "lenient"},
                               {"record_to", record}};
    auto made = registry.get(sdk::PluginKind::Destination, "fixture_good")->createDestination(config, context);
    ASSERT_TRUE(made) << made.error().message;
    instance = *made;
  }
  // The registry and its LoadedPlugin handles are gone; the instance still runs plugin code.
  std::vector<sdk::Event> batch(3);
  auto outcomes = instance->deliver(batch);
  EXPECT_EQ(outcomes.size(), 3u);
  instance.reset();  // last owner: the library is released after the instance
  std::ifstream in(record);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "deliver 3");
  fs::remove(record);
}

TEST(PluginRegistryTest, APluginInPathsNamedLikeABuiltInOneIsRefusedUnlessAllowed) {
  const fs::path builtin = executableDirectory() / ".." / "plugins" / "libjunction_file.so";
  ASSERT_TRUE(fs::exists(builtin));
  TempDir dir;
  const fs::path copy = dir.path() / "libjunction_my_file.so";
  fs::copy_file(builtin, copy);
  {
    PluginRegistry registry;
    std::vector<LoadError> refused;
    registry.scanSearchPath({dir.path().string()}, {}, refused);
    ASSERT_TRUE(registry.get(sdk::PluginKind::Destination, "file"));
    EXPECT_EQ(fs::weakly_canonical(registry.get(sdk::PluginKind::Destination, "file")->file()), fs::weakly_canonical(builtin));
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0].file, copy.string());
    EXPECT_THAT(refused[0].reason, HasSubstr("is taken by the built-in plugin"));
    EXPECT_THAT(refused[0].reason, HasSubstr("list 'file' in plugins.allow_override"));
    EXPECT_TRUE(registry.overrides().empty());
  }
  {
    PluginRegistry registry;
    std::vector<LoadError> refused;
    registry.scanSearchPath({dir.path().string()}, {"file"}, refused);
    ASSERT_TRUE(registry.get(sdk::PluginKind::Destination, "file"));
    EXPECT_EQ(registry.get(sdk::PluginKind::Destination, "file")->file(), copy);
    EXPECT_TRUE(refused.empty());
    ASSERT_EQ(registry.overrides().size(), 1u);
    EXPECT_THAT(registry.overrides()[0], HasSubstr("replaces the built-in"));
  }
}

}  // namespace
}  // namespace junction::core::plugin
