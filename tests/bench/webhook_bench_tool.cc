// Helpers of tests/bench/webhook_bench, in one binary:
//
//   webhook_bench_tool receiver SECRET
//     A webhook receiver on 127.0.0.1 (ephemeral port, printed as "port=N"): verifies each
//     request's X-Junction-Signature, counts the events of its {"batch":[...]} body, and for
//     events that carry properties.sent_ns (CLOCK_MONOTONIC nanoseconds when the client sent
//     them) records the latency to their arrival. `GET /stats` answers
//     {"requests","events","bad_signatures","latency_samples","p50_ms","p99_ms","max_ms"} and
//     `POST /stats/reset` clears the latencies. Runs until stdin closes.
//
//   webhook_bench_tool pace PORT WRITE_KEY EVENTS_PER_SECOND SECONDS
//     Sends one track event per request to junctiond's POST /v1/track at a steady rate (open
//     loop: each send is due at start + i / rate, whatever the previous answers took), each
//     with properties.sent_ns. Prints how many were acknowledged.
//
// Monotonic time is one clock for every process on the machine, so the receiver can subtract
// the client's send time from its own arrival time.

#include <time.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "junction/sdk/crypto.h"
#include "junction/sdk/http_client.h"

namespace {

namespace sdk = junction::sdk;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::int64_t monoNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::size_t countOf(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// "t=<seconds>,v1=<hex>" checked against HMAC-SHA256(secret, "<t>.<body>").
bool signatureOk(std::string_view header, std::string_view secret, std::string_view body) {
  auto t_at = header.find("t=");
  auto v_at = header.find(",v1=");
  if (t_at != 0 || v_at == std::string_view::npos) {
    return false;
  }
  std::string_view t = header.substr(2, v_at - 2);
  std::string_view v1 = header.substr(v_at + 4);
  v1 = v1.substr(0, v1.find(','));
  std::string signed_text;
  signed_text.reserve(t.size() + 1 + body.size());
  signed_text.append(t).append(".").append(body);
  return sdk::constantTimeEquals(sdk::hmacSha256Hex(secret, signed_text), v1);
}

// A lean receiver: Boost.Beast, one thread per connection (junctiond opens a few keep-alive
// connections). The scripted test server records every request and its body, which at hundreds
// of 300 KB batches a second made it, not junctiond, the bottleneck of the benchmark.
class Receiver {
 public:
  explicit Receiver(std::string secret) : secret_(std::move(secret)) {}

  // Serves until stdin closes; prints "port=N" first.
  int run() {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::printf("port=%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    std::thread acceptor_thread([&] {
      for (;;) {
        boost::system::error_code ec;
        tcp::socket socket(io);
        acceptor.accept(socket, ec);
        if (ec) {
          return;
        }
        std::thread([this, s = std::move(socket)]() mutable { serve(std::move(s)); }).detach();
      }
    });
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    boost::system::error_code ignored;
    acceptor.close(ignored);
    acceptor_thread.join();
    return 0;
  }

 private:
  void serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      boost::system::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) {
        return;
      }
      const std::int64_t now = monoNs();
      auto request = parser.release();
      http::response<http::string_body> response;
      response.version(request.version());
      response.keep_alive(request.keep_alive());
      response.set(http::field::content_type, "application/json");
      response.result(answer(request, now, response.body()));
      response.prepare_payload();
      http::write(socket, response, ec);
      if (ec || !request.keep_alive()) {
        return;
      }
    }
  }

  http::status answer(const http::request<http::string_body>& request, std::int64_t now,
                      std::string& body) {
    const std::string_view target = request.target();
    if (request.method() == http::verb::get && target == "/stats") {
      body = stats();
      return http::status::ok;
    }
    if (request.method() == http::verb::post && target == "/stats/reset") {
      std::lock_guard lock(mutex_);
      latencies_ms_.clear();
      return http::status::no_content;
    }
    if (request.method() != http::verb::post || target != "/hook") {
      body = R"({"error":"not found"})";
      return http::status::not_found;
    }
    const std::string& text = request.body();
    if (!signatureOk(request["X-Junction-Signature"], secret_, text)) {
      std::lock_guard lock(mutex_);
      ++bad_;
      body = R"({"error":"bad signature"})";
      return http::status::unauthorized;
    }
    const std::size_t n = countOf(text, "\"messageId\":");
    std::vector<double> samples;
    constexpr std::string_view kSent = "\"sent_ns\":";
    for (std::size_t pos = text.find(kSent); pos != std::string::npos; pos = text.find(kSent, pos + 1)) {
      std::int64_t sent = 0;
      const char* begin = text.data() + pos + kSent.size();
      if (std::from_chars(begin, text.data() + text.size(), sent).ec == std::errc()) {
        samples.push_back(static_cast<double>(now - sent) / 1e6);
      }
    }
    std::lock_guard lock(mutex_);
    ++requests_;
    events_ += n;
    latencies_ms_.insert(latencies_ms_.end(), samples.begin(), samples.end());
    body = R"({"ok":true})";
    return http::status::ok;
  }

  std::string stats() {
    std::lock_guard lock(mutex_);
    std::vector<double> sorted = latencies_ms_;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double p) {
      return sorted.empty() ? 0.0
                            : sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(p * sorted.size()))];
    };
    char text[512];
    std::snprintf(text, sizeof text,
                  R"({"requests":%llu,"events":%llu,"bad_signatures":%llu,"latency_samples":%zu,)"
                  R"("p50_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f})",
                  static_cast<unsigned long long>(requests_), static_cast<unsigned long long>(events_),
                  static_cast<unsigned long long>(bad_), sorted.size(), pct(0.50), pct(0.99),
                  sorted.empty() ? 0.0 : sorted.back());
    return text;
  }

  const std::string secret_;
  std::mutex mutex_;
  std::uint64_t requests_ = 0;  // guarded by mutex_
  std::uint64_t events_ = 0;
  std::uint64_t bad_ = 0;
  std::vector<double> latencies_ms_;
};

int receiver(std::string secret) { return Receiver(std::move(secret)).run(); }

int pace(const std::string& port, const std::string& key, double rate, double seconds) {
  sdk::HttpClientOptions options;
  options.request_timeout = std::chrono::milliseconds(5000);
  sdk::HttpClient client(options);
  const std::string url = "http://127.0.0.1:" + port + "/v1/track";
  const std::string auth = "Basic " + sdk::base64Encode(key + ":");
  const auto total = static_cast<std::int64_t>(rate * seconds);
  const std::int64_t start = monoNs();
  std::int64_t acked = 0;
  for (std::int64_t i = 0; i < total; ++i) {
    const std::int64_t due = start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate);
    while (monoNs() < due) {
      const std::int64_t left = due - monoNs();
      if (left > 200'000) {
        std::this_thread::sleep_for(std::chrono::nanoseconds(left - 100'000));
      }
    }
    sdk::HttpClientRequest request;
    request.method = "POST";
    request.url = url;
    request.headers.set("Authorization", auth);
    request.headers.set("Content-Type", "application/json");
    request.body = R"({"type":"track","userId":"pace-)" + std::to_string(i % 1000) +
                   R"(","event":"Viewed Product","messageId":"pace-)" + std::to_string(start) + "-" +
                   std::to_string(i) + R"(","properties":{"sku":"S-1","sent_ns":)" +
                   std::to_string(monoNs()) + "}}";
    if (client.send(request).status == 200) {
      ++acked;
    }
  }
  std::printf("sent=%lld acknowledged=%lld\n", static_cast<long long>(total),
              static_cast<long long>(acked));
  return acked == total ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "receiver") {
    return receiver(args[1]);
  }
  if (args.size() == 5 && args[0] == "pace") {
    return pace(args[1], args[2], std::atof(args[3].c_str()), std::atof(args[4].c_str()));
  }
  std::fprintf(stderr,
               "usage: webhook_bench_tool receiver SECRET\n"
               "       webhook_bench_tool pace PORT WRITE_KEY EVENTS_PER_SECOND SECONDS\n");
  return 2;
}
