#include "hubspot_source.h"

#include <boost/json.hpp>
#include <algorithm>
#include <charconv>
#include <map>

#include "hubspot_api.h"
#include "junction/sdk/event.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/text.h"

namespace junction::plugins::hubspot {

namespace json = boost::json;
using sdk::option;

namespace {

constexpr std::string_view kSearchPath = "/crm/v3/objects/contacts/search";
// 5xx and transport failures in a row before a run gives up (the next run resumes).
constexpr int kMaxTransientFailures = 3;
constexpr std::chrono::milliseconds kFirstBackoff{1000};

// HubSpot's contact properties read as Segment's reserved traits; any other property keeps its
// HubSpot name.
const std::map<std::string, std::string, std::less<>>& traitNames() {
  static const std::map<std::string, std::string, std::less<>> names = {
      {"email", "email"},         {"firstname", "firstName"}, {"lastname", "lastName"},
      {"phone", "phone"},         {"company", "company"},     {"website", "website"},
      {"jobtitle", "title"},      {"createdate", "createdAt"}, {"city", "address.city"},
      {"state", "address.state"}, {"country", "address.country"}, {"zip", "address.postalCode"},
  };
  return names;
}

std::optional<std::int64_t> parseNumber(std::string_view text) {
  std::int64_t n = 0;
  if (text.empty() ||
      std::from_chars(text.data(), text.data() + text.size(), n).ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return n;
}

// A contact's lastmodifieddate (HubSpot serves ISO 8601; epoch ms is accepted too).
std::optional<std::int64_t> modifiedMs(const json::object& contact) {
  const auto* properties = contact.if_contains("properties");
  const auto* v = properties != nullptr && properties->is_object()
                      ? properties->get_object().if_contains("lastmodifieddate")
                      : nullptr;
  if (v == nullptr || !v->is_string()) {
    return std::nullopt;
  }
  const std::string_view text = v->get_string();
  if (auto n = parseNumber(text)) {
    return n;
  }
  return sdk::parseIsoTimestamp(text);
}

}  // namespace

// --- configuration ---------------------------------------------------------------------------

const sdk::OptionTable<HubspotSourceConfig>& hubspotSourceOptions() {
  static const sdk::OptionTable<HubspotSourceConfig> table{
      option("access_token", &HubspotSourceConfig::access_token,
             "Private app access token with crm.objects.contacts.read")
          .required()
          .secret(),
      option("base_url", &HubspotSourceConfig::base_url, "HubSpot API root")
          .defaultValue("https://api.hubapi.com"),
      sdk::everyOption(&HubspotSourceConfig::every),
      option("properties", &HubspotSourceConfig::properties,
             "Contact properties read into traits (email, firstname, ... map to Segment's "
             "traits; others keep their name)")
          .defaultValue(json::array{"email", "firstname", "lastname", "phone", "company",
                                    "website", "jobtitle", "city", "state", "country", "zip"}),
      option("user_id", &HubspotSourceConfig::user_id,
             "userId of the identify events: 'id' (the HubSpot contact id) or a contact "
             "property (e.g. 'email'); contacts without one are skipped")
          .defaultValue("id"),
      option("page_size", &HubspotSourceConfig::page_size,
             "Contacts a search request asks for (its limit)")
          .defaultValue(100)
          .range(1, 200),
      option("timeout", &HubspotSourceConfig::timeout, "Timeout of one search request")
          .defaultValue("30s")
          .range(100, 300'000),
  };
  return table;
}

std::vector<sdk::OptionError> HubspotSourceConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (!base_url.starts_with("https://") && !base_url.starts_with("http://")) {
    errors.push_back({"base_url", "must be an http:// or https:// URL"});
  }
  if (access_token.empty()) {
    errors.push_back({"access_token", "must not be empty"});
  }
  if (user_id.empty()) {
    errors.push_back({"user_id", "must be 'id' or a contact property name"});
  }
  for (const auto& p : properties) {
    if (p.empty() || p.find_first_of(" .\"") != std::string::npos) {
      errors.push_back({"properties", "'" + p + "' is not a HubSpot property name"});
    }
  }
  return errors;
}

// --- requests and answers --------------------------------------------------------------------

std::string buildSearchBody(const SearchCursor& cursor, const std::vector<std::string>& properties,
                            std::int64_t limit) {
  json::array props;
  for (const auto& p : properties) {
    props.emplace_back(p);
  }
  auto filter = [](const char* property, const char* op, std::string value) {
    return json::object{{"propertyName", property}, {"operator", op}, {"value", std::move(value)}};
  };
  json::array filters;
  const char* sort_by = "lastmodifieddate";
  if (cursor.by_id_after) {
    filters.push_back(filter("lastmodifieddate", "EQ", std::to_string(cursor.since_ms)));
    filters.push_back(filter("hs_object_id", "GT", std::to_string(*cursor.by_id_after)));
    sort_by = "hs_object_id";
  } else {
    filters.push_back(filter("lastmodifieddate", "GTE", std::to_string(cursor.since_ms)));
  }
  json::object body{
      {"filterGroups", json::array{json::object{{"filters", std::move(filters)}}}},
      {"sorts", json::array{json::object{{"propertyName", sort_by}, {"direction", "ASCENDING"}}}},
      {"properties", std::move(props)},
      {"limit", limit}};
  if (cursor.after > 0 && !cursor.by_id_after) {
    body["after"] = std::to_string(cursor.after);
  }
  return json::serialize(body);
}

std::string SearchCursor::toString() const {
  json::object o{{"since", since_ms}};
  if (after > 0) {
    o["after"] = after;
  }
  if (!seen.empty()) {
    json::array ids;
    for (const auto& id : seen) {
      ids.emplace_back(id);
    }
    o["seen"] = std::move(ids);
  }
  if (by_id_after) {
    o["by_id_after"] = *by_id_after;
  }
  return json::serialize(o);
}

std::optional<SearchCursor> SearchCursor::parse(std::string_view text) {
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  const json::value* since = o != nullptr ? o->if_contains("since") : nullptr;
  if (since == nullptr || !since->is_int64()) {
    return std::nullopt;
  }
  SearchCursor cursor;
  cursor.since_ms = since->get_int64();
  if (const auto* after = o->if_contains("after")) {
    if (!after->is_int64() || after->get_int64() < 0) {
      return std::nullopt;
    }
    cursor.after = static_cast<std::size_t>(after->get_int64());
  }
  if (const auto* seen = o->if_contains("seen")) {
    if (!seen->is_array()) {
      return std::nullopt;
    }
    for (const auto& id : seen->get_array()) {
      if (!id.is_string()) {
        return std::nullopt;
      }
      cursor.seen.emplace_back(id.get_string());
    }
  }
  if (const auto* by_id = o->if_contains("by_id_after")) {
    if (!by_id->is_int64() || by_id->get_int64() < 0) {
      return std::nullopt;
    }
    cursor.by_id_after = static_cast<std::uint64_t>(by_id->get_int64());
  }
  return cursor;
}

std::optional<json::object> contactEvent(const json::object& contact, const std::string& user_id,
                                         std::string& why) {
  const auto* id = contact.if_contains("id");
  const auto* properties_value = contact.if_contains("properties");
  if (id == nullptr || !id->is_string() || properties_value == nullptr ||
      !properties_value->is_object()) {
    why = "no id or properties";
    return std::nullopt;
  }
  const json::object& properties = properties_value->get_object();
  const auto modified = modifiedMs(contact);
  if (!modified) {
    why = "no lastmodifieddate";
    return std::nullopt;
  }
  std::string uid;
  if (user_id == "id") {
    uid = std::string(id->get_string());
  } else if (const auto* v = properties.if_contains(user_id); v != nullptr && v->is_string()) {
    uid = std::string(v->get_string());
  }
  if (uid.empty()) {
    why = "no " + user_id;
    return std::nullopt;
  }
  json::object traits;
  for (const auto& [name, value] : properties) {
    if (value.is_null() || name == "lastmodifieddate" || name == "hs_object_id") {
      continue;
    }
    const auto known = traitNames().find(std::string_view(name));
    const std::string trait = known != traitNames().end() ? known->second : std::string(name);
    if (const auto dot = trait.find('.'); dot != std::string::npos) {
      json::value& parent = traits[trait.substr(0, dot)];
      if (!parent.is_object()) {
        parent = json::object{};
      }
      parent.get_object()[trait.substr(dot + 1)] = value;
    } else {
      traits[trait] = value;
    }
  }
  const std::string hubspot_id(id->get_string());
  traits["hubspot_id"] = hubspot_id;
  json::object event{
      {"type", "identify"},
      {"userId", uid},
      {"messageId", "hubspot-contact-" + hubspot_id + "-" + std::to_string(*modified)},
      {"timestamp", sdk::formatIsoTimestamp(*modified)},
      {"traits", std::move(traits)},
      {"context",
       json::object{{"externalIds", json::array{json::object{{"id", hubspot_id},
                                                             {"type", "hubspot_id"},
                                                             {"collection", "users"},
                                                             {"encoding", "none"}}}},
                    {"integration", json::object{{"name", "hubspot"}}}}}};
  return event;
}

// --- the source ------------------------------------------------------------------------------

HubspotSource::HubspotSource(HubspotSourceConfig config, sdk::SourceContext& context)
    : config_(std::move(config)),
      context_(context),
      contacts_(context.metrics().counter("junction_hubspot_source_contacts_total",
                                          "Contacts read from HubSpot searches")),
      skipped_(context.metrics().counter("junction_hubspot_source_skipped_total",
                                         "Contacts not emitted: no user id or no lastmodifieddate")),
      overflows_(context.metrics().counter(
          "junction_hubspot_source_overflows_total",
          "Milliseconds with more than 10,000 modified contacts, read by id")),
      rate_limited_(context.metrics().counter("junction_hubspot_source_rate_limited_total",
                                              "Search requests HubSpot answered 429")),
      sync_(context, {.every = config_.every},
            [this](const sdk::SyncRequest& request) { return pull(request); }) {
  std::string base = config_.base_url;
  while (!base.empty() && base.back() == '/') {
    base.pop_back();
  }
  search_url_ = base + std::string(kSearchPath);
  properties_ = config_.properties;
  for (const char* needed : {"email", "lastmodifieddate"}) {
    if (std::find(properties_.begin(), properties_.end(), needed) == properties_.end()) {
      properties_.emplace_back(needed);
    }
  }
  if (config_.user_id != "id" &&
      std::find(properties_.begin(), properties_.end(), config_.user_id) == properties_.end()) {
    properties_.push_back(config_.user_id);
  }
}

sdk::Status HubspotSource::start() { return sync_.start(); }

void HubspotSource::stop() { sync_.stop(); }

sdk::Result<sdk::SyncPage> HubspotSource::pull(const sdk::SyncRequest& request) {
  SearchCursor cursor;
  if (!request.page.empty()) {
    auto parsed = SearchCursor::parse(request.page);
    if (!parsed) {
      return sdk::makeError(sdk::ErrorCode::Internal, "bad page token: " + request.page);
    }
    cursor = *parsed;
  } else if (request.checkpoint) {
    auto since = parseNumber(*request.checkpoint);
    if (!since) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                            "the checkpoint is not a time in epoch ms: " + *request.checkpoint);
    }
    cursor.since_ms = *since;
  }

  sdk::HttpClientRequest http{.method = "POST",
                              .url = search_url_,
                              .headers = {},
                              .body = buildSearchBody(cursor, properties_, config_.page_size),
                              .timeout = config_.timeout};
  http.headers.set("Authorization", "Bearer " + config_.access_token);
  http.headers.set("Content-Type", "application/json");
  const sdk::HttpClientResponse response = context_.http().send(http);
  context_.metrics()
      .counter("junction_hubspot_source_requests_total", "Search requests by HTTP status",
               {{"status", std::to_string(response.status)}})
      .inc();
  switch (response.classification) {
    case sdk::HttpClassification::Success:
      break;
    case sdk::HttpClassification::RateLimited: {
      rate_limited_.inc();
      return sdk::SyncPage::wait(rateLimitWait(response));
    }
    case sdk::HttpClassification::Retryable:
      if (++transient_failures_ <= kMaxTransientFailures) {
        const auto backoff = kFirstBackoff * (1 << (transient_failures_ - 1));
        context_.log().warn("HubSpot search failed; retrying",
                            {{"reason", vendorReason(response)},
                             {"backoff_ms", static_cast<std::int64_t>(backoff.count())}});
        return sdk::SyncPage::wait(std::max(backoff, response.retry_after));
      }
      transient_failures_ = 0;
      return sdk::makeError(sdk::ErrorCode::Unavailable, vendorReason(response));
    case sdk::HttpClassification::AuthExpired:
      return sdk::makeError(sdk::ErrorCode::PermissionDenied,
                            "HubSpot refused the access token: " + vendorReason(response));
    case sdk::HttpClassification::Permanent:
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, vendorReason(response));
  }
  transient_failures_ = 0;

  boost::system::error_code ec;
  const json::value answer = json::parse(response.body, ec);
  const json::object* o = ec ? nullptr : answer.if_object();
  const json::value* results = o != nullptr ? o->if_contains("results") : nullptr;
  if (results == nullptr || !results->is_array()) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "HubSpot's search answer has no results array: " +
                              sdk::clipReason(response.body, 200));
  }
  sdk::SyncPage page;
  std::int64_t last = cursor.since_ms;
  std::vector<std::string> at_last = cursor.seen;  // ids read at `last`, this page's included
  std::uint64_t max_id = cursor.by_id_after.value_or(0);
  std::size_t page_at_last = 0;  // contacts of this page modified at `last`
  const auto& items = results->get_array();
  for (const auto& item : items) {
    if (!item.is_object()) {
      continue;
    }
    contacts_.inc();
    const auto& contact = item.get_object();
    const auto* id_value = contact.if_contains("id");
    const std::string id = id_value != nullptr && id_value->is_string() ? std::string(id_value->get_string()) : "";
    if (auto n = parseNumber(id)) {
      max_id = std::max(max_id, static_cast<std::uint64_t>(*n));
    }
    const auto modified = modifiedMs(contact);
    if (modified && *modified > last) {
      last = *modified;
      at_last.clear();
      page_at_last = 0;
    }
    page_at_last += modified && *modified == last ? 1 : 0;
    if (modified && *modified == cursor.since_ms && !cursor.by_id_after &&
        std::find(cursor.seen.begin(), cursor.seen.end(), id) != cursor.seen.end()) {
      continue;  // read by the previous page: the window starts at its last millisecond
    }
    if (modified && *modified == last && !id.empty()) {
      at_last.push_back(id);
    }
    std::string why;
    auto body = contactEvent(contact, config_.user_id, why);
    if (!body) {
      skipped_.inc();
      context_.log().debug("HubSpot contact skipped", {{"reason", why}});
      continue;
    }
    auto event = sdk::makeEvent(*body, context_.id());
    if (!event) {
      skipped_.inc();
      continue;
    }
    page.events.push_back(std::move(event).value());
  }
  if (!items.empty()) {
    page.checkpoint = std::to_string(last);
  }
  const json::value* paging = o->if_contains("paging");
  const bool more = paging != nullptr && paging->is_object() &&
                    paging->get_object().if_contains("next") != nullptr && !items.empty();
  if (cursor.by_id_after) {
    // Reading one crowded millisecond by id: on while pages come full, then past it.
    SearchCursor following;
    if (more) {
      following.since_ms = cursor.since_ms;
      following.by_id_after = max_id;
    } else {
      following.since_ms = cursor.since_ms + 1;
    }
    page.next_page = following.toString();
    return page;
  }
  if (!more) {
    return page;
  }
  SearchCursor following;
  if (page_at_last < items.size()) {
    following.since_ms = last;
    following.seen = std::move(at_last);  // a new search from the last millisecond seen
  } else {
    // The whole page in one millisecond: page on in the same search.
    following.since_ms = cursor.since_ms;
    following.after = cursor.after + items.size();
    following.seen = cursor.seen;
    if (following.after >= config_.search_result_cap) {
      overflows_.inc();
      context_.log().warn(
          "more than 10,000 HubSpot contacts modified in one millisecond: reading the rest of it "
          "by id (HubSpot's search cap)",
          {{"lastmodifieddate", sdk::formatIsoTimestamp(last)}});
      following = SearchCursor{};
      following.since_ms = last;  // the page's one millisecond
      following.by_id_after = 0;
    }
  }
  page.next_page = following.toString();
  return page;
}

}  // namespace junction::plugins::hubspot
