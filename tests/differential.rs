//! Differential tests: the same uploads and downloads sent to the reference go-fastdfs
//! binary (env GO_FASTDFS_BIN, default /work/shared/go-fastdfs/fileserver) and to fastdfs-rs
//! must get the same answers, after replacing what legitimately differs (base URL, the
//! upload minute, mtime). Status codes of errors may differ (go answers 200, we 4xx).
mod common;
use common::go::*;
use common::*;
use serde_json::{json, Value};

fn send(r: Result<ureq::Response, ureq::Error>) -> ureq::Response {
    match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    }
}

fn text_of(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    let r = send(r);
    (r.status(), r.into_string().unwrap())
}

fn post_upload(base: &str, name: &str, data: &[u8], fields: &[(&str, &str)]) -> (u16, String) {
    let (ct, body) = multipart(fields, Some((name, data)));
    text_of(
        agent()
            .post(&format!("{base}/group1/upload"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    )
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Compares two FileResults field by field (after normalization) and returns their mtimes.
fn compare_file_results(p: &Pair, go: &Value, rs: &Value, what: &str) -> (i64, i64) {
    assert_eq!(sorted_keys(go), sorted_keys(rs), "{what}: key sets");
    for k in ["md5", "size", "scene", "scenes", "retcode", "retmsg"] {
        assert_eq!(go[k], rs[k], "{what}: {k}");
    }
    let (gm, rm) = (p.check_mtime(&go["mtime"]), p.check_mtime(&rs["mtime"]));
    for k in ["path", "src", "url", "domain"] {
        let g = p.norm(&p.go.base(), go[k].as_str().unwrap(), None);
        let r = p.norm(&p.rs.base(), rs[k].as_str().unwrap(), None);
        assert_eq!(g, r, "{what}: {k}");
    }
    (gm, rm)
}

/// Uploads to both with output=json; compares fields and the normalized pretty bodies.
fn upload_both(p: &Pair, name: &str, data: &[u8], fields: &[(&str, &str)]) -> (Value, Value) {
    let mut f = vec![("output", "json")];
    f.extend_from_slice(fields);
    let (gc, gb) = post_upload(&p.go.base(), name, data, &f);
    let (rc, rb) = post_upload(&p.rs.base(), name, data, &f);
    assert_eq!(
        (gc, rc),
        (200, 200),
        "upload {name} {fields:?}: go {gb} / rs {rb}"
    );
    let (gv, rv) = (parse(&gb), parse(&rb));
    let what = format!("upload {name} {fields:?}");
    let (gm, rm) = compare_file_results(p, &gv, &rv, &what);
    assert_eq!(
        p.norm(&p.go.base(), &gb, Some(gm)),
        p.norm(&p.rs.base(), &rb, Some(rm)),
        "{what}: body"
    );
    (gv, rv)
}

#[test]
fn json_upload_results_match_go_fastdfs() {
    let Some(p) = Pair::start() else { return };
    let binary: Vec<u8> = (0..4096u32).map(|i| (i % 256) as u8).collect();
    let (g, _) = upload_both(&p, "hello.txt", b"hello world\n", &[]);
    assert!(g["path"].as_str().unwrap().ends_with("/1/hello.txt"));
    upload_both(&p, "bin.dat", &binary, &[]);
    let (g, _) = upload_both(&p, "my file-(1)#x.txt", b"special characters", &[]);
    assert!(
        g["path"].as_str().unwrap().ends_with("/myfile1x.txt"),
        "{g}"
    );
    let (g, _) = upload_both(&p, "s.txt", b"in a scene", &[("scene", "photos")]);
    assert_eq!(g["scene"], "photos");
    let (g, _) = upload_both(&p, "p.txt", b"custom path", &[("path", "/a.b/c/")]);
    assert_eq!(g["path"], "/group1/ab/c/p.txt");
    let (g, _) = upload_both(&p, "中文 名.txt", b"unicode name", &[]);
    assert!(
        g["url"]
            .as_str()
            .unwrap()
            .contains("?name=%E4%B8%AD%E6%96%87%E5%90%8D.txt"),
        "{g}"
    );
    let (g, _) = upload_both(&p, "alias.txt", b"scenes alias", &[("scenes", "docs")]);
    assert_eq!(g["scene"], "docs");
    let (g, _) = upload_both(
        &p,
        "orig.txt",
        b"renamed on disk",
        &[("filename", "renamed.txt")],
    );
    assert!(
        g["path"].as_str().unwrap().ends_with("/1/renamed.txt"),
        "{g}"
    );
    // A name collision in one directory gets the `0_` prefix.
    let (g, _) = upload_both(&p, "c.txt", b"collision one", &[("path", "coll")]);
    assert_eq!(g["path"], "/group1/coll/c.txt");
    let (g, _) = upload_both(&p, "c.txt", b"collision two", &[("path", "coll")]);
    assert_eq!(g["path"], "/group1/coll/0_c.txt");
    // Dedup: the existing record answers, whatever name and scene the new upload has.
    upload_both(&p, "again.txt", b"hello world\n", &[("scene", "other")]);
}

#[test]
fn json2_and_text_outputs_match_go_fastdfs() {
    let Some(p) = Pair::start() else { return };
    let f = [("output", "json2")];
    let (gc, gb) = post_upload(&p.go.base(), "two.txt", b"json2 output", &f);
    let (rc, rb) = post_upload(&p.rs.base(), "two.txt", b"json2 output", &f);
    assert_eq!((gc, rc), (200, 200));
    let (gv, rv) = (parse(&gb), parse(&rb));
    assert_eq!(sorted_keys(&gv), sorted_keys(&rv));
    assert_eq!(
        (&gv["status"], &gv["message"]),
        (&rv["status"], &rv["message"])
    );
    let (gm, rm) = compare_file_results(&p, &gv["data"], &rv["data"], "json2");
    assert_eq!(
        p.norm(&p.go.base(), &gb, Some(gm)),
        p.norm(&p.rs.base(), &rb, Some(rm)),
        "json2 body"
    );

    for f in [&[("output", "text")][..], &[][..]] {
        let (gc, gb) = post_upload(&p.go.base(), "three.txt", b"text output", f);
        let (rc, rb) = post_upload(&p.rs.base(), "three.txt", b"text output", f);
        assert_eq!((gc, rc), (200, 200));
        assert!(
            gb.starts_with(&p.go.base()) && rb.starts_with(&p.rs.base()),
            "{gb} / {rb}"
        );
        assert_eq!(
            p.norm(&p.go.base(), &gb, None),
            p.norm(&p.rs.base(), &rb, None),
            "text body {f:?}"
        );
    }
}

#[test]
fn second_pass_lookups_match_go_fastdfs() {
    let Some(p) = Pair::start() else { return };
    let (g, r) = upload_both(&p, "second.txt", b"second pass", &[]);
    let md5 = g["md5"].as_str().unwrap();
    let (gm, rm) = (g["mtime"].as_i64().unwrap(), r["mtime"].as_i64().unwrap());
    let get =
        |base: &str, q: &str| text_of(agent().get(&format!("{base}/group1/upload?{q}")).call());
    for q in [
        format!("md5={md5}&output=json"),
        format!("md5={md5}&output=json2"),
        format!("md5={md5}"),
    ] {
        let (gc, gb) = get(&p.go.base(), &q);
        let (rc, rb) = get(&p.rs.base(), &q);
        assert_eq!((gc, rc), (200, 200), "{q}: {gb} / {rb}");
        assert_eq!(
            p.norm(&p.go.base(), &gb, Some(gm)),
            p.norm(&p.rs.base(), &rb, Some(rm)),
            "{q}"
        );
    }
    // An md5 this node does not have: go-fastdfs' bodies, a 404 instead of its 200 (a
    // failed lookup; docs/PROTOCOL.md §4, §10), whatever the method, the md5's shape or
    // the output.
    let unknown = "0123456789abcdef0123456789abcdef";
    for q in [
        format!("md5={unknown}&output=json"),
        format!("md5={unknown}&output=json2"),
        format!("md5={unknown}"),
        format!("md5={unknown}&output=text"),
        format!("md5={unknown}&output=bad"),
        "md5=abc&output=json2".to_string(),
        format!("md5={unknown}0000&output=json"),
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let at = |base: &str| {
                let url = format!("{base}/group1/upload?{q}");
                text_of(agent().request(method, &url).call())
            };
            let ((gc, gb), (rc, rb)) = (at(&p.go.base()), at(&p.rs.base()));
            assert_eq!((gc, rc), (200, 404), "{method} {q}");
            assert_eq!(gb, rb, "{method} {q}");
        }
    }
    let head = |base: &str| {
        let url = format!("{base}/group1/upload?md5={unknown}");
        send(agent().head(&url).call()).status()
    };
    assert_eq!((head(&p.go.base()), head(&p.rs.base())), (200, 404));
    // Without md5: the same explanation (a 400 here).
    let (gc, gb) = get(&p.go.base(), "output=json");
    let (rc, rb) = get(&p.rs.base(), "output=json");
    assert_eq!((gc, rc), (200, 400));
    assert_eq!(gb, rb);
}

/// Sends one request to a base URL: (status, body).
type Sender = dyn Fn(&str) -> (u16, String);

#[test]
fn upload_error_messages_match_go_fastdfs() {
    let Some(p) = Pair::start() else { return };
    let cases: Vec<(&str, Box<Sender>)> = vec![
        (
            "bad output",
            Box::new(|b: &str| post_upload(b, "e.txt", b"err", &[("output", "yaml")])),
        ),
        (
            "no file",
            Box::new(|b: &str| {
                let (ct, body) = multipart(&[("output", "json")], None);
                text_of(
                    agent()
                        .post(&format!("{b}/group1/upload"))
                        .set("Content-Type", &ct)
                        .send_bytes(&body),
                )
            }),
        ),
        (
            "not multipart",
            Box::new(|b: &str| {
                text_of(
                    agent()
                        .post(&format!("{b}/group1/upload"))
                        .set("Content-Type", "application/x-www-form-urlencoded")
                        .send_string("output=json"),
                )
            }),
        ),
    ];
    for (what, f) in cases {
        let (gc, gb) = f(&p.go.base());
        let (rc, rb) = f(&p.rs.base());
        assert_eq!(gb, rb, "{what}: body (status go {gc}, rs {rc})");
        assert_eq!(parse(&rb)["status"], "fail");
        assert!(rc == 200 || (400..500).contains(&rc), "{what}: {rc}");
    }
}

const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Status, selected headers (name, value) and body of a download.
type Fetched = (u16, Vec<(String, Option<String>)>, Vec<u8>);

/// Status, selected headers and body of a download.
fn fetch(method: &str, url: &str, range: Option<&str>) -> Fetched {
    let mut req = agent().request(method, url);
    if let Some(r) = range {
        req = req.set("Range", r);
    }
    let r = send(req.call());
    let headers = [
        "Accept-Ranges",
        "Content-Range",
        "Content-Length",
        "Content-Type",
        "Content-Disposition",
    ]
    .iter()
    .map(|h| (h.to_string(), r.header(h).map(str::to_string)))
    .collect();
    let status = r.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
    (status, headers, body)
}

#[test]
fn downloads_send_the_same_bytes_and_headers_as_go_fastdfs() {
    let Some(p) = Pair::start() else { return };
    let text = b"hello world, a text file for ranges\n";
    let (gt, rt) = upload_both(&p, "dl.txt", text, &[]);
    let (gp, rp) = upload_both(&p, "red.png", TINY_PNG, &[]);
    let (gu, ru) = upload_both(&p, "中文.txt", b"unicode path", &[]);
    let files = [
        ((&gt, &rt), &text[..]),
        ((&gp, &rp), TINY_PNG),
        ((&gu, &ru), &b"unicode path"[..]),
    ];
    for ((g, r), content) in files {
        let gpath = g["path"].as_str().unwrap();
        let rpath = r["path"].as_str().unwrap();
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("GET", "", None),
            ("GET", "?download=0", None),
            ("GET", "?download=1", None),
            ("GET", "?download=0", Some("bytes=0-4")),
            ("GET", "?download=0", Some("bytes=3-")),
            ("GET", "?download=0", Some("bytes=-4")),
            ("GET", "", Some("bytes=2-6")),
            ("HEAD", "?download=0", None),
            ("HEAD", "", None),
            ("GET", "?name=my%20file.txt&download=1", None),
            ("GET", "?name=report.txt", None),
        ];
        for (method, q, range) in cases {
            let go = fetch(method, &format!("{}{gpath}{q}", p.go.base()), *range);
            let rs = fetch(method, &format!("{}{rpath}{q}", p.rs.base()), *range);
            let what = format!("{method} {rpath}{q} range {range:?}");
            assert_eq!(go.0, rs.0, "{what}: status");
            // Content-Disposition is deliberately RFC 6266 encoded (docs/DEFECTS.md #12):
            // go's `attachment;filename=X` becomes `attachment; filename="X"; filename*=...`.
            let (gd, rd) = (go.1.last().unwrap(), rs.1.last().unwrap());
            match (&gd.1, &rd.1) {
                (Some(g), Some(r)) => match g.strip_prefix("attachment;filename=") {
                    Some(name) => assert!(
                        r.starts_with("attachment;") && r.contains(&format!("filename=\"{name}\"")),
                        "{what}: Content-Disposition go {g:?} / rs {r:?}"
                    ),
                    None => assert_eq!(g, r, "{what}: Content-Disposition"),
                },
                (g, r) => assert_eq!(g, r, "{what}: Content-Disposition"),
            }
            assert_eq!(go.1[..4], rs.1[..4], "{what}: headers");
            assert_eq!(go.2, rs.2, "{what}: body");
            if *method == "GET" && range.is_none() {
                assert_eq!(rs.2, content, "{what}: content");
            }
        }
    }
    // A missing file: 404 with an empty body from both.
    let missing = "/group1/default/20200101/00/00/1/missing.txt";
    let go = fetch("GET", &format!("{}{missing}", p.go.base()), None);
    let rs = fetch("GET", &format!("{}{missing}", p.rs.base()), None);
    assert_eq!((go.0, &go.2), (rs.0, &rs.2), "missing file");
    assert_eq!(rs.0, 404);
    // An unsatisfiable range: same status and Content-Range (go also sends a text body,
    // docs/DEFECTS.md #40, which fastdfs-rs deliberately does not).
    let (gpath, rpath) = (gt["path"].as_str().unwrap(), rt["path"].as_str().unwrap());
    let range = format!("bytes={}-", text.len());
    let go = fetch(
        "GET",
        &format!("{}{gpath}?download=0", p.go.base()),
        Some(&range),
    );
    let rs = fetch(
        "GET",
        &format!("{}{rpath}?download=0", p.rs.base()),
        Some(&range),
    );
    assert_eq!((go.0, &go.1[1]), (rs.0, &rs.1[1]), "unsatisfiable range");
    assert_eq!(rs.0, 416);
    assert!(
        rs.2.is_empty(),
        "416 body: {:?}",
        String::from_utf8_lossy(&rs.2)
    );
}

/// Admin answers and 404s that clients parse: the same bodies as go-fastdfs (go answers its
/// errors with 200, we with 4xx).
#[test]
fn admin_answers_and_not_found_bodies_match_go_fastdfs() {
    let Some(p) = Pair::start() else { return };
    let get = |base: &str, path: &str| text_of(agent().get(&format!("{base}{path}")).call());
    // A fresh node: today's row of zeros and the total.
    let (go_code, go_body) = get(&p.go.base(), "/group1/stat?inner=1");
    let (rs_code, rs_body) = get(&p.rs.base(), "/group1/stat?inner=1");
    assert_eq!((go_code, rs_code), (200, 200));
    assert_eq!(go_body, rs_body, "stat of a fresh node");
    let bodies_equal = [
        "/group1/gen_google_code?secret=abc",
        "/group1/gen_google_code?secret=JBSW%20Y3DP",
        "/group1/gen_google_code?secret=JBSWY3DPEHPK3PX",
        "/group1/gen_google_code?secret=AB%3D%3D%3D%3Dx%3D",
        "/group1/list_dir?dir=missing",
        "/group1/get_file_info?md5=abc",
        "/group1/check_file_exist?md5=00000000000000000000000000000000",
    ];
    for path in bodies_equal {
        let (gc, gb) = get(&p.go.base(), path);
        let (rc, rb) = get(&p.rs.base(), path);
        assert_eq!(gb, rb, "{path}: body (status go {gc}, rs {rc})");
        assert!(gc == 200 && (400..500).contains(&rc), "{path}: {gc} {rc}");
    }
    // Unknown paths outside the group and missing static files: the same 404s.
    for path in ["/nope", "/favicon.ico", "/group1/static/missing.js"] {
        let (g, r) = (
            send(agent().get(&format!("{}{path}", p.go.base())).call()),
            send(agent().get(&format!("{}{path}", p.rs.base())).call()),
        );
        assert_eq!((g.status(), r.status()), (404, 404), "{path}");
        for h in ["Content-Type", "X-Content-Type-Options"] {
            assert_eq!(g.header(h), r.header(h), "{path}: {h}");
        }
        assert_eq!(g.into_string().unwrap(), r.into_string().unwrap(), "{path}");
    }
}

/// go-fastdfs adds CORS headers to every answer, and its upload and download handlers add
/// them a second time after the first pass set a missing `Origin` to `*`: without an
/// `Origin`, `Access-Control-Allow-Credentials` comes only with those two handlers' answers
/// (SPEC §6.2). Both nodes must send the same CORS headers route by route.
#[test]
fn cors_headers_match_go_fastdfs_route_by_route() {
    let Some(bin) = go_bin() else { return };
    let go = GoNode::start(&bin);
    let rs = Server::start(json!({"enable_tus": true}));
    let file = |base: &str| {
        let (code, url) = post_upload(base, "cors.txt", b"cors", &[("output", "text")]);
        assert_eq!(code, 200, "{url}");
        url.split_once("/group1/")
            .unwrap()
            .1
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    let (gf, rf) = (file(&go.base()), file(&rs.base()));
    let cases: &[(&str, &str)] = &[
        ("GET", "/group1/status"),
        ("GET", "/group1/stat"),
        ("OPTIONS", "/group1/stat"),
        ("GET", "/group1/check_file_exist?md5=x"),
        ("GET", "/group1/upload?md5=x"),
        ("OPTIONS", "/group1/upload"),
        ("GET", "/group1/FILE"),
        ("HEAD", "/group1/FILE"),
        ("GET", "/group1/missing/x.txt"),
        ("GET", "/nogroup/x.txt"),
        ("GET", "/"),
        ("GET", "/group1"),
        ("GET", "/group1/"),
        ("GET", "/group1/upload.html"),
        ("GET", "/group1/static/"),
        ("GET", "/group1//status"),
        ("OPTIONS", "/group1/big/upload/"),
    ];
    let cors = |r: &ureq::Response| -> Vec<(String, Option<String>)> {
        [
            "access-control-allow-origin",
            "access-control-allow-credentials",
        ]
        .iter()
        .map(|h| (h.to_string(), r.header(h).map(str::to_string)))
        .collect()
    };
    for origin in [None, Some("http://app.example")] {
        for (method, path) in cases {
            let at = |base: &str, f: &str| {
                let mut req =
                    agent().request(method, &format!("{base}{}", path.replace("FILE", f)));
                if let Some(o) = origin {
                    req = req.set("Origin", o);
                }
                send(req.call())
            };
            let (g, r) = (at(&go.base(), &gf), at(&rs.base(), &rf));
            assert_eq!(cors(&g), cors(&r), "{method} {path} origin {origin:?}");
        }
    }
}

/// A raw request (`Connection: close`) and its answer: status, headers, body.
fn raw_exchange(addr: &str, method: &str, target: &str) -> Resp {
    let text = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = raw(addr, text.as_bytes(), std::time::Duration::from_secs(10));
    let (mut r, at) = parse_head(&out).unwrap_or_else(|| panic!("{method} {target}: no head"));
    r.body = out[at..].to_vec();
    r
}

/// The mux's 301s (path cleaning, `G/static` without its slash) as Go's `http.Redirect`
/// writes them: to GET a `text/html` body linking the HTML-escaped target, to HEAD the same
/// type without a body, to other methods neither. The file server's directory redirects
/// stay empty in both.
#[test]
fn mux_redirects_have_go_s_link_body() {
    let Some(p) = Pair::start() else { return };
    let go_addr = p.go.base().trim_start_matches("http://").to_string();
    let rs_addr = p.rs.addr();
    std::fs::create_dir_all(p.rs.dir.join("static/sub")).unwrap();
    std::fs::create_dir_all(p.go.dir.path().join("static/sub")).unwrap();
    let targets = [
        "/group1//stat",
        "/group1/./stat?x=1",
        "/group1/%2e%2e/group1/stat",
        "/group1/static",
        "/group1/static?a=<b>&c=\"'",
        "/a/../<x>\"&%27",
        "/group1/a/..//%3Cb%3E%20c",
        "/group1/static/sub",
        "/group1/static/index.html",
    ];
    for target in targets {
        for method in ["GET", "HEAD", "POST", "DELETE"] {
            let g = raw_exchange(&go_addr, method, target);
            let r = raw_exchange(&rs_addr, method, target);
            let what = format!("{method} {target}");
            assert_eq!((g.status, r.status), (301, 301), "{what}");
            for h in ["Location", "Content-Type"] {
                assert_eq!(g.header(h), r.header(h), "{what}: {h}");
            }
            assert_eq!(g.text(), r.text(), "{what}: body");
        }
    }
}

/// An unprefixed URL that names something under `files/` (go-fastdfs looks it up without
/// the prefix, then its file server, which serves only under the prefix, does not find it):
/// Go's `404 page not found`; an unprefixed URL of nothing: an empty 404.
#[test]
fn unprefixed_urls_of_existing_files_get_go_s_not_found_page() {
    let Some(p) = Pair::start() else { return };
    let path_of = |base: &str| {
        let (code, url) = post_upload(base, "np.txt", b"not here", &[("output", "text")]);
        assert_eq!(code, 200, "{url}");
        let path = url.split_once("/group1").unwrap().1;
        path.split('?').next().unwrap().to_string()
    };
    let (gp, rp) = (path_of(&p.go.base()), path_of(&p.rs.base()));
    let dir_of = |p: &str| p.rsplit_once('/').unwrap().0.to_string();
    let cases = [
        (gp.clone(), rp.clone()),
        (format!("{gp}?download=0"), format!("{rp}?download=0")),
        (dir_of(&gp), dir_of(&rp)),
        (format!("{}/", dir_of(&gp)), format!("{}/", dir_of(&rp))),
        ("/default".to_string(), "/default".to_string()),
        (
            "/default/nope.txt".to_string(),
            "/default/nope.txt".to_string(),
        ),
        ("/group2/x.txt".to_string(), "/group2/x.txt".to_string()),
    ];
    for method in ["GET", "HEAD"] {
        for (g_path, r_path) in &cases {
            let g = send(
                agent()
                    .request(method, &format!("{}{g_path}", p.go.base()))
                    .call(),
            );
            let r = send(
                agent()
                    .request(method, &format!("{}{r_path}", p.rs.base()))
                    .call(),
            );
            let what = format!("{method} {r_path}");
            assert_eq!((g.status(), r.status()), (404, 404), "{what}");
            for h in ["Content-Type", "X-Content-Type-Options"] {
                assert_eq!(g.header(h), r.header(h), "{what}: {h}");
            }
            // Go's 404 page carries `Content-Disposition: attachment` when the download would
            // be one (a browser saves the error page); none on our 404s (docs/PROTOCOL.md §10).
            assert_eq!(r.header("Content-Disposition"), None, "{what}");
            // Go's HEAD of an empty 404 has no Content-Length; ours says 0, the GET's length.
            if method == "GET" {
                let h = "Content-Length";
                assert_eq!(g.header(h), r.header(h), "{what}: {h}");
            }
            assert_eq!(g.into_string().unwrap(), r.into_string().unwrap(), "{what}");
        }
    }
    // With show_dir off, an unprefixed directory is go-fastdfs' `list dir deny` (its 200,
    // our 403, as for a prefixed directory).
    let go = GoNode::start_configured(
        &go_bin().unwrap(),
        GO_IP,
        free_port(GO_IP),
        &[],
        &json!({"show_dir": false}),
    );
    let rs = Server::start(json!({"show_dir": false}));
    let (gp, rp) = (path_of(&go.base()), path_of(&rs.base()));
    let (gc, gb) = text_of(agent().get(&format!("{}{}", go.base(), dir_of(&gp))).call());
    let (rc, rb) = text_of(agent().get(&format!("{}{}", rs.base(), dir_of(&rp))).call());
    assert_eq!((gc, rc), (200, 403));
    assert_eq!(gb, rb);
    // With prefixing off, go-fastdfs takes `/<group>/` off a path before it looks: the
    // group's URL of a stored file is outside too.
    drop((go, rs));
    let off = json!({"support_group_manage": false});
    let go = GoNode::start_configured(&go_bin().unwrap(), GO_IP, free_port(GO_IP), &[], &off);
    let rs = Server::start(off);
    let stored = |base: &str| {
        let (ct, body) = multipart(&[("output", "text")], Some(("off.txt", b"prefix off")));
        let url = agent()
            .post(&format!("{base}/upload"))
            .set("Content-Type", &ct)
            .send_bytes(&body)
            .unwrap()
            .into_string()
            .unwrap();
        let path = url.strip_prefix(base).unwrap();
        path.split('?').next().unwrap().to_string()
    };
    let (gp, rp) = (stored(&go.base()), stored(&rs.base()));
    for (g_path, r_path) in [
        (format!("/group1{gp}"), format!("/group1{rp}")),
        (
            "/group1/nope.txt".to_string(),
            "/group1/nope.txt".to_string(),
        ),
    ] {
        let g = send(agent().get(&format!("{}{g_path}", go.base())).call());
        let r = send(agent().get(&format!("{}{r_path}", rs.base())).call());
        assert_eq!((g.status(), r.status()), (404, 404), "{r_path}");
        assert_eq!(
            g.header("Content-Type"),
            r.header("Content-Type"),
            "{r_path}"
        );
        assert_eq!(
            g.into_string().unwrap(),
            r.into_string().unwrap(),
            "{r_path}"
        );
    }
}

/// go-fastdfs keeps a backslash in an uploaded file's name (SPEC §8.2: `/` is the only
/// separator) unless its special-character filter (on in its template) removes it: the same
/// stored name and `path` here (the `url` escapes it as `%5C`, as any character a path segment
/// may not hold, docs/PROTOCOL.md §1), and the file downloads by them.
#[test]
fn a_backslash_in_an_uploaded_name_is_kept_as_go_fastdfs_keeps_it() {
    let Some(bin) = go_bin() else { return };
    let keep = json!({"enable_trim_file_name_special_char": false});
    let started = now();
    let go = GoNode::start_configured(&bin, GO_IP, free_port(GO_IP), &[], &keep);
    let rs = Server::start(keep);
    let p = Pair { go, rs, started };
    let fields = [("output", "json")];
    let (gc, gb) = post_upload(&p.go.base(), "a\\b.txt", b"back slash", &fields);
    let (rc, rb) = post_upload(&p.rs.base(), "a\\b.txt", b"back slash", &fields);
    assert_eq!((gc, rc), (200, 200), "go {gb} / rs {rb}");
    let (gv, rv) = (parse(&gb), parse(&rb));
    for k in ["md5", "size", "scene"] {
        assert_eq!(gv[k], rv[k], "{k}");
    }
    for k in ["path", "src"] {
        let g = p.norm(&p.go.base(), gv[k].as_str().unwrap(), None);
        let r = p.norm(&p.rs.base(), rv[k].as_str().unwrap(), None);
        assert_eq!(g, r, "{k}");
        assert!(r.ends_with("/a\\b.txt"), "{k}: {r}");
    }
    let url = rv["url"].as_str().unwrap();
    assert!(url.contains("/a%5Cb.txt"), "{url}");
    let (code, body) = text_of(agent().get(url).call());
    assert_eq!((code, body.as_str()), (200, "back slash"), "{url}");
    for (base, v) in [(p.go.base(), &gv), (p.rs.base(), &rv)] {
        let path = v["path"].as_str().unwrap().replace('\\', "%5C");
        let (code, body) = text_of(agent().get(&format!("{base}{path}")).call());
        assert_eq!((code, body.as_str()), (200, "back slash"), "{base}{path}");
    }
    let stored = files_under(&p.rs.dir);
    assert!(
        stored.iter().any(|f| f.file_name().unwrap() == "a\\b.txt"),
        "one file named a\\b.txt: {stored:?}"
    );
}

/// Uploads with a raw multipart body whose file part's quoted `filename` is `quoted` as is.
fn upload_raw_filename(base: &str, quoted: &[u8], data: &[u8]) -> (u16, String) {
    let mut body =
        b"--XyZb0undary\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n\
        --XyZb0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\""
            .to_vec();
    body.extend_from_slice(quoted);
    body.extend_from_slice(b"\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XyZb0undary--\r\n");
    text_of(
        agent()
            .post(&format!("{base}/group1/upload"))
            .set("Content-Type", "multipart/form-data; boundary=XyZb0undary")
            .send_bytes(&body),
    )
}

/// In a quoted `filename` a backslash escapes a tspecial only (Go's `mime.ParseMediaType`):
/// `x\/y.txt` names `x/y.txt`, stored as `y.txt`; `s\;t.txt` is `s;t.txt`; before other
/// characters the backslash stays (`a\b.txt`, `t\ z.txt`). Both store the same names.
#[test]
fn backslash_escapes_in_a_quoted_filename_are_read_as_go_fastdfs_reads_them() {
    let Some(bin) = go_bin() else { return };
    let keep = json!({"enable_trim_file_name_special_char": false, "enable_distinct_file": false});
    let started = now();
    let go = GoNode::start_configured(&bin, GO_IP, free_port(GO_IP), &[], &keep);
    let rs = Server::start(keep);
    let p = Pair { go, rs, started };
    let cases: [(&[u8], &str); 7] = [
        (br"x\/y.txt", "/y.txt"),
        (br"s\;t.txt", "/s;t.txt"),
        (br#"q\"z.txt"#, "/q\"z.txt"),
        (br"u\\v.txt", "/u\\v.txt"),
        (br"a\b.txt", "/a\\b.txt"),
        (br"t\ z.txt", "/t\\ z.txt"),
        (br"d\.\.\/\.\.\/p.txt", "/p.txt"),
    ];
    for (i, (quoted, stored)) in cases.iter().enumerate() {
        let data = format!("escape case {i}");
        let (gc, gb) = upload_raw_filename(&p.go.base(), quoted, data.as_bytes());
        let (rc, rb) = upload_raw_filename(&p.rs.base(), quoted, data.as_bytes());
        let what = quoted.escape_ascii().to_string();
        assert_eq!((gc, rc), (200, 200), "{what}: go {gb} / rs {rb}");
        let (gv, rv) = (parse(&gb), parse(&rb));
        let g = p.norm(&p.go.base(), gv["path"].as_str().unwrap(), None);
        let r = p.norm(&p.rs.base(), rv["path"].as_str().unwrap(), None);
        assert_eq!(g, r, "{what}");
        assert!(r.ends_with(stored), "{what}: {r}");
        let (code, body) = text_of(agent().get(rv["url"].as_str().unwrap()).call());
        assert_eq!((code, body.as_str()), (200, data.as_str()), "{what}");
    }
}

/// An image asked for with a size outside the prefix is resized by both (go-fastdfs resizes
/// before its file server answers `404 page not found`): same status, type and dimensions.
#[test]
fn an_unprefixed_image_url_with_a_size_is_resized_by_both() {
    let Some(p) = Pair::start() else { return };
    let pixels: Vec<u8> = (0..40 * 20 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let png =
        zune_image::image::Image::from_u8(&pixels, 40, 20, zune_core::colorspace::ColorSpace::RGB)
            .write_to_vec(zune_image::codecs::ImageFormat::PNG)
            .unwrap();
    let dims = |bytes: &[u8]| {
        let cursor = zune_core::bytestream::ZCursor::new(bytes);
        zune_image::image::Image::read(cursor, zune_core::options::DecoderOptions::default())
            .unwrap()
            .dimensions()
    };
    let (g, r) = upload_both(&p, "red.png", &png, &[]);
    for q in ["?width=10&download=0", "?height=5&download=0", "?width=10"] {
        let mut got = Vec::new();
        for (base, v) in [(p.go.base(), &g), (p.rs.base(), &r)] {
            let path = v["path"].as_str().unwrap().strip_prefix("/group1").unwrap();
            let resp = send(agent().get(&format!("{base}{path}{q}")).call());
            let (status, ct) = (resp.status(), resp.content_type().to_string());
            let cd = resp.header("Content-Disposition").map(str::to_string);
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
            got.push((status, ct, cd, dims(&body)));
        }
        assert_eq!(got[0], got[1], "{q}");
        assert_eq!(got[1].3, (10, 5), "{q}");
    }
}

/// What Go's server and file server answer by themselves, beside go-fastdfs' handlers: a
/// directory's `index.html` (with `show_dir`), `OPTIONS *`, a `Host` that is no host.
#[test]
fn directory_index_options_asterisk_and_bad_hosts_are_answered_as_go_answers_them() {
    let Some(p) = Pair::start() else { return };
    let go_addr = p.go.base().trim_start_matches("http://").to_string();
    let rs_addr = p.rs.addr();
    for dir in [p.go.dir.path().join("files"), p.rs.dir.join("files")] {
        std::fs::create_dir_all(dir.join("site")).unwrap();
        std::fs::write(dir.join("site/index.html"), b"<h1>home</h1>").unwrap();
    }
    for target in ["/group1/site/", "/group1/site/?download=0"] {
        let g = raw_exchange(&go_addr, "GET", target);
        let r = raw_exchange(&rs_addr, "GET", target);
        assert_eq!(
            (g.status, &g.body),
            (200, &b"<h1>home</h1>".to_vec()),
            "{target}"
        );
        assert_eq!((r.status, &r.body), (g.status, &g.body), "{target}");
        for h in ["Content-Type", "Content-Disposition"] {
            assert_eq!(g.header(h), r.header(h), "{target}: {h}");
        }
    }
    let g = raw_exchange(&go_addr, "OPTIONS", "*");
    let r = raw_exchange(&rs_addr, "OPTIONS", "*");
    assert_eq!((g.status, g.header("content-length")), (200, Some("0")));
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    let bad_host = b"GET /group1/status HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n";
    for addr in [&go_addr, &rs_addr] {
        let out = raw(addr, bad_host, std::time::Duration::from_secs(10));
        let (head, _) = parse_head(&out).expect("an answer");
        assert_eq!(head.status, 400, "{addr}");
    }
}
