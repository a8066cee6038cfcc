#!/usr/bin/env bash
# The gateway's OpenAPI description (GET /api/v1/openapi.json) held to the
# running gateway, from the outside:
#
#   1. Schemathesis (PyPI, pinned in requirements.txt) fuzzes every
#      operation of the description against the demo (auth off), then
#      against a gateway with auth on (same simulator) with a viewer key and
#      with a supervisor key, and its admin-only routes with an admin key
#      (with a webhook subscriber): all checks (no 5xx, status codes, content
#      types, headers and bodies as described, auth enforced, …), a fixed
#      seed and a bounded number of examples. Per-operation settings are in
#      tests/openapi/schemathesis.toml; hooks.py keeps an upgraded WebSocket
#      connection out of the HTTP connection pool.
#   2. openapi-python-client generates a client from the served description
#      and client_check.py uses it to list the agents and change a presence
#      (If-Match from the ETag).
#   3. stream_check.py collects real stream messages (SSE and WebSocket:
#      snapshot, delta, status, interaction, queues, error, close codes
#      1000, 1002, 1008 and, with SIGTERM to the demo, the drain's restarting
#      status, 1001 and the SSE close message) and validates each against
#      docs/stream.schema.json.
#
# Installs the pinned packages into a venv ($CARGO_TARGET_DIR or target/,
# under openapi-venv; override with OPENAPI_VENV); builds nothing: runs
# $PRESENCE_GATEWAY_BIN (default target/debug/presence-gateway) as `demo`
# and `serve` on free ports. The last line is always "N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${PRESENCE_GATEWAY_BIN:-$target/debug/presence-gateway}"
venv="${OPENAPI_VENV:-$target/openapi-venv}"
# Examples per operation and phase; the seed makes runs repeatable.
examples="${OPENAPI_EXAMPLES:-25}"
seed="${OPENAPI_SEED:-20261129}"

fail() {
    echo "tests/openapi: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

[ -x "$bin" ] || fail "no gateway binary at $bin (run cargo build, or set PRESENCE_GATEWAY_BIN)"
command -v python3 >/dev/null || fail "python3 is required"
command -v curl >/dev/null || fail "curl is required"

stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    echo "tests/openapi: installing $(grep -c '^[A-Za-z]' "$here/requirements.txt") packages into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" || fail "python3 -m venv failed"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
        || fail "pip install failed"
    cp "$here/requirements.txt" "$stamp"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

# wait_line FILE PATTERN PID: the first line of FILE matching PATTERN
# (up to 60 s), or fail when PID exits first.
wait_line() {
    local line=""
    for _ in $(seq 600); do
        line="$(grep -m1 -E "$2" "$1" 2>/dev/null)"
        [ -n "$line" ] && { echo "$line"; return 0; }
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
wait_ready() {
    for _ in $(seq 600); do
        curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# The demo, auth off.
"$bin" demo --listen 127.0.0.1:0 --sim-listen 127.0.0.1:0 >"$work/demo.out" 2>"$work/demo.err" &
pids+=($!)
line="$(wait_line "$work/demo.out" '^READY ' "${pids[0]}")" || { tail -n 20 "$work/demo.err" >&2; fail "demo not READY"; }
open_gw="$(echo "$line" | sed -n 's/^READY gateway=\([^ ]*\).*/\1/p')"
sim="$(echo "$line" | sed -n 's/.* simulator=\([^ ]*\).*/\1/p')"

# A gateway with auth on, against the demo's simulator: a key per role.
viewer_key="viewer-$RANDOM$RANDOM-key"
supervisor_key="supervisor-$RANDOM$RANDOM-key"
admin_key="admin-$RANDOM$RANDOM-key"
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
cat >"$work/auth.toml" <<EOF
# A subscriber that never answers (nothing listens on port 9): its
# deliveries fail, so replay and dead letters have something to show.
webhooks = [{ name = "fuzz", url = "http://127.0.0.1:9/hook", secret = "fuzz-secret-0123456789", max_attempts = 1 }]
[server]
listen = "127.0.0.1:0"
[genesys]
api_base = "$sim"
client_id = "sim-client"
client_secret = "sim-secret"
[store]
path = "$work/auth.db"
[[auth.api_keys]]
name = "fuzz-viewer"
sha256 = "$(sha "$viewer_key")"
role = "viewer"
[[auth.api_keys]]
name = "fuzz-supervisor"
sha256 = "$(sha "$supervisor_key")"
role = "supervisor"
[[auth.api_keys]]
name = "fuzz-admin"
sha256 = "$(sha "$admin_key")"
role = "admin"
EOF
"$bin" serve --config "$work/auth.toml" >"$work/auth.out" 2>"$work/auth.err" &
pids+=($!)
line="$(wait_line "$work/auth.out" '^READY ' "${pids[1]}")" || { tail -n 20 "$work/auth.err" >&2; fail "auth-on gateway not READY"; }
auth_gw="$(echo "$line" | sed -n 's/^READY gateway=\([^ ]*\).*/\1/p')"
wait_ready "$open_gw" || fail "demo never ready"
wait_ready "$auth_gw" || fail "auth-on gateway never ready"
echo "tests/openapi: demo at $open_gw (auth off), $auth_gw (auth on), simulator $sim" >&2

passed=0
failed=0
record() { # NAME STATUS
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "ok   $1"
    else
        failed=$((failed + 1)); echo "FAIL $1"
    fi
}

# Schemathesis: every operation, all checks, fixed seed, bounded examples.
st_run() { # NAME BASE [HEADER [MORE ARGS…]]
    local name="$1" base="$2" hdr=()
    [ $# -ge 3 ] && hdr=(-H "$3")
    [ $# -ge 4 ] && hdr+=("${@:4}")
    # Run from the scratch directory: Schemathesis and Hypothesis keep
    # their caches in the working directory.
    (cd "$work" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here" PYTHONDONTWRITEBYTECODE=1 \
        "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$base/api/v1/openapi.json" \
        --checks all --seed "$seed" --max-examples "$examples" \
        --generation-database none --request-timeout 10 --workers 1 \
        --no-color --output-truncate true "${hdr[@]}") >"$work/st-$name.log" 2>&1
    local s=$?
    grep -E '^(Failures|  [❌✅⚠])| generated|^=+ .* in [0-9.]+s' "$work/st-$name.log" | sed "s/^/  [$name] /"
    if [ "$s" -ne 0 ]; then
        sed -n '/= \(FAILURES\|ERRORS\) =/,/= SUMMARY =/p' "$work/st-$name.log" | cut -c1-400 | head -n 300
    fi
    record "schemathesis $name" "$s"
}
st_run auth-off "$open_gw"
st_run viewer "$auth_gw" "Authorization: Bearer $viewer_key"
st_run supervisor "$auth_gw" "Authorization: Bearer $supervisor_key"
# The admin-only routes (audit, webhooks: viewer and supervisor get 403)
# once more with the admin key, against a gateway with a subscriber.
st_run admin "$auth_gw" "Authorization: Bearer $admin_key" --include-path-regex '^/api/v1/(audit|webhooks)'

# A client generated from the served description.
# From the auth-on gateway: its description has the security schemes and
# the 401s (the auth-off one states that no credential is needed).
curl -fsS "$auth_gw/api/v1/openapi.json" >"$work/openapi.json" || fail "no description served"
mkdir -p "$work/pkg"
if (cd "$work" && "$venv/bin/openapi-python-client" generate --path openapi.json \
        --output-path "$work/pkg/presence_gateway_client" --meta none >"$work/gen.log" 2>&1); then
    CLIENT_DIR="$work/pkg" GATEWAY_URL="$open_gw" AUTH_GATEWAY_URL="$auth_gw" \
        SUPERVISOR_KEY="$supervisor_key" PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$here/client_check.py"
    record "generated client (openapi-python-client)" $?
else
    cat "$work/gen.log"
    record "generated client (openapi-python-client)" 1
fi

# Real stream messages against docs/stream.schema.json.
# Last: it ends with SIGTERM to the demo (the drain's messages and codes).
GATEWAY_URL="$open_gw" GATEWAY_PID="${pids[0]}" SCHEMA="$root/docs/stream.schema.json" \
    "$venv/bin/python" "$here/stream_check.py"
record "stream messages against docs/stream.schema.json" $?

echo "openapi checks:"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
