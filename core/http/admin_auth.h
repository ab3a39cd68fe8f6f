#pragma once

// The admin check every admin route shares (dead-letter API, regulations, profiles):
// `Authorization: Bearer <server.admin_token>`, compared in constant time. An empty token
// disables the admin API. Pure; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "junction/sdk/http_server.h"

namespace junction::core::http {

// A whole decimal number and nothing around it (a query parameter such as `limit=20`).
std::optional<std::int64_t> parseWholeNumber(std::string_view text) noexcept;

// `{"success":false,"error":message}` with `status`.
sdk::HttpResponse jsonError(int status, std::string_view message);

// nullopt when `request` carries the admin token; otherwise the response to send (403 when the
// admin API is disabled, 401 with WWW-Authenticate for a missing or wrong token).
std::optional<sdk::HttpResponse> checkAdmin(const sdk::HttpRequest& request,
                                            std::string_view admin_token);

}  // namespace junction::core::http
