// The Router without sockets: which handler a (method, path) reaches, the answers it gives by
// itself (404, 405, 500 for a dropped responder), and route ownership.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/http/router.h"

namespace junction::core::http {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Records every response sent through the responders it makes.
class RecordingSink final : public sdk::HttpResponseSink {
 public:
  void send(sdk::HttpResponse response) noexcept override {
    std::lock_guard lock(mutex_);
    responses_.push_back(std::move(response));
  }
  std::vector<sdk::HttpResponse> responses() const {
    std::lock_guard lock(mutex_);
    return responses_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<sdk::HttpResponse> responses_;
};

struct Dispatched {
  std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();

  // The single response, or nullopt when there is none (or several: a bug of its own).
  std::optional<sdk::HttpResponse> only() const {
    auto all = sink->responses();
    if (all.size() != 1) {
      return std::nullopt;
    }
    return all.front();
  }
};

Dispatched dispatch(const Router& router, std::string method, std::string path,
                    std::string body = {}) {
  Dispatched d;
  sdk::HttpRequest request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.body = std::move(body);
  router.dispatch(std::move(request), sdk::HttpResponder(d.sink));
  return d;
}

// A handler answering 200 with `tag` as the body.
sdk::HttpHandler answer(std::string tag) {
  return [tag = std::move(tag)](sdk::HttpRequest&&, sdk::HttpResponder respond) {
    respond(sdk::HttpResponse::text(200, tag));
  };
}

TEST(RouterTest, ExactRouteAnswers) {
  Router router;
  ASSERT_TRUE(router.add("GET", "/healthz", answer("health")).ok());
  auto d = dispatch(router, "GET", "/healthz");
  auto r = d.only();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "health");
}

TEST(RouterTest, ParamRouteFillsParams) {
  Router router;
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(router
                  .add("GET", "/v1/projects/{writeKey}/settings",
                       [&seen](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
                         seen = req.params;
                         respond(sdk::HttpResponse::text(200, "settings"));
                       })
                  .ok());
  auto d = dispatch(router, "GET", "/v1/projects/abc123/settings");
  ASSERT_TRUE(d.only());
  EXPECT_EQ(d.only()->status, 200);
  EXPECT_THAT(seen, ElementsAre(Pair("writeKey", "abc123")));

  // A parameter never matches an empty segment, nor a different number of segments.
  EXPECT_EQ(dispatch(router, "GET", "/v1/projects//settings").only()->status, 404);
  EXPECT_EQ(dispatch(router, "GET", "/v1/projects/abc/settings/more").only()->status, 404);
  EXPECT_EQ(dispatch(router, "GET", "/v1/projects/abc").only()->status, 404);
}

TEST(RouterTest, MatchReportsRouteBodyLimit) {
  Router router;
  ASSERT_TRUE(router.add("POST", "/small", answer("s"), sdk::RouteOptions{.max_body_bytes = 10}).ok());
  auto m = router.match("POST", "/small");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.max_body_bytes, 10u);
  EXPECT_TRUE(m.path_known);
}

TEST(RouterTest, ExactBeatsParamWhateverTheOrder) {
  for (bool param_first : {true, false}) {
    Router router;
    auto add_param = [&] { ASSERT_TRUE(router.add("GET", "/v1/profiles/{id}", answer("param")).ok()); };
    auto add_exact = [&] { ASSERT_TRUE(router.add("GET", "/v1/profiles/me", answer("exact")).ok()); };
    if (param_first) {
      add_param();
      add_exact();
    } else {
      add_exact();
      add_param();
    }
    EXPECT_EQ(dispatch(router, "GET", "/v1/profiles/me").only()->body, "exact") << param_first;
    EXPECT_EQ(dispatch(router, "GET", "/v1/profiles/42").only()->body, "param") << param_first;
    auto m = router.match("GET", "/v1/profiles/me");
    EXPECT_TRUE(m.params.empty()) << "the exact route has no parameters";
  }
}

TEST(RouterTest, UnknownPathIs404AndWrongMethodIs405) {
  Router router;
  ASSERT_TRUE(router.add("POST", "/v1/track", answer("track")).ok());
  ASSERT_TRUE(router.add("GET", "/items/{id}", answer("item")).ok());

  auto not_found = dispatch(router, "GET", "/nope").only();
  ASSERT_TRUE(not_found);
  EXPECT_EQ(not_found->status, 404);
  EXPECT_EQ(not_found->headers.get("Content-Type"), "application/json");
  EXPECT_EQ(not_found->body, R"({"success":false,"error":"not found"})");

  auto wrong_method = dispatch(router, "GET", "/v1/track").only();
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->body, R"({"success":false,"error":"method not allowed"})");

  EXPECT_EQ(dispatch(router, "DELETE", "/items/7").only()->status, 405);
  EXPECT_FALSE(router.match("GET", "/nope").path_known);
}

TEST(RouterTest, DuplicateRouteIsAlreadyExists) {
  Router router;
  ASSERT_TRUE(router.add("POST", "/test/events", answer("a"), {}, "source.one").ok());
  auto again = router.add("POST", "/test/events", answer("b"), {}, "source.two");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, sdk::ErrorCode::AlreadyExists);
  EXPECT_THAT(again.message(), HasSubstr("source.one"));
  // The first route still serves; another method on the same path is a different route.
  EXPECT_EQ(dispatch(router, "POST", "/test/events").only()->body, "a");
  EXPECT_TRUE(router.add("GET", "/test/events", answer("c")).ok());
}

TEST(RouterTest, MalformedRoutesAreRefused) {
  Router router;
  auto relative = router.add("GET", "healthz", answer("x"));
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code, sdk::ErrorCode::InvalidArgument);
  auto empty = router.add("GET", "/x", sdk::HttpHandler{});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, sdk::ErrorCode::InvalidArgument);
}

TEST(RouterTest, RemoveOwnerRemovesOnlyItsRoutes) {
  Router router;
  ASSERT_TRUE(router.add("POST", "/a", answer("a1"), {}, "source.a").ok());
  ASSERT_TRUE(router.add("GET", "/a/{x}", answer("a2"), {}, "source.a").ok());
  ASSERT_TRUE(router.add("POST", "/b", answer("b"), {}, "source.b").ok());
  router.removeOwner("source.a");
  EXPECT_EQ(dispatch(router, "POST", "/a").only()->status, 404);
  EXPECT_EQ(dispatch(router, "GET", "/a/1").only()->status, 404);
  EXPECT_EQ(dispatch(router, "POST", "/b").only()->body, "b");
  // The route can be taken again once its owner is gone.
  EXPECT_TRUE(router.add("POST", "/a", answer("a3"), {}, "source.c").ok());
  EXPECT_EQ(dispatch(router, "POST", "/a").only()->body, "a3");
}

TEST(RouterTest, MatchedHandlerOutlivesItsRoute) {
  Router router;
  ASSERT_TRUE(router.add("GET", "/x", answer("kept"), {}, "source.x").ok());
  auto m = router.match("GET", "/x");
  router.removeOwner("source.x");
  ASSERT_TRUE(m.handler);
  auto sink = std::make_shared<RecordingSink>();
  (*m.handler)(sdk::HttpRequest{}, sdk::HttpResponder(sink));
  ASSERT_EQ(sink->responses().size(), 1u);
  EXPECT_EQ(sink->responses()[0].body, "kept");
}

TEST(RouterTest, HandlerThatThrowsGives500) {
  Router router;
  ASSERT_TRUE(router
                  .add("POST", "/boom",
                       [](sdk::HttpRequest&&, sdk::HttpResponder) {
                         throw std::runtime_error("handler bug");
                       })
                  .ok());
  auto d = dispatch(router, "POST", "/boom");
  auto r = d.only();
  ASSERT_TRUE(r) << "exactly one answer: " << d.sink->responses().size();
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->headers.get("Content-Type"), "application/json");
}

TEST(RouterTest, HandlerThatForgetsToAnswerGives500) {
  Router router;
  ASSERT_TRUE(router.add("GET", "/forget", [](sdk::HttpRequest&&, sdk::HttpResponder) {}).ok());
  auto r = dispatch(router, "GET", "/forget").only();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
}

TEST(RouterTest, HandlerMayKeepTheResponderAndAnswerLater) {
  Router router;
  std::optional<sdk::HttpResponder> kept;
  std::string body_seen;
  ASSERT_TRUE(router
                  .add("POST", "/later",
                       [&](sdk::HttpRequest&& req, sdk::HttpResponder respond) {
                         body_seen = req.body;
                         kept.emplace(std::move(respond));
                       })
                  .ok());
  auto d = dispatch(router, "POST", "/later", "payload");
  EXPECT_TRUE(d.sink->responses().empty()) << "nothing is answered while the handler holds it";
  EXPECT_EQ(body_seen, "payload");
  ASSERT_TRUE(kept);
  EXPECT_FALSE(kept->answered());
  (*kept)(sdk::HttpResponse::json(202, R"({"success":true})"));
  EXPECT_TRUE(kept->answered());
  kept.reset();  // destroying an answered responder sends nothing more
  auto r = d.only();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, R"({"success":true})");
}

}  // namespace
}  // namespace junction::core::http
