// The dashboard at /ui/ in a real browser: Debian's headless Chromium, driven through
// chromedriver's WebDriver protocol (plain HTTP + JSON over loopback). The test signs in with
// the admin token, sees a destination with its numbers, starts the live debugger, sends an
// event and sees it arrive with the destination's decision; a screenshot is saved under the
// build tree (test-artifacts/dashboard.png). scripts/deps installs chromium and chromium-driver.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <string>

#include "junction/sdk/crypto.h"
#include "tests/fakes/webhook/fake_webhook.h"
#include "tests/integration/web_config.h"

namespace junction::integration {
namespace {

using namespace std::chrono_literals;
using tests::fakes::FakeWebhookReceiver;
namespace json = boost::json;

constexpr const char* kKey = "wk-dashboard-1";
constexpr const char* kAdmin = "admin-dashboard-secret-2";
constexpr const char* kChromedriver = "/usr/bin/chromedriver";
constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kElement = "element-6066-11e4-a52e-4f735466cecf";  // W3C WebDriver

// A free loopback port (bound, read, closed: a race with other processes is possible but rare).
std::uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// chromedriver as a child process, and one browser session.
class Browser {
 public:
  Browser(const fs::path& dir) : dir_(dir) {}
  ~Browser() {
    if (!session_.empty() && http_) {
      http_->request("DELETE", "/session/" + session_);
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  std::string start() {
    port_ = freePort();
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string port = "--port=" + std::to_string(port_);
      const std::string log = "--log-path=" + (dir_ / "chromedriver.log").string();
      ::execl(kChromedriver, kChromedriver, port.c_str(), log.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    http_ = std::make_unique<HttpClient>(port_, 60s);
    if (!eventually([&] { return http_->request("GET", "/status").status == 200; }, 20s)) {
      return "chromedriver did not start";
    }
    json::object options{{"binary", kChromium},
                         {"args", json::array{"--headless=new", "--no-sandbox", "--disable-gpu",
                                              "--disable-dev-shm-usage", "--window-size=1400,1400",
                                              "--user-data-dir=" + (dir_ / "profile").string()}}};
    json::object caps{{"capabilities",
                       json::object{{"alwaysMatch", json::object{{"browserName", "chrome"},
                                                                 {"goog:chromeOptions", options}}}}}};
    auto r = http_->request("POST", "/session", json::serialize(caps));
    if (r.status != 200) {
      return "new session: " + std::to_string(r.status) + " " + r.body;
    }
    session_ = std::string(json::parse(r.body).at("value").at("sessionId").as_string());
    return {};
  }

  json::value call(const std::string& method, const std::string& path, const json::value& body = nullptr) {
    auto r = http_->request(method, "/session/" + session_ + path,
                            body.is_null() ? std::string("{}") : json::serialize(body));
    EXPECT_EQ(r.status, 200) << method << " " << path << ": " << r.body;
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    return ec ? json::value() : v.as_object()["value"];
  }

  void go(const std::string& url) { call("POST", "/url", json::object{{"url", url}}); }

  std::string element(const std::string& css) {
    auto v = call("POST", "/element", json::object{{"using", "css selector"}, {"value", css}});
    return v.is_object() ? std::string(v.as_object()[kElement].as_string()) : std::string();
  }

  void type(const std::string& css, const std::string& text) {
    call("POST", "/element/" + element(css) + "/value", json::object{{"text", text}});
  }

  void click(const std::string& css) { call("POST", "/element/" + element(css) + "/click"); }

  // Runs `script` (a function body) in the page and returns its value.
  json::value run(const std::string& script) {
    return call("POST", "/execute/sync", json::object{{"script", script}, {"args", json::array{}}});
  }

  std::string text(const std::string& css) {
    auto v = run("const e = document.querySelector(" + json::serialize(json::value(css)) +
                 "); return e ? e.textContent : null;");
    return v.is_string() ? std::string(v.as_string()) : std::string();
  }

  bool saveScreenshot(const fs::path& file) {
    auto v = call("GET", "/screenshot");
    if (!v.is_string()) {
      return false;
    }
    auto png = sdk::base64Decode(v.as_string());
    if (!png) {
      return false;
    }
    fs::create_directories(file.parent_path());
    writeFile(file, *png);
    return true;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::unique_ptr<HttpClient> http_;
  std::string session_;
};

TEST(DashboardBrowserTest, SignInSeeAConnectorAndWatchAnEventArriveWithItsDecision) {
  ASSERT_TRUE(fs::exists(kChromedriver) && fs::exists(kChromium))
      << "chromium and chromium-driver are missing: scripts/deps installs them";
  TempDir dir;
  FakeWebhookReceiver hook;
  const fs::path config = dir.path() / "junction.yaml";
  writeFile(config, webConfig(dir.path(), kKey, kAdmin, R"(  - id: hook
    plugin: webhook
    batch: { max_wait: 0ms }
    config: { url: ")" + hook.url() + "\" }\n"));
  DaemonProcess daemon(config);
  auto port = daemon.start(dir.path() / "junctiond.log");
  ASSERT_TRUE(port) << daemon.log();
  HttpClient client(*port);
  const std::string auth = basicAuth(kKey);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(client.request("POST", "/v1/track",
                             R"({"userId":"u1","event":"Viewed","messageId":"before-)" +
                                 std::to_string(i) + R"("})",
                             auth)
                  .status,
              200);
  }
  ASSERT_TRUE(hook.waitForEvents(3, 10s));

  Browser browser(dir.path());
  const std::string started = browser.start();
  ASSERT_TRUE(started.empty()) << started << "\n" << readFile(dir.path() / "chromedriver.log");
  const std::string base = "http://127.0.0.1:" + std::to_string(*port);
  browser.go(base + "/ui/");
  ASSERT_TRUE(eventually([&] { return browser.run("return !document.querySelector('#login-view').hidden").as_bool(); }));

  // A wrong token is refused on the form; the right one opens the dashboard.
  browser.type("#token", "not-the-token");
  browser.click("#login-button");
  ASSERT_TRUE(eventually([&] { return browser.text("#login-error").find("Wrong") != std::string::npos; }))
      << browser.text("#login-error");
  browser.run("document.querySelector('#token').value = ''; return null;");
  browser.type("#token", kAdmin);
  browser.click("#login-button");
  ASSERT_TRUE(eventually([&] {
    return browser.text("#destinations tr[data-destination=\"hook\"] .delivered") == "3";
  })) << browser.text("#destinations");
  const std::string row = browser.text("#destinations tr[data-destination=\"hook\"]");
  EXPECT_NE(row.find("webhook"), std::string::npos) << row;
  EXPECT_NE(row.find("idle"), std::string::npos) << row;
  EXPECT_NE(browser.text("#sources tr[data-source=\"web\"]").find("http"), std::string::npos);
  EXPECT_EQ(browser.text("#health"), "ready");
  // The event catalog lists what was sent.
  ASSERT_TRUE(eventually([&] { return !browser.text("#catalog tr[data-event=\"Viewed\"]").empty(); }))
      << browser.text("#catalog");
  // The token is kept in the tab's session, never in the address.
  EXPECT_EQ(browser.run("return location.href").as_string().find(kAdmin), std::string::npos);
  EXPECT_EQ(browser.run("return sessionStorage.getItem('junction.admin_token')").as_string(), kAdmin);

  // The live debugger: watch, send, see the arrival and the delivery.
  browser.click("#debug-start");
  ASSERT_TRUE(eventually([&] { return daemon.log().find("live debugger attached") != std::string::npos; }));
  ASSERT_EQ(client.request("POST", "/v1/track",
                           R"({"userId":"u2","event":"Cart Viewed","messageId":"browser-1",
                               "properties":{"password":"hunter2"}})",
                           auth)
                .status,
            200);
  ASSERT_TRUE(eventually([&] {
    return !browser.text("#debugger tr[data-message-id=\"browser-1\"][data-kind=\"delivered\"]").empty();
  })) << browser.text("#debugger");
  // The arrival and the delivery are separate records; either may reach the page first.
  ASSERT_TRUE(eventually([&] {
    return !browser.text("#debugger tr[data-message-id=\"browser-1\"][data-kind=\"received\"]").empty();
  })) << browser.text("#debugger");
  const std::string arrived = browser.text("#debugger tr[data-message-id=\"browser-1\"][data-kind=\"received\"]");
  EXPECT_NE(arrived.find("Cart Viewed"), std::string::npos) << arrived;
  EXPECT_NE(arrived.find("u2"), std::string::npos) << arrived;
  EXPECT_EQ(arrived.find("hunter2"), std::string::npos) << "a secret shown in the debugger";
  EXPECT_NE(browser.text("#debugger tr[data-message-id=\"browser-1\"][data-kind=\"delivered\"]").find("web → hook"),
            std::string::npos);
  // Let the charts draw a second reading before the picture.
  std::this_thread::sleep_for(2500ms);
  const fs::path shot = kBinaryDir / "test-artifacts" / "dashboard.png";
  ASSERT_TRUE(browser.saveScreenshot(shot));
  EXPECT_GT(fs::file_size(shot), 10'000u);
}

}  // namespace
}  // namespace junction::integration
