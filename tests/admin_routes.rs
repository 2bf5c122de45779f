//! The remaining single-node routes of docs/PROTOCOL.md §3 (stat, list_dir, search, check_files_exist,
//! get_md5s_by_date, remove_empty_dir, repair_stat, backup, report, reload, google codes):
//! success shapes, bad parameters, and refusal for a non-admin address (127.0.0.77); the
//! `static/` file server (directories, redirects, listings) and the pages written into
//! `static/` at start.
mod common;
use common::*;
use serde_json::{json, Value};

fn get(s: &Server, path: &str) -> (u16, String) {
    call(agent().get(&s.url(path)))
}

fn get_json(s: &Server, path: &str) -> (u16, Value) {
    let (code, body) = get(s, path);
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

/// (status, body) of a GET sent from 127.0.0.77 (not an admin address) with curl.
/// The `name` of every item of an envelope's `data` list.
fn data_names(v: &Value) -> Vec<&str> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect()
}

fn get_from_non_admin(s: &Server, path: &str) -> (u16, String) {
    get_from("127.0.0.77", &s.url(path))
}

#[test]
fn stat_lists_days_and_a_total_in_three_shapes() {
    let s = Server::start(json!({}));
    upload_json(&s, "a.txt", b"12345");
    upload_json(&s, "b.txt", b"1234567");
    let (code, v) = get_json(&s, "/group1/stat");
    assert_eq!(code, 200);
    assert_eq!(v["status"], "ok");
    let rows = v["data"].as_array().unwrap();
    let all = rows.last().unwrap();
    assert_eq!(all["date"], "all");
    assert_eq!(
        (all["fileCount"].as_i64(), all["totalSize"].as_i64()),
        (Some(2), Some(12))
    );
    let (_, inner) = get_json(&s, "/group1/stat?inner=1");
    assert_eq!(inner.as_array().unwrap().last().unwrap()["fileCount"], 2);
    let (_, echart) = get_json(&s, "/group1/stat?echart=1");
    assert_eq!(
        echart["data"]["category"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "all"
    );
    assert_eq!(
        echart["data"]["barCount"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        2
    );
}

#[test]
fn stat_has_a_row_for_today_before_any_upload_and_keeps_emptied_days() {
    let s = Server::start(json!({}));
    let today = local_stamp(now())[..8].to_string();
    let (code, inner) = get_json(&s, "/group1/stat?inner=1");
    assert_eq!(code, 200);
    // go-fastdfs' answer on a fresh node.
    assert_eq!(
        inner,
        json!([
            {"date": today, "fileCount": 0, "totalSize": 0},
            {"date": "all", "fileCount": 0, "totalSize": 0}
        ])
    );
    let (_, echart) = get_json(&s, "/group1/stat?echart=1");
    assert_eq!(echart["data"]["category"], json!([today, "all"]));
    // A day whose files were all deleted keeps its row of zeros (go-fastdfs counts down).
    let up = upload_json(&s, "a.txt", b"12345");
    let (code, _) = get(
        &s,
        &format!("/group1/delete?md5={}", up["md5"].as_str().unwrap()),
    );
    assert_eq!(code, 200);
    let (_, inner) = get_json(&s, "/group1/stat?inner=1");
    assert_eq!(
        inner,
        json!([
            {"date": today, "fileCount": 0, "totalSize": 0},
            {"date": "all", "fileCount": 0, "totalSize": 0}
        ])
    );
}

#[test]
fn list_dir_lists_one_level_and_never_leaves_files() {
    let s = Server::start(json!({}));
    upload(&s, "x.txt", b"hello", &[("path", "docs/2026")]);
    let (code, v) = get_json(&s, "/group1/list_dir?dir=docs/2026");
    assert_eq!(code, 200, "{v}");
    let item = &v["data"][0];
    assert_eq!(item["name"], "x.txt");
    assert_eq!(item["is_dir"], false);
    assert_eq!(item["size"], 5);
    assert_eq!(item["path"], "docs/2026");
    assert_eq!(item["md5"], md5_hex(b"files/docs/2026/x.txt"));
    let (_, top) = get_json(&s, "/group1/list_dir?dir=docs");
    assert_eq!(top["data"][0]["is_dir"], true);
    // Dots are removed: `../..` cannot climb out of files/.
    let (code, v) = get_json(&s, "/group1/list_dir?dir=../../");
    assert_eq!(code, 200);
    let names = data_names(&v);
    assert!(
        names.contains(&"docs") && !names.contains(&"conf"),
        "{names:?}"
    );
    let (code, v) = get_json(&s, "/group1/list_dir?dir=missing");
    assert!(code >= 400 && v["status"] == "", "{code} {v}");
    // go-fastdfs' messages (Go's path errors), not Rust's.
    assert_eq!(
        v["message"], "open files/missing: no such file or directory",
        "{v}"
    );
    let (_, v) = get_json(&s, "/group1/list_dir?dir=docs/2026/xtxt");
    assert_eq!(
        v["message"], "open files/docs/2026/xtxt: no such file or directory",
        "{v}"
    );
    upload(&s, "plain", b"no extension", &[("path", "docs/2026")]);
    let (code, v) = get_json(&s, "/group1/list_dir?dir=docs/2026/plain");
    assert_eq!(
        (code, v["message"].as_str()),
        (
            404,
            Some("readdirent files/docs/2026/plain: not a directory")
        ),
        "{v}"
    );
}

#[test]
fn search_finds_by_name_substring() {
    let s = Server::start(json!({}));
    upload_json(&s, "report-2026.pdf", b"pdf");
    upload_json(&s, "photo.jpg", b"jpg");
    let (_, v) = get_json(&s, "/group1/search?kw=report");
    let found = v["data"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["name"], "report2026.pdf");
    let (_, none) = get_json(&s, "/group1/search?kw=nothing-like-this");
    assert_eq!(none["data"], Value::Null);
}

/// More than 100 matches: the 100 go-fastdfs would list, in its order (its LevelDB's key
/// order, where a record's md5 and its path key both lead to it: the smaller one places it).
#[test]
fn search_keeps_go_fastdfs_first_hundred_in_its_order() {
    let s = Server::start(json!({}));
    let mut expected = Vec::new();
    for i in 0..105 {
        let (name, data) = (format!("s{i}.txt"), format!("search {i}"));
        let (code, body) = upload(
            &s,
            &name,
            data.as_bytes(),
            &[("path", "s"), ("output", "json")],
        );
        assert_eq!(code, 200, "{body}");
        let md5 = md5_hex(data.as_bytes());
        let place = md5
            .clone()
            .min(md5_hex(format!("files/s/{name}").as_bytes()));
        expected.push((place, name));
    }
    expected.sort();
    expected.truncate(100);
    let (_, v) = get_json(&s, "/group1/search?kw=s");
    let names = data_names(&v);
    let want: Vec<&str> = expected.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, want);
}

#[test]
fn check_files_exist_returns_compact_envelope_of_live_records() {
    let s = Server::start(json!({}));
    let a = upload_json(&s, "a.txt", b"aaa");
    let (code, body) = get(
        &s,
        &format!(
            "/group1/check_files_exist?md5s={},{}",
            a["md5"].as_str().unwrap(),
            "0".repeat(32)
        ),
    );
    assert_eq!(code, 200);
    assert!(
        body.starts_with("{\"message\":\"\",\"status\":\"\",\"data\":[{\"name\":\"a.txt\""),
        "{body}"
    );
    let (_, none) = get(&s, "/group1/check_files_exist?md5s=ffff");
    assert_eq!(none, r#"{"message":"","status":"","data":null}"#);
}

#[test]
fn get_md5s_by_date_lists_the_day() {
    let s = Server::start(json!({}));
    let a = upload_json(&s, "a.txt", b"aaa");
    let b = upload_json(&s, "b.txt", b"bbb");
    let today = chrono::Local::now().format("%Y%m%d").to_string();
    let (code, body) = get(&s, &format!("/group1/get_md5s_by_date?date={today}"));
    assert_eq!(code, 200);
    let mut got: Vec<&str> = body.split(',').collect();
    got.sort();
    let mut want = vec![a["md5"].as_str().unwrap(), b["md5"].as_str().unwrap()];
    want.sort();
    assert_eq!(got, want);
    let (_, empty) = get(&s, "/group1/get_md5s_by_date?date=20000101");
    assert_eq!(empty, "");
    // The date is a key prefix in go-fastdfs: no date, or anything but exactly YYYYMMDD,
    // names no day (an empty 200, neither today's list nor an error).
    for odd in [
        "",
        "?date=",
        "?date=abc",
        &format!("?date=x{today}"),
        "?date=2026.12.06",
    ] {
        let (code, body) = get(&s, &format!("/group1/get_md5s_by_date{odd}"));
        assert_eq!((code, body.as_str()), (200, ""), "{odd}");
    }
}

#[test]
fn repair_stat_recounts_a_day_and_defaults_to_today() {
    let s = Server::start(json!({}));
    let a = upload_json(&s, "a.txt", b"aaaa");
    upload_json(&s, "b.txt", b"bb");
    // A file removed behind the server's back no longer counts after repair.
    let rel = a["path"].as_str().unwrap().trim_start_matches("/group1/");
    std::fs::remove_file(s.dir.join("files").join(rel)).unwrap();
    let (code, v) = get_json(&s, "/group1/repair_stat");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["fileCount"], 1);
    assert_eq!(v["data"]["totalSize"], 2);
    let (code, bad) = get_json(&s, "/group1/repair_stat?date=2026");
    assert_eq!((code, bad["message"].as_str()), (400, Some("invalid date")));
}

#[test]
fn remove_empty_dir_removes_only_empty_directories() {
    let s = Server::start(json!({}));
    upload(&s, "keep.txt", b"k", &[("path", "full")]);
    std::fs::create_dir_all(s.dir.join("files/empty/a/b")).unwrap();
    let (code, v) = get_json(&s, "/group1/remove_empty_dir");
    assert_eq!((code, v["status"].as_str()), (200, Some("ok")));
    assert!(eventually(std::time::Duration::from_secs(10), || !s
        .dir
        .join("files/empty")
        .exists()));
    assert!(s.dir.join("files/full/keep.txt").exists());
    assert!(s.dir.join("files/_tmp").exists(), "the temp dir is kept");
}

#[test]
fn backup_writes_the_day_exports() {
    let s = Server::start(json!({}));
    let a = upload_json(&s, "a.txt", b"aaa");
    let today = chrono::Local::now().format("%Y%m%d").to_string();
    let (code, _) = get(&s, "/group1/backup");
    assert_eq!(code, 200);
    let md5s = s.dir.join("data").join(&today).join("files.md5");
    assert!(eventually(std::time::Duration::from_secs(10), || md5s.exists()));
    let text = std::fs::read_to_string(&md5s).unwrap();
    assert!(
        text.starts_with(&format!("{}|3|", a["md5"].as_str().unwrap())),
        "{text}"
    );
    assert!(text.trim_end().ends_with("/a.txt"), "{text}");
}

#[test]
fn google_secret_and_code_are_consistent() {
    let s = Server::start(json!({}));
    let (_, v) = get_json(&s, "/group1/gen_google_secret");
    let secret = v["data"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 16);
    assert!(secret
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
    let (_, c) = get_json(&s, &format!("/group1/gen_google_code?secret={secret}"));
    let code = c["data"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    // Lower case is accepted (go-fastdfs upper-cases the secret first).
    let (code, c) = get_json(
        &s,
        &format!("/group1/gen_google_code?secret={}", secret.to_lowercase()),
    );
    assert_eq!((code, c["message"].as_str()), (200, Some("ok")), "{c}");
    // A bad secret: go-fastdfs' body (Go's base32 error, `data:""`, `status:"ok"`), a 400.
    for (secret, at) in [("not-base32!", 3), ("ABC", 0), ("JBSWY3DP%3D%3D", 8)] {
        let (status, body) = get(&s, &format!("/group1/gen_google_code?secret={secret}"));
        assert_eq!(status, 400, "{secret}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"data": "", "message": format!("illegal base32 data at input byte {at}"),
                   "status": "ok"}),
            "{secret}"
        );
    }
    let (status, body) = get(&s, "/group1/gen_google_code");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn reload_needs_the_key_and_gets_sets_and_reloads() {
    let s = Server::start(json!({}));
    let (code, v) = get_json(&s, "/group1/reload?action=get");
    assert_eq!(
        (code, v["message"].as_str()),
        (401, Some("(error)parameter key require"))
    );
    let (code, v) = get_json(&s, "/group1/reload?action=get&key=wrong");
    assert_eq!(
        (code, v["message"].as_str()),
        (401, Some("(error)key is not correct"))
    );
    let (code, v) = get_json(&s, "/group1/reload?action=get&key=test-admin-key");
    assert_eq!(code, 200);
    assert_eq!(v["data"]["group"], "group1");
    assert_eq!(v["data"]["show_dir"], true);
    // Every key go-fastdfs shows, its own without effect here too; no peers is null.
    assert_eq!(v["data"]["peers"], Value::Null);
    assert_eq!(v["data"]["queue_size"], 10_000);
    assert_eq!(v["data"]["enable_disk_cache"], false);
    assert!(v["data"]["upload_worker"].as_i64() >= Some(8), "{v}");
    // set rewrites cfg.json; reload applies it.
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("conf/cfg.json")).unwrap())
            .unwrap();
    cfg["show_dir"] = json!(false);
    let form = format!(
        "key=test-admin-key&action=set&cfg={}",
        urlencode(&cfg.to_string())
    );
    let r = agent()
        .post(&s.url("/group1/reload"))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&form);
    assert_eq!(r.map(|r| r.status()).unwrap_or(0), 200);
    let (_, before) = get_json(&s, "/group1/reload?action=get&key=test-admin-key");
    assert_eq!(
        before["data"]["show_dir"], true,
        "set does not apply by itself"
    );
    let (code, _) = get(&s, "/group1/reload?action=reload&key=test-admin-key");
    assert_eq!(code, 200);
    let (_, after) = get_json(&s, "/group1/reload?action=get&key=test-admin-key");
    assert_eq!(after["data"]["show_dir"], false);
    let (code, body) = get(&s, "/group1/reload?key=test-admin-key");
    assert_eq!(
        (code, body.as_str()),
        (400, "(error)action support set(json) get reload")
    );
    let bad = format!(
        "key=test-admin-key&action=set&cfg={}",
        urlencode("{\"show_dir\": \"no\"}")
    );
    let r = agent()
        .post(&s.url("/group1/reload"))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&bad);
    assert!(
        matches!(r, Err(ureq::Error::Status(400, _))),
        "a bad cfg is refused"
    );
    // The message names the parameter, not the file it would be written to (go-fastdfs
    // answers its JSON parser's text, which names neither).
    let (code, v) = get_json(
        &s,
        "/group1/reload?key=test-admin-key&action=set&cfg=%7Bbad",
    );
    let message = v["message"].as_str().unwrap_or_default();
    assert_eq!(code, 400, "{v}");
    assert!(
        message.starts_with("parameter cfg: invalid JSON at line 1, column 2"),
        "{message}"
    );
    assert!(!message.contains("cfg.json"), "{message}");
    let (_, v) = get_json(
        &s,
        "/group1/reload?key=test-admin-key&action=set&cfg=%5B1%5D",
    );
    assert_eq!(
        v["message"], "parameter cfg: the top level must be a JSON object",
        "{v}"
    );
}

#[test]
fn sighup_reloads_the_configuration() {
    let s = Server::start(json!({}));
    let path = s.dir.join("conf/cfg.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["show_dir"] = json!(false);
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    unsafe { libc::kill(s.child.as_ref().unwrap().id() as i32, libc::SIGHUP) };
    assert!(eventually(std::time::Duration::from_secs(10), || {
        let (_, v) = get_json(&s, "/group1/reload?action=get&key=test-admin-key");
        v["data"]["show_dir"] == false
    }));
}

#[test]
fn admin_routes_refuse_a_non_admin_address() {
    let s = Server::start(json!({}));
    for route in [
        "/group1/stat",
        "/group1/list_dir?dir=",
        "/group1/search?kw=a",
        "/group1/get_md5s_by_date?date=20260101",
        "/group1/remove_empty_dir",
        "/group1/repair_stat?date=20260101",
        "/group1/backup",
        "/group1/report",
        "/group1/reload?action=get&key=wrong",
        "/group1/gen_google_secret",
        "/group1/gen_google_code?secret=ABC",
        "/group1/metrics",
    ] {
        let (code, body) = get_from_non_admin(&s, route);
        assert_eq!(code, 403, "{route}: {body}");
        assert!(
            body.contains("Can only be called by the cluster ip"),
            "{route}: {body}"
        );
        assert!(body.contains("127.0.0.77"), "{route}: {body}");
    }
    // The public ones stay public.
    let (code, _) = get_from_non_admin(&s, "/group1/check_files_exist?md5s=abc");
    assert_eq!(code, 200);
}

#[test]
fn metrics_expose_requests_uploads_and_storage_in_prometheus_text() {
    let s = Server::start(json!({}));
    let r = upload_json(&s, "m.txt", b"metrics!");
    let (code, _) = get(&s, r["path"].as_str().unwrap());
    assert_eq!(code, 200);
    upload_json(&s, "again.txt", b"metrics!");
    let resp = agent().get(&s.url("/group1/metrics")).call().unwrap();
    assert!(resp.content_type().starts_with("text/plain"));
    let text = resp.into_string().unwrap();
    for line in [
        "fastdfs_http_requests_total{route=\"upload\",code=\"2xx\"} 2",
        "fastdfs_http_requests_total{route=\"download\",code=\"2xx\"} 1",
        "fastdfs_uploads_total 2",
        "fastdfs_upload_dedup_hits_total 1",
        "fastdfs_upload_bytes_total 16",
        "fastdfs_objects 1",
        "fastdfs_stored_bytes 8",
        "# TYPE fastdfs_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let v = l.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }
    // The standard process metrics describe the server process, and the build is named.
    let value = |name: &str| -> f64 {
        let prefix = format!("{name} ");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("{name} missing in\n{text}"))[prefix.len()..]
            .parse()
            .unwrap()
    };
    let pid = s.child.as_ref().unwrap().id();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    assert!(
        (value("process_open_fds") - fds).abs() <= 8.0,
        "{fds}\n{text}"
    );
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let now = common::now() as f64;
    let start = value("process_start_time_seconds");
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "{start} vs {now}"
    );
    let build = format!(
        "fastdfs_build_info{{version=\"{}\",commit=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "{text}");
}

#[test]
fn static_files_are_served_inline_and_never_outside_static() {
    let s = Server::start(json!({}));
    std::fs::create_dir_all(s.dir.join("static/css")).unwrap();
    std::fs::write(s.dir.join("static/css/site.css"), "body{}").unwrap();
    let r = agent()
        .get(&s.url("/group1/static/css/site.css"))
        .call()
        .unwrap();
    assert!(r.content_type().starts_with("text/css"));
    assert!(r.header("Content-Disposition").is_none());
    assert_eq!(r.into_string().unwrap(), "body{}");
    // Go's `http.FileServer` 404, which go-fastdfs serves `static/` with.
    let resp = match agent().get(&s.url("/group1/static/missing.js")).call() {
        Err(ureq::Error::Status(_, r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(resp.content_type(), "text/plain");
    assert_eq!(resp.into_string().unwrap(), "404 page not found\n");
    // Sent raw: URL libraries would normalize the encoded dots away before sending.
    let reply = raw(
        &s.addr(),
        b"GET /group1/static/%2e%2e/conf/cfg.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    );
    let reply = String::from_utf8_lossy(&reply);
    // Cleaned like plain dots (as go-fastdfs' mux does): out of static/, into the downloads.
    assert!(reply.starts_with("HTTP/1.1 301"), "{reply}");
    assert!(
        reply.contains("\r\nLocation: /group1/conf/cfg.json\r\n"),
        "{reply}"
    );
    assert!(!reply.contains("admin_key"), "{reply}");
    let (code, body) = get(&s, "/group1/conf/cfg.json");
    assert_eq!(code, 404);
    assert!(!body.contains("admin_key"), "{body}");
}

#[test]
fn a_go_fastdfs_page_template_in_static_is_used_for_the_index() {
    let s = Server::start(json!({}));
    std::fs::create_dir_all(s.dir.join("static")).unwrap();
    std::fs::write(
        s.dir.join("static/uppy.html"),
        "<link href=\"%s/x.css\"><form action=\"%s\"><input name=scene value=\"%s\">\
         <script src=\"%s/a.js\"></script><script src=\"%s/b.js\"></script><a href=\"%s\">tus</a>",
    )
    .unwrap();
    let (code, body) = get(&s, "/group1/upload.html");
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "<link href=\"/group1/static/css/x.css\"><form action=\"/group1/upload\">\
         <input name=scene value=\"default\"><script src=\"/group1/static/js/a.js\"></script>\
         <script src=\"/group1/static/js/b.js\"></script><a href=\"/group1/big/upload/\">tus</a>"
    );
    let (_, index) = get(&s, "/");
    assert_eq!(index, body, "the index shows the same page");
}

/// (status, Location, Content-Type, body) of a request, redirects not followed.
fn fetch(s: &Server, method: &str, path: &str) -> (u16, String, String, String) {
    let resp = match agent().request(method, &s.url(path)).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let location = resp.header("Location").unwrap_or("").to_string();
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    (
        resp.status(),
        location,
        content_type,
        resp.into_string().unwrap(),
    )
}

#[test]
fn static_directories_serve_their_index_or_a_go_listing_and_redirect_like_go() {
    let s = Server::start(json!({}));
    let st = s.dir.join("static");
    std::fs::create_dir_all(st.join("docs/sub")).unwrap();
    std::fs::write(st.join("docs/a b.txt"), "a").unwrap();
    std::fs::write(st.join("docs/x&<y>.txt"), "x").unwrap();
    std::fs::write(st.join("docs/javascript:alert(1)"), "j").unwrap();
    std::fs::create_dir_all(st.join("site")).unwrap();
    std::fs::write(st.join("site/index.html"), "<p>site</p>").unwrap();
    std::fs::write(st.join("site/app.js"), "let x = 1;").unwrap();

    // A directory with its slash: Go's listing, sorted, names escaped, dirs with a slash.
    let (code, _, ctype, body) = fetch(&s, "GET", "/group1/static/docs/");
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert_eq!(
        body,
        "<pre>\n\
         <a href=\"a%20b.txt\">a b.txt</a>\n\
         <a href=\"./javascript:alert%281%29\">javascript:alert(1)</a>\n\
         <a href=\"sub/\">sub/</a>\n\
         <a href=\"x&amp;%3Cy%3E.txt\">x&amp;&lt;y&gt;.txt</a>\n\
         </pre>\n"
    );
    // Without it: 301 to the last segment with a slash, the query kept.
    for (path, location) in [
        ("/group1/static/docs", "docs/"),
        ("/group1/static/docs/sub?v=1&w=2", "sub/?v=1&w=2"),
        ("/group1/static", "/group1/static/"),
        ("/group1/static?v=3", "/group1/static/?v=3"),
        // `…/index.html` goes to the directory; a file asked for as a directory loses it.
        ("/group1/static/site/index.html", "./"),
        ("/group1/static/site/index.html?v=4", "./?v=4"),
        ("/group1/static/docs/a%20b.txt/", "../a%20b.txt"),
    ] {
        let (code, got, _, _) = fetch(&s, "GET", path);
        assert_eq!((code, got.as_str()), (301, location), "{path}");
    }
    // A directory with an index.html serves it (GET and HEAD), as HTML.
    let (code, _, ctype, body) = fetch(&s, "GET", "/group1/static/site/");
    assert_eq!((code, body.as_str()), (200, "<p>site</p>"));
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let (code, _, _, body) = fetch(&s, "HEAD", "/group1/static/site/");
    assert_eq!((code, body.as_str()), (200, ""));
    // The root lists the pages written at start (and what the operator put there).
    let (code, _, _, body) = fetch(&s, "GET", "/group1/static/");
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "<pre>\n<a href=\"docs/\">docs/</a>\n<a href=\"report.html\">report.html</a>\n\
         <a href=\"site/\">site/</a>\n<a href=\"uppy.html\">uppy.html</a>\n</pre>\n"
    );
    // Files keep Range and their types.
    let r = agent()
        .get(&s.url("/group1/static/site/app.js"))
        .set("Range", "bytes=4-4")
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        r.content_type().contains("javascript"),
        "{}",
        r.content_type()
    );
    assert_eq!(r.into_string().unwrap(), "x");
    // Missing things and escapes stay what they were.
    assert_eq!(fetch(&s, "GET", "/group1/static/nope/").0, 404);
    assert_eq!(fetch(&s, "GET", "/group1/static/docs/nope").0, 404);
    // Escaped dots are cleaned like plain ones: out of static/, never into conf/.
    let reply = raw(
        &s.addr(),
        b"GET /group1/static/docs/%2e%2e/%2e%2e/conf/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 301"), "{reply}");
    assert!(reply.contains("\r\nLocation: /group1/conf/\r\n"), "{reply}");
}

#[test]
fn static_without_group_prefix_redirects_to_its_root() {
    let s = Server::start(json!({"support_group_manage": false}));
    let (code, location, _, _) = fetch(&s, "GET", "/static");
    assert_eq!((code, location.as_str()), (301, "/static/"));
    let (code, _, _, body) = fetch(&s, "GET", "/static/");
    assert_eq!(code, 200);
    assert!(body.contains("<a href=\"report.html\">"), "{body}");
    // The report's group placeholder is the empty prefix here.
    let (code, _, _, report) = fetch(&s, "GET", "/report");
    assert_eq!(code, 200, "{report}");
    assert!(report.contains("var G = '';"), "{report}");
}

#[test]
fn a_fresh_node_writes_its_pages_and_keeps_an_operators() {
    // Fresh: both pages are written; the report is served with its group filled in.
    let s = Server::start(json!({}));
    let uppy = std::fs::read_to_string(s.dir.join("static/uppy.html")).unwrap();
    assert_eq!(uppy.matches("%s").count(), 6, "{uppy}");
    let (code, _, ctype, report) = fetch(&s, "GET", "/group1/report");
    assert_eq!(code, 200, "{report}");
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(report.contains("var G = '/group1';"), "{report}");
    assert!(!report.contains("{group}"), "{report}");
    let (code, _, _, page) = fetch(&s, "GET", "/group1/upload.html");
    assert_eq!(code, 200);
    assert!(
        page.contains("data-endpoint=\"/group1/big/upload/\""),
        "{page}"
    );
    // Removed while running: the report says so, the upload page falls back to its own.
    std::fs::remove_file(s.dir.join("static/report.html")).unwrap();
    std::fs::remove_file(s.dir.join("static/uppy.html")).unwrap();
    let (code, _, _, body) = fetch(&s, "GET", "/group1/report");
    assert_eq!(code, 404);
    assert!(body.ends_with("static/report.html is not found"), "{body}");
    assert_eq!(fetch(&s, "GET", "/group1/upload.html").3, page);

    // An operator's pages, there before the first start and changed before a restart, stay.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(
        dir.path().join("static/uppy.html"),
        "mine <form action=\"%s\">",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("static/report.html"),
        "report of {group} {group}",
    )
    .unwrap();
    let mut s = Server::start_in(dir.path(), "127.0.0.1", json!({}));
    let read = |name: &str| std::fs::read_to_string(dir.path().join("static").join(name)).unwrap();
    assert_eq!(read("uppy.html"), "mine <form action=\"%s\">");
    assert_eq!(read("report.html"), "report of {group} {group}");
    assert_eq!(
        fetch(&s, "GET", "/group1/upload.html").3,
        "mine <form action=\"/group1/static/css\">"
    );
    assert_eq!(
        fetch(&s, "GET", "/group1/report").3,
        "report of /group1 {group}"
    );
    std::fs::write(dir.path().join("static/report.html"), "second").unwrap();
    s.stop();
    s.respawn();
    assert_eq!(read("report.html"), "second");
    assert_eq!(read("uppy.html"), "mine <form action=\"%s\">");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("static"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "nothing else written: {names:?}");
}

/// A GET of `url` sent by curl from the local address `ip`: (status, `Retry-After`, body).
fn get_with_retry_after(ip: &str, url: &str) -> (u16, Option<u64>, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "--interface",
            ip,
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (all, code) = text.rsplit_once('\n').unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((all, ""));
    let retry_after = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().unwrap())
    });
    (code.parse().unwrap(), retry_after, body.to_string())
}

/// Waits out a lock-out of `retry_after` seconds.
fn wait_out(retry_after: Option<u64>) {
    std::thread::sleep(std::time::Duration::from_millis(
        retry_after.expect("a Retry-After") * 1000 + 300,
    ));
}

#[test]
fn reload_key_guesses_stop_a_client_at_its_bound_the_right_key_too_until_the_window_ends() {
    // Three admin addresses besides 127.0.0.1, each a client of its own.
    let s = Server::start(json!({
        "admin_ips": ["127.0.0.90", "127.0.0.91"],
        "secret_guesses_per_client_max": 3,
        "secret_guesses_max": 100,
        "secret_guess_window_s": 3
    }));
    let reload = |key: &str| s.url(&format!("/group1/reload?action=get&key={key}"));
    for i in 0..3 {
        let (code, _, body) = get_with_retry_after("127.0.0.90", &reload(&format!("guess{i}")));
        assert_eq!(code, 401, "guess {i}: {body}");
        assert!(body.contains("(error)key is not correct"), "{body}");
    }
    // Past the bound: refused unread, the right key too, with a JSON message and Retry-After.
    let (code, retry_after, body) = get_with_retry_after("127.0.0.90", &reload("guess3"));
    assert_eq!(code, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "fail");
    assert!(v["message"].as_str().unwrap().contains("admin_key"), "{v}");
    assert!(matches!(retry_after, Some(1..=3)), "{retry_after:?}");
    let (code, retry_after, _) = get_with_retry_after("127.0.0.90", &reload("test-admin-key"));
    assert_eq!(code, 429, "the right key during the lock-out");
    for _ in 0..5 {
        assert_eq!(get_with_retry_after("127.0.0.90", &reload("guess")).0, 429);
    }
    // Seven refusals, one log line (one executor: one line per period per thread).
    let log = s.stderr();
    let lines = log.matches("refused a guess unread").count();
    assert_eq!(lines, 1, "{log}");
    // Another client is not held back.
    let (code, _, body) = get_with_retry_after("127.0.0.91", &reload("test-admin-key"));
    assert_eq!(code, 200, "{body}");
    // Once the window has passed, the right key is taken.
    wait_out(retry_after);
    let (code, _, body) = get_with_retry_after("127.0.0.90", &reload("test-admin-key"));
    assert_eq!(code, 200, "{body}");
}

/// One wrong guess (`url`, answered 403) from each of `n` addresses, none an admin.
fn guess_wrong_from_many(url: &str, n: u8) {
    for i in 0..n {
        let ip = format!("127.0.0.{}", 100 + i);
        let (code, _, body) = get_with_retry_after(&ip, url);
        assert_eq!(code, 403, "{ip}: {body}");
    }
}

/// Admins by address still send `/reload` its key: while other addresses have spent the
/// total of wrong guesses (every client that is no admin is refused unread, the right key
/// too), an admin address's right key is taken; its own wrong guesses are still only wrong.
#[test]
fn the_others_wrong_guesses_do_not_lock_an_admin_address_out_of_reload() {
    let s = Server::start(json!({
        "admin_ips": ["127.0.0.90"],
        "secret_guesses_per_client_max": 100,
        "secret_guesses_max": 4,
        "secret_guess_window_s": 30
    }));
    let stat = |key: &str| s.url(&format!("/group1/stat?admin_key={key}"));
    let reload = |key: &str| s.url(&format!("/group1/reload?action=get&key={key}"));
    guess_wrong_from_many(&stat("guess"), 4);
    let (code, _, body) = get_with_retry_after("127.0.0.110", &stat("test-admin-key"));
    assert_eq!(code, 429, "a non-admin with the right key: {body}");
    for admin in ["127.0.0.90", "127.0.0.1"] {
        let (code, _, body) = get_with_retry_after(admin, &reload("test-admin-key"));
        assert_eq!(code, 200, "{admin}: {body}");
    }
    let (code, _, body) = get_with_retry_after("127.0.0.90", &reload("guess"));
    assert_eq!(code, 401, "{body}");
}

#[test]
fn admin_key_guesses_from_many_addresses_stop_at_the_total_and_admins_by_address_pass() {
    let s = Server::start(json!({
        "secret_guesses_per_client_max": 100,
        "secret_guesses_max": 4,
        "secret_guess_window_s": 3
    }));
    // Non-admin addresses guessing the admin_key that any admin route takes.
    let stat = |key: &str| s.url(&format!("/group1/stat?admin_key={key}"));
    guess_wrong_from_many(&stat("guess"), 4);
    // The total is spent: a fresh address is refused unread, the right key too.
    let (code, retry_after, body) = get_with_retry_after("127.0.0.110", &stat("test-admin-key"));
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("from all clients"), "{body}");
    // Admins known by address send no key: unaffected.
    let (code, _, body) = get_with_retry_after("127.0.0.1", &s.url("/group1/stat"));
    assert_eq!(code, 200, "{body}");
    wait_out(retry_after);
    let (code, _, body) = get_with_retry_after("127.0.0.110", &stat("test-admin-key"));
    assert_eq!(code, 200, "{body}");
}
