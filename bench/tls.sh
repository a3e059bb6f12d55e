#!/usr/bin/env bash
# TLS termination benchmark (`make bench-tls`): frontdesk-proxy behind a Gateway's HTTPS listener
# against nginx terminating TLS with the same certificate, one worker each, in front of the same
# static nginx backend (bench/lib.sh), for an ECDSA P-256 and an RSA 2048 certificate:
#   - keep-alive: `wrk -t1 -c64` over kept-alive TLS connections: req/s and CPU-us per request;
#   - handshakes: the same with `Connection: close`, so every request is a new connection and a
#     full handshake (wrk does not resume sessions): connections per second and CPU-us each.
# BENCH_ROUNDS rounds (default 3) of BENCH_DURATION seconds (default 8), the two proxies' order
# rotated each round. Prints a table of medians and ratios to nginx and writes it to bench/out/.
# Environment as bench/run.sh: BENCH_SKIP_BUILD=1 with FRONTDESK_BIN to use a built binary.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-8}

if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
  log "building frontdesk-proxy (release)"
  (cd "$REPO" && cargo build --release -p frontdesk-proxy --bin frontdesk-proxy)
fi
FRONTDESK_BIN=${FRONTDESK_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/frontdesk-proxy}
command -v openssl >/dev/null || die "openssl is needed (scripts/install-deps.sh bench)"

bench_init
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$REPO/bench/out"
BENCH_RESULTS="$REPO/bench/out/tls-results-$stamp.txt"
: >"$BENCH_RESULTS"
free_port; backend_port=$FREE_PORT
start_nginx_backend backend "$backend_port"

# certificate KIND: a self-signed certificate for localhost and 127.0.0.1 in $BENCH_DIR/KIND.
certificate() {
  local kind=$1 key_args
  case $kind in
    ecdsa) key_args=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) key_args=(-newkey rsa:2048) ;;
  esac
  mkdir -p "$BENCH_DIR/$kind"
  openssl req -x509 "${key_args[@]}" -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$BENCH_DIR/$kind/key.pem" -out "$BENCH_DIR/$kind/cert.pem" 2>/dev/null
}

# nginx_tls NAME PORT KIND: the reference proxy, TLS on PORT, session cache and tickets on.
nginx_tls() {
  local name=$1 port=$2 kind=$3 conf="$BENCH_DIR/$1.conf"
  render "$BENCH_LIB_DIR/nginx-proxy.conf.tmpl" "$conf" \
    PORT="$port" UPSTREAM="$backend_port" PREFIX="$BENCH_DIR" NAME="$name"
  sed -i "s#listen 127.0.0.1:$port backlog=4096;#listen 127.0.0.1:$port ssl backlog=4096;\n        ssl_certificate $BENCH_DIR/$kind/cert.pem;\n        ssl_certificate_key $BENCH_DIR/$kind/key.pem;\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache shared:SSL:10m;\n        ssl_session_tickets on;#" "$conf"
  start_nginx "$name" "$conf"
}

# frontdesk_tls NAME PORT KIND: frontdesk with a Gateway whose HTTPS listener is PORT.
frontdesk_tls() {
  local name=$1 port=$2 kind=$3 dir="$BENCH_DIR/$1-manifests"
  write_route_manifest "$dir" "$backend_port"
  {
    printf 'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n'
    printf 'metadata: {name: default, namespace: default}\n'
    printf 'spec:\n  gatewayClassName: frontdesk\n  listeners:\n'
    printf '    - {name: https, port: %s, protocol: HTTPS, tls: {certificateRefs: [{name: bench-tls}]}}\n' "$port"
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: bench-tls, namespace: default}\n'
    printf 'type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n'
    sed 's/^/    /' "$BENCH_DIR/$kind/cert.pem"
    printf '  tls.key: |\n'
    sed 's/^/    /' "$BENCH_DIR/$kind/key.pem"
  } >"$dir/gateway.yaml"
  local listen admin
  free_port; listen=$FREE_PORT
  free_port; admin=$FREE_PORT
  start_frontdesk "$name" "$listen" "$admin" "$dir"
}

declare -A url=()
declare -A proxy_pid=()
contenders=()
# ready URL PID: answers 200 over TLS (the certificates are self-signed: -k).
ready() {
  for _ in $(seq 1 200); do
    [[ $(curl -sk -o /dev/null -m 1 -w '%{http_code}' "$1" || true) == 200 ]] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  bench_dump_logs
  die "$1 does not answer 200 over TLS"
}
for kind in ecdsa rsa; do
  certificate "$kind"
  free_port; port=$FREE_PORT
  nginx_tls "nginx-$kind" "$port" "$kind"
  url[nginx-$kind]="https://127.0.0.1:$port/"
  ready "${url[nginx-$kind]}" "${BENCH_PID[nginx-$kind]}"
  # The worker, not the master: it does the work.
  proxy_pid[nginx-$kind]=$(pgrep -P "${BENCH_PID[nginx-$kind]}" | head -n 1)
  free_port; port=$FREE_PORT
  frontdesk_tls "frontdesk-$kind" "$port" "$kind"
  url[frontdesk-$kind]="https://127.0.0.1:$port/"
  ready "${url[frontdesk-$kind]}" "${BENCH_PID[frontdesk-$kind]}"
  proxy_pid[frontdesk-$kind]=${BENCH_PID[frontdesk-$kind]}
  contenders+=("frontdesk-$kind" "nginx-$kind")
done

for r in $(seq 1 "$ROUNDS"); do
  rotate "$r" "${contenders[@]}"
  for c in "${ROTATED[@]}"; do
    BENCH_HEADER=""
    measure_wrk "$r" "$c" "${url[$c]}" "${proxy_pid[$c]}" "${BENCH_PID[backend]}" "$DURATION"
    BENCH_HEADER="Connection: close"
    measure_wrk "$r" "$c-handshake" "${url[$c]}" "${proxy_pid[$c]}" "${BENCH_PID[backend]}" "$DURATION"
  done
done
BENCH_HEADER=""

report="$REPO/bench/out/tls-$stamp.txt"
python3 - "$BENCH_RESULTS" >"$report" <<'PY'
import collections, statistics, sys
values = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, who, metric, value = line.split()
    values[(who, metric)].append(float(value))
med = lambda who, m: statistics.median(values[(who, m)]) if values[(who, m)] else float("nan")
print("TLS termination, medians (wrk -t1 -c64; handshake = Connection: close, a full handshake per request)")
print(f"{'':28} {'req/s':>10} {'proxy CPU-us':>13} {'p50 ms':>8}")
for kind in ("ecdsa", "rsa"):
    for mode in ("", "-handshake"):
        for proxy in ("frontdesk", "nginx"):
            who = f"{proxy}-{kind}{mode}"
            print(f"{who:28} {med(who, 'rps'):10.0f} {med(who, 'proxy_cpu_us'):13.2f} {med(who, 'wrk_p50_ms'):8.3f}")
print()
print("frontdesk / nginx: req/s (higher is better), CPU-us per request (lower is better)")
for kind in ("ecdsa", "rsa"):
    for mode, label in (("", "keep-alive"), ("-handshake", "handshakes")):
        f, n = f"frontdesk-{kind}{mode}", f"nginx-{kind}{mode}"
        print(f"  {kind:6} {label:11} req/s {med(f, 'rps') / med(n, 'rps'):.2f}   CPU {med(f, 'proxy_cpu_us') / med(n, 'proxy_cpu_us'):.2f}")
PY
cat "$report"
cp "$report" "$REPO/bench/out/latest-tls.txt"
log "report: $report"
