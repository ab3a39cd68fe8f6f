#pragma once

// The event catalog: every event name a source sent (per type), and every property (track, page,
// screen: `properties.*`) and trait (identify, group: `traits.*`) seen on it, with their JSON
// types, first and last seen, the event's volume and the share of its events carrying each key.
// Served at GET /admin/catalog, shown in the dashboard, and exported by
// `junction catalog --tracking-plan` as a draft tracking plan for the http source.
//
// Cost on ingest: volumes and times are exact and cost a hash lookup per event; keys and types
// come from a sample of the bodies (the first kFullSample events of each name, then one in
// kSampleEvery), so the share of events carrying a key is measured on that sample. Persisted to
// <storage.path>/catalog.json (every 30 s and at stop), so first-seen times survive restarts.
//
// Thread-safe.

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "junction/sdk/event.h"
#include "junction/sdk/result.h"

namespace junction::core::ingest {

class EventCatalog {
 public:
  static constexpr std::uint64_t kFullSample = 200;
  static constexpr std::uint64_t kSampleEvery = 100;

  // Reads `file` if it exists (a damaged file is set aside as .damaged and the catalog starts
  // empty: it is a summary, not data).
  explicit EventCatalog(std::string file = {});

  // Events a source had accepted at `now_ms` (after they are durable).
  void observe(const std::string& source, const std::vector<sdk::Event>& events, std::int64_t now_ms);

  // {"sources": {ID: {"events": [{type, name, count, first_seen, last_seen, sampled,
  //   "keys": [{key, in, types, share, first_seen, last_seen}]}]}}}; `source` "" = all.
  boost::json::object toJson(const std::string& source = {}) const;

  sdk::Status save() const;
  const std::string& file() const noexcept { return file_; }

 private:
  struct Key {
    std::vector<std::string> types;  // JSON Schema type names seen, sorted
    std::uint64_t carried = 0;       // sampled events carrying it
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;
  };
  struct Entry {
    std::uint64_t count = 0;
    std::uint64_t sampled = 0;
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;
    std::map<std::string, Key> keys;  // "properties.sku", "traits.email"
  };
  // source -> "type\nname" -> entry
  using Sources = std::map<std::string, std::map<std::string, Entry>>;

  void sample(Entry& entry, const sdk::Event& event, std::int64_t now_ms);

  std::string file_;
  mutable std::mutex save_mutex_;  // one writer of the file at a time
  mutable std::mutex mutex_;
  Sources sources_;
};

}  // namespace junction::core::ingest
