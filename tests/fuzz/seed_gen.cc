// Writes the binary seeds of the fuzz targets with Junction's own code, so that they are in the
// current formats: queue records and segment files (encodeRecord, Log::append), cursor files
// (CursorStore::open + commit + destructor: the layout is the store's, never written here) and
// signed webhook requests (signWebhook).
//
//   fuzz_seed_gen tests/fuzz/corpus      (rewrites the generated files; hand-written ones stay)
//
// Run it again after a format change (a new record or cursor file version) and commit the
// result; old-format seeds may stay as well, since readers keep reading old versions.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "core/queue/crc32c.h"
#include "core/queue/cursor_store.h"
#include "core/queue/log.h"
#include "core/queue/record.h"
#include "junction/sdk/webhook_signature.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;
namespace sdk = junction::sdk;
using namespace junction::core::queue;
using namespace std::chrono_literals;

// Must match webhook_signature_fuzz.cc.
constexpr std::string_view kWebhookSecret = "whsec_fuzz_5b7e0c1d9a";
constexpr std::int64_t kNow = 1767225600;

fs::path g_out;

void put(const std::string& target, const std::string& name, std::string_view bytes) {
  const fs::path dir = g_out / target;
  fs::create_directories(dir);
  junction::fuzz::writeFile((dir / name).string(), bytes);
  std::printf("%s/%s (%zu bytes)\n", target.c_str(), name.c_str(), bytes.size());
}

sdk::Event event(sdk::EventType type, std::string id, std::string user, std::string anon,
                 std::string name, std::string json) {
  sdk::EventHeader h;
  h.type = type;
  h.message_id = std::move(id);
  h.user_id = std::move(user);
  h.anonymous_id = std::move(anon);
  h.name = std::move(name);
  h.source_id = "web";
  h.timestamp_ms = 1767225600000;
  h.received_at_ms = 1767225600123;
  return sdk::Event(h, std::move(json));
}

std::vector<sdk::Event> events() {
  return {
      event(sdk::EventType::Track, "m-1", "u1", "", "Order Completed",
            R"({"type":"track","event":"Order Completed","userId":"u1","messageId":"m-1",)"
            R"("properties":{"total":42.5,"items":[1,2]}})"),
      event(sdk::EventType::Identify, "m-2", "u2", "anon-2", "",
            R"({"type":"identify","userId":"u2","anonymousId":"anon-2",)"
            R"("traits":{"email":"ada@example.com","name":"Ada"}})"),
      event(sdk::EventType::Page, "m-3", "", "anon-3", "Accueil \xc3\xa9t\xc3\xa9",
            R"({"type":"page","anonymousId":"anon-3","name":"Accueil \u00e9t\u00e9"})"),
      event(sdk::EventType::Alias, "m-4", "u4", "", "", R"({"type":"alias","userId":"u4","previousId":"anon-9"})"),
      event(sdk::EventType::Track, "", "", "", "", ""),  // every string empty
  };
}

std::string record(const sdk::Event& e, std::uint16_t tag = 0) {
  std::string out;
  if (!encodeRecord(e, out).ok()) {
    std::abort();
  }
  if (tag != 0) {
    stampRecord(out.data(), tag);
  }
  return out;
}

// A version-1 record (read in any segment, never written any more): version byte 1, tag bytes
// 0, CRC32C of bytes 4-11 and the payload.
std::string recordV1(const sdk::Event& e) {
  std::string out = record(e);
  out[4] = 1;
  std::uint32_t crc = crc32c(out.data() + 4, 8);
  crc = crc32c(out.data() + kRecordHeaderSize, out.size() - kRecordHeaderSize, crc);
  for (int i = 0; i < 4; ++i) {
    out[12 + static_cast<std::size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
  return out;
}

void records() {
  const auto all = events();
  put("record", "track.bin", record(all[0]));
  put("record", "identify.bin", record(all[1]));
  put("record", "page_utf8.bin", record(all[2]));
  put("record", "alias.bin", record(all[3]));
  put("record", "all_empty.bin", record(all[4]));
  put("record", "tagged.bin", record(all[0], segmentTag(0)));
  put("record", "version1.bin", recordV1(all[1]));
  put("record", "two_records.bin", record(all[0]) + record(all[3]));
  put("record", "payload_only.bin", record(all[1]).substr(kRecordHeaderSize));
  std::string torn = record(all[0]);
  torn.resize(torn.size() - 7);
  put("record", "truncated.bin", torn);
}

// A segment written by the log itself: `events` appended to a fresh queue.
std::string segmentOf(const std::vector<sdk::Event>& evs) {
  const std::string dir = junction::fuzz::freshDir("seed-queue");
  LogOptions options;
  options.path = dir;
  options.fsync = FsyncPolicy::Never;
  {
    auto log = Log::open(options, nullptr);
    if (!log.ok()) {
      std::abort();
    }
    std::promise<void> done;
    if (!(*log)->append(evs, [&](AppendResult) { done.set_value(); }).ok()) {
      std::abort();
    }
    done.get_future().wait();
  }
  return junction::fuzz::readFile(dir + "/" + segmentFileName(0));
}

void segments() {
  const auto all = events();
  const std::string clean = segmentOf({all[0], all[1], all[3]});
  put("log_recovery", "clean.seg", clean);
  put("log_recovery", "empty.seg", "");
  // A crash mid-write: the last record cut short.
  const std::string four = segmentOf({all[0], all[1], all[3], all[2]});
  put("log_recovery", "torn_tail.seg", four.substr(0, four.size() - 20));
  // A damaged byte in the second record: a corrupt region between valid records.
  std::string damaged = four;
  damaged[record(all[0]).size() + 30] ^= 0x5a;
  put("log_recovery", "corrupt_middle.seg", damaged);
  // A recycled file: this segment's records, then an older use's (another tag).
  put("log_recovery", "stale_tail.seg",
      clean + record(all[2], segmentTag(7u << 16)) + record(all[0], segmentTag(7u << 16)));
  // An older release's untagged records.
  put("log_recovery", "version1.seg", recordV1(all[0]) + recordV1(all[4]) + recordV1(all[1]));
  // Zeros after the data (a preallocated or extended file).
  put("log_recovery", "zero_tail.seg", clean + std::string(64, '\0'));
}

// cursors.dat as CursorStore writes it: open, commit, destructor.
std::string cursorFile(const std::vector<std::pair<std::string, CursorState>>& cursors,
                       bool remove_first = false) {
  const std::string dir = junction::fuzz::freshDir("seed-cursors");
  {
    auto store = CursorStore::open(CursorStoreOptions{dir, 0ms, 0ms});
    if (!store.ok()) {
      std::abort();
    }
    if (!(*store)->createFile().ok()) {
      std::abort();
    }
    for (const auto& [name, state] : cursors) {
      if (!(*store)->commit(name, state).ok()) {
        std::abort();
      }
    }
    if (remove_first && !cursors.empty() && !(*store)->remove(cursors.front().first).ok()) {
      std::abort();
    }
  }
  return junction::fuzz::readFile(dir + "/cursors/cursors.dat");
}

void cursors() {
  put("cursor", "empty.dat", cursorFile({}));
  put("cursor", "one.dat", cursorFile({{"hook", CursorState{4096, 12, {}}}}));
  put("cursor", "done_ranges.dat",
      cursorFile({{"crm", CursorState{1000, 7, {{1200, 1300}, {1500, 2048}}}},
                  {"hook", CursorState{65536, 1u << 20, {{70000, 70001}}}},
                  {"warehouse", CursorState{0, 0, {}}}}));
  put("cursor", "removed.dat",
      cursorFile({{"gone", CursorState{1, 1, {}}}, {"kept", CursorState{2, 2, {{3, 4}}}}}, true));
  put("cursor", "long_name.dat",
      cursorFile({{std::string(300, 'n'), CursorState{UINT64_MAX - 1, UINT64_MAX, {}}}}));
}

void signatures() {
  const std::string batch =
      R"({"batch":[{"type":"track","event":"Clicked","messageId":"m-1","userId":"u1"}]})";
  const std::string header = sdk::signWebhook(kWebhookSecret, kNow, batch);
  const std::string hex = sdk::webhookSignatureHex(kWebhookSecret, kNow, batch);
  const std::string t = "t=" + std::to_string(kNow);
  put("webhook_signature", "valid.txt", header + "\n" + batch);
  put("webhook_signature", "empty_body.txt", sdk::signWebhook(kWebhookSecret, kNow, "") + "\n");
  put("webhook_signature", "spaces.txt", " " + t + " ,\tv1= " + hex + " \n" + batch);
  put("webhook_signature", "rotated.txt",
      t + ",v1=" + sdk::webhookSignatureHex("whsec_previous", kNow, batch) + ",v1=" + hex + "\n" +
          batch);
  put("webhook_signature", "v2_ignored.txt", header + ",v2=deadbeef\n" + batch);
  put("webhook_signature", "stale.txt",
      sdk::signWebhook(kWebhookSecret, kNow - 301, batch) + "\n" + batch);
  put("webhook_signature", "future.txt",
      sdk::signWebhook(kWebhookSecret, kNow + 300, batch) + "\n" + batch);
  put("webhook_signature", "two_t.txt", t + "," + header + "\n" + batch);
  put("webhook_signature", "no_t.txt", "v1=" + hex + "\n" + batch);
  put("webhook_signature", "wrong_body.txt", header + "\n" + batch + " ");
  put("webhook_signature", "negative_t.txt", "t=-1,v1=" + hex + "\n" + batch);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  records();
  segments();
  cursors();
  signatures();
  return 0;
}
