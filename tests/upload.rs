//! `G/upload` as go-fastdfs clients use it (docs/PROTOCOL.md §4): output styles, placement,
//! naming rules, whitelists, dedup, second-pass lookups, and the defects of §15 that must
//! not come back (path traversal, orphan files, the extension case bug).
mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FILE_RESULT_KEYS: [&str; 11] = [
    "domain", "md5", "mtime", "path", "retcode", "retmsg", "scene", "scenes", "size", "src", "url",
];

/// Every local `YYYYMMDD/HH/MM` between two Unix times (inclusive).
fn stamps_between(from: i64, to: i64) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let mut t = from;
    while t <= to + 60 {
        let s = local_stamp(t.min(to));
        if !v.contains(&s) {
            v.push(s);
        }
        t += 30;
    }
    v
}

fn unique() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{n}", std::process::id())
}

/// Runs curl; returns (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "120", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// Regular files under `dir` (recursive), relative to `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Stored files under files/ (relative to files/), temp files included.
fn stored(s: &Server) -> Vec<String> {
    files_in(&s.dir.join("files"))
}

/// A refused upload leaves nothing under files/ (its temp file is removed promptly).
fn assert_nothing_stored(s: &Server) {
    assert!(
        eventually(Duration::from_secs(5), || stored(s).is_empty()),
        "{:?}",
        stored(s)
    );
}

/// Stored files outside files/_tmp.
fn stored_final(s: &Server) -> Vec<String> {
    stored(s)
        .into_iter()
        .filter(|p| !p.starts_with("_tmp/"))
        .collect()
}

/// (status, body) of a sent request.
fn done(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn message(body: &str) -> String {
    parse(body)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn assert_refused(code: u16, body: &str, msg: &str) {
    assert!(
        (400..500).contains(&code),
        "expected a 4xx, got {code}: {body}"
    );
    let m = message(body);
    assert!(
        m.starts_with(msg),
        "message {m:?} should start with {msg:?}"
    );
    assert_eq!(parse(body)["status"], "fail", "{body}");
}

fn get_file_info(s: &Server, query: &str) -> (u16, Value) {
    let (code, body) = call(agent().get(&s.url(&format!("/group1/get_file_info?{query}"))));
    (code, parse(&body))
}

fn temp_file(data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("payload.bin");
    std::fs::write(&p, data).unwrap();
    (d, p)
}

/// Asserts `path` is `/group1/<scene>/<stamp>/1/<name>` with a stamp between the times.
fn assert_default_layout(path: &str, scene: &str, name: &str, before: i64, after: i64) {
    let ok = stamps_between(before, after)
        .iter()
        .any(|st| path == format!("/group1/{scene}/{st}/1/{name}"));
    assert!(
        ok,
        "path {path} is not /group1/{scene}/<local YYYYMMDD/HH/MM>/1/{name}"
    );
}

#[test]
fn curl_upload_with_output_text_answers_the_download_url_and_stores_under_scene_date_and_peer() {
    let s = Server::start(json!({}));
    let (_d, f) = temp_file(b"hello world\n");
    let before = now();
    let form = format!("file=@{};filename=hello.txt", f.display());
    let (code, body) = curl(&["-F", &form, "-F", "output=text", &s.url("/group1/upload")]);
    let after = now();
    assert_eq!(code, 200, "{body}");
    let (url, query) = body.split_once('?').expect("url has a query");
    assert_eq!(query, "name=hello.txt&download=1");
    let path = url
        .strip_prefix(&s.base())
        .expect("url starts with the host");
    assert_default_layout(path, "default", "hello.txt", before, after);
    let on_disk = s
        .dir
        .join("files")
        .join(path.strip_prefix("/group1/").unwrap());
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"hello world\n");
    // Default output is text as well.
    let (code, body2) = curl(&["-F", &form, &s.url("/group1/upload")]);
    assert_eq!((code, body2.as_str()), (200, body.as_str()));
}

#[test]
fn text_output_has_no_name_query_when_default_download_is_off() {
    let s = Server::start(json!({"default_download": false}));
    let (code, body) = upload(&s, "plain.txt", b"plain", &[("output", "text")]);
    assert_eq!(code, 200);
    assert!(!body.contains('?'), "{body}");
    assert!(
        body.starts_with(&format!("{}/group1/default/", s.base())),
        "{body}"
    );
    assert!(body.ends_with("/1/plain.txt"), "{body}");
}

#[test]
fn json_output_is_a_pretty_file_result_with_sorted_keys_and_escaped_ampersand() {
    let s = Server::start(json!({}));
    let before = now();
    let (code, body) = upload(&s, "hello.txt", b"hello world\n", &[("output", "json")]);
    let after = now();
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("{\n  \"domain\": "), "{body}");
    assert!(!body.ends_with('\n'), "no trailing newline");
    assert!(
        body.contains("?name=hello.txt\\u0026download=1\""),
        "{body}"
    );
    // Keys appear sorted in the text.
    let positions: Vec<usize> = FILE_RESULT_KEYS
        .iter()
        .map(|k| body.find(&format!("\n  \"{k}\": ")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "keys not sorted: {body}"
    );
    let v = parse(&body);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, FILE_RESULT_KEYS);
    assert_eq!(v["md5"], "6f5902ac237024bdd0c176cb93063dc4");
    assert_eq!(v["size"], 12);
    assert_eq!(v["scene"], "default");
    assert_eq!(v["scenes"], "default");
    assert_eq!(v["retmsg"], "");
    assert_eq!(v["retcode"], 0);
    assert_eq!(v["domain"], s.base());
    assert_eq!(v["src"], v["path"]);
    let path = v["path"].as_str().unwrap();
    assert_default_layout(path, "default", "hello.txt", before, after);
    assert_eq!(
        v["url"],
        format!("{}{path}?name=hello.txt&download=1", s.base())
    );
    let mtime = v["mtime"].as_i64().unwrap();
    assert!(
        before <= mtime && mtime <= after,
        "mtime {mtime} not in [{before}, {after}]"
    );
}

#[test]
fn json2_output_is_a_pretty_envelope_around_the_file_result() {
    let s = Server::start(json!({}));
    let (code, body) = upload(&s, "hello.txt", b"hello world\n", &[("output", "json2")]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("{\n  \"data\": {\n    \"domain\": "),
        "{body}"
    );
    let v = parse(&body);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["data", "message", "status"]);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["message"], "");
    assert_eq!(v["data"]["md5"], "6f5902ac237024bdd0c176cb93063dc4");
    assert_eq!(v["data"].as_object().unwrap().len(), 11);
}

#[test]
fn an_unknown_output_is_refused_and_stores_nothing() {
    let s = Server::start(json!({}));
    let (code, body) = upload(&s, "a.txt", b"abc", &[("output", "xml")]);
    assert_refused(code, &body, "output just support json or text or json2");
    assert_nothing_stored(&s);
}

#[test]
fn the_scene_field_and_its_scenes_alias_choose_the_directory() {
    let s = Server::start(json!({}));
    let before = now();
    let a = upload(
        &s,
        "a.txt",
        b"scene a",
        &[("output", "json"), ("scene", "photos")],
    );
    let b = upload(
        &s,
        "b.txt",
        b"scene b",
        &[("output", "json"), ("scenes", "docs")],
    );
    let after = now();
    let (a, b) = (parse(&a.1), parse(&b.1));
    assert_eq!(a["scene"], "photos");
    assert_default_layout(
        a["path"].as_str().unwrap(),
        "photos",
        "a.txt",
        before,
        after,
    );
    assert_eq!(b["scene"], "docs");
    assert_default_layout(b["path"].as_str().unwrap(), "docs", "b.txt", before, after);
    let p = a["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/group1/")
        .unwrap();
    assert_eq!(
        std::fs::read(s.dir.join("files").join(p)).unwrap(),
        b"scene a"
    );
}

#[test]
fn a_scene_outside_the_scenes_whitelist_is_refused() {
    let s = Server::start(
        json!({"scenes": ["photos", "docs:GEZDGNBVGY3TQOJQ"], "default_scene": "photos"}),
    );
    let (code, body) = upload(
        &s,
        "a.txt",
        b"whitelisted",
        &[("output", "json"), ("scene", "other")],
    );
    assert_refused(code, &body, "not valid scene");
    assert_nothing_stored(&s);
    let (code, body) = upload(
        &s,
        "a.txt",
        b"whitelisted",
        &[("output", "json"), ("scene", "photos")],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["scene"], "photos");
}

#[test]
fn a_custom_path_loses_its_dots_and_outer_slashes_and_replaces_scene_and_date() {
    let s = Server::start(json!({}));
    let (code, body) = upload(
        &s,
        "x.txt",
        b"custom",
        &[("output", "json"), ("path", "/my.dir/sub.d/")],
    );
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_eq!(v["path"], "/group1/mydir/subd/x.txt");
    assert_eq!(
        std::fs::read(s.dir.join("files/mydir/subd/x.txt")).unwrap(),
        b"custom"
    );
    let (code, got) = call(agent().get(&s.url("/group1/mydir/subd/x.txt")));
    assert_eq!((code, got.as_str()), (200, "custom"));
}

#[test]
fn the_filename_field_renames_the_stored_file_and_the_record_keeps_the_original_name() {
    let s = Server::start(json!({}));
    let (code, body) = upload(
        &s,
        "orig.txt",
        b"renamed content",
        &[("output", "json"), ("filename", "stored.txt")],
    );
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    let path = v["path"].as_str().unwrap();
    assert!(path.ends_with("/1/stored.txt"), "{path}");
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .ends_with("/stored.txt?name=orig.txt&download=1"),
        "{v}"
    );
    let rel = path.strip_prefix("/group1/").unwrap();
    assert_eq!(
        std::fs::read(s.dir.join("files").join(rel)).unwrap(),
        b"renamed content"
    );
    let (code, info) = get_file_info(&s, &format!("md5={}", v["md5"].as_str().unwrap()));
    assert_eq!(code, 200, "{info}");
    assert_eq!(info["data"]["name"], "orig.txt");
    assert_eq!(info["data"]["rename"], "stored.txt");
    let (code, by_path) = get_file_info(&s, &format!("path={path}"));
    assert_eq!(code, 200, "{by_path}");
    assert_eq!(by_path["data"], info["data"]);
}

#[test]
fn rename_file_stores_under_a_random_hex_name_with_the_original_extension() {
    let s = Server::start(json!({"rename_file": true}));
    let v = upload_json(&s, "photo.JPG", b"not really a jpeg");
    let path = v["path"].as_str().unwrap();
    let stored_name = path.rsplit('/').next().unwrap();
    let (stem, ext) = stored_name.split_once('.').unwrap();
    assert_eq!(ext.to_lowercase(), "jpg", "{stored_name}");
    assert!(
        stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()),
        "{stored_name}"
    );
    let (_, info) = get_file_info(&s, &format!("md5={}", v["md5"].as_str().unwrap()));
    assert_eq!(info["data"]["name"], "photo.JPG");
    assert_eq!(info["data"]["rename"], stored_name);
    let rel = path.strip_prefix("/group1/").unwrap();
    assert_eq!(
        std::fs::read(s.dir.join("files").join(rel)).unwrap(),
        b"not really a jpeg"
    );
}

#[test]
fn special_characters_are_trimmed_from_names_when_enabled() {
    let s = Server::start(json!({}));
    let v = upload_json(&s, "my file-(1)#x.txt", b"special");
    assert!(
        v["path"].as_str().unwrap().ends_with("/1/myfile1x.txt"),
        "{v}"
    );
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .ends_with("?name=myfile1x.txt&download=1"),
        "{v}"
    );

    let s = Server::start(json!({"enable_trim_file_name_special_char": false}));
    let v = upload_json(&s, "my file-(1).txt", b"kept");
    // `path` and `src` as stored (go-fastdfs' answer), the url escaped.
    assert!(
        v["path"].as_str().unwrap().ends_with("/1/my file-(1).txt"),
        "{v}"
    );
    assert_eq!(v["src"], v["path"]);
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .ends_with("/1/my%20file-(1).txt?name=my%20file-%281%29.txt&download=1"),
        "{v}"
    );
}

#[test]
fn an_upper_case_extension_whitelist_entry_matches_lower_case_names() {
    let s = Server::start(json!({"extensions": ["PNG"]}));
    let (code, body) = upload(&s, "a.png", b"\x89PNG fake", &[("output", "json")]);
    assert_eq!(
        code, 200,
        "PNG in the whitelist must allow a.png (docs/DEFECTS.md #21): {body}"
    );
    let (code, body) = upload(&s, "A.PNG", b"\x89PNG fake 2", &[("output", "json")]);
    assert_eq!(code, 200, "{body}");
    let (code, body) = upload(&s, "a.txt", b"text", &[("output", "json")]);
    assert_refused(code, &body, "(error)file extension mismatch");
}

#[test]
fn the_extension_whitelist_also_applies_to_the_filename_field() {
    let s = Server::start(json!({"extensions": [".png"]}));
    let (code, body) = upload(
        &s,
        "a.png",
        b"MZ evil",
        &[("output", "json"), ("filename", "evil.exe")],
    );
    assert_refused(code, &body, "(error)file extension mismatch");
    assert_nothing_stored(&s);
}

#[test]
fn an_md5_field_that_does_not_match_is_refused_and_leaves_no_file() {
    let s = Server::start(json!({}));
    let (code, body) = upload(
        &s,
        "mm.txt",
        b"mismatch",
        &[
            ("output", "json"),
            ("md5", "00000000000000000000000000000000"),
        ],
    );
    assert_refused(code, &body, " fileInfo.Md5 and md5sum !=");
    assert!(
        eventually(Duration::from_secs(5), || stored(&s).is_empty()),
        "orphans: {:?}",
        stored(&s)
    );
    // The right md5 is accepted.
    let good = md5_hex(b"mismatch");
    let (code, body) = upload(
        &s,
        "mm.txt",
        b"mismatch",
        &[("output", "json"), ("md5", &good)],
    );
    assert_eq!(code, 200, "{body}");
}

#[test]
fn a_zero_length_file_is_refused_and_nothing_is_indexed() {
    let s = Server::start(json!({}));
    let (code, body) = upload(&s, "zero.txt", b"", &[("output", "json")]);
    assert_refused(code, &body, "file size is zero");
    assert_nothing_stored(&s);
    let empty_md5 = md5_hex(b"");
    let (_, body) =
        call(agent().get(&s.url(&format!("/group1/upload?md5={empty_md5}&output=json"))));
    assert_eq!(parse(&body)["md5"], "", "{body}");
    let (code, _) = get_file_info(&s, &format!("md5={empty_md5}"));
    assert_eq!(code, 404);
}

#[test]
fn read_only_refuses_uploads() {
    let s = Server::start(json!({"read_only": true}));
    let (code, body) = upload(&s, "ro.txt", b"read only", &[("output", "json")]);
    assert_refused(code, &body, "(error) readonly");
    assert_nothing_stored(&s);
}

#[test]
fn a_post_that_is_not_multipart_is_refused() {
    let s = Server::start(json!({}));
    let (code, body) = done(
        agent()
            .post(&s.url("/group1/upload"))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string("output=json&a=b"),
    );
    assert_refused(
        code,
        &body,
        "request Content-Type isn't multipart/form-data",
    );
}

#[test]
fn a_multipart_post_without_a_file_part_is_refused() {
    let s = Server::start(json!({}));
    let (ct, body) = multipart(&[("output", "json"), ("scene", "x")], None);
    let (code, body) = done(
        agent()
            .post(&s.url("/group1/upload"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_refused(code, &body, "http: no such file");
}

#[test]
fn the_same_content_uploaded_twice_gives_the_same_url_and_one_copy_on_disk() {
    let s = Server::start(json!({}));
    let (c1, u1) = upload(&s, "dup.txt", b"duplicate me", &[]);
    let (c2, u2) = upload(&s, "dup.txt", b"duplicate me", &[]);
    let (c3, u3) = upload(&s, "other-name.txt", b"duplicate me", &[]);
    assert_eq!((c1, c2, c3), (200, 200, 200));
    assert_eq!(u1, u2);
    assert_eq!(u1, u3, "dedup answers the existing record");
    assert_eq!(stored_final(&s).len(), 1, "{:?}", stored(&s));
    assert!(
        eventually(Duration::from_secs(5), || stored(&s).len() == 1),
        "{:?}",
        stored(&s)
    );
}

#[test]
fn twenty_concurrent_identical_uploads_all_succeed_with_one_file_on_disk() {
    let s = Server::start(json!({}));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let results: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|_| sc.spawn(|| upload(&s, "same.bin", &data, &[("output", "json")])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let md5 = md5_hex(&data);
    let mut paths = Vec::new();
    for (code, body) in &results {
        assert_eq!(*code, 200, "{body}");
        let v = parse(body);
        assert_eq!(v["md5"], md5.as_str());
        paths.push(v["path"].as_str().unwrap().to_string());
    }
    paths.dedup();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(stored_final(&s).len(), 1, "{:?}", stored(&s));
    assert!(
        eventually(Duration::from_secs(5), || stored(&s).len() == 1),
        "{:?}",
        stored(&s)
    );
}

#[test]
fn same_name_with_new_content_gets_a_non_accumulating_numeric_prefix() {
    let s = Server::start(json!({}));
    let f = [("output", "json"), ("path", "coll")];
    let a = parse(&upload(&s, "a.txt", b"first", &f).1);
    let b = parse(&upload(&s, "a.txt", b"second", &f).1);
    let c = parse(&upload(&s, "a.txt", b"third", &f).1);
    assert_eq!(a["path"], "/group1/coll/a.txt");
    assert_eq!(b["path"], "/group1/coll/0_a.txt");
    assert_eq!(
        c["path"], "/group1/coll/1_a.txt",
        "prefixes must not accumulate (docs/DEFECTS.md #20)"
    );
    assert_eq!(
        std::fs::read(s.dir.join("files/coll/a.txt")).unwrap(),
        b"first"
    );
    assert_eq!(
        std::fs::read(s.dir.join("files/coll/0_a.txt")).unwrap(),
        b"second"
    );
    assert_eq!(
        std::fs::read(s.dir.join("files/coll/1_a.txt")).unwrap(),
        b"third"
    );
    // The default layout too, unless the two uploads straddle a minute boundary.
    let a = parse(&upload(&s, "d.txt", b"default one", &[("output", "json")]).1);
    let b = parse(&upload(&s, "d.txt", b"default two", &[("output", "json")]).1);
    let (pa, pb) = (a["path"].as_str().unwrap(), b["path"].as_str().unwrap());
    let (da, db) = (
        pa.rsplit_once('/').unwrap().0,
        pb.rsplit_once('/').unwrap().0,
    );
    if da == db {
        assert_eq!(pb, format!("{da}/0_d.txt"));
    } else {
        assert!(pb.ends_with("/d.txt"), "{pb}");
    }
}

#[test]
fn a_collision_of_a_255_byte_name_is_stored_under_a_shortened_prefixed_name() {
    let s = Server::start(json!({}));
    let f = [("output", "json"), ("path", "long")];
    let name = format!("{}.txt", "n".repeat(251));
    assert_eq!(name.len(), 255);
    let a = parse(&upload(&s, &name, b"first", &f).1);
    assert_eq!(a["path"], format!("/group1/long/{name}"));
    let (code, body) = upload(&s, &name, b"second", &f);
    assert_eq!(code, 200, "{body}");
    let b = parse(&body);
    let stored = format!("0_{}.txt", "n".repeat(249));
    assert_eq!(stored.len(), 255);
    assert_eq!(b["path"], format!("/group1/long/{stored}"));
    let (code, got) = call(agent().get(&s.url(&format!("/group1/long/{stored}"))));
    assert_eq!((code, got.as_str()), (200, "second"));
    let (code, got) = call(agent().get(&s.url(&format!("/group1/long/{name}"))));
    assert_eq!((code, got.as_str()), (200, "first"));
}

#[test]
fn without_distinct_files_the_md5_is_of_the_path_and_a_reupload_overwrites() {
    let s = Server::start(json!({"enable_distinct_file": false}));
    let f = [("output", "json"), ("path", "ow")];
    let a = parse(&upload(&s, "a.txt", b"version one", &f).1);
    assert_eq!(a["md5"], md5_hex(b"files/ow/a.txt"));
    assert_eq!(a["path"], "/group1/ow/a.txt");
    let (code, got) = call(agent().get(&s.url("/group1/ow/a.txt")));
    assert_eq!((code, got.as_str()), (200, "version one"));
    let b = parse(&upload(&s, "a.txt", b"version two!", &f).1);
    assert_eq!(b["path"], "/group1/ow/a.txt");
    assert_eq!(b["md5"], a["md5"]);
    assert_eq!(
        std::fs::read(s.dir.join("files/ow/a.txt")).unwrap(),
        b"version two!"
    );
    let (code, got) = call(agent().get(&s.url("/group1/ow/a.txt")));
    assert_eq!((code, got.as_str()), (200, "version two!"));
}

#[test]
fn sha1_file_sum_arithmetic_returns_a_sha1_in_the_md5_field() {
    let s = Server::start(json!({"file_sum_arithmetic": "sha1"}));
    let v = upload_json(&s, "s.txt", b"hello world\n");
    let out = Command::new("sh")
        .args(["-c", "printf 'hello world\\n' | sha1sum"])
        .output()
        .unwrap();
    let expected = String::from_utf8(out.stdout).unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    assert_eq!(expected, "22596363b3de40b06f981fb85d82312e8c0ed511");
    assert_eq!(v["md5"], expected);
}

#[test]
fn a_second_pass_get_answers_a_compact_file_result_by_md5() {
    let s = Server::start(json!({}));
    let up = upload_json(&s, "hello.txt", b"hello world\n");
    let md5 = up["md5"].as_str().unwrap();
    let (code, body) = call(agent().get(&s.url(&format!("/group1/upload?md5={md5}&output=json"))));
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("{\"url\":\""), "{body}");
    assert!(!body.contains('\n'));
    let order = [
        "url", "md5", "path", "domain", "scene", "size", "mtime", "scenes", "retmsg", "retcode",
        "src",
    ];
    let pos: Vec<usize> = order
        .iter()
        .map(|k| body.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "compact field order: {body}"
    );
    assert!(body.contains("\\u0026download=1"), "{body}");
    assert_eq!(parse(&body), up);
    // text output is the URL
    let (code, body) = call(agent().get(&s.url(&format!("/group1/upload?md5={md5}"))));
    assert_eq!((code, body.as_str()), (200, up["url"].as_str().unwrap()));
    // go-fastdfs' LevelDB held the record under its path key too (MD5 of files/.../name),
    // and the second pass looked the `md5` up as any key (SPEC §5.2).
    let rel = format!(
        "files{}",
        up["path"].as_str().unwrap().trim_start_matches("/group1")
    );
    let key = md5_hex(rel.as_bytes());
    let (code, body) = call(agent().get(&s.url(&format!("/group1/upload?md5={key}&output=json"))));
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body), up);
}

#[test]
fn a_second_pass_get_of_an_unknown_md5_answers_an_empty_file_result() {
    let s = Server::start(json!({}));
    let (_, body) = call(
        agent().get(&s.url("/group1/upload?md5=0123456789abcdef0123456789abcdef&output=json")),
    );
    assert_eq!(
        body,
        r#"{"url":"","md5":"","path":"","domain":"","scene":"","size":0,"mtime":0,"scenes":"","retmsg":"","retcode":0,"src":""}"#
    );
}

#[test]
fn a_second_pass_get_without_md5_explains_how_to_upload() {
    let s = Server::start(json!({}));
    let (code, body) = call(agent().get(&s.url("/group1/upload?output=json")));
    assert_refused(
        code,
        &body,
        "(error) if you want to upload fast md5 is require,and if you want to upload file,you must use post method  ",
    );
}

#[test]
fn a_filename_field_with_dot_dot_cannot_write_outside_files() {
    let s = Server::start(json!({}));
    let u = unique();
    let target = format!("/tmp/pwn_{u}.txt");
    let evil = format!("../../../../../../../../tmp/pwn_{u}.txt");
    let (code, body) = upload(
        &s,
        "x.txt",
        b"pwn",
        &[("output", "json"), ("filename", &evil)],
    );
    assert!((400..500).contains(&code), "{code} {body}");
    assert!(!Path::new(&target).exists(), "wrote {target}");
    assert!(
        files_in(&s.dir).iter().all(|p| !p.contains("pwn")),
        "{:?}",
        files_in(&s.dir)
    );
    assert_nothing_stored(&s);
}

#[test]
fn a_scene_with_dot_dot_cannot_write_outside_files() {
    let s = Server::start(json!({}));
    let u = unique();
    let target = format!("/tmp/pwn_{u}");
    let evil = format!("../../../../../../../../tmp/pwn_{u}");
    let (code, body) = upload(
        &s,
        "x.txt",
        b"pwn scene",
        &[("output", "json"), ("scene", &evil)],
    );
    assert!((400..500).contains(&code), "{code} {body}");
    assert!(!Path::new(&target).exists(), "created {target}");
    assert!(!s.dir.parent().unwrap().join(format!("pwn_{u}")).exists());
    assert_nothing_stored(&s);
}

#[test]
fn a_custom_path_with_dot_dot_stays_under_files() {
    let s = Server::start(json!({}));
    let (code, body) = upload(
        &s,
        "x.txt",
        b"dotdot path",
        &[("output", "json"), ("path", "../../x")],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["path"], "/group1/x/x.txt");
    assert_eq!(
        std::fs::read(s.dir.join("files/x/x.txt")).unwrap(),
        b"dotdot path"
    );
    assert!(!s.dir.parent().unwrap().join("x").join("x.txt").exists());
}

#[test]
fn a_multipart_filename_with_directories_keeps_only_its_base_name() {
    let s = Server::start(json!({"enable_trim_file_name_special_char": false}));
    let before = now();
    let (code, body) = upload(
        &s,
        "../../base.txt",
        b"basename only",
        &[("output", "json")],
    );
    let after = now();
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_default_layout(
        v["path"].as_str().unwrap(),
        "default",
        "base.txt",
        before,
        after,
    );
    assert!(!s.dir.join("base.txt").exists() && !s.dir.parent().unwrap().join("base.txt").exists());
    assert_eq!(stored_final(&s).len(), 1, "{:?}", stored(&s));
}

#[test]
fn an_upload_whose_connection_dies_half_way_leaves_no_file_and_no_record() {
    let s = Server::start(json!({}));
    let before = now();
    let b = "halfwayBoundary42";
    let mut st = TcpStream::connect(s.addr()).unwrap();
    let head = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={b}\r\nContent-Length: {}\r\n\r\n",
        s.addr(),
        10 << 20
    );
    let part = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    st.write_all(head.as_bytes()).unwrap();
    st.write_all(part.as_bytes()).unwrap();
    st.write_all(&vec![b'h'; (1 << 20) - part.len()]).unwrap();
    st.flush().unwrap();
    // The upload is in progress: its temp file exists.
    assert!(
        eventually(Duration::from_secs(10), || stored(&s)
            .iter()
            .any(|p| p.starts_with("_tmp/"))),
        "no temp file while uploading: {:?}",
        stored(&s)
    );
    drop(st);
    let clean = eventually(Duration::from_secs(15), || {
        let top: Vec<String> = std::fs::read_dir(s.dir.join("files"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        stored(&s).is_empty() && top.iter().all(|n| n == "_tmp")
    });
    assert!(clean, "left behind: {:?}", stored(&s));
    let after = now();
    for st in stamps_between(before, after) {
        let (code, v) = get_file_info(&s, &format!("path=/group1/default/{st}/1/half.bin"));
        assert_eq!(code, 404, "{v}");
        assert_eq!(v["message"], "leveldb: not found");
    }
    let (_, status) = call(agent().get(&s.url("/group1/status")));
    let stats = parse(&status)["data"]["Fs.FileStats"].clone();
    let all = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["date"] == "all")
        .cloned()
        .unwrap();
    assert_eq!(all["fileCount"], 0, "{stats}");
    // The server still takes uploads.
    let v = upload_json(&s, "after.txt", b"still alive");
    assert_eq!(v["size"], 11);
}

#[test]
fn a_50_mib_curl_upload_has_the_right_md5_and_size() {
    let s = Server::start(json!({}));
    // 1 MiB of xorshift noise, each copy stamped with its index (generation stays cheap in
    // a debug build).
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let mut data = Vec::with_capacity(50 << 20);
    for i in 0..50u64 {
        data.extend_from_slice(&i.to_le_bytes());
        data.extend_from_slice(&block[8..]);
    }
    let md5 = md5_hex(&data);
    let (_d, f) = temp_file(&data);
    let form = format!("file=@{};filename=big.bin", f.display());
    let (code, body) = curl(&["-F", &form, "-F", "output=json", &s.url("/group1/upload")]);
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_eq!(v["md5"], md5.as_str());
    assert_eq!(v["size"], 50 << 20);
    let rel = v["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/group1/")
        .unwrap()
        .to_string();
    let on_disk = std::fs::read(s.dir.join("files").join(rel)).unwrap();
    assert_eq!(on_disk.len(), 50 << 20);
    assert!(on_disk == data, "stored bytes differ");
}

#[test]
fn without_group_management_post_upload_works_and_urls_have_no_group() {
    let s = Server::start(json!({"support_group_manage": false}));
    let (ct, body) = multipart(&[("output", "json")], Some(("nog.txt", b"no group")));
    let (code, body) = done(
        agent()
            .post(&s.url("/upload"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    let path = v["path"].as_str().unwrap();
    assert!(
        path.starts_with("/default/") && path.ends_with("/1/nog.txt"),
        "{path}"
    );
    assert!(!v["url"].as_str().unwrap().contains("/group1"), "{v}");
    let (code, got) = call(agent().get(&s.url(path)));
    assert_eq!((code, got.as_str()), (200, "no group"));
}

#[test]
fn concurrent_uploads_of_one_name_with_different_contents_keep_their_own_bytes() {
    let s = Server::start(json!({}));
    let results: Vec<(Vec<u8>, (u16, String))> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..12)
            .map(|i| {
                let s = &s;
                sc.spawn(move || {
                    let data = format!("content number {i}").repeat(1000).into_bytes();
                    let r = upload(
                        s,
                        "race.txt",
                        &data,
                        &[("output", "json"), ("path", "race")],
                    );
                    (data, r)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut paths = Vec::new();
    for (data, (code, body)) in &results {
        assert_eq!(*code, 200, "{body}");
        let v = parse(body);
        assert_eq!(v["md5"], md5_hex(data).as_str());
        let path = v["path"].as_str().unwrap().to_string();
        let rel = path.strip_prefix("/group1/").unwrap();
        assert_eq!(
            &std::fs::read(s.dir.join("files").join(rel)).unwrap(),
            data,
            "{path}"
        );
        let (code, got) = call(agent().get(&s.url(&path)));
        assert_eq!((code, got.as_bytes()), (200, &data[..]), "{path}");
        paths.push(path);
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 12, "{paths:?}");
    assert_eq!(stored_final(&s).len(), 12, "{:?}", stored(&s));
}

#[test]
fn a_filename_collision_stores_the_new_content_under_a_prefixed_name_that_the_record_points_to() {
    let s = Server::start(json!({}));
    let f1 = [("output", "json"), ("path", "rn"), ("filename", "same.txt")];
    let a = parse(&upload(&s, "one.txt", b"first content", &f1).1);
    let b = parse(&upload(&s, "two.txt", b"second content", &f1).1);
    assert_eq!(a["path"], "/group1/rn/same.txt");
    let pb = b["path"].as_str().unwrap();
    assert_ne!(
        pb, "/group1/rn/same.txt",
        "second upload must not share the first one's file"
    );
    let (code, got) = call(agent().get(&s.url(pb)));
    assert_eq!(
        (code, got.as_str()),
        (200, "second content"),
        "record must point to the new data (docs/DEFECTS.md #20)"
    );
    let (code, got) = call(agent().get(&s.url("/group1/rn/same.txt")));
    assert_eq!((code, got.as_str()), (200, "first content"));
    let (_, info) = get_file_info(&s, &format!("md5={}", b["md5"].as_str().unwrap()));
    let d = &info["data"];
    let on_disk = s
        .dir
        .join(d["path"].as_str().unwrap())
        .join(d["rename"].as_str().unwrap());
    assert_eq!(std::fs::read(on_disk).unwrap(), b"second content");
}

#[test]
fn a_reupload_after_the_stored_file_vanished_stores_it_again() {
    let s = Server::start(json!({}));
    let a = upload_json(&s, "gone.txt", b"vanishing content");
    let rel = a["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/group1/")
        .unwrap()
        .to_string();
    std::fs::remove_file(s.dir.join("files").join(&rel)).unwrap();
    let b = upload_json(&s, "gone.txt", b"vanishing content");
    let (code, got) = call(agent().get(&s.url(b["path"].as_str().unwrap())));
    assert_eq!((code, got.as_str()), (200, "vanishing content"), "{b}");
}

#[test]
fn fields_after_the_file_part_and_in_the_query_string_still_apply() {
    let s = Server::start(json!({}));
    let (_d, f) = temp_file(b"late fields");
    let (_d2, f2) = temp_file(b"fields from the query string");
    let form = format!("file=@{};filename=late.txt", f.display());
    let (code, body) = curl(&[
        "-F",
        &form,
        "-F",
        "scene=late",
        "-F",
        "output=json",
        &s.url("/group1/upload"),
    ]);
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_eq!(v["scene"], "late");
    assert!(
        v["path"].as_str().unwrap().starts_with("/group1/late/"),
        "{v}"
    );
    let (code, body) = curl(&[
        "-F",
        &format!("file=@{};filename=query.txt", f2.display()),
        &s.url("/group1/upload?output=json&scene=fromquery"),
    ]);
    assert_eq!(code, 200, "{body}");
    let v = parse(&body);
    assert_eq!(v["scene"], "fromquery", "{body}");
}

/// Uploads `files` with one curl each, all at once; returns each answer's JSON.
fn curl_uploads_at_once(s: &Server, files: &[PathBuf]) -> Vec<Value> {
    curl_each_at_once(files, |f| {
        let file = format!("file=@{}", f.display());
        curl(&["-F", &file, "-F", "output=json", &s.url("/group1/upload")])
    })
    .into_iter()
    .map(|(code, body)| {
        assert_eq!(code, 200, "{body}");
        parse(&body)
    })
    .collect()
}

/// `upload(file)` of every file at once, one thread each; the answers in the files' order.
fn curl_each_at_once(
    files: &[PathBuf],
    upload: impl Fn(&Path) -> (u16, String) + Sync,
) -> Vec<(u16, String)> {
    std::thread::scope(|sc| {
        let upload = &upload;
        let hs: Vec<_> = files.iter().map(|f| sc.spawn(move || upload(f))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Each of `datas` written to its own file `<name><i>.bin` in `dir`.
fn files_of(dir: &Path, name: &str, datas: &[Vec<u8>]) -> Vec<PathBuf> {
    datas
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let f = dir.join(format!("{name}{i}.bin"));
            std::fs::write(&f, d).unwrap();
            f
        })
        .collect()
}

#[test]
fn sixteen_concurrent_multi_mib_uploads_each_get_the_md5_of_their_own_bytes() {
    // The md5s of concurrent uploads are computed together, sixteen streams per vector
    // pass (store::hashing): lengths that are not whole blocks, several write buffers each.
    let s = Server::start(json!({}));
    let tmp = tempfile::tempdir().unwrap();
    let datas: Vec<Vec<u8>> = (0..16)
        .map(|i| noise((1 << 20) + i * 211_337 + i % 3 * 17, 100 + i as u64))
        .collect();
    let files = files_of(tmp.path(), "multi", &datas);
    let answers = curl_uploads_at_once(&s, &files);
    for (data, v) in datas.iter().zip(&answers) {
        assert_eq!(v["md5"], md5_hex(data).as_str(), "{v}");
        assert_eq!(v["size"], data.len(), "{v}");
        let resp = agent()
            .get(&s.url(v["path"].as_str().unwrap()))
            .call()
            .unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut got).unwrap();
        assert!(got == *data, "{}: the bytes served differ", v["path"]);
    }
}

#[test]
fn concurrent_multi_mib_uploads_with_sha1_get_the_sha1_of_their_own_bytes() {
    let s = Server::start(json!({"file_sum_arithmetic": "sha1"}));
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..4)
        .map(|i| {
            let f = tmp.path().join(format!("sha{i}.bin"));
            std::fs::write(&f, noise((2 << 20) + i * 999, 7 + i as u64)).unwrap();
            f
        })
        .collect();
    let answers = curl_uploads_at_once(&s, &files);
    for (f, v) in files.iter().zip(&answers) {
        let out = Command::new("sha1sum").arg(f).output().unwrap();
        let want = String::from_utf8(out.stdout).unwrap();
        assert_eq!(v["md5"], want.split_whitespace().next().unwrap(), "{v}");
    }
}

/// Sends one multipart upload over a raw connection, the body cut into `pieces` written
/// apart (each flushed, with a pause so that the server reads them separately), and
/// returns the answer's JSON.
fn upload_in_pieces(s: &Server, boundary: &str, body: &[u8], cuts: &[usize]) -> Value {
    use std::io::Read;
    let mut st = TcpStream::connect(s.addr()).unwrap();
    st.set_nodelay(true).unwrap();
    st.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s.addr(),
        body.len()
    );
    st.write_all(head.as_bytes()).unwrap();
    let mut at = 0;
    for &cut in cuts.iter().chain([body.len()].iter()) {
        st.write_all(&body[at..cut]).unwrap();
        st.flush().unwrap();
        std::thread::sleep(Duration::from_millis(3));
        at = cut;
    }
    let mut answer = String::new();
    st.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    parse(&answer[answer.find("\r\n\r\n").unwrap() + 4..])
}

#[test]
fn a_file_whose_closing_delimiter_arrives_cut_anywhere_is_stored_exactly() {
    // File bytes are received straight into the write buffer while the delimiter is looked
    // for: whatever read a delimiter, or a look-alike of its start, falls into, the file is
    // the bytes before the delimiter, and the fields after it are read.
    let s = Server::start(json!({}));
    let b = "cutBoundary7";
    let mut content = vec![b'c'; 3000];
    // Look-alikes of the delimiter's start inside the content, one at a piece's end.
    content[1000..1010].copy_from_slice(b"\r\n--cutBou");
    content[2990..].copy_from_slice(b"\r\n--cutBou");
    let head = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!(
        "\r\n--{b}\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n--{b}--\r\n"
    );
    let mut body = head.clone().into_bytes();
    body.extend_from_slice(&content);
    body.extend_from_slice(tail.as_bytes());
    let start = head.len();
    let delim = start + content.len();
    let expected = md5_hex(&content);
    // A cut at every byte of the delimiter and around it, and inside a look-alike.
    let mut cuts: Vec<Vec<usize>> = (delim - 3..delim + 18)
        .map(|c| vec![start + 500, c])
        .collect();
    cuts.push(vec![start + 1005, start + 2995]);
    cuts.push(vec![start + 1010, delim + 1]);
    for (i, cut) in cuts.iter().enumerate() {
        let v = upload_in_pieces(&s, b, &body, cut);
        assert_eq!(v["md5"], expected.as_str(), "cuts {cut:?} (case {i})");
        assert_eq!(v["size"], content.len() as u64, "cuts {cut:?}");
    }
}

#[test]
fn a_file_of_several_write_buffers_sent_in_odd_pieces_is_stored_exactly() {
    // Pieces that do not line up with the 1 MiB write buffer: a read that fills it is cut
    // short, and the delimiter may arrive across two buffers.
    let s = Server::start(json!({}));
    let b = "bigCutBoundary";
    let content: Vec<u8> = (0..(3 << 20) + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let head = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
    );
    let mut body = head.clone().into_bytes();
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let cuts: Vec<usize> = (1..38).map(|i| i * 81_919).collect();
    assert!(cuts.last() < Some(&body.len()));
    let v = upload_in_pieces(&s, b, &body, &cuts);
    assert_eq!(v["md5"], md5_hex(&content).as_str());
    let (code, got) = common::cluster::get_bytes(&s.base(), v["path"].as_str().unwrap(), &[]);
    assert_eq!(code, 200);
    assert!(got == content, "the stored file differs");
}

#[test]
fn names_whose_urls_a_route_answers_are_refused_before_anything_is_stored() {
    // G/static/... serves the web assets and G/big/upload/... is tus: a file stored at
    // files/static/... or files/big/upload/... could never be downloaded.
    let s = Server::start(json!({}));
    for fields in [
        vec![("path", "static")],
        vec![("path", "static/css")],
        vec![("path", ".s.t.a.t.i.c")],
        vec![("path", "big/upload")],
        vec![("scene", "static")],
    ] {
        let mut all = fields.clone();
        all.push(("output", "json"));
        let (code, body) = upload(&s, "shadow.txt", b"never stored", &all);
        assert_eq!(code, 400, "{fields:?}: {body}");
    }
    assert!(!s.dir.join("files/static").exists());
    assert!(!s.dir.join("files/big").exists());
    // Beside them, names are free.
    let (code, body) = upload(
        &s,
        "ok.txt",
        b"stored",
        &[("path", "big/files"), ("output", "json")],
    );
    assert_eq!(code, 200, "{body}");
}

/// `n` different contents (each a different size) uploaded at once with one curl each to
/// one custom `path` under one file name (`filename=` of the file part, and the `filename`
/// field when `rename`); returns each content with its answer (status, body).
fn curl_race_one_name(s: &Server, n: usize, rename: bool) -> Vec<(Vec<u8>, (u16, String))> {
    let tmp = tempfile::tempdir().unwrap();
    let datas: Vec<Vec<u8>> = (0..n)
        .map(|i| noise(20_000 + i * 1_013, 500 + i as u64))
        .collect();
    let files = files_of(tmp.path(), "src", &datas);
    let answers = curl_each_at_once(&files, |f| {
        let file = format!("file=@{};filename=race.bin", f.display());
        let url = s.url("/group1/upload");
        let mut args = vec!["-F", &file, "-F", "output=json", "-F", "path=race/one"];
        if rename {
            args.extend(["-F", "filename=race.bin"]);
        }
        args.push(&url);
        curl(&args)
    });
    datas.into_iter().zip(answers).collect()
}

/// GETs `path` on a new connection each time (`times`, so several executors answer).
fn served_each_time(s: &Server, path: &str, times: usize) -> Vec<Vec<u8>> {
    (0..times)
        .map(|_| {
            let resp = ureq::AgentBuilder::new()
                .build()
                .get(&s.url(path))
                .set("Connection", "close")
                .call()
                .unwrap();
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut resp.into_reader(), &mut got).unwrap();
            got
        })
        .collect()
}

#[test]
fn concurrent_curl_uploads_to_one_custom_path_and_name_each_get_a_file_their_record_names() {
    if Command::new("curl").arg("--version").output().is_err() {
        skip("curl races", "curl is not installed");
        return;
    }
    for rename in [false, true] {
        let s = Server::start(json!({}));
        let results = curl_race_one_name(&s, 24, rename);
        let mut paths = Vec::new();
        for (data, (code, body)) in &results {
            assert_eq!(*code, 200, "{body}");
            let v = parse(body);
            let md5 = md5_hex(data);
            assert_eq!(
                v["md5"],
                md5.as_str(),
                "the answer is of this upload's bytes"
            );
            assert_eq!(v["size"], data.len());
            let path = v["path"].as_str().unwrap().to_string();
            assert!(path.starts_with("/group1/race/one/"), "{path}");
            for got in served_each_time(&s, &path, 3) {
                assert!(got == *data, "{path} serves other bytes than its answer's");
            }
            // The record by content and by path: the same file, these bytes.
            let (code, by_md5) = get_file_info(&s, &format!("md5={md5}"));
            assert_eq!(code, 200, "{by_md5}");
            let d = &by_md5["data"];
            let stored = match d["rename"].as_str().unwrap() {
                "" => d["name"].as_str().unwrap(),
                r => r,
            };
            let rel = format!("{}/{stored}", d["path"].as_str().unwrap());
            assert_eq!(format!("/group1/{}", &rel["files/".len()..]), path);
            assert!(std::fs::read(s.dir.join(&rel)).unwrap() == *data, "{rel}");
            let (code, by_path) = get_file_info(&s, &format!("path={path}"));
            assert_eq!(code, 200, "{by_path}");
            assert_eq!(by_path["data"]["md5"], md5.as_str(), "{path}");
            paths.push(path);
        }
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 24, "one file per upload: {paths:?}");
        let on_disk = files_in(&s.dir.join("files/race/one"));
        assert_eq!(on_disk.len(), 24, "nothing else on disk: {on_disk:?}");
        assert!(
            eventually(Duration::from_secs(5), || !stored(&s)
                .iter()
                .any(|p| p.starts_with("_tmp/"))),
            "no temp file left: {:?}",
            stored(&s)
        );
    }
}

#[test]
fn concurrent_curl_overwrites_of_one_custom_path_leave_the_file_and_its_record_in_agreement() {
    if Command::new("curl").arg("--version").output().is_err() {
        skip("curl races", "curl is not installed");
        return;
    }
    // Without dedup a name is overwritten (go-fastdfs): one upload wins, and what is served,
    // what is on disk and the record are all of that one upload.
    let s = Server::start(json!({"enable_distinct_file": false}));
    let results = curl_race_one_name(&s, 24, false);
    let path = "/group1/race/one/race.bin";
    let key = md5_hex(b"files/race/one/race.bin");
    for (data, (code, body)) in &results {
        assert_eq!(*code, 200, "{body}");
        let v = parse(body);
        assert_eq!(v["path"], path);
        assert_eq!(v["md5"], key.as_str());
        assert_eq!(v["size"], data.len(), "the answer describes this upload");
    }
    let on_disk = std::fs::read(s.dir.join("files/race/one/race.bin")).unwrap();
    let winner = results
        .iter()
        .position(|(d, _)| *d == on_disk)
        .expect("the file on disk is one upload's bytes, whole");
    for got in served_each_time(&s, path, 6) {
        assert!(got == on_disk, "served bytes differ from the file on disk");
    }
    let (code, info) = get_file_info(&s, &format!("path={path}"));
    assert_eq!(code, 200, "{info}");
    assert_eq!(
        info["data"]["size"],
        results[winner].0.len(),
        "the record is of the file on disk: {info}"
    );
    assert_eq!(files_in(&s.dir.join("files/race/one")), ["race.bin"]);
    assert!(
        eventually(Duration::from_secs(5), || !stored(&s)
            .iter()
            .any(|p| p.starts_with("_tmp/"))),
        "no temp file left: {:?}",
        stored(&s)
    );
}
