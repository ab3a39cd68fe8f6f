#include "core/privacy/pii.h"

#include <boost/json.hpp>

#include "core/privacy/privacy_store.h"
#include "junction/sdk/crypto.h"
#include "junction/sdk/json.h"

namespace junction::core::privacy {

namespace json = boost::json;

std::string hashPii(std::string_view value) { return sdk::sha256Hex(normalizeEmail(value)); }

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
  return sdk::Event(event.header(), json::serialize(body));
}

}  // namespace junction::core::privacy
