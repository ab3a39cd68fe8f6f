// The regulations API without sockets: request validation, suppress/unsuppress/delete applied
// to the store, audit entries (subjects hashed), erasure at every destination that supports it
// with retries and a bounded budget, progress in GET, resumption after a restart, and the
// admin token check through the router.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <future>
#include <thread>

#include "core/http/router.h"
#include "core/privacy/regulation_service.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/testing/fake_context.h"
#include "tests/core/privacy/test_util.h"

namespace junction::core::privacy {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::event;
using testing::TempDir;
namespace json = boost::json;

// Answers erase() from a script: Retry for the first `retries` calls, then `final_outcome`.
class ErasingDestination final : public sdk::Destination {
 public:
  ErasingDestination(int retries, sdk::Outcome final_outcome, bool supports = true)
      : retries_(retries), final_(std::move(final_outcome)), supports_(supports) {}
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    return std::vector<sdk::Outcome>(batch.size(), sdk::Outcome::delivered());
  }
  bool supportsErasure() const override { return supports_; }
  sdk::Outcome erase(const sdk::Person& person) override {
    std::lock_guard lock(mutex_);
    people_.push_back(person.user_id + "|" + person.anonymous_id + "|" + person.email);
    if (static_cast<int>(people_.size()) <= retries_) {
      return sdk::Outcome::retry("vendor busy");
    }
    return final_;
  }
  std::vector<std::string> people() const {
    std::lock_guard lock(mutex_);
    return people_;
  }

 private:
  const int retries_;
  const sdk::Outcome final_;
  const bool supports_;
  mutable std::mutex mutex_;
  std::vector<std::string> people_;
};

struct Fixture {
  TempDir dir;
  sdk::testing::ManualClock clock;
  sdk::testing::RecordingLogger logger;
  sdk::testing::FakeMetrics metrics;
  std::unique_ptr<PrivacyStore> store;
  std::unique_ptr<AuditLog> audit;

  Fixture() { reopen(); }
  void reopen() {
    audit.reset();
    store.reset();
    store = std::move(PrivacyStore::open(dir.file("privacy.db"))).value();
    audit = std::move(AuditLog::open(dir.file("audit.log"), clock)).value();
  }
  std::unique_ptr<RegulationService> service(ErasureOptions options = fast()) {
    return std::make_unique<RegulationService>(*store, audit.get(), logger, metrics, clock, options);
  }
  static ErasureOptions fast() {
    ErasureOptions o;
    o.max_attempts = 3;
    o.initial_backoff = 5ms;
    o.max_backoff = 20ms;
    return o;
  }
  std::string auditText() const {
    std::ifstream in(dir.file("audit.log"));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
};

json::object parse(const sdk::HttpResponse& r) { return json::parse(r.body).as_object(); }

// Polls GET until the regulation's status is no longer pending.
json::object waitSettled(RegulationService& service, const std::string& id) {
  json::object r;
  for (int i = 0; i < 500; ++i) {
    r = parse(service.get(id));
    if (r.at("status").as_string() != "pending") {
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  return r;
}

TEST(RegulationServiceTest, RefusesMalformedRequests) {
  Fixture f;
  auto service = f.service();
  EXPECT_EQ(service->create("not json").status, 400);
  EXPECT_EQ(service->create(R"({"type":"forget","userId":"u1"})").status, 400);
  EXPECT_EQ(service->create(R"({"type":"suppress"})").status, 400);
  EXPECT_EQ(service->create(R"({"type":"suppress","userId":"u1","email":"a@b.c"})").status, 400);
  EXPECT_EQ(service->create(R"({"type":"suppress","userId":""})").status, 400);
  EXPECT_EQ(service->get("reg_unknown").status, 404);
  EXPECT_FALSE(f.store->hasSuppressions());
}

TEST(RegulationServiceTest, SuppressAndUnsuppressAreAppliedAndAudited) {
  Fixture f;
  auto service = f.service();
  ASSERT_TRUE(service->start().ok());
  auto created = service->create(R"({"type":"suppress","email":"Jo@Example.com"})");
  ASSERT_EQ(created.status, 200) << created.body;
  auto body = parse(created);
  const std::string id(body.at("id").as_string());
  EXPECT_EQ(body.at("regulation").as_object().at("status").as_string(), "done");
  EXPECT_TRUE(f.store->isSuppressed(
      event(R"({"type":"identify","userId":"u1","traits":{"email":"jo@example.com"}})")));
  auto got = parse(service->get(id));
  EXPECT_EQ(got.at("type").as_string(), "suppress");
  EXPECT_EQ(got.at("subject").as_object().at("email").as_string(), "jo@example.com");

  ASSERT_EQ(service->create(R"({"type":"unsuppress","email":"jo@example.com"})").status, 200);
  EXPECT_FALSE(f.store->isSuppressed(
      event(R"({"type":"identify","userId":"u1","traits":{"email":"jo@example.com"}})")));

  const std::string audit = f.auditText();
  EXPECT_THAT(audit, HasSubstr(R"("kind":"regulation")"));
  EXPECT_THAT(audit, HasSubstr(sdk::sha256Hex("jo@example.com")));
  EXPECT_THAT(audit, Not(HasSubstr("jo@example.com")));  // subjects are hashed
  EXPECT_TRUE(verifyAuditLog(f.dir.file("audit.log")).ok);
  EXPECT_EQ(f.metrics.counterValue("junction_regulations_total", {{"type", "suppress"}}), 1u);
}

TEST(RegulationServiceTest, DeleteErasesAtEveryCapableDestinationWithRetries) {
  Fixture f;
  auto ok_after_retries = std::make_shared<ErasingDestination>(2, sdk::Outcome::delivered());
  auto always_busy = std::make_shared<ErasingDestination>(100, sdk::Outcome::delivered());
  auto refuses = std::make_shared<ErasingDestination>(0, sdk::Outcome::failed("no such API"));
  auto cannot = std::make_shared<ErasingDestination>(0, sdk::Outcome::delivered(), false);
  auto service = f.service();
  service->addDestination("crm", ok_after_retries);
  service->addDestination("ads", always_busy);
  service->addDestination("mail", refuses);
  service->addDestination("file", cannot);
  std::vector<std::string> deleted;
  service->onDelete([&](const Regulation& r) { deleted.push_back(r.subject.value); });
  ASSERT_TRUE(service->start().ok());

  auto created = service->create(R"({"type":"delete","userId":"u1"})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id(parse(created).at("id").as_string());
  EXPECT_EQ(deleted, std::vector<std::string>{"u1"});
  EXPECT_TRUE(f.store->isDeleted(event(R"({"type":"track","event":"E","userId":"u1"})", f.clock.nowMs())));

  auto settled = waitSettled(*service, id);
  EXPECT_EQ(settled.at("status").as_string(), "failed") << json::serialize(settled);
  const auto& d = settled.at("destinations").as_object();
  EXPECT_FALSE(d.contains("file"));
  EXPECT_EQ(d.at("crm").as_object().at("status").as_string(), "done");
  EXPECT_EQ(d.at("crm").as_object().at("attempts").as_int64(), 3);
  EXPECT_EQ(d.at("ads").as_object().at("status").as_string(), "failed");
  EXPECT_EQ(d.at("ads").as_object().at("attempts").as_int64(), 3);
  EXPECT_THAT(std::string(d.at("ads").as_object().at("reason").as_string()), HasSubstr("gave up"));
  EXPECT_EQ(d.at("mail").as_object().at("status").as_string(), "failed");
  EXPECT_EQ(d.at("mail").as_object().at("attempts").as_int64(), 1);
  EXPECT_EQ(ok_after_retries->people(), std::vector<std::string>(3, "u1||"));
  EXPECT_TRUE(cannot->people().empty());

  const std::string audit = f.auditText();
  EXPECT_THAT(audit, HasSubstr(R"("kind":"erasure")"));
  EXPECT_THAT(audit, HasSubstr(R"("destination":"crm","status":"done")"));
  EXPECT_TRUE(verifyAuditLog(f.dir.file("audit.log")).ok);
  EXPECT_EQ(f.metrics.counterValue("junction_erasures_total", {{"destination", "crm"}, {"result", "done"}}), 1u);
}

TEST(RegulationServiceTest, PendingErasuresResumeAfterRestart) {
  Fixture f;
  std::string id;
  {
    // The erasure thread never starts: the regulation stays pending, as after a crash.
    auto service = f.service();
    service->addDestination("crm", std::make_shared<ErasingDestination>(0, sdk::Outcome::delivered()));
    auto created = service->create(R"({"type":"delete","anonymousId":"a1"})");
    ASSERT_EQ(created.status, 200);
    id = std::string(parse(created).at("id").as_string());
    EXPECT_EQ(parse(service->get(id)).at("status").as_string(), "pending");
  }
  f.reopen();
  auto crm = std::make_shared<ErasingDestination>(0, sdk::Outcome::delivered());
  auto service = f.service();
  service->addDestination("crm", crm);
  ASSERT_TRUE(service->start().ok());
  auto settled = waitSettled(*service, id);
  EXPECT_EQ(settled.at("status").as_string(), "done") << json::serialize(settled);
  EXPECT_EQ(crm->people(), std::vector<std::string>{"|a1|"});
}

TEST(RegulationServiceTest, RoutesNeedTheAdminToken) {
  Fixture f;
  auto service = f.service();
  http::Router router;
  service->registerRoutes(router, "s3cret");
  auto call = [&](std::string method, std::string path, std::string body, std::string auth) {
    struct Sink final : sdk::HttpResponseSink {
      std::promise<sdk::HttpResponse> p;
      void send(sdk::HttpResponse r) noexcept override { p.set_value(std::move(r)); }
    };
    auto sink = std::make_shared<Sink>();
    auto future = sink->p.get_future();
    sdk::HttpRequest req;
    req.method = std::move(method);
    req.path = std::move(path);
    req.body = std::move(body);
    if (!auth.empty()) {
      req.headers.set("Authorization", auth);
    }
    router.dispatch(std::move(req), sdk::HttpResponder(sink));
    return future.get();
  };
  EXPECT_EQ(call("POST", "/v1/regulations", R"({"type":"suppress","userId":"u1"})", "").status, 401);
  EXPECT_EQ(call("POST", "/v1/regulations", R"({"type":"suppress","userId":"u1"})", "Bearer nope").status, 401);
  EXPECT_FALSE(f.store->hasSuppressions());
  auto ok = call("POST", "/v1/regulations", R"({"type":"suppress","userId":"u1"})", "Bearer s3cret");
  ASSERT_EQ(ok.status, 200) << ok.body;
  const std::string id(parse(ok).at("id").as_string());
  EXPECT_EQ(call("GET", "/v1/regulations/" + id, "", "").status, 401);
  EXPECT_EQ(call("GET", "/v1/regulations/" + id, "", "Bearer s3cret").status, 200);

  http::Router disabled;
  service->registerRoutes(disabled, "");
  sdk::HttpRequest req;
  req.method = "POST";
  req.path = "/v1/regulations";
  struct Sink final : sdk::HttpResponseSink {
    int status = 0;
    void send(sdk::HttpResponse r) noexcept override { status = r.status; }
  };
  auto sink = std::make_shared<Sink>();
  disabled.dispatch(std::move(req), sdk::HttpResponder(sink));
  EXPECT_EQ(sink->status, 403);
}

}  // namespace
}  // namespace junction::core::privacy
