#pragma once

// Boost.JSON helpers for plugin authors: reach into an event body by a dotted path, read typed
// values without exceptions, build payloads by path, and parse text with a useful error.
//
// Paths are dotted: "traits.email", "context.consent.categoryPreferences", "products.0.sku".
// A segment that is all digits indexes an array (and is an ordinary key inside an object, so
// {"0": ...} still works). A literal dot in a key is written "\.", a literal backslash "\\".
// The empty path names the root. An empty segment ("a..b", "a.") matches nothing.
//
// Thread-safety: these are free functions over the caller's values; concurrent calls are fine
// on values nobody mutates. None throws except std::bad_alloc.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/result.h"

namespace junction::sdk {

// The value at `dotted_path` inside `root`, or null when any segment is missing or names into a
// scalar. The pointer refers into `root` and lives as long as `root` is not modified.
const boost::json::value* findPath(const boost::json::value& root,
                                   std::string_view dotted_path) noexcept;
const boost::json::value* findPath(const boost::json::object& root,
                                   std::string_view dotted_path) noexcept;
boost::json::value* findPath(boost::json::value& root, std::string_view dotted_path) noexcept;
// A temporary (for example an array converted to a value) would leave the pointer dangling.
const boost::json::value* findPath(boost::json::value&& root, std::string_view) = delete;

// A string as is; an integer, a double (shortest round-trip form: 1.5, 3, 1e+21) or a bool as
// text. Null, objects, arrays and missing paths give nullopt.
std::optional<std::string> stringAt(const boost::json::value& root, std::string_view dotted_path);
std::optional<std::string> stringAt(const boost::json::object& root, std::string_view dotted_path);

// An integer that fits in int64: an int64, a uint64 up to INT64_MAX, or a double with no
// fractional part inside the int64 range. Strings are not converted.
std::optional<std::int64_t> intAt(const boost::json::value& root,
                                  std::string_view dotted_path) noexcept;
std::optional<std::int64_t> intAt(const boost::json::object& root,
                                  std::string_view dotted_path) noexcept;

// Any JSON number as a double (large integers lose precision). Strings are not converted.
std::optional<double> numberAt(const boost::json::value& root,
                               std::string_view dotted_path) noexcept;
std::optional<double> numberAt(const boost::json::object& root,
                               std::string_view dotted_path) noexcept;

// A JSON true/false. Strings and numbers are not converted.
std::optional<bool> boolAt(const boost::json::value& root, std::string_view dotted_path) noexcept;
std::optional<bool> boolAt(const boost::json::object& root, std::string_view dotted_path) noexcept;

// Stores `v` at `dotted_path`, creating missing intermediate objects. A null `root` (or null
// intermediate) becomes an object. Inside an array a numeric segment replaces an existing
// element, or appends when it equals the array's size. InvalidArgument, leaving `root`
// unchanged, when the path is malformed, would pass through a string/number/bool, or indexes
// an array out of range.
Status setPath(boost::json::value& root, std::string_view dotted_path, boost::json::value v);

// Removes the key or array element at `dotted_path`. False when nothing was there (or the path
// is empty: the root cannot be erased).
bool erasePath(boost::json::value& root, std::string_view dotted_path);

// What parseJson refuses in text that is otherwise JSON: values every reader would not agree on.
struct JsonValueProblem {
  enum class Kind {
    // A key given twice in one object. RFC 8259 leaves it to each parser; Boost.JSON keeps the
    // last value, others the first, so the core (consent) and a destination would disagree.
    DuplicateKey,
    // A number whose magnitude a double cannot hold (1e400): Boost.JSON makes it infinity,
    // which serializes as `Infinity` — not JSON. (Underflow to 0 and rounding are fine.)
    NumberOutOfRange,
  };
  Kind kind = Kind::DuplicateKey;
  // Outermost first: keys, and array indexes in decimal. For DuplicateKey the object holding
  // the key; for NumberOutOfRange the number itself.
  std::vector<std::string> path;
  std::string text;  // the key (unescaped) or the number as written

  // "duplicate key `marketing` in `context.consent.categoryPreferences`", "number `1e400` at
  // `properties.price` is out of range (beyond a double's 1.8e308)": the path as a dotted
  // path (findPath's syntax) without its first `skip` segments (the part a caller reports
  // apart, like "batch.3"); texts over 64 bytes are cut.
  std::string describe(std::size_t skip = 0) const;
};

// Parses one JSON text (RFC 8259; no comments, no trailing commas, nesting up to 64 deep) and
// refuses a key given twice in one object and a number out of a double's range (see
// JsonValueProblem). InvalidArgument on failure, naming the position of a syntax error
// ("invalid JSON at line 2, column 7 (offset 19): syntax error") or the problem and its path
// (JsonValueProblem::describe()).
Result<boost::json::value> parseJson(std::string_view text);
// The same, allocating the tree from `storage` (e.g. a per-request
// boost::json::make_shared_resource<boost::json::monotonic_resource>(), which turns thousands of
// small allocations into a few and frees them at once when the last value goes).
Result<boost::json::value> parseJson(std::string_view text, boost::json::storage_ptr storage);
// The same, but a JsonValueProblem does not fail the parse: each is appended to `problems` and
// the tree is built anyway (of a duplicate key the last value kept, an out-of-range number as
// ±infinity). For callers that refuse part of a document (one event of a batch): they must not
// pass the parts with problems on (serialize() would refuse them anyway).
Result<boost::json::value> parseJson(std::string_view text, boost::json::storage_ptr storage,
                                     std::vector<JsonValueProblem>& problems);

// Compact JSON text of `v` (Boost.JSON's serializer; doubles print as e.g. 1.5E0). Never text
// that is not JSON: a double that is NaN or ±infinity (Boost.JSON would write NaN, Infinity) is
// InvalidArgument naming its path. Use it, not boost::json::serialize, wherever an event's body
// is written back to text.
Result<std::string> serialize(const boost::json::value& v);
Result<std::string> serialize(const boost::json::object& o);

}  // namespace junction::sdk
