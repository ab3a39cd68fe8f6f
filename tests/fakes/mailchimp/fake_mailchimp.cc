#include "tests/fakes/mailchimp/fake_mailchimp.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "junction/sdk/crypto.h"

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

bool looksReal(std::string_view email) {
  const auto at = email.find('@');
  return at != std::string_view::npos && at > 0 && email.find('.', at) != std::string_view::npos &&
         email.back() != '.' && email.find(' ') == std::string_view::npos;
}

sdk::HttpResponse problem(int status, std::string_view title, std::string_view detail,
                          json::array errors = {}) {
  json::object body{{"type", "https://mailchimp.com/developer/marketing/docs/errors/"},
                    {"title", title},
                    {"status", status},
                    {"detail", detail},
                    {"instance", "6d3b0a6c-6d6a-4a8b-9c1e-1b2f3c4d5e6f"}};
  if (!errors.empty()) {
    body["errors"] = std::move(errors);
  }
  return sdk::HttpResponse::json(status, json::serialize(body));
}

// The schemas come from a Swagger 2.0 document, which writes a path parameter's requiredness as
// draft 3's `"required": true` on the property; valijson reads draft 4, where it is the parent's
// `"required": [names]`. The same meaning, moved to where draft 4 looks for it.
void toDraft4(json::value& node) {
  if (node.is_array()) {
    for (auto& item : node.as_array()) {
      toDraft4(item);
    }
    return;
  }
  if (!node.is_object()) {
    return;
  }
  auto& object = node.as_object();
  if (auto* properties = object.if_contains("properties");
      properties != nullptr && properties->is_object()) {
    json::array required;
    if (const auto* existing = object.if_contains("required");
        existing != nullptr && existing->is_array()) {
      required = existing->as_array();
    }
    for (auto& [name, property] : properties->as_object()) {
      if (auto* flag =
              property.is_object() ? property.as_object().if_contains("required") : nullptr;
          flag != nullptr && flag->is_bool()) {
        if (flag->as_bool()) {
          required.emplace_back(name);
        }
        property.as_object().erase("required");
      }
    }
    if (!required.empty()) {
      object["required"] = std::move(required);
    }
  }
  for (auto& [key, child] : object) {
    toDraft4(child);
  }
}

// The operation schemas, compiled once.
class Schemas {
 public:
  static const Schemas& get() {
    static const Schemas schemas;
    return schemas;
  }
  const valijson::Schema* find(std::string_view operation) const {
    auto it = schemas_.find(std::string(operation));
    return it == schemas_.end() ? nullptr : it->second.get();
  }

 private:
  Schemas() {
    for (const char* op : {"putListsIdMembersId", "postListsId", "postListMemberEvents",
                           "postListMemberTags", "postListsId.out"}) {
      const std::string name(op);
      const std::string file = std::string(JUNCTION_SOURCE_DIR) + "/tests/fixtures/mailchimp/" +
                               name + (name.ends_with(".out") ? ".json" : ".in.json");
      std::ifstream in(file);
      if (!in) {
        throw std::runtime_error("cannot read " + file);
      }
      std::stringstream text;
      text << in.rdbuf();
      documents_[op] = json::parse(text.str());
      toDraft4(documents_[op]);
      auto schema = std::make_unique<valijson::Schema>();
      valijson::SchemaParser parser;
      valijson::adapters::BoostJsonAdapter adapter(documents_[op]);
      parser.populateSchema(adapter, *schema);
      schemas_[op] = std::move(schema);
    }
  }
  std::map<std::string, json::value> documents_;
  std::map<std::string, std::unique_ptr<valijson::Schema>> schemas_;
};

}  // namespace

std::vector<std::string> FakeMailchimp::validate(std::string_view operation,
                                                 const json::value& body) {
  const valijson::Schema* schema = Schemas::get().find(operation);
  if (schema == nullptr) {
    return {"no schema for " + std::string(operation)};
  }
  // The path parameters the schema also describes (any audience id and hash are strings).
  json::value instance = operation.ends_with(".out")
                             ? body
                             : json::object{{"list_id", "a1b2c3d4e5"},
                                            {"subscriber_hash", sdk::md5Hex("someone@example.com")},
                                            {"requestBody", body}};
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::BoostJsonAdapter adapter(instance);
  std::vector<std::string> problems;
  if (!validator.validate(*schema, adapter, &results)) {
    valijson::ValidationResults::Error error;
    while (results.popError(error)) {
      std::string where;
      for (const auto& c : error.context) {
        where += c;
      }
      problems.push_back(where + ": " + error.description);
    }
  }
  return problems;
}

FakeMailchimp::FakeMailchimp(Options options) : options_(std::move(options)) {
  (void)Schemas::get();  // fail here, not inside a request, when the fixtures are missing
  bucket_ = std::max(1.0, options_.requests_per_second);
  bucket_at_ = std::chrono::steady_clock::now();
  std::lock_guard lock(rule_mutex_);
  installRule();
}

FakeMailchimp::~FakeMailchimp() { server_.stop(); }

std::string FakeMailchimp::baseUrl() const { return server_.baseUrl() + "/3.0"; }

void FakeMailchimp::installRule() {
  rule_ = server_.when("*", "/", sdk::testing::PathMatch::Prefix);
  rule_->respond([this](const RecordedRequest& request) { return handle(request); }).delay(delay_);
}

void FakeMailchimp::failNext(std::size_t n, int status, std::string body,
                             std::vector<std::pair<std::string, std::string>> headers,
                             std::string path_prefix) {
  if (n == 0) {
    return;
  }
  std::lock_guard lock(mutex_);
  failures_.push_back({n, status, std::move(body), std::move(headers), std::move(path_prefix)});
}

void FakeMailchimp::setDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(rule_mutex_);
  delay_ = delay;
  {
    std::lock_guard state_lock(mutex_);
    answer_delay_ = delay;
  }
  if (!down_ && rule_) {
    rule_->delay(delay);
  }
}

void FakeMailchimp::setDown(bool down) {
  std::lock_guard lock(rule_mutex_);
  if (down_ == down) {
    return;
  }
  down_ = down;
  // One rule changed in place: no request falls between two rules (a 404). reply() first drops
  // the responder, which would otherwise still store what the request carried.
  if (down) {
    rule_->reply(503).delay(std::chrono::milliseconds(0)).closeConnection();
  } else {
    rule_->respond([this](const RecordedRequest& request) { return handle(request); })
        .delay(delay_);
  }
}

void FakeMailchimp::addMember(std::string email, std::string status) {
  std::lock_guard lock(mutex_);
  Member m;
  m.email_address = lower(email);
  m.status = std::move(status);
  by_hash_[sdk::md5Hex(m.email_address)] = m.email_address;
  members_[m.email_address] = std::move(m);
}

std::vector<RecordedRequest> FakeMailchimp::requests() const { return server_.requests(); }
std::size_t FakeMailchimp::requestCount() const { return server_.requests().size(); }
bool FakeMailchimp::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  return server_.waitForRequests(n, timeout);
}
void FakeMailchimp::clearRequests() { server_.clearRequests(); }

std::size_t FakeMailchimp::memberCount() const {
  std::lock_guard lock(mutex_);
  return members_.size();
}

std::vector<FakeMailchimp::Member> FakeMailchimp::members() const {
  std::lock_guard lock(mutex_);
  std::vector<Member> out;
  out.reserve(members_.size());
  for (const auto& [email, m] : members_) {
    out.push_back(m);
  }
  return out;
}

std::optional<FakeMailchimp::Member> FakeMailchimp::member(std::string_view email) const {
  std::lock_guard lock(mutex_);
  auto it = members_.find(lower(email));
  return it == members_.end() ? std::nullopt : std::optional<Member>(it->second);
}

std::size_t FakeMailchimp::memberEventCount() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

std::vector<FakeMailchimp::MemberEvent> FakeMailchimp::memberEvents() const {
  std::lock_guard lock(mutex_);
  return events_;
}

std::vector<std::string> FakeMailchimp::deleted() const {
  std::lock_guard lock(mutex_);
  return deleted_;
}

std::vector<std::string> FakeMailchimp::schemaViolations() const {
  std::lock_guard lock(mutex_);
  return violations_;
}

sdk::HttpResponse FakeMailchimp::handle(const RecordedRequest& request) {
  {
    std::lock_guard lock(mutex_);
    // The server answers each request answer_delay_ after it arrived: those not yet answered
    // hold a connection.
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(answers_due_, [now](auto due) { return due <= now; });
    answers_due_.push_back(now + answer_delay_);
    for (auto it = failures_.begin(); it != failures_.end(); ++it) {
      if (request.path.starts_with(it->path_prefix)) {
        sdk::HttpResponse response;
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
    if (answers_due_.size() > options_.max_connections) {
      return problem(429, "Too Many Requests",
                     "You have exceeded the limit of " + std::to_string(options_.max_connections) +
                         " simultaneous connections.");
    }
    // HTTP basic, any user name, the key as password.
    const std::string expected = "Basic " + sdk::base64Encode("junction:" + options_.api_key);
    const std::string_view auth = request.headers.get("Authorization");
    if (auth.empty()) {
      return problem(401, "API Key Missing", "Your request did not include an API key.");
    }
    bool ok = auth == expected;
    if (!ok && auth.starts_with("Basic ")) {
      auto decoded = sdk::base64Decode(auth.substr(6));
      ok = decoded && decoded->find(':') != std::string::npos &&
           decoded->substr(decoded->find(':') + 1) == options_.api_key;
    }
    if (!ok) {
      return problem(401, "API Key Invalid",
                     "Your API key may be invalid, or you've attempted to access the wrong "
                     "datacenter.");
    }
    if (options_.requests_per_second > 0) {
      const auto at = std::chrono::steady_clock::now();
      bucket_ = std::min(std::max(1.0, options_.requests_per_second),
                         bucket_ + std::chrono::duration<double>(at - bucket_at_).count() *
                                       options_.requests_per_second);
      bucket_at_ = at;
      if (bucket_ < 1.0) {
        return problem(429, "Too Many Requests",
                       "You have exceeded the limit of requests for this account.");
      }
      bucket_ -= 1.0;
    }
  }
  // /3.0/lists/{list_id}[/members/{hash}[/events|/tags|/actions/delete-permanent]]
  std::vector<std::string> parts;
  for (std::size_t start = 1; start <= request.path.size();) {
    auto slash = request.path.find('/', start);
    parts.push_back(
        request.path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) {
      break;
    }
    start = slash + 1;
  }
  if (parts.size() < 3 || parts[0] != "3.0" || parts[1] != "lists") {
    return problem(404, "Resource Not Found", "The requested resource could not be found.");
  }
  if (parts[2] != options_.list_id) {
    return problem(404, "Resource Not Found", "The requested resource could not be found.");
  }
  boost::system::error_code ec;
  json::value body = request.body.empty() ? json::value() : json::parse(request.body, ec);
  if (ec) {
    return problem(400, "JSON Parse Exception",
                   "We encountered an unspecified JSON parsing error.");
  }
  auto schemaCheck = [&](std::string_view op) -> std::optional<sdk::HttpResponse> {
    auto problems = validate(op, body);
    if (problems.empty()) {
      return std::nullopt;
    }
    json::array errors;
    std::lock_guard lock(mutex_);
    for (const auto& p : problems) {
      violations_.push_back(std::string(op) + " " + p);
      errors.push_back(json::object{{"field", ""}, {"message", p}});
    }
    return problem(400, "Invalid Resource",
                   "The resource submitted could not be validated. For field-specific details, "
                   "see the 'errors' array.",
                   std::move(errors));
  };
  if (parts.size() == 3 && request.method == "POST") {
    if (auto refused = schemaCheck("postListsId")) {
      return *refused;
    }
    return batch(body);
  }
  if (parts.size() < 5 || parts[3] != "members") {
    return problem(404, "Resource Not Found", "The requested resource could not be found.");
  }
  const std::string& hash = parts[4];
  if (parts.size() == 5 && request.method == "PUT") {
    if (auto refused = schemaCheck("putListsIdMembersId")) {
      return *refused;
    }
    return putMember(hash, body);
  }
  std::lock_guard lock(mutex_);
  const auto known = by_hash_.find(hash);
  auto it = known == by_hash_.end() ? members_.end() : members_.find(known->second);
  if (parts.size() == 6 && parts[5] == "events" && request.method == "POST") {
    if (auto problems = validate("postListMemberEvents", body); !problems.empty()) {
      violations_.push_back("postListMemberEvents " + problems.front());
      return problem(400, "Invalid Resource", problems.front());
    }
    if (it == members_.end()) {
      return problem(404, "Resource Not Found", "The requested resource could not be found.");
    }
    const auto& name = body.at("name").as_string();
    if (name.size() < 2 || name.size() > 30) {
      return problem(400, "Invalid Resource", "Event name must be 2-30 characters in length");
    }
    MemberEvent e;
    e.email_address = it->first;
    e.name = std::string(name);
    if (const auto* p = body.as_object().if_contains("properties");
        p != nullptr && p->is_object()) {
      e.properties = p->get_object();
    }
    if (const auto* at = body.as_object().if_contains("occurred_at");
        at != nullptr && at->is_string()) {
      e.occurred_at = std::string(at->get_string());
    }
    events_.push_back(std::move(e));
    sdk::HttpResponse r;
    r.status = 204;
    return r;
  }
  if (parts.size() == 6 && parts[5] == "tags" && request.method == "POST") {
    if (auto problems = validate("postListMemberTags", body); !problems.empty()) {
      violations_.push_back("postListMemberTags " + problems.front());
      return problem(400, "Invalid Resource", problems.front());
    }
    if (it == members_.end()) {
      return problem(404, "Resource Not Found", "The requested resource could not be found.");
    }
    for (const auto& t : body.at("tags").as_array()) {
      const std::string name(t.at("name").as_string());
      auto& tags = it->second.tags;
      const bool active = t.at("status").as_string() == "active";
      auto found = std::find(tags.begin(), tags.end(), name);
      if (active && found == tags.end()) {
        tags.push_back(name);
      } else if (!active && found != tags.end()) {
        tags.erase(found);
      }
    }
    sdk::HttpResponse r;
    r.status = 204;
    return r;
  }
  if (parts.size() == 7 && parts[5] == "actions" && parts[6] == "delete-permanent" &&
      request.method == "POST") {
    if (it == members_.end()) {
      return problem(404, "Resource Not Found", "The requested resource could not be found.");
    }
    deleted_.push_back(it->first);
    by_hash_.erase(known);
    members_.erase(it);
    sdk::HttpResponse r;
    r.status = 204;
    return r;
  }
  return problem(405, "Method Not Allowed",
                 "The requested method and resource are not compatible.");
}

json::array FakeMailchimp::mergeFieldProblems(const json::object& member) {
  json::array problems;
  const auto* fields = member.if_contains("merge_fields");
  if (fields == nullptr || !fields->is_object()) {
    return problems;
  }
  auto refuse = [&problems](std::string_view field, std::string_view message) {
    problems.push_back(json::object{{"field", field}, {"message", message}});
  };
  for (const auto& [tag, value] : fields->get_object()) {
    if (value.is_string() && value.get_string().empty()) {
      continue;  // clears the field
    }
    if (tag == "ADDRESS") {
      // All or nothing: addr1, city, state and zip (addr2 and country optional).
      const auto* address = value.if_object();
      bool complete = address != nullptr;
      for (const char* part : {"addr1", "city", "state", "zip"}) {
        const auto* v = complete ? address->if_contains(part) : nullptr;
        complete = complete && v != nullptr && v->is_string() && !v->get_string().empty();
      }
      if (!complete) {
        refuse(tag, "Please enter a complete address");
      }
    } else if (tag == "BIRTHDAY") {
      const auto* text = value.if_string();
      const bool ok = text != nullptr && text->size() == 5 && (*text)[2] == '/' &&
                      std::isdigit(static_cast<unsigned char>((*text)[0])) &&
                      std::isdigit(static_cast<unsigned char>((*text)[1])) &&
                      std::isdigit(static_cast<unsigned char>((*text)[3])) &&
                      std::isdigit(static_cast<unsigned char>((*text)[4])) &&
                      std::stoi(std::string(text->subview(0, 2))) >= 1 &&
                      std::stoi(std::string(text->subview(0, 2))) <= 12 &&
                      std::stoi(std::string(text->subview(3, 2))) >= 1 &&
                      std::stoi(std::string(text->subview(3, 2))) <= 31;
      if (!ok) {
        refuse(tag, "Please enter a valid date (MM/DD)");
      }
    } else if (!value.is_string() && !value.is_number()) {
      refuse(tag, "Please enter a text value");
    }
  }
  return problems;
}

sdk::HttpResponse FakeMailchimp::upsertLocked(const json::object& m, bool use_status_if_new,
                                              bool& created, std::string& refusal) {
  const std::string email = lower(m.at("email_address").as_string());
  if (!looksReal(email)) {
    refusal = email + " looks fake or invalid, please enter a real email address.";
    return {};
  }
  if (std::find(deleted_.begin(), deleted_.end(), email) != deleted_.end()) {
    refusal = email +
              " was permanently deleted and cannot be re-imported. The contact must re-subscribe "
              "to get back on the list.";
    return {};
  }
  if (auto problems = mergeFieldProblems(m); !problems.empty()) {
    refusal = "Your merge fields were invalid.";
    for (const auto& p : problems) {
      refusal += " " + std::string(p.at("field").as_string()) + ": " +
                 std::string(p.at("message").as_string());
    }
    return {};
  }
  auto [it, inserted] = members_.try_emplace(email);
  created = inserted;
  Member& member = it->second;
  member.email_address = email;
  if (inserted) {
    const char* key = use_status_if_new ? "status_if_new" : "status";
    const auto* status = m.if_contains(key);
    if (status == nullptr && use_status_if_new) {
      status = m.if_contains("status");
    }
    if (status == nullptr || !status->is_string()) {
      members_.erase(it);
      refusal = "Status is required for new members";
      return {};
    }
    member.status = std::string(status->get_string());
    by_hash_[sdk::md5Hex(email)] = email;
  } else if (const auto* status = m.if_contains("status");
             status != nullptr && status->is_string()) {
    member.status = std::string(status->get_string());
  }
  if (const auto* fields = m.if_contains("merge_fields");
      fields != nullptr && fields->is_object()) {
    for (const auto& [k, v] : fields->get_object()) {
      member.merge_fields[k] = v;
    }
  }
  return {};
}

sdk::HttpResponse FakeMailchimp::putMember(const std::string& hash, const json::value& body) {
  const auto& m = body.as_object();
  const std::string email = lower(m.at("email_address").as_string());
  if (sdk::md5Hex(email) != hash) {
    return problem(400, "Invalid Resource",
                   "The subscriber hash does not match the email address given in the body.");
  }
  if (auto problems = mergeFieldProblems(m); !problems.empty()) {
    return problem(400, "Invalid Resource", "Your merge fields were invalid.", std::move(problems));
  }
  std::lock_guard lock(mutex_);
  bool created = false;
  std::string refusal;
  (void)upsertLocked(m, true, created, refusal);
  if (!refusal.empty()) {
    const bool forgotten = refusal.find("permanently deleted") != std::string::npos;
    return problem(400, forgotten ? "Forgotten Email Not Subscribed" : "Invalid Resource", refusal);
  }
  const Member& member = members_.at(email);
  json::object answer{{"id", hash},
                      {"email_address", email},
                      {"unique_email_id", hash.substr(0, 10)},
                      {"status", member.status},
                      {"merge_fields", member.merge_fields},
                      {"list_id", options_.list_id}};
  return sdk::HttpResponse::json(200, json::serialize(answer));
}

sdk::HttpResponse FakeMailchimp::batch(const json::value& body) {
  const auto& members = body.at("members").as_array();
  if (members.empty() || members.size() > 500) {
    return problem(
        400, "Invalid Resource",
        "You may add at most 500 members in one request; got " + std::to_string(members.size()));
  }
  const bool update_existing = body.as_object().contains("update_existing") &&
                               body.at("update_existing").is_bool() &&
                               body.at("update_existing").as_bool();
  json::array added;
  json::array updated;
  json::array errors;
  std::lock_guard lock(mutex_);
  for (const auto& mv : members) {
    const auto* m = mv.if_object();
    const auto* address = m != nullptr ? m->if_contains("email_address") : nullptr;
    if (address == nullptr || !address->is_string()) {
      errors.push_back(json::object{{"email_address", ""},
                                    {"error", "An email address is required"},
                                    {"error_code", "ERROR_GENERIC"}});
      continue;
    }
    const std::string email = lower(address->get_string());
    if (!update_existing && members_.contains(email)) {
      errors.push_back(json::object{{"email_address", email},
                                    {"error", email + " is already a list member."},
                                    {"error_code", "ERROR_CONTACT_EXISTS"}});
      continue;
    }
    bool created = false;
    std::string refusal;
    (void)upsertLocked(*m, true, created, refusal);
    if (!refusal.empty()) {
      errors.push_back(json::object{
          {"email_address", email}, {"error", refusal}, {"error_code", "ERROR_GENERIC"}});
      continue;
    }
    const Member& member = members_.at(email);
    json::object row{{"id", sdk::md5Hex(email)},
                     {"email_address", email},
                     {"status", member.status},
                     {"merge_fields", member.merge_fields}};
    (created ? added : updated).push_back(std::move(row));
  }
  json::object answer{{"total_created", added.size()},
                      {"total_updated", updated.size()},
                      {"error_count", errors.size()},
                      {"new_members", std::move(added)},
                      {"updated_members", std::move(updated)},
                      {"errors", std::move(errors)},
                      {"_links", json::array{}}};
  return sdk::HttpResponse::json(200, json::serialize(answer));
}

}  // namespace junction::tests::fakes
