#include "junction/sdk/mapping.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <utility>

#include "junction/sdk/crypto.h"
#include "junction/sdk/event.h"
#include "junction/sdk/json.h"

namespace junction::sdk {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 9> kTransforms = {
    "trim", "lowercase", "uppercase", "sha256", "md5", "string", "number", "boolean", "iso8601"};
constexpr std::string_view kDatePrefix = "date:";

std::string_view trimView(std::string_view s) noexcept {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

bool validPath(std::string_view path) {
  if (path.empty()) {
    return false;
  }
  // An empty segment ("a..b", ".a", "a.") names nothing; "\." is a literal dot.
  bool segment_empty = true;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\' && i + 1 < path.size()) {
      segment_empty = false;
      ++i;
    } else if (path[i] == '.') {
      if (segment_empty) {
        return false;
      }
      segment_empty = true;
    } else {
      segment_empty = false;
    }
  }
  return !segment_empty;
}

std::optional<std::string> checkTransform(std::string_view name) {
  if (name.starts_with(kDatePrefix)) {
    if (name.size() == kDatePrefix.size()) {
      return "transform `date:` needs a strftime format, e.g. `date:%Y-%m-%d`";
    }
    return std::nullopt;
  }
  if (std::find(kTransforms.begin(), kTransforms.end(), name) == kTransforms.end()) {
    return "unknown transform `" + std::string(name) +
           "` (trim, lowercase, uppercase, sha256, md5, string, number, boolean, iso8601, "
           "date:FORMAT)";
  }
  return std::nullopt;
}

// Reads a list of strings, or one string, into `out`. False when it is neither.
bool stringList(const json::value& v, std::vector<std::string>& out) {
  if (v.is_string()) {
    out.emplace_back(v.get_string());
    return true;
  }
  if (!v.is_array() || v.as_array().empty()) {
    return false;
  }
  for (const auto& item : v.as_array()) {
    if (!item.is_string()) {
      return false;
    }
    out.emplace_back(item.get_string());
  }
  return true;
}

// Parses one field's spec; appends problems to `problems` (messages without the key).
std::optional<FieldMapping::Rule> parseRule(std::string_view field, const json::value& spec,
                                            std::vector<std::string>& problems) {
  FieldMapping::Rule rule;
  rule.field = std::string(field);
  if (!validPath(field)) {
    problems.push_back("field name must be a non-empty dotted name without empty parts");
    return std::nullopt;
  }
  if (spec.is_string()) {
    rule.from.emplace_back(spec.get_string());
  } else if (spec.is_array()) {
    if (!stringList(spec, rule.from)) {
      problems.push_back("a list of source paths must hold strings only, at least one");
      return std::nullopt;
    }
  } else if (spec.is_object()) {
    const auto& obj = spec.get_object();
    for (const auto& [key, value] : obj) {
      if (key == "from") {
        if (!stringList(value, rule.from)) {
          problems.push_back("`from` must be a path or a non-empty list of paths");
        }
      } else if (key == "value") {
        rule.constant = value;
      } else if (key == "default") {
        rule.fallback = value;
      } else if (key == "transform") {
        if (!stringList(value, rule.transforms)) {
          problems.push_back("`transform` must be a name or a non-empty list of names");
        }
      } else {
        problems.push_back("unknown key `" + std::string(key) +
                           "` (from, value, default, transform)");
      }
    }
    if (rule.constant && !rule.from.empty()) {
      problems.push_back("`from` and `value` exclude each other");
    } else if (!rule.constant && rule.from.empty() && !obj.contains("from")) {
      problems.push_back("needs `from` (a path in the event) or `value` (a constant)");
    }
  } else {
    problems.push_back("must be a path, a list of paths, or an object with `from`/`value`");
    return std::nullopt;
  }
  for (const auto& path : rule.from) {
    if (!validPath(path)) {
      problems.push_back("`" + path + "` is not a path (dotted, no empty parts)");
    }
  }
  for (const auto& t : rule.transforms) {
    if (auto problem = checkTransform(t)) {
      problems.push_back(*problem);
    }
  }
  return rule;
}

// The text of a scalar: strings as is, numbers and booleans as text. Null for the rest.
std::optional<std::string> textOf(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.get_string());
  }
  if (v.is_number() || v.is_bool()) {
    return stringAt(v, "");
  }
  return std::nullopt;
}

std::optional<std::int64_t> epochMsOf(const json::value& v) {
  if (v.is_int64()) {
    return v.get_int64();
  }
  if (v.is_uint64()) {
    return v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)
               ? std::optional<std::int64_t>(static_cast<std::int64_t>(v.get_uint64()))
               : std::nullopt;
  }
  if (v.is_double()) {
    return static_cast<std::int64_t>(v.get_double());
  }
  if (!v.is_string()) {
    return std::nullopt;
  }
  std::string_view text = trimView(v.get_string());
  if (text.size() == 10) {  // a date alone: "1990-04-01"
    return parseIsoTimestamp(std::string(text) + "T00:00:00Z");
  }
  return parseIsoTimestamp(text);
}

std::optional<json::value> formatDate(const json::value& v, std::string_view format) {
  auto ms = epochMsOf(v);
  if (!ms) {
    return std::nullopt;
  }
  std::time_t seconds = static_cast<std::time_t>(*ms >= 0 ? *ms / 1000 : (*ms - 999) / 1000);
  std::tm tm{};
  if (gmtime_r(&seconds, &tm) == nullptr) {
    return std::nullopt;
  }
  std::array<char, 256> buf{};
  std::size_t n = std::strftime(buf.data(), buf.size(), std::string(format).c_str(), &tm);
  if (n == 0) {
    return std::nullopt;
  }
  return json::value(json::string_view(buf.data(), n));
}

std::optional<json::value> toNumber(const json::value& v) {
  if (v.is_number()) {
    return v;
  }
  if (!v.is_string()) {
    return std::nullopt;
  }
  std::string_view text = trimView(v.get_string());
  std::int64_t i = 0;
  auto [iend, ierr] = std::from_chars(text.data(), text.data() + text.size(), i);
  if (ierr == std::errc() && iend == text.data() + text.size() && !text.empty()) {
    return json::value(i);
  }
  double d = 0;
  auto [dend, derr] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (derr == std::errc() && dend == text.data() + text.size() && !text.empty()) {
    return json::value(d);
  }
  return std::nullopt;
}

// Inbound times come as ISO-8601 text (with any offset) or as Unix epoch seconds or milliseconds
// (numbers or numeric text): a magnitude below 1e11 is seconds (1e11 s is the year 5138, 1e11 ms
// is March 1973, before any webhook).
std::optional<json::value> toIso8601(const json::value& v) {
  std::optional<std::int64_t> ms;
  const json::value* number = &v;
  json::value parsed;
  if (v.is_string()) {
    if (auto n = toNumber(v)) {
      parsed = std::move(*n);
      number = &parsed;
    } else {
      ms = epochMsOf(v);
    }
  }
  if (!ms && number->is_number()) {
    const double d = number->to_number<double>();
    if (!std::isfinite(d) || std::fabs(d) >= 1e15) {
      return std::nullopt;
    }
    ms = static_cast<std::int64_t>(std::fabs(d) < 1e11 ? d * 1000 : d);
  }
  if (!ms) {
    return std::nullopt;
  }
  return json::value(json::string_view(formatIsoTimestamp(*ms)));
}

std::optional<json::value> toBoolean(const json::value& v) {
  if (v.is_bool()) {
    return v;
  }
  if (v.is_int64() || v.is_uint64()) {
    auto n = v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
    if (n == 0 || n == 1) {
      return json::value(n == 1);
    }
    return std::nullopt;
  }
  if (!v.is_string()) {
    return std::nullopt;
  }
  std::string text(trimView(v.get_string()));
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text == "true" || text == "1" || text == "yes") {
    return json::value(true);
  }
  if (text == "false" || text == "0" || text == "no") {
    return json::value(false);
  }
  return std::nullopt;
}

// One transform; nullopt when the value has none afterwards.
std::optional<json::value> transform(std::string_view name, json::value v) {
  if (name.starts_with(kDatePrefix)) {
    return formatDate(v, name.substr(kDatePrefix.size()));
  }
  if (name == "number") {
    return toNumber(v);
  }
  if (name == "iso8601") {
    return toIso8601(v);
  }
  if (name == "boolean") {
    return toBoolean(v);
  }
  auto text = textOf(v);
  if (!text) {
    return v;  // objects and arrays pass through text transforms unchanged
  }
  if (name == "trim") {
    return json::value(json::string_view(trimView(*text)));
  }
  if (name == "lowercase" || name == "uppercase") {
    bool lower = name == "lowercase";
    std::transform(text->begin(), text->end(), text->begin(), [lower](unsigned char c) {
      return static_cast<char>(lower ? std::tolower(c) : std::toupper(c));
    });
    return json::value(json::string_view(*text));
  }
  if (name == "sha256") {
    return json::value(json::string_view(sha256Hex(*text)));
  }
  if (name == "md5") {
    return json::value(json::string_view(md5Hex(*text)));
  }
  // "string"
  return json::value(json::string_view(*text));
}

bool hasValue(const json::value& v) {
  return !v.is_null() && !(v.is_string() && v.get_string().empty());
}

}  // namespace

Result<FieldMapping> FieldMapping::parse(const json::object& defaults, const json::object& overrides,
                                         std::vector<OptionError>* errors,
                                         std::string_view option) {
  // Defaults first, in their order; an override replaces a default in place, null drops it, and
  // fields only in `overrides` follow in their order.
  std::vector<std::pair<std::string, const json::value*>> specs;
  for (const auto& [field, spec] : defaults) {
    const json::value* chosen = &spec;
    if (const auto* over = overrides.if_contains(field)) {
      chosen = over;
    }
    specs.emplace_back(std::string(field), chosen);
  }
  for (const auto& [field, spec] : overrides) {
    if (!defaults.contains(field)) {
      specs.emplace_back(std::string(field), &spec);
    }
  }

  FieldMapping mapping;
  std::vector<OptionError> problems;
  for (const auto& [field, spec] : specs) {
    if (spec->is_null()) {
      continue;
    }
    std::vector<std::string> messages;
    auto rule = parseRule(field, *spec, messages);
    for (auto& m : messages) {
      problems.push_back({std::string(option) + "." + field, std::move(m)});
    }
    if (rule && messages.empty()) {
      mapping.rules_.push_back(std::move(*rule));
    }
  }
  if (!problems.empty()) {
    std::string summary = problems.front().key + ": " + problems.front().message;
    if (problems.size() > 1) {
      summary += " (and " + std::to_string(problems.size() - 1) + " more)";
    }
    if (errors != nullptr) {
      *errors = std::move(problems);
    }
    return makeError(ErrorCode::InvalidArgument, std::move(summary));
  }
  return mapping;
}

std::vector<OptionError> FieldMapping::check(const json::object& defaults,
                                             const json::object& overrides,
                                             std::string_view option) {
  std::vector<OptionError> errors;
  (void)parse(defaults, overrides, &errors, option);
  return errors;
}

std::optional<json::value> FieldMapping::valueOf(const Rule& rule, const json::object& event) const {
  auto transformed = [&rule](json::value v) -> std::optional<json::value> {
    for (const auto& t : rule.transforms) {
      auto next = transform(t, std::move(v));
      if (!next || !hasValue(*next)) {
        return std::nullopt;
      }
      v = std::move(*next);
    }
    return v;
  };
  if (rule.constant) {
    if (auto v = transformed(*rule.constant); v && hasValue(*v)) {
      return v;
    }
  }
  for (const auto& path : rule.from) {
    if (path == kWholeDocumentPath) {
      if (auto v = transformed(json::value(event)); v && hasValue(*v)) {
        return v;
      }
      continue;
    }
    const json::value* found = findPath(event, path);
    if (found == nullptr || !hasValue(*found)) {
      continue;
    }
    if (auto v = transformed(*found)) {
      return v;
    }
  }
  return rule.fallback;
}

json::object FieldMapping::apply(const json::object& event) const {
  json::value out = json::object();
  for (const auto& rule : rules_) {
    if (auto v = valueOf(rule, event)) {
      (void)setPath(out, rule.field, std::move(*v));
    }
  }
  return std::move(out.as_object());
}

std::optional<std::string> firstString(const json::object& event,
                                       std::initializer_list<std::string_view> paths) {
  for (auto path : paths) {
    const json::value* v = findPath(event, path);
    if (v != nullptr && v->is_string()) {
      std::string_view text = trimView(v->get_string());
      if (!text.empty()) {
        return std::string(text);
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> emailOf(const json::object& event) {
  return firstString(event, {"traits.email", "context.traits.email", "properties.email"});
}

std::vector<OptionError> checkInboundMapping(const FieldMapping& mapping, std::string_view option) {
  std::vector<OptionError> errors;
  for (const auto& rule : mapping.rules()) {
    const std::string_view top = std::string_view(rule.field).substr(0, rule.field.find('.'));
    if (std::find(std::begin(kInboundEventFields), std::end(kInboundEventFields), top) ==
        std::end(kInboundEventFields)) {
      errors.push_back({std::string(option) + "." + rule.field,
                        "`" + std::string(top) +
                            "` is not a field of a Segment event (type, event, name, userId, "
                            "anonymousId, timestamp, messageId, properties, traits, context, ...)"});
    }
  }
  return errors;
}

}  // namespace junction::sdk
