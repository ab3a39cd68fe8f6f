#include "junction/sdk/source.h"

#include <algorithm>
#include <boost/json.hpp>
#include <string>

namespace junction::sdk {

HttpResponse refusedEmitResponse(const EmitResult& result) {
  const ErrorCode code = result.status.ok() ? ErrorCode::Internal : result.status.error().code;
  const bool retry = code == ErrorCode::ResourceExhausted || code == ErrorCode::Unavailable;
  HttpResponse r = HttpResponse::json(
      retry ? 503 : 500, boost::json::serialize(boost::json::object{
                             {"success", false}, {"error", result.status.message()}}));
  if (retry) {
    const auto seconds = std::max<std::int64_t>(1, (result.retry_after.count() + 999) / 1000);
    r.headers.set("Retry-After", std::to_string(seconds));
  }
  return r;
}

}  // namespace junction::sdk
