#pragma once

// A fresh directory under /tmp for one test, removed with everything in it at the end.
//
//   sdk::testing::TempDir dir;
//   MyConfig config{.path = (dir.path() / "out.ndjson").string()};

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace junction::sdk::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/junction-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace junction::sdk::testing
