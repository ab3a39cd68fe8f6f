// The `main` of every fuzz target in the ordinary (g++) build: replays each seed of the target's
// corpus through LLVMFuzzerTestOneInput, then, for a bounded time, feeds it deterministic
// pseudo-random mutations of those seeds (bit flips, byte changes, inserts, deletes, duplicated
// ranges, splices of two seeds). No coverage feedback: this is a cheap regression net that runs
// in ctest; tests/fuzz/run builds the same targets against clang's libFuzzer for real fuzzing.
//
//   <target> [PATH...]     PATH: a corpus directory (every regular file in it) or one file
//
// Environment:
//   JUNCTION_FUZZ_SECONDS  mutation time after the seeds (default 5; 0 = seeds only)
//   JUNCTION_FUZZ_RUNS     stop after this many mutated inputs instead (0 = no bound)
//   JUNCTION_FUZZ_SEED     the generator's seed (default fixed: failures reproduce)
//   JUNCTION_FUZZ_TIMEOUT  seconds one input may take before it counts as a hang (default 20)
//
// On a crash (a signal, an abort from a failed invariant) or a hang, the input is printed as hex
// and written to ./fuzz-crash-<target>.bin; run `<target> fuzz-crash-<target>.bin` to replay it.
// The mutated inputs depend only on the seed files and JUNCTION_FUZZ_SEED, so the same input
// comes back at the same position of the sequence (printed with it).

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// What the signal handler reports; set before every input.
const std::uint8_t* g_data = nullptr;
std::size_t g_size = 0;
const char* g_what = "";  // "seed <file>" or "mutation"
std::uint64_t g_seed = 0;
std::uint64_t g_iteration = 0;
char g_artifact[512] = "fuzz-crash.bin";

void writeAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) {
      return;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void writeText(const char* s) { writeAll(2, s, std::strlen(s)); }

void writeNumber(std::uint64_t v) {
  char buf[24];
  int i = sizeof buf;
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && i > 0);
  writeAll(2, buf + i, sizeof buf - static_cast<std::size_t>(i));
}

// Async-signal-safe: write(2) and open(2) only.
void report(const char* why) {
  writeText("\n==fuzz_driver== ");
  writeText(why);
  writeText(" on ");
  writeText(g_what);
  writeText(" (JUNCTION_FUZZ_SEED=");
  writeNumber(g_seed);
  writeText(", mutation #");
  writeNumber(g_iteration);
  writeText("), input of ");
  writeNumber(g_size);
  writeText(" bytes:\n");
  static const char kHex[] = "0123456789abcdef";
  char line[80];
  for (std::size_t i = 0; g_data != nullptr && i < g_size; i += 32) {
    std::size_t n = 0;
    for (std::size_t j = i; j < g_size && j < i + 32; ++j) {
      line[n++] = kHex[g_data[j] >> 4];
      line[n++] = kHex[g_data[j] & 15];
    }
    line[n++] = '\n';
    writeAll(2, line, n);
  }
  const int fd = ::open(g_artifact, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    writeAll(fd, reinterpret_cast<const char*>(g_data), g_data != nullptr ? g_size : 0);
    ::close(fd);
    writeText("==fuzz_driver== input written to ");
    writeText(g_artifact);
    writeText("\n");
  }
}

const char* signalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT (a failed check, or a sanitizer)";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL (a trap)";
    case SIGALRM: return "hang (over JUNCTION_FUZZ_TIMEOUT seconds)";
  }
  return "signal";
}

void onSignal(int sig) {
  report(signalName(sig));
  ::signal(SIGABRT, SIG_DFL);
  ::signal(sig, SIG_DFL);
  ::raise(sig == SIGALRM ? SIGABRT : sig);
}

void installHandlers() {
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGALRM}) {
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    ::sigaction(sig, &sa, nullptr);
  }
}

std::uint64_t envNumber(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return fallback;
  }
  return std::strtoull(v, nullptr, 10);
}

unsigned g_timeout = 20;

void runOne(const std::string& input, const char* what) {
  g_data = reinterpret_cast<const std::uint8_t*>(input.data());
  g_size = input.size();
  g_what = what;
  ::alarm(g_timeout);
  LLVMFuzzerTestOneInput(g_data, g_size);
  ::alarm(0);
}

struct Seed {
  std::string name;
  std::string bytes;
};

std::vector<Seed> readSeeds(int argc, char** argv) {
  std::vector<Seed> seeds;
  for (int i = 1; i < argc; ++i) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    if (fs::is_directory(argv[i])) {
      for (const auto& entry : fs::directory_iterator(argv[i])) {
        if (entry.is_regular_file()) {
          files.push_back(entry.path());
        }
      }
      std::sort(files.begin(), files.end());
    } else {
      files.emplace_back(argv[i]);
    }
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        std::exit(2);
      }
      seeds.push_back({file.string(), std::string(std::istreambuf_iterator<char>(in), {})});
    }
  }
  return seeds;
}

// Values that tend to sit on boundaries: lengths, counts, signs.
constexpr std::uint8_t kInteresting[] = {0x00, 0x01, 0x02, 0x07, 0x0a, 0x10, 0x20, 0x22, 0x2c,
                                         0x30, 0x39, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x7f, 0x80,
                                         0xc3, 0xfe, 0xff};

class Mutator {
 public:
  Mutator(std::uint64_t seed, std::size_t max_size) : rng_(seed), max_size_(max_size) {}

  std::size_t below(std::size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  std::string mutate(const std::vector<Seed>& seeds) {
    std::string s = seeds[below(seeds.size())].bytes;
    const std::size_t steps = 1 + below(4);
    for (std::size_t i = 0; i < steps; ++i) {
      step(s, seeds);
    }
    if (s.size() > max_size_) {
      s.resize(max_size_);
    }
    return s;
  }

 private:
  void step(std::string& s, const std::vector<Seed>& seeds) {
    switch (below(9)) {
      case 0:  // flip one bit
        if (!s.empty()) {
          s[below(s.size())] ^= static_cast<char>(1u << below(8));
        }
        break;
      case 1:  // one byte to anything
        if (!s.empty()) {
          s[below(s.size())] = static_cast<char>(below(256));
        }
        break;
      case 2:  // one byte to a boundary value
        if (!s.empty()) {
          s[below(s.size())] = static_cast<char>(kInteresting[below(sizeof kInteresting)]);
        }
        break;
      case 3:  // insert 1..8 bytes
        s.insert(below(s.size() + 1), 1 + below(8), static_cast<char>(below(256)));
        break;
      case 4: {  // delete a range
        if (!s.empty()) {
          const std::size_t at = below(s.size());
          s.erase(at, 1 + below(std::min<std::size_t>(s.size() - at, 64)));
        }
        break;
      }
      case 5: {  // duplicate a range somewhere else
        if (!s.empty()) {
          const std::size_t at = below(s.size());
          const std::string piece = s.substr(at, 1 + below(std::min<std::size_t>(s.size() - at, 64)));
          s.insert(below(s.size() + 1), piece);
        }
        break;
      }
      case 6: {  // splice: the head of this input, the tail of another seed
        const std::string& other = seeds[below(seeds.size())].bytes;
        s = s.substr(0, below(s.size() + 1)) + other.substr(below(other.size() + 1));
        break;
      }
      case 7:  // cut the end off
        s.resize(below(s.size() + 1));
        break;
      case 8: {  // a little-endian integer field set to a boundary value
        if (s.size() >= 4) {
          const std::size_t at = below(s.size() - 3);
          const std::uint32_t values[] = {0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu,
                                          static_cast<std::uint32_t>(s.size()),
                                          static_cast<std::uint32_t>(below(1u << 16))};
          const std::uint32_t v = values[below(std::size(values))];
          for (int b = 0; b < 4; ++b) {
            s[at + static_cast<std::size_t>(b)] = static_cast<char>((v >> (8 * b)) & 0xff);
          }
        }
        break;
      }
    }
  }

  std::mt19937_64 rng_;
  std::size_t max_size_;
};

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) {
    LLVMFuzzerInitialize(&argc, &argv);
  }
  std::string target = std::filesystem::path(argv[0]).filename().string();
  std::snprintf(g_artifact, sizeof g_artifact, "fuzz-crash-%s.bin", target.c_str());
  g_seed = envNumber("JUNCTION_FUZZ_SEED", 0x4a756e6374696f6eull);  // "Junction"
  g_timeout = static_cast<unsigned>(envNumber("JUNCTION_FUZZ_TIMEOUT", 20));
  const std::uint64_t seconds = envNumber("JUNCTION_FUZZ_SECONDS", 5);
  const std::uint64_t runs = envNumber("JUNCTION_FUZZ_RUNS", 0);
  installHandlers();

  const std::vector<Seed> seeds = readSeeds(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  std::size_t largest = 0;
  for (const Seed& seed : seeds) {
    const std::string what = "seed " + seed.name;
    runOne(seed.bytes, what.c_str());
    largest = std::max(largest, seed.bytes.size());
  }
  const double seed_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %zu seeds replayed in %.2f s\n", target.c_str(), seeds.size(), seed_seconds);
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: no seeds given (pass the corpus directory)\n", target.c_str());
    return 2;
  }

  Mutator mutator(g_seed, std::max<std::size_t>(4096, 2 * largest));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::uint64_t done = 0;
  if (seconds > 0 || runs > 0) {
    while (runs > 0 ? done < runs : std::chrono::steady_clock::now() < deadline) {
      const std::string input = mutator.mutate(seeds);
      g_iteration = done + 1;
      runOne(input, "mutation");
      ++done;
    }
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %llu mutated inputs in %.2f s (JUNCTION_FUZZ_SEED=%llu), no crash\n",
              target.c_str(), static_cast<unsigned long long>(done), total - seed_seconds,
              static_cast<unsigned long long>(g_seed));
  return 0;
}
