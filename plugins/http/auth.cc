#include "auth.h"

#include "junction/sdk/crypto.h"

namespace junction::plugins::http {

std::optional<std::string> basicAuthUser(std::string_view header) {
  while (!header.empty() && header.front() == ' ') {
    header.remove_prefix(1);
  }
  constexpr std::string_view kScheme = "basic ";
  if (header.size() <= kScheme.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = header[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kScheme[i]) {
      return std::nullopt;
    }
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && token.back() == ' ') {
    token.remove_suffix(1);
  }
  auto decoded = sdk::base64Decode(token);
  if (!decoded) {
    return std::nullopt;
  }
  std::string& text = decoded.value();
  // "key:" (Segment's form), "key:password" or a bare "key".
  auto colon = text.find(':');
  if (colon != std::string::npos) {
    text.resize(colon);
  }
  return std::move(text);
}

bool WriteKeys::accepts(std::string_view key) const noexcept {
  bool ok = false;
  for (const auto& k : keys_) {
    ok |= sdk::constantTimeEquals(k, key);
  }
  return ok && !key.empty();
}

}  // namespace junction::plugins::http
