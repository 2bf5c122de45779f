#!/usr/bin/env node
// Drives the upload page's resumable (tus) widget and the report page in headless Chromium
// for tests/web_page.rs.
//
//   node resumable_and_report.js [--auth-token=T] <page-url> <file-to-upload> <report-url>
//
// 1. Opens <page-url>, types T into the form's auth_token field, chooses the file in the tus
//    widget and presses start, while every
//    PATCH after the first piece is cut (the connection reset by the test): the widget retries
//    (HEAD, PATCH) and gives up with "press start to resume", the upload URL kept in
//    localStorage.
// 2. Lets the requests through, reloads the page, chooses the same file and presses start:
//    the widget must resume (HEAD) where the server stopped and finish.
// 3. Opens <report-url> and reads its tables.
// Prints one JSON object on stdout: the tus requests of each phase with their outcomes, what
// the widget showed, localStorage, and the report's rows. Exits non-zero (with
// {"error": ...} on stdout) on failure. Chromium: $CHROMIUM_BIN or /usr/bin/chromium.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const STEP_MS = 30_000;
const TOTAL_MS = 120_000;

function stored() {
  const out = {};
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k.startsWith('fastdfs-tus|')) out[k] = localStorage.getItem(k);
  }
  return out;
}

async function main() {
  let args = process.argv.slice(2);
  let authToken = '';
  if (args[0] && args[0].startsWith('--auth-token=')) {
    authToken = args[0].slice('--auth-token='.length);
    args = args.slice(1);
  }
  const [pageUrl, filePath, reportUrl] = args;
  if (!pageUrl || !filePath || !reportUrl) {
    throw new Error('usage: resumable_and_report.js [--auth-token=T] <page-url> <file> <report-url>');
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastdfs-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    timeout: STEP_MS,
    viewport: { width: 800, height: 900 },
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
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('response', (x) => x.status() >= 400 && failedLoads.push({ url: x.url(), status: x.status() }));
    page.on('requestfailed', (x) => failedLoads.push({ url: x.url(), error: x.failure() && x.failure().errorText }));

    // Every request to the tus endpoint, in order, with its outcome.
    let phase = 1;
    const requests = [];
    const entries = new Map();
    const isTus = (url) => new URL(url).pathname.includes('/big/upload/');
    const tusUrl = (url) => isTus(url.href);
    page.on('request', (r) => {
      if (!isTus(r.url())) return;
      const e = { phase, method: r.method(), url: r.url(), offset: r.headers()['upload-offset'] || null };
      entries.set(r, e);
      requests.push(e);
    });
    page.on('response', (x) => {
      const e = entries.get(x.request());
      if (e) {
        e.status = x.status();
        e.uploadOffset = x.headers()['upload-offset'] || null;
      }
    });
    page.on('requestfailed', (r) => {
      const e = entries.get(r);
      if (e) e.error = (r.failure() && r.failure().errorText) || 'failed';
    });

    // Phase 1: the pieces after the first are cut.
    const cut = (route) => {
      const r = route.request();
      if (r.method() === 'PATCH' && r.headers()['upload-offset'] !== '0') return route.abort('connectionreset');
      return route.continue();
    };
    await page.route(tusUrl, cut);
    await page.goto(pageUrl);
    if (authToken) await page.locator('form input[name=auth_token]').fill(authToken);
    await page.locator('#tus-file').setInputFiles(filePath);
    await page.locator('#tus-start').click();
    await page.waitForFunction(() => document.getElementById('tus-status').textContent.includes('press start to resume'));
    const failed = {
      status: await page.locator('#tus-status').textContent(),
      stored: await page.evaluate(stored),
      progress: await page.evaluate(() => {
        const p = document.getElementById('tus-progress');
        return { value: p.value, max: p.max };
      }),
    };
    await page.unroute(tusUrl, cut);

    // Phase 2: a new page load resumes the same file.
    phase = 2;
    await page.goto(pageUrl);
    await page.locator('#tus-file').setInputFiles(filePath);
    const hint = await page.locator('#tus-status').textContent();
    await page.locator('#tus-start').click();
    await page.waitForFunction(() => document.getElementById('tus-result').textContent !== '');
    const done = {
      status: await page.locator('#tus-status').textContent(),
      result: await page.locator('#tus-result').textContent(),
      stored: await page.evaluate(stored),
    };

    // The report page.
    phase = 3;
    const rr = await page.goto(reportUrl);
    await page.waitForFunction(() => document.getElementById('report-status').textContent !== 'loading...');
    const report = await page.evaluate(() => ({
      title: document.title,
      status: document.getElementById('report-status').textContent,
      statusClass: document.getElementById('report-status').className,
      stat: Array.from(document.querySelectorAll('#stat > tbody > tr')).map((tr) =>
        Array.from(tr.cells).map((td) => td.textContent)),
      statusRows: Array.from(document.querySelectorAll('#status > tbody > tr')).map((tr) => ({
        key: tr.getAttribute('data-key'),
        value: tr.cells[1].textContent,
      })),
    }));
    report.httpStatus = rr && rr.status();
    return { requests, failed, hint, done, report, consoleErrors, failedLoads };
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
