#include "salesforce_destination.h"

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <stdexcept>

#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::plugins::salesforce {

namespace json = boost::json;
using sdk::Outcome;

namespace {

sdk::FieldMapping makeMapping(const SalesforceConfig& config) {
  auto mapping = sdk::FieldMapping::parse(defaultMapping(config.object), config.mapping);
  if (!mapping) {
    throw std::invalid_argument("salesforce: " + mapping.error().message);
  }
  return std::move(*mapping);
}

// Error codes that say "not now" rather than "never" (Salesforce's StatusCode values).
bool transientCode(std::string_view code) {
  static constexpr std::string_view kTransient[] = {
      "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG",
      "ALL_OR_NONE_OPERATION_ROLLED_BACK", "TXN_SECURITY_FAIL_CLOSE_POLICY_FAILED"};
  return std::find(std::begin(kTransient), std::end(kTransient), code) != std::end(kTransient);
}

constexpr std::string_view kLimitCode = "REQUEST_LIMIT_EXCEEDED";

// A record's errors as a reason: "INVALID_EMAIL_ADDRESS: Email: invalid email address: x
// (fields: Email)", several joined by "; ".
std::string recordErrors(const json::array& errors) {
  std::string out;
  for (const auto& e : errors) {
    std::string one = sdk::stringAt(e, "statusCode").value_or("ERROR") + ": " +
                      sdk::stringAt(e, "message").value_or("");
    if (const json::value* fields = e.is_object() ? e.get_object().if_contains("fields") : nullptr;
        fields != nullptr && fields->is_array() && !fields->get_array().empty()) {
      std::string names;
      for (const auto& f : fields->get_array()) {
        names += (names.empty() ? "" : ", ") + sdk::stringAt(f, "").value_or("?");
      }
      one += " (fields: " + names + ")";
    }
    out += (out.empty() ? "" : "; ") + one;
  }
  return sdk::clipReason(std::move(out), 600);
}

}  // namespace

SalesforceDestination::SalesforceDestination(SalesforceConfig config,
                                             sdk::DestinationContext& context)
    : config_(std::move(config)),
      ctx_(context),
      mapping_(makeMapping(config_)),
      data_path_(dataPath(config_.api_version)),
      tokens_(tokenEndpoint(config_.credentials(),
                            [this](int status) {
                              ctx_.metrics()
                                  .counter("junction_salesforce_requests_total",
                                           "Requests to Salesforce, by endpoint and HTTP status "
                                           "(0: no response)",
                                           {{"endpoint", "token"},
                                            {"status", std::to_string(status)}})
                                  .inc();
                            }),
              context) {}

sdk::OAuthTokenCache::Sent SalesforceDestination::send(std::string method, std::string path,
                                                       std::string body,
                                                       std::string_view endpoint) {
  sdk::HttpClientRequest request{.method = std::move(method),
                                 .url = std::move(path),
                                 .headers = {},
                                 .body = std::move(body),
                                 .timeout = config_.timeout};
  request.headers.set("Accept", "application/json");
  if (!request.body.empty()) {
    request.headers.set("Content-Type", "application/json; charset=UTF-8");
  }
  return tokens_.send(std::move(request), endpoint, [&](const sdk::HttpClientResponse& r) {
    ctx_.metrics()
        .counter("junction_salesforce_requests_total",
                 "Requests to Salesforce, by endpoint and HTTP status (0: no response)",
                 {{"endpoint", std::string(endpoint)}, {"status", std::to_string(r.status)}})
        .inc();
  });
}

Outcome SalesforceDestination::limitReached(std::chrono::milliseconds hint, std::string why,
                                            CallState& state) {
  if (!state.throttled()) {
    ctx_.metrics()
        .counter("junction_salesforce_limit_pauses_total",
                 "Times the org's API request limit paused the destination")
        .inc();
  }
  return state.limited(std::move(why), hint.count() > 0 ? hint : config_.limit_pause);
}

Outcome SalesforceDestination::classify(const sdk::HttpClientResponse& response,
                                        CallState& state) {
  const std::string code = errorCode(response.body);
  if (response.status == 403 && code == kLimitCode) {
    return limitReached(response.retry_after,
                        "Salesforce API request limit reached: " + vendorReason(response), state);
  }
  if (response.classification == sdk::HttpClassification::RateLimited) {
    return limitReached(response.retry_after, "Salesforce rate limit: " + vendorReason(response),
                        state);
  }
  if (response.classification == sdk::HttpClassification::Permanent && transientCode(code)) {
    return Outcome::retry(vendorReason(response), response.retry_after);
  }
  return state.classify(response, vendorReason(response),
                        vendorError(response.body).value_or(response.describe()));
}

std::vector<PlannedRecord> SalesforceDestination::plan(std::span<const sdk::Event> batch,
                                                       std::vector<Outcome>& outcomes) {
  std::vector<PlannedRecord> records;
  std::map<std::string, std::size_t, std::less<>> by_key;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const sdk::Event& event = batch[i];
    if (event.type() != sdk::EventType::Identify) {
      ctx_.metrics()
          .counter("junction_salesforce_skipped_total",
                   "Events with nothing to send to Salesforce (delivered without a request), by "
                   "type",
                   {{"type", sdk::toString(event.type())}})
          .inc();
      continue;
    }
    const json::object& body = event.body();
    auto key = sdk::stringAt(body, config_.external_id);
    if (!key || key->empty()) {
      outcomes[i] = Outcome::failed("no external id: the identify event has no " +
                                    config_.external_id + " (the value of " +
                                    config_.external_id_field + ")");
      continue;
    }
    json::object fields = mapping_.apply(body);
    for (auto& [name, v] : fields) {
      if (v.is_object() || v.is_array()) {
        v = json::serialize(v);  // a field holds a scalar
      }
    }
    const auto [it, inserted] = by_key.try_emplace(*key, records.size());
    if (inserted) {
      records.push_back({std::move(*key), std::move(fields), {i}});
    } else {
      PlannedRecord& record = records[it->second];
      for (auto& [name, v] : fields) {
        record.fields[name] = std::move(v);  // later events win, as they would one by one
      }
      record.events.push_back(i);
    }
  }
  return records;
}

std::string SalesforceDestination::collectionBody(std::span<const PlannedRecord> records) const {
  json::array list;
  list.reserve(records.size());
  for (const auto& r : records) {
    json::object record{{"attributes", json::object{{"type", config_.object}}}};
    for (const auto& [name, v] : r.fields) {
      record[name] = v;
    }
    record[config_.external_id_field] = r.key;
    list.push_back(std::move(record));
  }
  return json::serialize(json::object{{"allOrNone", false}, {"records", std::move(list)}});
}

std::vector<Outcome> SalesforceDestination::deliver(std::span<const sdk::Event> batch) {
  std::vector<Outcome> outcomes(batch.size());
  const std::vector<PlannedRecord> records = plan(batch, outcomes);
  CallState state(ctx_, "Salesforce");
  if (records.size() == 1) {
    upsertOne(records.front(), outcomes, state);
    return outcomes;
  }
  const auto per_request = static_cast<std::size_t>(config_.records_per_request);
  for (std::size_t begin = 0; begin < records.size(); begin += per_request) {
    const std::span<const PlannedRecord> chunk(
        records.data() + begin, std::min(per_request, records.size() - begin));
    if (state.stop()) {
      for (const auto& r : chunk) {
        for (const std::size_t i : r.events) {
          outcomes[i] = *state.stop();
        }
      }
      continue;
    }
    upsertMany(chunk, outcomes, state);
  }
  return outcomes;
}

void SalesforceDestination::upsertOne(const PlannedRecord& record, std::vector<Outcome>& outcomes,
                                      CallState& state) {
  const auto all = [&](const Outcome& o) {
    for (const std::size_t i : record.events) {
      outcomes[i] = o;
    }
  };
  auto sent = send("PATCH",
                   data_path_ + "sobjects/" + config_.object + "/" + config_.external_id_field +
                       "/" + sdk::percentEncode(record.key),
                   json::serialize(record.fields), "upsert");
  if (sent.no_token) {
    all(*sent.no_token);
    return;
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (response.ok()) {
    // 201 created, 200 updated ({"success":true,...}), or 204 (updated, before API 46.0).
    auto parsed = response.status == 204 ? sdk::Result<json::value>(json::value())
                                         : sdk::parseJson(response.body);
    if (!parsed || (response.status != 204 && !sdk::boolAt(*parsed, "success").value_or(false))) {
      all(Outcome::retry("Salesforce answered the upsert with HTTP " +
                         std::to_string(response.status) + " but no success"));
    }
    return;
  }
  all(classify(response, state));
}

void SalesforceDestination::upsertMany(std::span<const PlannedRecord> records,
                                       std::vector<Outcome>& outcomes, CallState& state) {
  const auto all = [&](const Outcome& o) {
    for (const auto& r : records) {
      for (const std::size_t i : r.events) {
        outcomes[i] = o;
      }
    }
  };
  auto sent = send("PATCH",
                   data_path_ + "composite/sobjects/" + config_.object + "/" +
                       config_.external_id_field,
                   collectionBody(records), "collections");
  if (sent.no_token) {
    state.stopWith(*sent.no_token);
    all(*sent.no_token);
    return;
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (!response.ok()) {
    all(classify(response, state));
    return;
  }
  auto parsed = sdk::parseJson(response.body);
  const json::array* results = parsed ? parsed->if_array() : nullptr;
  if (results == nullptr || results->size() != records.size()) {
    all(Outcome::retry("Salesforce answered the collection upsert with HTTP " +
                       std::to_string(response.status) + " but not one result per record"));
    return;
  }
  std::size_t refused = 0;
  for (std::size_t r = 0; r < records.size(); ++r) {
    const json::value& result = (*results)[r];
    if (sdk::boolAt(result, "success").value_or(false)) {
      continue;  // delivered
    }
    const json::value* errors_value =
        result.is_object() ? result.get_object().if_contains("errors") : nullptr;
    const json::array errors =
        errors_value != nullptr && errors_value->is_array() ? errors_value->get_array()
                                                            : json::array{};
    bool transient = errors.empty();
    bool limit = false;
    for (const auto& e : errors) {
      const std::string code = sdk::stringAt(e, "statusCode").value_or("");
      transient = transient || transientCode(code);
      limit = limit || code == kLimitCode;
    }
    const std::string why = errors.empty() ? "no errors given" : recordErrors(errors);
    Outcome o = limit       ? limitReached({}, "Salesforce API request limit reached: " + why, state)
                : transient ? Outcome::retry("Salesforce could not save the record now: " + why)
                            : Outcome::failed("Salesforce refused the record: " + why);
    refused += o.kind == Outcome::Kind::Failed ? 1 : 0;
    for (const std::size_t i : records[r].events) {
      outcomes[i] = o;
    }
  }
  if (refused > 0) {
    ctx_.log().warn("Salesforce refused records of a collection upsert",
                    {{"refused", refused}, {"records", records.size()}});
  }
}

Outcome SalesforceDestination::erase(const sdk::Person& person) {
  const std::string& key = config_.erase_by == "email"         ? person.email
                           : config_.erase_by == "anonymousId" ? person.anonymous_id
                                                               : person.user_id;
  if (key.empty()) {
    return Outcome::failed("cannot erase at Salesforce: the person has no " + config_.erase_by +
                           " (their " + config_.external_id_field + ")");
  }
  auto sent = send("DELETE",
                   data_path_ + "sobjects/" + config_.object + "/" + config_.external_id_field +
                       "/" + sdk::percentEncode(key),
                   "", "delete");
  if (sent.no_token) {
    return *sent.no_token;
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (response.status == 404 && errorCode(response.body) == "NOT_FOUND") {
    Outcome done = Outcome::delivered();
    done.reason = "no " + config_.object + " with this " + config_.external_id_field +
                  " at Salesforce";
    return done;
  }
  CallState state(ctx_, "Salesforce");
  return classify(response, state);
}

}  // namespace junction::plugins::salesforce
