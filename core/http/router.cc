#include "core/http/router.h"

#include <boost/container/small_vector.hpp>
#include <mutex>

namespace junction::core::http {

namespace {

// The segments of a path, as views into it. A request's path is split once, not per route,
// and without allocating for the usual few segments: this runs for every request.
using Segments = boost::container::small_vector<std::string_view, 8>;

Segments splitPath(std::string_view path) {
  Segments out;
  std::size_t start = 1;  // paths start with '/'
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

bool isParam(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

sdk::Status Router::add(std::string method, std::string pattern, sdk::HttpHandler handler,
                        sdk::RouteOptions options, std::string owner) {
  if (pattern.empty() || pattern.front() != '/') {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "route pattern must start with '/': " + pattern);
  }
  if (!handler) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "route without a handler: " + pattern);
  }
  Route route;
  route.method = std::move(method);
  for (std::string_view segment : splitPath(pattern)) {
    const bool param = isParam(segment);
    route.segments.emplace_back(param ? segment.substr(1, segment.size() - 2) : segment);
    route.is_param.push_back(param);
    route.exact = route.exact && !param;
  }
  route.pattern = std::move(pattern);
  route.handler = std::make_shared<sdk::HttpHandler>(std::move(handler));
  route.max_body_bytes = options.max_body_bytes;
  route.owner = std::move(owner);
  std::unique_lock lock(mutex_);
  for (const auto& r : routes_) {
    if (r.method == route.method && r.pattern == route.pattern) {
      return sdk::makeError(sdk::ErrorCode::AlreadyExists,
                            route.method + " " + route.pattern + " is already served by " + r.owner);
    }
  }
  routes_.push_back(std::move(route));
  return {};
}

sdk::Status Router::addStream(std::string method, std::string pattern, StreamHandler handler,
                              std::string owner) {
  auto stream = std::make_shared<StreamHandler>(std::move(handler));
  auto status = add(
      method, std::string(pattern),
      [stream](sdk::HttpRequest&& request, sdk::HttpResponder respond) {
        auto start = (*stream)(std::move(request));
        if (auto* answer = std::get_if<sdk::HttpResponse>(&start)) {
          respond(std::move(*answer));
        } else {
          respond(sdk::HttpResponse::json(501, R"({"success":false,"error":"a stream, served only by the server"})"));
        }
      },
      {}, std::move(owner));
  if (!status.ok()) {
    return status;
  }
  std::unique_lock lock(mutex_);
  for (auto& r : routes_) {
    if (r.method == method && r.pattern == pattern) {
      r.stream = std::move(stream);
    }
  }
  return {};
}

void Router::removeOwner(std::string_view owner) {
  std::unique_lock lock(mutex_);
  std::erase_if(routes_, [&](const Route& r) { return r.owner == owner; });
}

bool Router::matches(const Route& route, std::span<const std::string_view> segments,
                     std::map<std::string, std::string>* params) {
  if (segments.size() != route.segments.size()) {
    return false;
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (route.is_param[i]) {
      if (segments[i].empty()) {
        return false;
      }
      if (params != nullptr) {
        (*params)[route.segments[i]] = std::string(segments[i]);
      }
    } else if (route.segments[i] != segments[i]) {
      return false;
    }
  }
  return true;
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match m;
  const Segments segments = splitPath(path);
  std::shared_lock lock(mutex_);
  // Exact patterns win over patterns with parameters.
  const Route* best = nullptr;
  for (const auto& r : routes_) {
    if (!matches(r, segments, nullptr)) {
      continue;
    }
    m.path_known = true;
    if (r.method != method) {
      continue;
    }
    if (best == nullptr || r.exact) {
      best = &r;
      if (r.exact) {
        break;
      }
    }
  }
  if (best != nullptr) {
    matches(*best, segments, &m.params);
    m.handler = best->handler;
    m.stream = best->stream;
    m.max_body_bytes = best->max_body_bytes;
    m.pattern = best->pattern;
  }
  return m;
}

void Router::dispatch(sdk::HttpRequest&& request, sdk::HttpResponder respond) const {
  Match m = match(request.method, request.path);
  if (!m.handler) {
    respond(m.path_known
                ? sdk::HttpResponse::json(405, R"({"success":false,"error":"method not allowed"})")
                : sdk::HttpResponse::json(404, R"({"success":false,"error":"not found"})"));
    return;
  }
  request.params = std::move(m.params);
  try {
    (*m.handler)(std::move(request), std::move(respond));
  } catch (...) {
    // The responder was moved into the handler: destroyed unanswered, it sends a 500.
  }
}

}  // namespace junction::core::http
