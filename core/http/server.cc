#include "core/http/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <atomic>
#include <optional>
#include <thread>

namespace junction::core::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Bodies up to this size are read with the buffer as it is; larger ones get room to be read in
// reads of up to kReadAheadBytes.
constexpr std::size_t kSmallBody = 16 * 1024;
constexpr std::size_t kReadAheadBytes = 256 * 1024;

// One connection: a plain TCP stream, or a TLS stream that owns the TCP stream. `lowest()` is
// the TCP layer either way (timeouts, cancel, close).
struct Server::Session {
  Session(tcp::socket socket, asio::ssl::context* tls_context) {
    if (tls_context != nullptr) {
      tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(socket), *tls_context);
    } else {
      plain.emplace(std::move(socket));
    }
  }
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  std::optional<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::atomic<bool> idle{true};
  std::string client;    // the peer's address
  bool reserve = false;  // accepted past max_connections: health checks only
};

namespace {

// Where a handler's answer goes. An answer given during dispatch, on the session's own thread
// (most handlers), is stored at once. A later one, or one from another thread, is posted to the
// connection's strand, where the session waits for it on a timer that the answer cancels: two
// trips through the io_context's queue, behind every other connection's ready work.
struct PendingResponse {
  explicit PendingResponse(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  std::optional<sdk::HttpResponse> response;
  bool abandoned = false;  // the session gave up (timeout); late answers are dropped
  // The thread running the handler synchronously; none once dispatch has returned. Only that
  // thread can see its own id here, so only a synchronous answer takes the short way.
  std::atomic<std::thread::id> dispatching{};
};

class StrandSink final : public sdk::HttpResponseSink {
 public:
  StrandSink(asio::any_io_executor strand, std::shared_ptr<PendingResponse> pending)
      : strand_(std::move(strand)), pending_(std::move(pending)) {}

  void send(sdk::HttpResponse response) noexcept override {
    if (pending_->dispatching.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
      pending_->response = std::move(response);  // the session reads it when dispatch returns
      return;
    }
    try {
      asio::post(strand_, [pending = pending_, r = std::move(response)]() mutable {
        if (!pending->abandoned && !pending->response) {
          pending->response = std::move(r);
          pending->timer.cancel();
        }
      });
    } catch (...) {
      // The io_context is gone: the daemon is exiting and the connection with it.
    }
  }

 private:
  asio::any_io_executor strand_;
  std::shared_ptr<PendingResponse> pending_;
};

sdk::HttpRequest toSdkRequest(bhttp::request<bhttp::string_body>&& req, const std::string& remote) {
  sdk::HttpRequest out;
  out.method = std::string(req.method_string());
  std::string_view target = req.target();
  auto q = target.find('?');
  out.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    out.query = std::string(target.substr(q + 1));
  }
  for (const auto& field : req) {
    out.headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = std::move(req.body());
  out.remote_address = remote;
  return out;
}

bhttp::response<bhttp::string_body> toBeastResponse(sdk::HttpResponse&& r, unsigned version,
                                                    bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
  res.set(bhttp::field::server, "junction");
  for (auto& [k, v] : r.headers.entries) {
    res.insert(k, v);
  }
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

bhttp::response<bhttp::string_body> errorResponse(int status, std::string_view message,
                                                  unsigned version) {
  sdk::HttpResponse r = sdk::HttpResponse::json(
      status, std::string(R"({"success":false,"error":")") + std::string(message) + "\"}");
  return toBeastResponse(std::move(r), version, false);
}

sdk::Histogram& stageHistogram(sdk::Metrics& metrics, std::string_view stage) {
  return metrics.histogram(
      "junction_http_request_stage_seconds",
      "Where requests' time goes: receive (head parsed to last body byte, the client's pace "
      "included), handle (the route's handler), answer (handler returned to the answer being "
      "ready: for the tracking API, the wait until the events are durable), write (sending it)",
      {}, {{"stage", std::string(stage)}});
}

double secondsBetween(std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Server::Server(std::vector<asio::io_context*> contexts, const Router& router,
               ServerOptions options, sdk::Logger& log, sdk::Metrics& metrics)
    : contexts_(std::move(contexts)),
      router_(router),
      options_(std::move(options)),
      log_(log),
      metrics_(metrics),
      requests_total_(metrics.counter("junction_http_requests_total",
                                      "HTTP requests answered by the server")),
      rejected_connections_(metrics.counter(
          "junction_http_rejected_connections_total",
          "Connections closed at once because server.max_connections (and the health-check "
          "reserve) was reached")),
      rejected_client_connections_(metrics.counter(
          "junction_http_rejected_client_connections_total",
          "Connections closed at once because their client address held "
          "server.max_connections_per_client")),
      request_seconds_(metrics.histogram("junction_http_request_duration_seconds",
                                         "Time from a request's last byte to its answer")),
      stage_seconds_{stageHistogram(metrics, "receive"), stageHistogram(metrics, "handle"),
                     stageHistogram(metrics, "answer"), stageHistogram(metrics, "write")},
      acceptor_(asio::make_strand(*contexts_.at(0))) {}

Server::~Server() = default;

sdk::Counter& Server::responsesBy(const std::string& route, unsigned status) {
  // Routes are patterns and statuses a few codes: the series stay few.
  const std::string& label = route.empty() ? std::string("unmatched") : route;
  std::string key = label + " " + std::to_string(status);
  std::lock_guard lock(responses_mutex_);
  auto it = responses_.find(key);
  if (it == responses_.end()) {
    sdk::Counter& c = metrics_.counter(
        "junction_http_responses_total",
        "HTTP answers by route (its pattern; unmatched for 404/405 without one) and status code",
        {{"route", label}, {"status", std::to_string(status)}});
    it = responses_.emplace(std::move(key), &c).first;
  }
  return *it->second;
}

sdk::Status Server::listen() {
  if (auto s = bind(); !s.ok()) {
    return s;
  }
  startAccepting();
  return {};
}

void Server::startAccepting() {
  asio::co_spawn(acceptor_.get_executor(), acceptLoop(), asio::detached);
}

sdk::Status Server::bind() {
  boost::system::error_code ec;
  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "server.tls_cert_file and server.tls_key_file go together");
  }
  if (!options_.tls_cert_file.empty()) {
    auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    tls->use_certificate_chain_file(options_.tls_cert_file, ec);
    if (ec) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, "server.tls_cert_file: cannot load '" +
                                                                 options_.tls_cert_file +
                                                                 "': " + ec.message());
    }
    tls->use_private_key_file(options_.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, "server.tls_key_file: cannot load '" +
                                                                 options_.tls_key_file +
                                                                 "': " + ec.message());
    }
    tls_ = std::move(tls);
  }
  auto address = asio::ip::make_address(options_.host == "localhost" ? "127.0.0.1" : options_.host, ec);
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "server.listen: '" + options_.host + "' is not an IP address");
  }
  tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    acceptor_.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot listen on " + options_.host + ":" +
                                                           std::to_string(options_.port) + ": " +
                                                           ec.message());
  }
  bound_port_ = acceptor_.local_endpoint().port();
  return {};
}

asio::awaitable<void> Server::acceptLoop() {
  for (;;) {
    asio::io_context& context = *contexts_[next_context_];
    next_context_ = (next_context_ + 1) % contexts_.size();
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(context), kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
        co_return;
      }
      log_.warn("accept failed", {{"error", ec.message()}});
      continue;
    }
    const std::size_t open = connections_.load();
    if (open >= options_.max_connections + options_.health_reserve) {
      rejected_connections_.inc();
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    boost::system::error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    std::string client = peer_ec ? std::string() : peer.address().to_string();
    {
      const std::size_t cap = options_.max_connections_per_client != 0
                                  ? options_.max_connections_per_client
                                  : std::max<std::size_t>(1, options_.max_connections / 2);
      std::lock_guard lock(clients_mutex_);
      std::size_t& held = clients_[client];
      if (held >= cap) {
        rejected_client_connections_.inc();
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      ++held;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto session = std::make_shared<Session>(std::move(socket), tls_.get());
    session->client = std::move(client);
    session->reserve = open >= options_.max_connections;
    {
      std::lock_guard lock(sessions_mutex_);
      sessions_.insert(session);
    }
    connections_.fetch_add(1);
    auto executor = session->lowest().get_executor();
    asio::co_spawn(executor, serve(session), [this, session](std::exception_ptr) {
      connections_.fetch_sub(1);
      {
        std::lock_guard lock(clients_mutex_);
        if (auto it = clients_.find(session->client); it != clients_.end() && --it->second == 0) {
          clients_.erase(it);
        }
      }
      std::lock_guard lock(sessions_mutex_);
      sessions_.erase(session);
    });
  }
}

asio::awaitable<void> Server::serve(std::shared_ptr<Session> session) {
  beast::tcp_stream& tcp_stream = session->lowest();
  boost::system::error_code ec;
  std::string remote;
  {
    auto ep = tcp_stream.socket().remote_endpoint(ec);
    remote = ec ? "" : ep.address().to_string();
  }
  if (session->tls) {
    tcp_stream.expires_after(options_.request_timeout);
    auto [handshake_ec] =
        co_await session->tls->async_handshake(asio::ssl::stream_base::server, kNoThrow);
    if (!handshake_ec) {
      co_await serveRequests(*session, *session->tls, remote);
      // close_notify; a client that already went away makes this fail fast.
      tcp_stream.expires_after(std::chrono::seconds(2));
      auto [shutdown_ec] = co_await session->tls->async_shutdown(kNoThrow);
      (void)shutdown_ec;
    }
    tcp_stream.close();
    co_return;
  }
  co_await serveRequests(*session, *session->plain, remote);
  tcp_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  tcp_stream.close();
}

template <typename Stream>
asio::awaitable<void> Server::serveRequests(Session& session, Stream& stream,
                                            const std::string& remote) {
  beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;
  for (;;) {
    if (draining_.load()) {
      break;
    }
    session.idle.store(true);
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    // No body limit while reading the head: Beast would refuse a large Content-Length there
    // with a generic error (answered 400). The route's limit is set below and answered 413.
    parser.body_limit(boost::none);
    tcp_stream.expires_after(options_.idle_timeout);
    auto [read_ec, read_n] = co_await bhttp::async_read_header(stream, buffer, parser, kNoThrow);
    session.idle.store(false);
    if (read_ec) {
      if (read_ec == bhttp::error::header_limit) {
        auto res = errorResponse(431, "request header too large", 11);
        co_await bhttp::async_write(stream, res, kNoThrow);
      } else if (read_ec != bhttp::error::end_of_stream && read_ec != asio::error::operation_aborted &&
                 read_ec != beast::error::timeout && read_ec != asio::error::eof &&
                 read_ec != asio::error::connection_reset &&
                 read_ec != asio::ssl::error::stream_truncated) {
        auto res = errorResponse(400, "malformed HTTP request", 11);
        co_await bhttp::async_write(stream, res, kNoThrow);
      }
      break;
    }
    auto& header = parser.get();
    const unsigned version = header.version();
    std::string_view target = header.target();
    std::string_view path = target.substr(0, target.find('?'));
    if (session.reserve && !(header.method() == bhttp::verb::get &&
                             (path == "/healthz" || path == "/readyz"))) {
      auto res = errorResponse(503,
                               "the server is at server.max_connections: this connection may only "
                               "ask GET /healthz and /readyz",
                               version);
      res.set(bhttp::field::retry_after, "1");
      co_await bhttp::async_write(stream, res, kNoThrow);
      break;
    }
    Router::Match route = router_.match(header.method_string(), path);
    std::size_t limit = options_.max_body_bytes;
    if (route.max_body_bytes != 0 && route.max_body_bytes < limit) {
      limit = route.max_body_bytes;
    }
    parser.body_limit(limit);
    if (auto length = parser.content_length(); length && *length > limit) {
      responsesBy(route.pattern, 413).inc();
      auto res = errorResponse(413, "request body larger than " + std::to_string(limit) + " bytes",
                               version);
      co_await bhttp::async_write(stream, res, kNoThrow);
      break;
    }
    if (bhttp::token_list{header[bhttp::field::expect]}.exists("100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, version};
      tcp_stream.expires_after(options_.request_timeout);
      auto [cont_ec, cont_n] = co_await bhttp::async_write(stream, cont, kNoThrow);
      if (cont_ec) {
        break;
      }
    }
    tcp_stream.expires_after(options_.request_timeout);
    const auto head_at = std::chrono::steady_clock::now();
    // Beast reads into the buffer's spare capacity (at least 512 bytes): left small, a 30 KB
    // batch took ~60 recvmsg calls, each with its reactor and timer round trip. Room for the
    // body first means a few large reads; the room is given back after the request.
    if (auto length = parser.content_length(); length && *length > kSmallBody) {
      buffer.reserve(buffer.size() + static_cast<std::size_t>(std::min<std::uint64_t>(
                                         *length, kReadAheadBytes)));
    }
    auto [body_ec, body_n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
    if (body_ec) {
      if (body_ec == bhttp::error::body_limit) {
        auto res = errorResponse(413, "request body larger than " + std::to_string(limit) + " bytes",
                                 version);
        co_await bhttp::async_write(stream, res, kNoThrow);
      } else if (body_ec != beast::error::timeout && body_ec != asio::error::eof &&
                 body_ec != asio::error::connection_reset) {
        auto res = errorResponse(400, "malformed HTTP request", version);
        co_await bhttp::async_write(stream, res, kNoThrow);
      }
      break;
    }
    const auto started = std::chrono::steady_clock::now();
    stage_seconds_.receive.observe(secondsBetween(head_at, started));
    bhttp::request<bhttp::string_body> req = parser.release();
    if (buffer.capacity() > kSmallBody) {
      buffer.shrink_to_fit();  // an idle keep-alive connection holds no large buffer
    }
    const bool keep_alive = req.keep_alive();

    if (route.stream) {
      sdk::HttpRequest sdk_request = toSdkRequest(std::move(req), remote);
      sdk_request.params = std::move(route.params);
      StreamStart start = (*route.stream)(std::move(sdk_request));
      if (auto* source = std::get_if<std::shared_ptr<StreamSource>>(&start)) {
        requests_total_.inc();
        responsesBy(route.pattern, 200).inc();
        co_await streamTo(stream, **source, version);
        break;  // a stream ends with its connection
      }
      auto res = toBeastResponse(std::move(std::get<sdk::HttpResponse>(start)), version,
                                 keep_alive && !draining_.load());
      requests_total_.inc();
      responsesBy(route.pattern, res.result_int()).inc();
      tcp_stream.expires_after(options_.request_timeout);
      auto [write_ec, write_n] = co_await bhttp::async_write(stream, res, kNoThrow);
      if (write_ec || !res.keep_alive()) {
        break;
      }
      continue;
    }

    auto executor = co_await asio::this_coro::executor;
    auto pending = std::make_shared<PendingResponse>(executor);
    pending->timer.expires_after(options_.request_timeout);
    pending->dispatching.store(std::this_thread::get_id(), std::memory_order_relaxed);
    router_.dispatch(toSdkRequest(std::move(req), remote),
                     sdk::HttpResponder(std::make_shared<StrandSink>(executor, pending)));
    pending->dispatching.store(std::thread::id(), std::memory_order_relaxed);
    const auto handled = std::chrono::steady_clock::now();
    stage_seconds_.handle.observe(secondsBetween(started, handled));
    while (!pending->response) {
      auto [timer_ec] = co_await pending->timer.async_wait(kNoThrow);
      if (!timer_ec) {  // expired: the handler did not answer in time
        pending->abandoned = true;
        break;
      }
    }
    const auto answered = std::chrono::steady_clock::now();
    requests_total_.inc();
    request_seconds_.observe(secondsBetween(started, answered));
    stage_seconds_.answer.observe(secondsBetween(handled, answered));
    bool keep = keep_alive && !draining_.load();
    auto res = pending->response
                   ? toBeastResponse(std::move(*pending->response), version, keep)
                   : errorResponse(503, "timed out waiting for the answer", version);
    responsesBy(route.pattern, res.result_int()).inc();
    tcp_stream.expires_after(options_.request_timeout);
    auto [write_ec, write_n] = co_await bhttp::async_write(stream, res, kNoThrow);
    if (!write_ec) {
      stage_seconds_.write.observe(secondsBetween(answered, std::chrono::steady_clock::now()));
    }
    if (write_ec || !res.keep_alive()) {
      break;
    }
  }
}

// The head, then what the source has every kStreamPoll, a comment line after kStreamKeepAlive
// of silence (so a vanished client shows as a failed write), until a write fails or the server
// drains. The body is delimited by the connection's end (HTTP/1.1 without a length).
template <typename Stream>
asio::awaitable<void> Server::streamTo(Stream& stream, StreamSource& source, unsigned version) {
  constexpr auto kStreamPoll = std::chrono::milliseconds(100);
  constexpr auto kStreamKeepAlive = std::chrono::seconds(10);
  beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
  std::string head = std::string(version == 10 ? "HTTP/1.0" : "HTTP/1.1") +
                     " 200 OK\r\nServer: junction\r\nContent-Type: " + source.contentType() +
                     "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     "X-Accel-Buffering: no\r\nConnection: close\r\n\r\n: stream open\n\n";
  tcp_stream.expires_after(options_.request_timeout);
  auto [head_ec, head_n] = co_await asio::async_write(stream, asio::buffer(head), kNoThrow);
  if (head_ec) {
    co_return;
  }
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto last_write = std::chrono::steady_clock::now();
  while (!draining_.load()) {
    std::string text = source.take();
    const auto now = std::chrono::steady_clock::now();
    if (text.empty() && now - last_write >= kStreamKeepAlive) {
      text = ": keep-alive\n\n";
    }
    if (!text.empty()) {
      tcp_stream.expires_after(options_.request_timeout);
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(text), kNoThrow);
      if (ec) {
        co_return;
      }
      last_write = now;
    }
    timer.expires_after(kStreamPoll);
    co_await timer.async_wait(kNoThrow);
  }
}

void Server::drain() {
  draining_.store(true);
  asio::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
  std::lock_guard lock(sessions_mutex_);
  for (const auto& session : sessions_) {
    asio::post(session->lowest().get_executor(), [session] {
      if (session->idle.load()) {
        session->lowest().cancel();
      }
    });
  }
}

void Server::closeAll() {
  draining_.store(true);
  std::lock_guard lock(sessions_mutex_);
  for (const auto& session : sessions_) {
    asio::post(session->lowest().get_executor(), [session] {
      boost::system::error_code ec;
      session->lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
      session->lowest().cancel();
    });
  }
}

}  // namespace junction::core::http
