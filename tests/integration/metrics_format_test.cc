// GET /metrics read by a strict parser of the Prometheus text exposition format (0.0.4), after
// traffic that touches the sources, destinations, consent, profiles and the HTTP server: every
// line valid, every family announced once by # HELP and # TYPE before its samples and kept
// together, no series twice, counters not negative, histograms cumulative with a +Inf bucket
// equal to _count, and no secret anywhere.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "junction/sdk/crypto.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey = "wk-metrics-secret-1";
constexpr const char* kAdmin = "admin-metrics-secret-2";

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// A Go ParseFloat value as Prometheus writes it.
bool parseValue(const std::string& text, double& out) {
  if (text == "NaN") {
    out = std::nan("");
    return true;
  }
  if (text == "+Inf" || text == "Inf") {
    out = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    out = -INFINITY;
    return true;
  }
  static const std::regex number(R"([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(text, number)) {
    return false;
  }
  out = std::stod(text);
  return true;
}

// Parses `line` as a sample; the error names what is wrong.
bool parseSample(const std::string& line, Sample& s, std::string& error) {
  static const std::regex name_re(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
  static const std::regex label_re(R"([a-zA-Z_][a-zA-Z0-9_]*)");
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') {
    ++i;
  }
  s.name = line.substr(0, i);
  if (!std::regex_match(s.name, name_re)) {
    error = "bad metric name '" + s.name + "'";
    return false;
  }
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      std::size_t eq = line.find('=', i);
      if (eq == std::string::npos) {
        error = "label without '='";
        return false;
      }
      const std::string label = line.substr(i, eq - i);
      if (!std::regex_match(label, label_re) || label.rfind("__", 0) == 0) {
        error = "bad label name '" + label + "'";
        return false;
      }
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') {
        error = "label value not quoted";
        return false;
      }
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i++];
        if (c == '\\') {
          if (i >= line.size() || (line[i] != '\\' && line[i] != '"' && line[i] != 'n')) {
            error = "bad escape in a label value";
            return false;
          }
          value += line[i] == 'n' ? '\n' : line[i];
          ++i;
        } else if (c == '"') {
          closed = true;
          break;
        } else if (c == '\n') {
          error = "newline in a label value";
          return false;
        } else {
          value += c;
        }
      }
      if (!closed) {
        error = "unterminated label value";
        return false;
      }
      if (!s.labels.emplace(label, value).second) {
        error = "label '" + label + "' twice";
        return false;
      }
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        error = "expected ',' or '}' after a label";
        return false;
      }
    }
  }
  if (i >= line.size() || line[i] != ' ') {
    error = "no space before the value";
    return false;
  }
  std::istringstream rest(line.substr(i + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  if (!parseValue(value, s.value)) {
    error = "bad value '" + value + "'";
    return false;
  }
  if (!timestamp.empty() && !std::regex_match(timestamp, std::regex(R"(-?[0-9]+)"))) {
    error = "bad timestamp '" + timestamp + "'";
    return false;
  }
  if (!extra.empty()) {
    error = "trailing text";
    return false;
  }
  return true;
}

// The family a sample belongs to: histograms' _bucket, _sum and _count are the family's.
std::string familyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx(suffix);
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      if (auto t = types.find(base); t != types.end() && (t->second == "histogram" || t->second == "summary")) {
        return base;
      }
    }
  }
  return name;
}

std::string seriesKey(const Sample& s, const char* without = nullptr) {
  std::string key = s.name + "{";
  for (const auto& [k, v] : s.labels) {
    if (without == nullptr || k != without) {
      key += k + "=\"" + v + "\",";
    }
  }
  return key + "}";
}

// Every problem found in `text`, one per entry (empty: valid).
std::vector<std::string> check(const std::string& text) {
  std::vector<std::string> problems;
  if (text.empty() || text.back() != '\n') {
    problems.push_back("the exposition does not end with a newline");
  }
  static const std::regex help_re(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*))");
  static const std::regex type_re(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  std::map<std::string, std::string> types;
  std::set<std::string> helps, families_done, series;
  std::string current;  // the family whose lines come now
  // Histogram buckets per series (le removed): (le, value) in order, and _count.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  std::map<std::string, double> counts;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string at = "line " + std::to_string(n) + " (" + line.substr(0, 120) + "): ";
    std::smatch m;
    if (line.empty()) {
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) {
      if (!std::regex_match(line, m, help_re)) {
        problems.push_back(at + "malformed # HELP");
        continue;
      }
      const std::string help = m[2];
      for (std::size_t i = 0; i < help.size(); ++i) {
        if (help[i] == '\\' && (i + 1 >= help.size() || (help[i + 1] != '\\' && help[i + 1] != 'n'))) {
          problems.push_back(at + "bad escape in # HELP");
          break;
        }
        if (help[i] == '\\') {
          ++i;
        }
      }
      if (!helps.insert(m[1]).second) {
        problems.push_back(at + "# HELP twice for " + std::string(m[1]));
      }
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      if (!std::regex_match(line, m, type_re)) {
        problems.push_back(at + "malformed # TYPE");
        continue;
      }
      const std::string name = m[1];
      if (types.count(name) != 0) {
        problems.push_back(at + "# TYPE twice for " + name);
      }
      if (families_done.count(name) != 0 || current == name) {
        problems.push_back(at + "# TYPE after samples of " + name);
      }
      types[name] = m[2];
      continue;
    }
    if (line[0] == '#') {
      continue;  // a comment
    }
    Sample s;
    std::string error;
    if (!parseSample(line, s, error)) {
      problems.push_back(at + error);
      continue;
    }
    const std::string family = familyOf(s.name, types);
    if (family != current) {
      if (families_done.count(family) != 0) {
        problems.push_back(at + "samples of " + family + " not kept together");
      }
      if (!current.empty()) {
        families_done.insert(current);
      }
      current = family;
    }
    auto type = types.find(family);
    if (type == types.end()) {
      problems.push_back(at + "no # TYPE for " + family);
    } else if (helps.count(family) == 0) {
      problems.push_back(at + "no # HELP for " + family);
    }
    if (!series.insert(seriesKey(s)).second) {
      problems.push_back(at + "the same series twice");
    }
    if (std::isnan(s.value) && (type == types.end() || type->second != "gauge")) {
      problems.push_back(at + "NaN outside a gauge");
    }
    if (type != types.end() && type->second == "counter" && s.value < 0) {
      problems.push_back(at + "a negative counter");
    }
    if (type != types.end() && type->second == "histogram") {
      if (s.name == family + "_bucket") {
        auto le = s.labels.find("le");
        double bound = 0;
        if (le == s.labels.end() || !parseValue(le->second, bound)) {
          problems.push_back(at + "a bucket without a valid le");
          continue;
        }
        buckets[seriesKey(Sample{family, s.labels, 0}, "le")].emplace_back(bound, s.value);
      } else if (s.name == family + "_count") {
        counts[seriesKey(Sample{family, s.labels, 0})] = s.value;
      } else if (s.name != family + "_sum") {
        problems.push_back(at + "a histogram sample that is not _bucket, _sum or _count");
      }
    }
  }
  for (const auto& [key, list] : buckets) {
    for (std::size_t i = 1; i < list.size(); ++i) {
      if (list[i].first <= list[i - 1].first || list[i].second < list[i - 1].second) {
        problems.push_back(key + ": buckets not in increasing le with cumulative counts");
        break;
      }
    }
    if (list.empty() || !std::isinf(list.back().first)) {
      problems.push_back(key + ": no le=\"+Inf\" bucket");
    } else if (counts.count(key) == 0 || counts[key] != list.back().second) {
      problems.push_back(key + ": the +Inf bucket differs from _count");
    }
  }
  return problems;
}

// Every junction_* metric config/deploy's alert rules and Grafana dashboard use must be one the
// daemon exports: a family in `metrics` (a histogram's _bucket/_sum/_count resolved), or one of
// the few whose series only appear at their first event (errors, erasures, pulling sources),
// which must then be registered in the code under that exact name.
void checkDeployFilesUseOnlyExportedMetrics(const std::string& metrics) {
  std::map<std::string, std::string> families;  // name -> type
  {
    std::istringstream in(metrics);
    std::string line;
    const std::regex type_line(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$)");
    std::smatch m;
    while (std::getline(in, line)) {
      if (std::regex_match(line, m, type_line)) {
        families[m[1]] = m[2];
      }
    }
  }
  // Created at their first event; the reason each cannot be made to appear here.
  const std::map<std::string, std::string> first_event_only = {
      {"junction_privacy_store_errors_total", "a failed privacy store write"},
      {"junction_profile_store_errors_total", "a failed profile store write"},
      {"junction_cursor_write_errors_total", "a failed cursor write"},
      {"junction_erasures_total", "an erasure at a vendor"},
      {"junction_events_rejected_total", "an event refused by the queue (disk budget, write error)"},
      {"junction_sync_last_error_timestamp_seconds", "a pulling source (hubspot, salesforce)"},
      {"junction_sync_last_success_timestamp_seconds", "a pulling source (hubspot, salesforce)"},
      {"junction_destination_throttled_total", "a vendor's rate limit"},
      {"junction_plugin_faults_total", "an exception escaping a plugin"},
      {"junction_queue_gaps_total", "queue segments missing at start"},
      {"junction_queue_lost_events_total", "queue segments missing at start"},
      {"junction_profile_events_lost_total", "profile events lost to a damaged queue"},
  };
  std::string code;
  for (const char* dir : {"core", "plugins", "sdk"}) {
    for (const auto& f : fs::recursive_directory_iterator(fs::path(JUNCTION_SOURCE_DIR) / dir)) {
      if (f.path().extension() == ".cc" || f.path().extension() == ".h") {
        code += readFile(f.path());
      }
    }
  }
  const std::regex name(R"(junction_[a-z0-9_]+)");
  for (const char* file : {"config/deploy/prometheus/alerts.yml",
                           "config/deploy/grafana/junction-dashboard.json"}) {
    const std::string text = readFile(fs::path(JUNCTION_SOURCE_DIR) / file);
    ASSERT_FALSE(text.empty()) << file;
    std::set<std::string> used;
    for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it) {
      used.insert(it->str());
    }
    EXPECT_GT(used.size(), 10u) << file;
    for (const auto& n : used) {
      std::string base = n;
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string sfx(suffix);
        if (n.size() > sfx.size() && n.compare(n.size() - sfx.size(), sfx.size(), sfx) == 0) {
          auto it = families.find(n.substr(0, n.size() - sfx.size()));
          if (it != families.end() && it->second == "histogram") {
            base = it->first;
          }
        }
      }
      if (families.count(base) != 0) {
        continue;
      }
      auto lazy = first_event_only.find(base);
      if (lazy == first_event_only.end()) {
        ADD_FAILURE() << file << " uses " << n << ", which /metrics does not export";
      } else {
        EXPECT_NE(code.find("\"" + base + "\""), std::string::npos)
            << file << " uses " << n << " (appears at " << lazy->second
            << "), but no code registers that name";
      }
    }
  }
}

TEST(MetricsFormatTest, TheParserRefusesWhatPrometheusWould) {
  const std::string good =
      "# HELP a_total A counter\n# TYPE a_total counter\na_total{x=\"1\"} 3\na_total{x=\"2\"} 4\n"
      "# HELP h A histogram\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
      "h_sum 0.7\nh_count 2\n";
  EXPECT_TRUE(check(good).empty()) << check(good)[0];
  for (const std::string& bad : {
           std::string("# TYPE a counter\na 1"),                       // no final newline
           std::string("# HELP a x\n# TYPE a counter\na{x=1} 1\n"),    // unquoted label value
           std::string("# HELP a x\n# TYPE a counter\na 1 2 3\n"),     // trailing text
           std::string("# HELP a x\n# TYPE a counter\na -1\n"),        // negative counter
           std::string("# HELP a x\n# TYPE a counter\na 1\na 2\n"),    // the same series twice
           std::string("a 1\n"),                                       // no # TYPE
           std::string("# HELP a x\n# TYPE a gauge\na{x=\"\\q\"} 1\n"),  // bad escape
           std::string("# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\na{k=\"1\"} 1\n"
                       "b 1\na{k=\"2\"} 1\n"),  // a's samples split
           std::string("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                       "h_sum 1\nh_count 1\n"),  // not cumulative
           std::string("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n"),
       }) {
    EXPECT_FALSE(check(bad).empty()) << bad;
  }
}

TEST(MetricsFormatTest, TheDaemonsMetricsAreValidAfterMixedTraffic) {
  TempDir dir;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, std::string(R"(server: { listen: "127.0.0.1:0", admin_token: ")") + kAdmin + R"(" }
storage: { path: ")" + (dir.path() / "data").string() + R"(" }
sources:
  - id: web
    plugin: http
    config: { write_keys: [")" + kKey + R"("] }
destinations:
  - id: all
    plugin: file
    batch: { max_wait: 0ms }
    config: { path: ")" + (dir.path() / "all.ndjson").string() + R"(" }
  - id: marketing
    plugin: file
    consent: [marketing]
    filter: { types: [track] }
    batch: { max_wait: 0ms }
    config: { path: ")" + (dir.path() / "marketing.ndjson").string() + R"(" }
)");
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << daemon.log();
  HttpClient client(*port);
  const std::string auth = "Authorization: Basic " + sdk::base64Encode(std::string(kKey) + ":") + "\r\n";
  for (int i = 0; i < 20; ++i) {
    auto r = client.request("POST", "/v1/track",
                            R"({"userId":"m)" + std::to_string(i) + R"(","event":"Viewed",
                                 "context":{"consent":{"categoryPreferences":{"marketing":)" +
                                std::string(i % 2 ? "true" : "false") + "}}}}",
                            auth);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(client.request("POST", "/v1/identify", R"({"userId":"m1","traits":{"plan":"pro"}})", auth).status,
            200);
  EXPECT_EQ(client.request("POST", "/v1/track", "{not json", auth).status, 400);
  EXPECT_EQ(client.request("POST", "/v1/track", R"({"userId":"x","event":"E"})", "").status, 401);
  const std::string admin = "Authorization: Bearer " + std::string(kAdmin) + "\r\n";
  ASSERT_TRUE(eventually([&] { return client.request("GET", "/v1/profiles/user:m1", {}, admin).status == 200; }));
  EXPECT_EQ(client.request("GET", "/v1/profiles/user:nobody", {}, admin).status, 404);
  ASSERT_TRUE(eventually(
      [&] { return readFile(dir.path() / "marketing.ndjson").find("\"m19\"") != std::string::npos; }));

  // A suppressed person's event: counted at ingest.
  ASSERT_EQ(client.request("POST", "/v1/regulations", R"({"type":"suppress","userId":"gone"})", admin).status, 200);
  ASSERT_EQ(client.request("POST", "/v1/track", R"({"userId":"gone","event":"E"})", auth).status, 200);

  auto r = client.request("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  checkDeployFilesUseOnlyExportedMetrics(r.body);
  const auto problems = check(r.body);
  for (const auto& p : problems) {
    ADD_FAILURE() << p;
  }
  EXPECT_NE(r.body.find("junction_http_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(r.body.find("destination=\"marketing\""), std::string::npos);
  EXPECT_NE(r.body.find("# TYPE junction_profile_api_cache_total counter"), std::string::npos);
  EXPECT_EQ(r.body.find(kKey), std::string::npos) << "a write key in /metrics";
  EXPECT_EQ(r.body.find(kAdmin), std::string::npos) << "the admin token in /metrics";
}

}  // namespace
}  // namespace junction::integration
