#include "tracking_plan.h"

#include <boost/json.hpp>
#include <exception>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace junction::plugins::http {

namespace json = boost::json;

namespace {

sdk::Error planError(std::string message) {
  return sdk::makeError(sdk::ErrorCode::InvalidArgument, std::move(message));
}

std::string joinPath(const std::vector<std::string>& context) {
  // valijson's context is ["<root>", "[revenue]", "[0]"...]; make it a JSON-pointer-like path.
  std::string path;
  for (const auto& part : context) {
    if (part == "<root>") {
      continue;
    }
    std::string_view p = part;
    if (p.size() >= 2 && p.front() == '[' && p.back() == ']') {
      p = p.substr(1, p.size() - 2);
    }
    if (p.size() >= 2 && p.front() == '"' && p.back() == '"') {
      p = p.substr(1, p.size() - 2);
    }
    path += '/';
    path += p;
  }
  return path.empty() ? "/" : path;
}

}  // namespace

TrackingPlan::~TrackingPlan() = default;

sdk::Result<std::shared_ptr<const TrackingPlan>> TrackingPlan::compile(const json::object& config) {
  std::shared_ptr<TrackingPlan> plan(new TrackingPlan());
  for (const auto& [key, value] : config) {
    if (key == "events") {
      if (!value.is_object()) {
        return planError("events: expected a mapping of event names to JSON Schemas");
      }
      for (const auto& [name, schema_json] : value.as_object()) {
        if (!schema_json.is_object() && !schema_json.is_bool()) {
          return planError("events.\"" + std::string(name) + "\": a JSON Schema must be a mapping");
        }
        auto schema = std::make_unique<valijson::Schema>();
        try {
          valijson::SchemaParser parser;
          valijson::adapters::BoostJsonAdapter adapter(schema_json);
          parser.populateSchema(adapter, *schema);
        } catch (const std::exception& e) {
          return planError("events.\"" + std::string(name) + "\": invalid JSON Schema: " + e.what());
        }
        plan->schemas_.emplace(std::string(name), std::move(schema));
      }
    } else if (key == "unplanned") {
      const auto* s = value.if_string();
      if (s != nullptr && *s == "allow") {
        plan->unplanned_ = UnplannedAction::Allow;
      } else if (s != nullptr && *s == "drop") {
        plan->unplanned_ = UnplannedAction::Drop;
      } else {
        return planError("unplanned: expected allow or drop");
      }
    } else if (key == "violations") {
      const auto* s = value.if_string();
      if (s != nullptr && *s == "allow") {
        plan->violations_ = ViolationAction::Allow;
      } else if (s != nullptr && *s == "flag") {
        plan->violations_ = ViolationAction::Flag;
      } else if (s != nullptr && *s == "drop") {
        plan->violations_ = ViolationAction::Drop;
      } else {
        return planError("violations: expected allow, flag or drop");
      }
    } else {
      return planError("unknown key '" + std::string(key) +
                       "' (expected events, unplanned, violations)");
    }
  }
  return std::shared_ptr<const TrackingPlan>(std::move(plan));
}

TrackingPlan::Verdict TrackingPlan::check(const json::object& event) const {
  Verdict verdict;
  const json::value* type = event.if_contains("type");
  if (type == nullptr || !type->is_string() || type->as_string() != "track") {
    return verdict;
  }
  const json::value* name = event.if_contains("event");
  const json::string* name_str = name != nullptr ? name->if_string() : nullptr;
  auto it = name_str != nullptr ? schemas_.find(std::string_view(*name_str)) : schemas_.end();
  if (it == schemas_.end()) {
    verdict.kind = Verdict::Kind::Unplanned;
    verdict.drop = unplanned_ == UnplannedAction::Drop;
    return verdict;
  }
  static const json::value kEmpty = json::object();
  const json::value* properties = event.if_contains("properties");
  valijson::adapters::BoostJsonAdapter target(properties != nullptr ? *properties : kEmpty);
  valijson::ValidationResults results;
  valijson::Validator validator;
  bool valid = false;
  try {
    valid = validator.validate(*it->second, target, &results);
  } catch (const std::exception& e) {
    valid = false;
    verdict.violations.push_back(json::object{{"path", "/"}, {"message", e.what()}});
  }
  if (valid) {
    return verdict;
  }
  verdict.kind = Verdict::Kind::Violation;
  valijson::ValidationResults::Error error;
  while (results.popError(error) && verdict.violations.size() < kMaxViolations) {
    verdict.violations.push_back(
        json::object{{"path", joinPath(error.context)}, {"message", error.description}});
  }
  verdict.drop = violations_ == ViolationAction::Drop;
  verdict.flag = violations_ == ViolationAction::Flag;
  return verdict;
}

}  // namespace junction::plugins::http
