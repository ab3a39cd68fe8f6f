#include "junction/sdk/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <mutex>
#include <optional>
#include <system_error>
#include <vector>

namespace junction::sdk {
namespace {

constexpr std::int64_t kMaxRetryAfterMs = 24LL * 60 * 60 * 1000;
constexpr std::size_t kDescribeBodyChars = 300;

std::once_flag g_curl_init_once;
CURLcode g_curl_init_result = CURLE_OK;

// curl_global_init is not thread-safe and must run once per process before any easy handle.
bool ensureCurlInitialized() noexcept {
  std::call_once(g_curl_init_once,
                 [] { g_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return g_curl_init_result == CURLE_OK;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// State of one transfer, reached from curl's callbacks.
struct Transfer {
  HttpClientResponse* response = nullptr;
  std::size_t max_body = 0;
  bool truncated = false;
};

std::size_t onBody(char* data, std::size_t size, std::size_t nmemb, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * nmemb;
  std::string& body = transfer->response->body;
  const std::size_t room = transfer->max_body - std::min(transfer->max_body, body.size());
  const std::size_t take = std::min(n, room);
  try {
    body.append(data, take);
  } catch (...) {
    return 0;  // out of memory: abort the transfer
  }
  if (take < n) {
    // Stop reading rather than draining an oversized reply; curl closes that connection.
    transfer->truncated = true;
    return 0;
  }
  return n;
}

std::size_t onHeader(char* data, std::size_t size, std::size_t nmemb, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * nmemb;
  std::string_view line(data, n);
  try {
    if (line.starts_with("HTTP/")) {
      // A new status line (after 100 Continue, or a proxy's CONNECT reply): start over.
      transfer->response->headers.entries.clear();
      return n;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return n;  // the blank line that ends the head, or a malformed line
    }
    transfer->response->headers.add(std::string(trim(line.substr(0, colon))),
                                    std::string(trim(line.substr(colon + 1))));
  } catch (...) {
    return 0;
  }
  return n;
}

// Month names of an RFC 9110 IMF-fixdate.
int monthIndex(std::string_view name) noexcept {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (name == kMonths[i]) {
      return i;
    }
  }
  return -1;
}

bool parseFixedInt(std::string_view s, int& out) noexcept {
  if (s.empty()) {
    return false;
  }
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && s.front() != '-' && s.front() != '+';
}

// "Sun, 06 Nov 1994 08:49:37 GMT" -> epoch seconds.
std::optional<std::int64_t> parseImfFixdate(std::string_view s) noexcept {
  // 0123456789012345678901234567890
  // Sun, 06 Nov 1994 08:49:37 GMT
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s[25] != ' ' || s.substr(26) != "GMT") {
    return std::nullopt;
  }
  int day = 0;
  int year = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  const int month = monthIndex(s.substr(8, 3));
  if (month < 0 || !parseFixedInt(s.substr(5, 2), day) || !parseFixedInt(s.substr(12, 4), year) ||
      !parseFixedInt(s.substr(17, 2), hour) || !parseFixedInt(s.substr(20, 2), minute) ||
      !parseFixedInt(s.substr(23, 2), second)) {
    return std::nullopt;
  }
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || year < 1970) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(t);
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view utf8Prefix(std::string_view s, std::size_t max) noexcept {
  if (s.size() <= max) {
    return s;
  }
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
    --end;
  }
  return s.substr(0, end);
}

}  // namespace

const char* toString(HttpClassification c) noexcept {
  switch (c) {
    case HttpClassification::Success:
      return "success";
    case HttpClassification::Retryable:
      return "retryable";
    case HttpClassification::RateLimited:
      return "rate_limited";
    case HttpClassification::AuthExpired:
      return "auth_expired";
    case HttpClassification::Permanent:
      return "permanent";
  }
  return "unknown";
}

HttpClassification classifyStatus(int status) noexcept {
  if (status == 0) {
    return HttpClassification::Retryable;
  }
  if (status >= 200 && status < 300) {
    return HttpClassification::Success;
  }
  if (status == 408) {
    return HttpClassification::Retryable;
  }
  if (status == 429) {
    return HttpClassification::RateLimited;
  }
  if (status == 401) {
    return HttpClassification::AuthExpired;
  }
  if (status >= 500 && status < 600) {
    return HttpClassification::Retryable;
  }
  return HttpClassification::Permanent;  // other 4xx, 1xx, 3xx, and anything out of range
}

std::chrono::milliseconds parseRetryAfter(std::string_view value,
                                          std::int64_t now_epoch_ms) noexcept {
  value = trim(value);
  if (value.empty()) {
    return std::chrono::milliseconds{0};
  }
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t seconds = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range || seconds > kMaxRetryAfterMs / 1000) {
      return std::chrono::milliseconds{kMaxRetryAfterMs};
    }
    if (ec != std::errc() || ptr != value.data() + value.size()) {
      return std::chrono::milliseconds{0};
    }
    return std::chrono::milliseconds{seconds * 1000};
  }
  const auto epoch_seconds = parseImfFixdate(value);
  if (!epoch_seconds) {
    return std::chrono::milliseconds{0};
  }
  const std::int64_t delta = *epoch_seconds * 1000 - now_epoch_ms;
  if (delta <= 0) {
    return std::chrono::milliseconds{0};
  }
  return std::chrono::milliseconds{std::min(delta, kMaxRetryAfterMs)};
}

std::string HttpClientResponse::describe() const {
  if (status == 0) {
    return "transport: " + (transport_error.empty() ? std::string("no response") : transport_error);
  }
  std::string out = "HTTP " + std::to_string(status);
  if (body.empty()) {
    return out;
  }
  out += ": ";
  const std::string_view excerpt = utf8Prefix(body, kDescribeBodyChars);
  for (const char c : excerpt) {
    // One line for logs and dead-letter reasons: control characters become spaces.
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  }
  if (excerpt.size() < body.size()) {
    out += "...";
  }
  return out;
}

struct HttpClient::Impl {
  HttpClientOptions options;
  std::mutex mutex;
  std::vector<CURL*> idle;  // guarded by mutex; at most options.max_idle_connections

  explicit Impl(HttpClientOptions o) : options(std::move(o)) {}
  ~Impl() {
    for (CURL* handle : idle) {
      curl_easy_cleanup(handle);
    }
  }

  // An easy handle with its live connections (from the pool) or a new one; null on failure.
  CURL* acquire() noexcept {
    {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        CURL* handle = idle.back();
        idle.pop_back();
        return handle;
      }
    }
    return ensureCurlInitialized() ? curl_easy_init() : nullptr;
  }

  void release(CURL* handle) noexcept {
    {
      std::lock_guard lock(mutex);
      if (idle.size() < options.max_idle_connections) {
        try {
          idle.push_back(handle);
          return;
        } catch (...) {
          // fall through and close it
        }
      }
    }
    curl_easy_cleanup(handle);
  }
};

HttpClient::HttpClient(HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpClient::~HttpClient() = default;

const HttpClientOptions& HttpClient::options() const noexcept { return impl_->options; }

HttpClientResponse HttpClient::send(const HttpClientRequest& request) noexcept {
  const auto started = std::chrono::steady_clock::now();
  HttpClientResponse response;
  const auto fail = [&](std::string message) {
    response.status = 0;
    response.transport_error = std::move(message);
    response.classification = HttpClassification::Retryable;
    response.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    return std::move(response);
  };

  CURL* handle = impl_->acquire();
  if (handle == nullptr) {
    return fail("cannot initialize libcurl");
  }
  // curl_easy_reset keeps the handle's live connections and DNS cache, drops every option.
  curl_easy_reset(handle);

  const HttpClientOptions& opts = impl_->options;
  Transfer transfer{&response, opts.max_response_bytes, false};
  curl_slist* header_list = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};
  CURLcode rc = CURLE_OK;
  try {
    bool has_content_type = false;
    bool has_expect = false;
    for (const auto& [name, value] : request.headers.entries) {
      has_content_type = has_content_type || equalsIgnoreCase(name, "Content-Type");
      has_expect = has_expect || equalsIgnoreCase(name, "Expect");
      // "Name;" sends a header with an empty value ("Name:" would remove curl's own header).
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      curl_slist* next = curl_slist_append(header_list, line.c_str());
      if (next == nullptr) {
        curl_slist_free_all(header_list);
        impl_->release(handle);
        return fail("out of memory building request headers");
      }
      header_list = next;
    }
    const bool sends_body = !request.body.empty() || request.method == "POST" ||
                            request.method == "PUT" || request.method == "PATCH";
    // No "Expect: 100-continue" round trip, and no form-urlencoded type curl would invent.
    std::vector<std::string> extra;
    if (!has_expect) {
      extra.emplace_back("Expect:");
    }
    if (sends_body && !has_content_type) {
      extra.emplace_back("Content-Type:");
    }
    for (const auto& line : extra) {
      curl_slist* next = curl_slist_append(header_list, line.c_str());
      if (next != nullptr) {
        header_list = next;
      }
    }

    const auto request_timeout =
        request.timeout.count() > 0 ? request.timeout : opts.request_timeout;
    curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(opts.connect_timeout.count()));
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(request_timeout.count()));
    curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, opts.verify_tls ? 1L : 0L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, opts.verify_tls ? 2L : 0L);
    if (!opts.ca_file.empty()) {
      curl_easy_setopt(handle, CURLOPT_CAINFO, opts.ca_file.c_str());
    }
    if (!opts.user_agent.empty()) {
      curl_easy_setopt(handle, CURLOPT_USERAGENT, opts.user_agent.c_str());
    }
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header_list);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &onBody);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &onHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);

    if (request.method == "GET") {
      curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    } else if (request.method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else {
      if (request.method != "POST") {
        curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      }
      if (sends_body) {
        curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size()));
      }
    }

    rc = curl_easy_perform(handle);
  } catch (...) {
    curl_slist_free_all(header_list);
    impl_->release(handle);
    return fail("out of memory preparing the request");
  }

  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(header_list);
  long os_errno = 0;
  curl_easy_getinfo(handle, CURLINFO_OS_ERRNO, &os_errno);
  // A handle whose transfer failed may hold a broken connection; curl detects and drops it on
  // the next use, so the handle itself is still fine to pool.
  impl_->release(handle);

  const bool cut_by_us = rc == CURLE_WRITE_ERROR && transfer.truncated;
  if (rc != CURLE_OK && !cut_by_us) {
    std::string message = curl_easy_strerror(rc);
    if (error_buffer[0] != '\0') {
      message = error_buffer;
    }
    // curl says "Couldn't connect to server"; the OS error says why ("Connection refused").
    if (os_errno != 0) {
      const std::string os_message =
          std::error_code(static_cast<int>(os_errno), std::system_category()).message();
      if (message.find(os_message) == std::string::npos) {
        message += " (" + os_message + ")";
      }
    }
    return fail(std::move(message));
  }

  response.status = static_cast<int>(status);
  response.classification = classifyStatus(response.status);
  if (const std::string* retry_after = response.headers.find("Retry-After")) {
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    response.retry_after = parseRetryAfter(*retry_after, now_ms);
  }
  response.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  return response;
}

}  // namespace junction::sdk
