// tests/bench/import_bench's helper:
//   import_bench_tool gen FILE N
//       writes N NDJSON track events of ~300 bytes (100,000 people, distinct messageIds);
//   import_bench_tool post FILE PORT WRITE_KEY CONNECTIONS BATCH
//       posts FILE's events to POST /v1/batch of 127.0.0.1:PORT, BATCH events per request, on
//       CONNECTIONS keep-alive connections (one thread each, requests taken in file order), and
//       prints "posted N events in S s: R events/s" once every request was answered 200 (each
//       answer comes once its events are durable).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "junction/sdk/crypto.h"
#include "tests/integration/daemon_harness.h"

namespace {

using junction::integration::HttpClient;
using junction::integration::readFile;

int gen(const char* file, long n) {
  std::FILE* out = std::fopen(file, "wb");
  if (out == nullptr) {
    std::perror(file);
    return 1;
  }
  std::string line;
  for (long i = 0; i < n; ++i) {
    line = R"({"type":"track","userId":"user-)" + std::to_string(i % 100000) +
           R"(","event":"Product Viewed","messageId":"bench-)" + std::to_string(i) +
           R"(","timestamp":"2026-11-28T15:11:01.123Z","properties":{"product_id":"p-)" +
           std::to_string(i % 5000) +
           R"J(","price":19.99,"currency":"EUR","category":"shoes"},"context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","library":{"name":"analytics.js","version":"2.1.1"}}})J";
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), out);
  }
  return std::fclose(out) == 0 ? 0 : 1;
}

int post(const char* file, int port, const std::string& key, int connections, int batch) {
  const std::string text = readFile(file);
  // Request bodies built before the clock starts: the client's own cost is not measured.
  std::vector<std::string> bodies;
  std::size_t events = 0;
  std::string body;
  int in_body = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      nl = text.size();
    }
    if (nl > pos) {
      body += in_body == 0 ? R"({"batch":[)" : ",";
      body.append(text, pos, nl - pos);
      ++in_body;
      ++events;
      if (in_body == batch) {
        bodies.push_back(body + "]}");
        body.clear();
        in_body = 0;
      }
    }
    pos = nl + 1;
  }
  if (in_body > 0) {
    bodies.push_back(body + "]}");
  }
  const std::string auth = "Authorization: Basic " + junction::sdk::base64Encode(key + ":") + "\r\n";
  std::atomic<std::size_t> next{0};
  std::atomic<int> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      HttpClient client(static_cast<std::uint16_t>(port), std::chrono::seconds(60));
      for (std::size_t i = next++; i < bodies.size(); i = next++) {
        auto r = client.request("POST", "/v1/batch", bodies[i], auth);
        if (r.status != 200) {
          if (failures++ == 0) {
            std::fprintf(stderr, "HTTP %d: %s\n", r.status, r.body.c_str());
          }
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("posted %zu events in %zu requests of %d on %d connections in %.2f s: %.0f events/s%s\n",
              events, bodies.size(), batch, connections, s, static_cast<double>(events) / s,
              failures.load() > 0 ? " (WITH FAILED REQUESTS)" : "");
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "gen" && argc == 4) {
    return gen(argv[2], std::atol(argv[3]));
  }
  if (mode == "post" && argc == 7) {
    return post(argv[2], std::atoi(argv[3]), argv[4], std::atoi(argv[5]), std::atoi(argv[6]));
  }
  std::fprintf(stderr, "usage: import_bench_tool gen FILE N | post FILE PORT WRITE_KEY CONNECTIONS BATCH\n");
  return 2;
}
