// Every plugin exports its entry point and the SDK's interface typeinfo, and nothing else: the
// version script and hidden visibility keep its own code, the SDK support library, the standard
// library and Boost instantiations local, so that two plugins can never clash in the daemon.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace junction::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const fs::path kBinaryDir = JUNCTION_BINARY_DIR;
constexpr std::string_view kEntrySymbol = "junction_plugin_entry_v3";

// What `nm -D --defined-only` says a library exports.
struct Exports {
  bool ok = false;    // nm ran and exited 0
  std::string error;  // when !ok
  std::vector<std::string> symbols;
};

Exports dynamicExports(const fs::path& library) {
  Exports out;
  const std::string command =
      std::string(JUNCTION_NM) + " -D --defined-only '" + library.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    out.error = "cannot run " + command;
    return out;
  }
  std::string text;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) {
    text.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  if (status != 0) {
    out.error = command + " failed: " + text;
    return out;
  }
  // Lines are "ADDRESS TYPE NAME".
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (std::size_t space = line.rfind(' '); space != std::string_view::npos) {
      out.symbols.emplace_back(line.substr(space + 1));
    }
  }
  out.ok = true;
  return out;
}

bool allowedExport(std::string_view symbol) {
  return symbol == kEntrySymbol || symbol.starts_with("_ZTIN8junction3sdk") ||
         symbol.starts_with("_ZTSN8junction3sdk");
}

// The checker: a description of everything wrong with `library`'s exports (empty when none).
std::vector<std::string> exportProblems(const fs::path& library) {
  Exports exports = dynamicExports(library);
  if (!exports.ok) {
    return {exports.error};
  }
  std::vector<std::string> problems;
  bool has_entry = false;
  for (const auto& symbol : exports.symbols) {
    has_entry = has_entry || symbol == kEntrySymbol;
    if (!allowedExport(symbol)) {
      problems.push_back("unexpected export: " + symbol);
    }
  }
  if (!has_entry) {
    problems.push_back("missing export: " + std::string(kEntrySymbol));
  }
  return problems;
}

std::vector<fs::path> sharedObjectsIn(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".so") {
      out.push_back(entry.path());
    }
  }
  return out;
}

TEST(PluginSymbolsTest, BuiltInPluginsExportOnlyTheEntryPointAndSdkTypeinfo) {
  const auto plugins = sharedObjectsIn(kBinaryDir / "plugins");
  ASSERT_FALSE(plugins.empty()) << "no plugin in " << (kBinaryDir / "plugins");
  for (const auto& plugin : plugins) {
    EXPECT_THAT(exportProblems(plugin), IsEmpty()) << plugin;
  }
}

TEST(PluginSymbolsTest, FixturePluginsExportOnlyTheEntryPointAndSdkTypeinfo) {
  const fs::path fixtures = kBinaryDir / "tests" / "fixtures";
  std::size_t checked = 0;
  for (const char* dir : {"good", "duplicate", "throws", "wrong_fingerprint", "sources"}) {
    const auto libraries = sharedObjectsIn(fixtures / dir);
    EXPECT_FALSE(libraries.empty()) << "no plugin in " << (fixtures / dir);
    for (const auto& library : libraries) {
      EXPECT_THAT(exportProblems(library), IsEmpty()) << library;
      ++checked;
    }
  }
  EXPECT_GE(checked, 5u);
}

// The checker must be able to fail: a library exporting its own function and no entry point.
TEST(PluginSymbolsTest, CheckerRejectsALibraryThatIsNotAPlugin) {
  const fs::path library =
      kBinaryDir / "tests" / "fixtures" / "not_a_plugin" / "libjunction_not_a_plugin.so";
  ASSERT_TRUE(fs::exists(library)) << library;
  EXPECT_THAT(exportProblems(library), ElementsAre("unexpected export: some_function",
                                                   "missing export: junction_plugin_entry_v3"));
}

TEST(PluginSymbolsTest, CheckerReportsAFileNmCannotRead) {
  const fs::path missing = kBinaryDir / "tests" / "fixtures" / "no-such-plugin.so";
  const auto problems = exportProblems(missing);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], ::testing::HasSubstr("failed"));
}

}  // namespace
}  // namespace junction::integration
