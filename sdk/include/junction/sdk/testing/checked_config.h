#pragma once

// A plugin's config built the way the daemon builds it, for tests: each given key normalized
// against the option table ("30s" -> milliseconds, ...), defaults filled in, then bound. The
// config's validate() is not called: tests of cross-field rules call it themselves.
//
//   auto config = bindChecked(myOptions(), {{"base_url", fake.baseUrl()}, {"timeout", "5s"}});
//   ASSERT_TRUE(config) << config.error().message;

#include <string>
#include <utility>

#include <boost/json/object.hpp>

#include "junction/sdk/options.h"
#include "junction/sdk/result.h"

namespace junction::sdk::testing {

template <typename Config>
Result<Config> bindChecked(const OptionTable<Config>& table, const boost::json::object& given) {
  ConfigObject checked;
  for (const auto& spec : table.specs()) {
    const boost::json::value* v = given.if_contains(spec.key);
    if (v == nullptr && !spec.default_value) {
      continue;
    }
    auto normalized = normalizeOption(spec, v != nullptr ? *v : *spec.default_value);
    if (!normalized) {
      return makeError(normalized.error().code, spec.key + ": " + normalized.error().message);
    }
    checked[spec.key] = std::move(*normalized);
  }
  return table.bind(checked);
}

}  // namespace junction::sdk::testing
