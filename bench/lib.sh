# shellcheck shell=bash disable=SC2034,SC2154  # globals are set here for the callers
# Shared functions for frontdesk's benchmarks (sourced by bench/run.sh and later benchmarks).
#
# How we measure (see shared BENCH.md): the machine has 2 cores and is shared, so absolute numbers
# drift by 5-40% between runs. We therefore
#   - pin everything: backend and proxies on core 0 (`taskset -c 0`), the load generator on core 1
#     (`taskset -c 1`), every proxy with a single worker;
#   - run the contenders interleaved in the same run, rotating their order each round, and report
#     medians and min-max, and ratios between contenders rather than absolute figures;
#   - measure the CPU cost per request of each component from /proc/<pid>/stat (utime+stime over
#     the run divided by the requests completed), which is far more stable than req/s;
#   - record the CPU used by anything that is not part of the benchmark during each run (noise),
#     from /proc/stat, so a noisy run can be recognised and repeated.
#
# Usage: source this file, call bench_init, start contenders with start_nginx_backend,
# start_nginx_proxy and start_frontdesk, wait_ready on each, then measure_wrk / measure_latency,
# which append "round contender metric value" lines to $BENCH_RESULTS for bench/report.py.
#
# Functions that return a value set a global (CPU_TICKS, BENCH_PID[name], ...) instead of
# printing it: a $(...) would fork a subshell whose CPU time would blur the accounting.

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLK_TCK=$(getconf CLK_TCK)
BENCH_WRK_CONNS=${BENCH_WRK_CONNS:-64}
BENCH_CORE_SERVERS=${BENCH_CORE_SERVERS:-0}   # backend and proxies
BENCH_CORE_LOADGEN=${BENCH_CORE_LOADGEN:-1}   # wrk / hey
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

declare -A BENCH_PID=()   # name -> pid of every server we started
BENCH_DIR=""              # temp dir holding configs, logs, manifests
BENCH_LOADGEN_PID=""      # wrk/hey currently running, if any
declare -A BENCH_PORTS_USED=()

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Setup and cleanup

# bench_init: make the temp dir and install the cleanup traps (EXIT, Ctrl-C, TERM).
bench_init() {
  BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/frontdesk-bench.XXXXXX")
  # nginx started as root runs its worker as `nobody`: the prefix must be traversable for it.
  chmod 755 "$BENCH_DIR"
  mkdir -p "$BENCH_DIR/tmp"
  trap bench_cleanup EXIT
  trap 'log "interrupted"; exit 130' INT
  trap 'log "terminated"; exit 143' TERM
}

# bench_cleanup: stop the load generator and every server we started, then remove the temp dir
# (kept when BENCH_KEEP_TMP=1, or when something failed, for the logs; not after Ctrl-C/TERM).
bench_cleanup() {
  local rc=$? name pid i
  trap - EXIT INT TERM
  if [[ -n $BENCH_LOADGEN_PID ]]; then kill "$BENCH_LOADGEN_PID" 2>/dev/null || true; fi
  for name in "${!BENCH_PID[@]}"; do
    kill -TERM "${BENCH_PID[$name]}" 2>/dev/null || true
  done
  for name in "${!BENCH_PID[@]}"; do
    pid=${BENCH_PID[$name]}
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) did not stop on TERM, killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $BENCH_DIR && -d $BENCH_DIR ]]; then
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]] || ((rc != 0 && rc != 130 && rc != 143)); then
      log "kept $BENCH_DIR (logs, configs)"
    else
      rm -rf "$BENCH_DIR"
    fi
  fi
  exit "$rc"
}

# free_port: sets FREE_PORT to a currently unused TCP port on 127.0.0.1 (never the same twice).
free_port() {
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    [[ -z ${BENCH_PORTS_USED[$p]:-} ]] && break
  done
  BENCH_PORTS_USED[$p]=1
  FREE_PORT=$p
}

# render TEMPLATE OUTPUT KEY=VALUE...: copy TEMPLATE replacing each @KEY@ by VALUE.
render() {
  local tmpl=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$tmpl" >"$out"
  if grep -q '@[A-Z_]*@' "$out"; then die "unreplaced placeholder in $out"; fi
}

# ---------------------------------------------------------------------------------------------
# Contenders. Each start_* runs the server in the background pinned to $BENCH_CORE_SERVERS and
# records its pid in BENCH_PID[NAME]; logs go to $BENCH_DIR/NAME.log.

# start_nginx NAME CONF: run nginx in the foreground (daemon off) with the rendered CONF.
start_nginx() {
  local name=$1 conf=$2
  "$NGINX_BIN" -t -q -p "$BENCH_DIR" -e "$BENCH_DIR/$name.error.log" -c "$conf" \
    || die "nginx config $conf rejected"
  taskset -c "$BENCH_CORE_SERVERS" "$NGINX_BIN" -p "$BENCH_DIR" -e "$BENCH_DIR/$name.error.log" \
    -c "$conf" -g 'daemon off;' >"$BENCH_DIR/$name.log" 2>&1 &
  BENCH_PID[$name]=$!
  log "started $name (nginx, pid ${BENCH_PID[$name]})"
}

# start_redis NAME PORT: redis-server without persistence, on the load generator's core (in a
# cluster Redis runs on other machines; on this 2-core box it must not take the proxy's core).
start_redis() {
  local name=$1 port=$2
  taskset -c "$BENCH_CORE_LOADGEN" redis-server --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no >"$BENCH_DIR/$name.log" 2>&1 &
  BENCH_PID[$name]=$!
  log "started $name (redis-server, pid ${BENCH_PID[$name]})"
}

# start_nginx_backend NAME PORT: the static JSON backend (bench/nginx-backend.conf.tmpl).
start_nginx_backend() {
  local name=$1 port=$2 conf="$BENCH_DIR/$1.conf"
  render "$BENCH_LIB_DIR/nginx-backend.conf.tmpl" "$conf" \
    PORT="$port" PREFIX="$BENCH_DIR" NAME="$name"
  start_nginx "$name" "$conf"
}

# start_nginx_proxy NAME PORT UPSTREAM_PORT: nginx as reverse proxy (bench/nginx-proxy.conf.tmpl).
start_nginx_proxy() {
  local name=$1 port=$2 upstream=$3 conf="$BENCH_DIR/$1.conf"
  render "$BENCH_LIB_DIR/nginx-proxy.conf.tmpl" "$conf" \
    PORT="$port" UPSTREAM="$upstream" PREFIX="$BENCH_DIR" NAME="$name"
  start_nginx "$name" "$conf"
}

# write_route_manifest DIR BACKEND_PORT [JWKS_FILE]: a catch-all Route to the backend, in
# DIR/route.yaml; with a JWKS, also /jwt behind an RS256 JWT Policy (issuer, audience, a scope
# rule and a claim copied to a header: the work a real policy does).
write_route_manifest() {
  local dir=$1 backend_port=$2 jwks=${3:-}
  mkdir -p "$dir"
  cat >"$dir/route.yaml" <<EOF
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: bench, namespace: default}
spec:
  rules:
    - name: all
      matches: [{path: {type: PathPrefix, value: /}}]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
EOF
  # Rate-limited routes, with limits far above what the benchmark sends: what is measured is the
  # cost of deciding, not of refusing.
  cat >>"$dir/route.yaml" <<EOF
    - name: local
      matches: [{path: {type: PathPrefix, value: /local}}]
      policies: [bench-local]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
    - name: global
      matches: [{path: {type: PathPrefix, value: /global}}]
      policies: [bench-global]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
    - name: resilience
      matches: [{path: {type: PathPrefix, value: /resilience}}]
      policies: [bench-resilience]
      retries: {attempts: 2, perTryTimeout: 5s, on: [connect-failure, reset, 5xx]}
      backends: [{url: "http://127.0.0.1:$backend_port"}]
    - name: cors
      matches: [{path: {type: PathPrefix, value: /cors}}]
      policies: [bench-cors]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: bench-cors, namespace: default}
spec:
  cors:
    allowOrigins: ["https://shop.bench.example", "https://*.partners.bench.example"]
    allowHeaders: [authorization, x-api-key]
    exposeHeaders: [x-total]
    allowCredentials: true
    maxAge: 10m
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: bench-resilience, namespace: default}
spec:
  circuitBreaker: {maxRequests: 100000, maxPendingRequests: 100000, consecutiveFailures: 5}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: bench-local, namespace: default}
spec:
  rateLimit:
    limits: [{requests: 100000000, period: 1h, key: ClientIP}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: bench-global, namespace: default}
spec:
  rateLimit:
    limits: [{requests: 100000000, period: 1h, key: ClientIP, scope: Global}]
EOF
  [[ -n $jwks ]] || return 0
  cat >>"$dir/route.yaml" <<EOF
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: bench-jwt, namespace: default}
spec:
  rules:
    - name: jwt
      matches: [{path: {type: PathPrefix, value: /jwt}}]
      policies: [bench-jwt]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: bench-jwt, namespace: default}
spec:
  authentication:
    jwt:
      issuer: https://bench/
      audiences: [bench]
      algorithms: [RS256]
      jwks: '$(cat "$jwks")'
      claimsToHeaders: [{claim: sub, header: x-user-id}]
  authorization:
    rules: [{claims: {scope: [bench:read]}}]
EOF
}

# start_frontdesk NAME PORT ADMIN_PORT MANIFEST_DIR [EXTRA_ARGS...]: frontdesk-proxy with one
# worker and no access log. Binary: $FRONTDESK_BIN.
start_frontdesk() {
  local name=$1 port=$2 admin=$3 manifests=$4
  shift 4
  [[ -x ${FRONTDESK_BIN:-} ]] || die "FRONTDESK_BIN (${FRONTDESK_BIN:-unset}) is not an executable"
  taskset -c "$BENCH_CORE_SERVERS" "$FRONTDESK_BIN" --manifests "$manifests" \
    --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" --workers 1 --access-log off "$@" \
    >"$BENCH_DIR/$name.log" 2>&1 &
  BENCH_PID[$name]=$!
  log "started $name (frontdesk-proxy, pid ${BENCH_PID[$name]})"
}

# wait_ready URL PID [TIMEOUT_S]: poll URL until it answers 200; fail if PID dies or on timeout.
wait_ready() {
  local url=$1 pid=$2 timeout=${3:-20} code deadline
  deadline=$((SECONDS + timeout))
  while :; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" 2>/dev/null || true)
    [[ $code == 200 ]] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      bench_dump_logs
      die "process $pid died before $url was ready"
    fi
    if ((SECONDS >= deadline)); then
      bench_dump_logs
      die "$url not ready after ${timeout}s (last status: ${code:-none})"
    fi
    sleep 0.1
  done
}

bench_dump_logs() {
  local f
  for f in "$BENCH_DIR"/*.log; do
    [[ -s $f ]] || continue
    echo "----- $f (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
}

# ---------------------------------------------------------------------------------------------
# CPU accounting

# cpu_ticks PID: sets CPU_TICKS to utime+stime (clock ticks) of PID and its direct children
# (nginx's master + worker; for frontdesk the process itself, all threads included).
cpu_ticks() {
  local pid=$1 p stat rest total=0 kids=""
  local -a f
  # `read <file` rather than $(<file): under set -e a missing file in $(<...) ends the script.
  read -r kids 2>/dev/null <"/proc/$pid/task/$pid/children" || true
  for p in "$pid" $kids; do
    read -r stat 2>/dev/null <"/proc/$p/stat" || continue
    rest=${stat##*) }        # skip "pid (comm) ": comm may contain spaces
    read -ra f <<<"$rest"    # f[0] is field 3 (state): utime is field 14, stime field 15
    total=$((total + f[11] + f[12]))
  done
  CPU_TICKS=$total
}

# busy_ticks: sets BUSY_TICKS to the machine's non-idle CPU ticks so far (all cores, /proc/stat:
# user+nice+system+irq+softirq+steal; guest time is already inside user), and STEAL_TICKS to the
# time the hypervisor gave our vCPUs to someone else (a noisy neighbour on a VM).
busy_ticks() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  BUSY_TICKS=$((user + nice + system + irq + softirq + steal))
  STEAL_TICKS=$steal
}

# children_ticks: sets CHILD_TICKS to the CPU ticks of this shell's finished children (the load
# generator), from the `times` builtin (no fork: written to a file, not read through $(...)).
children_ticks() {
  local line us ss
  times >"$BENCH_DIR/times"
  { read -r line; read -r us ss; } <"$BENCH_DIR/times"
  _times_ms "$us"; local u=$TIMES_MS
  _times_ms "$ss"
  CHILD_TICKS=$(((u + TIMES_MS) * CLK_TCK / 1000))
}
# _times_ms 1m2.345s: sets TIMES_MS to 62345.
_times_ms() {
  local t=$1 min sec int frac
  min=${t%%m*}; sec=${t#*m}; sec=${sec%s}
  int=${sec%%[.,]*}; frac=${sec#*[.,]}; frac=${frac}000; frac=${frac:0:3}
  TIMES_MS=$((10#$min * 60000 + 10#$int * 1000 + 10#$frac))
}

# cpu_snapshot before|after PROXY_PID BACKEND_PID: sets SNAP_before / SNAP_after to
# "busy proxy backend loadgen time_us steal" (ticks; PROXY_PID is "-" for the direct contender).
# Pure bash, no fork, so the snapshots themselves cost nothing measurable.
cpu_snapshot() {
  local when=$1 proxy=$2 backend=$3 proxy_t=0 backend_t
  children_ticks
  if [[ $proxy != - ]]; then cpu_ticks "$proxy"; proxy_t=$CPU_TICKS; fi
  cpu_ticks "$backend"; backend_t=$CPU_TICKS
  busy_ticks
  printf -v "SNAP_${when}" '%s %s %s %s %s %s' \
    "$BUSY_TICKS" "$proxy_t" "$backend_t" "$CHILD_TICKS" "${EPOCHREALTIME/[.,]/}" "$STEAL_TICKS"
}

# ---------------------------------------------------------------------------------------------
# Load generators. They run in the background and are waited for, so Ctrl-C reaches the trap at
# once and the cleanup can stop them.

_run_loadgen() {
  local out=$1 rc=0
  shift
  taskset -c "$BENCH_CORE_LOADGEN" "$@" >"$out" 2>&1 &
  BENCH_LOADGEN_PID=$!
  wait "$BENCH_LOADGEN_PID" || rc=$?
  BENCH_LOADGEN_PID=""
  if ((rc != 0)); then
    cat "$out" >&2
    die "$1 exited with status $rc"
  fi
}

# run_wrk URL DURATION_S OUT: closed loop, 1 thread, $BENCH_WRK_CONNS connections.
# Every contender gets the same request: when BENCH_HEADER is set (the JWT benchmark's
# Authorization header) or BENCH_ORIGIN is (the CORS benchmark's Origin), they are sent to all
# of them, so request sizes stay equal.
BENCH_HEADER=${BENCH_HEADER:-}
BENCH_ORIGIN=${BENCH_ORIGIN:-}
_header_args() {
  HEADER_ARGS=()
  if [[ -n $BENCH_HEADER ]]; then HEADER_ARGS+=(-H "$BENCH_HEADER"); fi
  if [[ -n $BENCH_ORIGIN ]]; then HEADER_ARGS+=(-H "Origin: $BENCH_ORIGIN"); fi
}

run_wrk() {
  _header_args
  _run_loadgen "$3" wrk -t1 -c"$BENCH_WRK_CONNS" -d"${2}s" --latency "${HEADER_ARGS[@]}" "$1"
}

# run_hey URL DURATION_S WORKERS QPS_PER_WORKER OUT: rate-limited (open-ish loop) latency run.
run_hey() {
  _header_args
  _run_loadgen "$5" hey -z "${2}s" -c "$3" -q "$4" "${HEADER_ARGS[@]}" "$1"
}

# run_wrk_paced URL DURATION_S CONNS QPS_PER_CONN OUT: the same pacing with wrk: each connection
# waits 1000/QPS ms (wrk's Lua delay(), whole ms) before each request. Like hey's -q, a paced
# closed loop, but wrk reports percentiles with microsecond resolution (hey prints 0.1 ms).
run_wrk_paced() {
  local script="$BENCH_DIR/paced-$4.lua"
  printf 'function delay()\n  return %d\nend\n' $((1000 / $4)) >"$script"
  _header_args
  _run_loadgen "$5" wrk -t1 -c"$3" -d"${2}s" --latency -s "$script" "${HEADER_ARGS[@]}" "$1"
}

# parse_wrk OUT: sets WRK_RPS, WRK_REQS, WRK_NON2XX, WRK_SOCKERR, WRK_P50_MS, WRK_P99_MS.
parse_wrk() {
  local vals
  vals=$(awk '
    function ms(v) {   # wrk prints latencies like 512.00us, 1.23ms, 2.00s
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
    / requests in / { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(",", ""); sockerr = $4 + $6 + $8 + $10 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    END { printf "%s %s %d %d %s %s\n", rps, reqs, non2xx, sockerr, p50, p99 }' "$1")
  read -r WRK_RPS WRK_REQS WRK_NON2XX WRK_SOCKERR WRK_P50_MS WRK_P99_MS <<<"$vals"
  [[ -n $WRK_RPS && -n $WRK_REQS && $WRK_REQS -gt 0 ]] || { cat "$1" >&2; die "could not parse wrk output $1"; }
}

# parse_hey OUT: sets HEY_P50_MS, HEY_P99_MS, HEY_RPS, HEY_OK (200 responses), HEY_ERRORS
# (non-200 responses + transport errors).
parse_hey() {
  local vals
  vals=$(awk '
    /^Latency distribution:/ { inlat = 1; next }
    inlat && /% in / { v = $3 * 1000; if ($1 == "50%") p50 = v; if ($1 == "99%") p99 = v; next }
    inlat && !/% in / { inlat = 0 }
    /Requests\/sec:/ { rps = $2 }
    /^Status code distribution:/ { incode = 1; next }
    incode && /^ *\[[0-9]+\]/ { c = $1; gsub(/[\[\]]/, "", c); if (c == 200) ok += $2; else bad += $2; next }
    incode { incode = 0 }
    /^Error distribution:/ { inerr = 1; next }
    inerr && /^ *\[[0-9]+\]/ { n = $1; gsub(/[\[\]]/, "", n); bad += n }
    END { printf "%s %s %s %d %d\n", p50, p99, rps, ok, bad }' "$1")
  read -r HEY_P50_MS HEY_P99_MS HEY_RPS HEY_OK HEY_ERRORS <<<"$vals"
  [[ -n $HEY_P50_MS && -n $HEY_P99_MS && $HEY_OK -gt 0 ]] || { cat "$1" >&2; die "could not parse hey output $1"; }
}

# ---------------------------------------------------------------------------------------------
# Measurements: each appends "ROUND CONTENDER METRIC VALUE" lines to $BENCH_RESULTS.

result() { printf '%s %s %s %s\n' "$@" >>"$BENCH_RESULTS"; }

# measure_wrk ROUND CONTENDER URL PROXY_PID BACKEND_PID DURATION_S: 2 s warm-up, then one
# measured wrk run. Records req/s, CPU-us per request of proxy and backend, the load generator's
# CPU, the CPU used by other processes (% of one core), and any errors.
measure_wrk() {
  local round=$1 who=$2 url=$3 proxy=$4 backend=$5 dur=$6 out
  out="$BENCH_DIR/wrk-$who-$round.txt"
  run_wrk "$url" 2 "$BENCH_DIR/warmup.txt"
  cpu_snapshot before "$proxy" "$backend"
  run_wrk "$url" "$dur" "$out"
  cpu_snapshot after "$proxy" "$backend"
  parse_wrk "$out"
  local b0 p0 k0 l0 t0 s0 b1 p1 k1 l1 t1 s1 vals
  read -r b0 p0 k0 l0 t0 s0 <<<"$SNAP_before"
  read -r b1 p1 k1 l1 t1 s1 <<<"$SNAP_after"
  # other = every busy tick on the machine minus those of proxy, backend and load generator
  vals=$(python3 -c '
import sys
tck, reqs, busy, proxy, backend, loadgen, us, steal = (int(x) for x in sys.argv[1:9])
secs = us / 1e6
per_req = lambda ticks: ticks * 1e6 / tck / reqs
other = busy - proxy - backend - loadgen
pct = lambda ticks: ticks * 100.0 / tck / secs
print("%.2f %.2f %.1f %.1f %.1f" % (per_req(proxy), per_req(backend), pct(loadgen), pct(other),
                                    pct(steal)))' \
    "$CLK_TCK" "$WRK_REQS" $((b1 - b0)) $((p1 - p0)) $((k1 - k0)) $((l1 - l0)) $((t1 - t0)) \
    $((s1 - s0)))
  local proxy_us backend_us loadgen_pct other_pct steal_pct
  read -r proxy_us backend_us loadgen_pct other_pct steal_pct <<<"$vals"
  result "$round" "$who" rps "$WRK_RPS"
  result "$round" "$who" requests "$WRK_REQS"
  if [[ $proxy != - ]]; then result "$round" "$who" proxy_cpu_us "$proxy_us"; fi
  result "$round" "$who" backend_cpu_us "$backend_us"
  result "$round" "$who" loadgen_cpu_pct "$loadgen_pct"
  result "$round" "$who" other_cpu_pct "$other_pct"
  result "$round" "$who" steal_cpu_pct "$steal_pct"
  result "$round" "$who" wrk_p50_ms "$WRK_P50_MS"
  result "$round" "$who" wrk_p99_ms "$WRK_P99_MS"
  result "$round" "$who" wrk_errors $((WRK_NON2XX + WRK_SOCKERR))
  log "round $round $who: $WRK_RPS req/s, proxy ${proxy_us} us/req, backend ${backend_us} us/req, other CPU ${other_pct}% of a core"
  if ((WRK_NON2XX + WRK_SOCKERR > 0)); then
    log "WARNING: $who had $WRK_NON2XX non-2xx responses and $WRK_SOCKERR socket errors"
  fi
}

# measure_latency ROUND CONTENDER URL DURATION_S WORKERS QPS_PER_WORKER: one latency run below
# saturation with $BENCH_LAT_TOOL (wrk paced, the default, or hey: see run_wrk_paced). Records p50/p99
# in ms, achieved req/s and errors.
measure_latency() {
  local round=$1 who=$2 url=$3 dur=$4 workers=$5 qps=$6 tool=${BENCH_LAT_TOOL:-wrk} out
  out="$BENCH_DIR/lat-$tool-$who-$round.txt"
  local p50 p99 rps errors
  case $tool in
    hey)
      run_hey "$url" "$dur" "$workers" "$qps" "$out"
      parse_hey "$out"
      p50=$HEY_P50_MS p99=$HEY_P99_MS rps=$HEY_RPS errors=$HEY_ERRORS ;;
    wrk)
      run_wrk_paced "$url" "$dur" "$workers" "$qps" "$out"
      parse_wrk "$out"
      p50=$WRK_P50_MS p99=$WRK_P99_MS rps=$WRK_RPS errors=$((WRK_NON2XX + WRK_SOCKERR)) ;;
    *) die "BENCH_LAT_TOOL must be hey or wrk, not '$tool'" ;;
  esac
  result "$round" "$who" lat_p50_ms "$p50"
  result "$round" "$who" lat_p99_ms "$p99"
  result "$round" "$who" lat_rps "$rps"
  result "$round" "$who" lat_errors "$errors"
  log "round $round $who: p50 $p50 ms, p99 $p99 ms at $rps req/s ($tool)"
  if ((errors > 0)); then log "WARNING: $who had $errors errors in the latency run"; fi
}

# rotate N WORDS...: sets ROTATED to WORDS rotated left by N (the contender order of round N).
rotate() {
  local n=$1
  shift
  local -a w=("$@")
  n=$((n % ${#w[@]}))
  ROTATED=("${w[@]:n}" "${w[@]:0:n}")
}
