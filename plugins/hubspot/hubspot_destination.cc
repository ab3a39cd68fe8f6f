#include "hubspot_destination.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "junction/sdk/text.h"
#include "junction/sdk/event.h"
#include "junction/sdk/json.h"

namespace junction::plugins::hubspot {

namespace json = boost::json;
using sdk::option;
using sdk::Outcome;

namespace {

constexpr std::string_view kUpsertPath = "/crm/v3/objects/contacts/batch/upsert";
constexpr std::string_view kEventsPath = "/events/v3/send";
constexpr std::string_view kGdprDeletePath = "/crm/v3/objects/contacts/gdpr-delete";
std::string lowerTrimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// HubSpot property values are strings: numbers and booleans as their text, objects and arrays
// as their JSON text.
json::value propertyValue(const json::value& v) {
  if (v.is_string()) {
    return v;
  }
  if (v.is_number() || v.is_bool()) {
    return json::value(json::string_view(sdk::stringAt(v, "").value_or("")));
  }
  auto text = sdk::serialize(v);
  return json::value(json::string_view(text ? *text : std::string()));
}

json::object propertiesOf(const json::object& fields) {
  json::object out;
  for (const auto& [name, value] : fields) {
    if (!value.is_null()) {
      out[name] = propertyValue(value);
    }
  }
  return out;
}

bool retryableCategory(std::string_view category) {
  return category == "RATE_LIMITS" || category == "INTERNAL_ERROR" || category == "TIMEOUT";
}

std::string clip(std::string text) { return sdk::clipReason(std::move(text), 300); }

}  // namespace

// --- configuration ---------------------------------------------------------------------------

const sdk::OptionTable<HubspotConfig>& hubspotOptions() {
  static const sdk::OptionTable<HubspotConfig> table{
      option("access_token", &HubspotConfig::access_token,
             "A private app's access token (scopes: crm.objects.contacts.write for contacts "
             "and erasure, analytics.behavioral_events.send for `events`)")
          .required()
          .secret(),
      option("base_url", &HubspotConfig::base_url, "HubSpot's API base URL")
          .defaultValue("https://api.hubapi.com"),
      option("events", &HubspotConfig::events,
             "Track event names sent as custom behavioral events, mapped to HubSpot's event "
             "names, e.g. {\"Order Completed\": pe1234567_order_completed}; other track events "
             "are skipped")
          .defaultValue(json::object{}),
      option("mapping", &HubspotConfig::mapping,
             "Contact properties from event paths, over the default mapping (email, firstname, "
             "lastname, phone, company, website, city, state, country, zip, jobtitle); a "
             "property set to null is dropped")
          .defaultValue(json::object{}),
      option("audience_properties", &HubspotConfig::audience_properties,
             "Audience name -> contact property set to \"true\" while the person is in it "
             "(\"Audience Entered\"/\"Audience Exited\" tracks, identify events' "
             "context.junction.audiences), through the contact upsert; tracks of audiences not "
             "named are skipped")
          .defaultValue(json::object{}),
      option("batch_size", &HubspotConfig::batch_size,
             "Contacts in one batch upsert (HubSpot takes at most 100)")
          .defaultValue(kMaxBatchInputs)
          .range(1, kMaxBatchInputs),
      option("timeout", &HubspotConfig::timeout, "Timeout of one request to HubSpot")
          .defaultValue("30s")
          .range(100, 300'000),
  };
  return table;
}

const json::object& defaultMapping() {
  static const json::object mapping = [] {
    auto from = [](std::initializer_list<const char*> paths) {
      json::array a;
      for (const char* p : paths) {
        a.emplace_back(p);
      }
      return json::object{{"from", std::move(a)}};
    };
    json::object m;
    m["email"] = json::object{{"from", json::array{"traits.email", "context.traits.email"}},
                              {"transform", json::array{"trim", "lowercase"}}};
    m["firstname"] = from({"traits.firstName", "traits.first_name"});
    m["lastname"] = from({"traits.lastName", "traits.last_name"});
    m["phone"] = "traits.phone";
    m["company"] = from({"traits.company.name", "traits.company"});
    m["website"] = "traits.website";
    m["city"] = from({"traits.address.city", "traits.city"});
    m["state"] = from({"traits.address.state", "traits.state"});
    m["country"] = from({"traits.address.country", "traits.country"});
    m["zip"] = from({"traits.address.postalCode", "traits.address.postal_code", "traits.zip"});
    m["jobtitle"] = from({"traits.title", "traits.jobTitle", "traits.job_title"});
    return m;
  }();
  return mapping;
}

std::vector<sdk::OptionError> HubspotConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (!base_url.starts_with("https://") && !base_url.starts_with("http://")) {
    errors.push_back({"base_url", "must be an http:// or https:// URL"});
  }
  if (access_token.empty()) {
    errors.push_back({"access_token", "must not be empty"});
  }
  for (const auto& [name, hubspot_name] : events) {
    if (!hubspot_name.is_string() || hubspot_name.get_string().empty()) {
      errors.push_back({"events." + std::string(name),
                        "must be the HubSpot custom event's name (a string, e.g. "
                        "pe1234567_order_completed)"});
    }
  }
  for (const auto& [audience, property] : audience_properties) {
    if (!property.is_string() || property.get_string().empty() ||
        std::string_view(property.get_string()).find('.') != std::string_view::npos) {
      errors.push_back({"audience_properties." + std::string(audience),
                        "must be a contact property's internal name (a string without '.', e.g. "
                        "in_abandoned_cart)"});
    }
  }
  for (auto& e : sdk::FieldMapping::check(defaultMapping(), mapping)) {
    errors.push_back(std::move(e));
  }
  for (const auto& [field, spec] : mapping) {
    if (std::string_view(field).find('.') != std::string_view::npos) {
      errors.push_back({"mapping." + std::string(field),
                        "HubSpot properties are flat: a property name cannot contain '.'"});
    }
  }
  return errors;
}

// --- requests --------------------------------------------------------------------------------

std::vector<Request> buildUpserts(std::span<const sdk::Event> batch,
                                  const std::vector<std::size_t>& positions,
                                  const std::vector<std::string>& emails,
                                  const sdk::FieldMapping& mapping, std::size_t batch_size,
                                  const json::object& audience_properties) {
  struct Open {
    json::array inputs;
    std::set<std::string> emails;
    std::vector<std::size_t> events;
  };
  std::vector<Open> open;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    const std::string& email = emails[i];
    // The first request with room that does not name this contact yet.
    auto it = std::find_if(open.begin(), open.end(), [&](const Open& o) {
      return o.inputs.size() < batch_size && !o.emails.contains(email);
    });
    if (it == open.end()) {
      open.emplace_back();
      it = std::prev(open.end());
    }
    const sdk::Event& event = batch[positions[i]];
    json::object properties;
    if (event.type() == sdk::EventType::Identify) {
      properties = propertiesOf(mapping.apply(event.body()));
    }
    for (auto& [name, value] : audienceProperties(event, audience_properties)) {
      properties[name] = std::move(value);
    }
    properties["email"] = email;
    it->inputs.push_back(json::object{
        {"idProperty", "email"}, {"id", email}, {"properties", std::move(properties)}});
    it->emails.insert(email);
    it->events.push_back(positions[i]);
  }
  std::vector<Request> out;
  out.reserve(open.size());
  for (auto& o : open) {
    out.push_back(Request{"POST", std::string(kUpsertPath),
                          json::serialize(json::object{{"inputs", std::move(o.inputs)}}),
                          std::move(o.events)});
  }
  return out;
}

bool isAudienceTrack(const sdk::Event& event) {
  return event.type() == sdk::EventType::Track &&
         (event.name() == "Audience Entered" || event.name() == "Audience Exited");
}

json::object audienceProperties(const sdk::Event& event, const json::object& audience_properties) {
  json::object out;
  auto set = [&](std::string_view audience, bool member) {
    const auto* property = audience_properties.if_contains(audience);
    if (property != nullptr && property->is_string() && !property->get_string().empty()) {
      out[property->get_string()] = member ? "true" : "false";
    }
  };
  if (isAudienceTrack(event)) {
    const json::value* audience = sdk::findPath(event.body(), "properties.audience");
    if (audience != nullptr && audience->is_string()) {
      set(audience->get_string(), event.name() == "Audience Entered");
    }
  } else if (event.type() == sdk::EventType::Identify) {
    const json::value* audiences = sdk::findPath(event.body(), "context.junction.audiences");
    if (audiences != nullptr && audiences->is_object()) {
      for (const auto& [audience, member] : audiences->get_object()) {
        if (member.is_bool()) {
          set(audience, member.get_bool());
        }
      }
    }
  }
  return out;
}

Request buildBehavioralEvent(const sdk::Event& event, std::size_t position,
                             const std::string& hubspot_name, const std::string& email) {
  json::object properties;
  if (const auto* p = event.body().if_contains("properties"); p != nullptr && p->is_object()) {
    for (const auto& [name, value] : p->get_object()) {
      if (!value.is_null()) {
        properties[name] = propertyValue(value);
      }
    }
  }
  json::object body{{"eventName", hubspot_name},
                    {"email", email},
                    {"occurredAt", sdk::formatIsoTimestamp(event.header().timestamp_ms)},
                    {"properties", std::move(properties)}};
  return Request{"POST", std::string(kEventsPath), json::serialize(body), {position}};
}

std::vector<Outcome> upsertOutcomes(const sdk::HttpClientResponse& response,
                                    const std::vector<std::string>& emails) {
  std::vector<Outcome> outcomes(
      emails.size(), Outcome::retry("HubSpot answered " + std::to_string(response.status) +
                                    " but wrote nothing for this contact"));
  boost::system::error_code ec;
  const json::value body = json::parse(response.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  if (o == nullptr) {
    return std::vector<Outcome>(
        emails.size(), Outcome::retry("HubSpot answered " + std::to_string(response.status) +
                                      " with a body that is not JSON: " + clip(response.body)));
  }
  std::unordered_multimap<std::string, std::size_t> by_email;
  for (std::size_t i = 0; i < emails.size(); ++i) {
    by_email.emplace(emails[i], i);
  }
  if (const auto* results = o->if_contains("results"); results != nullptr && results->is_array()) {
    for (const auto& r : results->get_array()) {
      const auto* ro = r.if_object();
      const auto* props = ro != nullptr ? ro->if_contains("properties") : nullptr;
      const auto* email = props != nullptr && props->is_object()
                              ? props->get_object().if_contains("email")
                              : nullptr;
      if (email == nullptr || !email->is_string()) {
        continue;
      }
      auto [begin, end] = by_email.equal_range(lowerTrimmed(email->get_string()));
      for (auto it = begin; it != end; ++it) {
        outcomes[it->second] = Outcome::delivered();
      }
    }
  }
  if (const auto* errors = o->if_contains("errors"); errors != nullptr && errors->is_array()) {
    for (const auto& e : errors->get_array()) {
      const auto* eo = e.if_object();
      if (eo == nullptr) {
        continue;
      }
      std::string message = "refused";
      if (const auto* m = eo->if_contains("message"); m != nullptr && m->is_string()) {
        message = std::string(m->get_string());
      }
      std::string category;
      if (const auto* c = eo->if_contains("category"); c != nullptr && c->is_string()) {
        category = std::string(c->get_string());
      }
      const auto* context = eo->if_contains("context");
      const auto* ids = context != nullptr && context->is_object()
                            ? context->get_object().if_contains("ids")
                            : nullptr;
      if (ids == nullptr || !ids->is_array()) {
        continue;
      }
      const std::string reason = clip("HubSpot refused the contact: " + message +
                                      (category.empty() ? "" : " (" + category + ")"));
      for (const auto& id : ids->get_array()) {
        if (!id.is_string()) {
          continue;
        }
        auto [begin, end] = by_email.equal_range(lowerTrimmed(id.get_string()));
        for (auto it = begin; it != end; ++it) {
          outcomes[it->second] =
              retryableCategory(category) ? Outcome::retry(reason) : Outcome::failed(reason);
        }
      }
    }
  }
  return outcomes;
}

// --- the destination -------------------------------------------------------------------------

HubspotDestination::HubspotDestination(HubspotConfig config, sdk::DestinationContext& context)
    : config_(std::move(config)), context_(context) {
  auto parsed = sdk::FieldMapping::parse(defaultMapping(), config_.mapping);
  if (!parsed) {
    throw std::invalid_argument(parsed.error().message);
  }
  mapping_ = std::move(parsed).value();
  base_url_ = config_.base_url;
  while (!base_url_.empty() && base_url_.back() == '/') {
    base_url_.pop_back();
  }
}

sdk::HttpClientResponse HubspotDestination::send(const Request& request, const char* endpoint,
                                                 bool& throttled) {
  sdk::HttpClientRequest http;
  http.method = request.method;
  http.url = base_url_ + request.path;
  http.body = request.body;
  http.timeout = config_.timeout;
  http.headers.set("Authorization", "Bearer " + config_.access_token);
  http.headers.set("Content-Type", "application/json");
  auto response = context_.http().send(http);
  context_.metrics()
      .counter("junction_hubspot_requests_total",
               "Requests sent to HubSpot, by endpoint and status",
               {{"endpoint", endpoint}, {"status", std::to_string(response.status)}})
      .inc();
  if (!throttled) {
    throttled = throttleFor(response);
  }
  return response;
}

bool HubspotDestination::throttleFor(const sdk::HttpClientResponse& response) {
  if (response.status == 429) {
    context_.throttle(rateLimitWait(response));
    return true;
  }
  if (auto wait = spentFor(response)) {
    if (dailySpent(response.headers)) {
      context_.log().warn("HubSpot's daily API limit is spent: deliveries pause",
                          {{"daily_limit", headerNumber(response.headers, kDailyHeader)},
                           {"pause_ms", static_cast<std::int64_t>(wait->count())}});
    }
    context_.throttle(*wait);
    return true;
  }
  const std::int64_t max = headerNumber(response.headers, kMaxHeader);
  const std::int64_t remaining = headerNumber(response.headers, kRemainingHeader);
  if (max > 0 && remaining >= 0 && remaining * 10 < max) {
    context_.throttle(std::chrono::milliseconds(0));  // a few calls left: only slow down
    return true;
  }
  if (headerNumber(response.headers, "X-HubSpot-RateLimit-Secondly-Remaining") == 0) {
    context_.throttle(std::chrono::seconds(1));
    return true;
  }
  return false;
}

Outcome HubspotDestination::failureOf(const sdk::HttpClientResponse& response) const {
  switch (response.classification) {
    case sdk::HttpClassification::Success:
      return Outcome::delivered();
    case sdk::HttpClassification::RateLimited:
      return Outcome::retry(vendorReason(response), rateLimitWait(response));
    case sdk::HttpClassification::Retryable:
      return Outcome::retry(vendorReason(response), response.retry_after);
    case sdk::HttpClassification::AuthExpired:
      // A private app's token does not refresh: fix it, then replay the dead letters.
      context_.log().warn("HubSpot refused the access token: events fail until it is fixed",
                          {{"status", response.status}});
      return Outcome::failed("authentication failed: " + vendorReason(response) +
                             " (check the private app's access_token and its scopes)");
    case sdk::HttpClassification::Permanent:
      return Outcome::failed(vendorReason(response));
  }
  return Outcome::failed(vendorReason(response));
}

std::vector<Outcome> HubspotDestination::deliver(std::span<const sdk::Event> batch) {
  std::vector<Outcome> outcomes(batch.size(), Outcome::delivered());
  std::vector<std::size_t> identify_positions;
  std::vector<std::string> identify_emails;
  std::vector<Request> event_requests;
  auto skipped = [&](const sdk::Event& e) {
    context_.metrics()
        .counter("junction_hubspot_skipped_total",
                 "Events with nothing to send to HubSpot (types it does not take, unmapped track "
                 "events)",
                 {{"type", sdk::toString(e.type())}})
        .inc();
  };
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const sdk::Event& e = batch[i];
    if (e.type() == sdk::EventType::Identify) {
      auto email = sdk::emailOf(e.body());
      if (!email) {
        outcomes[i] = Outcome::failed(
            "no email: HubSpot contacts are upserted by email (traits.email or "
            "context.traits.email)");
        continue;
      }
      identify_positions.push_back(i);
      identify_emails.push_back(lowerTrimmed(*email));
    } else if (e.type() == sdk::EventType::Track && isAudienceTrack(e) &&
               !audienceProperties(e, config_.audience_properties).empty()) {
      // An audience named in audience_properties: its property, through the contact upsert.
      auto email = sdk::emailOf(e.body());
      if (!email) {
        outcomes[i] = Outcome::failed(
            "no email: HubSpot contacts are upserted by email (context.traits.email or "
            "properties.email)");
        continue;
      }
      identify_positions.push_back(i);
      identify_emails.push_back(lowerTrimmed(*email));
    } else if (e.type() == sdk::EventType::Track) {
      const auto* name = config_.events.if_contains(e.name());
      if (name == nullptr || !name->is_string()) {
        skipped(e);
        continue;
      }
      auto email = sdk::emailOf(e.body());
      if (!email) {
        outcomes[i] = Outcome::failed(
            "no email: a HubSpot behavioral event needs the person's email (context.traits.email "
            "or properties.email)");
        continue;
      }
      event_requests.push_back(
          buildBehavioralEvent(e, i, std::string(name->get_string()), lowerTrimmed(*email)));
    } else {
      skipped(e);
    }
  }

  bool throttled = false;
  // Once the account is out of calls (a 429, or the headers saying none are left), HubSpot is
  // unreachable or the token is refused, the call's later requests are not sent: their events
  // get the same outcome (the engine retries them after the pause).
  std::optional<Outcome> stop;
  auto holdAfter = [&stop](const sdk::HttpClientResponse& response, const Outcome& outcome) {
    if (response.status == 429 || response.status == 0 || response.status == 401) {
      stop = outcome;
    } else if (auto wait = spentFor(response)) {
      stop = Outcome::retry(
          "not sent: HubSpot's API limit for the account is spent (X-HubSpot-RateLimit-" +
              std::string(dailySpent(response.headers) ? "Daily-Remaining" : "Remaining") + ": 0)",
          *wait);
    }
  };
  std::map<std::size_t, std::string> email_of;
  for (std::size_t i = 0; i < identify_positions.size(); ++i) {
    email_of[identify_positions[i]] = identify_emails[i];
  }
  for (const auto& request :
       buildUpserts(batch, identify_positions, identify_emails, mapping_,
                    static_cast<std::size_t>(config_.batch_size), config_.audience_properties)) {
    if (stop) {
      for (auto p : request.events) {
        outcomes[p] = *stop;
      }
      continue;
    }
    auto response = send(request, "contacts_upsert", throttled);
    std::vector<std::string> emails;
    for (auto p : request.events) {
      emails.push_back(email_of[p]);
    }
    std::vector<Outcome> per_event;
    if (response.ok()) {
      per_event = upsertOutcomes(response, emails);
      holdAfter(response, Outcome::delivered());
    } else {
      Outcome o = failureOf(response);
      holdAfter(response, o);
      per_event.assign(request.events.size(), o);
    }
    for (std::size_t k = 0; k < request.events.size(); ++k) {
      outcomes[request.events[k]] = std::move(per_event[k]);
    }
  }
  for (const auto& request : event_requests) {
    const std::size_t p = request.events.front();
    if (stop) {
      outcomes[p] = *stop;
      continue;
    }
    auto response = send(request, "events_send", throttled);
    outcomes[p] = failureOf(response);
    holdAfter(response, outcomes[p]);
  }
  return outcomes;
}

Outcome HubspotDestination::erase(const sdk::Person& person) {
  if (person.email.empty()) {
    return Outcome::failed(
        "HubSpot erases contacts by email: the regulation must name the person's email");
  }
  const std::string email = lowerTrimmed(person.email);
  Request request{"POST",
                  std::string(kGdprDeletePath),
                  json::serialize(json::object{{"objectId", email}, {"idProperty", "email"}}),
                  {}};
  bool throttled = false;
  auto response = send(request, "gdpr_delete", throttled);
  if (response.status == 404) {
    return Outcome::delivered();  // no such contact: nothing to erase
  }
  if (response.ok()) {
    context_.log().info("HubSpot GDPR delete accepted");
    return Outcome::delivered();
  }
  return failureOf(response);
}

}  // namespace junction::plugins::hubspot
