#!/usr/bin/env bash
# Cache hit benchmark (`make bench` runs it after bench/run.sh): frontdesk-proxy answering from its
# response cache (a Policy `cache` section) against nginx answering from `proxy_cache`, one
# worker each, for the same small response of the static nginx backend (bench/lib.sh), warmed so
# every measured request is a hit: `wrk -t1 -c64`, req/s and CPU-us per request of the proxy.
# BENCH_ROUNDS rounds (default 3) of BENCH_DURATION seconds (default 8), the two proxies' order
# rotated each round. Prints medians and the ratios to nginx, and writes them to bench/out/.
# Environment as bench/run.sh: BENCH_SKIP_BUILD=1 with FRONTDESK_BIN to use a built binary.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-8}

"$REPO/scripts/install-deps.sh" bench
if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
  log "building frontdesk-proxy (release)"
  (cd "$REPO" && cargo build --release -p frontdesk-proxy --bin frontdesk-proxy)
fi
FRONTDESK_BIN=${FRONTDESK_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/frontdesk-proxy}

bench_init
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$REPO/bench/out"
BENCH_RESULTS="$REPO/bench/out/cache-results-$stamp.txt"
: >"$BENCH_RESULTS"
free_port; backend_port=$FREE_PORT
start_nginx_backend backend "$backend_port"
wait_ready "http://127.0.0.1:$backend_port/" "${BENCH_PID[backend]}"

# nginx: the reference proxy with a memory-backed keys zone and its answers kept 10 minutes
# (the backend says nothing of freshness, like frontdesk's Policy ttl below).
free_port; nginx_port=$FREE_PORT
conf="$BENCH_DIR/nginx-cache.conf"
render "$BENCH_LIB_DIR/nginx-proxy.conf.tmpl" "$conf" \
  PORT="$nginx_port" UPSTREAM="$backend_port" PREFIX="$BENCH_DIR" NAME=nginx-cache
sed -i "s#^    upstream backend {#    proxy_cache_path $BENCH_DIR/tmp/nginx-cache-store keys_zone=bench:10m;\n\n    upstream backend {#; s#            proxy_pass http://backend;#            proxy_pass http://backend;\n            proxy_cache bench;\n            proxy_cache_valid 200 10m;\n            add_header X-Cache-Status \$upstream_cache_status;#" "$conf"
start_nginx nginx-cache "$conf"
wait_ready "http://127.0.0.1:$nginx_port/" "${BENCH_PID[nginx-cache]}"

# frontdesk: the catch-all route behind a Policy that caches for 10 minutes.
dir="$BENCH_DIR/cache-manifests"
mkdir -p "$dir"
cat >"$dir/route.yaml" <<YAML
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: cached, namespace: default}
spec:
  cache: {ttl: 10m}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: bench, namespace: default}
spec:
  policies: [cached]
  rules:
    - name: all
      matches: [{path: {type: PathPrefix, value: /}}]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
YAML
free_port; fd_port=$FREE_PORT
free_port; fd_admin=$FREE_PORT
start_frontdesk frontdesk-cache "$fd_port" "$fd_admin" "$dir"
wait_ready "http://127.0.0.1:$fd_admin/ready" "${BENCH_PID[frontdesk-cache]}"
wait_ready "http://127.0.0.1:$fd_port/" "${BENCH_PID[frontdesk-cache]}"

declare -A url=([frontdesk-cache-hit]="http://127.0.0.1:$fd_port/" [nginx-cache-hit]="http://127.0.0.1:$nginx_port/")
# The worker, not the master: it does the work.
declare -A proxy_pid=([frontdesk-cache-hit]=${BENCH_PID[frontdesk-cache]} [nginx-cache-hit]=$(pgrep -P "${BENCH_PID[nginx-cache]}" | head -n 1))

# Both answer from their caches now, or the comparison is not of hits.
curl -s -D - -o /dev/null "${url[nginx-cache-hit]}" | grep -qi '^x-cache-status: HIT' ||
  { bench_dump_logs; die "nginx does not answer from proxy_cache"; }
curl -s -D - -o /dev/null "${url[frontdesk-cache-hit]}" | grep -qi '^cache-status: frontdesk; hit' ||
  { bench_dump_logs; die "frontdesk does not answer from its cache"; }

contenders=(frontdesk-cache-hit nginx-cache-hit)
for r in $(seq 1 "$ROUNDS"); do
  rotate "$r" "${contenders[@]}"
  for c in "${ROTATED[@]}"; do
    measure_wrk "$r" "$c" "${url[$c]}" "${proxy_pid[$c]}" "${BENCH_PID[backend]}" "$DURATION"
  done
done
backend_hits=$(curl -s "http://127.0.0.1:$fd_admin/metrics" | awk '/^frontdesk_cache_requests_total\{result="miss"\}/{print $2}')

report="$REPO/bench/out/cache-$stamp.txt"
python3 - "$BENCH_RESULTS" "${backend_hits:-?}" >"$report" <<'PY'
import collections, statistics, sys
values = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, who, metric, value = line.split()
    values[(who, metric)].append(float(value))
med = lambda who, m: statistics.median(values[(who, m)]) if values[(who, m)] else float("nan")
span = lambda who, m: (min(values[(who, m)]), max(values[(who, m)])) if values[(who, m)] else (float("nan"),) * 2
print("Cache hits, medians (wrk -t1 -c64, every request answered from the proxy's cache)")
print(f"{'':22} {'req/s':>10} {'(min-max)':>19} {'proxy CPU-us':>13} {'p50 ms':>8}")
for who in ("frontdesk-cache-hit", "nginx-cache-hit"):
    lo, hi = span(who, "rps")
    print(f"{who:22} {med(who, 'rps'):10.0f} {f'({lo:.0f}-{hi:.0f})':>19} {med(who, 'proxy_cpu_us'):13.2f} {med(who, 'wrk_p50_ms'):8.3f}")
f, n = "frontdesk-cache-hit", "nginx-cache-hit"
print()
print(f"frontdesk / nginx: req/s {med(f, 'rps') / med(n, 'rps'):.2f} (higher is better), "
      f"CPU-us per request {med(f, 'proxy_cpu_us') / med(n, 'proxy_cpu_us'):.2f} (lower is better)")
print(f"frontdesk's misses in the whole run (the warm-up's): {sys.argv[2]}")
PY
cat "$report"
cp "$report" "$REPO/bench/out/latest-cache.txt"
log "report: $report"
