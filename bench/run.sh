#!/usr/bin/env bash
# Foundation benchmark (`make bench`): what does putting frontdesk-proxy in front of a backend
# cost, compared with going direct and with nginx doing the same job?
#
# Contenders, all against the same static nginx backend (`return 200` + a small JSON body):
#   direct     wrk/hey -> backend
#   frontdesk  wrk/hey -> frontdesk-proxy (1 worker, access log off) -> backend
#   frontdesk-jwt  the same proxy, on a route behind an RS256 JWT Policy (every contender is
#              sent the same Authorization header, so requests are the same size)
#   frontdesk-local / frontdesk-global  the same proxy, on routes with a rate limit that never
#              triggers, counted in the proxy's memory / in Redis (redis-server on core 1)
#   frontdesk-resilience  the same proxy, on a route with retries (and their budget), a
#              circuit breaker and outlier detection that never trigger: what having them costs
#   frontdesk-cors  the same proxy, on a route with a CORS Policy, asked from an allowed origin
#              (every contender is sent the same Origin header)
#   nginx      wrk/hey -> nginx reverse proxy (1 worker, upstream keep-alive) -> backend
#   hyper-floor  wrk/hey -> proxy/examples/hyper_floor.rs (hyper's HTTP/1.1 server in front of
#              hyper's HTTP/1.1 client connections, nothing else) -> backend: what any proxy on
#              hyper's HTTP/1 machinery pays before doing anything of its own
#
# Measured (method in shared BENCH.md: the machine has 2 cores and is shared, so only comparisons
# inside one run mean something):
#   - throughput: closed loop `wrk -t1 -c64` after a 2 s warm-up, BENCH_ROUNDS rounds with the
#     contenders' order rotated each round; median and min-max req/s, and CPU-us per request of
#     the proxy and of the backend from /proc/<pid>/stat (the most stable figure);
#   - latency: open-ish loop below saturation, `hey -c 10 -q 200` (2000 req/s), p50 and p99,
#     BENCH_ROUNDS rounds rotated likewise (never from the saturated wrk runs);
#   - noise: CPU used by other processes during each throughput run (from /proc/stat);
#   - memory per client connection (bench/conn_memory.py), frontdesk and nginx: RSS growth with
#     BENCH_MEM_IDLE idle keep-alive connections and with BENCH_MEM_UPLOADS stalled uploads,
#     divided by the connections; and each proxy's RSS when idle.
# Servers are pinned to core 0, the load generator to core 1.
#
# Environment:
#   BENCH_CONTENDERS    contenders to run (default "direct frontdesk frontdesk-jwt frontdesk-local
#                       frontdesk-global frontdesk-resilience frontdesk-cors nginx hyper-floor")
#   BENCH_ROUNDS        rounds of each kind (default 5)
#   BENCH_DURATION      seconds per throughput run (default 10)
#   BENCH_LAT_DURATION  seconds per latency run (default 8)
#   BENCH_LAT_WORKERS / BENCH_LAT_QPS   hey workers and req/s per worker (default 10 x 200)
#   BENCH_LAT_TOOL      wrk (default: paced with a Lua delay, microsecond percentiles) or hey
#                       (hey prints latencies in 0.1 ms steps: too coarse for sub-ms differences)
#   BENCH_MEM_IDLE / BENCH_MEM_UPLOADS  connections of the memory runs (default 2000 / 500; 0 skips)
#   BENCH_SKIP_BUILD=1  don't run cargo; use an existing binary (FRONTDESK_BIN or target/release)
#   BENCH_KEEP_TMP=1    keep the temp dir (configs, logs, raw wrk/hey output)
# Output: the table on stdout, and bench/out/results-<time>.txt (raw "round contender metric
# value" lines) and bench/out/report-<time>.txt (the table); bench/out/latest-*.txt are copies.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

CONTENDERS=${BENCH_CONTENDERS:-direct frontdesk frontdesk-jwt frontdesk-local frontdesk-global frontdesk-resilience frontdesk-cors nginx hyper-floor}
ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-10}
LAT_DURATION=${BENCH_LAT_DURATION:-8}
LAT_WORKERS=${BENCH_LAT_WORKERS:-10}
LAT_QPS=${BENCH_LAT_QPS:-200}
MEM_IDLE=${BENCH_MEM_IDLE:-2000}
MEM_UPLOADS=${BENCH_MEM_UPLOADS:-500}

read -ra contenders <<<"$CONTENDERS"
for c in "${contenders[@]}"; do
  case $c in direct | frontdesk | frontdesk-jwt | frontdesk-local | frontdesk-global | frontdesk-resilience | frontdesk-cors | nginx | hyper-floor) ;;
    *) die "unknown contender '$c' (direct frontdesk frontdesk-jwt frontdesk-local frontdesk-global frontdesk-resilience frontdesk-cors nginx hyper-floor)" ;;
  esac
done
wants() { [[ " $CONTENDERS " == *" $1 "* ]]; }
wants_proxy() { wants frontdesk || wants frontdesk-jwt || wants frontdesk-local || wants frontdesk-global || wants frontdesk-resilience || wants frontdesk-cors; }

"$REPO/scripts/install-deps.sh" bench

target_dir=${CARGO_TARGET_DIR:-$REPO/target}
[[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
if wants_proxy || wants hyper-floor; then
  if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building frontdesk-proxy and the hyper floor (release)"
    (cd "$REPO" && cargo build --release -p frontdesk-proxy --bin frontdesk-proxy --example hyper_floor)
  fi
  FRONTDESK_BIN=${FRONTDESK_BIN:-$target_dir/release/frontdesk-proxy}
  HYPER_FLOOR_BIN=${HYPER_FLOOR_BIN:-$target_dir/release/examples/hyper_floor}
  if wants_proxy; then [[ -x $FRONTDESK_BIN ]] || die "no frontdesk-proxy binary at $FRONTDESK_BIN"; fi
  if wants hyper-floor; then [[ -x $HYPER_FLOOR_BIN ]] || die "no hyper_floor binary at $HYPER_FLOOR_BIN"; fi
fi

mkdir -p "$REPO/bench/out"
stamp=$(date +%Y%m%d-%H%M%S)
BENCH_RESULTS="$REPO/bench/out/results-$stamp.txt"
report_file="$REPO/bench/out/report-$stamp.txt"

bench_init

# --- start the servers --------------------------------------------------------------------------
free_port; backend_port=$FREE_PORT
start_nginx_backend backend "$backend_port"
wait_ready "http://127.0.0.1:$backend_port/" "${BENCH_PID[backend]}"

declare -A url=([direct]="http://127.0.0.1:$backend_port/")
declare -A proxy_pid=([direct]=-)

if wants nginx; then
  free_port; port=$FREE_PORT
  start_nginx_proxy nginx "$port" "$backend_port"
  url[nginx]="http://127.0.0.1:$port/"
  proxy_pid[nginx]=${BENCH_PID[nginx]}
  wait_ready "${url[nginx]}" "${proxy_pid[nginx]}"
fi

if wants hyper-floor; then
  free_port; port=$FREE_PORT
  taskset -c "$BENCH_CORE_SERVERS" "$HYPER_FLOOR_BIN" "127.0.0.1:$port" "127.0.0.1:$backend_port" \
    >"$BENCH_DIR/hyper-floor.log" 2>&1 &
  BENCH_PID[hyper-floor]=$!
  url[hyper-floor]="http://127.0.0.1:$port/"
  proxy_pid[hyper-floor]=${BENCH_PID[hyper-floor]}
  wait_ready "${url[hyper-floor]}" "${proxy_pid[hyper-floor]}"
fi

if wants_proxy; then
  free_port; port=$FREE_PORT
  free_port; admin_port=$FREE_PORT
  jwks=""
  if wants frontdesk-jwt; then
    BENCH_HEADER="Authorization: Bearer $(python3 "$REPO/bench/jwt.py" "$BENCH_DIR")"
    jwks="$BENCH_DIR/jwks.json"
  fi
  write_route_manifest "$BENCH_DIR/manifests" "$backend_port" "$jwks"
  free_port; redis_port=$FREE_PORT
  start_redis redis "$redis_port"
  start_frontdesk frontdesk "$port" "$admin_port" "$BENCH_DIR/manifests" \
    --redis-url "redis://127.0.0.1:$redis_port"
  # The origin the bench Policy allows (bench/lib.sh).
  if wants frontdesk-cors; then BENCH_ORIGIN="https://shop.bench.example"; fi
  for path in "" jwt local global resilience cors; do
    who=frontdesk${path:+-$path}
    url[$who]="http://127.0.0.1:$port/$path"
    proxy_pid[$who]=${BENCH_PID[frontdesk]}
  done
  wait_ready "http://127.0.0.1:$admin_port/ready" "${proxy_pid[frontdesk]}"
  wait_ready "${url[frontdesk]}" "${proxy_pid[frontdesk]}"
  for who in frontdesk-local frontdesk-global; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$who]}")
    [[ $code == 200 ]] || { bench_dump_logs; die "$who answered $code"; }
    curl -s -D - -o /dev/null "${url[$who]}" | grep -qi '^ratelimit:' || die "$who sent no RateLimit header"
  done
  if wants frontdesk-cors; then
    curl -s -D - -o /dev/null -H "Origin: $BENCH_ORIGIN" "${url[frontdesk-cors]}" |
      grep -qi "^access-control-allow-origin: $BENCH_ORIGIN" || die "the CORS route did not allow the bench origin"
  fi
  if wants frontdesk-jwt; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$BENCH_HEADER" "${url[frontdesk-jwt]}")
    [[ $code == 200 ]] || { bench_dump_logs; die "the JWT route answered $code to the bench token"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "${url[frontdesk-jwt]}")
    [[ $code == 401 ]] || die "the JWT route answered $code without a token (want 401)"
  fi
fi

{
  echo "# frontdesk foundation benchmark $stamp"
  echo "# host $(uname -n), $(nproc) cores, kernel $(uname -r), CLK_TCK $CLK_TCK"
  echo "# commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  echo "# $("$NGINX_BIN" -v 2>&1), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), hey"
  echo "# contenders: ${contenders[*]}; rounds $ROUNDS; wrk -t1 -c$BENCH_WRK_CONNS -d${DURATION}s;" \
    "latency: ${BENCH_LAT_TOOL:-wrk}, ${LAT_DURATION}s, $LAT_WORKERS workers x $LAT_QPS req/s"
  echo "# servers on core $BENCH_CORE_SERVERS, load generator on core $BENCH_CORE_LOADGEN"
  echo "# columns: round contender metric value"
} >"$BENCH_RESULTS"

# --- throughput ---------------------------------------------------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
  rotate $((r - 1)) "${contenders[@]}"
  for c in "${ROTATED[@]}"; do
    measure_wrk "$r" "$c" "${url[$c]}" "${proxy_pid[$c]}" "${BENCH_PID[backend]}" "$DURATION"
  done
done

# --- latency below saturation -------------------------------------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
  rotate $((r - 1)) "${contenders[@]}"
  for c in "${ROTATED[@]}"; do
    measure_latency "$r" "$c" "${url[$c]}" "$LAT_DURATION" "$LAT_WORKERS" "$LAT_QPS"
  done
done

# --- memory per connection ----------------------------------------------------------------------
# frontdesk and nginx, each mode on a fresh process of its own (memory an allocator kept from an
# earlier run would hide the next one's growth). nginx's memory is its worker's: the master holds
# no connections.
mem_run() {  # mem_run WHO MODE CONNS
  local who=$1 mode=$2 n=$3 name="mem-$1-$2" port pid line kb
  free_port; port=$FREE_PORT
  if [[ $who == nginx ]]; then
    start_nginx_proxy "$name" "$port" "$backend_port"
    wait_ready "http://127.0.0.1:$port/" "${BENCH_PID[$name]}"
    pid=$(pgrep -P "${BENCH_PID[$name]}" | head -n 1)
  else
    free_port
    # Every connection comes from 127.0.0.1: no per-address bound, as nginx has none. Without
    # transparent huge pages for mimalloc's heap: with them RSS grows in 2 MiB steps, 1 KB per
    # connection at 2,000 connections, and the figure would be a multiple of that.
    MIMALLOC_ALLOW_THP=0 start_frontdesk "$name" "$port" "$FREE_PORT" "$BENCH_DIR/manifests" \
      --max-connections-per-client 0
    wait_ready "http://127.0.0.1:$port/" "${BENCH_PID[$name]}"
    pid=${BENCH_PID[$name]}
  fi
  if [[ $mode == idle ]]; then
    echo "1 $who mem_process_kb $(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")" >>"$BENCH_RESULTS"
  fi
  line=$(python3 "$REPO/bench/conn_memory.py" --port "$port" --pid "$pid" --conns "$n" \
    --mode "$mode") || die "memory run $who $mode failed"
  log "memory $who $mode x$n: $line"
  read -r _ kb _ <<<"$line"
  echo "1 $who mem_${mode}_kb_per_conn $kb" >>"$BENCH_RESULTS"
  kill "${BENCH_PID[$name]}" 2>/dev/null || true
  wait "${BENCH_PID[$name]}" 2>/dev/null || true
}
for who in frontdesk nginx; do
  wants "$who" || continue
  if ((MEM_IDLE > 0)); then mem_run "$who" idle "$MEM_IDLE"; fi
  if ((MEM_UPLOADS > 0)); then mem_run "$who" upload "$MEM_UPLOADS"; fi
done

# --- report -------------------------------------------------------------------------------------
python3 "$REPO/bench/report.py" "$BENCH_RESULTS" | tee "$report_file"
cp "$BENCH_RESULTS" "$REPO/bench/out/latest-results.txt"
cp "$report_file" "$REPO/bench/out/latest-report.txt"
log "raw results: $BENCH_RESULTS"
log "report:      $report_file"
