#include "core/config/yaml_checker.h"

#include <boost/json/array.hpp>
#include <charconv>
#include <cstdlib>
#include <algorithm>
#include <set>
#include <tuple>

namespace junction::core::config {

namespace json = boost::json;

EnvLookup processEnvironment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

std::string joinKey(std::string_view parent, std::string_view key) {
  if (parent.empty()) {
    return std::string(key);
  }
  return std::string(parent) + "." + std::string(key);
}

YAML::Node childOf(const YAML::Node& map, std::string_view key) {
  if (!map.IsDefined() || !map.IsMap()) {
    return YAML::Node();
  }
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) {
      return kv.second;
    }
  }
  return YAML::Node();
}

void sortErrors(ConfigErrors& errors, std::size_t first) {
  std::stable_sort(errors.begin() + static_cast<std::ptrdiff_t>(first), errors.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
}

void YamlChecker::checkKeys(const YAML::Node& node, const std::vector<std::string>& known,
                            const std::string& key_path) {
  if (!node.IsDefined() || !node.IsMap()) {
    return;
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const std::string path = joinKey(key_path, key);
    if (!seen.insert(key).second) {
      error(kv.first, path, "given twice");
    } else if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string hint = closestMatch(key, known);
      error(kv.first, path,
            hint.empty() ? "unknown option" : "unknown option; did you mean '" + hint + "'?");
    }
  }
}

YamlChecker::YamlChecker(std::string file, EnvLookup env, ConfigErrors& errors)
    : file_(std::move(file)), env_(std::move(env)), errors_(errors) {}

void YamlChecker::error(const YAML::Node& node, std::string key_path, std::string message) {
  KeyMark mark;
  if (node.IsDefined() && node.Mark().line >= 0) {
    mark = {node.Mark().line + 1, node.Mark().column + 1};
  }
  error(mark, std::move(key_path), std::move(message));
}

void YamlChecker::error(KeyMark mark, std::string key_path, std::string message) {
  errors_.push_back(
      ConfigError{file_, mark.line, mark.column, std::move(key_path), std::move(message)});
}

std::optional<std::string> YamlChecker::interpolate(const YAML::Node& node,
                                                    const std::string& key_path) {
  const std::string& text = node.Scalar();
  if (text.find('$') == std::string::npos) {
    return text;
  }
  std::string out;
  out.reserve(text.size());
  bool ok = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size()) {
      out += c;
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (text[i + 1] != '{') {
      out += c;
      continue;
    }
    std::size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      error(node, key_path, "unterminated ${...} (missing '}')");
      return std::nullopt;
    }
    std::string_view inner(text.data() + i + 2, close - i - 2);
    std::string_view name = inner;
    std::optional<std::string_view> fallback;
    if (auto sep = inner.find(":-"); sep != std::string_view::npos) {
      name = inner.substr(0, sep);
      fallback = inner.substr(sep + 2);
    }
    bool valid_name = !name.empty();
    for (char n : name) {
      valid_name = valid_name && (std::isalnum(static_cast<unsigned char>(n)) || n == '_');
    }
    if (!valid_name) {
      error(node, key_path, "invalid environment variable reference ${" + std::string(inner) + "}");
      return std::nullopt;
    }
    auto value = env_(name);
    if (value && !(fallback && value->empty())) {
      out += *value;
    } else if (fallback) {
      out += *fallback;
    } else {
      error(node, key_path,
            "environment variable " + std::string(name) + " is not set (write ${" +
                std::string(name) + ":-default} to give a default)");
      ok = false;
    }
    i = close;
  }
  if (!ok) {
    return std::nullopt;
  }
  return out;
}

namespace {

json::value typedScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  const char* begin = text.data();
  const char* end = begin + text.size();
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(begin, end, i); ec == std::errc() && p == end) {
    return i;
  }
  std::uint64_t u = 0;
  if (auto [p, ec] = std::from_chars(begin, end, u); ec == std::errc() && p == end) {
    return u;
  }
  bool looks_numeric = std::isdigit(static_cast<unsigned char>(text[0])) ||
                       ((text[0] == '-' || text[0] == '+' || text[0] == '.') && text.size() > 1);
  double d = 0;
  if (auto [p, ec] = std::from_chars(begin, end, d); looks_numeric && ec == std::errc() && p == end) {
    return d;
  }
  return json::string(text);
}

}  // namespace

json::value YamlChecker::toJson(const YAML::Node& node, const std::string& key_path,
                                bool as_text) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      auto text = interpolate(node, key_path);
      if (!text) {
        return nullptr;
      }
      // "!" is yaml-cpp's tag for quoted scalars: they are strings, whatever they contain.
      if (as_text || node.Tag() == "!") {
        return json::string(*text);
      }
      return typedScalar(*text);
    }
    case YAML::NodeType::Sequence: {
      json::array out;
      std::size_t index = 0;
      for (const auto& item : node) {
        out.push_back(toJson(item, key_path + "[" + std::to_string(index++) + "]", as_text));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json::object out;
      for (const auto& kv : node) {
        std::string key = kv.first.Scalar();
        out[key] = toJson(kv.second, joinKey(key_path, key), as_text);
      }
      return out;
    }
  }
  return nullptr;
}

json::object YamlChecker::checkMapping(const YAML::Node& node,
                                       const std::vector<sdk::OptionSpec>& specs,
                                       const std::string& key_path, KeyMarks* marks,
                                       KeyMark absent_at) {
  json::object out;
  std::vector<std::string> known;
  known.reserve(specs.size());
  for (const auto& s : specs) {
    known.push_back(s.key);
  }
  KeyMark mapping_mark = absent_at;
  if (node.IsDefined() && node.Mark().line >= 0) {
    mapping_mark = {node.Mark().line + 1, node.Mark().column + 1};
  }
  const bool is_map = node.IsMap();
  if (node.IsDefined() && !node.IsNull() && !is_map) {
    error(node, key_path, "expected a mapping of keys to values");
  }

  std::set<std::string> seen;
  if (is_map) {
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      const std::string path = joinKey(key_path, key);
      if (!seen.insert(key).second) {
        error(kv.first, path, "given twice");
        continue;
      }
      const sdk::OptionSpec* spec = nullptr;
      for (const auto& s : specs) {
        if (s.key == key) {
          spec = &s;
        }
      }
      if (spec == nullptr) {
        std::string hint = closestMatch(key, known);
        error(kv.first, path,
              hint.empty() ? "unknown option" : "unknown option; did you mean '" + hint + "'?");
        continue;
      }
      if (marks != nullptr) {
        (*marks)[key] = {kv.second.Mark().line + 1, kv.second.Mark().column + 1};
      }
      const bool as_text = spec->type == sdk::OptionType::String ||
                           spec->type == sdk::OptionType::StringList;
      std::size_t errors_before = errors_.size();
      json::value raw = toJson(kv.second, path, as_text);
      if (errors_.size() != errors_before) {
        continue;  // interpolation failed; already reported
      }
      if (raw.is_null()) {
        if (spec->required) {
          error(kv.second, path, "required option has no value");
        }
        continue;
      }
      auto normalized = sdk::normalizeOption(*spec, raw);
      if (!normalized) {
        error(kv.second, path, normalized.error().message);
        continue;
      }
      out[key] = std::move(normalized).value();
    }
  }
  for (const auto& spec : specs) {
    if (seen.contains(spec.key)) {
      continue;
    }
    if (spec.required) {
      error(mapping_mark, joinKey(key_path, spec.key),
            "required option is missing (" + spec.doc + ")");
    } else if (spec.default_value) {
      auto normalized = sdk::normalizeOption(spec, *spec.default_value);
      if (normalized) {
        out[spec.key] = std::move(normalized).value();
      }
    }
  }
  return out;
}

}  // namespace junction::core::config
