#!/usr/bin/env bash
# Many connections (issue 14, item 7): 9,000 idle keep-alive connections (each made one GET,
# then stays open) plus 1,000 active ones (wrk -c1000 GETs of 4 KiB files), against nginx (as
# deployed: sendfile, open_file_cache, access log off; one worker) and fastdfs-rs (one
# executor), each pinned to CPU 0, clients on CPU 1, one server at a time. Reports RSS per idle
# connection, req/s and p99 with the idle crowd held open, and the same with no idle crowd.
#
#   cargo build --release && bench/conns.sh          # about 2 minutes
#
# Variables: FASTDFS_BIN (target/release/fastdfs), IDLE (9000), ACTIVE (1000), SECONDS_RUN (10).
set -euo pipefail
cd "$(dirname "$0")"
BIN=${FASTDFS_BIN:-$(cd .. && pwd)/target/release/fastdfs}
IDLE=${IDLE:-9000}
ACTIVE=${ACTIVE:-1000}
RUN_S=${SECONDS_RUN:-10}
WORK=$(mktemp -d /var/tmp/fastdfs-conns.XXXXXX)
PORT_NGINX=18181
PORT_RS=18183
TS=$(date +%Y%m%d-%H%M%S)
OUT=results/conns-$TS.md
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)" >&2; exit 1; }
# Each side needs a descriptor per connection: as many as the hard limit allows.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE + ACTIVE + 1000)) ] ||
  { echo "open-files limit $(ulimit -n) is too low for $IDLE + $ACTIVE connections" >&2; exit 1; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Holds N idle keep-alive connections: each sends one GET and reads its answer, then all stay
# open until stdin closes. Prints "ready <opened>" once they are all open.
hold_idle() { # PORT PATH N
  taskset -c 1 python3 - "$1" "$2" "$3" <<'PY'
import socket, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
conns = []
for i in range(n):
    src = "127.0.%d.%d" % (10 + i // 250, 1 + i % 250)
    c = socket.create_connection(("127.0.0.1", port), source_address=(src, 0))
    c.sendall(req)
    conns.append(c)
for c in conns:
    got = b""
    while b"\r\n\r\n" not in got:
        got += c.recv(65536)
print("ready", len(conns), flush=True)
sys.stdin.read()
PY
}

# One measurement of a running server PID on PORT serving PATHS: prints
# "rss0 rss_idle rps p99_ms rps_alone p99_alone_ms".
measure() { # PID PORT PATHS ONE_PATH
  # The idle crowd first, on a fresh server (RSS is not given back after a load, so a "before"
  # taken after the active runs would hide the crowd's cost), then the active runs.
  local pid=$1 port=$2 paths=$3 one=$4 r0 r1 fifo out alone
  curl -s -o /dev/null "http://127.0.0.1:$port$one"
  sleep 1
  r0=$(rss_kib "$pid")
  fifo="$WORK/hold.$port"; mkfifo "$fifo"
  hold_idle "$port" "$one" "$IDLE" <"$fifo" >"$WORK/hold.$port.out" &
  local hold=$!
  exec 9>"$fifo"
  for _ in $(seq 600); do grep -q ready "$WORK/hold.$port.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$WORK/hold.$port.out" || { echo "idle connections not established" >&2; exit 1; }
  sleep 1
  r1=$(rss_kib "$pid")
  taskset -c 1 wrk -t1 -c"$ACTIVE" -d2s -s wrk-get.lua "http://127.0.0.1:$port" -- "$paths" >/dev/null 2>&1 || true
  out=$(taskset -c 1 wrk -t1 -c"$ACTIVE" -d"${RUN_S}s" --latency -s wrk-get.lua "http://127.0.0.1:$port" -- "$paths" 2>&1)
  exec 9>&-
  wait "$hold" || true
  sleep 1
  alone=$(taskset -c 1 wrk -t1 -c"$ACTIVE" -d"${RUN_S}s" --latency -s wrk-get.lua "http://127.0.0.1:$port" -- "$paths" 2>&1)
  local rps p99 rps_a p99_a
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  rps_a=$(echo "$alone" | awk '/Requests\/sec/ {print $2}')
  p99_a=$(echo "$alone" | awk '$1 == "99%" {print $2}')
  echo "$r0 $r1 $rps $p99 $rps_a $p99_a"
}

# The files: 200 x 4 KiB.
mkdir -p "$WORK/data"
python3 helper.py gen "$WORK/data" 200 4096 c

# nginx
mkdir -p "$WORK/nginx/root/f" "$WORK/nginx/tmp" "$WORK/nginx/logs"
cp "$WORK"/data/* "$WORK/nginx/root/f/"
cat >"$WORK/nginx/nginx.conf" <<NGINXCONF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 32768; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300;
    keepalive_requests 100000000;
    open_file_cache max=20000 inactive=60s;
    open_file_cache_valid 60s;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server { listen 127.0.0.1:$PORT_NGINX backlog=4096; root $WORK/nginx/root; location / { } }
}
NGINXCONF
taskset -c 0 "$NGINX" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
sleep 1
# The worker serves (and holds the connections); the master only supervises.
NMASTER=$(cat "$WORK/nginx/nginx.pid")
NPID=$(pgrep -P "$NMASTER" | head -1)
ls "$WORK/data" | sed 's|^|/f/|' >"$WORK/paths_nginx.txt"
read -r n0 n1 nrps np99 nrps_a np99_a < <(measure "$NPID" "$PORT_NGINX" "$WORK/paths_nginx.txt" "$(head -1 "$WORK/paths_nginx.txt")")
kill "$NMASTER"; sleep 1

# fastdfs-rs
mkdir -p "$WORK/rs/conf"
cat >"$WORK/rs/conf/cfg.json" <<EOF
{"addr": "127.0.0.1:$PORT_RS", "host": "http://127.0.0.1:$PORT_RS", "peer_id": "1", "peers": [],
 "group": "group1", "support_group_manage": true, "workers": 1, "enable_tus": false,
 "auto_repair": false, "default_download": false, "connections_per_client_max": 20000,
 "connections_max": 20000, "idle_timeout": 300}
EOF
(cd "$WORK/rs" && exec taskset -c 0 "$BIN" server >"$WORK/rs/server.log" 2>&1) &
RPID=$!
PIDS+=($RPID)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT_RS/group1/status" && break; sleep 0.1; done
python3 helper.py upload "http://127.0.0.1:$PORT_RS/group1/upload" "$WORK/data" "$WORK/paths_rs.txt" 4 >/dev/null
read -r r0 r1 rrps rp99 rrps_a rp99_a < <(measure "$RPID" "$PORT_RS" "$WORK/paths_rs.txt" "$(head -1 "$WORK/paths_rs.txt")")

per() { python3 -c "print(f'{($2 - $1) * 1024 / $IDLE:,.0f}')"; }
# wrk prints latencies as 850.00us, 12.34ms or 1.20s: both sides in ms before dividing.
ratio() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "-"
import re, sys
def ms(v):
    n, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)?", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3, None: 1.0}[unit]
print("%.2f" % (ms(sys.argv[1]) / ms(sys.argv[2])))
PY
}
mkdir -p results
{
  echo "# Many connections $TS"
  echo
  echo "$IDLE idle keep-alive connections (each made one GET) held open while wrk -t1 -c$ACTIVE"
  echo "GETs 200 random 4 KiB files for ${RUN_S} s; servers on CPU 0, clients on CPU 1; one at a time."
  echo
  echo "| metric | nginx | fastdfs-rs | rs / nginx |"
  echo "|---|---:|---:|---:|"
  echo "| RSS of the fresh server, KiB | $n0 | $r0 | $(ratio "$r0" "$n0") |"
  echo "| RSS with them, KiB | $n1 | $r1 | $(ratio "$r1" "$n1") |"
  echo "| RSS per idle connection, bytes | $(per "$n0" "$n1") | $(per "$r0" "$r1") | |"
  echo "| req/s, $ACTIVE active + $IDLE idle | $nrps | $rrps | $(ratio "$rrps" "$nrps") |"
  echo "| p99 latency, $ACTIVE active + $IDLE idle | $np99 | $rp99 | $(ratio "$rp99" "$np99") |"
  echo "| req/s, $ACTIVE active alone | $nrps_a | $rrps_a | $(ratio "$rrps_a" "$nrps_a") |"
  echo "| p99 latency, $ACTIVE active alone | $np99_a | $rp99_a | $(ratio "$rp99_a" "$np99_a") |"
} | tee "$OUT"
echo "saved $OUT"
