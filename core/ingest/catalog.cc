#include "core/ingest/catalog.h"

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "junction/sdk/event.h"

namespace junction::core::ingest {

namespace json = boost::json;

namespace {

const char* schemaType(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return "string";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "number";
    case json::kind::bool_:
      return "boolean";
    case json::kind::object:
      return "object";
    case json::kind::array:
      return "array";
    case json::kind::null:
      return "null";
  }
  return "null";
}

// Where an event type keeps its attributes.
const char* attributesOf(sdk::EventType type) {
  switch (type) {
    case sdk::EventType::Identify:
    case sdk::EventType::Group:
      return "traits";
    case sdk::EventType::Alias:
      return nullptr;
    default:
      return "properties";
  }
}

std::int64_t intOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_number() ? v->to_number<std::int64_t>() : 0;
}

}  // namespace

EventCatalog::EventCatalog(std::string file) : file_(std::move(file)) {
  if (file_.empty() || !std::filesystem::exists(file_)) {
    return;
  }
  std::ifstream in(file_, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  json::value v = json::parse(text.str(), ec);
  try {
    if (ec || !v.is_object()) {
      throw std::runtime_error("not a JSON object");
    }
    for (const auto& [source, s] : v.as_object().at("sources").as_object()) {
      for (const auto& e : s.as_object().at("events").as_array()) {
        const auto& eo = e.as_object();
        Entry entry;
        entry.count = static_cast<std::uint64_t>(intOf(eo, "count"));
        entry.sampled = static_cast<std::uint64_t>(intOf(eo, "sampled"));
        entry.first_seen_ms = intOf(eo, "first_seen_ms");
        entry.last_seen_ms = intOf(eo, "last_seen_ms");
        for (const auto& k : eo.at("keys").as_array()) {
          const auto& ko = k.as_object();
          Key key;
          for (const auto& t : ko.at("types").as_array()) {
            key.types.emplace_back(t.as_string());
          }
          key.carried = static_cast<std::uint64_t>(intOf(ko, "carried"));
          key.first_seen_ms = intOf(ko, "first_seen_ms");
          key.last_seen_ms = intOf(ko, "last_seen_ms");
          entry.keys[std::string(ko.at("in").as_string()) + "." + std::string(ko.at("key").as_string())] =
              std::move(key);
        }
        sources_[std::string(source)][std::string(eo.at("type").as_string()) + "\n" +
                                      std::string(eo.at("name").as_string())] = std::move(entry);
      }
    }
  } catch (const std::exception&) {
    sources_.clear();
    std::error_code rename_ec;
    std::filesystem::rename(file_, file_ + ".damaged", rename_ec);
  }
}

void EventCatalog::observe(const std::string& source, const std::vector<sdk::Event>& events,
                           std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto& names = sources_[source];
  for (const auto& event : events) {
    const auto& h = event.header();
    std::string id = std::string(sdk::toString(h.type)) + "\n" + h.name;
    Entry& entry = names[id];
    if (entry.count == 0) {
      entry.first_seen_ms = now_ms;
    }
    ++entry.count;
    entry.last_seen_ms = now_ms;
    if (entry.count <= kFullSample || entry.count % kSampleEvery == 0) {
      sample(entry, event, now_ms);
    }
  }
}

void EventCatalog::sample(Entry& entry, const sdk::Event& event, std::int64_t now_ms) {
  const char* in = attributesOf(event.type());
  ++entry.sampled;
  if (in == nullptr) {
    return;
  }
  boost::system::error_code ec;
  json::value body = json::parse(event.json(), ec);
  if (ec || !body.is_object()) {
    return;
  }
  const json::value* attributes = body.as_object().if_contains(in);
  if (attributes == nullptr || !attributes->is_object()) {
    return;
  }
  for (const auto& [k, v] : attributes->as_object()) {
    Key& key = entry.keys[std::string(in) + "." + std::string(k)];
    if (key.carried == 0 && key.first_seen_ms == 0) {
      key.first_seen_ms = now_ms;
    }
    ++key.carried;
    key.last_seen_ms = now_ms;
    const std::string type = schemaType(v);
    if (std::find(key.types.begin(), key.types.end(), type) == key.types.end()) {
      key.types.push_back(type);
      std::sort(key.types.begin(), key.types.end());
    }
  }
}

json::object EventCatalog::toJson(const std::string& source) const {
  std::lock_guard lock(mutex_);
  json::object sources;
  for (const auto& [src, names] : sources_) {
    if (!source.empty() && src != source) {
      continue;
    }
    json::array events;
    for (const auto& [id, e] : names) {
      const auto nl = id.find('\n');
      json::array keys;
      for (const auto& [path, k] : e.keys) {
        const auto dot = path.find('.');
        json::array types;
        for (const auto& t : k.types) {
          types.emplace_back(t);
        }
        keys.push_back(json::object{
            {"key", path.substr(dot + 1)},
            {"in", path.substr(0, dot)},
            {"types", std::move(types)},
            {"carried", k.carried},
            {"share", e.sampled > 0 ? static_cast<double>(k.carried) / static_cast<double>(e.sampled) : 0.0},
            {"first_seen", sdk::formatIsoTimestamp(k.first_seen_ms)},
            {"first_seen_ms", k.first_seen_ms},
            {"last_seen", sdk::formatIsoTimestamp(k.last_seen_ms)},
            {"last_seen_ms", k.last_seen_ms}});
      }
      events.push_back(json::object{{"type", id.substr(0, nl)},
                                    {"name", id.substr(nl + 1)},
                                    {"count", e.count},
                                    {"sampled", e.sampled},
                                    {"first_seen", sdk::formatIsoTimestamp(e.first_seen_ms)},
                                    {"first_seen_ms", e.first_seen_ms},
                                    {"last_seen", sdk::formatIsoTimestamp(e.last_seen_ms)},
                                    {"last_seen_ms", e.last_seen_ms},
                                    {"keys", std::move(keys)}});
    }
    sources[src] = json::object{{"events", std::move(events)}};
  }
  return json::object{{"sources", std::move(sources)}};
}

sdk::Status EventCatalog::save() const {
  if (file_.empty()) {
    return {};
  }
  std::lock_guard save_lock(save_mutex_);
  const std::string text = json::serialize(toJson());
  const std::string tmp = file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot write " + tmp);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file_, ec);
  if (ec) {
    return sdk::makeError(sdk::ErrorCode::Unavailable, "cannot replace " + file_ + ": " + ec.message());
  }
  return {};
}

}  // namespace junction::core::ingest
