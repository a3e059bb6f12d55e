#!/usr/bin/env bash
# Slow-client benchmark (`make bench-slowhttp`, issue 13): how long slowhttptest's slow-header,
# slow-body and slow-read attacks hold a connection open on frontdesk-proxy, next to nginx as a
# reverse proxy, each with its default timeouts.
#
# Contenders, both in front of the same static nginx backend (bench/nginx-backend.conf.tmpl's
# `return 200` JSON, plus /upload, which answers once it has read the whole request body, and
# /big, a SLOW_READ_MB file):
#   frontdesk  frontdesk-proxy --workers 1 --access-log off, standalone, one catch-all Route, and
#              no limit or timeout flag: its defaults are what is measured (`--help`:
#              --header-read-timeout 10s, --body-read-timeout 60s, --send-timeout 60s,
#              --max-connections-per-client 512)
#   nginx      bench/nginx-proxy.conf.tmpl (1 worker, upstream keep-alive), which leaves
#              client_header_timeout, client_body_timeout and send_timeout at their 60 s defaults
#
# Attacks (slowhttptest on the load generator's core; backend and proxy on the other core):
#   slow-headers     -H: an unfinished request head, one more header line every SLOW_INTERVAL s
#   slow-body        -B: POST /upload announcing SLOW_BODY_BYTES, a little more of the body every
#                    SLOW_INTERVAL s (the backend waits for the whole body, as an upload handler
#                    does)
#   slow-body-early  the same POST to /, which the backend answers at once without reading it
#   slow-read        -X: GET /big (SLOW_READ_MB), read SLOW_READ_BYTES bytes every SLOW_READ_EVERY s
#                    through a receive window of 512-1024 bytes. The answer must be larger than a
#                    socket's send buffer can grow (net.ipv4.tcp_wmem max, 4 MB by default): on
#                    loopback a 1 MB answer goes into the kernel at once, the proxy's write never
#                    waits, and what ends the connection is the keep-alive idle timeout (75 s for
#                    both) rather than the send timeout
# each with -c SLOW_CONNS connections opened at -r SLOW_RATE per second, for at most the attack's
# test length (slowhttptest stops earlier once every connection is closed). Each (attack, proxy)
# run gets a fresh proxy process, so the peak RSS and the connection counts are its own.
#
# Measured:
#   - held, proxy side: every 0.2 s, `ss` lists the client connections the proxy holds
#     (ESTABLISHED or CLOSE-WAIT on its port); each connection's time from first to last sight,
#     median over the attack's connections (see analyse below). This is the figure to compare
#     with the timeouts: in a slow read, a proxy that gave up still has its FIN queued behind
#     unread data, and the client only sees the close once it has read its way there.
#   - held, client side: the same median from slowhttptest's per-second CSV (-g -o).
#   - closed: attack connections the proxy closed before the test stopped.
#   - service available: slowhttptest's probe (a fresh request answered within SLOW_PROBE s)
#     every second of the test; "no (N s)" gives the seconds it was not.
#   - peak RSS: the largest VmRSS sampled every 0.2 s (frontdesk's process; nginx's worker, its
#     master holds no connections).
#
# Environment:
#   SLOW_CONNS / SLOW_RATE   connections per attack and per second (default 200 / 100; below
#                            frontdesk's default per-client bound of 512, so all are accepted)
#   SLOW_LENGTH_HEADERS / SLOW_LENGTH_BODY / SLOW_LENGTH_READ   test length per attack, s
#                            (default 80 / 70 / 90: past the 60 s defaults)
#   SLOW_INTERVAL            seconds between follow-up data of -H and -B (default 10)
#   SLOW_BODY_BYTES          Content-Length of the slow POST (default 8192)
#   SLOW_READ_BYTES / SLOW_READ_EVERY   slow-read pace (default 32 bytes every 5 s)
#   SLOW_READ_MB             size of the slow-read answer, MB (default 8)
#   SLOW_PROBE               probe timeout, s (default 5)
#   SLOW_ATTACKS             attacks to run (default "slow-headers slow-body slow-body-early
#                            slow-read")
#   SLOW_PROXIES             proxies to run (default "frontdesk nginx")
#   BENCH_SKIP_BUILD=1       don't run cargo; use an existing binary (FRONTDESK_BIN or
#                            target/release/frontdesk-proxy)
#   BENCH_KEEP_TMP=1         keep the temp dir (configs, logs)
# Output: the table on stdout and in bench/out/slowhttp-<time>.txt (bench/out/latest-slowhttp.txt
# a copy); each run's slowhttptest output, CSV and HTML, RSS and connection samples in
# bench/out/slowhttp-<time>/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

CONNS=${SLOW_CONNS:-200}
RATE=${SLOW_RATE:-100}
INTERVAL=${SLOW_INTERVAL:-10}
BODY_BYTES=${SLOW_BODY_BYTES:-8192}
READ_BYTES=${SLOW_READ_BYTES:-32}
READ_EVERY=${SLOW_READ_EVERY:-5}
PROBE=${SLOW_PROBE:-5}
ATTACKS=${SLOW_ATTACKS:-slow-headers slow-body slow-body-early slow-read}
PROXIES=${SLOW_PROXIES:-frontdesk nginx}
declare -A LENGTH=(
  [slow-headers]=${SLOW_LENGTH_HEADERS:-80}
  [slow-body]=${SLOW_LENGTH_BODY:-70}
  [slow-body-early]=${SLOW_LENGTH_BODY:-70}
  [slow-read]=${SLOW_LENGTH_READ:-90}
)
READ_MB=${SLOW_READ_MB:-8}
BIG_BYTES=$((READ_MB * 1048576))

read -ra attacks <<<"$ATTACKS"
read -ra proxies <<<"$PROXIES"
for a in "${attacks[@]}"; do
  case $a in slow-headers | slow-body | slow-body-early | slow-read) ;;
    *) die "unknown attack '$a' (slow-headers slow-body slow-body-early slow-read)" ;;
  esac
done
for p in "${proxies[@]}"; do
  case $p in frontdesk | nginx) ;; *) die "unknown proxy '$p' (frontdesk nginx)" ;; esac
done

"$REPO/scripts/install-deps.sh" bench
command -v slowhttptest >/dev/null || die "slowhttptest is missing (scripts/install-deps.sh bench)"

target_dir=${CARGO_TARGET_DIR:-$REPO/target}
[[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
if [[ " $PROXIES " == *" frontdesk "* ]]; then
  if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building frontdesk-proxy (release)"
    (cd "$REPO" && cargo build --release -p frontdesk-proxy --bin frontdesk-proxy)
  fi
  FRONTDESK_BIN=${FRONTDESK_BIN:-$target_dir/release/frontdesk-proxy}
  [[ -x $FRONTDESK_BIN ]] || die "no frontdesk-proxy binary at $FRONTDESK_BIN"
fi

mkdir -p "$REPO/bench/out"
stamp=$(date +%Y%m%d-%H%M%S)
out_dir="$REPO/bench/out/slowhttp-$stamp"
report_file="$REPO/bench/out/slowhttp-$stamp.txt"
mkdir -p "$out_dir"

bench_init
SAMPLER_PID=""
stop_sampler() {
  if [[ -n $SAMPLER_PID ]]; then
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
  fi
}
# The sampler is ours too: stop it before lib.sh's cleanup stops the servers.
trap 'rc=$?; stop_sampler; (exit "$rc"); bench_cleanup' EXIT

# --- the backend: bench/nginx-backend.conf.tmpl's JSON answer, /upload and a large file --------
mkdir -p "$BENCH_DIR/www"
head -c "$BIG_BYTES" /dev/zero | tr '\0' 'x' >"$BENCH_DIR/www/big"
chmod -R a+rX "$BENCH_DIR/www"
free_port; backend_port=$FREE_PORT
cat >"$BENCH_DIR/backend.conf" <<EOF
# bench/nginx-backend.conf.tmpl plus /upload (answers once it has read the whole body) and /big
# (a static file of $READ_MB MB) for the slow-body and slow-read attacks.
worker_processes 1;
pid $BENCH_DIR/backend.pid;
error_log $BENCH_DIR/backend.error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $BENCH_DIR/tmp/backend-body;
    proxy_temp_path       $BENCH_DIR/tmp/backend-proxy;
    fastcgi_temp_path     $BENCH_DIR/tmp/backend-fastcgi;
    uwsgi_temp_path       $BENCH_DIR/tmp/backend-uwsgi;
    scgi_temp_path        $BENCH_DIR/tmp/backend-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$backend_port backlog=4096;
        location = /upload {
            # reads the whole request body (nginx buffers it) before the answer: an upload handler
            proxy_pass http://127.0.0.1:$backend_port/;
        }
        location = /big {
            default_type application/octet-stream;
            alias $BENCH_DIR/www/big;
        }
        location / {
            default_type application/json;
            return 200 '{"id":1,"name":"widget","price":9.99}';
        }
    }
}
EOF
start_nginx backend "$BENCH_DIR/backend.conf"
wait_ready "http://127.0.0.1:$backend_port/" "${BENCH_PID[backend]}"
size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$backend_port/big")
[[ $size == "$BIG_BYTES" ]] || die "backend /big served $size bytes, want $BIG_BYTES"
# The slow-read answer must not fit in the kernel's send buffer: if it does, the proxy has
# written all of it at once and only its keep-alive idle timeout can end the connection.
read -r _ _ wmem_max </proc/sys/net/ipv4/tcp_wmem
if ((BIG_BYTES <= wmem_max)); then
  log "WARNING: /big ($BIG_BYTES bytes) fits in a socket send buffer (tcp_wmem max $wmem_max):" \
    "slow-read then measures the idle timeout, not the send timeout"
fi

# One Route, everything to the backend.
mkdir -p "$BENCH_DIR/manifests"
cat >"$BENCH_DIR/manifests/route.yaml" <<EOF
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: bench, namespace: default}
spec:
  rules:
    - name: all
      matches: [{path: {type: PathPrefix, value: /}}]
      backends: [{url: "http://127.0.0.1:$backend_port"}]
EOF

# start_proxy WHO NAME: a fresh proxy; sets PROXY_PORT and PROXY_MEM_PID (the process whose RSS
# is sampled).
start_proxy() {
  local who=$1 name=$2 admin
  free_port; PROXY_PORT=$FREE_PORT
  if [[ $who == nginx ]]; then
    start_nginx_proxy "$name" "$PROXY_PORT" "$backend_port"
    wait_ready "http://127.0.0.1:$PROXY_PORT/" "${BENCH_PID[$name]}"
    PROXY_MEM_PID=$(pgrep -P "${BENCH_PID[$name]}" | head -n 1)
  else
    free_port; admin=$FREE_PORT
    start_frontdesk "$name" "$PROXY_PORT" "$admin" "$BENCH_DIR/manifests"
    wait_ready "http://127.0.0.1:$admin/ready" "${BENCH_PID[$name]}"
    wait_ready "http://127.0.0.1:$PROXY_PORT/" "${BENCH_PID[$name]}"
    PROXY_MEM_PID=${BENCH_PID[$name]}
  fi
  [[ -n $PROXY_MEM_PID ]] || die "no process to sample for $name"
  size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PROXY_PORT/big")
  [[ $size == "$BIG_BYTES" ]] || die "$name served $size bytes of /big, want $BIG_BYTES"
}

stop_proxy() {
  local name=$1 i
  kill -TERM "${BENCH_PID[$name]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "${BENCH_PID[$name]}" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "${BENCH_PID[$name]}" 2>/dev/null || true
  wait "${BENCH_PID[$name]}" 2>/dev/null || true
  unset "BENCH_PID[$name]"
}

# sample PID PORT RSS_OUT CONN_OUT: every 0.2 s, PID's VmRSS (kB) to RSS_OUT, and to CONN_OUT a
# line "<time> <peer port>..." of the client connections PORT holds open (ESTABLISHED, or
# CLOSE-WAIT: the client has gone but the proxy has not closed yet), until stopped. Runs on the
# load generator's core.
sample() {
  local pid=$1 port=$2 rss_out=$3 conn_out=$4 line
  # a failed sample (ss's socket dump can be interrupted while hundreds of sockets close) must
  # not end the sampler
  set +e +o pipefail
  taskset -cp "$BENCH_CORE_LOADGEN" "$BASHPID" >/dev/null
  while :; do
    while read -r line; do
      [[ $line == VmRSS:* ]] && { set -- $line; echo "$2" >>"$rss_out"; break; }
    done <"/proc/$pid/status" || break
    {
      printf '%s' "$EPOCHREALTIME"
      ss -Htn state established state close-wait "( sport = :$port )" \
        | awk '{ n = split($5, a, ":"); printf " %s", a[n] }'
      echo
    } >>"$conn_out"
    sleep 0.2
  done
}

# analyse CSV LOG CONNS_FILE T0 T_END LENGTH: prints
#   "held_proxy held_client closed_by_proxy available unavailable_s"
# held_proxy: from the proxy's side (CONNS_FILE), the median over the $CONNS attack connections
#   of the time each was seen open (0.2 s samples). Probe connections, answered at once, are told
#   apart by being short: the $CONNS longest-lived connections seen are taken as the attack's,
#   with zeros for any never seen (closed between two samples). A connection still open when the
#   test stopped at its length counts with its time so far, and a median reached only that way
#   is shown as ">= N".
# held_client: the same median from slowhttptest's per-second CSV: the k-th connection opens in
#   the first second where closed + connected >= k and closes in the first second where
#   closed >= k (connections close in the order they opened when one timeout closes them all).
# closed_by_proxy: attack connections the proxy closed before the test stopped.
analyse() {
  python3 - "$CONNS" "$@" <<'PY'
import csv, re, sys

conns, csv_path, log_path, conn_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
t0, t_end, length = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
log = open(log_path, errors="replace").read()
hit_limit = "Hit test time limit" in log
m = re.findall(r"Test ended on (\d+)", log)
ended = int(m[-1]) if m else None

def median_of(held):   # held: [(seconds, censored)], longest first
    held = sorted(held, key=lambda h: -h[0])[:conns]
    held += [(0.0, False)] * (conns - len(held))
    held.sort(key=lambda h: h[0])
    v, cens = held[len(held) // 2]
    return ("%s%.1f" % (">=" if cens else "", v)), sum(1 for h in held if h[1])

# proxy side
first, last = {}, {}
last_t = t0
for line in open(conn_path):
    f = line.split()
    if not f:
        continue
    t = float(f[0].replace(",", "."))
    last_t = t
    for port in f[1:]:
        first.setdefault(port, t)
        last[port] = t
open_at_end = hit_limit  # at the time limit slowhttptest closes what is still open itself
held = [(last[p] - first[p], open_at_end and last[p] >= last_t - 0.5) for p in first]
held_proxy, still_open = median_of(held)
closed_by_proxy = conns - still_open

# client side (slowhttptest's CSV)
rows = []
with open(csv_path) as f:
    for r in csv.reader(f):
        if not r or not r[0].strip().isdigit():
            continue          # header line
        sec, closed, pending, connected = (int(x) for x in r[:4])
        rows.append((sec, closed, connected, r[4].strip()))
if not rows:
    sys.exit(f"{csv_path}: no data rows")
end = rows[-1][0]
if not hit_limit and ended is not None and rows[-1][2] > 0:
    # "No open connections left": the last ones closed after the last row was written
    rows.append((max(ended, end + 1), rows[-1][1] + rows[-1][2], 0, rows[-1][3]))
total = max(c + n for _, c, n, _ in rows)
cheld = []
for k in range(1, total + 1):
    t_open = next(s for s, c, n, _ in rows if c + n >= k)
    t_close = next((s for s, c, _, _ in rows if c >= k), None)
    cheld.append(((t_close if t_close is not None else rows[-1][0]) - t_open, t_close is None))
held_client, _ = median_of(cheld) if cheld else ("0.0", 0)
# service available: slowhttptest 1.8 writes the connection count when the probe was answered
# within -p seconds and 0 when it was not (older versions YES/NO)
down = sum(1 for *_, a in rows if a.upper() in ("0", "NO"))
print(held_proxy, held_client, closed_by_proxy, "yes" if not down else "no", down)
PY
}

# run_attack ATTACK PROXY: one fresh proxy, one slowhttptest run; appends a line to $rows_file.
rows_file="$BENCH_DIR/rows"
: >"$rows_file"
run_attack() {
  local attack=$1 who=$2 name="$2-$1" len=${LENGTH[$1]} prefix peak args=()
  start_proxy "$who" "$name"
  local base="http://127.0.0.1:$PROXY_PORT"
  case $attack in
    slow-headers) args=(-H -i "$INTERVAL" -u "$base/") ;;
    slow-body) args=(-B -i "$INTERVAL" -s "$BODY_BYTES" -u "$base/upload") ;;
    slow-body-early) args=(-B -i "$INTERVAL" -s "$BODY_BYTES" -u "$base/") ;;
    slow-read) args=(-X -k 1 -w 512 -y 1024 -n "$READ_EVERY" -z "$READ_BYTES" -u "$base/big") ;;
  esac
  prefix="$out_dir/$name"
  : >"$prefix.rss"
  : >"$prefix.conns"
  sample "$PROXY_MEM_PID" "$PROXY_PORT" "$prefix.rss" "$prefix.conns" &
  SAMPLER_PID=$!
  log "$attack against $who: slowhttptest ${args[*]} -c $CONNS -r $RATE -l $len -p $PROBE"
  local t0=$EPOCHREALTIME started=$SECONDS
  # slowhttptest ends on its own: at the test length, or once every connection is closed.
  _run_loadgen "$prefix.log" slowhttptest "${args[@]}" -c "$CONNS" -r "$RATE" -l "$len" \
    -p "$PROBE" -g -o "$prefix"
  local t_end=$EPOCHREALTIME
  stop_sampler
  [[ -s $prefix.csv ]] || { cat "$prefix.log" >&2; die "slowhttptest wrote no $prefix.csv"; }
  peak=$(sort -n "$prefix.rss" | tail -n 1)
  local held_p held_c closed avail down
  read -r held_p held_c closed avail down < <(analyse "$prefix.csv" "$prefix.log" \
    "$prefix.conns" "${t0/,/.}" "${t_end/,/.}" "$len")
  if [[ $avail == no ]]; then avail="no (${down} s)"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$attack" "$who" "$held_p" "$held_c" \
    "$closed/$CONNS" "$avail" "$(awk -v k="$peak" 'BEGIN{printf "%.1f", k/1024}')" \
    "$((SECONDS - started))" >>"$rows_file"
  log "$attack $who: held $held_p s (median, proxy side; $held_c s as slowhttptest saw it)," \
    "closed by the proxy $closed of $CONNS, service available: $avail, peak RSS $((peak / 1024)) MB"
  stop_proxy "$name"
}

i=0
for attack in "${attacks[@]}"; do
  rotate "$i" "${proxies[@]}"   # alternate which proxy goes first
  for who in "${ROTATED[@]}"; do run_attack "$attack" "$who"; done
  i=$((i + 1))
done

# --- report -------------------------------------------------------------------------------------
{
  echo "# frontdesk slow-client benchmark $stamp (slowhttptest)"
  echo "# host $(uname -n), $(nproc) cores, kernel $(uname -r)"
  echo "# commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (dirty)'); frontdesk-proxy ${FRONTDESK_BIN:-(not run)}"
  echo "# $("$NGINX_BIN" -v 2>&1); $(slowhttptest -h 2>&1 | grep -o 'version [0-9.]*' | head -n 1 | sed 's/^/slowhttptest /')"
  echo "# -c $CONNS -r $RATE -p $PROBE; -H/-B -i $INTERVAL (-B -s $BODY_BYTES);" \
    "-X GET /big ($BIG_BYTES bytes) -w 512 -y 1024 -n $READ_EVERY -z $READ_BYTES;" \
    "test length s: headers ${LENGTH[slow-headers]}, body ${LENGTH[slow-body]}, read ${LENGTH[slow-read]}"
  echo "# both proxies at their default timeouts. held = median s an attack connection stayed open,"
  echo "# seen by the proxy (ss every 0.2 s) and by slowhttptest (its CSV, 1 s steps); '>=' = still open"
  echo "# when the test stopped; closed = attack connections the proxy closed before then; run = wall s"
  echo
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' attack proxy "held s, proxy side" \
    "held s, client side" closed "service available" "peak RSS MB" "run s"
  echo "|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r a p hp hc c av rss r; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$a" "$p" "$hp" "$hc" "$c" "$av" "$rss" "$r"
  done <"$rows_file"
} | tee "$report_file"
cp "$report_file" "$REPO/bench/out/latest-slowhttp.txt"
log "report: $report_file; slowhttptest CSV/HTML: $out_dir"
