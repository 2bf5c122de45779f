#!/usr/bin/env python3
"""Soak test (issue 13, item 10): two fastdfs-rs nodes that are each other's peers, under a
mixed load for DURATION seconds (default 1800): multipart uploads of random sizes, downloads
(whole and ranged) of random stored files from either node, deletes, tus uploads (tuspy, when
installed), and the second node restarted every RESTART_EVERY seconds. Every 10 s the RSS and
open fds of both servers are sampled. At the end: no unexpected answer, every live file on
both nodes, RSS and fds flat (the last fifth of the run against the second fifth), and a
markdown report in bench/results/soak-<timestamp>.md.

usage: bench/soak.py [--duration S] [--rate OPS_PER_S] [--bin PATH]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(ip):
    s = socket.socket()
    s.bind((ip, 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Node:
    def __init__(self, binary, ip, port, peers, peer_id, work):
        self.binary, self.ip, self.port = binary, ip, port
        self.dir = os.path.join(work, "node%s" % peer_id)
        os.makedirs(os.path.join(self.dir, "conf"))
        cfg = {
            "addr": "%s:%d" % (ip, port), "host": "http://%s:%d" % (ip, port),
            "peer_id": str(peer_id), "peers": peers, "group": "group1",
            "support_group_manage": True, "enable_distinct_file": True, "enable_tus": True,
            "admin_ips": ["127.0.0.0/8"], "workers": 1, "status_check_interval": 5,
            "default_download": False,
        }
        with open(os.path.join(self.dir, "conf", "cfg.json"), "w") as f:
            json.dump(cfg, f)
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "stderr.log"), "a")
        self.proc = subprocess.Popen([self.binary, "server"], cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=log)
        for _ in range(200):
            try:
                socket.create_connection((self.ip, self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("node did not start: " + self.dir)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def sample(self):
        pid = self.proc.pid
        with open("/proc/%d/status" % pid) as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        return rss, fds


def request(node, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection(node.ip, node.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def upload(node, name, data):
    b = "----soak%016x" % random.getrandbits(64)
    body = (("--%s\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n"
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n") % (b, b, name)).encode() + data + \
        ("\r\n--%s--\r\n" % b).encode()
    return request(node, "POST", "/group1/upload", body,
                   {"Content-Type": "multipart/form-data; boundary=" + b})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=1800)
    ap.add_argument("--rate", type=float, default=40.0)
    ap.add_argument("--restart-every", type=int, default=300)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "fastdfs"))
    a = ap.parse_args()
    try:
        from tusclient import client as tus  # noqa: F401
        have_tus = True
    except ImportError:
        have_tus = False
    work = tempfile.mkdtemp(prefix="fastdfs-soak-")
    ips = ["127.0.0.71", "127.0.0.72"]
    ports = [free_port(ip) for ip in ips]
    bases = ["http://%s:%d" % (ip, p) for ip, p in zip(ips, ports)]
    nodes = [Node(a.bin, ips[i], ports[i], [bases[1 - i]], i + 1, work) for i in range(2)]
    live = {}      # md5 -> (path, data)
    deleted = set()
    counts = {"upload": 0, "get": 0, "range": 0, "delete": 0, "tus": 0, "restart": 0}
    errors = []
    samples = []   # (t, rss0, fds0, rss1, fds1)
    t0 = time.time()
    next_sample = t0
    next_restart = t0 + a.restart_every
    rnd = random.Random(1)
    i = 0
    try:
        while time.time() - t0 < a.duration:
            now = time.time()
            if now >= next_sample:
                (r0, f0), (r1, f1) = nodes[0].sample(), nodes[1].sample()
                samples.append((now - t0, r0, f0, r1, f1))
                next_sample += 10
            if now >= next_restart:
                nodes[1].stop()
                nodes[1].start()
                counts["restart"] += 1
                next_restart += a.restart_every
            i += 1
            op = rnd.random()
            n = nodes[0] if rnd.random() < 0.7 else nodes[1]
            try:
                if op < 0.35 or not live:
                    data = os.urandom(rnd.choice([200, 4000, 60000, 700000]))
                    st, body = upload(n, "soak%d.bin" % i, data)
                    if st != 200:
                        errors.append("upload %d %s" % (st, body[:200]))
                    else:
                        v = json.loads(body)
                        live[v["md5"]] = (v["path"], data)
                    counts["upload"] += 1
                elif op < 0.80:
                    md5 = rnd.choice(list(live))
                    path, data = live[md5]
                    node = nodes[0]  # the peer may not have it yet; the origin mostly
                    if rnd.random() < 0.5:
                        st, body = request(node, "GET", path)
                        if st == 404 and node is not nodes[0]:
                            continue
                        if st != 200 or body != data:
                            errors.append("get %s %d" % (path, st))
                        counts["get"] += 1
                    else:
                        lo = rnd.randrange(len(data))
                        st, body = request(node, "GET", path, headers={"Range": "bytes=%d-" % lo})
                        if st != 206 or body != data[lo:]:
                            errors.append("range %s %d" % (path, st))
                        counts["range"] += 1
                elif op < 0.90:
                    md5 = rnd.choice(list(live))
                    st, body = request(nodes[0], "GET", "/group1/delete?md5=" + md5)
                    if st != 200:
                        errors.append("delete %s %d %s" % (md5, st, body[:200]))
                    else:
                        del live[md5]
                        deleted.add(md5)
                    counts["delete"] += 1
                elif have_tus:
                    from tusclient import client as tus
                    data = os.urandom(rnd.choice([10000, 300000]))
                    path = os.path.join(work, "tus.bin")
                    with open(path, "wb") as f:
                        f.write(data)
                    up = tus.TusClient(bases[0] + "/group1/big/upload/").uploader(
                        path, chunk_size=64 * 1024, metadata={"filename": "t%d.bin" % i})
                    up.upload()
                    md5 = hashlib.md5(data).hexdigest()
                    st, body = request(nodes[0], "GET", "/group1/upload?md5=" + md5)
                    if st != 200:
                        errors.append("tus %d %s" % (st, body[:200]))
                    else:
                        p = urllib.parse.urlparse(body.decode().strip()).path
                        live[md5] = (p, data)
                    counts["tus"] += 1
            except Exception as e:  # a transport error is an error too
                errors.append("%s: %r" % (type(e).__name__, e))
            time.sleep(max(0.0, 1.0 / a.rate))
        # Convergence: every live file on both nodes within 120 s.
        deadline = time.time() + 120
        missing = list(live)
        while missing and time.time() < deadline:
            still = []
            for md5 in missing:
                st, body = request(nodes[1], "GET", "/group1/check_file_exist?md5=" + md5)
                if st != 200 or md5.encode() not in body:
                    still.append(md5)
            missing = still
            if missing:
                time.sleep(2)
        back = [m for m in list(deleted)[:500]
                if md5_on(nodes[1], m)]
    finally:
        for nd in nodes:
            try:
                nd.stop()
            except Exception:
                nd.proc.kill()
    fifth = max(1, len(samples) // 5)
    def avg(xs):
        return sum(xs) / max(1, len(xs))
    early, late = samples[fifth:2 * fifth], samples[-fifth:]
    rss_ratio = [avg([s[k] for s in late]) / avg([s[k] for s in early]) for k in (1, 3)]
    fds_ratio = [avg([s[k] for s in late]) / avg([s[k] for s in early]) for k in (2, 4)]
    ts = time.strftime("%Y%m%d-%H%M%S")
    report = ["# Soak %s" % ts, "",
              "Two fastdfs-rs nodes (one executor each), %d s of mixed load at about %.0f ops/s;"
              " node 2 restarted every %d s." % (a.duration, a.rate, a.restart_every), "",
              "| | count |", "|---|---:|"]
    report += ["| %s | %d |" % (k, v) for k, v in counts.items()]
    report += ["", "| | node 1 | node 2 |", "|---|---:|---:|",
               "| RSS MB, second fifth | %.1f | %.1f |" % (avg([s[1] for s in early]) / 1024, avg([s[3] for s in early]) / 1024),
               "| RSS MB, last fifth | %.1f | %.1f |" % (avg([s[1] for s in late]) / 1024, avg([s[3] for s in late]) / 1024),
               "| RSS last / second fifth | %.2f | %.2f |" % tuple(rss_ratio),
               "| open fds, second fifth | %.0f | %.0f |" % (avg([s[2] for s in early]), avg([s[4] for s in early])),
               "| open fds, last fifth | %.0f | %.0f |" % (avg([s[2] for s in late]), avg([s[4] for s in late])),
               "", "Errors: %d. Live files missing on node 2 after 120 s: %d. Deleted files back on node 2: %d."
               % (len(errors), len(missing), len(back))]
    report += ["", "First errors:"] + ["- " + e for e in errors[:20]] if errors else []
    text = "\n".join(report) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "soak-%s.md" % ts), "w") as f:
        f.write(text)
    shutil.rmtree(work, ignore_errors=True)
    ok = not errors and not missing and not back and max(rss_ratio) < 1.5 and max(fds_ratio) < 1.5
    sys.exit(0 if ok else 1)


def md5_on(node, md5):
    st, body = request(node, "GET", "/group1/check_file_exist?md5=" + md5)
    return st == 200 and md5.encode() in body


if __name__ == "__main__":
    main()
