#!/usr/bin/env python3
"""boto3 against fastdfs-rs' S3 listener: one scenario per run, driven by tests/s3.rs.

    python3 tests/support/s3_boto3.py SCENARIO --endpoint http://127.0.0.1:PORT --key AK:SK \
        [--limited AK:SK --allowed BUCKET] [--readonly AK:SK] [--bucket NAME] [--file PATH] \
        [--phase 1|2]

A scenario makes its requests with boto3 (path-style, SigV4, us-east-1; the HTTP calls of
presigned URLs with http.client) and prints one JSON object on stdout: what it observed
(HTTP statuses with S3 error codes as [status, code], ETags, digests, listings...) next to
what it expected where only the client knows it (`want_*`, e.g. the md5 of the bytes it
sent). tests/s3.rs asserts on that object. A scenario exits 1 with a message on stderr only
when it cannot go on: a request that had to succeed failed.

Scenarios: buckets, objects, bad_keys, conditionals, listing, delete_objects, copy, multipart,
resume (--phase 1 then 2), presigned, auth, anonymous, put (--file), get, big (--file),
checksums, subresources, conditional_writes, part_copy, details, sigv2.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import signal
import sys
import time
import urllib.parse

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
STEP = ["starting"]


def step(what):
    """Names what the scenario is doing, for the failure message."""
    STEP[0] = what


def client(endpoint, key=None, **extra):
    """A path-style SigV4 client; key None means anonymous (unsigned requests)."""
    config = Config(
        s3={"addressing_style": "path"},
        signature_version=botocore.UNSIGNED if key is None else "s3v4",
        region_name="us-east-1",
        connect_timeout=5,
        read_timeout=120,
        retries={"total_max_attempts": 1},
        max_pool_connections=32,
        **extra,
    )
    ak, sk = (None, None) if key is None else key
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=config,
    )


def outcome(fn, **kw):
    """[HTTP status, S3 error code or None] of one call."""
    try:
        r = fn(**kw)
        return [r["ResponseMetadata"]["HTTPStatusCode"], None]
    except ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]


def md5(b):
    return hashlib.md5(b).hexdigest()


def etag(b):
    return '"%s"' % md5(b)


def multipart_etag(parts):
    """S3's ETag of a completed multipart upload of these part bodies."""
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return '"%s-%d"' % (hashlib.md5(digests).hexdigest(), len(parts))


def read_all(s3, bucket, key, **kw):
    r = s3.get_object(Bucket=bucket, Key=key, **kw)
    return r, r["Body"].read()


def try_read(s3, bucket, key):
    """[200, body text] of a GET, or [status, S3 error code]."""
    try:
        return [200, read_all(s3, bucket, key)[1].decode(errors="replace")]
    except ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]


def raw(method, url, body=None, headers=None):
    """(status, lower-cased headers, body) of one plain HTTP request (no SDK, no signing)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    path = u.path + ("?" + u.query if u.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def error_code(body):
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None


def keys_of(s3, bucket, prefix=""):
    """Every key under prefix, through all pages."""
    out, token = [], None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(**kw)
        out += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            return out
        token = r["NextContinuationToken"]


def try_keys(s3, bucket):
    """Every key of the bucket, or [status, S3 error code] when listing fails."""
    try:
        return keys_of(s3, bucket)
    except ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]


def head_summary(h):
    return {
        "etag": h.get("ETag"),
        "length": h.get("ContentLength"),
        "type": h.get("ContentType"),
        "disposition": h.get("ContentDisposition"),
        "metadata": h.get("Metadata"),
    }


# ---------------------------------------------------------------------------------------------


def buckets(a):
    s3 = client(a.endpoint, a.key)
    r = {}
    step("creating buckets")
    r["create"] = outcome(s3.create_bucket, Bucket="alpha-bucket")
    r["create_again"] = outcome(s3.create_bucket, Bucket="alpha-bucket")
    r["create_dotted"] = outcome(s3.create_bucket, Bucket="beta.bucket-2")
    invalid = [
        "UpperCase",
        "ab",
        "a" * 64,
        "double..dot",
        "-leading-hyphen",
        "trailing-hyphen-",
        "192.168.5.4",
        "under_score",
    ]
    r["invalid"] = {n: outcome(s3.create_bucket, Bucket=n) for n in invalid}
    r["head"] = outcome(s3.head_bucket, Bucket="alpha-bucket")
    r["head_missing"] = outcome(s3.head_bucket, Bucket="no-such-bucket")
    step("listing buckets")
    r["listed"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    step("deleting buckets")
    s3.put_object(Bucket="alpha-bucket", Key="nested/deep/k.txt", Body=b"x")
    r["delete_not_empty"] = outcome(s3.delete_bucket, Bucket="alpha-bucket")
    r["delete_missing"] = outcome(s3.delete_bucket, Bucket="no-such-bucket")
    s3.delete_object(Bucket="alpha-bucket", Key="nested/deep/k.txt")
    # Its directories are left empty: the bucket is empty all the same.
    r["delete_emptied"] = outcome(s3.delete_bucket, Bucket="alpha-bucket")
    r["head_deleted"] = outcome(s3.head_bucket, Bucket="alpha-bucket")
    r["put_into_deleted"] = outcome(s3.put_object, Bucket="alpha-bucket", Key="k", Body=b"x")
    r["listed_after"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    return r


def objects(a):
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    r = {}
    step("creating the bucket")
    s3.create_bucket(Bucket=b)
    body = random.Random(1).randbytes(100_000)
    step("putting docs/report.pdf with metadata")
    put = s3.put_object(
        Bucket=b,
        Key="docs/report.pdf",
        Body=body,
        ContentType="application/pdf",
        ContentDisposition='attachment; filename="report.pdf"',
        Metadata={"color": "blue", "owner-name": "ann"},
    )
    r["put_etag"] = put["ETag"]
    r["want"] = {"etag": etag(body), "md5": md5(body), "length": len(body)}
    step("heading and getting it")
    r["head"] = head_summary(s3.head_object(Bucket=b, Key="docs/report.pdf"))
    g, got = read_all(s3, b, "docs/report.pdf")
    r["get"] = head_summary(g)
    r["get"]["status"] = g["ResponseMetadata"]["HTTPStatusCode"]
    r["get"]["md5"] = md5(got)

    step("replacing it")
    s3.put_object(Bucket=b, Key="docs/report.pdf", Body=b"second version\n")
    g, got = read_all(s3, b, "docs/report.pdf")
    r["replaced"] = {
        "body": got.decode(),
        "etag": g["ETag"],
        "metadata": g["Metadata"],
        "disposition": g.get("ContentDisposition"),
    }
    r["want_replaced_etag"] = etag(b"second version\n")

    step("an empty object")
    s3.put_object(Bucket=b, Key="empty", Body=b"")
    g, got = read_all(s3, b, "empty")
    r["empty"] = {"length": g["ContentLength"], "etag": g["ETag"], "body": got.decode()}

    step("two keys with the same bytes")
    s3.put_object(Bucket=b, Key="dup/one.txt", Body=b"same bytes\n")
    s3.put_object(Bucket=b, Key="dup/two.txt", Body=b"same bytes\n")
    r["dup_delete"] = outcome(s3.delete_object, Bucket=b, Key="dup/one.txt")
    r["dup_deleted_get"] = outcome(s3.get_object, Bucket=b, Key="dup/one.txt")
    r["dup_other"] = try_read(s3, b, "dup/two.txt")

    step("missing keys and buckets")
    r["delete_missing"] = outcome(s3.delete_object, Bucket=b, Key="never/was.txt")
    r["get_missing"] = outcome(s3.get_object, Bucket=b, Key="never/was.txt")
    r["head_missing"] = outcome(s3.head_object, Bucket=b, Key="never/was.txt")
    r["get_no_bucket"] = outcome(s3.get_object, Bucket="no-such-bucket-x", Key="k")
    r["put_no_bucket"] = outcome(s3.put_object, Bucket="no-such-bucket-x", Key="k", Body=b"x")

    step("a key with spaces, non-ASCII and URL-special characters")
    key = "unicode/résumé 2024 + 50%.txt"
    s3.put_object(Bucket=b, Key=key, Body=b"unicode\n")
    r["unicode_get"] = read_all(s3, b, key)[1].decode()
    r["unicode_listed"] = keys_of(s3, b, "unicode/")
    r["unicode_key"] = key
    return r


def bad_keys(a):
    s3 = client(a.endpoint, a.key)
    b, other = a.bucket, a.bucket + "-other"
    s3.create_bucket(Bucket=b)
    s3.create_bucket(Bucket=other)
    step("putting the objects that the bad keys would name once normalised")
    targets = {(b, k): f"target {k}" for k in ["a/b", "b", "x", "lead"]}
    targets[(other, "secret.txt")] = "target secret.txt"
    for (bucket, k), body in targets.items():
        s3.put_object(Bucket=bucket, Key=k, Body=body.encode())
    step("putting keys that cannot be file paths")
    bad = {
        "empty segment": "a//b",
        "leading slash": "/lead",
        "dot segment": "a/./b",
        "leading dot segment": "./x",
        "dot-dot segment": "a/../b",
        "dot-dot into another bucket": f"../{other}/secret.txt",
        "trailing dot-dot": "x/..",
        "segment of 256 bytes": "s" * 256 + "/f",
        "NUL": "a\x00b",
    }
    r = {
        "put": {
            what: outcome(s3.put_object, Bucket=b, Key=k, Body=b"bad") for what, k in bad.items()
        }
    }
    r["get"] = {what: outcome(s3.get_object, Bucket=b, Key=k) for what, k in bad.items()}
    r["head"] = {what: outcome(s3.head_object, Bucket=b, Key=k) for what, k in bad.items()}
    r["targets"] = {f"{bucket}/{k}": try_read(s3, bucket, k) for bucket, k in targets}
    long_key = ("d" * 200 + "/") * 5 + "x" * 20  # 1025 bytes, no segment over 255
    assert len(long_key.encode()) == 1025
    r["too_long"] = outcome(s3.put_object, Bucket=b, Key=long_key, Body=b"bad")
    step("putting the longest allowed segment and key")
    seg_key = "ok/" + "s" * 255
    max_key = ("d" * 200 + "/") * 5 + "x" * 19  # 1024 bytes
    assert len(max_key.encode()) == 1024
    r["segment_255"] = outcome(s3.put_object, Bucket=b, Key=seg_key, Body=b"255")
    r["key_1024"] = outcome(s3.put_object, Bucket=b, Key=max_key, Body=b"1024")
    r["listed"] = keys_of(s3, b)
    r["want_listed"] = sorted([seg_key, max_key] + [k for bucket, k in targets if bucket == b])
    r["other_listed"] = keys_of(s3, other)
    return r


def conditionals(a):
    s3 = client(a.endpoint, a.key)
    b, k = a.bucket, "cond.bin"
    s3.create_bucket(Bucket=b)
    data = random.Random(2).randbytes(1000)
    step("putting the object")
    s3.put_object(Bucket=b, Key=k, Body=data)
    h = s3.head_object(Bucket=b, Key=k)
    tag, lm = h["ETag"], h["LastModified"]
    # The object is older than every date sent below that is after its Last-Modified.
    time.sleep(2)
    r = {"etag": tag, "want_etag": etag(data)}

    step("ranges")
    ranges = {}
    for spec, lo, hi in [
        ("bytes=100-199", 100, 200),
        ("bytes=-10", 990, 1000),
        ("bytes=990-", 990, 1000),
        ("bytes=0-0", 0, 1),
        ("bytes=995-2000", 995, 1000),
    ]:
        g, got = read_all(s3, b, k, Range=spec)
        ranges[spec] = {
            "status": g["ResponseMetadata"]["HTTPStatusCode"],
            "content_range": g.get("ContentRange"),
            "length": g["ContentLength"],
            "bytes_match": got == data[lo:hi],
        }
    r["ranges"] = ranges
    r["unsatisfiable"] = outcome(s3.get_object, Bucket=b, Key=k, Range="bytes=1000-1001")

    step("conditional GETs and HEADs")
    hour = datetime.timedelta(hours=1)
    sec = datetime.timedelta(seconds=1)
    get, head = s3.get_object, s3.head_object
    cases = {
        "if_match": (get, {"IfMatch": tag}),
        "if_match_other": (get, {"IfMatch": '"00000000000000000000000000000000"'}),
        "if_match_star": (get, {"IfMatch": "*"}),
        "if_none_match": (get, {"IfNoneMatch": tag}),
        "if_none_match_other": (get, {"IfNoneMatch": '"00000000000000000000000000000000"'}),
        "if_modified_since_later": (get, {"IfModifiedSince": lm + sec}),
        "if_modified_since_last_modified": (get, {"IfModifiedSince": lm}),
        "if_modified_since_earlier": (get, {"IfModifiedSince": lm - hour}),
        "if_unmodified_since_earlier": (get, {"IfUnmodifiedSince": lm - hour}),
        "if_unmodified_since_last_modified": (get, {"IfUnmodifiedSince": lm}),
        "if_unmodified_since_later": (get, {"IfUnmodifiedSince": lm + sec}),
        "if_match_and_unmodified_since_earlier": (
            get,
            {"IfMatch": tag, "IfUnmodifiedSince": lm - hour},
        ),
        "head_if_none_match": (head, {"IfNoneMatch": tag}),
        "head_if_match_other": (head, {"IfMatch": '"00000000000000000000000000000000"'}),
        "head_if_modified_since_later": (head, {"IfModifiedSince": lm + sec}),
        "head_if_unmodified_since_earlier": (head, {"IfUnmodifiedSince": lm - hour}),
    }
    r["conditions"] = {name: outcome(fn, Bucket=b, Key=k, **kw) for name, (fn, kw) in cases.items()}
    return r


def same_second(a):
    """An object replaced by another of its size within the second it was written, then
    asked for with the first one's validators in that second, as a browser resuming a
    presigned URL's download does (tried again, a few times, when a second ends in between):
    each answer's status and which bytes it carried."""
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    rnd = random.Random(5)
    for attempt in range(5):
        k = "same%d.bin" % attempt
        old, new = rnd.randbytes(1000), rnd.randbytes(1000)
        step("putting the first version")
        s3.put_object(Bucket=b, Key=k, Body=old)
        h = s3.head_object(Bucket=b, Key=k)
        tag, lm = h["ETag"], h["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
        step("replacing it")
        s3.put_object(Bucket=b, Key=k, Body=new)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": k})

        def ask(headers):
            status, got, body = raw("GET", url, headers=headers)
            which = {new: "new", new[:5]: "new[:5]"}.get(body, "other (%d bytes)" % len(body))
            return {"status": status, "body": which, "date": got.get("date")}

        step("asking with the first version's validators")
        rng = {"Range": "bytes=0-4"}
        r = {
            "if_none_match_old_etag": ask({"If-None-Match": tag}),
            "if_modified_since_weak_date": ask({"If-Modified-Since": lm}),
            "if_range_old_etag": ask({**rng, "If-Range": tag}),
            "if_range_weak_date": ask({**rng, "If-Range": lm}),
            "if_unmodified_since_weak_date": ask({**rng, "If-Unmodified-Since": lm}),
            "if_range_current_etag": ask({**rng, "If-Range": etag(new)}),
        }
        if all(v.pop("date") == lm for v in r.values()):
            return r
    sys.exit("s3_boto3.py same_second: no overwrite and its questions fitted in one second")


def listing_keys():
    """The 1,000 keys of the listing scenario (content: the key itself)."""
    keys = [f"photos/2024/img-{i:04}.jpg" for i in range(400)]
    keys += [f"photos/2025/img-{i:04}.jpg" for i in range(300)]
    keys += [f"docs/d-{i:03}.txt" for i in range(197)]
    # '-' and '.' sort before '/', '0' after it: a directory walk gives another order.
    keys += ["photos-old.txt", "photos.txt", "photos0.txt"]
    keys += [f"top-{i:03}.txt" for i in range(100)]
    assert len(keys) == 1000
    return keys


def pages(s3, **kw):
    """Every page of a ListObjectsV2 walk: count, truncation, keys, prefixes, token use."""
    out, token = [], None
    for _ in range(2000):
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        r = s3.list_objects_v2(**args)
        out.append(
            {
                "key_count": r.get("KeyCount"),
                "truncated": r.get("IsTruncated"),
                "keys": [o["Key"] for o in r.get("Contents", [])],
                "prefixes": [p["Prefix"] for p in r.get("CommonPrefixes", [])],
                "has_token": "NextContinuationToken" in r,
                # Listed size and ETag of each key against its content (the key's bytes).
                "mismatched": [
                    o["Key"]
                    for o in r.get("Contents", [])
                    if o["Size"] != len(o["Key"].encode()) or o["ETag"] != etag(o["Key"].encode())
                ],
            }
        )
        if not r.get("IsTruncated"):
            return out
        token = r["NextContinuationToken"]
    raise RuntimeError("the listing never ended")


def listing(a):
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    keys = listing_keys()
    step("putting 1,000 keys with 16 threads")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for f in [pool.submit(s3.put_object, Bucket=b, Key=k, Body=k.encode()) for k in keys]:
            f.result()
    step("listing")
    r = {"want_keys": sorted(keys, key=lambda k: k.encode())}
    r["all_by_100"] = pages(s3, Bucket=b, MaxKeys=100)
    r["all_default"] = pages(s3, Bucket=b)
    r["root_delimited"] = pages(s3, Bucket=b, Delimiter="/")
    r["root_delimited_by_50"] = pages(s3, Bucket=b, Delimiter="/", MaxKeys=50)
    r["photos_slash_delimited"] = pages(s3, Bucket=b, Prefix="photos/", Delimiter="/")
    r["photos_delimited"] = pages(s3, Bucket=b, Prefix="photos", Delimiter="/")
    r["year_2024_by_100"] = pages(s3, Bucket=b, Prefix="photos/2024/", MaxKeys=100)
    r["start_after"] = pages(
        s3, Bucket=b, Prefix="photos/2024/", StartAfter="photos/2024/img-0199.jpg"
    )
    r["no_match"] = pages(s3, Bucket=b, Prefix="nothing/")
    r["missing_bucket"] = outcome(s3.list_objects_v2, Bucket="no-such-bucket-x")
    return r


def listed(r):
    """[key, size, ETag, has LastModified] of a listing page's Contents."""
    return [[o["Key"], o["Size"], o["ETag"], "LastModified" in o] for o in r.get("Contents", [])]


def folders(a):
    """Folder markers (empty keys ending in '/') listed as S3 lists empty objects."""
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    step("putting files around the markers e/ and deep/er/, and full/ with a file in it")
    for k in ["e-x", "e.txt", "e0.txt", "full/f.txt"]:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    for k in ["e/", "deep/er/", "full/"]:
        s3.put_object(Bucket=b, Key=k, Body=b"")
    step("listing")
    r = {"all": listed(s3.list_objects_v2(Bucket=b))}
    r["v1_all"] = listed(s3.list_objects(Bucket=b))
    r["by_1"] = [p["keys"] for p in pages(s3, Bucket=b, MaxKeys=1)]
    r["delimited_by_1"] = [
        p["keys"] + p["prefixes"] for p in pages(s3, Bucket=b, Delimiter="/", MaxKeys=1)
    ]
    d = s3.list_objects_v2(Bucket=b, Delimiter="/")
    r["delimited"] = {
        "keys": [o["Key"] for o in d.get("Contents", [])],
        "prefixes": [p["Prefix"] for p in d.get("CommonPrefixes", [])],
    }
    r["prefix_e"] = listed(s3.list_objects_v2(Bucket=b, Prefix="e/"))
    r["prefix_e_delimited"] = listed(s3.list_objects_v2(Bucket=b, Prefix="e/", Delimiter="/"))
    f = s3.list_objects_v2(Bucket=b, Prefix="full/", Delimiter="/")
    r["prefix_full"] = [o["Key"] for o in f.get("Contents", [])]
    r["prefix_deep"] = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="deep/").get("Contents", [])]
    r["after_e_txt"] = [o["Key"] for o in s3.list_objects_v2(Bucket=b, StartAfter="e.txt").get("Contents", [])]
    r["after_e"] = [o["Key"] for o in s3.list_objects_v2(Bucket=b, StartAfter="e/").get("Contents", [])]
    step("V1 pages of 2 by Marker")
    v1, marker = [], ""
    for _ in range(20):
        p = s3.list_objects(Bucket=b, MaxKeys=2, Marker=marker)
        keys = [o["Key"] for o in p.get("Contents", [])]
        v1.append(keys)
        if not p.get("IsTruncated"):
            break
        marker = keys[-1]
    r["v1_by_2"] = v1
    step("V1 pages of 1 by NextMarker under the prefix full/ with a delimiter")
    v1, marker = [], ""
    for _ in range(20):
        p = s3.list_objects(Bucket=b, Prefix="full/", Delimiter="/", MaxKeys=1, Marker=marker)
        v1.append([o["Key"] for o in p.get("Contents", [])])
        if not p.get("IsTruncated"):
            break
        marker = p["NextMarker"]
    r["v1_full_by_1"] = v1
    r["full_after_marker"] = [
        o["Key"]
        for o in s3.list_objects_v2(
            Bucket=b, Prefix="full/", Delimiter="/", StartAfter="full/"
        ).get("Contents", [])
    ]
    step("deleting the markers e/ and full/")
    s3.delete_object(Bucket=b, Key="e/")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "full/"}]})
    r["after_delete"] = [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]
    r["head_e"] = outcome(s3.head_object, Bucket=b, Key="e/")
    r["delete_bucket_with_marker"] = outcome(s3.delete_bucket, Bucket=b)
    return r


def delete_objects(a):
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    step("putting batch/k00..k09 and keep.txt")
    for i in range(10):
        s3.put_object(Bucket=b, Key=f"batch/k{i:02}", Body=b"%d" % i)
    s3.put_object(Bucket=b, Key="keep.txt", Body=b"keep")
    step("a verbose DeleteObjects")
    verbose = s3.delete_objects(
        Bucket=b,
        Delete={
            "Objects": [{"Key": f"batch/k{i:02}"} for i in range(5)] + [{"Key": "batch/missing"}]
        },
    )
    r = {
        "verbose_status": verbose["ResponseMetadata"]["HTTPStatusCode"],
        "verbose_deleted": sorted(d["Key"] for d in verbose.get("Deleted", [])),
        "verbose_errors": verbose.get("Errors", []),
    }
    step("a quiet DeleteObjects")
    quiet = s3.delete_objects(
        Bucket=b,
        Delete={"Objects": [{"Key": f"batch/k{i:02}"} for i in range(5, 9)], "Quiet": True},
    )
    r["quiet_status"] = quiet["ResponseMetadata"]["HTTPStatusCode"]
    r["quiet_deleted"] = quiet.get("Deleted", [])
    r["quiet_errors"] = quiet.get("Errors", [])
    r["left"] = keys_of(s3, b)
    s3.delete_object(Bucket=b, Key="batch/k09")
    # No object under batch/ is left, so there is no batch/ prefix any more.
    root = s3.list_objects_v2(Bucket=b, Delimiter="/")
    r["root_prefixes"] = [p["Prefix"] for p in root.get("CommonPrefixes", [])]
    r["root_keys"] = [o["Key"] for o in root.get("Contents", [])]
    return r


def copy(a):
    s3 = client(a.endpoint, a.key)
    b, other = a.bucket, a.bucket + "-copy"
    s3.create_bucket(Bucket=b)
    s3.create_bucket(Bucket=other)
    data = random.Random(3).randbytes(50_000)
    src = "orig/my photo é.jpg"
    step("putting the source")
    s3.put_object(
        Bucket=b, Key=src, Body=data, ContentType="image/jpeg", Metadata={"camera": "x100"}
    )
    r = {"want_etag": etag(data), "want_md5": md5(data)}

    def copied(bucket, key):
        h = s3.head_object(Bucket=bucket, Key=key)
        s = head_summary(h)
        s["md5"] = md5(read_all(s3, bucket, key)[1])
        return s

    step("copying within the bucket (metadata copied)")
    c = s3.copy_object(Bucket=b, Key="copies/same.jpg", CopySource={"Bucket": b, "Key": src})
    r["same_bucket_etag"] = c["CopyObjectResult"]["ETag"]
    r["same_bucket"] = copied(b, "copies/same.jpg")
    step("copying to another bucket")
    c = s3.copy_object(Bucket=other, Key="other/photo.jpg", CopySource={"Bucket": b, "Key": src})
    r["other_bucket_etag"] = c["CopyObjectResult"]["ETag"]
    r["other_bucket"] = copied(other, "other/photo.jpg")
    step("copying with REPLACE")
    s3.copy_object(
        Bucket=b,
        Key="copies/replaced.png",
        CopySource={"Bucket": b, "Key": src},
        MetadataDirective="REPLACE",
        ContentType="image/png",
        Metadata={"camera": "z9", "edited": "yes"},
    )
    r["replaced"] = copied(b, "copies/replaced.png")
    step("copying onto itself with REPLACE")
    s3.copy_object(
        Bucket=b,
        Key=src,
        CopySource={"Bucket": b, "Key": src},
        MetadataDirective="REPLACE",
        ContentType="image/jpeg",
        Metadata={"camera": "x100", "rating": "5"},
    )
    r["self"] = copied(b, src)
    step("replacing the source after the copies")
    s3.put_object(Bucket=b, Key=src, Body=b"new source")
    r["copy_after_source_replaced"] = md5(read_all(s3, b, "copies/same.jpg")[1])
    r["missing_source"] = outcome(
        s3.copy_object, Bucket=b, Key="x", CopySource={"Bucket": b, "Key": "no/such.jpg"}
    )
    r["missing_source_bucket"] = outcome(
        s3.copy_object, Bucket=b, Key="x", CopySource={"Bucket": "no-such-bucket-x", "Key": "k"}
    )
    return r


def multipart(a):
    s3 = client(a.endpoint, a.key)
    b, k = a.bucket, "mp/big.bin"
    s3.create_bucket(Bucket=b)
    data = random.Random(4).randbytes(20 * MIB + 1234)
    parts = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    step("creating the upload")
    up = s3.create_multipart_upload(
        Bucket=b, Key=k, ContentType="application/x-test", Metadata={"kind": "mp"}
    )
    uid = up["UploadId"]
    r = {"parts_count": len(parts)}
    step("uploading parts (part 3 twice: first with wrong bytes)")
    s3.upload_part(Bucket=b, Key=k, UploadId=uid, PartNumber=3, Body=b"\0" * (5 * MIB))
    etags = []
    for n, p in enumerate(parts, 1):
        etags.append(s3.upload_part(Bucket=b, Key=k, UploadId=uid, PartNumber=n, Body=p)["ETag"])
    r["part_etags"] = etags
    r["want_part_etags"] = [etag(p) for p in parts]
    step("listing parts and uploads")
    lp = s3.list_parts(Bucket=b, Key=k, UploadId=uid)
    r["listed_parts"] = [[p["PartNumber"], p["Size"], p["ETag"]] for p in lp.get("Parts", [])]
    r["want_listed_parts"] = [[n, len(p), etag(p)] for n, p in enumerate(parts, 1)]
    lu = s3.list_multipart_uploads(Bucket=b)
    r["uploads"] = [[u["Key"], u["UploadId"]] for u in lu.get("Uploads", [])]
    r["upload_id"] = uid
    r["before_complete_get"] = outcome(s3.get_object, Bucket=b, Key=k)
    step("completing with a wrong part ETag")
    bad = [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
    bad[0] = {"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}
    r["complete_wrong_etag"] = outcome(
        s3.complete_multipart_upload, Bucket=b, Key=k, UploadId=uid, MultipartUpload={"Parts": bad}
    )
    step("completing")
    done = s3.complete_multipart_upload(
        Bucket=b,
        Key=k,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    r["etag"] = done["ETag"]
    r["want_etag"] = multipart_etag(parts)
    h = s3.head_object(Bucket=b, Key=k)
    r["head"] = head_summary(h)
    r["md5"] = md5(read_all(s3, b, k)[1])
    r["want_md5"] = md5(data)
    r["want_length"] = len(data)
    after = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    r["uploads_after"] = [[u["Key"], u["UploadId"]] for u in after]
    r["list_parts_after"] = outcome(s3.list_parts, Bucket=b, Key=k, UploadId=uid)

    step("aborting another upload")
    ab = s3.create_multipart_upload(Bucket=b, Key="mp/aborted.bin")["UploadId"]
    s3.upload_part(Bucket=b, Key="mp/aborted.bin", UploadId=ab, PartNumber=1, Body=parts[0])
    r["abort"] = outcome(s3.abort_multipart_upload, Bucket=b, Key="mp/aborted.bin", UploadId=ab)
    r["aborted_list_parts"] = outcome(s3.list_parts, Bucket=b, Key="mp/aborted.bin", UploadId=ab)
    r["aborted_upload_part"] = outcome(
        s3.upload_part, Bucket=b, Key="mp/aborted.bin", UploadId=ab, PartNumber=2, Body=b"x"
    )
    r["aborted_complete"] = outcome(
        s3.complete_multipart_upload,
        Bucket=b,
        Key="mp/aborted.bin",
        UploadId=ab,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag(parts[0])}]},
    )
    r["aborted_head"] = outcome(s3.head_object, Bucket=b, Key="mp/aborted.bin")
    r["unknown_upload"] = outcome(
        s3.upload_part, Bucket=b, Key=k, UploadId="no-such-upload", PartNumber=1, Body=b"x"
    )
    r["keys"] = keys_of(s3, b)
    return r


RESUME_KEY = "resume/movie.bin"


def resume_data():
    data = random.Random(5).randbytes(18 * MIB)
    return [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]


def resume(a):
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    parts = resume_data()
    if a.phase == 1:
        step("phase 1: creating the upload and sending parts 1-2")
        s3.create_bucket(Bucket=b)
        uid = s3.create_multipart_upload(Bucket=b, Key=RESUME_KEY)["UploadId"]
        for n in (1, 2):
            s3.upload_part(Bucket=b, Key=RESUME_KEY, UploadId=uid, PartNumber=n, Body=parts[n - 1])
        step("phase 1: crashing in the middle of part 3")
        url = s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": b, "Key": RESUME_KEY, "UploadId": uid, "PartNumber": 3},
            ExpiresIn=300,
        )
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.putrequest("PUT", u.path + "?" + u.query)
        conn.putheader("Content-Length", str(len(parts[2])))
        conn.endheaders()
        conn.send(parts[2][: 1 * MIB])
        print(json.dumps({"upload_id": uid}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    step("phase 2: finding the upload again")
    r = {}
    ups = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    r["uploads"] = [[u["Key"], u["UploadId"]] for u in ups]
    mine = [u["UploadId"] for u in ups if u["Key"] == RESUME_KEY]
    if len(mine) != 1:
        return r
    uid = mine[0]
    lp = s3.list_parts(Bucket=b, Key=RESUME_KEY, UploadId=uid)
    r["listed_parts"] = [[p["PartNumber"], p["Size"], p["ETag"]] for p in lp.get("Parts", [])]
    r["want_listed_parts"] = [[n, len(parts[n - 1]), etag(parts[n - 1])] for n in (1, 2)]
    step("phase 2: sending the rest and completing")
    etags = {p["PartNumber"]: p["ETag"] for p in lp.get("Parts", [])}
    for n in range(len(etags) + 1, len(parts) + 1):
        etags[n] = s3.upload_part(
            Bucket=b, Key=RESUME_KEY, UploadId=uid, PartNumber=n, Body=parts[n - 1]
        )["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=b,
        Key=RESUME_KEY,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
    )
    r["etag"] = done["ETag"]
    r["want_etag"] = multipart_etag(parts)
    r["md5"] = md5(read_all(s3, b, RESUME_KEY)[1])
    r["want_md5"] = md5(b"".join(parts))
    r["uploads_after"] = [u["Key"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])]
    return r


def presigned(a):
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    data = b"presigned report\n"
    s3.put_object(Bucket=b, Key="shared/report.txt", Body=data)
    r = {}
    step("a presigned GET")
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": b, "Key": "shared/report.txt"}, ExpiresIn=60
    )
    st, _, body = raw("GET", get_url)
    r["get"] = [st, body.decode(errors="replace")]
    st, _, body = raw("GET", f"{a.endpoint}/{b}/shared/report.txt")
    r["unsigned_get"] = [st, error_code(body)]
    step("a presigned PUT")
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": b, "Key": "shared/upload.bin"}, ExpiresIn=60
    )
    payload = random.Random(6).randbytes(70_000)
    st, h, body = raw("PUT", put_url, body=payload)
    r["put"] = [st, h.get("etag")]
    r["want_put_etag"] = etag(payload)
    r["put_read_back"] = md5(read_all(s3, b, "shared/upload.bin")[1])
    r["want_put_md5"] = md5(payload)
    step("tampered URLs")
    u = urllib.parse.urlsplit(get_url)
    other_key = urllib.parse.urlunsplit(u._replace(path=u.path.replace("report.txt", "upload.bin")))
    st, _, body = raw("GET", other_key)
    r["other_key"] = [st, error_code(body)]
    sig = re.search(r"X-Amz-Signature=([0-9a-f]+)", get_url).group(1)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    st, _, body = raw("GET", get_url.replace(sig, flipped))
    r["bad_signature"] = [st, error_code(body)]
    step("expired URLs")
    short_get = s3.generate_presigned_url(
        "get_object", Params={"Bucket": b, "Key": "shared/report.txt"}, ExpiresIn=1
    )
    short_put = s3.generate_presigned_url(
        "put_object", Params={"Bucket": b, "Key": "shared/late.bin"}, ExpiresIn=1
    )
    time.sleep(2)
    st, _, body = raw("GET", short_get)
    r["expired_get"] = [st, error_code(body)]
    st, _, body = raw("PUT", short_put, body=b"too late")
    r["expired_put"] = [st, error_code(body)]
    r["expired_put_head"] = outcome(s3.head_object, Bucket=b, Key="shared/late.bin")
    step("a presigned CreateBucket and DeleteBucket")
    made = b + "-made"
    st, _, body = raw("PUT", s3.generate_presigned_url(
        "create_bucket", Params={"Bucket": made}, ExpiresIn=60, HttpMethod="PUT"))
    r["presigned_create"] = [st, error_code(body) if st != 200 else ""]
    r["presigned_create_head"] = outcome(s3.head_bucket, Bucket=made)
    st, _, body = raw("DELETE", s3.generate_presigned_url(
        "delete_bucket", Params={"Bucket": made}, ExpiresIn=60, HttpMethod="DELETE"))
    r["presigned_delete"] = [st, error_code(body) if st != 204 else ""]
    r["presigned_delete_head"] = outcome(s3.head_bucket, Bucket=made)
    return r


def auth(a):
    full = client(a.endpoint, a.key)
    b, allowed = a.bucket, a.allowed
    step("setting up the buckets with the full key")
    full.create_bucket(Bucket=b)
    full.create_bucket(Bucket=allowed)
    full.put_object(Bucket=b, Key="private.txt", Body=b"private")
    full.put_object(Bucket=allowed, Key="mine.txt", Body=b"mine")
    r = {}

    step("a wrong secret")
    wrong = client(a.endpoint, (a.key[0], a.key[1] + "x"))
    r["wrong_secret_list_buckets"] = outcome(wrong.list_buckets)
    r["wrong_secret_get"] = outcome(wrong.get_object, Bucket=b, Key="private.txt")
    r["wrong_secret_put"] = outcome(wrong.put_object, Bucket=b, Key="forged.txt", Body=b"forged")
    r["forged_head"] = outcome(full.head_object, Bucket=b, Key="forged.txt")
    step("an unknown access key")
    unknown = client(a.endpoint, ("AKIANOSUCHKEY0000000", a.key[1]))
    r["unknown_key_list_buckets"] = outcome(unknown.list_buckets)
    r["unknown_key_get"] = outcome(unknown.get_object, Bucket=b, Key="private.txt")

    step("the key restricted to its bucket")
    lim = client(a.endpoint, a.limited)
    r["limited_own_put"] = outcome(lim.put_object, Bucket=allowed, Key="new.txt", Body=b"new")
    r["limited_own_get"] = try_read(lim, allowed, "mine.txt")
    r["limited_own_list"] = try_keys(lim, allowed)
    r["limited_own_head_bucket"] = outcome(lim.head_bucket, Bucket=allowed)
    r["limited_own_delete"] = outcome(lim.delete_object, Bucket=allowed, Key="new.txt")
    r["limited_other_get"] = outcome(lim.get_object, Bucket=b, Key="private.txt")
    r["limited_other_head"] = outcome(lim.head_object, Bucket=b, Key="private.txt")
    r["limited_other_put"] = outcome(lim.put_object, Bucket=b, Key="intruder.txt", Body=b"x")
    r["limited_other_list"] = outcome(lim.list_objects_v2, Bucket=b)
    r["limited_other_delete"] = outcome(lim.delete_object, Bucket=b, Key="private.txt")
    r["limited_other_create"] = outcome(lim.create_bucket, Bucket="elsewhere")
    r["limited_other_copy_out"] = outcome(
        lim.copy_object,
        Bucket=allowed,
        Key="stolen.txt",
        CopySource={"Bucket": b, "Key": "private.txt"},
    )
    url = lim.generate_presigned_url(
        "get_object", Params={"Bucket": b, "Key": "private.txt"}, ExpiresIn=60
    )
    st, _, body = raw("GET", url)
    r["limited_other_presigned"] = [st, error_code(body)]

    step("the read-only key")
    ro = client(a.endpoint, a.readonly)
    r["readonly_get"] = try_read(ro, b, "private.txt")
    r["readonly_list"] = try_keys(ro, b)
    r["readonly_put"] = outcome(ro.put_object, Bucket=b, Key="ro.txt", Body=b"x")
    r["readonly_delete"] = outcome(ro.delete_object, Bucket=b, Key="private.txt")
    # Refused as a whole (403) or key by key (200 with an Error per key): both are S3's.
    try:
        d = ro.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "private.txt"}]})
        r["readonly_delete_objects"] = {
            "status": d["ResponseMetadata"]["HTTPStatusCode"],
            "deleted": [x["Key"] for x in d.get("Deleted", [])],
            "errors": [[x["Key"], x["Code"]] for x in d.get("Errors", [])],
        }
    except ClientError as e:
        r["readonly_delete_objects"] = {
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": e.response["Error"]["Code"],
        }
    r["readonly_copy"] = outcome(
        ro.copy_object, Bucket=b, Key="ro-copy.txt", CopySource={"Bucket": b, "Key": "private.txt"}
    )
    r["readonly_create_bucket"] = outcome(ro.create_bucket, Bucket="ro-bucket")
    r["readonly_multipart"] = outcome(ro.create_multipart_upload, Bucket=b, Key="ro-mp.bin")
    r["after_refusals"] = sorted(keys_of(full, b))
    return r


def anonymous(a):
    full = client(a.endpoint, a.key)
    anon = client(a.endpoint, None)
    private, public = a.bucket, a.bucket + "-public"
    step("setting up a private and a public-read bucket")
    full.create_bucket(Bucket=private)
    full.create_bucket(Bucket=public, ACL="public-read")
    full.put_object(Bucket=private, Key="secret.txt", Body=b"secret")
    full.put_object(Bucket=public, Key="pub/hello.txt", Body=b"hello, world\n")
    r = {}
    step("anonymous requests on the private bucket")
    r["list_buckets"] = outcome(anon.list_buckets)
    r["private_get"] = outcome(anon.get_object, Bucket=private, Key="secret.txt")
    r["private_head"] = outcome(anon.head_object, Bucket=private, Key="secret.txt")
    r["private_list"] = outcome(anon.list_objects_v2, Bucket=private)
    r["private_put"] = outcome(anon.put_object, Bucket=private, Key="anon.txt", Body=b"x")
    st, _, body = raw("GET", f"{a.endpoint}/{private}/secret.txt")
    r["private_plain_get"] = [st, error_code(body)]
    r["create_bucket"] = outcome(anon.create_bucket, Bucket="anon-bucket")
    step("anonymous requests on the public-read bucket")
    r["public_get"] = try_read(anon, public, "pub/hello.txt")
    r["public_head"] = outcome(anon.head_object, Bucket=public, Key="pub/hello.txt")
    r["public_list"] = try_keys(anon, public)
    st, _, body = raw("GET", f"{a.endpoint}/{public}/pub/hello.txt")
    r["public_plain_get"] = [st, body.decode(errors="replace")]
    r["public_get_missing"] = outcome(anon.get_object, Bucket=public, Key="pub/none.txt")
    r["public_put"] = outcome(anon.put_object, Bucket=public, Key="pub/anon.txt", Body=b"x")
    r["public_delete"] = outcome(anon.delete_object, Bucket=public, Key="pub/hello.txt")
    r["public_multipart"] = outcome(anon.create_multipart_upload, Bucket=public, Key="pub/mp.bin")
    r["public_delete_bucket"] = outcome(anon.delete_bucket, Bucket=public)
    r["public_after"] = keys_of(full, public)
    return r


def put(a):
    s3 = client(a.endpoint, a.key)
    if outcome(s3.head_bucket, Bucket=a.bucket)[0] == 404:
        s3.create_bucket(Bucket=a.bucket)
    with open(a.file, "rb") as f:
        data = f.read()
    step("putting the file")
    p = s3.put_object(Bucket=a.bucket, Key=a.object, Body=data, ContentType="text/plain")
    return {"etag": p["ETag"], "want_etag": etag(data)}


def get(a):
    s3 = client(a.endpoint, a.key)
    r = {"get": outcome(s3.head_object, Bucket=a.bucket, Key=a.object)}
    if r["get"][0] == 200:
        g, got = read_all(s3, a.bucket, a.object)
        r.update({"etag": g["ETag"], "length": g["ContentLength"], "md5": md5(got)})
    r["listed"] = keys_of(s3, a.bucket)
    return r


def big(a):
    """1 GiB of 1 MiB blocks, one random block in 8, the rest holes; 64 MiB parts, 2 threads."""
    s3 = client(a.endpoint, a.key)
    b, k = a.bucket, "big/one-gib.bin"
    s3.create_bucket(Bucket=b)
    step("writing the 1 GiB file")
    whole, part, part_digests = hashlib.md5(), hashlib.md5(), []
    zero = bytes(MIB)
    with open(a.file, "wb") as f:
        f.truncate(1024 * MIB)
        for i in range(1024):
            block = zero
            if i % 8 == 0:
                block = os.urandom(MIB)
                f.seek(i * MIB)
                f.write(block)
            whole.update(block)
            part.update(block)
            if i % 64 == 63:
                part_digests.append(part.digest())
                part = hashlib.md5()
    want_etag = '"%s-%d"' % (hashlib.md5(b"".join(part_digests)).hexdigest(), len(part_digests))
    step("uploading it")
    t0 = time.monotonic()
    s3.upload_file(
        a.file,
        b,
        k,
        Config=TransferConfig(
            multipart_threshold=64 * MIB, multipart_chunksize=64 * MIB, max_concurrency=2
        ),
    )
    t1 = time.monotonic()
    step("reading it back")
    g = s3.get_object(Bucket=b, Key=k)
    back = hashlib.md5()
    n = 0
    for chunk in g["Body"].iter_chunks(8 * MIB):
        back.update(chunk)
        n += len(chunk)
    t2 = time.monotonic()
    return {
        "etag": g["ETag"],
        "want_etag": want_etag,
        "length": n,
        "md5": back.hexdigest(),
        "want_md5": whole.hexdigest(),
        "upload_seconds": round(t1 - t0, 1),
        "download_seconds": round(t2 - t1, 1),
    }


def subresources(a):
    """Sub-resources this server does not serve are refused and never touch the object."""
    s3 = client(a.endpoint, a.key)
    b, k = a.bucket, "sub.txt"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key=k, Body=b"the data")
    r = {}
    step("object sub-resources")
    tags = {"TagSet": [{"Key": "a", "Value": "1"}]}
    for name, fn, kw in [
        ("put_acl", s3.put_object_acl, {"ACL": "public-read"}),
        ("put_tagging", s3.put_object_tagging, {"Tagging": tags}),
        ("delete_tagging", s3.delete_object_tagging, {}),
        ("get_tagging", s3.get_object_tagging, {}),
        ("put_legal_hold", s3.put_object_legal_hold, {"LegalHold": {"Status": "ON"}}),
        ("get_attributes", s3.get_object_attributes, {"ObjectAttributes": ["ETag"]}),
        ("delete_version", s3.delete_object, {"VersionId": "abc"}),
        ("get_version", s3.get_object, {"VersionId": "abc"}),
        ("get_null_version", s3.get_object, {"VersionId": "null"}),
        ("get_part_1", s3.get_object, {"PartNumber": 1}),
        ("get_part_2", s3.get_object, {"PartNumber": 2}),
    ]:
        r[name] = outcome(fn, Bucket=b, Key=k, **kw)
        r[name + "_then"] = try_read(s3, b, k)
    step("a PUT of ?attributes (GetObjectAttributes is a GET)")
    c = client(a.endpoint, a.key)

    def add_attributes(request, **_):
        request.url += ("&" if "?" in request.url else "?") + "attributes"

    c.meta.events.register_first("before-sign.s3.PutObject", add_attributes)
    r["put_attributes"] = outcome(c.put_object, Bucket=b, Key=k, Body=b"<not the object>")
    r["put_attributes_then"] = try_read(s3, b, k)
    step("tags: none kept, none reported, none accepted")
    r["tag_set"] = s3.get_object_tagging(Bucket=b, Key=k)["TagSet"]
    r["get_tagging_missing"] = outcome(s3.get_object_tagging, Bucket=b, Key="missing.txt")
    r["put_with_tags"] = outcome(s3.put_object, Bucket=b, Key="tagged.txt", Body=b"t", Tagging="a=1")
    r["put_with_tags_then"] = try_read(s3, b, "tagged.txt")
    r["put_with_no_tags"] = outcome(s3.put_object, Bucket=b, Key="untagged.txt", Body=b"u", Tagging="")
    r["create_with_tags"] = outcome(s3.create_multipart_upload, Bucket=b, Key="mp.txt", Tagging="a=1")
    r["bucket_tagging"] = outcome(s3.get_bucket_tagging, Bucket=b)
    r["delete_bucket_tagging"] = outcome(s3.delete_bucket_tagging, Bucket=b)
    r["put_bucket_tagging"] = outcome(s3.put_bucket_tagging, Bucket=b, Tagging=tags)
    step("the object's ACL")
    acl = s3.get_object_acl(Bucket=b, Key=k)
    r["acl"] = sorted(g["Permission"] for g in acl["Grants"])
    step("bucket sub-resources")
    r["encryption"] = outcome(s3.get_bucket_encryption, Bucket=b)
    r["versions"] = outcome(s3.list_object_versions, Bucket=b)
    r["ownership"] = outcome(s3.get_bucket_ownership_controls, Bucket=b)
    return r


def conditional_writes(a):
    """PUT, CompleteMultipartUpload and CopyObject under S3's conditions."""
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    r = {}
    step("conditional PUTs")
    s3.put_object(Bucket=b, Key="k", Body=b"v1")
    tag = s3.head_object(Bucket=b, Key="k")["ETag"]
    r["create_over_existing"] = outcome(s3.put_object, Bucket=b, Key="k", Body=b"x", IfNoneMatch="*")
    r["create_new"] = outcome(s3.put_object, Bucket=b, Key="new", Body=b"n1", IfNoneMatch="*")
    r["create_new_again"] = outcome(s3.put_object, Bucket=b, Key="new", Body=b"n2", IfNoneMatch="*")
    r["match_wrong"] = outcome(s3.put_object, Bucket=b, Key="k", Body=b"x", IfMatch='"0123"')
    r["after_refusals"] = [try_read(s3, b, "k"), try_read(s3, b, "new")]
    r["match_right"] = outcome(s3.put_object, Bucket=b, Key="k", Body=b"v2", IfMatch=tag)
    r["match_missing"] = outcome(s3.put_object, Bucket=b, Key="none", Body=b"x", IfMatch=tag)
    r["after_match"] = try_read(s3, b, "k")
    step("a conditional multipart completion")
    up = s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=1, Body=b"multi")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    r["complete_over_existing"] = outcome(
        s3.complete_multipart_upload, Bucket=b, Key="k", UploadId=up,
        MultipartUpload=parts, IfNoneMatch="*",
    )
    r["after_complete"] = try_read(s3, b, "k")
    step("copy-source conditions")
    src_tag = s3.head_object(Bucket=b, Key="k")["ETag"]
    future = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    src = {"Bucket": b, "Key": "k"}
    for name, kw in [
        ("copy_if_match_wrong", {"CopySourceIfMatch": '"0123"'}),
        ("copy_if_none_match_same", {"CopySourceIfNoneMatch": src_tag}),
        ("copy_if_modified_since_future", {"CopySourceIfModifiedSince": future}),
        ("copy_if_unmodified_since_past", {"CopySourceIfUnmodifiedSince": past}),
        ("copy_if_match_right", {"CopySourceIfMatch": src_tag}),
    ]:
        r[name] = outcome(s3.copy_object, Bucket=b, Key="copy-" + name, CopySource=src, **kw)
    step("racing creators")
    def create(i):
        return outcome(s3.put_object, Bucket=b, Key="lock", Body=b"writer %d" % i, IfNoneMatch="*")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(8)))
    r["race"] = sorted(x[0] for x in results)
    return r


def part_copy(a):
    """UploadPartCopy: ranged and whole parts, and boto3's managed copy of a big object."""
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    data = random.Random(7).randbytes(12 * 1024 * 1024 + 5)
    step("the source")
    s3.put_object(Bucket=b, Key="src.bin", Body=data)
    src = {"Bucket": b, "Key": "src.bin"}
    step("a multipart upload of copied ranges")
    up = s3.create_multipart_upload(Bucket=b, Key="assembled.bin")["UploadId"]
    half = 6 * 1024 * 1024
    parts = []
    for n, rng in [(1, "bytes=0-%d" % (half - 1)), (2, "bytes=%d-%d" % (half, len(data) - 1))]:
        p = s3.upload_part_copy(
            Bucket=b, Key="assembled.bin", UploadId=up, PartNumber=n, CopySource=src,
            CopySourceRange=rng,
        )
        parts.append({"PartNumber": n, "ETag": p["CopyPartResult"]["ETag"]})
    r = {"part_etags": [p["ETag"] for p in parts],
         "want_part_etags": [etag(data[:half]), etag(data[half:])]}
    r["bad_range"] = outcome(
        s3.upload_part_copy, Bucket=b, Key="assembled.bin", UploadId=up, PartNumber=3,
        CopySource=src, CopySourceRange="bytes=9-2",
    )
    r["past_end"] = outcome(
        s3.upload_part_copy, Bucket=b, Key="assembled.bin", UploadId=up, PartNumber=3,
        CopySource=src, CopySourceRange="bytes=0-%d" % len(data),
    )
    s3.complete_multipart_upload(
        Bucket=b, Key="assembled.bin", UploadId=up, MultipartUpload={"Parts": parts}
    )
    r["assembled"] = read_all(s3, b, "assembled.bin")[1] == data
    step("boto3's managed copy (UploadPartCopy above 8 MiB)")
    s3.copy(src, b, "managed.bin")
    r["managed"] = read_all(s3, b, "managed.bin")[1] == data
    return r


def pending_bound(a):
    """A key's pending multipart uploads: 999 made one by one, then 16 creations at once
    (one more fits), then one more (refused)."""
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    step("999 pending uploads")
    for i in range(999):
        s3.create_multipart_upload(Bucket=b, Key="k%d" % i)
    step("16 creations at once")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        at_once = list(pool.map(
            lambda i: outcome(s3.create_multipart_upload, Bucket=b, Key="race%d" % i),
            range(16),
        ))
    step("the pending uploads counted")
    pending = 0
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=b):
        pending += len(page.get("Uploads", []))
    return {
        "at_once": sorted(at_once, key=str),
        "pending": pending,
        "one_more": outcome(s3.create_multipart_upload, Bucket=b, Key="last"),
    }


def details(a):
    """Answers S3 gives that scripts and tools rely on."""
    s3 = client(a.endpoint, a.key)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    r = {}
    step("metadata bounds")
    r["meta_2k"] = outcome(s3.put_object, Bucket=b, Key="m", Body=b"x", Metadata={"a": "v" * 2000})
    r["meta_3k"] = outcome(s3.put_object, Bucket=b, Key="m", Body=b"x", Metadata={"a": "v" * 3000})
    step("a completion naming a missing part")
    up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    p1 = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"1")
    parts = [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 3, "ETag": '"%s"' % ("0" * 32)}]
    r["missing_part"] = outcome(
        s3.complete_multipart_upload, Bucket=b, Key="mp", UploadId=up,
        MultipartUpload={"Parts": parts},
    )
    step("a copy onto itself that sets the storage class")
    r["self_copy_class"] = outcome(
        s3.copy_object, Bucket=b, Key="m", CopySource={"Bucket": b, "Key": "m"},
        StorageClass="STANDARD",
    )
    r["self_copy_plain"] = outcome(
        s3.copy_object, Bucket=b, Key="m", CopySource={"Bucket": b, "Key": "m"},
    )
    r["after"] = try_read(s3, b, "m")
    return r


def sigv2(a):
    """botocore's SigV2 (signature_version='s3') on bucket and object requests."""
    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3",
        region_name="us-east-1",
        retries={"total_max_attempts": 1},
    )
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=a.endpoint,
        aws_access_key_id=a.key[0],
        aws_secret_access_key=a.key[1],
        region_name="us-east-1",
        config=config,
    )
    b = a.bucket
    step("creating and listing over SigV2")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="v2.txt", Body=b"signed v2")
    return {
        "list_v1": [o["Key"] for o in s3.list_objects(Bucket=b).get("Contents", [])],
        "list_v2": [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])],
        "location": outcome(s3.get_bucket_location, Bucket=b),
        "get": try_read(s3, b, "v2.txt"),
    }


def checksums(a):
    """Flexible checksums as boto3 >= 1.36 sends them: put_object with a ChecksumAlgorithm gets
    the checksum echoed; get_object and head_object with ChecksumMode=ENABLED get the stored one
    back (boto3 validates the body against it: `validated_*` names the algorithm it checked);
    a part's checksum is echoed by upload_part; a copy keeps the checksum; a wrong value and
    unknown algorithms are refused. `log_skipped` counts botocore's "Skipping checksum
    validation" notes for whole-object GETs, `log_warnings` its warnings about checksums."""
    import base64
    import io
    import logging
    import zlib

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    botolog = logging.getLogger("botocore")
    botolog.setLevel(logging.DEBUG)
    botolog.addHandler(handler)

    s3 = client(a.endpoint, a.key)
    step("creating the bucket")
    s3.create_bucket(Bucket=a.bucket)
    data = os.urandom(300_000)
    b64 = lambda d: base64.b64encode(d).decode()  # noqa: E731
    want = {
        "CRC32": b64(zlib.crc32(data).to_bytes(4, "big")),
        "SHA256": b64(hashlib.sha256(data).digest()),
        "SHA1": b64(hashlib.sha1(data).digest()),
    }
    r = {"want": want}
    for alg in want:
        key = f"{alg}.bin"
        step(f"putting with {alg}")
        put = s3.put_object(Bucket=a.bucket, Key=key, Body=data, ChecksumAlgorithm=alg)
        r[f"put_{alg}"] = [put.get(f"Checksum{alg}"), put.get("ChecksumType")]
        step(f"getting {alg} with its checksum")
        before = log.tell()
        got = s3.get_object(Bucket=a.bucket, Key=key, ChecksumMode="ENABLED")
        body = got["Body"].read()
        r[f"get_{alg}"] = [got.get(f"Checksum{alg}"), got.get("ChecksumType"), body == data]
        # boto3 wraps a body it validates (and raises at its end on a mismatch).
        r[f"validated_{alg}"] = [
            type(got["Body"]).__name__,
            type(getattr(got["Body"], "_expected", None)).__name__,
            getattr(got["Body"], "_expected", None),
        ]
        r[f"log_skipped_{alg}"] = log.getvalue()[before:].count("Skipping checksum validation")
        step(f"heading {alg} with its checksum")
        head = s3.head_object(Bucket=a.bucket, Key=key, ChecksumMode="ENABLED")
        r[f"head_{alg}"] = head.get(f"Checksum{alg}")
        plain = s3.head_object(Bucket=a.bucket, Key=key)
        r[f"head_plain_{alg}"] = plain.get(f"Checksum{alg}")
    step("a range of a checksummed object")
    part = s3.get_object(Bucket=a.bucket, Key="CRC32.bin", Range="bytes=0-9", ChecksumMode="ENABLED")
    r["range"] = [part.get("ChecksumCRC32"), part["Body"].read() == data[:10]]
    step("a wrong checksum")
    r["wrong"] = outcome(
        s3.put_object, Bucket=a.bucket, Key="wrong.bin", Body=data, ChecksumCRC32="AAAAAA=="
    )
    step("copying a checksummed object")
    s3.copy_object(Bucket=a.bucket, Key="copy.bin", CopySource={"Bucket": a.bucket, "Key": "SHA256.bin"})
    r["copy"] = s3.head_object(Bucket=a.bucket, Key="copy.bin", ChecksumMode="ENABLED").get(
        "ChecksumSHA256"
    )
    step("replacing it without a checksum")
    plain_put = client(a.endpoint, a.key, request_checksum_calculation="when_required")
    plain_put.put_object(Bucket=a.bucket, Key="CRC32.bin", Body=b"no checksum now")
    r["replaced"] = s3.head_object(Bucket=a.bucket, Key="CRC32.bin", ChecksumMode="ENABLED").get(
        "ChecksumCRC32"
    )
    step("a part with a checksum")
    up = s3.create_multipart_upload(Bucket=a.bucket, Key="mp.bin", ChecksumAlgorithm="CRC32")
    p1 = s3.upload_part(
        Bucket=a.bucket, Key="mp.bin", UploadId=up["UploadId"], PartNumber=1, Body=data,
        ChecksumAlgorithm="CRC32",
    )
    r["part"] = p1.get("ChecksumCRC32")
    s3.abort_multipart_upload(Bucket=a.bucket, Key="mp.bin", UploadId=up["UploadId"])

    def with_headers(headers):
        c = client(a.endpoint, a.key)

        def add(request, **_):
            for k, v in headers.items():
                if k in request.headers:
                    del request.headers[k]
                request.headers[k] = v

        c.meta.events.register_first("before-sign.s3.PutObject", add)
        c.meta.events.register_first("before-sign.s3.CreateMultipartUpload", add)
        return c

    step("unknown algorithms")
    md4 = with_headers({"x-amz-checksum-md4": "AAAAAAAAAAAAAAAAAAAAAA=="})
    r["unknown_header"] = outcome(md4.put_object, Bucket=a.bucket, Key="md4.bin", Body=b"x")
    sdk = with_headers({"x-amz-sdk-checksum-algorithm": "MD4"})
    r["unknown_sdk"] = outcome(sdk.put_object, Bucket=a.bucket, Key="md4.bin", Body=b"x")
    mp = with_headers({"x-amz-checksum-algorithm": "MD5"})
    r["unknown_multipart"] = outcome(mp.create_multipart_upload, Bucket=a.bucket, Key="md5.bin")
    r["unknown_stored"] = try_read(s3, a.bucket, "md4.bin")
    r["log_warnings"] = [
        line for line in log.getvalue().splitlines()
        if line.startswith(("WARNING", "ERROR")) and "checksum" in line.lower()
    ]
    return r


def multipart_checksums(a):
    """Checksums of multipart objects, as S3 documents them: CreateMultipartUpload with a
    ChecksumAlgorithm echoes it and its type (COMPOSITE by default, FULL_OBJECT asked for or
    for CRC64NVME); CompleteMultipartUpload answers the object's checksum, the composite
    `<b64 of the algorithm over the parts' digests>-<parts>` or the CRC of the whole object;
    head_object and get_object with ChecksumMode=ENABLED return it (boto3 validates a
    FULL_OBJECT one and skips a composite one); ListParts lists the parts' checksums; a
    part's checksum that differs, a full-object value that does not hold and a part of
    another algorithm are refused."""
    import base64
    import io
    import logging
    import zlib

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    botolog = logging.getLogger("botocore")
    botolog.setLevel(logging.DEBUG)
    botolog.addHandler(handler)

    s3 = client(a.endpoint, a.key)
    step("creating the bucket")
    s3.create_bucket(Bucket=a.bucket)
    b64 = lambda d: base64.b64encode(d).decode()  # noqa: E731
    digest = {
        "CRC32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
        "SHA256": lambda d: hashlib.sha256(d).digest(),
        "SHA1": lambda d: hashlib.sha1(d).digest(),
    }
    parts = [os.urandom(5 << 20), os.urandom(300_000)]
    data = b"".join(parts)
    r = {}

    def upload(key, alg, ctype=None, full=None, part_sums=None):
        """Uploads `parts`; returns (create, parts' answers, complete) answers."""
        kw = {"ChecksumType": ctype} if ctype else {}
        up = s3.create_multipart_upload(Bucket=a.bucket, Key=key, ChecksumAlgorithm=alg, **kw)
        done = []
        for n, body in enumerate(parts, 1):
            p = s3.upload_part(
                Bucket=a.bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body,
                ChecksumAlgorithm=alg,
            )
            done.append(p)
        listed = [
            p.get(f"Checksum{alg}")
            for p in s3.list_parts(Bucket=a.bucket, Key=key, UploadId=up["UploadId"])["Parts"]
        ]
        sums = part_sums or [p.get(f"Checksum{alg}") for p in done]
        complete_parts = [
            {"ETag": p["ETag"], "PartNumber": n, f"Checksum{alg}": c}
            for n, (p, c) in enumerate(zip(done, sums), 1)
        ]
        kw = {}
        if full is not None:
            kw = {f"Checksum{alg}": full, "ChecksumType": "FULL_OBJECT"}
        fin = s3.complete_multipart_upload(
            Bucket=a.bucket, Key=key, UploadId=up["UploadId"],
            MultipartUpload={"Parts": complete_parts}, **kw,
        )
        return up, done, listed, fin

    for alg in ["CRC32", "SHA256"]:
        key = f"composite-{alg}.bin"
        step(f"a composite {alg} upload")
        want_parts = [b64(digest[alg](p)) for p in parts]
        want = b64(digest[alg](b"".join(digest[alg](p) for p in parts))) + "-2"
        up, done, listed, fin = upload(key, alg)
        r[f"composite_{alg}"] = {
            "want": want,
            "create": [up.get("ChecksumAlgorithm"), up.get("ChecksumType")],
            "parts": [p.get(f"Checksum{alg}") for p in done],
            "want_parts": want_parts,
            "listed": listed,
            "complete": [fin.get(f"Checksum{alg}"), fin.get("ChecksumType")],
        }
        step(f"heading and getting the composite {alg} object")
        head = s3.head_object(Bucket=a.bucket, Key=key, ChecksumMode="ENABLED")
        before = log.tell()
        got = s3.get_object(Bucket=a.bucket, Key=key, ChecksumMode="ENABLED")
        body = got["Body"].read()
        step(f"the attributes of the composite {alg} object")
        attrs = s3.get_object_attributes(
            Bucket=a.bucket, Key=key,
            ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
        )
        r[f"composite_{alg}"]["attributes"] = {
            k: attrs.get(k) for k in ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
        }
        r[f"composite_{alg}"]["want_etag"] = multipart_etag(parts).strip('"')
        r[f"composite_{alg}"].update({
            "head": [head.get(f"Checksum{alg}"), head.get("ChecksumType")],
            "get": [got.get(f"Checksum{alg}"), got.get("ChecksumType"), body == data],
            "get_log_skipped": log.getvalue()[before:].count("Skipping checksum validation"),
        })

    step("a FULL_OBJECT CRC32 upload")
    full = b64(zlib.crc32(data).to_bytes(4, "big"))
    up, done, listed, fin = upload("full.bin", "CRC32", ctype="FULL_OBJECT", full=full)
    got = s3.get_object(Bucket=a.bucket, Key="full.bin", ChecksumMode="ENABLED")
    body = got["Body"].read()
    r["full"] = {
        "want": full,
        "create": [up.get("ChecksumAlgorithm"), up.get("ChecksumType")],
        "complete": [fin.get("ChecksumCRC32"), fin.get("ChecksumType")],
        "get": [got.get("ChecksumCRC32"), got.get("ChecksumType"), body == data],
        "validated": type(getattr(got["Body"], "_expected", None)).__name__,
    }
    step("the attributes of a single PUT and of a missing key")
    s3.put_object(Bucket=a.bucket, Key="single.bin", Body=parts[1], ChecksumAlgorithm="SHA1")
    attrs = s3.get_object_attributes(
        Bucket=a.bucket, Key="single.bin", ObjectAttributes=["ObjectSize", "Checksum", "ETag"],
    )
    r["single_attributes"] = {k: attrs.get(k) for k in ["ETag", "Checksum", "ObjectParts", "ObjectSize"]}
    r["single_want"] = [md5(parts[1]), b64(hashlib.sha1(parts[1]).digest())]
    r["missing_attributes"] = outcome(
        s3.get_object_attributes, Bucket=a.bucket, Key="nothing.bin", ObjectAttributes=["ETag"],
    )
    r["bad_attributes"] = outcome(
        s3.get_object_attributes, Bucket=a.bucket, Key="single.bin", ObjectAttributes=["Colour"],
    )
    step("a FULL_OBJECT value that does not hold")
    completed = lambda **kw: upload(**kw)[3]  # noqa: E731
    r["full_wrong"] = outcome(completed, key="full-wrong.bin", alg="CRC32", ctype="FULL_OBJECT",
                              full="AAAAAA==")
    r["full_wrong_stored"] = outcome(s3.head_object, Bucket=a.bucket, Key="full-wrong.bin")
    step("a part's checksum that differs in the completion")
    r["part_wrong"] = outcome(completed, key="part-wrong.bin", alg="CRC32",
                              part_sums=["AAAAAA==", "AAAAAA=="])
    step("a part of another algorithm")
    up = s3.create_multipart_upload(Bucket=a.bucket, Key="other.bin", ChecksumAlgorithm="CRC32")
    r["part_other"] = outcome(
        s3.upload_part, Bucket=a.bucket, Key="other.bin", UploadId=up["UploadId"], PartNumber=1,
        Body=parts[1], ChecksumAlgorithm="SHA1",
    )
    s3.abort_multipart_upload(Bucket=a.bucket, Key="other.bin", UploadId=up["UploadId"])
    step("a composite SHA1 object copied")
    upload("sha1.bin", "SHA1")
    s3.copy_object(Bucket=a.bucket, Key="sha1-copy.bin",
                   CopySource={"Bucket": a.bucket, "Key": "sha1.bin"})
    r["copy_of_composite"] = s3.head_object(
        Bucket=a.bucket, Key="sha1-copy.bin", ChecksumMode="ENABLED"
    ).get("ChecksumSHA1")
    r["log_warnings"] = [
        line for line in log.getvalue().splitlines()
        if line.startswith(("WARNING", "ERROR")) and "checksum" in line.lower()
    ]
    return r


SCENARIOS = {
    f.__name__: f
    for f in [
        pending_bound,
        multipart_checksums,
        checksums,
        subresources,
        conditional_writes,
        part_copy,
        details,
        sigv2,
        buckets,
        objects,
        bad_keys,
        conditionals,
        same_second,
        listing,
        folders,
        delete_objects,
        copy,
        multipart,
        resume,
        presigned,
        auth,
        anonymous,
        put,
        get,
        big,
    ]
}


def pair(s):
    ak, _, sk = s.partition(":")
    return (ak, sk)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--endpoint", required=True)
    p.add_argument("--key", type=pair, required=True, help="AK:SK, read-write on every bucket")
    p.add_argument("--limited", type=pair, help="AK:SK of a key restricted to --allowed")
    p.add_argument("--allowed", default="allowed")
    p.add_argument("--readonly", type=pair, help="AK:SK of a read-only key")
    p.add_argument("--bucket", default="test-bucket")
    p.add_argument("--object", default="object.bin")
    p.add_argument("--file")
    p.add_argument("--phase", type=int, default=1)
    p.add_argument("--timeout", type=int, default=300)
    a = p.parse_args()

    def too_long(*_):
        sys.stderr.write(
            f"s3_boto3.py {a.scenario}: no result within {a.timeout} s while {STEP[0]}\n"
        )
        os._exit(2)

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(a.timeout)
    try:
        result = SCENARIOS[a.scenario](a)
    except Exception as e:  # noqa: BLE001 - report any failure with the step it happened in
        sys.stderr.write(f"s3_boto3.py {a.scenario}: failed while {STEP[0]}: {e!r}\n")
        raise
    print(json.dumps(result, default=str, sort_keys=True))


if __name__ == "__main__":
    main()
