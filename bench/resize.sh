#!/usr/bin/env bash
# Resize benchmark: resizes/s of a 4000x3000 JPEG to 200 px wide through
# GET ?width=200 (each request a different width 200..299 is not cached: the variant cache is
# cleared between rounds), fastdfs-rs pinned to CPU 0 with 1 executor, curl on CPU 1.
# Needs python3 with Pillow (pip install pillow) to make the photo-like test image.
set -euo pipefail
BIN=${FASTDFS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/fastdfs}
WORK=$(mktemp -d /var/tmp/fastdfs-resize.XXXXXX)
PORT=${PORT:-18099}
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/conf"
echo "{\"addr\":\"127.0.0.1:$PORT\",\"host\":\"http://127.0.0.1:$PORT\",\"workers\":1,\"peers\":[],\"group\":\"group1\",\"support_group_manage\":true,\"image_max_width\":4000,\"image_max_height\":4000}" > "$WORK/conf/cfg.json"
python3 - "$WORK/photo.jpg" <<'PY'
import sys, random
from PIL import Image, ImageFilter
random.seed(7)
img = Image.effect_noise((4000, 3000), 64).convert("RGB").filter(ImageFilter.GaussianBlur(2))
img.save(sys.argv[1], quality=85)
PY
(cd "$WORK" && exec taskset -c 0 "$BIN" server >"$WORK/server.log" 2>&1) & PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
resp=$(curl -s -F file=@"$WORK/photo.jpg" -F output=json "http://127.0.0.1:$PORT/group1/upload")
path=$(echo "$resp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])') || { echo "upload failed: $resp"; tail -5 "$WORK/server.log"; exit 1; }
n=20
start=$(date +%s.%N)
for i in $(seq $n); do
  w=$((199 + i))
  taskset -c 1 curl -s -o /dev/null -w '' "http://127.0.0.1:$PORT$path?width=$w&download=0"
done
end=$(date +%s.%N)
python3 -c "t=$end-$start; print(f'4000x3000 JPEG -> ~200 px: {$n/t:.2f} resizes/s ({t/$n*1000:.0f} ms each, 1 executor, sequential)')"
start=$(date +%s.%N)
for i in $(seq $n); do
  taskset -c 1 curl -s -o /dev/null "http://127.0.0.1:$PORT$path?width=200&download=0"
done
end=$(date +%s.%N)
python3 -c "t=$end-$start; print(f'cached variant: {$n/t:.0f} requests/s')"
