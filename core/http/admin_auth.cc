#include "core/http/admin_auth.h"

#include <boost/json.hpp>
#include <charconv>

#include "junction/sdk/crypto.h"

namespace junction::core::http {

namespace json = boost::json;

std::optional<std::int64_t> parseWholeNumber(std::string_view text) noexcept {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return v;
}

sdk::HttpResponse jsonError(int status, std::string_view message) {
  return sdk::HttpResponse::json(
      status, json::serialize(json::object{{"success", false}, {"error", message}}));
}

std::optional<sdk::HttpResponse> checkAdmin(const sdk::HttpRequest& request,
                                            std::string_view admin_token) {
  if (admin_token.empty()) {
    return jsonError(403, "the admin API is disabled (server.admin_token is empty)");
  }
  std::string_view auth = request.headers.get("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() <= kBearer.size() || auth.substr(0, kBearer.size()) != kBearer ||
      !sdk::constantTimeEquals(auth.substr(kBearer.size()), admin_token)) {
    auto r = jsonError(401, "missing or wrong admin token");
    r.headers.set("WWW-Authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

}  // namespace junction::core::http
