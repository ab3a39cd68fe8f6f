// libFuzzer target: the cursor file (core/queue/cursor_store.h), through CursorStore::read and
// CursorStore::open only — the file's layout is the store's business (it may change version);
// nothing here knows it.
//
// Input, used two ways:
//   1. as the bytes of <dir>/cursors/cursors.dat: CursorStore::read(dir), then
//      CursorStore::open(dir). Invariants: both accept or refuse the file alike and agree on
//      every cursor; a refusal is an error, never NotFound or a crash; what was accepted, written
//      again through the API (open + commit + destructor) into another directory, reads back
//      the same.
//   2. as a small program of API calls (commit an offset, commit a state with finished ranges,
//      remove, reopen) against a store in a third directory, checked against a plain map.
//      Invariant: every reopen, and a final read(), gives exactly the model (what a commit
//      writes, the next start reads).
// Seeds: cursors.dat files written by CursorStore (open + commit + destructor) in
// tests/fuzz/seed_gen.cc; they double as programs for (2).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/queue/cursor_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace junction::core::queue;
using namespace std::chrono_literals;
namespace sdk = junction::sdk;
using Cursors = std::map<std::string, CursorState>;

std::unique_ptr<CursorStore> openStore(const std::string& dir) {
  auto store = CursorStore::open(CursorStoreOptions{dir, 0ms, 0ms});  // every commit durable
  FUZZ_CHECK(store.ok(), store.ok() ? "" : store.error().message);
  return std::move(store).value();
}

std::string show(const Cursors& cursors) {
  std::string out;
  for (const auto& [name, s] : cursors) {
    out += "'" + name.substr(0, 40) + "' (" + std::to_string(name.size()) + " bytes): offset " +
           std::to_string(s.offset) + ", delivered " + std::to_string(s.delivered) + ", " +
           std::to_string(s.done.size()) + " done ranges\n";
  }
  return out;
}

Cursors readBack(const std::string& dir) {
  auto read = CursorStore::read(dir);
  FUZZ_CHECK(read.ok(), read.ok() ? "" : read.error().message);
  return std::move(read).value();
}

void checkStore(const CursorStore& store, const Cursors& expected) {
  const auto all = store.all();
  FUZZ_CHECK(all.size() == expected.size(), "open() holds " + std::to_string(all.size()) +
                                                " cursors, expected:\n" + show(expected));
  for (const auto& [name, state] : expected) {
    FUZZ_CHECK(store.state(name) == state, "cursor '" + name + "' differs; expected:\n" +
                                               show(expected));
  }
}

// 1. The input as the cursor file.
void asFile(std::string_view bytes) {
  const std::string dir = junction::fuzz::freshDir("file");
  std::filesystem::create_directories(dir + "/cursors");
  junction::fuzz::writeFile(dir + "/cursors/cursors.dat", bytes);

  auto read = CursorStore::read(dir);
  FUZZ_CHECK(read.ok() || read.error().code != sdk::ErrorCode::NotFound, read.error().message);
  auto opened = CursorStore::open(CursorStoreOptions{dir, 0ms, 0ms});
  FUZZ_CHECK(opened.ok() == read.ok(),
             std::string("read() ") + (read.ok() ? "accepted" : "refused") + " the file, open() " +
                 (opened.ok() ? "accepted" : "refused") + " it: " +
                 (read.ok() ? opened.error().message : read.error().message));
  if (!read.ok()) {
    return;
  }
  FUZZ_CHECK((*opened)->fileExisted(), "");
  checkStore(**opened, *read);
  opened->reset();

  // Accepted: written again through the API, it reads back the same.
  const std::string copy = junction::fuzz::freshDir("copy");
  Cursors expected;
  {
    auto store = openStore(copy);
    for (const auto& [name, state] : *read) {
      if (name.empty()) {
        continue;  // commit() refuses an empty name (a file may hold one; nothing writes it)
      }
      const sdk::Status st = store->commit(name, state);
      FUZZ_CHECK(st.ok(), st.message());
      expected[name] = state;
    }
  }
  if (!expected.empty()) {
    const Cursors back = readBack(copy);
    FUZZ_CHECK(back == expected, "written:\n" + show(expected) + "read back:\n" + show(back));
  }
}

// 2. The input as a program of API calls, checked against a map.
void asProgram(const std::uint8_t* data, std::size_t size) {
  static const std::string kNames[] = {"hook", "crm", "warehouse-1", "a", std::string(300, 'x'),
                                       "d\xc3\xa9j\xc3\xa0", std::string("nul\0in", 6)};
  const std::string dir = junction::fuzz::freshDir("program");
  junction::fuzz::Input in(data, size);
  Cursors model;
  auto store = openStore(dir);
  for (int step = 0; step < 24 && !in.empty(); ++step) {
    const std::uint8_t op = in.byte();
    std::string name;
    if (const std::uint8_t pick = in.byte(); pick < 200) {
      name = kNames[pick % std::size(kNames)];
    } else {
      name = std::string(in.take(pick - 199));  // 1..56 bytes of the input
    }
    switch (op % 5) {
      case 0: {  // commit(name, offset): keeps the delivered count and the ranges above
        const Offset offset = in.le(1 + in.byte() % 8);
        const sdk::Status st = store->commit(name, offset);
        if (name.empty()) {
          FUZZ_CHECK(!st.ok(), "an empty name was accepted");
          break;
        }
        FUZZ_CHECK(st.ok(), st.message());
        CursorState next{offset, 0, {}};
        if (auto it = model.find(name); it != model.end()) {
          next.delivered = it->second.delivered;
          for (const auto& range : it->second.done) {
            if (range.first >= offset) {
              next.done.push_back(range);
            }
          }
        }
        model[name] = std::move(next);
        break;
      }
      case 1: {  // commit(name, state): ranges sorted, disjoint, at or above the offset
        CursorState state;
        state.offset = in.le(1 + in.byte() % 8);
        state.delivered = in.le(1 + in.byte() % 8);
        Offset at = state.offset;
        for (int n = in.byte() % 6; n > 0; --n) {
          const Offset begin = at + in.le(2);
          const Offset end = begin + 1 + in.le(2);
          if (begin < at || end <= begin) {
            break;  // past the top of the offsets
          }
          state.done.emplace_back(begin, end);
          at = end;
        }
        const sdk::Status st = store->commit(name, state);
        if (name.empty()) {
          FUZZ_CHECK(!st.ok(), "an empty name was accepted");
          break;
        }
        FUZZ_CHECK(st.ok(), st.message());
        model[name] = std::move(state);
        break;
      }
      case 2: {
        const sdk::Status st = store->remove(name);
        FUZZ_CHECK(st.ok(), st.message());
        model.erase(name);
        break;
      }
      case 3:  // a restart
        store.reset();
        store = openStore(dir);
        checkStore(*store, model);
        break;
      case 4:
        FUZZ_CHECK(store->flush().ok(), "");
        break;
    }
  }
  checkStore(*store, model);
  store.reset();
  store = openStore(dir);
  checkStore(*store, model);
  store.reset();
  if (auto read = CursorStore::read(dir); read.ok()) {
    FUZZ_CHECK(*read == model, "read() after the program:\n" + show(*read) + "model:\n" +
                                   show(model));
  } else {
    // No commit ever wrote the file: only then may it be missing.
    FUZZ_CHECK(read.error().code == sdk::ErrorCode::NotFound && model.empty(),
               read.error().message);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  asFile(junction::fuzz::asText(data, size));
  asProgram(data, size);
  return 0;
}
