#include "core/daemon/plugin_docs.h"

#include <boost/json.hpp>
#include <algorithm>

namespace junction::core::daemon {

namespace json = boost::json;

namespace {

std::string defaultText(const sdk::OptionSpec& spec) {
  if (!spec.default_value) {
    return "";
  }
  const auto& v = *spec.default_value;
  if (v.is_string()) {
    return v.as_string().empty() ? "\"\"" : std::string(v.as_string());
  }
  return json::serialize(v);
}

// "Size, default 64MiB, range 0..1024" and the like.
std::string attributesText(const sdk::OptionSpec& spec) {
  std::string line = sdk::toString(spec.type);
  if (spec.required) {
    line += ", required";
  }
  if (spec.secret) {
    line += ", secret";
  }
  if (auto def = defaultText(spec); !def.empty()) {
    line += ", default " + def;
  }
  if (spec.min || spec.max) {
    auto num = [](double v) {
      return v == static_cast<double>(static_cast<long long>(v)) ? std::to_string(static_cast<long long>(v))
                                                                : std::to_string(v);
    };
    line += ", range " + (spec.min ? num(*spec.min) : "") + ".." + (spec.max ? num(*spec.max) : "");
    if (spec.type == sdk::OptionType::Duration) {
      line += " ms";
    } else if (spec.type == sdk::OptionType::Size) {
      line += " bytes";
    }
  }
  if (!spec.one_of.empty()) {
    line += ", one of:";
    for (const auto& v : spec.one_of) {
      line += " " + v;
    }
  }
  return line;
}

// One Markdown table of options.
std::string optionsMarkdown(const std::vector<sdk::OptionSpec>& specs) {
  if (specs.empty()) {
    return "No options.\n";
  }
  auto cell = [](std::string text) {
    std::string out;
    for (char c : text) {
      out += c == '|' ? std::string("\\|") : std::string(1, c);
    }
    return out;
  };
  std::string out = "| key | kind | what it does |\n|---|---|---|\n";
  for (const auto& spec : specs) {
    out += "| `" + spec.key + "` | " + cell(attributesText(spec)) + " | " + cell(spec.doc) + " |\n";
  }
  return out;
}

json::object descriptorJson(const plugin::LoadedPlugin& p) {
  const auto& d = p.descriptor();
  json::object out;
  out["name"] = d.name;
  out["kind"] = sdk::toString(d.kind);
  out["version"] = d.version;
  out["summary"] = d.summary;
  out["sdk_version"] = p.sdkVersion();
  out["file"] = p.file().string();
  return out;
}

}  // namespace

// The descriptor with its option table and delivery defaults (defined below).
static json::object docObject(const plugin::LoadedPlugin& p);

std::string pluginListText(const plugin::PluginRegistry& registry) {
  std::string out;
  std::size_t width = 4;
  for (const auto& p : registry.all()) {
    width = std::max(width, p->descriptor().name.size());
  }
  for (const auto& p : registry.all()) {
    const auto& d = p->descriptor();
    std::string name = d.name;
    name.resize(width + 2, ' ');
    std::string kind = sdk::toString(d.kind);
    kind.resize(13, ' ');
    std::string version = d.version;
    version.resize(9, ' ');
    out += name + kind + version + d.summary + "\n";
  }
  if (out.empty()) {
    out = "no plugins found\n";
  }
  return out;
}

std::string pluginListJson(const plugin::PluginRegistry& registry) {
  json::array list;
  for (const auto& p : registry.all()) {
    list.push_back(descriptorJson(*p));
  }
  return json::serialize(list) + "\n";
}

std::string pluginDocText(const plugin::LoadedPlugin& p) {
  const auto& d = p.descriptor();
  std::string out = d.name + " " + d.version + " (" + sdk::toString(d.kind) + ") - " + d.summary +
                    "\n" + "  file: " + p.file().string() + " (SDK " + p.sdkVersion() + ")\n\n";
  if (d.kind == sdk::PluginKind::Destination) {
    const auto& h = d.delivery;
    std::string hints;
    auto add = [&hints](const std::string& item) { hints += (hints.empty() ? "" : ", ") + item; };
    if (h.max_events > 0) {
      add("batch.max_events " + std::to_string(h.max_events));
    }
    if (h.max_bytes > 0) {
      add("batch.max_bytes " + std::to_string(h.max_bytes));
    }
    if (h.max_wait) {
      add("batch.max_wait " + std::to_string(h.max_wait->count()) + "ms");
    }
    if (h.concurrency > 0) {
      add("concurrency " + std::to_string(h.concurrency));
    }
    if (h.ordering) {
      add(std::string("ordering ") + sdk::toString(*h.ordering));
    }
    if (!hints.empty()) {
      out += "Delivery defaults (where the destination block does not set them): " + hints + "\n\n";
    }
  }
  if (d.options.empty()) {
    return out + "No options.\n";
  }
  out += "Options:\n";
  for (const auto& spec : d.options) {
    out += "  " + spec.key + "  (" + attributesText(spec) + ")\n      " + spec.doc + "\n";
  }
  return out;
}

std::string pluginDocsText(const std::vector<std::shared_ptr<plugin::LoadedPlugin>>& plugins) {
  std::string out;
  for (const auto& p : plugins) {
    out += (out.empty() ? "" : "\n") + pluginDocText(*p);
  }
  return out;
}

std::string pluginDocsJson(const std::vector<std::shared_ptr<plugin::LoadedPlugin>>& plugins) {
  if (plugins.size() == 1) {
    return pluginDocJson(*plugins.front());
  }
  json::array list;
  for (const auto& p : plugins) {
    list.push_back(docObject(*p));
  }
  return json::serialize(list) + "\n";
}

std::string pluginDocJson(const plugin::LoadedPlugin& p) {
  return json::serialize(docObject(p)) + "\n";
}

json::object docObject(const plugin::LoadedPlugin& p) {
  json::object out = descriptorJson(p);
  json::array options;
  for (const auto& spec : p.descriptor().options) {
    json::object o;
    o["key"] = spec.key;
    o["type"] = sdk::toString(spec.type);
    o["required"] = spec.required;
    o["secret"] = spec.secret;
    o["doc"] = spec.doc;
    if (spec.default_value) {
      o["default"] = *spec.default_value;
    }
    if (spec.min) {
      o["min"] = *spec.min;
    }
    if (spec.max) {
      o["max"] = *spec.max;
    }
    if (!spec.one_of.empty()) {
      json::array values;
      for (const auto& v : spec.one_of) {
        values.push_back(json::string(v));
      }
      o["one_of"] = std::move(values);
    }
    options.push_back(std::move(o));
  }
  out["options"] = std::move(options);
  if (const auto& h = p.descriptor().delivery; p.descriptor().kind == sdk::PluginKind::Destination) {
    json::object delivery;
    if (h.max_events > 0) {
      delivery["max_events"] = h.max_events;
    }
    if (h.max_bytes > 0) {
      delivery["max_bytes"] = h.max_bytes;
    }
    if (h.max_wait) {
      delivery["max_wait_ms"] = h.max_wait->count();
    }
    if (h.concurrency > 0) {
      delivery["concurrency"] = h.concurrency;
    }
    if (h.ordering) {
      delivery["ordering"] = sdk::toString(*h.ordering);
    }
    out["delivery_defaults"] = std::move(delivery);
  }
  return out;
}

namespace {

// Top-level `audiences:` is a grammar, not an option table (core/audiences/README.md has every
// rule): the reference says it in prose.
constexpr const char* kAudiencesReference = R"(
### `audiences`

Named audiences: conditions over a person's traits, computed traits (`profiles.computed`) and
events within time windows, evaluated on each profile, and the destinations each one is synced
to. Needs profiles (`profiles.enabled`). The full grammar is in core/audiences/README.md.

```yaml
audiences:
  abandoned_cart:                      # lower-case letters, digits, '_', '-', inner spaces
    where:
      all:
        - performed: {event: Product Added, within: 1h}
        - not_performed: {event: Order Completed, within: 30m}   # in the 30 min after that add
        - {trait: email, exists: true}
    destinations: [braze]
  lapsed_pro:
    where:
      all:
        - {trait: plan, in: [pro, business]}
        - not_performed: {event: Login, within: 30d}             # alone: the last 30 days
        - not: {trait: address.country, equals: FR}
```

| condition | holds when |
|---|---|
| `all: [C, ...]` | every C holds |
| `any: [C, ...]` | at least one C holds |
| `not: C` | C does not |
| `{trait: PATH, OP: VALUE}` | the trait at PATH (dotted: `address.city`; a computed trait by its name) compares so; OP is `equals`, `not_equals`, `gt`, `gte`, `lt`, `lte`, `in` (a list), `contains`, `exists` (true/false) |
| `performed: {event: NAME, within: D, count: N}` | at least N (default 1, at most 1000) track events NAME in the last D (no `within`: all time) |
| `not_performed: {event: NAME, within: D}` | no track event NAME in the window (below) |

`D` is a duration (`90s`, `30m`, `1h`, `30d`), at most 3650d. An event at `ts` is within D at
`now` when `now - D <= ts <= now`. The window of a `not_performed`: inside an `all:` that has a
`performed`, it runs from the (first) performed's event, for D after it (a wait: the person
enters once D has passed without the event; D is required, at most the performed's window);
alone, or nested deeper (in an `any:` or `not:`), it runs back from now.
A missing or null trait makes every comparison false except `exists: false` and `not_equals`.

`destinations`: ids of configured destinations (a source id, or an unknown one, is an error).
Each event and trait name the event catalog (<storage.path>/catalog.json) has not seen is a
warning of `junctiond --check` and `junction check`, not an error.

When a person enters or leaves an audience, the built-in source `audiences` emits a track event
"Audience Entered" or "Audience Exited" with `properties.audience` and `properties.audience_key`
(the audience's name). It goes to:

- a destination whose `from` names `audiences`: every audience's events;
- any other destination: the events of the audiences whose `destinations` list it, with or
  without `from`; none otherwise (filtered by source, as those of the built-in `profiles`);
- a scheduled destination (`sync.mode: scheduled`): none; its scheduled identify snapshots
  carry the membership of the audiences listing it in `context.junction.audiences`
  (`{name: true|false}`).

The destination's filters and consent then apply as to any event. No configured source may
have the id `audiences`.
)";

}  // namespace

std::string configReferenceMarkdown(const plugin::PluginRegistry& registry) {
  std::string out =
      "# Configuration reference\n\n"
      "Every key of `junction.yaml` (config/junction.yaml is a commented example), generated from\n"
      "the daemon's option tables and the plugins' descriptors by `junction reference`; a test\n"
      "keeps this file current. Sizes take `KiB`, `MiB`, `GiB`; durations `ms`, `s`, `m`, `h`, `d`.\n"
      "Any value may be `${VAR}` or `${VAR:-default}` from the environment. Secret options are\n"
      "never printed, logged or put in errors.\n\n## The daemon\n";
  for (const auto& section : config::configSections()) {
    out += "\n### `" + section.path + "`\n\n" + section.doc + "\n\n" + optionsMarkdown(section.specs);
  }
  out += kAudiencesReference;
  out += "\n## Plugins\n\nThe options under a connector's `config:`, by plugin (`junction plugins NAME`\n"
         "prints the same with the file each was loaded from).\n";
  for (const auto& p : registry.all()) {
    const auto& d = p->descriptor();
    out += "\n### " + d.name + " (" + sdk::toString(d.kind) + ")\n\n" + d.summary + "\n\n" +
           optionsMarkdown(d.options);
  }
  return out;
}

}  // namespace junction::core::daemon
