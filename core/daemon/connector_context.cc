#include "core/daemon/connector_context.h"

namespace junction::core::daemon {

void SourceConnectorContext::emit(std::vector<sdk::Event> events,
                                  sdk::EmitCallback done) noexcept {
  try {
    ingest_.emit(id(), std::move(events), std::move(done));
  } catch (const std::exception& e) {
    log().error("emit failed", {{"error", e.what()}});
    done(sdk::EmitResult{sdk::makeError(sdk::ErrorCode::Internal, e.what()), {}, 0, 0});
  }
}

sdk::Status SourceConnectorContext::addRoute(std::string method, std::string path,
                                             sdk::HttpHandler handler,
                                             sdk::RouteOptions options) noexcept {
  if (!starting_) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                          "routes can only be added during start()");
  }
  try {
    return router_.add(std::move(method), std::move(path), std::move(handler), options,
                       "source." + id());
  } catch (const std::exception& e) {
    return sdk::makeError(sdk::ErrorCode::Internal, e.what());
  }
}

}  // namespace junction::core::daemon
