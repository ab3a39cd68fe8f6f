// toString() for the SDK's enums, in one place.

#include "junction/sdk/destination.h"
#include "junction/sdk/event.h"
#include "junction/sdk/log.h"
#include "junction/sdk/options.h"
#include "junction/sdk/plugin.h"
#include "junction/sdk/result.h"

namespace junction::sdk {

const char* toString(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument:
      return "invalid argument";
    case ErrorCode::NotFound:
      return "not found";
    case ErrorCode::AlreadyExists:
      return "already exists";
    case ErrorCode::Unavailable:
      return "unavailable";
    case ErrorCode::ResourceExhausted:
      return "resource exhausted";
    case ErrorCode::PermissionDenied:
      return "permission denied";
    case ErrorCode::Internal:
      return "internal";
  }
  return "unknown";
}

const char* toString(EventType type) noexcept {
  switch (type) {
    case EventType::Track:
      return "track";
    case EventType::Identify:
      return "identify";
    case EventType::Page:
      return "page";
    case EventType::Screen:
      return "screen";
    case EventType::Group:
      return "group";
    case EventType::Alias:
      return "alias";
  }
  return "unknown";
}

std::optional<EventType> parseEventType(std::string_view name) noexcept {
  static constexpr std::pair<std::string_view, EventType> kTypes[] = {
      {"track", EventType::Track}, {"identify", EventType::Identify}, {"page", EventType::Page},
      {"screen", EventType::Screen}, {"group", EventType::Group},     {"alias", EventType::Alias},
  };
  for (const auto& [text, type] : kTypes) {
    if (text == name) {
      return type;
    }
  }
  return std::nullopt;
}

const char* toString(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "unknown";
}

const char* toString(OptionType type) noexcept {
  switch (type) {
    case OptionType::String:
      return "string";
    case OptionType::Integer:
      return "integer";
    case OptionType::Number:
      return "number";
    case OptionType::Boolean:
      return "boolean";
    case OptionType::Duration:
      return "duration";
    case OptionType::Size:
      return "size";
    case OptionType::StringList:
      return "list of strings";
    case OptionType::Object:
      return "mapping";
  }
  return "unknown";
}

const char* toString(PluginKind kind) noexcept {
  return kind == PluginKind::Source ? "source" : "destination";
}

const char* toString(Ordering ordering) noexcept {
  return ordering == Ordering::Person ? "person" : "none";
}

const char* toString(Outcome::Kind kind) noexcept {
  switch (kind) {
    case Outcome::Kind::Delivered:
      return "delivered";
    case Outcome::Kind::Retry:
      return "retry";
    case Outcome::Kind::Failed:
      return "failed";
  }
  return "unknown";
}

}  // namespace junction::sdk
