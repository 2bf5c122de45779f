#!/usr/bin/env bash
# 4 KiB uploads on a fresh filesystem (issue 14, item 4): nginx's WebDAV PUT against durable
# fastdfs-rs uploads (and, given several binaries, an A/B of them), rounds alternating, CPU per
# upload and wrk's p50/p99. The runtime dirs are on a new journal-less ext4 over a file in
# /dev/shm (a loop device): no recently deleted inodes slow the creates (bench/run.sh's work dir
# is on the machine's disk, where they do), and fsyncs cost little, so this isolates each
# server's own work. Then prints helper.py's durable-create limit on the same filesystem
# (measured last: nothing is deleted before the uploads, as deleted inodes would slow them)
# and the md5 rate of one core.
# Needs root (mount), wrk, nginx, mkfs.ext4.
#
#   cargo build --release && bench/fresh4k.sh [ROUNDS] [BIN...]     # about 1 minute
#
# Variables: SECONDS_RUN (5), BENCH_PORT_BASE (18790); UP_SIZE (4096 bytes per upload),
# UP_CONNS (32) and IMG_GB (4, the filesystem's size) for uploads of other sizes, e.g. item 4's
# 1 MiB uploads: UP_SIZE=1048576 UP_CONNS=16 IMG_GB=12 SECONDS_RUN=2.
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${1:-3}
shift || true
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("../target/release/fastdfs")
SECS=${SECONDS_RUN:-5}
SIZE=${UP_SIZE:-4096}
CONNS=${UP_CONNS:-32}
PORT=${BENCH_PORT_BASE:-18790}
IMG=/dev/shm/fastdfs-fresh4k.img
MNT=/mnt/fastdfs-fresh4k
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount "$MNT" 2>/dev/null || true
  rm -f "$IMG"
}
trap cleanup EXIT INT TERM
truncate -s "${IMG_GB:-4}G" "$IMG"
mkfs.ext4 -q -N 2000000 -O ^has_journal "$IMG"
mkdir -p "$MNT"
mount -o loop "$IMG" "$MNT"

W=$MNT
mkdir -p "$W/ng/root/dav" "$W/ng/tmp" "$W/ng/logs"
chmod 755 "$W" "$W/ng" "$W/ng/root"
chmod 1777 "$W/ng/root/dav" # written by nginx's worker (not root)
cat >"$W/ng/nginx.conf" <<NG
worker_processes 1;
daemon off;
pid $W/ng/nginx.pid;
error_log $W/ng/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000000; client_body_temp_path $W/ng/tmp/body;
  server { listen 127.0.0.1:$PORT; root $W/ng/root;
    location /dav/ { dav_methods PUT; create_full_put_path on; client_body_buffer_size 64k; } } }
NG
taskset -c 0 "$(command -v nginx || echo /usr/sbin/nginx)" -p "$W/ng" -c "$W/ng/nginx.conf" &
PIDS+=($!)
sleep 0.5
NGW=$(pgrep -P "${PIDS[0]}" | head -1)
RS=()
i=0
for bin in "${BINS[@]}"; do
  i=$((i + 1))
  d=$W/rs$i
  mkdir -p "$d/conf"
  python3 helper.py go-cfg "$d/conf/cfg.json" $((PORT + i)) '{"workers": 1, "peers": [], "enable_tus": false}'
  (cd "$d" && GO_FASTDFS_PEER_ID=1 exec taskset -c 0 "$(realpath "$OLDPWD/$bin" 2>/dev/null || realpath "$bin")" server >"$d/out.log" 2>&1) &
  PIDS+=($!)
  RS+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$((PORT + i))/group1/stat" && break; sleep 0.1; done
done
one() { # one LABEL PID URL SCRIPT
  local u0 k0 f0 u1 k1 f1 out req bad
  read -r u0 k0 f0 < <(awk '{print $14, $15, $10}' "/proc/$2/stat")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$4" "$3" -- "$SIZE" "$(date +%s%N)" 2>&1 | grep BENCH)
  read -r u1 k1 f1 < <(awk '{print $14, $15, $10}' "/proc/$2/stat")
  req=$(echo "$out" | grep -o 'requests=[0-9]*' | cut -d= -f2)
  bad=$(echo "$out" | grep -o ' bad=[0-9]*' | cut -d= -f2)
  p50=$(echo "$out" | grep -o 'p50_us=[0-9]*' | cut -d= -f2)
  p99=$(echo "$out" | grep -o 'p99_us=[0-9]*' | cut -d= -f2)
  python3 -c "r=$req; u=($u1-$u0)/100; k=($k1-$k0)/100; print(f'$1: {r/$SECS:7.0f}/s  CPU {(u+k)/r*1e6:5.0f} µs/upload (user {u/r*1e6:4.0f}, system {k/r*1e6:4.0f})  p50 {$p50/1e3:5.2f} ms  p99 {$p99/1e3:5.2f} ms  page faults {($f1-$f0)/r:5.1f}/upload  failed $bad')"
}
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  one "  nginx PUT  " "$NGW" "http://127.0.0.1:$PORT/dav/" wrk-put.lua
  i=0
  for p in "${RS[@]}"; do
    i=$((i + 1))
    one "  fastdfs-rs$i" "$p" "http://127.0.0.1:$((PORT + i))/group1/upload" wrk-upload.lua
  done
done
echo "durable creates on this filesystem (files/s, CPU µs its fsyncs add): $(taskset -c 0 python3 helper.py durable-creates "$MNT/dc" 2)"
# The md5 of one 4 KiB upload at one core's md5 rate (md5sum of 256 MiB in RAM), the third
# part of a durable upload's floor (nginx's PUT + the fsyncs + the md5).
head -c $((256 << 20)) /dev/urandom >"$MNT/md5.bin"
t0=$(date +%s.%N); taskset -c 0 md5sum "$MNT/md5.bin" >/dev/null; t1=$(date +%s.%N)
python3 -c "r=(256 << 20)/($t1-$t0)/1e6; print(f'md5: {r:.0f} MB/s, {4096/r:.1f} µs per 4 KiB')"
