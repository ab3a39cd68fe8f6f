// The fast ingest path against the tree path: for every input both take, the same events (same
// header, same JSON once parsed); whatever the fast path declines, the tree path decides. Hand
// written cases for each rule of enrichment, then randomly generated events and bodies.

#include "splice.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <random>

#include "junction/sdk/json.h"
#include "junction/sdk/json_scan.h"

namespace junction::plugins::http {
namespace {

namespace json = boost::json;

constexpr std::int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00.000Z

EnrichInput makeInput(ClientIpPolicy policy = ClientIpPolicy::Keep,
                      std::string_view ip = "203.0.113.7") {
  EnrichInput in;
  in.received_at_ms = kNow;
  in.client_ip = ip;
  in.ip_policy = policy;
  return in;
}

struct TreeResult {
  bool ok = false;
  sdk::Event event;
  bool generated = false;
  std::string error;
};

TreeResult treePath(std::string_view text, const EnrichInput& in) {
  TreeResult r;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    r.error = "not an object";
    return r;
  }
  auto enriched = enrichEvent(v.as_object(), in);
  if (!enriched) {
    r.error = enriched.error().message;
    return r;
  }
  auto event = toEvent(v.as_object(), "web", in.received_at_ms);
  if (!event) {
    r.error = event.error().message;
    return r;
  }
  r.ok = true;
  r.event = std::move(event).value();
  r.generated = enriched->generated_message_id;
  return r;
}

// Compares the fast path with the tree path on one event; returns whether the fast path took it.
bool checkSame(std::string_view text, const EnrichInput& in, bool in_batch = false) {
  const SpliceInput splice_input = makeSpliceInput(in, in_batch);
  auto fast = spliceEvent(text, splice_input, "web");
  TreeResult tree = treePath(text, in);
  if (!fast) {
    return false;
  }
  EXPECT_TRUE(tree.ok) << "the fast path accepted what the tree path refuses (" << tree.error
                       << "): " << text;
  if (!tree.ok) {
    return true;
  }
  const sdk::EventHeader& a = fast->event.header();
  const sdk::EventHeader& b = tree.event.header();
  EXPECT_EQ(fast->generated_message_id, tree.generated) << text;
  EXPECT_EQ(a.type, b.type) << text;
  EXPECT_EQ(a.user_id, b.user_id) << text;
  EXPECT_EQ(a.anonymous_id, b.anonymous_id) << text;
  EXPECT_EQ(a.name, b.name) << text;
  EXPECT_EQ(a.source_id, b.source_id) << text;
  EXPECT_EQ(a.timestamp_ms, b.timestamp_ms) << text;
  EXPECT_EQ(a.received_at_ms, b.received_at_ms) << text;
  boost::system::error_code ec;
  json::value fast_json = json::parse(fast->event.json(), ec);
  EXPECT_FALSE(ec) << "the fast path wrote invalid JSON: " << fast->event.json();
  if (ec) {
    return true;
  }
  json::value tree_json = json::parse(tree.event.json());
  if (tree.generated) {
    EXPECT_EQ(a.message_id.size(), 36u);
    EXPECT_EQ(fast_json.at("messageId"), json::value(a.message_id)) << fast->event.json();
    tree_json.as_object()["messageId"] = a.message_id;  // random on both sides
  } else {
    EXPECT_EQ(a.message_id, b.message_id) << text;
  }
  EXPECT_EQ(fast_json, tree_json) << "input: " << text << "\nfast:  " << fast->event.json()
                                  << "\ntree:  " << tree.event.json();
  return true;
}

TEST(SpliceTest, WhatSdksSendIsSpliced) {
  const EnrichInput in = makeInput();
  for (const char* text : {
           // the benchmark's shape
           R"({"type":"track","event":"Product Viewed","userId":"user-1","properties":{"price":19.99},"context":{"library":{"name":"wrk","version":"4"}},"timestamp":"2026-01-01T00:00:00.000Z","messageId":"m-1"})",
           // analytics-node: originalTimestamp? no; timestamp + messageId + _metadata
           R"({"type":"identify","userId":"u","traits":{"email":"a@b.c"},"context":{"library":{"name":"@segment/analytics-node","version":"3.1.0"}},"messageId":"node-1","timestamp":"2026-01-01T00:00:00.000Z","integrations":{},"_metadata":{"nodeVersion":"20"}})",
           // analytics-next: anonymousId, page with name, sentAt on the event, writeKey inside
           R"({"type":"page","name":"Home","anonymousId":"a-1","properties":{"path":"/"},"context":{"page":{"url":"https://x"}},"messageId":"ajs-1","timestamp":"2025-12-31T23:59:58.000Z","sentAt":"2025-12-31T23:59:59.000Z","writeKey":"k","integrations":{}})",
           R"({"type":"alias","userId":"new","previousId":"old"})",
           R"({"type":"group","userId":"u","groupId":"g","traits":{"name":"Acme"}})",
           R"({"type":"screen","userId":"u","name":"Main"})",
           R"( { "type" : "track" , "event" : "E" , "userId" : "u" , "context" : { } } )",
       }) {
    EXPECT_TRUE(checkSame(text, in)) << "declined: " << text;
  }
}

TEST(SpliceTest, EveryEnrichmentRuleMatchesTheTreePath) {
  const std::vector<std::string> events = {
      R"({"type":"track","event":"E","userId":"u"})",
      R"({"type":"track","event":"E","userId":"u","messageId":null})",
      R"({"type":"track","event":"E","userId":"u","messageId":""})",
      R"({"type":"track","event":"E","userId":"u","messageId":"m","writeKey":"secret"})",
      R"({"type":"track","event":"E","anonymousId":"a","userId":""})",
      R"({"type":"track","event":"E","userId":"u","timestamp":"2025-06-01T10:00:00Z"})",
      R"({"type":"track","event":"E","userId":"u","timestamp":"2025-06-01T10:00:00Z","sentAt":"2025-06-01T10:00:05Z"})",
      R"({"type":"track","event":"E","userId":"u","originalTimestamp":"2025-06-01T10:00:00+02:00","sentAt":"2025-06-01T10:00:05Z"})",
      R"({"type":"track","event":"E","userId":"u","originalTimestamp":"2025-06-01T10:00:00Z","timestamp":null})",
      R"({"type":"track","event":"E","userId":"u","originalTimestamp":null,"timestamp":"2025-06-01T10:00:00Z","sentAt":"2025-06-01T10:00:01Z"})",
      R"({"type":"track","event":"E","userId":"u","timestamp":null,"receivedAt":"1999-01-01T00:00:00Z"})",
      R"({"type":"track","event":"E","userId":"u","timestamp":"1970-01-01T00:00:00.000Z"})",
      R"({"type":"track","event":"E","userId":"u","context":{"ip":"198.51.100.9"}})",
      R"({"type":"track","event":"E","userId":"u","context":{"ip":""}})",
      R"({"type":"track","event":"E","userId":"u","context":{"ip":5}})",
      R"({"type":"track","event":"E","userId":"u","context":null})",
      R"({"type":"track","event":"E","userId":"u","context":"x"})",
      R"({"type":"track","event":"E","userId":"u","context":{"a":{"ip":"nested"}}})",
      R"({"type":"page","anonymousId":"a","name":null})",
      R"({"type":"page","anonymousId":"a","name":7})",
      R"({"type":"track","event":"Caf\u00e9","userId":"u"})",
      R"({"type":"track","event":"Café ☕","userId":"ü"})",
      R"({"type":"track","event":"E","userId":12})",
      R"({"type":"track","event":"E","userId":"u","messageId":42})",
      R"({"type":"track","userId":"u"})",
      R"({"type":"track","event":"","userId":"u"})",
      R"({"type":"alias","userId":"u"})",
      R"({"type":"group","userId":"u","groupId":""})",
      R"({"type":"nope","userId":"u"})",
      R"({"type":"track","event":"E"})",
      R"({"type":"track","event":"E","userId":"u","timestamp":"yesterday"})",
      R"({"type":"track","event":"E","userId":"u","timestamp":12})",
      R"({"type":"track","event":"E","userId":"u","sentAt":"garbage","timestamp":"2025-06-01T10:00:00Z"})",
      R"({"type":"track","event":"E","userId":"u","type":"page"})",
      R"({"type":"track","event":"E","userId":"u","properties":{"a":1,"a":2}})",
      R"({"type":"track","event":"E","user\u0049d":"u","anonymousId":"a"})",
      R"({"type":"track","event":"E","userId":"u","timestamp":"0001-01-01T00:00:00Z","sentAt":"9999-01-01T00:00:00Z"})",
      R"({})",
  };
  int spliced = 0;
  for (ClientIpPolicy policy :
       {ClientIpPolicy::Keep, ClientIpPolicy::Drop, ClientIpPolicy::Truncate}) {
    for (std::string_view ip : {"203.0.113.7", "", "2001:db8::1", "weird\"ip"}) {
      for (bool forced : {false, true}) {
        for (bool batch_sent_at : {false, true}) {
          EnrichInput in = makeInput(policy, ip);
          if (forced) {
            in.forced_type = sdk::EventType::Identify;
          }
          if (batch_sent_at) {
            in.batch_sent_at = "2025-06-01T10:00:07.250Z";
          }
          for (const auto& e : events) {
            spliced += checkSame(e, in, batch_sent_at) ? 1 : 0;
          }
        }
      }
    }
  }
  EXPECT_GT(spliced, 600);  // most cases take the fast path; the rest were compared anyway
}

// Random events from pieces SDKs send and pieces they should not, with random spacing.
class EventGenerator {
 public:
  explicit EventGenerator(std::uint32_t seed) : rng_(seed) {}

  std::string event() {
    std::vector<std::string> members;
    auto maybe = [&](std::uint32_t percent) { return pick(100) < percent; };
    if (maybe(95)) members.push_back(kv("type", oneOf({"\"track\"", "\"identify\"", "\"page\"",
                                                     "\"screen\"", "\"group\"", "\"alias\"",
                                                     "\"bogus\"", "3", "null"})));
    if (maybe(70)) members.push_back(kv("event", oneOf({"\"Clicked\"", "\"\"", "null", "\"Caf\\u00e9\"", "5"})));
    if (maybe(30)) members.push_back(kv("name", oneOf({"\"Home\"", "null", "\"Ünï\"", "true"})));
    if (maybe(70)) members.push_back(kv("userId", oneOf({"\"u-1\"", "\"\"", "null", "77", "\"a\\\"b\"", "{}"})));
    if (maybe(50)) members.push_back(kv("anonymousId", oneOf({"\"anon\"", "\"\"", "null"})));
    if (maybe(60)) members.push_back(kv("messageId", oneOf({"\"m-" + std::to_string(pick(1000)) + "\"", "\"\"", "null", "12"})));
    if (maybe(50)) members.push_back(kv("timestamp", time()));
    if (maybe(30)) members.push_back(kv("originalTimestamp", time()));
    if (maybe(30)) members.push_back(kv("sentAt", time()));
    if (maybe(10)) members.push_back(kv("receivedAt", time()));
    if (maybe(20)) members.push_back(kv("writeKey", oneOf({"\"k\"", "\"k\\u0041\"", "7"})));
    if (maybe(60)) members.push_back(kv("context", context()));
    if (maybe(20)) members.push_back(kv("previousId", oneOf({"\"old\"", "\"\"", "1"})));
    if (maybe(20)) members.push_back(kv("groupId", oneOf({"\"g\"", "\"\"", "2"})));
    if (maybe(60)) members.push_back(kv("properties", anyValue(3)));
    if (maybe(10)) members.push_back(kv("type", "\"track\""));  // a repeated key
    std::shuffle(members.begin(), members.end(), rng_);
    std::string out = ws() + "{";
    for (std::size_t i = 0; i < members.size(); ++i) {
      out += (i > 0 ? "," : "") + ws() + members[i] + ws();
    }
    return out + "}" + ws();
  }

  EnrichInput input() {
    // EnrichInput holds views: the address lives in the generator, like sent_at_.
    client_ip_ = oneOf({"203.0.113.7", "", "::1"});
    EnrichInput in = makeInput(
        pick(3) == 0 ? ClientIpPolicy::Keep
                     : (pick(2) == 0 ? ClientIpPolicy::Drop : ClientIpPolicy::Truncate),
        client_ip_);
    in.received_at_ms = kNow + pick(100000);
    if (pick(4) == 0) {
      in.forced_type = sdk::EventType::Track;
    }
    if (pick(3) == 0) {
      sent_at_ = "2025-06-01T10:00:0" + std::to_string(pick(10)) + ".5Z";
      in.batch_sent_at = sent_at_;
    }
    return in;
  }

  std::uint32_t pick(std::uint32_t n) { return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_); }

 private:
  // The first option (what SDKs send) more often than the others.
  std::string oneOf(std::initializer_list<std::string> options) {
    if (pick(100) < 55) {
      return *options.begin();
    }
    auto it = options.begin();
    std::advance(it, pick(static_cast<std::uint32_t>(options.size())));
    return *it;
  }
  std::string ws() { return pick(4) == 0 ? oneOf({" ", "\n", "\t ", "\r\n  "}) : ""; }
  std::string kv(const std::string& key, const std::string& value) {
    return "\"" + key + "\"" + ws() + ":" + ws() + value;
  }
  std::string time() {
    return oneOf({"\"2025-06-01T10:00:00.000Z\"", "\"2025-06-01T12:00:00+02:00\"", "null",
                  "\"not a time\"", "\"2025-06-01\"", "1748772000", "\"2025-06-01T10:00:00.1234Z\""});
  }
  std::string context() {
    return oneOf({"{}", "{ }", "{\"ip\":\"198.51.100.4\"}", "{\"ip\":\"\"}", "{\"ip\":null}",
                  "{\"library\":{\"name\":\"x\"},\"locale\":\"fr\"}", "null", "[]",
                  "{\"ip\":\"1.2.3.4\",\"ip\":\"5.6.7.8\"}", "{\"i\\u0070\":\"1.1.1.1\"}",
                  "{\"consent\":{\"categoryPreferences\":{\"ads\":true}}}"});
  }
  std::string anyValue(int depth) {
    switch (pick(depth > 0 ? 9 : 6)) {
      case 0: return "null";
      case 1: return pick(2) ? "true" : "false";
      case 2: return oneOf({"0", "-1", "3.25", "1e5", "-0.5E-3", "12345678901234567890"});
      case 3: return oneOf({"\"\"", "\"plain\"", "\"esc\\n\\t\\\"\\\\\\/\"", "\"\\u00e9\\u20ac\"", "\"日本\""});
      case 4: return "\"s" + std::to_string(pick(100)) + "\"";
      case 5: return "\"" + std::string(pick(40), 'x') + "\"";
      case 6: case 7: {
        std::string out = "{";
        const int n = static_cast<int>(pick(4));
        for (int i = 0; i < n; ++i) {
          out += (i > 0 ? "," : "") + kv("k" + std::to_string(pick(5)), anyValue(depth - 1));
        }
        return out + "}";
      }
      default: {
        std::string out = "[";
        const int n = static_cast<int>(pick(4));
        for (int i = 0; i < n; ++i) {
          out += (i > 0 ? "," : "") + ws() + anyValue(depth - 1);
        }
        return out + "]";
      }
    }
  }

  std::mt19937 rng_;
  std::string sent_at_;
  std::string client_ip_;
};

TEST(SpliceTest, RandomEventsMatchTheTreePath) {
  EventGenerator gen(20261128);
  int spliced = 0;
  constexpr int kEvents = 20000;
  for (int i = 0; i < kEvents; ++i) {
    const std::string text = gen.event();
    const EnrichInput in = gen.input();
    spliced += checkSame(text, in, in.batch_sent_at.has_value()) ? 1 : 0;
    if (HasFailure()) {
      break;
    }
  }
  // Both paths were compared on every event the fast one took; make sure that was many.
  EXPECT_GT(spliced, kEvents / 20);
}

TEST(SpliceTest, ScanBodyAgreesWithParseBody) {
  EventGenerator gen(7);
  for (int i = 0; i < 3000; ++i) {
    std::string body;
    const int shape = static_cast<int>(gen.pick(6));
    std::string items;
    const int n = static_cast<int>(gen.pick(5));
    for (int k = 0; k < n; ++k) {
      items += (k > 0 ? "," : "") + (gen.pick(10) == 0 ? std::string("42") : gen.event());
    }
    switch (shape) {
      case 0: body = "[" + items + "]"; break;
      case 1: body = R"({"batch":[)" + items + R"(],"sentAt":"2025-06-01T10:00:00Z","writeKey":"wk"})"; break;
      case 2: body = R"({"writeKey":"w\u0041","batch":[)" + items + "]}"; break;
      case 3: body = R"({"batch":[)" + items + R"(],"context":{"ip":"1.1.1.1"}})"; break;
      case 4: body = R"({"batch":[)" + items + R"(],"batch":[]})"; break;
      default: body = R"({ "batch" : [ )" + items + R"( ] , "integrations" : null })"; break;
    }
    if (gen.pick(8) == 0 && !body.empty()) {
      body.resize(gen.pick(static_cast<std::uint32_t>(body.size())));  // truncated
    }
    auto scanned = scanBody(Endpoint::Batch, body);
    auto parsed = parseBody(Endpoint::Batch, body);
    if (!scanned) {
      continue;
    }
    ASSERT_TRUE(parsed.ok()) << "scanned what the tree path refuses: " << body;
    auto tree_items = parsed->items();
    ASSERT_EQ(scanned->items.size(), tree_items.size()) << body;
    for (std::size_t k = 0; k < tree_items.size(); ++k) {
      EXPECT_EQ(json::parse(scanned->items[k].text), tree_items[k]) << body;
    }
    if (scanned->write_key) {
      EXPECT_EQ(*scanned->write_key, *parsed->writeKey()) << body;
    }
    EXPECT_EQ(scanned->sent_at, parsed->batchSentAt()) << body;
    EXPECT_EQ(parsed->batchContext(), nullptr) << body;
  }
}

TEST(SpliceTest, SingleEndpointBodies) {
  EXPECT_TRUE(scanBody(Endpoint::Track, R"({"event":"E","userId":"u"})"));
  EXPECT_FALSE(scanBody(Endpoint::Track, R"([{"event":"E","userId":"u"}])"));
  EXPECT_FALSE(scanBody(Endpoint::Track, R"({"event":"E","userId":"u"} x)"));
  EXPECT_FALSE(scanBody(Endpoint::Batch, R"({"batch":{}})"));
  EXPECT_FALSE(scanBody(Endpoint::Batch, R"({"sentAt":"2025-06-01T10:00:00Z"})"));
}

TEST(SpliceTest, EventWriteKey) {
  bool declined = false;
  EXPECT_EQ(eventWriteKey(R"({"writeKey":"abc","type":"track"})", declined), "abc");
  EXPECT_FALSE(declined);
  EXPECT_FALSE(eventWriteKey(R"({"type":"track"})", declined));
  EXPECT_FALSE(declined);
  EXPECT_FALSE(eventWriteKey(R"({"writeKey":5})", declined));
  EXPECT_FALSE(eventWriteKey(R"({"write\u004bey":"abc"})", declined));
  EXPECT_TRUE(declined);
}

// The scanner never calls valid what Boost.JSON refuses: random documents and mutations.
TEST(JsonScanTest, NeverLooserThanBoostJson) {
  EventGenerator gen(99);
  std::mt19937 rng(5);
  int valid_count = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string text = gen.event();
    const int mutation = static_cast<int>(rng() % 4);
    if (mutation == 1 && !text.empty()) {
      text[rng() % text.size()] = static_cast<char>(rng() % 256);
    } else if (mutation == 2 && !text.empty()) {
      text.resize(rng() % text.size());
    } else if (mutation == 3) {
      text.insert(rng() % (text.size() + 1), 1, "{}[],:\"\\0-.eE \x01\x80\xc3"[rng() % 18]);
    }
    const bool ours = sdk::json_scan::valid(text);
    if (ours) {
      ++valid_count;
      auto full = sdk::parseJson(text);  // Boost.JSON, and no key twice, no number out of range
      ASSERT_TRUE(full.ok()) << "valid per json_scan, refused by sdk::parseJson ("
                             << full.error().message << "): " << text;
    }
  }
  EXPECT_GT(valid_count, 10000);
}

// eventFromText (what `junction import` runs on each line): the fast path's event when it takes
// the text, the tree path's event when it declines it, and the tree path's error for a refusal.
TEST(EventFromTextTest, FastPathTreePathAndTheTreePathsErrors) {
  const EnrichInput in = makeInput();
  const SpliceInput splice = makeSpliceInput(in, false);
  for (std::string_view text : {
           std::string_view(R"({"type":"track","userId":"u1","event":"Viewed","messageId":"m1"})"),
           // An escaped key: declined by the fast path, taken by the tree.
           std::string_view(R"({"type":"track","userId":"u1","ev\u0065nt":"Viewed","messageId":"m1"})"),
       }) {
    auto made = eventFromText(text, splice, in, "web");
    ASSERT_TRUE(made.ok()) << text << ": " << made.error().message;
    const TreeResult tree = treePath(text, in);
    ASSERT_TRUE(tree.ok);
    EXPECT_EQ(json::parse(made->event.json()), json::parse(tree.event.json())) << text;
    EXPECT_EQ(made->event.header().source_id, "web");
    EXPECT_EQ(made->event.name(), "Viewed");
  }
  auto no_event = eventFromText(R"({"type":"track","userId":"u1"})", splice, in, "web");
  ASSERT_FALSE(no_event.ok());
  EXPECT_EQ(no_event.error().message, treePath(R"({"type":"track","userId":"u1"})", in).error);
  auto not_json = eventFromText("{nope", splice, in, "web");
  ASSERT_FALSE(not_json.ok());
  EXPECT_NE(not_json.error().message.find("invalid JSON"), std::string::npos);
  EXPECT_FALSE(eventFromText("[1]", splice, in, "web").ok());
}

}  // namespace
}  // namespace junction::plugins::http
