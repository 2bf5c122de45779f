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

# ---------------------------------------------------------------------- names


def names_seed(flags, time, fields):
    """names layout: flags, u32 LE time, text fields separated by 0xFF."""
    return bytes([flags]) + struct.pack("<I", time) + b"\xff".join(fields)


T_2023 = 1700000000  # 2023-11-14 22:13:20 UTC
NAMES = [
    # (name, flags, time, [a, b, c, d]): a = path/scene/..., b = file name, c = filename, d = peer id
    ("custom_path", 0, T_2023, [b"/docs/2024/", b"report.pdf", b"report(1).pdf", b""]),
    ("traversal", 0, T_2023, [b"../../../../tmp/pwn", b"..", b"a\\b", b""]),
    ("reserved", 0, T_2023, [b"_tmp/x", b"haystack", b"files/_big/1", b""]),
    ("dated_peer", 2, T_2023, [b"files/default/20231114/22", b"13", b"22", b"1"]),
    ("dated", 0, 0, [b"files/default", b"20231114", b"19700101", b""]),
    ("trim_special", 1, T_2023, [b"my file-(1)#x.txt", b"dir/a..b.txt", "中文 名.txt".encode(), b""]),
    ("download_path", 0, T_2023, [b"default/20231114/22/13/1/a%20b.txt", b"%2e%2e/x", b"_cache/x/y.jpg", b""]),
    ("announce", 2, T_2023, [b"files/haystack/1", b"a.txt", b"1_2_3.txt", b"1"]),
    ("controls", 0, T_2023, [b"a\x00b", b"a\nb", b"scene:secret", b"\x7f"]),
    ("long", 0, T_2023, [b"/".join([b"d" * 200] * 6), b"a" * 255, b"b" * 256, b""]),
    ("extensions", 1, T_2023, [b"A.PNG", b".bashrc", b"x.", "İ.TXT".encode()]),
]

# ---------------------------------------------------------------------- query

QUERIES = [
    # (name, flags, raw)
    ("basic", 0, b"a=1&b=x+y&c=%41%zz"),
    ("upload_fields", 0, b"scene=default&output=json2&path=docs%2F2024&filename=a%20b.txt&code=123456"),
    ("utf8", 2, b"name=%E4%BD%A0%E5%A5%BD&p=%2Fgroup1%2Fa%20b.txt&plus=%2B"),
    ("empty_pairs", 8, b"=v&=&a=1&&b&"),
    ("bad_escapes", 0, b"a=%&b=%4&c=%%41&d=%g1&e=100%&f=%FF%41"),
    ("round_trip_fields", 5, b"file\xffa b&c=d+e.txt\xffscene\xff\xffempty\xff"),
    ("path", 0, b"/group1/default/20231114/22/13/1/%E4%B8%AD%20x.txt"),
    ("path_nul", 0, b"/a%00b/%2e%2e/%5C"),
    ("listing_name", 0, b"javascript:alert(1)"),
    ("sub_delims", 1, b"a;b,c&d=e+f:g@h$i'j(k)*l!m~n"),
]

# ------------------------------------------------------------------------ tus

TUS = [
    # (name, flags, raw)
    ("metadata", 0, b"filename dGVzdC50eHQ=,scene ZGVmYXVsdA, flag"),
    ("metadata_uppy", 2, b"relativePath bnVsbA==,name cGhvdG8ucG5n,type aW1hZ2UvcG5n,filetype aW1hZ2UvcG5n,filename cGhvdG8ucG5n"),
    ("metadata_bad", 0, b"a !!!,a x,a b c"),
    ("metadata_fields", 4 | (0 << 3), b"hello.txt\xffpath\xffdocs/2024\xffblob\xff\x80\x81"),
    ("id", 0, b"0123456789abcdef0123456789abcdef"),
    ("length", 0, b"1073741824"),
    ("length_max", 0, b"9999999999999999999"),
    ("checksum_sha1", 0, b"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
    ("checksum_md5", 0x40 | 0x80, b"MD5 XrY7u+Ae7tCTyyK7j1rNww=="),
    ("content_type", 0, b"application/offset+octet-stream; charset=binary"),
    ("route", 0, b"/big/upload/0123456789abcdef0123456789abcdef"),
]

# ----------------------------------------------------------------- path_clean

PATHS = [
    # (name, flags, raw target)
    ("backslash_authority", 0, b"/./\\evil.com"),
    ("double_slash", 2, b"//evil.com/"),
    ("traversal", 0, b"/../../etc/passwd"),
    ("dots_trailing", 0, b"/group1/./a/../b/"),
    ("download", 0, b"/group1/default/20231114/22/13/1/a.txt"),
    ("encoded_dots", 0, b"/%2e%2e/%2F%2Fevil.com"),
    ("absolute_form", 0, b"http://evil.com/x"),
    ("asterisk", 0, b"*"),
    ("query", 2, b"/a//b?x=1&y=/../"),
    ("backslashes", 1, b"\\\\evil.com/.\\./x"),
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
    for name, flags, time, fields in NAMES:
        write("names", name, names_seed(flags, time, fields))
    for name, flags, raw in QUERIES:
        write("query", name, bytes([flags]) + raw)
    for name, flags, raw in TUS:
        write("tus", name, bytes([flags]) + raw)
    for name, flags, raw in PATHS:
        write("path_clean", name, bytes([flags]) + raw)
    total = sum(
        os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(SEEDS) for f in fs
    )
    print(f"wrote seeds to {SEEDS} ({total} bytes)")


if __name__ == "__main__":
    main()
