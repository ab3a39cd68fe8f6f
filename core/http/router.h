#pragma once

// Maps (method, path) to handlers. Request handling is a function from request to response
// (through a responder), testable without sockets; the Server only moves bytes.
//
// Patterns are exact paths or have `{name}` segments ("/v1/projects/{writeKey}/settings").
// Routes are added during start-up and read concurrently afterwards (shared lock).

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "junction/sdk/http_server.h"
#include "junction/sdk/result.h"

namespace junction::core::http {

// A response body sent as it is produced (server-sent events): the server writes the head, then
// every poll interval what take() returns, until the client goes away or the server stops.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // Text ready to send now; empty when nothing is. Called on the connection's thread.
  virtual std::string take() = 0;
  // The Content-Type of the stream.
  virtual std::string contentType() const { return "text/event-stream; charset=utf-8"; }
};
// A streaming route's handler: an ordinary answer (an error, say) or a stream to send.
using StreamStart = std::variant<sdk::HttpResponse, std::shared_ptr<StreamSource>>;
using StreamHandler = std::function<StreamStart(sdk::HttpRequest&&)>;

class Router {
 public:
  struct Match {
    std::shared_ptr<sdk::HttpHandler> handler;  // kept alive even if its route is removed
    std::shared_ptr<StreamHandler> stream;      // set for a streaming route (see addStream)
    std::size_t max_body_bytes = 0;
    std::map<std::string, std::string> params;
    bool path_known = false;  // some route has this path (for 405 vs 404)
    std::string pattern;      // the route's ("/v1/profiles/{id}"); empty when none matched
  };

  // AlreadyExists when (method, pattern) is taken; InvalidArgument for a malformed pattern.
  sdk::Status add(std::string method, std::string pattern, sdk::HttpHandler handler,
                  sdk::RouteOptions options = {}, std::string owner = "core");
  // A streaming route. Served only by the Server (dispatch() answers its errors but cannot
  // stream: it answers 501 instead).
  sdk::Status addStream(std::string method, std::string pattern, StreamHandler handler,
                        std::string owner = "core");
  // Removes every route of `owner` (a connector that stopped).
  void removeOwner(std::string_view owner);

  Match match(std::string_view method, std::string_view path) const;

  // Runs the matching handler, or answers 404/405 itself. `request.params` is filled.
  void dispatch(sdk::HttpRequest&& request, sdk::HttpResponder respond) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // a `{name}` segment is held as `name`
    std::vector<bool> is_param;         // per segment
    bool exact = true;                  // no parameters
    std::shared_ptr<sdk::HttpHandler> handler;
    std::shared_ptr<StreamHandler> stream;
    std::size_t max_body_bytes = 0;
    std::string owner;
  };

  // Whether `route` serves a path of these segments; its parameters into `params` if given.
  static bool matches(const Route& route, std::span<const std::string_view> segments,
                      std::map<std::string, std::string>* params);

  mutable std::shared_mutex mutex_;
  std::vector<Route> routes_;
};

}  // namespace junction::core::http
