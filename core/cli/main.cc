// junction: the operator's command-line tool.
//
//   junction plugins [--config FILE] [--json]         list the plugins found
//   junction plugins NAME [--config FILE] [--json]    a plugin's options, as documentation
//   junction check CONFIG                             validate a configuration (exit 0 / 1)
//   junction dlq list|replay|purge --config FILE [--destination D] [--person P] [--id N]...
//                                  [--since T] [--until T] [--limit N] [--json] [--all]
//                                                     the dead-letter queue of a running junctiond
//   junction status --config FILE [--json]           a running junctiond: readiness, queue, every
//                                                     connector's state (exit 0 ready / 1)
//   junction pause|resume DESTINATION --config FILE  stop / restart a destination's deliveries
//                                                     (kept across restarts)
//   junction reload --config FILE                     apply the edited configuration (checked
//                                                     first; only changed connectors restart)
//   junction forget DESTINATION --config FILE         drop a removed destination's backlog
//   junction catalog --config FILE [--source S] [--json | --tracking-plan]
//                                                     the event catalog; a draft tracking plan
//   junction tail --config FILE [--source S] [--destination D] [--event E] [--person P]
//                [--count N] [--json]               the live event debugger in the terminal
//   junction audit verify [--config FILE | AUDIT_LOG] check the audit log's hash chain (exit 0 / 1)
//   junction recover cursors --config FILE            a lost cursor file (junctiond stopped)
//   junction warehouse verify --config FILE --destination ID
//                                                     a warehouse destination's rows against the
//                                                     daemon's durable delivered count (exit 0 / 1)
//   junction recover dead-letters --config FILE       a damaged dead_letters.db (junctiond stopped)
//   junction recover privacy --config FILE [--accept-loss]
//                                                     a lost or damaged privacy.db, rebuilt from
//                                                     the audit log (junctiond stopped)
//   junction import --config FILE --source ID FILE [--format ndjson|csv] [--mapping JSON]
//                  [--resume | --restart]          bulk events into a running junctiond
//   junction recover profiles --config FILE           a lost or damaged profiles.db: what is
//                                                     readable is kept, the rest rebuilt from
//                                                     the queue (junctiond stopped)
//
// Plugins are found as junctiond finds them: plugins.paths of --config FILE when given, and
// ../plugins next to this binary.

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "junction/sdk/http_client.h"
#include "junction/sdk/text.h"

#include "core/cli/import.h"
#include "core/cli/status.h"
#include "core/cli/tail.h"
#include "core/daemon/config_check.h"
#include "core/daemon/connector_context.h"
#include "core/daemon/plugin_docs.h"
#include "core/daemon/recovery.h"
#include "core/privacy/audit_log.h"
#include "core/privacy/privacy_recovery.h"
#include "core/queue/cursor_store.h"
#include "core/telemetry/log_sink.h"
#include "core/telemetry/metrics_registry.h"
#include "core/runtime/dir_lock.h"
#include "core/runtime/runtime.h"

namespace core = junction::core;

namespace {

// Loads the plugins of `config_file` (or only ../plugins next to the binary).
int loadPlugins(const std::string& config_file, core::plugin::PluginRegistry& registry,
                bool quiet_refusals) {
  std::vector<std::string> paths;
  std::vector<std::string> allow_override;
  if (!config_file.empty()) {
    core::config::ConfigErrors errors;
    auto config = core::config::loadConfig(config_file, core::config::processEnvironment(), errors);
    if (!config) {
      std::fputs(core::config::formatErrors(errors).c_str(), stderr);
      return 1;
    }
    paths = config->plugins.paths;
    allow_override = config->plugins.allow_override;
  }
  std::vector<core::plugin::LoadError> refused;
  registry.scanSearchPath(paths, allow_override, refused);
  if (!quiet_refusals) {
    for (const auto& r : refused) {
      std::fprintf(stderr, "plugin refused: %s\n", r.toString().c_str());
    }
  }
  return 0;
}

struct DlqArgs {
  std::string config_file;
  std::string url;
  std::string destination;
  std::string person;
  std::vector<std::int64_t> ids;
  std::string since;
  std::string until;
  std::size_t limit = 100;
  bool as_json = false;
  bool all = false;
};

// Calls the admin API of the daemon `args.config_file` describes (server.listen, admin_token).
int runDlq(const std::string& action, const DlqArgs& args) {
  core::config::ConfigErrors errors;
  auto config = core::config::loadConfig(args.config_file, core::config::processEnvironment(), errors);
  if (!config) {
    std::fputs(core::config::formatErrors(errors).c_str(), stderr);
    return 1;
  }
  if (config->server.admin_token.empty()) {
    std::fprintf(stderr, "junction: %s has no server.admin_token; the admin API is disabled\n",
                 args.config_file.c_str());
    return 1;
  }
  std::string base = args.url.empty() ? "http://" + config->server.listen : args.url;
  junction::sdk::HttpClient client;
  junction::sdk::HttpClientRequest request;
  request.headers.set("Authorization", "Bearer " + config->server.admin_token);
  boost::json::object filter;
  if (!args.destination.empty()) {
    filter["destination"] = args.destination;
  }
  if (!args.person.empty()) {
    filter["person"] = args.person;
  }
  if (!args.since.empty()) {
    filter["since"] = args.since;
  }
  if (!args.until.empty()) {
    filter["until"] = args.until;
  }
  if (!args.ids.empty()) {
    boost::json::array ids;
    for (auto id : args.ids) {
      ids.push_back(id);
    }
    filter["ids"] = std::move(ids);
  }
  if (action == "list") {
    std::string query = "limit=" + std::to_string(args.limit);
    for (const auto& [k, v] : filter) {
      if (v.is_string()) {
        // Every byte but RFC 3986's unreserved ones as %XX: a `+` of a time zone offset would
        // otherwise read as a space.
        query += "&" + std::string(k) + "=" + junction::sdk::percentEncode(v.as_string());
      }
    }
    for (auto id : args.ids) {
      query += "&id=" + std::to_string(id);
    }
    request.method = "GET";
    request.url = base + "/admin/dlq?" + query;
  } else {
    if (filter.empty() && !args.all) {
      std::fprintf(stderr, "junction: dlq %s needs a selection (--destination, --person, --id, "
                           "--since/--until) or --all\n", action.c_str());
      return 2;
    }
    if (!filter.empty() && args.all) {
      std::fprintf(stderr, "junction: dlq %s: --all means every dead letter; it cannot be "
                           "combined with a selection\n", action.c_str());
      return 2;
    }
    if (args.all) {
      filter["all"] = true;  // the API purges or replays everything only when told so
    }
    request.method = "POST";
    request.url = base + "/admin/dlq/" + action;
    request.headers.set("Content-Type", "application/json");
    request.body = boost::json::serialize(filter);
  }
  auto response = client.send(request);
  if (!response.ok()) {
    std::fprintf(stderr, "junction: %s: %s\n", request.url.c_str(), response.describe().c_str());
    return 1;
  }
  if (args.as_json || action != "list") {
    std::printf("%s\n", response.body.c_str());
    return 0;
  }
  boost::system::error_code ec;
  auto body = boost::json::parse(response.body, ec);
  if (ec || !body.is_object()) {
    std::fprintf(stderr, "junction: unexpected answer: %s\n", response.body.c_str());
    return 1;
  }
  std::printf("%-8s %-16s %-24s %-38s %-8s %s\n", "ID", "DESTINATION", "FAILED AT", "MESSAGE ID",
              "ATTEMPTS", "REASON");
  for (const auto& row : body.as_object().at("dead_letters").as_array()) {
    const auto& o = row.as_object();
    std::printf("%-8lld %-16s %-24s %-38s %-8lld %s\n", static_cast<long long>(o.at("id").as_int64()),
                std::string(o.at("destination").as_string()).c_str(),
                std::string(o.at("failedAt").as_string()).c_str(),
                std::string(o.at("messageId").as_string()).c_str(),
                static_cast<long long>(o.at("attempts").as_int64()),
                std::string(o.at("reason").as_string()).c_str());
  }
  return 0;
}

// `junction audit verify`: the log of --config's storage.path, or the file given.
int runAuditVerify(const std::string& config_file, const std::string& log_file) {
  std::string file = log_file;
  if (file.empty()) {
    if (config_file.empty()) {
      std::fprintf(stderr, "junction: audit verify needs --config FILE or the audit log's path\n");
      return 2;
    }
    core::config::ConfigErrors errors;
    auto config = core::config::loadConfig(config_file, core::config::processEnvironment(), errors);
    if (!config) {
      std::fputs(core::config::formatErrors(errors).c_str(), stderr);
      return 1;
    }
    file = (std::filesystem::path(config->storage.path) / "audit.log").string();
  }
  auto result = core::privacy::verifyAuditLog(file);
  if (!result.ok) {
    if (result.bad_line == 0) {
      std::fprintf(stderr, "%s: %s\n", file.c_str(), result.problem.c_str());
    } else {
      std::fprintf(stderr, "%s:%llu: %s (%llu entries before it verified)\n", file.c_str(),
                   static_cast<unsigned long long>(result.bad_line), result.problem.c_str(),
                   static_cast<unsigned long long>(result.entries));
    }
    return 1;
  }
  std::printf("%s: OK, %llu entries\n", file.c_str(), static_cast<unsigned long long>(result.entries));
  return 0;
}

// `junction recover cursors`: see core/daemon/recovery.h.
int runRecoverCursors(const std::string& config_file) {
  core::config::ConfigErrors errors;
  auto config = core::config::loadConfig(config_file, core::config::processEnvironment(), errors);
  if (!config) {
    std::fputs(core::config::formatErrors(errors).c_str(), stderr);
    return 1;
  }
  auto report = core::daemon::recoverCursors(*config);
  if (!report) {
    std::fprintf(stderr, "junction: %s\n", report.error().message.c_str());
    return report.error().code == junction::sdk::ErrorCode::NotFound ? 0 : 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}

// `junction recover privacy`: see core/privacy/privacy_recovery.h.
int runRecoverPrivacy(const std::string& config_file, bool accept_loss) {
  core::config::ConfigErrors errors;
  auto config = core::config::loadConfig(config_file, core::config::processEnvironment(), errors);
  if (!config) {
    std::fputs(core::config::formatErrors(errors).c_str(), stderr);
    return 1;
  }
  const std::filesystem::path storage(config->storage.path);
  auto lock = core::runtime::DirectoryLock::acquire(storage, "storage.path");
  if (!lock) {
    std::fprintf(stderr, "junction: %s (stop junctiond before recovering its state)\n",
                 lock.error().message.c_str());
    return 1;
  }
  const core::runtime::SystemClock clock;
  auto report = core::privacy::recoverPrivacyStore(storage, clock, accept_loss);
  if (!report) {
    std::fprintf(stderr, "junction: %s\n", report.error().message.c_str());
    const bool intact = report.error().code == junction::sdk::ErrorCode::NotFound &&
                        report.error().message.find("nothing to recover") != std::string::npos;
    return intact ? 0 : 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}

// `junction warehouse verify`: the destination (a plugin that supports verify, such as
// postgres) compares what it stored with the delivered count the daemon committed with the
// destination's cursor. Safe while junctiond runs (it reads the cursor file, never writes).
int runWarehouseVerify(const std::string& config_file, const std::string& destination) {
  core::plugin::PluginRegistry registry;
  auto outcome =
      core::daemon::checkConfigFile(config_file, registry, core::config::processEnvironment());
  if (!outcome.ok()) {
    std::fputs(outcome.report().c_str(), stderr);
    return 1;
  }
  const auto& config = *outcome.config;
  const core::config::ConnectorConfig* dest = nullptr;
  std::vector<std::string> ids;
  for (const auto& c : config.destinations) {
    ids.push_back(c.id);
    if (c.id == destination) {
      dest = &c;
    }
  }
  if (dest == nullptr) {
    std::string hint = core::config::closestMatch(destination, ids);
    std::fprintf(stderr, "junction: %s has no destination '%s'%s\n", config_file.c_str(),
                 destination.c_str(), hint.empty() ? "" : ("; did you mean '" + hint + "'?").c_str());
    return 1;
  }
  auto cursors = core::queue::CursorStore::read(config.storage.path);
  junction::sdk::DeliveredCount delivered;
  if (cursors) {
    if (auto it = cursors->find(destination); it != cursors->end()) {
      delivered.events = it->second.delivered;
    }
  } else if (cursors.error().code != junction::sdk::ErrorCode::NotFound) {
    std::fprintf(stderr, "junction: %s\n", cursors.error().message.c_str());
    return 1;
  }

  core::telemetry::LogSink sink(stderr, junction::sdk::LogLevel::Warn);
  sink.setSecrets(config.secrets());
  core::telemetry::MetricsRegistry metrics;
  const core::runtime::SystemClock clock;
  boost::asio::io_context work;
  core::daemon::ContextParts parts;
  parts.id = destination;
  parts.sink = &sink;
  parts.metrics = &metrics;
  parts.clock = &clock;
  parts.work = &work;
  parts.checkpoint_file =
      std::filesystem::path(config.storage.path) / "checkpoints" / (destination + ".json");
  core::daemon::DestinationConnectorContext context(parts);
  auto plugin = registry.get(junction::sdk::PluginKind::Destination, dest->plugin);
  auto made = plugin->createDestination(dest->config, context);
  if (!made) {
    std::fprintf(stderr, "junction: destination '%s': %s\n", destination.c_str(),
                 made.error().message.c_str());
    return 1;
  }
  auto instance = std::move(made).value();
  if (!instance->supportsVerify()) {
    std::fprintf(stderr, "junction: destination '%s' (plugin %s) cannot be verified\n",
                 destination.c_str(), dest->plugin.c_str());
    return 1;
  }
  if (auto started = instance->start(); !started.ok()) {
    std::fprintf(stderr, "junction: destination '%s': %s\n", destination.c_str(),
                 started.message().c_str());
    return 1;
  }
  auto verified = instance->verify(delivered);
  instance->stop();
  context.shutdown();
  if (!verified) {
    std::fprintf(stderr, "junction: verify '%s': %s\n", destination.c_str(),
                 verified.error().message.c_str());
    return 1;
  }
  std::printf("%s (%s)\n%s", destination.c_str(), dest->plugin.c_str(), verified->report.c_str());
  return verified->matches ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"junction - operate a Junction customer data hub"};
  app.require_subcommand(1);

  auto* plugins = app.add_subcommand("plugins", "List plugins, or document one plugin's options");
  std::string plugin_name;
  std::string config_file;
  bool as_json = false;
  plugins->add_option("name", plugin_name, "Plugin to document");
  plugins->add_option("-c,--config", config_file, "Find plugins as this configuration does");
  plugins->add_flag("--json", as_json, "Print JSON");

  auto* reference = app.add_subcommand(
      "reference", "Print the configuration reference in Markdown (docs/configuration.md)");
  std::string reference_config;
  reference->add_option("-c,--config", reference_config, "Find plugins as this configuration does");

  auto* check = app.add_subcommand("check", "Validate a configuration file");
  std::string check_file;
  check->add_option("config", check_file, "Configuration file")->required();

  auto* dlq = app.add_subcommand("dlq", "List, replay or purge dead letters of a running junctiond");
  dlq->require_subcommand(1);
  DlqArgs dlq_args;
  std::string dlq_action;
  for (const char* action : {"list", "replay", "purge"}) {
    auto* sub = dlq->add_subcommand(action, std::string(action) + " dead letters");
    sub->add_option("-c,--config", dlq_args.config_file, "The daemon's configuration")->required();
    sub->add_option("--url", dlq_args.url, "Base URL of the daemon (default: http://server.listen)");
    sub->add_option("-d,--destination", dlq_args.destination, "Only this destination");
    sub->add_option("-p,--person", dlq_args.person, "Only this userId or anonymousId");
    sub->add_option("--id", dlq_args.ids, "Only these dead-letter ids");
    sub->add_option("--since", dlq_args.since, "Failed at or after (ISO-8601)");
    sub->add_option("--until", dlq_args.until, "Failed before (ISO-8601)");
    if (std::string(action) == "list") {
      sub->add_option("--limit", dlq_args.limit, "Most rows shown");
      sub->add_flag("--json", dlq_args.as_json, "Print JSON");
    } else {
      sub->add_flag("--all", dlq_args.all, "Every dead letter (no selection)");
    }
    sub->callback([&dlq_action, action] { dlq_action = action; });
  }

  junction::cli::AdminArgs admin_args;
  auto* status = app.add_subcommand(
      "status", "A running junctiond's readiness, queue and connectors (exit 0 ready, 1 not)");
  status->add_option("-c,--config", admin_args.config_file, "The daemon's configuration")->required();
  status->add_option("--url", admin_args.url, "Base URL of the daemon (default: http://server.listen)");
  status->add_flag("--json", admin_args.as_json, "Print the admin API's JSON");
  std::string pause_destination;
  auto* pause = app.add_subcommand(
      "pause", "Pause a destination of a running junctiond: its events wait (kept across restarts)");
  auto* resume_destination = app.add_subcommand("resume", "Resume a paused destination");
  auto* reload = app.add_subcommand(
      "reload", "Apply the edited configuration to a running junctiond (checked first; only "
                "connectors that changed restart)");
  reload->add_option("-c,--config", admin_args.config_file, "The daemon's configuration")->required();
  reload->add_option("--url", admin_args.url, "Base URL of the daemon (default: http://server.listen)");
  auto* forget = app.add_subcommand(
      "forget", "Forget a destination removed from the configuration: the queue it held back "
                "may then be deleted");
  auto* catalog = app.add_subcommand(
      "catalog", "The events, properties and traits a running junctiond has seen, per source");
  std::string catalog_source;
  bool tracking_plan = false;
  catalog->add_option("-c,--config", admin_args.config_file, "The daemon's configuration")->required();
  catalog->add_option("--url", admin_args.url, "Base URL of the daemon (default: http://server.listen)");
  catalog->add_option("-s,--source", catalog_source, "Only this source");
  catalog->add_flag("--json", admin_args.as_json, "Print the admin API's JSON");
  catalog->add_flag("--tracking-plan", tracking_plan,
                    "Print a draft tracking plan (YAML) for the http source's config");
  for (auto* sub : {pause, resume_destination, forget}) {
    sub->add_option("destination", pause_destination, "The destination id")->required();
    sub->add_option("-c,--config", admin_args.config_file, "The daemon's configuration")->required();
    sub->add_option("--url", admin_args.url, "Base URL of the daemon (default: http://server.listen)");
  }

  junction::cli::TailArgs tail_args;
  auto* tail = app.add_subcommand(
      "tail", "Watch events arrive at a running junctiond and each destination's decision");
  tail->add_option("-c,--config", tail_args.admin.config_file, "The daemon's configuration")->required();
  tail->add_option("--url", tail_args.admin.url, "Base URL of the daemon (default: http://server.listen)");
  tail->add_option("-s,--source", tail_args.source, "Only events from this source");
  tail->add_option("-d,--destination", tail_args.destination, "Only this destination's decisions");
  tail->add_option("-e,--event", tail_args.event, "Only this event name (or type: identify, page...)");
  tail->add_option("-p,--person", tail_args.person, "Only this userId or anonymousId");
  tail->add_option("-n,--count", tail_args.count, "Stop after this many records");
  tail->add_flag("--json", tail_args.admin.as_json, "Print each record as JSON");

  auto* audit = app.add_subcommand("audit", "Check the audit log");
  audit->require_subcommand(1);
  auto* audit_verify = audit->add_subcommand("verify", "Verify the audit log's hash chain (exit 0 / 1)");
  std::string audit_config;
  std::string audit_file;
  audit_verify->add_option("-c,--config", audit_config, "The daemon's configuration (storage.path)");
  audit_verify->add_option("file", audit_file, "The audit log (default: storage.path/audit.log)");

  auto* recover = app.add_subcommand(
      "recover", "Repair damaged state under storage.path, losing nothing it need not (junctiond stopped)");
  recover->require_subcommand(1);
  std::string recover_config;
  auto* recover_cursors = recover->add_subcommand(
      "cursors", "Cursor file missing or corrupt: restart every destination at the oldest queued event");
  recover_cursors->add_option("-c,--config", recover_config, "The daemon's configuration")->required();
  auto* recover_dead_letters = recover->add_subcommand(
      "dead-letters",
      "dead_letters.db missing, empty or corrupt: a new store with every row still readable");
  recover_dead_letters->add_option("-c,--config", recover_config, "The daemon's configuration")
      ->required();
  auto* recover_privacy = recover->add_subcommand(
      "privacy", "privacy.db missing, empty or corrupt: rebuild it from the audit log");
  recover_privacy->add_option("-c,--config", recover_config, "The daemon's configuration")
      ->required();
  auto* recover_profiles = recover->add_subcommand(
      "profiles",
      "profiles.db missing, empty or corrupt: keep what is readable, rebuild the rest from the queue");
  recover_profiles->add_option("-c,--config", recover_config, "The daemon's configuration")
      ->required();
  bool accept_loss = false;
  recover_privacy->add_flag("--accept-loss", accept_loss,
                            "Without an audit log: start with no regulations (audited)");

  auto* warehouse = app.add_subcommand("warehouse", "Check a warehouse destination");
  warehouse->require_subcommand(1);
  auto* warehouse_verify = warehouse->add_subcommand(
      "verify", "Reconcile the warehouse's loads and rows with the daemon's delivered count (exit 0 / 1)");
  std::string warehouse_config;
  std::string warehouse_destination;
  warehouse_verify->add_option("-c,--config", warehouse_config, "The daemon's configuration")
      ->required();
  warehouse_verify->add_option("-d,--destination", warehouse_destination, "The destination id")
      ->required();

  auto* import = app.add_subcommand(
      "import", "Import a file of events (NDJSON or CSV) into a source of a running junctiond");
  junction::cli::ImportArgs import_args;
  import->add_option("-c,--config", import_args.config_file, "The daemon's configuration")
      ->required();
  import->add_option("-s,--source", import_args.source, "The source id the events come from")
      ->required();
  import->add_option("file", import_args.file, "NDJSON (one Segment event per line) or CSV file")
      ->required();
  import->add_option("--format", import_args.format, "ndjson | csv (default: from the extension)")
      ->check(CLI::IsMember({"ndjson", "csv"}));
  import->add_option("--mapping", import_args.mapping_file,
                     "CSV: JSON object, event field -> column (default: columns named by field)");
  import->add_option("--url", import_args.url, "Base URL of the daemon (default: http://server.listen)");
  import->add_option("--chunk-events", import_args.chunk_events, "Events per request to the daemon")
      ->check(CLI::Range(1, 1000000));
  import->add_option("--progress-interval", import_args.progress_interval_s,
                     "Seconds between progress lines (default 0.2 on a terminal, 5 otherwise)");
  auto* resume = import->add_flag("--resume", import_args.resume,
                                  "Continue an interrupted import after its last durable line");
  import->add_flag("--restart", import_args.restart, "Import the whole file again")->excludes(resume);

  CLI11_PARSE(app, argc, argv);

  if (import->parsed()) {
    return junction::cli::runImport(import_args);
  }

  if (warehouse_verify->parsed()) {
    return runWarehouseVerify(warehouse_config, warehouse_destination);
  }

  if (recover_cursors->parsed()) {
    return runRecoverCursors(recover_config);
  }
  if (recover_dead_letters->parsed() || recover_profiles->parsed()) {
    core::config::ConfigErrors errors;
    auto config = core::config::loadConfig(recover_config, core::config::processEnvironment(), errors);
    if (!config) {
      std::fputs(core::config::formatErrors(errors).c_str(), stderr);
      return 1;
    }
    auto report = recover_dead_letters->parsed() ? core::daemon::recoverDeadLetters(*config)
                                                 : core::daemon::recoverProfiles(*config);
    if (!report) {
      std::fprintf(stderr, "junction: %s\n", report.error().message.c_str());
      return report.error().code == junction::sdk::ErrorCode::NotFound ? 0 : 1;
    }
    std::fputs(report->c_str(), stdout);
    return 0;
  }
  if (recover_privacy->parsed()) {
    return runRecoverPrivacy(recover_config, accept_loss);
  }

  if (audit_verify->parsed()) {
    return runAuditVerify(audit_config, audit_file);
  }

  if (dlq->parsed()) {
    return runDlq(dlq_action, dlq_args);
  }
  if (tail->parsed()) {
    return junction::cli::runTail(tail_args);
  }
  if (status->parsed()) {
    return junction::cli::runStatus(admin_args);
  }
  if (catalog->parsed()) {
    return junction::cli::runCatalog(admin_args, catalog_source, tracking_plan);
  }
  if (reload->parsed()) {
    return junction::cli::runReload(admin_args);
  }
  if (forget->parsed()) {
    return junction::cli::runForget(admin_args, pause_destination);
  }
  if (pause->parsed() || resume_destination->parsed()) {
    return junction::cli::runPause(admin_args, pause_destination, pause->parsed());
  }
  if (plugins->parsed()) {
    core::plugin::PluginRegistry registry;
    if (int rc = loadPlugins(config_file, registry, as_json); rc != 0) {
      return rc;
    }
    if (plugin_name.empty()) {
      std::fputs((as_json ? core::daemon::pluginListJson(registry)
                          : core::daemon::pluginListText(registry))
                     .c_str(),
                 stdout);
      return 0;
    }
    auto named = registry.named(plugin_name);
    if (named.empty()) {
      std::string hint = core::config::closestMatch(plugin_name, registry.names());
      std::fprintf(stderr, "junction: no plugin named '%s'%s\n", plugin_name.c_str(),
                   hint.empty() ? "" : ("; did you mean '" + hint + "'?").c_str());
      return 1;
    }
    std::fputs((as_json ? core::daemon::pluginDocsJson(named) : core::daemon::pluginDocsText(named))
                   .c_str(),
               stdout);
    return 0;
  }
  if (reference->parsed()) {
    core::plugin::PluginRegistry registry;
    if (int rc = loadPlugins(reference_config, registry, false); rc != 0) {
      return rc;
    }
    std::fputs(core::daemon::configReferenceMarkdown(registry).c_str(), stdout);
    return 0;
  }
  if (check->parsed()) {
    core::plugin::PluginRegistry registry;
    auto outcome =
        core::daemon::checkConfigFile(check_file, registry, core::config::processEnvironment());
    if (!outcome.ok()) {
      std::fputs(outcome.report().c_str(), stderr);
      std::fprintf(stderr, "%s: %zu error%s\n", check_file.c_str(), outcome.errors.size(),
                   outcome.errors.size() == 1 ? "" : "s");
      return 1;
    }
    std::fputs(outcome.warningsReport().c_str(), stderr);
    std::printf("%s: OK (%zu sources, %zu destinations)\n", check_file.c_str(),
                outcome.config->sources.size(), outcome.config->destinations.size());
    return 0;
  }
  return 2;
}
