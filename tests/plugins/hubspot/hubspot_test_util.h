#pragma once

// Shared helpers of the hubspot tests: events, and configs built the way the daemon builds them
// (each key normalized against the option table, defaults filled, then bound).

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <string>

#include "hubspot_destination.h"
#include "junction/sdk/event.h"
#include "junction/sdk/options.h"

namespace junction::plugins::hubspot::testing {

// The token the fake HubSpot accepts by default.
inline constexpr const char* kToken = "pat-na1-fake-hubspot-token";

// An event from its JSON text, with messageId "m-<userId>" and timestamp 2026-01-01T00:00:00Z.
inline sdk::Event event(const std::string& json_text) {
  auto made = sdk::makeEvent(boost::json::parse(json_text).as_object(), "web");
  EXPECT_TRUE(made) << made.error().message << " in " << json_text;
  if (!made) {
    return sdk::Event{};
  }
  auto header = made->header();
  header.message_id = "m-" + header.user_id;
  header.timestamp_ms = 1'767'225'600'000;
  return sdk::Event(header, std::string(made->json()));
}

// An identify of user "u<i>" with a full set of traits; the email defaults to
// "Person<i>@Example.com" (HubSpot keeps it lower-cased).
inline sdk::Event identify(int i, const std::string& email = "") {
  boost::json::object traits{
      {"email", email.empty() ? "Person" + std::to_string(i) + "@Example.com" : email},
      {"first_name", "Ada"},
      {"last_name", "Lovelace"},
      {"phone", "+44 1"},
      {"company", boost::json::object{{"name", "Engines"}}},
      {"age", 36}};
  boost::json::object body{
      {"type", "identify"}, {"userId", "u" + std::to_string(i)}, {"traits", std::move(traits)}};
  return event(boost::json::serialize(body));
}

// A track event of user "u<i>" named `name`, the email in context.traits.
inline sdk::Event track(int i, const std::string& name, const std::string& email,
                        boost::json::object properties = {}) {
  boost::json::object body{
      {"type", "track"},
      {"userId", "u" + std::to_string(i)},
      {"event", name},
      {"context", boost::json::object{{"traits", boost::json::object{{"email", email}}}}},
      {"properties", std::move(properties)}};
  return event(boost::json::serialize(body));
}

inline const sdk::OptionSpec& spec(const std::string& key) {
  static const auto specs = hubspotOptions().specs();
  const auto it = std::find_if(specs.begin(), specs.end(),
                               [&](const sdk::OptionSpec& s) { return s.key == key; });
  EXPECT_NE(it, specs.end()) << key;
  return it != specs.end() ? *it : specs.front();
}

// The checked config object the daemon would pass for `given` (keys as in YAML, already JSON).
// Fails the test on a value the table refuses.
inline sdk::ConfigObject checkedConfig(const boost::json::object& given) {
  sdk::ConfigObject out;
  for (const auto& s : hubspotOptions().specs()) {
    if (const auto* v = given.if_contains(s.key)) {
      auto normalized = sdk::normalizeOption(s, *v);
      EXPECT_TRUE(normalized) << s.key << ": " << normalized.error().message;
      if (normalized) {
        out[s.key] = std::move(*normalized);
      }
    } else if (s.default_value) {
      out[s.key] = sdk::normalizeOption(s, *s.default_value).value();
    }
  }
  return out;
}

inline HubspotConfig configFrom(const boost::json::object& given) {
  return hubspotOptions().bind(checkedConfig(given));
}

// A config for a HubSpot at `base_url` with the fake's token and a 2 s timeout.
inline HubspotConfig config(const std::string& base_url, boost::json::object events = {}) {
  return configFrom(boost::json::object{{"access_token", kToken},
                                        {"base_url", base_url},
                                        {"events", std::move(events)},
                                        {"timeout", "2s"}});
}

}  // namespace junction::plugins::hubspot::testing
