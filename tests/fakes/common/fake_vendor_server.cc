#include "tests/fakes/common/fake_vendor_server.h"

namespace junction::tests::fakes {

using sdk::HttpResponse;
using sdk::testing::RecordedRequest;

FakeVendorServer::FakeVendorServer(Handler handler) : handler_(std::move(handler)) {
  std::lock_guard lock(rule_mutex_);
  rule_ = server_.when("*", "/", sdk::testing::PathMatch::Prefix);
  rule_->respond([this](const RecordedRequest& request) { return dispatch(request); });
}

FakeVendorServer::~FakeVendorServer() { stop(); }

void FakeVendorServer::stop() { server_.stop(); }

std::string FakeVendorServer::baseUrl() const { return server_.baseUrl(); }

void FakeVendorServer::failNext(std::size_t n, int status, std::string body,
                                std::vector<std::pair<std::string, std::string>> headers,
                                std::string path_prefix) {
  if (n == 0) {
    return;
  }
  std::lock_guard lock(mutex_);
  failures_.push_back({n, status, std::move(body), std::move(headers), std::move(path_prefix)});
}

void FakeVendorServer::setDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(rule_mutex_);
  delay_ = delay;
  if (!down_) {
    rule_->delay(delay);
  }
}

void FakeVendorServer::setDown(bool down) {
  std::lock_guard lock(rule_mutex_);
  if (down_ == down) {
    return;
  }
  down_ = down;
  // The one rule changes in place (under the server's lock), so no request ever falls between
  // two rules and gets the scripted server's 404.
  if (down) {
    // reply() first: it drops the responder, which would otherwise still run before the
    // connection is reset.
    rule_->reply(503).delay(std::chrono::milliseconds(0)).closeConnection();
  } else {
    rule_->respond([this](const RecordedRequest& request) { return dispatch(request); })
        .delay(delay_);
  }
}

std::vector<RecordedRequest> FakeVendorServer::requests() const { return server_.requests(); }

std::size_t FakeVendorServer::requestCount() const { return server_.requests().size(); }

bool FakeVendorServer::waitForRequests(std::size_t n, std::chrono::milliseconds timeout) const {
  return server_.waitForRequests(n, timeout);
}

void FakeVendorServer::clearRequests() { server_.clearRequests(); }

HttpResponse FakeVendorServer::dispatch(const RecordedRequest& request) {
  {
    std::lock_guard lock(mutex_);
    for (auto it = failures_.begin(); it != failures_.end(); ++it) {
      if (request.path.starts_with(it->path_prefix)) {
        HttpResponse response{it->status, {}, it->body};
        for (const auto& [name, value] : it->headers) {
          response.headers.add(name, value);
        }
        if (--it->remaining == 0) {
          failures_.erase(it);
        }
        return response;
      }
    }
  }
  return handler_(request);
}

}  // namespace junction::tests::fakes
