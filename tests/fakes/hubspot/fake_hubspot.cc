#include "tests/fakes/hubspot/fake_hubspot.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>

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
    auto [it, created] = contacts_.try_emplace(email);
    if (created) {
      it->second.id = std::to_string(next_id_++);
    }
    for (const auto& [name, value] : io.at("properties").get_object()) {
      it->second.properties[name] = value;
    }
    it->second.properties["email"] = email;
    results.push_back(json::object{{"id", it->second.id},
                                   {"properties", it->second.properties},
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
  if (contacts_.erase(email) == 0) {
    return errorAnswer(404, "resource not found", "OBJECT_NOT_FOUND");
  }
  gdpr_deleted_.push_back(email);
  sdk::HttpResponse response;
  response.status = 204;
  return response;
}

}  // namespace junction::tests::fakes
