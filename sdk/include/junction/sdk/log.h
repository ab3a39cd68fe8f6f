#pragma once

// Structured logging for plugins. The daemon adds the connector id to every line and writes
// text or JSON (`log.format`). Values of options marked secret are scrubbed from every line by
// the daemon, but plugins must still never log credentials or event bodies.

#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace junction::sdk {

enum class LogLevel { Debug, Info, Warn, Error };

const char* toString(LogLevel level) noexcept;

struct LogField {
  std::string_view key;
  std::string value;

  LogField(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  template <typename N>
    requires std::is_arithmetic_v<N>
  LogField(std::string_view k, N v) : key(k), value(std::to_string(v)) {}
};

// Thread-safe: may be called from any thread. Never throws. Lives as long as the context.
class Logger {
 public:
  virtual ~Logger() = default;

  virtual bool enabled(LogLevel level) const noexcept = 0;
  virtual void log(LogLevel level, std::string_view message,
                   std::initializer_list<LogField> fields) noexcept = 0;

  void debug(std::string_view m, std::initializer_list<LogField> f = {}) noexcept {
    if (enabled(LogLevel::Debug)) {
      log(LogLevel::Debug, m, f);
    }
  }
  void info(std::string_view m, std::initializer_list<LogField> f = {}) noexcept {
    log(LogLevel::Info, m, f);
  }
  void warn(std::string_view m, std::initializer_list<LogField> f = {}) noexcept {
    log(LogLevel::Warn, m, f);
  }
  void error(std::string_view m, std::initializer_list<LogField> f = {}) noexcept {
    log(LogLevel::Error, m, f);
  }
};

}  // namespace junction::sdk
