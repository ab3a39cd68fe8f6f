// libFuzzer target: the dead-letter admin API's filters (core/delivery/delivery_engine.cc), through
// its public entry point: the routes DeliveryEngine::registerAdminRoutes adds, called through
// http::Router::dispatch as the server calls them (with the admin token), over a real engine,
// queue and SQLite dead-letter store in a scratch directory.
//
// Input: `<verb>\n<rest>`. The verb's first letter picks the call: G = GET /admin/dlq with
// <rest> as the raw query string; R = POST /admin/dlq/replay and anything else = POST
// /admin/dlq/purge, with <rest> as the JSON body. No newline: the whole input is a purge body.
// GETs go to an engine holding six dead letters (two destinations, three people); POSTs to one
// whose store is empty, so that no input changes what the next one sees.
// Invariants:
//   - the answer is 200 or 400 (404 only for a replay naming a destination, none running here),
//     never 500 (a handler exception, a store error), and always a JSON object;
//   - a 400 says `success: false` with an error, and its `field`, when given, is a key of the
//     request (a body member or a query parameter) or `all`;
//   - a purge/replay answered 200 either said `"all": true` and nothing else, or named at least
//     one of destination, person, since, until, ids — an unreadable or empty filter never
//     widens to every dead letter — and used only known fields;
//   - a listing answered 200 returns `count` rows, in id order, each matching the destination,
//     person and ids asked for, at most `limit` of them.
// Seeds: the bodies and queries of tests/integration/dlq_test.cc (accepted and refused).

#include <boost/json.hpp>
#include <boost/url/parse_query.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/delivery/delivery_engine.h"
#include "core/http/router.h"
#include "core/queue/log.h"
#include "core/telemetry/metrics_registry.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace sdk = junction::sdk;
namespace json = boost::json;
using namespace junction::core;

constexpr const char* kToken = "dlq-admin-token-1234";

class NullLogger final : public sdk::Logger {
 public:
  bool enabled(sdk::LogLevel) const noexcept override { return false; }
  void log(sdk::LogLevel, std::string_view, std::initializer_list<sdk::LogField>) noexcept override {}
};

class FixedClock final : public sdk::Clock {
 public:
  std::int64_t nowMs() const noexcept override { return 1767225600000; }
  std::chrono::steady_clock::time_point steadyNow() const noexcept override {
    return std::chrono::steady_clock::time_point{};
  }
};

class Capture final : public sdk::HttpResponseSink {
 public:
  void send(sdk::HttpResponse response) noexcept override { response_ = std::move(response); }
  std::optional<sdk::HttpResponse> response_;
};

// One engine over its own queue and state directory, its admin routes on a router.
struct Engine {
  Engine(const std::string& dir, telemetry::MetricsRegistry& metrics, sdk::Logger& logger,
         const sdk::Clock& clock) {
    queue::LogOptions options;
    options.path = dir + "/queue";
    options.fsync = queue::FsyncPolicy::Never;
    auto opened = queue::Log::open(options, nullptr);
    FUZZ_CHECK(opened.ok(), opened.ok() ? "" : opened.error().message);
    log = std::move(opened).value();
    engine = std::make_unique<delivery::DeliveryEngine>(*log, metrics, logger, clock);
    const sdk::Status st = engine->open(dir + "/state");
    FUZZ_CHECK(st.ok(), st.message());
    engine->registerAdminRoutes(router, kToken);
  }

  sdk::HttpResponse call(std::string method, std::string path, std::string query, std::string body) {
    sdk::HttpRequest request;
    request.method = std::move(method);
    request.path = std::move(path);
    request.query = std::move(query);
    request.body = std::move(body);
    request.headers.set("Authorization", std::string("Bearer ") + kToken);
    request.remote_address = "127.0.0.1";
    auto sink = std::make_shared<Capture>();
    router.dispatch(std::move(request), sdk::HttpResponder(sink));
    FUZZ_CHECK(sink->response_.has_value(), "the route did not answer");
    return std::move(*sink->response_);
  }

  std::unique_ptr<queue::Log> log;
  std::unique_ptr<delivery::DeliveryEngine> engine;
  http::Router router;
};

struct Fixture {
  Fixture()
      : listing(junction::fuzz::freshDir("listing"), metrics, logger, clock),
        empty(junction::fuzz::freshDir("empty"), metrics, logger, clock) {
    std::vector<delivery::DeadLetter> letters;
    const char* const destinations[] = {"hook", "crm"};
    const char* const people[] = {"u1", "u2", ""};
    for (int i = 0; i < 6; ++i) {
      sdk::EventHeader h;
      h.type = sdk::EventType::Track;
      h.message_id = "m-" + std::to_string(i);
      h.user_id = people[i % 3];
      h.anonymous_id = "anon-" + std::to_string(i);
      h.name = "Clicked";
      h.source_id = "web";
      h.timestamp_ms = 1767225600000 + i * 3600000;
      h.received_at_ms = h.timestamp_ms + 5;
      delivery::DeadLetter d;
      d.destination = destinations[i % 2];
      d.event = sdk::Event(h, R"({"type":"track","event":"Clicked","messageId":"m-)" +
                                  std::to_string(i) + R"("})");
      d.failed_at_ms = h.timestamp_ms + 60000;
      d.attempts = 3;
      d.reason = "HTTP 500: oops";
      letters.push_back(std::move(d));
    }
    const sdk::Status st = listing.engine->deadLetters().add(letters);
    FUZZ_CHECK(st.ok(), st.message());
  }

  telemetry::MetricsRegistry metrics;
  NullLogger logger;
  FixedClock clock;
  Engine listing;  // six dead letters; only listed
  Engine empty;    // no dead letter; purged and replayed
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

json::object answerOf(const sdk::HttpResponse& r, const std::string& request) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  FUZZ_CHECK(!ec && v.is_object(), "answer " + std::to_string(r.status) + " is not a JSON object: " +
                                       r.body + "\nrequest: " + request);
  return std::move(v.as_object());
}

void checkRefusal(const json::object& answer, const std::set<std::string>& keys,
                  const std::string& request) {
  const json::value* success = answer.if_contains("success");
  const json::value* error = answer.if_contains("error");
  FUZZ_CHECK(success != nullptr && success->is_bool() && !success->get_bool(), request);
  FUZZ_CHECK(error != nullptr && error->is_string() && !error->get_string().empty(), request);
  if (const json::value* field = answer.if_contains("field")) {
    FUZZ_CHECK(field->is_string(), request);
    const std::string name(field->get_string());
    FUZZ_CHECK(name.empty() || name == "all" || keys.contains(name),
               "a 400 names field `" + name + "`, not in the request: " + request);
  }
}

void post(bool replay, const std::string& body) {
  const std::string request = std::string(replay ? "replay " : "purge ") + body;
  const sdk::HttpResponse r = fixture().empty.call(
      "POST", replay ? "/admin/dlq/replay" : "/admin/dlq/purge", "", body);
  const json::object answer = answerOf(r, request);

  boost::system::error_code ec;
  const json::value parsed = body.empty() ? json::value(json::object{}) : json::parse(body, ec);
  const json::object* o = ec ? nullptr : parsed.if_object();
  std::set<std::string> keys;
  if (o != nullptr) {
    for (const auto& [k, v] : *o) {
      keys.emplace(k);
    }
  }
  switch (r.status) {
    case 200: {
      FUZZ_CHECK(o != nullptr, "a body that is not a JSON object was accepted: " + request);
      static const std::set<std::string> kKnown = {"destination", "person", "since",
                                                   "until",       "ids",    "all"};
      bool all = false;
      bool selects = false;
      for (const auto& [k, v] : *o) {
        const std::string key(k);
        FUZZ_CHECK(kKnown.contains(key), "unknown field `" + key + "` accepted: " + request);
        if (key == "all") {
          all = v.is_bool() && v.get_bool();
        } else {
          selects = true;
        }
      }
      FUZZ_CHECK(all != selects, "accepted a filter that selects " +
                                     std::string(all ? "everything and more" : "nothing") +
                                     " : " + request);
      FUZZ_CHECK(!replay || !keys.contains("destination"), "replay to no running destination");
      const json::value* n = answer.if_contains(replay ? "replayed" : "purged");
      FUZZ_CHECK(n != nullptr && n->is_number() && n->to_number<std::int64_t>() == 0,
                 "the empty store " + std::string(replay ? "replayed" : "purged") + " something: " +
                     r.body);
      break;
    }
    case 400:
      checkRefusal(answer, keys, request);
      break;
    case 404:
      FUZZ_CHECK(replay && keys.contains("destination"), "404: " + r.body + "\nrequest: " + request);
      break;
    default:
      FUZZ_CHECK(false, "answer " + std::to_string(r.status) + ": " + r.body + "\nrequest: " + request);
  }
}

void get(const std::string& query) {
  const std::string request = "GET /admin/dlq?" + query;
  const sdk::HttpResponse r = fixture().listing.call("GET", "/admin/dlq", query, "");
  const json::object answer = answerOf(r, request);
  std::set<std::string> keys;
  std::optional<std::string> destination;
  std::optional<std::string> person;
  std::set<std::int64_t> ids;
  std::optional<std::int64_t> limit;
  if (boost::urls::parse_query(query)) {
    for (auto p : boost::urls::params_view(query)) {
      const std::string key = p.key;
      const std::string value = p.value;
      keys.insert(key);
      if (key == "destination") {
        destination = value;
      } else if (key == "person") {
        person = value;
      } else if (key == "id") {
        ids.insert(std::atoll(value.c_str()));
      } else if (key == "limit") {
        limit = std::atoll(value.c_str());
      }
    }
  }
  if (r.status == 400) {
    checkRefusal(answer, keys, request);
    return;
  }
  FUZZ_CHECK(r.status == 200, "answer " + std::to_string(r.status) + ": " + r.body + "\nrequest: " + request);
  const json::value* count = answer.if_contains("count");
  const json::value* rows = answer.if_contains("dead_letters");
  FUZZ_CHECK(count != nullptr && rows != nullptr && rows->is_array(), r.body);
  FUZZ_CHECK(count->to_number<std::int64_t>() == static_cast<std::int64_t>(rows->get_array().size()),
             r.body);
  FUZZ_CHECK(rows->get_array().size() <= 6, r.body);
  FUZZ_CHECK(!limit || static_cast<std::int64_t>(rows->get_array().size()) <= *limit,
             "more rows than the limit: " + request);
  std::int64_t previous = 0;
  for (const json::value& row : rows->get_array()) {
    const json::object& d = row.as_object();
    const std::int64_t id = d.at("id").to_number<std::int64_t>();
    FUZZ_CHECK(id > previous, "rows out of id order: " + r.body);
    previous = id;
    FUZZ_CHECK(!destination || d.at("destination").as_string() == *destination,
               "a row of another destination: " + request + " -> " + r.body);
    FUZZ_CHECK(!person || d.at("person").as_string() == *person,
               "a row of another person: " + request + " -> " + r.body);
    FUZZ_CHECK(ids.empty() || ids.contains(id), "a row not asked for: " + request + " -> " + r.body);
  }
  if (keys.empty() && query.empty()) {
    FUZZ_CHECK(rows->get_array().size() == 6, "no filter listed " + r.body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = junction::fuzz::asText(data, size);
  const auto newline = input.find('\n');
  if (newline == std::string_view::npos) {
    post(false, std::string(input));
    return 0;
  }
  const std::string rest(input.substr(newline + 1));
  switch (newline == 0 ? '\0' : input[0]) {
    case 'G':
      get(rest);
      break;
    case 'R':
      post(true, rest);
      break;
    default:
      post(false, rest);
      break;
  }
  return 0;
}
