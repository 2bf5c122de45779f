#!/usr/bin/env python3
"""What an idle keep-alive connection costs fastdfs-rs in memory (issue 14, item 7).

    cargo build --release && python3 bench/idle_heap.py [--conns N] [BIN...]

Per binary: a fresh server (`workers: 1`, pinned to CPU 0) stores one 4 KiB file, then N
connections (default 9,000; clients on CPU 1, from 127.0.10.1 on) each GET it once and stay
open. Reported per idle connection: the growth of the allocator's bytes in use (`Sys.HeapAlloc`
of `G/status`, glibc's mallinfo2 over every arena) and of RSS. The heap is the figure to read:
RSS moves with what the allocator had kept from earlier work (a connection reusing freed
memory adds no RSS), which is why bench/conns.sh's RSS per idle connection reads 0 in some
runs and the whole cost in others. Every process it starts is stopped by PID.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

PORT = 19777
WORK = "/var/tmp/fastdfs-idle-heap"
BOUNDARY = "----idleheap"


def status_heap(base):
    data = json.loads(urllib.request.urlopen(base + "/group1/status", timeout=10).read())
    return int(data["data"]["Sys.HeapAlloc"])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1])


def upload(base):
    body = ("--%s\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n--%s\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename=\"idle.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (BOUNDARY, BOUNDARY)).encode() \
        + os.urandom(4096) + ("\r\n--%s--\r\n" % BOUNDARY).encode()
    req = urllib.request.Request(base + "/group1/upload", data=body, headers={
        "Content-Type": "multipart/form-data; boundary=" + BOUNDARY})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["path"]


def measure(binp, n):
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK + "/conf")
    with open(WORK + "/conf/cfg.json", "w") as f:
        json.dump({"addr": "127.0.0.1:%d" % PORT, "workers": 1, "group": "group1",
                   "support_group_manage": True, "enable_tus": False,
                   "connections_per_client_max": 20000, "connections_max": 20000,
                   "idle_timeout": 300}, f)
    p = subprocess.Popen(["taskset", "-c", "0", binp, "server"], cwd=WORK,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % PORT
    conns = []
    try:
        for _ in range(100):
            try:
                status_heap(base)
                break
            except OSError:
                time.sleep(0.1)
        path = upload(base)
        time.sleep(1)
        h0, r0 = status_heap(base), rss_kib(p.pid)
        req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
        for i in range(n):
            c = socket.create_connection(("127.0.0.1", PORT),
                                         source_address=("127.0.%d.%d" % (10 + i // 250, 1 + i % 250), 0))
            c.sendall(req)
            conns.append(c)
        for c in conns:
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = c.recv(65536)
                if not chunk:
                    raise SystemExit("a connection was closed before its answer")
                got += chunk
        time.sleep(1)
        h1, r1 = status_heap(base), rss_kib(p.pid)
        return (h1 - h0) / n, (r1 - r0) * 1024 / n
    finally:
        for c in conns:
            c.close()
        p.terminate()
        p.wait(10)
        shutil.rmtree(WORK, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=9000)
    ap.add_argument("bins", nargs="*")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bins = a.bins or [os.path.join(root, "target/release/fastdfs")]
    print("| binary | heap per idle connection, bytes | RSS per idle connection, bytes |")
    print("|---|---:|---:|")
    for b in bins:
        heap, rss = measure(os.path.abspath(b), a.conns)
        print("| %s | %.0f | %.0f |" % (b, heap, rss), flush=True)


if __name__ == "__main__":
    main()
