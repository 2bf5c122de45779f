// tus-js-client (the tus client of Uppy and of most web pages) against a tus endpoint, for
// tests/tus.rs. Node: the file is read from disk as a Buffer.
//
//   node tus_client.mjs upload ENDPOINT FILE NAME PARALLEL CHUNK
//     One upload of FILE with metadata filename=NAME, in PARALLEL parallel partial uploads
//     (tus concatenation when > 1), CHUNK bytes per PATCH.
//   node tus_client.mjs resume ENDPOINT FILE NAME CHUNK STORE
//     Starts the upload, stops it after its first chunk is acknowledged, then a second Upload
//     of the same file finds it in the URL store STORE (tus' fingerprint) and finishes it.
//
// Prints one JSON object: {ok, url, error, phases: [{requests: [[method, status, offset]]}]}.
import * as tus from 'tus-js-client';
import fs from 'node:fs';

const [mode, endpoint, file, name, ...rest] = process.argv.slice(2);
const data = fs.readFileSync(file);
const out = { ok: false, url: null, error: null, phases: [] };

function run(options, { stopAfterFirstChunk = false } = {}) {
  const phase = { requests: [] };
  out.phases.push(phase);
  return new Promise((resolve) => {
    let upload;
    const opts = {
      endpoint,
      metadata: { filename: name },
      retryDelays: [],
      onAfterResponse: (req, res) => {
        phase.requests.push([req.getMethod(), res.getStatus(), res.getHeader('Upload-Offset') ?? null]);
      },
      onError: (e) => resolve({ error: String(e) }),
      onSuccess: () => resolve({ url: upload.url }),
      ...options,
    };
    if (stopAfterFirstChunk) {
      opts.onChunkComplete = () => {
        upload.abort().then(() => resolve({ stopped: true, url: upload.url }));
      };
    }
    upload = new tus.Upload(data, opts);
    if (options.findPrevious) {
      upload.findPreviousUploads().then((previous) => {
        phase.previous = previous.length;
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      });
    } else {
      upload.start();
    }
  });
}

let result;
if (mode === 'upload') {
  const [parallel, chunk] = rest.map(Number);
  result = await run({ parallelUploads: parallel, chunkSize: chunk });
} else if (mode === 'resume') {
  const [chunk, store] = [Number(rest[0]), rest[1]];
  const urlStorage = new tus.FileUrlStorage(store);
  const common = { chunkSize: chunk, urlStorage, storeFingerprintForResuming: true };
  const first = await run(common, { stopAfterFirstChunk: true });
  if (first.error) {
    result = first;
  } else {
    result = await run({ ...common, findPrevious: true });
  }
} else {
  result = { error: `unknown mode ${mode}` };
}
out.ok = !result.error;
out.url = result.url ?? null;
out.error = result.error ?? null;
console.log(JSON.stringify(out));
