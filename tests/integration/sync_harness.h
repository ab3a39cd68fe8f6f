#pragma once

// What end-to-end tests of pulling sources (hubspot, salesforce) share: reading back the record
// versions a `file` destination wrote, the source's stored checkpoint and one metric, and a
// fixture that runs the daemon and kills it in mid-run.

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "tests/integration/daemon_harness.h"

namespace junction::integration {

// (record id, version) of every event the file destination wrote whose messageId is
// "<prefix><record id>-<version>" (how the CRM sources name an identify).
inline std::set<std::pair<std::string, std::int64_t>> deliveredVersions(const fs::path& file,
                                                                        const std::string& prefix) {
  std::set<std::pair<std::string, std::int64_t>> out;
  std::istringstream lines(readFile(file));
  std::string line;
  while (std::getline(lines, line)) {
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) {
      continue;
    }
    const auto* id = v.as_object().if_contains("messageId");
    if (id == nullptr || !id->is_string() || !id->as_string().starts_with(prefix)) {
      continue;
    }
    const std::string rest(id->as_string().subview(prefix.size()));
    const auto dash = rest.rfind('-');
    out.insert({rest.substr(0, dash), std::stoll(rest.substr(dash + 1))});
  }
  return out;
}

// The number a source stored as its checkpoint ("cursor") under the daemon's storage path.
inline std::optional<std::int64_t> storedCheckpoint(const fs::path& storage,
                                                    const std::string& source_id) {
  boost::system::error_code ec;
  auto v = boost::json::parse(readFile(storage / "checkpoints" / (source_id + ".json")), ec);
  if (ec || !v.is_object() || !v.as_object().contains("cursor")) {
    return std::nullopt;
  }
  return std::stoll(std::string(v.at("cursor").as_string()));
}

// The value of one series ("name{labels}") in the daemon's /metrics, or -1 when absent.
inline double metricValue(std::uint16_t port, const std::string& series) {
  HttpClient client(port);
  auto reply = client.request("GET", "/metrics");
  auto pos = reply.body.find(series + " ");
  return pos == std::string::npos ? -1 : std::atof(reply.body.c_str() + pos + series.size());
}

// A daemon whose source `crm` pulls from a fake CRM into a `file` destination writing out_,
// started with the source on or off. A test supplies the config and the fake's versions.
class SyncE2ETest : public ::testing::Test {
 protected:
  // The whole configuration, with the source `crm` enabled or not.
  virtual std::string configText(bool source_enabled) = 0;

  // The daemon goes before the fake the subclass owns (members of a subclass die first).
  void TearDown() override {
    if (daemon_) {
      daemon_->kill();
    }
  }

  std::uint16_t start(bool source_enabled, const std::string& log) {
    config_ = dir_.path() / "junction.yaml";
    writeFile(config_, configText(source_enabled));
    daemon_ = std::make_unique<DaemonProcess>(config_);
    auto port = daemon_->start(dir_.path() / log);
    EXPECT_TRUE(port) << readFile(dir_.path() / log);
    return port.value_or(0);
  }

  std::optional<std::int64_t> checkpoint() {
    return storedCheckpoint(dir_.path() / "data", "crm");
  }

  // Runs the source until its checkpoint reaches `at_least`, SIGKILLs the daemon before the run
  // reaches `last` (the newest version), then restarts it with the source off and checks that
  // every version at or before the checkpoint (`versions_up_to(checkpoint)` of them, events with
  // messageId `prefix`...) was durable in the queue: the checkpoint was never ahead of it.
  // `at_kill` gets the checkpoint; the daemon is stopped on return.
  void killInMidRunThenDrain(std::int64_t at_least, std::int64_t last,
                             const std::function<std::size_t(std::int64_t)>& versions_up_to,
                             const std::string& prefix, std::int64_t& at_kill) {
    using namespace std::chrono_literals;
    start(true, "run1.log");
    ASSERT_TRUE(eventually([&] { return checkpoint().value_or(0) >= at_least; }, 30s))
        << daemon_->log();
    daemon_->kill();
    const auto stored = checkpoint();
    ASSERT_TRUE(stored);
    ASSERT_LT(*stored, last) << "the run finished before the kill";
    at_kill = *stored;

    // The source off: the daemon only drains its queue.
    ASSERT_NE(start(false, "drain.log"), 0);
    const auto expected = static_cast<long>(versions_up_to(at_kill));
    ASSERT_TRUE(eventually([&] {
      const auto got = deliveredVersions(out_, prefix);
      return std::count_if(got.begin(), got.end(),
                           [&](const auto& p) { return p.second <= at_kill; }) >= expected;
    }, 30s)) << "events up to the checkpoint are missing from the queue";
    daemon_->terminate();
    EXPECT_EQ(checkpoint(), at_kill);
  }

  TempDir dir_;
  fs::path config_;
  fs::path out_ = dir_.path() / "out" / "events.ndjson";
  std::unique_ptr<DaemonProcess> daemon_;
};

}  // namespace junction::integration
