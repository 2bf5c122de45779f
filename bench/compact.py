#!/usr/bin/env python3
"""Compaction benchmark: GET latency of merged small files while a container is compacted,
against the same GETs idle, and the rewrite rate.

Starts target/release/fastdfs (one executor, CPU 0) with enable_merge_small_file on, uploads
FILES merged files of 4 KiB (one keep-alive connection), deletes every second one, then runs
wrk on the remaining URLs (CPU 1) twice: idle, and right after asking G/compact. The rewrite
rate comes from the server's log line that reports the pass (bytes moved) and the time from
the request to that line. Saves bench/results/compact-<timestamp>.md.

    cargo build --release && python3 bench/compact.py        # about 1 minute
"""
import calendar
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("FASTDFS_BIN", os.path.join(HERE, "..", "target", "release", "fastdfs"))
WORK = os.environ.get("BENCH_WORK_DIR", "/var/tmp/fastdfs-compact")
FILES = int(os.environ.get("FILES", "20000"))
PORT = 18093
WRK_SECONDS = 3


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def upload(conn, name, data):
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, out = request(conn, "POST", "/group1/upload", body,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, out
    return json.loads(out)


def wrk(paths_file):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{WRK_SECONDS}s", "--latency",
         "-s", os.path.join(HERE, "wrk-get.lua"), f"http://127.0.0.1:{PORT}", "--", paths_file],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def main():
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "conf"))
    with open(os.path.join(WORK, "conf", "cfg.json"), "w") as f:
        json.dump({"addr": f"127.0.0.1:{PORT}", "host": f"http://127.0.0.1:{PORT}",
                   "peer_id": "1", "peers": [], "group": "group1",
                   "support_group_manage": True, "enable_merge_small_file": True,
                   "workers": 1, "enable_tus": False, "auto_repair": False,
                   "default_download": False, "compact_dead_percent": 0}, f)
    log = open(os.path.join(WORK, "server.out"), "w")
    server = subprocess.Popen(["taskset", "-c", "0", BIN, "server"], cwd=WORK,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
                request(c, "GET", "/group1/status")
                break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        kept = []
        for i in range(FILES):
            r = upload(conn, f"f{i}.bin", os.urandom(4096))
            if i % 2:
                kept.append(r["path"])
            else:
                status, _ = request(conn, "GET", f"/group1/delete?md5={r['md5']}")
                assert status == 200
        paths = os.path.join(WORK, "paths.txt")
        with open(paths, "w") as f:
            f.write("\n".join(kept) + "\n")
        idle_rps, idle_p99 = wrk(paths)
        status, _ = request(conn, "GET", "/group1/compact")
        assert status == 200
        asked = time.time()
        busy_rps, busy_p99 = wrk(paths)
        moved, took = None, None
        for _ in range(300):
            text = open(os.path.join(WORK, "server.out")).read()
            line = next((l for l in text.splitlines() if "bytes_moved" in l), None)
            if line:
                moved = int(re.search(r"bytes_moved: (\d+)", line).group(1))
                stamp = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line).group(1)
                done = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
                done += float("0." + stamp[20:])
                took = done - asked
                break
            time.sleep(0.1)
        for p in kept[:50]:
            status, _ = request(conn, "GET", p)
            assert status == 200, p
    finally:
        server.terminate()
        server.wait()
    ts = time.strftime("%Y%m%d-%H%M%S")
    rate = f"{moved / took / 1e6:.1f} MB/s ({moved / 1e6:.1f} MB in {took:.2f} s, from the request to the server's log line of the finished pass)" if moved else "pass not seen"
    report = f"""# Compaction benchmark {ts}

{FILES} merged 4 KiB files uploaded, every second one deleted; GETs of the {len(kept)} others
(wrk -c32, {WRK_SECONDS} s) idle and while `G/compact` rewrites the container. One executor
on CPU 0, wrk on CPU 1.

| | idle | during compaction | ratio |
|---|---:|---:|---:|
| GET req/s | {idle_rps:,.0f} | {busy_rps:,.0f} | {busy_rps / idle_rps:.2f} |
| GET p99 ms | {idle_p99:.2f} | {busy_p99:.2f} | {busy_p99 / idle_p99:.2f} |

Rewritten: {rate}.
"""
    print(report)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"compact-{ts}.md"), "w") as f:
        f.write(report)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
