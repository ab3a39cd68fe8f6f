#include "salesforce_config.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "junction/sdk/incremental_sync.h"
#include "junction/sdk/mapping.h"

namespace junction::plugins::salesforce {

namespace json = boost::json;
using sdk::option;

namespace {

bool httpUrl(const std::string& url) {
  return url.starts_with("https://") || url.starts_with("http://");
}

// "62.0": two digits, a dot, one digit.
bool apiVersion(std::string_view v) {
  return v.size() == 4 && std::isdigit(static_cast<unsigned char>(v[0])) != 0 &&
         std::isdigit(static_cast<unsigned char>(v[1])) != 0 && v[2] == '.' &&
         std::isdigit(static_cast<unsigned char>(v[3])) != 0;
}

// A Salesforce API name: letters, digits and underscores, starting with a letter.
bool apiName(std::string_view name) {
  return !name.empty() && std::isalpha(static_cast<unsigned char>(name[0])) != 0 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
         });
}

void checkCredentials(const std::string& login_url, const std::string& api_version,
                      std::vector<sdk::OptionError>& errors) {
  if (!httpUrl(login_url)) {
    errors.push_back({"login_url", "must be an http:// or https:// URL"});
  }
  if (!apiVersion(api_version)) {
    errors.push_back({"api_version", "must be a REST API version like \"62.0\""});
  }
}

}  // namespace

const sdk::OptionTable<SalesforceConfig>& salesforceOptions() {
  static const sdk::OptionTable<SalesforceConfig> table{
      option("login_url", &SalesforceConfig::login_url,
             "The org's My Domain URL (https://NAME.my.salesforce.com); tokens come from "
             "{login_url}/services/oauth2/token, the API from the token's instance_url")
          .required(),
      option("client_id", &SalesforceConfig::client_id,
             "Consumer key of the connected app (client credentials flow enabled)")
          .required(),
      option("client_secret", &SalesforceConfig::client_secret,
             "Consumer secret of the connected app")
          .required()
          .secret(),
      option("object", &SalesforceConfig::object, "The sObject identify events upsert")
          .defaultValue("Contact")
          .oneOf({"Contact", "Lead"}),
      option("external_id_field", &SalesforceConfig::external_id_field,
             "The object's external id field the records are upserted by (e.g. Junction_Id__c)")
          .required(),
      option("external_id", &SalesforceConfig::external_id,
             "Path in the event of the external id value")
          .defaultValue("userId"),
      option("api_version", &SalesforceConfig::api_version,
             "REST API version (46.0 or later: sObject Collections upsert)")
          .defaultValue(json::string(kDefaultApiVersion)),
      option("mapping", &SalesforceConfig::mapping,
             "Object fields from event paths, over the default mapping (Email, FirstName, "
             "LastName, Phone, Title; Company for Lead); a field set to null is dropped")
          .defaultValue(json::object{}),
      option("records_per_request", &SalesforceConfig::records_per_request,
             "Records in one sObject Collections upsert (Salesforce allows 200)")
          .defaultValue(kMaxCollectionRecords)
          .range(1, kMaxCollectionRecords),
      option("erase_by", &SalesforceConfig::erase_by,
             "Which id of a person to erase is their external id value")
          .defaultValue("userId")
          .oneOf({"userId", "email", "anonymousId"}),
      option("limit_pause", &SalesforceConfig::limit_pause,
             "How long the destination pauses when the org's API request limit is reached "
             "(REQUEST_LIMIT_EXCEEDED), unless the answer says how long")
          .defaultValue("5m")
          .range(1000, 24.0 * 3600 * 1000),
      option("timeout", &SalesforceConfig::timeout, "Timeout of one request to Salesforce")
          .defaultValue("30s")
          .range(100, 300'000),
  };
  return table;
}

const json::object& defaultMapping(std::string_view object) {
  static const json::object contact = [] {
    json::object m;
    m["Email"] = json::object{{"from", json::array{"traits.email", "context.traits.email"}},
                              {"transform", json::array{"trim", "lowercase"}}};
    m["FirstName"] = json::object{{"from", json::array{"traits.firstName", "traits.first_name"}}};
    m["LastName"] = json::object{{"from", json::array{"traits.lastName", "traits.last_name"}}};
    m["Phone"] = "traits.phone";
    m["Title"] = "traits.title";
    return m;
  }();
  static const json::object lead = [] {
    json::object m = contact;
    m["Company"] = json::object{{"from", json::array{"traits.company.name", "traits.company"}}};
    return m;
  }();
  return object == "Lead" ? lead : contact;
}

std::vector<sdk::OptionError> SalesforceConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  checkCredentials(login_url, api_version, errors);
  if (apiVersion(api_version) && api_version < "46.0") {
    errors.push_back({"api_version", "must be 46.0 or later (sObject Collections upsert)"});
  }
  if (!apiName(external_id_field)) {
    errors.push_back({"external_id_field",
                      "must be the API name of an external id field (e.g. Junction_Id__c)"});
  }
  if (external_id.empty()) {
    errors.push_back({"external_id", "must be a path in the event, e.g. userId"});
  }
  for (auto& e : sdk::FieldMapping::check(defaultMapping(object), mapping)) {
    errors.push_back(std::move(e));
  }
  for (const auto& [field, spec] : mapping) {
    if (!apiName(field)) {
      errors.push_back({"mapping." + std::string(field),
                        "must be a field's API name (letters, digits, '_'; records are flat)"});
    } else if (field == external_id_field) {
      errors.push_back({"mapping." + std::string(field),
                        "is the external id field: its value comes from external_id"});
    }
  }
  return errors;
}

const sdk::OptionTable<SalesforceSourceConfig>& salesforceSourceOptions() {
  static const sdk::OptionTable<SalesforceSourceConfig> table{
      option("login_url", &SalesforceSourceConfig::login_url,
             "The org's My Domain URL (https://NAME.my.salesforce.com)")
          .required(),
      option("client_id", &SalesforceSourceConfig::client_id,
             "Consumer key of the connected app (client credentials flow enabled)")
          .required(),
      option("client_secret", &SalesforceSourceConfig::client_secret,
             "Consumer secret of the connected app")
          .required()
          .secret(),
      option("object", &SalesforceSourceConfig::object, "The sObject whose changes are pulled")
          .defaultValue("Contact")
          .oneOf({"Contact", "Lead"}),
      sdk::everyOption(&SalesforceSourceConfig::every),
      option("fields", &SalesforceSourceConfig::fields,
             "Fields read into traits (Email, FirstName, ... map to Segment's traits; others keep "
             "their API name)")
          .defaultValue(json::array{"Email", "FirstName", "LastName", "Phone", "Title"}),
      option("user_id", &SalesforceSourceConfig::user_id,
             "userId of the identify events: 'Id' (the record id) or a field (e.g. "
             "Junction_Id__c); records without one are skipped")
          .defaultValue("Id"),
      option("api_version", &SalesforceSourceConfig::api_version, "REST API version")
          .defaultValue(json::string(kDefaultApiVersion)),
      option("timeout", &SalesforceSourceConfig::timeout, "Timeout of one query request")
          .defaultValue("30s")
          .range(100, 300'000),
  };
  return table;
}

std::vector<sdk::OptionError> SalesforceSourceConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  checkCredentials(login_url, api_version, errors);
  for (const auto& f : fields) {
    if (!apiName(f)) {
      errors.push_back({"fields", "\"" + f + "\" is not a field's API name"});
    }
  }
  if (!apiName(user_id)) {
    errors.push_back({"user_id", "must be 'Id' or a field's API name"});
  }
  return errors;
}

}  // namespace junction::plugins::salesforce
