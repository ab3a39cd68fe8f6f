#include "body.h"

#include <zlib.h>

#include <boost/json.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <charconv>
#include <cstring>

#include "junction/sdk/json.h"

namespace junction::plugins::http {

namespace json = boost::json;

std::optional<Endpoint> endpointForPath(std::string_view path) noexcept {
  constexpr std::string_view kPrefix = "/v1/";
  if (path.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  std::string_view name = path.substr(kPrefix.size());
  struct Entry {
    std::string_view long_name;
    std::string_view short_name;
    Endpoint endpoint;
  };
  static constexpr Entry kEntries[] = {
      {"track", "t", Endpoint::Track},   {"identify", "i", Endpoint::Identify},
      {"page", "p", Endpoint::Page},     {"screen", "s", Endpoint::Screen},
      {"group", "g", Endpoint::Group},   {"alias", "a", Endpoint::Alias},
      {"batch", "b", Endpoint::Batch},
  };
  for (const auto& e : kEntries) {
    if (name == e.long_name || name == e.short_name) {
      return e.endpoint;
    }
  }
  return std::nullopt;
}

const char* toString(Endpoint endpoint) noexcept {
  switch (endpoint) {
    case Endpoint::Track: return "track";
    case Endpoint::Identify: return "identify";
    case Endpoint::Page: return "page";
    case Endpoint::Screen: return "screen";
    case Endpoint::Group: return "group";
    case Endpoint::Alias: return "alias";
    case Endpoint::Batch: return "batch";
  }
  return "unknown";
}

std::optional<sdk::EventType> eventTypeOf(Endpoint endpoint) noexcept {
  switch (endpoint) {
    case Endpoint::Track: return sdk::EventType::Track;
    case Endpoint::Identify: return sdk::EventType::Identify;
    case Endpoint::Page: return sdk::EventType::Page;
    case Endpoint::Screen: return sdk::EventType::Screen;
    case Endpoint::Group: return sdk::EventType::Group;
    case Endpoint::Alias: return sdk::EventType::Alias;
    case Endpoint::Batch: return std::nullopt;
  }
  return std::nullopt;
}

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) {
      return false;
    }
  }
  return true;
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

sdk::Result<std::string> inflateBody(std::string_view in, std::size_t max_decoded_bytes) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  // 15 + 32: a zlib or a gzip header, detected automatically.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) {
    return sdk::makeError(sdk::ErrorCode::Internal, "zlib initialization failed");
  }
  std::string out;
  out.resize(std::min<std::size_t>(max_decoded_bytes + 1, std::max<std::size_t>(in.size() * 4, 4096)));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::size_t produced = 0;
  int rc = Z_OK;
  for (;;) {
    if (produced == out.size()) {
      if (out.size() > max_decoded_bytes) {
        break;
      }
      out.resize(std::min(out.size() * 2, max_decoded_bytes + 1));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members (allowed by RFC 1952): go on with the next one.
      if (zs.avail_in > 0 && inflateReset(&zs) == Z_OK) {
        continue;
      }
      break;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      break;  // truncated input
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      break;
    }
  }
  inflateEnd(&zs);
  if (produced > max_decoded_bytes) {
    return sdk::makeError(sdk::ErrorCode::ResourceExhausted,
                          "decoded body larger than " + std::to_string(max_decoded_bytes) + " bytes");
  }
  if (rc != Z_STREAM_END) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "corrupt or truncated compressed body");
  }
  out.resize(produced);
  return out;
}

}  // namespace

sdk::Result<std::string> decodeBody(std::string_view content_encoding, std::string body,
                                    std::size_t max_decoded_bytes) {
  std::string_view encoding = trim(content_encoding);
  if (encoding.empty() || iequals(encoding, "identity")) {
    if (body.size() > max_decoded_bytes) {
      return sdk::makeError(sdk::ErrorCode::ResourceExhausted,
                            "body larger than " + std::to_string(max_decoded_bytes) + " bytes");
    }
    return body;
  }
  if (iequals(encoding, "gzip") || iequals(encoding, "x-gzip") || iequals(encoding, "deflate")) {
    return inflateBody(body, max_decoded_bytes);
  }
  return sdk::makeError(sdk::ErrorCode::InvalidArgument,
                        "unsupported Content-Encoding (expected gzip or deflate)");
}

const json::array* ParsedBody::batchArray() const noexcept {
  if (!batch_) {
    return nullptr;
  }
  if (const json::array* array = root_.if_array()) {
    return array;
  }
  const json::value* b = batchField("batch");
  return b != nullptr ? b->if_array() : nullptr;
}

std::span<json::value> ParsedBody::items() noexcept {
  if (!batch_) {
    return {&root_, 1};
  }
  // Non-const access to our own array: batchArray() only avoids writing the lookup twice.
  auto* array = const_cast<json::array*>(batchArray());
  if (array == nullptr) {
    return {};
  }
  return {array->data(), array->size()};
}

const json::value* ParsedBody::batchField(std::string_view key) const noexcept {
  if (!batch_) {
    return nullptr;
  }
  const json::object* o = root_.if_object();
  return o != nullptr ? o->if_contains(key) : nullptr;
}

std::optional<std::string_view> ParsedBody::writeKey() const noexcept {
  const json::value* v = batch_ ? batchField("writeKey") : nullptr;
  if (!batch_) {
    if (const json::object* o = root_.if_object()) {
      v = o->if_contains("writeKey");
    }
  }
  if (v != nullptr && v->is_string()) {
    return std::string_view(v->as_string());
  }
  if (batch_) {
    // analytics.js' batching dispatcher puts the key in each event, not on the batch.
    if (const json::array* array = batchArray()) {
      for (const auto& item : *array) {
        if (const json::object* o = item.if_object()) {
          if (const json::value* k = o->if_contains("writeKey"); k != nullptr && k->is_string()) {
            return std::string_view(k->as_string());
          }
        }
      }
    }
  }
  return std::nullopt;
}

const json::object* ParsedBody::batchContext() const noexcept {
  const json::value* v = batchField("context");
  return v != nullptr ? v->if_object() : nullptr;
}

const json::object* ParsedBody::batchIntegrations() const noexcept {
  const json::value* v = batchField("integrations");
  return v != nullptr ? v->if_object() : nullptr;
}

std::optional<std::string_view> ParsedBody::batchSentAt() const noexcept {
  const json::value* v = batchField("sentAt");
  if (v != nullptr && v->is_string()) {
    return std::string_view(v->as_string());
  }
  return std::nullopt;
}

namespace {

bool parseIndex(std::string_view text, std::size_t& out) noexcept {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

const std::string* ParsedBody::problemOf(std::size_t index) const noexcept {
  for (const auto& [item, problem] : problems_) {
    if (item == index) {
      return &problem;
    }
  }
  return nullptr;
}

sdk::Result<ParsedBody> parseBody(Endpoint endpoint, std::string_view body) {
  // One arena per request: the tree lives only while the request is handled (events are
  // serialized out of it), so thousands of node allocations become a few blocks.
  std::vector<sdk::JsonValueProblem> problems;
  auto parsed = sdk::parseJson(
      body, json::make_shared_resource<json::monotonic_resource>(body.size() * 2 + 1024),
      problems);
  if (!parsed) {
    return std::move(parsed).error();
  }
  json::value root = std::move(parsed).value();
  const bool batch = endpoint == Endpoint::Batch;
  if (!batch && !root.is_object()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "expected a JSON object");
  }
  // The path of an event: "" for a single one, "3" in a bare array, "batch.3" in a batch object.
  const std::size_t prefix = !batch ? 0 : root.is_array() ? 1 : 2;
  std::vector<std::pair<std::size_t, std::string>> item_problems;
  for (const auto& problem : problems) {
    std::size_t index = 0;
    const bool in_item = prefix == 0 || (problem.path.size() >= prefix &&
                                         (prefix == 1 || problem.path[0] == "batch") &&
                                         parseIndex(problem.path[prefix - 1], index));
    if (!in_item) {
      return sdk::makeError(sdk::ErrorCode::InvalidArgument, problem.describe());
    }
    if (item_problems.empty() || item_problems.back().first != index) {
      item_problems.emplace_back(index, problem.describe(prefix));
    }
  }
  ParsedBody out(std::move(root), batch);
  out.problems_ = std::move(item_problems);
  if (!batch || out.root_.is_array()) {
    return out;
  }
  const json::object* o = out.root_.if_object();
  const json::value* events = o != nullptr ? o->if_contains("batch") : nullptr;
  if (events == nullptr || !events->is_array()) {
    return sdk::makeError(sdk::ErrorCode::InvalidArgument, "batch body without a \"batch\" array");
  }
  return out;
}

}  // namespace junction::plugins::http
