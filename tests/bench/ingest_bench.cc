// CPU per event of the http source's two ingest paths on the body tests/bench/http_batch.lua
// sends (100 track events of ~300 B): the tree path (Boost.JSON DOM parse, enrichment on the
// tree, serialization) and the fast path (slices of the text, enrichment spliced in). Both
// produce the same events (tests/plugins/http/splice_test.cc); this measures what each costs.

#include <benchmark/benchmark.h>

#include <string>

#include "body.h"
#include "enrich.h"
#include "splice.h"

namespace {

using namespace junction::plugins::http;

std::string batchBody() {
  std::string body = R"({"batch":[)";
  for (int i = 1; i <= 100; ++i) {
    if (i > 1) {
      body += ',';
    }
    body += R"({"type":"track","event":"Product Viewed","userId":"user-)" + std::to_string(i % 37) +
            R"(","properties":{"product_id":"sku-)" + std::to_string(i) +
            R"(","price":19.99,"currency":"EUR","category":"bench","name":"A product with a reasonably long name"},)"
            R"("context":{"library":{"name":"wrk","version":"4"}},"timestamp":"2026-01-01T00:00:00.000Z",)"
            R"("messageId":"123456789-)" + std::to_string(i) + R"("})";
  }
  body += R"(],"sentAt":"2026-01-01T00:00:00.100Z"})";
  return body;
}

EnrichInput input() {
  EnrichInput in;
  in.received_at_ms = 1767225600000;
  in.client_ip = "127.0.0.1";
  return in;
}

void BM_TreePath(benchmark::State& state) {
  const std::string body = batchBody();
  std::size_t events = 0;
  for (auto _ : state) {
    auto parsed = parseBody(Endpoint::Batch, body);
    EnrichInput in = input();
    in.batch_sent_at = parsed->batchSentAt();
    for (auto& item : parsed->items()) {
      auto& object = item.as_object();
      auto enriched = enrichEvent(object, in);
      auto event = toEvent(object, "web", in.received_at_ms);
      benchmark::DoNotOptimize(event);
      ++events;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_TreePath);

void BM_FastPath(benchmark::State& state) {
  const std::string body = batchBody();
  std::size_t events = 0;
  for (auto _ : state) {
    auto scanned = scanBody(Endpoint::Batch, body);
    EnrichInput in = input();
    in.batch_sent_at = scanned->sent_at;
    const SpliceInput splice_input = makeSpliceInput(in, true);
    for (const ScannedEvent& item : scanned->items) {
      auto event = spliceEvent(item, scanned->members, splice_input, "web");
      if (!event) {
        state.SkipWithError("the fast path declined the benchmark's event");
        return;
      }
      benchmark::DoNotOptimize(event);
      ++events;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_FastPath);

}  // namespace

BENCHMARK_MAIN();
