// The live debugger's tap: inactive (and building nothing) without subscribers, records as
// server-sent events, filters, masking of secrets and configured PII, a bounded backlog that
// says how much it dropped.

#include "core/telemetry/event_tap.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace junction::core::telemetry {
namespace {

namespace json = boost::json;

sdk::Event event(std::string user, std::string name, std::string body, std::string source = "web") {
  sdk::EventHeader h;
  h.type = sdk::EventType::Track;
  h.message_id = "m-" + user + "-" + name;
  h.user_id = std::move(user);
  h.name = std::move(name);
  h.source_id = std::move(source);
  return sdk::Event(std::move(h), std::move(body));
}

std::vector<json::object> records(const std::string& sse) {
  std::vector<json::object> out;
  std::size_t at = 0;
  while ((at = sse.find("data: ", at)) != std::string::npos) {
    auto end = sse.find("\n\n", at);
    out.push_back(json::parse(sse.substr(at + 6, end - at - 6)).as_object());
    at = end;
  }
  return out;
}

TEST(EventTapTest, ActiveOnlyWhileSomeoneWatches) {
  EventTap tap;
  EXPECT_FALSE(tap.active());
  {
    auto s = tap.subscribe({});
    EXPECT_TRUE(tap.active());
    auto s2 = tap.subscribe({});
    s.reset();
    EXPECT_TRUE(tap.active());
  }
  EXPECT_FALSE(tap.active());
  tap.arrived(event("p1", "Viewed", "{}"), "received");  // nobody: nothing kept anywhere
  auto late = tap.subscribe({});
  EXPECT_EQ(late->take(), "");
}

TEST(EventTapTest, RecordsCarryTheDecisionAndFiltersSelect) {
  EventTap tap;
  auto all = tap.subscribe({});
  auto hook_only = tap.subscribe(TapFilter{"", "hook", "", ""});
  auto p2 = tap.subscribe(TapFilter{"", "", "", "p2"});
  auto bought = tap.subscribe(TapFilter{"", "", "Bought", ""});
  auto crm = tap.subscribe(TapFilter{"crm", "", "", ""});
  const auto e1 = event("p1", "Viewed", R"({"event":"Viewed"})");
  const auto e2 = event("p2", "Bought", R"({"event":"Bought"})");
  tap.arrived(e1, "received");
  tap.decided(e1, "hook", "retry", "503 Service Unavailable");
  tap.decided(e1, "file", "delivered");
  tap.arrived(e2, "received");
  tap.decided(e2, "hook", "consent_blocked", "consent_denied");

  auto list = records(all->take());
  ASSERT_EQ(list.size(), 5u);
  EXPECT_EQ(list[1].at("kind").as_string(), "retry");
  EXPECT_EQ(list[1].at("destination").as_string(), "hook");
  EXPECT_EQ(list[1].at("reason").as_string(), "503 Service Unavailable");
  EXPECT_EQ(list[1].at("person").as_string(), "p1");
  EXPECT_EQ(list[1].at("messageId").as_string(), "m-p1-Viewed");
  EXPECT_TRUE(list[0].contains("body"));
  EXPECT_FALSE(list[1].contains("body"));
  EXPECT_EQ(all->take(), "") << "taken once";

  EXPECT_EQ(records(hook_only->take()).size(), 4u) << "arrivals and hook's decisions, not file's";
  EXPECT_EQ(records(p2->take()).size(), 2u);
  EXPECT_EQ(records(bought->take()).size(), 2u);
  EXPECT_EQ(records(crm->take()).size(), 0u);
}

TEST(EventTapTest, SecretsAndConfiguredPiiAreMasked) {
  EventTap tap({"traits.email", "context.ip", "userId"});
  auto s = tap.subscribe({});
  tap.arrived(event("p1", "Signed Up",
                    R"({"userId":"p1","traits":{"email":"a@b.c","name":"Ann"},"context":{"ip":"1.2.3.4"},
                        "properties":{"password":"hunter2","api_key":"k1","nested":{"Auth-Token":"t"},
                        "items":[{"cardNumber":"4111"}],"plan":"pro"}})"),
              "received");
  const std::string text = s->take();
  for (const char* secret : {"a@b.c", "1.2.3.4", "hunter2", "k1", "\"t\"", "4111"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " shown in " << text;
  }
  auto r = records(text).at(0);
  EXPECT_EQ(r.at("person").as_string(), "***") << "userId is configured PII";
  const auto& body = r.at("body").as_object();
  EXPECT_EQ(body.at("traits").at("name").as_string(), "Ann");
  EXPECT_EQ(body.at("properties").at("plan").as_string(), "pro");
  EXPECT_EQ(body.at("properties").at("password").as_string(), "***");
}

TEST(EventTapTest, ASlowViewerLosesTheOldestRecordsAndIsToldHowMany) {
  EventTap tap;
  auto s = tap.subscribe({}, /*capacity=*/3);
  for (int i = 0; i < 10; ++i) {
    tap.decided(event("p" + std::to_string(i), "E", "{}"), "hook", "delivered");
  }
  auto list = records(s->take());
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].at("kind").as_string(), "dropped");
  EXPECT_EQ(list[0].at("count").as_int64(), 7);
  EXPECT_EQ(list[3].at("person").as_string(), "p9");
}

TEST(EventTapTest, EachViewHasARateBudgetAppliedAfterItsFilter) {
  EventTap tap;
  auto busy = tap.subscribe({}, 2000, /*per_second=*/5);  // a burst of 10
  auto one = tap.subscribe(TapFilter{"", "", "", "p-late"}, 2000, 5);
  for (int i = 0; i < 30; ++i) {
    tap.decided(event("p" + std::to_string(i), "E", "{}"), "hook", "delivered");
  }
  tap.decided(event("p-late", "E", "{}"), "hook", "delivered");
  auto list = records(busy->take());
  ASSERT_EQ(list.size(), 11u);  // how many were not shown, then the 10 records
  EXPECT_EQ(list[0].at("kind").as_string(), "dropped");
  EXPECT_EQ(list[0].at("count").as_int64(), 21);
  EXPECT_NE(list[0].at("reason").as_string().find("narrow the filters"), std::string::npos);
  EXPECT_EQ(list[10].at("person").as_string(), "p9");
  auto mine = records(one->take());
  ASSERT_EQ(mine.size(), 1u) << "a narrow view is not starved by the busy one";
  EXPECT_EQ(mine[0].at("person").as_string(), "p-late");
  EXPECT_TRUE(tap.wants(event("p-late", "E", "{}"))) << "budget left for p-late";
}

}  // namespace
}  // namespace junction::core::telemetry
