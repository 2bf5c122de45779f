#!/usr/bin/env python3
"""A/B of replication: fastdfs-rs binaries as A -> B pairs, in alternating rounds.

    python3 bench/ab_sync.py [--files N] [--rounds R] BIN [BIN]

Per round and binary, on a fresh pair (`workers: 1`, bench/sync.py's nodes and config):
  * live: N files of 4 KiB uploaded to A by 8 clients while B is up; files/s until B has all,
    the uploads' own files/s, and the CPU per file of A and of B (user + system from
    /proc/PID/stat, io_uring workers included) over that span;
  * catch-up: B stopped, N more files uploaded to A, B started; files/s from B's start until
    B has all, and the CPU per file of A (its push) and of B (its receive) over that span.
Rounds take the binaries in turn, the order reversed every other round. CPU per file is the
steadier figure on a shared machine; rates move with the disk's state from round to round.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_argv, sys.argv = sys.argv, ["sync.py"]
import sync as S  # noqa: E402  (Node, files, upload_all, wait_count, cpu_seconds, cleanup)

sys.argv = _argv


def one(binary, n, tag):
    S.RS_BIN = binary
    shutil.rmtree(os.path.join(S.WORK, "rs-ab"), ignore_errors=True)
    a = S.Node("rs", "a", "127.0.0.61", "127.0.0.71", "-ab")
    b = S.Node("rs", "b", "127.0.0.71", "127.0.0.61", "-ab")
    a.start()
    b.start()
    try:
        ca, cb = S.cpu_seconds(a.proc), S.cpu_seconds(b.proc)
        t0 = time.time()
        S.upload_all(a.base, S.files(n, tag))
        t_up = time.time()
        t1 = S.wait_count(b.base, n, 600)
        ca, cb = S.cpu_seconds(a.proc) - ca, S.cpu_seconds(b.proc) - cb
        b.stop()
        S.upload_all(a.base, S.files(n, tag + "-c"))
        ca2 = S.cpu_seconds(a.proc)
        t2 = time.time()
        b.start()
        t3 = S.wait_count(b.base, 2 * n, 600)
        ca2, cb2 = S.cpu_seconds(a.proc) - ca2, S.cpu_seconds(b.proc)
    finally:
        a.stop()
        b.stop()
    per = lambda s: s / n * 1e6  # noqa: E731
    return {
        "live/s": n / (t1 - t0) if t1 else 0, "upload/s": n / (t_up - t0),
        "live cpu A us": per(ca), "live cpu B us": per(cb),
        "catchup/s": n / (t3 - t2) if t3 else 0,
        "catchup cpu A us": per(ca2), "catchup cpu B us": per(cb2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("bins", nargs="+")
    args = ap.parse_args()
    os.makedirs(S.WORK, exist_ok=True)
    results = {b: [] for b in args.bins}
    for r in range(args.rounds):
        order = args.bins if r % 2 == 0 else args.bins[::-1]
        for b in order:
            res = one(b, args.files, "ab%d-%d" % (r, args.bins.index(b)))
            results[b].append(res)
            print("round %d %s: %s" % (r, b, "  ".join("%s %.0f" % kv for kv in res.items())),
                  flush=True)
    print()
    for b, rounds in results.items():
        keys = rounds[0].keys()
        med = {k: sorted(x[k] for x in rounds)[len(rounds) // 2] for k in keys}
        print("median %s: %s" % (b, "  ".join("%s %.0f" % kv for kv in med.items())))


if __name__ == "__main__":
    try:
        main()
    finally:
        S.cleanup()
