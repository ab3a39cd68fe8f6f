#include "core/cli/status.h"

#include <boost/json.hpp>
#include <cstdio>
#include <ctime>
#include <optional>

#include <yaml-cpp/yaml.h>

#include "core/config/daemon_config.h"
#include "junction/sdk/http_client.h"
#include "junction/sdk/text.h"

namespace junction::cli {
namespace {

namespace json = boost::json;

struct Target {
  std::string base;
  std::string token;
};

std::optional<Target> targetOf(const AdminArgs& args) {
  core::config::ConfigErrors errors;
  auto config = core::config::loadConfig(args.config_file, core::config::processEnvironment(), errors);
  if (!config) {
    std::fputs(core::config::formatErrors(errors).c_str(), stderr);
    return std::nullopt;
  }
  if (config->server.admin_token.empty()) {
    std::fprintf(stderr, "junction: %s has no server.admin_token; the admin API is disabled\n",
                 args.config_file.c_str());
    return std::nullopt;
  }
  return Target{args.url.empty() ? "http://" + config->server.listen : args.url,
                config->server.admin_token};
}

std::optional<sdk::HttpClientResponse> call(const Target& target, const std::string& method,
                                            const std::string& path, bool quiet = false) {
  sdk::HttpClient client;
  sdk::HttpClientRequest request;
  request.method = method;
  request.url = target.base + path;
  request.headers.set("Authorization", "Bearer " + target.token);
  if (method == "POST") {
    request.headers.set("Content-Type", "application/json");
    request.body = "{}";
  }
  auto response = client.send(request);
  if (!response.ok() && !(quiet && response.status >= 400 && response.status < 500)) {
    std::fprintf(stderr, "junction: %s: %s\n", request.url.c_str(), response.describe().c_str());
    return std::nullopt;
  }
  return response;
}

// The admin API's JSON object answer; nullopt (said on stderr) for anything else.
std::optional<json::object> objectOf(const sdk::HttpClientResponse& response) {
  boost::system::error_code ec;
  auto body = json::parse(response.body, ec);
  if (ec || !body.is_object()) {
    std::fprintf(stderr, "junction: unexpected answer (%d): %s\n", response.status,
                 response.body.c_str());
    return std::nullopt;
  }
  return std::move(body.as_object());
}

std::int64_t intOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) {
    return 0;
  }
  if (v->is_int64()) {
    return v->as_int64();
  }
  if (v->is_uint64()) {
    return static_cast<std::int64_t>(v->as_uint64());
  }
  if (v->is_double()) {
    return static_cast<std::int64_t>(v->as_double());
  }
  return 0;
}

std::string textOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// 1536 -> "1.5 KiB"
std::string bytes(std::int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// Seconds as "42s", "3m12s", "5h03m", "2d04h".
std::string duration(std::int64_t s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string ago(std::int64_t at_ms, std::int64_t now_ms) {
  if (at_ms <= 0) {
    return "never";
  }
  return duration(std::max<std::int64_t>(0, now_ms - at_ms) / 1000) + " ago";
}

std::int64_t nowMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

int runStatus(const AdminArgs& args) {
  auto target = targetOf(args);
  if (!target) {
    return 1;
  }
  auto response = call(*target, "GET", "/admin/status");
  if (!response) {
    return 1;
  }
  auto body = objectOf(*response);
  if (!body) {
    return 1;
  }
  const auto& o = *body;
  const bool ready = o.at("ready").as_bool();
  if (args.as_json) {
    std::printf("%s\n", response->body.c_str());
    return ready ? 0 : 1;
  }
  const std::int64_t now = nowMs();
  std::printf("junctiond %s at %s: %s, up %s\n", textOf(o, "version").c_str(),
              textOf(o, "listen").c_str(), ready ? "ready" : "NOT READY",
              duration(intOf(o, "uptime_seconds")).c_str());
  for (const auto& r : o.at("reasons").as_array()) {
    std::printf("  not ready: %s\n", std::string(r.as_string()).c_str());
  }
  if (const json::value* q = o.if_contains("queue"); q != nullptr && q->is_object()) {
    const auto max = intOf(q->as_object(), "max_bytes");
    std::printf("queue: %s on disk%s\n", bytes(intOf(q->as_object(), "disk_bytes")).c_str(),
                max > 0 ? (" of " + bytes(max) + " allowed").c_str() : "");
  }
  std::printf("\n%-20s %-12s %-8s\n", "SOURCE", "PLUGIN", "STATE");
  for (const auto& s : o.at("sources").as_array()) {
    const auto& so = s.as_object();
    std::printf("%-20s %-12s %-8s\n", textOf(so, "id").c_str(), textOf(so, "plugin").c_str(),
                textOf(so, "state").c_str());
  }
  std::printf("\n%-20s %-12s %-10s %9s %10s %8s %10s %6s %-14s %s\n", "DESTINATION", "PLUGIN",
              "STATE", "PENDING", "BACKLOG", "OLDEST", "DELIVERED", "DLQ", "LAST SUCCESS",
              "LAST ERROR");
  for (const auto& d : o.at("destinations").as_array()) {
    const auto& dob = d.as_object();
    std::string error = "-";
    if (const json::value* e = dob.if_contains("last_error"); e != nullptr && e->is_object()) {
      error = ago(intOf(e->as_object(), "at_ms"), now) + ": " + textOf(e->as_object(), "reason");
      if (error.size() > 100) {
        error = error.substr(0, 97) + "...";
      }
    }
    std::printf("%-20s %-12s %-10s %9lld %10s %8s %10lld %6lld %-14s %s\n",
                textOf(dob, "id").c_str(), textOf(dob, "plugin").c_str(),
                textOf(dob, "state").c_str(), static_cast<long long>(intOf(dob, "pending")),
                bytes(intOf(dob, "backlog_bytes")).c_str(),
                duration(intOf(dob, "oldest_pending_age_seconds")).c_str(),
                static_cast<long long>(intOf(dob, "delivered")),
                static_cast<long long>(intOf(dob, "dead_letters_stored")),
                ago(intOf(dob, "last_success_ms"), now).c_str(), error.c_str());
  }
  return ready ? 0 : 1;
}

int runPause(const AdminArgs& args, const std::string& destination, bool paused) {
  auto target = targetOf(args);
  if (!target) {
    return 1;
  }
  auto response = call(*target, "POST",
                       "/admin/destinations/" + sdk::percentEncode(destination) + (paused ? "/pause" : "/resume"));
  if (!response) {
    return 1;
  }
  std::printf("%s: %s\n", destination.c_str(), paused ? "paused" : "resumed");
  return 0;
}

int runReload(const AdminArgs& args) {
  auto target = targetOf(args);
  if (!target) {
    return 1;
  }
  auto response = call(*target, "POST", "/admin/reload", /*quiet=*/true);
  if (!response) {
    return 1;
  }
  auto body = objectOf(*response);
  if (!body) {
    return 1;
  }
  const auto& o = *body;
  if (const json::value* changes = o.if_contains("changes"); changes != nullptr && changes->is_array()) {
    for (const auto& c : changes->as_array()) {
      std::printf("%s\n", std::string(c.as_string()).c_str());
    }
  }
  if (const json::value* errors = o.if_contains("errors"); errors != nullptr && errors->is_array()) {
    for (const auto& e : errors->as_array()) {
      std::fprintf(stderr, "%s\n", std::string(e.as_string()).c_str());
    }
  }
  const bool ok = o.contains("success") && o.at("success").is_bool() && o.at("success").as_bool();
  if (!ok) {
    std::fprintf(stderr, "junction: reload refused; the running configuration is kept\n");
  }
  return ok ? 0 : 1;
}

int runForget(const AdminArgs& args, const std::string& destination) {
  auto target = targetOf(args);
  if (!target) {
    return 1;
  }
  if (!call(*target, "POST", "/admin/destinations/" + sdk::percentEncode(destination) + "/forget")) {
    return 1;
  }
  std::printf("%s: forgotten; the queue it held back may now be deleted\n", destination.c_str());
  return 0;
}

int runCatalog(const AdminArgs& args, const std::string& source, bool tracking_plan) {
  auto target = targetOf(args);
  if (!target) {
    return 1;
  }
  auto response = call(*target, "GET",
                       "/admin/catalog" + (source.empty() ? std::string() : "?source=" + sdk::percentEncode(source)));
  if (!response) {
    return 1;
  }
  auto body = objectOf(*response);
  if (!body) {
    return 1;
  }
  const auto& sources = body->at("sources").as_object();
  if (args.as_json && !tracking_plan) {
    std::printf("%s\n", response->body.c_str());
    return 0;
  }
  if (!tracking_plan) {
    std::printf("%-16s %-9s %-32s %10s %-24s %s\n", "SOURCE", "TYPE", "NAME", "EVENTS", "LAST SEEN",
                "KEYS (share of sampled events, types)");
    for (const auto& [src, s] : sources) {
      for (const auto& e : s.as_object().at("events").as_array()) {
        const auto& eo = e.as_object();
        std::string keys;
        for (const auto& k : eo.at("keys").as_array()) {
          const auto& ko = k.as_object();
          char share[16];
          std::snprintf(share, sizeof share, "%.0f%%", 100 * ko.at("share").to_number<double>());
          std::string types;
          for (const auto& t : ko.at("types").as_array()) {
            types += (types.empty() ? "" : "|") + std::string(t.as_string());
          }
          keys += (keys.empty() ? "" : ", ") + textOf(ko, "in") + "." + textOf(ko, "key") + " " + share +
                  " " + types;
        }
        std::printf("%-16s %-9s %-32s %10lld %-24s %s\n", std::string(src).c_str(),
                    textOf(eo, "type").c_str(), textOf(eo, "name").c_str(),
                    static_cast<long long>(intOf(eo, "count")), textOf(eo, "last_seen").c_str(),
                    keys.c_str());
      }
    }
    return 0;
  }
  // A draft tracking plan: track events, their properties and types.
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "tracking_plan" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "events" << YAML::Value << YAML::BeginMap;
  std::size_t planned = 0;
  for (const auto& [src, s] : sources) {
    for (const auto& e : s.as_object().at("events").as_array()) {
      const auto& eo = e.as_object();
      if (textOf(eo, "type") != "track" || textOf(eo, "name").empty()) {
        continue;
      }
      ++planned;
      out << YAML::Key << textOf(eo, "name") << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "type" << YAML::Value << "object";
      std::vector<std::string> required;
      out << YAML::Key << "properties" << YAML::Value << YAML::BeginMap;
      for (const auto& k : eo.at("keys").as_array()) {
        const auto& ko = k.as_object();
        if (textOf(ko, "in") != "properties") {
          continue;
        }
        const auto& types = ko.at("types").as_array();
        out << YAML::Key << textOf(ko, "key") << YAML::Value << YAML::Flow << YAML::BeginMap
            << YAML::Key << "type" << YAML::Value;
        if (types.size() == 1) {
          out << std::string(types[0].as_string());
        } else {
          out << YAML::Flow << YAML::BeginSeq;
          for (const auto& t : types) {
            out << std::string(t.as_string());
          }
          out << YAML::EndSeq;
        }
        out << YAML::EndMap;
        if (ko.at("share").to_number<double>() >= 1.0) {
          required.push_back(textOf(ko, "key"));
        }
      }
      out << YAML::EndMap;
      if (!required.empty()) {
        out << YAML::Key << "required" << YAML::Value << YAML::Flow << required;
      }
      out << YAML::EndMap;
    }
  }
  out << YAML::EndMap;
  out << YAML::Key << "unplanned" << YAML::Value << "allow";
  out << YAML::Key << "violations" << YAML::Value << "flag";
  out << YAML::EndMap << YAML::EndMap;
  std::printf("# A draft tracking plan from the event catalog of %s: %zu track event%s.\n"
              "# Review it, then put it under the http source's `config:`. `required` lists the\n"
              "# properties every sampled event carried; `unplanned: allow` lets new events in.\n%s\n",
              target->base.c_str(), planned, planned == 1 ? "" : "s", out.c_str());
  return 0;
}

}  // namespace junction::cli
