#include "mailchimp_destination.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "junction/sdk/text.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/event.h"
#include "junction/sdk/json.h"

namespace junction::plugins::mailchimp {

namespace json = boost::json;
using sdk::option;
using sdk::Outcome;

namespace {

// Mailchimp's 429 says nothing of when to come back: a short pause, then the adaptive rate.
constexpr std::chrono::milliseconds kDefaultRateLimitWait{5'000};
// A batch member refused because the address "signed up to a lot of lists very recently" may
// sign up later: Mailchimp gives no time, so this long.
constexpr std::chrono::milliseconds kRecentSignupsWait{15 * 60 * 1'000};

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

// Merge field and event property values are strings to Mailchimp (a NUMBER merge field takes
// its text too): numbers and booleans as their text, objects and arrays as JSON text.
json::value textValue(const json::value& v) {
  if (v.is_string()) {
    return v;
  }
  if (v.is_number() || v.is_bool()) {
    return json::value(json::string_view(sdk::stringAt(v, "").value_or("")));
  }
  auto text = sdk::serialize(v);
  return json::value(json::string_view(text ? *text : std::string()));
}

// An address merge field from the mapping's object (Mailchimp's parts, or Segment's `street` and
// `postalCode` for addr1 and zip), its parts as text. Mailchimp takes an address whole or not at
// all: nullopt unless addr1, city, state and zip all have a value, so that a partial address
// leaves the field out instead of getting the whole member refused.
std::optional<json::object> addressValue(const json::object& in) {
  static const std::pair<const char*, const char*> kParts[] = {
      {"addr1", "addr1"},    {"street", "addr1"},    {"addr2", "addr2"},
      {"city", "city"},      {"state", "state"},     {"zip", "zip"},
      {"postalCode", "zip"}, {"postal_code", "zip"}, {"country", "country"}};
  json::object out;
  for (const auto& [from, to] : kParts) {
    const auto* v = in.if_contains(from);
    if (v == nullptr || v->is_null() || v->is_object() || v->is_array() || out.contains(to)) {
      continue;
    }
    json::value text = textValue(*v);
    if (!text.get_string().empty()) {
      out[to] = std::move(text);
    }
  }
  for (const char* required : {"addr1", "city", "state", "zip"}) {
    if (!out.contains(required)) {
      return std::nullopt;
    }
  }
  return out;
}

std::string clip(std::string text) { return sdk::clipReason(std::move(text), 300); }

std::vector<std::string> tagsAt(const json::object& body, const std::string& path) {
  std::vector<std::string> tags;
  const json::value* v = sdk::findPath(body, path);
  if (v == nullptr) {
    return tags;
  }
  auto add = [&tags](std::string_view t) {
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) {
      t.remove_prefix(1);
    }
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) {
      t.remove_suffix(1);
    }
    if (!t.empty() && std::find(tags.begin(), tags.end(), t) == tags.end()) {
      tags.emplace_back(t);
    }
  };
  if (v->is_string()) {
    std::string_view text = v->get_string();
    for (std::size_t start = 0; start <= text.size();) {
      std::size_t comma = text.find(',', start);
      add(text.substr(start,
                      comma == std::string_view::npos ? std::string_view::npos : comma - start));
      if (comma == std::string_view::npos) {
        break;
      }
      start = comma + 1;
    }
  } else if (v->is_array()) {
    for (const auto& t : v->get_array()) {
      if (t.is_string()) {
        add(t.get_string());
      }
    }
  }
  return tags;
}

}  // namespace

// --- configuration ---------------------------------------------------------------------------

const sdk::OptionTable<MailchimpConfig>& mailchimpOptions() {
  static const sdk::OptionTable<MailchimpConfig> table{
      option("api_key", &MailchimpConfig::api_key,
             "Marketing API key; its -usN suffix names the data center")
          .required()
          .secret(),
      option("list_id", &MailchimpConfig::list_id, "The audience (list) id").required(),
      option("base_url", &MailchimpConfig::base_url,
             "API base URL; empty: https://<dc>.api.mailchimp.com/3.0 from the key's suffix")
          .defaultValue(""),
      option("status_if_new", &MailchimpConfig::status_if_new,
             "Status of a person new to the audience (existing members keep theirs: an "
             "unsubscribed person stays unsubscribed)")
          .defaultValue("subscribed")
          .oneOf({"subscribed", "pending", "unsubscribed", "transactional"}),
      option("tags_trait", &MailchimpConfig::tags_trait,
             "Path in identify events of the member's tags (a list, or a comma-separated "
             "string), e.g. traits.tags; empty: no tags are set")
          .defaultValue(""),
      option("audience_tags", &MailchimpConfig::audience_tags,
             "Audience membership as member tags named after the audience: \"Audience "
             "Entered\"/\"Audience Exited\" tracks set it active/inactive (instead of a member "
             "event), identify events set each audience of context.junction.audiences")
          .defaultValue(true),
      option("mapping", &MailchimpConfig::mapping,
             "Merge fields from event paths, over the default mapping (FNAME, LNAME, PHONE, "
             "BIRTHDAY, ADDRESS.addr1/city/state/zip/country); a merge field set to null is "
             "dropped")
          .defaultValue(json::object{}),
      option("batch_size", &MailchimpConfig::batch_size,
             "Members in one batch subscribe (Mailchimp takes at most 500)")
          .defaultValue(kMaxBatchMembers)
          .range(1, kMaxBatchMembers),
      option("max_connections", &MailchimpConfig::max_connections,
             "Requests in flight at once across deliveries (Mailchimp allows 10 per account)")
          .defaultValue(kMaxConnections)
          .range(1, kMaxConnections),
      option("timeout", &MailchimpConfig::timeout, "Timeout of one request to Mailchimp")
          .defaultValue("30s")
          .range(100, 300'000),
  };
  return table;
}

const json::object& defaultMapping() {
  static const json::object mapping = [] {
    json::object m;
    m["FNAME"] = json::object{{"from", json::array{"traits.firstName", "traits.first_name"}}};
    m["LNAME"] = json::object{{"from", json::array{"traits.lastName", "traits.last_name"}}};
    m["PHONE"] = "traits.phone";
    m["BIRTHDAY"] = json::object{{"from", "traits.birthday"}, {"transform", "date:%m/%d"}};
    // Segment's address trait to the audience's default address field (sent when complete).
    m["ADDRESS.addr1"] = "traits.address.street";
    m["ADDRESS.city"] = "traits.address.city";
    m["ADDRESS.state"] = "traits.address.state";
    m["ADDRESS.zip"] = json::object{
        {"from", json::array{"traits.address.postalCode", "traits.address.postal_code"}}};
    m["ADDRESS.country"] = "traits.address.country";
    return m;
  }();
  return mapping;
}

std::string baseUrlForKey(const std::string& api_key) {
  const auto dash = api_key.rfind('-');
  if (dash == std::string::npos || dash + 1 >= api_key.size()) {
    return {};
  }
  const std::string dc = api_key.substr(dash + 1);
  if (!std::all_of(dc.begin(), dc.end(), [](unsigned char c) { return std::isalnum(c); })) {
    return {};
  }
  return "https://" + dc + ".api.mailchimp.com/3.0";
}

std::vector<sdk::OptionError> MailchimpConfig::validate() const {
  std::vector<sdk::OptionError> errors;
  if (base_url.empty() && baseUrlForKey(api_key).empty()) {
    // Never echo the key: say what is missing.
    errors.push_back({"api_key",
                      "has no data-center suffix (like -us6): set base_url, or use the key as "
                      "Mailchimp shows it"});
  }
  if (!base_url.empty() && !base_url.starts_with("https://") && !base_url.starts_with("http://")) {
    errors.push_back({"base_url", "must be an http:// or https:// URL"});
  }
  if (list_id.empty() || list_id.find('/') != std::string::npos) {
    errors.push_back({"list_id", "must be the audience's id"});
  }
  for (auto& e : sdk::FieldMapping::check(defaultMapping(), mapping)) {
    errors.push_back(std::move(e));
  }
  for (const auto& [field, spec] : mapping) {
    const std::string_view name(field);
    const auto dot = name.find('.');
    if (dot != std::string_view::npos && name.find('.', dot + 1) != std::string_view::npos) {
      errors.push_back({"mapping." + std::string(field),
                        "a merge field is a merge tag, or one part of an address merge field "
                        "(like ADDRESS.city): at most one '.'"});
    }
  }
  return errors;
}

std::string subscriberHash(std::string_view email) { return sdk::md5Hex(lowerTrimmed(email)); }

std::string eventName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (out.size() == 30) {
      break;
    }
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  while (!out.empty() && out.back() == '_') {
    out.pop_back();
  }
  return out.size() >= 2 ? out : std::string();
}

// --- requests --------------------------------------------------------------------------------

std::vector<Request> buildUpserts(std::span<const sdk::Event> batch,
                                  const std::vector<std::size_t>& positions,
                                  const std::vector<std::string>& emails,
                                  const sdk::FieldMapping& mapping, const MailchimpConfig& config) {
  auto member = [&](std::size_t i) {
    json::object merge_fields;
    for (const auto& [name, value] : mapping.apply(batch[positions[i]].body())) {
      if (value.is_object()) {
        if (auto address = addressValue(value.get_object())) {
          merge_fields[name] = std::move(*address);
        }
      } else if (!value.is_null()) {
        merge_fields[name] = textValue(value);
      }
    }
    return json::object{{"email_address", emails[i]},
                        {"status_if_new", config.status_if_new},
                        {"merge_fields", std::move(merge_fields)}};
  };
  std::vector<Request> out;
  if (positions.size() == 1) {
    out.push_back(Request{"PUT",
                          "/lists/" + config.list_id + "/members/" + subscriberHash(emails[0]),
                          json::serialize(member(0)),
                          {positions[0]}});
    return out;
  }
  struct Open {
    json::array members;
    std::set<std::string> emails;
    std::vector<std::size_t> events;
  };
  std::vector<Open> open;
  const auto size = static_cast<std::size_t>(config.batch_size);
  for (std::size_t i = 0; i < positions.size(); ++i) {
    auto it = std::find_if(open.begin(), open.end(), [&](const Open& o) {
      return o.members.size() < size && !o.emails.contains(emails[i]);
    });
    if (it == open.end()) {
      open.emplace_back();
      it = std::prev(open.end());
    }
    it->members.push_back(member(i));
    it->emails.insert(emails[i]);
    it->events.push_back(positions[i]);
  }
  for (auto& o : open) {
    out.push_back(Request{
        "POST", "/lists/" + config.list_id,
        json::serialize(json::object{{"members", std::move(o.members)}, {"update_existing", true}}),
        std::move(o.events)});
  }
  return out;
}

Request buildMemberEvent(const sdk::Event& event, std::size_t position, const std::string& email,
                         const std::string& list_id) {
  json::object properties;
  if (const auto* p = event.body().if_contains("properties"); p != nullptr && p->is_object()) {
    for (const auto& [name, value] : p->get_object()) {
      if (!value.is_null()) {
        properties[name] = textValue(value);
      }
    }
  }
  json::object body{{"name", eventName(event.name())},
                    {"properties", std::move(properties)},
                    {"occurred_at", sdk::formatIsoTimestamp(event.header().timestamp_ms)}};
  return Request{"POST",
                 "/lists/" + list_id + "/members/" + subscriberHash(email) + "/events",
                 json::serialize(body),
                 {position}};
}

bool isAudienceTrack(const sdk::Event& event) {
  return event.type() == sdk::EventType::Track &&
         (event.name() == "Audience Entered" || event.name() == "Audience Exited");
}

std::vector<Tag> audienceTags(const sdk::Event& event) {
  std::vector<Tag> tags;
  if (isAudienceTrack(event)) {
    const json::value* name = sdk::findPath(event.body(), "properties.audience");
    if (name != nullptr && name->is_string() && !name->get_string().empty()) {
      tags.push_back(Tag{std::string(name->get_string()), event.name() == "Audience Entered"});
    }
  } else if (event.type() == sdk::EventType::Identify) {
    const json::value* audiences = sdk::findPath(event.body(), "context.junction.audiences");
    if (audiences != nullptr && audiences->is_object()) {
      for (const auto& [name, member] : audiences->get_object()) {
        if (member.is_bool() && !name.empty()) {
          tags.push_back(Tag{std::string(name), member.get_bool()});
        }
      }
    }
  }
  return tags;
}

Request buildTags(const std::vector<Tag>& tags, std::size_t position, const std::string& email,
                  const std::string& list_id) {
  json::array list;
  for (const auto& t : tags) {
    list.push_back(json::object{{"name", t.name}, {"status", t.active ? "active" : "inactive"}});
  }
  return Request{"POST", "/lists/" + list_id + "/members/" + subscriberHash(email) + "/tags",
                 json::serialize(json::object{{"tags", std::move(list)}}),
                 {position}};
}

std::string vendorReason(const sdk::HttpClientResponse& response) {
  boost::system::error_code ec;
  const json::value body = json::parse(response.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  const json::value* detail = o != nullptr ? o->if_contains("detail") : nullptr;
  if (detail == nullptr || !detail->is_string()) {
    return response.describe();
  }
  std::string reason = "HTTP " + std::to_string(response.status) + " from Mailchimp: ";
  if (const auto* title = o->if_contains("title"); title != nullptr && title->is_string()) {
    reason += std::string(title->get_string()) + ": ";
  }
  reason += std::string(detail->get_string());
  if (const auto* errors = o->if_contains("errors"); errors != nullptr && errors->is_array()) {
    for (const auto& e : errors->get_array()) {
      const auto* eo = e.if_object();
      const auto* field = eo != nullptr ? eo->if_contains("field") : nullptr;
      const auto* message = eo != nullptr ? eo->if_contains("message") : nullptr;
      if (message != nullptr && message->is_string()) {
        reason += "; ";
        if (field != nullptr && field->is_string() && !field->get_string().empty()) {
          reason += std::string(field->get_string()) + ": ";
        }
        reason += std::string(message->get_string());
      }
    }
  }
  return clip(std::move(reason));
}

Outcome memberPutOutcome(const sdk::HttpClientResponse& response) {
  boost::system::error_code ec;
  const json::value body = json::parse(response.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  const json::value* email = o != nullptr ? o->if_contains("email_address") : nullptr;
  if (email == nullptr || !email->is_string()) {
    return Outcome::retry(
        "Mailchimp answered " + std::to_string(response.status) +
        " to the member PUT with a body that is not the member: " + clip(response.body));
  }
  return Outcome::delivered();
}

std::vector<Outcome> batchOutcomes(const sdk::HttpClientResponse& response,
                                   const std::vector<std::string>& emails) {
  boost::system::error_code ec;
  const json::value body = json::parse(response.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  if (o == nullptr) {
    return std::vector<Outcome>(
        emails.size(), Outcome::retry("Mailchimp answered " + std::to_string(response.status) +
                                      " with a body that is not JSON: " + clip(response.body)));
  }
  std::vector<Outcome> outcomes(
      emails.size(), Outcome::retry("Mailchimp answered " + std::to_string(response.status) +
                                    " but neither added, updated nor refused this member"));
  std::unordered_multimap<std::string, std::size_t> by_email;
  for (std::size_t i = 0; i < emails.size(); ++i) {
    by_email.emplace(emails[i], i);
  }
  auto mark = [&](const json::value& email, const Outcome& outcome) {
    if (!email.is_string()) {
      return;
    }
    auto [begin, end] = by_email.equal_range(lowerTrimmed(email.get_string()));
    for (auto it = begin; it != end; ++it) {
      outcomes[it->second] = outcome;
    }
  };
  for (const char* list : {"new_members", "updated_members"}) {
    if (const auto* members = o->if_contains(list); members != nullptr && members->is_array()) {
      for (const auto& m : members->get_array()) {
        if (const auto* mo = m.if_object(); mo != nullptr && mo->contains("email_address")) {
          mark(mo->at("email_address"), Outcome::delivered());
        }
      }
    }
  }
  if (const auto* errors = o->if_contains("errors"); errors != nullptr && errors->is_array()) {
    for (const auto& e : errors->get_array()) {
      const auto* eo = e.if_object();
      if (eo == nullptr || !eo->contains("email_address")) {
        continue;
      }
      std::string text = "refused";
      if (const auto* m = eo->if_contains("error"); m != nullptr && m->is_string()) {
        text = std::string(m->get_string());
      }
      // Mailchimp's codes are ERROR_CONTACT_EXISTS (cannot happen with update_existing) and
      // ERROR_GENERIC: the address is invalid, fake, permanently deleted, in compliance state,
      // or its merge fields are invalid, all of which a retry repeats. The one passing refusal
      // is an address that signed up to many lists recently.
      const bool passing =
          text.find("signed up to a lot of lists very recently") != std::string::npos;
      if (const auto* code = eo->if_contains("error_code"); code != nullptr && code->is_string()) {
        text += " (" + std::string(code->get_string()) + ")";
      }
      text = clip("Mailchimp refused the member: " + text);
      mark(eo->at("email_address"), passing ? Outcome::retry(std::move(text), kRecentSignupsWait)
                                            : Outcome::failed(std::move(text)));
    }
  }
  return outcomes;
}

// --- the destination -------------------------------------------------------------------------

MailchimpDestination::MailchimpDestination(MailchimpConfig config, sdk::DestinationContext& context)
    : config_(std::move(config)), context_(context) {
  auto parsed = sdk::FieldMapping::parse(defaultMapping(), config_.mapping);
  if (!parsed) {
    throw std::invalid_argument(parsed.error().message);
  }
  mapping_ = std::move(parsed).value();
  base_url_ = config_.base_url.empty() ? baseUrlForKey(config_.api_key) : config_.base_url;
  while (!base_url_.empty() && base_url_.back() == '/') {
    base_url_.pop_back();
  }
  // HTTP basic: any user name, the key as the password.
  authorization_ = "Basic " + sdk::base64Encode("junction:" + config_.api_key);
}

sdk::HttpClientResponse MailchimpDestination::send(const Request& request, const char* endpoint,
                                                   bool& throttled) {
  sdk::HttpClientRequest http;
  http.method = request.method;
  http.url = base_url_ + request.path;
  http.body = request.body;
  http.timeout = config_.timeout;
  http.headers.set("Authorization", authorization_);
  if (!request.body.empty()) {
    http.headers.set("Content-Type", "application/json");
  }
  {
    std::unique_lock lock(slots_mutex_);
    slot_free_.wait(lock, [this] { return in_flight_ < config_.max_connections; });
    ++in_flight_;
  }
  auto response = context_.http().send(http);
  {
    std::lock_guard lock(slots_mutex_);
    --in_flight_;
  }
  slot_free_.notify_one();
  context_.metrics()
      .counter("junction_mailchimp_requests_total",
               "Requests sent to Mailchimp, by endpoint and status",
               {{"endpoint", endpoint}, {"status", std::to_string(response.status)}})
      .inc();
  if (response.status == 429 && !throttled) {
    throttled = true;
    const auto pause =
        response.retry_after.count() > 0 ? response.retry_after : kDefaultRateLimitWait;
    context_.log().warn("Mailchimp rate limit: the destination pauses",
                        {{"endpoint", endpoint}, {"pause_ms", pause.count()}});
    context_.throttle(pause);
  } else if (response.status == 401 || response.status == 403) {
    context_.log().error("Mailchimp refused the API key",
                         {{"endpoint", endpoint}, {"reason", vendorReason(response)}});
  } else if (response.status == 0) {
    context_.log().warn("Mailchimp unreachable",
                        {{"endpoint", endpoint}, {"error", response.describe()}});
  }
  return response;
}

Outcome MailchimpDestination::failureOf(const sdk::HttpClientResponse& response) const {
  switch (response.classification) {
    case sdk::HttpClassification::Success:
      return Outcome::delivered();
    case sdk::HttpClassification::RateLimited:
      return Outcome::retry(vendorReason(response), response.retry_after.count() > 0
                                                        ? response.retry_after
                                                        : kDefaultRateLimitWait);
    case sdk::HttpClassification::Retryable:
      return Outcome::retry(vendorReason(response), response.retry_after);
    case sdk::HttpClassification::AuthExpired:
      // An API key does not refresh: fix it, then replay the dead letters.
      return Outcome::failed("authentication failed: " + vendorReason(response) +
                             " (check api_key and its data center)");
    case sdk::HttpClassification::Permanent:
      return Outcome::failed(vendorReason(response));
  }
  return Outcome::failed(vendorReason(response));
}

std::vector<Outcome> MailchimpDestination::deliver(std::span<const sdk::Event> batch) {
  std::vector<Outcome> outcomes(batch.size(), Outcome::delivered());
  std::vector<std::size_t> identify_positions;
  std::vector<std::string> identify_emails;
  std::vector<std::pair<std::size_t, std::string>> tracks;  // position, email
  auto skipped = [&](const sdk::Event& e) {
    context_.metrics()
        .counter("junction_mailchimp_skipped_total",
                 "Events with nothing to send to Mailchimp (page, screen, group, alias)",
                 {{"type", sdk::toString(e.type())}})
        .inc();
  };
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const sdk::Event& e = batch[i];
    if (e.type() != sdk::EventType::Identify && e.type() != sdk::EventType::Track) {
      skipped(e);
      continue;
    }
    auto email = sdk::emailOf(e.body());
    if (!email) {
      outcomes[i] = Outcome::failed(
          "no email: Mailchimp members are keyed by email (traits.email or context.traits.email)");
      continue;
    }
    if (e.type() == sdk::EventType::Identify) {
      identify_positions.push_back(i);
      identify_emails.push_back(lowerTrimmed(*email));
    } else if (config_.audience_tags && isAudienceTrack(e)) {
      if (audienceTags(e).empty()) {
        outcomes[i] = Outcome::failed("'" + e.name() +
                                      "' without properties.audience: no audience to tag");
      } else {
        tracks.emplace_back(i, lowerTrimmed(*email));
      }
    } else if (eventName(e.name()).empty()) {
      outcomes[i] = Outcome::failed("the event name '" + e.name() +
                                    "' has no letters or digits Mailchimp can use");
    } else {
      tracks.emplace_back(i, lowerTrimmed(*email));
    }
  }

  bool throttled = false;
  // Once the account is rate limited or Mailchimp is unreachable, the call's later requests are
  // not sent: their events wait with the same outcome.
  std::optional<Outcome> stop;
  auto stops = [](const sdk::HttpClientResponse& r) { return r.status == 429 || r.status == 0; };
  std::map<std::size_t, std::string> email_of;
  for (std::size_t i = 0; i < identify_positions.size(); ++i) {
    email_of[identify_positions[i]] = identify_emails[i];
  }
  for (const auto& request :
       buildUpserts(batch, identify_positions, identify_emails, mapping_, config_)) {
    if (stop) {
      for (auto p : request.events) {
        outcomes[p] = *stop;
      }
      continue;
    }
    const bool single = request.method == "PUT";
    auto response = send(request, single ? "member_put" : "batch_subscribe", throttled);
    std::vector<std::string> emails;
    for (auto p : request.events) {
      emails.push_back(email_of[p]);
    }
    std::vector<Outcome> per_event;
    if (!response.ok()) {
      Outcome o = failureOf(response);
      if (stops(response)) {
        stop = o;
      }
      per_event.assign(request.events.size(), o);
    } else if (single) {
      per_event.assign(1, memberPutOutcome(response));
    } else {
      per_event = batchOutcomes(response, emails);
    }
    for (std::size_t k = 0; k < request.events.size(); ++k) {
      outcomes[request.events[k]] = std::move(per_event[k]);
    }
  }
  // Tags of the members just written (only once their upsert succeeded): tags_trait's, then
  // the audience snapshot's (which wins for a tag named in both), in one request.
  for (std::size_t i = 0; i < identify_positions.size(); ++i) {
    const std::size_t p = identify_positions[i];
    if (!outcomes[p].isDelivered()) {
      continue;
    }
    std::vector<Tag> tags;
    if (!config_.tags_trait.empty()) {
      for (auto& t : tagsAt(batch[p].body(), config_.tags_trait)) {
        tags.push_back(Tag{std::move(t), true});
      }
    }
    if (config_.audience_tags) {
      for (auto& a : audienceTags(batch[p])) {
        auto same = std::find_if(tags.begin(), tags.end(),
                                 [&](const Tag& t) { return t.name == a.name; });
        if (same != tags.end()) {
          same->active = a.active;
        } else {
          tags.push_back(std::move(a));
        }
      }
    }
    if (tags.empty()) {
      continue;
    }
    if (stop) {
      outcomes[p] = *stop;
      continue;
    }
    auto response =
        send(buildTags(tags, p, identify_emails[i], config_.list_id), "member_tags", throttled);
    if (!response.ok()) {
      // The member is written; the retry writes it again (idempotent) and then the tags.
      outcomes[p] = failureOf(response);
      if (stops(response)) {
        stop = outcomes[p];
      }
    }
  }
  for (const auto& [p, email] : tracks) {
    if (stop) {
      outcomes[p] = *stop;
      continue;
    }
    const bool audience = config_.audience_tags && isAudienceTrack(batch[p]);
    auto response =
        audience ? send(buildTags(audienceTags(batch[p]), p, email, config_.list_id),
                        "member_tags", throttled)
                 : send(buildMemberEvent(batch[p], p, email, config_.list_id), "member_events",
                        throttled);
    if (response.status == 404) {
      outcomes[p] = Outcome::failed(
          "the person is not a member of the audience (identify them with their email first): " +
          vendorReason(response));
      continue;
    }
    outcomes[p] = failureOf(response);
    if (stops(response)) {
      stop = outcomes[p];
    }
  }
  return outcomes;
}

Outcome MailchimpDestination::erase(const sdk::Person& person) {
  if (person.email.empty()) {
    return Outcome::failed(
        "Mailchimp erases members by email: the regulation must name the person's email");
  }
  Request request{"POST",
                  "/lists/" + config_.list_id + "/members/" + subscriberHash(person.email) +
                      "/actions/delete-permanent",
                  "",
                  {}};
  bool throttled = false;
  auto response = send(request, "delete_permanent", throttled);
  if (response.status == 404) {
    return Outcome::delivered();  // not a member: nothing to erase
  }
  return failureOf(response);
}

}  // namespace junction::plugins::mailchimp
