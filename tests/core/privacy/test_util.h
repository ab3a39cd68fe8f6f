#pragma once

// Shared by the privacy tests: a temp directory and events built from JSON text.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>
#include <string>

#include "junction/sdk/event.h"

namespace junction::core::privacy::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/junction-privacy-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// An event from JSON text with receivedAt / timestamp set (ms).
inline sdk::Event event(const std::string& json_text, std::int64_t received_at_ms = 1000,
                        std::int64_t timestamp_ms = 0) {
  auto made = sdk::makeEvent(boost::json::parse(json_text).as_object(), "web");
  EXPECT_TRUE(made) << made.error().message;
  auto h = made->header();
  h.received_at_ms = received_at_ms;
  h.timestamp_ms = timestamp_ms != 0 ? timestamp_ms : received_at_ms;
  return sdk::Event(h, std::string(made->json()));
}

}  // namespace junction::core::privacy::testing
