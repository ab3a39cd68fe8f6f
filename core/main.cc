// junctiond: reads the configuration, loads plugins, runs until SIGTERM/SIGINT; SIGHUP reloads the
// configuration (Daemon::reload).
//
//   junctiond --config FILE           run
//   junctiond --config FILE --check   validate the configuration and exit 0 (valid) or 1

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "core/daemon/config_check.h"
#include "core/daemon/daemon.h"
#include "core/telemetry/log_sink.h"

namespace core = junction::core;

int main(int argc, char** argv) {
  CLI::App app{"junctiond - the Junction customer data hub"};
  std::string config_file;
  bool check_only = false;
  bool show_version = false;
  app.add_option("-c,--config", config_file, "Configuration file (YAML)");
  app.add_flag("--check", check_only, "Validate the configuration and exit");
  app.add_flag("--version", show_version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (show_version) {
    std::printf("junctiond %s (plugin ABI v%u, %s)\n", JUNCTION_SDK_VERSION,
                junction::sdk::kAbiVersion, junction::sdk::kBuildFingerprint);
    return 0;
  }
  if (config_file.empty()) {
    std::fprintf(stderr, "junctiond: --config FILE is required\n");
    return 2;
  }

  // Block the stop signals before any thread starts, so every thread inherits the mask and the
  // main thread takes them synchronously (Daemon::runUntilStopped).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // a configuration reload (Daemon::runUntilStopped)
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  core::telemetry::LogSink sink(stderr);
  core::plugin::PluginRegistry registry;
  auto outcome = core::daemon::checkConfigFile(config_file, registry,
                                               core::config::processEnvironment());
  if (!outcome.ok()) {
    std::fputs(outcome.report().c_str(), stderr);
    std::fprintf(stderr, "junctiond: %s is not valid (%zu error%s)\n", config_file.c_str(),
                 outcome.errors.size(), outcome.errors.size() == 1 ? "" : "s");
    return 1;
  }
  auto& config = *outcome.config;
  if (check_only) {
    for (const auto& r : outcome.refused) {
      std::fprintf(stderr, "warning: plugin refused: %s\n", r.toString().c_str());
    }
    std::fputs(outcome.warningsReport().c_str(), stderr);
    std::printf("%s: OK (%zu sources, %zu destinations, %zu plugins)\n", config_file.c_str(),
                config.sources.size(), config.destinations.size(), registry.all().size());
    return 0;
  }
  sink.configure(core::telemetry::parseLogLevel(config.log.level).value_or(junction::sdk::LogLevel::Info),
                 config.log.format == "json" ? core::telemetry::LogFormat::Json
                                             : core::telemetry::LogFormat::Text);
  core::telemetry::ComponentLogger log(sink, "core");
  for (const auto& r : outcome.refused) {
    log.warn("plugin refused", {{"file", r.file}, {"reason", r.reason}});
  }
  for (const auto& w : outcome.warnings) {
    log.warn("an audience names what the event catalog has not seen",
             {{"warning", w.toString()}});
  }
  for (const auto& o : registry.overrides()) {
    log.warn("plugin overrides a built-in one (plugins.allow_override)", {{"override", o}});
  }
  for (const auto& p : registry.all()) {
    log.info("plugin loaded", {{"name", p->descriptor().name},
                               {"kind", junction::sdk::toString(p->descriptor().kind)},
                               {"version", p->descriptor().version},
                               {"file", p->file().string()}});
  }
  core::daemon::Daemon daemon(std::move(config), registry, sink);
  if (auto status = daemon.start(); !status.ok()) {
    std::fprintf(stderr, "junctiond: %s\n", status.message().c_str());
    return 1;
  }
  daemon.runUntilStopped();
  return 0;
}
