#include "sfmc_requests.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::plugins::sfmc {

namespace json = boost::json;

namespace {

// Vendor texts put in outcome reasons are cut here: enough to act on, bounded in the DLQ.
constexpr std::size_t kMaxErrorText = 600;
constexpr std::size_t kMaxListedProblems = 5;

std::string textOf(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.get_string());
  }
  return json::serialize(v);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) {
    s.remove_suffix(1);
  }
  return s;
}

std::string bounded(std::string text) { return sdk::clipReason(std::move(text), kMaxErrorText); }

void flattenInto(const json::object& from, const std::string& prefix, json::object& out) {
  for (const auto& [name, v] : from) {
    std::string key = prefix.empty() ? std::string(name) : prefix + "_" + std::string(name);
    if (v.is_null()) {
      continue;
    }
    if (v.is_object()) {
      flattenInto(v.get_object(), key, out);
    } else if (v.is_array()) {
      out.emplace(key, json::serialize(v));
    } else {
      out.emplace(key, v);
    }
  }
}

}  // namespace

sdk::Result<SfmcMapper> SfmcMapper::make(const SfmcConfig& config) {
  auto mapping = sdk::FieldMapping::parse(defaultMapping(), config.mapping);
  if (!mapping) {
    return mapping.error();
  }
  SfmcMapper mapper;
  mapper.mapping_ = std::move(*mapping);
  mapper.data_extension_ = config.data_extension;
  mapper.key_field_ = config.key_field;
  mapper.contact_key_ = config.contact_key;
  mapper.journeys_ = config.journeys;
  mapper.audiences_data_extension_ = config.audiences_data_extension;
  return mapper;
}

std::optional<std::string> SfmcMapper::contactKey(const json::object& event) const {
  auto key = sdk::stringAt(event, contact_key_);
  if (!key) {
    return std::nullopt;
  }
  std::string_view trimmed = trim(*key);
  if (trimmed.empty()) {
    return std::nullopt;
  }
  return std::string(trimmed);
}

bool isAudienceTrack(const sdk::Event& event) {
  return event.type() == sdk::EventType::Track &&
         (event.name() == "Audience Entered" || event.name() == "Audience Exited");
}

std::vector<std::pair<std::string, bool>> audienceMemberships(const sdk::Event& event) {
  std::vector<std::pair<std::string, bool>> out;
  if (isAudienceTrack(event)) {
    const json::value* audience = sdk::findPath(event.body(), "properties.audience");
    if (audience != nullptr && audience->is_string() && !audience->get_string().empty()) {
      out.emplace_back(std::string(audience->get_string()), event.name() == "Audience Entered");
    }
  } else if (event.type() == sdk::EventType::Identify) {
    const json::value* audiences = sdk::findPath(event.body(), "context.junction.audiences");
    if (audiences != nullptr && audiences->is_object()) {
      for (const auto& [name, member] : audiences->get_object()) {
        if (member.is_bool() && !name.empty()) {
          out.emplace_back(std::string(name), member.get_bool());
        }
      }
    }
  }
  return out;
}

json::object audienceRow(const std::string& contact_key, const std::string& audience, bool member,
                         std::int64_t timestamp_ms) {
  return json::object{
      {"keys", json::object{{kAudienceContactKeyColumn, contact_key}, {kAudienceColumn, audience}}},
      {"values", json::object{{kMemberColumn, member},
                              {kUpdatedAtColumn, sdk::formatIsoTimestamp(timestamp_ms)}}}};
}

const json::value* SfmcMapper::journeyFor(const sdk::Event& event) const {
  if (isAudienceTrack(event)) {
    const json::value* audience = sdk::findPath(event.body(), "properties.audience");
    if (audience != nullptr && audience->is_string()) {
      const std::string specific = event.name() + ": " + std::string(audience->get_string());
      if (const json::value* d = journeys_.if_contains(specific); d != nullptr) {
        return d;
      }
    }
  }
  return journeys_.if_contains(event.name());
}

Planned SfmcMapper::plan(const sdk::Event& event) const {
  Planned planned = planMain(event);
  if (audiences_data_extension_.empty() || planned.action == Planned::Action::Fail) {
    return planned;
  }
  auto memberships = audienceMemberships(event);
  if (memberships.empty()) {
    if (isAudienceTrack(event)) {
      planned = Planned{};
      planned.action = Planned::Action::Fail;
      planned.reason = "\"" + event.name() + "\" without properties.audience: no audience row";
    }
    return planned;
  }
  auto key = contactKey(event.body());
  if (!key) {
    planned = Planned{};
    planned.action = Planned::Action::Fail;
    planned.reason = "no contact key: the " + std::string(sdk::toString(event.type())) +
                     " event has no " + contact_key_ + " for its audience rows";
    return planned;
  }
  for (const auto& [audience, member] : memberships) {
    Planned row;
    row.action = Planned::Action::Row;
    row.row = audienceRow(*key, audience, member, event.header().timestamp_ms);
    row.body = json::serialize(row.row);
    planned.audience_rows.push_back(std::move(row));
  }
  return planned;
}

Planned SfmcMapper::planMain(const sdk::Event& event) const {
  Planned planned;
  const json::object& body = event.body();
  if (event.type() == sdk::EventType::Identify && !data_extension_.empty()) {
    auto key = contactKey(body);
    if (!key) {
      planned.action = Planned::Action::Fail;
      planned.reason = "no contact key: the identify event has no " + contact_key_ +
                       " (the data extension's " + key_field_ + ")";
      return planned;
    }
    json::object values = mapping_.apply(body);
    for (auto& [column, v] : values) {
      if (v.is_object() || v.is_array()) {
        v = json::serialize(v);  // a column holds a scalar
      }
    }
    planned.action = Planned::Action::Row;
    planned.row["keys"] = json::object{{key_field_, *key}};
    planned.row["values"] = std::move(values);
    planned.body = json::serialize(planned.row);
    return planned;
  }
  if (event.type() == sdk::EventType::Track) {
    const json::value* definition = journeyFor(event);
    if (definition != nullptr && definition->is_string()) {
      auto key = contactKey(body);
      if (!key) {
        planned.action = Planned::Action::Fail;
        planned.reason = "no contact key: the track event \"" + event.name() + "\" has no " +
                         contact_key_ + " to enter the journey with";
        return planned;
      }
      json::object entry;
      entry["ContactKey"] = *key;
      entry["EventDefinitionKey"] = definition->get_string();
      entry["Data"] = journeyData(body);
      planned.action = Planned::Action::Journey;
      planned.body = json::serialize(entry);
      return planned;
    }
  }
  planned.action = Planned::Action::Skip;
  planned.type = sdk::toString(event.type());
  return planned;
}

json::object journeyData(const json::object& event) {
  json::object data;
  if (const json::value* properties = event.if_contains("properties");
      properties != nullptr && properties->is_object()) {
    flattenInto(properties->get_object(), "", data);
  }
  if (!data.contains("EmailAddress")) {
    if (auto email = sdk::emailOf(event)) {
      data["EmailAddress"] = *email;
    }
  }
  return data;
}

std::string tokenRequestBody(const SfmcConfig& config) {
  json::object body;
  body["grant_type"] = "client_credentials";
  body["client_id"] = config.client_id;
  body["client_secret"] = config.client_secret;
  if (!config.scope.empty()) {
    body["scope"] = config.scope;
  }
  if (!config.account_id.empty()) {
    const bool digits = config.account_id.size() <= 18 &&
                        std::all_of(config.account_id.begin(), config.account_id.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (digits) {
      body["account_id"] = std::stoll(config.account_id);
    } else {
      body["account_id"] = config.account_id;
    }
  }
  return json::serialize(body);
}

std::string tokenUrl(std::string_view auth_url) {
  while (auth_url.ends_with('/')) {
    auth_url.remove_suffix(1);
  }
  return std::string(auth_url) + "/v2/token";
}

std::string rowsetPath(std::string_view data_extension) {
  return "hub/v1/dataevents/key:" + sdk::percentEncode(data_extension) + "/rowset";
}

std::string deleteRequestBody(std::string_view contact_key) {
  json::object body;
  body["ContactTypeId"] = 0;
  body["values"] = json::array{json::string(contact_key)};
  body["DeleteOperationType"] = "ContactAndAttributes";
  return json::serialize(body);
}

std::vector<std::pair<std::size_t, std::size_t>> chunkRows(std::span<const std::string> rows,
                                                           std::size_t max_rows,
                                                           std::size_t max_bytes) {
  std::vector<std::pair<std::size_t, std::size_t>> chunks;
  max_rows = std::max<std::size_t>(max_rows, 1);
  std::size_t begin = 0;
  std::size_t bytes = 2;  // "[]"
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::size_t added = rows[i].size() + (i > begin ? 1 : 0);
    if (i > begin && (i - begin >= max_rows || bytes + added > max_bytes)) {
      chunks.emplace_back(begin, i);
      begin = i;
      bytes = 2 + rows[i].size();
      continue;
    }
    bytes += added;
  }
  if (begin < rows.size()) {
    chunks.emplace_back(begin, rows.size());
  }
  return chunks;
}

std::string rowsetBody(std::span<const std::string> rows) {
  std::size_t size = 2;
  for (const auto& r : rows) {
    size += r.size() + 1;
  }
  std::string body;
  body.reserve(size);
  body.push_back('[');
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) {
      body.push_back(',');
    }
    body += rows[i];
  }
  body.push_back(']');
  return body;
}

sdk::Result<TokenGrant> parseTokenResponse(std::string_view body) {
  auto parsed = sdk::parseJson(body);
  if (!parsed) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the token response is not JSON: " + parsed.error().message);
  }
  if (!parsed->is_object()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the token response is not an object");
  }
  const json::object& o = parsed->get_object();
  TokenGrant grant;
  const json::value* token = o.if_contains("access_token");
  if (token == nullptr || !token->is_string() || token->get_string().empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "the token response has no access_token");
  }
  grant.access_token = std::string(token->get_string());
  const auto expires = sdk::intAt(o, "expires_in");
  if (!expires || *expires <= 0) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the token response has no positive expires_in");
  }
  grant.expires_in = std::chrono::seconds(*expires);
  const json::value* rest = o.if_contains("rest_instance_url");
  if (rest == nullptr || !rest->is_string() ||
      !(rest->get_string().starts_with("https://") || rest->get_string().starts_with("http://"))) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the token response has no rest_instance_url (an http(s) URL)");
  }
  grant.rest_instance_url = std::string(rest->get_string());
  if (!grant.rest_instance_url.ends_with('/')) {
    grant.rest_instance_url.push_back('/');
  }
  return grant;
}

std::optional<std::string> vendorError(std::string_view body) {
  auto parsed = sdk::parseJson(body);
  if (!parsed || !parsed->is_object()) {
    return std::nullopt;
  }
  const json::object& o = parsed->get_object();
  if (const json::value* message = o.if_contains("message");
      message != nullptr && message->is_string()) {
    std::string text(message->get_string());
    if (const auto code = sdk::intAt(o, "errorcode")) {
      text += " (errorcode " + std::to_string(*code) + ")";
    }
    if (const json::value* more = o.if_contains("additionalErrors");
        more != nullptr && more->is_array()) {
      std::size_t listed = 0;
      for (const auto& e : more->get_array()) {
        if (const auto m = sdk::stringAt(e, "message")) {
          if (listed++ == kMaxListedProblems) {
            text += "; ...";
            break;
          }
          text += "; " + *m;
        }
      }
    }
    return bounded(std::move(text));
  }
  if (const json::value* error = o.if_contains("error"); error != nullptr && error->is_string()) {
    std::string text(error->get_string());
    if (const auto description = sdk::stringAt(o, "error_description")) {
      text += ": " + *description;
    }
    return bounded(std::move(text));
  }
  if (const json::value* results = o.if_contains("resultMessages");
      results != nullptr && results->is_array() && !results->get_array().empty()) {
    std::string text;
    for (const auto& r : results->get_array()) {
      if (const auto m = sdk::stringAt(r, "resultMessage")) {
        text += (text.empty() ? "" : "; ") + *m;
      }
    }
    if (!text.empty()) {
      return bounded(std::move(text));
    }
  }
  return std::nullopt;
}

std::vector<RowsetProblem> rowsetProblems(std::string_view body) {
  std::vector<RowsetProblem> problems;
  auto parsed = sdk::parseJson(body);
  if (!parsed || !parsed->is_object()) {
    return problems;
  }
  const json::value* more = parsed->get_object().if_contains("additionalErrors");
  if (more == nullptr || !more->is_array()) {
    return problems;
  }
  for (const auto& e : more->get_array()) {
    auto message = sdk::stringAt(e, "message");
    if (!message) {
      continue;
    }
    RowsetProblem problem;
    problem.message = *message;
    static constexpr std::string_view kColumn = "column [";
    const std::string_view text = problem.message;
    if (const auto at = text.find(kColumn); at != std::string_view::npos) {
      const auto name_begin = at + kColumn.size();
      const auto name_end = text.find(']', name_begin);
      if (name_end != std::string_view::npos && name_end > name_begin) {
        problem.column = std::string(text.substr(name_begin, name_end - name_begin));
        if (const auto colon = text.find(": ", name_end); colon != std::string_view::npos) {
          problem.value = std::string(text.substr(colon + 2));
        }
      }
    }
    problems.push_back(std::move(problem));
  }
  return problems;
}

std::vector<std::size_t> rowsConcerned(const RowsetProblem& problem,
                                       std::span<const json::object* const> rows) {
  std::vector<std::size_t> concerned;
  if (!problem.column) {
    return concerned;
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json::value* cell = nullptr;
    for (const char* part : {"keys", "values"}) {
      const json::value* p = rows[i]->if_contains(part);
      if (cell == nullptr && p != nullptr && p->is_object()) {
        cell = p->get_object().if_contains(*problem.column);
      }
    }
    if (cell != nullptr && (!problem.value || textOf(*cell) == *problem.value)) {
      concerned.push_back(i);
    }
  }
  return concerned;
}

sdk::Result<DeleteAnswer> parseDeleteResponse(std::string_view body) {
  auto parsed = sdk::parseJson(body);
  if (!parsed || !parsed->is_object()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the contact delete answer is not a JSON object");
  }
  const json::object& o = parsed->get_object();
  const auto initiated = sdk::boolAt(o, "operationInitiated");
  if (!initiated) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the contact delete answer has no operationInitiated");
  }
  DeleteAnswer answer;
  const auto id = sdk::intAt(o, "operationID");
  if (*initiated && id) {
    answer.operation_id = *id;
    return answer;
  }
  if (*initiated) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "the contact delete answer has no operationID");
  }
  answer.error = vendorError(body).value_or("the delete operation was not initiated");
  return answer;
}

}  // namespace junction::plugins::sfmc
