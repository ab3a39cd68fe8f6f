#include "core/config/daemon_config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/sync/schedule.h"

namespace junction::core::config {

namespace json = boost::json;
using sdk::option;
using sdk::OptionTable;

namespace {

const OptionTable<ServerConfig>& serverTable() {
  static const OptionTable<ServerConfig> table{
      option("listen", &ServerConfig::listen, "Address and port of the HTTP server (host:port)")
          .defaultValue("127.0.0.1:8080"),
      option("admin_token", &ServerConfig::admin_token,
             "Bearer token for the admin API, profiles and regulations; empty disables them")
          .secret()
          .defaultValue(""),
      option("max_body_bytes", &ServerConfig::max_body_bytes,
             "Largest request body accepted (routes may set a lower limit)")
          .defaultValue("4MiB")
          .range(1024, 1 << 30),
      option("request_timeout", &ServerConfig::request_timeout,
             "Time allowed to read a request and to answer it")
          .defaultValue("30s")
          .range(100, 3'600'000),
      option("idle_timeout", &ServerConfig::idle_timeout,
             "Keep-alive connections idle this long are closed")
          .defaultValue("60s")
          .range(100, 3'600'000),
      option("shutdown_grace", &ServerConfig::shutdown_grace,
             "On SIGTERM, time given to requests in flight before connections are closed")
          .defaultValue("10s")
          .range(0, 600'000),
      option("readiness_stall", &ServerConfig::readiness_stall,
             "GET /readyz answers 503 while a destination with events waiting has made no "
             "progress for this long (the reason in the body); 0 = never")
          .defaultValue("15m")
          .range(0, 7 * 86'400'000.0),
      option("threads", &ServerConfig::threads, "I/O threads; 0 = one per core")
          .defaultValue(0)
          .range(0, 256),
      option("max_connections", &ServerConfig::max_connections,
             "Connections beyond this (and the health reserve) are refused")
          .defaultValue(10000)
          .range(1, 1'000'000),
      option("health_reserve", &ServerConfig::health_reserve,
             "Connections past max_connections that may only ask GET /healthz and /readyz")
          .defaultValue(16)
          .range(0, 10'000),
      option("max_connections_per_client", &ServerConfig::max_connections_per_client,
             "Most connections one client address may hold; 0 = half of max_connections "
             "(raise it behind a load balancer)")
          .defaultValue(0)
          .range(0, 1'000'000),
      option("tls_cert_file", &ServerConfig::tls_cert_file,
             "PEM certificate chain: serve HTTPS (with tls_key_file); empty = plain HTTP")
          .defaultValue(""),
      option("tls_key_file", &ServerConfig::tls_key_file,
             "PEM private key of tls_cert_file")
          .defaultValue(""),
  };
  return table;
}

const OptionTable<StorageConfig>& storageTable() {
  static const OptionTable<StorageConfig> table{
      option("path", &StorageConfig::path, "Directory of the queue, cursors and state")
          .defaultValue("./data"),
      option("fsync", &StorageConfig::fsync,
             "When appends are synced to disk before clients are answered")
          .oneOf({"always", "batch", "never"})
          .defaultValue("batch"),
      option("fsync_interval", &StorageConfig::fsync_interval,
             "With fsync: batch, the shortest time between the starts of two syncs (appends "
             "meanwhile share the next one)")
          .defaultValue("2ms")
          .range(1, 1000),
      option("max_bytes", &StorageConfig::max_bytes,
             "Disk budget of the queue; when reached, ingest answers 503. 0 = no budget")
          .defaultValue(0),
      option("segment_bytes", &StorageConfig::segment_bytes, "Size of one queue segment file")
          .defaultValue("64MiB")
          .range(64 * 1024, 4.0 * (1ull << 30)),
      option("recycle_segments", &StorageConfig::recycle_segments,
             "Delivered segment files kept to be overwritten by new segments instead of being "
             "deleted (their blocks and page cache stay allocated); 0 = delete them")
          .defaultValue(2)
          .range(0, 64),
  };
  return table;
}

const OptionTable<QueueConfig>& queueTable() {
  static const OptionTable<QueueConfig> table{
      option("backend", &QueueConfig::backend,
             "Where accepted events wait: embedded (a log under storage.path, one machine) or "
             "nats (a NATS JetStream stream several junctiond nodes share)")
          .oneOf({"embedded", "nats"})
          .defaultValue("embedded"),
      option("url", &QueueConfig::url,
             "With backend: nats, the servers to connect to, comma-separated "
             "(nats://a:4222,nats://b:4222); any one of the cluster is enough to start")
          .defaultValue("nats://127.0.0.1:4222"),
      option("stream", &QueueConfig::stream,
             "With backend: nats, the JetStream stream (created when missing; every node of one "
             "deployment names the same); its key-value buckets are named after it")
          .defaultValue("junction"),
      option("replicas", &QueueConfig::replicas,
             "With backend: nats, copies of each event on different servers (3 survives the loss "
             "of one server of a three-node cluster); used when the stream is created")
          .defaultValue(1)
          .range(1, 5),
      option("partitions", &QueueConfig::partitions,
             "With backend: nats, subjects the stream is split in by a hash of the person; each "
             "partition of a destination is read by one node at a time (per-person order). "
             "Every node must use the same number, and it cannot change once events are queued")
          .defaultValue(16)
          .range(1, 1024),
      option("credentials_file", &QueueConfig::credentials_file,
             "With backend: nats, a NATS .creds file (user JWT and NKey seed); empty = none")
          .defaultValue(""),
      option("tls", &QueueConfig::tls, "With backend: nats, require TLS to the servers")
          .defaultValue(false),
      option("tls_ca_file", &QueueConfig::tls_ca_file,
             "With tls: true, the PEM CA bundle the servers' certificates are checked against; "
             "empty = the system's trust store")
          .defaultValue(""),
      option("max_bytes", &QueueConfig::max_bytes,
             "With backend: nats, the stream's budget; when reached, ingest answers 503. "
             "0 = none (the servers' own limits apply)")
          .defaultValue(0),
      option("ack_wait", &QueueConfig::ack_wait,
             "With backend: nats, how long an event a node took may stay unconfirmed before the "
             "servers give it to another node (a node that died); live nodes confirm progress "
             "well within it")
          .defaultValue("3s")
          .range(1000, 600'000),
      option("node_id", &QueueConfig::node_id,
             "With backend: nats, this node's name among the nodes sharing the stream; empty = "
             "hostname-pid")
          .defaultValue(""),
  };
  return table;
}

const OptionTable<PluginsConfig>& pluginsTable() {
  static const OptionTable<PluginsConfig> table{
      option("paths", &PluginsConfig::paths,
             "Directories searched for plugins, after ../plugins next to the binary")
          .defaultValue(json::array{}),
      option("allow_override", &PluginsConfig::allow_override,
             "Names of built-in plugins that a plugin of the same name in `paths` may replace "
             "(otherwise it is refused)")
          .defaultValue(json::array{}),
  };
  return table;
}

const OptionTable<LogConfig>& logTable() {
  static const OptionTable<LogConfig> table{
      option("level", &LogConfig::level, "Lowest level logged")
          .oneOf({"debug", "info", "warn", "error"})
          .defaultValue("info"),
      option("format", &LogConfig::format, "Log line format")
          .oneOf({"text", "json"})
          .defaultValue("text"),
  };
  return table;
}

const OptionTable<ProfilesConfig>& profilesTable() {
  static const OptionTable<ProfilesConfig> table{
      option("enabled", &ProfilesConfig::enabled,
             "Keep a unified profile per person (identity graph, merged traits, recent events)")
          .defaultValue(true),
      option("backend", &ProfilesConfig::backend,
             "Profile store: embedded (RocksDB under storage.path), sqlite (one file under "
             "storage.path: smaller, slower to write) or postgres (shared by several nodes)")
          .oneOf({"embedded", "sqlite", "postgres"})
          .defaultValue("embedded"),
      option("dsn", &ProfilesConfig::dsn, "With backend: postgres, a libpq connection string")
          .secret()
          .defaultValue(""),
      option("recent_events", &ProfilesConfig::recent_events,
             "Events kept per profile (newest first) for GET /v1/profiles/{id}/events")
          .defaultValue(50)
          .range(0, 10'000),
      option("cache_bytes", &ProfilesConfig::cache_bytes,
             "With backend: embedded, memory that keeps the store's blocks uncompressed: the "
             "Profile API answers from it without reading files. To serve anyone from memory, "
             "size it to about 2.5 times data/profiles/ on disk (compressed there)")
          .defaultValue("256MiB")
          .range(8 * 1024 * 1024, 256.0 * (1ull << 30)),
      option("api_cache_bytes", &ProfilesConfig::api_cache_bytes,
             "Memory for the Profile API's answers of the people read most recently, rendered: "
             "a hit reads no store. 0 turns it off. Not used with backend: postgres (other "
             "nodes write that store too, and this cache would not see their changes)")
          .defaultValue("64MiB")
          .range(0, 256.0 * (1ull << 30)),
      option("tokens", &ProfilesConfig::tokens,
             "Read-only bearer tokens of the Profile API (the admin token also works)")
          .secret()
          .defaultValue(json::array{}),
      option("external_ids", &ProfilesConfig::external_ids,
             "Trait names whose values identify a person too (e.g. hubspot_id, salesforce_id)")
          .defaultValue(json::array{}),
      option("blocked_values", &ProfilesConfig::blocked_values,
             "Identifier values never used to link people, besides the built-in ones (null, "
             "undefined, 0, empty, ...)")
          .defaultValue(json::array{}),
      option("max_anonymous_ids", &ProfilesConfig::max_anonymous_ids,
             "Most anonymous ids linked to one profile; more are refused (counted, logged)")
          .defaultValue(100)
          .range(1, 1'000'000),
      option("identified_merges", &ProfilesConfig::identified_merges,
             "Whether two profiles that each have a userId may merge: never, on an explicit "
             "alias, or always")
          .oneOf({"never", "alias", "always"})
          .defaultValue("never"),
      option("computed", &ProfilesConfig::computed,
             "Computed traits by name: {last: N, of: PATH, where: {event: E}}, {count: E, "
             "within: 30d}, {sum: PATH, where: .., within: ..}, {latest: PATH, where: ..}")
          .defaultValue(json::object{}),
      option("change_events", &ProfilesConfig::change_events,
             "Emit an identify event from the built-in source `profiles` when a profile's "
             "traits or computed traits change")
          .defaultValue(true),
      option("change_window", &ProfilesConfig::change_window,
             "Changes of one person within this window make one profile-change event")
          .defaultValue("1s")
          .range(0, 3'600'000),
  };
  return table;
}

// `profiles.computed`: each entry checked here, so that an error names its line and key.
void readComputedTraits(YamlChecker& checker, const YAML::Node& node, ProfilesConfig& out) {
  for (const auto& [name, value] : out.computed) {
    const std::string path = "profiles.computed." + std::string(name);
    const YAML::Node at = childOf(node, name);
    auto bad = [&](const std::string& key, const std::string& message) {
      checker.error(key.empty() ? at : childOf(at, key), key.empty() ? path : path + "." + key,
                    message);
    };
    if (!value.is_object()) {
      bad("", "expected a mapping such as {count: \"Order Completed\", within: 30d}");
      continue;
    }
    const json::object& o = value.as_object();
    ComputedTraitConfig t;
    t.name = std::string(name);
    int kinds = 0;
    for (const auto& [key, v] : o) {
      if (key == "last") {
        ++kinds;
        t.kind = ComputedTraitConfig::Kind::Last;
        if (!v.is_int64() || v.as_int64() < 1 || v.as_int64() > 1000) {
          bad("last", "expected how many values to keep, 1 to 1000");
        } else {
          t.last_n = v.as_int64();
        }
      } else if (key == "count") {
        ++kinds;
        t.kind = ComputedTraitConfig::Kind::Count;
        if (!v.is_string() || v.as_string().empty()) {
          bad("count", "expected the name of the event to count");
        } else {
          t.where_event = std::string(v.as_string());
        }
      } else if (key == "sum" || key == "latest") {
        ++kinds;
        t.kind = key == "sum" ? ComputedTraitConfig::Kind::Sum : ComputedTraitConfig::Kind::Latest;
        if (!v.is_string() || v.as_string().empty()) {
          bad(std::string(key), "expected a path into the event, e.g. properties.value");
        } else {
          t.path = std::string(v.as_string());
        }
      } else if (key == "of") {
        if (!v.is_string() || v.as_string().empty()) {
          bad("of", "expected a path into the event, e.g. properties.sku");
        } else {
          t.path = std::string(v.as_string());
        }
      } else if (key == "within") {
        auto ms = v.is_string()  ? sdk::parseDuration(v.as_string())
                  : v.is_int64() ? sdk::Result<std::int64_t>(v.as_int64())
                                 : sdk::Result<std::int64_t>(sdk::makeError(
                                       sdk::ErrorCode::InvalidArgument, "not a duration"));
        if (!ms || *ms <= 0) {
          bad("within", "expected a duration such as 30d, 1h or 15m");
        } else {
          t.within_ms = *ms;
        }
      } else if (key == "where") {
        if (!v.is_object()) {
          bad("where", "expected {event: NAME} and/or {type: TYPE}");
          continue;
        }
        for (const auto& [wk, wv] : v.as_object()) {
          if ((wk != "event" && wk != "type") || !wv.is_string() || wv.as_string().empty()) {
            bad("where", "expected {event: NAME} and/or {type: TYPE} (strings)");
          } else if (wk == "type" && !sdk::parseEventType(wv.as_string())) {
            bad("where", "unknown event type '" + std::string(wv.as_string()) +
                             "' (track, identify, page, screen, group, alias)");
          } else if (wk == "event") {
            t.where_event = std::string(wv.as_string());
          } else {
            t.where_type = std::string(wv.as_string());
          }
        }
      } else {
        bad(std::string(key), "unknown key '" + std::string(key) +
                                  "' (last, of, count, sum, latest, where, within)");
      }
    }
    if (kinds != 1) {
      bad("", "expected exactly one of last, count, sum, latest");
      continue;
    }
    if (t.kind == ComputedTraitConfig::Kind::Last && t.path.empty()) {
      bad("", "`last` needs `of`: the path of the values to keep");
    }
    if (t.kind == ComputedTraitConfig::Kind::Last && t.within_ms > 0) {
      bad("within", "`within` applies to count and sum");
    }
    out.computed_traits.push_back(std::move(t));
  }
}

const OptionTable<ConsentConfig>& consentTable() {
  static const OptionTable<ConsentConfig> table{
      option("aliases", &ConsentConfig::aliases,
             "Consent-manager ids mapped to category names, e.g. {C0004: marketing}")
          .defaultValue(json::object{}),
  };
  return table;
}

const OptionTable<BatchConfig>& batchTable() {
  static const OptionTable<BatchConfig> table{
      option("max_events", &BatchConfig::max_events, "Most events in one delivery")
          .defaultValue(100)
          .range(1, 100'000),
      option("max_bytes", &BatchConfig::max_bytes, "Most bytes of event JSON in one delivery")
          .defaultValue("1MiB")
          .range(1024, 1 << 30),
      option("max_wait", &BatchConfig::max_wait, "Longest wait to fill a batch")
          .defaultValue("200ms")
          .range(0, 600'000),
  };
  return table;
}

const OptionTable<RetryConfig>& retryTable() {
  static const OptionTable<RetryConfig> table{
      option("max_attempts", &RetryConfig::max_attempts,
             "Deliveries tried before an event is dead-lettered")
          .defaultValue(10)
          .range(1, 100'000),
      option("max_age", &RetryConfig::max_age,
             "An event still failing this long after it was received is dead-lettered")
          .defaultValue("24h")
          .range(1000, 90.0 * 86'400'000),
      option("initial_backoff", &RetryConfig::initial_backoff, "First retry delay (before jitter)")
          .defaultValue("1s")
          .range(1, 3'600'000),
      option("max_backoff", &RetryConfig::max_backoff, "Longest retry delay")
          .defaultValue("5m")
          .range(1, 86'400'000),
  };
  return table;
}

const OptionTable<RateLimitConfig>& rateLimitTable() {
  static const OptionTable<RateLimitConfig> table{
      option("per_second", &RateLimitConfig::per_second,
             "Events per second delivered at most; 0 = unlimited")
          .defaultValue(0)
          .range(0, 1e9),
      option("burst", &RateLimitConfig::burst, "Events that may go at once; 0 = per_second")
          .defaultValue(0)
          .range(0, 1e9),
  };
  return table;
}

const OptionTable<FilterConfig>& filterTable() {
  static const OptionTable<FilterConfig> table{
      option("types", &FilterConfig::types,
             "Event types delivered (track, identify, page, screen, group, alias); empty = all")
          .defaultValue(json::array{}),
      option("events", &FilterConfig::events,
             "Names of track events delivered; empty = all. Other types are not affected")
          .defaultValue(json::array{}),
  };
  return table;
}

// `sync:` as written; readSync turns it into a SyncConfig.
struct SyncKeys {
  std::string mode;
  std::chrono::milliseconds every{0};
  std::string at;
  std::string timezone;
};

const OptionTable<SyncKeys>& syncTable() {
  static const OptionTable<SyncKeys> table{
      option("mode", &SyncKeys::mode,
             "realtime: events as they arrive, from the sources in `from`; scheduled: at the "
             "times below, each person's profile from the built-in source `sync.<id>` only "
             "(needs profiles, not yet with queue.backend nats)")
          .oneOf({"realtime", "scheduled"})
          .defaultValue("realtime"),
      option("every", &SyncKeys::every,
             "With mode: scheduled, the period: under 24h it divides 24h (5m, 15m, 1h, 6h), "
             "otherwise whole days counted from 1970-01-01 (7d: Thursdays). Default 24h when "
             "only `at` is written"),
      option("at", &SyncKeys::at,
             "With mode: scheduled, the local time (HH:MM) runs are anchored at: at, at + every, "
             "... through each day")
          .defaultValue("00:00"),
      option("timezone", &SyncKeys::timezone,
             "With mode: scheduled, the IANA time zone of `at` (Europe/Berlin). A time the DST "
             "change skips runs when the gap ends; one it repeats runs once")
          .defaultValue("UTC"),
  };
  return table;
}

const OptionTable<ConnectorConfig>& sourceTable() {
  static const OptionTable<ConnectorConfig> table{
      option("id", &ConnectorConfig::id, "Unique id of this connector").required(),
      option("plugin", &ConnectorConfig::plugin, "Name of the plugin").required(),
      option("enabled", &ConnectorConfig::enabled, "false keeps the block but does not start it")
          .defaultValue(true),
      option("config", &ConnectorConfig::config, "The plugin's options"),
  };
  return table;
}

const OptionTable<ConnectorConfig>& destinationTable() {
  static const OptionTable<ConnectorConfig> table{
      option("id", &ConnectorConfig::id, "Unique id of this connector").required(),
      option("plugin", &ConnectorConfig::plugin, "Name of the plugin").required(),
      option("enabled", &ConnectorConfig::enabled, "false keeps the block but does not start it")
          .defaultValue(true),
      option("config", &ConnectorConfig::config, "The plugin's options"),
      option("from", &ConnectorConfig::from, "Source ids delivered here; empty = every source")
          .defaultValue(json::array{}),
      option("consent", &ConnectorConfig::consent,
             "Consent categories the person must have granted")
          .defaultValue(json::array{}),
      option("consent_mode", &ConnectorConfig::consent_mode,
             "all: every listed category is required; any: at least one")
          .oneOf({"all", "any"})
          .defaultValue("all"),
      option("consent_default", &ConnectorConfig::consent_default,
             "When the person's consent is unknown: deny (GDPR-safe) or grant")
          .oneOf({"deny", "grant"})
          .defaultValue("deny"),
      option("filter", &ConnectorConfig::config, "Which events are delivered (types, events)"),
      option("batch", &ConnectorConfig::config, "Batching (max_events, max_bytes, max_wait)"),
      option("retry", &ConnectorConfig::config,
             "Retry budget (max_attempts, max_age, initial_backoff, max_backoff)"),
      option("rate_limit", &ConnectorConfig::config, "Token bucket (per_second, burst)"),
      option("sync", &ConnectorConfig::config,
             "When events are delivered: realtime (as they arrive) or scheduled (mode, every, "
             "at, timezone)"),
      option("concurrency", &ConnectorConfig::concurrency, "Deliveries in flight at once")
          .defaultValue(1)
          .range(1, 256),
      option("ordering", &ConnectorConfig::ordering,
             "person: each person's events in order, one per call (vendors); none: any events "
             "together (a warehouse). Default: the plugin's, else person")
          .oneOf({"person", "none"})
          .defaultValue("person"),
      option("start", &ConnectorConfig::start,
             "Where a new destination starts: latest (new events only) or earliest (backfill)")
          .oneOf({"latest", "earliest"})
          .defaultValue("latest"),
      option("hash", &ConnectorConfig::hash,
             "JSON paths (e.g. traits.email) replaced by the SHA-256 of their lower-cased value")
          .defaultValue(json::array{}),
      option("drop", &ConnectorConfig::drop,
             "JSON paths (e.g. context.ip) removed from events before delivery")
          .defaultValue(json::array{}),
  };
  return table;
}

bool splitListen(const std::string& listen, std::string& host, std::uint16_t& port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return false;
  }
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned value = 0;
  const char* begin = listen.data() + colon + 1;
  const char* end = listen.data() + listen.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || begin == end || value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

bool validId(const std::string& id) {
  if (id.empty() || id.size() > 64 || !(std::islower(static_cast<unsigned char>(id[0])) ||
                                        std::isdigit(static_cast<unsigned char>(id[0])))) {
    return false;
  }
  for (char c : id) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

KeyMark markOf(const YAML::Node& node, KeyMark absent) {
  if (!node.IsDefined() || node.Mark().line < 0) {
    return absent;
  }
  return {node.Mark().line + 1, node.Mark().column + 1};
}

// A destination's `sync:`. The schedule goes through core/sync's own checks, so `--check` and
// the daemon's runs agree on it; then what mode: scheduled needs of the rest of the file
// (`sections`: profiles and queue, read already). Scheduled: `from` becomes {"sync.<id>"}.
void readSync(YamlChecker& checker, const YAML::Node& item, const std::string& path,
              const DaemonConfig& sections, ConnectorConfig& c) {
  const YAML::Node node = childOf(item, "sync");
  const std::string key = path + ".sync";
  c.sync.mark = markOf(node, c.mark);
  if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
    return;  // "expected a mapping", reported with the destination's keys
  }
  const json::object checked = checker.checkMapping(node, syncTable().specs(), key);
  const SyncKeys keys = syncTable().bind(checked);
  auto written = [&](const char* name) {
    const YAML::Node value = childOf(node, name);
    return value.IsDefined() && !value.IsNull();
  };
  auto markAt = [&](const char* name) { return markOf(childOf(node, name), c.sync.mark); };
  if (!checked.contains("mode")) {
    return;  // not a mode; reported
  }
  if (keys.mode != "scheduled") {
    for (const char* name : {"every", "at", "timezone"}) {
      if (written(name)) {
        checker.error(markAt(name), key + "." + name,
                      "applies to mode: scheduled only (realtime is the default)");
      }
    }
    return;
  }
  c.sync.mode = SyncConfig::Mode::Scheduled;
  // A written value absent from `checked` is one the table refused, reported already.
  if (written("at") && checked.contains("at")) {
    if (auto at = sync::parseAt(keys.at); !at) {
      checker.error(markAt("at"), key + ".at", at.error().message);
    } else {
      c.sync.at_minute = *at;
    }
  }
  if (written("every")) {
    if (!checked.contains("every")) {
      // not a duration; reported
    } else if (auto status = sync::checkEvery(keys.every.count()); !status) {
      checker.error(markAt("every"), key + ".every", status.message());
    } else {
      c.sync.every_ms = keys.every.count();
    }
  } else if (written("at")) {
    c.sync.every_ms = 86'400'000;  // once a day, at `at`
  } else {
    checker.error(c.sync.mark, key + ".every",
                  "mode: scheduled needs `every` (e.g. 1h) or `at` (e.g. \"02:00\", once a day)");
  }
  if (checked.contains("timezone")) {
    if (auto status = sync::checkTimezone(keys.timezone); !status) {
      const std::string hint = closestMatch(keys.timezone, sync::timezoneNames());
      checker.error(markAt("timezone"), key + ".timezone",
                    status.message() + (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
    } else {
      c.sync.timezone = keys.timezone;
    }
  }
  const KeyMark mode_mark = markAt("mode");
  if (!sections.profiles.enabled) {
    checker.error(mode_mark, key + ".mode",
                  "mode: scheduled needs profiles (profiles.enabled is false): each run sends "
                  "people's profiles from the profile store");
  }
  if (sections.queue.backend == "nats") {
    checker.error(mode_mark, key + ".mode",
                  "sync.mode scheduled is not supported with queue.backend nats yet");
  }
  if (const YAML::Node from = childOf(item, "from"); from.IsDefined() && !from.IsNull()) {
    checker.error(markOf(from, c.mark), path + ".from",
                  "a scheduled destination reads only its built-in source 'sync." + c.id +
                      "'; remove `from` (or use sync.mode: realtime)");
  }
  c.from = {std::string(kSyncSourcePrefix) + c.id};
}

// Checks one `sources:` or `destinations:` list. `sections`: the daemon's sections, read
// already (what a destination's `sync:` depends on).
std::vector<ConnectorConfig> readConnectors(YamlChecker& checker, const YAML::Node& list,
                                            ConnectorKind kind, const DaemonConfig& sections) {
  std::vector<ConnectorConfig> out;
  const char* section = kind == ConnectorKind::Source ? "sources" : "destinations";
  if (!list.IsDefined() || list.IsNull()) {
    return out;
  }
  if (!list.IsSequence()) {
    checker.error(list, section, "expected a list of connectors (each item starts with '- id:')");
    return out;
  }
  const auto& table = kind == ConnectorKind::Source ? sourceTable() : destinationTable();
  auto specs = table.specs();
  if (kind == ConnectorKind::Source) {
    // Known here so that `sync:` on a source is told it is a destination's key, below, rather
    // than "unknown option".
    specs.push_back(sdk::OptionSpec{.key = "sync", .type = sdk::OptionType::Object});
  }
  std::size_t index = 0;
  for (const auto& item : list) {
    std::string path = std::string(section) + "[" + std::to_string(index++) + "]";
    json::object checked = checker.checkMapping(item, specs, path);
    // `config` and the nested sections are free-form here; checked below with their own tables.
    json::object plain = checked;
    for (const char* nested : {"config", "filter", "batch", "retry", "rate_limit", "sync"}) {
      plain.erase(nested);
    }
    ConnectorConfig c = table.bind(plain);
    c.kind = kind;
    c.key_path = path;
    c.mark = {item.Mark().line + 1, item.Mark().column + 1};
    if (item.IsMap()) {
      c.config_node = childOf(item, "config");
      if (kind == ConnectorKind::Source) {
        if (const YAML::Node sync = childOf(item, "sync"); sync.IsDefined() && !sync.IsNull()) {
          checker.error(markOf(sync, c.mark), path + ".sync",
                        "sync applies to destinations only (when they get their events)");
        }
      }
      // A source id starting with "sync." is reported (more plainly) by readDocument.
      const bool reserved = kind == ConnectorKind::Source && c.id.starts_with(kSyncSourcePrefix);
      if (!c.id.empty() && !reserved && !validId(c.id)) {
        checker.error(childOf(item, "id"), path + ".id",
                      "'" + c.id + "' is not a valid id (lower-case letters, digits, '_' and '-')");
      }
      if (kind == ConnectorKind::Destination) {
        c.filter = filterTable().bind(
            checker.checkMapping(childOf(item, "filter"), filterTable().specs(), path + ".filter"));
        c.batch = batchTable().bind(
            checker.checkMapping(childOf(item, "batch"), batchTable().specs(), path + ".batch"));
        auto written = [](const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); };
        c.written.max_events = written(childOf(childOf(item, "batch"), "max_events"));
        c.written.max_bytes = written(childOf(childOf(item, "batch"), "max_bytes"));
        c.written.max_wait = written(childOf(childOf(item, "batch"), "max_wait"));
        c.written.concurrency = written(childOf(item, "concurrency"));
        c.written.ordering = written(childOf(item, "ordering"));
        c.retry = retryTable().bind(
            checker.checkMapping(childOf(item, "retry"), retryTable().specs(), path + ".retry"));
        c.rate_limit = rateLimitTable().bind(checker.checkMapping(
            childOf(item, "rate_limit"), rateLimitTable().specs(), path + ".rate_limit"));
        for (const auto& type : c.filter.types) {
          if (!sdk::parseEventType(type)) {
            checker.error(childOf(childOf(item, "filter"), "types"), path + ".filter.types",
                          "unknown event type '" + type +
                              "' (track, identify, page, screen, group, alias)");
          }
        }
        if (c.retry.max_backoff < c.retry.initial_backoff) {
          checker.error(childOf(item, "retry"), path + ".retry.max_backoff",
                        "must not be shorter than initial_backoff");
        }
        readSync(checker, item, path, sections, c);
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

// backend: nats: every url a nats:// or tls:// address, a stream name NATS accepts.
void checkQueue(YamlChecker& checker, const YAML::Node& node, QueueConfig& queue) {
  queue.urls.clear();
  std::string_view rest = queue.url;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view url = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!url.empty() && url.front() == ' ') {
      url.remove_prefix(1);
    }
    while (!url.empty() && url.back() == ' ') {
      url.remove_suffix(1);
    }
    if (!url.empty()) {
      queue.urls.emplace_back(url);
    }
  }
  if (queue.backend != "nats") {
    return;
  }
  if (queue.urls.empty()) {
    checker.error(childOf(node, "url"), "queue.url", "backend: nats needs at least one server");
  }
  for (const auto& url : queue.urls) {
    if (!url.starts_with("nats://") && !url.starts_with("tls://")) {
      checker.error(childOf(node, "url"), "queue.url",
                    "'" + url + "' is not a NATS address (nats://host:port or tls://host:port)");
    }
  }
  const bool stream_ok =
      !queue.stream.empty() && queue.stream.size() <= 64 &&
      std::all_of(queue.stream.begin(), queue.stream.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      });
  if (!stream_ok) {
    checker.error(childOf(node, "stream"), "queue.stream",
                  "expected 1 to 64 letters, digits, '_' or '-' (a JetStream stream name)");
  }
  const bool node_ok = std::all_of(queue.node_id.begin(), queue.node_id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  if (!node_ok) {
    checker.error(childOf(node, "node_id"), "queue.node_id",
                  "expected letters, digits, '_' or '-'");
  }
}

// The audiences against the rest of the file: they need profiles, and each of their
// `destinations` names a configured destination. Then each destination's derived `audiences`:
// the names of the audiences listing it, sorted.
void checkAudiences(YamlChecker& checker, const YAML::Node& node, DaemonConfig& config) {
  if (!config.audiences.empty() && !config.profiles.enabled) {
    checker.error(node, "audiences",
                  "audiences need profiles (profiles.enabled is false): enable `profiles:` "
                  "(audiences are evaluated on each person's profile)");
  }
  std::map<std::string, ConnectorConfig*, std::less<>> destinations;
  std::vector<std::string> destination_ids;
  for (auto& d : config.destinations) {
    d.audiences.clear();
    if (!d.id.empty() && destinations.emplace(d.id, &d).second) {
      destination_ids.push_back(d.id);
    }
  }
  std::set<std::string, std::less<>> source_ids;
  for (const auto& s : config.sources) {
    source_ids.insert(s.id);
  }
  for (const auto& audience : config.audiences) {
    for (std::size_t i = 0; i < audience.destinations.size(); ++i) {
      const std::string& id = audience.destinations[i];
      const auto found = destinations.find(id);
      if (found != destinations.end()) {
        found->second->audiences.push_back(audience.name);
        continue;
      }
      const KeyMark mark =
          i < audience.destination_marks.size() ? audience.destination_marks[i] : audience.mark;
      const std::string path = audience.key_path + ".destinations[" + std::to_string(i) + "]";
      const std::string hint = closestMatch(id, destination_ids);
      const std::string did_you_mean = hint.empty() ? "" : "; did you mean '" + hint + "'?";
      if (source_ids.contains(id) || id == kProfilesSource || id == kAudiencesSource) {
        checker.error(mark, path,
                      "'" + id + "' is a source, not a destination" + did_you_mean);
      } else {
        checker.error(mark, path, "no destination with id '" + id + "'" + did_you_mean);
      }
    }
  }
  for (auto& d : config.destinations) {
    std::sort(d.audiences.begin(), d.audiences.end());
  }
}

std::optional<DaemonConfig> readDocument(const YAML::Node& root, const std::string& file,
                                         const EnvLookup& env, ConfigErrors& errors) {
  std::size_t errors_before = errors.size();
  YamlChecker checker(file, env, errors);
  DaemonConfig config;
  config.file = file;
  if (!root.IsDefined() || root.IsNull()) {
    // An empty file: all defaults, no connectors.
  } else if (!root.IsMap()) {
    checker.error(root, "", "expected a mapping with server, storage, sources, destinations, ...");
  } else {
    checker.checkKeys(root, {"server", "storage", "queue", "plugins", "log", "consent",
                             "profiles", "sources", "destinations", "audiences"}, "");
  }
  auto section = [&](const char* key) { return childOf(root, key); };
  config.server = serverTable().bind(
      checker.checkMapping(section("server"), serverTable().specs(), "server"));
  config.storage = storageTable().bind(
      checker.checkMapping(section("storage"), storageTable().specs(), "storage"));
  config.queue =
      queueTable().bind(checker.checkMapping(section("queue"), queueTable().specs(), "queue"));
  checkQueue(checker, section("queue"), config.queue);
  config.plugins = pluginsTable().bind(
      checker.checkMapping(section("plugins"), pluginsTable().specs(), "plugins"));
  config.log = logTable().bind(checker.checkMapping(section("log"), logTable().specs(), "log"));
  config.consent = consentTable().bind(
      checker.checkMapping(section("consent"), consentTable().specs(), "consent"));
  for (const auto& [id, name] : config.consent.aliases) {
    if (!name.is_string() || name.as_string().empty()) {
      checker.error(childOf(childOf(section("consent"), "aliases"), id),
                    "consent.aliases." + std::string(id), "expected a category name (a string)");
    }
  }
  config.profiles = profilesTable().bind(
      checker.checkMapping(section("profiles"), profilesTable().specs(), "profiles"));
  readComputedTraits(checker, childOf(section("profiles"), "computed"), config.profiles);
  if (config.profiles.enabled && config.profiles.backend == "postgres" &&
      config.profiles.dsn.empty()) {
    checker.error(section("profiles"), "profiles.dsn", "backend: postgres needs a dsn");
  }
  if (!splitListen(config.server.listen, config.server.host, config.server.port)) {
    checker.error(childOf(section("server"), "listen"), "server.listen",
                  "expected host:port, e.g. \"127.0.0.1:8080\"");
  }
  if (config.server.tls_cert_file.empty() != config.server.tls_key_file.empty()) {
    const char* missing = config.server.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file";
    checker.error(section("server"), std::string("server.") + missing,
                  "tls_cert_file and tls_key_file must be set together");
  }
  // The daemon reads these only when it starts listening: say now, not at the first start.
  for (const auto& [key, path] : {std::pair{"tls_cert_file", &config.server.tls_cert_file},
                                  std::pair{"tls_key_file", &config.server.tls_key_file}}) {
    if (path->empty()) {
      continue;
    }
    std::ifstream in(*path);
    if (!in) {
      const int err = errno;
      checker.error(childOf(section("server"), key), std::string("server.") + key,
                    "cannot read '" + *path + "': " + std::strerror(err));
    } else if (std::filesystem::is_directory(*path)) {
      checker.error(childOf(section("server"), key), std::string("server.") + key,
                    "'" + *path + "' is a directory, not a PEM file");
    }
  }
  config.sources = readConnectors(checker, section("sources"), ConnectorKind::Source, config);
  config.destinations =
      readConnectors(checker, section("destinations"), ConnectorKind::Destination, config);
  config.audiences = audiences::readAudiences(checker, section("audiences"));

  std::set<std::string> ids;
  std::set<std::string> source_ids;
  for (auto* list : {&config.sources, &config.destinations}) {
    for (const auto& c : *list) {
      if (!c.id.empty() && !ids.insert(c.id).second) {
        checker.error(c.mark, c.key_path + ".id", "id '" + c.id + "' is used twice");
      }
      if (c.kind == ConnectorKind::Source) {
        if (c.id == kProfilesSource) {
          checker.error(c.mark, c.key_path + ".id",
                        "id 'profiles' is the built-in source of profile-change events");
        }
        if (c.id == kAudiencesSource) {
          checker.error(c.mark, c.key_path + ".id",
                        "id 'audiences' is the built-in source of audience events (Audience "
                        "Entered, Audience Exited)");
        }
        if (c.id.starts_with(kSyncSourcePrefix)) {
          checker.error(c.mark, c.key_path + ".id",
                        "ids starting with 'sync.' name the built-in sources of scheduled "
                        "destinations");
        }
        source_ids.insert(c.id);
      }
    }
  }
  std::vector<std::string> known_sources(source_ids.begin(), source_ids.end());
  // Loop protection: what a CRM source pulled does not go back to that CRM's destination.
  for (auto& d : config.destinations) {
    d.loop_sources.clear();
    for (const auto& s : config.sources) {
      if (!s.plugin.empty() && s.plugin == d.plugin) {
        d.loop_sources.push_back(s.id);
      }
    }
  }
  for (const auto& d : config.destinations) {
    if (d.sync.mode == SyncConfig::Mode::Scheduled) {
      continue;  // `from` is its own sync.<id> (readSync)
    }
    for (const auto& from : d.from) {
      if (from.starts_with(kSyncSourcePrefix)) {
        checker.error(d.mark, d.key_path + ".from",
                      "'" + from + "' is the built-in source of a scheduled destination, for "
                      "that destination only");
        continue;
      }
      if (from == kProfilesSource) {
        if (!config.profiles.enabled || !config.profiles.change_events) {
          checker.error(d.mark, d.key_path + ".from",
                        "the built-in source 'profiles' needs profiles.enabled and "
                        "profiles.change_events");
        }
        continue;
      }
      if (from == kAudiencesSource) {
        if (!config.profiles.enabled) {
          checker.error(d.mark, d.key_path + ".from",
                        "the built-in source 'audiences' needs profiles.enabled (audiences are "
                        "evaluated on the profiles)");
        }
        continue;
      }
      if (!source_ids.contains(from)) {
        std::string hint = closestMatch(from, known_sources);
        checker.error(d.mark, d.key_path + ".from",
                      "no source with id '" + from + "'" +
                          (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
      }
    }
  }
  checkAudiences(checker, section("audiences"), config);
  if (errors.size() != errors_before) {
    sortErrors(errors, errors_before);
    return std::nullopt;
  }
  return config;
}

}  // namespace

std::vector<ConfigSection> configSections() {
  return {
      {"server", "The HTTP server: tracking API, admin API, Profile API, metrics.",
       serverTable().specs()},
      {"storage", "The data directory: the queue, cursors, dead letters, privacy, profiles.",
       storageTable().specs()},
      {"queue", "Where accepted events wait for delivery.", queueTable().specs()},
      {"plugins", "Where plugins are looked for.", pluginsTable().specs()},
      {"log", "The daemon's log.", logTable().specs()},
      {"consent", "Consent enforcement, for every destination.", consentTable().specs()},
      {"profiles", "Unified customer profiles and the Profile API.", profilesTable().specs()},
      {"sources[]", "Each source: a plugin that receives or pulls events (`config`: its options, "
                    "below).",
       sourceTable().specs()},
      {"destinations[]", "Each destination: a plugin that delivers events (`config`: its options, "
                         "below).",
       destinationTable().specs()},
      {"destinations[].filter", "Which events a destination receives.", filterTable().specs()},
      {"destinations[].batch", "How events are grouped into one delivery (a plugin may suggest "
                               "other defaults for its vendor).",
       batchTable().specs()},
      {"destinations[].retry", "How long a failing delivery is retried before its events go to "
                               "the dead-letter queue.",
       retryTable().specs()},
      {"destinations[].rate_limit", "A token bucket in front of the vendor.",
       rateLimitTable().specs()},
      {"destinations[].sync", "When a destination gets its events: as they arrive (realtime) or "
                              "on a schedule, each person's profile (scheduled). Schedules keep "
                              "to the wall clock of `timezone` (core/sync/README.md).",
       syncTable().specs()},
  };
}

const std::vector<sdk::OptionSpec>& serverOptionSpecs() {
  static const auto specs = serverTable().specs();
  return specs;
}

const std::vector<sdk::OptionSpec>& storageOptionSpecs() {
  static const auto specs = storageTable().specs();
  return specs;
}

std::vector<std::string> DaemonConfig::secrets() const {
  std::vector<std::string> out;
  if (!server.admin_token.empty()) {
    out.push_back(server.admin_token);
  }
  for (const auto& token : profiles.tokens) {
    if (!token.empty()) {
      out.push_back(token);
    }
  }
  if (!profiles.dsn.empty()) {
    out.push_back(profiles.dsn);
  }
  for (const auto* list : {&sources, &destinations}) {
    for (const auto& c : *list) {
      out.insert(out.end(), c.secrets.begin(), c.secrets.end());
    }
  }
  return out;
}

std::optional<DaemonConfig> loadConfigText(const std::string& text, const std::string& file_name,
                                           const EnvLookup& env, ConfigErrors& errors) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    errors.push_back(ConfigError{file_name, e.mark.line >= 0 ? e.mark.line + 1 : 0,
                                 e.mark.column >= 0 ? e.mark.column + 1 : 0, "",
                                 "YAML syntax error: " + e.msg});
    return std::nullopt;
  }
  return readDocument(root, file_name, env, errors);
}

std::optional<DaemonConfig> loadConfig(const std::string& path, const EnvLookup& env,
                                       ConfigErrors& errors) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errors.push_back(ConfigError{path, 0, 0, "", "cannot read the file"});
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return loadConfigText(text.str(), path, env, errors);
}

namespace {

// What the plugin says suits its vendor, for every batching key the operator did not write
// (clamped to the bounds of the daemon's own option tables).
void applyDeliveryDefaults(const sdk::DeliveryDefaults& hints, ConnectorConfig& c) {
  if (hints.max_events > 0 && !c.written.max_events) {
    c.batch.max_events = std::clamp<std::int64_t>(hints.max_events, 1, 100'000);
  }
  if (hints.max_bytes > 0 && !c.written.max_bytes) {
    c.batch.max_bytes = std::clamp<std::uint64_t>(hints.max_bytes, 1024, 1 << 30);
  }
  if (hints.max_wait && !c.written.max_wait) {
    c.batch.max_wait = std::clamp(*hints.max_wait, std::chrono::milliseconds(0),
                                  std::chrono::milliseconds(600'000));
  }
  if (hints.concurrency > 0 && !c.written.concurrency) {
    c.concurrency = std::clamp<std::int64_t>(hints.concurrency, 1, 256);
  }
  if (hints.ordering && !c.written.ordering) {
    c.ordering = sdk::toString(*hints.ordering);
  }
}

// Every string inside a secret option's value: a token, a list of write keys, the values of a
// header map.
void collectSecretStrings(const json::value& v, std::vector<std::string>& out) {
  if (v.is_string()) {
    if (!v.get_string().empty()) {
      out.emplace_back(v.get_string());
    }
  } else if (v.is_array()) {
    for (const auto& item : v.get_array()) {
      collectSecretStrings(item, out);
    }
  } else if (v.is_object()) {
    for (const auto& [key, item] : v.get_object()) {
      collectSecretStrings(item, out);
    }
  }
}

}  // namespace

bool checkConnectors(DaemonConfig& config, const PluginCatalog& plugins, ConfigErrors& errors) {
  std::size_t errors_before = errors.size();
  YamlChecker checker(config.file, processEnvironment(), errors);
  for (auto* list : {&config.sources, &config.destinations}) {
    for (auto& c : *list) {
      if (!c.enabled) {
        continue;
      }
      const bool want_source = c.kind == ConnectorKind::Source;
      const auto want = want_source ? sdk::PluginKind::Source : sdk::PluginKind::Destination;
      const sdk::Plugin* plugin = plugins.find(want, c.plugin);
      if (plugin == nullptr) {
        const auto other = want_source ? sdk::PluginKind::Destination : sdk::PluginKind::Source;
        if (plugins.find(other, c.plugin) != nullptr) {
          checker.error(c.mark, c.key_path + ".plugin",
                        "plugin '" + c.plugin + "' is a " + sdk::toString(other) + ", not a " +
                            sdk::toString(want));
          continue;
        }
        std::string hint = closestMatch(c.plugin, plugins.names());
        checker.error(c.mark, c.key_path + ".plugin",
                      "no plugin named '" + c.plugin + "' is loaded" +
                          (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
        continue;
      }
      const auto& d = plugin->descriptor();
      if (!want_source) {
        applyDeliveryDefaults(d.delivery, c);
      }
      std::size_t before = errors.size();
      c.config_marks.clear();
      c.config = checker.checkMapping(c.config_node, d.options, c.key_path + ".config",
                                      &c.config_marks, c.mark);
      if (errors.size() != before) {
        continue;
      }
      for (const auto& e : plugin->validate(c.config)) {
        KeyMark mark = c.mark;
        if (c.config_node.IsDefined() && c.config_node.Mark().line >= 0) {
          mark = {c.config_node.Mark().line + 1, c.config_node.Mark().column + 1};
        }
        if (auto it = c.config_marks.find(e.key); it != c.config_marks.end()) {
          mark = it->second;
        }
        checker.error(mark, c.key_path + ".config" + (e.key.empty() ? "" : "." + e.key),
                      e.message);
      }
      c.secrets.clear();
      for (const auto& spec : d.options) {
        if (!spec.secret) {
          continue;
        }
        if (const auto* v = c.config.if_contains(spec.key); v != nullptr) {
          collectSecretStrings(*v, c.secrets);
        }
      }
    }
  }
  sortErrors(errors, errors_before);
  return errors.size() == errors_before;
}

}  // namespace junction::core::config
