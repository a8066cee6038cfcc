#!/usr/bin/env bash
# External check of the simulator with Genesys's own Python SDK and a
# third-party notifications client (tests/sdk/check.py).
#
# Installs the pinned packages into a venv (default: $CARGO_TARGET_DIR or
# target/, under sdk-venv; override with SDK_VENV), builds nothing: it runs
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

SIM_URL="$url" "$venv/bin/python" "$here/check.py"
status=$?
if [ "$status" -ne 0 ]; then
    echo "tests/sdk: simulator log tail:" >&2
    tail -n 20 "$work/err" >&2
fi
exit "$status"
