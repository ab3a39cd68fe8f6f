#pragma once

// The `salesforce` connectors' configuration: one option table per kind (destination, source),
// their cross-field rules, and the destination's default field mapping per object.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "junction/sdk/options.h"
#include "salesforce_api.h"

namespace junction::plugins::salesforce {

// Records in one sObject Collections request: Salesforce's limit.
inline constexpr std::int64_t kMaxCollectionRecords = 200;
// The REST API version used when none is configured (sObject Collections upsert needs 46.0+).
inline constexpr std::string_view kDefaultApiVersion = "62.0";

struct SalesforceConfig {
  std::string login_url;          // https://MyDomainName.my.salesforce.com
  std::string client_id;          // the connected app's consumer key
  std::string client_secret;      // secret
  std::string object;             // Contact | Lead
  std::string external_id_field;  // the object's external id field, e.g. Junction_Id__c
  std::string external_id;        // path in the event of its value (default userId)
  std::string api_version;        // "62.0"
  boost::json::object mapping;    // over defaultMapping(object)
  std::int64_t records_per_request = kMaxCollectionRecords;
  std::string erase_by;                    // userId | email | anonymousId
  std::chrono::milliseconds limit_pause{0};  // pause after REQUEST_LIMIT_EXCEEDED
  std::chrono::milliseconds timeout{0};

  Credentials credentials() const { return {login_url, client_id, client_secret, timeout}; }
  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<SalesforceConfig>& salesforceOptions();

// Identify traits to the object's fields (see README.md):
//   Email     <- traits.email | context.traits.email (trimmed, lower-cased)
//   FirstName <- traits.firstName | traits.first_name
//   LastName  <- traits.lastName | traits.last_name
//   Phone     <- traits.phone
//   Title     <- traits.title
//   Company   <- traits.company.name | traits.company        (Lead only)
const boost::json::object& defaultMapping(std::string_view object);

struct SalesforceSourceConfig {
  std::string login_url;
  std::string client_id;
  std::string client_secret;  // secret
  std::string object;         // Contact | Lead
  std::chrono::milliseconds every{0};
  std::vector<std::string> fields;  // read into traits
  std::string user_id;              // "Id" or a field name
  std::string api_version;
  std::chrono::milliseconds timeout{0};

  Credentials credentials() const { return {login_url, client_id, client_secret, timeout}; }
  std::vector<sdk::OptionError> validate() const;
};

const sdk::OptionTable<SalesforceSourceConfig>& salesforceSourceOptions();

}  // namespace junction::plugins::salesforce
