#pragma once

// A tracking plan: the track events a source expects, each with a JSON Schema of its
// `properties`, and what to do with events outside the plan. Compiled once from config
// (valijson); `check` is const and thread-safe.
//
//   tracking_plan:
//     events:
//       "Order Completed": {type: object, required: [revenue], properties: {revenue: {type: number}}}
//     unplanned: drop          # allow (default) | drop
//     violations: flag         # allow | flag (default: adds context.violations) | drop

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <map>
#include <memory>
#include <string>

#include "junction/sdk/result.h"

namespace valijson {
class Schema;
}

namespace junction::plugins::http {

class TrackingPlan {
 public:
  enum class UnplannedAction { Allow, Drop };
  enum class ViolationAction { Allow, Flag, Drop };

  struct Verdict {
    enum class Kind { Pass, Unplanned, Violation } kind = Kind::Pass;
    bool drop = false;
    bool flag = false;            // add `violations` to context.violations
    boost::json::array violations;  // [{"path": "/revenue", "message": "..."}], at most kMaxViolations
  };
  static constexpr std::size_t kMaxViolations = 20;

  // InvalidArgument naming the problem (unknown key, bad action, a schema valijson refuses).
  static sdk::Result<std::shared_ptr<const TrackingPlan>> compile(const boost::json::object& config);

  ~TrackingPlan();
  TrackingPlan(const TrackingPlan&) = delete;
  TrackingPlan& operator=(const TrackingPlan&) = delete;

  // Applies to track events (others pass): looks up `event`, validates `properties`.
  Verdict check(const boost::json::object& event) const;

  std::size_t size() const noexcept { return schemas_.size(); }

 private:
  TrackingPlan() = default;

  std::map<std::string, std::unique_ptr<valijson::Schema>, std::less<>> schemas_;
  UnplannedAction unplanned_ = UnplannedAction::Allow;
  ViolationAction violations_ = ViolationAction::Flag;
};

}  // namespace junction::plugins::http
