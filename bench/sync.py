#!/usr/bin/env python3
"""Replication benchmark: two local nodes, A -> B, fastdfs-rs and go-fastdfs side by side.

    cargo build --release --features bench-tools --bin fastdfs --bin fastdfs-sync-floor
    python3 bench/sync.py [--quick] [--big-rounds N]

BENCH_SENDER_DIR=/dev/shm/… puts node A (the sender) on a disk of its own (in a cluster
every node has its own; here both share one otherwise). --big-rounds N measures only the big
file: N rounds of a fresh fastdfs-rs pair and the floor in turn.

Measures, for each pair (fastdfs-rs A/B on 127.0.0.61/.71, go-fastdfs on .62/.72):
  * live 4 KiB: N files uploaded to A (8 clients) while B is up; files/s from the first upload
    until B has indexed all N (end-to-end, includes the uploads), the uploads' own rate, and
    the CPU both nodes spent per file; in LIVE_ROUNDS rounds on fresh pairs that take the
    servers in turn (the mean is reported, and each round's rate);
  * catch-up 4 KiB (fastdfs-rs only; go-fastdfs gives up after retry_count and retries only
    every refresh_interval = 30 min): B down, N files uploaded to A, B started; files/s from
    B's start until B has all N;
  * 1 GiB: one file uploaded to A; MB/s from A's answer until B has it;
  * lag: one client uploads a 4 KiB file to A and polls B's runtime dir every 2 ms until the
    complete file is there; 200 samples; p50/p99 of (on B's disk - A's answer).
  The big file and the lag are judged by the complete file in B's files/ (both servers rename
  a finished temp file into place), not by an index lookup.
and the machine's limits in the same run: loopback TCP MB/s, md5 MB/s (md5sum of the big file
from /dev/shm, as bench/run.sh), the fsync'd sequential
write rate (dd of the big file's size, oflag=direct conv=fsync, as bench/run.sh measures it)
and durable 4 KiB creates/s, and the floor of the big file's replication on this machine
(fastdfs-sync-floor beside FASTDFS_BIN, bench/syncfloor.rs).
Prints a markdown table and writes bench/results/sync-<timestamp>.md.
Every process it starts is killed by PID at exit.
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RS_BIN = os.environ.get("FASTDFS_BIN", os.path.join(ROOT, "target/release/fastdfs"))
GO_BIN = os.environ.get("GO_FASTDFS_BIN", "/work/shared/go-fastdfs/fileserver")
WORK = os.environ.get("BENCH_WORK_DIR", "/var/tmp/fastdfs-sync-bench")
# Node A (the sender) on a disk of its own, e.g. /dev/shm/fastdfs-sync-sender: in a real
# cluster each node has its own disk; here both share one unless this is set.
SENDER_DIR = os.environ.get("BENCH_SENDER_DIR")
FLOOR_BIN = os.environ.get("SYNC_FLOOR_BIN",
                           os.path.join(os.path.dirname(RS_BIN), "fastdfs-sync-floor"))


def parse_args(argv):
    """The command line (read when the module loads: the sizes below depend on --quick). Bad
    arguments and --help exit here, before anything runs."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module's docstring (bench/sync.py) and bench/README.md.")
    p.add_argument("--quick", action="store_true",
                   help="fewer files and a 128 MiB big file")
    p.add_argument("--big-rounds", type=int, default=0, metavar="N",
                   help="only the big file: N rounds of a fresh pair and the floor in turn")
    a = p.parse_args(argv)
    if a.big_rounds < 0:
        p.error("--big-rounds takes a count")
    return a


ARGS = parse_args(sys.argv[1:])
QUICK = ARGS.quick
BIG_ROUNDS = ARGS.big_rounds
N_FILES = 300 if QUICK else 2000
BIG = (128 << 20) if QUICK else (1 << 30)
LAG_SAMPLES = 50 if QUICK else 200
LIVE_ROUNDS = 2 if QUICK else 4
PORT = 19100
CHILDREN = []
BOUNDARY = "----fastdfsbench"


def die(msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(1)


def cleanup(*_):
    for p in CHILDREN:
        try:
            p.kill()
            p.wait(5)
        except Exception:
            pass


signal.signal(signal.SIGTERM, lambda *a: (cleanup(), sys.exit(1)))


class Node:
    def __init__(self, kind, name, ip, peer_ip, sub=""):
        self.kind, self.name, self.ip = kind, name, ip
        self.base = "http://%s:%d" % (ip, PORT)
        self.peer = "http://%s:%d" % (peer_ip, PORT)
        home = SENDER_DIR if SENDER_DIR and name == "a" else WORK
        self.dir = os.path.join(home, kind + sub, name)
        self.proc = None
        os.makedirs(os.path.join(self.dir, "conf"), exist_ok=True)
        cfg = {
            "addr": "%s:%d" % (ip, PORT), "host": self.base, "peers": [self.peer],
            "peer_id": "1" if name == "a" else "2", "group": "group1",
            "support_group_manage": True, "enable_distinct_file": True,
            "file_sum_arithmetic": "md5", "admin_ips": ["127.0.0.1"], "auto_repair": False,
            "enable_tus": False, "default_scene": "default", "download_domain": "",
            "refresh_interval": 1800, "retry_count": 3, "enable_migrate": False,
            "read_only": False, "show_dir": True, "default_download": True,
        }
        if kind == "rs":
            cfg["workers"] = 1
        else:
            os.symlink(GO_BIN, os.path.join(self.dir, "fileserver"))
        with open(os.path.join(self.dir, "conf/cfg.json"), "w") as f:
            json.dump(cfg, f, indent=2)

    def start(self):
        log = open(os.path.join(self.dir, "stdout.log"), "ab")
        cmd = [RS_BIN, "server"] if self.kind == "rs" else ["./fileserver", "server"]
        env = dict(os.environ, GO_FASTDFS_PEER_ID="1" if self.name == "a" else "2")
        env.pop("GO_FASTDFS_DIR", None)
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=env)
        CHILDREN.append(self.proc)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                die("%s %s exited; see %s/stdout.log" % (self.kind, self.name, self.dir))
            try:
                st, _ = req(self.base, "GET", "/group1/status", timeout=1)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        die("%s %s did not answer" % (self.kind, self.name))

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def req(base, method, path, body=None, headers=None, timeout=30):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def upload(base, name, content, conn=None):
    body = (
        "--%s\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n"
        "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n" % (BOUNDARY, BOUNDARY, name)
    ).encode() + content + ("\r\n--%s--\r\n" % BOUNDARY).encode()
    hdrs = {"Content-Type": "multipart/form-data; boundary=" + BOUNDARY}
    st, data = req(base, "POST", "/group1/upload", body, hdrs, timeout=600)
    if st != 200:
        die("upload to %s answered %d: %r" % (base, st, data[:200]))
    return json.loads(data)


def stored(node, upload_answer, size):
    """True once the node holds the complete file at the uploader's path, on disk. Both
    servers write into a temp name and rename, so the final path appears whole; this is
    fair where an index lookup is not (go-fastdfs indexes an announcement before it has
    fetched the content, and reads missing files through from peers)."""
    rel = upload_answer["path"].split("/", 2)[2] if upload_answer["path"].startswith("/group1/") \
        else upload_answer["path"].lstrip("/")
    try:
        return os.path.getsize(os.path.join(node.dir, "files", rel)) == size
    except OSError:
        return False


def has(base, md5):
    try:
        st, data = req(base, "GET", "/group1/check_file_exist?md5=" + md5, timeout=5)
        return st == 200 and json.loads(data).get("md5") == md5
    except (OSError, ValueError):
        return False


def day_count(base):
    day = time.strftime("%Y%m%d")
    try:
        st, data = req(base, "GET", "/group1/get_md5s_by_date?date=" + day, timeout=10)
    except OSError:
        return -1
    return len([m for m in data.decode().split(",") if m]) if st == 200 else -1


def files(n, seed):
    out = []
    for i in range(n):
        c = ("%s-%d\n" % (seed, i)).encode() + os.urandom(4096 - 32)
        out.append(("f%d.bin" % i, c))
    return out


def upload_all(base, items, conc=8):
    idx = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if idx[0] >= len(items):
                    return
                name, c = items[idx[0]]
                idx[0] += 1
            upload(base, name, c)

    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def wait_count(base, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if day_count(base) >= want:
            return time.time()
        time.sleep(0.05)
    return None


def cpu_seconds(proc):
    """User + system CPU of a process so far (all its threads, io_uring workers included)."""
    with open("/proc/%d/stat" % proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


IPS = {"rs": ("127.0.0.61", "127.0.0.71"), "go": ("127.0.0.62", "127.0.0.72")}


def live_round(kind, r):
    """One round of the live workload on a fresh pair: N files uploaded to A (8 clients) until
    B has them all. Returns files/s end to end, the uploads' own files/s, and the CPU both
    nodes spent per file."""
    ip_a, ip_b = IPS[kind]
    a = Node(kind, "a", ip_a, ip_b, "-live%d" % r)
    b = Node(kind, "b", ip_b, ip_a, "-live%d" % r)
    a.start()
    b.start()
    try:
        items = files(N_FILES, "%s-live%d" % (kind, r))
        cpu0 = cpu_seconds(a.proc) + cpu_seconds(b.proc)
        t0 = time.time()
        upload_all(a.base, items)
        t_up = time.time()
        t1 = wait_count(b.base, N_FILES, 600)
        cpu = cpu_seconds(a.proc) + cpu_seconds(b.proc) - cpu0
    finally:
        a.stop()
        b.stop()
    return {"live_fps": N_FILES / (t1 - t0) if t1 else None,
            "upload_fps": N_FILES / (t_up - t0),
            "live_cpu_us": cpu / N_FILES * 1e6}


def live_rounds(kinds):
    """LIVE_ROUNDS rounds, each taking the servers in turn (the machine's noise hits both);
    per server the mean of each measure and the list of its rounds' live rates."""
    per = {k: [] for k in kinds}
    for r in range(LIVE_ROUNDS):
        for k in (kinds if r % 2 == 0 else kinds[::-1]):
            per[k].append(live_round(k, r))
    out = {}
    for k, rounds in per.items():
        res = {}
        for key in rounds[0]:
            vals = [x[key] for x in rounds if x[key] is not None]
            res[key] = sum(vals) / len(vals) if len(vals) == len(rounds) else None
        res["live_rounds"] = [x["live_fps"] for x in rounds]
        out[k] = res
    return out


def bench_pair(kind, a, b):
    res = {}
    a.start()
    b.start()
    have = 0
    # catch-up 4 KiB
    if kind == "rs":
        b.stop()
        items = files(N_FILES, kind + "-catchup")
        upload_all(a.base, items)
        t0 = time.time()
        b.start()
        t1 = wait_count(b.base, have + N_FILES, 600)
        res["catchup_fps"] = N_FILES / (t1 - t0) if t1 else None
        have += N_FILES
    # lag
    lags = []
    for i in range(LAG_SAMPLES):
        c = ("lag-%s-%d\n" % (kind, i)).encode() + os.urandom(4000)
        ans = upload(a.base, "lag%d.bin" % i, c)
        t_ack = time.time()
        deadline = t_ack + 60
        while not stored(b, ans, len(c)):
            if time.time() > deadline:
                break
            time.sleep(0.002)
        lags.append(time.time() - t_ack)
    lags.sort()
    res["lag_p50_ms"] = lags[len(lags) // 2] * 1e3
    res["lag_p99_ms"] = lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1e3
    res["big_mbps"] = big_file(kind, a, b)
    a.stop()
    b.stop()
    return res


def big_md5():
    md5 = hashlib.md5()
    with open(os.path.join(WORK, "big.bin"), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
    return md5.hexdigest()


def big_file(kind, a, b, md5=None):
    """The big file uploaded to A; MB/s from A's answer until B has it complete."""
    big = os.path.join(WORK, "big.bin")
    md5 = md5 or big_md5()
    out = subprocess.run(["curl", "-s", "-F", "file=@" + big, "-F", "output=json",
                          a.base + "/group1/upload"], capture_output=True, timeout=900)
    t_ack = time.time()
    ans = json.loads(out.stdout)
    if ans.get("md5") != md5:
        die("big upload to %s failed: %r" % (kind, out.stdout[:200]))
    deadline = t_ack + 900
    while not stored(b, ans, BIG) and time.time() < deadline:
        time.sleep(0.01)
    return BIG / (time.time() - t_ack) / 1e6 if stored(b, ans, BIG) else None


def sync_floor():
    """The floor of replicating the big file between two nodes on this machine, MB/s
    (bench/syncfloor.rs: sendfile over loopback, O_DIRECT writes, md5 in segments on every
    CPU, fdatasync, rename, directory fsync); its source on the sender's disk, out of the page
    cache as a file just uploaded to a node is. None without the tool."""
    if not os.path.isfile(FLOOR_BIN):
        return None
    src = os.path.join(WORK, "big.bin")
    if SENDER_DIR:
        os.makedirs(SENDER_DIR, exist_ok=True)
        src = os.path.join(SENDER_DIR, "floor-source.bin")
        if not os.path.exists(src):
            shutil.copyfile(os.path.join(WORK, "big.bin"), src)
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    out = subprocess.run([FLOOR_BIN, src, WORK], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        die("fastdfs-sync-floor failed: " + out.stderr[-500:])
    return float(out.stdout.split()[0])


def big_rounds(n):
    """--big-rounds N: only the big file, N rounds, each a fresh fastdfs-rs pair and the
    floor in turn (the order reversed every other round); prints each round and the ratios."""
    md5 = big_md5()
    ours, floors = [], []
    for r in range(n):
        for step in (("rs", "floor") if r % 2 == 0 else ("floor", "rs")):
            if step == "floor":
                floors.append(sync_floor())
                continue
            shutil.rmtree(os.path.join(WORK, "rs-big"), ignore_errors=True)
            if SENDER_DIR:
                shutil.rmtree(os.path.join(SENDER_DIR, "rs-big"), ignore_errors=True)
            ip_a, ip_b = IPS["rs"]
            a = Node("rs", "a", ip_a, ip_b, "-big")
            b = Node("rs", "b", ip_b, ip_a, "-big")
            a.start()
            b.start()
            try:
                ours.append(big_file("rs", a, b, md5))
            finally:
                a.stop()
                b.stop()
        print("round %d: fastdfs-rs %s MB/s, floor %s MB/s" % (
            r, fmt(ours[-1]), fmt(floors[-1])), flush=True)
    lines = ["# 1 GiB replication against its floor %s" % time.strftime("%Y-%m-%d %H:%M"), "",
             "Sender: %s. Receiver: %s." % (SENDER_DIR or WORK, WORK), "",
             "| round | fastdfs-rs MB/s | floor MB/s | ratio |", "|---|---|---|---|"]
    for r, (o, f) in enumerate(zip(ours, floors)):
        lines.append("| %d | %s | %s | %s |" % (r, fmt(o), fmt(f),
                                               "%.2f" % (o / f) if o and f else "n/a"))
    if all(ours) and all(floors):
        lines.append("| all | %.0f | %.0f | %.2f (worst round %.2f) |" % (
            sum(ours) / n, sum(floors) / n, sum(ours) / sum(floors),
            min(o / f for o, f in zip(ours, floors))))
    return "\n".join(lines) + "\n"


def limit(name, *args):
    """A physical limit measured by bench/helper.py (the same code bench/run.sh uses): its
    first number."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench/helper.py"), name]
                         + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    return float(out.stdout.split()[0])


def md5sum_speed():
    """One core's md5 rate over a stream, MB/s, as bench/run.sh measures it: `md5sum` of the
    big file from /dev/shm (memory, no disk); hashlib over an in-cache buffer where /dev/shm
    cannot hold it."""
    shm = "/dev/shm/fastdfs-sync-md5.%d" % os.getpid()
    try:
        shutil.copyfile(os.path.join(WORK, "big.bin"), shm)
        t0 = time.time()
        subprocess.run(["md5sum", shm], capture_output=True, check=True, timeout=600)
        return BIG / (time.time() - t0) / 1e6
    except (OSError, subprocess.SubprocessError):
        return md5_speed()
    finally:
        if os.path.exists(shm):
            os.remove(shm)


def md5_speed(seconds=2):
    buf, n, t0 = os.urandom(1 << 20), 0, time.time()
    h = hashlib.md5()
    while time.time() - t0 < seconds:
        h.update(buf)
        n += len(buf)
    return n / (time.time() - t0) / 1e6


def fsync_write_speed():
    """The fsync'd sequential write rate, MB/s: dd of the big file's size in 1 MiB blocks,
    oflag=direct conv=fsync (bench/run.sh's limit)."""
    path = os.path.join(WORK, "dd.test")
    out = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % (BIG >> 20),
                          "oflag=direct", "conv=fsync"], capture_output=True, text=True,
                         timeout=600).stderr
    os.remove(path)
    for line in out.splitlines():
        if "copied" in line:
            f = line.split()
            return float(f[0]) / float(f[-4]) / 1e6
    die("dd gave no rate: " + out)


def dd_rate(out):
    for line in out.splitlines():
        if "copied" in line:
            f = line.split()
            return float(f[0]) / float(f[-4]) / 1e6
    die("dd gave no rate: " + out)


def shared_disk_speed():
    """The rate one disk gives a replication between two nodes on it, MB/s: the big file read
    with O_DIRECT (the sender's direct reads, 2 MiB) while a file of its size is written with
    oflag=direct conv=fsync (the receiver's), both at once; the lesser of the two rates. Our
    nodes share this machine's one disk, as the benchmark runs them."""
    path = os.path.join(WORK, "dd.mixed")
    w = subprocess.Popen(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % (BIG >> 20),
                          "oflag=direct", "conv=fsync"], stderr=subprocess.PIPE, text=True)
    r = subprocess.run(["dd", "if=" + os.path.join(WORK, "big.bin"), "of=/dev/null", "bs=2M",
                        "iflag=direct"], capture_output=True, text=True, timeout=600).stderr
    wout = w.communicate(timeout=600)[1]
    os.remove(path)
    return min(dd_rate(r), dd_rate(wout))


def fmt(v, f="%.0f"):
    return "n/a" if v is None else f % v


def main():
    if not os.path.isfile(RS_BIN):
        die("build first: cargo build --release (%s missing)" % RS_BIN)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    if SENDER_DIR:
        shutil.rmtree(SENDER_DIR, ignore_errors=True)
    with open(os.path.join(WORK, "big.bin"), "wb") as f:
        for _ in range(BIG >> 20):
            f.write(os.urandom(1 << 20))
    if BIG_ROUNDS:
        try:
            text = big_rounds(BIG_ROUNDS)
        finally:
            cleanup()
        report(text, "sync-big")
        return
    limits = {"tcp_mbps": limit("tcp_blast", 3),
              "creates": limit("durable_creates", os.path.join(WORK, "fsync"), 3),
              "md5_mbps": md5sum_speed(),
              "fsync_mbps": fsync_write_speed(),
              "shared_mbps": shared_disk_speed(),
              "floor_mbps": max((sync_floor() or 0) for _ in range(3)) or None}
    results = {}
    kinds = ["rs", "go"] if os.path.isfile(GO_BIN) else ["rs"]
    try:
        results = live_rounds(kinds)
        for k in kinds:
            ip_a, ip_b = IPS[k]
            results[k].update(bench_pair(k, Node(k, "a", ip_a, ip_b), Node(k, "b", ip_b, ip_a)))
    finally:
        cleanup()
    rs, go = results["rs"], results.get("go", {})

    def ratio(k, inverse=False):
        a, b = rs.get(k), go.get(k)
        if not a or not b:
            return "n/a"
        return "%.2fx" % ((b / a) if inverse else (a / b))

    lines = [
        "# Sync benchmark %s%s" % (time.strftime("%Y-%m-%d %H:%M"), " (quick)" if QUICK else ""),
        "",
        "%d files of 4 KiB, %d MiB big file, %d lag samples; A -> B on loopback." % (
            N_FILES, BIG >> 20, LAG_SAMPLES),
        "",
        "| measure | fastdfs-rs | go-fastdfs | rs/go |",
        "|---|---|---|---|",
        "| live 4 KiB, files/s replicated (incl. upload) | %s | %s | %s |" % (
            fmt(rs.get("live_fps")), fmt(go.get("live_fps")), ratio("live_fps")),
        "| of which the uploads to A alone, files/s | %s | %s | %s |" % (
            fmt(rs.get("upload_fps")), fmt(go.get("upload_fps")), ratio("upload_fps")),
        "| live 4 KiB, CPU of both nodes per file, us | %s | %s | %s |" % (
            fmt(rs.get("live_cpu_us")), fmt(go.get("live_cpu_us")), ratio("live_cpu_us", True)),
        "| live 4 KiB, files/s per round (alternating servers) | %s | %s | |" % (
            " / ".join(fmt(v) for v in rs.get("live_rounds", [])),
            " / ".join(fmt(v) for v in go.get("live_rounds", []))),
        "| catch-up 4 KiB after B restarts, files/s | %s | never (gives up, retries every 30 min) | |" % (
            fmt(rs.get("catchup_fps"))),
        "| 1 file of %d MiB, MB/s A-ack to B-has | %s | %s | %s |" % (
            BIG >> 20, fmt(rs.get("big_mbps")), fmt(go.get("big_mbps")), ratio("big_mbps")),
        "| lag p50, ms | %s | %s | %s |" % (
            fmt(rs.get("lag_p50_ms"), "%.1f"), fmt(go.get("lag_p50_ms"), "%.1f"),
            ratio("lag_p50_ms", True)),
        "| lag p99, ms | %s | %s | %s |" % (
            fmt(rs.get("lag_p99_ms"), "%.1f"), fmt(go.get("lag_p99_ms"), "%.1f"),
            ratio("lag_p99_ms", True)),
        "",
        "Limits measured in the same run: loopback TCP %.0f MB/s, md5 %.0f MB/s (md5sum), fsync'd "
        "sequential write %.0f MB/s (dd, %d MiB). The big file's sync = %.2f of the fsync'd "
        "write rate and %.2f of the md5 rate (fastdfs-rs verifies the md5 of every fetched "
        "file and fsyncs it; go-fastdfs checks only the size and never fsyncs). Both nodes share "
        "one disk here: its direct read and fsync'd write at once give %.0f MB/s (the lesser; "
        "dd, %d MiB each), and the big file's sync = %.2f of that. Durable 4 KiB "
        "creates %.0f/s (catch-up = %.2f of it). The floor of the big file's replication on "
        "this machine (bench/syncfloor.rs: sendfile, O_DIRECT writes, md5 in segments on every "
        "CPU, fsyncs; best of 3) %s MB/s: the big file's sync = %s of it." % (
            limits["tcp_mbps"], limits["md5_mbps"], limits["fsync_mbps"], BIG >> 20,
            (rs.get("big_mbps") or 0) / limits["fsync_mbps"],
            (rs.get("big_mbps") or 0) / limits["md5_mbps"],
            limits["shared_mbps"], BIG >> 20,
            (rs.get("big_mbps") or 0) / limits["shared_mbps"],
            limits["creates"], (rs.get("catchup_fps") or 0) / limits["creates"],
            fmt(limits["floor_mbps"]),
            "%.2f" % (rs["big_mbps"] / limits["floor_mbps"])
            if rs.get("big_mbps") and limits["floor_mbps"] else "n/a"),
        "(rs/go > 1 is better for fastdfs-rs in every row: for lag it is go's lag / ours.)",
    ]
    report("\n".join(lines) + "\n", "sync")


def report(text, name):
    """Prints the report, saves it as bench/results/<name>-<timestamp>.md and removes the
    work dirs."""
    print(text)
    out = os.path.join(ROOT, "bench/results", "%s-%s.md" % (name, time.strftime("%Y%m%d-%H%M%S")))
    with open(out, "w") as f:
        f.write(text)
    shutil.rmtree(WORK, ignore_errors=True)
    if SENDER_DIR:
        shutil.rmtree(SENDER_DIR, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
