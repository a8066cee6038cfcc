#!/usr/bin/env bash
# External check of the simulator with Genesys's own Python SDK and a
# third-party notifications client (tests/sdk/check.py), then with Genesys's
# own JavaScript SDK (tests/sdk/js/check.js, npm purecloud-platform-client-v2
# pointed at the simulator with setGateway), then stream compression with
# standard clients (tests/sdk/compression.py: Python websockets' own
# permessage-deflate, zlib inflating gzip SSE) against `demo`.
#
# Installs the pinned packages into a venv (default: $CARGO_TARGET_DIR or
# target/, under sdk-venv; override with SDK_VENV) and, with `npm ci`, into
# tests/sdk/js/node_modules when a pinned package is missing; builds nothing: it runs
# $PRESENCE_GATEWAY_BIN (default target/debug/presence-gateway) as
# `simulate --listen 127.0.0.1:0`, waits for its READY line, runs the check
# and exits non-zero on failure. The last line is always "N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${PRESENCE_GATEWAY_BIN:-$target/debug/presence-gateway}"
venv="${SDK_VENV:-$target/sdk-venv}"

fail() {
    echo "tests/sdk: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

[ -x "$bin" ] || fail "no simulator binary at $bin (run cargo build, or set PRESENCE_GATEWAY_BIN)"
command -v python3 >/dev/null || fail "python3 is required"
command -v node >/dev/null || fail "node is required (Debian: apt-get install nodejs npm)"

stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    echo "tests/sdk: installing $(grep -c '^[A-Za-z]' "$here/requirements.txt") packages into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" || fail "python3 -m venv failed"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
        || fail "pip install failed"
    cp "$here/requirements.txt" "$stamp"
fi

work="$(mktemp -d)"
"$bin" simulate --listen 127.0.0.1:0 --heartbeat-secs 1 >"$work/out" 2>"$work/err" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Wait (up to 30 s) for "READY simulator=http://127.0.0.1:PORT".
url=""
for _ in $(seq 300); do
    url="$(sed -n 's/^READY simulator=//p' "$work/out" | head -n1)"
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; fail "simulator exited before READY"; }
    sleep 0.1
done
[ -n "$url" ] || { cat "$work/err" >&2; fail "simulator not READY within 30 s"; }
echo "tests/sdk: simulator at $url" >&2

js="$here/js"
if ! (cd "$js" && node -e "const fs=require('fs');for(const d of Object.keys(require('./package.json').devDependencies))if(!fs.existsSync('node_modules/'+d+'/package.json'))process.exit(1)"); then
    echo "tests/sdk: installing the JavaScript SDK check's packages (npm ci)" >&2
    (cd "$js" && npm ci --no-audit --no-fund >&2) || fail "npm ci in tests/sdk/js failed"
fi

SIM_URL="$url" "$venv/bin/python" "$here/check.py" | tee "$work/py.log"
py_status=${PIPESTATUS[0]}
SIM_URL="$url" node "$js/check.js" | tee "$work/js.log"
js_status=${PIPESTATUS[0]}

# Stream compression with standard clients (Python websockets, zlib),
# against the gateway of `demo`.
"$bin" demo --listen 127.0.0.1:0 --sim-listen 127.0.0.1:0 --agents 20 >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
trap 'cleanup; kill "$demo_pid" 2>/dev/null; wait "$demo_pid" 2>/dev/null' EXIT
gw=""
for _ in $(seq 300); do
    gw="$(sed -nE 's/^READY gateway=([^ ]+).*/\1/p' "$work/demo.out" | head -n1)"
    [ -n "$gw" ] && curl -sf "$gw/readyz" >/dev/null && break
    kill -0 "$demo_pid" 2>/dev/null || break
    sleep 0.1
done
GATEWAY_URL="$gw" "$venv/bin/python" "$here/compression.py" | tee "$work/z.log"
z_status=${PIPESTATUS[0]}
status=$((py_status || js_status || z_status))
count() { sed -nE "s/^([0-9]+) passed, ([0-9]+) failed\$/\\$2/p" "$1" | tail -n1; }
py_p=$(count "$work/py.log" 1); js_p=$(count "$work/js.log" 1)
py_f=$(count "$work/py.log" 2); js_f=$(count "$work/js.log" 2)
z_p=$(count "$work/z.log" 1); z_f=$(count "$work/z.log" 2)
if [ "$status" -ne 0 ]; then
    echo "tests/sdk: simulator log tail:" >&2
    tail -n 20 "$work/err" >&2
fi
passed=$(( ${py_p:-0} + ${js_p:-0} + ${z_p:-0} ))
failed=$(( ${py_f:-0} + ${js_f:-0} + ${z_f:-0} ))
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "python, javascript and compression checks:"
echo "$passed passed, $failed failed"
exit "$status"
