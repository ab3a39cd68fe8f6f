#pragma once

// Field mapping: from paths in an event to a vendor's fields, driven by YAML. One implementation
// for every destination plugin, so that operators write mappings the same way everywhere.
//
// A mapping is a YAML object whose keys are the vendor's field names and whose values say where
// each field comes from:
//
//   mapping:
//     FNAME: traits.first_name                 # a path in the event (see json.h for paths)
//     LNAME: { from: traits.last_name, default: "" }
//     EMAIL: { from: [traits.email, context.traits.email], transform: [trim, lowercase] }
//     EMAIL_SHA256: { from: traits.email, transform: [trim, lowercase, sha256] }
//     BIRTHDAY: { from: traits.birthday, transform: "date:%m/%d" }
//     PLAN: { value: "pro" }                   # a constant
//     PHONE: null                              # drops a field of the plugin's default mapping
//
//   - `from`: a path, or a list of paths tried in order (the first that holds a value wins).
//   - `default`: used when no path holds a value (null, missing, or empty after the transforms).
//   - `value`: a constant instead of `from`.
//   - `transform`: one name or a list, applied in order: `trim`, `lowercase`, `uppercase`,
//     `sha256` (lower-case hex), `md5` (lower-case hex), `string` (numbers and booleans as
//     text), `number` (numeric text to a number; anything else: no value), `boolean`
//     ("true"/"false"/"1"/"0"/"yes"/"no"), `date:FORMAT` (an ISO-8601 time or Unix epoch
//     milliseconds, written with strftime's FORMAT in UTC, e.g. `date:%Y-%m-%d`), `iso8601`
//     (an ISO-8601 time with any offset, or Unix epoch seconds or milliseconds — a number or
//     numeric text, below 1e11 taken as seconds — to "2026-11-28T15:11:01.123Z"; for inbound
//     timestamps).
//   - The path `$` names the whole document: `properties: $` copies an inbound payload.
//   - A field name may be dotted ("address.city") to build nested objects in the output.
//
// Text transforms apply to strings (and to numbers and booleans, as their text); objects and
// arrays pass through them unchanged. A field whose source has no value and no default is left
// out of the output, so a partial profile never overwrites a vendor's value with an empty one.
//
// Thread-safety: a FieldMapping is immutable once parsed; `apply` may run on several threads.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "junction/sdk/options.h"
#include "junction/sdk/result.h"

namespace junction::sdk {

// The `from` path naming the whole input document.
inline constexpr std::string_view kWholeDocumentPath = "$";

// Inbound mapping (sources that turn any JSON into events: the webhook source, CSV import) is the
// same mapping read the other way: its fields are the Segment event's (`type`, `event`, `name`,
// `userId`, `anonymousId`, `timestamp`, `messageId`, `properties.total`, `traits.email`, ...)
// and its paths point into the received document:
//
//   mapping:
//     type: { value: track }
//     event: { from: topic, default: "Order Created" }
//     userId: customer.id
//     anonymousId: cart_token
//     timestamp: { from: created_at, transform: iso8601 }
//     properties: $                            # the whole payload
//     traits.email: customer.email
//
// The top-level fields an inbound mapping may set; checkInboundMapping names any other.
inline constexpr std::string_view kInboundEventFields[] = {
    "type",    "event",      "name",   "userId",    "anonymousId",       "timestamp",
    "messageId", "properties", "traits", "context", "originalTimestamp", "groupId",
    "previousId", "integrations"};

class FieldMapping {
 public:
  struct Rule {
    std::string field;                      // the vendor field (may be dotted)
    std::vector<std::string> from;          // paths tried in order (empty with `constant`)
    std::optional<boost::json::value> constant;
    std::optional<boost::json::value> fallback;  // `default`
    std::vector<std::string> transforms;    // as written: "trim", "date:%Y-%m-%d", ...
  };

  FieldMapping() = default;

  // Parses `overrides` over `defaults` (the plugin's default mapping): a field in `overrides`
  // replaces the default's rule, a null drops it. Every problem is reported, each naming the
  // field, with `option` as the prefix of OptionError::key ("mapping.FNAME"), so a plugin's
  // validate() can return them as they are.
  static Result<FieldMapping> parse(const boost::json::object& defaults,
                                    const boost::json::object& overrides,
                                    std::vector<OptionError>* errors = nullptr,
                                    std::string_view option = "mapping");
  static Result<FieldMapping> parse(const boost::json::object& spec) {
    return parse({}, spec);
  }

  // The problems parse() would report, for a plugin's validate(); empty when the mapping is good.
  static std::vector<OptionError> check(const boost::json::object& defaults,
                                        const boost::json::object& overrides,
                                        std::string_view option = "mapping");

  // The vendor fields for `event` (a Segment Spec object), in the mapping's order. Fields with
  // no value and no default are left out.
  boost::json::object apply(const boost::json::object& event) const;

  // The value one rule gives for `event`, or nullopt.
  std::optional<boost::json::value> valueOf(const Rule& rule,
                                            const boost::json::object& event) const;

  const std::vector<Rule>& rules() const noexcept { return rules_; }
  bool empty() const noexcept { return rules_.empty(); }

 private:
  std::vector<Rule> rules_;
};

// Option errors for an inbound mapping whose field is not a Segment event field (a typo such as
// `user_id` would otherwise silently make events without a user), keyed `option.FIELD`.
std::vector<OptionError> checkInboundMapping(const FieldMapping& mapping,
                                             std::string_view option = "mapping");

// The first string found at `paths` in `event`, trimmed; nullopt when none holds a non-empty
// string. For identifiers read from one of several places, e.g. the person's email:
// firstString(event, {"traits.email", "context.traits.email"}).
std::optional<std::string> firstString(const boost::json::object& event,
                                       std::initializer_list<std::string_view> paths);

// Where destinations find a person's email: `traits.email` (identify), then
// `context.traits.email` (any event), then `properties.email`.
std::optional<std::string> emailOf(const boost::json::object& event);

}  // namespace junction::sdk
