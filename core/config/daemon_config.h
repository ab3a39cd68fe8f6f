#pragma once

// The daemon's configuration: the YAML of DESIGN.md, read with yaml-cpp, checked against option
// tables (the same mechanism plugins use), every error reported at once with file:line and key.
//
// Loading happens in two steps because connector configs are checked against their plugin's
// option table, which is known only once plugins are loaded:
//   1. loadConfig(): the file, the daemon's own sections, the connector blocks;
//   2. checkConnectors(): each enabled connector's `config:` against its plugin.
// Relative paths (storage.path, plugins.paths) are relative to the working directory.

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/audiences/audience.h"
#include "core/config/config_error.h"
#include "core/config/yaml_checker.h"
#include "junction/sdk/options.h"
#include "junction/sdk/plugin.h"

namespace junction::core::config {

struct ServerConfig {
  std::string listen;
  std::string admin_token;
  std::uint64_t max_body_bytes = 0;
  std::chrono::milliseconds request_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds shutdown_grace{0};
  std::chrono::milliseconds readiness_stall{0};  // 0: a stalled destination never fails /readyz
  std::int64_t threads = 0;
  std::int64_t max_connections = 0;
  std::int64_t health_reserve = 0;
  std::int64_t max_connections_per_client = 0;
  std::string tls_cert_file;  // both set: HTTPS on `listen`
  std::string tls_key_file;

  // From `listen`, split by loadConfig.
  std::string host;
  std::uint16_t port = 0;
};

struct StorageConfig {
  std::string path;
  std::string fsync;  // always | batch | never
  std::chrono::milliseconds fsync_interval{0};
  std::uint64_t max_bytes = 0;  // 0 = no budget
  std::uint64_t segment_bytes = 0;
  std::int64_t recycle_segments = 0;
};

struct QueueConfig {
  std::string backend;  // embedded | nats
  // backend: nats (NATS JetStream; see core/queue/jetstream_queue.h)
  std::vector<std::string> urls;  // from `url`, split at commas by loadConfig
  std::string url;
  std::string stream;
  std::int64_t replicas = 1;
  std::int64_t partitions = 16;
  std::string credentials_file;
  bool tls = false;
  std::string tls_ca_file;
  std::uint64_t max_bytes = 0;  // the stream's budget; 0 = none
  std::chrono::milliseconds ack_wait{0};
  std::string node_id;  // "" = hostname-pid
};

struct PluginsConfig {
  std::vector<std::string> paths;
  std::vector<std::string> allow_override;
};

struct LogConfig {
  std::string level;   // debug | info | warn | error
  std::string format;  // text | json
};

struct BatchConfig {
  std::int64_t max_events = 0;
  std::uint64_t max_bytes = 0;
  std::chrono::milliseconds max_wait{0};
};

struct RetryConfig {
  std::int64_t max_attempts = 0;
  std::chrono::milliseconds max_age{0};
  std::chrono::milliseconds initial_backoff{0};
  std::chrono::milliseconds max_backoff{0};
};

struct RateLimitConfig {
  double per_second = 0;  // 0 = unlimited
  std::int64_t burst = 0;
};

struct FilterConfig {
  std::vector<std::string> types;   // event types let through; empty = all
  std::vector<std::string> events;  // track event names let through; empty = all
};

enum class ConnectorKind { Source, Destination };

// `sync:` — when a destination gets its events (core/sync/README.md). Realtime: as they arrive,
// from the sources `from` names. Scheduled: from its built-in source `sync.<id>` only, with runs
// at the local times of `every` anchored at `at` in `timezone` (see core/sync/schedule.h).
struct SyncConfig {
  enum class Mode { Realtime, Scheduled } mode = Mode::Realtime;
  std::int64_t every_ms = 0;  // scheduled: checked by sync::checkEvery (24h when only `at`)
  int at_minute = 0;          // scheduled: minutes after local midnight, 0..1439
  std::string timezone = "UTC";
  KeyMark mark;  // where `sync:` was written; the destination's block when it was not
};

struct ConnectorConfig {
  ConnectorKind kind = ConnectorKind::Source;
  std::string id;
  std::string plugin;
  bool enabled = true;
  std::string key_path;  // "sources[0]"
  KeyMark mark;          // where the block starts

  YAML::Node config_node;  // the raw `config:` mapping (checked by checkConnectors)
  KeyMarks config_marks;   // where each config key was written (after checkConnectors)
  sdk::ConfigObject config;  // checked and normalized (after checkConnectors)
  std::vector<std::string> secrets;  // values of secret options, for log scrubbing

  // Destinations only.
  std::vector<std::string> from;  // source ids; empty = every source
  // Loop protection: sources of the same plugin name as this destination (a `hubspot` source
  // for a `hubspot` destination), whose events it does not get unless `from` names them.
  // Filled by loadConfig.
  std::vector<std::string> loop_sources;
  std::vector<std::string> consent;
  std::string consent_mode;     // all | any
  std::string consent_default;  // deny | grant
  FilterConfig filter;
  BatchConfig batch;
  RetryConfig retry;
  RateLimitConfig rate_limit;
  std::int64_t concurrency = 1;
  std::string ordering = "person";  // person | none (see sdk::Ordering)
  // Which of the above the YAML wrote; the others take the plugin's DeliveryDefaults, if any.
  struct Written {
    bool max_events = false;
    bool max_bytes = false;
    bool max_wait = false;
    bool concurrency = false;
    bool ordering = false;
  } written;
  std::string start;  // latest | earliest
  std::vector<std::string> hash;  // PII: JSON paths whose values are SHA-256 hashed
  std::vector<std::string> drop;  // PII: JSON paths removed before delivery
  // Scheduled: loadConfig sets `from` to {"sync.<id>"}.
  SyncConfig sync;
  // Derived, not a YAML key: the names of the top-level audiences whose `destinations` list
  // this destination, sorted. Filled by loadConfig (destinations only). Routing sends this
  // destination the built-in source `audiences`' events of these audiences (RoutePolicy).
  std::vector<std::string> audiences;
};

// `consent:` — how consent-manager ids map to category names.
struct ConsentConfig {
  boost::json::object aliases;  // CMP id -> category name (strings; compared case-insensitively)
};

// One computed trait of `profiles.computed` (see core/profiles/README.md):
//   {last: N, of: PATH, where: W}     the N most recent distinct values of PATH, newest first
//   {count: EVENT, within: D}          matching events (within the last D; all time without)
//   {sum: PATH, where: W, within: D}   the sum of PATH's numbers over matching events
//   {latest: PATH, where: W}           PATH's value in the newest matching event
// W is {event: NAME} and/or {type: TYPE}; PATH a dotted path into the event (properties.sku).
struct ComputedTraitConfig {
  enum class Kind { Last, Count, Sum, Latest };
  std::string name;
  Kind kind = Kind::Count;
  std::string path;        // last, sum, latest
  std::string where_event;  // empty: any
  std::string where_type;   // empty: any
  std::int64_t last_n = 0;
  std::int64_t within_ms = 0;  // 0: all time
};

// The id of the built-in source whose events are profile changes (`from: [profiles]`).
inline constexpr std::string_view kProfilesSource = "profiles";
// The id of the built-in source whose events are audience changes: track "Audience Entered" /
// "Audience Exited" with properties.audience (see RoutePolicy for who gets them).
inline constexpr std::string_view kAudiencesSource = "audiences";
// The built-in source of a scheduled destination is this prefix and the destination's id
// (`sync.crm`); only that destination reads it, and no configured source id starts with it.
inline constexpr std::string_view kSyncSourcePrefix = "sync.";

// `profiles:` — the unified customer profiles (core/profiles).
struct ProfilesConfig {
  bool enabled = true;
  std::string backend;  // embedded (RocksDB) | sqlite | postgres
  std::string dsn;      // postgres
  std::int64_t recent_events = 0;
  std::uint64_t cache_bytes = 0;          // embedded: RocksDB block cache
  std::uint64_t api_cache_bytes = 0;      // the Profile API's rendered answers (0: off)
  std::vector<std::string> tokens;        // read-only bearer tokens of the Profile API
  std::vector<std::string> external_ids;  // trait names that are identifiers (hubspot_id)
  std::vector<std::string> blocked_values;
  std::int64_t max_anonymous_ids = 0;
  std::string identified_merges;  // never | alias | always
  boost::json::object computed;
  std::vector<ComputedTraitConfig> computed_traits;  // read from `computed`
  bool change_events = true;
  std::chrono::milliseconds change_window{0};
};

struct DaemonConfig {
  std::string file;
  ServerConfig server;
  StorageConfig storage;
  QueueConfig queue;
  PluginsConfig plugins;
  LogConfig log;
  ConsentConfig consent;
  ProfilesConfig profiles;
  std::vector<ConnectorConfig> sources;
  std::vector<ConnectorConfig> destinations;
  // Top-level `audiences:` (core/audiences), in file order; each one's `destinations` name
  // configured destinations (checked), and each destination's ConnectorConfig::audiences lists
  // the audiences naming it.
  std::vector<::junction::core::audiences::Audience> audiences;

  // Values of every secret option (admin token, plugins' secret options), for log scrubbing.
  std::vector<std::string> secrets() const;
};

// Step 1. Reads and checks `path`. Returns nullopt when any error was found; `errors` then
// lists them all (syntax errors stop at the first, as the parser does).
std::optional<DaemonConfig> loadConfig(const std::string& path, const EnvLookup& env,
                                       ConfigErrors& errors);
std::optional<DaemonConfig> loadConfigText(const std::string& text, const std::string& file_name,
                                           const EnvLookup& env, ConfigErrors& errors);

// What checkConnectors needs to know of the loaded plugins. Plugins are keyed by kind and name:
// `hubspot` may be both a source and a destination.
class PluginCatalog {
 public:
  virtual ~PluginCatalog() = default;
  virtual const sdk::Plugin* find(sdk::PluginKind kind, std::string_view name) const = 0;
  // Every loaded name (of any kind), for "did you mean" hints.
  virtual std::vector<std::string> names() const = 0;
};

// Step 2. Checks each enabled connector against its plugin: the plugin exists and has the right
// kind, `config:` passes the option table and the plugin's validate(); fills `config`.
// Disabled connectors are not checked (their plugin may be absent). Returns false on errors.
bool checkConnectors(DaemonConfig& config, const PluginCatalog& plugins, ConfigErrors& errors);

// The option tables of the daemon's own sections (printed by `junction config-docs`).
// The daemon's option tables, section by section, for the configuration reference
// (`junction reference`, docs/configuration.md).
struct ConfigSection {
  std::string path;  // "server", "destinations[].batch"
  std::string doc;
  std::vector<sdk::OptionSpec> specs;
};
std::vector<ConfigSection> configSections();

const std::vector<sdk::OptionSpec>& serverOptionSpecs();
const std::vector<sdk::OptionSpec>& storageOptionSpecs();

}  // namespace junction::core::config
