#include "salesforce_source.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <map>

#include "junction/sdk/event.h"
#include "junction/sdk/json.h"
#include "junction/sdk/text.h"

namespace junction::plugins::salesforce {

namespace json = boost::json;

namespace {

constexpr int kMaxTransientFailures = 3;
constexpr std::chrono::milliseconds kFirstBackoff{1000};
// When the org's API limit is reached and the answer gives no hint: the allocation is a rolling
// 24 hours, so asking again soon only spends what comes back.
constexpr std::chrono::milliseconds kLimitWait{5 * 60 * 1000};

// Salesforce fields with a Segment trait of their own (the spec's reserved traits).
const std::map<std::string, std::string, std::less<>>& traitNames() {
  static const std::map<std::string, std::string, std::less<>> names{
      {"Email", "email"},         {"FirstName", "firstName"}, {"LastName", "lastName"},
      {"Phone", "phone"},         {"Title", "title"},         {"Company", "company.name"},
      {"MobilePhone", "mobilePhone"}, {"Website", "website"}};
  return names;
}

}  // namespace

std::optional<std::int64_t> parseSalesforceTime(std::string_view text) {
  // "+0000" is not RFC 3339's "+00:00": give the parser the colon.
  std::string normalized(text);
  if (normalized.size() > 5 && (normalized[normalized.size() - 5] == '+' ||
                                normalized[normalized.size() - 5] == '-') &&
      normalized.find(':', normalized.size() - 5) == std::string::npos) {
    normalized.insert(normalized.size() - 2, ":");
  }
  return sdk::parseIsoTimestamp(normalized);
}

std::string buildQuery(const std::string& object, const std::vector<std::string>& fields,
                       std::optional<std::int64_t> since_ms) {
  std::string q = "SELECT ";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    q += (i == 0 ? "" : ", ") + fields[i];
  }
  q += " FROM " + object;
  if (since_ms) {
    // A SOQL dateTime literal as documented: unquoted, YYYY-MM-DDThh:mm:ssZ. Whole seconds, as
    // SystemModstamp has; a fraction would be rounded down, which `>=` keeps safe.
    std::string literal = sdk::formatIsoTimestamp(*since_ms - ((*since_ms % 1000) + 1000) % 1000);
    literal.erase(literal.size() - 5, 4);  // "...:27.000Z" -> "...:27Z"
    q += " WHERE SystemModstamp >= " + literal;
  }
  q += " ORDER BY SystemModstamp, Id";
  return q;
}

std::optional<json::object> recordEvent(const json::object& record, const std::string& user_id,
                                        std::string& why) {
  const auto id = sdk::stringAt(record, "Id");
  const auto stamp = sdk::stringAt(record, "SystemModstamp");
  const auto parsed = stamp ? parseSalesforceTime(*stamp) : std::nullopt;
  if (!id || id->empty() || !parsed) {
    why = "no Id or SystemModstamp";
    return std::nullopt;
  }
  const std::int64_t modified = parsed.value_or(0);
  const auto uid = user_id == "Id" ? id : sdk::stringAt(record, user_id);
  if (!uid || uid->empty()) {
    why = "no " + user_id;
    return std::nullopt;
  }
  json::value traits = json::object{};
  for (const auto& [name, value] : record) {
    if (value.is_null() || name == "attributes" || name == "Id" || name == "SystemModstamp") {
      continue;
    }
    const auto known = traitNames().find(std::string_view(name));
    (void)sdk::setPath(traits, known != traitNames().end() ? known->second : std::string(name),
                       value);
  }
  traits.get_object()["salesforce_id"] = *id;
  const std::string object = sdk::stringAt(record, "attributes.type").value_or("record");
  return json::object{
      {"type", "identify"},
      {"userId", *uid},
      {"messageId", "salesforce-" + *id + "-" + std::to_string(modified)},
      {"timestamp", sdk::formatIsoTimestamp(modified)},
      {"traits", std::move(traits)},
      {"context",
       json::object{{"externalIds", json::array{json::object{{"id", *id},
                                                             {"type", "salesforce_id"},
                                                             {"collection", "users"},
                                                             {"encoding", "none"}}}},
                    {"integration", json::object{{"name", "salesforce"}}},
                    {"salesforce", json::object{{"object", object}}}}}};
}

SalesforceSource::SalesforceSource(SalesforceSourceConfig config, sdk::SourceContext& context)
    : config_(std::move(config)),
      context_(context),
      tokens_(tokenEndpoint(config_.credentials(),
                            [this](int status) {
                              context_.metrics()
                                  .counter("junction_salesforce_source_requests_total",
                                           "Requests to Salesforce, by endpoint and HTTP status",
                                           {{"endpoint", "token"},
                                            {"status", std::to_string(status)}})
                                  .inc();
                            }),
              context),
      sync_(context, {.every = config_.every},
            [this](const sdk::SyncRequest& request) { return pull(request); }) {
  fields_ = {"Id", "SystemModstamp"};
  for (const auto& f : config_.fields) {
    if (std::find(fields_.begin(), fields_.end(), f) == fields_.end()) {
      fields_.push_back(f);
    }
  }
  if (std::find(fields_.begin(), fields_.end(), config_.user_id) == fields_.end()) {
    fields_.push_back(config_.user_id);
  }
}

sdk::Status SalesforceSource::start() { return sync_.start(); }

void SalesforceSource::stop() { sync_.stop(); }

sdk::Result<sdk::SyncPage> SalesforceSource::pull(const sdk::SyncRequest& request) {
  std::string path;
  if (!request.page.empty()) {
    // nextRecordsUrl, as Salesforce wrote it: "/services/data/v62.0/query/01g...-2000".
    path = request.page.starts_with("/") ? request.page.substr(1) : request.page;
  } else {
    std::optional<std::int64_t> since;
    if (request.checkpoint) {
      std::int64_t ms = 0;
      const auto& text = *request.checkpoint;
      if (std::from_chars(text.data(), text.data() + text.size(), ms).ptr !=
          text.data() + text.size()) {
        return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                              "the checkpoint is not a time in epoch ms: " + text);
      }
      since = ms;
    }
    path = dataPath(config_.api_version) + "query?q=" +
           sdk::percentEncode(buildQuery(config_.object, fields_, since));
  }
  sdk::HttpClientRequest http{.method = "GET", .url = path, .headers = {}, .body = {},
                              .timeout = config_.timeout};
  http.headers.set("Accept", "application/json");
  auto sent = tokens_.send(std::move(http), "query", [&](const sdk::HttpClientResponse& r) {
    context_.metrics()
        .counter("junction_salesforce_source_requests_total",
                 "Requests to Salesforce, by endpoint and HTTP status",
                 {{"endpoint", "query"}, {"status", std::to_string(r.status)}})
        .inc();
  });
  if (sent.no_token) {
    if (sent.no_token->kind == sdk::Outcome::Kind::Retry &&
        ++transient_failures_ <= kMaxTransientFailures) {
      return sdk::SyncPage::wait(std::max(sent.no_token->retry_after, kFirstBackoff));
    }
    transient_failures_ = 0;
    return sdk::makeError(sdk::ErrorCode::PermissionDenied,
                          "no Salesforce access token: " + sent.no_token->reason);
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (response.status == 403 && errorCode(response.body) == "REQUEST_LIMIT_EXCEEDED") {
    const auto wait = response.retry_after.count() > 0 ? response.retry_after : kLimitWait;
    context_.log().warn("Salesforce API request limit reached; the sync waits",
                        {{"wait_ms", static_cast<std::int64_t>(wait.count())}});
    return sdk::SyncPage::wait(wait);
  }
  switch (response.classification) {
    case sdk::HttpClassification::Success:
      break;
    case sdk::HttpClassification::RateLimited:
    case sdk::HttpClassification::Retryable:
      if (++transient_failures_ <= kMaxTransientFailures) {
        const auto backoff = kFirstBackoff * (1 << (transient_failures_ - 1));
        context_.log().warn("Salesforce query failed; retrying",
                            {{"reason", vendorReason(response)},
                             {"backoff_ms", static_cast<std::int64_t>(backoff.count())}});
        return sdk::SyncPage::wait(std::max(backoff, response.retry_after));
      }
      transient_failures_ = 0;
      return sdk::makeError(sdk::ErrorCode::Unavailable, vendorReason(response));
    case sdk::HttpClassification::AuthExpired:
      return sdk::makeError(sdk::ErrorCode::PermissionDenied,
                            "Salesforce refused the session: " + vendorReason(response));
    case sdk::HttpClassification::Permanent:
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, vendorReason(response));
  }
  transient_failures_ = 0;

  auto answer = sdk::parseJson(response.body);
  const json::object* o = answer ? answer->if_object() : nullptr;
  const json::value* records = o != nullptr ? o->if_contains("records") : nullptr;
  if (records == nullptr || !records->is_array()) {
    return sdk::makeError(sdk::ErrorCode::Unavailable,
                          "Salesforce's query answer has no records array: " +
                              sdk::clipReason(response.body, 200));
  }
  sdk::SyncPage page;
  std::optional<std::int64_t> last;
  for (const auto& item : records->get_array()) {
    if (!item.is_object()) {
      continue;
    }
    context_.metrics()
        .counter("junction_salesforce_source_records_total", "Records read from Salesforce")
        .inc();
    if (const auto stamp = sdk::stringAt(item, "SystemModstamp")) {
      if (const auto ms = parseSalesforceTime(*stamp)) {
        last = std::max(last.value_or(*ms), *ms);
      }
    }
    std::string why;
    auto body = recordEvent(item.get_object(), config_.user_id, why);
    auto event = body ? sdk::makeEvent(*body, context_.id())
                      : sdk::Result<sdk::Event>(sdk::makeError(sdk::ErrorCode::InvalidArgument, why));
    if (!event) {
      context_.metrics()
          .counter("junction_salesforce_source_skipped_total",
                   "Records not emitted: no user id or no SystemModstamp")
          .inc();
      context_.log().debug("Salesforce record skipped", {{"reason", event.error().message}});
      continue;
    }
    page.events.push_back(std::move(event).value());
  }
  if (last) {
    page.checkpoint = std::to_string(*last);
  }
  const bool done = sdk::boolAt(*o, "done").value_or(true);
  if (!done) {
    const auto next = sdk::stringAt(*o, "nextRecordsUrl");
    if (!next || next->empty()) {
      return sdk::makeError(sdk::ErrorCode::Unavailable,
                            "Salesforce's query answer is not done but has no nextRecordsUrl");
    }
    page.next_page = *next;
  }
  return page;
}

}  // namespace junction::plugins::salesforce
