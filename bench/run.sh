#!/usr/bin/env bash
# Fan-out benchmark (issues 10, 18): presence-gateway vs nchan, same load
# client, same run. Prints, per client count: CPU per delivered message,
# p50/p99/max latency, loss, RSS per idle connection, for the gateway and
# nchan with ratios; then wire bytes with and without compression (and the
# CPU it costs), and the reconnect storm (STORM_CLIENTS at once onto a
# STORM_AGENTS org: time until every client holds a complete snapshot, peak
# RSS). Writes JSON reports under bench/out/.
#
# Knobs (environment):
#   CLIENT_COUNTS="2000 10000"  client counts of the fan-out phases (WebSocket + SSE)
#   CLIENTS=           one client count (overrides CLIENT_COUNTS)
#   COMPRESS_CLIENTS=2000  clients of the compressed fan-out phase (0: skip)
#   STORM_CLIENTS=2000 clients of the storm (0: skip)
#   STORM_AGENTS=1000  agents in the storm's org
#   WS_PERCENT=50      share of WebSocket clients
#   EVENTS=10          simulator churn during the measurement (events/s)
#   DURATION=30        measurement window per phase (s)
#   AGENTS=200         agents in the simulated org
#   UP_WINDOW=30       window for the upstream REST-call count (s)
#   UP_CLIENTS=1000    clients for the second upstream count
#   LOADGEN_THREADS=2  tokio workers in the load client
#   SKIP_NCHAN=0       1: gateway only
#   SKIP_UPSTREAM=0    1: skip the REST-call counts
#   SKIP_BUILD=0       1: use the existing release binaries
# Defaults finish in about 12 minutes on 2 cores (release build not counted).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.json

CLIENT_COUNTS=${CLIENTS:-${CLIENT_COUNTS:-2000 10000}}
COMPRESS_CLIENTS=${COMPRESS_CLIENTS:-2000}
STORM_CLIENTS=${STORM_CLIENTS:-2000}
STORM_AGENTS=${STORM_AGENTS:-1000}
WS_PERCENT=${WS_PERCENT:-50}
EVENTS=${EVENTS:-10}
DURATION=${DURATION:-30}
AGENTS=${AGENTS:-200}
UP_WINDOW=${UP_WINDOW:-30}
UP_CLIENTS=${UP_CLIENTS:-1000}
LOADGEN_THREADS=${LOADGEN_THREADS:-2}
SKIP_NCHAN=${SKIP_NCHAN:-0}
SKIP_UPSTREAM=${SKIP_UPSTREAM:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release

ulimit -n 20000 || true

if [ "$SKIP_BUILD" != 1 ]; then
  echo "== building release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  cargo build --release --workspace --bins
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$OUT/nginx.pid" ]; then kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# ---------------------------------------------------------------- gateway
# start_gateway AGENTS: starts `presence-gateway demo`, sets GW, SIM, GW_PID.
start_gateway() {
  echo "== starting presence-gateway demo ($1 agents)"
  : >"$OUT/gateway.stdout"
  "$BIN/presence-gateway" demo --listen 127.0.0.1:0 --sim-listen 127.0.0.1:0 \
    --agents "$1" --churn 0 --sim-presence-modified-date >"$OUT/gateway.stdout" 2>"$OUT/gateway.stderr" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  for _ in $(seq 100); do
    grep -q '^READY' "$OUT/gateway.stdout" 2>/dev/null && break
    sleep 0.1
  done
  READY=$(grep '^READY' "$OUT/gateway.stdout") || { echo "gateway did not start"; cat "$OUT/gateway.stderr"; exit 1; }
  GW=$(sed -E 's/.*gateway=http:\/\/([^ ]+).*/\1/' <<<"$READY")
  SIM=$(sed -E 's/.*simulator=http:\/\/([^ ]+).*/\1/' <<<"$READY")
  echo "   gateway=$GW simulator=$SIM pid=$GW_PID"
  for _ in $(seq 300); do
    curl -sf "http://$GW/readyz" >/dev/null && break
    sleep 0.2
  done
  LG=("$BIN/loadgen" --gateway "$GW" --sim "$SIM" --threads "$LOADGEN_THREADS")
}
start_gateway "$AGENTS"

# ---------------------------------------------------------------- upstream
if [ "$SKIP_UPSTREAM" != 1 ]; then
  for n in 1 "$UP_CLIENTS"; do
    echo "== upstream REST calls with $n client(s), ${UP_WINDOW}s at $EVENTS events/s"
    "${LG[@]}" upstream --clients "$n" --events "$EVENTS" --duration "$UP_WINDOW" \
      --label "upstream-$n" --json "$OUT/upstream-$n.json" >/dev/null
    jq -c '{clients, connected, api_requests, api_requests_per_min}' "$OUT/upstream-$n.json"
  done
fi

# ---------------------------------------------------------------- gateway fan-out
for n in $CLIENT_COUNTS; do
echo "== gateway fan-out: $n clients ($WS_PERCENT% WS), $EVENTS events/s, ${DURATION}s"
"${LG[@]}" fanout --target gateway --pid "$GW_PID" --clients "$n" \
  --ws-percent "$WS_PERCENT" --events "$EVENTS" --duration "$DURATION" \
  --label "gateway-$n" --json "$OUT/gateway-$n.json" >/dev/null
done
if [ "$COMPRESS_CLIENTS" != 0 ]; then
  echo "== gateway fan-out, compressed (permessage-deflate / gzip): $COMPRESS_CLIENTS clients, ${DURATION}s"
  "${LG[@]}" fanout --target gateway --pid "$GW_PID" --clients "$COMPRESS_CLIENTS" --compress \
    --ws-percent "$WS_PERCENT" --events "$EVENTS" --duration "$DURATION" \
    --label "gateway-z-$COMPRESS_CLIENTS" --json "$OUT/gateway-z-$COMPRESS_CLIENTS.json" >/dev/null
fi

# ---------------------------------------------------------------- nchan fan-out
if [ "$SKIP_NCHAN" != 1 ]; then
  if ! [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || ! command -v nginx >/dev/null; then
    echo "== installing nginx + libnginx-mod-nchan"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx libnginx-mod-nchan >/dev/null
  fi
  NCHAN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$OUT/nginx-tmp"
  cat >"$OUT/nginx.conf" <<EOF
# Generated by bench/run.sh: nchan on loopback, same cores as the gateway.
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx-tmp/body;
  proxy_temp_path $OUT/nginx-tmp/proxy;
  fastcgi_temp_path $OUT/nginx-tmp/fastcgi;
  uwsgi_temp_path $OUT/nginx-tmp/uwsgi;
  scgi_temp_path $OUT/nginx-tmp/scgi;
  nchan_shared_memory_size 256M;
  server {
    listen 127.0.0.1:$NCHAN_PORT;
    location ~ ^/pub/(\w+)$ {
      nchan_publisher;
      nchan_channel_id \$1;
      nchan_message_buffer_length 1000;
      nchan_message_timeout 120s;
    }
    location ~ ^/sub/(\w+)$ {
      nchan_subscriber websocket eventsource;
      nchan_channel_id \$1;
    }
  }
}
EOF
  echo "== starting nginx + nchan on 127.0.0.1:$NCHAN_PORT"
  nginx -p "$OUT" -c "$OUT/nginx.conf" -e "$OUT/nginx-error.log"
  for _ in $(seq 50); do [ -s "$OUT/nginx.pid" ] && break; sleep 0.1; done
  NGINX_MASTER=$(cat "$OUT/nginx.pid")
  sleep 0.5
  NGINX_PIDS=$(echo "$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER") | tr ' ' ',')
  echo "   nginx pids $NGINX_PIDS"
  for n in $CLIENT_COUNTS; do
  echo "== nchan fan-out: $n clients, same workload, fed by a relay subscribed once to the gateway"
  "${LG[@]}" fanout --target nchan --nchan "127.0.0.1:$NCHAN_PORT" --pid "$NGINX_PIDS" \
    --clients "$n" --ws-percent "$WS_PERCENT" --events "$EVENTS" --duration "$DURATION" \
    --label "nchan-$n" --json "$OUT/nchan-$n.json" >/dev/null
  done
  kill "$NGINX_MASTER" 2>/dev/null || true
  rm -f "$OUT/nginx.pid"
fi

# ---------------------------------------------------------------- storm
if [ "$STORM_CLIENTS" != 0 ]; then
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  start_gateway "$STORM_AGENTS"
  echo "== storm: $STORM_CLIENTS clients at once onto $STORM_AGENTS agents, churn $EVENTS events/s"
  "${LG[@]}" storm --pid "$GW_PID" --clients "$STORM_CLIENTS" --ws-percent "$WS_PERCENT" \
    --events "$EVENTS" --label storm --json "$OUT/storm.json" >/dev/null
fi

# ---------------------------------------------------------------- report
echo
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
row='def f(x): if x == null then "-" elif (x|type) == "number" then ((x * 100 | round) / 100 | tostring) else (x|tostring) end;
  def lat(l): "\(f(l.p50_ms)) / \(f(l.p99_ms)) / \(f(l.max_ms)) ms";
  def loss: "\(.loss.clients_with_wrong_state) wrong, \(.loss.seq_gaps) gaps, \(.loss.clients_dead) dead";'
printf "%-22s %8s %10s %12s %28s %28s %12s %30s\n" run connected msgs/s "cpu µs/msg" "p50/p99/max (emit→client)" "p50/p99/max (publish→client)" "KiB/idle" loss
for j in "$OUT"/gateway-[0-9]*.json "$OUT"/gateway-z-*.json "$OUT"/nchan-*.json; do
  [ -f "$j" ] || continue
  jq -r "$row"' "\(.label)\t\(.connected)\t\(f(.messages_per_s))\t\(f(.server_cpu_us_per_message))\t\(lat(.latency_emit_to_client))\t\(lat(.latency_publish_to_client))\t\(f(.server.rss_per_idle_conn_kib))\t\(loss)"' "$j" |
    awk -F'\t' '{printf "%-22s %8s %10s %12s %28s %28s %12s %30s\n", $1,$2,$3,$4,$5,$6,$7,$8}'
done
if [ "$SKIP_NCHAN" != 1 ]; then
  echo "== ratios gateway/nchan (latency: gateway emission→client vs nchan publish→client, which favours nchan; lower is better)"
  for n in $CLIENT_COUNTS; do
    [ -f "$OUT/gateway-$n.json" ] && [ -f "$OUT/nchan-$n.json" ] || continue
    jq -c -n --arg n "$n" --slurpfile g "$OUT/gateway-$n.json" --slurpfile c "$OUT/nchan-$n.json" '
      def r(a; b): if (b == 0 or b == null or a == null) then null else ((a / b) * 100 | round) / 100 end;
      {clients: ($n|tonumber),
       p50: r($g[0].latency_emit_to_client.p50_ms; $c[0].latency_publish_to_client.p50_ms),
       p99: r($g[0].latency_emit_to_client.p99_ms; $c[0].latency_publish_to_client.p99_ms),
       max: r($g[0].latency_emit_to_client.max_ms; $c[0].latency_publish_to_client.max_ms),
       cpu_per_message: r($g[0].server_cpu_us_per_message; $c[0].server_cpu_us_per_message),
       rss_per_idle_conn: r($g[0].server.rss_per_idle_conn_kib; $c[0].server.rss_per_idle_conn_kib)}'
  done
fi
Z="$OUT/gateway-z-$COMPRESS_CLIENTS.json"
P="$OUT/gateway-$COMPRESS_CLIENTS.json"
if [ -f "$Z" ] && [ -f "$P" ]; then
  echo "== wire bytes, $COMPRESS_CLIENTS clients ($WS_PERCENT% WS): plain vs compressed"
  jq -c -n --slurpfile p "$P" --slurpfile z "$Z" '
    def r(a; b): if (b == 0 or b == null) then null else ((a / b) * 1000 | round) / 1000 end;
    {snapshot_bytes: {plain: ($p[0].snapshot_wire_bytes_avg|round), compressed: ($z[0].snapshot_wire_bytes_avg|round), ratio: r($z[0].snapshot_wire_bytes_avg; $p[0].snapshot_wire_bytes_avg)},
     delta_bytes: {plain: ($p[0].wire_bytes_per_message|round), compressed: ($z[0].wire_bytes_per_message|round), ratio: r($z[0].wire_bytes_per_message; $p[0].wire_bytes_per_message)},
     server_cpu_us_per_message: {plain: $p[0].server_cpu_us_per_message, compressed: $z[0].server_cpu_us_per_message},
     p99_ms: {plain: $p[0].latency_emit_to_client.p99_ms, compressed: $z[0].latency_emit_to_client.p99_ms},
     loss_compressed: $z[0].loss}'
fi
if [ -f "$OUT/storm.json" ]; then
  echo "== storm: $STORM_CLIENTS clients at once, $STORM_AGENTS agents"
  jq -c '{clients, agents, complete, failed, time_to_all_complete_ms: (.time_to_all_complete_ms|round),
    per_client_ms: (.time_to_complete | {p50_ms, p99_ms, max_ms}), snapshot_bytes: (.snapshot_text_bytes_avg|round),
    rss_before_mib: (.server.rss_before_kib / 1024 | round), rss_peak_mib: (.server.rss_peak_kib / 1024 | round), server_cpu_s: .server.cpu_s, loadgen_cpu_s}' "$OUT/storm.json"
fi
