// The mailchimp destination: its option table, the exact requests it builds (validated against
// Mailchimp's JSON Schemas), and its behaviour against the fake Mailchimp over loopback (single
// and batch upserts, batch errors, member events and tags, 429, 5xx, 401, timeouts, garbage, the
// connection limit, erasure).

#include "mailchimp_destination.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>

#include "junction/sdk/crypto.h"
#include "junction/sdk/testing/fake_context.h"
#include "junction/sdk/testing/scripted_http_server.h"
#include "tests/fakes/mailchimp/fake_mailchimp.h"

namespace junction::plugins::mailchimp {
namespace {

namespace json = boost::json;
using junction::tests::fakes::FakeMailchimp;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

sdk::Event event(const std::string& text) {
  auto e = sdk::makeEvent(json::parse(text).as_object(), "web");
  EXPECT_TRUE(e) << text;
  auto h = e->header();
  h.message_id = "m-" + h.user_id;
  h.timestamp_ms = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  return sdk::Event(h, std::string(e->json()));
}

sdk::Event identify(int i, const std::string& email = "", const std::string& extra = "") {
  return event(
      R"({"type":"identify","userId":"u)" + std::to_string(i) + R"(","traits":{"email":")" +
      (email.empty() ? "Person" + std::to_string(i) + "@Example.com" : email) +
      R"(","first_name":"Ada","last_name":"Lovelace","phone":"+44 1","birthday":"1990-04-01")" +
      extra + "}}");
}

sdk::Event track(int i, const std::string& name = "Cart Abandoned") {
  return event(R"({"type":"track","userId":"u)" + std::to_string(i) + R"(","event":")" + name +
               R"(","context":{"traits":{"email":"person)" + std::to_string(i) +
               R"(@example.com"}},"properties":{"cart_id":"c-1","value":42.5,"items":[1,2]}})");
}

MailchimpConfig config(const std::string& base_url, const std::string& api_key,
                       const std::string& list_id, json::object extra = {}) {
  json::object c{{"api_key", api_key},   {"list_id", list_id},
                 {"base_url", base_url}, {"status_if_new", "subscribed"},
                 {"tags_trait", ""},     {"audience_tags", true},
                 {"mapping", json::object{}},
                 {"batch_size", 500},    {"max_connections", 10},
                 {"timeout", 2000}};
  for (const auto& [k, v] : extra) {
    c[k] = v;
  }
  return mailchimpOptions().bind(c);
}

TEST(MailchimpOptionsTest, TableDefaultsSecretsAndValidation) {
  const auto specs = mailchimpOptions().specs();
  auto spec = [&](const std::string& key) {
    return *std::find_if(specs.begin(), specs.end(), [&](const auto& s) { return s.key == key; });
  };
  EXPECT_TRUE(spec("api_key").required);
  EXPECT_TRUE(spec("api_key").secret);
  EXPECT_TRUE(spec("list_id").required);
  EXPECT_EQ(spec("status_if_new").default_value, json::value("subscribed"));
  EXPECT_EQ(spec("audience_tags").default_value, json::value(true));
  EXPECT_EQ(spec("max_connections").max, 10.0);
  EXPECT_TRUE(sdk::checkOptionTable(specs).empty());
  EXPECT_FALSE(sdk::normalizeOption(spec("status_if_new"), json::value("cleaned")));
  EXPECT_FALSE(sdk::normalizeOption(spec("batch_size"), json::value(501)));

  EXPECT_EQ(baseUrlForKey("0123456789abcdef0123456789abcdef-us6"),
            "https://us6.api.mailchimp.com/3.0");
  EXPECT_EQ(baseUrlForKey("nodatacenter"), "");
  auto no_dc = config("", "secret-key-without-dc", "abc");
  no_dc.api_key = "nodatacenter";
  auto errors = no_dc.validate();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "api_key");
  EXPECT_THAT(errors[0].message, Not(HasSubstr("nodatacenter")));  // never echo a secret
  auto bad = config("ftp://x", "k-us1", "",
                    json::object{{"mapping", json::object{{"A.B.C", "traits.x"},
                                                          {"C", 5},
                                                          {"ADDRESS.city", "traits.town"}}}});
  std::vector<std::string> keys;
  for (const auto& e : bad.validate()) {
    keys.push_back(e.key);
  }
  EXPECT_THAT(keys,
              ::testing::UnorderedElementsAre("base_url", "list_id", "mapping.C", "mapping.A.B.C"));
}

TEST(MailchimpRequestsTest, RequestsAreExactAndPassMailchimpsSchemas) {
  auto mapping = sdk::FieldMapping::parse(defaultMapping(), {});
  ASSERT_TRUE(mapping);
  auto c = config("https://us6.api.mailchimp.com/3.0", "k-us6", "list1");
  std::vector<sdk::Event> batch{identify(1), identify(2), identify(3, "person1@example.com")};

  auto single = buildUpserts(batch, {0}, {"person1@example.com"}, *mapping, c);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0].method, "PUT");
  EXPECT_EQ(single[0].path, "/lists/list1/members/" + sdk::md5Hex("person1@example.com"));
  EXPECT_EQ(
      single[0].body,
      R"({"email_address":"person1@example.com","status_if_new":"subscribed",)"
      R"("merge_fields":{"FNAME":"Ada","LNAME":"Lovelace","PHONE":"+44 1","BIRTHDAY":"04/01"}})");
  EXPECT_THAT(FakeMailchimp::validate("putListsIdMembersId", json::parse(single[0].body)),
              IsEmpty());

  auto several = buildUpserts(batch, {0, 1, 2},
                              {"person1@example.com", "person2@example.com", "person1@example.com"},
                              *mapping, c);
  ASSERT_EQ(several.size(), 2u);  // the second person1 goes to a request of its own
  EXPECT_EQ(several[0].method, "POST");
  EXPECT_EQ(several[0].path, "/lists/list1");
  EXPECT_EQ(several[0].events, (std::vector<std::size_t>{0, 1}));
  const auto body = json::parse(several[0].body).as_object();
  EXPECT_EQ(body.at("update_existing"), true);
  EXPECT_EQ(body.at("members").as_array().size(), 2u);
  EXPECT_EQ(body.at("members").as_array()[1].at("email_address"), "person2@example.com");
  EXPECT_FALSE(body.at("members").as_array()[0].as_object().contains("status"))
      << "an existing member's status is never changed";
  EXPECT_THAT(FakeMailchimp::validate("postListsId", json::parse(several[0].body)), IsEmpty());

  auto e = buildMemberEvent(track(7), 3, "person7@example.com", "list1");
  EXPECT_EQ(e.path, "/lists/list1/members/" + sdk::md5Hex("person7@example.com") + "/events");
  EXPECT_EQ(
      e.body,
      R"({"name":"Cart_Abandoned","properties":{"cart_id":"c-1","value":"42.5","items":"[1,2]"},)"
      R"("occurred_at":"2026-01-01T00:00:00.000Z"})");
  EXPECT_THAT(FakeMailchimp::validate("postListMemberEvents", json::parse(e.body)), IsEmpty());
  // The schema check itself refuses what Mailchimp would.
  EXPECT_THAT(FakeMailchimp::validate("postListMemberEvents", json::parse(R"({"properties":{}})")),
              Not(IsEmpty()));

  // Segment's address trait becomes the ADDRESS merge field when it is complete, else is left out
  // (Mailchimp refuses the whole member for a partial address).
  std::vector<sdk::Event> addressed{identify(4, "",
                                             R"(,"address":{"street":"1 Main St","city":"Atlanta",)"
                                             R"("state":"GA","postalCode":30312,"country":"US"})"),
                                    identify(5, "", R"(,"address":{"city":"Atlanta"})")};
  auto with_address =
      buildUpserts(addressed, {0, 1}, {"person4@example.com", "person5@example.com"}, *mapping, c);
  ASSERT_EQ(with_address.size(), 1u);
  const auto members = json::parse(with_address[0].body).at("members").as_array();
  EXPECT_EQ(
      members[0].at("merge_fields").at("ADDRESS"),
      json::parse(
          R"({"addr1":"1 Main St","city":"Atlanta","state":"GA","zip":"30312","country":"US"})"));
  EXPECT_FALSE(members[1].at("merge_fields").as_object().contains("ADDRESS"));
  EXPECT_THAT(FakeMailchimp::validate("postListsId", json::parse(with_address[0].body)), IsEmpty());

  EXPECT_EQ(eventName("Order Completed!"), "Order_Completed");
  EXPECT_EQ(eventName("a"), "");
  EXPECT_EQ(eventName(std::string(40, 'x')).size(), 30u);
}

class MailchimpDestinationTest : public ::testing::Test {
 protected:
  MailchimpConfig cfg(json::object extra = {}) {
    return config(fake_.baseUrl(), fake_.apiKey(), fake_.listId(), std::move(extra));
  }
  std::vector<sdk::Outcome> deliver(std::vector<sdk::Event> batch, json::object extra = {}) {
    MailchimpDestination dest(cfg(std::move(extra)), ctx_);
    return dest.deliver(batch);
  }

  FakeMailchimp fake_;
  sdk::testing::FakeDestinationContext ctx_;
};

TEST_F(MailchimpDestinationTest, MembersEventsAndTagsLandAndOtherTypesAreSkipped) {
  auto one = deliver({identify(1, "", R"(,"tags":["vip","Beta"])")},
                     json::object{{"tags_trait", "traits.tags"}});
  ASSERT_TRUE(one[0].isDelivered()) << one[0].reason;
  auto outcomes = deliver({identify(2), identify(3, "", R"(,"tags":"a, b")"), track(1),
                           event(R"({"type":"page","userId":"u9","name":"Home"})")},
                          json::object{{"tags_trait", "traits.tags"}});
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.memberCount(), 3u);
  auto m = fake_.member("PERSON1@example.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, "subscribed");
  EXPECT_EQ(m->merge_fields.at("FNAME"), "Ada");
  EXPECT_EQ(m->tags, (std::vector<std::string>{"vip", "Beta"}));
  EXPECT_EQ(fake_.member("person3@example.com")->tags, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(fake_.memberEventCount(), 1u);
  EXPECT_EQ(fake_.memberEvents()[0].name, "Cart_Abandoned");
  EXPECT_EQ(fake_.memberEvents()[0].properties.at("value"), "42.5");
  EXPECT_EQ(ctx_.metrics().counterValue("junction_mailchimp_skipped_total", {{"type", "page"}}),
            1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_mailchimp_requests_total",
                                        {{"endpoint", "batch_subscribe"}, {"status", "200"}}),
            1u);
  EXPECT_EQ(ctx_.metrics().counterValue("junction_mailchimp_requests_total",
                                        {{"endpoint", "member_events"}, {"status", "204"}}),
            1u);
  // The requests as sent: basic auth with the key as password, JSON bodies, the paths.
  const auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 5u);  // PUT + tags, batch + tags of person3, event
  const std::string auth = "Basic " + sdk::base64Encode("junction:" + fake_.apiKey());
  const std::string list = "/3.0/lists/" + fake_.listId();
  std::vector<std::string> sent;
  for (const auto& r : requests) {
    EXPECT_EQ(r.headers.get("Authorization"), auth);
    EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
    sent.push_back(r.method + " " + r.path);
  }
  EXPECT_EQ(sent, (std::vector<std::string>{
                      "PUT " + list + "/members/" + sdk::md5Hex("person1@example.com"),
                      "POST " + list + "/members/" + sdk::md5Hex("person1@example.com") + "/tags",
                      "POST " + list,
                      "POST " + list + "/members/" + sdk::md5Hex("person3@example.com") + "/tags",
                      "POST " + list + "/members/" + sdk::md5Hex("person1@example.com") + "/events",
                  }));
  EXPECT_EQ(requests[1].body, R"({"tags":[{"name":"vip","status":"active"},)"
                              R"({"name":"Beta","status":"active"}]})");
  EXPECT_THAT(fake_.schemaViolations(), IsEmpty());
}

TEST_F(MailchimpDestinationTest, TagsThatFailRetryTheMemberAndTheRetryCompletesIt) {
  const json::object tags{{"tags_trait", "traits.tags"}};
  const std::string tags_path =
      "/3.0/lists/" + fake_.listId() + "/members/" + sdk::md5Hex("person2@example.com") + "/tags";
  fake_.failNext(1, 500, R"({"title":"Internal Server Error","status":500,"detail":"oops"})", {},
                 tags_path);
  auto first =
      deliver({identify(1, "", R"(,"tags":["a"])"), identify(2, "", R"(,"tags":["b"])")}, tags);
  EXPECT_TRUE(first[0].isDelivered()) << first[0].reason;
  EXPECT_EQ(first[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(first[1].reason, HasSubstr("oops"));
  ASSERT_TRUE(fake_.member("person2@example.com"));  // the member is written, its tags are not
  EXPECT_THAT(fake_.member("person2@example.com")->tags, IsEmpty());
  auto retry = deliver({identify(2, "", R"(,"tags":["b"])")}, tags);  // the engine's retry
  EXPECT_TRUE(retry[0].isDelivered()) << retry[0].reason;
  EXPECT_EQ(fake_.member("person2@example.com")->tags, (std::vector<std::string>{"b"}));
  EXPECT_EQ(fake_.member("person1@example.com")->tags, (std::vector<std::string>{"a"}));
}

TEST_F(MailchimpDestinationTest, AnUnsubscribedMemberStaysUnsubscribed) {
  fake_.addMember("person1@example.com", "unsubscribed");
  fake_.addMember("person2@example.com", "unsubscribed");
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  auto both = deliver({identify(2), identify(3)});
  ASSERT_TRUE(both[0].isDelivered());
  EXPECT_EQ(fake_.member("person1@example.com")->status, "unsubscribed");
  EXPECT_EQ(fake_.member("person2@example.com")->status, "unsubscribed");
  EXPECT_EQ(fake_.member("person3@example.com")->status, "subscribed");
}

TEST_F(MailchimpDestinationTest, AThousandPeopleTakeTwoRequests) {
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 1000; ++i) {
    batch.push_back(identify(i));
  }
  std::size_t delivered = 0;
  for (std::size_t first = 0; first < batch.size(); first += 500) {  // the plugin's default
    MailchimpDestination dest(cfg(), ctx_);
    std::vector<sdk::Event> part(batch.begin() + static_cast<long>(first),
                                 batch.begin() + static_cast<long>(first + 500));
    for (const auto& o : dest.deliver(part)) {
      delivered += o.isDelivered() ? 1 : 0;
    }
  }
  EXPECT_EQ(delivered, 1000u);
  EXPECT_EQ(fake_.memberCount(), 1000u);
  EXPECT_EQ(fake_.requestCount(), 2u);  // the issue's bound: 3
}

TEST_F(MailchimpDestinationTest, OneCallPastTheBatchLimitIsSplit) {
  std::vector<sdk::Event> batch;
  for (int i = 0; i < 1001; ++i) {
    batch.push_back(identify(i));
  }
  MailchimpDestination dest(cfg(), ctx_);
  auto outcomes = dest.deliver(batch);
  ASSERT_EQ(outcomes.size(), 1001u);
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.memberCount(), 1001u);
  const auto members = fake_.members();
  ASSERT_EQ(members.size(), 1001u);
  EXPECT_EQ(members.front().email_address, "person0@example.com");
  EXPECT_EQ(members.front().merge_fields.at("LNAME"), "Lovelace");
  auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 3u);
  std::vector<std::size_t> sizes;
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/3.0/lists/" + fake_.listId());
    sizes.push_back(json::parse(r.body).at("members").as_array().size());
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{500, 500, 1}));
}

TEST_F(MailchimpDestinationTest, AnInvalidMergeFieldFailsWithMailchimpsFieldError) {
  // Without the default's date transform, BIRTHDAY goes as "1990-04-01", which Mailchimp refuses.
  auto outcomes = deliver({identify(1)},
                          json::object{{"mapping", json::object{{"BIRTHDAY", "traits.birthday"}}}});
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("Your merge fields were invalid."));
  EXPECT_THAT(outcomes[0].reason, HasSubstr("BIRTHDAY: Please enter a valid date"));
  EXPECT_FALSE(fake_.member("person1@example.com"));
}

TEST_F(MailchimpDestinationTest, BatchErrorsFailOnlyTheirMembers) {
  auto outcomes = deliver({identify(1), identify(2, "not-an-email"), identify(3)});
  EXPECT_TRUE(outcomes[0].isDelivered());
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[1].reason, HasSubstr("looks fake or invalid"));
  EXPECT_THAT(outcomes[1].reason, HasSubstr("ERROR_GENERIC"));
  EXPECT_TRUE(outcomes[2].isDelivered());
  // A 200 that names a member nowhere: retried, not taken for delivered.
  fake_.failNext(1, 200,
                 R"({"new_members":[],"updated_members":[],"errors":[],"total_created":0})");
  auto silent = deliver({identify(4), identify(5)});
  EXPECT_EQ(silent[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(silent[0].reason, HasSubstr("neither added, updated nor refused"));
  // Too many recent signups passes: that member waits; a permanently deleted one does not.
  fake_.failNext(
      1, 200,
      R"({"new_members":[{"email_address":"person6@example.com"}],"updated_members":[],"errors":[)"
      R"({"email_address":"person7@example.com",)"
      R"("error":"person7@example.com has signed up to a lot of lists very recently; )"
      R"(we're not allowing more signups for now","error_code":"ERROR_GENERIC"},)"
      R"({"email_address":"person8@example.com",)"
      R"("error":"person8@example.com was permanently deleted and cannot be re-imported. )"
      R"(The contact must re-subscribe to get back on the list.","error_code":"ERROR_GENERIC"}]})");
  auto mixed = deliver({identify(6), identify(7), identify(8)});
  EXPECT_TRUE(mixed[0].isDelivered());
  EXPECT_EQ(mixed[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(mixed[1].retry_after, 15min);
  EXPECT_EQ(mixed[2].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(mixed[2].reason, HasSubstr("permanently deleted"));
}

TEST_F(MailchimpDestinationTest, NoEmailOrNoMemberFailWithAClearReason) {
  auto outcomes = deliver({event(R"({"type":"identify","userId":"u1","traits":{"name":"x"}})")});
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("no email"));
  auto not_member = deliver({track(8)});
  EXPECT_EQ(not_member[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(not_member[0].reason, HasSubstr("not a member of the audience"));
}

sdk::Event audienceEvent(int i, const std::string& name, const std::string& audience) {
  return event(R"({"type":"track","userId":"u)" + std::to_string(i) + R"(","event":")" + name +
               R"(","properties":{"audience":")" + audience + R"(","audience_key":"x"},)" +
               R"("context":{"traits":{"email":"person)" + std::to_string(i) +
               R"(@example.com"},"junction":{"profile_id":"p_)" + std::to_string(i) + R"("}}})");
}

sdk::Event snapshot(int i, const std::string& audiences, const std::string& extra = "") {
  return event(R"({"type":"identify","userId":"u)" + std::to_string(i) +
               R"(","traits":{"email":"person)" + std::to_string(i) + R"(@example.com")" + extra +
               R"(},"context":{"junction":{"profile_id":"p_1","audiences":)" + audiences + "}}}");
}

TEST(MailchimpRequestsTest, AudienceMembershipIsATagNamedAfterTheAudience) {
  auto entered = audienceTags(audienceEvent(1, "Audience Entered", "abandoned cart"));
  ASSERT_EQ(entered.size(), 1u);
  EXPECT_EQ(entered[0].name, "abandoned cart");
  EXPECT_TRUE(entered[0].active);
  auto exited = audienceTags(audienceEvent(1, "Audience Exited", "abandoned cart"));
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_FALSE(exited[0].active);
  EXPECT_THAT(audienceTags(track(1, "Audience Left")), IsEmpty());
  EXPECT_TRUE(isAudienceTrack(track(1, "Audience Entered")));
  EXPECT_THAT(audienceTags(track(1, "Audience Entered")), IsEmpty());  // no properties.audience
  auto snap = audienceTags(snapshot(1, R"({"abandoned cart":true,"vip":false,"odd":"yes"})"));
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[1].name, "vip");
  EXPECT_FALSE(snap[1].active);
  auto r = buildTags(snap, 4, "person1@example.com", "list1");
  EXPECT_EQ(r.path, "/lists/list1/members/" + sdk::md5Hex("person1@example.com") + "/tags");
  EXPECT_EQ(r.body, R"({"tags":[{"name":"abandoned cart","status":"active"},)"
                    R"({"name":"vip","status":"inactive"}]})");
  EXPECT_EQ(r.events, (std::vector<std::size_t>{4}));
  EXPECT_THAT(FakeMailchimp::validate("postListMemberTags", json::parse(r.body)), IsEmpty());
}

TEST_F(MailchimpDestinationTest, AudienceTracksAndSnapshotsSetAudienceTags) {
  const json::object tags{{"tags_trait", "traits.tags"}};
  // A snapshot merges with tags_trait's tags (the snapshot wins for a name in both), in one
  // request after the member is written.
  auto first = deliver({snapshot(1, R"({"abandoned cart":true,"vip":false,"churned":false})",
                                 R"(,"tags":["vip","beta"])")},
                       tags);
  ASSERT_TRUE(first[0].isDelivered()) << first[0].reason;
  EXPECT_EQ(fake_.member("person1@example.com")->tags,
            (std::vector<std::string>{"beta", "abandoned cart"}));
  auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[1].body, R"({"tags":[{"name":"vip","status":"inactive"},)"
                              R"({"name":"beta","status":"active"},)"
                              R"({"name":"abandoned cart","status":"active"},)"
                              R"({"name":"churned","status":"inactive"}]})");
  // Entered / Exited tracks are tag requests, not member events.
  fake_.clearRequests();
  auto tracks = deliver({audienceEvent(1, "Audience Exited", "abandoned cart"),
                         audienceEvent(1, "Audience Entered", "high value")});
  for (const auto& o : tracks) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  EXPECT_EQ(fake_.member("person1@example.com")->tags,
            (std::vector<std::string>{"beta", "high value"}));
  EXPECT_EQ(fake_.memberEventCount(), 0u);
  requests = fake_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].path, "/3.0/lists/" + fake_.listId() + "/members/" +
                                  sdk::md5Hex("person1@example.com") + "/tags");
  EXPECT_EQ(requests[0].body, R"({"tags":[{"name":"abandoned cart","status":"inactive"}]})");
  EXPECT_EQ(ctx_.metrics().counterValue("junction_mailchimp_requests_total",
                                        {{"endpoint", "member_tags"}, {"status", "204"}}),
            3u);
  // A snapshot alone (scheduled mode) keeps the tags in step.
  ASSERT_TRUE(deliver({snapshot(1, R"({"abandoned cart":true,"high value":false})")})[0]
                  .isDelivered());
  EXPECT_EQ(fake_.member("person1@example.com")->tags,
            (std::vector<std::string>{"beta", "abandoned cart"}));
  EXPECT_THAT(fake_.schemaViolations(), IsEmpty());
}

TEST_F(MailchimpDestinationTest, AudienceTagsOffKeepsMemberEvents) {
  const json::object off{{"audience_tags", false}};
  ASSERT_TRUE(deliver({identify(1)}, off)[0].isDelivered());
  fake_.clearRequests();
  auto outcomes = deliver({audienceEvent(1, "Audience Entered", "abandoned cart"),
                           snapshot(1, R"({"abandoned cart":true})")},
                          off);
  for (const auto& o : outcomes) {
    EXPECT_TRUE(o.isDelivered()) << o.reason;
  }
  ASSERT_EQ(fake_.memberEventCount(), 1u);
  EXPECT_EQ(fake_.memberEvents()[0].name, "Audience_Entered");
  EXPECT_EQ(fake_.memberEvents()[0].properties.at("audience"), "abandoned cart");
  EXPECT_THAT(fake_.member("person1@example.com")->tags, IsEmpty());
  for (const auto& r : fake_.requests()) {
    EXPECT_THAT(r.path, Not(HasSubstr("/tags")));
  }
}

TEST_F(MailchimpDestinationTest, AudienceEventsWithoutEmailMemberOrAudienceFail) {
  auto no_email = deliver({event(
      R"({"type":"track","userId":"u1","event":"Audience Entered",)"
      R"("properties":{"audience":"vip","audience_key":"vip"},"context":{"junction":{}}})")});
  EXPECT_EQ(no_email[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(no_email[0].reason, HasSubstr("no email"));
  // Not a member: Mailchimp's 404 to the tags request fails the event, as for member events.
  auto not_member = deliver({audienceEvent(8, "Audience Entered", "vip")});
  EXPECT_EQ(not_member[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(not_member[0].reason, HasSubstr("not a member of the audience"));
  EXPECT_THAT(not_member[0].reason, HasSubstr("Resource Not Found"));
  auto no_audience = deliver({track(8, "Audience Exited")});
  EXPECT_EQ(no_audience[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(no_audience[0].reason, HasSubstr("properties.audience"));
  // Mailchimp's other answers take the usual outcomes: 5xx retries, 429 throttles.
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  fake_.failNext(1, 503, R"({"title":"Service Unavailable","status":503,"detail":"busy"})");
  auto busy = deliver({audienceEvent(1, "Audience Entered", "vip")});
  EXPECT_EQ(busy[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(busy[0].reason, HasSubstr("busy"));
  fake_.failNext(1, 500, R"({"title":"Internal Server Error","status":500,"detail":"oops"})", {},
                 "/3.0/lists/" + fake_.listId() + "/members/" +
                     sdk::md5Hex("person1@example.com") + "/tags");
  auto snap = deliver({snapshot(1, R"({"vip":true})")});
  EXPECT_EQ(snap[0].kind, sdk::Outcome::Kind::Retry);  // the member is written, the tags retry
  EXPECT_TRUE(deliver({snapshot(1, R"({"vip":true})")})[0].isDelivered());
  EXPECT_EQ(fake_.member("person1@example.com")->tags, (std::vector<std::string>{"vip"}));
}

TEST_F(MailchimpDestinationTest, A429ThrottlesAndStopsTheCallsOtherRequests) {
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  fake_.failNext(
      1, 429,
      R"({"type":"https://mailchimp.com/developer/marketing/docs/errors/",)"
      R"("title":"Too Many Requests",)"
      R"("status":429,"detail":"You have exceeded the limit of 10 simultaneous connections.",)"
      R"("instance":"x"})",
      {{"Retry-After", "3"}});
  auto outcomes = deliver({identify(2), track(1)});
  EXPECT_EQ(outcomes[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(outcomes[0].retry_after, 3s);
  EXPECT_THAT(outcomes[0].reason, HasSubstr("simultaneous connections"));
  EXPECT_EQ(outcomes[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(ctx_.throttles(), (std::vector<std::chrono::milliseconds>{3s}));
  EXPECT_TRUE(ctx_.log().contains(sdk::LogLevel::Warn, "rate limit"));
  EXPECT_EQ(fake_.memberEventCount(), 0u);
}

TEST_F(MailchimpDestinationTest, ServerErrorsRetryAKeyRefusedFailsAndGarbageRetries) {
  fake_.failNext(1, 503, "<html>maintenance</html>", {{"Retry-After", "7"}});
  auto o503 = deliver({identify(1), identify(2)});
  EXPECT_EQ(o503[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(o503[1].kind, sdk::Outcome::Kind::Retry);
  EXPECT_EQ(o503[0].retry_after, 7s);
  EXPECT_THAT(o503[0].reason, HasSubstr("503"));
  EXPECT_TRUE(ctx_.throttles().empty()) << "a 5xx is not the account's rate limit";

  MailchimpConfig wrong = cfg();
  wrong.api_key = "ffffffffffffffffffffffffffffffff-us6";
  MailchimpDestination bad(wrong, ctx_);
  std::vector<sdk::Event> one{identify(1)};
  auto o401 = bad.deliver(one);
  EXPECT_EQ(o401[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(o401[0].reason, HasSubstr("authentication failed"));
  EXPECT_THAT(o401[0].reason, HasSubstr("API Key Invalid"));
  EXPECT_THAT(o401[0].reason, Not(HasSubstr("ffffffff")));
  EXPECT_TRUE(ctx_.log().contains(sdk::LogLevel::Error, "refused the API key"));
  EXPECT_FALSE(ctx_.log().contains("ffffffff")) << "the key reached the log";
  EXPECT_FALSE(ctx_.log().contains(sdk::base64Encode("junction:" + wrong.api_key)));

  fake_.failNext(1, 200, "<<not json>>");
  auto garbage = deliver({identify(3), identify(4)});
  EXPECT_EQ(garbage[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(garbage[0].reason, HasSubstr("not JSON"));
  fake_.failNext(1, 200, "<html>proxy page</html>");
  auto garbled_put = deliver({identify(5)});
  EXPECT_EQ(garbled_put[0].kind, sdk::Outcome::Kind::Retry);
  EXPECT_THAT(garbled_put[0].reason, HasSubstr("not the member"));
}

TEST_F(MailchimpDestinationTest, ASlowVendorTimesOutAndAnOutageLosesNothing) {
  fake_.setDelay(1s);
  auto slow = deliver({identify(1)}, json::object{{"timeout", 300}});
  EXPECT_EQ(slow[0].kind, sdk::Outcome::Kind::Retry);
  fake_.setDelay(0ms);
  fake_.setDown(true);
  EXPECT_EQ(deliver({identify(2)})[0].kind, sdk::Outcome::Kind::Retry);
  fake_.setDown(false);
  EXPECT_TRUE(deliver({identify(2)})[0].isDelivered());
  EXPECT_TRUE(fake_.member("person2@example.com"));
}

TEST(MailchimpConnectionsTest, AtMostMaxConnectionsRequestsAreInFlight) {
  // The fake answers 429 past 3 requests in flight; each answer takes 150 ms.
  FakeMailchimp fake(FakeMailchimp::Options{.max_connections = 3});
  fake.setDelay(150ms);
  auto run = [&](std::int64_t max_connections) {
    sdk::testing::FakeDestinationContext ctx;
    auto c = config(fake.baseUrl(), fake.apiKey(), fake.listId(),
                    json::object{{"max_connections", max_connections}});
    MailchimpDestination dest(c, ctx);
    std::vector<std::thread> threads;
    std::atomic<int> delivered{0};
    for (int i = 0; i < 9; ++i) {
      threads.emplace_back([&, i] {
        std::vector<sdk::Event> one{identify(i)};
        delivered += dest.deliver(one)[0].isDelivered() ? 1 : 0;
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    return delivered.load();
  };
  EXPECT_EQ(run(3), 9) << "requests in flight past max_connections";
  EXPECT_LT(run(9), 9) << "the fake lets more connections through than it allows";
}

TEST_F(MailchimpDestinationTest, ErasureDeletesTheMemberPermanently) {
  ASSERT_TRUE(deliver({identify(1)})[0].isDelivered());
  MailchimpDestination dest(cfg(), ctx_);
  EXPECT_TRUE(dest.supportsErasure());
  EXPECT_TRUE(
      dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = "Person1@Example.com"})
          .isDelivered());
  EXPECT_FALSE(fake_.member("person1@example.com"));
  EXPECT_EQ(fake_.deleted(), (std::vector<std::string>{"person1@example.com"}));
  // Mailchimp keeps a permanently deleted address out: identify fails, to the dead letters.
  auto again = deliver({identify(1)});
  EXPECT_EQ(again[0].kind, sdk::Outcome::Kind::Failed);
  EXPECT_THAT(again[0].reason, HasSubstr("Forgotten Email Not Subscribed"));
  EXPECT_TRUE(
      dest.erase(sdk::Person{.user_id = "", .anonymous_id = "", .email = "person1@example.com"})
          .isDelivered());  // already gone
  auto no_email = dest.erase(sdk::Person{.user_id = "u1", .anonymous_id = "", .email = ""});
  EXPECT_EQ(no_email.kind, sdk::Outcome::Kind::Failed);
}

// The fake's own contract: what Mailchimp answers to requests the plugin never sends.
class FakeMailchimpContractTest : public ::testing::Test {
 protected:
  sdk::HttpClientResponse send(const std::string& method, const std::string& path,
                               const std::string& body, const std::string& key) {
    sdk::HttpClientRequest r;
    r.method = method;
    r.url = fake_.baseUrl() + path;
    r.body = body;
    if (!key.empty()) {
      r.headers.set("Authorization", "Basic " + sdk::base64Encode("anyone:" + key));
    }
    r.headers.set("Content-Type", "application/json");
    return ctx_.http().send(r);
  }
  sdk::HttpClientResponse send(const std::string& method, const std::string& path,
                               const std::string& body) {
    return send(method, path, body, fake_.apiKey());
  }
  static json::object problemOf(const sdk::HttpClientResponse& r) {
    auto body = json::parse(r.body).as_object();
    for (const char* key : {"type", "title", "status", "detail", "instance"}) {
      EXPECT_TRUE(body.contains(key)) << key << " missing from " << r.body;
    }
    EXPECT_EQ(body.at("status"), r.status);
    return body;
  }
  std::string memberPath(const std::string& email) {
    return "/lists/" + fake_.listId() + "/members/" + sdk::md5Hex(email);
  }

  FakeMailchimp fake_;
  sdk::testing::FakeDestinationContext ctx_;
};

TEST_F(FakeMailchimpContractTest, AuthListAndPathsAreCheckedAsMailchimpDoes) {
  const std::string put = R"({"email_address":"a@example.com","status_if_new":"subscribed"})";
  auto missing = send("PUT", memberPath("a@example.com"), put, "");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(problemOf(missing).at("title"), "API Key Missing");
  auto wrong = send("PUT", memberPath("a@example.com"), put, "0000-us6");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(problemOf(wrong).at("title"), "API Key Invalid");
  EXPECT_EQ(send("PUT", "/lists/other/members/" + sdk::md5Hex("a@example.com"), put).status, 404);
  auto mismatch = send("PUT", memberPath("b@example.com"), put);
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_THAT(std::string(problemOf(mismatch).at("detail").as_string()),
              HasSubstr("subscriber hash"));
  EXPECT_EQ(fake_.memberCount(), 0u);
  EXPECT_EQ(send("PUT", memberPath("a@example.com"), put).status, 200);
  EXPECT_EQ(fake_.member("A@example.com")->status, "subscribed");
  EXPECT_EQ(send("POST", memberPath("nobody@example.com") + "/events", R"({"name":"ab"})").status,
            404);
  EXPECT_EQ(send("POST", memberPath("a@example.com") + "/actions/delete-permanent", "").status,
            204);
  EXPECT_EQ(send("POST", memberPath("a@example.com") + "/actions/delete-permanent", "").status,
            404);
}

TEST_F(FakeMailchimpContractTest, BodiesAreValidatedAgainstTheSchemasAndMergeFieldTypes) {
  auto no_status = send("PUT", memberPath("a@example.com"), R"({"email_address":"a@example.com"})");
  EXPECT_EQ(no_status.status, 400);
  auto problem = problemOf(no_status);
  EXPECT_EQ(problem.at("title"), "Invalid Resource");
  ASSERT_TRUE(problem.contains("errors"));
  EXPECT_THAT(json::serialize(problem.at("errors")), HasSubstr("status_if_new"));
  EXPECT_THAT(fake_.schemaViolations(), Not(IsEmpty()));

  auto bad_fields = send("PUT", memberPath("a@example.com"),
                         R"({"email_address":"a@example.com","status_if_new":"subscribed",)"
                         R"("merge_fields":{"BIRTHDAY":"13/01","ADDRESS":{"addr1":"1 Main St"}}})");
  EXPECT_EQ(bad_fields.status, 400);
  auto errors = problemOf(bad_fields).at("errors").as_array();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(fake_.memberCount(), 0u);

  EXPECT_EQ(send("POST", "/lists/" + fake_.listId(), "{not json").status, 400);
  json::array members;
  for (int i = 0; i < 501; ++i) {
    members.push_back(json::object{{"email_address", "p" + std::to_string(i) + "@example.com"},
                                   {"status", "subscribed"}});
  }
  auto too_many =
      send("POST", "/lists/" + fake_.listId(),
           json::serialize(json::object{{"members", members}, {"update_existing", true}}));
  EXPECT_EQ(too_many.status, 400);
  EXPECT_THAT(std::string(problemOf(too_many).at("detail").as_string()), HasSubstr("500"));
  EXPECT_EQ(fake_.memberCount(), 0u);

  // Without update_existing, a member already there is an ERROR_CONTACT_EXISTS.
  fake_.addMember("p1@example.com", "unsubscribed");
  auto exists = send("POST", "/lists/" + fake_.listId(),
                     R"({"members":[{"email_address":"p1@example.com","status":"subscribed"},)"
                     R"({"email_address":"p2@example.com","status":"subscribed"}]})");
  ASSERT_EQ(exists.status, 200);
  auto answer = json::parse(exists.body);
  EXPECT_THAT(FakeMailchimp::validate("postListsId.out", answer), IsEmpty()) << exists.body;
  EXPECT_THAT(FakeMailchimp::validate("postListsId.out", json::parse(R"({"new_members":5})")),
              Not(IsEmpty()));
  EXPECT_EQ(answer.at("errors").at(0).at("error_code"), "ERROR_CONTACT_EXISTS");
  EXPECT_EQ(answer.at("new_members").as_array().size(), 1u);
  EXPECT_EQ(fake_.member("p1@example.com")->status, "unsubscribed");
}

TEST(FakeMailchimpRateTest, RequestsPastTheRateGet429) {
  FakeMailchimp fake(FakeMailchimp::Options{.requests_per_second = 2});
  sdk::testing::FakeDestinationContext ctx;
  std::vector<int> statuses;
  for (int i = 0; i < 4; ++i) {
    sdk::HttpClientRequest r;
    r.method = "POST";
    r.url = fake.baseUrl() + "/lists/" + fake.listId() + "/members/" +
            sdk::md5Hex("nobody@example.com") + "/events";
    r.body = R"({"name":"ab"})";
    r.headers.set("Authorization", "Basic " + sdk::base64Encode("x:" + fake.apiKey()));
    statuses.push_back(ctx.http().send(r).status);
  }
  EXPECT_EQ(statuses, (std::vector<int>{404, 404, 429, 429}));
  EXPECT_THAT(fake.requests().back().body, HasSubstr("ab"));
}

}  // namespace
}  // namespace junction::plugins::mailchimp
