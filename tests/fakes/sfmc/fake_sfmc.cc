#include "tests/fakes/sfmc/fake_sfmc.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include <boost/json.hpp>

#include "junction/sdk/event.h"
#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::tests::fakes {

namespace json = boost::json;
using sdk::HttpResponse;
using sdk::testing::RecordedRequest;

namespace {

constexpr std::string_view kErrorDocumentation =
    "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm";
constexpr std::string_view kRowsetPrefix = "/hub/v1/dataevents/key:";
constexpr std::string_view kRowsetSuffix = "/rowset";

// The REST APIs' error shape.
HttpResponse restError(int status, std::string_view message, std::int64_t errorcode,
                       std::string_view documentation = "") {
  json::object body{{"message", message}, {"errorcode", errorcode},
                    {"documentation", documentation}};
  return HttpResponse::json(status, json::serialize(body));
}

// The token endpoint's error shape (OAuth 2.0).
HttpResponse authError(int status, std::string_view error, std::string_view description) {
  json::object body{{"error", error},
                    {"error_description", description},
                    {"error_uri", "https://developer.salesforce.com/docs"}};
  return HttpResponse::json(status, json::serialize(body));
}

HttpResponse notAuthorized() {
  return restError(401, "Not Authorized", 0, kErrorDocumentation);
}

// A value as the vendor's messages quote it: strings as they are, anything else as JSON.
std::string textOf(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.get_string());
  }
  return json::serialize(v);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

bool validEmail(std::string_view s) {
  const auto at = s.find('@');
  if (s.empty() || s.size() > 254 || at == 0 || at == std::string_view::npos ||
      s.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  const std::string_view domain = s.substr(at + 1);
  const auto dot = domain.find('.');
  return dot != std::string_view::npos && dot > 0 && dot + 1 < domain.size() &&
         std::none_of(s.begin(), s.end(),
                      [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

// "MM/DD/YYYY", optionally followed by a time, as the vendor's US-locale dates are written.
bool usDate(std::string_view s) {
  const auto first = s.find('/');
  const auto second = first == std::string_view::npos ? first : s.find('/', first + 1);
  if (second == std::string_view::npos) {
    return false;
  }
  const auto year_end = std::min(s.find(' ', second), s.size());
  return allDigits(s.substr(0, first)) && first <= 2 &&
         allDigits(s.substr(first + 1, second - first - 1)) && second - first - 1 <= 2 &&
         allDigits(s.substr(second + 1, year_end - second - 1)) && year_end - second - 1 == 4;
}

// Why `v` does not fit `column`, or nullopt when it does.
std::optional<std::string> columnProblem(const std::string& name, const FakeSfmc::Column& column,
                                         const json::value& v) {
  const auto invalid = [&](std::string_view what) {
    return "The value for column [" + name + "] is not a valid " + std::string(what) + ": " +
           textOf(v);
  };
  if (v.is_null()) {
    if (column.nullable) {
      return std::nullopt;
    }
    return "The value for column [" + name + "] cannot be null";
  }
  if (v.is_object() || v.is_array()) {
    return invalid(toString(column.type));
  }
  const std::string text = textOf(v);
  switch (column.type) {
    case FakeSfmc::ColumnType::Text:
      break;
    case FakeSfmc::ColumnType::Number: {
      std::int64_t n = 0;
      const bool integer = v.is_int64() || v.is_uint64() ||
                           (v.is_string() &&
                            std::from_chars(text.data(), text.data() + text.size(), n).ptr ==
                                text.data() + text.size() &&
                            !text.empty());
      if (v.is_int64()) {
        n = v.get_int64();
      }
      if (!integer || n < -2147483648LL || n > 2147483647LL || v.is_uint64()) {
        return invalid("number");
      }
      break;
    }
    case FakeSfmc::ColumnType::Decimal: {
      double d = 0;
      if (!v.is_number() &&
          !(v.is_string() && !text.empty() &&
            std::from_chars(text.data(), text.data() + text.size(), d).ptr ==
                text.data() + text.size())) {
        return invalid("decimal");
      }
      break;
    }
    case FakeSfmc::ColumnType::Boolean: {
      static constexpr std::string_view kValues[] = {"true", "false", "1", "0", "yes", "no",
                                                     "y",    "n"};
      if (!v.is_bool() && !(v.is_string() && std::any_of(std::begin(kValues), std::end(kValues),
                                                          [&](std::string_view b) {
                                                            return iequals(b, text);
                                                          }))) {
        return invalid("boolean");
      }
      break;
    }
    case FakeSfmc::ColumnType::Date:
      if (!v.is_string() || (!sdk::parseIsoTimestamp(text) && !usDate(text))) {
        return invalid("date");
      }
      break;
    case FakeSfmc::ColumnType::EmailAddress:
      if (!v.is_string() || !validEmail(text)) {
        return invalid("email address");
      }
      break;
    case FakeSfmc::ColumnType::Phone:
      if (!v.is_string() || text.empty() ||
          std::any_of(text.begin(), text.end(),
                      [](char c) {
                        return std::isdigit(static_cast<unsigned char>(c)) == 0 &&
                               std::string_view("+-(). ").find(c) == std::string_view::npos;
                      }) ||
          std::none_of(text.begin(), text.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
        return invalid("phone number");
      }
      break;
  }
  const std::size_t max_length =
      column.type == FakeSfmc::ColumnType::EmailAddress ? std::min<std::size_t>(column.max_length, 254)
                                                        : column.max_length;
  if ((column.type == FakeSfmc::ColumnType::Text || column.type == FakeSfmc::ColumnType::Phone ||
       column.type == FakeSfmc::ColumnType::EmailAddress) &&
      text.size() > max_length) {
    return "The value for column [" + name + "] exceeds the maximum length of " +
           std::to_string(max_length) + ": " + text;
  }
  return std::nullopt;
}

// A row's identity: its primary key values, in column order.
std::string rowIdentity(const json::object& keys) {
  std::map<std::string, std::string> sorted;
  for (const auto& [k, v] : keys) {
    sorted.emplace(std::string(k), textOf(v));
  }
  std::string out;
  for (const auto& [k, v] : sorted) {
    out += k;
    out += '\x1f';
    out += v;
    out += '\x1e';
  }
  return out;
}

}  // namespace

const char* toString(SfmcColumnType type) noexcept {
  switch (type) {
    case FakeSfmc::ColumnType::Text:
      return "Text";
    case FakeSfmc::ColumnType::Number:
      return "Number";
    case FakeSfmc::ColumnType::Decimal:
      return "Decimal";
    case FakeSfmc::ColumnType::Boolean:
      return "Boolean";
    case FakeSfmc::ColumnType::Date:
      return "Date";
    case FakeSfmc::ColumnType::EmailAddress:
      return "EmailAddress";
    case FakeSfmc::ColumnType::Phone:
      return "Phone";
  }
  return "Text";
}

FakeSfmc::FakeSfmc(Options options)
    : options_(std::move(options)),
      server_([this](const RecordedRequest& request) { return handle(request); }) {
  bucket_ = std::max(1.0, options_.requests_per_second);
  bucket_at_ = std::chrono::steady_clock::now();
}

FakeSfmc::~FakeSfmc() { server_.stop(); }

std::string FakeSfmc::baseUrl() const { return server_.baseUrl(); }

void FakeSfmc::failNext(std::size_t n, int status, std::string body,
                        std::vector<std::pair<std::string, std::string>> headers,
                        std::string path_prefix) {
  server_.failNext(n, status, std::move(body), std::move(headers), std::move(path_prefix));
}

void FakeSfmc::setDelay(std::chrono::milliseconds delay) { server_.setDelay(delay); }

void FakeSfmc::setDown(bool down) { server_.setDown(down); }

void FakeSfmc::expireTokens() {
  std::lock_guard lock(mutex_);
  tokens_.clear();
}

std::vector<RecordedRequest> FakeSfmc::requests() const { return server_.requests(); }

std::size_t FakeSfmc::requestCount() const { return server_.requestCount(); }

bool FakeSfmc::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  return server_.waitForRequests(n, timeout);
}

void FakeSfmc::clearRequests() { server_.clearRequests(); }

std::vector<FakeSfmc::Row> FakeSfmc::rows(const std::string& data_extension) const {
  std::lock_guard lock(mutex_);
  const auto it = stored_.find(data_extension);
  return it == stored_.end() ? std::vector<Row>{} : it->second.rows;
}

std::size_t FakeSfmc::rowCount(const std::string& data_extension) const {
  std::lock_guard lock(mutex_);
  const auto it = stored_.find(data_extension);
  return it == stored_.end() ? 0 : it->second.rows.size();
}

std::optional<FakeSfmc::Row> FakeSfmc::row(const std::string& data_extension,
                                           const std::string& key) const {
  std::lock_guard lock(mutex_);
  const auto it = stored_.find(data_extension);
  if (it == stored_.end()) {
    return std::nullopt;
  }
  for (const auto& r : it->second.rows) {
    if (r.keys.size() == 1 && textOf(r.keys.begin()->value()) == key) {
      return r;
    }
  }
  return std::nullopt;
}

std::vector<FakeSfmc::JourneyEvent> FakeSfmc::journeyEvents() const {
  std::lock_guard lock(mutex_);
  return journey_events_;
}

std::vector<FakeSfmc::DeleteOperation> FakeSfmc::deleteOperations() const {
  std::lock_guard lock(mutex_);
  return delete_operations_;
}

std::size_t FakeSfmc::tokensIssued() const {
  std::lock_guard lock(mutex_);
  return tokens_issued_;
}

std::size_t FakeSfmc::rateLimitedCount() const {
  std::lock_guard lock(mutex_);
  return rate_limited_;
}

HttpResponse FakeSfmc::handle(const RecordedRequest& request) {
  if (request.body.size() > options_.max_payload_bytes) {
    return restError(413, "The request payload exceeds the maximum of " +
                              std::to_string(options_.max_payload_bytes) + " bytes",
                     10001);
  }
  if (request.path == "/v2/token") {
    if (request.method != "POST") {
      return authError(405, "invalid_request", "Use POST to request an access token.");
    }
    return token(request);
  }
  {
    std::lock_guard lock(mutex_);
    if (!authorized(request)) {
      return notAuthorized();
    }
    if (!takeRateToken()) {
      ++rate_limited_;
      HttpResponse response = restError(429, "Too Many Requests", 0, kErrorDocumentation);
      response.headers.add("Retry-After", std::to_string(options_.retry_after.count()));
      return response;
    }
  }
  if (request.method == "POST" && request.path.starts_with(kRowsetPrefix) &&
      request.path.ends_with(kRowsetSuffix) &&
      request.path.size() > kRowsetPrefix.size() + kRowsetSuffix.size()) {
    return rowset(request,
                  sdk::percentDecode(std::string_view(request.path)
                                    .substr(kRowsetPrefix.size(), request.path.size() -
                                                                      kRowsetPrefix.size() -
                                                                      kRowsetSuffix.size())));
  }
  if (request.method == "POST" && request.path == "/interaction/v1/events") {
    return journeyEvent(request);
  }
  if (request.method == "POST" && request.path == "/contacts/v1/contacts/actions/delete") {
    return deleteContacts(request);
  }
  return restError(404, "Not Found", 0, kErrorDocumentation);
}

bool FakeSfmc::authorized(const RecordedRequest& request) {
  const std::string_view header = request.headers.get("Authorization");
  static constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || !iequals(header.substr(0, kBearer.size()), kBearer)) {
    return false;
  }
  const auto it = tokens_.find(std::string(header.substr(kBearer.size())));
  if (it == tokens_.end()) {
    return false;
  }
  if (std::chrono::steady_clock::now() >= it->second) {
    tokens_.erase(it);
    return false;
  }
  return true;
}

bool FakeSfmc::takeRateToken() {
  if (options_.requests_per_second <= 0) {
    return true;
  }
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - bucket_at_).count();
  bucket_at_ = now;
  bucket_ = std::min(std::max(1.0, options_.requests_per_second),
                     bucket_ + elapsed * options_.requests_per_second);
  if (bucket_ < 1.0) {
    return false;
  }
  bucket_ -= 1.0;
  return true;
}

HttpResponse FakeSfmc::token(const RecordedRequest& request) {
  if (request.headers.get("Content-Type").find("application/json") == std::string_view::npos) {
    return authError(400, "invalid_request", "The request must be sent as application/json.");
  }
  auto parsed = sdk::parseJson(request.body);
  if (!parsed || !parsed->is_object()) {
    return authError(400, "invalid_request", "The request body is not a valid JSON object.");
  }
  const json::object& body = parsed->get_object();
  const auto grant = sdk::stringAt(body, "grant_type");
  if (!grant) {
    return authError(400, "invalid_request", "The grant_type parameter is required.");
  }
  if (*grant != "client_credentials") {
    return authError(400, "unsupported_grant_type",
                     "Use \"authorization_code\" or \"refresh_token\" or \"client_credentials\" "
                     "as the grant_type.");
  }
  const auto* id = body.if_contains("client_id");
  const auto* secret = body.if_contains("client_secret");
  if (id == nullptr || !id->is_string() || secret == nullptr || !secret->is_string()) {
    return authError(400, "invalid_request",
                     "The client_id and client_secret parameters are required.");
  }
  if (id->get_string() != options_.client_id || secret->get_string() != options_.client_secret) {
    return authError(401, "invalid_client",
                     "Client authentication failed. Make sure that the client ID and client "
                     "secret are valid and that the client is authorized to access the account "
                     "specified by account_id.");
  }
  if (const auto* account = body.if_contains("account_id"); account != nullptr) {
    const std::string text = textOf(*account);
    if (!options_.account_id.empty() && text != options_.account_id) {
      return authError(401, "invalid_client",
                       "Client authentication failed. Make sure that the client ID and client "
                       "secret are valid and that the client is authorized to access the account "
                       "specified by account_id.");
    }
  }
  std::string access_token = "fake-sfmc-" + sdk::makeUuidV4();
  {
    std::lock_guard lock(mutex_);
    tokens_[access_token] = std::chrono::steady_clock::now() + options_.token_ttl;
    ++tokens_issued_;
  }
  const std::string instance = baseUrl() + "/";
  json::object out{{"access_token", access_token},
                   {"token_type", "Bearer"},
                   {"expires_in", options_.token_ttl.count()},
                   {"scope", "data_extensions_read data_extensions_write journeys_execute "
                             "list_and_subscribers_write"},
                   {"soap_instance_url", instance},
                   {"rest_instance_url", instance}};
  return HttpResponse::json(200, json::serialize(out));
}

HttpResponse FakeSfmc::rowset(const RecordedRequest& request, std::string key) {
  const DataExtension* schema = nullptr;
  if (!options_.data_extensions.empty()) {
    const auto it = options_.data_extensions.find(key);
    if (it == options_.data_extensions.end()) {
      return restError(404, "Unable to find a data extension with the external key [" + key + "]",
                       10000);
    }
    schema = &it->second;
  }
  auto parsed = sdk::parseJson(request.body);
  if (!parsed) {
    return restError(400, "Invalid JSON in the request body: " + parsed.error().message, 10001);
  }
  if (!parsed->is_array() || parsed->get_array().empty()) {
    return restError(400, "The request body must be a non-empty array of rows", 10001);
  }
  const json::array& rows = parsed->get_array();
  if (options_.max_rows_per_request != 0 && rows.size() > options_.max_rows_per_request) {
    return restError(400,
                     "The request has " + std::to_string(rows.size()) +
                         " rows; at most " + std::to_string(options_.max_rows_per_request) +
                         " are accepted",
                     10001);
  }

  json::array problems;
  const auto problem = [&](std::string message) {
    problems.push_back(json::object{{"message", std::move(message)},
                                    {"errorcode", 10000},
                                    {"documentation", ""}});
  };
  std::vector<Row> accepted;
  accepted.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string where = "Row " + std::to_string(i + 1);
    if (!rows[i].is_object()) {
      problem(where + " is not an object");
      continue;
    }
    const json::object& r = rows[i].get_object();
    const json::value* keys = r.if_contains("keys");
    const json::value* values = r.if_contains("values");
    if (keys == nullptr || !keys->is_object() || keys->get_object().empty()) {
      problem(where + ": no primary key values were supplied (\"keys\")");
      continue;
    }
    if (values != nullptr && !values->is_object()) {
      problem(where + ": \"values\" must be an object");
      continue;
    }
    for (const auto& [name, v] : r) {
      if (name != "keys" && name != "values") {
        problem(where + ": unknown member \"" + std::string(name) + "\"");
      }
    }
    bool ok = true;
    if (schema != nullptr) {
      for (const auto& pk : schema->primary_keys) {
        const json::value* v = keys->get_object().if_contains(pk);
        if (v == nullptr || v->is_null() || (v->is_string() && v->get_string().empty())) {
          problem("Primary key column [" + pk + "] is missing a value");
          ok = false;
        }
      }
      for (const auto& [name, v] : keys->get_object()) {
        const std::string column(name);
        if (std::find(schema->primary_keys.begin(), schema->primary_keys.end(), column) ==
            schema->primary_keys.end()) {
          problem("The column [" + column + "] is not a primary key of the data extension");
          ok = false;
        } else if (v.is_object() || v.is_array()) {
          problem("The value for column [" + column + "] is not a valid Text: " + textOf(v));
          ok = false;
        }
      }
      if (values != nullptr && !schema->columns.empty()) {
        for (const auto& [name, v] : values->get_object()) {
          const std::string column(name);
          const auto c = schema->columns.find(column);
          if (c == schema->columns.end()) {
            if (std::find(schema->primary_keys.begin(), schema->primary_keys.end(), column) ==
                schema->primary_keys.end()) {
              problem("The column [" + column + "] does not exist in the data extension");
              ok = false;
            }
            continue;
          }
          if (auto why = columnProblem(column, c->second, v)) {
            problem(std::move(*why));
            ok = false;
          }
        }
      }
    } else {
      for (const auto* part : {keys, values}) {
        if (part == nullptr) {
          continue;
        }
        for (const auto& [name, v] : part->get_object()) {
          if (v.is_object() || v.is_array()) {
            problem("The value for column [" + std::string(name) +
                    "] is not a valid Text: " + textOf(v));
            ok = false;
          }
        }
      }
    }
    if (ok) {
      accepted.push_back({keys->get_object(),
                          values != nullptr ? values->get_object() : json::object{}});
    }
  }
  if (!problems.empty()) {
    json::object body{{"message", "Unable to save rows for data extension with external key [" +
                                      key + "]"},
                      {"errorcode", 10006},
                      {"documentation", ""},
                      {"additionalErrors", std::move(problems)}};
    return HttpResponse::json(400, json::serialize(body));
  }
  {
    std::lock_guard lock(mutex_);
    StoredDataExtension& de = stored_[key];
    for (auto& r : accepted) {
      const std::string identity = rowIdentity(r.keys);
      const auto [it, inserted] = de.index.emplace(identity, de.rows.size());
      if (inserted) {
        de.rows.push_back(std::move(r));
      } else {
        Row& existing = de.rows[it->second];
        for (auto& [name, v] : r.values) {
          existing.values[name] = std::move(v);
        }
      }
    }
  }
  // The synchronous API answers with the rows it saved, as they were sent.
  return HttpResponse::json(200, request.body);
}

HttpResponse FakeSfmc::journeyEvent(const RecordedRequest& request) {
  auto parsed = sdk::parseJson(request.body);
  if (!parsed || !parsed->is_object()) {
    return restError(400, "The request body is not a valid JSON object", 30000);
  }
  const json::object& body = parsed->get_object();
  const json::value* contact = body.if_contains("ContactKey");
  const json::value* definition = body.if_contains("EventDefinitionKey");
  const json::value* data = body.if_contains("Data");
  if (contact == nullptr || !contact->is_string() || contact->get_string().empty()) {
    return restError(400, "ContactKey is required and must be a non-empty string", 30000);
  }
  if (definition == nullptr || !definition->is_string() || definition->get_string().empty()) {
    return restError(400, "EventDefinitionKey is required and must be a non-empty string",
                     30000);
  }
  const std::string definition_key(definition->get_string());
  if (definition_key.find('.') != std::string::npos ||
      (!options_.event_definition_keys.empty() &&
       !options_.event_definition_keys.contains(definition_key))) {
    return restError(400, "Event definition with key [" + definition_key + "] was not found",
                     30000);
  }
  if (data != nullptr && !data->is_object()) {
    return restError(400, "Data must be an object", 30000);
  }
  if (data != nullptr) {
    for (const auto& [name, v] : data->get_object()) {
      if (v.is_object() || v.is_array()) {
        return restError(400,
                         "Data field [" + std::string(name) +
                             "] is not a valid value: " + textOf(v),
                         30000);
      }
    }
  }
  JourneyEvent event{sdk::makeUuidV4(), std::string(contact->get_string()), definition_key,
                     data != nullptr ? data->get_object() : json::object{}};
  json::object out{{"eventInstanceId", event.event_instance_id}};
  {
    std::lock_guard lock(mutex_);
    journey_events_.push_back(std::move(event));
  }
  return HttpResponse::json(201, json::serialize(out));
}

HttpResponse FakeSfmc::deleteContacts(const RecordedRequest& request) {
  const auto reply = [](int status, bool initiated, std::optional<std::int64_t> id,
                        std::string_view error) {
    json::object out;
    out["operationInitiated"] = initiated;
    if (id) {
      out["operationID"] = *id;
    }
    out["requestServiceMessageID"] = sdk::makeUuidV4();
    out["responseDateTime"] = sdk::formatIsoTimestamp(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    out["hasErrors"] = !error.empty();
    json::array messages;
    if (!error.empty()) {
      messages.push_back(json::object{{"resultType", "Error"},
                                      {"resultCode", "InvalidRequest"},
                                      {"resultClass", "Request"},
                                      {"resultMessage", error}});
    }
    out["resultMessages"] = std::move(messages);
    out["serviceMessageID"] = sdk::makeUuidV4();
    return HttpResponse::json(status, json::serialize(out));
  };
  const auto type = sdk::formValue(request.query, "type");
  if (!type || *type != "keys") {
    return reply(400, false, std::nullopt,
                 "The query parameter type must be keys (contact keys in values)");
  }
  auto parsed = sdk::parseJson(request.body);
  if (!parsed || !parsed->is_object()) {
    return reply(400, false, std::nullopt, "The request body is not a valid JSON object");
  }
  const json::object& body = parsed->get_object();
  const json::value* values = body.if_contains("values");
  if (values == nullptr || !values->is_array() || values->get_array().empty()) {
    return reply(400, false, std::nullopt, "values must be a non-empty array of contact keys");
  }
  DeleteOperation operation;
  for (const auto& v : values->get_array()) {
    if (!v.is_string() || v.get_string().empty()) {
      return reply(400, false, std::nullopt, "values must hold contact keys (strings)");
    }
    operation.contact_keys.emplace_back(v.get_string());
  }
  const json::value* type_value = body.if_contains("DeleteOperationType");
  if (type_value == nullptr || !type_value->is_string()) {
    return reply(400, false, std::nullopt, "DeleteOperationType is required");
  }
  if (type_value->get_string() != "ContactAndAttributes") {
    return reply(400, false, std::nullopt,
                 "DeleteOperationType must be ContactAndAttributes (AttributesOnly is reserved "
                 "for future use)");
  }
  operation.delete_operation_type = "ContactAndAttributes";
  if (const json::value* contact_type = body.if_contains("ContactTypeId")) {
    if (!contact_type->is_int64()) {
      return reply(400, false, std::nullopt, "ContactTypeId must be an integer");
    }
    operation.contact_type_id = contact_type->get_int64();
  }
  std::int64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    id = next_operation_id_++;
    operation.operation_id = id;
    delete_operations_.push_back(std::move(operation));
  }
  return reply(200, true, id, "");
}

}  // namespace junction::tests::fakes
