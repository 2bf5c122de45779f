//! The web pages in a real browser: headless Chromium (driven by playwright-core through
//! tests/browser/*.js) opens the pages served by the real binary.
//!
//! - upload_page.js: a fresh node has written its page template to static/uppy.html; the page
//!   chooses a file, types an auth token and submits the form; the upload goes out with the
//!   token as the `auth-token` header (the auth server, a stub, allows only that token) and
//!   the JSON2 envelope the page then shows must name the file's md5; the file must then
//!   download with the same bytes.
//! - resumable_and_report.js: the page's tus widget uploads a file of a few MiB while its
//!   pieces after the first are cut; after a reload it resumes from the offset the server
//!   reports (HEAD) and finishes; the file downloads with the same bytes, and the report page
//!   (G/report) shows today's row.
//!
//! Needs node, Debian's chromium (or $CHROMIUM_BIN) and `npm ci` in tests/browser; without
//! them the test reports itself skipped (`common::skip`; scripts/test-all.sh installs them).
//! The screenshot taken before submit goes to the test's temp dir; with
//! FASTDFS_UPDATE_SCREENSHOT=1 it also replaces docs/upload-page.png.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A whole browser run (launch, page loads, uploads); each step is bounded at 30 s by the
/// script itself, which also gives up after 120 s.
const NODE_TIMEOUT: Duration = Duration::from_secs(150);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// node, chromium and playwright-core, or why the test cannot run here.
fn browser_tools() -> Result<(), String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(node, Ok(s) if s.success()) {
        return Err("node not found".into());
    }
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return Err(format!("{chromium} not found (apt-get install chromium)"));
    }
    if !browser_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Err("playwright-core not installed (npm ci in tests/browser)".into());
    }
    Ok(())
}

/// Reads a child's pipe to the end on a thread.
fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Waits for `child` until `timeout`; then SIGTERM (playwright closes its browser on it), a
/// grace period, and SIGKILL. Only this child is signalled.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let grace = Instant::now() + Duration::from_secs(10);
    while Instant::now() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs `script` (in tests/browser) with `args` and returns the JSON it printed.
fn run_browser(script: &str, args: &[String]) -> Value {
    let mut child = Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, NODE_TIMEOUT);
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let status =
        status.unwrap_or_else(|| panic!("browser run exceeded {NODE_TIMEOUT:?}: {out}\n{err}"));
    let v: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("browser printed no JSON ({e}), {status}: {out}\n{err}"));
    assert!(
        status.success() && v.get("error").is_none(),
        "browser run failed ({status}): {}\n{err}",
        v["error"].as_str().unwrap_or(&out)
    );
    v
}

/// Not valid UTF-8, so any text re-encoding on the way would show.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let resp = match agent().get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error on {url}: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

/// `token`: what the auth_token field holds (typed by the test on the page it submits).
fn assert_upload_form(p: &Value, s: &Server, token: &str) {
    assert_eq!(p["status"], 200, "{p}");
    assert!(
        p["contentType"]
            .as_str()
            .is_none_or(|c| c.starts_with("text/html")),
        "{p}"
    );
    let form = &p["form"];
    assert!(form.is_object(), "no form on the page: {p}");
    assert_eq!(form["action"], s.url("/group1/upload"), "{p}");
    assert_eq!(form["method"], "post", "{p}");
    assert_eq!(form["enctype"], "multipart/form-data", "{p}");
    let fields: Vec<(&str, &str, &str)> = form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["type"].as_str().unwrap(),
                f["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("file", "file", ""),
            ("scene", "text", "default"),
            ("filename", "text", ""),
            ("path", "text", ""),
            ("output", "hidden", "json2"),
            ("code", "text", ""),
            ("auth_token", "text", token),
        ],
        "{p}"
    );
}

/// The token the auth server stub allows.
const AUTH_TOKEN: &str = "page-token-7f3e";

/// An auth server that allows [`AUTH_TOKEN`] only (and records every call).
fn auth_stub() -> (String, Calls) {
    sink("/auth", |body| {
        let allowed = body
            .split('&')
            .any(|kv| kv == format!("auth_token={AUTH_TOKEN}"));
        (String::new(), if allowed { "ok" } else { "fail" }.into())
    })
}

/// Nothing the browser loaded failed, but the favicon Chromium asks for on its own and the
/// requests the test cut itself (`cut`).
fn assert_no_failed_loads(v: &Value, s: &Server, cut: impl Fn(&Value) -> bool) {
    println!("failed loads: {}", v["failedLoads"]);
    assert_eq!(v["consoleErrors"], json!([]), "page errors");
    let failed: Vec<&Value> = v["failedLoads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["url"] != s.url("/favicon.ico") && !cut(f))
        .collect();
    assert!(failed.is_empty(), "failed loads: {failed:?}");
}

/// `GET url` answers 200 with exactly `data`.
fn assert_downloads(url: &str, data: &[u8]) {
    let (code, body) = get_bytes(url);
    assert_eq!(code, 200, "GET {url}");
    assert_eq!(body.len(), data.len(), "GET {url}");
    assert!(body == data, "GET {url}: bytes differ");
}

#[test]
fn upload_page_in_chromium() {
    if let Err(why) = browser_tools() {
        skip("upload_page_in_chromium", &why.to_string());
        return;
    }
    let (auth_url, auth_calls) = auth_stub();
    let s = Server::start(json!({"auth_url": auth_url}));
    // A fresh node wrote its page template (and the report page) into static/.
    let template = std::fs::read_to_string(s.dir.join("static/uppy.html")).expect("uppy.html");
    assert_eq!(template, include_str!("../src/web/upload.html"));
    assert_eq!(
        std::fs::read_to_string(s.dir.join("static/report.html")).expect("report.html"),
        include_str!("../src/web/report.html")
    );
    let work = tempfile::tempdir().unwrap();
    let data = payload(150 * 1024 + 7);
    let file = work.path().join("browser-upload.bin");
    std::fs::write(&file, &data).unwrap();
    let shot = work.path().join("upload-page.png");
    let mut args = vec![
        format!("--auth-token={AUTH_TOKEN}"),
        s.url("/"),
        file.display().to_string(),
        shot.display().to_string(),
    ];
    let others: Vec<String> = ["/group1", "/group1/", "/group1/upload.html"]
        .iter()
        .map(|p| s.url(p))
        .collect();
    args.extend(others.iter().cloned());

    let v = run_browser("upload_page.js", &args);

    // Every address of the page serves the same form.
    assert_upload_form(&v["page"], &s, AUTH_TOKEN);
    assert_eq!(v["page"]["title"], "fastdfs-rs upload");
    for (o, url) in v["others"].as_array().unwrap().iter().zip(&others) {
        assert_eq!(o["url"], url.as_str());
        assert_upload_form(o, &s, "");
    }
    assert_eq!(v["others"].as_array().unwrap().len(), others.len());
    // The file was chosen before the screenshot.
    assert_eq!(
        v["page"]["chosen"],
        json!([{"name": "browser-upload.bin", "size": data.len()}])
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("FASTDFS_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/upload-page.png");
        std::fs::write(&docs, &png).unwrap();
    }

    // The browser posted the form as multipart to the upload route, the token as a header.
    let up = &v["upload"];
    assert_eq!(up["requestUrl"], s.url("/group1/upload"), "{up}");
    assert!(
        up["requestContentType"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary="),
        "{up}"
    );
    assert_eq!(up["requestAuthToken"], AUTH_TOKEN, "{up}");
    assert_eq!(up["requestBodyHasAuthTokenField"], false, "{up}");
    assert_eq!(up["status"], 200, "{up}\n{}", s.stderr());
    // The server asked the auth server, with the header's token.
    let calls = auth_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0]
            .0
            .to_ascii_lowercase()
            .contains(&format!("auth-token: {AUTH_TOKEN}")),
        "{calls:?}"
    );

    // What the page shows after submit is the JSON2 envelope.
    let shown = v["after"]["shown"].as_str().unwrap();
    let env: Value = serde_json::from_str(shown)
        .unwrap_or_else(|e| panic!("page after submit is not JSON ({e}): {shown:?}"));
    let md5 = md5_hex(&data);
    assert_eq!(env["status"], "ok", "{env}");
    assert_eq!(env["message"], "", "{env}");
    let d = &env["data"];
    assert_eq!(d["md5"], md5.as_str(), "{env}");
    assert_eq!(d["size"], data.len(), "{env}");
    assert_eq!(d["scene"], "default", "{env}");
    assert_eq!(d["retcode"], 0, "{env}");
    // Stored under the chosen file's name, trimmed of '-' (enable_trim_file_name_special_char).
    let path = d["path"].as_str().unwrap();
    assert!(
        path.starts_with("/group1/default/") && path.ends_with("/browserupload.bin"),
        "{env}"
    );
    assert_eq!(d["src"], path, "{env}");
    // Shown decoded: a url copied from the page has its `&`, not go-fastdfs' `\u0026`.
    assert!(!shown.contains("\\u0026"), "{shown}");
    if let Some(url) = d["url"].as_str().filter(|u| u.contains('&')) {
        assert!(shown.contains(url), "{shown}");
    }
    assert_eq!(d["domain"], s.base(), "{env}");
    assert_eq!(
        d["url"],
        s.url(&format!("{path}?name=browserupload.bin&download=1")),
        "{env}"
    );
    // The same envelope the server sent, as sent.
    assert_eq!(
        serde_json::from_str::<Value>(up["body"].as_str().unwrap()).unwrap(),
        env
    );
    assert_no_failed_loads(&v, &s, |_| false);

    // The file comes back byte for byte, by its url and by its path.
    assert_downloads(d["url"].as_str().unwrap(), &data);
    assert_downloads(&s.url(path), &data);
    // And the server indexed it under the md5 the page showed.
    let (code, body) = call(
        agent()
            .get(&s.url(&format!("/group1/upload?md5={md5}&output=json")))
            .set("Auth-Token", AUTH_TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["path"],
        path,
        "{body}"
    );
}

/// The tus requests of one phase of resumable_and_report.js: (method, Upload-Offset sent,
/// status or None when the test cut it).
fn tus_requests(v: &Value, phase: u64) -> Vec<(String, Option<u64>, Option<u64>)> {
    v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["phase"] == phase)
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["offset"].as_str().map(|o| o.parse().unwrap()),
                r["status"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn resumable_upload_and_report_in_chromium() {
    if let Err(why) = browser_tools() {
        skip("resumable_upload_and_report_in_chromium", &why.to_string());
        return;
    }
    let (auth_url, auth_calls) = auth_stub();
    let s = Server::start(json!({"enable_tus": true, "auth_url": auth_url}));
    let work = tempfile::tempdir().unwrap();
    // Three pieces of the page's 5 MiB.
    const PIECE: u64 = 5 * 1024 * 1024;
    let data = payload(2 * PIECE as usize + 345_679);
    let file = work.path().join("resumable.bin");
    std::fs::write(&file, &data).unwrap();
    // The token typed into the form goes in the creation's metadata (and header).
    let args = vec![
        format!("--auth-token={AUTH_TOKEN}"),
        s.url("/group1/upload.html"),
        file.display().to_string(),
        s.url("/group1/report"),
    ];
    let v = run_browser("resumable_and_report.js", &args);
    println!("tus requests: {}", v["requests"]);

    // Phase 1: created once, the first piece stored, every later piece cut; the widget asked
    // the server's offset (HEAD) before each retry and then gave up, the upload URL kept.
    let first = tus_requests(&v, 1);
    let len = data.len() as u64;
    assert_eq!(first[0], ("POST".into(), None, Some(201)), "{first:?}");
    assert_eq!(first[1], ("PATCH".into(), Some(0), Some(204)), "{first:?}");
    let rest: Vec<_> = first[2..].to_vec();
    assert_eq!(
        rest,
        [
            ("PATCH".into(), Some(PIECE), None),
            ("HEAD".into(), None, Some(200)),
            ("PATCH".into(), Some(PIECE), None),
            ("HEAD".into(), None, Some(200)),
            ("PATCH".into(), Some(PIECE), None),
        ],
        "{first:?}"
    );
    let failed = &v["failed"];
    assert!(
        failed["status"]
            .as_str()
            .unwrap()
            .starts_with("interrupted at 5.0 MiB"),
        "{failed}"
    );
    assert_eq!(
        failed["progress"],
        json!({"value": PIECE, "max": len}),
        "{failed}"
    );
    let stored = failed["stored"].as_object().unwrap();
    assert_eq!(stored.len(), 1, "{failed}");
    let (key, upload_url) = stored.iter().next().unwrap();
    assert!(
        key.contains("|resumable.bin|") && key.contains(&format!("|{len}|")),
        "{key}"
    );
    let upload_url = upload_url.as_str().unwrap();
    assert!(
        upload_url.starts_with(&s.url("/group1/big/upload/")),
        "{upload_url}"
    );
    // The creation was allowed by the auth server, asked once with the typed token.
    let calls = auth_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].1.contains("filename=resumable.bin"), "{calls:?}");

    // Phase 2: after a reload the same file resumes at the server's offset: no new upload.
    assert_eq!(
        v["hint"], "an earlier upload of this file can be resumed",
        "{v}"
    );
    let second = tus_requests(&v, 2);
    assert_eq!(
        second,
        [
            ("HEAD".into(), None, Some(200)),
            ("PATCH".into(), Some(PIECE), Some(204)),
            ("PATCH".into(), Some(2 * PIECE), Some(204)),
        ],
        "{second:?}"
    );
    assert!(
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["phase"] == 2)
            .all(|r| r["url"] == upload_url),
        "{v}"
    );
    let done = &v["done"];
    assert_eq!(done["stored"], json!({}), "forgotten once finished: {done}");
    let result: Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["md5"], md5_hex(&data), "{result}");
    assert_eq!(result["size"], len, "{result}");
    let url = result["url"].as_str().unwrap();
    assert!(url.starts_with(&s.url("/group1/default/")), "{result}");
    assert_downloads(url, &data);

    // The report shows today's row: one file of this size, and the node's status.
    let report = &v["report"];
    assert_eq!(report["httpStatus"], 200, "{report}");
    assert_eq!(report["title"], "fastdfs-rs report", "{report}");
    assert!(
        report["status"].as_str().unwrap().starts_with("as of "),
        "{report}"
    );
    let today = local_stamp(now())[..8].to_string();
    let rows = report["stat"].as_array().unwrap();
    let row = |date: &str| {
        rows.iter()
            .find(|r| r[0] == date)
            .unwrap_or_else(|| panic!("no row {date}: {report}"))
    };
    assert_eq!(row(&today)[1], "1", "{report}");
    assert_eq!(row(&today)[2], "10.3 MiB", "{report}");
    assert_eq!(row(&today)[3], len.to_string(), "{report}");
    assert_eq!(row("all")[1], "1", "{report}");
    let keys: Vec<&str> = report["statusRows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    for k in ["Fs.Local", "Fs.Peers", "Sys.DiskInfo", "Sys.UptimeSeconds"] {
        assert!(keys.contains(&k), "{k} missing: {report}");
    }
    assert_no_failed_loads(&v, &s, |f| {
        f["error"].is_string() && f["url"].as_str() == Some(upload_url)
    });
}
