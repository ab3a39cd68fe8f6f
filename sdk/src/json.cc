#include "junction/sdk/json.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
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
Value* step(Value& node, std::string_view segment) noexcept {
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
  if (dotted_path.find('\\') == std::string_view::npos) {
    // No escapes (nearly every path): the segments are views of the path, nothing allocated.
    Value* node = &root;
    for (std::size_t start = 0; !dotted_path.empty() && node != nullptr;) {
      const std::size_t dot = dotted_path.find('.', start);
      const std::string_view segment = dotted_path.substr(start, dot - start);
      node = segment.empty() ? nullptr : step(*node, segment);  // empty: a malformed path
      if (dot == std::string_view::npos) {
        break;
      }
      start = dot + 1;
    }
    return node;
  }
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
  if (dotted_path.find('\\') == std::string_view::npos) {
    const std::size_t dot = dotted_path.find('.');
    const std::string_view first = dotted_path.substr(0, dot);
    auto it = first.empty() ? root.end() : root.find(first);
    if (it == root.end()) {
      return nullptr;
    }
    if (dot == std::string_view::npos) {
      return &it->value();
    }
    const std::string_view rest = dotted_path.substr(dot + 1);
    return rest.empty() ? nullptr : walk(it->value(), rest);  // "a." is malformed
  }
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

namespace {

// From the length and the first and last (up to) eight bytes: O(1) per key, and the keys of
// one object rarely agree on all three (a collision only costs a comparison).
std::size_t keyHash(std::string_view key) noexcept {
  const std::size_t n = key.size();
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
  std::memcpy(&head, key.data(), std::min<std::size_t>(n, 8));
  if (n > 8) {
    const std::size_t m = std::min<std::size_t>(n - 8, 8);
    std::memcpy(&tail, key.data() + n - m, m);
  }
  return static_cast<std::size_t>(((head ^ (tail << 31 | tail >> 33)) + n) * 0x9E3779B97F4A7C15ULL);
}

// Boost.JSON's own parser handler (a value_stack fed by basic_parser, as boost::json::parser
// does) that also keeps the path to the value being read and each object's keys, to find the
// values JsonValueProblem describes. With `collect` null the first problem stops the parse.
class StrictHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  StrictHandler(json::storage_ptr sp, std::vector<JsonValueProblem>* collect)
      : st(std::move(sp)), collect_(collect) {}

  json::value_stack st;
  std::optional<JsonValueProblem> first;  // what stopped the parse (collect_ null)

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    open(true);
    return true;
  }
  bool on_object_end(std::size_t n, boost::system::error_code&) {
    st.push_object(n);
    --depth_;
    return next();
  }
  bool on_array_begin(boost::system::error_code&) {
    open(false);
    return true;
  }
  bool on_array_end(std::size_t n, boost::system::error_code&) {
    st.push_array(n);
    --depth_;
    return next();
  }
  bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&) {
    st.push_chars(s);
    frames_[depth_ - 1].names.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, boost::system::error_code& ec) {
    st.push_key(s);
    // The key (its parts, if any, already in `names`) is appended to its object's names.
    Frame& f = frames_[depth_ - 1];
    f.names.append(s.data(), s.size());
    const std::size_t begin = f.keys.empty() ? 0 : f.keys.back().end;
    const std::string_view key(f.names.data() + begin, f.names.size() - begin);
    const std::size_t hash = keyHash(key);
    bool duplicate = false;
    std::size_t start = 0;
    for (const Key& k : f.keys) {
      duplicate = duplicate || (k.hash == hash &&
                                std::string_view(f.names.data() + start, k.end - start) == key);
      start = k.end;
    }
    f.keys.push_back(Key{hash, f.names.size()});
    if (duplicate) {
      return report(JsonValueProblem::Kind::DuplicateKey, false, std::string(key), ec);
    }
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, boost::system::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, boost::system::error_code&) {
    st.push_string(s);
    return next();
  }
  bool on_number_part(json::string_view s, boost::system::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, boost::system::error_code&) {
    st.push_int64(i);
    number_.clear();
    return next();
  }
  bool on_uint64(std::uint64_t u, json::string_view, boost::system::error_code&) {
    st.push_uint64(u);
    number_.clear();
    return next();
  }
  bool on_double(double d, json::string_view s, boost::system::error_code& ec) {
    st.push_double(d);
    number_.append(s.data(), s.size());
    const bool finite = std::isfinite(d);
    if (!finite && !report(JsonValueProblem::Kind::NumberOutOfRange, true, number_, ec)) {
      return false;
    }
    number_.clear();
    return next();
  }
  bool on_bool(bool b, boost::system::error_code&) {
    st.push_bool(b);
    return next();
  }
  bool on_null(boost::system::error_code&) {
    st.push_null();
    return next();
  }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  // An open container. Frames are kept (with their vectors' capacity) as the depth goes down.
  struct Key {
    std::size_t hash;
    std::size_t end;  // in Frame::names (a key starts where the one before it ends)
  };
  struct Frame {
    bool object = false;
    std::size_t index = 0;  // arrays: of the element being read
    std::string names;      // objects: the keys so far, back to back (no string per key)
    std::vector<Key> keys;  // the last one names the value being read
    std::string_view lastKey() const {
      const std::size_t begin = keys.size() > 1 ? keys[keys.size() - 2].end : 0;
      return std::string_view(names.data() + begin, keys.back().end - begin);
    }
  };

  void open(bool object) {
    if (frames_.size() == depth_) {
      frames_.emplace_back();
    }
    Frame& f = frames_[depth_++];
    f.object = object;
    f.index = 0;
    f.names.clear();
    f.keys.clear();
  }
  // A value is complete: the next element of an array (the next key names an object's).
  bool next() {
    if (depth_ > 0 && !frames_[depth_ - 1].object) {
      ++frames_[depth_ - 1].index;
    }
    return true;
  }
  // The path to the value being read (`to_value`) or to its object.
  std::vector<std::string> path(bool to_value) const {
    std::vector<std::string> out;
    const std::size_t n = to_value ? depth_ : depth_ - 1;
    for (std::size_t i = 0; i < n; ++i) {
      const Frame& f = frames_[i];
      out.push_back(f.object ? std::string(f.lastKey()) : std::to_string(f.index));
    }
    return out;
  }
  bool report(JsonValueProblem::Kind kind, bool to_value, const std::string& text,
              boost::system::error_code& ec) {
    JsonValueProblem problem{kind, path(to_value), text};
    if (collect_ != nullptr) {
      collect_->push_back(std::move(problem));
      return true;
    }
    first = std::move(problem);
    ec = json::error::exception;  // any error stops basic_parser; `first` says which
    return false;
  }

  std::vector<JsonValueProblem>* collect_;
  std::vector<Frame> frames_;
  std::size_t depth_ = 0;
  std::string number_;  // a number read in parts
};

// `text` cut to at most 64 bytes, on a UTF-8 character boundary.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kMax = 64;
  if (text.size() <= kMax) {
    return std::string(text);
  }
  std::size_t n = kMax;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) {
    --n;
  }
  return std::string(text.substr(0, n)) + "...";
}

std::string dottedPath(const std::vector<std::string>& path, std::size_t skip) {
  std::string out;
  for (std::size_t i = skip; i < path.size(); ++i) {
    if (i > skip) {
      out.push_back('.');
    }
    for (const char c : path[i]) {
      if (c == '.' || c == '\\') {
        out.push_back('\\');
      }
      out.push_back(c);
    }
  }
  return out;
}

Result<json::value> parseStrict(std::string_view text, json::storage_ptr storage,
                                std::vector<JsonValueProblem>* problems) {
  json::parse_options options;
  options.max_depth = 64;
  json::basic_parser<StrictHandler> parser(options, json::storage_ptr(), problems);
  parser.handler().st.reset(std::move(storage));
  boost::system::error_code ec;
  const std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    ec = json::error::extra_data;
  }
  if (ec && parser.handler().first) {
    return makeError(ErrorCode::InvalidArgument, parser.handler().first->describe());
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
  return parser.handler().st.release();
}

bool findNonFinite(const json::value& v, std::vector<std::string>& path);

bool findNonFinite(const json::object& o, std::vector<std::string>& path) {
  for (const auto& [key, member] : o) {
    path.emplace_back(key);
    if (findNonFinite(member, path)) {
      return true;
    }
    path.pop_back();
  }
  return false;
}

// The path of the first double in `v` that is not finite, in `path`; false when there is none.
bool findNonFinite(const json::value& v, std::vector<std::string>& path) {
  switch (v.kind()) {
    case json::kind::double_:
      return !std::isfinite(v.get_double());
    case json::kind::object:
      return findNonFinite(v.get_object(), path);
    case json::kind::array: {
      const auto& array = v.get_array();
      for (std::size_t i = 0; i < array.size(); ++i) {
        path.push_back(std::to_string(i));
        if (findNonFinite(array[i], path)) {
          return true;
        }
        path.pop_back();
      }
      return false;
    }
    default:
      return false;
  }
}

}  // namespace

std::string JsonValueProblem::describe(std::size_t skip) const {
  const std::string where = dottedPath(path, skip);
  if (kind == Kind::DuplicateKey) {
    return "duplicate key `" + excerpt(text) + "` " +
           (where.empty() ? std::string("at the top level") : "in `" + where + "`");
  }
  return "number `" + excerpt(text) + "`" + (where.empty() ? "" : " at `" + where + "`") +
         " is out of range (beyond a double's 1.8e308)";
}

Result<json::value> parseJson(std::string_view text) { return parseStrict(text, {}, nullptr); }

Result<json::value> parseJson(std::string_view text, json::storage_ptr storage) {
  return parseStrict(text, std::move(storage), nullptr);
}

Result<json::value> parseJson(std::string_view text, json::storage_ptr storage,
                              std::vector<JsonValueProblem>& problems) {
  return parseStrict(text, std::move(storage), &problems);
}

namespace {

Error notFinite(const std::vector<std::string>& path) {
  const std::string where = dottedPath(path, 0);
  return makeError(ErrorCode::InvalidArgument,
                   "the number " +
                       (where.empty() ? std::string("at the top level") : "at `" + where + "`") +
                       " is not finite (NaN or infinity), which JSON cannot write");
}

}  // namespace

Result<std::string> serialize(const json::value& v) {
  std::vector<std::string> path;
  if (findNonFinite(v, path)) {
    return notFinite(path);
  }
  return json::serialize(v);
}

Result<std::string> serialize(const json::object& o) {
  std::vector<std::string> path;
  if (findNonFinite(o, path)) {
    return notFinite(path);
  }
  return json::serialize(o);
}

}  // namespace junction::sdk
