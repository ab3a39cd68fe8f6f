#include "sfmc_config.h"

#include <boost/json.hpp>

#include "junction/sdk/mapping.h"

namespace junction::plugins::sfmc {

namespace json = boost::json;
using sdk::option;

const sdk::OptionTable<SfmcConfig>& sfmcOptions() {
  static const sdk::OptionTable<SfmcConfig> table{
      option("auth_url", &SfmcConfig::auth_url,
             "The tenant's authentication base URI (https://SUBDOMAIN.auth.marketingcloudapis.com); "
             "tokens come from {auth_url}/v2/token, the REST base from the token's "
             "rest_instance_url")
          .required(),
      option("client_id", &SfmcConfig::client_id,
             "Client id of the installed package's API integration (server-to-server)")
          .required(),
      option("client_secret", &SfmcConfig::client_secret,
             "Client secret of the installed package's API integration")
          .required()
          .secret(),
      option("account_id", &SfmcConfig::account_id,
             "MID of the business unit to work in (empty: the package's default)")
          .defaultValue(""),
      option("scope", &SfmcConfig::scope,
             "Space-separated permissions to request (empty: all the package grants)")
          .defaultValue(""),
      option("data_extension", &SfmcConfig::data_extension,
             "External key of the data extension identify events upsert rows into (empty: "
             "identify events are skipped)")
          .defaultValue(""),
      option("key_field", &SfmcConfig::key_field,
             "Primary-key column of the data extension; it holds the contact key")
          .defaultValue("ContactKey"),
      option("contact_key", &SfmcConfig::contact_key,
             "Path in the event of the contact key (the subscriber key)")
          .defaultValue("userId"),
      option("journeys", &SfmcConfig::journeys,
             "Track event names mapped to journey entry-event definition keys, e.g. "
             "{\"Cart Abandoned\": APIEvent-3c1f...}; \"Audience Entered: <audience name>\" "
             "matches that audience's Audience Entered events only; other track events are "
             "skipped")
          .defaultValue(json::object{}),
      option("audiences_data_extension", &SfmcConfig::audiences_data_extension,
             "External key of a data extension of audience membership rows (ContactKey, "
             "Audience, Member, UpdatedAt; primary key ContactKey+Audience) upserted from "
             "Audience Entered/Exited events and identify events' context.junction.audiences "
             "(empty: off)")
          .defaultValue(""),
      option("mapping", &SfmcConfig::mapping,
             "Data extension columns from event paths, over the default mapping (EmailAddress, "
             "FirstName, LastName, Phone); a column set to null is dropped")
          .defaultValue(json::object{}),
      option("rows_per_request", &SfmcConfig::rows_per_request,
             "Rows in one rowset upsert (the vendor recommends at most 50; bodies stay under "
             "its 5 MB limit in any case)")
          .defaultValue(kDefaultRowsPerRequest)
          .range(1, 2500),
      option("erase_by", &SfmcConfig::erase_by,
             "Which id of a person to erase is their contact key")
          .defaultValue("userId")
          .oneOf({"userId", "email", "anonymousId"}),
      option("timeout", &SfmcConfig::timeout, "Timeout of one request to Marketing Cloud")
          .defaultValue("30s")
          .range(100, 300'000),
  };
  return table;
}

const json::object& defaultMapping() {
  static const json::object mapping = [] {
    json::object m;
    m["EmailAddress"] = json::object{{"from", json::array{"traits.email", "context.traits.email"}},
                                     {"transform", json::array{"trim", "lowercase"}}};
    m["FirstName"] = json::object{{"from", json::array{"traits.firstName", "traits.first_name"}}};
    m["LastName"] = json::object{{"from", json::array{"traits.lastName", "traits.last_name"}}};
    m["Phone"] = "traits.phone";
    return m;
  }();
  return mapping;
}

std::vector<sdk::OptionError> SfmcConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (!auth_url.starts_with("https://") && !auth_url.starts_with("http://")) {
    errors.push_back({"auth_url", "must be an http:// or https:// URL"});
  }
  if (data_extension.empty() && journeys.empty() && audiences_data_extension.empty()) {
    errors.push_back({"data_extension",
                      "set data_extension (identify events), journeys (track events) or "
                      "audiences_data_extension (audience membership): with none, this "
                      "destination has nothing to send"});
  }
  if (key_field.empty()) {
    errors.push_back({"key_field", "must name the data extension's primary-key column"});
  }
  if (contact_key.empty()) {
    errors.push_back({"contact_key", "must be a path in the event, e.g. userId"});
  }
  for (const auto& [name, key] : journeys) {
    const std::string where = "journeys." + std::string(name);
    if (name.empty()) {
      errors.push_back({"journeys", "an event name must not be empty"});
    } else if (!key.is_string() || key.get_string().empty()) {
      errors.push_back({where, "must be the journey's entry-event definition key (a string)"});
    } else if (std::string_view(key.get_string()).find('.') != std::string_view::npos) {
      errors.push_back({where, "an EventDefinitionKey cannot contain a period"});
    }
  }
  for (auto& e : sdk::FieldMapping::check(defaultMapping(), mapping)) {
    errors.push_back(std::move(e));
  }
  for (const auto& [field, spec] : mapping) {
    if (std::string_view(field).find('.') != std::string_view::npos) {
      errors.push_back({"mapping." + std::string(field),
                        "data extension columns are flat: a column name cannot contain '.'"});
    }
  }
  return errors;
}

}  // namespace junction::plugins::sfmc
