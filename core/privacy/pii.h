#pragma once

// Per-destination PII controls, applied by the delivery worker to the event JSON before the
// plugin gets it: `drop: [context.ip, ...]` removes the fields, `hash: [traits.email, ...]`
// replaces string values by the lower-case hex SHA-256 of the trimmed, lower-cased value (the
// form ad platforms match on). Non-string values at a hashed path are dropped rather than sent
// in clear. Only the JSON body changes: the parsed header (userId, anonymousId used for routing
// and ordering) does not, so hashing `userId` hashes what the vendor sees, not the person key.
//
// Immutable after construction; thread-safe.

#include <string>
#include <vector>

#include "junction/sdk/event.h"

namespace junction::core::privacy {

class PiiTransform {
 public:
  PiiTransform() = default;
  PiiTransform(std::vector<std::string> hash, std::vector<std::string> drop)
      : hash_(std::move(hash)), drop_(std::move(drop)) {}

  bool empty() const noexcept { return hash_.empty() && drop_.empty(); }

  // The event with the configured fields hashed and dropped (a copy of `event` when nothing
  // applies). Its text is always JSON: a number out of a double's range (which ingest refuses;
  // only an event queued before it did can hold one) becomes null when the body is rewritten.
  sdk::Event apply(const sdk::Event& event) const;

 private:
  std::vector<std::string> hash_;
  std::vector<std::string> drop_;
};

// SHA-256 hex of the trimmed, lower-cased text.
std::string hashPii(std::string_view value);

}  // namespace junction::core::privacy
