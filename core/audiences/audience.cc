#include "core/audiences/audience.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <cctype>
#include <cmath>
#include <optional>
#include <utility>

#include "junction/sdk/json.h"
#include "junction/sdk/options.h"

namespace junction::core::audiences {

namespace json = boost::json;
using config::joinKey;
using config::KeyMark;
using Kind = Condition::Kind;
using Op = Condition::Op;

namespace {

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

// --- reading ------------------------------------------------------------------------------------

const std::vector<std::string>& conditionKeys() {
  static const std::vector<std::string> keys{"all",   "any",       "not",
                                             "trait", "performed", "not_performed"};
  return keys;
}

struct OpName {
  std::string_view name;
  Op op;
};
constexpr OpName kOps[] = {
    {"equals", Op::Equals}, {"not_equals", Op::NotEquals},
    {"gt", Op::Gt},         {"gte", Op::Gte},
    {"lt", Op::Lt},         {"lte", Op::Lte},
    {"in", Op::In},         {"contains", Op::Contains},
    {"exists", Op::Exists},
};

std::optional<Op> parseOp(std::string_view key) {
  for (const auto& o : kOps) {
    if (o.name == key) {
      return o.op;
    }
  }
  return std::nullopt;
}

const std::vector<std::string>& allConditionWords() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w = conditionKeys();
    for (const auto& o : kOps) {
      w.emplace_back(o.name);
    }
    return w;
  }();
  return words;
}

bool isConditionKey(std::string_view key) {
  const auto& keys = conditionKeys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Given a value: config::childOf answers a key that is absent with a null node.
bool given(const YAML::Node& node) { return node.IsDefined() && !node.IsNull(); }

bool located(const YAML::Node& node) { return node.IsDefined() && node.Mark().line >= 0; }

KeyMark markOf(const YAML::Node& node) {
  if (located(node)) {
    return {node.Mark().line + 1, node.Mark().column + 1};
  }
  return {};
}

std::string unknownKey(std::string_view key, const std::vector<std::string>& known) {
  std::string hint = config::closestMatch(key, known);
  return "unknown key '" + std::string(key) + "'" +
         (hint.empty() ? "" : "; did you mean '" + hint + "'?");
}

// "30m", "1h", "2d", "1500ms": the largest unit that divides it.
std::string formatDuration(std::int64_t ms) {
  static constexpr std::pair<std::int64_t, const char*> kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (const auto& [size, unit] : kUnits) {
    if (ms % size == 0) {
      return std::to_string(ms / size) + unit;
    }
  }
  return std::to_string(ms) + "ms";
}

// Audience names: lower-case letters, digits, '_', '-' and inner spaces.
bool validName(std::string_view name) {
  if (name.empty() || name.size() > 100 || name.front() == ' ' || name.back() == ' ') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ' ';
  });
}

bool validPath(std::string_view path) {
  if (path.empty() || path.front() == '.' || path.back() == '.') {
    return false;
  }
  return path.find("..") == std::string_view::npos;
}

bool isScalarValue(const json::value& v) {
  return v.is_string() || v.is_bool() || v.is_int64() || v.is_uint64() ||
         (v.is_double() && std::isfinite(v.get_double()));
}

// Reads the conditions of one file, counting the errors it reported so that an audience with
// any is left out. Every problem is reported; reading goes on after one.
class Reader {
 public:
  explicit Reader(config::YamlChecker& checker) : checker_(checker) {}

  std::size_t errors() const noexcept { return errors_; }

  void error(const YAML::Node& node, const std::string& path, std::string message) {
    ++errors_;
    checker_.error(node, path, std::move(message));
  }
  void error(KeyMark mark, const std::string& path, std::string message) {
    ++errors_;
    checker_.error(mark, path, std::move(message));
  }

  void audience(const YAML::Node& node, const std::string& path, Audience& out);
  void condition(const YAML::Node& node, const std::string& path, Condition& out);

 private:
  std::optional<std::string> text(const YAML::Node& node, const std::string& path,
                                  const char* expected);
  std::optional<json::value> typed(const YAML::Node& node, const std::string& path);
  std::optional<json::value> scalar(const YAML::Node& node, const std::string& path);
  void list(const YAML::Node& node, const std::string& path, const std::string& key,
            Condition& out);
  void compare(const YAML::Node& node, const std::string& path,
               const std::vector<std::pair<std::string, YAML::Node>>& ops, bool misspelt,
               Condition& out);
  void performed(const YAML::Node& node, const std::string& path, bool is_performed,
                 Condition& out);
  void checkWaits(const std::vector<YAML::Node>& items, const Condition& all);

  config::YamlChecker& checker_;
  std::size_t errors_ = 0;
};

// A scalar as text (environment references replaced); nullopt (reported) when it is not one or
// is empty.
std::optional<std::string> Reader::text(const YAML::Node& node, const std::string& path,
                                        const char* expected) {
  if (!node.IsScalar()) {
    error(node, path, std::string("expected ") + expected);
    return std::nullopt;
  }
  auto value = checker_.interpolate(node, path);
  if (!value) {
    ++errors_;  // reported by interpolate
    return std::nullopt;
  }
  if (value->empty()) {
    error(node, path, std::string("expected ") + expected);
    return std::nullopt;
  }
  return value;
}

// A scalar typed as the rest of the configuration types it (quoted: a string); nullopt when it
// is not a scalar (not reported) or names an unset environment variable (reported).
std::optional<json::value> Reader::typed(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) {
    return std::nullopt;
  }
  if (!checker_.interpolate(node, path)) {
    ++errors_;
    return std::nullopt;
  }
  return checker_.toJson(node, path);
}

// A string, number or boolean to compare with; nullopt when not (reported).
std::optional<json::value> Reader::scalar(const YAML::Node& node, const std::string& path) {
  const std::size_t before = errors_;
  auto v = typed(node, path);
  if (v && isScalarValue(*v)) {
    return v;
  }
  if (errors_ == before) {
    error(node, path,
          "expected a string, a number or true/false (a missing trait: `exists: false`)");
  }
  return std::nullopt;
}

void Reader::audience(const YAML::Node& node, const std::string& path, Audience& out) {
  static const std::vector<std::string> keys{"where", "destinations"};
  if (!node.IsMap()) {
    error(node, path, "expected {where: CONDITION, destinations: [ids]}");
    return;
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      error(kv.first, joinKey(path, key), "given twice");
    } else if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      error(kv.first, joinKey(path, key), unknownKey(key, keys));
    }
  }
  const YAML::Node where = config::childOf(node, "where");
  if (!given(where)) {
    error(located(where) ? where : node, path + ".where",
          "required: the condition a person must meet");
  } else {
    condition(where, path + ".where", out.where);
  }
  const YAML::Node destinations = config::childOf(node, "destinations");
  if (!given(destinations)) {
    return;
  }
  if (!destinations.IsSequence()) {
    error(destinations, path + ".destinations", "expected a list of destination ids");
    return;
  }
  std::size_t index = 0;
  for (const auto& item : destinations) {
    const std::string item_path = path + ".destinations[" + std::to_string(index++) + "]";
    auto id = text(item, item_path, "a destination id");
    if (!id) {
      continue;
    }
    if (std::find(out.destinations.begin(), out.destinations.end(), *id) !=
        out.destinations.end()) {
      error(item, item_path, "destination '" + *id + "' is listed twice");
      continue;
    }
    out.destinations.push_back(std::move(*id));
    out.destination_marks.push_back(markOf(item));
  }
}

void Reader::condition(const YAML::Node& node, const std::string& path, Condition& out) {
  out.key_path = path;
  out.mark = markOf(node);
  if (!node.IsMap()) {
    error(node, path,
          "expected a condition: {all: [...]}, {any: [...]}, {not: ...}, {trait: PATH, OP: "
          "VALUE}, {performed: {...}} or {not_performed: {...}}");
    return;
  }
  const std::size_t before = errors_;
  std::set<std::string> seen;
  std::vector<std::string> kinds;
  std::vector<std::pair<std::string, YAML::Node>> ops;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      error(kv.first, joinKey(path, key), "given twice");
    } else if (isConditionKey(key)) {
      kinds.push_back(key);
    } else if (parseOp(key)) {
      ops.emplace_back(key, kv.second);
    } else {
      error(kv.first, joinKey(path, key), unknownKey(key, allConditionWords()));
    }
  }
  if (kinds.size() > 1) {
    error(node, path,
          "one condition per mapping (found " + kinds[0] + " and " + kinds[1] +
              "): combine conditions with all: [...] or any: [...]");
    return;
  }
  if (kinds.empty()) {
    if (!ops.empty()) {
      error(node, path + ".trait", "a comparison needs `trait`: the path of the trait compared");
    } else if (errors_ == before) {
      error(node, path, "expected one of all, any, not, trait, performed, not_performed");
    }
    return;
  }
  const std::string& kind = kinds[0];
  if (kind != "trait") {
    for (const auto& [op, value] : ops) {
      error(node, joinKey(path, op), "`" + op + "` compares a trait: it goes with `trait:`");
    }
  }
  const YAML::Node value = config::childOf(node, kind);
  if (kind == "all" || kind == "any") {
    list(value, path, kind, out);
  } else if (kind == "not") {
    out.kind = Kind::Not;
    out.children.resize(1);
    condition(value, path + ".not", out.children[0]);
  } else if (kind == "trait") {
    compare(node, path, ops, errors_ != before, out);
  } else {
    performed(value, path + "." + kind, kind == "performed", out);
  }
}

void Reader::list(const YAML::Node& node, const std::string& path, const std::string& key,
                  Condition& out) {
  out.kind = key == "all" ? Kind::All : Kind::Any;
  const std::string list_path = path + "." + key;
  if (!node.IsSequence() || node.size() == 0) {
    error(node, list_path, "expected a non-empty list of conditions");
    return;
  }
  std::vector<YAML::Node> items;
  std::size_t index = 0;
  for (const auto& item : node) {
    items.push_back(item);
    out.children.emplace_back();
    condition(item, list_path + "[" + std::to_string(index++) + "]", out.children.back());
  }
  if (out.kind == Kind::All) {
    checkWaits(items, out);
  }
}

// Inside an `all`, each not_performed waits after the first performed sibling: it needs a wait,
// and one longer than the performed's window could never end while that event still counts.
void Reader::checkWaits(const std::vector<YAML::Node>& items, const Condition& all) {
  const Condition* anchor = nullptr;
  for (const auto& c : all.children) {
    if (c.kind == Kind::Performed) {
      anchor = &c;
      break;
    }
  }
  if (anchor == nullptr) {
    return;
  }
  for (std::size_t i = 0; i < all.children.size(); ++i) {
    const Condition& c = all.children[i];
    if (c.kind != Kind::NotPerformed) {
      continue;
    }
    const YAML::Node body = config::childOf(items[i], "not_performed");
    const YAML::Node within = config::childOf(body, "within");
    const std::string within_path = c.key_path + ".not_performed.within";
    if (c.within_ms == 0) {
      if (!given(within)) {  // a bad `within` was reported already
        error(body, within_path,
              "required here: next to a performed, a not_performed is the wait after that "
              "event (" +
                  anchor->key_path + "), e.g. within: 30m");
      }
    } else if (anchor->within_ms > 0 && c.within_ms > anchor->within_ms) {
      error(within, within_path,
            "waits " + formatDuration(c.within_ms) +
                " after the performed event, longer than "
                "its window (" +
                formatDuration(anchor->within_ms) + "): the audience could never hold");
    }
  }
}

// `misspelt`: an unknown key was reported in the mapping (likely the operator, mistyped).
void Reader::compare(const YAML::Node& node, const std::string& path,
                     const std::vector<std::pair<std::string, YAML::Node>>& ops, bool misspelt,
                     Condition& out) {
  out.kind = Kind::Compare;
  const YAML::Node trait = config::childOf(node, "trait");
  out.mark = markOf(trait);
  if (auto name = text(trait, path + ".trait", "a trait path such as plan or address.city")) {
    if (!validPath(*name)) {
      error(trait, path + ".trait",
            "'" + *name + "' is not a trait path (names joined by '.', e.g. address.city)");
    }
    out.trait = std::move(*name);
  }
  if (ops.empty()) {
    if (misspelt) {
      return;
    }
    error(node, path,
          "a comparison needs one of equals, not_equals, gt, gte, lt, lte, in, contains, exists");
    return;
  }
  if (ops.size() > 1) {
    error(node, path,
          "one comparison per condition (found " + ops[0].first + " and " + ops[1].first +
              "): combine them with all: [...]");
    return;
  }
  const auto& [op_name, value] = ops[0];
  const std::string op_path = joinKey(path, op_name);
  out.op = *parseOp(op_name);
  switch (out.op) {
    case Op::Equals:
    case Op::NotEquals:
    case Op::Contains:
      if (auto v = scalar(value, op_path)) {
        out.value = std::move(*v);
      }
      return;
    case Op::Gt:
    case Op::Gte:
    case Op::Lt:
    case Op::Lte:
      if (auto v = scalar(value, op_path)) {
        if (v->is_bool()) {
          error(value, op_path, "expected a number or a string to compare with");
        } else {
          out.value = std::move(*v);
        }
      }
      return;
    case Op::In: {
      if (!value.IsSequence() || value.size() == 0) {
        error(value, op_path, "expected a non-empty list of values");
        return;
      }
      json::array values;
      std::size_t index = 0;
      for (const auto& item : value) {
        if (auto v = scalar(item, op_path + "[" + std::to_string(index++) + "]")) {
          values.push_back(std::move(*v));
        }
      }
      out.value = std::move(values);
      return;
    }
    case Op::Exists: {
      const std::size_t before = errors_;
      auto v = typed(value, op_path);
      if (v && v->is_bool()) {
        out.value = std::move(*v);
      } else if (errors_ == before) {
        error(value, op_path, "expected true or false");
      }
      return;
    }
  }
}

void Reader::performed(const YAML::Node& node, const std::string& path, bool is_performed,
                       Condition& out) {
  out.kind = is_performed ? Kind::Performed : Kind::NotPerformed;
  static const std::vector<std::string> performed_keys{"event", "within", "count"};
  static const std::vector<std::string> not_performed_keys{"event", "within"};
  const auto& keys = is_performed ? performed_keys : not_performed_keys;
  if (!node.IsMap()) {
    error(node, path,
          is_performed ? "expected {event: NAME, within: DURATION, count: N}"
                       : "expected {event: NAME, within: DURATION}");
    return;
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      error(kv.first, joinKey(path, key), "given twice");
    } else if (!is_performed && key == "count") {
      error(kv.first, joinKey(path, key),
            "`count` applies to performed (not_performed: not even once)");
    } else if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      error(kv.first, joinKey(path, key), unknownKey(key, keys));
    }
  }
  const YAML::Node event = config::childOf(node, "event");
  out.mark = markOf(located(event) ? event : node);
  if (!given(event)) {
    error(located(event) ? event : node, path + ".event", "required: the name of the track event");
  } else if (auto name = text(event, path + ".event", "the name of a track event")) {
    out.event = std::move(*name);
  }
  const YAML::Node within = config::childOf(node, "within");
  if (given(within)) {
    const std::size_t before = errors_;
    std::optional<std::int64_t> ms;
    if (auto v = typed(within, path + ".within")) {
      if (v->is_int64()) {
        ms = v->as_int64();  // milliseconds, as everywhere in the configuration
      } else if (v->is_string()) {
        if (auto parsed = sdk::parseDuration(v->as_string())) {
          ms = *parsed;
        }
      }
    }
    if (ms && *ms > 0 && *ms <= kMaxWithinMs) {
      out.within_ms = *ms;
    } else if (errors_ == before) {
      error(within, path + ".within",
            "expected a duration such as 30m, 1h or 30d (at most 3650d; without `within`: all "
            "time)");
    }
  }
  const YAML::Node count = config::childOf(node, "count");
  if (is_performed && given(count)) {
    const std::size_t before = errors_;
    auto v = typed(count, path + ".count");
    if (v && v->is_int64() && v->as_int64() >= 1 &&
        v->as_int64() <= static_cast<std::int64_t>(kMaxHistoryEvents)) {
      out.count = v->as_int64();
    } else if (errors_ == before) {
      error(count, path + ".count", "expected how many times at least, 1 to 1000");
    }
  }
}

void collectReferences(const Condition& c, std::vector<AudienceReference>& out) {
  switch (c.kind) {
    case Kind::Compare:
      out.push_back({AudienceReference::Kind::Trait, c.trait, c.key_path + ".trait", c.mark});
      return;
    case Kind::Performed:
    case Kind::NotPerformed:
      out.push_back(
          {AudienceReference::Kind::Event, c.event,
           c.key_path + (c.kind == Kind::Performed ? ".performed" : ".not_performed") + ".event",
           c.mark});
      return;
    default:
      for (const auto& child : c.children) {
        collectReferences(child, out);
      }
  }
}

// --- windows ------------------------------------------------------------------------------------

std::int64_t addSat(std::int64_t a, std::int64_t b) {  // b >= 0
  return a > kNever - b ? kNever : a + b;
}

std::int64_t subSat(std::int64_t a, std::int64_t b) {  // b >= 0
  return a < kMin + b ? kMin : a - b;
}

// The earliest timestamp inside a window of `within_ms` (0: all time) at `t`.
std::int64_t windowStart(std::int64_t within_ms, std::int64_t t) {
  return within_ms == 0 ? kMin : subSat(t, within_ms);
}

// In an `all`, the performed the not_performed siblings wait after: the first performed child,
// when there is at least one not_performed child; else nullptr.
const Condition* anchorOf(const Condition& all) {
  const Condition* anchor = nullptr;
  bool waits = false;
  for (const auto& c : all.children) {
    if (c.kind == Kind::Performed && anchor == nullptr) {
      anchor = &c;
    }
    waits = waits || c.kind == Kind::NotPerformed;
  }
  return waits ? anchor : nullptr;
}

void need(std::map<std::string, std::int64_t, std::less<>>& retention, const std::string& event,
          std::int64_t within_ms) {
  const std::int64_t keep = within_ms == 0 ? kNever : within_ms;
  auto [it, inserted] = retention.emplace(event, keep);
  if (!inserted) {
    it->second = std::max(it->second, keep);
  }
}

void collectRetention(const Condition& c,
                      std::map<std::string, std::int64_t, std::less<>>& retention) {
  switch (c.kind) {
    case Kind::Performed:
    case Kind::NotPerformed:
      need(retention, c.event, c.within_ms);
      return;
    case Kind::Compare:
      return;
    case Kind::All: {
      const Condition* anchor = anchorOf(c);
      for (const auto& child : c.children) {
        if (anchor != nullptr && child.kind == Kind::NotPerformed) {
          // Its events matter from the oldest anchor that can still count on.
          need(retention, child.event, anchor->within_ms);
        } else {
          collectRetention(child, retention);
        }
      }
      return;
    }
    case Kind::Any:
    case Kind::Not:
      for (const auto& child : c.children) {
        collectRetention(child, retention);
      }
      return;
  }
}

// --- history ------------------------------------------------------------------------------------

std::int64_t int64At(const json::value& v) { return v.is_int64() ? v.as_int64() : 0; }

void pruneList(json::array& list, std::int64_t keep_ms, std::int64_t now_ms) {
  const std::int64_t since = keep_ms == kNever ? kMin : subSat(now_ms, keep_ms);
  while (!list.empty() && (list.size() > kMaxHistoryEvents || int64At(list.back()) < since)) {
    list.pop_back();
  }
}

// Drops names no audience tracks, lists that are not lists or are empty.
void dropUntracked(const AudienceSet& set, json::object& history) {
  std::vector<std::string> drop;
  for (const auto& [name, list] : history) {
    if (!set.tracks(name) || !list.is_array() || list.as_array().empty()) {
      drop.emplace_back(name);
    }
  }
  for (const auto& name : drop) {
    history.erase(name);
  }
}

// A history's lists, read once per call as ascending timestamps.
class Timelines {
 public:
  explicit Timelines(const json::object& history) : history_(history) {}

  // The reference stays valid for the object's life.
  const std::vector<std::int64_t>& of(const std::string& event) {
    if (auto it = cache_.find(event); it != cache_.end()) {
      return it->second;
    }
    std::vector<std::int64_t> times;
    if (const json::value* list = history_.if_contains(event); list && list->is_array()) {
      times.reserve(list->as_array().size());
      for (const auto& v : list->as_array()) {
        if (v.is_int64()) {
          times.push_back(v.as_int64());
        }
      }
    }
    std::sort(times.begin(), times.end());
    return cache_.emplace(event, std::move(times)).first->second;
  }

 private:
  const json::object& history_;
  std::map<std::string, std::vector<std::int64_t>, std::less<>> cache_;
};

std::size_t countIn(const std::vector<std::int64_t>& times, std::int64_t from, std::int64_t to) {
  if (to < from) {
    return 0;
  }
  auto lo = std::lower_bound(times.begin(), times.end(), from);
  auto hi = std::upper_bound(lo, times.end(), to);
  return static_cast<std::size_t>(hi - lo);
}

// --- comparisons --------------------------------------------------------------------------------

double asDouble(const json::value& v) {
  if (v.is_int64()) {
    return static_cast<double>(v.get_int64());
  }
  if (v.is_uint64()) {
    return static_cast<double>(v.get_uint64());
  }
  return v.get_double();
}

// -1, 0, 1 for two numbers, by value: integers exactly, else as doubles.
int compareNumbers(const json::value& a, const json::value& b) {
  auto sign = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (a.is_double() || b.is_double()) {
    return sign(asDouble(a), asDouble(b));
  }
  if (a.is_int64() && b.is_int64()) {
    return sign(a.get_int64(), b.get_int64());
  }
  if (a.is_uint64() && b.is_uint64()) {
    return sign(a.get_uint64(), b.get_uint64());
  }
  if (a.is_int64()) {  // b is a uint64 above INT64_MAX
    return a.get_int64() < 0 ? -1 : sign(static_cast<std::uint64_t>(a.get_int64()), b.get_uint64());
  }
  return b.get_int64() < 0 ? 1 : sign(a.get_uint64(), static_cast<std::uint64_t>(b.get_int64()));
}

bool sameValue(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) {
    return compareNumbers(a, b) == 0;
  }
  return a == b;
}

std::optional<int> order(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) {
    return compareNumbers(a, b);
  }
  if (a.is_string() && b.is_string()) {
    const int c = std::string_view(a.get_string()).compare(std::string_view(b.get_string()));
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return std::nullopt;
}

bool compare(const Condition& c, const json::object& traits) {
  const json::value* v = sdk::findPath(traits, c.trait);
  const bool missing = v == nullptr || v->is_null();
  if (c.op == Op::Exists) {
    return (c.value.is_bool() && c.value.get_bool()) != missing;
  }
  if (c.op == Op::NotEquals) {
    return missing || !sameValue(*v, c.value);
  }
  if (missing) {
    return false;
  }
  switch (c.op) {
    case Op::Equals:
      return sameValue(*v, c.value);
    case Op::Gt:
    case Op::Gte:
    case Op::Lt:
    case Op::Lte: {
      const auto o = order(*v, c.value);
      if (!o) {
        return false;
      }
      return c.op == Op::Gt    ? *o > 0
             : c.op == Op::Gte ? *o >= 0
             : c.op == Op::Lt  ? *o < 0
                               : *o <= 0;
    }
    case Op::In:
      return c.value.is_array() &&
             std::any_of(c.value.get_array().begin(), c.value.get_array().end(),
                         [&](const json::value& item) { return sameValue(*v, item); });
    case Op::Contains:
      if (v->is_string()) {
        return c.value.is_string() &&
               std::string_view(v->get_string()).find(std::string_view(c.value.get_string())) !=
                   std::string_view::npos;
      }
      if (v->is_array()) {
        return std::any_of(v->get_array().begin(), v->get_array().end(),
                           [&](const json::value& item) { return sameValue(item, c.value); });
      }
      return false;
    default:
      return false;
  }
}

// --- evaluation ---------------------------------------------------------------------------------

// The `all` rule: some event e of the anchor (within its window at t, and the count-th or a later
// one of those) such that no event of any wait lies in [e, e + wait] (the anchor itself aside
// when both name the same event) and t >= e + wait for every wait.
bool anchoredHolds(const Condition& anchor, const std::vector<const Condition*>& waits,
                   Timelines& timelines, std::int64_t t) {
  const auto& events = timelines.of(anchor.event);
  auto lo = std::lower_bound(events.begin(), events.end(), windowStart(anchor.within_ms, t));
  auto hi = std::upper_bound(lo, events.end(), t);
  if (hi - lo < anchor.count) {
    return false;
  }
  std::int64_t longest = 0;
  for (const auto* w : waits) {
    longest = std::max(longest, w->within_ms);
  }
  const std::int64_t latest = subSat(t, longest);  // e + every wait <= t
  for (auto e = lo + (anchor.count - 1); e != hi && *e <= latest; ++e) {
    bool clear = true;
    for (const auto* w : waits) {
      const std::size_t self = w->event == anchor.event ? 1 : 0;
      if (countIn(timelines.of(w->event), *e, addSat(*e, w->within_ms)) > self) {
        clear = false;
        break;
      }
    }
    if (clear) {
      return true;
    }
  }
  return false;
}

bool holds(const Condition& c, const json::object& traits, Timelines& timelines, std::int64_t t) {
  switch (c.kind) {
    case Kind::Compare:
      return compare(c, traits);
    case Kind::Performed:
      return countIn(timelines.of(c.event), windowStart(c.within_ms, t), t) >=
             static_cast<std::size_t>(c.count);
    case Kind::NotPerformed:
      return countIn(timelines.of(c.event), windowStart(c.within_ms, t), t) == 0;
    case Kind::Not:
      return !c.children.empty() && !holds(c.children[0], traits, timelines, t);
    case Kind::Any:
      return std::any_of(c.children.begin(), c.children.end(), [&](const Condition& child) {
        return holds(child, traits, timelines, t);
      });
    case Kind::All: {
      const Condition* anchor = anchorOf(c);
      std::vector<const Condition*> waits;
      for (const auto& child : c.children) {
        if (anchor != nullptr && (&child == anchor || child.kind == Kind::NotPerformed)) {
          if (child.kind == Kind::NotPerformed) {
            waits.push_back(&child);
          }
          continue;
        }
        if (!holds(child, traits, timelines, t)) {
          return false;
        }
      }
      return anchor == nullptr || anchoredHolds(*anchor, waits, timelines, t);
    }
  }
  return false;
}

// Every time at which a leaf's answer can change (some may be in the past): an event entering a
// window (its timestamp), leaving it (its timestamp + within + 1), a wait ending (the anchor's
// timestamp + wait). Between two of them every answer stays the same.
void collectTimes(const Condition& c, Timelines& timelines, std::vector<std::int64_t>& out) {
  auto window = [&](const std::string& event, std::int64_t within_ms) {
    for (const std::int64_t ts : timelines.of(event)) {
      out.push_back(ts);
      if (within_ms > 0) {
        out.push_back(addSat(ts, within_ms + 1));
      }
    }
  };
  switch (c.kind) {
    case Kind::Compare:
      return;
    case Kind::Performed:
    case Kind::NotPerformed:
      window(c.event, c.within_ms);
      return;
    case Kind::All: {
      const Condition* anchor = anchorOf(c);
      if (anchor != nullptr) {
        window(anchor->event, anchor->within_ms);
        for (const std::int64_t ts : timelines.of(anchor->event)) {
          for (const auto& w : c.children) {
            if (w.kind == Kind::NotPerformed) {
              out.push_back(addSat(ts, w.within_ms));
            }
          }
        }
      }
      for (const auto& child : c.children) {
        if (anchor == nullptr || (&child != anchor && child.kind != Kind::NotPerformed)) {
          collectTimes(child, timelines, out);
        }
      }
      return;
    }
    case Kind::Any:
    case Kind::Not:
      for (const auto& child : c.children) {
        collectTimes(child, timelines, out);
      }
      return;
  }
}

}  // namespace

// --- definitions --------------------------------------------------------------------------------

std::vector<Audience> readAudiences(config::YamlChecker& checker, const YAML::Node& audiences) {
  std::vector<Audience> out;
  if (!audiences.IsDefined() || audiences.IsNull()) {
    return out;
  }
  Reader reader(checker);
  if (!audiences.IsMap()) {
    reader.error(audiences, "audiences",
                 "expected a mapping of audience names to {where: CONDITION, destinations: "
                 "[ids]}");
    return out;
  }
  std::set<std::string> names;
  for (const auto& kv : audiences) {
    const std::string name = kv.first.Scalar();
    const std::string path = "audiences." + name;
    const std::size_t before = reader.errors();
    if (!names.insert(name).second) {
      reader.error(kv.first, path, "audience '" + name + "' is defined twice");
      continue;
    }
    if (!validName(name)) {
      reader.error(kv.first, path,
                   "'" + name +
                       "' is not a valid audience name (lower-case letters, digits, "
                       "'_', '-' and inner spaces, at most 100)");
    }
    Audience audience;
    audience.name = name;
    audience.key_path = path;
    audience.mark = markOf(kv.first);
    reader.audience(kv.second, path, audience);
    if (reader.errors() == before) {
      out.push_back(std::move(audience));
    }
  }
  return out;
}

sdk::Result<std::vector<Audience>> parseAudiences(const YAML::Node& audiences,
                                                  const std::string& file,
                                                  config::ConfigErrors& errors) {
  const std::size_t before = errors.size();
  config::YamlChecker checker(file, config::processEnvironment(), errors);
  std::vector<Audience> out = readAudiences(checker, audiences);
  if (errors.size() == before) {
    return out;
  }
  config::sortErrors(errors, before);
  const config::ConfigErrors found(errors.begin() + static_cast<std::ptrdiff_t>(before),
                                   errors.end());
  return sdk::makeError(sdk::ErrorCode::InvalidArgument, config::formatErrors(found));
}

std::vector<AudienceReference> references(const Audience& audience) {
  std::vector<AudienceReference> out;
  collectReferences(audience.where, out);
  return out;
}

KnownNames knownNamesFromCatalog(const json::object& catalog) {
  KnownNames known;
  const json::value* sources = catalog.if_contains("sources");
  if (sources == nullptr || !sources->is_object()) {
    return known;
  }
  auto string_at = [](const json::object& o, std::string_view key) -> std::string_view {
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
  };
  for (const auto& [source, body] : sources->get_object()) {
    const json::value* events =
        body.is_object() ? body.get_object().if_contains("events") : nullptr;
    if (events == nullptr || !events->is_array()) {
      continue;
    }
    for (const auto& e : events->get_array()) {
      if (!e.is_object()) {
        continue;
      }
      const auto& entry = e.get_object();
      const std::string_view type = string_at(entry, "type");
      if (type == "track" && !string_at(entry, "name").empty()) {
        known.events.emplace(string_at(entry, "name"));
      }
      const json::value* keys = entry.if_contains("keys");
      if (type != "identify" || keys == nullptr || !keys->is_array()) {
        continue;
      }
      for (const auto& k : keys->get_array()) {
        if (k.is_object() && string_at(k.get_object(), "in") == "traits" &&
            !string_at(k.get_object(), "key").empty()) {
          known.traits.emplace(string_at(k.get_object(), "key"));
        }
      }
    }
  }
  return known;
}

config::ConfigErrors unknownNameWarnings(const std::vector<Audience>& audiences,
                                         const std::string& file, const KnownNames& known) {
  config::ConfigErrors out;
  const std::vector<std::string> events(known.events.begin(), known.events.end());
  const std::vector<std::string> traits(known.traits.begin(), known.traits.end());
  for (const auto& audience : audiences) {
    for (const auto& ref : references(audience)) {
      const bool is_event = ref.kind == AudienceReference::Kind::Event;
      const std::string name = is_event ? ref.name : ref.name.substr(0, ref.name.find('.'));
      const auto& set = is_event ? known.events : known.traits;
      if (set.empty() || set.contains(name)) {
        continue;
      }
      const std::string hint = config::closestMatch(name, is_event ? events : traits);
      out.push_back(config::ConfigError{
          file, ref.mark.line, ref.mark.column, ref.key_path,
          std::string("the event catalog has no ") + (is_event ? "track event '" : "trait '") +
              name + "'" + (hint.empty() ? "" : "; did you mean '" + hint + "'?")});
    }
  }
  config::sortErrors(out);
  return out;
}

AudienceSet::AudienceSet(std::vector<Audience> audiences) : audiences_(std::move(audiences)) {
  for (const auto& audience : audiences_) {
    collectRetention(audience.where, retention_);
  }
}

const Audience* AudienceSet::find(std::string_view name) const {
  for (const auto& audience : audiences_) {
    if (audience.name == name) {
      return &audience;
    }
  }
  return nullptr;
}

// --- history ------------------------------------------------------------------------------------

void pruneHistory(const AudienceSet& set, json::object& history, std::int64_t now_ms) {
  for (auto& [name, list] : history) {
    if (list.is_array()) {
      const auto keep = set.retention().find(std::string_view(name));
      if (keep != set.retention().end()) {
        pruneList(list.as_array(), keep->second, now_ms);
      }
    }
  }
  dropUntracked(set, history);
}

void foldEvent(const AudienceSet& set, json::object& history, const sdk::Event& event,
               std::int64_t now_ms) {
  if (event.type() == sdk::EventType::Track && set.tracks(event.name())) {
    json::value& slot = history[event.name()];
    if (!slot.is_array()) {
      slot = json::array{};
    }
    json::array& list = slot.as_array();
    const std::int64_t ts = event.header().timestamp_ms;
    // Newest first; a late event goes after every newer or equal one.
    auto pos = std::find_if(list.begin(), list.end(),
                            [&](const json::value& v) { return int64At(v) < ts; });
    list.insert(pos, ts);
  }
  pruneHistory(set, history, now_ms);
}

void mergeHistory(const AudienceSet& set, json::object& into, const json::object& from) {
  for (const auto& [name, other] : from) {
    if (!set.tracks(name) || !other.is_array()) {
      continue;
    }
    std::vector<std::int64_t> times;
    if (const json::value* mine = into.if_contains(name); mine && mine->is_array()) {
      for (const auto& v : mine->as_array()) {
        if (v.is_int64()) {
          times.push_back(v.as_int64());
        }
      }
    }
    for (const auto& v : other.as_array()) {
      if (v.is_int64()) {
        times.push_back(v.as_int64());
      }
    }
    std::sort(times.begin(), times.end(), std::greater<>());
    if (times.size() > kMaxHistoryEvents) {
      times.resize(kMaxHistoryEvents);
    }
    json::array list;
    list.reserve(times.size());
    for (const std::int64_t ts : times) {
      list.push_back(ts);
    }
    into[name] = std::move(list);
  }
  for (auto& [name, list] : into) {
    if (list.is_array() && list.as_array().size() > kMaxHistoryEvents) {
      list.as_array().resize(kMaxHistoryEvents);
    }
  }
  dropUntracked(set, into);
}

// --- evaluation ---------------------------------------------------------------------------------

bool isMember(const Audience& audience, const json::object& traits, const json::object& history,
              std::int64_t now_ms) {
  Timelines timelines(history);
  return holds(audience.where, traits, timelines, now_ms);
}

std::int64_t changesAt(const Audience& audience, const json::object& traits,
                       const json::object& history, std::int64_t now_ms) {
  Timelines timelines(history);
  std::vector<std::int64_t> times;
  collectTimes(audience.where, timelines, times);
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  const bool now = holds(audience.where, traits, timelines, now_ms);
  for (auto it = std::upper_bound(times.begin(), times.end(), now_ms); it != times.end(); ++it) {
    if (*it == kNever) {
      break;
    }
    if (holds(audience.where, traits, timelines, *it) != now) {
      return *it;
    }
  }
  return kNever;
}

}  // namespace junction::core::audiences
