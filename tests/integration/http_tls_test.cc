// HTTPS on the daemon's listener (server.tls_cert_file / server.tls_key_file): the tracking API
// over TLS with a certificate the client verifies, plain HTTP refused on that port, and
// configuration errors (half a pair, unreadable files) reported at start-up.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "junction/sdk/crypto.h"
#include "junction/sdk/http_client.h"
#include "tests/integration/daemon_harness.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string configYaml(const fs::path& dir, const std::string& tls) {
  return "server:\n"
         "  listen: \"127.0.0.1:0\"\n" + tls +
         "storage:\n"
         "  path: " + (dir / "data").string() + "\n"
         "sources:\n"
         "  - id: web\n"
         "    plugin: http\n"
         "    config: { write_keys: [\"tls-key\"] }\n"
         "destinations:\n"
         "  - id: out\n"
         "    plugin: file\n"
         "    batch: { max_wait: 0ms }\n"
         "    config: { path: " + (dir / "out.ndjson").string() + " }\n";
}

// A self-signed certificate for 127.0.0.1 (openssl CLI); false when openssl is unavailable.
bool makeCertificate(const fs::path& dir) {
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout '" + (dir / "key.pem").string() +
                          "' -out '" + (dir / "cert.pem").string() + "' > '" +
                          (dir / "openssl.log").string() + "' 2>&1";
  return std::system(cmd.c_str()) == 0;
}

TEST(HttpTlsTest, TrackingApiOverHttps) {
  TempDir dir;
  if (!makeCertificate(dir.path())) {
    GTEST_SKIP() << "openssl CLI not available to make a test certificate";
  }
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, configYaml(dir.path(), "  tls_cert_file: " + (dir.path() / "cert.pem").string() +
                                               "\n  tls_key_file: " + (dir.path() / "key.pem").string() + "\n"));
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "daemon.log");
  ASSERT_TRUE(port.has_value()) << readFile(dir.path() / "daemon.log");
  const std::string base = "https://127.0.0.1:" + std::to_string(*port);

  sdk::HttpClient client(sdk::HttpClientOptions{.ca_file = (dir.path() / "cert.pem").string()});
  sdk::HttpClientRequest track{.method = "POST", .url = base + "/v1/track", .headers = {},
                               .body = R"({"userId":"u","event":"Over TLS"})", .timeout = 10s};
  track.headers.set("Authorization", "Basic " + sdk::base64Encode("tls-key:"));
  track.headers.set("Content-Type", "application/json");
  for (int i = 0; i < 3; ++i) {  // several requests on one kept-alive TLS connection
    auto r = client.send(track);
    ASSERT_EQ(r.status, 200) << r.transport_error << r.body;
    EXPECT_EQ(r.body, R"({"success":true})");
  }
  auto health = client.send({.method = "GET", .url = base + "/healthz", .headers = {}, .body = {},
                             .timeout = 10s});
  EXPECT_EQ(health.status, 200) << health.transport_error;

  // An untrusted certificate is refused by a verifying client.
  sdk::HttpClient strict;
  auto refused = strict.send({.method = "GET", .url = base + "/healthz", .headers = {}, .body = {},
                              .timeout = 5s});
  EXPECT_EQ(refused.status, 0);

  // Plain HTTP on the TLS port gets no HTTP answer.
  HttpClient plain(*port, 3s);
  EXPECT_EQ(plain.request("GET", "/healthz").status, 0);

  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline &&
         readFile(dir.path() / "out.ndjson").find("Over TLS") == std::string::npos) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_THAT(readFile(dir.path() / "out.ndjson"), HasSubstr("\"event\":\"Over TLS\""));
  EXPECT_TRUE(daemon.terminate());
}

TEST(HttpTlsTest, ConfigErrors) {
  TempDir dir;
  const fs::path half = dir.path() / "half.yaml";
  writeFile(half, configYaml(dir.path(), "  tls_cert_file: /nonexistent/cert.pem\n"));
  const std::string check = (kBinaryDir / "bin" / "junctiond").string() + " --config '" + half.string() +
                            "' --check > '" + (dir.path() / "check.log").string() + "' 2>&1";
  EXPECT_NE(std::system(check.c_str()), 0);
  EXPECT_THAT(readFile(dir.path() / "check.log"), HasSubstr("tls_cert_file and tls_key_file must be set together"));

  const fs::path missing = dir.path() / "missing.yaml";
  writeFile(missing, configYaml(dir.path(), "  tls_cert_file: /nonexistent/cert.pem\n"
                                            "  tls_key_file: /nonexistent/key.pem\n"));
  // Found by --check already (not only when the daemon starts listening), with the line.
  const std::string check_missing = (kBinaryDir / "bin" / "junctiond").string() + " --config '" +
                                    missing.string() + "' --check > '" +
                                    (dir.path() / "check_missing.log").string() + "' 2>&1";
  EXPECT_NE(std::system(check_missing.c_str()), 0);
  EXPECT_THAT(readFile(dir.path() / "check_missing.log"),
              HasSubstr("missing.yaml:3:18: server.tls_cert_file: cannot read '/nonexistent/cert.pem': "
                        "No such file or directory"));
  DaemonProcess daemon(missing);
  EXPECT_FALSE(daemon.start(dir.path() / "daemon.log", 10s).has_value());
  EXPECT_THAT(readFile(dir.path() / "daemon.log"), HasSubstr("server.tls_cert_file: cannot read '/nonexistent/cert.pem'"));

  // A file that exists but holds no certificate still fails when the daemon loads it.
  const fs::path garbage = dir.path() / "garbage.pem";
  writeFile(garbage, "not a certificate\n");
  const fs::path bad = dir.path() / "bad.yaml";
  writeFile(bad, configYaml(dir.path(), "  tls_cert_file: " + garbage.string() + "\n"
                                        "  tls_key_file: " + garbage.string() + "\n"));
  DaemonProcess bad_daemon(bad);
  EXPECT_FALSE(bad_daemon.start(dir.path() / "bad.log", 10s).has_value());
  EXPECT_THAT(readFile(dir.path() / "bad.log"), HasSubstr("server.tls_cert_file: cannot load"));
}

}  // namespace
}  // namespace junction::integration
