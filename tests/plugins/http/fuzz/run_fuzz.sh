#!/usr/bin/env bash
# Builds the http source's body-parser fuzz target with clang's libFuzzer + AddressSanitizer
# (separately from the main build, which may use g++) and runs it for a bounded time.
# Usage: run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]. Exit 77 (ctest: skipped) without clang or
# libFuzzer.
set -euo pipefail
src=$1
out=$2/fuzz/http_body
seconds=${3:-20}
CXX=${FUZZ_CXX:-clang++}
mkdir -p "$out"

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "SKIP: $CXX not found (the fuzz target needs clang with libFuzzer)"
  exit 77
fi
probe=$out/probe.cc
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe"
if ! "$CXX" -fsanitize=fuzzer "$probe" -o "$out/probe" >/dev/null 2>&1; then
  echo "SKIP: $CXX cannot link -fsanitize=fuzzer (libFuzzer absent: apt-get install libclang-rt-dev)"
  exit 77
fi

binary=$out/http_body_fuzz
sources=(
  "$src/tests/plugins/http/fuzz/http_body_fuzz.cc"
  "$src/plugins/http/body.cc" "$src/plugins/http/enrich.cc" "$src/plugins/http/auth.cc"
  "$src/plugins/http/splice.cc" "$src/sdk/src/json_scan.cc"
  "$src/sdk/src/event.cc" "$src/sdk/src/json.cc" "$src/sdk/src/crypto.cc" "$src/sdk/src/strings.cc"
)
newest=$(ls -t "${sources[@]}" "$0" | head -1)
if [ ! -x "$binary" ] || [ "$newest" -nt "$binary" ]; then
  echo "building $binary"
  "$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -DBOOST_JSON_NO_LIB -I"$src/sdk/include" -I"$src/plugins/http" \
    "${sources[@]}" -lboost_json -lz -lcrypto -o "$binary"
fi

corpus=$out/corpus
mkdir -p "$corpus"
# Seeds: byte 0 = endpoint (0 track .. 6 batch, +8 gzip), byte 1 = ip policy.
printf '\x00\x00{"userId":"u","event":"E","timestamp":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:01Z"}' > "$corpus/track"
printf '\x06\x02{"batch":[{"type":"track","userId":"u","event":"E","context":{"ip":"10.0.0.1"}},{"type":"alias","userId":"u","previousId":"p"},3],"context":{"a":1},"sentAt":"2026-01-01T00:00:00+02:00","writeKey":"k"}' > "$corpus/batch"
printf '\x01\x01{"anonymousId":7,"traits":{"x":[1,2,{"y":null}]},"messageId":""}' > "$corpus/identify"
printf '\x00\x00{"userId":"u","event":"E","properties":{"price":1e400,"n":-2E+308}}' > "$corpus/out_of_range"
printf '\x06\x00{"batch":[{"type":"track","userId":"u","event":"A"},{"type":"identify","userId":"u","traits":{"a":1,"a":2}},{"type":"track","userId":"u","event":"B","context":{"consent":{"categoryPreferences":{"m":true,"m":false}}}}]}' > "$corpus/duplicate_keys"
printf '\x06\x00[{"type":"track","userId":"u","event":"A","x":{"\\u0061":1,"a":2}},{"type":"track","userId":"u","event":"B","n":[1e-400,1e309]}]' > "$corpus/escaped_duplicate"
{ printf '\x0e\x00'; printf '{"batch":[{"type":"page","userId":"u","name":"n"}]}' | gzip -c; } > "$corpus/gzip"

echo "fuzzing for ${seconds}s"
"$binary" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$out/" "$corpus" 2>&1 | tail -25
echo "fuzzing: no crash"
