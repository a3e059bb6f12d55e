#!/usr/bin/env bash
# gRPC benchmark (`make bench-grpc`; `make bench` runs it too): what does putting frontdesk-proxy
# in front of a gRPC server cost, for unary calls?
#
# Contenders, all making the same call to the same demo backend (`frontdesk-demo NAME=ADDR`, its
# demo.Catalog service over HTTP/2 cleartext: demo/src/grpc.rs):
#   direct     h2load -> the demo backend
#   frontdesk  h2load -> frontdesk-proxy (1 worker, access log off; a Route rule
#              `grpc: {service: demo.Catalog}` to the backend with `protocol: h2c`) -> backend
#   frontdesk-transcoded: a JSON GET /v1/products/2 through the same proxy, transcoded by it into
#   the same call (grpcTranscode from demo/proto/catalog.proto), the product back as JSON
#
# The call: POST /demo.Catalog/GetProduct, `content-type: application/grpc`, `te: trailers`, body
# the framed GetProductRequest{id: "2"} (00 00 00 00 03 0a 01 32); the answer is the product
# "Burr grinder" and `grpc-status: 0` in the trailers.
#
# Measured as bench/run.sh measures (method in bench/lib.sh and shared BENCH.md: only comparisons
# inside one run mean something): servers pinned to core 0, h2load to core 1; a closed loop of
# `h2load -t1 -c$BENCH_H2LOAD_CLIENTS -m$BENCH_H2LOAD_STREAMS` (connections x concurrent streams
# each, HTTP/2 with prior knowledge) for BENCH_DURATION seconds after a 2 s warm-up run,
# BENCH_ROUNDS rounds with the contenders' order rotated each round; calls per second, and
# CPU-us per call of the proxy and of the backend from /proc/<pid>/stat; the CPU used by other
# processes during each run. Prints medians with min-max and the ratio frontdesk / direct.
#
# Fails loudly (and keeps the temp dir with the logs) when h2load or nghttp is missing, when a
# run has any failed, errored or timed-out call or an answer other than 2xx, when a check call
# (nghttp, before measuring) does not come back with the product and `grpc-status: 0`, when the
# backend saw fewer calls than h2load completed (some were answered by someone else), or when
# the proxy answered anything itself (frontdesk_local_replies_total moved). h2load counts a
# gRPC error that comes as HTTP 200 (a Trailers-Only answer) as a success: the last two checks
# are what catch those.
#
# Environment:
#   BENCH_CONTENDERS       contenders to run (default "direct frontdesk frontdesk-transcoded")
#   BENCH_ROUNDS           rounds (default 5)
#   BENCH_DURATION         seconds per measured run (default 10)
#   BENCH_H2LOAD_CLIENTS   h2load connections (default 4)
#   BENCH_H2LOAD_STREAMS   concurrent streams per connection (default 16)
#   BENCH_SKIP_BUILD=1     don't run cargo; use built binaries (FRONTDESK_BIN and DEMO_BIN, by
#                          default target/release/frontdesk-proxy and target/release/frontdesk-demo)
#   BENCH_KEEP_TMP=1       keep the temp dir (manifests, logs, raw h2load output)
# Output: the table on stdout, bench/out/grpc-results-<time>.txt (raw "round contender metric
# value" lines) and bench/out/grpc-<time>.txt (the table); bench/out/latest-grpc.txt is a copy.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

CONTENDERS=${BENCH_CONTENDERS:-direct frontdesk frontdesk-transcoded}
ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-10}
CLIENTS=${BENCH_H2LOAD_CLIENTS:-4}
STREAMS=${BENCH_H2LOAD_STREAMS:-16}
WARMUP=2

read -ra contenders <<<"$CONTENDERS"
for c in "${contenders[@]}"; do
  case $c in
    direct | frontdesk) ;;
    frontdesk-transcoded) [[ " $CONTENDERS " == *" frontdesk "* ]] ||
      die "frontdesk-transcoded runs on frontdesk's proxy: name frontdesk too" ;;
    *) die "unknown contender '$c' (direct frontdesk frontdesk-transcoded)" ;;
  esac
done
wants() { [[ " $CONTENDERS " == *" $1 "* ]]; }

"$REPO/scripts/install-deps.sh" bench
command -v h2load >/dev/null 2>&1 ||
  die "h2load is needed (Debian's nghttp2-client: scripts/install-deps.sh bench)"
command -v nghttp >/dev/null 2>&1 ||
  die "nghttp is needed for the check calls (Debian's nghttp2-client: scripts/install-deps.sh bench)"

target_dir=${CARGO_TARGET_DIR:-$REPO/target}
[[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  # Two builds, not one: built together, the two packages' dependency features would be unified
  # and the proxy would not be the binary `cargo build -p frontdesk-proxy` (and bench/run.sh) makes.
  log "building frontdesk-proxy and frontdesk-demo (release)"
  (cd "$REPO" && cargo build --release -p frontdesk-proxy --bin frontdesk-proxy)
  (cd "$REPO" && cargo build --release -p frontdesk-demo --bin frontdesk-demo)
fi
FRONTDESK_BIN=${FRONTDESK_BIN:-$target_dir/release/frontdesk-proxy}
DEMO_BIN=${DEMO_BIN:-$target_dir/release/frontdesk-demo}
[[ -x $DEMO_BIN ]] || die "no frontdesk-demo binary at $DEMO_BIN"
if wants frontdesk; then [[ -x $FRONTDESK_BIN ]] || die "no frontdesk-proxy binary at $FRONTDESK_BIN"; fi

mkdir -p "$REPO/bench/out"
stamp=$(date +%Y%m%d-%H%M%S)
BENCH_RESULTS="$REPO/bench/out/grpc-results-$stamp.txt"
report_file="$REPO/bench/out/grpc-$stamp.txt"

bench_init

# The request body: GetProductRequest{id: "2"} framed (flag 0, length 3, field 1 "2").
GRPC_BODY="$BENCH_DIR/get-product-2.bin"
printf '\x00\x00\x00\x00\x03\x0a\x01\x32' >"$GRPC_BODY"
[[ $(od -An -tx1 "$GRPC_BODY" | tr -d ' \n') == 00000000030a0132 ]] || die "wrong request body in $GRPC_BODY"

# request_args KIND: sets REQ_ARGS to h2load's request options for a contender's kind of call.
request_args() {
  case $1 in
    grpc) REQ_ARGS=(-d "$GRPC_BODY" -H 'content-type: application/grpc' -H 'te: trailers') ;;
    json) REQ_ARGS=(-H 'accept: application/json') ;;   # frontdesk-transcoded: a plain GET
    *) die "no request for kind '$1'" ;;
  esac
}

# check_grpc_call WHO URL: one GetProduct call with nghttp (same body and headers as h2load, HTTP/2
# with prior knowledge; curl 7.88 fails now and then on answers with trailers): it must answer
# :status 200, the product, and grpc-status 0 (and only that). Tried for about 5 s, so a proxy
# still loading its manifests is waited for; then the bench stops with the last answer.
check_grpc_call() {
  local who=$1 url=$2 out="$BENCH_DIR/check-$1.txt" statuses i
  for ((i = 0; i < 50; i++)); do
    if timeout 5 nghttp -v -d "$GRPC_BODY" -H 'content-type: application/grpc' -H 'te: trailers' \
      "$url" >"$out" 2>&1; then
      statuses=$(grep -a -o 'recv (stream_id=[0-9]*) grpc-status: .*' "$out" | awk '{print $NF}' | tr -d '\r' | tr '\n' ' ')
      if grep -aq 'recv (stream_id=[0-9]*) :status: 200' "$out" && [[ $statuses == "0 " ]] &&
        grep -aq 'Burr grinder' "$out"; then
        log "$who: GetProduct{id: \"2\"} answered grpc-status 0 with the product"
        return 0
      fi
    fi
    sleep 0.1
  done
  cat "$out" >&2
  bench_dump_logs
  die "$who: the check call to $url did not come back with the product and grpc-status 0 (above)"
}

# backend_requests: sets BACKEND_REQUESTS to the calls the demo backend has answered so far
# (its /requests, which does not count itself). Outside the measured window only: it forks.
backend_requests() {
  local body
  body=$(curl -s -m 5 "http://127.0.0.1:$backend_port/requests") || die "backend /requests failed"
  BACKEND_REQUESTS=$(sed -nE 's/.*"requests": *([0-9]+).*/\1/p' <<<"$body")
  [[ -n $BACKEND_REQUESTS ]] || die "backend /requests answered '$body'"
}

# local_replies: sets LOCAL_REPLIES to the answers the proxy made itself so far (every
# frontdesk_local_replies_total series summed: refusals, upstream errors, no route...).
local_replies() {
  local metrics
  metrics=$(curl -s -m 5 "http://127.0.0.1:$admin_port/metrics") || die "proxy /metrics failed"
  LOCAL_REPLIES=$(awk '/^frontdesk_local_replies_total[{ ]/ { s += $NF } END { printf "%d", s }' <<<"$metrics")
}

# run_h2load URL DURATION_S OUT REQUEST_ARGS...: one closed-loop h2load run, one thread, $CLIENTS
# connections with $STREAMS concurrent streams each, over HTTP/2 with prior knowledge (h2load's
# default for http:// URIs).
run_h2load() {
  local url=$1 dur=$2 out=$3
  shift 3
  _run_loadgen "$out" h2load -t 1 -c "$CLIENTS" -m "$STREAMS" -D "$dur" "$@" "$url"
}

# parse_h2load OUT: sets H2_RPS and H2_DONE (calls completed), and stops the bench when any call
# failed: h2load exits 0 whatever happened (even with nothing listening), so its counts decide.
# Calls still in flight when the duration ends (started - done, at most clients x streams) are
# neither done nor failed (but may be among the 2xx, counted when a head arrives).
parse_h2load() {
  local out=$1 vals failed errored timeouts s2xx s3xx s4xx s5xx succeeded prf
  vals=$(awk '
    /^finished in / { rps = $4 }
    /^requests: / { gsub(",", ""); done = $6; succ = $8; failed = $10; errored = $12; tmo = $14 }
    /^status codes: / { gsub(",", ""); s2 = $3; s3 = $5; s4 = $7; s5 = $9 }
    /Process Request Failure/ { prf++ }
    END { printf "%s %s %s %s %s %s %s %s %s %s %d\n", rps, done, succ, failed, errored, tmo,
          s2, s3, s4, s5, prf }' "$out")
  read -r H2_RPS H2_DONE succeeded failed errored timeouts s2xx s3xx s4xx s5xx prf <<<"$vals"
  if [[ -z $H2_RPS || -z $H2_DONE || -z $s5xx ]]; then
    cat "$out" >&2
    die "could not parse h2load output $out"
  fi
  if ((H2_DONE == 0 || failed + errored + timeouts > 0 || succeeded != H2_DONE || s3xx + s4xx + s5xx > 0 || prf > 0)); then
    cat "$out" >&2
    bench_dump_logs
    die "h2load: $H2_DONE calls done, $failed failed, $errored errored, $timeouts timed out," \
      "status codes ${s2xx}/${s3xx}/${s4xx}/${s5xx} 2xx/3xx/4xx/5xx, $prf 'Process Request Failure' lines ($out)"
  fi
  if ! grep -q '^Application protocol: h2c' "$out"; then
    cat "$out" >&2
    bench_dump_logs
    die "h2load did not speak HTTP/2 cleartext ($out)"
  fi
}

# measure_h2load ROUND CONTENDER URL PROXY_PID BACKEND_PID DURATION_S KIND: a 2 s warm-up run,
# then one measured run. Records calls/s, CPU-us per call of proxy and backend, the load
# generator's CPU, the CPU used by other processes (% of one core); checks that every call the
# run completed reached the backend and, through the proxy, that the proxy answered none itself.
measure_h2load() {
  local round=$1 who=$2 url=$3 proxy=$4 backend=$5 dur=$6 kind=$7 out
  out="$BENCH_DIR/h2load-$who-$round.txt"
  request_args "$kind"
  run_h2load "$url" "$WARMUP" "$BENCH_DIR/warmup-$who-$round.txt" "${REQ_ARGS[@]}"
  parse_h2load "$BENCH_DIR/warmup-$who-$round.txt"
  local replies0=0 calls0
  if [[ $proxy != - ]]; then local_replies; replies0=$LOCAL_REPLIES; fi
  backend_requests; calls0=$BACKEND_REQUESTS
  cpu_snapshot before "$proxy" "$backend"
  run_h2load "$url" "$dur" "$out" "${REQ_ARGS[@]}"
  cpu_snapshot after "$proxy" "$backend"
  parse_h2load "$out"
  backend_requests
  if ((BACKEND_REQUESTS - calls0 < H2_DONE)); then
    bench_dump_logs
    die "$who round $round: h2load completed $H2_DONE calls but the backend got only" \
      "$((BACKEND_REQUESTS - calls0)): the others were answered before reaching it"
  fi
  if [[ $proxy != - ]]; then
    local_replies
    if ((LOCAL_REPLIES != replies0)); then
      curl -s "http://127.0.0.1:$admin_port/metrics" | grep '^frontdesk_local_replies_total' >&2 || true
      bench_dump_logs
      die "$who round $round: the proxy answered $((LOCAL_REPLIES - replies0)) calls itself (above)"
    fi
  fi
  local b0 p0 k0 l0 t0 s0 b1 p1 k1 l1 t1 s1 vals
  read -r b0 p0 k0 l0 t0 s0 <<<"$SNAP_before"
  read -r b1 p1 k1 l1 t1 s1 <<<"$SNAP_after"
  # other = every busy tick on the machine minus those of proxy, backend and load generator
  vals=$(python3 -c '
import sys
tck, calls, busy, proxy, backend, loadgen, us, steal = (int(x) for x in sys.argv[1:9])
secs = us / 1e6
per_call = lambda ticks: ticks * 1e6 / tck / calls
other = busy - proxy - backend - loadgen
pct = lambda ticks: ticks * 100.0 / tck / secs
print("%.2f %.2f %.1f %.1f %.1f" % (per_call(proxy), per_call(backend), pct(loadgen), pct(other),
                                    pct(steal)))' \
    "$CLK_TCK" "$H2_DONE" $((b1 - b0)) $((p1 - p0)) $((k1 - k0)) $((l1 - l0)) $((t1 - t0)) \
    $((s1 - s0)))
  local proxy_us backend_us loadgen_pct other_pct steal_pct
  read -r proxy_us backend_us loadgen_pct other_pct steal_pct <<<"$vals"
  result "$round" "$who" rps "$H2_RPS"
  result "$round" "$who" calls "$H2_DONE"
  if [[ $proxy != - ]]; then result "$round" "$who" proxy_cpu_us "$proxy_us"; fi
  result "$round" "$who" backend_cpu_us "$backend_us"
  result "$round" "$who" loadgen_cpu_pct "$loadgen_pct"
  result "$round" "$who" other_cpu_pct "$other_pct"
  result "$round" "$who" steal_cpu_pct "$steal_pct"
  log "round $round $who: $H2_RPS calls/s, proxy ${proxy_us} us/call, backend ${backend_us} us/call, other CPU ${other_pct}% of a core"
}

# write_grpc_manifest DIR BACKEND_PORT: the Route of the frontdesk contender, in DIR/route.yaml.
write_grpc_manifest() {
  local dir=$1 backend_port=$2
  mkdir -p "$dir"
  cat >"$dir/route.yaml" <<EOF
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: bench-grpc, namespace: default}
spec:
  rules:
    - name: catalog
      matches: [{grpc: {service: demo.Catalog}}]
      backends: [{url: "http://127.0.0.1:$backend_port", protocol: h2c}]
    - name: catalog-rest
      matches: [{path: {type: PathPrefix, value: /v1/products}}]
      grpcTranscode: {protosConfigMap: catalog-protos}
      backends: [{url: "http://127.0.0.1:$backend_port", protocol: h2c}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: catalog-protos, namespace: default}
data:
  catalog.proto: |
$(sed 's/^/    /' "$REPO/demo/proto/catalog.proto")
EOF
}

# check_json_call WHO URL: one transcoded GET must answer 200 with the product's JSON.
check_json_call() {
  local who=$1 url=$2 out="$BENCH_DIR/check-$1.txt" i
  for ((i = 0; i < 50; i++)); do
    if timeout 5 nghttp -v "$url" >"$out" 2>&1 &&
      grep -aq 'recv (stream_id=[0-9]*) :status: 200' "$out" &&
      grep -aq '"name":"Burr grinder"' "$out"; then
      log "$who: GET /v1/products/2 answered 200 with the product as JSON"
      return 0
    fi
    sleep 0.1
  done
  cat "$out" >&2
  bench_dump_logs
  die "$who: the check call to $url did not come back with the product as JSON (above)"
}

# setup_transcoded: the transcoded contender, on the proxy started for "frontdesk".
setup_transcoded() {
  url[frontdesk-transcoded]="http://127.0.0.1:$fd_port/v1/products/2"
  proxy_pid[frontdesk-transcoded]=${BENCH_PID[frontdesk]}
  call_kind[frontdesk-transcoded]=json
  check_json_call frontdesk-transcoded "${url[frontdesk-transcoded]}"
}

# --- start the servers --------------------------------------------------------------------------
free_port; backend_port=$FREE_PORT
taskset -c "$BENCH_CORE_SERVERS" "$DEMO_BIN" "catalog=127.0.0.1:$backend_port" \
  >"$BENCH_DIR/backend.log" 2>&1 &
BENCH_PID[backend]=$!
log "started backend (frontdesk-demo, pid ${BENCH_PID[backend]})"
wait_ready "http://127.0.0.1:$backend_port/" "${BENCH_PID[backend]}"

declare -A url=([direct]="http://127.0.0.1:$backend_port/demo.Catalog/GetProduct")
declare -A proxy_pid=([direct]=-)
declare -A call_kind=([direct]=grpc)
check_grpc_call direct "${url[direct]}"

admin_port=""
if wants frontdesk; then
  free_port; fd_port=$FREE_PORT
  free_port; admin_port=$FREE_PORT
  write_grpc_manifest "$BENCH_DIR/manifests" "$backend_port"
  start_frontdesk frontdesk "$fd_port" "$admin_port" "$BENCH_DIR/manifests"
  wait_ready "http://127.0.0.1:$admin_port/ready" "${BENCH_PID[frontdesk]}"
  url[frontdesk]="http://127.0.0.1:$fd_port/demo.Catalog/GetProduct"
  proxy_pid[frontdesk]=${BENCH_PID[frontdesk]}
  call_kind[frontdesk]=grpc
  check_grpc_call frontdesk "${url[frontdesk]}"
  if wants frontdesk-transcoded; then setup_transcoded; fi
fi

{
  echo "# frontdesk gRPC benchmark $stamp"
  echo "# host $(uname -n), $(nproc) cores, kernel $(uname -r), CLK_TCK $CLK_TCK"
  echo "# commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  echo "# $(h2load --version 2>&1 | head -n 1); backend frontdesk-demo (demo.Catalog over h2c)"
  echo "# contenders: ${contenders[*]}; rounds $ROUNDS; h2load -t1 -c$CLIENTS -m$STREAMS -D${DURATION}s" \
    "after a ${WARMUP}s warm-up run; POST /demo.Catalog/GetProduct {id: \"2\"}"
  echo "# servers on core $BENCH_CORE_SERVERS, load generator on core $BENCH_CORE_LOADGEN"
  echo "# columns: round contender metric value"
} >"$BENCH_RESULTS"

# --- throughput ---------------------------------------------------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
  rotate $((r - 1)) "${contenders[@]}"
  for c in "${ROTATED[@]}"; do
    measure_h2load "$r" "$c" "${url[$c]}" "${proxy_pid[$c]}" "${BENCH_PID[backend]}" "$DURATION" "${call_kind[$c]}"
  done
done

# --- report -------------------------------------------------------------------------------------
python3 - "$BENCH_RESULTS" "${contenders[*]}" >"$report_file" <<'PY'
import collections, statistics, sys

meta, data = [], collections.defaultdict(dict)  # data[(who, metric)][round] = value
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    if line.startswith("#"):
        if not line.startswith("# columns"):
            meta.append(line)
        continue
    r, who, metric, value = line.split()
    data[(who, metric)][int(r)] = float(value)
order = sys.argv[2].split()

def vals(who, m):
    return list(data[(who, m)].values())

def med(who, m):
    v = vals(who, m)
    return statistics.median(v) if v else None

def cell(who, m, spec, width):
    """The median and its (min-max), or '-'."""
    v = vals(who, m)
    if not v:
        return f"{'-':>{width}}"
    return f"{format(statistics.median(v), spec):>9} {'(' + format(min(v), spec) + '-' + format(max(v), spec) + ')':>{width - 10}}"

def ratio(a, ma, b, mb):
    """a's metric ma over b's mb: the ratio of medians, and the min-max of the per-round ratios."""
    ra, rb = data[(a, ma)], data[(b, mb)]
    per_round = [ra[r] / rb[r] for r in sorted(ra) if r in rb and rb[r]]
    if not per_round or not med(b, mb):
        return "-"
    return f"{med(a, ma) / med(b, mb):.2f} ({min(per_round):.2f}-{max(per_round):.2f})"

out = list(meta)
out.append("")
out.append("gRPC unary calls: medians (min-max)")
head = (f"{'contender':<22} {'calls/s (min-max)':>27} {'proxy CPU-us/call':>27} "
        f"{'backend CPU-us/call':>27} {'other CPU %':>12}")
out.append(head)
out.append("-" * len(head))
for who in order:
    other = med(who, "other_cpu_pct")
    out.append(f"{who:<22} {cell(who, 'rps', '.0f', 27)} {cell(who, 'proxy_cpu_us', '.2f', 27)} "
               f"{cell(who, 'backend_cpu_us', '.2f', 27)} "
               f"{'-' if other is None else format(other, '.1f'):>12}")
out.append("(CPU-us per call from /proc/<pid>/stat over the measured run, divided by the calls "
           "h2load completed; direct has no proxy: its backend CPU is the reference)")

pairs = [(a, b) for a, b in (("frontdesk", "direct"), ("frontdesk-transcoded", "direct"),
                             ("frontdesk-transcoded", "frontdesk")) if a in order and b in order]
if pairs:
    out.append("")
    out.append("ratios (ratio of medians; per-round min-max)")
    for a, b in pairs:
        out.append(f"  {a + ' / ' + b + ', calls/s':<48} {ratio(a, 'rps', b, 'rps')}")
    for a, b in pairs:
        out.append(f"  {a + ' / ' + b + ', backend CPU-us/call':<48} "
                   f"{ratio(a, 'backend_cpu_us', b, 'backend_cpu_us')}")
    for a in ("frontdesk", "frontdesk-transcoded"):
        if a in order and "direct" in order:
            out.append(f"  {a + ' proxy / direct backend, CPU-us/call':<48} "
                       f"{ratio(a, 'proxy_cpu_us', 'direct', 'backend_cpu_us')}"
                       "   (the proxy's work per call against the gRPC server's own)")

notes = []
for who in order:
    noisy = {r: v for r, v in sorted(data[(who, "other_cpu_pct")].items()) if v > 10}
    if noisy:
        notes.append(f"  noise: {who} rounds {sorted(noisy)} had other processes using up to "
                     f"{max(noisy.values()):.0f}% of a core: consider repeating the run")
    steal = vals(who, "steal_cpu_pct")
    if steal and max(steal) > 10:
        notes.append(f"  noise: {who} had up to {max(steal):.0f}% of a core stolen by the "
                     "hypervisor (included in other CPU)")
    loadgen = vals(who, "loadgen_cpu_pct")
    if loadgen and statistics.median(loadgen) > 90:
        notes.append(f"  {who}: h2load used {statistics.median(loadgen):.0f}% of its core: its "
                     "calls/s is bounded by the load generator, not the servers")
if notes:
    out.append("")
    out.append("notes")
    out.extend(notes)
print("\n".join(out))
PY
cat "$report_file"
cp "$report_file" "$REPO/bench/out/latest-grpc.txt"
log "raw results: $BENCH_RESULTS"
log "report:      $report_file"
