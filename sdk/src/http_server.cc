#include "junction/sdk/http_server.h"

#include <strings.h>

namespace junction::sdk {

namespace {
bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

const std::string* HttpHeaders::find(std::string_view name) const noexcept {
  for (const auto& [k, v] : entries) {
    if (iequals(k, name)) {
      return &v;
    }
  }
  return nullptr;
}

std::string_view HttpHeaders::get(std::string_view name) const noexcept {
  const std::string* v = find(name);
  return v == nullptr ? std::string_view{} : std::string_view{*v};
}

void HttpHeaders::set(std::string name, std::string value) {
  for (auto& [k, v] : entries) {
    if (iequals(k, name)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::add(std::string name, std::string value) {
  entries.emplace_back(std::move(name), std::move(value));
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.headers.set("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.headers.set("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

HttpResponder& HttpResponder::operator=(HttpResponder&& other) noexcept {
  if (this != &other) {
    if (sink_) {
      sink_->send(HttpResponse::json(500, R"({"success":false,"error":"request dropped"})"));
    }
    sink_ = std::move(other.sink_);
  }
  return *this;
}

HttpResponder::~HttpResponder() {
  if (sink_) {
    sink_->send(HttpResponse::json(
        500, R"({"success":false,"error":"the handler dropped the request without answering"})"));
  }
}

void HttpResponder::operator()(HttpResponse response) noexcept {
  if (auto sink = std::move(sink_)) {
    sink->send(std::move(response));
  }
}

}  // namespace junction::sdk
