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

// Parses one JSON text (RFC 8259; no comments, no trailing commas, nesting up to 64 deep).
// InvalidArgument on failure, naming the position: "invalid JSON at line 2, column 7 (offset
// 19): syntax error".
Result<boost::json::value> parseJson(std::string_view text);
// The same, allocating the tree from `storage` (e.g. a per-request
// boost::json::make_shared_resource<boost::json::monotonic_resource>(), which turns thousands of
// small allocations into a few and frees them at once when the last value goes).
Result<boost::json::value> parseJson(std::string_view text, boost::json::storage_ptr storage);

// Compact JSON text of `v` (Boost.JSON's serializer; doubles print as e.g. 1.5E0).
std::string serialize(const boost::json::value& v);

}  // namespace junction::sdk
