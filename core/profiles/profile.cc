#include "core/profiles/profile.h"

#include <algorithm>
#include <limits>
#include <boost/json.hpp>
#include <unordered_set>

#include "core/privacy/privacy_store.h"
#include "junction/sdk/crypto.h"

namespace junction::core::profiles {

namespace json = boost::json;

std::string identityLabel(std::string_view kind) {
  if (kind == kUserKind) {
    return "userId";
  }
  if (kind == kAnonymousKind) {
    return "anonymousId";
  }
  return std::string(kind);
}

std::optional<Identifier> parseIdentityKey(std::string_view key) {
  const auto colon = key.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == key.size()) {
    return std::nullopt;
  }
  Identifier id{std::string(key.substr(0, colon)), std::string(key.substr(colon + 1))};
  if (id.kind == kEmailKind) {
    id.value = privacy::normalizeEmail(id.value);
  }
  return id;
}

bool Profile::hasUserId() const { return count(kUserKind) > 0; }

std::size_t Profile::count(std::string_view kind) const {
  auto it = identities.find(std::string(kind));
  return it == identities.end() ? 0 : it->second.size();
}

bool Profile::has(const Identifier& id) const {
  auto it = identities.find(id.kind);
  return it != identities.end() &&
         std::find(it->second.begin(), it->second.end(), id.value) != it->second.end();
}

void Profile::add(const Identifier& id) {
  if (!has(id)) {
    identities[id.kind].push_back(id.value);
  }
}

std::string Profile::serialize() const {
  // Member by member, without copying the document into one json::object first (that copy was
  // a sixth of the applier's time).
  json::object ids;
  for (const auto& [kind, values] : identities) {
    json::array a;
    for (const auto& v : values) {
      a.emplace_back(v);
    }
    ids[kind] = std::move(a);
  }
  std::string out;
  out.reserve(512);
  auto member = [&](std::string_view key, const auto& value, bool first = false) {
    out += first ? "{\"" : ",\"";
    out += key;
    out += "\":";
    out += json::serialize(value);
  };
  member("id", json::string(id), true);
  member("identities", ids);
  member("traits", traits);
  member("trait_times", trait_times);
  member("consent", consent);
  member("consent_time", json::value(consent_time));
  member("first_seen", json::value(first_seen));
  member("last_seen", json::value(last_seen));
  member("counters", counters);
  member("computed", computed);
  member("events", events);
  if (!audience_history.empty()) {
    member("audience_history", audience_history);
  }
  if (!audiences.empty()) {
    member("audiences", audiences);
  }
  if (audience_seq != 0) {
    member("audience_seq", json::value(audience_seq));
  }
  out += '}';
  return out;
}

sdk::Result<Profile> Profile::parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return sdk::makeError(sdk::ErrorCode::Internal, "a stored profile is not a JSON object");
  }
  const json::object& o = v.as_object();
  Profile p;
  auto str = [&](const char* k) {
    const json::value* x = o.if_contains(k);
    return x != nullptr && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  auto num = [&](const char* k) {
    const json::value* x = o.if_contains(k);
    return x != nullptr && x->is_int64() ? x->as_int64() : std::int64_t{0};
  };
  auto obj = [&](const char* k) {
    const json::value* x = o.if_contains(k);
    return x != nullptr && x->is_object() ? x->as_object() : json::object{};
  };
  p.id = str("id");
  if (p.id.empty()) {
    return sdk::makeError(sdk::ErrorCode::Internal, "a stored profile has no id");
  }
  for (const auto& [kind, values] : obj("identities")) {
    if (!values.is_array()) {
      continue;
    }
    auto& list = p.identities[std::string(kind)];
    for (const auto& value : values.as_array()) {
      if (value.is_string()) {
        list.emplace_back(value.as_string());
      }
    }
  }
  p.traits = obj("traits");
  p.trait_times = obj("trait_times");
  p.consent = obj("consent");
  p.consent_time = num("consent_time");
  p.first_seen = num("first_seen");
  p.last_seen = num("last_seen");
  p.counters = obj("counters");
  p.computed = obj("computed");
  p.audience_history = obj("audience_history");
  p.audiences = obj("audiences");
  p.audience_seq = num("audience_seq");
  if (const json::value* e = o.if_contains("events"); e != nullptr && e->is_array()) {
    p.events = e->as_array();
  }
  return p;
}

std::string newProfileId() {
  std::string uuid = sdk::makeUuidV4();
  uuid.erase(std::remove(uuid.begin(), uuid.end(), '-'), uuid.end());
  return "p_" + uuid;
}

namespace {

// Properties worth keeping in a recent event: what was viewed, carted or bought.
constexpr std::string_view kKeyProperties[] = {
    "sku",     "product_id", "name",     "price", "quantity", "category", "brand",
    "value",   "revenue",    "total",    "currency", "order_id", "cart_id", "url",
    "path",    "title",      "products", "coupon", "list_id",
};
constexpr std::size_t kMaxPropertyText = 256;
constexpr std::size_t kMaxProducts = 20;

json::value bounded(const json::value& v, int depth = 0) {
  if (v.is_string()) {
    std::string_view s = v.as_string();
    if (s.size() <= kMaxPropertyText) {
      return v;
    }
    std::size_t cut = kMaxPropertyText;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
      --cut;  // not inside a UTF-8 character
    }
    return json::value(s.substr(0, cut));
  }
  if (v.is_array()) {
    json::array out;
    for (const auto& item : v.as_array()) {
      if (out.size() == kMaxProducts) {
        break;
      }
      out.push_back(depth < 2 ? bounded(item, depth + 1) : json::value(nullptr));
    }
    return out;
  }
  if (v.is_object()) {
    json::object out;
    for (const auto& [k, x] : v.as_object()) {
      if (depth >= 2) {
        break;
      }
      if (std::find(std::begin(kKeyProperties), std::end(kKeyProperties), std::string_view(k)) !=
          std::end(kKeyProperties)) {
        out[k] = bounded(x, depth + 1);
      }
    }
    return out;
  }
  return v;
}

std::int64_t summaryTime(const json::value& v) {
  const json::value* t = v.is_object() ? v.as_object().if_contains("ts") : nullptr;
  return t != nullptr && t->is_int64() ? t->as_int64() : 0;
}

}  // namespace

json::object summarize(const sdk::Event& event) {
  const auto& h = event.header();
  json::object out{{"type", sdk::toString(h.type)},
                   {"timestamp", sdk::formatIsoTimestamp(h.timestamp_ms)},
                   {"ts", h.timestamp_ms},
                   {"messageId", h.message_id},
                   {"source", h.source_id}};
  if (!h.name.empty()) {
    out[h.type == sdk::EventType::Track ? "event" : "name"] = h.name;
  }
  const json::object& body = event.body();
  if (const json::value* props = body.if_contains("properties"); props && props->is_object()) {
    json::object kept;
    for (const auto& [k, v] : props->as_object()) {
      if (std::find(std::begin(kKeyProperties), std::end(kKeyProperties), std::string_view(k)) !=
          std::end(kKeyProperties)) {
        kept[k] = bounded(v, 1);
      }
    }
    if (!kept.empty()) {
      out["properties"] = std::move(kept);
    }
  }
  return out;
}

void addRecentEvent(json::array& events, json::object summary, std::size_t keep) {
  if (keep == 0) {
    events.clear();
    return;
  }
  const std::int64_t ts = summaryTime(summary);
  auto pos = std::find_if(events.begin(), events.end(),
                          [&](const json::value& e) { return summaryTime(e) < ts; });
  if (static_cast<std::size_t>(pos - events.begin()) >= keep) {
    return;  // older than every event kept
  }
  events.insert(pos, json::value(std::move(summary)));
  while (events.size() > keep) {
    events.pop_back();
  }
}

json::array mergeRecentEvents(const json::array& a, const json::array& b, std::size_t keep) {
  json::array out;
  std::unordered_set<std::string> seen;
  std::size_t i = 0;
  std::size_t j = 0;
  auto id = [](const json::value& e) {
    const json::value* m = e.is_object() ? e.as_object().if_contains("messageId") : nullptr;
    return m != nullptr && m->is_string() ? std::string(m->as_string()) : std::string();
  };
  while (out.size() < keep && (i < a.size() || j < b.size())) {
    const bool take_a = j >= b.size() || (i < a.size() && summaryTime(a[i]) >= summaryTime(b[j]));
    const json::value& e = take_a ? a[i++] : b[j++];
    const std::string m = id(e);
    if (!m.empty() && !seen.insert(m).second) {
      continue;
    }
    out.push_back(e);
  }
  return out;
}

const json::value* lookupPath(const json::object& body, std::string_view path) {
  const json::object* at = &body;
  while (true) {
    const auto dot = path.find('.');
    const std::string_view part = path.substr(0, dot);
    const json::value* v = at->if_contains(part);
    if (v == nullptr || dot == std::string_view::npos) {
      return v;
    }
    if (!v->is_object()) {
      return nullptr;
    }
    at = &v->as_object();
    path.remove_prefix(dot + 1);
  }
}

// --- computed traits ----------------------------------------------------------------------------

using Kind = config::ComputedTraitConfig::Kind;

bool computedMatches(const config::ComputedTraitConfig& trait, const sdk::Event& event) {
  if (!trait.where_type.empty() && trait.where_type != sdk::toString(event.type())) {
    return false;
  }
  if (!trait.where_event.empty() && trait.where_event != event.name()) {
    return false;
  }
  if (trait.kind == Kind::Sum) {
    const json::value* v = lookupPath(event.body(), trait.path);
    return v != nullptr && v->is_number();
  }
  if (trait.kind == Kind::Last || trait.kind == Kind::Latest) {
    const json::value* v = lookupPath(event.body(), trait.path);
    return v != nullptr && !v->is_null();
  }
  return true;
}

namespace {

std::int64_t int64At(const json::value& v) { return v.is_int64() ? v.as_int64() : 0; }

// Keeps the entries of `list` (newest first) inside the window, at most kMaxWindowEvents.
void prune(json::array& list, std::int64_t since, bool pairs) {
  while (!list.empty()) {
    const json::value& last = list.back();
    const std::int64_t ts = pairs ? (last.is_array() && !last.as_array().empty()
                                         ? int64At(last.as_array()[0])
                                         : 0)
                                  : int64At(last);
    if (ts >= since && list.size() <= kMaxWindowEvents) {
      break;
    }
    list.pop_back();
  }
}

std::int64_t pairTime(const json::value& v) {
  return v.is_array() && !v.as_array().empty() ? int64At(v.as_array()[0]) : 0;
}

// Inserts `item` into a newest-first list by its time.
void insertByTime(json::array& list, json::value item, std::int64_t ts, bool pairs) {
  auto pos = std::find_if(list.begin(), list.end(), [&](const json::value& e) {
    return (pairs ? pairTime(e) : int64At(e)) < ts;
  });
  list.insert(pos, std::move(item));
}

json::array& arrayIn(json::object& state, const char* key) {
  json::value& v = state[key];
  if (!v.is_array()) {
    v = json::array{};
  }
  return v.as_array();
}

}  // namespace

void computedApply(const config::ComputedTraitConfig& trait, json::object& state,
                   const sdk::Event& event, std::int64_t now_ms) {
  const std::int64_t ts = event.header().timestamp_ms;
  switch (trait.kind) {
    case Kind::Last: {
      const json::value* v = lookupPath(event.body(), trait.path);
      json::array& list = arrayIn(state, "v");
      // [value, ts]: a value seen again moves up only if this sighting is newer.
      for (auto it = list.begin(); it != list.end(); ++it) {
        const auto& pair = it->as_array();
        if (pair[0] == *v) {
          if (int64At(pair[1]) >= ts) {
            return;
          }
          list.erase(it);
          break;
        }
      }
      auto pos = std::find_if(list.begin(), list.end(), [&](const json::value& e) {
        return int64At(e.as_array()[1]) < ts;
      });
      list.insert(pos, json::array{*v, ts});
      while (list.size() > static_cast<std::size_t>(trait.last_n)) {
        list.pop_back();
      }
      return;
    }
    case Kind::Count:
      if (trait.within_ms == 0) {
        state["n"] = int64At(state["n"]) + 1;
      } else {
        json::array& list = arrayIn(state, "t");
        insertByTime(list, json::value(ts), ts, false);
        prune(list, now_ms - trait.within_ms, false);
      }
      return;
    case Kind::Sum: {
      const double x = lookupPath(event.body(), trait.path)->to_number<double>();
      if (trait.within_ms == 0) {
        const json::value* s = state.if_contains("s");
        state["s"] = (s != nullptr && s->is_number() ? s->to_number<double>() : 0.0) + x;
      } else {
        json::array& list = arrayIn(state, "t");
        insertByTime(list, json::array{ts, x}, ts, true);
        prune(list, now_ms - trait.within_ms, true);
      }
      return;
    }
    case Kind::Latest: {
      const json::value* at = state.if_contains("ts");
      if (at == nullptr || int64At(*at) <= ts) {
        state["v"] = *lookupPath(event.body(), trait.path);
        state["ts"] = ts;
      }
      return;
    }
  }
}

json::value computedValue(const config::ComputedTraitConfig& trait, const json::object& state,
                          std::int64_t now_ms) {
  switch (trait.kind) {
    case Kind::Last: {
      json::array out;
      if (const json::value* list = state.if_contains("v"); list && list->is_array()) {
        for (const auto& pair : list->as_array()) {
          out.push_back(pair.as_array()[0]);
        }
      }
      return out;
    }
    case Kind::Count: {
      if (trait.within_ms == 0) {
        const json::value* n = state.if_contains("n");
        return n != nullptr ? *n : json::value(0);
      }
      std::int64_t n = 0;
      if (const json::value* list = state.if_contains("t"); list && list->is_array()) {
        for (const auto& t : list->as_array()) {
          const std::int64_t ts = int64At(t);
          if (ts >= now_ms - trait.within_ms && ts <= now_ms) {
            ++n;
          }
        }
      }
      return n;
    }
    case Kind::Sum: {
      if (trait.within_ms == 0) {
        const json::value* s = state.if_contains("s");
        return s != nullptr ? *s : json::value(0);
      }
      double sum = 0;
      if (const json::value* list = state.if_contains("t"); list && list->is_array()) {
        for (const auto& pair : list->as_array()) {
          const std::int64_t ts = pairTime(pair);
          if (ts >= now_ms - trait.within_ms && ts <= now_ms) {
            sum += pair.as_array()[1].to_number<double>();
          }
        }
      }
      return sum;
    }
    case Kind::Latest: {
      const json::value* v = state.if_contains("v");
      return v != nullptr ? *v : json::value(nullptr);
    }
  }
  return nullptr;
}

std::int64_t computedChangesAt(const config::ComputedTraitConfig& trait, const json::object& state,
                               std::int64_t now_ms) {
  std::int64_t at = std::numeric_limits<std::int64_t>::max();
  if ((trait.kind != Kind::Count && trait.kind != Kind::Sum) || trait.within_ms == 0) {
    return at;
  }
  const json::value* list = state.if_contains("t");
  if (list == nullptr || !list->is_array()) {
    return at;
  }
  for (const auto& t : list->as_array()) {
    const std::int64_t ts = trait.kind == Kind::Count ? int64At(t) : pairTime(t);
    if (ts > now_ms) {
      at = std::min(at, ts);  // counted from then on
    } else if (ts >= now_ms - trait.within_ms) {
      at = std::min(at, ts + trait.within_ms + 1);  // the first moment it is out
    }
  }
  return at;
}

void computedMerge(const config::ComputedTraitConfig& trait, json::object& into,
                   const json::object& from) {
  switch (trait.kind) {
    case Kind::Last: {
      json::array& list = arrayIn(into, "v");
      if (const json::value* other = from.if_contains("v"); other && other->is_array()) {
        for (const auto& pair : other->as_array()) {
          const json::value& value = pair.as_array()[0];
          const std::int64_t ts = int64At(pair.as_array()[1]);
          auto same = std::find_if(list.begin(), list.end(), [&](const json::value& e) {
            return e.as_array()[0] == value;
          });
          if (same != list.end()) {
            if (int64At(same->as_array()[1]) >= ts) {
              continue;
            }
            list.erase(same);
          }
          auto pos = std::find_if(list.begin(), list.end(), [&](const json::value& e) {
            return int64At(e.as_array()[1]) < ts;
          });
          list.insert(pos, pair);
        }
      }
      while (list.size() > static_cast<std::size_t>(trait.last_n)) {
        list.pop_back();
      }
      return;
    }
    case Kind::Count:
    case Kind::Sum: {
      const char* total = trait.kind == Kind::Count ? "n" : "s";
      if (trait.within_ms == 0) {
        const json::value* a = into.if_contains(total);
        const json::value* b = from.if_contains(total);
        const double sum = (a && a->is_number() ? a->to_number<double>() : 0.0) +
                           (b && b->is_number() ? b->to_number<double>() : 0.0);
        if (trait.kind == Kind::Count) {
          into[total] = static_cast<std::int64_t>(sum);
        } else {
          into[total] = sum;
        }
        return;
      }
      const bool pairs = trait.kind == Kind::Sum;
      json::array& list = arrayIn(into, "t");
      if (const json::value* other = from.if_contains("t"); other && other->is_array()) {
        for (const auto& item : other->as_array()) {
          insertByTime(list, item, pairs ? pairTime(item) : int64At(item), pairs);
        }
      }
      while (list.size() > kMaxWindowEvents) {
        list.pop_back();
      }
      return;
    }
    case Kind::Latest: {
      const json::value* a = into.if_contains("ts");
      const json::value* b = from.if_contains("ts");
      if (b != nullptr && (a == nullptr || int64At(*a) < int64At(*b))) {
        into = from;
      }
      return;
    }
  }
}

}  // namespace junction::core::profiles
