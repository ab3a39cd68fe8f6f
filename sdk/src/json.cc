#include "junction/sdk/json.h"

#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

namespace junction::sdk {
namespace {

namespace json = boost::json;

// Splits a dotted path into unescaped segments. False when an escape is dangling or a segment
// is empty. The empty path gives no segments (the root).
bool splitPath(std::string_view path, std::vector<std::string>& out) {
  out.clear();
  if (path.empty()) {
    return true;
  }
  std::string segment;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '\\') {
      if (i + 1 == path.size()) {
        return false;
      }
      segment.push_back(path[++i]);
    } else if (c == '.') {
      if (segment.empty()) {
        return false;
      }
      out.push_back(std::move(segment));
      segment.clear();
    } else {
      segment.push_back(c);
    }
  }
  if (segment.empty()) {
    return false;
  }
  out.push_back(std::move(segment));
  return true;
}

std::optional<std::size_t> parseIndex(std::string_view segment) noexcept {
  std::size_t index = 0;
  const auto* end = segment.data() + segment.size();
  const auto [ptr, ec] = std::from_chars(segment.data(), end, index);
  if (ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return index;
}

// One step down from `node` by `segment`; null when there is nothing there.
template <typename Value>
Value* step(Value& node, const std::string& segment) noexcept {
  if (auto* obj = node.if_object()) {
    auto it = obj->find(segment);
    return it == obj->end() ? nullptr : &it->value();
  }
  if (auto* arr = node.if_array()) {
    const auto index = parseIndex(segment);
    if (!index || *index >= arr->size()) {
      return nullptr;
    }
    return &(*arr)[*index];
  }
  return nullptr;
}

template <typename Value>
Value* walk(Value& root, std::string_view dotted_path) noexcept {
  try {
    std::vector<std::string> segments;
    if (!splitPath(dotted_path, segments)) {
      return nullptr;
    }
    Value* node = &root;
    for (const auto& segment : segments) {
      node = step(*node, segment);
      if (node == nullptr) {
        return nullptr;
      }
    }
    return node;
  } catch (...) {  // std::bad_alloc from the segment buffer
    return nullptr;
  }
}

const json::value* walkObject(const json::object& root, std::string_view dotted_path) noexcept {
  try {
    std::vector<std::string> segments;
    if (!splitPath(dotted_path, segments) || segments.empty()) {
      return nullptr;  // the root of an object is not a json::value
    }
    auto it = root.find(segments.front());
    if (it == root.end()) {
      return nullptr;
    }
    const json::value* node = &it->value();
    for (std::size_t i = 1; i < segments.size() && node != nullptr; ++i) {
      node = step(*node, segments[i]);
    }
    return node;
  } catch (...) {
    return nullptr;
  }
}

std::optional<std::string> toText(const json::value* v) {
  if (v == nullptr) {
    return std::nullopt;
  }
  switch (v->kind()) {
    case json::kind::string:
      return std::string(v->get_string());
    case json::kind::int64:
      return std::to_string(v->get_int64());
    case json::kind::uint64:
      return std::to_string(v->get_uint64());
    case json::kind::double_: {
      char buffer[64];
      const auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v->get_double());
      if (ec != std::errc()) {
        return std::nullopt;
      }
      return std::string(buffer, ptr);
    }
    case json::kind::bool_:
      return std::string(v->get_bool() ? "true" : "false");
    default:
      return std::nullopt;
  }
}

std::optional<std::int64_t> toInt(const json::value* v) noexcept {
  if (v == nullptr) {
    return std::nullopt;
  }
  if (v->is_int64()) {
    return v->get_int64();
  }
  if (v->is_uint64()) {
    if (v->get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(v->get_uint64());
  }
  if (v->is_double()) {
    const double d = v->get_double();
    // 2^63 is exactly representable; anything below it with no fraction converts exactly.
    constexpr double kLimit = 9223372036854775808.0;
    if (!std::isfinite(d) || std::trunc(d) != d || d < -kLimit || d >= kLimit) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

std::optional<double> toNumber(const json::value* v) noexcept {
  if (v == nullptr) {
    return std::nullopt;
  }
  if (v->is_int64()) {
    return static_cast<double>(v->get_int64());
  }
  if (v->is_uint64()) {
    return static_cast<double>(v->get_uint64());
  }
  if (v->is_double()) {
    return v->get_double();
  }
  return std::nullopt;
}

std::optional<bool> toBool(const json::value* v) noexcept {
  if (v == nullptr || !v->is_bool()) {
    return std::nullopt;
  }
  return v->get_bool();
}

Error badPath(std::string_view path, std::string_view why) {
  return makeError(ErrorCode::InvalidArgument,
                   "cannot set '" + std::string(path) + "': " + std::string(why));
}

}  // namespace

const json::value* findPath(const json::value& root, std::string_view dotted_path) noexcept {
  return walk(root, dotted_path);
}

const json::value* findPath(const json::object& root, std::string_view dotted_path) noexcept {
  return walkObject(root, dotted_path);
}

json::value* findPath(json::value& root, std::string_view dotted_path) noexcept {
  return walk(root, dotted_path);
}

std::optional<std::string> stringAt(const json::value& root, std::string_view dotted_path) {
  return toText(findPath(root, dotted_path));
}
std::optional<std::string> stringAt(const json::object& root, std::string_view dotted_path) {
  return toText(findPath(root, dotted_path));
}

std::optional<std::int64_t> intAt(const json::value& root, std::string_view dotted_path) noexcept {
  return toInt(findPath(root, dotted_path));
}
std::optional<std::int64_t> intAt(const json::object& root, std::string_view dotted_path) noexcept {
  return toInt(findPath(root, dotted_path));
}

std::optional<double> numberAt(const json::value& root, std::string_view dotted_path) noexcept {
  return toNumber(findPath(root, dotted_path));
}
std::optional<double> numberAt(const json::object& root, std::string_view dotted_path) noexcept {
  return toNumber(findPath(root, dotted_path));
}

std::optional<bool> boolAt(const json::value& root, std::string_view dotted_path) noexcept {
  return toBool(findPath(root, dotted_path));
}
std::optional<bool> boolAt(const json::object& root, std::string_view dotted_path) noexcept {
  return toBool(findPath(root, dotted_path));
}

Status setPath(json::value& root, std::string_view dotted_path, json::value v) {
  std::vector<std::string> segments;
  if (!splitPath(dotted_path, segments)) {
    return badPath(dotted_path, "malformed path");
  }
  if (segments.empty()) {
    root = std::move(v);
    return {};
  }
  // First check the whole path, so that a failure leaves `root` untouched.
  {
    const json::value* node = &root;
    for (std::size_t i = 0; i < segments.size() && node != nullptr; ++i) {
      if (node->is_null() || node->is_object()) {
        node = node->is_object() ? step(*node, segments[i]) : nullptr;
        continue;
      }
      if (const auto* arr = node->if_array()) {
        const auto index = parseIndex(segments[i]);
        if (!index) {
          return badPath(dotted_path, "'" + segments[i] + "' is not an index into an array");
        }
        if (*index > arr->size()) {
          return badPath(dotted_path, "index " + segments[i] + " is out of range");
        }
        node = *index < arr->size() ? &(*arr)[*index] : nullptr;
        continue;
      }
      return badPath(dotted_path, "'" + segments[i] + "' would pass through a " +
                                      std::string(json::to_string(node->kind())));
    }
  }
  json::value* node = &root;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    if (node->is_null()) {
      node->emplace_object();
    }
    if (auto* obj = node->if_object()) {
      if (last) {
        (*obj)[segments[i]] = std::move(v);
        return {};
      }
      node = &(*obj)[segments[i]];  // inserts null when missing
      continue;
    }
    auto& arr = node->get_array();  // checked above: only objects and arrays are on the path
    const std::size_t index = *parseIndex(segments[i]);
    if (index == arr.size()) {
      arr.emplace_back(nullptr);
    }
    if (last) {
      arr[index] = std::move(v);
      return {};
    }
    node = &arr[index];
  }
  return {};
}

bool erasePath(json::value& root, std::string_view dotted_path) {
  std::vector<std::string> segments;
  if (!splitPath(dotted_path, segments) || segments.empty()) {
    return false;
  }
  const std::string last = std::move(segments.back());
  segments.pop_back();
  json::value* parent = &root;
  for (const auto& segment : segments) {
    parent = step(*parent, segment);
    if (parent == nullptr) {
      return false;
    }
  }
  if (auto* obj = parent->if_object()) {
    return obj->erase(last) > 0;
  }
  if (auto* arr = parent->if_array()) {
    const auto index = parseIndex(last);
    if (!index || *index >= arr->size()) {
      return false;
    }
    arr->erase(arr->begin() + static_cast<std::ptrdiff_t>(*index));
    return true;
  }
  return false;
}

Result<json::value> parseJson(std::string_view text) { return parseJson(text, {}); }

Result<json::value> parseJson(std::string_view text, json::storage_ptr storage) {
  json::parse_options options;
  options.max_depth = 64;
  json::stream_parser parser({}, options);
  parser.reset(std::move(storage));
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
  }
  if (ec) {
    const std::size_t offset = std::min(consumed, text.size());
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return makeError(ErrorCode::InvalidArgument, "invalid JSON at line " + std::to_string(line) +
                                                     ", column " + std::to_string(column) +
                                                     " (offset " + std::to_string(offset) +
                                                     "): " + ec.message());
  }
  return parser.release();
}

std::string serialize(const json::value& v) { return json::serialize(v); }

}  // namespace junction::sdk
