#include "core/telemetry/log_sink.h"

#include <algorithm>
#include <chrono>

#include "junction/sdk/event.h"

namespace junction::core::telemetry {

namespace {

void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void appendTextValue(std::string& out, std::string_view s) {
  bool quote = s.empty();
  for (char c : s) {
    quote = quote || c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20;
  }
  if (quote) {
    appendJsonString(out, s);
  } else {
    out += s;
  }
}

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<sdk::LogLevel> parseLogLevel(std::string_view text) {
  for (auto level : {sdk::LogLevel::Debug, sdk::LogLevel::Info, sdk::LogLevel::Warn,
                     sdk::LogLevel::Error}) {
    if (text == sdk::toString(level)) {
      return level;
    }
  }
  return std::nullopt;
}

LogSink::LogSink(std::FILE* out, sdk::LogLevel min_level, LogFormat format)
    : out_(out), min_level_(min_level), format_(format) {}

void LogSink::configure(sdk::LogLevel min_level, LogFormat format) {
  std::lock_guard lock(mutex_);
  min_level_ = min_level;
  format_ = format;
}

void LogSink::setSecrets(std::vector<std::string> secrets) {
  std::erase_if(secrets, [](const std::string& s) { return s.size() < 4; });
  // A value with quotes, backslashes or control characters appears escaped in JSON lines and
  // in quoted text values: scrub that form too, longest first.
  for (std::size_t i = 0, n = secrets.size(); i < n; ++i) {
    std::string escaped;
    appendJsonString(escaped, secrets[i]);
    escaped = escaped.substr(1, escaped.size() - 2);
    if (escaped != secrets[i]) {
      secrets.push_back(std::move(escaped));
    }
  }
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::lock_guard lock(mutex_);
  secrets_ = std::move(secrets);
}

std::string LogSink::scrub(std::string line) const {
  for (const auto& secret : secrets_) {
    for (auto pos = line.find(secret); pos != std::string::npos;
         pos = line.find(secret, pos + 10)) {
      line.replace(pos, secret.size(), "[REDACTED]");
    }
  }
  return line;
}

std::string LogSink::format(sdk::LogLevel level, std::string_view component,
                            std::string_view message,
                            std::initializer_list<sdk::LogField> fields) const {
  std::string line;
  line.reserve(128);
  std::string ts = sdk::formatIsoTimestamp(nowMs());
  if (format_ == LogFormat::Json) {
    line += "{\"ts\":\"" + ts + "\",\"level\":\"" + sdk::toString(level) + "\",\"component\":";
    appendJsonString(line, component);
    line += ",\"msg\":";
    appendJsonString(line, message);
    for (const auto& f : fields) {
      line += ',';
      appendJsonString(line, f.key);
      line += ':';
      appendJsonString(line, f.value);
    }
    line += '}';
  } else {
    static constexpr const char* kLevels[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    line += ts;
    line += ' ';
    line += kLevels[static_cast<int>(level)];
    line += " [";
    line += component;
    line += "] ";
    line += message;
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      appendTextValue(line, f.value);
    }
  }
  return line;
}

void LogSink::write(sdk::LogLevel level, std::string_view component, std::string_view message,
                    std::initializer_list<sdk::LogField> fields) noexcept {
  try {
    std::string line = format(level, component, message, fields);
    std::lock_guard lock(mutex_);
    line = scrub(std::move(line));
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
  } catch (...) {
    // Logging must never take the daemon down (e.g. bad_alloc).
  }
}

}  // namespace junction::core::telemetry
