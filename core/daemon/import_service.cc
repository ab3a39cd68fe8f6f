#include "core/daemon/import_service.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <memory>

#include "core/http/admin_auth.h"
#include "junction/sdk/json.h"

namespace junction::core::daemon {

namespace json = boost::json;

namespace {

// `name=value` of a raw query string ("" when absent). Values here are ids and numbers: no
// percent-decoding needed.
std::string_view queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return v;
}

bool validImportId(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

ImportService::ImportService(ingest::Ingest& ingest, std::vector<std::string> sources,
                             const std::filesystem::path& progress_file,
                             boost::asio::io_context& work, sdk::Logger& log)
    : ingest_(ingest), sources_(std::move(sources)), records_(progress_file), work_(work), log_(log) {}

ImportService::Record ImportService::load(const std::string& key) {
  Record r;
  auto stored = records_.load(key);
  if (!stored || !stored->has_value()) {
    return r;
  }
  auto parsed = sdk::parseJson(**stored);
  if (!parsed || !parsed->is_object()) {
    return r;
  }
  const auto& o = parsed->get_object();
  auto field = [&o](std::string_view name) -> std::uint64_t {
    const auto* v = o.if_contains(name);
    return v != nullptr && v->is_number() ? v->to_number<std::uint64_t>() : 0;
  };
  r.offset = field("offset");
  r.line = field("line");
  r.accepted = field("accepted");
  r.rejected = field("rejected");
  r.suppressed = field("suppressed");
  return r;
}

namespace {

json::object toJson(std::uint64_t offset, std::uint64_t line, std::uint64_t accepted,
                    std::uint64_t rejected, std::uint64_t suppressed) {
  return json::object{{"offset", offset},     {"line", line},
                      {"accepted", accepted}, {"rejected", rejected},
                      {"suppressed", suppressed}};
}

}  // namespace

void ImportService::registerRoutes(http::Router& router, std::string admin_token) {
  auto token = std::make_shared<std::string>(std::move(admin_token));
  auto admitted = [this, token](auto handler) {
    return [this, token, handler](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
      if (auto refused = http::checkAdmin(request, *token)) {
        respond(std::move(*refused));
        return;
      }
      const std::string& source = request.params["source"];
      if (std::find(sources_.begin(), sources_.end(), source) == sources_.end()) {
        respond(http::jsonError(404, "no enabled source '" + source + "' in the configuration"));
        return;
      }
      if (!validImportId(queryValue(request.query, "import"))) {
        respond(http::jsonError(400, "`import` must be the import's id (hex, at most 64)"));
        return;
      }
      (this->*handler)(std::move(request), std::move(respond));
    };
  };
  (void)router.add("GET", "/admin/import/{source}", admitted(&ImportService::get));
  // A chunk is at most server.max_body_bytes (the CLI sizes its chunks from the same config).
  (void)router.add("POST", "/admin/import/{source}", admitted(&ImportService::post));
}

void ImportService::get(sdk::HttpRequest&& request, sdk::HttpResponder respond) {
  const std::string key = request.params["source"] + "." +
                          std::string(queryValue(request.query, "import"));
  std::lock_guard lock(mutex_);
  const Record r = load(key);
  respond(sdk::HttpResponse::json(
      200, json::serialize(toJson(r.offset, r.line, r.accepted, r.rejected, r.suppressed))));
}

void ImportService::post(sdk::HttpRequest&& request, sdk::HttpResponder respond) {
  const std::string source = request.params["source"];
  const std::string key = source + "." + std::string(queryValue(request.query, "import"));
  const auto from = number(queryValue(request.query, "from"));
  const auto to = number(queryValue(request.query, "to"));
  const auto line = number(queryValue(request.query, "line"));
  const auto rejected = number(queryValue(request.query, "rejected"));
  const bool restart = queryValue(request.query, "restart") == "1";
  if (!from || !to || !line || !rejected || *to < *from) {
    respond(http::jsonError(400, "`from`, `to`, `line` and `rejected` must be whole numbers, "
                                 "from <= to"));
    return;
  }
  // Every line is checked again: the admin API queues nothing that is not an event.
  std::vector<sdk::Event> events;
  events.reserve(static_cast<std::size_t>(std::count(request.body.begin(), request.body.end(), '\n')) + 1);
  // The chunk's trees from one arena, freed at once: most of this handler's time is the parse.
  auto arena = json::make_shared_resource<json::monotonic_resource>();
  std::string_view body = request.body;
  std::size_t index = 0;
  while (!body.empty()) {
    const auto nl = body.find('\n');
    std::string_view text = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    ++index;
    if (text.empty()) {
      continue;
    }
    auto parsed = sdk::parseJson(text, arena);
    if (!parsed || !parsed->is_object()) {
      respond(http::jsonError(400, "event " + std::to_string(index) + " of the chunk: " +
                                       (parsed ? "not a JSON object" : parsed.error().message)));
      return;
    }
    auto event = sdk::makeEvent(parsed->get_object(), source);
    if (!event) {
      respond(http::jsonError(400, "event " + std::to_string(index) + " of the chunk: " +
                                       event.error().message));
      return;
    }
    // Keep the text as the CLI enriched it (Event's body is the received JSON).
    sdk::EventHeader header = event->header();
    events.emplace_back(std::move(header), std::string(text));
  }

  Record current;
  {
    std::lock_guard lock(mutex_);
    current = load(key);
    if (restart && *from == 0) {
      current = Record{};
    }
    if (*from != current.offset || in_flight_.count(key) != 0) {
      auto r = sdk::HttpResponse::json(
          409, json::serialize(json::object{
                   {"success", false},
                   {"error", in_flight_.count(key) != 0
                                 ? "another chunk of this import is being written"
                                 : "the import stands at byte " + std::to_string(current.offset) +
                                       ", not " + std::to_string(*from)},
                   {"offset", current.offset},
                   {"line", current.line}}));
      respond(std::move(r));
      return;
    }
    in_flight_.insert(key);
  }

  auto responder = std::make_shared<sdk::HttpResponder>(std::move(respond));
  auto finish = [this, key, current, to = *to, line = *line, rejected = *rejected,
                 responder](std::size_t accepted, std::size_t suppressed) {
    // Off the queue's thread: the record is fsynced.
    boost::asio::post(work_, [this, key, current, to, line, rejected, responder, accepted,
                              suppressed] {
      const auto record = toJson(to, line, current.accepted + accepted, current.rejected + rejected,
                                 current.suppressed + suppressed);
      sdk::Status stored;
      {
        std::lock_guard lock(mutex_);
        stored = records_.store(key, json::serialize(record));
        in_flight_.erase(key);
      }
      if (!stored.ok()) {
        log_.error("import progress not recorded", {{"import", key}, {"error", stored.message()}});
        (*responder)(http::jsonError(500, "events queued but progress not recorded: " +
                                              stored.message()));
        return;
      }
      (*responder)(sdk::HttpResponse::json(200, json::serialize(record)));
    });
  };
  if (events.empty()) {  // every line of the chunk was rejected by the CLI
    finish(0, 0);
    return;
  }
  ingest_.emit(source, std::move(events), [this, key, responder, finish](sdk::EmitResult result) {
    if (result.status.ok()) {
      finish(result.accepted, result.suppressed);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      in_flight_.erase(key);
    }
    (*responder)(sdk::refusedEmitResponse(result));
  });
}

}  // namespace junction::core::daemon
