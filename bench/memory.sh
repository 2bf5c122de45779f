#!/usr/bin/env bash
# Memory after upload bursts: the server's anonymous and file-backed RSS (/proc/PID/status
# RssAnon, RssFile) at the end of 10 s of 4 KiB uploads (wrk, 32 clients), of 10 s of 1 MiB
# uploads (16 clients), and after 6 s of quiet, when executor 0 has returned the allocator's
# free memory (server::Trim). RssFile is mostly LMDB's map, which grows with the records.
# Given several binaries, each runs in turn on a store of its own.
#
#   cargo build --release && bench/memory.sh [BIN...]     # about 30 s per binary
#
# Variables: SECONDS_RUN (10), SECONDS_SMALL (the 4 KiB uploads' time, default SECONDS_RUN;
# 60 makes about 100,000 uploads here), BENCH_PORT_BASE (18870), GLIBC_TUNABLES (passed through).
set -euo pipefail
cd "$(dirname "$0")"
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("../target/release/fastdfs")
SECS=${SECONDS_RUN:-10}
SMALL_SECS=${SECONDS_SMALL:-$SECS}
PORT=${BENCH_PORT_BASE:-18870}
W=/var/tmp/fastdfs-memory
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
rss() { awk '/^RssAnon|^RssFile/ {printf "%s %5.0f MiB  ", $1, $2 / 1024}' "/proc/$1/status"; }
i=0
for bin in "${BINS[@]}"; do
  i=$((i + 1))
  d=$W/rs$i
  rm -rf "$d"; mkdir -p "$d/conf"
  python3 helper.py go-cfg "$d/conf/cfg.json" $((PORT + i)) '{"workers": 1, "peers": [], "enable_tus": false}'
  (cd "$d" && GO_FASTDFS_PEER_ID=1 exec taskset -c 0 "$(realpath "$bin")" server >"$d/out.log" 2>&1) &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$((PORT + i))/group1/stat" && break; sleep 0.1; done
  url="http://127.0.0.1:$((PORT + i))/group1/upload"
  echo "$bin"
  echo "  started:            $(rss "$pid")"
  n=$(taskset -c 1 wrk -t1 -c32 -d"${SMALL_SECS}s" -s wrk-upload.lua "$url" -- 4096 "m$i$$" | awk '/requests in/ {print $1}')
  echo "  after 4 KiB uploads: $(rss "$pid") ($n uploads)"
  n=$(taskset -c 1 wrk -t1 -c16 -d"${SECS}s" -s wrk-upload.lua "$url" -- 1048576 "n$i$$" | awk '/requests in/ {print $1}')
  echo "  after 1 MiB uploads: $(rss "$pid") ($n uploads)"
  sleep 6
  echo "  6 s later:          $(rss "$pid")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
