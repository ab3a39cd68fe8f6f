#pragma once

// A plugin's option table: every config key with its type, default, bounds, required/secret
// flags and a one-line doc, bound to a field of the plugin's config struct.
//
// The daemon applies the table to the YAML before anything starts: unknown keys (with a "did
// you mean" hint), wrong types, out-of-bounds values and missing required keys are reported
// with file, line and key, all at once. It fills defaults, normalizes durations ("5s" -> 5000
// ms) and sizes ("32KiB" -> 32768 bytes), redacts secrets, and prints the table as docs
// (`junction plugins NAME`). The plugin then receives a checked ConfigObject and binds it to its
// struct with `OptionTable::bind`, which cannot fail on a checked object.
//
//   struct Config {
//     std::string path;
//     std::uint64_t max_file_bytes = 0;
//     std::chrono::milliseconds flush_interval{0};
//   };
//   const OptionTable<Config>& options() {
//     static const OptionTable<Config> table{
//         option("path", &Config::path, "File the events are appended to").required(),
//         option("max_file_bytes", &Config::max_file_bytes, "Rotate past this size")
//             .defaultValue("64MiB").range(1024, 1e12),
//         option("flush_interval", &Config::flush_interval, "How often to flush")
//             .defaultValue("1s"),
//     };
//     return table;
//   }

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "junction/sdk/result.h"

namespace junction::sdk {

enum class OptionType {
  String,      // a string; `oneOf` may restrict it
  Integer,     // a signed 64-bit integer
  Number,      // a double
  Boolean,     // true/false
  Duration,    // "250ms", "5s", "2m", "1h" or an integer of milliseconds -> int64 ms
  Size,        // "512", "32KiB", "64MiB", "1GiB", "10MB" -> uint64 bytes
  StringList,  // a list of strings (a single string is accepted as a list of one)
  Object,      // a free-form mapping, passed through as JSON (e.g. field mappings)
};

const char* toString(OptionType type) noexcept;

// The non-templated description of one option: what the daemon validates against and prints.
struct OptionSpec {
  std::string key;
  OptionType type = OptionType::String;
  std::optional<boost::json::value> default_value;  // in the normalized form (ms, bytes, ...)
  std::optional<double> min;                         // for Integer, Number, Duration (ms), Size
  std::optional<double> max;
  std::vector<std::string> one_of;  // allowed values for String
  bool required = false;
  bool secret = false;  // never printed, logged or put in errors
  std::string doc;
};

// A configuration after the daemon checked it against the option table: every key known,
// every value of its option's type in normalized form, every default filled.
using ConfigObject = boost::json::object;

// Normalizes `value` to `spec`'s type: Duration strings to integer ms, Size strings to integer
// bytes, a lone string to a StringList; checks type, bounds and `one_of`. On failure the
// error's message says what was expected (never echoing a secret's value).
Result<boost::json::value> normalizeOption(const OptionSpec& spec, const boost::json::value& value);

Result<std::int64_t> parseDuration(std::string_view text) noexcept;  // -> milliseconds
Result<std::uint64_t> parseSize(std::string_view text) noexcept;     // -> bytes

// One option bound to a field of Config.
template <typename Config>
class Option {
 public:
  using Binder = std::function<void(Config&, const boost::json::value&)>;

  Option(OptionSpec spec, Binder binder) : spec_(std::move(spec)), binder_(std::move(binder)) {}

  Option& required() {
    spec_.required = true;
    return *this;
  }
  Option& secret() {
    spec_.secret = true;
    return *this;
  }
  Option& range(double min, double max) {
    spec_.min = min;
    spec_.max = max;
    return *this;
  }
  Option& min(double min) {
    spec_.min = min;
    return *this;
  }
  Option& oneOf(std::vector<std::string> values) {
    spec_.one_of = std::move(values);
    return *this;
  }
  // The default, written as it would be in YAML ("5s", "64MiB", 10, true, ...). It is
  // normalized like a configured value; an invalid default is a bug caught by the SDK's
  // `checkOptionTable` (run by the loader and by `junction plugins`).
  Option& defaultValue(boost::json::value value) {
    spec_.default_value = std::move(value);
    return *this;
  }

  const OptionSpec& spec() const noexcept { return spec_; }
  void bind(Config& config, const boost::json::value& value) const { binder_(config, value); }

 private:
  OptionSpec spec_;
  Binder binder_;
};

namespace detail {
void bindValue(std::string& out, const boost::json::value& v);
void bindValue(std::int64_t& out, const boost::json::value& v);
void bindValue(std::uint64_t& out, const boost::json::value& v);
void bindValue(double& out, const boost::json::value& v);
void bindValue(bool& out, const boost::json::value& v);
void bindValue(std::chrono::milliseconds& out, const boost::json::value& v);
void bindValue(std::vector<std::string>& out, const boost::json::value& v);
void bindValue(boost::json::object& out, const boost::json::value& v);

template <typename T>
constexpr OptionType optionTypeOf() {
  if constexpr (std::is_same_v<T, std::string>) {
    return OptionType::String;
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return OptionType::Integer;
  } else if constexpr (std::is_same_v<T, std::uint64_t>) {
    return OptionType::Size;
  } else if constexpr (std::is_same_v<T, double>) {
    return OptionType::Number;
  } else if constexpr (std::is_same_v<T, bool>) {
    return OptionType::Boolean;
  } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
    return OptionType::Duration;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return OptionType::StringList;
  } else {
    static_assert(std::is_same_v<T, boost::json::object>,
                  "option fields are std::string, std::int64_t, std::uint64_t (a size in bytes), "
                  "double, bool, std::chrono::milliseconds, std::vector<std::string> or "
                  "boost::json::object");
    return OptionType::Object;
  }
}
}  // namespace detail

// Declares an option bound to `field`; its type follows the field's C++ type (see OptionType).
template <typename Config, typename Field>
Option<Config> option(std::string key, Field Config::*field, std::string doc) {
  OptionSpec spec;
  spec.key = std::move(key);
  spec.type = detail::optionTypeOf<Field>();
  spec.doc = std::move(doc);
  return Option<Config>(std::move(spec), [field](Config& config, const boost::json::value& v) {
    detail::bindValue(config.*field, v);
  });
}

// Checks a table on its own: keys unique, defaults valid for their types. Returns problems.
std::vector<std::string> checkOptionTable(const std::vector<OptionSpec>& specs);

template <typename Config>
class OptionTable {
 public:
  OptionTable(std::initializer_list<Option<Config>> options) : options_(options) {}

  std::vector<OptionSpec> specs() const {
    std::vector<OptionSpec> out;
    out.reserve(options_.size());
    for (const auto& o : options_) {
      out.push_back(o.spec());
    }
    return out;
  }

  // Fills a Config from a checked ConfigObject. Keys absent from `config` keep the struct's
  // initializer (only possible for optional keys without a default).
  Config bind(const ConfigObject& config) const {
    Config out{};
    for (const auto& o : options_) {
      if (const auto* v = config.if_contains(o.spec().key); v != nullptr && !v->is_null()) {
        o.bind(out, *v);
      }
    }
    return out;
  }

 private:
  std::vector<Option<Config>> options_;
};

// A problem a plugin's cross-field `validate()` found; `key` names the option it concerns.
struct OptionError {
  std::string key;
  std::string message;
};

}  // namespace junction::sdk
