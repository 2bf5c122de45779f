#!/usr/bin/env node
// Drives the fastdfs-rs upload page in headless Chromium for tests/web_page.rs.
//
//   node upload_page.js [--auth-token=T] <page-url> <file-to-upload> <screenshot.png> [other-page-url ...]
//
// Opens <page-url>, chooses <file-to-upload> in the form's file input (and types T into its
// auth_token field), takes a screenshot, submits the form (the page sends it with fetch) and
// prints one JSON object on stdout: what the form looked like, the upload request and
// response, and the answer the page shows after submit. Each <other-page-url> is only opened
// to report its form. Exits non-zero (with {"error": ...} on stdout) on failure.
// Chromium: $CHROMIUM_BIN or /usr/bin/chromium (Debian's; no browser download).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const STEP_MS = 30_000;
const TOTAL_MS = 120_000;

function describeForm() {
  const form = document.querySelector('form');
  const file = form && form.querySelector('input[type=file]');
  return {
    title: document.title,
    form: form && {
      action: form.action,
      rawAction: form.getAttribute('action'),
      method: form.method,
      enctype: form.enctype,
      fields: Array.from(form.elements)
        .filter((e) => e.name)
        .map((e) => ({ name: e.name, type: e.type, value: e.type === 'file' ? '' : e.value })),
    },
    chosen: file && file.files ? Array.from(file.files).map((f) => ({ name: f.name, size: f.size })) : [],
  };
}

async function main() {
  let args = process.argv.slice(2);
  let authToken = '';
  if (args[0] && args[0].startsWith('--auth-token=')) {
    authToken = args[0].slice('--auth-token='.length);
    args = args.slice(1);
  }
  const [pageUrl, filePath, shotPath, ...others] = args;
  if (!pageUrl || !filePath || !shotPath) {
    throw new Error('usage: upload_page.js [--auth-token=T] <page-url> <file> <screenshot.png> [other-page-url ...]');
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastdfs-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    timeout: STEP_MS,
    viewport: { width: 800, height: 600 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    const consoleErrors = [];
    const failedLoads = [];
    // A failed load is reported by URL below; its console line carries no URL.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('response', (x) => x.status() >= 400 && failedLoads.push({ url: x.url(), status: x.status() }));
    page.on('requestfailed', (x) => failedLoads.push({ url: x.url(), error: x.failure() && x.failure().errorText }));

    const pages = [];
    for (const url of others) {
      const r = await page.goto(url);
      pages.push({ url, status: r && r.status(), contentType: r && r.headers()['content-type'], ...(await page.evaluate(describeForm)) });
    }

    const r = await page.goto(pageUrl);
    const pageStatus = r && r.status();
    await page.locator('form input[type=file]').setInputFiles(filePath);
    if (authToken) await page.locator('form input[name=auth_token]').fill(authToken);
    const before = await page.evaluate(describeForm);
    await page.screenshot({ path: shotPath, fullPage: true });

    const [resp] = await Promise.all([
      page.waitForResponse((x) => x.request().method() === 'POST', { timeout: STEP_MS }),
      page.locator('input[type=submit]').click(),
    ]);
    // The page shows the answer in #result (no navigation).
    await page.waitForFunction(() => document.getElementById('result').textContent !== '');
    const request = resp.request();
    const shown = await page.evaluate(() => document.getElementById('result').textContent);
    const requestHeaders = await request.allHeaders();
    return {
      page: { url: pageUrl, status: pageStatus, ...before },
      others: pages,
      upload: {
        requestUrl: request.url(),
        requestContentType: requestHeaders['content-type'] || '',
        requestAuthToken: requestHeaders['auth-token'] === undefined ? null : requestHeaders['auth-token'],
        requestBodyHasAuthTokenField: (request.postData() || '').includes('name="auth_token"'),
        status: resp.status(),
        contentType: resp.headers()['content-type'] || '',
        body: await resp.text(),
      },
      after: { url: page.url(), title: await page.title(), shown },
      consoleErrors,
      failedLoads,
    };
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

const watchdog = setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: `no result within ${TOTAL_MS} ms` }) + '\n');
  process.exit(3);
}, TOTAL_MS);

main().then(
  (out) => {
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify(out) + '\n');
  },
  (err) => {
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify({ error: String((err && err.stack) || err) }) + '\n');
    process.exitCode = 1;
  },
);
