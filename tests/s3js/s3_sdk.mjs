// The AWS SDK for JavaScript v3 against fastdfs-rs' S3 listener, driven by tests/s3_clients.rs.
//
//   node tests/s3js/s3_sdk.mjs --endpoint http://127.0.0.1:PORT --key AK:SK --bucket NAME --dir DIR
//
// DIR holds the files tests/s3_clients.rs wrote (small.txt, stream.bin, big.bin); downloads are
// written beside them (*.got) for the test to compare byte for byte. The client is the SDK's
// default (flexible checksums: CRC32 on every PutObject and UploadPart, aws-chunked bodies with
// a checksum trailer for streams) with path-style addressing. Every step's outcome is recorded,
// a failed step as {error, status, message}, and one JSON object is printed on stdout: the
// test asserts on it. The script itself only exits 1 when it cannot start.

import { createReadStream, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const need of ["endpoint", "key", "bucket", "dir"]) {
    if (!out[need]) {
      console.error(`missing --${need}`);
      process.exit(1);
    }
  }
  return out;
}

const opts = args();
const [accessKeyId, secretAccessKey] = opts.key.split(/:(.*)/s);
const client = (secret = secretAccessKey) =>
  new S3Client({
    endpoint: opts.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId, secretAccessKey: secret },
  });
const s3 = client();
const B = opts.bucket;
const file = (name) => join(opts.dir, name);
const result = {};

/** Runs one step; its value, or what went wrong, lands in result[name]. */
async function step(name, fn) {
  try {
    result[name] = await fn();
  } catch (e) {
    result[name] = {
      error: e.name || String(e),
      status: e.$metadata ? e.$metadata.httpStatusCode : null,
      message: String(e.message || e).slice(0, 500),
    };
  }
}

async function bodyBytes(body) {
  return Buffer.from(await body.transformToByteArray());
}

const small = readFileSync(file("small.txt"));

await step("create_bucket", async () => {
  const r = await s3.send(new CreateBucketCommand({ Bucket: B }));
  return { status: r.$metadata.httpStatusCode };
});

await step("put_small", async () => {
  const r = await s3.send(
    new PutObjectCommand({
      Bucket: B,
      Key: "docs/small.txt",
      Body: small,
      ContentType: "text/plain; charset=utf-8",
      Metadata: { origin: "js-sdk" },
    }),
  );
  return { etag: r.ETag, crc32: r.ChecksumCRC32 ?? null };
});

// A stream of known length: the SDK sends it aws-chunked with an x-amz-checksum-crc32 trailer.
await step("put_stream", async () => {
  const size = readFileSync(file("stream.bin")).length;
  const r = await s3.send(
    new PutObjectCommand({
      Bucket: B,
      Key: "docs/stream.bin",
      Body: createReadStream(file("stream.bin")),
      ContentLength: size,
    }),
  );
  return { etag: r.ETag, crc32: r.ChecksumCRC32 ?? null };
});

await step("get_small", async () => {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: B, Key: "docs/small.txt", ChecksumMode: "ENABLED" }),
  );
  writeFileSync(file("small.got"), await bodyBytes(r.Body));
  return {
    etag: r.ETag,
    length: r.ContentLength,
    type: r.ContentType,
    metadata: r.Metadata,
    crc32: r.ChecksumCRC32 ?? null,
  };
});

await step("get_stream", async () => {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: B, Key: "docs/stream.bin", ChecksumMode: "ENABLED" }),
  );
  writeFileSync(file("stream.got"), await bodyBytes(r.Body));
  return { etag: r.ETag, length: r.ContentLength };
});

await step("get_range", async () => {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: B, Key: "docs/stream.bin", Range: "bytes=10-19" }),
  );
  return {
    status: r.$metadata.httpStatusCode,
    range: r.ContentRange,
    hex: (await bodyBytes(r.Body)).toString("hex"),
  };
});

await step("head_small", async () => {
  const r = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "docs/small.txt" }));
  return { etag: r.ETag, length: r.ContentLength, type: r.ContentType, metadata: r.Metadata };
});

await step("copy", async () => {
  const r = await s3.send(
    new CopyObjectCommand({
      Bucket: B,
      Key: "copies/small-copy.txt",
      CopySource: `${B}/docs/small.txt`,
    }),
  );
  return { etag: r.CopyObjectResult.ETag };
});

// lib-storage's managed upload: 5 MiB parts, three at a time, each part with its CRC32.
await step("upload", async () => {
  const up = new Upload({
    client: s3,
    params: { Bucket: B, Key: "big/big.bin", Body: createReadStream(file("big.bin")) },
    partSize: 5 * 1024 * 1024,
    queueSize: 3,
    leavePartsOnError: false,
  });
  const r = await up.done();
  return { etag: r.ETag, key: r.Key, location: r.Location ?? null };
});

await step("get_big", async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: B, Key: "big/big.bin" }));
  writeFileSync(file("big.got"), await bodyBytes(r.Body));
  return { etag: r.ETag, length: r.ContentLength };
});

// A multipart object's checksum: lib-storage asked for CRC32 (COMPOSITE, `<b64>-<parts>`),
// and low-level calls asking for a FULL_OBJECT CRC32, which the SDK validates on GetObject.
await step("upload_crc32", async () => {
  const up = new Upload({
    client: s3,
    params: {
      Bucket: B,
      Key: "big/crc.bin",
      Body: createReadStream(file("big.bin")),
      ChecksumAlgorithm: "CRC32",
    },
    partSize: 5 * 1024 * 1024,
    queueSize: 3,
    leavePartsOnError: false,
  });
  const r = await up.done();
  return { etag: r.ETag, crc32: r.ChecksumCRC32 ?? null, type: r.ChecksumType ?? null };
});

await step("get_crc32", async () => {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: B, Key: "big/crc.bin", ChecksumMode: "ENABLED" }),
  );
  writeFileSync(file("crc.got"), await bodyBytes(r.Body));
  return { crc32: r.ChecksumCRC32 ?? null, type: r.ChecksumType ?? null };
});

await step("upload_full_object", async () => {
  const big = readFileSync(file("big.bin"));
  const Key = "big/full.bin";
  const created = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket: B,
      Key,
      ChecksumAlgorithm: "CRC32",
      ChecksumType: "FULL_OBJECT",
    }),
  );
  const Parts = [];
  const size = 5 * 1024 * 1024;
  for (let n = 1; (n - 1) * size < big.length; n++) {
    const p = await s3.send(
      new UploadPartCommand({
        Bucket: B,
        Key,
        UploadId: created.UploadId,
        PartNumber: n,
        Body: big.subarray((n - 1) * size, n * size),
        ChecksumAlgorithm: "CRC32",
      }),
    );
    Parts.push({ PartNumber: n, ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32 });
  }
  const done = await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: B,
      Key,
      UploadId: created.UploadId,
      MultipartUpload: { Parts },
    }),
  );
  const got = await s3.send(new GetObjectCommand({ Bucket: B, Key, ChecksumMode: "ENABLED" }));
  writeFileSync(file("full.got"), await bodyBytes(got.Body));
  return {
    create: [created.ChecksumAlgorithm ?? null, created.ChecksumType ?? null],
    complete: [done.ChecksumCRC32 ?? null, done.ChecksumType ?? null],
    get: [got.ChecksumCRC32 ?? null, got.ChecksumType ?? null],
  };
});

// Gone again: the listing below is of the other objects.
await step("remove_checksummed", async () => {
  for (const Key of ["big/crc.bin", "big/full.bin"]) {
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key }));
  }
  return {};
});

await step("presigned_get", async () => {
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: B, Key: "docs/stream.bin" }), {
    expiresIn: 300,
  });
  const r = await fetch(url);
  writeFileSync(file("presigned.got"), Buffer.from(await r.arrayBuffer()));
  return { status: r.status, etag: r.headers.get("etag") };
});

// A folder marker (an empty key ending in '/', as consoles make folders): a directory here.
await step("folder", async () => {
  const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: "folder/", Body: "" }));
  const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "folder/" }));
  return { put_etag: put.ETag, head_etag: head.ETag, head_length: head.ContentLength };
});

/** Every key of the bucket, page by page (MaxKeys 2), and the prefixes at the top level. */
async function listing() {
  const keys = [];
  let token;
  let pages = 0;
  do {
    const r = await s3.send(
      new ListObjectsV2Command({ Bucket: B, MaxKeys: 2, ContinuationToken: token }),
    );
    for (const c of r.Contents ?? []) keys.push([c.Key, c.Size, c.ETag]);
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
    pages += 1;
  } while (token && pages < 50);
  const top = await s3.send(new ListObjectsV2Command({ Bucket: B, Delimiter: "/" }));
  const prefixes = (top.CommonPrefixes ?? []).map((p) => p.Prefix);
  return { keys, pages, prefixes, top_keys: (top.Contents ?? []).map((c) => c.Key) };
}

await step("list", listing);

await step("delete_objects", async () => {
  const r = await s3.send(
    new DeleteObjectsCommand({
      Bucket: B,
      Delete: { Objects: [{ Key: "docs/small.txt" }, { Key: "copies/small-copy.txt" }, { Key: "never/was" }] },
    }),
  );
  return {
    deleted: (r.Deleted ?? []).map((d) => d.Key).sort(),
    errors: (r.Errors ?? []).map((e) => [e.Key, e.Code]),
  };
});

await step("delete_object", async () => {
  const r = await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "docs/stream.bin" }));
  const f = await s3.send(new DeleteObjectCommand({ Bucket: B, Key: "folder/" }));
  return { status: r.$metadata.httpStatusCode, folder_status: f.$metadata.httpStatusCode };
});

await step("list_after", listing);

/** The error the SDK reports for a request that must fail. */
async function failure(fn) {
  try {
    await fn();
    return { error: null };
  } catch (e) {
    return { error: e.name, status: e.$metadata ? e.$metadata.httpStatusCode : null };
  }
}

await step("errors", async () => ({
  get_missing: await failure(() => s3.send(new GetObjectCommand({ Bucket: B, Key: "docs/small.txt" }))),
  head_missing: await failure(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "nope" }))),
  folder_gone: await failure(() => s3.send(new HeadObjectCommand({ Bucket: B, Key: "folder/" }))),
  no_bucket: await failure(() =>
    s3.send(new ListObjectsV2Command({ Bucket: "no-such-bucket-here" })),
  ),
  bad_secret: await failure(() =>
    client("wrong").send(new GetObjectCommand({ Bucket: B, Key: "big/big.bin" })),
  ),
  bad_checksum: await failure(() =>
    s3.send(
      new PutObjectCommand({ Bucket: B, Key: "bad/crc", Body: small, ChecksumCRC32: "AAAAAA==" }),
    ),
  ),
}));

console.log(JSON.stringify(result));
