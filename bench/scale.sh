#!/usr/bin/env bash
# Scale benchmark for merged small files: a runtime dir filled with SMALL (100,000) and BIG
# (10,000,000) merged 64-byte files directly through the store (bench/fill.rs), then served by
# one executor. Prints, for both sizes in the same run: fill rate, metadata bytes per file,
# inodes used, start-up time (process start to the first /status answer), RSS after start and
# after the GET run, and GET req/s and p99 over random files (wrk, 64 connections; the server
# process gets CPU 0, wrk CPU 1). The BIG/SMALL ratios are the point: what 100x more files cost.
# Saves bench/results/scale-<timestamp>.md.
#
#   bench/scale.sh            # about 8 minutes and 8 GB of disk for 10^7 files
#
# Variables: SCALE_SMALL (100000), SCALE_BIG (10000000), CONTENT_BYTES (64),
# BENCH_WORK_DIR (/var/tmp/fastdfs-scale), GET_SECONDS (10).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
WORK=${BENCH_WORK_DIR:-/var/tmp/fastdfs-scale}
SMALL=${SCALE_SMALL:-100000}
BIG=${SCALE_BIG:-10000000}
BYTES=${CONTENT_BYTES:-64}
GET_S=${GET_SECONDS:-10}
PORT=18095
TS=$(date +%Y%m%d-%H%M%S)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --release --quiet --bin fastdfs &&
  cargo build --release --quiet --features bench-tools --bin fastdfs-fill)
BIN=$ROOT/target/release/fastdfs
FILL=$ROOT/target/release/fastdfs-fill
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# measure N: prints "fill_s meta_bytes_per_file inodes start_ms rss_start_mb rps p99_us rss_after_mb"
measure() {
  local n=$1 dir="$WORK/$1" every=$(($1 / 200000 + 1))
  rm -rf "$dir" && mkdir -p "$dir/conf"
  cat >"$dir/conf/cfg.json" <<EOF
{"addr": "127.0.0.1:$PORT", "host": "http://127.0.0.1:$PORT", "peer_id": "1", "peers": [],
 "group": "group1", "support_group_manage": true, "enable_distinct_file": true,
 "enable_merge_small_file": true, "workers": 1, "enable_tus": false, "auto_repair": false,
 "default_download": false, "connections_per_client_max": 10000}
EOF
  local t0 t1
  t0=$(date +%s.%N)
  "$FILL" "$dir" "$n" "$BYTES" 1 "$dir/urls.txt" "$every" 2>"$dir/fill.log"
  t1=$(date +%s.%N)
  sync
  local meta_bytes inodes
  meta_bytes=$(du -sb "$dir/data/meta" | awk '{print $1}')
  inodes=$(find "$dir" | wc -l)
  # Cold-ish start: the metadata is in the page cache (it was just written), as after a restart.
  t0=$(date +%s%N)
  (cd "$dir" && exec taskset -c 0 "$BIN" server >"$dir/server.log" 2>&1) &
  PID=$!
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/group1/status" && break; sleep 0.05; done
  t1=$(date +%s%N)
  local start_ms=$(((t1 - t0) / 1000000)) rss0 out rps p99 rss1
  rss0=$(rss_kb "$PID")
  # Every sampled URL must serve (a wrong URL would be a fast 404 and flatter the numbers).
  head -3 "$dir/urls.txt" | while read -r u; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$u")
    [ "$code" = 200 ] || { echo "GET $u -> $code" >&2; exit 1; }
  done
  out=$(taskset -c 1 wrk -t1 -c64 -d"${GET_S}s" -s wrk-get.lua "http://127.0.0.1:$PORT" -- "$dir/urls.txt" 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  p99=$(echo "$out" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')
  local bad
  bad=$(echo "$out" | sed -n 's/.*err_status=\([0-9]*\).*/\1/p')
  [ "${bad:-1}" = 0 ] || { echo "GETs failed at $n files: $out" >&2; exit 1; }
  rss1=$(rss_kb "$PID")
  kill "$PID"; wait "$PID" 2>/dev/null || true
  PID=
  awk -v a="$t0" -v b="$t1" -v n="$n" -v m="$meta_bytes" -v i="$inodes" -v s="$start_ms" \
    -v r0="$rss0" -v rps="$rps" -v p="$p99" -v r1="$rss1" -v f="$(awk '/filled/ {print $5}' "$dir/fill.log")" \
    'BEGIN {printf "%s %.0f %d %d %.1f %d %d %.1f\n", f, m / n, i, s, r0 / 1024, rps, p, r1 / 1024}'
  rm -rf "$dir"
}

read -r s_fill s_meta s_inodes s_start s_rss0 s_rps s_p99 s_rss1 < <(measure "$SMALL")
read -r b_fill b_meta b_inodes b_start b_rss0 b_rps b_p99 b_rss1 < <(measure "$BIG")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
report="# Merged small files at scale $TS

$BIG and $SMALL merged files of $BYTES bytes, written straight into containers and the metadata
by bench/fill.rs, then served by one executor (\`workers: 1\`, CPU 0). GETs: random files out of
a sample of about 200,000 URLs, wrk -c64 on CPU 1, ${GET_S} s.

| metric | $SMALL files | $BIG files | big / small |
|---|---:|---:|---:|
| fill time, s (store only, no HTTP) | $s_fill | $b_fill | $(ratio "$b_fill" "$s_fill") |
| metadata bytes per file (data/meta) | $s_meta | $b_meta | $(ratio "$b_meta" "$s_meta") |
| inodes in the runtime dir | $s_inodes | $b_inodes | |
| start-up to first answer, ms | $s_start | $b_start | $(ratio "$b_start" "$s_start") |
| RSS after start, MB | $s_rss0 | $b_rss0 | $(ratio "$b_rss0" "$s_rss0") |
| GET req/s | $s_rps | $b_rps | $(ratio "$b_rps" "$s_rps") |
| GET p99, us | $s_p99 | $b_p99 | $(ratio "$b_p99" "$s_p99") |
| RSS after the GETs, MB (includes the mapped metadata pages read) | $s_rss1 | $b_rss1 | $(ratio "$b_rss1" "$s_rss1") |
"
echo "$report"
mkdir -p results
echo "$report" >"results/scale-$TS.md"
