#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (real sockets, the
# real simulator), browser tests of the pages in headless Chromium, the
# check of the simulator with Genesys's own client library, and the OpenAPI
# description held to the running gateway (Schemathesis, a generated
# client, stream messages against docs/stream.schema.json). Prints one
# closing line "N passed, N failed" over all of them; exits non-zero on any
# failure.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=target/test-logs
mkdir -p "$logs"
passed=0
failed=0
status=0

section() { printf '\n== %s\n' "$*"; }

section "build"
cargo build --locked --workspace || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

section "cargo test"
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$logs/cargo.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
p=$(grep -E '^test result:' "$logs/cargo.log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ - | bc)
f=$(grep -E '^test result:' "$logs/cargo.log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ - | bc)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

section "browser tests (headless Chromium)"
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is not installed: run 'apt-get install chromium' (Debian's package; .ci/run does this)"
  status=1; failed=$((failed + 1))
else
  ( cd tests/browser && { node -e "const fs=require('fs');for(const d of Object.keys(require('./package.json').devDependencies))if(!fs.existsSync('node_modules/'+d+'/package.json'))process.exit(1)" || npm ci --no-audit --no-fund; } && npm test ) 2>&1 | tee "$logs/browser.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  p=$(grep -E '^ℹ pass ' "$logs/browser.log" | tail -1 | awk '{print $3}')
  f=$(grep -E '^ℹ (fail|cancelled) ' "$logs/browser.log" | awk '{s+=$3} END {print s+0}')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
fi

if [ -x tests/sdk/run.sh ]; then
  section "Genesys SDK check against the simulator"
  tests/sdk/run.sh 2>&1 | tee "$logs/sdk.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/sdk.log" | tail -1)
  p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
fi

if [ -x tests/openapi/run.sh ]; then
  section "OpenAPI description: Schemathesis, a generated client, stream messages"
  tests/openapi/run.sh 2>&1 | tee "$logs/openapi.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/openapi.log" | tail -1)
  p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
fi

if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo
echo "$passed passed, $failed failed"
exit $status
