#include "tests/fakes/webhook/fake_webhook.h"

#include <boost/json.hpp>
#include <charconv>

#include "junction/sdk/json_scan.h"

namespace junction::tests::fakes {
namespace {

namespace json = boost::json;
using sdk::testing::RecordedRequest;

// One event of a batch: its messageId and its text (a slice of the body, or of `owned` below).
struct BatchEvent {
  std::string message_id;
  std::string_view text;
};

// A messageId member's raw value (`"..."` with quotes) as a string; nullopt when it is not a
// non-empty string.
std::optional<std::string> messageIdOf(std::string_view raw) {
  if (raw.size() < 3 || raw.front() != '"') {
    return std::nullopt;
  }
  if (raw.find('\\') == std::string_view::npos) {
    return std::string(raw.substr(1, raw.size() - 2));
  }
  boost::system::error_code ec;
  const json::value v = json::parse(raw, ec);
  if (ec || !v.is_string() || v.get_string().empty()) {
    return std::nullopt;
  }
  return std::string(v.get_string());
}

// The fast path: one validating pass of sdk::json_scan over `{"batch":[{...},...]}`, picking
// each event's slice and messageId. False means "not handled here" (invalid JSON, another
// shape, escaped keys): the caller decides with Boost.JSON, which also names the problem.
bool scanBatch(std::string_view body, std::vector<BatchEvent>& out) {
  sdk::json_scan::Cursor cursor(body);
  std::string_view name;
  bool escaped = false;
  if (!cursor.consume('{') || !cursor.key(name, escaped) || escaped || name != "batch" ||
      !cursor.consume('[')) {
    return false;
  }
  if (!cursor.consume(']')) {
    for (;;) {
      if (cursor.peek() != '{') {
        return false;
      }
      const char* start = cursor.position();
      cursor.consume('{');
      std::string_view id_raw;
      if (!cursor.consume('}')) {
        for (;;) {
          std::string_view value;
          if (!cursor.member(name, escaped, value, 3) || escaped) {
            return false;
          }
          if (name == "messageId") {
            id_raw = value;  // the last occurrence, as a parser keeps it
          }
          if (cursor.consume(',')) {
            continue;
          }
          if (!cursor.consume('}')) {
            return false;
          }
          break;
        }
      }
      auto id = messageIdOf(id_raw);
      if (!id) {
        return false;
      }
      out.push_back({std::move(*id),
                     std::string_view(start, static_cast<std::size_t>(cursor.position() - start))});
      if (cursor.consume(',')) {
        continue;
      }
      if (!cursor.consume(']')) {
        return false;
      }
      break;
    }
  }
  return cursor.consume('}') && cursor.atEnd();
}

// The slow path, for what scanBatch declined: the verdict of a full parser. Event texts are
// re-serialized into `owned` (only for bodies the fast path cannot read, e.g. with escapes in
// keys). Returns the problem, or nullopt when `out` holds the events.
std::optional<std::string> parseBatch(std::string_view body, std::vector<BatchEvent>& out,
                                      std::vector<std::string>& owned) {
  out.clear();
  boost::system::error_code ec;
  const json::value root = json::parse(body, ec);
  if (ec) {
    return "the body is not JSON: " + ec.message();
  }
  const auto* object = root.if_object();
  const auto* batch = object != nullptr ? object->if_contains("batch") : nullptr;
  if (object == nullptr || batch == nullptr || object->size() != 1) {
    return R"(the body must be an object with one member, "batch": {"batch":[...]})";
  }
  if (!batch->is_array()) {
    return R"("batch" must be an array of events)";
  }
  const auto& events = batch->get_array();
  owned.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto* event = events[i].if_object();
    if (event == nullptr) {
      return "batch[" + std::to_string(i) + "] is not an object";
    }
    const auto* id = event->if_contains("messageId");
    if (id == nullptr || !id->is_string() || id->get_string().empty()) {
      return "batch[" + std::to_string(i) + "] has no messageId string";
    }
    owned.push_back(json::serialize(*event));
    out.push_back({std::string(id->get_string()), owned.back()});
  }
  return std::nullopt;
}

std::string errorBody(std::string_view message) {
  return json::serialize(json::object{{"error", message}});
}

}  // namespace

FakeWebhookReceiver::FakeWebhookReceiver(Options options)
    : options_(std::move(options)),
      rule_(server_.when("*", "/", sdk::testing::PathMatch::Prefix)),
      secrets_(options_.secrets) {
  rule_.respond([this](const RecordedRequest& request) { return answer(request); });
}

FakeWebhookReceiver::~FakeWebhookReceiver() { server_.stop(); }

std::string FakeWebhookReceiver::url() const { return server_.baseUrl() + options_.path; }

std::string FakeWebhookReceiver::baseUrl() const { return server_.baseUrl(); }

std::uint16_t FakeWebhookReceiver::port() const noexcept { return server_.port(); }

void FakeWebhookReceiver::failNext(std::size_t n, int status, std::string body,
                                   std::vector<std::pair<std::string, std::string>> headers) {
  ScriptedFailure failure{n, {status, {}, std::move(body)}};
  for (auto& [name, value] : headers) {
    failure.response.headers.add(std::move(name), std::move(value));
  }
  std::lock_guard lock(mutex_);
  failures_.push_back(std::move(failure));
}

void FakeWebhookReceiver::rejectEvent(std::string message_id, std::string error, bool retry) {
  std::lock_guard lock(mutex_);
  rejections_[std::move(message_id)] = Rejection{std::move(error), retry};
}

void FakeWebhookReceiver::setDelay(std::chrono::milliseconds delay) { rule_.delay(delay); }

void FakeWebhookReceiver::setDown(bool down) {
  // One rule switched between resetting and answering, so that no request ever falls between
  // two rules (it would get the scripted server's 404, which a sender takes as permanent).
  // The server still calls the responder of a resetting rule (its answer is dropped): `down_`
  // keeps such requests out of the state.
  if (down) {
    down_.store(true);
    rule_.closeConnection();
  } else {
    rule_.respond([this](const RecordedRequest& request) { return answer(request); });
    down_.store(false);
  }
}

void FakeWebhookReceiver::setSecrets(std::vector<std::string> secrets) {
  std::lock_guard lock(mutex_);
  secrets_ = std::move(secrets);
}

std::vector<sdk::testing::RecordedRequest> FakeWebhookReceiver::requests() const {
  return server_.requests();
}

std::size_t FakeWebhookReceiver::requestCount() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t FakeWebhookReceiver::answeredWith(int status) const {
  std::lock_guard lock(mutex_);
  const auto it = statuses_.find(status);
  return it == statuses_.end() ? 0 : it->second;
}

std::size_t FakeWebhookReceiver::eventCount() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

std::size_t FakeWebhookReceiver::duplicateCount() const {
  std::lock_guard lock(mutex_);
  return duplicates_;
}

std::vector<WebhookEvent> FakeWebhookReceiver::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

std::optional<WebhookEvent> FakeWebhookReceiver::event(std::string_view message_id) const {
  std::lock_guard lock(mutex_);
  const auto it = index_.find(std::string(message_id));
  if (it == index_.end()) {
    return std::nullopt;
  }
  return events_[it->second];
}

bool FakeWebhookReceiver::waitForEvents(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return events_changed_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
}

void FakeWebhookReceiver::clear() {
  server_.clearRequests();
  std::lock_guard lock(mutex_);
  events_.clear();
  index_.clear();
  duplicates_ = 0;
  requests_ = 0;
  statuses_.clear();
}

std::int64_t FakeWebhookReceiver::now() const {
  if (options_.now_unix_seconds) {
    return options_.now_unix_seconds();
  }
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

sdk::HttpResponse FakeWebhookReceiver::reply(int status, std::string body) {
  std::lock_guard lock(mutex_);
  ++requests_;
  ++statuses_[status];
  return sdk::HttpResponse::json(status, std::move(body));
}

sdk::HttpResponse FakeWebhookReceiver::answer(const RecordedRequest& request) {
  if (!options_.record_requests) {
    server_.clearRequests();
  }
  if (down_.load()) {
    return sdk::HttpResponse{503, {}, {}};  // never sent: the connection is reset
  }
  std::vector<std::string> secrets;
  {
    std::lock_guard lock(mutex_);
    if (!failures_.empty()) {
      auto& failure = failures_.front();
      sdk::HttpResponse response = failure.response;
      if (--failure.remaining == 0) {
        failures_.pop_front();
      }
      ++requests_;
      ++statuses_[response.status];
      return response;
    }
    secrets = secrets_;
  }
  if (request.path != options_.path) {
    return reply(404, errorBody("no webhook at " + request.path));
  }
  if (request.method != "POST") {
    auto response = reply(405, errorBody("webhooks are POSTed"));
    response.headers.set("Allow", "POST");
    return response;
  }
  if (!request.headers.get("Content-Type").starts_with("application/json")) {
    return reply(415, errorBody("Content-Type must be application/json"));
  }

  if (!secrets.empty()) {
    const std::string_view header = request.headers.get(sdk::kWebhookSignatureHeader);
    const std::int64_t now_s = now();
    std::optional<sdk::Status> refusal;
    bool verified = false;
    for (const auto& secret : secrets) {
      auto status =
          sdk::verifyWebhookSignature(header, secret, request.body, now_s, options_.tolerance);
      if (status.ok()) {
        verified = true;
        break;
      }
      // A stale timestamp (InvalidArgument) means some secret matched: that verdict wins.
      if (!refusal || status.error().code == sdk::ErrorCode::InvalidArgument) {
        refusal = std::move(status);
      }
    }
    if (!verified) {
      const bool stale = refusal->error().code == sdk::ErrorCode::InvalidArgument;
      return reply(stale ? 400 : 401, errorBody(refusal->message()));
    }
  }

  std::vector<BatchEvent> batch;
  std::vector<std::string> owned;  // texts of the slow path
  batch.reserve(request.body.size() / 256 + 1);
  if (!scanBatch(request.body, batch)) {
    if (auto problem = parseBatch(request.body, batch, owned)) {
      return reply(400, errorBody(*problem));
    }
  }
  if (const auto* size = request.headers.find("X-Junction-Batch-Size")) {
    std::size_t declared = 0;
    const auto [end, ec] = std::from_chars(size->data(), size->data() + size->size(), declared);
    if (ec != std::errc() || end != size->data() + size->size() || declared != batch.size()) {
      return reply(400, errorBody("X-Junction-Batch-Size is " + *size + " but the batch has " +
                                  std::to_string(batch.size()) + " events"));
    }
  }

  json::array failed;
  std::size_t accepted = 0;
  std::size_t duplicates = 0;
  {
    std::lock_guard lock(mutex_);
    for (auto& event : batch) {
      if (!rejections_.empty()) {
        if (auto it = rejections_.find(event.message_id); it != rejections_.end()) {
          failed.push_back(json::object{{"messageId", event.message_id},
                                        {"error", it->second.error},
                                        {"retry", it->second.retry}});
          rejections_.erase(it);
          continue;
        }
      }
      ++accepted;
      auto [it, inserted] = index_.try_emplace(event.message_id, events_.size());
      if (inserted) {
        events_.push_back({std::move(event.message_id),
                           options_.keep_event_json ? std::string(event.text) : std::string(), 1});
      } else {
        ++events_[it->second].deliveries;
        ++duplicates;
      }
    }
    duplicates_ += duplicates;
  }
  events_changed_.notify_all();
  json::object answer_body{{"accepted", accepted}, {"duplicates", duplicates}};
  if (!failed.empty()) {
    answer_body["failed"] = std::move(failed);
  }
  return reply(200, json::serialize(answer_body));
}

}  // namespace junction::tests::fakes
