// hello_destination: the smallest useful Junction destination. It POSTs each event's JSON to a
// configured URL, with `Authorization: Bearer <token>` when a token is set, and reports one
// outcome per event from the HTTP response (2xx delivered; 408/429/5xx/401/transport errors
// retried; other 4xx failed).
//
// It uses only the installed SDK headers (<junction/sdk/...>) and reaches the network only
// through its context's HTTP client. See README.md for how to build, load and test it.

#include <junction/sdk/destination.h>
#include <junction/sdk/http_client.h>
#include <junction/sdk/plugin.h>

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace example::hello_destination {

namespace sdk = junction::sdk;

// The plugin's configuration, bound from the checked YAML by the option table below.
struct HelloConfig {
  std::string url;
  std::string token;
  std::chrono::milliseconds timeout{0};

  // Cross-field and format rules that the option table cannot express on its own.
  std::vector<sdk::OptionError> validate() const {
    const std::string_view u(url);
    if (!u.starts_with("http://") && !u.starts_with("https://")) {
      return {{"url", "must start with http:// or https://"}};
    }
    return {};
  }
};

// One table: key, type (from the field's C++ type), default, bounds, flags and a doc line.
// `junction plugins hello_destination` prints it.
const sdk::OptionTable<HelloConfig>& helloOptions() {
  static const sdk::OptionTable<HelloConfig> table{
      sdk::option("url", &HelloConfig::url, "Where each event's JSON is POSTed").required(),
      sdk::option("token", &HelloConfig::token,
                  "Sent as 'Authorization: Bearer TOKEN' when not empty")
          .defaultValue("")
          .secret(),
      sdk::option("timeout", &HelloConfig::timeout, "Timeout of one request")
          .defaultValue("10s")
          .range(100, 120000),
  };
  return table;
}

// Thread-safe: deliver() keeps no mutable state of its own and HttpClient::send may be called
// from several threads at once. The context outlives the instance (SDK contract).
class HelloDestination final : public sdk::Destination {
 public:
  HelloDestination(HelloConfig config, sdk::DestinationContext& ctx)
      : config_(std::move(config)),
        ctx_(ctx),
        requests_(ctx.metrics().counter("junction_hello_requests_total",
                                        "Requests sent by the hello destination")) {}

  sdk::Status start() override {
    ctx_.log().info("posting events", {{"url", config_.url}});
    return {};
  }

  std::vector<sdk::Outcome> deliver(std::span<const sdk::Event> batch) override {
    std::vector<sdk::Outcome> outcomes;
    outcomes.reserve(batch.size());
    for (const auto& event : batch) {
      sdk::HttpClientRequest request{.method = "POST",
                                     .url = config_.url,
                                     .headers = {},
                                     .body = std::string(event.json()),
                                     .timeout = config_.timeout};
      request.headers.set("Content-Type", "application/json");
      if (!event.messageId().empty()) {
        request.headers.set("Idempotency-Key", event.messageId());  // the vendor may dedupe
      }
      if (!config_.token.empty()) {
        request.headers.set("Authorization", "Bearer " + config_.token);
      }
      requests_.inc();
      outcomes.push_back(sdk::Outcome::fromResponse(ctx_.http().send(request)));
    }
    return outcomes;
  }

 private:
  HelloConfig config_;
  sdk::DestinationContext& ctx_;
  sdk::Counter& requests_;
};

}  // namespace example::hello_destination

JUNCTION_DESTINATION_PLUGIN(example::hello_destination::HelloDestination,
                            example::hello_destination::HelloConfig,
                            example::hello_destination::helloOptions(),
                            {.name = "hello_destination",
                             .version = "1.0.0",
                             .summary = "Example: POSTs each event's JSON to a URL"})
