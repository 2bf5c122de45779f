#!/usr/bin/env bash
# Small-file merge benchmark: durable 4 KiB uploads (32 connections, wrk) and 4 KiB GETs of
# the uploaded files, with enable_merge_small_file off and on, on the same server binary in the
# same run (server pinned to CPU 0, wrk to CPU 1). Prints files/s, server CPU µs per upload,
# GET req/s, and the on/off ratios, with nginx's WebDAV PUT of the same files as the CPU per
# upload baseline; saves bench/results/merge-<timestamp>.md.
#
#   cargo build --release && bench/merge.sh          # about 3 minutes (two rounds)
#
# Variables: FASTDFS_BIN (target/release/fastdfs), BENCH_WORK_DIR (/var/tmp/fastdfs-merge),
# UP_SECONDS (10), GET_SECONDS (10), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")"
BIN=${FASTDFS_BIN:-$(cd .. && pwd)/target/release/fastdfs}
WORK=${BENCH_WORK_DIR:-/var/tmp/fastdfs-merge}
UP_S=${UP_SECONDS:-10}
GET_S=${GET_SECONDS:-10}
PORT=18091
TS=$(date +%Y%m%d-%H%M%S)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt-get install -y -qq nginx >/dev/null
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# run MODE(true|false): starts a server, measures, prints "fps cpu_us get_rps"
run() {
  local merge=$1 dir="$WORK/$1" pid
  rm -rf "$dir" && mkdir -p "$dir/conf"
  cat >"$dir/conf/cfg.json" <<EOF
{"addr": "127.0.0.1:$PORT", "host": "http://127.0.0.1:$PORT", "peer_id": "1", "peers": [],
 "group": "group1", "support_group_manage": true, "enable_distinct_file": true,
 "enable_merge_small_file": $merge, "workers": 1, "enable_tus": false, "auto_repair": false,
 "default_download": false, "connections_per_client_max": 10000}
EOF
  (cd "$dir" && exec taskset -c 0 nice -n -10 "$BIN" server >"$dir/server.log" 2>&1) &
  pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/group1/status" && break; sleep 0.1; done
  local c0 c1 out req dur
  c0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c32 -d"${UP_S}s" --timeout 10s -s wrk-upload.lua \
    "http://127.0.0.1:$PORT/group1/upload" -- 4096 "merge$merge$TS" 2>&1)
  c1=$(cpu_ticks "$pid")
  req=$(echo "$out" | awk '/requests in/ {print $1}')
  dur=$(echo "$out" | awk '/requests in/ {gsub("s,","",$4); print $4}')
  local fps cpu_us
  fps=$(awk -v r="$req" -v d="$dur" 'BEGIN {printf "%.0f", r / d}')
  cpu_us=$(awk -v a="$c0" -v b="$c1" -v t="$tck" -v r="$req" 'BEGIN {printf "%.0f", (b - a) / t * 1e6 / r}')
  # GETs of 500 uploaded files (their URLs from a fresh round of uploads).
  : >"$dir/paths.txt"
  for i in $(seq 500); do
    head -c 4096 /dev/urandom >"$dir/f.bin"
    curl -s -F file=@"$dir/f.bin" -F output=json "http://127.0.0.1:$PORT/group1/upload" |
      sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' >>"$dir/paths.txt"
  done
  local get_rps
  get_rps=$(taskset -c 1 wrk -t1 -c64 -d"${GET_S}s" -s wrk-get.lua "http://127.0.0.1:$PORT" -- "$dir/paths.txt" 2>&1 |
    awk '/Requests\/sec/ {printf "%.0f", $2}')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local files
  files=$(find "$dir/files" -type f -not -path '*/_tmp/*' | wc -l)
  echo "$fps $cpu_us $get_rps $files"
}

# nginx's WebDAV PUT of the same 4 KiB files (no fsync: nginx has none), for the CPU per
# upload baseline: one worker process on CPU 0, bodies buffered in memory.
nginx_put() {
  local dir="$WORK/nginx" port=$((PORT + 1)) pid c0 c1 out req dur
  rm -rf "$dir" && mkdir -p "$dir/root/dav" "$dir/tmp" "$dir/logs"
  cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  client_body_buffer_size 64k;
  client_max_body_size 16m;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $dir/root;
    location /dav/ { dav_methods PUT; create_full_put_path on; }
  }
}
NGINX
  taskset -c 0 nice -n -10 "$(command -v nginx || echo /usr/sbin/nginx)" -p "$dir" -c "$dir/nginx.conf" &
  pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  c0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c32 -d"${UP_S}s" --timeout 10s -s wrk-put.lua \
    "http://127.0.0.1:$port/dav/" -- 4096 "put$TS" 2>&1)
  c1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  req=$(echo "$out" | awk '/requests in/ {print $1}')
  dur=$(echo "$out" | awk '/requests in/ {gsub("s,","",$4); print $4}')
  awk -v r="$req" -v d="$dur" -v a="$c0" -v b="$c1" -v t="$tck" \
    'BEGIN {printf "%.0f %.0f\n", r / d, (b - a) / t * 1e6 / r}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# Interleaved rounds (nginx, off, on; again): this machine's disk and CPU drift by 2x within
# minutes, so each round's ratios compare runs a minute apart.
rows=""
for round in $(seq "${ROUNDS:-2}"); do
  # nginx does not fsync: its 100,000+ files would be written back during the next run.
  # Every phase starts with a clean page cache instead.
  read -r nginx_fps nginx_cpu < <(nginx_put)
  sync
  read -r off_fps off_cpu off_get off_files < <(run false)
  sync
  read -r on_fps on_cpu on_get on_files < <(run true)
  sync
  rows+="| $round | $off_fps | $on_fps | **$(ratio "$on_fps" "$off_fps")** | $off_cpu | $on_cpu | $nginx_fps | $nginx_cpu | **$(ratio "$on_cpu" "$nginx_cpu")** | $off_get | $on_get | $(ratio "$on_get" "$off_get") | $off_files | $on_files |
"
done
report="# Small-file merge benchmark $TS

Binary: $BIN. One executor on CPU 0, wrk on CPU 1. Uploads: 4 KiB distinct files, 32
connections, ${UP_S} s, each acknowledged only once durable. GETs: 500 of the uploaded files,
64 connections, ${GET_S} s. nginx: WebDAV PUT of the same 4 KiB files (one worker on CPU 0,
no fsync), the CPU baseline. Rounds are interleaved; each row is one round.

| round | uploads/s off | uploads/s on | on / off | CPU µs/upload off | CPU µs/upload on | nginx PUT/s | nginx CPU µs/PUT | on / nginx CPU | GET req/s off | GET req/s on | GET on / off | inodes off | inodes on |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$rows"
echo "$report"
mkdir -p results
echo "$report" >"results/merge-$TS.md"
rm -rf "$WORK"
