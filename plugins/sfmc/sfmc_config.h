#pragma once

// The `sfmc` destination's configuration: one option table, the cross-field rules, and the
// default field mapping of identify events to data extension columns.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "junction/sdk/options.h"

namespace junction::plugins::sfmc {

// Rows in one rowset request: the vendor's documented best practice ("at most 50 records at a
// time"); its hard limit is the 5 MB payload.
inline constexpr std::int64_t kDefaultRowsPerRequest = 50;
// A rowset request's body stays under this (the vendor refuses payloads over 5 MB).
inline constexpr std::size_t kMaxRowsetBytes = 4 * 1024 * 1024;

struct SfmcConfig {
  std::string auth_url;       // the tenant's authentication base URI
  std::string client_id;
  std::string client_secret;  // secret
  std::string account_id;     // the business unit's MID; optional
  std::string scope;          // optional: space-separated permissions to ask for
  std::string data_extension;  // external key of the data extension identify events upsert into
  std::string key_field;       // its primary-key column
  std::string contact_key;     // path in the event of the contact key
  boost::json::object journeys;  // event name -> journey entry-event EventDefinitionKey
                                 // ("Audience Entered: <audience>" names one audience's entries)
  std::string audiences_data_extension;  // external key of the audience membership rows; optional
  boost::json::object mapping;   // overrides of defaultMapping()
  std::int64_t rows_per_request = kDefaultRowsPerRequest;
  std::string erase_by;  // which of the person's ids is the contact key: userId | email | anonymousId
  std::chrono::milliseconds timeout{0};

  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<SfmcConfig>& sfmcOptions();

// Identify events' traits to the data extension's columns (see README.md):
//   EmailAddress <- traits.email | context.traits.email (trimmed, lower-cased)
//   FirstName    <- traits.firstName | traits.first_name
//   LastName     <- traits.lastName | traits.last_name
//   Phone        <- traits.phone
const boost::json::object& defaultMapping();

}  // namespace junction::plugins::sfmc
