//! Differential tests of the JSON and admin routes: the same requests sent to the reference
//! go-fastdfs binary (env GO_FASTDFS_BIN) and to fastdfs-rs, both started with the same
//! configuration and called from an admin address (127.0.0.1), must get the same bodies,
//! content types and JSON shapes (key sets, value types, null vs empty), after replacing
//! what legitimately differs (host, upload minute, mtimes). Where go-fastdfs answers an error
//! with 200 we answer a 4xx with the same body (docs/DEFECTS.md #31); where we differ on
//! purpose, the assertion names the docs/DEFECTS.md entry or the docs/PROTOCOL.md §10 row.
mod common;
use common::go::*;
use common::*;
use serde_json::{json, Value};

/// Status, Content-Type and body of a request.
type Answer = (u16, Option<String>, String);

fn answer(r: Result<ureq::Response, ureq::Error>) -> Answer {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let ct = r.header("Content-Type").map(str::to_string);
    (r.status(), ct, r.into_string().unwrap())
}

fn get(base: &str, path: &str) -> Answer {
    answer(agent().get(&format!("{base}{path}")).call())
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// A JSON value's shape: objects keep their keys, arrays their first element's shape,
/// scalars become their type's name (an integer is not a float, null is not "").
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_f64() => json!("float"),
        Value::Number(_) => json!("int"),
        Value::String(_) => json!("string"),
    }
}

/// Both nodes' answers to `path`: the same body, and status 200 from go-fastdfs and `rs_code`
/// from us (200, or the 4xx of an error go-fastdfs answered with 200, DEFECTS.md #31).
fn same_body(p: &Pair, path: &str, rs_code: u16) -> String {
    let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
    assert_eq!(
        (g.0, r.0),
        (200, rs_code),
        "{path}: go {} / rs {}",
        g.2,
        r.2
    );
    assert_eq!(g.1, r.1, "{path}: Content-Type");
    assert_eq!(g.2, r.2, "{path}: body");
    r.2
}

/// Uploads `data` as `name` with output=json and `fields` to a node; its FileResult.
fn upload_to(base: &str, name: &str, data: &[u8], fields: &[(&str, &str)]) -> (u16, Value) {
    let mut f = vec![("output", "json")];
    f.extend_from_slice(fields);
    let (ct, body) = multipart(&f, Some((name, data)));
    let (code, _, text) = answer(
        agent()
            .post(&format!("{base}/group1/upload"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    (code, parse(&text))
}

/// Uploads to both; their (normalized) results must be equal. Returns go's and our result.
fn upload_both(p: &Pair, name: &str, data: &[u8], fields: &[(&str, &str)]) -> (Value, Value) {
    let (gc, g) = upload_to(&p.go.base(), name, data, fields);
    let (rc, r) = upload_to(&p.rs.base(), name, data, fields);
    assert_eq!(
        (gc, rc),
        (200, 200),
        "upload {name} {fields:?}: go {g} / rs {r}"
    );
    assert_eq!(
        normalized(p, &g),
        normalized(p, &r),
        "upload {name} {fields:?}"
    );
    (g, r)
}

/// A FileResult or FileInfo with the host, the upload minute and the times replaced.
fn normalized(p: &Pair, v: &Value) -> Value {
    let mut text = v.to_string();
    for base in [p.go.base(), p.rs.base()] {
        text = text.replace(&base, "<HOST>");
    }
    let mut v: Value = serde_json::from_str(&p.norm("<HOST>", &text, None)).unwrap();
    for k in ["mtime", "timeStamp"] {
        if let Some(m) = v.get(k).and_then(Value::as_i64) {
            assert!(p.started <= m && m <= now(), "{k} {m} is not now");
            v[k] = json!("<TIME>");
        }
    }
    v
}

#[test]
fn stat_get_file_info_and_check_routes_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    let (g, _) = upload_both(&p, "one.txt", b"first file\n", &[("path", "n1/n2")]);
    upload_both(&p, "two.txt", b"second file, longer\n", &[]);
    let md5 = g["md5"].as_str().unwrap().to_string();
    for path in [
        "/group1/stat",
        "/group1/stat?inner=1",
        "/group1/stat?echart=1",
    ] {
        same_body(&p, path, 200);
    }

    // A record by md5 and by its download path (the path wins over the md5).
    let info = |path: &str| {
        let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
        assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1), "{path}");
        (parse(&g.2), parse(&r.2))
    };
    for path in [
        format!("/group1/get_file_info?md5={md5}"),
        "/group1/get_file_info?path=/group1/n1/n2/one.txt".to_string(),
        format!(
            "/group1/get_file_info?path=/group1/n1/n2/one.txt&md5={}",
            "0".repeat(32)
        ),
    ] {
        let (g, r) = info(&path);
        assert_eq!(shape(&g), shape(&r), "{path}");
        assert_eq!(
            normalized(&p, &g["data"]),
            normalized(&p, &r["data"]),
            "{path}"
        );
        assert_eq!((&g["status"], &g["message"]), (&r["status"], &r["message"]));
        assert_eq!(r["data"]["path"], "files/n1/n2", "{path}");
    }
    for path in [
        "/group1/get_file_info",
        "/group1/get_file_info?md5=abc",
        "/group1/get_file_info?md5=0123456789abcdef0123456789abcdef",
        "/group1/get_file_info?path=/group1/n1/n2/nope.txt",
        // A path is a download path (`/group1/…`) or a store path (`files/…`); go-fastdfs
        // takes anything else for a path key of its own and finds nothing.
        "/group1/get_file_info?path=n1/n2/one.txt",
        "/group1/get_file_info?path=/n1/n2/one.txt",
    ] {
        let body = same_body(&p, path, 404);
        assert_eq!(parse(&body)["message"], "leveldb: not found");
    }

    // check_file_exist and check_files_exist: compact, go-fastdfs' field order.
    let compact = |path: &str, rs_code: u16| {
        let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
        assert_eq!((g.0, r.0, &g.1), (200, rs_code, &r.1), "{path}");
        let keys = |t: &str| -> Vec<String> {
            let v: serde_json::Map<String, Value> = serde_json::from_str(t).unwrap();
            v.keys().cloned().collect()
        };
        assert_eq!(keys(&g.2), keys(&r.2), "{path}: keys in order");
        assert!(!r.2.contains('\n'), "{path}: one line");
        (parse(&g.2), parse(&r.2))
    };
    let (g, r) = compact(&format!("/group1/check_file_exist?md5={md5}"), 200);
    assert_eq!(normalized(&p, &g), normalized(&p, &r));
    for path in [
        "/group1/check_file_exist",
        "/group1/check_file_exist?md5=abc",
        "/group1/check_file_exist?md5=0123456789abcdef0123456789abcdef",
    ] {
        // Nothing found: go-fastdfs' all-empty FileInfo, a 404 here (DEFECTS.md #31).
        let (g, r) = compact(path, 404);
        assert_eq!(g, r, "{path}");
    }
    for md5s in [
        format!("{md5},abc"),
        format!("abc,{md5},{md5}"),
        String::new(),
        "abc".to_string(),
    ] {
        let path = format!("/group1/check_files_exist?md5s={md5s}");
        let (g, r) = compact(&path, 200);
        assert_eq!(shape(&g), shape(&r), "{path}");
        let list = |v: &Value| -> Vec<Value> {
            let data = v["data"].as_array().cloned().unwrap_or_default();
            data.iter().map(|i| normalized(&p, i)).collect()
        };
        assert_eq!(list(&g), list(&r), "{path}");
        assert_eq!((&g["status"], &g["message"]), (&r["status"], &r["message"]));
    }
    same_body(&p, "/group1/check_files_exist", 200);

    // check_file_exist by `path` of a file placed by hand (no record): go-fastdfs' made-up
    // record, md5 = MD5 of the path, from both.
    for dir in [p.go.dir.path().to_path_buf(), p.rs.dir.clone()] {
        std::fs::create_dir_all(dir.join("files/manual")).unwrap();
        std::fs::write(dir.join("files/manual/placed.txt"), b"placed by hand").unwrap();
    }
    let path = "/group1/check_file_exist?path=files/manual/placed.txt";
    let (g, mut r) = compact(path, 200);
    assert_eq!(r["md5"], md5_hex(b"files/manual/placed.txt"));
    // The file's mtime: the two files were written a moment apart.
    assert!((g["timeStamp"].as_i64().unwrap() - r["timeStamp"].as_i64().unwrap()).abs() <= 2);
    r["timeStamp"] = g["timeStamp"].clone();
    assert_eq!(normalized(&p, &g), normalized(&p, &r), "{path}");
    // A host path outside files/: go-fastdfs stats it; we look under files/ only
    // (DEFECTS.md #4).
    let path = "/group1/check_file_exist?path=/etc/passwd";
    let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
    assert_eq!((g.0, r.0), (200, 404));
    assert_eq!(parse(&g.2)["name"], "passwd");
    assert_eq!(parse(&r.2)["name"], "");
}

#[test]
fn list_dir_matches_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    upload_both(&p, "a.txt", b"listed a\n", &[("path", "n1/n2")]);
    upload_both(&p, "b.txt", b"listed b, two\n", &[("path", "n1")]);
    // The entries go-fastdfs lists, mtimes aside.
    let entries = |v: &Value| -> Vec<Value> {
        let data = v["data"].as_array().cloned().unwrap_or_default();
        let mut out: Vec<Value> = data
            .into_iter()
            .map(|mut e| {
                assert!(e["mtime"].is_i64(), "{e}");
                e["mtime"] = json!("<TIME>");
                e
            })
            .collect();
        out.sort_by_key(|e| e["name"].as_str().unwrap().to_string());
        out
    };
    for dir in ["n1", "n1/n2", "/n1", "n1/", "./n1/n2", "n1//n2"] {
        let path = format!("/group1/list_dir?dir={dir}");
        let (g, r) = (get(&p.go.base(), &path), get(&p.rs.base(), &path));
        assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1), "{path}");
        let (gv, rv) = (parse(&g.2), parse(&r.2));
        assert_eq!(shape(&gv), shape(&rv), "{path}");
        assert_eq!(entries(&gv), entries(&rv), "{path}");
        assert_eq!(
            (&gv["status"], &gv["message"]),
            (&rv["status"], &rv["message"])
        );
    }
    // The top level: the directories both made (internal ones differ: go-fastdfs makes `_big`
    // even with tus off).
    for dir in ["", "/"] {
        let path = format!("/group1/list_dir?dir={dir}");
        let (g, r) = (get(&p.go.base(), &path), get(&p.rs.base(), &path));
        let n1 = |t: &str| -> Value {
            let all = entries(&parse(t));
            all.into_iter()
                .find(|e| e["name"] == "n1")
                .expect("n1 listed")
        };
        assert_eq!(n1(&g.2), n1(&r.2), "{path}");
    }
    // An empty directory: data null.
    std::fs::create_dir_all(p.go.dir.path().join("files/n1/empty")).unwrap();
    std::fs::create_dir_all(p.rs.dir.join("files/n1/empty")).unwrap();
    let body = same_body(&p, "/group1/list_dir?dir=n1/empty", 200);
    assert_eq!(parse(&body)["data"], Value::Null);
    // Missing directories, a file, and traversal attempts (every `.` is removed, so they stay
    // under files/): go-fastdfs' error text, a 404 here (DEFECTS.md #31).
    for dir in [
        "missing",
        "n1/n2/a.txt",
        "../conf",
        "/etc",
        "..%2f..%2fetc",
        "../../../../etc/passwd",
        "n1/../../data",
    ] {
        let path = format!("/group1/list_dir?dir={dir}");
        let body = same_body(&p, &path, 404);
        assert_eq!(parse(&body)["status"], "", "{path}");
    }
}

#[test]
fn delete_answers_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    let (g, _) = upload_both(&p, "d1.txt", b"delete me by md5\n", &[("path", "del")]);
    upload_both(&p, "d2.txt", b"delete me by path\n", &[("path", "del")]);
    let md5 = g["md5"].as_str().unwrap();
    let by_md5 = format!("/group1/delete?md5={md5}");
    let by_path = "/group1/delete?path=/group1/del/d2.txt";
    // Neither a download path nor a store path: go-fastdfs takes it for a path key and finds
    // nothing; nothing is deleted.
    for path in [
        "/group1/delete?path=del/d1.txt",
        "/group1/delete?path=/del/d2.txt",
    ] {
        same_body(&p, path, 404);
    }
    for dir in [
        p.go.dir.path().join("files/del"),
        p.rs.dir.join("files/del"),
    ] {
        assert!(dir.join("d1.txt").exists() && dir.join("d2.txt").exists());
    }
    for path in [by_md5.as_str(), by_path] {
        let body = same_body(&p, path, 200);
        assert_eq!(parse(&body)["message"], "remove success", "{path}");
        // The second time: the record is gone.
        let body = same_body(&p, path, 404);
        assert_eq!(parse(&body)["message"], "leveldb: not found", "{path}");
    }
    for (path, rs_code) in [
        ("/group1/delete", 400),
        ("/group1/delete?md5=abc", 400),
        ("/group1/delete?md5=0123456789abcdef0123456789abcdef", 404),
        ("/group1/delete?path=/group1/del/nope.txt", 404),
    ] {
        same_body(&p, path, rs_code);
    }
    for dir in [
        p.go.dir.path().join("files/del"),
        p.rs.dir.join("files/del"),
    ] {
        assert!(!dir.join("d1.txt").exists() && !dir.join("d2.txt").exists());
    }
    // The counters follow (go-fastdfs updates them in the background): today's row of
    // zeros stays.
    let stat = "/group1/stat?inner=1";
    let counted = eventually(std::time::Duration::from_secs(10), || {
        get(&p.go.base(), stat).2 == get(&p.rs.base(), stat).2
    });
    let (g, r) = (get(&p.go.base(), stat), get(&p.rs.base(), stat));
    assert!(counted, "stat after deletes: go {} / rs {}", g.2, r.2);
    assert_eq!(
        parse(&r.2)[1],
        json!({"date": "all", "fileCount": 0, "totalSize": 0})
    );
}

/// `/status` as an admin sees it: go-fastdfs' keys with values of the same types (the values
/// themselves are this host's, but the configured ones and `Fs.Peers` are equal); `Sys.Workers`
/// and `Sys.UptimeSeconds` are ours only.
#[test]
fn status_has_go_fastdfs_keys_and_value_types() {
    let Some(p) =
        Pair::start_same(json!({"refresh_interval": 1800, "peers": ["http://127.0.0.30:9"]}))
    else {
        return;
    };
    let (g, r) = (
        get(&p.go.base(), "/group1/status"),
        get(&p.rs.base(), "/group1/status"),
    );
    assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1));
    let (g, mut r) = (parse(&g.2), parse(&r.2));
    let data = r["data"].as_object_mut().unwrap();
    for ours in ["Sys.Workers", "Sys.UptimeSeconds"] {
        assert!(data.remove(ours).unwrap().is_u64(), "{ours}");
    }
    let mut gs = shape(&g);
    let mut rs = shape(&r);
    // Go's GCCPUFraction is a float that Go writes as `0` before the first collection; ours
    // is always a float (no collector).
    for s in [&mut gs, &mut rs] {
        s["data"]["Sys.GCCPUFraction"] = json!("number");
    }
    assert_eq!(gs, rs, "status shape");
    for k in [
        "Fs.AutoRepair",
        "Fs.Peers",
        "Fs.RefreshInterval",
        "Fs.ShowDir",
    ] {
        assert_eq!(g["data"][k], r["data"][k], "{k}");
    }
    assert_eq!(
        g["data"]["Sys.DiskInfo"]["path"],
        r["data"]["Sys.DiskInfo"]["path"]
    );
    assert_eq!(g["data"]["Fs.FileStats"], r["data"]["Fs.FileStats"]);
    assert_eq!(r["data"]["Fs.Local"], json!(p.rs.base()));
    assert_eq!((&g["status"], &g["message"]), (&r["status"], &r["message"]));
}

#[test]
fn repair_stat_reload_and_google_helpers_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    upload_both(&p, "rs.txt", b"repair stat\n", &[]);
    let today = local_stamp(now()).split('/').next().unwrap().to_string();
    for path in [
        format!("/group1/repair_stat?date={today}"),
        format!("/group1/repair_stat?date=x{today}y"),
        "/group1/repair_stat?date=20190101".to_string(),
    ] {
        same_body(&p, &path, 200);
    }
    for path in [
        "/group1/repair_stat?date=2026",
        "/group1/repair_stat?date=abc",
    ] {
        same_body(&p, path, 400);
    }
    // Without a date go-fastdfs refuses (`invalid date`); we recount today (DEFECTS.md #29).
    let (g, r) = (
        get(&p.go.base(), "/group1/repair_stat"),
        get(&p.rs.base(), "/group1/repair_stat"),
    );
    assert_eq!(parse(&g.2)["message"], "invalid date");
    let with_date = get(&p.rs.base(), &format!("/group1/repair_stat?date={today}"));
    assert_eq!((r.0, &r.2), (200, &with_date.2));

    // reload: every go-fastdfs key with the same type and, for the same config, the same
    // value (ours has more keys: docs/CONFIG.md).
    let key = "key=test-admin-key";
    let (g, r) = (
        get(&p.go.base(), &format!("/group1/reload?{key}&action=get")),
        get(&p.rs.base(), &format!("/group1/reload?{key}&action=get")),
    );
    assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1));
    let (g, r) = (parse(&g.2), parse(&r.2));
    assert_eq!((&g["status"], &g["message"]), (&r["status"], &r["message"]));
    for (k, gv) in g["data"].as_object().unwrap() {
        let rv = &r["data"][k];
        match k.as_str() {
            // This node's own address.
            "addr" | "host" => assert_eq!(shape(gv), shape(rv), "{k}"),
            // go-fastdfs fills an empty download_domain from the first request's Host
            // (DEFECTS.md #11); ours stays as configured.
            "download_domain" => assert_eq!(rv, "", "{k}"),
            // go-fastdfs' generated file's example of a key without effect (DEFECTS.md #37):
            // ignored here, so shown as null.
            "proxies" => assert_eq!(rv, &Value::Null, "{k}"),
            _ => assert_eq!(gv, rv, "reload get: {k}"),
        }
    }
    for (path, rs_code) in [
        (format!("/group1/reload?{key}"), 400),
        (format!("/group1/reload?{key}&action=bad"), 400),
        (format!("/group1/reload?{key}&action=set"), 400),
        ("/group1/reload?action=get".to_string(), 401),
        ("/group1/reload?key=bad&action=get".to_string(), 401),
    ] {
        same_body(&p, &path, rs_code);
    }

    // gen_google_secret: 16 base32 characters; gen_google_code: the same code for a secret
    // (asked again if a 30-s step ended between the two requests).
    let (g, r) = (
        get(&p.go.base(), "/group1/gen_google_secret"),
        get(&p.rs.base(), "/group1/gen_google_secret"),
    );
    assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1));
    let (g, r) = (parse(&g.2), parse(&r.2));
    assert_eq!(shape(&g), shape(&r));
    assert_eq!((&g["status"], &g["message"]), (&r["status"], &r["message"]));
    let secret = r["data"].as_str().unwrap();
    assert!(
        secret.len() == 16
            && secret
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{secret}"
    );
    let path = format!("/group1/gen_google_code?secret={secret}");
    let same = (0..3).any(|_| {
        let (g, r) = (get(&p.go.base(), &path), get(&p.rs.base(), &path));
        assert_eq!((g.0, r.0), (200, 200));
        g.2 == r.2
    });
    assert!(same, "{path}");
}

/// The upload page and the report page with go-fastdfs' own templates in `static/` (as an
/// operator who moves a go-fastdfs runtime dir keeps them): the same pages, byte for byte.
#[test]
fn pages_with_go_fastdfs_templates_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    for name in ["uppy.html", "report.html"] {
        let theirs = p.go.dir.path().join("static").join(name);
        std::fs::copy(&theirs, p.rs.dir.join("static").join(name)).unwrap();
    }
    for path in [
        "/",
        "/group1",
        "/group1/",
        "/group1/upload.html",
        "/group1/report",
        "/group1/report?x=1",
    ] {
        for method in ["GET", "HEAD", "POST"] {
            let at = |base: &str| answer(agent().request(method, &format!("{base}{path}")).call());
            let (g, r) = (at(&p.go.base()), at(&p.rs.base()));
            assert_eq!((g.0, &g.1), (200, &r.1), "{method} {path}");
            assert_eq!(g, r, "{method} {path}");
            if method == "GET" {
                assert!(r.2.contains("<html"), "{path}");
            }
        }
    }
    // `index` is no route: a download of nothing.
    for path in ["/index", "/group1/index", "/group1/index.html"] {
        let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
        assert_eq!((g.0, &g.2), (404, &String::new()), "{path}");
        assert_eq!(g, r, "{path}");
    }
    // The upload route without a file or md5, by GET and HEAD: the same explanation.
    for method in ["GET", "HEAD"] {
        let at = |base: &str| {
            answer(
                agent()
                    .request(method, &format!("{base}/group1/upload"))
                    .call(),
            )
        };
        let (g, r) = (at(&p.go.base()), at(&p.rs.base()));
        assert_eq!((g.0, r.0), (200, 400), "{method}");
        assert_eq!((&g.1, &g.2), (&r.1, &r.2), "{method}");
    }
    // Without report.html: go-fastdfs' `<path> is not found` (a 404 here).
    std::fs::remove_file(p.go.dir.path().join("static/report.html")).unwrap();
    std::fs::remove_file(p.rs.dir.join("static/report.html")).unwrap();
    let body = same_body(&p, "/group1/report", 404);
    assert_eq!(body, "static/report.html is not found");
}

/// The `scene`, `path` and `code` fields of an upload, with Google codes on for one scene.
#[test]
fn upload_scene_path_and_code_fields_match_go_fastdfs() {
    let secret = "JBSWY3DPEHPK3PXP";
    let cfg = json!({"enable_google_auth": true, "download_token_expire": 600,
                     "scenes": ["default", format!("sec:{secret}")]});
    let Some(p) = Pair::start_same(cfg) else {
        return;
    };
    let (g, _) = upload_both(&p, "n.txt", b"nested", &[("path", "p1/p2/p3")]);
    assert_eq!(g["path"], "/group1/p1/p2/p3/n.txt");
    // Dots are removed: `..` cannot climb out of files/.
    let (g, _) = upload_both(&p, "e.txt", b"climb", &[("path", "../../etc")]);
    assert_eq!(g["path"], "/group1/etc/e.txt");
    let (g, _) = upload_both(&p, "f.txt", b"store prefix", &[("path", "files/x")]);
    assert_eq!(g["path"], "/group1/x/f.txt");
    // An empty scene or path: the default scene's dated directory.
    for (i, f) in [("scene", ""), ("path", ""), ("path", "/")]
        .iter()
        .enumerate()
    {
        let (name, data) = (format!("s{i}.txt"), format!("default scene {i}"));
        let (g, _) = upload_both(&p, &name, data.as_bytes(), &[*f]);
        assert_eq!(g["scene"], "default");
        assert!(
            g["path"].as_str().unwrap().starts_with("/group1/default/"),
            "{g}"
        );
    }
    // The `md5` field must be the content's; an empty file is refused (go-fastdfs keeps and
    // indexes it first, and with output=text even answers its URL: DEFECTS.md #19).
    let md5_of_mm = md5_hex(b"mm\n");
    for (name, data, fields) in [
        ("mm.txt", &b"mm\n"[..], vec![("md5", "0123")]),
        ("zero.txt", &b""[..], vec![]),
    ] {
        let (gc, g) = upload_to(&p.go.base(), name, data, &fields);
        let (rc, r) = upload_to(&p.rs.base(), name, data, &fields);
        assert_eq!((gc, rc), (200, 400), "{name}");
        assert_eq!(g, r, "{name}");
    }
    // (Another name: go-fastdfs left the refused mm.txt in its directory, DEFECTS.md #19.)
    let (g, r) = upload_both(&p, "mm2.txt", b"mm\n", &[("md5", &md5_of_mm)]);
    assert_eq!(
        (&g["md5"], &r["md5"]),
        (&json!(md5_of_mm), &json!(md5_of_mm))
    );
    let text = |base: &str| {
        let (ct, body) = multipart(&[("output", "text")], Some(("zero2.txt", b"")));
        let url = format!("{base}/group1/upload");
        answer(
            agent()
                .post(&url)
                .set("Content-Type", &ct)
                .send_bytes(&body),
        )
    };
    let (g, r) = (text(&p.go.base()), text(&p.rs.base()));
    assert!(g.0 == 200 && g.2.starts_with(&p.go.base()), "{g:?}");
    assert_eq!(
        (r.0, parse(&r.2)["message"].as_str()),
        (400, Some("file size is zero"))
    );
    // `a/../b`: go-fastdfs keeps the empty segment (`a//b`, a URL its own mux redirects);
    // we store and answer `a/b` (docs/PROTOCOL.md §10).
    let (gc, g) = upload_to(&p.go.base(), "c.txt", b"dot dot", &[("path", "a/../b")]);
    let (rc, r) = upload_to(&p.rs.base(), "c.txt", b"dot dot", &[("path", "a/../b")]);
    assert_eq!((gc, rc), (200, 200));
    assert_eq!(
        (&g["path"], &r["path"]),
        (&json!("/group1/a//b/c.txt"), &json!("/group1/a/b/c.txt"))
    );
    // The scene with a secret wants its code; a scene not listed is refused.
    let code = |base: &str| {
        let (_, _, t) = get(base, &format!("/group1/gen_google_code?secret={secret}"));
        parse(&t)["data"].as_str().unwrap().to_string()
    };
    for (i, fields) in [
        vec![("scene", "sec")],
        vec![("scene", "sec"), ("code", "000000")],
        vec![("scene", "nope")],
    ]
    .iter()
    .enumerate()
    {
        let data = format!("refused {i}");
        let (gc, g) = upload_to(&p.go.base(), "r.txt", data.as_bytes(), fields);
        let (rc, r) = upload_to(&p.rs.base(), "r.txt", data.as_bytes(), fields);
        assert_eq!(g, r, "{fields:?}");
        assert_eq!(r["status"], "fail", "{fields:?}");
        assert!(
            gc == rc || (gc == 200 && rc == 400),
            "{fields:?}: {gc} {rc}"
        );
    }
    let mut paths = None;
    for _ in 0..3 {
        let (gcode, rcode) = (code(&p.go.base()), code(&p.rs.base()));
        let (gc, g) = upload_to(
            &p.go.base(),
            "ok.txt",
            b"right code",
            &[("scene", "sec"), ("code", &gcode)],
        );
        let (rc, r) = upload_to(
            &p.rs.base(),
            "ok.txt",
            b"right code",
            &[("scene", "sec"), ("code", &rcode)],
        );
        if (gc, rc) == (200, 200) {
            assert_eq!(normalized(&p, &g), normalized(&p, &r));
            assert_eq!(r["scene"], "sec");
            paths = Some((
                g["path"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
            ));
            break;
        }
    }
    let (gpath, rpath) = paths.expect("an upload with the right code");
    // Its download by a non-admin client wants the scene's code too (admins need none).
    for q in ["", "?code=000000", "?code=RIGHT"] {
        let mut got = Vec::new();
        for (base, path) in [(p.go.base(), &gpath), (p.rs.base(), &rpath)] {
            let q = q.replace("RIGHT", &code(&base));
            got.push(get_from(NON_ADMIN_IP, &format!("{base}{path}{q}")));
        }
        let want = if q.ends_with("RIGHT") { 200 } else { 401 };
        assert_eq!((got[0].0, got[1].0), (want, want), "download {q}");
        assert_eq!(got[0].1, got[1].1, "download {q}");
    }
    for (base, path) in [(p.go.base(), &gpath), (p.rs.base(), &rpath)] {
        assert_eq!(get_from("127.0.0.1", &format!("{base}{path}")).0, 200);
    }
}

/// Download tokens (`download_use_token`, checked for non-admin clients) with go-fastdfs'
/// formula (`download_token_secret` empty, DEFECTS.md #5): the same answers.
#[test]
fn download_tokens_are_checked_as_go_fastdfs_checks_them() {
    let cfg = json!({"download_use_token": true, "download_token_expire": 600,
                     "download_token_secret": ""});
    let Some(p) = Pair::start_same(cfg) else {
        return;
    };
    let (g, r) = upload_both(&p, "t.txt", b"token protected\n", &[]);
    let md5 = r["md5"].as_str().unwrap();
    let token_at = |ts: i64| md5_hex(format!("{md5}{ts}").as_bytes());
    let ts = now();
    let (good, old) = (token_at(ts), token_at(ts - 1000));
    let cases = [
        (String::new(), 401),
        (format!("?token={good}&timestamp={ts}"), 200),
        (format!("?token={good}&timestamp={ts}&download=0"), 200),
        (format!("?token={good}"), 401),
        (format!("?timestamp={ts}"), 401),
        (format!("?token=bad&timestamp={ts}"), 401),
        (format!("?token={old}&timestamp={}", ts - 1000), 401),
        (format!("?token={good}&timestamp=abc"), 401),
    ];
    for (q, code) in &cases {
        let gu = format!("{}{}{q}", p.go.base(), g["path"].as_str().unwrap());
        let ru = format!("{}{}{q}", p.rs.base(), r["path"].as_str().unwrap());
        let (gc, gb) = get_from(NON_ADMIN_IP, &gu);
        let (rc, rb) = get_from(NON_ADMIN_IP, &ru);
        assert_eq!((gc, rc), (*code, *code), "{q}");
        assert_eq!(gb, rb, "{q}");
        if *code == 200 {
            assert_eq!(rb, "token protected\n");
        }
    }
    // A file without a record: go-fastdfs skips the check (and answers 404); we refuse it
    // (DEFECTS.md #6).
    let q = format!("?token={good}&timestamp={ts}");
    let missing = "/group1/default/20200101/00/00/1/none.txt";
    let (gc, _) = get_from(NON_ADMIN_IP, &format!("{}{missing}{q}", p.go.base()));
    let (rc, _) = get_from(NON_ADMIN_IP, &format!("{}{missing}{q}", p.rs.base()));
    assert_eq!((gc, rc), (404, 401));
    // Admins need no token.
    let (gc, _) = get_from(
        "127.0.0.1",
        &format!("{}{}", p.go.base(), g["path"].as_str().unwrap()),
    );
    let (rc, _) = get_from(
        "127.0.0.1",
        &format!("{}{}", p.rs.base(), r["path"].as_str().unwrap()),
    );
    assert_eq!((gc, rc), (200, 200));
}

/// The routes peers and operators' scripts call: `get_md5s_by_date` (the same md5s; go-fastdfs'
/// order is its map's, ours sorted), `receive_md5s`, `sync`, `repair`, `backup`,
/// `remove_empty_dir`, `repair_fileinfo` without migration, and `search` (the same records;
/// go-fastdfs lists them in its LevelDB key order, where path keys and md5s mix).
#[test]
fn peer_and_maintenance_routes_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    upload_both(&p, "m1.txt", b"maintenance one\n", &[]);
    upload_both(&p, "m2.txt", b"maintenance two\n", &[("path", "m")]);
    // Outside the dated tree, so that both nodes' records have the same path keys.
    for i in 3..12 {
        let (name, data) = (format!("m{i}.txt"), format!("maintenance {i}\n"));
        upload_both(&p, &name, data.as_bytes(), &[("path", &format!("m/{i}"))]);
    }
    let today = local_stamp(now()).split('/').next().unwrap().to_string();
    let path = format!("/group1/get_md5s_by_date?date={today}");
    let (g, r) = (get(&p.go.base(), &path), get(&p.rs.base(), &path));
    assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1), "{path}");
    let set = |t: &str| {
        let mut v: Vec<String> = t.split(',').map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(set(&g.2), set(&r.2), "{path}");
    assert_eq!(set(&r.2).len(), 11);
    for path in [
        "/group1/get_md5s_by_date?date=20000101".to_string(),
        "/group1/get_md5s_by_date".to_string(),
        "/group1/receive_md5s?md5s=abc".to_string(),
        format!("/group1/sync?date={today}"),
        format!("/group1/sync?date={today}&force=1&inner=1"),
        "/group1/repair?force=0".to_string(),
        format!("/group1/backup?date={today}"),
        "/group1/remove_empty_dir".to_string(),
        "/group1/search?kw=nothing-like-it".to_string(),
    ] {
        same_body(&p, &path, 200);
    }
    for path in ["/group1/sync", "/group1/repair_fileinfo"] {
        same_body(&p, path, 400);
    }
    // The same records in go-fastdfs' order: its LevelDB's key order, where a record's md5
    // and its path key both lead to it.
    let path = "/group1/search?kw=.txt";
    let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
    let names = |t: &str| -> Vec<String> {
        let v = parse(t);
        let all = v["data"].as_array().unwrap().iter();
        let mut out: Vec<String> = all
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        out.retain(|n| n != "m1.txt");
        out
    };
    assert_eq!(names(&g.2), names(&r.2), "{path}: order");
    for kw in ["m", "m2", ""] {
        let path = format!("/group1/search?kw={kw}");
        let (g, r) = (get(&p.go.base(), &path), get(&p.rs.base(), &path));
        assert_eq!((g.0, r.0, &g.1), (200, 200, &r.1), "{path}");
        let (g, r) = (parse(&g.2), parse(&r.2));
        let records = |v: &Value| {
            let mut l: Vec<Value> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| normalized(&p, i))
                .collect();
            l.sort_by_key(|i| i["md5"].as_str().unwrap().to_string());
            l
        };
        assert_eq!(records(&g), records(&r), "{path}");
        assert_eq!((&g["status"], &g["message"]), (&r["status"], &r["message"]));
    }
}

/// With both download tokens and Google codes on, go-fastdfs takes a valid token for a
/// recorded file as enough and never asks for the scene's code; we ask for both
/// (DEFECTS.md #44).
#[test]
fn a_download_token_does_not_stand_in_for_a_scene_s_google_code() {
    let secret = "JBSWY3DPEHPK3PXP";
    let cfg = json!({"download_use_token": true, "download_token_secret": "",
                     "enable_google_auth": true, "download_token_expire": 600,
                     "scenes": ["default", format!("sec:{secret}")]});
    let Some(p) = Pair::start_same(cfg) else {
        return;
    };
    let code = |base: &str| {
        let (_, _, t) = get(base, &format!("/group1/gen_google_code?secret={secret}"));
        parse(&t)["data"].as_str().unwrap().to_string()
    };
    let mut paths = Vec::new();
    for base in [p.go.base(), p.rs.base()] {
        let uploaded = (0..3).find_map(|_| {
            let c = code(&base);
            let (status, v) = upload_to(
                &base,
                "k.txt",
                b"both checks",
                &[("scene", "sec"), ("code", &c)],
            );
            (status == 200).then(|| v["path"].as_str().unwrap().to_string())
        });
        paths.push(uploaded.expect("an upload with the right code"));
    }
    let ts = now();
    let token = md5_hex(format!("{}{ts}", md5_hex(b"both checks")).as_bytes());
    let at = |base: &str, path: &str, extra: &str| {
        let url = format!("{base}{path}?token={token}&timestamp={ts}{extra}");
        get_from(NON_ADMIN_IP, &url).0
    };
    let (go, rs) = (p.go.base(), p.rs.base());
    assert_eq!((at(&go, &paths[0], ""), at(&rs, &paths[1], "")), (200, 401));
    let with_code = |base: &str, path: &str| at(base, path, &format!("&code={}", code(base)));
    assert_eq!(
        (with_code(&go, &paths[0]), with_code(&rs, &paths[1])),
        (200, 200)
    );
}

/// `rename_file`: the stored name is MD5(a random uuid) + the extension, in the upload's
/// answer and as the record's `rename` (its `name` stays the uploaded one).
#[test]
fn rename_file_names_the_stored_file_as_go_fastdfs_names_it() {
    let Some(p) = Pair::start_same(json!({"rename_file": true})) else {
        return;
    };
    let mut infos = Vec::new();
    for base in [p.go.base(), p.rs.base()] {
        let (code, v) = upload_to(&base, "orig.txt", b"renamed on upload", &[]);
        assert_eq!(code, 200, "{v}");
        let path = v["path"].as_str().unwrap();
        let stored = path.rsplit('/').next().unwrap();
        let (stem, ext) = stored.split_once('.').unwrap();
        assert!(
            stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()),
            "{path}"
        );
        assert_eq!(ext, "txt", "{path}");
        assert!(
            v["url"]
                .as_str()
                .unwrap()
                .ends_with("?name=orig.txt&download=1"),
            "{v}"
        );
        let md5 = v["md5"].as_str().unwrap();
        let (_, _, t) = get(&base, &format!("/group1/get_file_info?md5={md5}"));
        let info = parse(&t);
        assert_eq!(
            (&info["data"]["name"], &info["data"]["rename"]),
            (&json!("orig.txt"), &json!(stored))
        );
        let (code, _, body) = get(&base, path);
        assert_eq!((code, body.as_str()), (200, "renamed on upload"));
        infos.push(info);
    }
    assert_eq!(shape(&infos[0]), shape(&infos[1]));
}

/// Who is an admin (SPEC §9.1 as both implement it): an exact `admin_ips` entry, a CIDR,
/// `0.0.0.0` (any private or loopback IPv4); anyone else is refused. go-fastdfs refuses with
/// 200 and the envelope, we with 403 and the same envelope (DEFECTS.md #31).
#[test]
fn admin_addresses_are_recognized_as_go_fastdfs_recognizes_them() {
    /// `admin_ips`, and clients with whether each is an admin.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, bool)]);
    let cases: [Case; 3] = [
        (
            &["127.0.0.77"],
            &[("127.0.0.77", true), ("127.0.0.78", false)],
        ),
        (
            &["127.0.0.64/26"],
            &[("127.0.0.77", true), ("127.0.0.200", false)],
        ),
        (&["0.0.0.0"], &[("127.0.0.77", true), ("127.0.0.200", true)]),
    ];
    for (admin_ips, clients) in cases {
        let Some(p) = Pair::start_same(json!({ "admin_ips": admin_ips })) else {
            return;
        };
        for (ip, admin) in clients {
            let path = "/group1/stat";
            let (gc, gb) = get_from(ip, &format!("{}{path}", p.go.base()));
            let (rc, rb) = get_from(ip, &format!("{}{path}", p.rs.base()));
            let what = format!("{admin_ips:?} from {ip}");
            assert_eq!((gc, rc), (200, if *admin { 200 } else { 403 }), "{what}");
            assert_eq!(gb, rb, "{what}");
            assert_eq!(
                parse(&rb)["status"],
                if *admin { "ok" } else { "" },
                "{what}"
            );
        }
    }
}

/// `reload?action=set` with the configuration `action=get` gave, then `action=reload`: the
/// same answers; an invalid `cfg` is refused by both (the parser's message differs:
/// docs/PROTOCOL.md §7, ours names the parameter).
#[test]
fn reload_set_and_reload_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    let key = "key=test-admin-key";
    for base in [p.go.base(), p.rs.base()] {
        let (_, _, t) = get(&base, &format!("/group1/reload?{key}&action=get"));
        let cfg = parse(&t)["data"].to_string();
        let set = |cfg: &str| {
            let url = format!("{base}/group1/reload?{key}&action=set");
            answer(agent().post(&url).send_form(&[("cfg", cfg)]))
        };
        let (code, ct, body) = set(&cfg);
        assert_eq!(
            (code, ct.as_deref()),
            (200, Some("text/plain; charset=utf-8")),
            "{base}"
        );
        assert_eq!(
            parse(&body),
            json!({"data": null, "message": "", "status": "ok"}),
            "{base}"
        );
        let (code, _, body) = get(&base, &format!("/group1/reload?{key}&action=reload"));
        assert_eq!(code, 200, "{base}");
        assert_eq!(
            parse(&body),
            json!({"data": null, "message": "", "status": "ok"}),
            "{base}"
        );
        for bad in ["[1]", "{\"addr\":5}", "{"] {
            let (code, _, body) = set(bad);
            assert!(code == 200 || code == 400, "{base} {bad}");
            let v = parse(&body);
            assert_eq!(
                (&v["status"], &v["data"]),
                (&json!("fail"), &Value::Null),
                "{base} {bad}"
            );
        }
    }
    // With web uploads off, the pages say so (go-fastdfs 200, we 403).
    drop(p);
    let Some(p) = Pair::start_same(json!({"enable_web_upload": false})) else {
        return;
    };
    for path in ["/", "/group1/", "/group1/upload.html"] {
        let (g, r) = (get(&p.go.base(), path), get(&p.rs.base(), path));
        assert_eq!((g.0, r.0), (200, 403), "{path}");
        assert_eq!((g.2.as_str(), &g.1), ("web upload deny", &r.1), "{path}");
        assert_eq!(g.2, r.2, "{path}");
    }
}

/// Uploads refused by configuration: `read_only`, an `extensions` whitelist, custom paths
/// off (the path is ignored). The same bodies (go-fastdfs 200, we 403).
#[test]
fn uploads_refused_by_configuration_match_go_fastdfs() {
    let cases = [
        (json!({"read_only": true}), "r.txt", "(error) readonly"),
        (
            json!({"extensions": [".jpg"]}),
            "e.txt",
            "(error)file extension mismatch",
        ),
    ];
    for (cfg, name, message) in cases {
        let Some(p) = Pair::start_same(cfg.clone()) else {
            return;
        };
        let (gc, g) = upload_to(&p.go.base(), name, b"refused", &[]);
        let (rc, r) = upload_to(&p.rs.base(), name, b"refused", &[]);
        assert_eq!((gc, rc), (200, 403), "{cfg}");
        assert_eq!(g, r, "{cfg}");
        assert_eq!(r["message"], message, "{cfg}");
        // Reads still work.
        same_body(&p, "/group1/stat?inner=1", 200);
    }
    let Some(p) = Pair::start_same(json!({"enable_custom_path": false})) else {
        return;
    };
    let (g, _) = upload_both(&p, "c.txt", b"custom path off", &[("path", "mine")]);
    assert!(
        g["path"].as_str().unwrap().starts_with("/group1/default/"),
        "{g}"
    );
}

/// An auth server that allows a request whose `Auth-Token` header is `good` (go-fastdfs
/// sends it the headers only, DEFECTS.md #18); its URL.
fn header_auth_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // The head is enough to decide; the body (if any) is left unread.
            while find(&buf, b"\r\n\r\n").is_none() && buf.len() < 65536 {
                match s.read(&mut chunk) {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            let body = if head.contains("\r\nauth-token: good\r\n") {
                "ok"
            } else {
                "fail"
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// `auth_url`: uploads (any method) and deletes need a token the auth server accepts; a
/// refusal is go-fastdfs' `auth fail` envelope with an empty status (401 from both), a delete's
/// an empty 401.
#[test]
fn auth_url_refusals_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({"auth_url": header_auth_server()})) else {
        return;
    };
    let up = |base: &str, token: Option<&str>| {
        let (ct, body) = multipart(&[("output", "json")], Some(("a.txt", b"auth checked")));
        let mut req = agent()
            .post(&format!("{base}/group1/upload"))
            .set("Content-Type", &ct);
        if let Some(t) = token {
            req = req.set("Auth-Token", t);
        }
        answer(req.send_bytes(&body))
    };
    for token in [None, Some("bad")] {
        let (g, r) = (up(&p.go.base(), token), up(&p.rs.base(), token));
        assert_eq!(g, r, "{token:?}");
        assert_eq!(r.0, 401, "{token:?}");
        assert_eq!(
            parse(&r.2),
            json!({"data": null, "message": "auth fail", "status": ""})
        );
    }
    let (g, r) = (
        up(&p.go.base(), Some("good")),
        up(&p.rs.base(), Some("good")),
    );
    assert_eq!((g.0, r.0), (200, 200), "go {} / rs {}", g.2, r.2);
    let (g, r) = (parse(&g.2), parse(&r.2));
    assert_eq!(normalized(&p, &g), normalized(&p, &r));
    // A second-pass lookup is an upload too.
    let md5 = r["md5"].as_str().unwrap();
    let lookup = format!("/group1/upload?md5={md5}&output=json");
    let (g, r) = (get(&p.go.base(), &lookup), get(&p.rs.base(), &lookup));
    assert_eq!((g.0, &g.2), (401, &r.2));
    assert_eq!(g, r);
    // Deletes: an empty 401 without the token, then with it.
    let delete = format!("/group1/delete?md5={md5}");
    let (g, r) = (get(&p.go.base(), &delete), get(&p.rs.base(), &delete));
    assert_eq!((g.0, g.2.as_str()), (401, ""));
    assert_eq!((r.0, r.2.as_str()), (401, ""));
    for base in [p.go.base(), p.rs.base()] {
        let req = agent()
            .get(&format!("{base}{delete}"))
            .set("Auth-Token", "good");
        let (code, _, body) = answer(req.call());
        assert_eq!(
            (code, parse(&body)["message"].as_str()),
            (200, Some("remove success"))
        );
    }
}
