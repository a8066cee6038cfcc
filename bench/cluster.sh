#!/usr/bin/env bash
# Cluster benchmark (issue 20): three gateway nodes on one Redis against the
# simulator, on this machine, with one standalone node in the same run as
# the baseline. Prints figures as lines `name value unit`:
#
#   {standalone,cluster}_deliveries_per_s   changes delivered to clients per s (all clients; follows the
#                                           simulator's random mix of events unless the machine saturates)
#   {standalone,cluster}_cpu_us_per_delivery gateway CPU (all nodes; not Redis) ÷ changes delivered
#   {standalone,cluster}_p50_ms / _p99_ms   simulator emission → client (cluster: worst node)
#   cluster_node_<id>_{p50,p99}_ms          per node
#   {standalone,cluster}_clients_wrong      clients whose map differs from /sim/state after the drain
#   {standalone,cluster}_seq_gaps           missing seqs seen by clients
#   cluster_takeover_ms                     leader SIGKILLed → a survivor reports role leader (median; polled, ±50 ms)
#   cluster_failover_ms                     leader SIGKILLed → first delta from the new leader at a client (median; _max too)
#   redis_ops_per_upstream_event            Redis commands (INFO commandstats) ÷ events the simulator sent the leader
#   redis_ops_per_upstream_event_net        the same less the idle rate over the window (what the events cost)
#   redis_ops_per_sim_event                 the same ÷ every event the simulator emitted (subscribed or not)
#   redis_ops_idle_per_s                    Redis commands per s with no churn (lease, polls)
#   redis_<cmd>_per_upstream_event          the five busiest commands
#
# The clients are the same in both phases: LOADGEN_PROCS loadgen processes of
# CLIENTS/LOADGEN_PROCS clients each, all on the one standalone node, then
# one process per cluster node. Each loadgen process turns the simulator's
# churn on for its own window; their windows start within a few hundred ms
# of one another.
#
# Knobs (environment):
#   CLIENTS=900        clients in all (WebSocket + SSE), spread over the nodes
#   WS_PERCENT=50      share of WebSocket clients
#   EVENTS=10          simulator churn during the windows (events/s)
#   DURATION=30        fan-out window (s)
#   AGENTS=200         agents in the simulated org
#   LEASE_MS=5000      [cluster] lease_ms of the nodes (the default)
#   FAILOVERS=3        leader kills (each killed node is started again)
#   OPS_WINDOW=20      window of the Redis-operations count (s), with and without churn
#   LOADGEN_THREADS=1  tokio workers per loadgen process
#   SKIP_BUILD=0       1: use the existing release binaries
# Defaults finish in about 4 minutes on 2 cores (release build not counted).
set -euo pipefail
export LC_ALL=C

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out/cluster
rm -rf "$OUT"
mkdir -p "$OUT"

CLIENTS=${CLIENTS:-900}
WS_PERCENT=${WS_PERCENT:-50}
EVENTS=${EVENTS:-10}
DURATION=${DURATION:-30}
AGENTS=${AGENTS:-200}
LEASE_MS=${LEASE_MS:-5000}
FAILOVERS=${FAILOVERS:-3}
OPS_WINDOW=${OPS_WINDOW:-20}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
LOADGEN_PROCS=3
NODES=(a b c)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release

ulimit -n 20000 || true
for tool in redis-server redis-cli curl jq python3; do
  command -v "$tool" >/dev/null || { echo "bench/cluster.sh needs $tool (Debian: redis-server, curl, jq, python3)"; exit 1; }
done

if [ "$SKIP_BUILD" != 1 ]; then
  echo "== building release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
  cargo build --release -p presence-gateway -p loadgen
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

log() { echo "== $*" >&2; }
figure() { printf '%s %s %s\n' "$1" "$2" "$3"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { echo "$EPOCHREALTIME"; }
ms_since() { python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$1" "$2"; }

# wait_ready_line FILE: waits (60 s at most) for a READY line in FILE, prints it.
wait_ready_line() {
  for _ in $(seq 600); do
    if grep -q '^READY' "$1" 2>/dev/null; then grep -m1 '^READY' "$1"; return 0; fi
    sleep 0.1
  done
  echo "no READY line in $1" >&2; return 1
}
# wait_http URL [SECONDS]: until URL answers 2xx.
wait_http() {
  local deadline=$((SECONDS + ${2:-120}))
  until curl -sf "$1" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "$1 never answered 2xx" >&2; return 1; }
    sleep 0.2
  done
}

# ---------------------------------------------------------------- Redis, simulator
RPORT=$(free_port)
mkdir -p "$OUT/redis"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$OUT/redis" --logfile "$OUT/redis/redis.log" &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$RPORT" ping >/dev/null || { echo "redis-server did not start"; exit 1; }
log "redis on 127.0.0.1:$RPORT ($(redis-server --version | awk '{print $3}'))"

"$BIN/presence-gateway" simulate --listen 127.0.0.1:0 --agents "$AGENTS" --churn 0 \
  --presence-events-without-modified-date false >"$OUT/sim.stdout" 2>"$OUT/sim.stderr" &
PIDS+=($!)
SIM=$(wait_ready_line "$OUT/sim.stdout" | sed -E 's/.*simulator=http:\/\/([^ ]+).*/\1/')
log "simulator $SIM ($AGENTS agents)"

sim_counter() { curl -sf "http://$SIM/sim/stats" | jq -r ".counters.$1"; }
set_churn() { curl -sf -X POST "http://$SIM/sim/churn" -d "{\"eventsPerSecond\": $1}" >/dev/null; }

# ---------------------------------------------------------------- nodes
# write_config NAME [cluster]: a node's config file (its own store).
write_config() {
  local name=$1 dir="$OUT/$1"
  mkdir -p "$dir"
  cat >"$dir/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:0"
workers = 1
[genesys]
api_base = "http://$SIM"
client_id = "sim-client"
client_secret = "sim-secret"
[store]
path = "$dir/store.db"
[log]
level = "warn"
EOF
  if [ "${2:-}" = cluster ]; then
    cat >>"$dir/gateway.toml" <<EOF
[cluster]
redis_url = "redis://127.0.0.1:$RPORT"
node_id = "node-$name"
lease_ms = $LEASE_MS
EOF
  fi
}

declare -A NODE_PID NODE_ADDR
# start_node NAME: starts `serve` with NAME's config; sets NODE_PID/NODE_ADDR.
start_node() {
  local name=$1 dir="$OUT/$1"
  : >"$dir/stdout"
  "$BIN/presence-gateway" serve --config "$dir/gateway.toml" >"$dir/stdout" 2>>"$dir/stderr" &
  NODE_PID[$name]=$!
  PIDS+=($!)
  NODE_ADDR[$name]=$(wait_ready_line "$dir/stdout" | sed -E 's/.*gateway=http:\/\/([^ ]+).*/\1/')
}
role() { curl -s "http://${NODE_ADDR[$1]}/readyz" | jq -r '.role // empty' 2>/dev/null || true; }
seq_of() { curl -sf "http://${NODE_ADDR[$1]}/api/v1/agents?agent=none" | jq -r '.seq'; }

# fanout LABEL NODE...: LOADGEN_PROCS loadgen processes, the i-th on NODE i
# (round robin); waits for all; reports in $OUT/LABEL-<i>.json.
fanout() {
  local label=$1; shift
  local targets=("$@") per=$((CLIENTS / LOADGEN_PROCS)) lg=()
  for i in $(seq 0 $((LOADGEN_PROCS - 1))); do
    local n=${targets[$((i % ${#targets[@]}))]}
    "$BIN/loadgen" fanout --target gateway --gateway "${NODE_ADDR[$n]}" --sim "$SIM" \
      --pid "${NODE_PID[$n]}" --clients "$per" --ws-percent "$WS_PERCENT" --events "$EVENTS" \
      --duration "$DURATION" --threads "$LOADGEN_THREADS" --label "$label-$i" \
      --json "$OUT/$label-$i.json" >/dev/null 2>"$OUT/$label-$i.stderr" &
    lg+=($!)
  done
  for p in "${lg[@]}"; do wait "$p" || { echo "loadgen failed: $(cat "$OUT/$label"-*.stderr)"; exit 1; }; done
}
# report PREFIX LABEL: figures of a fan-out phase. CPU: each loadgen
# samples its own node over its window; a node sampled by several counts once.
report() {
  local prefix=$1 label=$2
  jq -s -r --arg p "$prefix" '
    def r: . * 100 | round / 100;
    "\($p)_deliveries_per_s \(map(.deliveries_per_s) | add | r) changes/s",
    "\($p)_cpu_us_per_delivery \((unique_by(.server.pids) | map(.server.cpu_percent / 100 * .window_s) | add) * 1e6 / (map(.deliveries) | add) | r) µs",
    "\($p)_p50_ms \(map(.latency_emit_to_client.p50_ms) | max | r) ms",
    "\($p)_p99_ms \(map(.latency_emit_to_client.p99_ms) | max | r) ms",
    "\($p)_clients_connected \(map(.connected) | add) clients",
    "\($p)_clients_wrong \(map(.loss.clients_with_wrong_state) | add) clients",
    "\($p)_seq_gaps \(map(.loss.seq_gaps) | add) seqs",
    "\($p)_clients_dead \(map(.loss.clients_dead) | add) clients"' "$OUT/$label"-*.json
}

# ---------------------------------------------------------------- standalone
write_config solo
start_node solo
wait_http "http://${NODE_ADDR[solo]}/readyz"
log "standalone node ${NODE_ADDR[solo]}: fan-out, $CLIENTS clients, $EVENTS events/s, ${DURATION}s"
fanout standalone solo solo solo
kill "${NODE_PID[solo]}"; wait "${NODE_PID[solo]}" 2>/dev/null || true

# ---------------------------------------------------------------- cluster
for n in "${NODES[@]}"; do
  write_config "$n" cluster
  start_node "$n"
done
for n in "${NODES[@]}"; do wait_http "http://${NODE_ADDR[$n]}/readyz"; done
log "cluster: ${NODES[*]} at $(for n in "${NODES[@]}"; do printf '%s ' "${NODE_ADDR[$n]}"; done)(lease $LEASE_MS ms)"
log "cluster fan-out: $CLIENTS clients over 3 nodes, $EVENTS events/s, ${DURATION}s"
fanout cluster "${NODES[@]}"

# ---------------------------------------------------------------- Redis operations
redis_calls() {
  redis-cli -p "$RPORT" INFO commandstats |
    awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_info" {print substr($1, 9), $3}'
}
sum_calls() { awk '{s += $2} END {print s + 0}' "$1"; }
log "Redis operations: ${OPS_WINDOW}s idle, then ${OPS_WINDOW}s at $EVENTS events/s"
set_churn 0
redis_calls >"$OUT/ops-idle-0"; t0=$(now)
sleep "$OPS_WINDOW"
redis_calls >"$OUT/ops-idle-1"; t1=$(now)
idle_ops=$(( $(sum_calls "$OUT/ops-idle-1") - $(sum_calls "$OUT/ops-idle-0") ))
sent0=$(sim_counter framesSent); emitted0=$(sim_counter eventsEmitted)
redis_calls >"$OUT/ops-0"; t2=$(now)
set_churn "$EVENTS"
sleep "$OPS_WINDOW"
set_churn 0
sleep 2 # the last events travel through Redis
redis_calls >"$OUT/ops-1"; t3=$(now)
sent1=$(sim_counter framesSent); emitted1=$(sim_counter eventsEmitted)
ops=$(( $(sum_calls "$OUT/ops-1") - $(sum_calls "$OUT/ops-0") ))
sent=$((sent1 - sent0)); emitted=$((emitted1 - emitted0))

# ---------------------------------------------------------------- failover
# One SSE client on a survivor timestamps every `id:` line; the leader is
# SIGKILLed while the stream is quiet at seq S0; right after, changes are
# made at the simulator every 100 ms (the dead leader cannot have sent
# them); the first delta with seq > S0 is the new leader's.
leader() {
  local n
  for n in "${NODES[@]}"; do
    if [ "$(role "$n")" = leader ]; then echo "$n"; return 0; fi
  done
  return 0
}
TAKEOVER=(); FAILOVER=()
mapfile -t USERS < <(curl -sf "http://$SIM/sim/state" | jq -r '.users[].id')
for k in $(seq "$FAILOVERS"); do
  L=""
  for _ in $(seq 300); do L=$(leader); if [ -n "$L" ]; then break; fi; sleep 0.1; done
  [ -n "$L" ] || { echo "no leader before failover $k"; exit 1; }
  S=""
  for n in "${NODES[@]}"; do if [ "$n" != "$L" ]; then S=$n; break; fi; done
  set_churn 0
  f="$OUT/failover-$k.sse"
  : >"$f"
  # curl's own pid in $!; the reader ends with it.
  curl -sN "http://${NODE_ADDR[$S]}/api/v1/stream" > >(
    while IFS= read -r line; do
      if [[ $line == id:* ]]; then echo "$EPOCHREALTIME ${line#id: }"; fi
    done >"$f"
  ) &
  SSE_PID=$!
  PIDS+=("$SSE_PID")
  # Quiet: the leader and the survivor at the same seq, and the SSE client has it.
  S0=""
  for _ in $(seq 300); do
    s0=$(seq_of "$L" || true); s1=$(seq_of "$S" || true)
    last=$(tail -n1 "$f" | awk -F: '{print $2}')
    if [ -n "$s0" ] && [ "$s0" = "$s1" ] && [ "$last" = "$s0" ]; then S0=$s0; break; fi
    sleep 0.1
  done
  [ -n "$S0" ] || { echo "failover $k: the stream never went quiet"; exit 1; }
  tk=$(now)
  kill -9 "${NODE_PID[$L]}"
  (
    for i in $(seq 600); do
      u=${USERS[$((i % ${#USERS[@]}))]}
      if [ $((i % 2)) = 0 ]; then p=BREAK; else p=AVAILABLE; fi
      curl -sf -X POST "http://$SIM/sim/users/$u/presence" -d "{\"systemPresence\":\"$p\"}" >/dev/null || true
      sleep 0.1
    done
  ) &
  CHANGER=$!
  PIDS+=("$CHANGER")
  took=""; first=""
  deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if [ -z "$took" ]; then
      for n in "${NODES[@]}"; do
        if [ "$n" != "$L" ] && [ "$(role "$n")" = leader ]; then took=$(now); break; fi
      done
    fi
    first=$(awk -v s0="$S0" -v tk="$tk" '{split($2, a, ":"); if (a[2] + 0 > s0 + 0 && $1 + 0 > tk + 0) {print $1; exit}}' "$f")
    if [ -n "$first" ] && [ -n "$took" ]; then break; fi
    sleep 0.02
  done
  kill "$CHANGER" "$SSE_PID" 2>/dev/null || true
  [ -n "$first" ] || { echo "failover $k: no delta from a new leader within 60 s"; exit 1; }
  [ -n "$took" ] || took=$first
  TAKEOVER+=("$(ms_since "$tk" "$took")"); FAILOVER+=("$(ms_since "$tk" "$first")")
  log "failover $k: node-$L killed at seq $S0; new leader in ${TAKEOVER[-1]} ms, first delta at node-$S in ${FAILOVER[-1]} ms"
  start_node "$L"
  for n in "${NODES[@]}"; do wait_http "http://${NODE_ADDR[$n]}/readyz"; done
done
set_churn 0

# ---------------------------------------------------------------- report
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
maxof() { printf '%s\n' "$@" | sort -n | tail -n1; }
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(round(a / b, 2) if b else 'nan')" "$1" "$2"; }
echo
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $CLIENTS clients ($WS_PERCENT% WebSocket), $AGENTS agents, $EVENTS events/s, ${DURATION}s; cluster of 3, lease $LEASE_MS ms"
report standalone standalone
report cluster cluster
for i in $(seq 0 $((LOADGEN_PROCS - 1))); do
  jq -r --arg n "${NODES[$((i % 3))]}" '"cluster_node_\($n)_p50_ms \(.latency_emit_to_client.p50_ms) ms",
    "cluster_node_\($n)_p99_ms \(.latency_emit_to_client.p99_ms) ms",
    "cluster_node_\($n)_cpu_percent \(.server.cpu_percent * 100 | round / 100) %"' "$OUT/cluster-$i.json"
done
figure cluster_takeover_ms "$(median "${TAKEOVER[@]}")" ms
figure cluster_takeover_max_ms "$(maxof "${TAKEOVER[@]}")" ms
figure cluster_failover_ms "$(median "${FAILOVER[@]}")" ms
figure cluster_failover_max_ms "$(maxof "${FAILOVER[@]}")" ms
figure upstream_events_in_window "$sent" events
figure redis_ops_in_window "$ops" ops
figure redis_ops_per_upstream_event "$(ratio "$ops" "$sent")" ops/event
# The same less what the cluster spends anyway over that time (idle rate).
net=$(python3 -c "import sys; o, i, d = map(float, sys.argv[1:]); print(o - i * d)" \
  "$ops" "$(ratio "$idle_ops" "$(python3 -c "print(float('$t1') - float('$t0'))")")" \
  "$(python3 -c "print(float('$t3') - float('$t2'))")")
figure redis_ops_per_upstream_event_net "$(ratio "$net" "$sent")" ops/event
figure redis_ops_per_sim_event "$(ratio "$ops" "$emitted")" ops/event
figure redis_ops_idle_per_s "$(ratio "$idle_ops" "$(python3 -c "print(float('$t1') - float('$t0'))")")" ops/s
join -a1 <(sort "$OUT/ops-1") <(sort "$OUT/ops-0") | awk '{print $1, $2 - ($3 + 0)}' | sort -k2 -nr | head -n5 |
  while read -r cmd n; do figure "redis_${cmd}_per_upstream_event" "$(ratio "$n" "$sent")" ops/event; done
