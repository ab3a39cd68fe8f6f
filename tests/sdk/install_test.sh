#!/usr/bin/env bash
# The SDK as an integrator gets it: install it, build the out-of-tree example plugin against the
# installed package only (find_package(Junction) + junction_add_plugin), then prove that the
# daemon loads it: `junction plugins`, `junctiond --check`, and a real junctiond that starts a
# destination with it, answers /healthz and exits 0 on SIGTERM.
#
#   install_test.sh SOURCE_DIR BUILD_DIR CMAKE CXX_COMPILER [MAKE_PROGRAM]
#
# Everything goes to one temporary directory, removed on exit (pass or fail).
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 SOURCE_DIR BUILD_DIR CMAKE CXX_COMPILER [MAKE_PROGRAM]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
cmake=$3
cxx=$4
make_program=${5:-ninja}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/junction-install-test.XXXXXX")
daemon_pid=
receiver_pid=
cleanup() {
  for pid in $daemon_pid $receiver_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "--- $*"; }
# Fails unless file $1 contains the fixed string $2.
expect_in() {
  grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "expected '$2' in $(basename "$1")"; }
}

# --- 1. install --------------------------------------------------------------------------------
step "cmake --install $build --prefix $tmp/prefix"
"$cmake" --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
for f in include/junction/sdk/plugin.h include/junction/sdk/destination.h \
  include/junction/sdk/testing/fake_context.h include/junction/sdk/testing/scripted_http_server.h; do
  [[ -f $tmp/prefix/$f ]] || fail "not installed: $f"
done
for f in libjunction_sdk.a libjunction_sdk_testing.a JunctionConfig.cmake \
  JunctionConfigVersion.cmake JunctionTargets.cmake plugin.map; do
  [[ -n $(find "$tmp/prefix" -name "$f" -print -quit) ]] || fail "not installed: $f"
done

# --- 2. build the example out of tree, against the installed package only --------------------
example_src=$src/sdk/examples/hello_destination
example=$tmp/example
step "configure and build $example_src"
"$cmake" -S "$example_src" -B "$example" -G Ninja \
  -DCMAKE_MAKE_PROGRAM="$make_program" \
  -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  "-DCMAKE_CXX_FLAGS=${CXXFLAGS:-} -Werror" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log" >&2; fail "configuring the example failed"; }
"$cmake" --build "$example" -j2 >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; fail "building the example failed"; }
plugin=$example/libjunction_hello_destination.so
[[ -f $plugin ]] || fail "the example build made no $plugin"

# The package came from the install prefix, and no source-tree header was on the include path.
grep -q "^Junction_DIR:PATH=$tmp/prefix/" "$example/CMakeCache.txt" ||
  { grep Junction_DIR "$example/CMakeCache.txt" >&2; fail "Junction was not found in $tmp/prefix"; }
if grep -qF -- "$src/sdk/include" "$example/compile_commands.json"; then
  cat "$example/compile_commands.json" >&2
  fail "the example was compiled against the source tree's SDK headers"
fi

# junction_add_plugin applied the version script: only the entry point (and SDK typeinfo).
nm -D --defined-only "$plugin" | awk '{print $NF}' >"$tmp/exports.txt"
expect_in "$tmp/exports.txt" junction_plugin_entry_v3
if grep -vE '^(junction_plugin_entry_v3|_ZTIN8junction3sdk.*|_ZTSN8junction3sdk.*)$' "$tmp/exports.txt"; then
  fail "the example plugin exports more than its entry point"
fi

# --- 3. the installed testing kit links out of tree (its exported link dependencies resolve) --
kit=$tmp/kit
mkdir -p "$kit/src"
cat >"$kit/src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.25)
project(kit_check LANGUAGES CXX)
find_package(Junction 1 REQUIRED)
add_executable(kit_check kit_check.cc)
set_target_properties(kit_check PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON)
target_link_libraries(kit_check PRIVATE Junction::sdk_testing)
EOF
cat >"$kit/src/kit_check.cc" <<'EOF'
// A 429 from a ScriptedHttpServer, sent with a FakeDestinationContext's client, is a Retry
// after the Retry-After delay.
#include <junction/sdk/destination.h>
#include <junction/sdk/http_client.h>
#include <junction/sdk/testing/fake_context.h>
#include <junction/sdk/testing/scripted_http_server.h>

int main() {
  namespace sdk = junction::sdk;
  sdk::testing::ScriptedHttpServer server;
  server.when("POST", "/hook").reply(429, "slow down", {{"Retry-After", "3"}});
  sdk::testing::FakeDestinationContext ctx;
  sdk::HttpClientRequest request;
  request.method = "POST";
  request.url = server.baseUrl() + "/hook";
  const auto outcome = sdk::Outcome::fromResponse(ctx.http().send(request));
  const bool ok = outcome.kind == sdk::Outcome::Kind::Retry &&
                  outcome.retry_after.count() == 3000 && server.requests().size() == 1;
  return ok ? 0 : 1;
}
EOF
step "build and run a unit test against Junction::sdk_testing"
"$cmake" -S "$kit/src" -B "$kit/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$make_program" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$tmp/kit.log" 2>&1 &&
  "$cmake" --build "$kit/build" -j2 >>"$tmp/kit.log" 2>&1 ||
  { cat "$tmp/kit.log" >&2; fail "a program using the installed testing kit does not build"; }
"$kit/build/kit_check" || fail "the testing kit check failed"

# --- 4. the daemon loads it --------------------------------------------------------------------
# A receiver for what the example POSTs: one JSON line per request (path, Authorization, body).
# Without python3 the delivery check is skipped; loading and starting are still checked.
receiver_port=9  # discard: nothing listens there, deliveries would only be retried
if command -v python3 >/dev/null; then
  cat >"$tmp/receiver.py" <<'PY'
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with open(sys.argv[1], "a") as out:
            out.write(json.dumps({"path": self.path,
                                  "authorization": self.headers.get("Authorization"),
                                  "body": body}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
  python3 "$tmp/receiver.py" "$tmp/received.ndjson" >"$tmp/receiver.port" &
  receiver_pid=$!
  for _ in $(seq 1 100); do
    [[ -s $tmp/receiver.port ]] && break
    sleep 0.1
  done
  receiver_port=$(head -1 "$tmp/receiver.port")
  [[ -n $receiver_port ]] || fail "the test receiver did not start"
fi
secret=install-test-secret-4711
cat >"$tmp/junction.yaml" <<EOF
server: { listen: "127.0.0.1:0" }
storage: { path: "$tmp/data" }
plugins: { paths: ["$example", "$build/tests/fixtures/sources"] }
sources:
  - id: in
    plugin: test_source
destinations:
  - id: hello
    plugin: hello_destination
    from: [in]
    config: { url: "http://127.0.0.1:$receiver_port/hook", token: "$secret", timeout: 2s }
EOF

step "junction plugins hello_destination"
"$build/bin/junction" plugins hello_destination --config "$tmp/junction.yaml" \
  >"$tmp/plugins.txt" 2>&1 || { cat "$tmp/plugins.txt" >&2; fail "junction plugins failed"; }
cat "$tmp/plugins.txt"
expect_in "$tmp/plugins.txt" "hello_destination 1.0.0 (destination)"
expect_in "$tmp/plugins.txt" "$plugin"
expect_in "$tmp/plugins.txt" "url  (string, required)"
expect_in "$tmp/plugins.txt" "token  (string, secret"
expect_in "$tmp/plugins.txt" "timeout  (duration"

step "junctiond --check"
"$build/bin/junctiond" --config "$tmp/junction.yaml" --check >"$tmp/check.txt" 2>&1 ||
  { cat "$tmp/check.txt" >&2; fail "junctiond --check refused the configuration"; }
expect_in "$tmp/check.txt" "OK (1 sources, 1 destinations"

step "junctiond"
"$build/bin/junctiond" --config "$tmp/junction.yaml" 2>"$tmp/daemon.log" &
daemon_pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/.*junctiond ready listen=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/daemon.log")
  [[ -n $port ]] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/daemon.log" >&2; fail "junctiond exited early"; }
  sleep 0.1
done
[[ -n $port ]] || { cat "$tmp/daemon.log" >&2; fail "junctiond did not report 'ready' in 20 s"; }
expect_in "$tmp/daemon.log" "destination started id=hello plugin=hello_destination"

# http METHOD PATH [BODY]: prints the raw response (status line, headers, body).
http() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$1" "$2" "${#3}" "$3" >&3
  timeout 10 cat <&3 || true
  exec 3<&-
}
http GET /healthz "" >"$tmp/healthz.txt"
head -1 "$tmp/healthz.txt" | grep -q "^HTTP/1.1 200" || { cat "$tmp/healthz.txt" >&2; fail "GET /healthz is not 200"; }
http POST /test/events '[{"type":"track","event":"Install Tested","userId":"u1"}]' >"$tmp/post.txt"
head -1 "$tmp/post.txt" | grep -q "^HTTP/1.1 200" || { cat "$tmp/post.txt" >&2; fail "POST /test/events is not 200"; }
if [[ -n $receiver_pid ]]; then
  step "the example delivers the event to its url"
  for _ in $(seq 1 150); do
    [[ -s $tmp/received.ndjson ]] && break
    sleep 0.1
  done
  [[ -s $tmp/received.ndjson ]] || { cat "$tmp/daemon.log" >&2; fail "nothing reached the receiver in 15 s"; }
  cat "$tmp/received.ndjson"
  expect_in "$tmp/received.ndjson" '"path": "/hook"'
  expect_in "$tmp/received.ndjson" "\"authorization\": \"Bearer $secret\""
  expect_in "$tmp/received.ndjson" 'Install Tested'
else
  echo "SKIP: no python3; delivery to the receiver not checked"
fi

kill -TERM "$daemon_pid"
for _ in $(seq 1 300); do
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$daemon_pid" 2>/dev/null && { cat "$tmp/daemon.log" >&2; fail "junctiond did not exit within 30 s of SIGTERM"; }
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
[[ $rc -eq 0 ]] || { cat "$tmp/daemon.log" >&2; fail "junctiond exited $rc after SIGTERM"; }
if grep -qF -- "$secret" "$tmp/daemon.log"; then
  cat "$tmp/daemon.log" >&2
  fail "the secret token appears in junctiond's log"
fi
cat "$tmp/daemon.log"
echo "PASS: the installed SDK builds the example; junctiond loads, starts and runs it"
