#include "junction/sdk/webhook_signature.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <charconv>
#include <memory>
#include <new>
#include <vector>

#include "junction/sdk/crypto.h"

namespace junction::sdk {
namespace {

struct MacDeleter {
  void operator()(EVP_MAC* mac) const noexcept { EVP_MAC_free(mac); }
  void operator()(EVP_MAC_CTX* ctx) const noexcept { EVP_MAC_CTX_free(ctx); }
};

// The HMAC implementation, fetched once: EVP_MAC objects are reference-counted and may be
// shared between threads; only a context is per call.
EVP_MAC* hmacAlgorithm() {
  static const std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (mac == nullptr) {
    throw std::bad_alloc();
  }
  return mac.get();
}

bool update(EVP_MAC_CTX* ctx, std::string_view data) noexcept {
  return data.empty() ||
         EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

// HMAC-SHA256(secret, "<t>.<body>"), streamed so that the body is never copied (it is the
// whole batch on the webhook destination's hot path). Failures are allocation failures.
std::string signatureRaw(std::string_view secret, std::int64_t unix_seconds,
                         std::string_view body) {
  std::unique_ptr<EVP_MAC_CTX, MacDeleter> ctx(EVP_MAC_CTX_new(hmacAlgorithm()));
  if (ctx == nullptr) {
    throw std::bad_alloc();
  }
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end(),
  };
  // EVP_MAC_init with a null key would keep a previous key; pass a valid pointer even when the
  // secret is empty.
  static const unsigned char kEmpty = 0;
  const auto* key =
      secret.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(secret.data());
  std::array<char, 24> prefix{};
  auto [end, ec] = std::to_chars(prefix.data(), prefix.data() + prefix.size() - 1, unix_seconds);
  (void)ec;  // 24 characters hold any int64
  *end++ = '.';
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  std::size_t out_len = 0;
  if (EVP_MAC_init(ctx.get(), key, secret.size(), params) != 1 ||
      !update(ctx.get(),
              std::string_view(prefix.data(), static_cast<std::size_t>(end - prefix.data()))) ||
      !update(ctx.get(), body) || EVP_MAC_final(ctx.get(), out.data(), &out_len, out.size()) != 1) {
    throw std::bad_alloc();
  }
  return std::string(reinterpret_cast<const char*>(out.data()), out_len);
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

Error denied(std::string message) {
  return makeError(ErrorCode::PermissionDenied,
                   std::string(kWebhookSignatureHeader) + " " + std::move(message));
}

}  // namespace

std::string webhookSignatureHex(std::string_view secret, std::int64_t unix_seconds,
                                std::string_view body) {
  return hexEncode(signatureRaw(secret, unix_seconds, body));
}

std::string signWebhook(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  std::string header = "t=" + std::to_string(unix_seconds) + ",v1=";
  header += webhookSignatureHex(secret, unix_seconds, body);
  return header;
}

Status verifyWebhookSignature(std::string_view header, std::string_view secret,
                              std::string_view body, std::int64_t now_unix_seconds,
                              std::chrono::seconds tolerance) {
  if (trim(header).empty()) {
    return denied("is missing");
  }
  if (secret.empty()) {
    return denied("cannot be verified: no secret is configured");
  }
  std::string_view t_text;
  bool has_t = false;
  std::vector<std::string_view> signatures;
  while (!header.empty()) {
    const auto comma = header.find(',');
    const std::string_view item = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    const auto equals = item.find('=');
    if (equals == std::string_view::npos) {
      continue;  // not a key=value item; ignored like an unknown key
    }
    const std::string_view key = trim(item.substr(0, equals));
    const std::string_view value = trim(item.substr(equals + 1));
    if (key == "t") {
      if (has_t) {
        return denied("has more than one t= timestamp");
      }
      has_t = true;
      t_text = value;
    } else if (key == "v1") {
      signatures.push_back(value);
    }
  }
  if (!has_t) {
    return denied("has no t= timestamp");
  }
  std::int64_t t = 0;
  // At most 18 digits: |now - t| cannot overflow, and no real clock is that far off.
  const auto [end, ec] = std::from_chars(t_text.data(), t_text.data() + t_text.size(), t);
  if (t_text.empty() || t_text.size() > 18 || ec != std::errc() ||
      end != t_text.data() + t_text.size() || t_text.front() == '-') {
    return denied("has a t= that is not a Unix time in seconds");
  }
  if (signatures.empty()) {
    return denied("has no v1= signature");
  }
  const std::string expected = webhookSignatureHex(secret, t, body);
  bool matched = false;
  for (const auto signature : signatures) {
    // Every value is compared, so the time taken does not depend on which one matched.
    matched = constantTimeEquals(signature, expected) || matched;
  }
  if (!matched) {
    return denied("does not match the body: no v1= signature verifies under the secret");
  }
  const std::int64_t skew = now_unix_seconds - t;
  if (skew > tolerance.count() || -skew > tolerance.count()) {
    return makeError(ErrorCode::InvalidArgument,
                     std::string(kWebhookSignatureHeader) + " timestamp is " +
                         std::to_string(skew > 0 ? skew : -skew) + " s " +
                         (skew > 0 ? "old" : "in the future") + " (tolerance " +
                         std::to_string(tolerance.count()) + " s): stale or replayed request");
  }
  return {};
}

}  // namespace junction::sdk
