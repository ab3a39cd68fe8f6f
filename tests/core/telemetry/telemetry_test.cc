// Telemetry: the exact Prometheus text of /metrics, and the daemon's log lines (text and JSON,
// level filtering, secret scrubbing).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "core/telemetry/log_sink.h"
#include "core/telemetry/metrics_registry.h"

namespace junction::core::telemetry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------------------------------------
// Metrics

TEST(MetricsRegistryTest, RendersCountersAndGaugesExactly) {
  MetricsRegistry registry;
  registry.counter("junction_events_received_total", "Events received",
                   {{"source", "web"}})
      .inc(3);
  registry.counter("junction_events_received_total", "Events received", {{"source", "app"}})
      .inc();
  registry.gauge("junction_queue_backlog", "Events not yet delivered").set(-2.5);
  registry.gauge("junction_queue_disk_bytes", "Bytes on disk").set(1048576);
  EXPECT_EQ(registry.renderPrometheus(),
            "# HELP junction_events_received_total Events received\n"
            "# TYPE junction_events_received_total counter\n"
            "junction_events_received_total{source=\"app\"} 1\n"
            "junction_events_received_total{source=\"web\"} 3\n"
            "# HELP junction_queue_backlog Events not yet delivered\n"
            "# TYPE junction_queue_backlog gauge\n"
            "junction_queue_backlog -2.5\n"
            "# HELP junction_queue_disk_bytes Bytes on disk\n"
            "# TYPE junction_queue_disk_bytes gauge\n"
            "junction_queue_disk_bytes 1048576\n");
}

TEST(MetricsRegistryTest, LabelsAreSortedAndEscaped) {
  MetricsRegistry registry;
  registry.counter("x_total", "X", {{"zeta", "1"}, {"alpha", "a\"b\\c\nd"}}).inc(7);
  EXPECT_EQ(registry.renderPrometheus(),
            "# HELP x_total X\n"
            "# TYPE x_total counter\n"
            "x_total{alpha=\"a\\\"b\\\\c\\nd\",zeta=\"1\"} 7\n");
}

TEST(MetricsRegistryTest, HelpTextIsEscaped) {
  // A newline in a plugin's help text must not break the exposition format.
  MetricsRegistry registry;
  registry.counter("y_total", "first line\nsecond \\ line").inc();
  EXPECT_EQ(registry.renderPrometheus(),
            "# HELP y_total first line\\nsecond \\\\ line\n"
            "# TYPE y_total counter\n"
            "y_total 1\n");
}

TEST(MetricsRegistryTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  const double buckets[] = {1, 0.1, 0.5};  // unsorted on purpose
  auto& h = registry.histogram("req_seconds", "Latency", buckets, {{"route", "/v1"}});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in that bucket (le = less or equal)
  h.observe(0.3);
  h.observe(0.75);
  h.observe(3);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum(), 4.2);
  EXPECT_EQ(registry.renderPrometheus(),
            "# HELP req_seconds Latency\n"
            "# TYPE req_seconds histogram\n"
            "req_seconds_bucket{route=\"/v1\",le=\"0.1\"} 2\n"
            "req_seconds_bucket{route=\"/v1\",le=\"0.5\"} 3\n"
            "req_seconds_bucket{route=\"/v1\",le=\"1\"} 4\n"
            "req_seconds_bucket{route=\"/v1\",le=\"+Inf\"} 5\n"
            "req_seconds_sum{route=\"/v1\"} 4.2\n"
            "req_seconds_count{route=\"/v1\"} 5\n");
  EXPECT_EQ(registry.valueOf("req_seconds", {{"route", "/v1"}}), 5.0);
}

TEST(MetricsRegistryTest, HistogramWithoutBucketsUsesTheDefaults) {
  MetricsRegistry registry;
  registry.histogram("d_seconds", "D").observe(0.002);
  std::string text = registry.renderPrometheus();
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"0.0005\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"0.001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"10\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_bucket{le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("d_seconds_count 1\n"));
}

TEST(MetricsRegistryTest, SameSeriesIsReturnedTwiceWhateverTheLabelOrder) {
  MetricsRegistry registry;
  auto& a = registry.counter("c_total", "C", {{"a", "1"}, {"b", "2"}});
  auto& b = registry.counter("c_total", "C", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(&a, &b);
  auto& other = registry.counter("c_total", "C", {{"a", "1"}, {"b", "3"}});
  EXPECT_NE(&a, &other);
  a.inc();
  b.inc();
  EXPECT_EQ(registry.valueOf("c_total", {{"b", "2"}, {"a", "1"}}), 2.0);
  EXPECT_EQ(&registry.gauge("g", "G"), &registry.gauge("g", "G"));
  EXPECT_EQ(&registry.histogram("h", "H"), &registry.histogram("h", "H"));
  EXPECT_EQ(registry.valueOf("nope"), std::nullopt);
  EXPECT_EQ(registry.valueOf("c_total", {{"a", "9"}}), std::nullopt);
}

TEST(MetricsRegistryTest, KindClashGivesAWorkingDetachedObject) {
  MetricsRegistry registry;
  registry.counter("clash", "First as a counter").inc(4);
  auto& gauge = registry.gauge("clash", "Then as a gauge");
  gauge.set(99);  // works, but is not exported
  EXPECT_EQ(gauge.value(), 99);
  auto& again = registry.gauge("clash", "Then as a gauge");
  EXPECT_NE(&gauge, &again) << "each clash gets its own detached object";
  EXPECT_EQ(registry.renderPrometheus(),
            "# HELP clash First as a counter\n"
            "# TYPE clash counter\n"
            "clash 4\n");
  EXPECT_EQ(registry.valueOf("clash"), 4.0);
}

TEST(MetricsRegistryTest, LabeledMetricsAddsItsLabels) {
  MetricsRegistry registry;
  LabeledMetrics labeled(registry, {{"destination", "newsletter"}});
  labeled.counter("junction_mailchimp_requests_total", "Requests", {{"status", "200"}}).inc(2);
  labeled.gauge("junction_mailchimp_inflight", "In flight").set(1);
  const double buckets[] = {1};
  labeled.histogram("junction_mailchimp_seconds", "Latency", buckets).observe(0.5);
  EXPECT_EQ(registry.valueOf("junction_mailchimp_requests_total",
                             {{"destination", "newsletter"}, {"status", "200"}}),
            2.0);
  EXPECT_EQ(registry.valueOf("junction_mailchimp_inflight", {{"destination", "newsletter"}}), 1.0);
  std::string text = registry.renderPrometheus();
  EXPECT_THAT(text, HasSubstr("junction_mailchimp_requests_total{destination=\"newsletter\","
                              "status=\"200\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("junction_mailchimp_seconds_bucket{destination=\"newsletter\","
                              "le=\"1\"} 1\n"));
  // The same series through the wrapper and directly.
  EXPECT_EQ(&labeled.counter("junction_mailchimp_requests_total", "Requests", {{"status", "200"}}),
            &registry.counter("junction_mailchimp_requests_total", "Requests",
                              {{"status", "200"}, {"destination", "newsletter"}}));
}

TEST(MetricsRegistryTest, CollectorsRunOnEachRender) {
  MetricsRegistry registry;
  auto& backlog = registry.gauge("backlog", "Backlog");
  int runs = 0;
  registry.addCollector([&] { backlog.set(++runs * 10); });
  EXPECT_THAT(registry.renderPrometheus(), HasSubstr("backlog 10\n"));
  EXPECT_THAT(registry.renderPrometheus(), HasSubstr("backlog 20\n"));
  EXPECT_EQ(runs, 2);
  // A collector may create series (it runs without the registry's lock held).
  registry.addCollector([&] { registry.counter("made_in_collector_total", "M"); });
  EXPECT_THAT(registry.renderPrometheus(), HasSubstr("made_in_collector_total 0\n"));
}

// ---------------------------------------------------------------------------------------------
// Logs

// A LogSink writing into a temporary file, read back line by line.
class CapturedLog {
 public:
  CapturedLog(sdk::LogLevel level = sdk::LogLevel::Info, LogFormat format = LogFormat::Text)
      : file_(std::tmpfile()), sink_(file_, level, format) {}
  ~CapturedLog() { std::fclose(file_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  LogSink& sink() { return sink_; }

  std::vector<std::string> lines() {
    std::fflush(file_);
    std::rewind(file_);
    std::vector<std::string> out;
    std::string current;
    for (int c = std::fgetc(file_); c != EOF; c = std::fgetc(file_)) {
      if (c == '\n') {
        out.push_back(current);
        current.clear();
      } else {
        current += static_cast<char>(c);
      }
    }
    EXPECT_EQ(current, "") << "every line ends with a newline";
    std::fseek(file_, 0, SEEK_END);
    return out;
  }

 private:
  std::FILE* file_;
  LogSink sink_;
};

// The line without its leading timestamp ("2026-01-01T00:00:00.000Z ").
std::string withoutTimestamp(const std::string& line) {
  static const std::regex kTs(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z )");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(line, m, kTs)) << line;
  return m.suffix();
}

TEST(LogSinkTest, TextFormat) {
  CapturedLog log;
  ComponentLogger logger(log.sink(), "source.web");
  logger.info("source started", {{"id", "web"}, {"count", 3}, {"empty", ""},
                                 {"spaced", "a b"}, {"quoted", "say \"hi\""},
                                 {"eq", "k=v"}, {"newline", "a\nb"}});
  logger.warn("careful");
  logger.error("failed", {{"error", "boom"}});
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(withoutTimestamp(lines[0]),
            "INFO  [source.web] source started id=web count=3 empty=\"\" spaced=\"a b\" "
            "quoted=\"say \\\"hi\\\"\" eq=\"k=v\" newline=\"a\\nb\"");
  EXPECT_EQ(withoutTimestamp(lines[1]), "WARN  [source.web] careful");
  EXPECT_EQ(withoutTimestamp(lines[2]), "ERROR [source.web] failed error=boom");
}

TEST(LogSinkTest, JsonFormat) {
  CapturedLog log(sdk::LogLevel::Debug, LogFormat::Json);
  ComponentLogger logger(log.sink(), "core");
  logger.debug("queue opened", {{"path", "/tmp/x y"}, {"segments", 2}, {"ctl", "a\tb\x01"}});
  logger.info("quote \"and\" backslash \\");
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 2u);
  boost::system::error_code ec;
  auto first = boost::json::parse(lines[0], ec);
  ASSERT_FALSE(ec) << lines[0];
  ASSERT_TRUE(first.is_object());
  const auto& o = first.as_object();
  EXPECT_EQ(o.at("level"), "debug");
  EXPECT_EQ(o.at("component"), "core");
  EXPECT_EQ(o.at("msg"), "queue opened");
  EXPECT_EQ(o.at("path"), "/tmp/x y");
  EXPECT_EQ(o.at("segments"), "2");
  EXPECT_EQ(o.at("ctl"), "a\tb\x01");
  EXPECT_TRUE(std::regex_match(std::string(o.at("ts").as_string()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")));
  EXPECT_THAT(lines[0], HasSubstr(R"("ctl":"a\tb\u0001")"));
  auto second = boost::json::parse(lines[1], ec);
  ASSERT_FALSE(ec) << lines[1];
  EXPECT_EQ(second.as_object().at("msg"), "quote \"and\" backslash \\");
  EXPECT_EQ(second.as_object().at("level"), "info");
}

TEST(LogSinkTest, LevelFiltering) {
  CapturedLog log(sdk::LogLevel::Warn);
  ComponentLogger logger(log.sink(), "core");
  EXPECT_FALSE(logger.enabled(sdk::LogLevel::Info));
  EXPECT_TRUE(logger.enabled(sdk::LogLevel::Warn));
  logger.debug("d");
  logger.info("i");
  logger.warn("w");
  logger.error("e");
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("WARN  [core] w"));
  EXPECT_THAT(lines[1], HasSubstr("ERROR [core] e"));

  log.sink().configure(sdk::LogLevel::Debug, LogFormat::Text);
  logger.debug("now visible");
  EXPECT_THAT(log.lines().back(), HasSubstr("DEBUG [core] now visible"));
}

TEST(LogSinkTest, ParseLogLevel) {
  EXPECT_EQ(parseLogLevel("debug"), sdk::LogLevel::Debug);
  EXPECT_EQ(parseLogLevel("info"), sdk::LogLevel::Info);
  EXPECT_EQ(parseLogLevel("warn"), sdk::LogLevel::Warn);
  EXPECT_EQ(parseLogLevel("error"), sdk::LogLevel::Error);
  EXPECT_EQ(parseLogLevel("verbose"), std::nullopt);
}

TEST(LogSinkTest, SecretsAreScrubbedFromEveryPartOfTheLine) {
  for (auto format : {LogFormat::Text, LogFormat::Json}) {
    CapturedLog log(sdk::LogLevel::Info, format);
    log.sink().setSecrets({"s3cr3t-token", "hunter22"});
    ComponentLogger logger(log.sink(), "core");
    logger.info("token is s3cr3t-token", {{"auth", "Bearer s3cr3t-token"},
                                          {"twice", "hunter22hunter22"},
                                          {"hunter22", "as a key"}});
    auto lines = log.lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_THAT(lines[0], Not(HasSubstr("s3cr3t")));
    EXPECT_THAT(lines[0], Not(HasSubstr("hunter22")));
    EXPECT_THAT(lines[0], HasSubstr("[REDACTED][REDACTED]"));
    EXPECT_THAT(lines[0], HasSubstr("token is [REDACTED]"));
  }
}

TEST(LogSinkTest, SecretsWithQuotesOrBackslashesAreScrubbedOnceEscaped) {
  // A password like `pa"ss\word` is written escaped in JSON and in quoted text values.
  const std::string secret = "pa\"ss\\word";
  for (auto format : {LogFormat::Text, LogFormat::Json}) {
    CapturedLog log(sdk::LogLevel::Info, format);
    log.sink().setSecrets({secret});
    ComponentLogger logger(log.sink(), "core");
    logger.info("login", {{"pass", secret}, {"note", "x " + secret}});
    auto lines = log.lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_THAT(lines[0], Not(HasSubstr("ss\\")));
    EXPECT_THAT(lines[0], Not(HasSubstr("word"))) << lines[0];
    EXPECT_THAT(lines[0], HasSubstr("[REDACTED]"));
    EXPECT_THAT(lines[0], HasSubstr("x [REDACTED]"));
  }
}

TEST(LogSinkTest, ShortSecretsAreNotScrubbed) {
  CapturedLog log;
  log.sink().setSecrets({"abc", "", "on"});
  ComponentLogger logger(log.sink(), "core");
  logger.info("abc is on", {{"mode", "on"}});
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(withoutTimestamp(lines[0]), "INFO  [core] abc is on mode=on");
}

TEST(LogSinkTest, FormatDoesNotWrite) {
  CapturedLog log;
  std::string line = log.sink().format(sdk::LogLevel::Error, "core", "m", {{"k", "v"}});
  EXPECT_EQ(withoutTimestamp(line), "ERROR [core] m k=v");
  EXPECT_THAT(log.lines(), ElementsAre());
}

}  // namespace
}  // namespace junction::core::telemetry
