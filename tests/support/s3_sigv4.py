#!/usr/bin/env python3
"""Hand-signed SigV4 requests to fastdfs-rs' S3 listener, driven by tests/s3.rs.

    python3 tests/support/s3_sigv4.py --endpoint http://127.0.0.1:PORT --key AK:SK --bucket NAME

boto3 signs the whole payload over plain HTTP, so the other forms SDKs send (the AWS SDKs for
Java, Go and JavaScript, s3fs, MinIO clients...) are built here, with the standard library
only: header-signed UNSIGNED-PAYLOAD; aws-chunked bodies with signed chunks
(STREAMING-AWS4-HMAC-SHA256-PAYLOAD), unsigned chunks with a checksum trailer
(STREAMING-UNSIGNED-PAYLOAD-TRAILER, CRC32 and CRC32C) and signed chunks with a signed
trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER); then forged or broken ones: a chunk
altered after signing, a wrong trailer or header checksum, a body that is not the declared
x-amz-content-sha256, and a request dated 20 minutes ago.

The signer first reproduces AWS's published example (the seed, chunk and final signatures of
the 66,560-byte chunked PUT, and the trailer signature of the same example): if it cannot, the
script stops before sending anything. It prints one JSON object of [status, S3 error code]
results and digests; tests/s3.rs asserts on them.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import random
import re
import signal
import sys
import urllib.parse
import zlib

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
REGION = "us-east-1"


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def hmac_sha256(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, day):
    k = hmac_sha256(("AWS4" + secret).encode(), day)
    k = hmac_sha256(k, REGION)
    k = hmac_sha256(k, "s3")
    return hmac_sha256(k, "aws4_request")


def uri_encode(s, keep_slash):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


class Signer:
    def __init__(self, access_key, secret, when):
        self.access_key, self.secret = access_key, secret
        self.amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        self.day = when.strftime("%Y%m%d")
        self.scope = f"{self.day}/{REGION}/s3/aws4_request"
        self.key = signing_key(secret, self.day)
        self.previous = None

    def sign(self, string_to_sign):
        return hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def authorize(self, method, path, query, headers, payload_hash):
        """Adds x-amz-date, x-amz-content-sha256 and Authorization (signing every header)."""
        headers["x-amz-date"] = self.amz_date
        headers["x-amz-content-sha256"] = payload_hash
        names = sorted(h.lower() for h in headers)
        lower = {h.lower(): " ".join(str(v).split()) for h, v in headers.items()}
        canonical_query = "&".join(
            f"{uri_encode(k, False)}={uri_encode(v, False)}" for k, v in sorted(query.items())
        )
        canonical = "\n".join(
            [
                method,
                uri_encode(path, True),
                canonical_query,
                "".join(f"{n}:{lower[n]}\n" for n in names),
                ";".join(names),
                payload_hash,
            ]
        )
        sts = "\n".join(
            ["AWS4-HMAC-SHA256", self.amz_date, self.scope, sha256_hex(canonical.encode())]
        )
        self.previous = self.sign(sts)
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope},"
            f"SignedHeaders={';'.join(names)},Signature={self.previous}"
        )
        return headers

    def chunk_signature(self, data):
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.amz_date,
                self.scope,
                self.previous,
                EMPTY_SHA256,
                sha256_hex(data),
            ]
        )
        self.previous = self.sign(sts)
        return self.previous

    def trailer_signature(self, trailers):
        canonical = "".join(f"{k}:{v}\n" for k, v in trailers)
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self.amz_date,
                self.scope,
                self.previous,
                sha256_hex(canonical.encode()),
            ]
        )
        self.previous = self.sign(sts)
        return self.previous


def self_check():
    """AWS's published chunked-upload example (66,560 bytes of 'a' in 64 KiB + 1 KiB chunks)."""
    s = Signer(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc),
    )
    h = {
        "Host": "s3.amazonaws.com",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "Content-Length": "66824",
    }
    path, payload = "/examplebucket/chunkObject.txt", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    s.authorize("PUT", path, {}, h, payload)
    got = [s.previous]
    got += [s.chunk_signature(b"a" * 65536), s.chunk_signature(b"a" * 1024), s.chunk_signature(b"")]
    got.append(s.trailer_signature([("first", "1st"), ("second", "2nd"), ("third", "3rd")]))
    want = [
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c",
    ]
    if got != want:
        sys.exit(f"s3_sigv4.py: the signer does not reproduce AWS's example: {got} != {want}")


def reflected_crc(poly, bits):
    """A table-driven reflected CRC with all-ones initial value and final XOR."""
    mask = (1 << bits) - 1
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)

    def crc(data):
        c = mask
        for byte in data:
            c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
        return c ^ mask

    return crc


crc32c = reflected_crc(0x82F63B78, 32)
crc64nvme = reflected_crc(0x9A6C9329AC4BC9B5, 64)
assert crc32c(b"123456789") == 0xE3069283
assert crc64nvme(b"123456789") == 0xAE8B14860A799888


def crc_b64(algo, data):
    if algo == "crc64nvme":
        return base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()
    value = zlib.crc32(data) if algo == "crc32" else crc32c(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode()


CHUNK = 64 * 1024


def chunks(data):
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


class Client:
    def __init__(self, endpoint, key, bucket):
        u = urllib.parse.urlsplit(endpoint)
        self.host, self.port = u.hostname, u.port
        self.access_key, self.secret = key
        self.bucket = bucket

    def send(self, method, path, headers, body=b""):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request(method, uri_encode(path, True), body=body or None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def signer(self, skew_minutes=0):
        now = datetime.datetime.now(datetime.timezone.utc)
        return Signer(self.access_key, self.secret, now - datetime.timedelta(minutes=skew_minutes))

    def base_headers(self, extra=None):
        h = {"Host": f"{self.host}:{self.port}"}
        h.update(extra or {})
        return h

    def simple(self, method, key, body=b"", payload_hash=None, extra=None, skew=0):
        path = f"/{self.bucket}/{key}" if key is not None else f"/{self.bucket}"
        h = self.base_headers(extra)
        if body:
            h["Content-Length"] = str(len(body))
        self.signer(skew).authorize(method, path, {}, h, payload_hash or sha256_hex(body))
        return self.send(method, path, h, body)

    def streaming(self, key, data, mode, algo=None, corrupt_chunk=None, wrong_trailer=False):
        """PUT of data as an aws-chunked body; mode 'signed', 'unsigned-trailer' or
        'signed-trailer'; corrupt_chunk alters one byte of that chunk after signing."""
        path = f"/{self.bucket}/{key}"
        s = self.signer()
        parts = chunks(data)
        trailer = None
        if algo:
            value = crc_b64(algo, data if not wrong_trailer else data + b"!")
            trailer = (f"x-amz-checksum-{algo}", value)
        # The body's length is known only once every chunk line is written: sign with a
        # placeholder length of the same digits, then fix it (Content-Length is signed).
        payload = {
            "signed": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "signed-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        }[mode]
        signed_chunks = mode != "unsigned-trailer"
        body_len = encoded_length(parts, signed_chunks, trailer, mode == "signed-trailer")
        h = self.base_headers(
            {
                "Content-Encoding": "aws-chunked",
                "Content-Length": str(body_len),
                "x-amz-decoded-content-length": str(len(data)),
            }
        )
        if trailer:
            h["x-amz-trailer"] = trailer[0]
        s.authorize("PUT", path, {}, h, payload)
        out = bytearray()
        for i, c in enumerate(parts + [b""]):
            if signed_chunks:
                out += b"%x;chunk-signature=%s\r\n" % (len(c), s.chunk_signature(c).encode())
            else:
                out += b"%x\r\n" % len(c)
            if c:
                if i == corrupt_chunk:
                    c = bytes([c[0] ^ 1]) + c[1:]
                out += c + b"\r\n"
        if trailer:
            out += f"{trailer[0]}:{trailer[1]}\r\n".encode()
            if mode == "signed-trailer":
                out += f"x-amz-trailer-signature:{s.trailer_signature([trailer])}\r\n".encode()
        out += b"\r\n"
        assert len(out) == body_len, (len(out), body_len)
        return self.send("PUT", path, h, bytes(out))


def encoded_length(parts, signed, trailer, signed_trailer):
    n = 0
    for c in parts + [b""]:
        n += len(b"%x" % len(c)) + (len(";chunk-signature=") + 64 if signed else 0) + 2
        if c:
            n += len(c) + 2
    if trailer:
        n += len(f"{trailer[0]}:{trailer[1]}\r\n")
        if signed_trailer:
            n += len("x-amz-trailer-signature:") + 64 + 2
    return n + 2


def code_of(body):
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None


def run(a):
    c = Client(a.endpoint, a.key, a.bucket)
    r = {}

    def result(name, resp, data=None):
        status, headers, body = resp
        r[name] = [status, code_of(body) if status >= 300 else None]
        if data is not None and status == 200:
            r[name].append(headers.get("etag") == '"%s"' % hashlib.md5(data).hexdigest())

    def read_back(key, data):
        status, headers, body = c.simple("GET", key)
        return {
            "status": status,
            "code": code_of(body) if status >= 300 else None,
            "same_bytes": body == data,
            "content_encoding": headers.get("content-encoding"),
        }

    result("create_bucket", c.simple("PUT", None))
    data = random.Random(7).randbytes(150_000)  # two 64 KiB chunks and a shorter one

    result("signed_payload", c.simple("PUT", "signed.bin", data), data)
    result("unsigned_payload", c.simple("PUT", "unsigned.bin", data, "UNSIGNED-PAYLOAD"), data)
    result("streaming_signed", c.streaming("chunked.bin", data, "signed"), data)
    result(
        "streaming_unsigned_crc32",
        c.streaming("trailer-crc32.bin", data, "unsigned-trailer", "crc32"),
        data,
    )
    result(
        "streaming_unsigned_crc32c",
        c.streaming("trailer-crc32c.bin", data, "unsigned-trailer", "crc32c"),
        data,
    )
    result(
        "streaming_unsigned_crc64nvme",
        c.streaming("trailer-crc64nvme.bin", data, "unsigned-trailer", "crc64nvme"),
        data,
    )
    result(
        "streaming_signed_trailer",
        c.streaming("signed-trailer.bin", data, "signed-trailer", "crc32"),
        data,
    )
    result(
        "header_crc32",
        c.simple(
            "PUT",
            "header-crc.bin",
            data,
            extra={"x-amz-checksum-crc32": crc_b64("crc32", data)},
        ),
        data,
    )
    r["read_back"] = {
        k: read_back(k, data)
        for k in [
            "signed.bin",
            "unsigned.bin",
            "chunked.bin",
            "trailer-crc32.bin",
            "trailer-crc32c.bin",
            "trailer-crc64nvme.bin",
            "signed-trailer.bin",
            "header-crc.bin",
        ]
    }

    # A verified trailer checksum is echoed by the PUT, kept, and returned to a GET that asks
    # for it (x-amz-checksum-mode: ENABLED).
    r["checksums"] = {}
    for key, mode, algo in [
        ("sum-crc32c.bin", "unsigned-trailer", "crc32c"),
        ("sum-crc64nvme.bin", "unsigned-trailer", "crc64nvme"),
        ("sum-signed.bin", "signed-trailer", "crc32"),
    ]:
        _, put_headers, _ = c.streaming(key, data, mode, algo)
        _, get_headers, body = c.simple("GET", key, extra={"x-amz-checksum-mode": "ENABLED"})
        r["checksums"][key] = {
            "want": crc_b64(algo, data),
            "put": put_headers.get(f"x-amz-checksum-{algo}"),
            "get": get_headers.get(f"x-amz-checksum-{algo}"),
            "type": get_headers.get("x-amz-checksum-type"),
            "same_bytes": body == data,
        }

    # Small payloads (one chunk) are gathered in memory and written whole by the server.
    small = random.Random(8).randbytes(3_000)
    result("small_signed_payload", c.simple("PUT", "small-signed.bin", small), small)
    result("small_streaming_signed", c.streaming("small-chunked.bin", small, "signed"), small)
    result(
        "small_streaming_unsigned_crc32",
        c.streaming("small-trailer.bin", small, "unsigned-trailer", "crc32"),
        small,
    )
    r["read_back_small"] = {
        k: read_back(k, small)
        for k in ["small-signed.bin", "small-chunked.bin", "small-trailer.bin"]
    }
    result(
        "small_altered_chunk",
        c.streaming("small-altered.bin", small, "signed", corrupt_chunk=0),
    )
    result(
        "small_wrong_trailer_crc32",
        c.streaming(
            "small-wrong-trailer.bin", small, "unsigned-trailer", "crc32", wrong_trailer=True
        ),
    )

    result("altered_chunk", c.streaming("altered.bin", data, "signed", corrupt_chunk=1))
    result(
        "wrong_trailer_crc32",
        c.streaming("wrong-trailer.bin", data, "unsigned-trailer", "crc32", wrong_trailer=True),
    )
    result(
        "wrong_trailer_crc64nvme",
        c.streaming(
            "wrong-trailer-64.bin", data, "unsigned-trailer", "crc64nvme", wrong_trailer=True
        ),
    )
    result(
        "wrong_header_crc32",
        c.simple(
            "PUT",
            "wrong-header-crc.bin",
            data,
            extra={"x-amz-checksum-crc32": crc_b64("crc32", data + b"!")},
        ),
    )
    result("wrong_content_sha256", c.simple("PUT", "wrong-sha.bin", data, sha256_hex(b"other")))
    result("skewed_clock", c.simple("PUT", "skewed.bin", data, skew=20))
    r["refused_left_nothing"] = {
        k: read_back(k, data)["status"]
        for k in [
            "altered.bin",
            "wrong-trailer.bin",
            "wrong-trailer-64.bin",
            "wrong-header-crc.bin",
            "wrong-sha.bin",
            "skewed.bin",
            "small-altered.bin",
            "small-wrong-trailer.bin",
        ]
    }
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--key", required=True, help="AK:SK")
    p.add_argument("--bucket", required=True)
    p.add_argument("--timeout", type=int, default=120)
    a = p.parse_args()
    ak, _, sk = a.key.partition(":")
    a.key = (ak, sk)
    too_long = f"s3_sigv4.py: no result within {a.timeout} s"
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(too_long))
    signal.alarm(a.timeout)
    self_check()
    print(json.dumps(run(a), sort_keys=True))


if __name__ == "__main__":
    main()
