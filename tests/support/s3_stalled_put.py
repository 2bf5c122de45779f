#!/usr/bin/env python3
"""A PUT to fastdfs-rs' S3 listener whose client stalls in the middle of its body, driven by
tests/s3.rs (shutdown while uploads are in flight).

    python3 tests/support/s3_stalled_put.py --endpoint http://127.0.0.1:PORT --key AK:SK \
        --bucket NAME --object KEY

Creates the bucket, sends a header-signed UNSIGNED-PAYLOAD PUT of 4 MiB with only its first
MiB, prints `stalled` and waits (up to 60 s) for the server's answer; then prints one JSON
object: {"status": <HTTP status or null>, "code": <S3 error code or null>}.
"""

import argparse
import importlib.util
import json
import os
import pathlib
import re
import socket

here = pathlib.Path(__file__).with_name("s3_sigv4.py")
spec = importlib.util.spec_from_file_location("s3_sigv4", here)
sigv4 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sigv4)

MIB = 1 << 20


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--object", required=True)
    a = p.parse_args()
    client = sigv4.Client(a.endpoint, tuple(a.key.split(":", 1)), a.bucket)
    assert client.simple("PUT", None)[0] == 200, "bucket not created"
    path = f"/{a.bucket}/{a.object}"
    headers = client.base_headers({"Content-Length": str(4 * MIB)})
    client.signer().authorize("PUT", path, {}, headers, "UNSIGNED-PAYLOAD")
    s = socket.create_connection((client.host, client.port))
    head = f"PUT {sigv4.uri_encode(path, True)} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode() + os.urandom(MIB))
    print("stalled", flush=True)
    s.settimeout(60)
    answer = b""
    try:
        while True:
            got = s.recv(65536)
            if not got:
                break
            answer += got
    except OSError:
        pass
    status = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    code = re.search(rb"<Code>([^<]*)</Code>", answer)
    print(
        json.dumps(
            {
                "status": int(status.group(1)) if status else None,
                "code": code.group(1).decode() if code else None,
            }
        )
    )


if __name__ == "__main__":
    main()
