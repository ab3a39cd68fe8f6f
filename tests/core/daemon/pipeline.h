#pragma once

// The core's pipeline over real parts, for tests of what sits on it (scheduled syncs,
// audiences): the embedded queue (no fsync), the privacy store, ingest, the delivery engine with
// the test's destinations, and the profile service on RocksDB reading the queue (change events
// off). open() makes them, start() starts them; between the two the test may set the profile
// service up (sync channels). close() stops and frees everything; open() again reopens the same
// directory (a restart).

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/config/daemon_config.h"
#include "core/delivery/delivery_engine.h"
#include "core/ingest/ingest.h"
#include "core/privacy/privacy_store.h"
#include "core/profiles/profile_service.h"
#include "core/profiles/rocksdb_profile_store.h"

namespace junction::core::testing {

struct ProfilePipeline {
  std::unique_ptr<privacy::PrivacyStore> privacy;
  std::unique_ptr<queue::Log> log;
  std::unique_ptr<ingest::Ingest> ingest;
  std::unique_ptr<delivery::DeliveryEngine> engine;
  std::unique_ptr<profiles::ProfileService> profiles;

  // `sinks`: destination id -> what receives its events; every configured destination needs
  // one. Ingest and delivery run on `clock`, the profile service on `profile_clock`; the
  // audiences are `config.audiences` (their state in `dir`/audiences.json).
  void open(const std::filesystem::path& dir, const config::DaemonConfig& config,
            const std::map<std::string, std::shared_ptr<sdk::Destination>>& sinks,
            sdk::Metrics& metrics, sdk::Logger& logger, const sdk::Clock& clock,
            const sdk::Clock& profile_clock) {
    queue::LogOptions options;
    options.path = (dir / "queue").string();
    options.fsync = queue::FsyncPolicy::Never;
    auto opened = queue::Log::open(options, nullptr);
    ASSERT_TRUE(opened) << opened.error().message;
    log = std::move(opened).value();
    auto store = privacy::PrivacyStore::open((dir / "privacy.db").string());
    ASSERT_TRUE(store) << store.error().message;
    privacy = std::move(store).value();
    ingest = std::make_unique<ingest::Ingest>(*log, metrics, clock, privacy.get());
    engine = std::make_unique<delivery::DeliveryEngine>(*log, metrics, logger, clock);
    ASSERT_TRUE(engine->open(dir.string()).ok());
    engine->setPrivacy(privacy.get(), nullptr);
    for (const auto& d : config.destinations) {
      ASSERT_TRUE(engine->add(d, sinks.at(d.id), {}, nullptr).ok()) << d.id;
    }
    auto profile_store = profiles::RocksDbProfileStore::open(dir.string(), 8 << 20);
    ASSERT_TRUE(profile_store) << profile_store.error().message;
    config::ProfilesConfig pc = config.profiles;
    pc.change_events = false;
    profiles = std::make_unique<profiles::ProfileService>(pc, std::move(profile_store).value(),
                                                          *log, *ingest, privacy.get(), metrics,
                                                          logger, profile_clock);
    profiles->setAudiences(std::make_shared<const audiences::AudienceSet>(config.audiences),
                           (dir / "audiences.json").string());
  }

  void start() {
    engine->addReader([this] { profiles->notifyAppend(); }, [this] { return profiles->needs(); });
    ASSERT_TRUE(engine->start().ok());
    ASSERT_TRUE(profiles->start().ok());
  }

  void close() {
    if (profiles) {
      profiles->stop();
    }
    if (engine) {
      engine->stop();
    }
    if (ingest) {
      ingest->close();
    }
    profiles.reset();
    engine.reset();
    ingest.reset();
    log.reset();
    privacy.reset();
  }
};

}  // namespace junction::core::testing
