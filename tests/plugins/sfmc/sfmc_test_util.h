#pragma once

// Shared helpers of the sfmc tests: events, and configs built the way the daemon builds them
// (each key normalized against the option table, defaults filled, then bound).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "junction/sdk/event.h"
#include "junction/sdk/options.h"
#include "sfmc_config.h"

namespace junction::plugins::sfmc::testing {

inline sdk::Event event(const std::string& json_text) {
  auto made = sdk::makeEvent(boost::json::parse(json_text).as_object(), "web");
  EXPECT_TRUE(made) << made.error().message << " in " << json_text;
  return made ? std::move(*made) : sdk::Event{};
}

inline sdk::Event identify(const std::string& user_id, const std::string& email,
                           const std::string& first_name = "") {
  boost::json::object traits{{"email", email}};
  if (!first_name.empty()) {
    traits["firstName"] = first_name;
  }
  boost::json::object body{{"type", "identify"}, {"userId", user_id}, {"traits", traits}};
  return event(boost::json::serialize(body));
}

// The checked config object the daemon would pass for `given` (keys as in YAML, already JSON).
// Fails the test on a value the table refuses.
inline sdk::ConfigObject checkedConfig(const boost::json::object& given) {
  sdk::ConfigObject out;
  for (const auto& spec : sfmcOptions().specs()) {
    if (const auto* v = given.if_contains(spec.key)) {
      auto normalized = sdk::normalizeOption(spec, *v);
      EXPECT_TRUE(normalized) << spec.key << ": " << normalized.error().message;
      if (normalized) {
        out[spec.key] = std::move(*normalized);
      }
    } else if (spec.default_value) {
      out[spec.key] = sdk::normalizeOption(spec, *spec.default_value).value();
    }
  }
  return out;
}

inline SfmcConfig configFrom(const boost::json::object& given) {
  return sfmcOptions().bind(checkedConfig(given));
}

}  // namespace junction::plugins::sfmc::testing
