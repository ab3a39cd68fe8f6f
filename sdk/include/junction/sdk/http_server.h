#pragma once

// HTTP routes a source plugin registers on the daemon's server (the daemon owns the sockets).

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace junction::sdk {

// Header names compare case-insensitively; lookups return the first match.
struct HttpHeaders {
  std::vector<std::pair<std::string, std::string>> entries;

  const std::string* find(std::string_view name) const noexcept;
  std::string_view get(std::string_view name) const noexcept;  // "" when absent
  void set(std::string name, std::string value);               // replaces
  void add(std::string name, std::string value);               // appends
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ... (upper case)
  std::string path;    // decoded-free path, without the query: "/v1/batch"
  std::string query;   // raw query string without '?', may be empty
  HttpHeaders headers;
  std::string body;    // already limited to the route's max_body_bytes
  std::string remote_address;
  std::map<std::string, std::string> params;  // "{name}" segments of the route pattern
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;

  // A response with `Content-Type: application/json`.
  static HttpResponse json(int status, std::string body);
  static HttpResponse text(int status, std::string body);
};

// Where a response goes. Implemented by the daemon.
class HttpResponseSink {
 public:
  virtual ~HttpResponseSink() = default;
  virtual void send(HttpResponse response) noexcept = 0;
};

// Sends the response for one request. Move-only; call it exactly once, from any thread, at any
// time (for example once the request's events are durable). If it is destroyed without being
// called, the client gets a 500 — a request never hangs because a handler forgot it.
class HttpResponder {
 public:
  explicit HttpResponder(std::shared_ptr<HttpResponseSink> sink) noexcept : sink_(std::move(sink)) {}
  HttpResponder(HttpResponder&&) noexcept = default;
  HttpResponder& operator=(HttpResponder&& other) noexcept;
  HttpResponder(const HttpResponder&) = delete;
  HttpResponder& operator=(const HttpResponder&) = delete;
  ~HttpResponder();

  void operator()(HttpResponse response) noexcept;
  bool answered() const noexcept { return sink_ == nullptr; }

 private:
  std::shared_ptr<HttpResponseSink> sink_;
};

// Called on a daemon I/O thread. Must not block: answer through the responder, now or later.
using HttpHandler = std::function<void(HttpRequest&& request, HttpResponder respond)>;

struct RouteOptions {
  // Larger request bodies are refused with 413 before the handler runs. 0 = server default.
  std::size_t max_body_bytes = 0;
  // Also answer CORS preflight (OPTIONS) for this path is up to the plugin: register OPTIONS.
};

}  // namespace junction::sdk
