#!/usr/bin/env python3
"""Small helpers for bench/run.sh (stdlib only).

Sub-commands:
  gen DIR COUNT SIZE [PREFIX]     write COUNT files of SIZE random bytes (<PREFIX>00000.bin ...)
  upload URL DIR OUT [CONC]       upload every file of DIR (multipart `file` + output=json)
                                  through URL with keep-alive connections; write the returned
                                  download paths (one per line) to OUT; verify one by GET
  jsonpath FILE                   print the "path" field of an upload response (json/json2)
  go-cfg OUT PORT [EXTRA_JSON]    write a full go-fastdfs style cfg.json
  sampler OUT PID [PID...]        every 100 ms append "<epoch> <sum VmRSS kB>" to OUT until all
                                  PIDs are gone (or SIGTERM)
  rss-max FILE T0 T1              max RSS (kB) sampled in [T0, T1] (epoch seconds)
  rss-now PID [PID...]            current summed VmRSS in kB
  cputime PID [PID...]            summed utime+stime of the processes in seconds
  busy CPU [CPU...]               "<user+nice+system s> <steal s> <epoch>" summed over the CPUs
  durable-creates DIR SECONDS     write+fsync+rename+dir-fsync loop of 4 KiB files -> files/s
                                  and the CPU µs per file the two fsyncs add
  tcp-blast SECONDS               fallback loopback TCP throughput (MB/s) when iperf3 is missing
  download-ratios FILE KIND       from run.sh's logs/downloads.tsv: fastdfs-rs / nginx over all
                                  transfers of KIND, and the worst back-to-back pair of them
  report RESULTS.tsv              render the markdown result tables
"""
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse


def die(msg, code=1):
    sys.stderr.write(msg + "\n")
    sys.exit(code)


# ---------------------------------------------------------------- data generation
def cmd_gen(d, count, size, prefix="f"):
    count, size = int(count), int(size)
    os.makedirs(d, exist_ok=True)
    for i in range(count):
        with open(os.path.join(d, "%s%05d.bin" % (prefix, i)), "wb") as f:
            f.write(os.urandom(size))


# ---------------------------------------------------------------- uploads
BOUNDARY = "----fastdfsbench7f3a9c2e61b04d58"


def multipart(name, content):
    head = (
        "--%s\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n"
        "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n" % (BOUNDARY, BOUNDARY, name)
    ).encode()
    tail = ("\r\n--%s--\r\n" % BOUNDARY).encode()
    return head + content + tail


def extract_path(body):
    try:
        j = json.loads(body)
    except Exception:
        return None
    if isinstance(j, dict) and isinstance(j.get("data"), dict):
        j = j["data"]
    if isinstance(j, dict) and j.get("path") and j.get("md5"):
        return j["path"]
    return None


def cmd_upload(url, d, out, conc="4"):
    conc = int(conc)
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 80
    names = sorted(os.listdir(d))
    results = [None] * len(names)
    errors = []
    lock = threading.Lock()
    idx = [0]

    def worker():
        conn = None
        while True:
            with lock:
                if idx[0] >= len(names) or errors:
                    break
                i = idx[0]
                idx[0] += 1
            with open(os.path.join(d, names[i]), "rb") as f:
                content = f.read()
            body = multipart(names[i], content)
            hdrs = {"Content-Type": "multipart/form-data; boundary=" + BOUNDARY}
            last = None
            for _attempt in range(2):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(host, port, timeout=30)
                    conn.request("POST", u.path, body=body, headers=hdrs)
                    r = conn.getresponse()
                    rb = r.read()
                    if r.status != 200:
                        last = "HTTP %d: %r" % (r.status, rb[:200])
                        break
                    p = extract_path(rb)
                    if not p:
                        last = "bad response: %r" % rb[:300]
                        break
                    results[i] = p
                    last = None
                    break
                except Exception as e:  # closed keep-alive connection: retry once on a new one
                    last = "%s: %s" % (type(e).__name__, e)
                    if isinstance(e, socket.timeout):
                        break
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
            if last:
                with lock:
                    errors.append("%s: %s" % (names[i], last))
        if conn is not None:
            conn.close()

    t0 = time.time()
    ths = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    el = time.time() - t0
    if errors:
        die("upload: %d errors, first: %s" % (len(errors), errors[0]))
    paths = [p for p in results if p]
    if len(paths) != len(names) or len(set(paths)) != len(paths):
        die("upload: got %d distinct paths for %d files" % (len(set(paths)), len(names)))
    # verify the first and the last file round-trip
    for i in (0, len(names) - 1):
        c = http.client.HTTPConnection(host, port, timeout=30)
        c.request("GET", urllib.parse.quote(paths[i], safe="/?=&"))
        r = c.getresponse()
        b = r.read()
        c.close()
        want = open(os.path.join(d, names[i]), "rb").read()
        if r.status != 200 or hashlib.md5(b).digest() != hashlib.md5(want).digest():
            die("upload: verification GET %s failed (HTTP %d, %d bytes, want %d)"
                % (paths[i], r.status, len(b), len(want)))
    with open(out, "w") as f:
        for p in paths:
            f.write(p + "\n")
    sys.stderr.write("uploaded %d files in %.1fs (%.0f files/s, %d connections)\n"
                     % (len(paths), el, len(paths) / el, conc))


def cmd_jsonpath(fn):
    p = extract_path(open(fn, "rb").read())
    if not p:
        die("no path in response %s" % fn)
    print(p)


# ---------------------------------------------------------------- configuration
GO_CFG = {
    "addr": ":8080",
    "enable_https": False,
    "peer_id": "1",
    "host": "http://127.0.0.1:8080",
    "peers": [],
    "group": "group1",
    "support_group_manage": True,
    "enable_merge_small_file": False,
    "enable_image_resize": True,
    "image_max_width": 2000,
    "image_max_height": 1000,
    "extensions": [],
    "refresh_interval": 1800,
    "enable_trim_file_name_special_char": True,
    "rename_file": False,
    "enable_web_upload": True,
    "enable_pprof_debug": False,
    "enable_custom_path": True,
    "download_domain": "",
    "scenes": [],
    "default_scene": "default",
    "show_dir": True,
    "mail": {"user": "abc@163.com", "password": "abc", "host": "smtp.163.com:25"},
    "proxies": [],
    "alarm_receivers": [],
    "alarm_url": "",
    "download_use_token": False,
    "download_token_expire": 600,
    "auto_repair": False,
    "file_sum_arithmetic": "md5",
    "admin_key": "bench-admin-key-0000000000000000",
    "admin_ips": ["127.0.0.1"],
    "enable_migrate": False,
    "enable_distinct_file": True,
    "enable_cross_origin": True,
    "enable_google_auth": False,
    "auth_url": "",
    "enable_download_auth": False,
    "default_download": True,
    "read_only": False,
    "enable_tus": False,
    "sync_timeout": 0,
}


def cmd_go_cfg(out, port, extra="{}"):
    cfg = dict(GO_CFG)
    cfg["addr"] = "127.0.0.1:%s" % port
    cfg["host"] = "http://127.0.0.1:%s" % port
    cfg.update(json.loads(extra))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- /proc sampling
def rss_kb(pid):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def cputime(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0.0
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime = field 14, stime = field 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmd_sampler(out, *pids):
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    with open(out, "a", buffering=1) as f:
        while not stop[0]:
            vals = [rss_kb(p) for p in pids]
            if all(v is None for v in vals):
                break
            f.write("%.3f %d\n" % (time.time(), sum(v for v in vals if v)))
            time.sleep(0.1)


def cmd_rss_max(fn, t0, t1):
    t0, t1 = float(t0), float(t1)
    m = 0
    try:
        for line in open(fn):
            p = line.split()
            if len(p) == 2 and t0 <= float(p[0]) <= t1:
                m = max(m, int(p[1]))
    except OSError:
        pass
    print(m)


def cmd_rss_now(*pids):
    print(sum(rss_kb(p) or 0 for p in pids))


def cmd_busy(*cpus):
    """summed user+nice+system and steal seconds of the given CPUs, and the time."""
    busy = steal = 0
    want = {"cpu%s" % c for c in cpus}
    for line in open("/proc/stat"):
        p = line.split()
        if p and p[0] in want:
            v = [int(x) for x in p[1:]]
            busy += v[0] + v[1] + v[2]
            steal += v[7] if len(v) > 7 else 0
    hz = os.sysconf("SC_CLK_TCK")
    print("%.3f %.3f %.3f" % (busy / hz, steal / hz, time.time()))


def cmd_cputime(*pids):
    print("%.3f" % sum(cputime(p) for p in pids))


# ---------------------------------------------------------------- physical limits
def cmd_durable_creates(d, seconds):
    """Prints durable creates/s and the CPU (µs) that durability adds to a create: the same
    loop without the two fsyncs is timed too, and the difference of CPU per file is what a
    server that makes every upload durable pays beyond one that does not (nginx)."""
    seconds = float(seconds)
    os.makedirs(d, exist_ok=True)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    data = os.urandom(4096)

    def loop(tag, durable):
        n = 0
        c0 = os.times()
        t0 = time.time()
        while time.time() - t0 < seconds:
            tmp = os.path.join(d, ".tmp%s%d" % (tag, n))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            if durable:
                os.fsync(fd)
            os.close(fd)
            os.rename(tmp, os.path.join(d, "%s%d" % (tag, n)))
            if durable:
                os.fsync(dfd)
            n += 1
        el = time.time() - t0
        c1 = os.times()
        cpu = (c1.user - c0.user) + (c1.system - c0.system)
        return n / el, cpu / max(n, 1) * 1e6

    rate, durable_us = loop("f", True)
    _, plain_us = loop("p", False)
    os.close(dfd)
    print("%.0f %.1f" % (rate, max(0.0, durable_us - plain_us)))


def cmd_download_ratios(fn, kind):
    """Prints "<all>,<worst pair>": fastdfs-rs / nginx over every transfer of KIND (each
    carries the same bytes, so the rate over all of them is the harmonic mean), and the worst
    ratio of neighbouring rs and nginx transfers (the order has them back to back); "" for
    one that cannot be computed."""
    rows = [l.rstrip("\n").split("\t") for l in open(fn)][1:]
    seq = [(r[1], float(r[3])) for r in rows if r[2] == kind and r[1] in ("rs", "nginx")]
    rate = {}
    for srv in ("rs", "nginx"):
        v = [x for s, x in seq if s == srv]
        rate[srv] = len(v) / sum(1 / x for x in v) if v and all(v) else 0
    pairs = [a[1] / b[1] if a[0] == "rs" else b[1] / a[1]
             for a, b in zip(seq, seq[1:]) if {a[0], b[0]} == {"rs", "nginx"}]
    whole = repr(rate["rs"] / rate["nginx"]) if rate["nginx"] else ""
    worst = repr(min(pairs)) if pairs else ""
    print("%s,%s" % (whole, worst))


def cmd_tcp_blast(seconds):
    seconds = float(seconds)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    total = [0]

    def sink():
        c, _ = srv.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            total[0] += len(b)
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    c = socket.create_connection(("127.0.0.1", port))
    buf = b"\0" * (1 << 20)
    t0 = time.time()
    while time.time() - t0 < seconds:
        c.sendall(buf)
    c.close()
    t.join()
    print("%.0f" % (total[0] / (time.time() - t0) / 1e6))


# ---------------------------------------------------------------- report
SERVERS = [("nginx", "nginx"), ("go", "go-fastdfs"), ("rs", "fastdfs-rs")]

# (key, label, unit, fmt, ratio vs nginx?, limit key, limit label)
ROWS = [
    ("h", "GET 4 KiB random files ({n4k} files, wrk -t1 -c64, mean of {getrounds} rounds, servers alternating)"),
    ("get4k_rps", "requests/s", "higher better", "{:,.0f}", True, None),
    ("get4k_p99", "p99 latency ms", "lower better", "{:.2f}", True, None),
    ("get4k_cpu_us", "server CPU µs/request", "lower better", "{:.1f}", True, "floor4k"),
    ("get4k_cpu_pct", "server CPU % of one core", "", "{:.0f}", False, None),
    ("get4k_wrk_pct", "wrk CPU % of one core", "", "{:.0f}", False, None),
    ("get4k_noise_pct", "noise: other CPU use on both cores, % of one core", "", "{:.0f}", False, None),
    ("get4k_steal_pct", "noise: hypervisor steal on both cores, % of one core", "", "{:.0f}", False, None),
    ("get4k_err", "errors (socket + non-2xx)", "", "{:.0f}", False, None),
    ("h", "GET 64 KiB random files ({n64k} files, wrk -t1 -c64, mean of {getrounds} rounds, servers alternating)"),
    ("get64k_rps", "requests/s", "higher better", "{:,.0f}", True, None),
    ("get64k_mbs", "MB/s", "higher better", "{:,.0f}", True, "tcp"),
    ("get64k_p99", "p99 latency ms", "lower better", "{:.2f}", True, None),
    ("get64k_cpu_us", "server CPU µs/request", "lower better", "{:.1f}", True, "floor64k"),
    ("get64k_cpu_pct", "server CPU % of one core", "", "{:.0f}", False, None),
    ("get64k_wrk_pct", "wrk CPU % of one core", "", "{:.0f}", False, None),
    ("get64k_noise_pct", "noise: other CPU use on both cores, % of one core", "", "{:.0f}", False, None),
    ("get64k_steal_pct", "noise: hypervisor steal on both cores, % of one core", "", "{:.0f}", False, None),
    ("get64k_err", "errors (socket + non-2xx)", "", "{:.0f}", False, None),
    ("h", "GET 256 KiB random files ({n256k} files, wrk -t1 -c64, mean of {getrounds} rounds, servers alternating)"),
    ("get256k_rps", "requests/s", "higher better", "{:,.0f}", True, None),
    ("get256k_mbs", "MB/s", "higher better", "{:,.0f}", True, "tcp"),
    ("get256k_p99", "p99 latency ms", "lower better", "{:.2f}", True, None),
    ("get256k_cpu_us", "server CPU µs/request", "lower better", "{:.1f}", True, "floor256k"),
    ("get256k_cpu_pct", "server CPU % of one core", "", "{:.0f}", False, None),
    ("get256k_wrk_pct", "wrk CPU % of one core", "", "{:.0f}", False, None),
    ("get256k_noise_pct", "noise: other CPU use on both cores, % of one core", "", "{:.0f}", False, None),
    ("get256k_steal_pct", "noise: hypervisor steal on both cores, % of one core", "", "{:.0f}", False, None),
    ("get256k_err", "errors (socket + non-2xx)", "", "{:.0f}", False, None),
    ("h", "Single-stream download of a {bigsize} file (curl, {dlruns} rounds of {dlreps} transfers per server and kind, servers in palindromic order; a round's rate is its bytes over its time)"),
    ("dl_best", "best MB/s", "higher better", "{:,.0f}", True, ("floorbig", "tcp", "pagecache")),
    ("dl_median", "median MB/s", "higher better", "{:,.0f}", True, None),
    ("dl_cpu_s", "server CPU s per download", "lower better", "{:.2f}", True, None),
    ("dl_range_best", "Range resume of the second half (curl -r N-), best MB/s", "higher better",
     "{:,.0f}", True, "tcp"),
    ("dl_range_median", "Range resume, median MB/s", "higher better", "{:,.0f}", True, None),
    ("dl_wget_best", "wget -c finishing a half-downloaded file, best MB/s (wall clock, wget writes the file)",
     "higher better", "{:,.0f}", True, None),
    ("dl_worst_full", "worst round's fastdfs-rs / nginx: whole download", "", "{:.2f}", False, None),
    ("dl_worst_range", "worst round's fastdfs-rs / nginx: Range resume", "", "{:.2f}", False, None),
    ("dl_worst_wget", "worst round's fastdfs-rs / nginx: wget -c", "", "{:.2f}", False, None),
    ("dl_all_full", "all rounds' transfers together, fastdfs-rs / nginx: whole download", "", "{:.2f}", False, None),
    ("dl_all_range", "all rounds' transfers together: Range resume", "", "{:.2f}", False, None),
    ("dl_all_wget", "all rounds' transfers together: wget -c", "", "{:.2f}", False, None),
    ("dl_worst_floor", "worst round's server / the floor (bench/floor.rs sending the file with sendfile, same rounds): whole download", "", "{:.2f}", False, None),
    ("dl_worst1_full", "worst single back-to-back pair's fastdfs-rs / nginx: whole download", "", "{:.2f}", False, None),
    ("dl_worst1_range", "worst single pair's fastdfs-rs / nginx: Range resume", "", "{:.2f}", False, None),
    ("dl_worst1_wget", "worst single pair's fastdfs-rs / nginx: wget -c", "", "{:.2f}", False, None),
    ("h", "Upload 4 KiB files, distinct content (wrk -t1 -c{upc4k}, mean of {uprounds} rounds, the servers' order reversed every other round)"),
    ("up4k_fps", "files/s", "higher better", "{:,.0f}", False, "creates"),
    ("up4k_p99", "p99 latency ms", "lower better", "{:.1f}", False, None),
    ("up4k_cpu_us", "server CPU µs/upload (nginx: WebDAV PUT, no fsync)", "lower better",
     "{:.0f}", True, ("nginx+sync_cpu", "nginx+sync_cpu+md5")),
    ("up4k_cpu_pct", "server CPU % of one core", "", "{:.0f}", False, None),
    ("up4k_wrk_pct", "wrk CPU % of one core", "", "{:.0f}", False, None),
    ("up4k_noise_pct", "noise: other CPU use on both cores, % of one core", "", "{:.0f}", False, None),
    ("up4k_steal_pct", "noise: hypervisor steal on both cores, % of one core", "", "{:.0f}", False, None),
    ("up4k_err", "errors (socket + non-2xx + bad body)", "", "{:.0f}", False, None),
    ("h", "Upload 1 MiB files, distinct content (wrk -t1 -c{upc1m}, mean of {uprounds} rounds, the servers' order reversed every other round)"),
    ("up1m_fps", "files/s", "higher better", "{:,.1f}", False, None),
    ("up1m_mbs", "MB/s", "higher better", "{:,.0f}", False, ("fsync", "md5")),
    ("up1m_p99", "p99 latency ms", "lower better", "{:.0f}", False, None),
    ("up1m_cpu_us", "server CPU µs/upload", "lower better", "{:.0f}", False, None),
    ("up1m_cpu_pct", "server CPU % of one core", "", "{:.0f}", False, None),
    ("up1m_wrk_pct", "wrk CPU % of one core", "", "{:.0f}", False, None),
    ("up1m_noise_pct", "noise: other CPU use on both cores, % of one core", "", "{:.0f}", False, None),
    ("up1m_steal_pct", "noise: hypervisor steal on both cores, % of one core", "", "{:.0f}", False, None),
    ("up1m_err", "errors (socket + non-2xx + bad body)", "", "{:.0f}", False, None),
    ("h", "Single upload of the {bigsize} file (setup step, curl -F, 1 request)"),
    ("upbig_mbs", "MB/s", "higher better", "{:,.0f}", False, ("fsync", "md5")),
    ("h", "Memory (VmRSS, sampled every 100 ms)"),
    ("rss_idle", "idle after start MiB", "lower better", "{:.1f}", True, None),
    ("rss_get", "peak during GET loads MiB", "lower better", "{:.1f}", True, None),
    ("rss_up", "peak during wrk uploads MiB", "lower better", "{:.1f}", False, None),
    ("rss_big", "peak during the {bigsize} upload MiB", "lower better", "{:.1f}", False, None),
]

LIMITS = [
    ("md5", "md5 (md5sum of an in-RAM file, 1 core)", "MB/s"),
    ("fsync", "fsync'ed sequential write (dd oflag=direct conv=fsync, bs=1M)", "MB/s"),
    ("creates", "durable 4 KiB file creations (write+fsync+rename+dir fsync)", "files/s"),
    ("sync_cpu", "CPU those two fsyncs add to a 4 KiB file's creation, 1 at a time", "µs"),
    ("pagecache", "page-cache read (dd of a cached file to /dev/null, bs=1M)", "MB/s"),
    ("tcp", "loopback TCP, 1 stream ({tcptool})", "MB/s"),
    ("floor4k", "the floor of a 4 KiB GET: CPU per request of bench/floor.rs (one recv, one send "
     "of an answer in memory) under the same wrk load, mean of the rounds", "µs"),
    ("floor64k", "the floor of a 64 KiB GET, likewise", "µs"),
    ("floor256k", "the floor of a 256 KiB GET, likewise", "µs"),
    ("floorbig", "the floor of the big download: bench/floor.rs sending the same file with "
     "sendfile to the same curl, in the same rounds, best MB/s", "MB/s"),
]


def fnum(fmt, v):
    try:
        return fmt.format(float(v))
    except (TypeError, ValueError):
        return str(v)


def ratio(a, b):
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return ""
    if b == 0:
        return ""
    return "%.2f" % (a / b)


class _Meta(dict):
    def __missing__(self, k):
        return "?"


def cmd_report(fn):
    res, meta, rounds = {}, _Meta(), {}
    for line in open(fn):
        p = line.rstrip("\n").split("\t")
        if len(p) != 3:
            continue
        srv, k, v = p
        if srv == "meta":
            meta[k] = v
        else:
            rounds.setdefault((srv, k), []).append(v)
    # A workload run in several rounds puts each round's value: errors add up, the rest is
    # the mean of the rounds.
    for key, vs in rounds.items():
        try:
            nums = [float(x) for x in vs]
        except ValueError:
            res[key] = vs[-1]
            continue
        total = sum(nums)
        res[key] = repr(total if key[1].endswith("_err") else total / len(nums))
    # The floor (bench/floor.rs) ran the GET workloads as a server: its CPU per request is a
    # limit of the run.
    for tag in ("4k", "64k", "256k"):
        if ("floor", "get%s_cpu_us" % tag) in res:
            res[("limit", "floor" + tag)] = res[("floor", "get%s_cpu_us" % tag)]
    if ("floor", "dl_best") in res:
        res[("limit", "floorbig")] = res[("floor", "dl_best")]
    out = []
    w = out.append
    w("# fastdfs-rs benchmark %s" % meta.get("timestamp", ""))
    w("")
    w("Host: %s, %s CPUs, kernel %s. Servers pinned to CPU 0, load generators to CPU 1. Mode: %s. "
      "Runtime dirs on %s (%s). nice %s. Load average at start: %s."
      % (meta.get("host", "?"), meta.get("ncpu", "?"), meta.get("kernel", "?"),
         meta.get("mode", "?"), meta.get("workdir", "?"), meta.get("fstype", "?"),
         meta.get("nice", "?"), meta.get("loadavg", "?")))
    if meta.get("rs_binary"):
        w("")
        w("fastdfs-rs binary: %s" % meta["rs_binary"])
    w("")
    status = [(lbl, meta.get("status_" + k)) for k, lbl in SERVERS if meta.get("status_" + k)]
    if status:
        w("Server status: " + "; ".join("**%s**: %s" % s for s in status))
        w("")
    if any(k[0] == "limit" for k in res):
        w("## Physical limits (same run)")
        w("")
        w("| limit | value |")
        w("|---|---:|")
        for k, label, unit in LIMITS:
            v = res.get(("limit", k))
            w("| %s | %s %s |" % (label.format_map(meta),
                                    fnum("{:.1f}" if unit == "µs" else "{:,.0f}", v)
                                    if v is not None else "n/a", unit))
        w("")
    w("## Servers")
    w("")
    w("| workload / metric | nginx | go-fastdfs | fastdfs-rs | rs / go | rs / nginx | rs / limit |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    pending_title = None
    for row in ROWS:
        if row[0] == "h":
            pending_title = row[1].format_map(meta)
            continue
        key, label, better, fmt, vs_nginx, limit = row
        vals = {s: res.get((s, key)) for s, _ in SERVERS}
        if all(v is None for v in vals.values()):
            continue
        if pending_title:
            w("| **%s** | | | | | | |" % pending_title)
            pending_title = None
        cells = [fnum(fmt, vals[s]) if vals[s] is not None else "–" for s, _ in SERVERS]
        r_go = ratio(vals["rs"], vals["go"]) if better else ""
        r_ng = ratio(vals["rs"], vals["nginx"]) if vs_nginx and better else ""
        lims = (limit,) if isinstance(limit, str) else (limit or ())

        def floor(l):
            # "nginx+sync_cpu": nginx's figure plus what durability adds (the CPU floor of a
            # durable upload, when nginx's own upload makes nothing durable).
            # "+md5": and the md5 of the file's 4 KiB at one core's md5 rate (the answer and
            # the dedup index need it; nginx computes none).
            if l in ("nginx+sync_cpu", "nginx+sync_cpu+md5"):
                try:
                    f = float(vals["nginx"]) + float(res.get(("limit", "sync_cpu")))
                    if l.endswith("+md5"):
                        f += 4096 / float(res.get(("limit", "md5")))
                    return f
                except (TypeError, ValueError, ZeroDivisionError):
                    return None
            return res.get(("limit", l))
        r_lim = ", ".join("%s of %s" % (ratio(vals["rs"], floor(l)), l)
                          for l in lims if ratio(vals["rs"], floor(l)))
        label = label.format_map(meta)
        lab = label + (" (%s)" % better if better else "")
        w("| %s | %s | %s | %s | %s | %s | %s |" % (lab, *cells, r_go, r_ng, r_lim))
    w("")
    # go vs limits, useful when rs is missing
    go_lims = []
    for key, lim in (("up4k_fps", "creates"), ("up1m_mbs", "fsync"), ("up1m_mbs", "md5"),
                     ("dl_best", "tcp")):
        rl = ratio(res.get(("go", key)), res.get(("limit", lim)))
        if rl:
            go_lims.append("%s/%s = %s" % (key, lim, rl))
    if go_lims:
        w("go-fastdfs vs limits (it never fsyncs): " + ", ".join(go_lims))
        w("")
    w("Ratios are fastdfs-rs divided by the other column; for metrics marked "
      "\"lower better\" a ratio < 1 favours fastdfs-rs. \"rs / limit\" divides by the physical "
      "limit named after \"of\" (see the first table). The durable-create limit is one "
      "create+fsync at a time; a server that batches fsyncs (group commit) can exceed it. "
      "\"nginx+sync_cpu\" is nginx's CPU per WebDAV PUT (which makes nothing durable) plus "
      "the CPU the fsyncs of one durable create take: the floor for a durable upload; "
      "\"+md5\" adds the md5 of 4 KiB at the md5 limit's rate (a go-fastdfs upload's answer "
      "carries the file's md5). "
      "MB = 10^6 bytes.")
    notes = [n for n in meta.get("notes", "").split(" || ") if n]
    for srv, lbl in SERVERS:
        for tag in ("get4k", "get64k", "get256k", "up4k", "up1m"):
            try:
                wp = float(res.get((srv, tag + "_wrk_pct")))
            except (TypeError, ValueError):
                continue
            if wp >= 90:
                notes.append("%s %s: wrk's core was %.0f%% busy, so the request rate is a lower "
                             "bound for the server; compare server CPU µs/request instead."
                             % (lbl, tag, wp))
    if notes:
        w("")
        w("Notes:")
        for n in notes:
            w("- " + n)
    print("\n".join(out))


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd = sys.argv[1].replace("-", "_")
    fn = globals().get("cmd_" + cmd)
    if not fn:
        die(__doc__)
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
