#!/usr/bin/env python3
"""One large file replicated A -> B between two fastdfs-rs nodes (issue 14, item 5), and the
CPU each node spent: what bounds a lone stream on the receiving node (socket copy, md5, write).

    cargo build --release && python3 bench/replicate.py [--pin] [--mib N] [BIN...]

Each binary in turn (default target/release/fastdfs): node A on 127.0.0.20, node B on
127.0.0.30 (`workers: 1` each), one `curl -F` upload of an N MiB random file (default 1024) to
A; the time runs from A's answer until B's files/ holds the whole file. Without --pin the
nodes are not pinned (a core runs no executor: B's md5 runs beside its executor); with
--pin, A runs on CPU 0 and B on CPU 1. Prints MB/s, each node's CPU seconds and B's peak RSS.
Every process it starts is killed by PID at exit; its directories are removed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv):
    """The command line; bad arguments and --help exit here, before anything runs."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See the module's docstring (bench/replicate.py).")
    p.add_argument("--pin", action="store_true", help="node A on CPU 0, node B on CPU 1")
    p.add_argument("--mib", type=int, default=1024, metavar="N", help="the file's size in MiB")
    p.add_argument("bins", nargs="*", metavar="BIN",
                   help="server binaries, each in turn (default target/release/fastdfs)")
    a = p.parse_args(argv)
    if a.mib < 1:
        p.error("--mib takes a size of at least 1")
    return a


ARGS = parse_args(sys.argv[1:])
PIN = ARGS.pin
MIB = ARGS.mib
BINS = ARGS.bins or [os.path.join(ROOT, "target/release/fastdfs")]
PORT = 19200


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def hwm_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def node(work, name, ip, peer_ip, cpu, binary, procs):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "conf"))
    cfg = {"addr": "%s:%d" % (ip, PORT), "host": "http://%s:%d" % (ip, PORT),
           "peers": ["http://%s:%d" % (peer_ip, PORT)], "peer_id": "1" if name == "a" else "2",
           "group": "group1", "support_group_manage": True, "enable_distinct_file": True,
           "admin_ips": ["127.0.0.1"], "auto_repair": False, "enable_tus": False, "workers": 1}
    with open(os.path.join(d, "conf", "cfg.json"), "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ, GO_FASTDFS_PEER_ID=cfg["peer_id"])
    env.pop("GO_FASTDFS_DIR", None)
    cmd = (["taskset", "-c", str(cpu)] if PIN else []) + [binary, "server"]
    p = subprocess.Popen(cmd, cwd=d, stdout=open(os.path.join(d, "out.log"), "w"),
                         stderr=subprocess.STDOUT, env=env)
    procs.append(p)
    for _ in range(100):
        if subprocess.run(["curl", "-s", "-o", "/dev/null",
                           "http://%s:%d/group1/stat" % (ip, PORT)]).returncode == 0:
            return d, p
        time.sleep(0.1)
    sys.exit("node %s did not start: see %s/out.log" % (name, d))


def run(binary, big):
    work = tempfile.mkdtemp(prefix="fastdfs-replicate-", dir="/var/tmp")
    procs = []
    try:
        _, pa = node(work, "a", "127.0.0.20", "127.0.0.30", 0, binary, procs)
        b, pb = node(work, "b", "127.0.0.30", "127.0.0.20", 1, binary, procs)
        out = subprocess.run(["curl", "-s", "-F", "file=@" + big, "-F", "output=json",
                              "http://127.0.0.20:%d/group1/upload" % PORT],
                             capture_output=True, timeout=900)
        t0 = time.time()
        ca, cb = cpu_s(pa.pid), cpu_s(pb.pid)
        rel = json.loads(out.stdout)["path"].split("/", 2)[2]
        want = MIB << 20
        target = os.path.join(b, "files", rel)
        while time.time() - t0 < 900:
            try:
                if os.path.getsize(target) == want:
                    break
            except OSError:
                pass
            time.sleep(0.005)
        el = time.time() - t0
        print("%s: %.0f MB/s (%.2f s); A CPU %.2f s, B CPU %.2f s (%.0f %% of the time), "
              "B peak RSS %.0f MiB" % (binary, want / el / 1e6, el, cpu_s(pa.pid) - ca,
                                       cpu_s(pb.pid) - cb, (cpu_s(pb.pid) - cb) / el * 100,
                                       hwm_mib(pb.pid)))
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    big = "/var/tmp/fastdfs-replicate-%d.bin" % MIB
    if not os.path.exists(big) or os.path.getsize(big) != MIB << 20:
        with open(big, "wb") as f:
            for _ in range(MIB):
                f.write(os.urandom(1 << 20))
    for binary in BINS:
        run(binary, big)


if __name__ == "__main__":
    main()
