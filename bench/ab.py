#!/usr/bin/env python3
"""A/B of GETs: fastdfs-rs binaries (and nginx) on the same files, in alternating rounds.

    python3 bench/ab.py [--size BYTES] [--files N] [--rounds R] [--secs S] [--nginx]
                        [--floor FLOOR_BIN] BIN [BIN]

Each binary runs as its own server (`workers: 1`, pinned to CPU 0) with N random files of
SIZE bytes uploaded through its API; with --nginx, nginx (deployed settings: sendfile,
open_file_cache, access log off, one process) serves the first server's `files/` under the
same paths; with --floor, bench/floor.rs (one thread answering every request with one
`recv` and one `send` of an answer held in memory: the kernel's share of a GET). Rounds take the servers in turn (the order reversed every other round), each a
`wrk -t1 -c64` run of S seconds on CPU 1 over random paths. Prints per round: req/s, server
CPU per request (and its user part, from /proc/PID/stat), p99, wrk's own CPU per response
(when wrk's core is saturated, the rate is the client's); then each server's median.
The machine's swings move every round; compare servers within a round, and the medians.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_argv, sys.argv = sys.argv, ["s3.py"]
import s3 as B  # noqa: E402  (start_server, upload_go, wrk, cleanup)

sys.argv = _argv


def user_sys(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]), int(f[12])


def start_nginx(work, files_dir, port):
    os.makedirs(work + "/logs", exist_ok=True)
    conf = work + "/nginx.conf"
    with open(conf, "w") as f:
        f.write("""
worker_processes 1; master_process off; daemon off; pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 65;
 keepalive_requests 100000000; open_file_cache max=20000 inactive=60s;
 open_file_cache_valid 60s; open_file_cache_errors on; default_type application/octet-stream;
 server { listen 127.0.0.1:%(p)d; location /group1/ { alias %(f)s/; } } }
""" % {"d": work, "p": port, "f": files_dir})
    p = subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", work, "-e",
                          work + "/logs/error.log", "-c", conf])
    B.CHILDREN.append(p)
    time.sleep(0.5)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--secs", type=int, default=4)
    ap.add_argument("--conns", type=int, default=64,
                    help="wrk's connections (few: the servers idle between requests)")
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--floor", metavar="FLOOR_BIN",
                    help="also the floor (bench/floor.rs): recv and one send per request")
    ap.add_argument("--floor-sendfile", action="store_true",
                    help="the floor sends the first server's stored files by sendfile")
    ap.add_argument("bins", nargs="+")
    a = ap.parse_args()
    B.SECS = a.secs
    servers = []  # (name, pid, port, path list)
    try:
        for i, binp in enumerate(a.bins):
            B.WORK = "/var/tmp/fastdfs-ab-%d" % i
            B.PORT, B.S3PORT, B.BIN = 19410 + 10 * i, 19411 + 10 * i, os.path.abspath(binp)
            p = B.start_server()
            lst = B.write_list("paths.txt", B.upload_go(a.size, a.files, "ab"))
            servers.append(("rs%d" % i, p.pid, B.PORT, lst))
            if a.nginx and i == 0:
                ng = start_nginx("/var/tmp/fastdfs-ab-nginx", B.WORK + "/files", 19490)
                nginx = ("nginx", ng.pid, 19490, lst)
        if a.nginx:
            servers.append(nginx)
        if a.floor:
            fl = subprocess.Popen(["taskset", "-c", "0", os.path.abspath(a.floor), "19495",
                                   str(a.size),
                                   "/var/tmp/fastdfs-ab-0/files" if a.floor_sendfile
                                   else str(a.files)])
            B.CHILDREN.append(fl)
            time.sleep(0.3)
            servers.append(("floor", fl.pid, 19495, servers[0][3]))
        cpu = {s[0]: [] for s in servers}
        for r in range(a.rounds):
            for name, pid, port, lst in (servers if r % 2 == 0 else servers[::-1]):
                u0 = user_sys(pid)
                w0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                rps, cpu_us, p99, bad = B.wrk(pid, ["-s", B.BENCH + "/wrk-get.lua",
                                                    "http://127.0.0.1:%d" % port, "--", lst], a.conns)
                w1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                u1 = user_sys(pid)
                # wrk's own CPU per response: when its core is saturated, the rate is wrk's.
                wrk_us = ((w1.ru_utime + w1.ru_stime) - (w0.ru_utime + w0.ru_stime)) * 1e6 \
                    / max(rps * B.SECS, 1)
                ticks = (u1[0] - u0[0]) + (u1[1] - u0[1])
                user = cpu_us * (u1[0] - u0[0]) / max(ticks, 1)
                cpu[name].append(cpu_us)
                print("round %d %-5s %9.0f req/s  CPU %6.2f us/request (user %5.2f)  p99 %.2f ms"
                      "  wrk %5.2f us/response%s"
                      % (r, name, rps, cpu_us, user, p99, wrk_us,
                         "  BAD %d" % bad if bad else ""), flush=True)
        for name, v in cpu.items():
            v.sort()
            print("%-5s median CPU %.2f us/request (min %.2f)" % (name, v[len(v) // 2], v[0]))
    finally:
        B.cleanup()


if __name__ == "__main__":
    main()
