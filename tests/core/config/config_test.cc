// The configuration: the daemon's own sections, env interpolation, and each error kind with
// file:line:column and key, all reported at once.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "core/config/daemon_config.h"
#include "junction/sdk/plugin.h"

namespace junction::core::config {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

EnvLookup fakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

std::optional<DaemonConfig> load(const std::string& yaml, ConfigErrors& errors,
                                 std::map<std::string, std::string> env = {}) {
  return loadConfigText(yaml, "test.yaml", fakeEnv(std::move(env)), errors);
}

std::vector<std::string> lines(const ConfigErrors& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) {
    out.push_back(e.toString());
  }
  return out;
}

TEST(ConfigTest, EmptyFileGivesDefaults) {
  ConfigErrors errors;
  auto config = load("", errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->server.host, "127.0.0.1");
  EXPECT_EQ(config->server.port, 8080);
  EXPECT_EQ(config->storage.path, "./data");
  EXPECT_EQ(config->storage.fsync, "batch");
  EXPECT_EQ(config->storage.fsync_interval, std::chrono::milliseconds(2));
  EXPECT_EQ(config->storage.segment_bytes, 64u << 20);
  EXPECT_EQ(config->storage.recycle_segments, 2);
  EXPECT_EQ(config->queue.backend, "embedded");
  EXPECT_EQ(config->log.format, "text");
  EXPECT_EQ(config->profiles.cache_bytes, 256u << 20);
  EXPECT_EQ(config->profiles.api_cache_bytes, 64u << 20);
  EXPECT_TRUE(config->sources.empty());
}

TEST(ConfigTest, TheProfileStoreCacheIsASizeWithinItsRange) {
  ConfigErrors errors;
  auto config = load("profiles:\n  cache_bytes: 2GiB\n", errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->profiles.cache_bytes, 2ull << 30);

  ConfigErrors small;
  EXPECT_FALSE(load("profiles:\n  cache_bytes: 1KiB\n", small));
  ASSERT_EQ(small.size(), 1u);
  EXPECT_NE(small[0].toString().find("profiles.cache_bytes"), std::string::npos)
      << small[0].toString();

  // The answer cache may be off (0), never negative.
  auto off = load("profiles:\n  api_cache_bytes: 0\n", errors);
  ASSERT_TRUE(off) << formatErrors(errors);
  EXPECT_EQ(off->profiles.api_cache_bytes, 0u);
  ConfigErrors negative;
  EXPECT_FALSE(load("profiles:\n  api_cache_bytes: -1\n", negative));
  ASSERT_EQ(negative.size(), 1u);
  EXPECT_NE(negative[0].toString().find("profiles.api_cache_bytes"), std::string::npos)
      << negative[0].toString();
}

TEST(ConfigTest, ReadsTheDesignExample) {
  ConfigErrors errors;
  auto config = load(R"(
server:   { listen: "127.0.0.1:9090", admin_token: "${JUNCTION_ADMIN_TOKEN}" }
storage:  { path: "./data", fsync: batch }
queue:    { backend: embedded }
plugins:  { paths: ["./build/plugins"] }
sources:
  - id: web
    plugin: http
    config: { write_keys: ["${WEB_WRITE_KEY}"] }
destinations:
  - id: newsletter
    plugin: mailchimp
    from: [web]
    consent: [marketing]
    filter: { types: [identify, track], events: ["Order Completed"] }
    config: { api_key: "${MAILCHIMP_KEY}", list_id: "abc123", base_url: "http://127.0.0.1:9001" }
)",
                     errors, {{"JUNCTION_ADMIN_TOKEN", "t0ken-secret"}, {"WEB_WRITE_KEY", "wk"},
                              {"MAILCHIMP_KEY", "mk"}});
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->server.port, 9090);
  EXPECT_EQ(config->server.admin_token, "t0ken-secret");
  EXPECT_THAT(config->plugins.paths, ElementsAre("./build/plugins"));
  ASSERT_THAT(config->sources, SizeIs(1));
  EXPECT_EQ(config->sources[0].id, "web");
  ASSERT_THAT(config->destinations, SizeIs(1));
  const auto& d = config->destinations[0];
  EXPECT_EQ(d.plugin, "mailchimp");
  EXPECT_THAT(d.from, ElementsAre("web"));
  EXPECT_THAT(d.consent, ElementsAre("marketing"));
  EXPECT_THAT(d.filter.types, ElementsAre("identify", "track"));
  EXPECT_THAT(d.filter.events, ElementsAre("Order Completed"));
  EXPECT_EQ(d.consent_default, "deny");
  EXPECT_EQ(d.batch.max_events, 100);
  EXPECT_EQ(d.retry.max_attempts, 10);
  EXPECT_EQ(d.start, "latest");
}

TEST(ConfigTest, UnknownKeyNamesFileLineAndSuggests) {
  ConfigErrors errors;
  EXPECT_FALSE(load("server:\n  listen: \"127.0.0.1:1\"\n  admin_tokn: x\n", errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:3:3: server.admin_tokn: unknown option; did you mean "
                          "'admin_token'?"));
}

TEST(ConfigTest, TlsFilesMustBeReadable) {
  ConfigErrors errors;
  auto config = load("server:\n  tls_cert_file: /nonexistent/cert.pem\n  tls_key_file: /nonexistent/key.pem\n",
                     errors);
  EXPECT_FALSE(config);
  ASSERT_EQ(errors.size(), 2u) << formatErrors(errors);
  EXPECT_EQ(errors[0].key, "server.tls_cert_file");
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_THAT(errors[0].message, HasSubstr("cannot read '/nonexistent/cert.pem': No such file"));
  EXPECT_EQ(errors[1].key, "server.tls_key_file");
}

TEST(ConfigTest, TheNatsQueueSection) {
  ConfigErrors errors;
  auto config = load(R"(queue:
  backend: nats
  url: "nats://a:4222, nats://user:pw@b:4222,tls://c:4443"
  replicas: 3
)",
                     errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->queue.backend, "nats");
  EXPECT_THAT(config->queue.urls,
              ElementsAre("nats://a:4222", "nats://user:pw@b:4222", "tls://c:4443"));
  EXPECT_EQ(config->queue.stream, "junction");
  EXPECT_EQ(config->queue.replicas, 3);
  EXPECT_EQ(config->queue.partitions, 16);
  EXPECT_EQ(config->queue.ack_wait, std::chrono::seconds(3));
  EXPECT_FALSE(config->queue.tls);

  ConfigErrors bad;
  EXPECT_FALSE(load(R"(queue:
  backend: nats
  url: "http://a:4222"
  stream: "events.all"
  replicas: 7
  partitions: 0
  node_id: "a.b"
)",
                    bad));
  EXPECT_THAT(lines(bad),
              ElementsAre(AllOf(HasSubstr("test.yaml:3:8: queue.url:"),
                                HasSubstr("'http://a:4222' is not a NATS address")),
                          AllOf(HasSubstr("test.yaml:4:11: queue.stream:"),
                                HasSubstr("a JetStream stream name")),
                          "test.yaml:5:13: queue.replicas: must be at most 5, got 7",
                          "test.yaml:6:15: queue.partitions: must be at least 1, got 0",
                          AllOf(HasSubstr("test.yaml:7:12: queue.node_id:"),
                                HasSubstr("letters, digits"))));

  ConfigErrors other;  // the embedded backend ignores the NATS keys
  EXPECT_TRUE(load("queue:\n  backend: embedded\n  url: \"http://x\"\n", other))
      << formatErrors(other);
}

TEST(ConfigTest, UnknownTopLevelSection) {
  ConfigErrors errors;
  EXPECT_FALSE(load("storag:\n  path: x\n", errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:1:1: storag: unknown option; did you mean 'storage'?"));
}

TEST(ConfigTest, WrongTypeAndBoundsAndOneOf) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(storage:
  fsync: sometimes
  fsync_interval: 5000ms
  segment_bytes: lots
server:
  threads: many
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre(
                  "test.yaml:2:10: storage.fsync: expected one of always, batch, never, got \"sometimes\"",
                  "test.yaml:3:19: storage.fsync_interval: must be at most 1000ms, got 5000",
                  "test.yaml:4:18: storage.segment_bytes: expected a size such as 65536, \"32KiB\" or "
                  "\"64MiB\", got \"lots\"",
                  "test.yaml:6:12: server.threads: expected an integer, got \"many\""));  // file order
}

TEST(ConfigTest, MissingRequiredConnectorKeys) {
  ConfigErrors errors;
  EXPECT_FALSE(load("sources:\n  - plugin: http\n", errors));
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].key, "sources[0].id");
  EXPECT_THAT(errors[0].message, HasSubstr("required option is missing"));
}

TEST(ConfigTest, ReportsEveryErrorAtOnce) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(server: { listen: "nope" }
storage: { fsync: weekly }
log: { level: loud }
sources:
  - id: Web!
    plugin: http
destinations:
  - id: out
    plugin: file
    from: [wbe]
    batch: { max_events: 0 }
    retry: { initial_backoff: 10s, max_backoff: 1s }
    filter: { types: [purchase] }
)",
                    errors));
  auto text = formatErrors(errors);
  EXPECT_THAT(errors, SizeIs(8)) << text;
  EXPECT_THAT(text, HasSubstr("test.yaml:1:19: server.listen: expected host:port"));
  EXPECT_THAT(text, HasSubstr("storage.fsync"));
  EXPECT_THAT(text, HasSubstr("log.level"));
  EXPECT_THAT(text, HasSubstr("sources[0].id: 'Web!' is not a valid id"));
  EXPECT_THAT(text, HasSubstr("destinations[0].from: no source with id 'wbe'"));
  EXPECT_THAT(text, HasSubstr("destinations[0].batch.max_events: must be at least 1"));
  EXPECT_THAT(text, HasSubstr("destinations[0].retry.max_backoff: must not be shorter"));
  EXPECT_THAT(text, HasSubstr("destinations[0].filter.types: unknown event type 'purchase'"));
}

TEST(ConfigTest, DuplicateIdsAndDuplicateKeys) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(sources:
  - id: a
    plugin: x
destinations:
  - id: a
    plugin: y
    plugin: z
)",
                    errors));
  auto text = formatErrors(errors);
  EXPECT_THAT(text, HasSubstr("test.yaml:7:5: destinations[0].plugin: given twice"));
  EXPECT_THAT(text, HasSubstr("destinations[0].id: id 'a' is used twice"));
}

TEST(ConfigTest, YamlSyntaxErrorHasLine) {
  ConfigErrors errors;
  EXPECT_FALSE(load("server:\n  listen: [unclosed\nstorage: {}\n", errors));
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_GE(errors[0].line, 2);
  EXPECT_THAT(errors[0].toString(), HasSubstr("YAML syntax error"));
}

TEST(ConfigTest, EnvInterpolation) {
  ConfigErrors errors;
  auto config = load(R"(server:
  listen: "${HOST}:${PORT:-9999}"
storage:
  path: "${DATA_DIR:-/var/lib/junction}/q$$1"
  segment_bytes: ${SEG}
)",
                     errors, {{"HOST", "127.0.0.2"}, {"SEG", "1MiB"}});
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->server.host, "127.0.0.2");
  EXPECT_EQ(config->server.port, 9999);
  EXPECT_EQ(config->storage.path, "/var/lib/junction/q$1");
  EXPECT_EQ(config->storage.segment_bytes, 1u << 20);
}

TEST(ConfigTest, EnvInterpolationTypesPlainScalars) {
  ConfigErrors errors;
  auto config = load("server:\n  threads: ${THREADS}\n", errors, {{"THREADS", "3"}});
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->server.threads, 3);
}

TEST(ConfigTest, MissingEnvironmentVariableIsNamed) {
  ConfigErrors errors;
  EXPECT_FALSE(load("server:\n  admin_token: \"${ADMIN_TOKEN}\"\n", errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:2:16: server.admin_token: environment variable ADMIN_TOKEN "
                          "is not set (write ${ADMIN_TOKEN:-default} to give a default)"));
}

TEST(ConfigTest, EmptyVariableUsesDefaultOnlyWithColonDash) {
  ConfigErrors errors;
  auto config = load("storage:\n  path: \"${EMPTY:-fallback}\"\n", errors, {{"EMPTY", ""}});
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_EQ(config->storage.path, "fallback");
}

TEST(ConfigTest, SecretValuesNeverAppearInErrors) {
  ConfigErrors errors;
  // A secret option of the wrong type: the message must not echo it.
  EXPECT_FALSE(load("server:\n  admin_token: [\"hunter2-secret\"]\n", errors));
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0].toString(), AllOf(HasSubstr("server.admin_token"),
                                          Not(HasSubstr("hunter2-secret"))));
}

TEST(ConfigTest, DidYouMeanOnlyForCloseWords) {
  EXPECT_EQ(closestMatch("lst_id", {"list_id", "api_key"}), "list_id");
  EXPECT_EQ(closestMatch("zzzzzz", {"list_id", "api_key"}), "");
  EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
}

// --- sync: (scheduled destinations) -------------------------------------------------------

TEST(SyncConfigTest, RealtimeIsTheDefault) {
  ConfigErrors errors;
  auto config = load(R"(sources:
  - id: web
    plugin: http
destinations:
  - id: crm
    plugin: mailchimp
    from: [web]
  - id: out
    plugin: file
    sync: { mode: realtime }
)",
                     errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  for (const auto& d : config->destinations) {
    EXPECT_EQ(d.sync.mode, SyncConfig::Mode::Realtime) << d.id;
    EXPECT_EQ(d.sync.every_ms, 0) << d.id;
    EXPECT_EQ(d.sync.at_minute, 0) << d.id;
    EXPECT_EQ(d.sync.timezone, "UTC") << d.id;
  }
  EXPECT_THAT(config->destinations[0].from, ElementsAre("web"));
  EXPECT_EQ(config->destinations[0].sync.mark.line, 5);  // no `sync:`: the block
  EXPECT_TRUE(config->destinations[1].from.empty());
  EXPECT_EQ(config->destinations[1].sync.mark.line, 10);
}

TEST(SyncConfigTest, ScheduledForms) {
  ConfigErrors errors;
  auto config = load(R"(destinations:
  - id: hourly
    plugin: x
    sync: { mode: scheduled, every: 1h }
  - id: nightly
    plugin: x
    sync: { mode: scheduled, at: "02:00", timezone: Europe/Berlin }
  - id: six
    plugin: x
    sync:
      mode: scheduled
      every: 6h
      at: "2:30"
      timezone: America/New_York
  - id: weekly
    plugin: x
    sync: { mode: scheduled, every: 7d, at: "09:00" }
  - id: quarter
    plugin: x
    sync: { mode: scheduled, every: 900000, timezone: Asia/Kolkata }
)",
                     errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  ASSERT_THAT(config->destinations, SizeIs(5));
  struct Want {
    std::int64_t every_ms;
    int at_minute;
    std::string timezone;
  };
  const Want want[] = {{3'600'000, 0, "UTC"},
                       {86'400'000, 120, "Europe/Berlin"},
                       {6 * 3'600'000, 150, "America/New_York"},
                       {7 * 86'400'000LL, 540, "UTC"},
                       {900'000, 0, "Asia/Kolkata"}};
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& d = config->destinations[i];
    EXPECT_EQ(d.sync.mode, SyncConfig::Mode::Scheduled) << d.id;
    EXPECT_EQ(d.sync.every_ms, want[i].every_ms) << d.id;
    EXPECT_EQ(d.sync.at_minute, want[i].at_minute) << d.id;
    EXPECT_EQ(d.sync.timezone, want[i].timezone) << d.id;
    // Only its own built-in source.
    EXPECT_THAT(d.from, ElementsAre("sync." + d.id));
  }
  EXPECT_EQ(config->destinations[2].sync.mark.line, 11);  // the mapping under `sync:`
}

TEST(SyncConfigTest, TheScheduleIsCheckedKeyByKey) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(destinations:
  - id: a
    plugin: x
    sync:
      mode: scheduled
      every: 7h
      at: "25:00"
      timezone: Europe/Berln
  - id: b
    plugin: x
    sync: { mode: scheduled, every: 30s }
  - id: c
    plugin: x
    sync: { mode: scheduled, every: 36h, timezone: Mars/Olympus }
  - id: d
    plugin: x
    sync: { mode: sometimes, evry: 1h }
  - id: e
    plugin: x
    sync: { mode: scheduled, every: soon }
)",
                    errors));
  EXPECT_THAT(
      lines(errors),
      ElementsAre(
          "test.yaml:6:14: destinations[0].sync.every: every 7h does not divide 24h evenly "
          "(e.g. 5m, 15m, 1h, 6h, 12h)",
          "test.yaml:7:11: destinations[0].sync.at: expected a local time HH:MM from 00:00 to "
          "23:59, got \"25:00\"",
          "test.yaml:8:17: destinations[0].sync.timezone: unknown time zone 'Europe/Berln' (an "
          "IANA name such as UTC, Europe/Berlin or America/New_York); did you mean "
          "'Europe/Berlin'?",
          "test.yaml:11:37: destinations[1].sync.every: every must be at least 1m, got 30s",
          "test.yaml:14:37: destinations[2].sync.every: every 36h is longer than a day but not a "
          "whole number of days (e.g. 2d, 7d)",
          "test.yaml:14:52: destinations[2].sync.timezone: unknown time zone 'Mars/Olympus' (an "
          "IANA name such as UTC, Europe/Berlin or America/New_York)",
          "test.yaml:17:19: destinations[3].sync.mode: expected one of realtime, scheduled, got "
          "\"sometimes\"",
          "test.yaml:17:30: destinations[3].sync.evry: unknown option; did you mean 'every'?",
          AllOf(HasSubstr("test.yaml:20:37: destinations[4].sync.every: expected a duration"),
                HasSubstr("got \"soon\""))));
}

TEST(SyncConfigTest, ModeAndTheOtherKeysMustAgree) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(destinations:
  - id: a
    plugin: x
    sync: { mode: scheduled, timezone: Europe/Berlin }
  - id: b
    plugin: x
    sync: { every: 1h, at: "02:00" }
  - id: c
    plugin: x
    sync: scheduled
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:4:11: destinations[0].sync.every: mode: scheduled needs "
                          "`every` (e.g. 1h) or `at` (e.g. \"02:00\", once a day)",
                          "test.yaml:7:20: destinations[1].sync.every: applies to mode: "
                          "scheduled only (realtime is the default)",
                          "test.yaml:7:28: destinations[1].sync.at: applies to mode: scheduled "
                          "only (realtime is the default)",
                          "test.yaml:10:11: destinations[2].sync: expected a mapping, got "
                          "\"scheduled\""));
}

TEST(SyncConfigTest, ScheduledNeedsProfilesAndTheEmbeddedQueue) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(profiles: { enabled: false }
queue: { backend: nats }
destinations:
  - id: crm
    plugin: x
    sync:
      mode: scheduled
      every: 1h
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:7:13: destinations[0].sync.mode: mode: scheduled needs "
                          "profiles (profiles.enabled is false): each run sends people's "
                          "profiles from the profile store",
                          "test.yaml:7:13: destinations[0].sync.mode: sync.mode scheduled is not "
                          "supported with queue.backend nats yet"));
}

TEST(SyncConfigTest, TheSyncSourcesAreBuiltIn) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(sources:
  - id: web
    plugin: http
    sync: { mode: scheduled, every: 1h }
  - id: sync.crm
    plugin: http
destinations:
  - id: crm
    plugin: x
    from: [web]
    sync: { mode: scheduled, every: 1h }
  - id: other
    plugin: x
    from: [sync.crm]
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:4:11: sources[0].sync: sync applies to destinations only "
                          "(when they get their events)",
                          "test.yaml:5:5: sources[1].id: ids starting with 'sync.' name the "
                          "built-in sources of scheduled destinations",
                          "test.yaml:10:11: destinations[0].from: a scheduled destination reads "
                          "only its built-in source 'sync.crm'; remove `from` (or use "
                          "sync.mode: realtime)",
                          "test.yaml:12:5: destinations[1].from: 'sync.crm' is the built-in "
                          "source of a scheduled destination, for that destination only"));
}

// --- audiences ---------------------------------------------------------------------------------

TEST(AudiencesConfigTest, EachDestinationKnowsTheAudiencesListingIt) {
  ConfigErrors errors;
  auto config = load(R"(sources:
  - id: web
    plugin: http
destinations:
  - id: braze
    plugin: x
  - id: crm
    plugin: x
    from: [web]
  - id: warehouse
    plugin: x
    from: [audiences]
audiences:
  zeta:
    where: {trait: plan, equals: pro}
    destinations: [crm, braze]
  abandoned_cart:
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed, within: 30m}
    destinations: [braze]
  no_destination:
    where: {trait: email, exists: true}
)",
                     errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  ASSERT_THAT(config->audiences, SizeIs(3));
  EXPECT_EQ(config->audiences[0].name, "zeta");  // file order
  EXPECT_THAT(config->audiences[0].destinations, ElementsAre("crm", "braze"));
  EXPECT_EQ(config->audiences[1].name, "abandoned_cart");
  ASSERT_THAT(config->destinations, SizeIs(3));
  EXPECT_THAT(config->destinations[0].audiences, ElementsAre("abandoned_cart", "zeta"));  // sorted
  EXPECT_THAT(config->destinations[1].audiences, ElementsAre("zeta"));
  EXPECT_THAT(config->destinations[2].audiences, ElementsAre());
  EXPECT_THAT(config->destinations[2].from, ElementsAre("audiences"));
  EXPECT_THAT(config->sources[0].audiences, ElementsAre());  // destinations only
  EXPECT_EQ(kAudiencesSource, "audiences");
}

TEST(AudiencesConfigTest, NoAudiencesIsTheDefault) {
  ConfigErrors errors;
  auto config = load("audiences:\ndestinations:\n  - id: d\n    plugin: x\n", errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_TRUE(config->audiences.empty());
  EXPECT_TRUE(config->destinations[0].audiences.empty());
}

TEST(AudiencesConfigTest, DestinationsMustBeConfiguredDestinations) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(sources:
  - id: web
    plugin: http
destinations:
  - id: braze
    plugin: x
audiences:
  vip:
    where: {trait: plan, equals: pro}
    destinations: [braze, web, brazee, nowhere]
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:10:27: audiences.vip.destinations[1]: 'web' is a source, not "
                          "a destination",
                          "test.yaml:10:32: audiences.vip.destinations[2]: no destination with id "
                          "'brazee'; did you mean 'braze'?",
                          "test.yaml:10:40: audiences.vip.destinations[3]: no destination with id "
                          "'nowhere'"));
}

TEST(AudiencesConfigTest, AudiencesNeedProfiles) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(profiles: { enabled: false }
destinations:
  - id: braze
    plugin: x
  - id: all
    plugin: x
    from: [audiences]
audiences:
  vip:
    where: {trait: plan, equals: pro}
    destinations: [braze]
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:5:5: destinations[1].from: the built-in source 'audiences' "
                          "needs profiles.enabled (audiences are evaluated on the profiles)",
                          "test.yaml:9:3: audiences: audiences need profiles (profiles.enabled is "
                          "false): enable `profiles:` (audiences are evaluated on each person's "
                          "profile)"));
  // No audience: profiles may be off.
  ConfigErrors none;
  EXPECT_TRUE(load("profiles: { enabled: false }\naudiences: {}\n", none)) << formatErrors(none);
}

TEST(AudiencesConfigTest, AudiencesIsABuiltInSourceId) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(sources:
  - id: audiences
    plugin: http
  - id: profiles
    plugin: http
)",
                    errors));
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:2:5: sources[0].id: id 'audiences' is the built-in source of "
                          "audience events (Audience Entered, Audience Exited)",
                          "test.yaml:4:5: sources[1].id: id 'profiles' is the built-in source of "
                          "profile-change events"));
}

TEST(AudiencesConfigTest, AnErrorInsideAnAudienceHasItsLineAndKeyPath) {
  ConfigErrors errors;
  EXPECT_FALSE(load(R"(destinations:
  - id: braze
    plugin: x
audiences:
  abandoned_cart:
    where:
      all:
        - performed: {event: Product Added, within: 1hour}
        - performd: {event: Order Completed}
    destinations: [braze]
)",
                    errors));
  ASSERT_THAT(errors, SizeIs(2)) << formatErrors(errors);
  EXPECT_THAT(errors[0].toString(),
              AllOf(HasSubstr("test.yaml:8:"),
                    HasSubstr("audiences.abandoned_cart.where.all[0].performed.within: ")));
  EXPECT_THAT(errors[1].toString(),
              AllOf(HasSubstr("test.yaml:9:"), HasSubstr("audiences.abandoned_cart.where.all[1]"),
                    HasSubstr("did you mean 'performed'?")));
  // An unknown top-level key next to it is still reported as one.
  ConfigErrors typo;
  EXPECT_FALSE(load("audience:\n  a: {where: {trait: x, exists: true}}\n", typo));
  EXPECT_THAT(lines(typo), ElementsAre(HasSubstr("test.yaml:1:1: audience: unknown")));
}

// --- step 2: connectors against plugin option tables ----------------------------------------

struct DestConfig {
  std::string list_id;
  std::string api_key;
  std::int64_t retries = 0;
  std::vector<std::string> tags;
  std::string mode;
  boost::json::object headers;
  std::vector<std::string> extra_keys;
  std::vector<sdk::OptionError> validate() const {
    if (mode == "strict" && tags.empty()) {
      return {{"tags", "strict mode needs at least one tag"}};
    }
    return {};
  }
};

class NullDestination final : public sdk::Destination {
 public:
  NullDestination(DestConfig, sdk::DestinationContext&) {}
  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> b) override {
    return std::vector<sdk::Outcome>(b.size());
  }
};

const sdk::OptionTable<DestConfig>& destOptions() {
  static const sdk::OptionTable<DestConfig> table{
      sdk::option("list_id", &DestConfig::list_id, "Audience list").required(),
      sdk::option("api_key", &DestConfig::api_key, "API key").required().secret(),
      sdk::option("retries", &DestConfig::retries, "Retries").defaultValue(3).range(0, 10),
      sdk::option("tags", &DestConfig::tags, "Tags").defaultValue(boost::json::array{}),
      sdk::option("mode", &DestConfig::mode, "Mode").oneOf({"lenient", "strict"}).defaultValue("lenient"),
      sdk::option("headers", &DestConfig::headers, "Extra headers").secret(),
      sdk::option("extra_keys", &DestConfig::extra_keys, "More keys").secret(),
  };
  return table;
}

class Catalog final : public PluginCatalog {
 public:
  Catalog()
      : dest_({.name = "mailchimp",
               .version = "1",
               .summary = "s",
               .delivery = {.max_events = 500, .max_wait = std::chrono::milliseconds(1000),
                            .concurrency = 4, .ordering = sdk::Ordering::None}},
              destOptions()) {}
  const sdk::Plugin* find(sdk::PluginKind kind, std::string_view name) const override {
    return kind == sdk::PluginKind::Destination && name == "mailchimp" ? &dest_ : nullptr;
  }
  std::vector<std::string> names() const override { return {"mailchimp"}; }

 private:
  sdk::DestinationPlugin<NullDestination, DestConfig> dest_;
};

ConfigErrors checkText(const std::string& yaml, std::optional<DaemonConfig>* out = nullptr) {
  ConfigErrors errors;
  auto config = load(yaml, errors);
  if (!config) {
    return errors;
  }
  Catalog catalog;
  checkConnectors(*config, catalog, errors);
  if (out != nullptr) {
    *out = std::move(config);
  }
  return errors;
}

TEST(ConnectorCheckTest, ValidConfigIsNormalized) {
  std::optional<DaemonConfig> config;
  auto errors = checkText(R"(destinations:
  - id: news
    plugin: mailchimp
    config: { list_id: 12345, api_key: "k-123456", tags: vip }
)",
                          &config);
  ASSERT_TRUE(errors.empty()) << formatErrors(errors);
  const auto& c = config->destinations[0].config;
  EXPECT_EQ(c.at("list_id").as_string(), "12345");  // a plain number kept as text for a string
  EXPECT_EQ(c.at("retries").as_int64(), 3);          // default filled
  EXPECT_EQ(c.at("tags").as_array().size(), 1u);     // a lone string is a list of one
  EXPECT_THAT(config->secrets(), ElementsAre("k-123456"));
}

TEST(ConnectorCheckTest, ThePluginsDeliveryDefaultsFillWhatTheBlockDoesNotSet) {
  std::optional<DaemonConfig> config;
  auto errors = checkText(R"(destinations:
  - id: news
    plugin: mailchimp
    batch: { max_wait: 50ms }
    config: { list_id: 1, api_key: k }
  - id: other
    plugin: mailchimp
    concurrency: 2
    ordering: person
    batch: { max_events: 10 }
    config: { list_id: 1, api_key: k }
)",
                          &config);
  ASSERT_TRUE(errors.empty()) << formatErrors(errors);
  const auto& news = config->destinations[0];
  EXPECT_EQ(news.batch.max_events, 500);                          // the plugin's
  EXPECT_EQ(news.batch.max_wait, std::chrono::milliseconds(50));  // written
  EXPECT_EQ(news.batch.max_bytes, 1u << 20);                      // the daemon's
  EXPECT_EQ(news.concurrency, 4);                                 // the plugin's
  EXPECT_EQ(news.ordering, "none");                               // the plugin's
  const auto& other = config->destinations[1];
  EXPECT_EQ(other.ordering, "person");                            // written
  EXPECT_EQ(other.batch.max_events, 10);
  EXPECT_EQ(other.batch.max_wait, std::chrono::milliseconds(1000));
  EXPECT_EQ(other.concurrency, 2);
}

TEST(ConnectorCheckTest, EveryStringOfAListOrMapSecretIsScrubbed) {
  std::optional<DaemonConfig> config;
  auto errors = checkText(R"(destinations:
  - id: news
    plugin: mailchimp
    config:
      list_id: 1
      api_key: k-1
      headers: { Authorization: "Bearer tok-2", X-Other: { nested: tok-3 } }
      extra_keys: [key-4, key-5]
)",
                          &config);
  ASSERT_TRUE(errors.empty()) << formatErrors(errors);
  EXPECT_THAT(config->secrets(), ::testing::UnorderedElementsAre("k-1", "Bearer tok-2", "tok-3",
                                                                 "key-4", "key-5"));
}

TEST(ConnectorCheckTest, AMissingConfigBlockIsReportedAtTheConnector) {
  auto errors = checkText(R"(destinations:
  - id: news
    plugin: mailchimp
)");
  ASSERT_EQ(errors.size(), 2u) << formatErrors(errors);
  EXPECT_EQ(errors[0].key, "destinations[0].config.list_id");
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_GT(errors[0].column, 0);
  EXPECT_THAT(formatErrors(errors), HasSubstr("test.yaml:2:"));
}

TEST(ConnectorCheckTest, PluginOptionErrorsHaveFileLineAndKey) {
  auto errors = checkText(R"(destinations:
  - id: news
    plugin: mailchimp
    config:
      lst_id: abc
      api_key: "super-secret-key"
      retries: 11
)");
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:5:7: destinations[0].config.lst_id: unknown option; did you "
                          "mean 'list_id'?",
                          "test.yaml:5:7: destinations[0].config.list_id: required option is "
                          "missing (Audience list)",
                          "test.yaml:7:16: destinations[0].config.retries: must be at most 10, got 11"));
}

TEST(ConnectorCheckTest, CrossFieldValidationPointsAtTheKey) {
  auto errors = checkText(R"(destinations:
  - id: news
    plugin: mailchimp
    config:
      list_id: a
      api_key: k
      mode: strict
)");
  EXPECT_THAT(lines(errors), ElementsAre("test.yaml:5:7: destinations[0].config.tags: strict mode "
                                         "needs at least one tag"));
}

TEST(ConnectorCheckTest, UnknownPluginAndWrongKind) {
  auto errors = checkText(R"(sources:
  - id: web
    plugin: mailchimp
destinations:
  - id: news
    plugin: mailchimpp
)");
  EXPECT_THAT(lines(errors),
              ElementsAre("test.yaml:2:5: sources[0].plugin: plugin 'mailchimp' is a destination, "
                          "not a source",
                          "test.yaml:5:5: destinations[0].plugin: no plugin named 'mailchimpp' is "
                          "loaded; did you mean 'mailchimp'?"));
}

// One name, two kinds: a `crm` source and a `crm` destination, each with its own option table.
struct CrmSourceConfig {
  std::string every;
};

class NullSource final : public sdk::Source {
 public:
  NullSource(CrmSourceConfig, sdk::SourceContext&) {}
  sdk::Status start() override { return {}; }
};

const sdk::OptionTable<CrmSourceConfig>& crmSourceOptions() {
  static const sdk::OptionTable<CrmSourceConfig> table{
      sdk::option("every", &CrmSourceConfig::every, "Pull interval").defaultValue("15m"),
  };
  return table;
}

class TwoKindCatalog final : public PluginCatalog {
 public:
  TwoKindCatalog()
      : source_({.name = "crm", .version = "1", .summary = "s"}, crmSourceOptions()),
        dest_({.name = "crm", .version = "1", .summary = "d"}, destOptions()) {}
  const sdk::Plugin* find(sdk::PluginKind kind, std::string_view name) const override {
    if (name != "crm") {
      return nullptr;
    }
    return kind == sdk::PluginKind::Source ? static_cast<const sdk::Plugin*>(&source_) : &dest_;
  }
  std::vector<std::string> names() const override { return {"crm"}; }

 private:
  sdk::SourcePlugin<NullSource, CrmSourceConfig> source_;
  sdk::DestinationPlugin<NullDestination, DestConfig> dest_;
};

TEST(ConnectorCheckTest, OneNameIsBothASourceAndADestination) {
  ConfigErrors errors;
  auto config = load(R"(sources:
  - id: crm_in
    plugin: crm
    config: { every: 30s }
destinations:
  - id: crm_out
    plugin: crm
    config: { list_id: abc, api_key: "k-123456" }
)",
                     errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  TwoKindCatalog catalog;
  EXPECT_TRUE(checkConnectors(*config, catalog, errors)) << formatErrors(errors);
  EXPECT_EQ(config->sources[0].config.at("every"), "30s");
  EXPECT_EQ(config->destinations[0].config.at("list_id"), "abc");
  EXPECT_EQ(config->destinations[0].secrets, std::vector<std::string>{"k-123456"});
  // Loop protection: the crm destination does not get the crm source's events by default.
  EXPECT_EQ(config->destinations[0].loop_sources, std::vector<std::string>{"crm_in"});

  // Each side is checked against its own kind's option table.
  config = load(R"(sources:
  - id: crm_in
    plugin: crm
    config: { list_id: abc }
destinations:
  - id: crm_out
    plugin: crm
    config: { every: 30s }
)",
                errors);
  ASSERT_TRUE(config) << formatErrors(errors);
  EXPECT_FALSE(checkConnectors(*config, catalog, errors));
  const auto text = formatErrors(errors);
  EXPECT_THAT(text, HasSubstr("sources[0].config.list_id"));
  EXPECT_THAT(text, HasSubstr("destinations[0].config.every"));
  EXPECT_THAT(text, HasSubstr("destinations[0].config.list_id"));
}

TEST(ConnectorCheckTest, DisabledConnectorsAreNotChecked) {
  std::optional<DaemonConfig> config;
  auto errors = checkText(R"(destinations:
  - id: old
    plugin: not_installed
    enabled: false
    config: { whatever: 1 }
)",
                          &config);
  EXPECT_TRUE(errors.empty()) << formatErrors(errors);
  EXPECT_FALSE(config->destinations[0].enabled);
}

}  // namespace
}  // namespace junction::core::config
