#include "junction/sdk/options.h"

#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <set>
#include <strings.h>

namespace junction::sdk {

namespace json = boost::json;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits "12.5KiB" into 12.5 and "KiB". False when there is no leading number.
bool splitNumberUnit(std::string_view text, double& number, std::string_view& unit) {
  text = trim(text);
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || ptr == text.data()) {
    return false;
  }
  unit = trim(std::string_view(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr)));
  return std::isfinite(number) && number >= 0;
}

bool unitIs(std::string_view unit, std::string_view name) {
  return unit.size() == name.size() && ::strncasecmp(unit.data(), name.data(), name.size()) == 0;
}

std::string describeValue(const OptionSpec& spec, const json::value& value) {
  if (spec.secret) {
    return "";  // never echo a secret
  }
  std::string text = json::serialize(value);
  if (text.size() > 60) {
    text = text.substr(0, 57) + "...";
  }
  return ", got " + text;
}

Error typeError(const OptionSpec& spec, const json::value& value, std::string_view expected) {
  return makeError(ErrorCode::InvalidArgument,
                   "expected " + std::string(expected) + describeValue(spec, value));
}

Result<json::value> checkBounds(const OptionSpec& spec, double v, json::value normalized,
                                std::string_view unit) {
  auto fmt = [&](double bound) {
    std::string s = bound == std::floor(bound) && std::fabs(bound) < 9e15
                        ? std::to_string(static_cast<long long>(bound))
                        : std::to_string(bound);
    return s + std::string(unit);
  };
  if (spec.min && v < *spec.min) {
    return makeError(ErrorCode::InvalidArgument,
                     "must be at least " + fmt(*spec.min) + describeValue(spec, normalized));
  }
  if (spec.max && v > *spec.max) {
    return makeError(ErrorCode::InvalidArgument,
                     "must be at most " + fmt(*spec.max) + describeValue(spec, normalized));
  }
  return normalized;
}

}  // namespace

Result<std::int64_t> parseDuration(std::string_view text) noexcept {
  double number = 0;
  std::string_view unit;
  if (!splitNumberUnit(text, number, unit)) {
    return makeError(ErrorCode::InvalidArgument, "not a duration");
  }
  double ms = 0;
  if (unit.empty() || unitIs(unit, "ms")) {
    ms = number;
  } else if (unitIs(unit, "s")) {
    ms = number * 1000;
  } else if (unitIs(unit, "m") || unitIs(unit, "min")) {
    ms = number * 60'000;
  } else if (unitIs(unit, "h")) {
    ms = number * 3'600'000;
  } else if (unitIs(unit, "d")) {
    ms = number * 86'400'000;
  } else {
    return makeError(ErrorCode::InvalidArgument, "unknown duration unit (use ms, s, m, h or d)");
  }
  if (ms > 9.2e18) {
    return makeError(ErrorCode::InvalidArgument, "duration too large");
  }
  return static_cast<std::int64_t>(std::llround(ms));
}

Result<std::uint64_t> parseSize(std::string_view text) noexcept {
  double number = 0;
  std::string_view unit;
  if (!splitNumberUnit(text, number, unit)) {
    return makeError(ErrorCode::InvalidArgument, "not a size");
  }
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"", 1},          {"b", 1},           {"k", 1024},     {"kb", 1e3},   {"kib", 1024},
      {"m", 1048576},   {"mb", 1e6},        {"mib", 1048576}, {"g", 1073741824.0},
      {"gb", 1e9},      {"gib", 1073741824.0}, {"tb", 1e12},   {"tib", 1099511627776.0},
  };
  for (const auto& [name, factor] : kUnits) {
    if (unitIs(unit, name)) {
      double bytes = number * factor;
      if (bytes > 1.8e19) {
        return makeError(ErrorCode::InvalidArgument, "size too large");
      }
      return static_cast<std::uint64_t>(std::llround(bytes));
    }
  }
  return makeError(ErrorCode::InvalidArgument, "unknown size unit (use B, KiB, MiB, GiB, KB, MB, GB)");
}

Result<json::value> normalizeOption(const OptionSpec& spec, const json::value& value) {
  switch (spec.type) {
    case OptionType::String: {
      if (!value.is_string()) {
        return typeError(spec, value, "a string");
      }
      if (!spec.one_of.empty()) {
        for (const auto& allowed : spec.one_of) {
          if (allowed == value.as_string()) {
            return value;
          }
        }
        std::string list;
        for (const auto& allowed : spec.one_of) {
          list += (list.empty() ? "" : ", ") + allowed;
        }
        return typeError(spec, value, "one of " + list);
      }
      return value;
    }
    case OptionType::Integer: {
      std::int64_t v = 0;
      if (value.is_int64()) {
        v = value.as_int64();
      } else if (value.is_uint64() && value.as_uint64() <= INT64_MAX) {
        v = static_cast<std::int64_t>(value.as_uint64());
      } else {
        return typeError(spec, value, "an integer");
      }
      return checkBounds(spec, static_cast<double>(v), json::value(v), "");
    }
    case OptionType::Number: {
      if (!value.is_number()) {
        return typeError(spec, value, "a number");
      }
      double v = value.to_number<double>();
      return checkBounds(spec, v, json::value(v), "");
    }
    case OptionType::Boolean:
      if (!value.is_bool()) {
        return typeError(spec, value, "true or false");
      }
      return value;
    case OptionType::Duration: {
      std::int64_t ms = 0;
      if (value.is_int64() && value.as_int64() >= 0) {
        ms = value.as_int64();
      } else if (value.is_string()) {
        auto parsed = parseDuration(value.as_string());
        if (!parsed) {
          return typeError(spec, value, "a duration such as \"250ms\", \"5s\" or \"2m\"");
        }
        ms = *parsed;
      } else {
        return typeError(spec, value, "a duration such as \"250ms\", \"5s\" or \"2m\"");
      }
      return checkBounds(spec, static_cast<double>(ms), json::value(ms), "ms");
    }
    case OptionType::Size: {
      std::uint64_t bytes = 0;
      if (value.is_int64() && value.as_int64() >= 0) {
        bytes = static_cast<std::uint64_t>(value.as_int64());
      } else if (value.is_uint64()) {
        bytes = value.as_uint64();
      } else if (value.is_string()) {
        auto parsed = parseSize(value.as_string());
        if (!parsed) {
          return typeError(spec, value, "a size such as 65536, \"32KiB\" or \"64MiB\"");
        }
        bytes = *parsed;
      } else {
        return typeError(spec, value, "a size such as 65536, \"32KiB\" or \"64MiB\"");
      }
      return checkBounds(spec, static_cast<double>(bytes), json::value(bytes), " bytes");
    }
    case OptionType::StringList: {
      if (value.is_string()) {
        json::array list;
        list.push_back(value);
        return json::value(std::move(list));
      }
      if (!value.is_array()) {
        return typeError(spec, value, "a list of strings");
      }
      for (const auto& item : value.as_array()) {
        if (!item.is_string()) {
          return typeError(spec, value, "a list of strings");
        }
      }
      return value;
    }
    case OptionType::Object:
      if (!value.is_object()) {
        return typeError(spec, value, "a mapping");
      }
      return value;
  }
  return makeError(ErrorCode::Internal, "unknown option type");
}

std::vector<std::string> checkOptionTable(const std::vector<OptionSpec>& specs) {
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const auto& spec : specs) {
    if (spec.key.empty()) {
      problems.push_back("an option has an empty key");
      continue;
    }
    if (!seen.insert(spec.key).second) {
      problems.push_back("option '" + spec.key + "' is declared twice");
    }
    if (spec.doc.empty()) {
      problems.push_back("option '" + spec.key + "' has no doc line");
    }
    if (spec.default_value) {
      auto normalized = normalizeOption(spec, *spec.default_value);
      if (!normalized) {
        problems.push_back("option '" + spec.key + "' has an invalid default: " +
                           normalized.error().message);
      }
    }
  }
  return problems;
}

namespace detail {

void bindValue(std::string& out, const json::value& v) {
  out = std::string(v.as_string());
}
void bindValue(std::int64_t& out, const json::value& v) {
  out = v.to_number<std::int64_t>();
}
void bindValue(std::uint64_t& out, const json::value& v) {
  out = v.to_number<std::uint64_t>();
}
void bindValue(double& out, const json::value& v) {
  out = v.to_number<double>();
}
void bindValue(bool& out, const json::value& v) {
  out = v.as_bool();
}
void bindValue(std::chrono::milliseconds& out, const json::value& v) {
  out = std::chrono::milliseconds(v.to_number<std::int64_t>());
}
void bindValue(std::vector<std::string>& out, const json::value& v) {
  out.clear();
  for (const auto& item : v.as_array()) {
    out.emplace_back(item.as_string());
  }
}
void bindValue(json::object& out, const json::value& v) {
  out = v.as_object();
}

}  // namespace detail

}  // namespace junction::sdk
