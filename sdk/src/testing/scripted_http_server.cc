#include "junction/sdk/testing/scripted_http_server.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <map>
#include <optional>
#include <regex>
#include <thread>

namespace junction::sdk::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxRequestBodyBytes = 64 * 1024 * 1024;
constexpr std::chrono::seconds kIdleTimeout{60};
// After a rawReply, how long the server waits for the client to close before closing itself.
constexpr std::chrono::seconds kRawDrainTimeout{5};

template <typename S>
std::string str(const S& s) {
  return std::string(s.data(), s.size());
}

}  // namespace

struct ScriptedHttpServer::Rule {
  std::string method;
  std::string pattern;
  PathMatch match = PathMatch::Exact;
  std::optional<std::regex> regex;

  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::function<HttpResponse(const RecordedRequest&)> responder;
  std::chrono::milliseconds delay{0};
  bool close = false;
  std::optional<std::string> raw;  // rawReply: written as is instead of a response
  std::size_t limit = 0;  // 0 = unlimited
  std::size_t hits = 0;

  bool matches(const RecordedRequest& request) const {
    if (method != "*" && method != request.method) {
      return false;
    }
    switch (match) {
      case PathMatch::Exact:
        return request.path == pattern;
      case PathMatch::Prefix:
        return request.path.starts_with(pattern);
      case PathMatch::Regex:
        return std::regex_match(request.path, *regex);
    }
    return false;
  }
};

struct ScriptedHttpServer::Action {
  HttpResponse response;
  std::chrono::milliseconds delay{0};
  bool close = false;
  std::optional<std::string> raw;
};

// Asio state. `stopping` and `live` are touched only on the I/O thread.
struct ScriptedHttpServer::Io {
  struct Session {
    beast::tcp_stream* stream;
    asio::steady_timer* timer;
  };

  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::atomic<std::uint64_t> connections{0};
  bool stopping = false;
  std::map<std::uint64_t, Session> live;
  std::thread thread;

  asio::awaitable<void> acceptLoop(ScriptedHttpServer* server) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
      if (stopping || !acceptor.is_open()) {
        co_return;
      }
      if (ec) {
        continue;
      }
      const std::uint64_t id = ++connections;
      asio::co_spawn(ioc, session(server, std::move(socket), id), asio::detached);
    }
  }

  asio::awaitable<void> session(ScriptedHttpServer* server, tcp::socket socket, std::uint64_t id) {
    beast::tcp_stream stream(std::move(socket));
    asio::steady_timer timer(ioc);
    live.emplace(id, Session{&stream, &timer});
    struct Unregister {
      Io* io;
      std::uint64_t id;
      ~Unregister() { io->live.erase(id); }
    } unregister{this, id};

    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxRequestBodyBytes);
      stream.expires_after(kIdleTimeout);
      auto [read_ec, read_n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
      if (read_ec || stopping) {
        co_return;
      }
      auto& req = parser.get();
      RecordedRequest record;
      record.method = str(req.method_string());
      record.target = str(req.target());
      const auto question = record.target.find('?');
      record.path = record.target.substr(0, question);
      if (question != std::string::npos) {
        record.query = record.target.substr(question + 1);
      }
      for (const auto& field : req) {
        record.headers.add(str(field.name_string()), str(field.value()));
      }
      record.body = std::move(req.body());
      record.connection_id = id;
      const bool keep_alive = req.keep_alive();
      const unsigned version = req.version();

      Action action = server->handle(std::move(record));

      if (action.delay.count() > 0) {
        timer.expires_after(action.delay);
        auto [timer_ec] = co_await timer.async_wait(kUseTuple);
        if (timer_ec || stopping) {
          co_return;
        }
      }
      if (action.close) {
        // SO_LINGER 0: close() sends RST, which the client sees as a reset connection.
        boost::system::error_code ignored;
        stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
        stream.socket().close(ignored);
        co_return;
      }
      if (action.raw) {
        // The bytes as scripted, then FIN. The client's request has been read whole, so the
        // close is not turned into an RST by unread data; draining until the client closes
        // (or a short while) keeps the bytes from racing a reset.
        stream.expires_after(kIdleTimeout);
        auto [raw_ec, raw_n] =
            co_await asio::async_write(stream, asio::buffer(*action.raw), kUseTuple);
        if (raw_ec || stopping) {
          co_return;
        }
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.expires_after(kRawDrainTimeout);
        char sink[512];
        for (;;) {
          auto [drain_ec, drain_n] = co_await stream.async_read_some(asio::buffer(sink), kUseTuple);
          if (drain_ec || stopping) {
            co_return;
          }
        }
      }

      http::response<http::string_body> res;
      res.version(version);
      res.result(static_cast<unsigned>(action.response.status));
      res.set(http::field::server, "junction-scripted-http-server");
      bool has_content_type = false;
      for (const auto& [name, value] : action.response.headers.entries) {
        has_content_type = has_content_type || beast::iequals(name, "Content-Type");
        res.insert(name, value);
      }
      if (!has_content_type && !action.response.body.empty()) {
        res.set(http::field::content_type, "application/json");
      }
      res.body() = std::move(action.response.body);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      stream.expires_after(kIdleTimeout);
      auto [write_ec, write_n] = co_await http::async_write(stream, res, kUseTuple);
      if (write_ec || stopping) {
        co_return;
      }
      if (!keep_alive) {
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }
};

ScriptedHttpServer::RuleBuilder& ScriptedHttpServer::RuleBuilder::reply(
    int status, std::string body,
    std::initializer_list<std::pair<std::string, std::string>> headers) {
  std::lock_guard lock(server_->mutex_);
  rule_->status = status;
  rule_->body = std::move(body);
  rule_->headers.assign(headers.begin(), headers.end());
  rule_->responder = nullptr;
  rule_->close = false;
  rule_->raw.reset();
  return *this;
}

ScriptedHttpServer::RuleBuilder& ScriptedHttpServer::RuleBuilder::respond(
    std::function<HttpResponse(const RecordedRequest&)> responder) {
  std::lock_guard lock(server_->mutex_);
  rule_->responder = std::move(responder);
  rule_->close = false;
  rule_->raw.reset();
  return *this;
}

ScriptedHttpServer::RuleBuilder& ScriptedHttpServer::RuleBuilder::times(std::size_t n) {
  std::lock_guard lock(server_->mutex_);
  rule_->limit = n;
  return *this;
}

ScriptedHttpServer::RuleBuilder& ScriptedHttpServer::RuleBuilder::delay(
    std::chrono::milliseconds d) {
  std::lock_guard lock(server_->mutex_);
  rule_->delay = d;
  return *this;
}

ScriptedHttpServer::RuleBuilder& ScriptedHttpServer::RuleBuilder::closeConnection() {
  std::lock_guard lock(server_->mutex_);
  rule_->close = true;
  rule_->raw.reset();
  return *this;
}

ScriptedHttpServer::RuleBuilder& ScriptedHttpServer::RuleBuilder::rawReply(std::string bytes) {
  std::lock_guard lock(server_->mutex_);
  rule_->raw = std::move(bytes);
  rule_->responder = nullptr;
  rule_->close = false;
  return *this;
}

std::size_t ScriptedHttpServer::RuleBuilder::hits() const {
  std::lock_guard lock(server_->mutex_);
  return rule_->hits;
}

ScriptedHttpServer::ScriptedHttpServer() : io_(std::make_unique<Io>()) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  io_->acceptor.open(endpoint.protocol());
  io_->acceptor.set_option(asio::socket_base::reuse_address(true));
  io_->acceptor.bind(endpoint);
  io_->acceptor.listen(asio::socket_base::max_listen_connections);
  port_ = io_->acceptor.local_endpoint().port();
  asio::co_spawn(io_->ioc, io_->acceptLoop(this), asio::detached);
  io_->thread = std::thread([io = io_.get()] { io->ioc.run(); });
}

ScriptedHttpServer::~ScriptedHttpServer() { stop(); }

void ScriptedHttpServer::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  if (!io_->thread.joinable()) {
    return;
  }
  // Close everything from the I/O thread; every coroutine then finishes with an error and
  // run() returns for lack of work.
  asio::post(io_->ioc, [io = io_.get()] {
    io->stopping = true;
    boost::system::error_code ignored;
    io->acceptor.close(ignored);
    for (auto& [id, session] : io->live) {
      session.timer->cancel();
      session.stream->socket().close(ignored);
    }
  });
  io_->thread.join();
}

ScriptedHttpServer::RuleBuilder ScriptedHttpServer::when(std::string method, std::string path,
                                                         PathMatch match) {
  auto rule = std::make_shared<Rule>();
  rule->method = std::move(method);
  rule->match = match;
  if (match == PathMatch::Regex) {
    rule->regex.emplace(path, std::regex::ECMAScript);
  }
  rule->pattern = std::move(path);
  {
    std::lock_guard lock(mutex_);
    rules_.push_back(rule);
  }
  return RuleBuilder(*this, std::move(rule));
}

void ScriptedHttpServer::clearRules() {
  std::lock_guard lock(mutex_);
  rules_.clear();
}

std::vector<RecordedRequest> ScriptedHttpServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

void ScriptedHttpServer::clearRequests() {
  std::lock_guard lock(mutex_);
  requests_.clear();
}

bool ScriptedHttpServer::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return requests_changed_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

std::uint64_t ScriptedHttpServer::connectionCount() const { return io_->connections.load(); }

std::string ScriptedHttpServer::baseUrl() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

ScriptedHttpServer::Action ScriptedHttpServer::handle(RecordedRequest request) {
  Action action;
  std::function<HttpResponse(const RecordedRequest&)> responder;
  {
    std::lock_guard lock(mutex_);
    request.index = requests_.size();
    requests_.push_back(request);
    std::shared_ptr<Rule> chosen;
    bool matching_failed = false;
    try {
      for (const auto& rule : rules_) {
        if ((rule->limit == 0 || rule->hits < rule->limit) && rule->matches(request)) {
          chosen = rule;
          break;
        }
      }
    } catch (const std::exception& e) {  // std::regex_match can throw on pathological input
      action.response = HttpResponse{500, {}, std::string("rule matching failed: ") + e.what()};
      matching_failed = true;
    }
    if (chosen) {
      ++chosen->hits;
      action.delay = chosen->delay;
      action.close = chosen->close;
      action.raw = chosen->raw;
      responder = chosen->responder;
      action.response.status = chosen->status;
      action.response.body = chosen->body;
      for (const auto& [name, value] : chosen->headers) {
        action.response.headers.add(name, value);
      }
    } else if (!matching_failed) {
      action.response.status = 404;
      action.response.body =
          R"({"error":"no scripted rule for )" + request.method + " " + request.path + R"("})";
    }
  }
  requests_changed_.notify_all();
  if (responder) {
    try {
      action.response = responder(request);
    } catch (const std::exception& e) {
      action.response = HttpResponse{500, {}, std::string("respond callback threw: ") + e.what()};
    }
  }
  return action;
}

}  // namespace junction::sdk::testing
