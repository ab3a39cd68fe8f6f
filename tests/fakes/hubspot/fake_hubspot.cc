#include "tests/fakes/hubspot/fake_hubspot.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <charconv>
#include <cstdio>
#include <limits>

#include "junction/sdk/event.h"

namespace junction::tests::fakes {

namespace json = boost::json;
using sdk::testing::RecordedRequest;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

constexpr std::size_t kUnlimitedWindow = 1'000'000;
constexpr std::string_view kSearchPath = "/crm/v3/objects/contacts/search";
constexpr auto kWindow = std::chrono::seconds(10);

std::size_t windowMaxOf(const FakeHubspotOptions& options) {
  if (options.ten_secondly_limit != 0) {
    return options.ten_secondly_limit;
  }
  if (options.requests_per_second > 0) {
    return static_cast<std::size_t>(std::ceil(options.requests_per_second * 10));
  }
  return kUnlimitedWindow;
}

}  // namespace

FakeHubspot::FakeHubspot(Options options)
    : options_(std::move(options)),
      window_max_(windowMaxOf(options_)),
      window_limited_(options_.ten_secondly_limit != 0 || options_.requests_per_second > 0) {
  std::lock_guard lock(rule_mutex_);
  installRule();
}

FakeHubspot::~FakeHubspot() { server_.stop(); }

std::string FakeHubspot::baseUrl() const { return server_.baseUrl(); }

void FakeHubspot::installRule() {
  rule_ = server_.when("*", "/", sdk::testing::PathMatch::Prefix);
  rule_->respond([this](const RecordedRequest& request) { return handle(request); }).delay(delay_);
}

void FakeHubspot::failNext(std::size_t n, int status, std::string body,
                           std::vector<std::pair<std::string, std::string>> headers,
                           std::string path_prefix) {
  if (n == 0) {
    return;
  }
  std::lock_guard lock(mutex_);
  failures_.push_back({n, status, std::move(body), std::move(headers), std::move(path_prefix)});
}

void FakeHubspot::failEmail(std::string email, std::string message, std::string category) {
  std::lock_guard lock(mutex_);
  fail_emails_[lower(email)] = Refusal{std::move(message), std::move(category)};
}

void FakeHubspot::dropEmail(std::string email) {
  std::lock_guard lock(mutex_);
  drop_emails_.insert(lower(email));
}

void FakeHubspot::defineProperties(std::set<std::string> names) {
  std::lock_guard lock(mutex_);
  defined_properties_ = std::move(names);
}

void FakeHubspot::setDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(rule_mutex_);
  delay_ = delay;
  if (!down_ && rule_) {
    rule_->delay(delay);
  }
}

void FakeHubspot::setDown(bool down) {
  std::lock_guard lock(rule_mutex_);
  if (down_ == down) {
    return;
  }
  down_ = down;
  // The one rule changes in place, so no request falls between two rules (a 404); reply()
  // first drops the responder, which would otherwise still store what the request carried.
  if (down) {
    rule_->reply(503).delay(std::chrono::milliseconds(0)).closeConnection();
  } else {
    rule_->respond([this](const RecordedRequest& request) { return handle(request); })
        .delay(delay_);
  }
}

std::vector<RecordedRequest> FakeHubspot::requests() const { return server_.requests(); }
std::size_t FakeHubspot::requestCount() const { return server_.requests().size(); }
bool FakeHubspot::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  return server_.waitForRequests(n, timeout);
}
void FakeHubspot::clearRequests() { server_.clearRequests(); }

std::size_t FakeHubspot::contactCount() const {
  std::lock_guard lock(mutex_);
  return contacts_.size();
}

std::optional<FakeHubspot::Contact> FakeHubspot::contact(std::string_view email) const {
  std::lock_guard lock(mutex_);
  auto it = contacts_.find(lower(email));
  return it == contacts_.end() ? std::nullopt : std::optional<Contact>(it->second);
}

std::vector<FakeHubspot::Contact> FakeHubspot::contacts() const {
  std::lock_guard lock(mutex_);
  std::vector<Contact> out;
  out.reserve(contacts_.size());
  for (const auto& [email, contact] : contacts_) {
    out.push_back(contact);
  }
  return out;
}

std::vector<FakeHubspot::BehavioralEvent> FakeHubspot::behavioralEvents() const {
  std::lock_guard lock(mutex_);
  return events_;
}

std::vector<std::string> FakeHubspot::gdprDeleted() const {
  std::lock_guard lock(mutex_);
  return gdpr_deleted_;
}

std::size_t FakeHubspot::rateLimitedCount() const {
  std::lock_guard lock(mutex_);
  return rate_limited_;
}

std::string FakeHubspot::correlationId() {
  // HubSpot's correlation ids are UUIDs; these count up so that each answer has its own.
  char text[40];
  std::snprintf(text, sizeof text, "c0ffee00-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(correlation_.fetch_add(1)));
  return text;
}

sdk::HttpResponse FakeHubspot::errorAnswer(int status, std::string_view message,
                                           std::string_view category) {
  json::object body{{"status", "error"},
                    {"message", message},
                    {"correlationId", correlationId()},
                    {"category", category}};
  return sdk::HttpResponse::json(status, json::serialize(body));
}

sdk::HttpResponse FakeHubspot::handle(const RecordedRequest& request) {
  sdk::HttpResponse response;
  std::size_t remaining = 0;
  std::size_t daily_remaining = 0;
  {
    std::lock_guard lock(mutex_);
    for (auto it = failures_.begin(); it != failures_.end(); ++it) {
      if (request.path.starts_with(it->path_prefix)) {
        response.status = it->status;
        response.body = it->body;
        for (const auto& [k, v] : it->headers) {
          response.headers.set(k, v);
        }
        if (--it->remaining == 0) {
          failures_.erase(it);
        }
        return response;
      }
    }
  }
  if (request.headers.get("Authorization") != "Bearer " + options_.access_token) {
    return errorAnswer(401,
                       "Authentication credentials not found. This API supports OAuth 2.0 "
                       "authentication and you can find more details at "
                       "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                       "INVALID_AUTHENTICATION");
  }
  if (request.path == kSearchPath) {
    return search(request);
  }
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    while (!window_.empty() && now - window_.front() >= kWindow) {
      window_.pop_front();
    }
    const bool over_window = window_limited_ && window_.size() >= window_max_;
    const bool over_day = options_.daily_limit != 0 && daily_calls_ >= options_.daily_limit;
    if (over_window || over_day) {
      ++rate_limited_;
      json::object body{{"status", "error"},
                        {"message", over_day ? "You have reached your daily limit."
                                             : "You have reached your ten_secondly_rolling limit."},
                        {"errorType", "RATE_LIMIT"},
                        {"correlationId", correlationId()},
                        {"policyName", over_day ? "DAILY" : "TEN_SECONDLY_ROLLING"},
                        {"requestId", correlationId()}};
      response = sdk::HttpResponse::json(429, json::serialize(body));
      remaining = window_max_ - std::min(window_max_, window_.size());
      daily_remaining = 0;
    } else {
      window_.push_back(now);
      ++daily_calls_;
      remaining = window_max_ - std::min(window_max_, window_.size());
      daily_remaining = options_.daily_limit - std::min(options_.daily_limit, daily_calls_);
    }
  }
  if (response.status != 429) {
    if (request.method != "POST") {
      response = errorAnswer(405, "Method " + request.method + " not allowed", "VALIDATION_ERROR");
    } else if (request.path == "/crm/v3/objects/contacts/batch/upsert") {
      response = upsert(request);
    } else if (request.path == "/events/v3/send") {
      response = sendEvent(request);
    } else if (request.path == "/crm/v3/objects/contacts/gdpr-delete") {
      response = gdprDelete(request);
    } else {
      response =
          errorAnswer(404, "Unable to route POST request to " + request.path, "OBJECT_NOT_FOUND");
    }
  }
  response.headers.set("X-HubSpot-RateLimit-Max", std::to_string(window_max_));
  response.headers.set("X-HubSpot-RateLimit-Remaining", std::to_string(remaining));
  response.headers.set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000");
  if (options_.daily_limit != 0) {
    response.headers.set("X-HubSpot-RateLimit-Daily", std::to_string(options_.daily_limit));
    response.headers.set("X-HubSpot-RateLimit-Daily-Remaining", std::to_string(daily_remaining));
  }
  return response;
}

sdk::HttpResponse FakeHubspot::upsert(const RecordedRequest& request) {
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  const json::value* inputs = o != nullptr ? o->if_contains("inputs") : nullptr;
  if (inputs == nullptr || !inputs->is_array()) {
    return errorAnswer(400, "Invalid input JSON: 'inputs' must be an array", "VALIDATION_ERROR");
  }
  const auto& list = inputs->get_array();
  if (list.empty() || list.size() > 100) {
    return errorAnswer(400,
                       "Batch size must be between 1 and 100, got " + std::to_string(list.size()),
                       "VALIDATION_ERROR");
  }
  // A batch naming one contact twice is refused whole, as HubSpot does.
  std::set<std::string> seen;
  for (const auto& input : list) {
    const auto* io = input.if_object();
    const auto* id = io != nullptr ? io->if_contains("id") : nullptr;
    const auto* id_property = io != nullptr ? io->if_contains("idProperty") : nullptr;
    const auto* properties = io != nullptr ? io->if_contains("properties") : nullptr;
    if (id == nullptr || !id->is_string() || id_property == nullptr || !id_property->is_string() ||
        properties == nullptr || !properties->is_object()) {
      return errorAnswer(400, "Each input needs idProperty, id and properties", "VALIDATION_ERROR");
    }
    if (id_property->get_string() != "email") {
      return errorAnswer(
          400,
          "Unique property '" + std::string(id_property->get_string()) + "' is not supported here",
          "VALIDATION_ERROR");
    }
    for (const auto& [name, value] : properties->get_object()) {
      if (!value.is_string()) {
        return errorAnswer(400, "Property values must be strings: " + std::string(name),
                           "VALIDATION_ERROR");
      }
    }
    if (!seen.insert(lower(id->get_string())).second) {
      return errorAnswer(400,
                         "Duplicate IDs found in batch input: " + std::string(id->get_string()),
                         "VALIDATION_ERROR");
    }
  }
  json::array results;
  json::array errors;
  std::lock_guard lock(mutex_);
  if (defined_properties_) {
    for (const auto& input : list) {
      for (const auto& [name, value] : input.get_object().at("properties").get_object()) {
        if (!defined_properties_->contains(std::string(name))) {
          const json::object problem{{"isValid", false},
                                     {"message", "Property \"" + std::string(name) +
                                                     "\" does not exist"},
                                     {"error", "PROPERTY_DOESNT_EXIST"},
                                     {"name", name}};
          return errorAnswer(400,
                             "Property values were not valid: [" + json::serialize(problem) + "]",
                             "VALIDATION_ERROR");
        }
      }
    }
  }
  for (const auto& input : list) {
    const auto& io = input.get_object();
    const std::string email = lower(io.at("id").get_string());
    std::string refusal;
    std::string category = "VALIDATION_ERROR";
    if (email.find('@') == std::string::npos) {
      refusal = "Email address " + email + " is invalid";
    } else if (auto f = fail_emails_.find(email); f != fail_emails_.end()) {
      refusal = f->second.message;
      category = f->second.category;
    }
    if (!refusal.empty()) {
      errors.push_back(
          json::object{{"status", "error"},
                       {"category", category},
                       {"message", refusal},
                       {"context", json::object{{"ids", json::array{json::value(email)}}}}});
      continue;
    }
    if (drop_emails_.contains(email)) {
      continue;  // a 2xx that wrote nothing for this input
    }
    const bool created = !contacts_.contains(email);
    Contact& contact = contactFor(email, nowMs());
    for (const auto& [name, value] : io.at("properties").get_object()) {
      contact.properties[name] = value;
    }
    contact.properties["email"] = email;
    touch(contact, nowMs());
    results.push_back(json::object{{"id", contact.id},
                                   {"properties", contact.properties},
                                   {"createdAt", "2026-12-04T00:00:00.000Z"},
                                   {"updatedAt", "2026-12-04T00:00:00.050Z"},
                                   {"archived", false},
                                   {"new", created}});
  }
  json::object answer{{"status", "COMPLETE"},
                      {"results", std::move(results)},
                      {"startedAt", "2026-12-04T00:00:00.000Z"},
                      {"completedAt", "2026-12-04T00:00:00.050Z"}};
  const bool partial = !errors.empty();
  if (partial) {
    answer["numErrors"] = errors.size();
    answer["errors"] = std::move(errors);
  }
  return sdk::HttpResponse::json(partial ? 207 : 200, json::serialize(answer));
}

sdk::HttpResponse FakeHubspot::sendEvent(const RecordedRequest& request) {
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  if (o == nullptr) {
    return errorAnswer(400, "Invalid input JSON", "VALIDATION_ERROR");
  }
  const auto* name = o->if_contains("eventName");
  const auto* email = o->if_contains("email");
  const auto* object_id = o->if_contains("objectId");
  if (name == nullptr || !name->is_string() || name->get_string().empty()) {
    return errorAnswer(400, "eventName is required", "VALIDATION_ERROR");
  }
  if ((email == nullptr || !email->is_string()) &&
      (object_id == nullptr || !object_id->is_string())) {
    return errorAnswer(400, "One of email, utk or objectId is required", "VALIDATION_ERROR");
  }
  BehavioralEvent event;
  event.event_name = std::string(name->get_string());
  event.email = email != nullptr && email->is_string() ? std::string(email->get_string()) : "";
  if (const auto* at = o->if_contains("occurredAt"); at != nullptr && at->is_string()) {
    event.occurred_at = std::string(at->get_string());
  }
  if (const auto* p = o->if_contains("properties"); p != nullptr && p->is_object()) {
    event.properties = p->get_object();
  }
  std::lock_guard lock(mutex_);
  events_.push_back(std::move(event));
  sdk::HttpResponse response;
  response.status = 204;
  return response;
}

sdk::HttpResponse FakeHubspot::gdprDelete(const RecordedRequest& request) {
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  const json::object* o = ec ? nullptr : body.if_object();
  const auto* id = o != nullptr ? o->if_contains("objectId") : nullptr;
  const auto* id_property = o != nullptr ? o->if_contains("idProperty") : nullptr;
  if (id == nullptr || !id->is_string() ||
      (id_property != nullptr &&
       (!id_property->is_string() || id_property->get_string() != "email"))) {
    return errorAnswer(400, "objectId (and idProperty email) are required", "VALIDATION_ERROR");
  }
  std::lock_guard lock(mutex_);
  const std::string email = lower(id->get_string());
  auto found = contacts_.find(email);
  if (found == contacts_.end()) {
    return errorAnswer(404, "resource not found", "OBJECT_NOT_FOUND");
  }
  const std::uint64_t number = std::stoull(found->second.id);
  by_modified_.erase({found->second.last_modified_ms, number});
  sorted_dirty_ = true;
  email_by_id_.erase(number);
  contacts_.erase(found);
  gdpr_deleted_.push_back(email);
  sdk::HttpResponse response;
  response.status = 204;
  return response;
}

// --- contacts with modification times, and the CRM search ---------------------------------------

std::int64_t FakeHubspot::nowMs() const {
  if (now_ms_) {
    return *now_ms_;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

FakeHubspot::Contact& FakeHubspot::contactFor(const std::string& email, std::int64_t now_ms) {
  auto [it, created] = contacts_.try_emplace(email);
  if (created) {
    const std::uint64_t id = next_id_++;
    it->second.id = std::to_string(id);
    it->second.created_ms = now_ms;
    it->second.last_modified_ms = now_ms;
    email_by_id_[id] = email;
    by_modified_.insert({now_ms, id});
    sorted_dirty_ = true;
  }
  return it->second;
}

void FakeHubspot::touch(Contact& contact, std::int64_t last_modified_ms) {
  const std::uint64_t id = std::stoull(contact.id);
  by_modified_.erase({contact.last_modified_ms, id});
  contact.last_modified_ms = last_modified_ms;
  by_modified_.insert({last_modified_ms, id});
  sorted_dirty_ = true;
}

std::string FakeHubspot::putContact(std::string email, json::object properties,
                                    std::int64_t last_modified_ms) {
  std::lock_guard lock(mutex_);
  email = lower(email);
  Contact& contact = contactFor(email, last_modified_ms);
  for (auto& [name, value] : properties) {
    contact.properties[name] = value;
  }
  contact.properties["email"] = email;
  touch(contact, last_modified_ms);
  return contact.id;
}

void FakeHubspot::seedContacts(std::size_t n, std::int64_t first_modified_ms, std::int64_t step_ms,
                               std::size_t first) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string number = std::to_string(first + i);
    const std::string email = "contact" + number + "@example.com";
    const std::int64_t modified = first_modified_ms + static_cast<std::int64_t>(i) * step_ms;
    Contact& contact = contactFor(email, modified);
    contact.properties["email"] = email;
    contact.properties["firstname"] = "First" + number;
    contact.properties["lastname"] = "Last" + number;
    touch(contact, modified);
  }
}

void FakeHubspot::setNowMs(std::optional<std::int64_t> now_ms) {
  std::lock_guard lock(mutex_);
  now_ms_ = now_ms;
}

std::size_t FakeHubspot::searchCount() const {
  std::lock_guard lock(mutex_);
  return searches_;
}

namespace {

constexpr std::size_t kMaxFilterGroups = 5;
constexpr std::size_t kMaxFiltersPerGroup = 6;
constexpr std::size_t kMaxSearchLimit = 200;
const std::set<std::string, std::less<>> kOperators = {
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
    "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"};
const std::vector<std::string> kDefaultSearchProperties = {
    "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"};

bool timeProperty(std::string_view name) {
  return name == "lastmodifieddate" || name == "createdate" || name == "hs_object_id";
}

// A date filter's value: epoch milliseconds or ISO 8601, as HubSpot takes them.
std::optional<std::int64_t> filterNumber(std::string_view text) {
  std::int64_t n = 0;
  if (!text.empty() &&
      std::from_chars(text.data(), text.data() + text.size(), n).ptr == text.data() + text.size()) {
    return n;
  }
  return sdk::parseIsoTimestamp(text);
}

struct SearchFilter {
  std::string property;
  std::string op;
  std::string value;
  std::string high_value;
  std::int64_t number = 0;
  std::int64_t high_number = 0;
};

std::string valueText(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.get_string());
  }
  if (v.is_int64() || v.is_uint64() || v.is_double() || v.is_bool()) {
    return json::serialize(v);
  }
  return "";
}

}  // namespace

sdk::HttpResponse FakeHubspot::search(const RecordedRequest& request) {
  {
    std::lock_guard lock(mutex_);
    ++searches_;
    if (options_.search_requests_per_second > 0) {
      const auto now = std::chrono::steady_clock::now();
      while (!search_window_.empty() && now - search_window_.front() >= std::chrono::seconds(1)) {
        search_window_.pop_front();
      }
      const auto max =
          static_cast<std::size_t>(std::ceil(options_.search_requests_per_second));
      if (search_window_.size() >= max) {
        ++rate_limited_;
        json::object body{{"status", "error"},
                          {"message", "You have reached your secondly limit."},
                          {"errorType", "RATE_LIMIT"},
                          {"correlationId", correlationId()},
                          {"policyName", "SECONDLY"},
                          {"requestId", correlationId()}};
        return sdk::HttpResponse::json(429, json::serialize(body));
      }
      search_window_.push_back(now);
    }
  }
  if (request.method != "POST") {
    return errorAnswer(405, "Method " + request.method + " not allowed", "VALIDATION_ERROR");
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(request.body, ec);
  const json::object* body = ec ? nullptr : parsed.if_object();
  if (body == nullptr) {
    return errorAnswer(400, "Invalid input JSON on line 1", "VALIDATION_ERROR");
  }
  // filterGroups: OR of groups, AND of filters in a group.
  std::vector<std::vector<SearchFilter>> groups;
  std::size_t filter_count = 0;
  if (const auto* fg = body->if_contains("filterGroups"); fg != nullptr) {
    if (!fg->is_array()) {
      return errorAnswer(400, "filterGroups must be an array", "VALIDATION_ERROR");
    }
    if (fg->get_array().size() > kMaxFilterGroups) {
      return errorAnswer(400, "Too many filter groups: at most 5 are allowed", "VALIDATION_ERROR");
    }
    for (const auto& g : fg->get_array()) {
      const auto* filters = g.is_object() ? g.get_object().if_contains("filters") : nullptr;
      if (filters == nullptr || !filters->is_array()) {
        return errorAnswer(400, "Each filter group needs a filters array", "VALIDATION_ERROR");
      }
      if (filters->get_array().size() > kMaxFiltersPerGroup) {
        return errorAnswer(400, "Too many filters in a group: at most 6 are allowed",
                           "VALIDATION_ERROR");
      }
      std::vector<SearchFilter> group;
      for (const auto& f : filters->get_array()) {
        const auto* fo = f.if_object();
        const auto* name = fo != nullptr ? fo->if_contains("propertyName") : nullptr;
        const auto* op = fo != nullptr ? fo->if_contains("operator") : nullptr;
        if (name == nullptr || !name->is_string() || op == nullptr || !op->is_string()) {
          return errorAnswer(400, "Each filter needs propertyName and operator",
                             "VALIDATION_ERROR");
        }
        SearchFilter filter;
        filter.property = std::string(name->get_string());
        filter.op = std::string(op->get_string());
        if (!kOperators.contains(filter.op)) {
          return errorAnswer(400, "Invalid filter operator: " + filter.op, "VALIDATION_ERROR");
        }
        if (const auto* v = fo->if_contains("value"); v != nullptr) {
          filter.value = valueText(*v);
        }
        if (const auto* v = fo->if_contains("highValue"); v != nullptr) {
          filter.high_value = valueText(*v);
        }
        const bool needs_value = filter.op != "HAS_PROPERTY" && filter.op != "NOT_HAS_PROPERTY";
        if (needs_value && filter.value.empty()) {
          return errorAnswer(400, "Filter on " + filter.property + " needs a value",
                             "VALIDATION_ERROR");
        }
        if (filter.op == "BETWEEN" && filter.high_value.empty()) {
          return errorAnswer(400, "BETWEEN needs a highValue", "VALIDATION_ERROR");
        }
        if (timeProperty(filter.property) && needs_value) {
          auto n = filterNumber(filter.value);
          auto high = filter.op == "BETWEEN" ? filterNumber(filter.high_value) : n;
          if (!n || !high) {
            return errorAnswer(400,
                               "Invalid value for " + filter.property + ": " + filter.value +
                                   " (epoch milliseconds or ISO 8601)",
                               "VALIDATION_ERROR");
          }
          filter.number = *n;
          filter.high_number = *high;
        } else if (filter.op != "EQ" && filter.op != "NEQ" && needs_value) {
          return errorAnswer(400,
                             "This fake supports only EQ, NEQ and HAS_PROPERTY on " +
                                 filter.property,
                             "VALIDATION_ERROR");
        }
        group.push_back(std::move(filter));
        ++filter_count;
      }
      groups.push_back(std::move(group));
    }
  }
  if (filter_count > kMaxFilterGroups * kMaxFiltersPerGroup) {
    return errorAnswer(400, "Too many filters", "VALIDATION_ERROR");
  }
  std::string sort_property;
  bool descending = false;
  if (const auto* sorts = body->if_contains("sorts"); sorts != nullptr) {
    if (!sorts->is_array() || sorts->get_array().size() > 1) {
      return errorAnswer(400, "sorts must be an array of at most one sort", "VALIDATION_ERROR");
    }
    if (!sorts->get_array().empty()) {
      const auto* so = sorts->get_array()[0].if_object();
      const auto* name = so != nullptr ? so->if_contains("propertyName") : nullptr;
      const auto* direction = so != nullptr ? so->if_contains("direction") : nullptr;
      if (name == nullptr || !name->is_string() || !timeProperty(name->get_string())) {
        return errorAnswer(400, "This fake sorts only by lastmodifieddate, createdate or hs_object_id",
                           "VALIDATION_ERROR");
      }
      if (direction != nullptr && (!direction->is_string() ||
                                   (direction->get_string() != "ASCENDING" &&
                                    direction->get_string() != "DESCENDING"))) {
        return errorAnswer(400, "direction must be ASCENDING or DESCENDING", "VALIDATION_ERROR");
      }
      sort_property = std::string(name->get_string());
      descending = direction != nullptr && direction->get_string() == "DESCENDING";
    }
  }
  std::vector<std::string> property_names = kDefaultSearchProperties;
  if (const auto* props = body->if_contains("properties"); props != nullptr) {
    if (!props->is_array()) {
      return errorAnswer(400, "properties must be an array of strings", "VALIDATION_ERROR");
    }
    for (const auto& p : props->get_array()) {
      if (!p.is_string()) {
        return errorAnswer(400, "properties must be an array of strings", "VALIDATION_ERROR");
      }
      if (std::find(property_names.begin(), property_names.end(), p.get_string()) ==
          property_names.end()) {
        property_names.emplace_back(p.get_string());
      }
    }
  }
  std::size_t limit = 10;
  if (const auto* l = body->if_contains("limit"); l != nullptr) {
    if (!l->is_int64() || l->get_int64() < 1 || l->get_int64() > static_cast<std::int64_t>(kMaxSearchLimit)) {
      return errorAnswer(400, "limit must be between 1 and 200", "VALIDATION_ERROR");
    }
    limit = static_cast<std::size_t>(l->get_int64());
  }
  std::size_t after = 0;
  if (const auto* a = body->if_contains("after"); a != nullptr && !a->is_null()) {
    const std::string text = valueText(*a);
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
      return errorAnswer(400, "Invalid after value: " + text, "VALIDATION_ERROR");
    }
    after = std::stoull(text);
  }
  if (after >= options_.search_result_cap) {
    return errorAnswer(400,
                       "Paging past " + std::to_string(options_.search_result_cap) +
                           " results is not allowed: refine the search (after " +
                           std::to_string(after) + ")",
                       "VALIDATION_ERROR");
  }

  std::lock_guard lock(mutex_);
  auto numberOf = [](const Contact& c, std::string_view name) -> std::int64_t {
    if (name == "lastmodifieddate") {
      return c.last_modified_ms;
    }
    if (name == "createdate") {
      return c.created_ms;
    }
    return std::stoll(c.id);
  };
  auto passes = [&](const Contact& c, const SearchFilter& f) {
    if (timeProperty(f.property)) {
      const std::int64_t v = numberOf(c, f.property);
      if (f.op == "EQ") return v == f.number;
      if (f.op == "NEQ") return v != f.number;
      if (f.op == "LT") return v < f.number;
      if (f.op == "LTE") return v <= f.number;
      if (f.op == "GT") return v > f.number;
      if (f.op == "GTE") return v >= f.number;
      if (f.op == "BETWEEN") return v >= f.number && v <= f.high_number;
      return f.op == "HAS_PROPERTY";
    }
    const auto* v = c.properties.if_contains(f.property);
    const bool has = v != nullptr && v->is_string() && !v->get_string().empty();
    if (f.op == "HAS_PROPERTY") return has;
    if (f.op == "NOT_HAS_PROPERTY") return !has;
    const std::string text = has ? lower(v->get_string()) : "";
    return (f.op == "EQ") == (text == lower(f.value));
  };
  auto matches = [&](const Contact& c) {
    if (groups.empty()) {
      return true;
    }
    return std::any_of(groups.begin(), groups.end(), [&](const auto& group) {
      return std::all_of(group.begin(), group.end(),
                         [&](const SearchFilter& f) { return passes(c, f); });
    });
  };
  // Matching contacts in the requested order. By lastmodifieddate (HubSpot's usual incremental
  // query), walk the index from the lower bound of a single group's GTE/GT filter.
  std::vector<const Contact*> page;
  std::size_t total = 0;
  auto consider = [&](const Contact& c) {
    if (!matches(c)) {
      return;
    }
    if (total >= after && page.size() < limit && total < options_.search_result_cap) {
      page.push_back(&c);
    }
    ++total;
  };
  auto byId = [&](std::uint64_t id) -> const Contact& { return contacts_.at(email_by_id_.at(id)); };
  if (sort_property == "lastmodifieddate" && !descending) {
    std::int64_t from = std::numeric_limits<std::int64_t>::min();
    if (groups.size() == 1) {
      for (const auto& f : groups[0]) {
        if (f.property == "lastmodifieddate" && (f.op == "GTE" || f.op == "GT" || f.op == "BETWEEN")) {
          from = std::max(from, f.op == "GT" ? f.number + 1 : f.number);
        }
      }
    }
    // With only lower bounds on lastmodifieddate, everything from the bound on matches: once
    // the page is full, the rest is only counted, on a sorted copy of the index (rebuilt after a
    // change), so that the fake stays fast with 100,000 contacts.
    const bool bounds_only =
        groups.size() == 1 && std::all_of(groups[0].begin(), groups[0].end(), [](const auto& f) {
          return f.property == "lastmodifieddate" && (f.op == "GTE" || f.op == "GT");
        });
    if (sorted_dirty_) {
      sorted_.assign(by_modified_.begin(), by_modified_.end());
      sorted_dirty_ = false;
    }
    for (auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::make_pair(from, std::uint64_t{0}));
         it != sorted_.end(); ++it) {
      if (bounds_only && page.size() == limit) {
        total += static_cast<std::size_t>(sorted_.end() - it);
        break;
      }
      consider(byId(it->second));
    }
  } else {
    std::vector<const Contact*> all;
    for (const auto& [email, c] : contacts_) {
      all.push_back(&c);
    }
    const std::string key = sort_property.empty() ? "hs_object_id" : sort_property;
    std::stable_sort(all.begin(), all.end(), [&](const Contact* a, const Contact* b) {
      const auto x = std::make_pair(numberOf(*a, key), std::stoll(a->id));
      const auto y = std::make_pair(numberOf(*b, key), std::stoll(b->id));
      return descending ? y < x : x < y;
    });
    for (const Contact* c : all) {
      consider(*c);
    }
  }
  json::array results;
  for (const Contact* c : page) {
    json::object properties;
    for (const auto& name : property_names) {
      if (name == "hs_object_id") {
        properties[name] = c->id;
      } else if (name == "createdate") {
        properties[name] = sdk::formatIsoTimestamp(c->created_ms);
      } else if (name == "lastmodifieddate") {
        properties[name] = sdk::formatIsoTimestamp(c->last_modified_ms);
      } else if (const auto* v = c->properties.if_contains(name); v != nullptr) {
        properties[name] = *v;
      } else {
        properties[name] = nullptr;
      }
    }
    results.push_back(json::object{{"id", c->id},
                                   {"properties", std::move(properties)},
                                   {"createdAt", sdk::formatIsoTimestamp(c->created_ms)},
                                   {"updatedAt", sdk::formatIsoTimestamp(c->last_modified_ms)},
                                   {"archived", false}});
  }
  json::object answer{{"total", total}, {"results", std::move(results)}};
  if (after + limit < total) {
    const std::string next = std::to_string(after + limit);
    answer["paging"] = json::object{
        {"next", json::object{{"after", next},
                              {"link", "?after=" + next}}}};
  }
  return sdk::HttpResponse::json(200, json::serialize(answer));
}

}  // namespace junction::tests::fakes
