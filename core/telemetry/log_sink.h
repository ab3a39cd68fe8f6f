#pragma once

// Structured logging for the daemon: one line per record, text (default) or JSON, written to a
// FILE* under a mutex. Every line is scrubbed of registered secret values before it is written.
//
// Why not spdlog: we need per-record structured fields rendered as text or JSON and a scrubbing
// pass over the finished line; spdlog would leave both to us and add a formatting layer
// in between. This file is small and owns both.

#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/log.h"

namespace junction::core::telemetry {

enum class LogFormat { Text, Json };

// Thread-safe. Outlives every Logger made from it.
class LogSink {
 public:
  explicit LogSink(std::FILE* out = stderr, sdk::LogLevel min_level = sdk::LogLevel::Info,
                   LogFormat format = LogFormat::Text);

  void configure(sdk::LogLevel min_level, LogFormat format);
  // Values never to appear in a line (secret options, the admin token). Strings shorter than
  // four characters are ignored (they would scrub ordinary words).
  void setSecrets(std::vector<std::string> secrets);

  bool enabled(sdk::LogLevel level) const noexcept { return level >= min_level_; }
  void write(sdk::LogLevel level, std::string_view component, std::string_view message,
             std::initializer_list<sdk::LogField> fields) noexcept;

  // The line that `write` would produce, without writing it (tests).
  std::string format(sdk::LogLevel level, std::string_view component, std::string_view message,
                     std::initializer_list<sdk::LogField> fields) const;

 private:
  std::string scrub(std::string line) const;

  std::FILE* out_;
  sdk::LogLevel min_level_;
  LogFormat format_;
  std::vector<std::string> secrets_;
  mutable std::mutex mutex_;
};

// An sdk::Logger that tags every line with a component ("core", "source.web", ...).
class ComponentLogger final : public sdk::Logger {
 public:
  ComponentLogger(LogSink& sink, std::string component)
      : sink_(sink), component_(std::move(component)) {}

  bool enabled(sdk::LogLevel level) const noexcept override { return sink_.enabled(level); }
  void log(sdk::LogLevel level, std::string_view message,
           std::initializer_list<sdk::LogField> fields) noexcept override {
    if (sink_.enabled(level)) {
      sink_.write(level, component_, message, fields);
    }
  }

 private:
  LogSink& sink_;
  std::string component_;
};

std::optional<sdk::LogLevel> parseLogLevel(std::string_view text);

}  // namespace junction::core::telemetry
