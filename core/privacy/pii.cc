#include "core/privacy/pii.h"

#include <boost/json.hpp>
#include <cmath>

#include "core/privacy/privacy_store.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/json.h"

namespace junction::core::privacy {

namespace json = boost::json;

std::string hashPii(std::string_view value) { return sdk::sha256Hex(normalizeEmail(value)); }

namespace {

void nullNonFinite(json::value& v) {
  if (v.is_double() && !std::isfinite(v.get_double())) {
    v = nullptr;
  } else if (auto* o = v.if_object()) {
    for (auto& member : *o) {
      nullNonFinite(member.value());
    }
  } else if (auto* a = v.if_array()) {
    for (auto& element : *a) {
      nullNonFinite(element);
    }
  }
}

}  // namespace

sdk::Event PiiTransform::apply(const sdk::Event& event) const {
  if (empty()) {
    return event;
  }
  json::value body(event.body());
  bool changed = false;
  for (const auto& path : drop_) {
    changed = sdk::erasePath(body, path) || changed;
  }
  for (const auto& path : hash_) {
    json::value* v = sdk::findPath(body, path);
    if (v == nullptr || v->is_null()) {
      continue;
    }
    if (v->is_string()) {
      *v = hashPii(v->as_string());
    } else {
      sdk::erasePath(body, path);
    }
    changed = true;
  }
  if (!changed) {
    return event;
  }
  auto text = sdk::serialize(body);
  if (!text) {
    // A number out of a double's range in the event's text (ingest refuses those; an event
    // queued before it did): written as null, so the text stays JSON and the hashed and dropped
    // fields still never go out in clear.
    nullNonFinite(body);
    text = sdk::serialize(body);
  }
  return sdk::Event(event.header(), std::move(text).value());
}

}  // namespace junction::core::privacy
