#!/usr/bin/env bash
# Resize benchmark: resizes/s of a 4000x3000 JPEG to ~200 px wide through
# GET ?width=200 (each request a different width 200..299 is not cached: the variant cache is
# cleared between rounds), fastdfs-rs pinned to CPU 0 with 1 executor, curl on CPU 1.
# Needs python3 with Pillow (pip install pillow) to make the photo-like test image.
set -euo pipefail
BIN=${FASTDFS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/fastdfs}
WORK=$(mktemp -d /var/tmp/fastdfs-resize.XXXXXX)
PORT=${PORT:-18099}
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
python3 -c 'import PIL' 2>/dev/null || { echo "bench/resize.sh needs Pillow: pip install pillow" >&2; exit 2; }
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
n=${RESIZES:-40}
# fastdfs-rs: sequential GETs on one keep-alive connection (no client start-up in the time),
# each a new width, so every one is a fresh decode + resize + encode.
rs=$(taskset -c 1 python3 - "$PORT" "$path" "$n" <<'PY'
import http.client, sys, time
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
t = time.time()
for i in range(n):
    c.request("GET", "%s?width=%d&download=0" % (path, 200 + i))
    r = c.getresponse(); body = r.read()
    assert r.status == 200 and body[:2] == b"\xff\xd8", (r.status, body[:20])
print("%.2f" % (n / (time.time() - t)))
PY
)
# Pillow in the same run, on the same core: open, draft (DCT-domain downscale, as libjpeg
# offers), thumbnail with Lanczos, encode as JPEG; the file read from the page cache.
pil=$(taskset -c 0 python3 - "$WORK/photo.jpg" "$n" <<'PY'
import io, sys, time
from PIL import Image
src, n = sys.argv[1], int(sys.argv[2])
t = time.time()
for i in range(n):
    w = 200 + i
    im = Image.open(src)
    im.draft("RGB", (w, w * 3 // 4))
    im.thumbnail((w, 10 ** 6), Image.LANCZOS)
    out = io.BytesIO(); im.save(out, "JPEG")
print("%.2f" % (n / (time.time() - t)))
PY
)
python3 -c "print(f'4000x3000 JPEG -> ~200 px, {$n} widths, one core: fastdfs-rs {$rs} resizes/s, Pillow draft+thumbnail {$pil} resizes/s, ratio {$rs/$pil:.2f}')"
start=$(date +%s.%N)
for i in $(seq 20); do
  taskset -c 1 curl -s -o /dev/null "http://127.0.0.1:$PORT$path?width=200&download=0"
done
end=$(date +%s.%N)
python3 -c "t=$end-$start; print(f'cached variant: {20/t:.0f} requests/s (curl start-up included)')"
