//! The upload page in a real browser: headless Chromium (driven by playwright-core through
//! tests/browser/upload_page.js) opens the page served by the real binary, chooses a file,
//! submits the form, and the JSON2 envelope it then shows must name the file's md5; the file
//! must then download with the same bytes.
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

/// The whole browser run (launch, five page loads, upload); each step is bounded at 30 s by
/// the script itself, which also gives up after 120 s.
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

/// Runs upload_page.js and returns the JSON it printed.
fn run_browser(page: &str, file: &Path, shot: &Path, others: &[String]) -> Value {
    let mut child = Command::new("node")
        .arg(browser_dir().join("upload_page.js"))
        .arg(page)
        .arg(file)
        .arg(shot)
        .args(others)
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

fn assert_upload_form(p: &Value, s: &Server) {
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
        ],
        "{p}"
    );
}

#[test]
fn upload_page_in_chromium() {
    if let Err(why) = browser_tools() {
        skip("upload_page_in_chromium", &why.to_string());
        return;
    }
    let s = Server::start(json!({}));
    let work = tempfile::tempdir().unwrap();
    let data = payload(150 * 1024 + 7);
    let file = work.path().join("browser-upload.bin");
    std::fs::write(&file, &data).unwrap();
    let shot = work.path().join("upload-page.png");
    let others: Vec<String> = ["/group1", "/group1/", "/group1/upload.html"]
        .iter()
        .map(|p| s.url(p))
        .collect();

    let v = run_browser(&s.url("/"), &file, &shot, &others);

    // Every address of the page serves the same form.
    assert_upload_form(&v["page"], &s);
    assert_eq!(v["page"]["title"], "fastdfs-rs upload");
    for (o, url) in v["others"].as_array().unwrap().iter().zip(&others) {
        assert_eq!(o["url"], url.as_str());
        assert_upload_form(o, &s);
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

    // The browser posted the form as multipart to the upload route.
    let up = &v["upload"];
    assert_eq!(up["requestUrl"], s.url("/group1/upload"), "{up}");
    assert!(
        up["requestContentType"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary="),
        "{up}"
    );
    assert_eq!(up["status"], 200, "{up}\n{}", s.stderr());

    // What the browser shows after submit is the JSON2 envelope.
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
    println!("failed loads (favicon allowed): {}", v["failedLoads"]);
    assert_eq!(v["consoleErrors"], json!([]), "page errors");
    // Nothing else the pages loaded failed, but the favicon Chromium asks for on its own.
    let failed: Vec<&Value> = v["failedLoads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["url"] != s.url("/favicon.ico"))
        .collect();
    assert!(failed.is_empty(), "failed loads: {failed:?}");

    // The file comes back byte for byte, by its url and by its path.
    for url in [d["url"].as_str().unwrap().to_string(), s.url(path)] {
        let (code, body) = get_bytes(&url);
        assert_eq!(code, 200, "GET {url}");
        assert_eq!(body.len(), data.len(), "GET {url}");
        assert!(body == data, "GET {url}: bytes differ");
    }
    // And the server indexed it under the md5 the page showed.
    let (code, body) = call(agent().get(&s.url(&format!("/group1/upload?md5={md5}&output=json"))));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["path"],
        path,
        "{body}"
    );
}
