#include "sfmc_destination.h"

#include <boost/json.hpp>
#include <stdexcept>

#include "junction/sdk/json.h"

namespace junction::plugins::sfmc {

namespace json = boost::json;
using sdk::Outcome;

namespace {

SfmcMapper makeMapper(const SfmcConfig& config) {
  auto mapper = SfmcMapper::make(config);
  if (!mapper) {
    throw std::invalid_argument("sfmc: " + mapper.error().message);
  }
  return std::move(*mapper);
}

// "HTTP 400 from SFMC: <the vendor's message>", or the client's description of the response.
std::string vendorReason(const sdk::HttpClientResponse& response) {
  if (response.status != 0) {
    if (auto text = vendorError(response.body)) {
      return "HTTP " + std::to_string(response.status) + " from SFMC: " + *text;
    }
  }
  return response.describe();
}

}  // namespace

SfmcDestination::SfmcDestination(SfmcConfig config, sdk::DestinationContext& context)
    : config_(std::move(config)),
      ctx_(context),
      mapper_(makeMapper(config_)),
      rowset_path_(rowsetPath(config_.data_extension)),
      audiences_rowset_path_(config_.audiences_data_extension.empty()
                                 ? std::string()
                                 : rowsetPath(config_.audiences_data_extension)),
      tokens_({.vendor = "SFMC",
               .request =
                   [this] {
                     sdk::HttpClientRequest request{.method = "POST",
                                                    .url = tokenUrl(config_.auth_url),
                                                    .headers = {},
                                                    .body = tokenRequestBody(config_),
                                                    .timeout = config_.timeout};
                     request.headers.set("Content-Type", "application/json");
                     return request;
                   },
               .parse =
                   [](std::string_view body) -> sdk::Result<sdk::OAuthGrant> {
                     auto grant = parseTokenResponse(body);
                     if (!grant) {
                       return grant.error();
                     }
                     return sdk::OAuthGrant{std::move(grant->access_token),
                                            std::move(grant->rest_instance_url),
                                            grant->expires_in};
                   },
               .error_text = vendorError,
               .counted = [this](int status) { requestCounter("token", status).inc(); }},
              context) {}

sdk::Counter& SfmcDestination::requestCounter(std::string_view endpoint, int status) {
  std::lock_guard lock(metrics_mutex_);
  auto key = std::make_pair(std::string(endpoint), status);
  auto it = requests_.find(key);
  if (it == requests_.end()) {
    sdk::Counter& counter = ctx_.metrics().counter(
        "junction_sfmc_requests_total", "Requests to Salesforce Marketing Cloud, by endpoint and "
                                        "HTTP status (0: no response)",
        {{"endpoint", key.first}, {"status", std::to_string(status)}});
    it = requests_.emplace(std::move(key), &counter).first;
  }
  return *it->second;
}

sdk::Counter& SfmcDestination::skippedCounter(const std::string& type) {
  std::lock_guard lock(metrics_mutex_);
  auto it = skipped_.find(type);
  if (it == skipped_.end()) {
    sdk::Counter& counter = ctx_.metrics().counter(
        "junction_sfmc_skipped_total",
        "Events with nothing to send to Marketing Cloud (delivered without a request), by type",
        {{"type", type}});
    it = skipped_.emplace(type, &counter).first;
  }
  return *it->second;
}

SfmcDestination::Sent SfmcDestination::post(std::string_view endpoint, std::string_view path,
                                            const std::string& body) {
  sdk::HttpClientRequest request{.method = "POST",
                                 .url = std::string(path),
                                 .headers = {},
                                 .body = body,
                                 .timeout = config_.timeout};
  request.headers.set("Content-Type", "application/json; charset=UTF-8");
  return tokens_.send(std::move(request), endpoint, [&](const sdk::HttpClientResponse& response) {
    requestCounter(endpoint, response.status).inc();
  });
}

Outcome SfmcDestination::classify(const sdk::HttpClientResponse& response, CallState& state) {
  return state.classify(response, vendorReason(response),
                        vendorError(response.body).value_or(response.describe()));
}

std::vector<Outcome> SfmcDestination::deliver(std::span<const sdk::Event> batch) {
  std::vector<Outcome> outcomes(batch.size());
  std::vector<Planned> plans;
  plans.reserve(batch.size());
  std::vector<std::size_t> rows;
  std::vector<std::size_t> journeys;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    plans.push_back(mapper_.plan(batch[i]));
    switch (plans.back().action) {
      case Planned::Action::Row:
        rows.push_back(i);
        break;
      case Planned::Action::Journey:
        journeys.push_back(i);
        break;
      case Planned::Action::Skip:
        if (plans.back().audience_rows.empty()) {
          skippedCounter(plans.back().type).inc();
        }
        break;
      case Planned::Action::Fail:
        outcomes[i] = Outcome::failed(plans.back().reason);
        break;
    }
  }
  CallState state(ctx_, "SFMC");
  if (!rows.empty()) {
    sendRows(plans, rows, outcomes, state, rowset_path_);
  }
  if (!audiences_rowset_path_.empty()) {
    sendAudienceRows(plans, outcomes, state);
  }
  for (const std::size_t i : journeys) {
    if (!outcomes[i].isDelivered()) {
      continue;  // its audience row is not written: the journey waits for the retry (or replay)
    }
    if (state.stop()) {
      outcomes[i] = *state.stop();
    } else {
      sendJourney(plans[i], i, outcomes, state);
    }
  }
  return outcomes;
}

void SfmcDestination::sendAudienceRows(const std::vector<Planned>& plans,
                                       std::vector<Outcome>& outcomes, CallState& state) {
  // One row per (contact key, audience): a later event's row replaces an earlier one's (a
  // rowset naming one primary key twice would leave the order to the vendor), and the events
  // share its outcome.
  std::vector<Planned> rows;
  std::vector<std::vector<std::size_t>> owners;
  std::map<std::string, std::size_t> by_key;
  for (std::size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].action == Planned::Action::Fail) {
      continue;
    }
    for (const Planned& row : plans[i].audience_rows) {
      const std::string key = json::serialize(row.row.at("keys"));
      auto [it, added] = by_key.emplace(key, rows.size());
      if (added) {
        rows.push_back(row);
        owners.push_back({i});
      } else {
        rows[it->second] = row;
        owners[it->second].push_back(i);
      }
    }
  }
  if (rows.empty()) {
    return;
  }
  std::vector<std::size_t> all(rows.size());
  for (std::size_t k = 0; k < rows.size(); ++k) {
    all[k] = k;
  }
  std::vector<Outcome> row_outcomes(rows.size());
  sendRows(rows, all, row_outcomes, state, audiences_rowset_path_);
  const auto rank = [](const Outcome& o) {
    return o.kind == Outcome::Kind::Failed ? 2 : o.kind == Outcome::Kind::Retry ? 1 : 0;
  };
  for (std::size_t k = 0; k < rows.size(); ++k) {
    for (const std::size_t i : owners[k]) {
      if (rank(row_outcomes[k]) > rank(outcomes[i])) {
        outcomes[i] = row_outcomes[k];
        outcomes[i].reason = "audience row: " + outcomes[i].reason;
      }
    }
  }
}

void SfmcDestination::sendRows(const std::vector<Planned>& plans,
                               std::span<const std::size_t> indices, std::vector<Outcome>& outcomes,
                               CallState& state, std::string_view path) {
  std::vector<std::size_t> sendable;
  std::vector<std::string> texts;
  sendable.reserve(indices.size());
  texts.reserve(indices.size());
  for (const std::size_t i : indices) {
    if (plans[i].body.size() + 2 > kMaxRowsetBytes) {
      outcomes[i] = Outcome::failed("the data extension row is " +
                                    std::to_string(plans[i].body.size()) +
                                    " bytes, over the rowset payload limit");
      continue;
    }
    sendable.push_back(i);
    texts.push_back(plans[i].body);
  }
  for (const auto& [begin, end] : chunkRows(texts, static_cast<std::size_t>(config_.rows_per_request),
                                            kMaxRowsetBytes)) {
    std::vector<std::size_t> chunk(sendable.begin() + static_cast<std::ptrdiff_t>(begin),
                                   sendable.begin() + static_cast<std::ptrdiff_t>(end));
    if (state.stop()) {
      for (const std::size_t i : chunk) {
        outcomes[i] = *state.stop();
      }
      continue;
    }
    sendRowset(plans, std::move(chunk), outcomes, state, path, true);
  }
}

void SfmcDestination::sendRowset(const std::vector<Planned>& plans,
                                 std::vector<std::size_t> indices, std::vector<Outcome>& outcomes,
                                 CallState& state, std::string_view path, bool may_resend) {
  const auto all = [&](const Outcome& o) {
    for (const std::size_t i : indices) {
      outcomes[i] = o;
    }
  };
  std::vector<std::string> texts;
  texts.reserve(indices.size());
  for (const std::size_t i : indices) {
    texts.push_back(plans[i].body);
  }
  Sent sent = post("rowset", path, rowsetBody(texts));
  if (sent.no_token) {
    state.stopWith(*sent.no_token);
    all(*sent.no_token);
    return;
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (response.ok()) {
    const auto parsed = sdk::parseJson(response.body);
    if (!parsed) {
      all(Outcome::retry("SFMC answered the rowset upsert with HTTP " +
                         std::to_string(response.status) + " and a body that is not JSON"));
      return;
    }
    // A saved rowset is answered with the rows. A 2xx carrying the vendor's error shape
    // ({"message","errorcode",...}, or hasErrors: true) did not save them: reporting the rows
    // delivered would lose them silently, so they are sent again (an upsert: idempotent).
    if (const json::object* o = parsed->if_object();
        o != nullptr &&
        (o->contains("errorcode") || sdk::boolAt(*o, "hasErrors").value_or(false))) {
      all(Outcome::retry("SFMC answered the rowset upsert with HTTP " +
                         std::to_string(response.status) + " but an error: " +
                         vendorError(response.body).value_or("hasErrors")));
      return;
    }
    // `all` would assign delivered: the outcomes start as delivered already.
    return;
  }
  if (response.status == 400) {
    std::vector<const json::object*> rows;
    rows.reserve(indices.size());
    for (const std::size_t i : indices) {
      rows.push_back(&plans[i].row);
    }
    std::vector<std::string> reasons(indices.size());
    bool mapped = false;
    for (const auto& problem : rowsetProblems(response.body)) {
      for (const std::size_t r : rowsConcerned(problem, rows)) {
        reasons[r] += (reasons[r].empty() ? "" : "; ") + problem.message;
        mapped = true;
      }
    }
    if (mapped) {
      std::vector<std::size_t> others;
      for (std::size_t r = 0; r < indices.size(); ++r) {
        if (reasons[r].empty()) {
          others.push_back(indices[r]);
        } else {
          outcomes[indices[r]] = Outcome::failed("HTTP 400 from SFMC: the row was refused: " +
                                                 reasons[r]);
        }
      }
      ctx_.log().warn("SFMC refused rows of a rowset",
                      {{"refused", indices.size() - others.size()}, {"others", others.size()}});
      if (others.empty()) {
        return;
      }
      if (may_resend) {
        // The synchronous rowset is all or nothing: the other rows were not saved.
        sendRowset(plans, std::move(others), outcomes, state, path, false);
      } else {
        for (const std::size_t i : others) {
          outcomes[i] = Outcome::retry("SFMC refused the rowset for other rows: " +
                                       vendorReason(response));
        }
      }
      return;
    }
  }
  all(classify(response, state));
}

void SfmcDestination::sendJourney(const Planned& plan, std::size_t index,
                                  std::vector<Outcome>& outcomes, CallState& state) {
  Sent sent = post("events", kJourneyEventPath, plan.body);
  if (sent.no_token) {
    state.stopWith(*sent.no_token);
    outcomes[index] = *sent.no_token;
    return;
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (response.ok()) {
    auto parsed = sdk::parseJson(response.body);
    if (!parsed || !sdk::stringAt(*parsed, "eventInstanceId")) {
      outcomes[index] = Outcome::retry("SFMC answered the journey entry event with HTTP " +
                                       std::to_string(response.status) +
                                       " but no eventInstanceId");
    }
    return;
  }
  outcomes[index] = classify(response, state);
}

Outcome SfmcDestination::erase(const sdk::Person& person) {
  const std::string& key = config_.erase_by == "email"         ? person.email
                           : config_.erase_by == "anonymousId" ? person.anonymous_id
                                                               : person.user_id;
  if (key.empty()) {
    return Outcome::failed("cannot erase at SFMC: the person has no " + config_.erase_by +
                           " (their contact key)");
  }
  Sent sent = post("delete", kDeletePath, deleteRequestBody(key));
  if (sent.no_token) {
    return *sent.no_token;
  }
  const sdk::HttpClientResponse& response = sent.response;
  if (!response.ok()) {
    CallState state(ctx_, "SFMC");
    return classify(response, state);
  }
  auto answer = parseDeleteResponse(response.body);
  if (!answer) {
    return Outcome::retry("SFMC answered the contact delete with HTTP " +
                          std::to_string(response.status) + " but " + answer.error().message);
  }
  if (!answer->operation_id) {
    return Outcome::failed("SFMC did not start the contact delete: " + answer->error);
  }
  const std::string id = std::to_string(*answer->operation_id);
  ctx_.log().info("SFMC contact delete accepted", {{"operation_id", id}});
  Outcome done = Outcome::delivered();
  done.reason = "SFMC delete operation " + id + " accepted";
  return done;
}

}  // namespace junction::plugins::sfmc
