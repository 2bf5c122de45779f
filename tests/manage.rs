//! Management routes (docs/PROTOCOL.md §3) and the admin gate (docs/PROTOCOL.md §2, without
//! docs/DEFECTS.md #7, #8, #13). The process life cycle is in tests/startup.rs.
mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

const EMPTY_FILE_INFO: &str = r#"{"name":"","rename":"","path":"","md5":"","size":0,"peers":null,"scene":"","timeStamp":0,"offset":0}"#;

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn get(s: &Server, path: &str) -> (u16, String) {
    call(agent().get(&s.url(path)))
}

/// curl from a chosen local source address with extra headers; returns (status, body).
fn curl_from(source: &str, url: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-S",
        "--max-time",
        "30",
        "--interface",
        source,
        "-w",
        "\n%{http_code}",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// A server with one uploaded file; returns it and the upload's FileResult.
fn server_with_file(overrides: Value) -> (Server, Value) {
    let s = Server::start(overrides);
    let r = upload_json(&s, "managed.txt", b"managed content\n");
    (s, r)
}

#[test]
fn get_file_info_finds_a_record_by_md5_and_by_download_path() {
    let (s, r) = server_with_file(json!({}));
    let md5 = r["md5"].as_str().unwrap();
    let path = r["path"].as_str().unwrap();
    let (code, body) = get(&s, &format!("/group1/get_file_info?md5={md5}"));
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("{\n  \"data\": {\n"),
        "pretty envelope: {body}"
    );
    let v = parse(&body);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["message"], "");
    let d = &v["data"];
    assert_eq!(d["name"], "managed.txt");
    assert_eq!(d["rename"], "");
    assert_eq!(d["md5"], md5);
    assert_eq!(d["size"], 16);
    assert_eq!(d["scene"], "default");
    assert_eq!(d["offset"], -1);
    assert_eq!(d["timeStamp"], r["mtime"]);
    assert_eq!(d["peers"], json!([s.base()]));
    assert_eq!(
        format!(
            "/group1/{}/managed.txt",
            d["path"].as_str().unwrap().strip_prefix("files/").unwrap()
        ),
        path
    );
    let (code, by_path) = get(&s, &format!("/group1/get_file_info?path={path}"));
    assert_eq!(code, 200, "{by_path}");
    assert_eq!(parse(&by_path)["data"], v["data"]);
}

#[test]
fn get_file_info_of_an_unknown_file_is_not_found() {
    let s = Server::start(json!({}));
    for q in [
        "md5=0123456789abcdef0123456789abcdef",
        "path=/group1/default/20200101/00/00/1/none.txt",
    ] {
        let (code, body) = get(&s, &format!("/group1/get_file_info?{q}"));
        assert!((400..500).contains(&code), "{code} {body}");
        let v = parse(&body);
        assert_eq!(v["message"], "leveldb: not found");
        assert_eq!(v["status"], "fail");
        assert_eq!(v["data"], Value::Null);
    }
}

fn assert_deleted(s: &Server, r: &Value, query: &str) {
    let path = r["path"].as_str().unwrap();
    let on_disk = s
        .dir
        .join("files")
        .join(path.strip_prefix("/group1/").unwrap());
    assert!(on_disk.is_file());
    let (code, body) = get(s, &format!("/group1/delete?{query}"));
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_eq!(
        (v["status"].as_str(), v["message"].as_str()),
        (Some("ok"), Some("remove success")),
        "{body}"
    );
    assert!(!on_disk.exists(), "file still on disk");
    let (code, _) = get(s, path);
    assert_eq!(code, 404, "download after delete");
    let (code, body) = get(
        s,
        &format!("/group1/get_file_info?md5={}", r["md5"].as_str().unwrap()),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = get(s, &format!("/group1/delete?{query}"));
    assert!((400..500).contains(&code), "{code} {body}");
    assert_eq!(parse(&body)["message"], "leveldb: not found");
    assert_eq!(parse(&body)["status"], "fail");
}

#[test]
fn delete_by_md5_removes_the_file_and_its_record() {
    let (s, r) = server_with_file(json!({}));
    assert_deleted(&s, &r, &format!("md5={}", r["md5"].as_str().unwrap()));
}

#[test]
fn delete_by_download_path_removes_the_file_and_its_record() {
    let (s, r) = server_with_file(json!({}));
    assert_deleted(&s, &r, &format!("path={}", r["path"].as_str().unwrap()));
}

#[test]
fn the_path_an_upload_answers_finds_and_deletes_its_file_as_given_or_url_encoded() {
    let s = Server::start(json!({"enable_trim_file_name_special_char": false}));
    let r = upload_json(&s, "my doc #1.txt", b"named with spaces\n");
    let src = r["src"].as_str().unwrap();
    assert!(src.ends_with("/my doc #1.txt"), "{r}");
    // As a form value (what a client does with the answer's `src`).
    let (code, body) = get(
        &s,
        &format!("/group1/get_file_info?path={}", urlencode(src)),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["data"]["md5"], r["md5"]);
    // As the url's path (escaped), itself a form value.
    let url = r["url"].as_str().unwrap();
    let url_path = url[url.find("/group1/").unwrap()..]
        .split('?')
        .next()
        .unwrap();
    assert!(url_path.contains("my%20doc%20%231.txt"), "{url}");
    let (code, body) = get(
        &s,
        &format!("/group1/get_file_info?path={}", urlencode(url_path)),
    );
    assert_eq!(code, 200, "{body}");
    assert_deleted(&s, &r, &format!("path={}", urlencode(src)));
}

#[test]
fn delete_with_both_md5_and_path_removes_the_md5s_file() {
    let s = Server::start(json!({}));
    let a = upload_json(&s, "a.txt", b"first file\n");
    let b = upload_json(&s, "b.txt", b"second file\n");
    let query = format!(
        "md5={}&path={}",
        a["md5"].as_str().unwrap(),
        urlencode(b["path"].as_str().unwrap())
    );
    assert_deleted(&s, &a, &query);
    let (code, _) = get(&s, b["path"].as_str().unwrap());
    assert_eq!(code, 200, "the path's file stays");
    // A short md5 is refused even beside a path, as without one.
    let (code, body) = get(
        &s,
        &format!(
            "/group1/delete?md5=abc&path={}",
            b["path"].as_str().unwrap()
        ),
    );
    assert_eq!(
        (code, parse(&body)["message"].as_str()),
        (400, Some("md5 unvalid"))
    );
}

#[test]
fn check_file_exist_and_check_files_exist_take_a_path_key_for_an_md5() {
    let (s, r) = server_with_file(json!({}));
    let path = r["path"].as_str().unwrap();
    let key = md5_hex(format!("files/{}", path.strip_prefix("/group1/").unwrap()).as_bytes());
    let (code, body) = get(&s, &format!("/group1/check_file_exist?md5={key}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["md5"], r["md5"]);
    let (_, body) = get(
        &s,
        &format!(
            "/group1/check_files_exist?md5s={},{key}",
            r["md5"].as_str().unwrap()
        ),
    );
    let data = parse(&body)["data"].clone();
    assert_eq!(data.as_array().map(Vec::len), Some(2), "{body}");
    assert!(data
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["md5"] == r["md5"]));
}

#[test]
fn check_file_exist_by_md5_answers_a_compact_file_info() {
    let (s, r) = server_with_file(json!({}));
    let md5 = r["md5"].as_str().unwrap();
    let (code, body) = get(&s, &format!("/group1/check_file_exist?md5={md5}"));
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("{\"name\":\"managed.txt\",\"rename\":\"\",\"path\":\"files/default/"),
        "{body}"
    );
    let order = [
        "name",
        "rename",
        "path",
        "md5",
        "size",
        "peers",
        "scene",
        "timeStamp",
        "offset",
    ];
    let pos: Vec<usize> = order
        .iter()
        .map(|k| body.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "field order: {body}");
    let v = parse(&body);
    assert_eq!(v["md5"], md5);
    assert_eq!(v["size"], 16);
    assert_eq!(v["offset"], -1);
}

#[test]
fn check_file_exist_of_an_unknown_md5_answers_an_empty_file_info() {
    let s = Server::start(json!({}));
    let (_, body) = get(
        &s,
        "/group1/check_file_exist?md5=0123456789abcdef0123456789abcdef",
    );
    assert_eq!(body, EMPTY_FILE_INFO);
}

#[test]
fn check_file_exist_never_discloses_host_files() {
    let s = Server::start(json!({}));
    for p in [
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "files/../../../../../../etc/passwd",
        "conf/cfg.json",
        "/group1/../../conf/cfg.json",
        "%2Fetc%2Fpasswd",
    ] {
        let (_, body) = get(&s, &format!("/group1/check_file_exist?path={p}"));
        let post = agent()
            .post(&s.url("/group1/check_file_exist"))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&format!("path={p}"));
        let post = match post {
            Ok(r) => r.into_string().unwrap(),
            Err(ureq::Error::Status(_, r)) => r.into_string().unwrap(),
            Err(e) => panic!("transport error: {e}"),
        };
        assert_eq!(post, EMPTY_FILE_INFO, "POST path={p} disclosed: {post}");
        assert_eq!(body, EMPTY_FILE_INFO, "path={p} disclosed: {body}");
        assert!(
            !body.contains("passwd") && !body.contains("cfg.json"),
            "{body}"
        );
    }
}

#[test]
fn status_from_localhost_is_an_ok_envelope_with_local_peers_and_file_stats() {
    let (s, _) = server_with_file(json!({"peers": ["http://127.0.0.9:7"]}));
    let (code, body) = get(&s, "/group1/status");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("{\n  \"data\": {\n"), "{body}");
    let v = parse(&body);
    assert_eq!(v["status"], "ok");
    let d = &v["data"];
    assert_eq!(d["Fs.Local"], s.base());
    // The process's CPUs, not the one an executor's thread is pinned to.
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(d["Sys.NumCpu"], cpus, "{body}");
    assert_eq!(d["Fs.Peers"], json!(["http://127.0.0.9:7"]));
    let alone = Server::start(json!({}));
    let (_, body) = get(&alone, "/group1/status");
    assert_eq!(parse(&body)["data"]["Fs.Peers"], Value::Null, "{body}");
    let stats = d["Fs.FileStats"].as_array().expect("Fs.FileStats array");
    let all = stats
        .iter()
        .find(|r| r["date"] == "all")
        .expect("an `all` row");
    assert_eq!(
        (all["fileCount"].as_i64(), all["totalSize"].as_i64()),
        (Some(1), Some(16)),
        "{stats:?}"
    );
    // The keys dashboards built for go-fastdfs (go-fastdfs-web) read.
    let disk = &d["Sys.DiskInfo"];
    for k in [
        "path",
        "fstype",
        "total",
        "free",
        "used",
        "usedPercent",
        "inodesTotal",
        "inodesUsed",
        "inodesFree",
        "inodesUsedPercent",
    ] {
        assert!(disk.get(k).is_some(), "Sys.DiskInfo.{k} missing: {body}");
    }
    assert!(disk["total"].as_u64().unwrap() > 0, "{body}");
    assert!(disk["path"].as_str().unwrap().ends_with("files"), "{body}");
    let mem = &d["Sys.MemInfo"];
    for k in [
        "total",
        "available",
        "used",
        "usedPercent",
        "free",
        "active",
        "inactive",
        "buffers",
        "cached",
        "swapTotal",
    ] {
        assert!(mem.get(k).is_some(), "Sys.MemInfo.{k} missing: {body}");
    }
    let (total, avail) = (
        mem["total"].as_u64().unwrap(),
        mem["available"].as_u64().unwrap(),
    );
    assert!(total > 0 && avail <= total, "{body}");
}

/// The refusal answer: 403 with go-fastdfs' text as the message of a JSON envelope.
fn refused(code: u16, body: &str, ip: &str) -> bool {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => return false,
    };
    code == 403 && v["message"] == not_permitted(ip) && v["status"] == "fail"
}

fn not_permitted(ip: &str) -> String {
    format!(
        "Can only be called by the cluster ip or 127.0.0.1 or admin_ips(cfg.json),current ip:{ip}"
    )
}

#[test]
fn admin_routes_refuse_a_non_admin_address() {
    let (s, r) = server_with_file(json!({"admin_ips": ["127.0.0.1"]}));
    let md5 = r["md5"].as_str().unwrap();
    for route in ["get_file_info", "delete"] {
        let (code, body) = curl_from(
            "127.0.0.77",
            &s.url(&format!("/group1/{route}?md5={md5}")),
            &[],
        );
        assert_eq!(code, 403, "{route}: {body}");
        let v: Value = serde_json::from_str(&body).expect("a JSON refusal");
        assert_eq!(v["message"], not_permitted("127.0.0.77"), "{route}");
        assert_eq!(v["status"], "fail", "{route}");
    }
    let path = r["path"].as_str().unwrap();
    assert!(s
        .dir
        .join("files")
        .join(path.strip_prefix("/group1/").unwrap())
        .is_file());
    let (code, _) = get(&s, &format!("/group1/get_file_info?md5={md5}"));
    assert_eq!(code, 200, "record survives the refused delete");
}

fn assert_admin_from_77(overrides: Value, headers: &[&str]) {
    let (s, r) = server_with_file(overrides);
    let md5 = r["md5"].as_str().unwrap();
    let (code, body) = curl_from(
        "127.0.0.77",
        &s.url(&format!("/group1/get_file_info?md5={md5}")),
        headers,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["data"]["md5"], md5);
    let (code, body) = curl_from(
        "127.0.0.77",
        &s.url(&format!("/group1/delete?md5={md5}")),
        headers,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["message"], "remove success");
}

#[test]
fn an_exact_admin_ips_entry_admits_that_address() {
    assert_admin_from_77(json!({"admin_ips": ["127.0.0.1", "127.0.0.77"]}), &[]);
}

#[test]
fn a_cidr_admin_ips_entry_admits_addresses_inside_it() {
    assert_admin_from_77(json!({"admin_ips": ["127.0.0.64/26"]}), &[]);
}

#[test]
fn a_peer_url_that_merely_starts_with_the_client_address_does_not_make_it_admin() {
    let (s, r) =
        server_with_file(json!({"admin_ips": ["127.0.0.1"], "peers": ["http://127.0.0.7:1"]}));
    let md5 = r["md5"].as_str().unwrap();
    let (code, body) = curl_from(
        "127.0.0.77",
        &s.url(&format!("/group1/get_file_info?md5={md5}")),
        &[],
    );
    assert!(refused(code, &body, "127.0.0.77"), "{code} {body}");
}

#[test]
fn forwarded_headers_from_an_untrusted_address_are_ignored() {
    let (s, r) = server_with_file(json!({"admin_ips": ["127.0.0.1"]}));
    let md5 = r["md5"].as_str().unwrap();
    for h in ["X-Forwarded-For: 127.0.0.1", "X-Real-Ip: 127.0.0.1"] {
        let (code, body) = curl_from(
            "127.0.0.77",
            &s.url(&format!("/group1/get_file_info?md5={md5}")),
            &[h],
        );
        // Someone behind an untrusted proxy at 127.0.0.77 (RFC 6666's prefix + its address).
        assert!(refused(code, &body, "100::7f00:4d"), "{h}: {code} {body}");
    }
}

#[test]
fn a_request_an_untrusted_local_proxy_forwarded_is_not_an_admin_one() {
    // nginx on the same host without trusted_proxies: its address is loopback, an admin.
    let (s, r) = server_with_file(json!({}));
    let md5 = r["md5"].as_str().unwrap();
    let url = s.url(&format!("/group1/get_file_info?md5={md5}"));
    for h in ["X-Forwarded-For: 203.0.113.7", "X-Real-Ip: 203.0.113.7"] {
        let (code, body) = curl_from("127.0.0.1", &url, &[h]);
        assert!(refused(code, &body, "100::7f00:1"), "{h}: {code} {body}");
    }
    let (code, body) = curl_from("127.0.0.1", &url, &[]);
    assert_eq!(code, 200, "not forwarded: loopback is an admin: {body}");
    // Trusted, the proxy names its client, who is judged on its own.
    let (s, r) = server_with_file(json!({"trusted_proxies": ["127.0.0.1"]}));
    let md5 = r["md5"].as_str().unwrap();
    let url = s.url(&format!("/group1/get_file_info?md5={md5}"));
    let (code, body) = curl_from("127.0.0.1", &url, &["X-Real-Ip: 203.0.113.7"]);
    assert!(refused(code, &body, "203.0.113.7"), "{code} {body}");
    // The access log names that client too, not the proxy.
    let logged = eventually(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(s.dir.join("log/access.log")).is_ok_and(|log| {
            log.lines()
                .any(|l| l.contains("| 203.0.113.7 |") && l.contains("get_file_info"))
        })
    });
    assert!(
        logged,
        "{:?}",
        std::fs::read_to_string(s.dir.join("log/access.log"))
    );
}

#[test]
fn forwarded_headers_from_a_trusted_proxy_name_the_client() {
    assert_admin_from_77(
        json!({"admin_ips": ["127.0.0.1"], "trusted_proxies": ["127.0.0.77"]}),
        &["X-Forwarded-For: 127.0.0.1"],
    );
    // ... and a trusted proxy forwarding a non-admin client is refused with that client's address.
    let (s, r) =
        server_with_file(json!({"admin_ips": ["127.0.0.1"], "trusted_proxies": ["127.0.0.77"]}));
    let url = s.url(&format!(
        "/group1/get_file_info?md5={}",
        r["md5"].as_str().unwrap()
    ));
    let (code, body) = curl_from("127.0.0.77", &url, &["X-Forwarded-For: 10.9.8.7"]);
    assert!(refused(code, &body, "10.9.8.7"), "{code} {body}");
}

#[test]
fn status_from_a_non_admin_address_hides_host_details() {
    let (s, _) = server_with_file(json!({"admin_ips": ["127.0.0.1"]}));
    let (code, body) = curl_from("127.0.0.77", &s.url("/group1/status"), &[]);
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_eq!(v["status"], "ok");
    for k in ["Fs.Local", "Fs.Peers", "Sys.DiskInfo", "Sys.MemInfo"] {
        assert!(v["data"].get(k).is_none(), "{k} leaked: {body}");
    }
    assert!(!body.contains(&s.base()), "host leaked: {body}");
    assert!(
        !body.contains(&s.dir.display().to_string()),
        "dir leaked: {body}"
    );
}

#[test]
fn a_deleted_file_can_be_uploaded_again() {
    let (s, r) = server_with_file(json!({}));
    let md5 = r["md5"].as_str().unwrap();
    let (code, body) = get(&s, &format!("/group1/delete?md5={md5}"));
    assert_eq!(code, 200, "{body}");
    let again = upload_json(&s, "managed.txt", b"managed content\n");
    assert_eq!(again["md5"], md5);
    let (code, got) = get(&s, again["path"].as_str().unwrap());
    assert_eq!((code, got.as_str()), (200, "managed content\n"));
    let (code, body) = get(&s, &format!("/group1/check_file_exist?md5={md5}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["md5"], md5);
}

#[test]
fn a_renamed_file_is_found_and_deleted_by_its_download_path() {
    let s = Server::start(json!({}));
    let (ct, body) = multipart(
        &[("output", "json"), ("filename", "stored-name.txt")],
        Some(("clientname.txt", b"renamed and managed")),
    );
    let resp = agent()
        .post(&s.url("/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    let r = parse(&resp.expect("upload").into_string().unwrap());
    let path = r["path"].as_str().unwrap();
    assert!(path.ends_with("/stored-name.txt"), "{path}");
    let (code, body) = get(&s, &format!("/group1/get_file_info?path={path}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["data"]["name"], "clientname.txt");
    assert_deleted(&s, &r, &format!("path={path}"));
}

#[test]
fn without_group_management_paths_without_the_group_find_and_delete_files() {
    let s = Server::start(json!({"support_group_manage": false}));
    let (ct, body) = multipart(
        &[("output", "json")],
        Some(("nogroup.txt", b"no group manage")),
    );
    let resp = agent()
        .post(&s.url("/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    let r = parse(&resp.expect("upload").into_string().unwrap());
    let path = r["path"].as_str().unwrap();
    assert!(path.starts_with("/default/"), "{path}");
    let (code, body) = get(&s, &format!("/get_file_info?path={path}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["data"]["md5"], r["md5"]);
    let on_disk = s.dir.join("files").join(path.trim_start_matches('/'));
    assert!(on_disk.is_file());
    let (code, body) = get(&s, &format!("/delete?path={path}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["message"], "remove success");
    assert!(!on_disk.exists());
}

#[test]
fn check_file_exist_forgets_a_record_whose_file_vanished() {
    let (s, r) = server_with_file(json!({}));
    let md5 = r["md5"].as_str().unwrap();
    let rel = r["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/group1/")
        .unwrap()
        .to_string();
    std::fs::remove_file(s.dir.join("files").join(rel)).unwrap();
    let (_, body) = get(&s, &format!("/group1/check_file_exist?md5={md5}"));
    assert_eq!(body, EMPTY_FILE_INFO);
}
