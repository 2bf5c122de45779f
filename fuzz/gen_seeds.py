#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/seeds/<target>/.

Each fuzz target prefixes the interesting bytes with a small binary header (flags,
split points, lengths, ...; see the doc comment at the top of each target). This
script writes realistic HTTP inputs wrapped in those headers, so the fuzzer starts
from well-formed requests instead of from nothing.

Usage: python3 fuzz/gen_seeds.py   (from the repository root or from fuzz/)
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")
MAX_SEED = 4096


def write(target, name, data):
    assert len(data) < MAX_SEED, (target, name, len(data))
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def cuts_header(flags, cuts):
    """http_head / chunked layout: flags byte, cut count, u16 LE cut positions."""
    return bytes([flags, len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts)


# ---------------------------------------------------------------- sample bodies

CURL_BOUNDARY = b"------------------------d74496d66958873e"
CURL_BODY = (
    b"--" + CURL_BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="file"; filename="hello.txt"\r\n'
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"hello world\n"
    b"\r\n--" + CURL_BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="scene"\r\n'
    b"\r\n"
    b"default"
    b"\r\n--" + CURL_BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="output"\r\n'
    b"\r\n"
    b"json"
    b"\r\n--" + CURL_BOUNDARY + b"--\r\n"
)

CHROME_BOUNDARY = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"
CHROME_BODY = (
    b"--" + CHROME_BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="file"; filename="r\xc3\xa9sum\xc3\xa9 (1).pdf"\r\n'
    b"Content-Type: application/pdf\r\n"
    b"\r\n"
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    b"\r\n--" + CHROME_BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="path"\r\n'
    b"\r\n"
    b"docs/2024"
    b"\r\n--" + CHROME_BOUNDARY + b"--\r\n"
)

FIREFOX_BOUNDARY = b"---------------------------27426148912853706983372786441"
FIREFOX_BODY = (
    b"--" + FIREFOX_BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="file"; filename="C:\\Users\\me\\a.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n"
    b"\r\n"
    b"\x00\x01\x02\r\n-\r\n--\xff\xfe"
    b"\r\n--" + FIREFOX_BOUNDARY + b"--\r\n"
)

# RFC 5987 filename*, preamble, epilogue, transport padding, short boundary.
RFC_BODY = (
    b"This is the preamble.\r\n"
    b"--xyz  \r\n"
    b"content-disposition: form-data; name=up; filename*=UTF-8''a%20b.txt; filename=x\r\n"
    b"content-type: text/plain\r\n"
    b"X-Ignored: 1\r\n"
    b"\r\n"
    b"line1\r\nline2 --xy\r\n-"
    b"\r\n--xyz--\r\nepilogue\r\n"
)

CHUNKED_BODY = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"

# ------------------------------------------------------------------- http_head

HEADS = {
    "get_keepalive": (
        b"GET /group1/default/20240101/12/00/1/hello.txt?download=1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8080\r\n"
        b"User-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\n"
        b"\r\n"
    ),
    "get_browser_range": (
        b"GET /group1/default/20240101/a.mp4 HTTP/1.1\r\n"
        b"Host: files.example.com\r\n"
        b"Connection: keep-alive\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
        b"Accept: video/webm,video/ogg,video/*;q=0.9,*/*;q=0.5\r\n"
        b"Accept-Encoding: identity\r\n"
        b"Range: bytes=0-\r\n"
        b'If-Range: "5d41402abc4b2a76b9719d911017c592"\r\n'
        b"Cookie: a=b; c=d\r\n"
        b"\r\n"
    ),
    "head_http10": b"HEAD /group1/stat HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "post_curl_multipart": (
        b"POST /group1/upload HTTP/1.1\r\n"
        b"Host: localhost:8080\r\n"
        b"User-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\n"
        b"Content-Length: " + str(len(CURL_BODY)).encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=" + CURL_BOUNDARY + b"\r\n"
        b"Expect: 100-continue\r\n"
        b"\r\n" + CURL_BODY
    ),
    "post_chunked": (
        b"POST /group1/upload?output=json HTTP/1.1\r\n"
        b"Host: localhost\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"\r\n" + CHUNKED_BODY
    ),
    "pipelined": (
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /group1/delete HTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\n"
        b"md5=abcdef012"
        b"DELETE /x%20y?z=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ),
    "lf_only_folded": (
        b"GET / HTTP/1.1\nHost: h\nX-Long: a\n  folded\nContent-Length: 0\n\n"
    ),
}

# ---------------------------------------------------------------------- range

RANGES = [
    ("simple", 10000, b"bytes=0-499"),
    ("open", 10000, b"bytes=9500-"),
    ("suffix", 10000, b"bytes=-500"),
    ("multi", 10000, b"bytes=0-0, -1, 500-600,601-999"),
    ("overlap_ows", 10000, b" BYTES = 100-200 ,, 150-300\t"),
    ("unsat", 100, b"bytes=200-300"),
    ("zero_len_suffix", 0, b"bytes=-10"),
    ("huge", 2**64 - 1, b"bytes=18446744073709551615-,0-99999999999999999999999"),
    ("other_unit", 10000, b"items=0-5"),
    ("if_range_date", 1700000000, b"Tue, 14 Nov 2023 22:13:20 GMT"),
    ("if_range_etag", 10000, b'"5d41402abc4b2a76b9719d911017c592"'),
]

# ------------------------------------------------------------------ multipart

BCHARS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "


def multipart_seed(boundary, chunk_seeds, knobs, payload):
    """multipart layout: len-1, boundary as BCHARS indices, 4 chunk seeds, knobs, payload."""
    assert 1 <= len(boundary) <= 70
    return (
        bytes([len(boundary) - 1])
        + bytes(BCHARS.index(c) for c in boundary)
        + bytes(chunk_seeds)
        + bytes([knobs])
        + payload
    )


MULTIPARTS = [
    # knobs 0xff: biggest small limits (head 168 B, 6 parts, preamble 56 B).
    ("curl", CURL_BOUNDARY, [255, 7, 64, 1], 0xFF, CURL_BODY),
    ("chrome", CHROME_BOUNDARY, [0, 0, 0, 0], 0xFF, CHROME_BODY),
    ("firefox", FIREFOX_BOUNDARY, [32, 33, 34, 35], 0xFE, FIREFOX_BODY),
    ("rfc5987_preamble", b"xyz", [3, 5, 9, 17], 0xEF, RFC_BODY),
    # Payload used by the well-formed builder (knobs % 5 = 3 parts) and as a Content-Type.
    ("content_type", b"abc", [10, 20, 30, 40], 0x6D,
     b'multipart/form-data; charset=utf-8; boundary="----WebKitFormBoundaryX Y"'),
    ("content_type_token", b"b", [1, 2, 3, 4], 0x03,
     b"Multipart/Form-Data;BOUNDARY=" + CURL_BOUNDARY),
]


def main():
    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    for name, head in HEADS.items():
        write("http_head", name, cuts_header(0, []) + head)
        # Same stream split at a few points (and with tight limits).
        n = len(head)
        write("http_head", name + "_split", cuts_header(1, [1, n // 3, n // 2, n - 1]) + head)
    for name, body in [
        ("simple", CHUNKED_BODY),
        ("trailers", b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1\r\n"),
        ("hex_upper", b"1A;name=\"v\"\r\n" + b"x" * 26 + b"\r\n000\r\n\r\n"),
        ("lf_only", b"3\nabc\n0\n\n"),
        ("empty", b"0\r\n\r\n"),
    ]:
        write("chunked", name, cuts_header(0, []) + body)
        write("chunked", name + "_split_tight", cuts_header(1, [1, 2, len(body) // 2, len(body) - 1]) + body)
    for name, length, value in RANGES:
        write("range", name, struct.pack("<Q", length) + b"\x00" + value)
    for name, boundary, chunks, knobs, payload in MULTIPARTS:
        write("multipart", name, multipart_seed(boundary, chunks, knobs, payload))
    total = sum(
        os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(SEEDS) for f in fs
    )
    print(f"wrote seeds to {SEEDS} ({total} bytes)")


if __name__ == "__main__":
    main()
