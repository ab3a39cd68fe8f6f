#include "core/cli/tail.h"

#include <curl/curl.h>

#include <boost/json.hpp>
#include <cstdio>
#include <ctime>
#include <optional>

#include "core/config/daemon_config.h"
#include "junction/sdk/text.h"

namespace junction::cli {
namespace {

namespace json = boost::json;

std::string field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// "14:03:07.120 delivered       web -> hook         track Viewed       p1  m-1  reason"
std::string formatRecord(const json::object& o) {
  char when[32] = "";
  if (const json::value* at = o.if_contains("at_ms"); at != nullptr && at->is_number()) {
    const auto ms = at->to_number<std::int64_t>();
    const std::time_t s = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&s, &tm);
    char hms[16];
    std::strftime(hms, sizeof hms, "%H:%M:%S", &tm);
    std::snprintf(when, sizeof when, "%s.%03lld", hms, static_cast<long long>(ms % 1000));
  }
  const std::string kind = field(o, "kind");
  if (kind == "dropped") {
    return std::string(when) + " (" + json::serialize(o.at("count")) + " records not shown: " +
           field(o, "reason") + ")";
  }
  std::string route = field(o, "source");
  if (o.contains("destination")) {
    route += " -> " + field(o, "destination");
  }
  std::string what = field(o, "type");
  if (!field(o, "event").empty()) {
    what += " " + field(o, "event");
  }
  char line[512];
  std::snprintf(line, sizeof line, "%-12s %-15s %-24s %-28s %-20s %s", when, kind.c_str(),
                route.c_str(), what.c_str(), field(o, "person").c_str(),
                field(o, "messageId").c_str());
  std::string out = line;
  if (!field(o, "reason").empty()) {
    out += "  " + field(o, "reason");
  }
  return out;
}

struct Reader {
  const TailArgs* args = nullptr;
  std::string pending;
  std::uint64_t shown = 0;
  bool done = false;
};

// Splits the stream into server-sent events ("data: ...\n\n"); comment lines are skipped.
std::size_t onData(char* data, std::size_t size, std::size_t n, void* user) {
  auto& r = *static_cast<Reader*>(user);
  r.pending.append(data, size * n);
  std::size_t end;
  while ((end = r.pending.find("\n\n")) != std::string::npos) {
    std::string block = r.pending.substr(0, end);
    r.pending.erase(0, end + 2);
    if (block.rfind("data: ", 0) != 0) {
      continue;
    }
    std::string text = block.substr(6);
    if (r.args->admin.as_json) {
      std::printf("%s\n", text.c_str());
    } else {
      boost::system::error_code ec;
      auto v = json::parse(text, ec);
      if (ec || !v.is_object()) {
        continue;
      }
      std::printf("%s\n", formatRecord(v.as_object()).c_str());
    }
    std::fflush(stdout);
    if (r.args->count != 0 && ++r.shown >= r.args->count) {
      r.done = true;
      return 0;  // ends the transfer
    }
  }
  return size * n;
}

}  // namespace

int runTail(const TailArgs& args) {
  core::config::ConfigErrors errors;
  auto config =
      core::config::loadConfig(args.admin.config_file, core::config::processEnvironment(), errors);
  if (!config) {
    std::fputs(core::config::formatErrors(errors).c_str(), stderr);
    return 1;
  }
  if (config->server.admin_token.empty()) {
    std::fprintf(stderr, "junction: %s has no server.admin_token; the admin API is disabled\n",
                 args.admin.config_file.c_str());
    return 1;
  }
  std::string url = (args.admin.url.empty() ? "http://" + config->server.listen : args.admin.url) +
                    "/admin/debug/events";
  std::string query;
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"source", &args.source},
                                   {"destination", &args.destination},
                                   {"event", &args.event},
                                   {"person", &args.person}}) {
    if (!value->empty()) {
      query += (query.empty() ? "?" : "&") + std::string(key) + "=" + sdk::percentEncode(*value);
    }
  }
  url += query;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    std::fprintf(stderr, "junction: cannot start libcurl\n");
    return 1;
  }
  Reader reader;
  reader.args = &args;
  const std::string auth = "Authorization: Bearer " + config->server.admin_token;
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  headers = curl_slist_append(headers, "Accept: text/event-stream");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reader);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  if (!args.admin.as_json) {
    std::fprintf(stderr, "junction: watching %s (Ctrl-C to stop)\n", url.c_str());
  }
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (reader.done || rc == CURLE_OK) {
    return 0;
  }
  if (rc == CURLE_HTTP_RETURNED_ERROR) {
    std::fprintf(stderr, "junction: %s answered %ld%s\n", url.c_str(), status,
                 status == 401 ? " (check server.admin_token)" : "");
  } else {
    std::fprintf(stderr, "junction: %s: %s\n", url.c_str(), curl_easy_strerror(rc));
  }
  return 1;
}

}  // namespace junction::cli
