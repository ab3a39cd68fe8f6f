// Audiences (core/audiences/audience.h): every form of a definition and every error with its
// line and key path; comparisons; performed and not_performed windows; the abandoned cart (a
// not_performed waiting after its performed sibling); changesAt against a brute-force scan of the
// clock; the event history's folding, pruning, bound and merge; late events.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "core/audiences/audience.h"

namespace junction::core::audiences {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;
constexpr std::int64_t kT = 1'800'000'000'000;  // 2027-01-15

config::EnvLookup fakeEnv(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

struct Parsed {
  std::vector<Audience> audiences;
  config::ConfigErrors errors;
};

Parsed parse(const std::string& yaml, std::map<std::string, std::string> env = {}) {
  Parsed p;
  const YAML::Node root = YAML::Load(yaml);
  config::YamlChecker checker("junction.yaml", fakeEnv(std::move(env)), p.errors);
  p.audiences = readAudiences(checker, config::childOf(root, "audiences"));
  config::sortErrors(p.errors);
  return p;
}

std::vector<std::string> lines(const config::ConfigErrors& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) {
    out.push_back(e.toString());
  }
  return out;
}

// One audience `a` whose `where` is `condition` (YAML flow style), which must be valid.
Audience where(const std::string& condition) {
  Parsed p = parse("audiences:\n  a:\n    where: " + condition + "\n");
  EXPECT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
  EXPECT_EQ(p.audiences.size(), 1u);
  return p.audiences.empty() ? Audience{} : p.audiences[0];
}

// The single error of a document, as ConfigError::toString() writes it.
std::string errorOf(const std::string& yaml) {
  Parsed p = parse(yaml);
  EXPECT_EQ(p.errors.size(), 1u) << config::formatErrors(p.errors);
  EXPECT_TRUE(p.audiences.empty());
  return p.errors.empty() ? "" : p.errors[0].toString();
}

std::string errorOfWhere(const std::string& condition) {
  return errorOf("audiences:\n  a:\n    where: " + condition + "\n");
}

sdk::Event track(const std::string& name, std::int64_t ts) {
  json::object body{{"type", "track"},
                    {"event", name},
                    {"userId", "u1"},
                    {"timestamp", sdk::formatIsoTimestamp(ts)}};
  auto made = sdk::makeEvent(body, "web");
  EXPECT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->header().timestamp_ms, ts);
  return *made;
}

json::object traits(const std::string& text) { return json::parse(text).as_object(); }

std::vector<std::int64_t> times(const json::object& history, const std::string& name) {
  std::vector<std::int64_t> out;
  if (const json::value* list = history.if_contains(name)) {
    for (const auto& v : list->as_array()) {
      out.push_back(v.as_int64());
    }
  }
  return out;
}

// A history with the given timestamps per name, newest first, unpruned.
json::object historyOf(std::map<std::string, std::vector<std::int64_t>> events) {
  json::object h;
  for (auto& [name, list] : events) {
    std::sort(list.begin(), list.end(), std::greater<>());
    json::array a;
    for (auto ts : list) {
      a.push_back(ts);
    }
    h[name] = std::move(a);
  }
  return h;
}

// --- definitions --------------------------------------------------------------------------------

TEST(AudienceParseTest, ReadsEveryForm) {
  Parsed p = parse(R"(audiences:
  abandoned_cart:
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed, within: 30m}
        - any:
            - {trait: plan, equals: pro}
            - {trait: plan, not_equals: "free"}
            - {trait: seats, gt: 3}
            - {trait: seats, gte: 3.5}
            - {trait: address.city, lt: m}
            - {trait: orders_30d, lte: 10}
            - {trait: country, in: [fr, de, 4]}
            - {trait: tags, contains: vip}
            - {trait: email, exists: true}
        - not: {performed: {event: Refund Requested, count: 2}}
    destinations: [braze, customerio]
  vip users:
    where: {not_performed: {event: Login, within: 30d}}
)");
  ASSERT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
  ASSERT_EQ(p.audiences.size(), 2u);
  const Audience& cart = p.audiences[0];
  EXPECT_EQ(cart.name, "abandoned_cart");
  EXPECT_EQ(cart.key_path, "audiences.abandoned_cart");
  EXPECT_EQ(cart.mark.line, 2);
  EXPECT_THAT(cart.destinations, ElementsAre("braze", "customerio"));
  const Condition& all = cart.where;
  ASSERT_EQ(all.kind, Condition::Kind::All);
  ASSERT_EQ(all.children.size(), 4u);
  EXPECT_EQ(all.children[0].kind, Condition::Kind::Performed);
  EXPECT_EQ(all.children[0].event, "Product Added");
  EXPECT_EQ(all.children[0].within_ms, kHour);
  EXPECT_EQ(all.children[0].count, 1);
  EXPECT_EQ(all.children[0].key_path, "audiences.abandoned_cart.where.all[0]");
  EXPECT_EQ(all.children[0].mark.line, 5);
  EXPECT_EQ(all.children[1].kind, Condition::Kind::NotPerformed);
  EXPECT_EQ(all.children[1].within_ms, 30 * kMinute);
  const Condition& any = all.children[2];
  ASSERT_EQ(any.kind, Condition::Kind::Any);
  ASSERT_EQ(any.children.size(), 9u);
  using Op = Condition::Op;
  const std::vector<Op> ops{Op::Equals, Op::NotEquals, Op::Gt,       Op::Gte,   Op::Lt,
                            Op::Lte,    Op::In,        Op::Contains, Op::Exists};
  for (std::size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(any.children[i].kind, Condition::Kind::Compare) << i;
    EXPECT_EQ(any.children[i].op, ops[i]) << i;
  }
  EXPECT_EQ(any.children[0].value, json::value("pro"));
  EXPECT_EQ(any.children[1].value, json::value("free"));
  EXPECT_EQ(any.children[2].value, json::value(3));
  EXPECT_EQ(any.children[3].value, json::value(3.5));
  EXPECT_EQ(any.children[4].trait, "address.city");
  EXPECT_EQ(any.children[6].value, (json::array{"fr", "de", 4}));
  EXPECT_EQ(any.children[8].value, json::value(true));
  const Condition& negated = all.children[3];
  ASSERT_EQ(negated.kind, Condition::Kind::Not);
  ASSERT_EQ(negated.children.size(), 1u);
  EXPECT_EQ(negated.children[0].count, 2);
  EXPECT_EQ(negated.children[0].within_ms, 0);  // all time
  EXPECT_EQ(negated.children[0].key_path, "audiences.abandoned_cart.where.all[3].not");

  EXPECT_EQ(p.audiences[1].name, "vip users");
  EXPECT_TRUE(p.audiences[1].destinations.empty());
  EXPECT_EQ(p.audiences[1].where.kind, Condition::Kind::NotPerformed);
}

TEST(AudienceParseTest, TheReadmeExampleIsValid) {
  std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/core/audiences/README.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const auto start = readme.find("```yaml\n");
  ASSERT_NE(start, std::string::npos);
  const auto end = readme.find("```", start + 8);
  Parsed p = parse(readme.substr(start + 8, end - start - 8));
  ASSERT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
  ASSERT_EQ(p.audiences.size(), 2u);
  const json::object with_email = traits(R"({"email": "a@example.com"})");
  const json::object h = historyOf({{"Product Added", {kT}}});
  EXPECT_FALSE(isMember(p.audiences[0], with_email, h, kT + 30 * kMinute - 1));
  EXPECT_TRUE(isMember(p.audiences[0], with_email, h, kT + 30 * kMinute));
  EXPECT_FALSE(isMember(p.audiences[0], json::object{}, h, kT + 30 * kMinute));
  EXPECT_TRUE(isMember(p.audiences[1], traits(R"({"plan": "pro", "address": {"country": "DE"}})"),
                       historyOf({{"Login", {kT - 31 * kDay}}}), kT));
}

TEST(AudienceParseTest, NoAudiencesIsNoError) {
  EXPECT_TRUE(parse("").audiences.empty());
  EXPECT_TRUE(parse("").errors.empty());
  EXPECT_TRUE(parse("audiences:\n").errors.empty());
  EXPECT_TRUE(parse("audiences: {}\n").errors.empty());
}

TEST(AudienceParseTest, DurationsAndCounts) {
  EXPECT_EQ(where("{performed: {event: A, within: 90s}}").where.within_ms, 90'000);
  EXPECT_EQ(where("{performed: {event: A, within: 30d}}").where.within_ms, 30 * kDay);
  EXPECT_EQ(where("{performed: {event: A, within: 1500}}").where.within_ms, 1500);  // ms
  EXPECT_EQ(where("{performed: {event: A, count: 1000}}").where.count, 1000);
  EXPECT_EQ(where("{performed: {event: 404}}").where.event, "404");
  EXPECT_EQ(where("{performed: {event: \"${EVENT:-Signed Up}\"}}").where.event, "Signed Up");
}

TEST(AudienceParseTest, EveryErrorNamesItsLineAndKey) {
  EXPECT_EQ(errorOf("audiences: [a, b]\n"),
            "junction.yaml:1:12: audiences: expected a mapping of audience names to {where: "
            "CONDITION, destinations: [ids]}");
  EXPECT_THAT(errorOf("audiences:\n  Abandoned Cart:\n    where: {performed: {event: A}}\n"),
              HasSubstr("junction.yaml:2:3: audiences.Abandoned Cart: 'Abandoned Cart' is not "
                        "a valid audience name"));
  EXPECT_THAT(errorOf("audiences:\n  a: [x]\n"),
              HasSubstr("junction.yaml:2:6: audiences.a: expected {where: CONDITION"));
  EXPECT_EQ(errorOf("audiences:\n  a:\n    wher: {performed: {event: A}}\n    where: "
                    "{performed: {event: A}}\n"),
            "junction.yaml:3:5: audiences.a.wher: unknown key 'wher'; did you mean 'where'?");
  EXPECT_EQ(errorOf("audiences:\n  a:\n    destinations: [x]\n"),
            "junction.yaml:3:5: audiences.a.where: required: the condition a person must meet");
  EXPECT_EQ(errorOf("audiences:\n  a:\n    where: {performed: {event: A}}\n    destinations: x\n"),
            "junction.yaml:4:19: audiences.a.destinations: expected a list of destination ids");
  EXPECT_EQ(errorOf("audiences:\n  a:\n    where: {performed: {event: A}}\n"
                    "    destinations: [x, y, x]\n"),
            "junction.yaml:4:26: audiences.a.destinations[2]: destination 'x' is listed twice");
  EXPECT_EQ(errorOf("audiences:\n  a:\n    where: {performed: {event: A}}\n"
                    "    destinations: [x, [y]]\n"),
            "junction.yaml:4:23: audiences.a.destinations[1]: expected a destination id");
  Parsed twice = parse(
      "audiences:\n  a:\n    where: {performed: {event: A}}\n"
      "  a:\n    where: {performed: {event: B}}\n");
  EXPECT_THAT(lines(twice.errors),
              ElementsAre("junction.yaml:4:3: audiences.a: audience 'a' is defined twice"));
  ASSERT_EQ(twice.audiences.size(), 1u);
  EXPECT_EQ(twice.audiences[0].where.event, "A");

  // Conditions.
  EXPECT_THAT(errorOfWhere("[a]"),
              HasSubstr("junction.yaml:3:12: audiences.a.where: expected a condition: "));
  EXPECT_EQ(errorOfWhere("{all: []}"),
            "junction.yaml:3:18: audiences.a.where.all: expected a non-empty list of conditions");
  EXPECT_EQ(errorOfWhere("{any: {trait: a, exists: true}}"),
            "junction.yaml:3:18: audiences.a.where.any: expected a non-empty list of conditions");
  EXPECT_EQ(errorOfWhere("{all: [x]}"),
            "junction.yaml:3:19: audiences.a.where.all[0]: expected a condition: {all: [...]}, "
            "{any: [...]}, {not: ...}, {trait: PATH, OP: VALUE}, {performed: {...}} or "
            "{not_performed: {...}}");
  EXPECT_EQ(errorOfWhere("{any: [{performed: {event: A}}], all: [{performed: {event: B}}]}"),
            "junction.yaml:3:12: audiences.a.where: one condition per mapping (found any and "
            "all): combine conditions with all: [...] or any: [...]");
  EXPECT_EQ(errorOfWhere("{performd: {event: A}}"),
            "junction.yaml:3:13: audiences.a.where.performd: unknown key 'performd'; did you "
            "mean 'performed'?");
  EXPECT_EQ(errorOfWhere("{}"),
            "junction.yaml:3:12: audiences.a.where: expected one of all, any, not, trait, "
            "performed, not_performed");
  EXPECT_EQ(errorOfWhere("{not: }"),
            "junction.yaml:3:18: audiences.a.where.not: expected a condition: {all: [...]}, "
            "{any: [...]}, {not: ...}, {trait: PATH, OP: VALUE}, {performed: {...}} or "
            "{not_performed: {...}}");

  // Comparisons.
  EXPECT_EQ(errorOfWhere("{trait: plan}"),
            "junction.yaml:3:12: audiences.a.where: a comparison needs one of equals, "
            "not_equals, gt, gte, lt, lte, in, contains, exists");
  EXPECT_EQ(errorOfWhere("{trait: seats, gt: 1, lt: 5}"),
            "junction.yaml:3:12: audiences.a.where: one comparison per condition (found gt and "
            "lt): combine them with all: [...]");
  EXPECT_EQ(errorOfWhere("{equals: pro}"),
            "junction.yaml:3:12: audiences.a.where.trait: a comparison needs `trait`: the path "
            "of the trait compared");
  EXPECT_EQ(errorOfWhere("{trait: plan, equal: pro}"),
            "junction.yaml:3:26: audiences.a.where.equal: unknown key 'equal'; did you mean "
            "'equals'?");
  EXPECT_EQ(errorOfWhere("{trait: address..city, exists: true}"),
            "junction.yaml:3:20: audiences.a.where.trait: 'address..city' is not a trait path "
            "(names joined by '.', e.g. address.city)");
  EXPECT_EQ(errorOfWhere("{trait: [plan], exists: true}"),
            "junction.yaml:3:20: audiences.a.where.trait: expected a trait path such as plan "
            "or address.city");
  EXPECT_EQ(errorOfWhere("{trait: plan, equals: [pro]}"),
            "junction.yaml:3:34: audiences.a.where.equals: expected a string, a number or "
            "true/false (a missing trait: `exists: false`)");
  EXPECT_THAT(errorOfWhere("{trait: plan, equals: null}"),
              HasSubstr("junction.yaml:3:34: audiences.a.where.equals: expected a string"));
  EXPECT_EQ(errorOfWhere("{trait: seats, gt: true}"),
            "junction.yaml:3:31: audiences.a.where.gt: expected a number or a string to "
            "compare with");
  EXPECT_EQ(errorOfWhere("{trait: country, in: fr}"),
            "junction.yaml:3:33: audiences.a.where.in: expected a non-empty list of values");
  EXPECT_EQ(errorOfWhere("{trait: country, in: [fr, {x: 1}]}"),
            "junction.yaml:3:38: audiences.a.where.in[1]: expected a string, a number or "
            "true/false (a missing trait: `exists: false`)");
  EXPECT_EQ(errorOfWhere("{trait: email, exists: yes}"),
            "junction.yaml:3:35: audiences.a.where.exists: expected true or false");
  EXPECT_EQ(errorOfWhere("{performed: {event: A}, equals: 1}"),
            "junction.yaml:3:12: audiences.a.where.equals: `equals` compares a trait: it goes "
            "with `trait:`");

  // performed / not_performed.
  EXPECT_EQ(errorOfWhere("{performed: Product Added}"),
            "junction.yaml:3:24: audiences.a.where.performed: expected {event: NAME, within: "
            "DURATION, count: N}");
  EXPECT_EQ(errorOfWhere("{not_performed: [x]}"),
            "junction.yaml:3:28: audiences.a.where.not_performed: expected {event: NAME, "
            "within: DURATION}");
  EXPECT_EQ(errorOfWhere("{performed: {within: 1h}}"),
            "junction.yaml:3:24: audiences.a.where.performed.event: required: the name of the "
            "track event");
  EXPECT_EQ(errorOfWhere("{performed: {event: \"\"}}"),
            "junction.yaml:3:32: audiences.a.where.performed.event: expected the name of a "
            "track event");
  const std::string bad_duration =
      "expected a duration such as 30m, 1h or 30d (at most 3650d; without `within`: all time)";
  EXPECT_EQ(errorOfWhere("{performed: {event: A, within: 1 fortnight}}"),
            "junction.yaml:3:43: audiences.a.where.performed.within: " + bad_duration);
  EXPECT_EQ(errorOfWhere("{performed: {event: A, within: 0}}"),
            "junction.yaml:3:43: audiences.a.where.performed.within: " + bad_duration);
  EXPECT_EQ(errorOfWhere("{performed: {event: A, within: 3651d}}"),
            "junction.yaml:3:43: audiences.a.where.performed.within: " + bad_duration);
  EXPECT_EQ(errorOfWhere("{performed: {event: A, within: [1h]}}"),
            "junction.yaml:3:43: audiences.a.where.performed.within: " + bad_duration);
  EXPECT_EQ(errorOfWhere("{performed: {event: A, count: 0}}"),
            "junction.yaml:3:42: audiences.a.where.performed.count: expected how many times at "
            "least, 1 to 1000");
  EXPECT_EQ(errorOfWhere("{performed: {event: A, count: 1001}}"),
            "junction.yaml:3:42: audiences.a.where.performed.count: expected how many times at "
            "least, 1 to 1000");
  EXPECT_EQ(errorOfWhere("{performed: {event: A, count: 2.5}}"),
            "junction.yaml:3:42: audiences.a.where.performed.count: expected how many times at "
            "least, 1 to 1000");
  EXPECT_EQ(errorOfWhere("{performed: {event: A, cuont: 2}}"),
            "junction.yaml:3:35: audiences.a.where.performed.cuont: unknown key 'cuont'; did "
            "you mean 'count'?");
  EXPECT_EQ(errorOfWhere("{not_performed: {event: A, count: 2}}"),
            "junction.yaml:3:39: audiences.a.where.not_performed.count: `count` applies to "
            "performed (not_performed: not even once)");
  EXPECT_EQ(errorOfWhere("{performed: {event: A, event: B}}"),
            "junction.yaml:3:35: audiences.a.where.performed.event: given twice");
}

TEST(AudienceParseTest, TheWaitAfterAPerformedIsChecked) {
  // The issue's example path.
  EXPECT_EQ(errorOf(R"(audiences:
  abandoned_cart:
    where:
      all:
        - not_performed: {event: Order Completed, within: 30m}
        - performed: {event: Product Added, within: an hour}
)"),
            "junction.yaml:6:53: audiences.abandoned_cart.where.all[1].performed.within: "
            "expected a duration such as 30m, 1h or 30d (at most 3650d; without `within`: all "
            "time)");
  EXPECT_EQ(errorOf(R"(audiences:
  abandoned_cart:
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed}
)"),
            "junction.yaml:6:26: audiences.abandoned_cart.where.all[1].not_performed.within: "
            "required here: next to a performed, a not_performed is the wait after that event "
            "(audiences.abandoned_cart.where.all[0]), e.g. within: 30m");
  EXPECT_EQ(errorOf(R"(audiences:
  abandoned_cart:
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed, within: 2h}
)"),
            "junction.yaml:6:59: audiences.abandoned_cart.where.all[1].not_performed.within: "
            "waits 2h after the performed event, longer than its window (1h): the audience "
            "could never hold");
  // Alone, or nested below the `all`, a not_performed needs no within (never performed).
  EXPECT_EQ(where("{not_performed: {event: Order Completed}}").where.within_ms, 0);
  EXPECT_EQ(where("{all: [{performed: {event: A, within: 1h}}, {any: [{not_performed: {event: "
                  "B}}]}]}")
                .where.children.size(),
            2u);
  // The performed has no window: any wait is possible.
  EXPECT_EQ(where("{all: [{performed: {event: A}}, {not_performed: {event: B, within: 30d}}]}")
                .where.children.size(),
            2u);
}

TEST(AudienceParseTest, EveryErrorIsReportedAndOnlyBadAudiencesAreLeftOut) {
  Parsed p = parse(R"(audiences:
  good:
    where: {performed: {event: A}}
  bad:
    where:
      all:
        - {trait: plan, equals: [x]}
        - performed: {event: B, within: soon}
    destinations: [x, x]
  unset:
    where: {performed: {event: "${MISSING}"}}
)");
  ASSERT_EQ(p.audiences.size(), 1u);
  EXPECT_EQ(p.audiences[0].name, "good");
  EXPECT_THAT(lines(p.errors),
              ElementsAre(HasSubstr(":7:33: audiences.bad.where.all[0].equals:"),
                          HasSubstr(":8:41: audiences.bad.where.all[1].performed.within:"),
                          HasSubstr(":9:23: audiences.bad.destinations[1]:"),
                          HasSubstr(":11:32: audiences.unset.where.performed.event: environment "
                                    "variable MISSING is not set")));
}

TEST(AudienceParseTest, ParseAudiencesListsTheErrorsInItsResult) {
  const YAML::Node root = YAML::Load("audiences:\n  a:\n    where: {performed: {event: A}}\n");
  config::ConfigErrors errors;
  auto ok = parseAudiences(config::childOf(root, "audiences"), "x.yaml", errors);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->size(), 1u);

  const YAML::Node bad = YAML::Load("audiences:\n  a:\n    where: {}\n  b:\n    wher: {}\n");
  auto failed = parseAudiences(config::childOf(bad, "audiences"), "x.yaml", errors);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, sdk::ErrorCode::InvalidArgument);
  EXPECT_THAT(failed.error().message, HasSubstr("x.yaml:3:12: audiences.a.where: expected one"));
  EXPECT_THAT(failed.error().message, HasSubstr("x.yaml:5:5: audiences.b.wher: unknown key"));
  EXPECT_EQ(errors.size(), 3u);  // and b's missing where
}

TEST(AudienceParseTest, ReferencesAndCatalogWarnings) {
  Parsed p = parse(R"(audiences:
  cart:
    where:
      all:
        - performed: {event: Product Addded, within: 1h}
        - not_performed: {event: Order Completed, within: 30m}
        - any:
            - {trait: address.city, equals: Paris}
            - {trait: orders_30d, gt: 0}
            - not: {trait: plann, equals: free}
)");
  ASSERT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
  const auto refs = references(p.audiences[0]);
  ASSERT_EQ(refs.size(), 5u);
  EXPECT_EQ(refs[0].kind, AudienceReference::Kind::Event);
  EXPECT_EQ(refs[0].name, "Product Addded");
  EXPECT_EQ(refs[0].key_path, "audiences.cart.where.all[0].performed.event");
  EXPECT_EQ(refs[0].mark.line, 5);
  EXPECT_EQ(refs[0].mark.column, 30);
  EXPECT_EQ(refs[1].key_path, "audiences.cart.where.all[1].not_performed.event");
  EXPECT_EQ(refs[2].kind, AudienceReference::Kind::Trait);
  EXPECT_EQ(refs[2].name, "address.city");
  EXPECT_EQ(refs[2].key_path, "audiences.cart.where.all[2].any[0].trait");
  EXPECT_EQ(refs[4].key_path, "audiences.cart.where.all[2].any[2].not.trait");

  const json::object catalog = json::parse(R"({"sources": {"web": {"events": [
      {"type": "track", "name": "Product Added", "keys": [{"key": "sku", "in": "properties"}]},
      {"type": "track", "name": "Order Completed", "keys": []},
      {"type": "identify", "name": "", "keys": [{"key": "plan", "in": "traits"},
                                                {"key": "address", "in": "traits"}]},
      {"type": "page", "name": "Home", "keys": []}]}}})")
                                   .as_object();
  KnownNames known = knownNamesFromCatalog(catalog);
  EXPECT_THAT(known.events, ElementsAre("Order Completed", "Product Added"));
  EXPECT_THAT(known.traits, ElementsAre("address", "plan"));
  known.traits.insert("orders_30d");  // a computed trait, added by the caller
  EXPECT_THAT(lines(unknownNameWarnings(p.audiences, "junction.yaml", known)),
              ElementsAre("junction.yaml:5:30: audiences.cart.where.all[0].performed.event: the "
                          "event catalog has no track event 'Product Addded'; did you mean "
                          "'Product Added'?",
                          "junction.yaml:10:28: audiences.cart.where.all[2].any[2].not.trait: the "
                          "event catalog has no trait 'plann'; did you mean 'plan'?"));
  // A catalog that saw no identify yet checks no trait; an empty one nothing.
  known.traits.clear();
  EXPECT_EQ(unknownNameWarnings(p.audiences, "junction.yaml", known).size(), 1u);
  EXPECT_TRUE(unknownNameWarnings(p.audiences, "junction.yaml", KnownNames{}).empty());
}

// --- comparisons --------------------------------------------------------------------------------

TEST(AudienceCompareTest, NumbersCompareByValueStringsExactly) {
  const json::object t = traits(R"({"seats": 3, "ratio": 3.0, "price": 9.5, "plan": "Pro",
      "big": 18446744073709551615, "neg": -1, "started": "2026-03-01T00:00:00Z",
      "flag": true, "address": {"city": "Paris"}})");
  auto is = [&](const std::string& condition) {
    return isMember(where(condition), t, json::object{}, kT);
  };
  EXPECT_TRUE(is("{trait: seats, equals: 3.0}"));
  EXPECT_TRUE(is("{trait: ratio, equals: 3}"));
  EXPECT_TRUE(is("{trait: price, gt: 9}"));
  EXPECT_TRUE(is("{trait: price, lt: 10}"));
  EXPECT_TRUE(is("{trait: seats, gte: 3}"));
  EXPECT_TRUE(is("{trait: seats, lte: 3.0}"));
  EXPECT_FALSE(is("{trait: seats, gt: 3}"));
  EXPECT_FALSE(is("{trait: seats, lt: 2.5}"));
  EXPECT_TRUE(is("{trait: big, gt: 9223372036854775807}"));
  EXPECT_TRUE(is("{trait: big, gt: -5}"));
  EXPECT_TRUE(is("{trait: neg, lt: 18446744073709551615}"));
  EXPECT_FALSE(is("{trait: seats, equals: \"3\"}"));  // a string is not a number
  EXPECT_TRUE(is("{trait: seats, not_equals: \"3\"}"));
  EXPECT_TRUE(is("{trait: plan, equals: Pro}"));
  EXPECT_FALSE(is("{trait: plan, equals: pro}"));
  EXPECT_TRUE(is("{trait: plan, not_equals: pro}"));
  EXPECT_FALSE(is("{trait: plan, gt: 3}"));  // a string and a number do not order
  EXPECT_FALSE(is("{trait: plan, lte: 3}"));
  EXPECT_TRUE(is("{trait: started, gte: \"2026-01-01\"}"));  // strings order byte-wise
  EXPECT_FALSE(is("{trait: started, lt: \"2026-01-01\"}"));
  EXPECT_TRUE(is("{trait: flag, equals: true}"));
  EXPECT_FALSE(is("{trait: flag, equals: 1}"));
  EXPECT_TRUE(is("{trait: address.city, equals: Paris}"));
  EXPECT_TRUE(is("{trait: address.city, in: [Lyon, Paris]}"));
  EXPECT_FALSE(is("{trait: address.city, in: [Lyon, paris]}"));
  EXPECT_TRUE(is("{trait: seats, in: [1, 3.0]}"));
  EXPECT_TRUE(is("{trait: plan, contains: r}"));
  EXPECT_FALSE(is("{trait: plan, contains: R}"));
  EXPECT_FALSE(is("{trait: seats, contains: 3}"));
  EXPECT_TRUE(is("{trait: address, exists: true}"));
  EXPECT_FALSE(is("{trait: address.city.name, exists: true}"));
}

TEST(AudienceCompareTest, ArraysContain) {
  const json::object t = traits(R"({"tags": ["vip", "beta"], "scores": [1, 2.5], "name": "x"})");
  auto is = [&](const std::string& condition) {
    return isMember(where(condition), t, json::object{}, kT);
  };
  EXPECT_TRUE(is("{trait: tags, contains: vip}"));
  EXPECT_FALSE(is("{trait: tags, contains: vi}"));  // an element, not a substring
  EXPECT_TRUE(is("{trait: scores, contains: 1.0}"));
  EXPECT_TRUE(is("{trait: scores, contains: 2.5}"));
  EXPECT_FALSE(is("{trait: scores, contains: 2}"));
}

TEST(AudienceCompareTest, AMissingTraitOnlyMeetsExistsFalseAndNotEquals) {
  for (const char* text : {R"({})", R"({"plan": null})", R"({"address": "Paris"})"}) {
    SCOPED_TRACE(text);
    const json::object t = traits(text);
    auto is = [&](const std::string& condition) {
      return isMember(where(condition), t, json::object{}, kT);
    };
    const std::string path =
        std::string(text).find("address") != std::string::npos ? "address.city" : "plan";
    EXPECT_FALSE(is("{trait: " + path + ", equals: pro}"));
    EXPECT_TRUE(is("{trait: " + path + ", not_equals: pro}"));
    EXPECT_FALSE(is("{trait: " + path + ", gt: 0}"));
    EXPECT_FALSE(is("{trait: " + path + ", gte: 0}"));
    EXPECT_FALSE(is("{trait: " + path + ", lt: 0}"));
    EXPECT_FALSE(is("{trait: " + path + ", lte: 0}"));
    EXPECT_FALSE(is("{trait: " + path + ", in: [pro, 0]}"));
    EXPECT_FALSE(is("{trait: " + path + ", contains: p}"));
    EXPECT_FALSE(is("{trait: " + path + ", exists: true}"));
    EXPECT_TRUE(is("{trait: " + path + ", exists: false}"));
  }
}

TEST(AudienceCompareTest, AllAnyNot) {
  const json::object t = traits(R"({"plan": "pro", "seats": 5})");
  auto is = [&](const std::string& condition) {
    return isMember(where(condition), t, json::object{}, kT);
  };
  EXPECT_TRUE(is("{all: [{trait: plan, equals: pro}, {trait: seats, gt: 2}]}"));
  EXPECT_FALSE(is("{all: [{trait: plan, equals: pro}, {trait: seats, gt: 9}]}"));
  EXPECT_TRUE(is("{any: [{trait: plan, equals: free}, {trait: seats, gt: 2}]}"));
  EXPECT_FALSE(is("{any: [{trait: plan, equals: free}, {trait: seats, gt: 9}]}"));
  EXPECT_TRUE(is("{not: {trait: plan, equals: free}}"));
  EXPECT_FALSE(is("{not: {not: {trait: plan, equals: free}}}"));
}

// --- event windows ------------------------------------------------------------------------------

TEST(AudienceEventTest, PerformedCountsWithinItsWindow) {
  const Audience a = where("{performed: {event: Viewed, within: 1h, count: 2}}");
  const json::object none;
  const json::object h = historyOf({{"Viewed", {kT, kT + 10 * kMinute}}, {"Other", {kT}}});
  EXPECT_FALSE(isMember(a, none, h, kT));  // one of two
  EXPECT_FALSE(isMember(a, none, h, kT + 10 * kMinute - 1));
  EXPECT_TRUE(isMember(a, none, h, kT + 10 * kMinute));
  EXPECT_TRUE(isMember(a, none, h, kT + kHour));  // windows are closed: now - 1h <= ts
  EXPECT_FALSE(isMember(a, none, h, kT + kHour + 1));
  EXPECT_EQ(changesAt(a, none, h, kT), kT + 10 * kMinute);
  EXPECT_EQ(changesAt(a, none, h, kT + 10 * kMinute), kT + kHour + 1);
  EXPECT_EQ(changesAt(a, none, h, kT + kHour + 1), kNever);

  // All time, and count 1 by default.
  const Audience ever = where("{performed: {event: Viewed}}");
  EXPECT_FALSE(isMember(ever, none, h, kT - 1));  // a future event does not count yet
  EXPECT_EQ(changesAt(ever, none, h, kT - 1), kT);
  EXPECT_TRUE(isMember(ever, none, h, kT + 1000 * kDay));
  EXPECT_EQ(changesAt(ever, none, h, kT), kNever);
  EXPECT_FALSE(isMember(ever, none, json::object{}, kT));
}

TEST(AudienceEventTest, NotPerformedAloneLooksBackFromNow) {
  const Audience a = where("{not_performed: {event: Login, within: 30d}}");
  const json::object none;
  EXPECT_TRUE(isMember(a, none, json::object{}, kT));
  EXPECT_EQ(changesAt(a, none, json::object{}, kT), kNever);
  const json::object h = historyOf({{"Login", {kT}}});
  EXPECT_TRUE(isMember(a, none, h, kT - 1));
  EXPECT_EQ(changesAt(a, none, h, kT - 1), kT);
  EXPECT_FALSE(isMember(a, none, h, kT));
  EXPECT_FALSE(isMember(a, none, h, kT + 30 * kDay));
  EXPECT_EQ(changesAt(a, none, h, kT), kT + 30 * kDay + 1);
  EXPECT_TRUE(isMember(a, none, h, kT + 30 * kDay + 1));

  const Audience never = where("{not_performed: {event: Order Completed}}");
  EXPECT_TRUE(isMember(never, none, json::object{}, kT));
  EXPECT_FALSE(isMember(never, none, historyOf({{"Order Completed", {kT - 400 * kDay}}}), kT));
}

// The issue's example: "Product Added" within 1 h, and no "Order Completed" within 30 min after
// it.
constexpr const char* kAbandonedCart = R"(audiences:
  abandoned_cart:
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed, within: 30m}
    destinations: [braze]
)";

class AbandonedCartTest : public ::testing::Test {
 protected:
  AbandonedCartTest() {
    Parsed p = parse(kAbandonedCart);
    EXPECT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
    set_ = AudienceSet(std::move(p.audiences));
  }

  const Audience& cart() const { return *set_.find("abandoned_cart"); }
  void fold(const std::string& name, std::int64_t ts, std::int64_t now) {
    foldEvent(set_, history_, track(name, ts), now);
  }
  bool member(std::int64_t now) const { return isMember(cart(), traits_, history_, now); }
  std::int64_t next(std::int64_t now) const { return changesAt(cart(), traits_, history_, now); }

  AudienceSet set_;
  json::object history_;
  json::object traits_;
};

TEST_F(AbandonedCartTest, EntersOnceTheWaitPassesWithoutAnOrderAndLeavesWithTheAdd) {
  fold("Product Added", kT, kT);
  EXPECT_FALSE(member(kT));
  EXPECT_EQ(next(kT), kT + 30 * kMinute);
  EXPECT_FALSE(member(kT + 30 * kMinute - 1));
  EXPECT_TRUE(member(kT + 30 * kMinute));
  EXPECT_EQ(next(kT + 30 * kMinute), kT + kHour + 1);
  EXPECT_TRUE(member(kT + kHour));
  EXPECT_FALSE(member(kT + kHour + 1));
  EXPECT_EQ(next(kT + kHour + 1), kNever);
}

TEST_F(AbandonedCartTest, AnOrderInTheWaitKeepsThePersonOut) {
  fold("Product Added", kT, kT);
  fold("Order Completed", kT + 10 * kMinute, kT + 10 * kMinute);
  for (std::int64_t t = kT; t <= kT + 2 * kHour; t += kMinute) {
    EXPECT_FALSE(member(t)) << (t - kT) / kMinute;
  }
  EXPECT_EQ(next(kT + 10 * kMinute), kNever);
  // An order at the wait's last millisecond still counts; one before the add does not.
  history_ = {};
  fold("Order Completed", kT - 1, kT);
  fold("Product Added", kT, kT);
  fold("Order Completed", kT + 30 * kMinute, kT + 30 * kMinute);
  EXPECT_FALSE(member(kT + 30 * kMinute));
  EXPECT_EQ(next(kT + 30 * kMinute), kNever);
}

TEST_F(AbandonedCartTest, ASecondAddLaterEntersAgain) {
  fold("Product Added", kT, kT);
  fold("Order Completed", kT + 10 * kMinute, kT + 10 * kMinute);
  fold("Product Added", kT + 2 * kHour, kT + 2 * kHour);
  EXPECT_FALSE(member(kT + 2 * kHour));
  EXPECT_EQ(next(kT + 2 * kHour), kT + 2 * kHour + 30 * kMinute);
  EXPECT_TRUE(member(kT + 2 * kHour + 30 * kMinute));
  EXPECT_FALSE(member(kT + 3 * kHour + 1));

  // A second add while the first is waiting: the person enters with the first and stays until
  // the second leaves the window.
  history_ = {};
  fold("Product Added", kT, kT);
  fold("Product Added", kT + 20 * kMinute, kT + 20 * kMinute);
  EXPECT_EQ(next(kT + 20 * kMinute), kT + 30 * kMinute);
  EXPECT_TRUE(member(kT + 30 * kMinute));
  EXPECT_EQ(next(kT + 30 * kMinute), kT + 20 * kMinute + kHour + 1);
  // An order at 35 min comes after the first add's wait but in the second's: the first add is
  // an abandoned cart until it leaves the window, the second is not.
  fold("Order Completed", kT + 35 * kMinute, kT + 35 * kMinute);
  EXPECT_TRUE(member(kT + 35 * kMinute));
  EXPECT_EQ(next(kT + 35 * kMinute), kT + kHour + 1);
  EXPECT_FALSE(member(kT + kHour + 1));
  EXPECT_EQ(next(kT + kHour + 1), kNever);
}

TEST_F(AbandonedCartTest, ALateOrderIsPutInItsPlace) {
  fold("Product Added", kT, kT);
  EXPECT_TRUE(member(kT + 40 * kMinute));
  // Sent at 40 min, dated 12 min: the wait was not clean after all.
  fold("Order Completed", kT + 12 * kMinute, kT + 40 * kMinute);
  EXPECT_FALSE(member(kT + 40 * kMinute));
  // A late add, dated 30 min before now: a member at once.
  fold("Product Added", kT + 15 * kMinute, kT + 45 * kMinute);
  EXPECT_TRUE(member(kT + 45 * kMinute));
  EXPECT_THAT(times(history_, "Product Added"), ElementsAre(kT + 15 * kMinute, kT));
}

TEST(AudienceEventTest, TheWaitAnchorsToTheFirstPerformedAndItsCountThEvent) {
  // Two performed siblings: the wait follows the first; the second is a plain condition.
  const Audience a = where(
      "{all: [{performed: {event: A, within: 1h}}, {performed: {event: B, within: 1d}}, "
      "{not_performed: {event: C, within: 10m}}]}");
  const json::object none;
  json::object h = historyOf({{"A", {kT}}, {"C", {kT - 30 * kMinute}}});
  EXPECT_FALSE(isMember(a, none, h, kT + 10 * kMinute));  // no B
  h = historyOf({{"A", {kT}}, {"B", {kT - 5 * kHour}}, {"C", {kT + 5 * kMinute}}});
  EXPECT_FALSE(isMember(a, none, h, kT + 10 * kMinute));  // C followed A
  h = historyOf({{"A", {kT}}, {"B", {kT + 5 * kMinute}}});
  EXPECT_TRUE(isMember(a, none, h, kT + 10 * kMinute));  // B's time does not matter
  EXPECT_EQ(changesAt(a, none, h, kT), kT + 10 * kMinute);

  // count: 2 — the wait runs from the second event in the window.
  const Audience twice = where(
      "{all: [{performed: {event: A, within: 1h, count: 2}}, "
      "{not_performed: {event: C, within: 10m}}]}");
  h = historyOf({{"A", {kT, kT + 20 * kMinute}}, {"C", {kT + 5 * kMinute}}});
  EXPECT_FALSE(isMember(twice, none, h, kT + 29 * kMinute));
  EXPECT_EQ(changesAt(twice, none, h, kT + 20 * kMinute), kT + 30 * kMinute);
  EXPECT_TRUE(isMember(twice, none, h, kT + 30 * kMinute));
  // Once the first A left the window, the second is the first of one: not enough.
  EXPECT_EQ(changesAt(twice, none, h, kT + 30 * kMinute), kT + kHour + 1);

  // The same event on both sides: once, and not again within a day (the anchor itself aside).
  const Audience once = where(
      "{all: [{performed: {event: A, within: 7d}}, {not_performed: {event: A, within: 1d}}]}");
  h = historyOf({{"A", {kT}}});
  EXPECT_TRUE(isMember(once, none, h, kT + kDay));
  h = historyOf({{"A", {kT, kT + kHour}}});
  EXPECT_FALSE(isMember(once, none, h, kT + kDay));
  EXPECT_TRUE(isMember(once, none, h, kT + kDay + kHour));  // the second one, clean
}

TEST(AudienceEventTest, ANestedNotPerformedIsNotAnchored) {
  // Inside an `any` below the `all`, the not_performed looks back from now.
  const Audience a = where(
      "{all: [{performed: {event: A, within: 1h}}, {any: [{not_performed: {event: C, within: "
      "10m}}, {trait: vip, equals: true}]}]}");
  const json::object h = historyOf({{"A", {kT}}, {"C", {kT - 5 * kMinute}}});
  EXPECT_FALSE(isMember(a, json::object{}, h, kT));
  EXPECT_EQ(changesAt(a, json::object{}, h, kT), kT + 5 * kMinute + 1);
  EXPECT_TRUE(isMember(a, json::object{}, h, kT + 5 * kMinute + 1));
  EXPECT_TRUE(isMember(a, traits(R"({"vip": true})"), h, kT));
}

// changesAt is exact: for random histories and a set of definitions, the first time the answer
// differs found by trying every millisecond.
TEST(AudienceEventTest, ChangesAtIsTheFirstFlipOfTheClock) {
  Parsed p = parse(R"(audiences:
  a: {where: {performed: {event: A, within: 20, count: 2}}}
  b: {where: {not_performed: {event: B, within: 15}}}
  c: {where: {all: [{performed: {event: A, within: 30}}, {not_performed: {event: B, within: 10}}]}}
  d:
    where:
      all:
        - performed: {event: A, within: 30, count: 2}
        - not_performed: {event: B, within: 10}
        - not_performed: {event: A, within: 5}
  e:
    where:
      any:
        - all: [{performed: {event: A, within: 25}}, {not_performed: {event: B, within: 25}}]
        - not: {performed: {event: B, within: 7, count: 3}}
  f: {where: {all: [{performed: {event: A}}, {not_performed: {event: B, within: 12}}]}}
  g:
    where:
      all:
        - {trait: plan, equals: pro}
        - performed: {event: B, within: 9}
        - not: {all: [{performed: {event: A, within: 40}}, {not_performed: {event: B, within: 3}}]}
)");
  ASSERT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
  ASSERT_EQ(p.audiences.size(), 7u);
  const json::object t = traits(R"({"plan": "pro"})");
  std::mt19937 random(20);
  std::uniform_int_distribution<std::int64_t> at(0, 100);
  std::uniform_int_distribution<int> how_many(0, 6);
  int flips = 0;
  for (int round = 0; round < 300; ++round) {
    std::map<std::string, std::vector<std::int64_t>> events;
    for (const char* name : {"A", "B"}) {
      for (int i = how_many(random); i > 0; --i) {
        events[name].push_back(at(random));
      }
    }
    const json::object h = historyOf(events);
    const std::int64_t now = at(random);
    for (const auto& audience : p.audiences) {
      const bool before = isMember(audience, t, h, now);
      std::int64_t expected = kNever;
      for (std::int64_t probe = now + 1; probe < 400; ++probe) {
        if (isMember(audience, t, h, probe) != before) {
          expected = probe;
          break;
        }
      }
      flips += expected != kNever ? 1 : 0;
      ASSERT_EQ(changesAt(audience, t, h, now), expected)
          << audience.name << " at " << now << " with " << json::serialize(h);
    }
  }
  EXPECT_GT(flips, 300);  // the scan found changes: the test tests something
}

// --- the history --------------------------------------------------------------------------------

TEST(AudienceHistoryTest, RetentionIsTheLongestWindowReferencingTheEvent) {
  Parsed p = parse(R"(audiences:
  a:
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed, within: 30m}
  b: {where: {performed: {event: Viewed, within: 2d}}}
  c: {where: {any: [{performed: {event: Viewed, within: 7d}}, {not_performed: {event: Login}}]}}
  d: {where: {trait: plan, equals: pro}}
)");
  ASSERT_TRUE(p.errors.empty()) << config::formatErrors(p.errors);
  const AudienceSet set(std::move(p.audiences));
  EXPECT_EQ(set.audiences().size(), 4u);
  ASSERT_NE(set.find("d"), nullptr);
  EXPECT_EQ(set.find("x"), nullptr);
  // An order matters as long as an add it could follow: the add's window, not the wait.
  EXPECT_THAT(set.retention(),
              ElementsAre(std::pair<const std::string, std::int64_t>("Login", kNever),
                          std::pair<const std::string, std::int64_t>("Order Completed", kHour),
                          std::pair<const std::string, std::int64_t>("Product Added", kHour),
                          std::pair<const std::string, std::int64_t>("Viewed", 7 * kDay)));
  EXPECT_TRUE(set.tracks("Viewed"));
  EXPECT_FALSE(set.tracks("Page Viewed"));
}

TEST(AudienceHistoryTest, FoldingKeepsTrackedEventsNewestFirstAndPrunes) {
  Parsed p = parse(kAbandonedCart);
  const AudienceSet set(std::move(p.audiences));
  json::object h;
  foldEvent(set, h, track("Product Added", kT), kT);
  foldEvent(set, h, track("Product Viewed", kT), kT);  // no audience needs it
  foldEvent(set, h, track("Product Added", kT + 20 * kMinute), kT + 20 * kMinute);
  foldEvent(set, h, track("Product Added", kT + 10 * kMinute), kT + 20 * kMinute);  // late
  EXPECT_EQ(json::serialize(h), R"({"Product Added":[)" + std::to_string(kT + 20 * kMinute) + "," +
                                    std::to_string(kT + 10 * kMinute) + "," + std::to_string(kT) +
                                    "]}");
  // An identify, a page named like a tracked event: only pruning.
  json::object body{{"type", "page"},
                    {"name", "Product Added"},
                    {"userId", "u1"},
                    {"timestamp", sdk::formatIsoTimestamp(kT + kHour + 5 * kMinute)}};
  foldEvent(set, h, *sdk::makeEvent(body, "web"), kT + kHour + 5 * kMinute);
  EXPECT_THAT(times(h, "Product Added"), ElementsAre(kT + 20 * kMinute, kT + 10 * kMinute));
  // Older than the retention when it arrives: not kept.
  foldEvent(set, h, track("Order Completed", kT), kT + kHour + 5 * kMinute);
  EXPECT_FALSE(h.contains("Order Completed"));
  // Names no audience tracks any more (a configuration change) are dropped.
  h["Gone"] = json::array{kT};
  pruneHistory(set, h, kT + kHour + 20 * kMinute);
  EXPECT_THAT(times(h, "Product Added"), ElementsAre(kT + 20 * kMinute));  // closed window
  pruneHistory(set, h, kT + kHour + 20 * kMinute + 1);
  EXPECT_FALSE(h.contains("Gone"));
  EXPECT_FALSE(h.contains("Product Added"));  // both left the window: the name goes too
  EXPECT_TRUE(h.empty());
}

TEST(AudienceHistoryTest, EachListIsBounded) {
  Parsed p = parse("audiences:\n  a: {where: {performed: {event: A, count: 3}}}\n");
  const AudienceSet set(std::move(p.audiences));
  json::object h;
  for (std::int64_t i = 0; i < 1100; ++i) {
    foldEvent(set, h, track("A", kT + i), kT + i);  // all time: only the bound prunes
  }
  const auto kept = times(h, "A");
  ASSERT_EQ(kept.size(), kMaxHistoryEvents);
  EXPECT_EQ(kept.front(), kT + 1099);
  EXPECT_EQ(kept.back(), kT + 100);
  // A late event older than everything kept is not kept.
  foldEvent(set, h, track("A", kT), kT + 2000);
  EXPECT_EQ(times(h, "A").back(), kT + 100);
  EXPECT_TRUE(isMember(set.audiences()[0], json::object{}, h, kT + 2000));
}

TEST(AudienceHistoryTest, MergingTwoPeople) {
  Parsed p = parse(kAbandonedCart);
  const AudienceSet set(std::move(p.audiences));
  json::object into = historyOf({{"Product Added", {kT, kT + 20 * kMinute}}, {"Gone", {kT}}});
  const json::object from = historyOf({{"Product Added", {kT + 10 * kMinute, kT + 20 * kMinute}},
                                       {"Order Completed", {kT + 5 * kMinute}},
                                       {"Other", {kT}}});
  mergeHistory(set, into, from);
  EXPECT_THAT(times(into, "Product Added"),
              ElementsAre(kT + 20 * kMinute, kT + 20 * kMinute, kT + 10 * kMinute, kT));
  EXPECT_THAT(times(into, "Order Completed"), ElementsAre(kT + 5 * kMinute));
  EXPECT_FALSE(into.contains("Other"));
  EXPECT_FALSE(into.contains("Gone"));
  // The order (at 5 min) spoils the first add, not the others.
  EXPECT_TRUE(isMember(*set.find("abandoned_cart"), json::object{}, into, kT + 40 * kMinute));

  // Bounded: 700 + 700 keep the newest 1000.
  std::vector<std::int64_t> a;
  std::vector<std::int64_t> b;
  for (std::int64_t i = 0; i < 700; ++i) {
    a.push_back(kT + 2 * i);
    b.push_back(kT + 2 * i + 1);
  }
  json::object big = historyOf({{"Product Added", a}});
  mergeHistory(set, big, historyOf({{"Product Added", b}}));
  const auto kept = times(big, "Product Added");
  ASSERT_EQ(kept.size(), kMaxHistoryEvents);
  EXPECT_EQ(kept.front(), kT + 1399);
  EXPECT_EQ(kept.back(), kT + 400);
  EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end(), std::greater<>()));
}

TEST(AudienceHistoryTest, AMalformedHistoryIsReadSafely) {
  const Audience a = where("{performed: {event: A, within: 1h}}");
  json::object h = json::parse(R"({"A": [1, "x", null, 2.5]})").as_object();
  h["A"].as_array().push_back(kT);
  EXPECT_TRUE(isMember(a, json::object{}, h, kT));
  h["A"] = "not a list";
  EXPECT_FALSE(isMember(a, json::object{}, h, kT));
  EXPECT_EQ(changesAt(a, json::object{}, h, kT), kNever);
}

}  // namespace
}  // namespace junction::core::audiences
