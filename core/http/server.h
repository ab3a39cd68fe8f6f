#pragma once

// The daemon's HTTP/1.1 server: Boost.Beast over Asio, one coroutine per connection on its own
// strand, keep-alive, explicit timeouts and body limits, `Expect: 100-continue`, and graceful
// drain. It only moves bytes: what to answer is the Router's business.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <unordered_map>
#include <vector>
#include <string>

#include "core/http/router.h"
#include "junction/sdk/log.h"
#include "junction/sdk/metrics.h"

namespace boost::asio::ssl {
class context;
}

namespace junction::core::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 = an ephemeral port (tests)
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds request_timeout{30'000};  // read a request / produce its answer
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive wait for the next request
  std::size_t max_connections = 10'000;
  // Connections accepted past max_connections that may only ask GET /healthz and /readyz (any
  // other request is answered 503 and the connection closed): a flood of clients cannot blind
  // the orchestrator's health checks.
  std::size_t health_reserve = 16;
  // Most connections one client address may hold; 0 = half of max_connections (at least 1). One
  // misbehaving client cannot take every slot. Behind a load balancer every client is the
  // balancer: raise it there.
  std::size_t max_connections_per_client = 0;
  // TLS (HTTPS) on the listener when both are set: PEM certificate chain and private key.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Runs on the io_contexts it is given: it accepts on the first, and spreads connections over
// all of them in turn (the daemon runs one per I/O thread; a connection then stays on one
// thread). `listen`, `stop` and `drain` are thread-safe. The Server must outlive the
// io_contexts' run.
class Server {
 public:
  Server(std::vector<boost::asio::io_context*> contexts, const Router& router,
         ServerOptions options, sdk::Logger& log, sdk::Metrics& metrics);
  Server(boost::asio::io_context& io, const Router& router, ServerOptions options,
         sdk::Logger& log, sdk::Metrics& metrics)
      : Server(std::vector<boost::asio::io_context*>{&io}, router, std::move(options), log,
               metrics) {}
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the TLS certificate and key (when configured), binds and starts accepting. Fails with
  // the OS's reason (e.g. address in use) or OpenSSL's (unreadable or mismatched cert/key).
  sdk::Status listen();
  // listen() in two steps: `bind` takes the address (and loads TLS) without accepting, so a
  // daemon can fail on a port in use before it touches its state; connections wait in the
  // kernel's backlog until `startAccepting`.
  sdk::Status bind();
  void startAccepting();
  std::uint16_t port() const noexcept { return bound_port_; }

  // Stops accepting; closes idle keep-alive connections; busy ones close after their response.
  void drain();
  // Closes every connection now.
  void closeAll();
  std::size_t connections() const noexcept { return connections_.load(); }

  struct Session;  // one connection (server.cc)

 private:
  boost::asio::awaitable<void> acceptLoop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Session> session);
  // The request/response loop, the same over TCP and over TLS.
  template <typename Stream>
  boost::asio::awaitable<void> serveRequests(Session& session, Stream& stream,
                                             const std::string& remote);
  template <typename Stream>
  boost::asio::awaitable<void> streamTo(Stream& stream, StreamSource& source, unsigned version);

  const std::vector<boost::asio::io_context*> contexts_;
  std::size_t next_context_ = 0;  // where the next connection goes; the accept loop's
  const Router& router_;
  ServerOptions options_;
  sdk::Logger& log_;
  // junction_http_responses_total{route, status}: the series met so far, by "route status".
  sdk::Counter& responsesBy(const std::string& route, unsigned status);

  sdk::Metrics& metrics_;
  std::mutex responses_mutex_;
  std::unordered_map<std::string, sdk::Counter*> responses_;
  sdk::Counter& requests_total_;
  sdk::Counter& rejected_connections_;
  sdk::Counter& rejected_client_connections_;
  std::mutex clients_mutex_;
  std::unordered_map<std::string, std::size_t> clients_;  // address -> open connections
  sdk::Histogram& request_seconds_;
  // junction_http_request_stage_seconds{stage}: where a request's time goes.
  struct Stages {
    sdk::Histogram& receive;  // head parsed to last body byte (includes the client's pace)
    sdk::Histogram& handle;   // the route's handler call
    sdk::Histogram& answer;   // handler returned to the answer on the connection's strand
    sdk::Histogram& write;    // sending the answer
  } stage_seconds_;
  std::unique_ptr<boost::asio::ssl::context> tls_;  // null: plain HTTP
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t bound_port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<std::size_t> connections_{0};
  std::mutex sessions_mutex_;
  std::set<std::shared_ptr<Session>> sessions_;
};

}  // namespace junction::core::http
