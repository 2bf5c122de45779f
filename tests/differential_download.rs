//! Differential audit of the download pipeline, merged small files and tus: the same requests
//! sent to the reference go-fastdfs binary (env GO_FASTDFS_BIN) and to fastdfs-rs, both with
//! the same cfg.json (`Pair::start_same`), must get the same status, headers (Content-Type,
//! Content-Disposition, Content-Length, Accept-Ranges, Content-Range, Location, Last-Modified
//! present or not) and bodies. Where we differ on purpose the test asserts our answer and names
//! the docs/DEFECTS.md entry. tests/differential.rs covers the plain download cases
//! (`download=0|1`, simple ranges, HEAD) and tests/differential_admin.rs the admin routes.
mod common;
use common::go::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The headers compared between the two nodes (Last-Modified only for its presence).
const COMPARED: [&str; 6] = [
    "Content-Type",
    "Content-Disposition",
    "Content-Length",
    "Accept-Ranges",
    "Content-Range",
    "Location",
];

/// One answer as compared: status, the compared headers, Last-Modified present, body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    status: u16,
    headers: Vec<(&'static str, Option<String>)>,
    last_modified: bool,
    body: Vec<u8>,
}

impl View {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// This view with one header replaced (to compare the rest of two answers).
    fn with(mut self, name: &str, value: Option<&str>) -> View {
        for (n, v) in self.headers.iter_mut() {
            if n.eq_ignore_ascii_case(name) {
                *v = value.map(str::to_string);
            }
        }
        self
    }
}

/// The body of a chunked answer, decoded.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let line = String::from_utf8_lossy(&raw[..eol]);
        let len = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        if len == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + len]);
        raw = &raw[eol + 2 + len + 2..];
    }
    out
}

/// Sends `method target` (as is, unnormalized) with `headers` and `body` to `base` on a
/// connection of its own: the answer's view.
fn exchange(base: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> View {
    let addr = base.trim_start_matches("http://");
    let mut text = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PATCH") {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    let out = raw(addr, &bytes, Duration::from_secs(20));
    let (r, at) = parse_head(&out).unwrap_or_else(|| panic!("{method} {target}: no answer"));
    let chunked = r
        .header("Transfer-Encoding")
        .is_some_and(|v| v.contains("chunked"));
    let body = if chunked {
        dechunk(&out[at..])
    } else {
        out[at..].to_vec()
    };
    View {
        status: r.status,
        headers: COMPARED
            .iter()
            .map(|h| (*h, r.header(h).map(str::to_string)))
            .collect(),
        last_modified: r.header("Last-Modified").is_some(),
        body,
    }
}

fn get(base: &str, target: &str) -> View {
    exchange(base, "GET", target, &[], b"")
}

/// Uploads `data` as `name` with output=json: the FileResult.
fn upload_to(base: &str, name: &str, data: &[u8]) -> Value {
    let (ct, body) = multipart(&[("output", "json")], Some((name, data)));
    let (code, text) = call_with_body(
        agent()
            .post(&format!("{base}/group1/upload"))
            .set("Content-Type", &ct),
        &body,
    );
    assert_eq!(code, 200, "upload {name} to {base}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn call_with_body(req: ureq::Request, body: &[u8]) -> (u16, String) {
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Uploads to both nodes: (go's path, our path).
fn upload_both(p: &Pair, name: &str, data: &[u8]) -> (String, String) {
    let g = upload_to(&p.go.base(), name, data);
    let r = upload_to(&p.rs.base(), name, data);
    assert_eq!((&g["md5"], &g["size"]), (&r["md5"], &r["size"]), "{name}");
    let path = |v: &Value| v["path"].as_str().unwrap().to_string();
    (path(&g), path(&r))
}

/// Sends the same request (its target made from each node's path) to both nodes.
fn both(
    p: &Pair,
    method: &str,
    targets: (&str, &str),
    headers: &[(&str, &str)],
    body: &[u8],
) -> (View, View) {
    (
        exchange(&p.go.base(), method, targets.0, headers, body),
        exchange(&p.rs.base(), method, targets.1, headers, body),
    )
}

/// A GET of the same query `q` after each node's path `paths`, no headers: both answers.
fn get_both(p: &Pair, paths: (&str, &str), q: &str) -> (View, View) {
    let targets = (format!("{}{q}", paths.0), format!("{}{q}", paths.1));
    both(p, "GET", (&targets.0, &targets.1), &[], b"")
}

/// Both nodes must answer alike; returns our answer.
fn same(p: &Pair, method: &str, targets: (&str, &str), headers: &[(&str, &str)]) -> View {
    let (g, r) = both(p, method, targets, headers, b"");
    assert_eq!(g, r, "{method} {} {headers:?}", targets.1);
    r
}

/// go-fastdfs' `attachment;filename=X` against our RFC 6266 form of the same name
/// (docs/DEFECTS.md #12): our quoted `filename` is the name with `"`, `\` and `;` as `_`.
fn same_disposition(go: Option<&str>, rs: Option<&str>, what: &str) {
    match (go, rs) {
        (Some(g), Some(r)) => match g.strip_prefix("attachment;filename=") {
            Some(name) => {
                let quoted = name.replace(['"', '\\', ';'], "_");
                assert!(
                    r.starts_with("attachment; ")
                        && r.contains(&format!("filename=\"{quoted}\""))
                        && r.contains("filename*=UTF-8''"),
                    "{what}: go {g:?} / rs {r:?}"
                );
            }
            None => assert_eq!(g, r, "{what}"),
        },
        (g, r) => assert_eq!(g, r, "{what}"),
    }
}

/// Both nodes (their bases) serve `content` whole at their path with each of `queries`, with
/// the same Content-Type and the same attachment name (as [`same_disposition`]).
fn served_alike(bases: (&str, &str), (gp, rp): (&str, &str), queries: &[&str], content: &[u8]) {
    for q in queries {
        let gv = get(bases.0, &format!("{gp}{q}"));
        let rv = get(bases.1, &format!("{rp}{q}"));
        let what = format!("{rp}{q}");
        assert_eq!(
            (gv.status, gv.body.as_slice()),
            (200, content),
            "{what}: go"
        );
        assert_eq!(
            (rv.status, rv.body.as_slice()),
            (200, content),
            "{what}: rs"
        );
        assert_eq!(
            gv.header("Content-Type"),
            rv.header("Content-Type"),
            "{what}"
        );
        same_disposition(
            gv.header("Content-Disposition"),
            rv.header("Content-Disposition"),
            &what,
        );
    }
}

/// Both nodes alike but for Content-Disposition, which is compared as [`same_disposition`]
/// (a conditional GET's too, with its `headers`).
fn same_but_disposition(
    p: &Pair,
    method: &str,
    targets: (&str, &str),
    headers: &[(&str, &str)],
) -> View {
    let (g, r) = both(p, method, targets, headers, b"");
    let what = format!("{method} {} {headers:?}", targets.1);
    same_disposition(
        g.header("Content-Disposition"),
        r.header("Content-Disposition"),
        &what,
    );
    let cd = g.header("Content-Disposition").map(str::to_string);
    assert_eq!(
        g,
        r.clone().with("Content-Disposition", cd.as_deref()),
        "{what}"
    );
    r
}

/// A PNG of `w` x `h` pixels.
fn png(w: usize, h: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    zune_image::image::Image::from_u8(&pixels, w, h, zune_core::colorspace::ColorSpace::RGB)
        .write_to_vec(zune_image::codecs::ImageFormat::PNG)
        .unwrap()
}

/// A JPEG of `w` x `h` pixels.
fn jpeg(w: usize, h: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 5 % 241) as u8).collect();
    zune_image::image::Image::from_u8(&pixels, w, h, zune_core::colorspace::ColorSpace::RGB)
        .write_to_vec(zune_image::codecs::ImageFormat::JPEG)
        .unwrap()
}

const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn dims(bytes: &[u8]) -> (usize, usize) {
    let cursor = zune_core::bytestream::ZCursor::new(bytes);
    zune_image::image::Image::read(cursor, zune_core::options::DecoderOptions::default())
        .unwrap_or_else(|e| panic!("not an image ({e:?}): {} bytes", bytes.len()))
        .dimensions()
}

/// `download`, `name` and HEAD on a plain file, and the URLs that are no file: the same
/// answers from both, but for the deliberate differences named.
#[test]
fn download_and_name_parameters_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    let text = b"hello world, a text file for the parameters\n";
    let (g, r) = upload_both(&p, "params.txt", text);
    for method in ["GET", "HEAD"] {
        for q in [
            "",
            "?download=0",
            "?download=1",
            "?download=2",
            "?download=",
            "?download=true",
            "?name=a%20b.txt",
            "?name=a+b.txt&download=1",
            "?name=%E4%B8%AD%E6%96%87.txt&download=1",
            "?name=%22quoted%22.txt",
            "?name=a%2Fb.txt",
            "?name=report.txt&download=0",
            "?download=0&name=x.txt&download=1",
        ] {
            let v = same_but_disposition(&p, method, (&format!("{g}{q}"), &format!("{r}{q}")), &[]);
            assert_eq!(v.status, 200, "{method} {q}");
            assert!(v.last_modified, "{method} {q}");
            if method == "GET" {
                assert_eq!(v.body, text, "{q}");
            }
        }
    }
    // Conditional requests: the same 304 (no Content-Type, RFC 9110 §15.4.5, but a
    // download's Content-Disposition), 412 and If-Range answers.
    let future = [("If-Modified-Since", "Mon, 01 Jan 2035 00:00:00 GMT")];
    let past = "Mon, 01 Jan 2001 00:00:00 GMT";
    for q in ["", "?download=0", "?name=n.txt"] {
        let v = same_but_disposition(&p, "GET", (&format!("{g}{q}"), &format!("{r}{q}")), &future);
        assert_eq!((v.status, v.header("Content-Type")), (304, None), "{q}");
        let v = same_but_disposition(
            &p,
            "GET",
            (&format!("{g}{q}"), &format!("{r}{q}")),
            &[("If-Modified-Since", past)],
        );
        assert_eq!(v.status, 200, "{q}");
        let v = same_but_disposition(
            &p,
            "GET",
            (&format!("{g}{q}"), &format!("{r}{q}")),
            &[("Range", "bytes=0-3"), ("If-Range", past)],
        );
        assert_eq!((v.status, v.body.as_slice()), (200, &text[..]), "{q}");
    }
    let (gv, rv) = both(&p, "GET", (&g, &r), &[("If-Unmodified-Since", past)], b"");
    assert_eq!((gv.status, rv.status), (412, 412));
    // A file's name with a trailing slash names nothing (go-fastdfs' stat of it fails): an
    // empty 404 from both, also once the file is cached.
    for q in ["/", "/?download=0", "/?width=10"] {
        let v = same(&p, "GET", (&format!("{g}{q}"), &format!("{r}{q}")), &[]);
        assert_eq!((v.status, v.body.len()), (404, 0), "{r}{q}");
    }
    // `name=` empty: go-fastdfs sends `attachment;filename=` (an empty, invalid filename
    // parameter, RFC 6266 §4.1), we `attachment` alone (docs/DEFECTS.md #12).
    let q = "?name=";
    let (gv, rv) = get_both(&p, (&g, &r), q);
    assert_eq!(
        gv.header("Content-Disposition"),
        Some("attachment;filename=")
    );
    assert_eq!(rv.header("Content-Disposition"), Some("attachment"));
    assert_eq!(
        gv,
        rv.with("Content-Disposition", Some("attachment;filename="))
    );
    // A percent-encoded path names the same file.
    let enc = |path: &str| path.replace("/default/", "/%64efault/");
    let v = same(&p, "GET", (&enc(&g), &enc(&r)), &[]);
    assert_eq!(v.body, text);
    // `..` anywhere in the raw request URI, the query included: both refuse the download
    // (401, empty), before the index page too.
    for q in ["?name=a..b.txt", "?x=.."] {
        let (gv, rv) = get_both(&p, (&g, &r), q);
        assert_eq!((gv.status, gv.body.len()), (401, 0), "{q}");
        assert_eq!((rv.status, rv.body.len()), (401, 0), "{q}");
    }
    for target in ["/group1/?v=..", "/group1/a..b.txt", "/?x=.."] {
        let (gv, rv) = both(&p, "GET", (target, target), &[], b"");
        assert_eq!((gv.status, gv.body.len()), (401, 0), "{target}");
        assert_eq!((rv.status, rv.body.len()), (401, 0), "{target}");
    }
    // The index and the URLs that name nothing. go-fastdfs' index page is its own (compared
    // with its template in tests/differential_admin.rs): the status and type here.
    for target in ["/", "/group1", "/group1/"] {
        let (gv, rv) = both(&p, "GET", (target, target), &[], b"");
        assert_eq!(
            (gv.status, gv.header("Content-Type")),
            (200, Some("text/html; charset=utf-8"))
        );
        assert_eq!(
            (rv.status, rv.header("Content-Type")),
            (gv.status, gv.header("Content-Type")),
            "{target}"
        );
    }
    // With a query string, go-fastdfs' index is no index (it compares the raw URI): `/?v=1`
    // is Go's 404 page, `/group1?v=1` an empty 404, `/group1/?v=1` the listing of `files/`
    // itself (`_big/`, `_tmp/`, the scenes). We serve the index page whatever the query
    // (docs/DEFECTS.md #45).
    for (target, go_status) in [("/?v=1", 404), ("/group1?v=1", 404), ("/group1/?v=1", 200)] {
        let (gv, rv) = both(&p, "GET", (target, target), &[], b"");
        assert_eq!(gv.status, go_status, "{target}");
        assert_eq!(
            (rv.status, rv.header("Content-Type")),
            (200, Some("text/html; charset=utf-8")),
            "{target}"
        );
        assert!(rv.text().contains("<html"), "{target}");
    }
    let (gv, _) = both(&p, "GET", ("/group1/?v=1", "/group1/?v=1"), &[], b"");
    assert!(gv.text().contains("<a href=\"_tmp/\">"), "{}", gv.text());
    for target in [
        "/group1/default/20200101/00/00/1/none.txt",
        "/group1/nope",
        "/group1/default/nope/",
        "/group1/%6Eope.txt",
        "/group1/haystack/1/100,0,5,.txt",
    ] {
        let v = same(&p, "GET", (target, target), &[]);
        assert_eq!((v.status, v.body.len()), (404, 0), "{target}");
    }
}

/// Range variants on a plain file: the same 206s (multipart parts compared without their
/// random boundary); deliberate differences for malformed and empty ranges.
#[test]
fn ranges_on_plain_files_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    let text = b"0123456789abcdefghijklmnopqrstuvwxyz\n";
    let (g, r) = upload_both(&p, "ranges.txt", text);
    let (g, r) = (format!("{g}?download=0"), format!("{r}?download=0"));
    for range in [
        "bytes=0-4",
        "bytes=-5",
        "bytes=30-",
        "bytes=0-",
        "bytes=5-1000",
        "bytes=",
        "bytes=-100",
    ] {
        let v = same(&p, "GET", (&g, &r), &[("Range", range)]);
        assert!(matches!(v.status, 200 | 206), "{range}: {}", v.status);
    }
    // Several ranges: multipart/byteranges with the same parts (Go writes each part's
    // Content-Range before its Content-Type, we the other way round; clients read either).
    for range in ["bytes=0-2,5-7", "bytes=0-0,-1"] {
        let (gv, rv) = both(&p, "GET", (&g, &r), &[("Range", range)], b"");
        assert_eq!((gv.status, rv.status), (206, 206), "{range}");
        let parts = |v: &View| {
            let ct = v.header("Content-Type").unwrap();
            let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
            let mut parts: Vec<(Vec<String>, String)> = v
                .text()
                .split(&format!("--{boundary}"))
                .filter(|s| s.contains("\r\n\r\n"))
                .map(|s| {
                    let (head, body) = s.split_once("\r\n\r\n").unwrap();
                    let mut h: Vec<String> = head
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect();
                    h.sort();
                    (h, body.trim_end_matches("\r\n").to_string())
                })
                .collect();
            parts.sort();
            parts
        };
        assert_eq!(parts(&gv), parts(&rv), "{range}");
        assert_eq!(parts(&rv).len(), 2, "{range}");
    }
    // Beyond the end: 416 with `Content-Range: bytes */len` from both; go-fastdfs adds a
    // text body (docs/DEFECTS.md #40).
    let (gv, rv) = both(&p, "GET", (&g, &r), &[("Range", "bytes=100-")], b"");
    assert_eq!(
        (gv.status, gv.header("Content-Range")),
        (416, Some("bytes */37"))
    );
    assert_eq!(
        (rv.status, rv.header("Content-Range"), rv.body.len()),
        (416, Some("bytes */37"), 0)
    );
    // Malformed ranges: go-fastdfs 416 `invalid range`, we ignore them and send the file
    // (RFC 9110 §14.2 lets a server ignore a Range it cannot parse; docs/DEFECTS.md #45).
    for range in ["bytes=abc", "bytes=5-2", "items=0-2"] {
        let (gv, rv) = both(&p, "GET", (&g, &r), &[("Range", range)], b"");
        assert_eq!(
            (gv.status, gv.text().as_str()),
            (416, "invalid range\n"),
            "{range}"
        );
        assert_eq!((rv.status, rv.body.as_slice()), (200, &text[..]), "{range}");
    }
    // `bytes=-0` (the last zero bytes): go-fastdfs answers 206 with the inverted
    // `Content-Range: bytes 37-36/37`; it is unsatisfiable (RFC 9110 §14.1.3), 416 here
    // (docs/DEFECTS.md #45).
    let (gv, rv) = both(&p, "GET", (&g, &r), &[("Range", "bytes=-0")], b"");
    assert_eq!(
        (gv.status, gv.header("Content-Range")),
        (206, Some("bytes 37-36/37"))
    );
    assert_eq!(
        (rv.status, rv.header("Content-Range")),
        (416, Some("bytes */37"))
    );
}

/// A directory with `show_dir` on: Go's listing, entries sorted by name and linked as
/// `url.URL{Path: name}` writes them (`./` only before a first segment with a `:`).
#[test]
fn directory_listings_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({"show_dir": true})) else {
        return;
    };
    for files in [p.go.dir.path().join("files"), p.rs.dir.join("files")] {
        let d = files.join("listed");
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::create_dir_all(d.join("20261207")).unwrap();
        for name in [
            "a.txt", "b c.txt", "x:y.txt", "a-b.txt", "&amp.txt", "é.txt",
        ] {
            std::fs::write(d.join(name), b"listed").unwrap();
        }
    }
    let (gv, rv) = both(&p, "GET", ("/group1/listed/", "/group1/listed/"), &[], b"");
    assert_eq!(gv.status, 200);
    // Go writes the href unescaped for HTML: `href="&amp.txt"`, which an HTML parser reads
    // as `&.txt`; we escape it (docs/DEFECTS.md #45).
    let ours = "<a href=\"&amp;amp.txt\">&amp;amp.txt</a>";
    let gos = "<a href=\"&amp.txt\">&amp;amp.txt</a>";
    assert!(gv.text().contains(gos), "{}", gv.text());
    assert!(rv.text().contains(ours), "{}", rv.text());
    assert_eq!(rv.text().replace(ours, gos), gv.text());
    assert_eq!(rv.header("Content-Type"), gv.header("Content-Type"));
    // Go's file server answers after go-fastdfs set its download headers: the listing goes out
    // as an attachment (a browser saves it) with the directory's Last-Modified. We send the
    // listing as a page (docs/DEFECTS.md #45).
    assert_eq!(gv.header("Content-Disposition"), Some("attachment"));
    assert_eq!(rv.header("Content-Disposition"), None);
    // Without the trailing slash: the same redirect.
    let (gv, rv) = both(&p, "GET", ("/group1/listed", "/group1/listed"), &[], b"");
    assert_eq!((gv.status, gv.header("Location")), (301, Some("listed/")));
    assert_eq!((rv.status, rv.header("Location")), (301, Some("listed/")));
}

/// `width`/`height` on PNG, JPEG, GIF and text: the same status, type and dimensions
/// (the encoders differ, so the bytes do).
#[test]
fn resize_parameters_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({})) else {
        return;
    };
    let (gp, rp) = upload_both(&p, "r.png", &png(40, 20));
    let (gj, rj) = upload_both(&p, "r.jpg", &jpeg(40, 20));
    for (g, r) in [(&gp, &rp), (&gj, &rj)] {
        for (q, want) in [
            ("?width=10", (10, 5)),
            ("?height=5&download=0", (10, 5)),
            ("?width=10&height=10&download=0", (10, 10)),
            ("?width=0&height=0&download=0", (40, 20)),
            ("?width=abc&download=0", (40, 20)),
        ] {
            let (gv, rv) = get_both(&p, (g, r), q);
            let what = format!("{r}{q}");
            assert_eq!((gv.status, rv.status), (200, 200), "{what}");
            for h in ["Content-Type", "Content-Disposition"] {
                assert_eq!(gv.header(h), rv.header(h), "{what}: {h}");
            }
            assert_eq!(dims(&gv.body), want, "{what}: go");
            assert_eq!(dims(&rv.body), want, "{what}: rs");
        }
    }
    // A GIF: go-fastdfs answers an empty 200 (its decoder lacks GIF), we the GIF unchanged
    // (docs/DEFECTS.md #32).
    let (gg, rg) = upload_both(&p, "r.gif", GIF);
    let q = "?width=10&download=0";
    let (gv, rv) = get_both(&p, (&gg, &rg), q);
    assert_eq!((gv.status, gv.body.len()), (200, 0));
    assert_eq!((rv.status, rv.body.as_slice()), (200, GIF));
    // A negative size: go-fastdfs fails with an empty 500, we refuse it with 400 and the
    // envelope (docs/DEFECTS.md #31).
    let q = "?width=-1&download=0";
    let (gv, rv) = get_both(&p, (&gp, &rp), q);
    assert_eq!(gv.status, 500);
    assert_eq!(rv.status, 400);
    assert!(rv.text().contains("\"fail\""), "{}", rv.text());
}

/// A locator's offset, size and extension made into other ones.
type Tamper = dyn Fn(u64, u64, &str) -> String;

/// A merged small file's URL from its upload result; the locator's parts.
fn locator(path: &str) -> (String, u64, u64, String) {
    let (dir, last) = path.rsplit_once('/').unwrap();
    let parts: Vec<&str> = last.split(',').collect();
    assert_eq!(parts.len(), 4, "{path}");
    (
        format!("{dir}/{}", parts[0]),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
        parts[3].to_string(),
    )
}

/// Merged small files (`enable_merge_small_file` on both): the URLs go-fastdfs returns, with
/// `download`, `name` (which go-fastdfs passes through its special-character filter for these
/// files, whatever `enable_trim_file_name_special_char` says), HEAD and resize, answered alike
/// but for what we serve on purpose.
#[test]
fn merged_small_files_match_go_fastdfs() {
    let Some(p) = Pair::start_same(json!({"enable_merge_small_file": true})) else {
        return;
    };
    let text = b"merged small file, served from its container\n";
    let (g, r) = upload_both(&p, "small.txt", text);
    assert!(
        g.contains("/haystack/") && r.contains("/haystack/"),
        "{g} / {r}"
    );
    for method in ["GET", "HEAD"] {
        for q in [
            "",
            "?download=0",
            "?download=1",
            "?name=plain.txt&download=1",
            "?name=my%20file-(1)%23x.txt",
            "?name=a%20b%2Fc.txt",
            "?name=%E4%B8%AD%20%E6%96%87.txt",
            "?name=%22q%22.txt",
        ] {
            let (gv, rv) = both(
                &p,
                method,
                (&format!("{g}{q}"), &format!("{r}{q}")),
                &[],
                b"",
            );
            let what = format!("{method} {r}{q}");
            same_disposition(
                gv.header("Content-Disposition"),
                rv.header("Content-Disposition"),
                &what,
            );
            // We serve a merged file like any file: Accept-Ranges and Last-Modified
            // (docs/DEFECTS.md #46).
            let cd = gv.header("Content-Disposition").map(str::to_string);
            let rv = rv.with("Content-Disposition", cd.as_deref());
            assert_eq!(
                (rv.header("Accept-Ranges"), rv.last_modified),
                (Some("bytes"), true),
                "{what}"
            );
            assert_eq!(
                gv,
                View {
                    last_modified: false,
                    ..rv.with("Accept-Ranges", None)
                },
                "{what}"
            );
            if method == "GET" {
                assert_eq!(gv.body, text, "{what}");
            }
        }
    }
    // A size asked of a merged file that is no image: go-fastdfs answers an empty 200, we
    // the file unchanged (docs/DEFECTS.md #32).
    let q = "?width=10&download=0";
    let (gv, rv) = get_both(&p, (&g, &r), q);
    assert_eq!((gv.status, gv.body.len()), (200, 0));
    assert_eq!((rv.status, rv.body.as_slice()), (200, &text[..]));
    // With a trailing slash: no file, an empty 404 from both.
    let v = same(&p, "GET", (&format!("{g}/"), &format!("{r}/")), &[]);
    assert_eq!((v.status, v.body.len()), (404, 0));
    // A Range: go-fastdfs ignores it (200, the whole file: a resumed download starts over),
    // we answer 206 (docs/DEFECTS.md #46).
    let q = format!("{g}?download=0");
    let (gv, rv) = both(
        &p,
        "GET",
        (&q, &format!("{r}?download=0")),
        &[("Range", "bytes=0-5")],
        b"",
    );
    assert_eq!((gv.status, gv.body.as_slice()), (200, &text[..]));
    assert_eq!(
        (rv.status, rv.body.as_slice(), rv.header("Content-Range")),
        (206, &text[..6], Some("bytes 0-5/45"))
    );
    // An image among merged files is resized by both.
    let (gp, rp) = upload_both(&p, "m.png", &png(40, 20));
    let q = "?width=10&download=0";
    let (gv, rv) = get_both(&p, (&gp, &rp), q);
    assert_eq!((gv.status, rv.status), (200, 200));
    assert_eq!(gv.header("Content-Type"), rv.header("Content-Type"));
    assert_eq!((dims(&gv.body), dims(&rv.body)), ((10, 5), (10, 5)));
    // A `/` in the query: go-fastdfs parses the locator from the raw URI with its query and
    // finds nothing (404), we from the path (docs/DEFECTS.md #33).
    let q = "?download=0&from=a/b";
    let (gv, rv) = get_both(&p, (&g, &r), q);
    assert_eq!((gv.status, gv.body.len()), (404, 0));
    assert_eq!((rv.status, rv.body.as_slice()), (200, &text[..]));
    // Locators that name no merged file: empty 404s from both (no Content-Type either).
    let tamper = |path: &str, f: &Tamper| {
        let (container, offset, size, ext) = locator(path);
        format!("{container},{}", f(offset, size, &ext))
    };
    let cases: [&Tamper; 4] = [
        &|o, s, e| format!("{},{},{e}", o + 1, s - 1),
        &|o, s, e| format!("{o},{},{e}", s + 5),
        &|_, s, e| format!("-1,{s},{e}"),
        &|o, _, e| format!("{o},2000000,{e}"),
    ];
    for f in cases {
        let v = same(&p, "GET", (&tamper(&g, f), &tamper(&r, f)), &[]);
        assert_eq!((v.status, v.body.len()), (404, 0), "{}", tamper(&r, f));
    }
    for (gt, rt) in [
        (locator(&g).0, locator(&r).0),
        (
            "/group1/haystack/1/".to_string(),
            "/group1/haystack/1/".to_string(),
        ),
        (
            "/group1/haystack/".to_string(),
            "/group1/haystack/".to_string(),
        ),
    ] {
        let v = same(&p, "GET", (&gt, &rt), &[]);
        assert_eq!((v.status, v.body.len()), (404, 0), "{rt}");
    }
    // The locator's numbers with another extension, without one, or shorter: go-fastdfs
    // reads the container at the URL's numbers (a shorter size serves a prefix of the file,
    // another offset whatever is there), we serve only what a record names
    // (docs/DEFECTS.md #46).
    let cases: [&Tamper; 3] = [
        &|o, s, _| format!("{o},{s},.bin"),
        &|o, s, _| format!("{o},{s}"),
        &|o, s, e| format!("{o},{},{e}", s - 5),
    ];
    for f in cases {
        let (gv, rv) = both(&p, "GET", (&tamper(&g, f), &tamper(&r, f)), &[], b"");
        assert_eq!(gv.status, 200, "{}", tamper(&g, f));
        assert!(text.starts_with(&gv.body) && !gv.body.is_empty());
        assert_eq!((rv.status, rv.body.len()), (404, 0), "{}", tamper(&r, f));
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OCTETS: (&str, &str) = ("Content-Type", "application/offset+octet-stream");
const ENDPOINT: &str = "/group1/big/upload/";

/// A tus answer as compared: status and the tus headers.
fn tus_view(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, Option<String>)>) {
    let addr = base.trim_start_matches("http://");
    let mut text = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    let out = raw(addr, &bytes, Duration::from_secs(20));
    let (r, _) = parse_head(&out).unwrap_or_else(|| panic!("{method} {target}: no answer"));
    let shown = [
        "Tus-Resumable",
        "Tus-Version",
        "Upload-Offset",
        "Upload-Length",
        "Upload-Metadata",
        "Upload-Defer-Length",
        "Cache-Control",
    ];
    let mut h: Vec<(String, Option<String>)> = shown
        .iter()
        .map(|n| (n.to_string(), r.header(n).map(str::to_string)))
        .collect();
    let location = r.header("Location").map(|l| l.replace(base, "<BASE>"));
    let location = location.map(|l| match l.rsplit_once('/') {
        Some((head, id)) if id.len() == 32 => format!("{head}/<ID>"),
        _ => l,
    });
    h.push(("Location".into(), location));
    (r.status, h)
}

/// Creates an upload on `base`: its path.
fn create(base: &str, headers: &[(&str, &str)]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut text = format!("POST {ENDPOINT} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    let out = raw(addr, text.as_bytes(), Duration::from_secs(20));
    let (r, _) = parse_head(&out).unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&out));
    let location = r.header("Location").unwrap();
    location.strip_prefix(base).unwrap().to_string()
}

/// tus (`enable_tus` on both): OPTIONS, creation, HEAD and PATCH answer with the same
/// statuses and tus headers; the bodies of errors are tusd's text there and our envelope
/// (docs/PROTOCOL.md §10).
#[test]
fn tus_requests_are_answered_as_go_fastdfs_answers_them() {
    let Some(p) = Pair::start_same(json!({"enable_tus": true})) else {
        return;
    };
    let (go, rs) = (p.go.base(), p.rs.base());
    let same_tus = |method: &str, targets: (&str, &str), headers: &[(&str, &str)], body: &[u8]| {
        let g = tus_view(&go, method, targets.0, headers, body);
        let r = tus_view(&rs, method, targets.1, headers, body);
        assert_eq!(g, r, "{method} {} {headers:?}", targets.1);
        r
    };
    // OPTIONS: we offer checksum and expiration besides go-fastdfs' extensions, and say our
    // size limit (docs/PROTOCOL.md §6).
    let g = tus_view(&go, "OPTIONS", ENDPOINT, &[TUS], b"");
    assert_eq!(g.0, 200);
    let o = exchange(&rs, "OPTIONS", ENDPOINT, &[TUS], b"");
    assert_eq!(o.status, 200);
    // Creation.
    let name = format!("filename {}", b64("tus-diff.txt"));
    for headers in [
        vec![TUS, ("Upload-Length", "5")],
        vec![TUS, ("Upload-Defer-Length", "1")],
        vec![
            TUS,
            ("Upload-Length", "5"),
            ("Upload-Metadata", name.as_str()),
        ],
        vec![TUS, ("Upload-Length", "5"), ("Upload-Metadata", "filename")],
    ] {
        let r = same_tus("POST", (ENDPOINT, ENDPOINT), &headers, b"");
        assert_eq!(r.0, 201, "{headers:?}");
    }
    for headers in [
        vec![TUS],
        vec![TUS, ("Upload-Length", "-1")],
        vec![TUS, ("Upload-Length", "5"), ("Upload-Defer-Length", "1")],
        vec![TUS, ("Upload-Defer-Length", "2")],
    ] {
        let r = same_tus("POST", (ENDPOINT, ENDPOINT), &headers, b"");
        assert_eq!(r.0, 400, "{headers:?}");
    }
    // Without `Tus-Resumable`: 412 from both, with `Tus-Version` from us (docs/DEFECTS.md #41).
    let g = tus_view(&go, "POST", ENDPOINT, &[("Upload-Length", "5")], b"");
    let r = tus_view(&rs, "POST", ENDPOINT, &[("Upload-Length", "5")], b"");
    assert_eq!((g.0, r.0), (412, 412));
    // Metadata that is not base64: tusd drops the pair and creates the upload (the file
    // then loses its name); we refuse it (docs/DEFECTS.md #47). An empty upload: tusd
    // creates it and stores an empty file; we refuse it (docs/DEFECTS.md #19).
    for headers in [
        vec![
            TUS,
            ("Upload-Length", "5"),
            ("Upload-Metadata", "filename !!!"),
        ],
        vec![TUS, ("Upload-Length", "0")],
    ] {
        let g = tus_view(&go, "POST", ENDPOINT, &headers, b"");
        let r = tus_view(&rs, "POST", ENDPOINT, &headers, b"");
        assert_eq!((g.0, r.0), (201, 400), "{headers:?}");
    }
    // An upload written in two PATCHes, with the mistakes clients make in between.
    let meta = format!("filename {}", b64("two-parts.txt"));
    let headers = [("Upload-Length", "17"), ("Upload-Metadata", meta.as_str())];
    let (gu, ru) = (create(&go, &headers), create(&rs, &headers));
    let u = (gu.as_str(), ru.as_str());
    let r = same_tus("HEAD", u, &[TUS], b"");
    assert_eq!(r.0, 200);
    assert_eq!(r.1[2], ("Upload-Offset".into(), Some("0".into())));
    assert_eq!(r.1[6], ("Cache-Control".into(), Some("no-store".into())));
    let at = |offset: &'static str| [TUS, OCTETS, ("Upload-Offset", offset)];
    assert_eq!(same_tus("PATCH", u, &at("3"), b"abc").0, 409);
    assert_eq!(same_tus("PATCH", u, &[TUS, OCTETS], b"abc").0, 400);
    assert_eq!(
        same_tus("PATCH", u, &at("0"), b"0123456789abcdefXYZ").0,
        413
    );
    assert_eq!(
        same_tus("HEAD", u, &[TUS], b"").1[2].1.as_deref(),
        Some("0")
    );
    // Another Content-Type: tusd 400, tus 1.0.0's 415 here (docs/DEFECTS.md #47).
    let wrong = [TUS, ("Content-Type", "text/plain"), ("Upload-Offset", "0")];
    let g = tus_view(&go, "PATCH", u.0, &wrong, b"abc");
    let r = tus_view(&rs, "PATCH", u.1, &wrong, b"abc");
    assert_eq!((g.0, r.0), (400, 415));
    let r = same_tus("PATCH", u, &at("0"), b"two parts");
    assert_eq!((r.0, r.1[2].1.as_deref()), (204, Some("9")));
    assert_eq!(
        same_tus("HEAD", u, &[TUS], b"").1[2].1.as_deref(),
        Some("9")
    );
    let r = same_tus("PATCH", u, &at("9"), b" of tus!");
    assert_eq!((r.0, r.1[2].1.as_deref()), (204, Some("17")));
    // Termination of an unfinished upload, then it is gone for both.
    let (gu, ru) = (
        create(&go, &[("Upload-Length", "10")]),
        create(&rs, &[("Upload-Length", "10")]),
    );
    let u = (gu.as_str(), ru.as_str());
    assert_eq!(same_tus("PATCH", u, &at("0"), b"abc").0, 204);
    // GET of an unfinished upload: go-fastdfs fails with 500 (`leveldb: not found`), we
    // answer 404 (docs/DEFECTS.md #23, #31).
    let g = tus_view(&go, "GET", u.0, &[], b"");
    let r = tus_view(&rs, "GET", u.1, &[], b"");
    assert_eq!((g.0, r.0), (500, 404));
    assert_eq!(same_tus("DELETE", u, &[TUS], b"").0, 204);
    assert_eq!(same_tus("HEAD", u, &[TUS], b"").0, 404);
    assert_eq!(same_tus("PATCH", u, &at("3"), b"def").0, 404);
    let unknown = format!("{ENDPOINT}{}", "0".repeat(32));
    for method in ["HEAD", "PATCH", "DELETE"] {
        let h: &[(&str, &str)] = if method == "PATCH" { &at("0") } else { &[TUS] };
        assert_eq!(
            same_tus(method, (&unknown, &unknown), h, b"x").0,
            404,
            "{method}"
        );
    }
    // A deferred length, declared by the first PATCH.
    let (gu, ru) = (
        create(&go, &[("Upload-Defer-Length", "1")]),
        create(&rs, &[("Upload-Defer-Length", "1")]),
    );
    let u = (gu.as_str(), ru.as_str());
    let r = same_tus("HEAD", u, &[TUS], b"");
    assert_eq!(
        (r.0, r.1[5].1.as_deref(), r.1[3].1.as_deref()),
        (200, Some("1"), None)
    );
    let declare = [TUS, OCTETS, ("Upload-Offset", "0"), ("Upload-Length", "6")];
    assert_eq!(same_tus("PATCH", u, &declare, b"abc").0, 204);
    let r = same_tus("HEAD", u, &[TUS], b"");
    assert_eq!(
        (r.1[2].1.as_deref(), r.1[3].1.as_deref()),
        (Some("3"), Some("6"))
    );
    // Forwarded headers: go-fastdfs builds `Location` from any client's X-Forwarded-Host
    // and -Proto; we only from a trusted proxy's (docs/DEFECTS.md #8), else from Host.
    let fwd = [
        TUS,
        ("Upload-Length", "3"),
        ("X-Forwarded-Host", "fwd.example"),
        ("X-Forwarded-Proto", "https"),
    ];
    let g = tus_view(&go, "POST", ENDPOINT, &fwd, b"");
    let r = tus_view(&rs, "POST", ENDPOINT, &fwd, b"");
    assert_eq!((g.0, r.0), (201, 201));
    let loc = |v: &(u16, Vec<(String, Option<String>)>)| v.1.last().unwrap().1.clone().unwrap();
    assert!(
        loc(&g).starts_with("https://fwd.example/group1/big/upload/"),
        "{}",
        loc(&g)
    );
    assert!(
        loc(&r).starts_with("<BASE>/group1/big/upload/"),
        "{}",
        loc(&r)
    );
    // Creation with the whole upload in its body.
    let meta = format!("filename {}", b64("with-body.txt"));
    let h = [
        TUS,
        OCTETS,
        ("Upload-Length", "4"),
        ("Upload-Metadata", meta.as_str()),
    ];
    assert_eq!(same_tus("POST", (ENDPOINT, ENDPOINT), &h, b"body").0, 201);
}

/// A completed tus upload: the record go-fastdfs keeps (FileInfo by the upload's id and by
/// the content's md5, `rename` the stored name), the file where it landed, and GET of the
/// upload's URL; GET by another key serves nothing here (docs/DEFECTS.md #23).
#[test]
fn a_completed_tus_upload_is_recorded_as_go_fastdfs_records_it() {
    let Some(p) = Pair::start_same(json!({"enable_tus": true})) else {
        return;
    };
    let (go, rs) = (p.go.base(), p.rs.base());
    let content = b"completed tus upload\n";
    let meta = format!("filename {}", b64("done.txt"));
    let headers = [("Upload-Length", "21"), ("Upload-Metadata", meta.as_str())];
    let (gu, ru) = (create(&go, &headers), create(&rs, &headers));
    let at0 = [TUS, OCTETS, ("Upload-Offset", "0")];
    for (base, u) in [(&go, &gu), (&rs, &ru)] {
        let (status, _) = tus_view(base, "PATCH", u, &at0, content);
        assert_eq!(status, 204, "{base}");
    }
    let md5 = md5_hex(content);
    let info = |base: &str, key: &str| -> Value {
        let v = get(base, &format!("/group1/get_file_info?md5={key}"));
        serde_json::from_slice(&v.body).unwrap()
    };
    // go-fastdfs completes in a background loop: wait for its record, under both keys (it
    // writes them one after the other; ours are committed before the last PATCH's answer).
    let gid = gu.rsplit('/').next().unwrap().to_string();
    let rid = ru.rsplit('/').next().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || [&gid, &md5]
            .iter()
            .all(|key| info(&go, key)["status"] == "ok")),
        "go-fastdfs did not complete: {}",
        p.go.log()
    );
    for (gkey, rkey) in [(gid.as_str(), rid.as_str()), (md5.as_str(), md5.as_str())] {
        let (mut g, mut r) = (info(&go, gkey), info(&rs, rkey));
        for v in [&mut g, &mut r] {
            let d = &mut v["data"];
            let stamp = d["timeStamp"].as_i64().unwrap();
            assert!(p.started <= stamp && stamp <= now(), "{d}");
            d["timeStamp"] = json!(0);
            let peers = d["peers"][0].as_str().unwrap().to_string();
            d["peers"] = json!([p.norm(if peers == go { &go } else { &rs }, &peers, None)]);
            let path = d["path"].as_str().unwrap().to_string();
            d["path"] = json!(p.norm("http://unused", &format!("{path}/"), None));
        }
        // The scene: go-fastdfs records "" for every tus upload, we the scene it was stored
        // in (docs/DEFECTS.md #22).
        assert_eq!(g["data"]["scene"], "", "{g}");
        assert_eq!(r["data"]["scene"], "default", "{r}");
        r["data"]["scene"] = json!("");
        assert_eq!(g, r, "get_file_info?md5={rkey}");
        assert_eq!(r["data"]["rename"], "done.txt");
        assert_eq!(r["data"]["md5"], md5.as_str());
    }
    let r = info(&rs, &md5);
    let stored =
        p.rs.dir
            .join(r["data"]["path"].as_str().unwrap())
            .join("done.txt");
    assert_eq!(std::fs::read(&stored).unwrap(), content);
    let g = info(&go, &md5);
    let stored =
        p.go.dir
            .path()
            .join(g["data"]["path"].as_str().unwrap())
            .join("done.txt");
    assert_eq!(std::fs::read(&stored).unwrap(), content);
    // GET of the upload's URL: the file from both. go-fastdfs writes the bytes inline (typed
    // by sniffing), we answer as a download of the stored file's path, with its checks and
    // default_download (docs/DEFECTS.md #23).
    let (gv, rv) = (get(&go, &gu), get(&rs, &ru));
    assert_eq!((gv.status, gv.body.as_slice()), (200, &content[..]));
    assert_eq!((rv.status, rv.body.as_slice()), (200, &content[..]));
    assert_eq!(rv.header("Content-Disposition"), Some("attachment"));
    // GET by the content's md5: go-fastdfs serves any stored file so, we nothing
    // (docs/DEFECTS.md #23).
    let by_md5 = format!("{ENDPOINT}{md5}");
    let (gv, rv) = (get(&go, &by_md5), get(&rs, &by_md5));
    assert_eq!((gv.status, gv.body.as_slice()), (200, &content[..]));
    assert_eq!(rv.status, 404);
    // With a `path`: go-fastdfs places a tus upload under its scene, `files/<scene>/<path>`
    // (a multipart upload's custom path is `files/<path>`).
    let content = b"tus upload with a path\n";
    let meta = format!("filename {},path {}", b64("in-path.txt"), b64("a.b/c"));
    let len = content.len().to_string();
    let headers = [
        ("Upload-Length", len.as_str()),
        ("Upload-Metadata", meta.as_str()),
    ];
    let (gu2, ru2) = (create(&go, &headers), create(&rs, &headers));
    for (base, u) in [(&go, &gu2), (&rs, &ru2)] {
        assert_eq!(tus_view(base, "PATCH", u, &at0, content).0, 204, "{base}");
    }
    let md5 = md5_hex(content);
    assert!(
        eventually(Duration::from_secs(10), || info(&go, &md5)["status"]
            == "ok"),
        "go-fastdfs did not complete: {}",
        p.go.log()
    );
    let (g, r) = (info(&go, &md5), info(&rs, &md5));
    assert_eq!(g["data"]["path"], "files/default/ab/c", "{g}");
    assert_eq!(r["data"]["path"], g["data"]["path"], "{r}");
    // The name: go-fastdfs stores a tus upload's `filename` as it is, we as a multipart
    // upload's name, through the special-character filter when
    // enable_trim_file_name_special_char is on (docs/DEFECTS.md #22).
    assert_eq!(g["data"]["rename"], "in-path.txt", "{g}");
    assert_eq!(r["data"]["rename"], "inpath.txt", "{r}");
    let stored = p.rs.dir.join("files/default/ab/c/inpath.txt");
    assert_eq!(std::fs::read(&stored).unwrap(), content);
    // HEAD of the completed upload: go-fastdfs forgot it (404: a client that resumes it
    // uploads the whole file again), we report it whole (docs/DEFECTS.md #47).
    let g = tus_view(&go, "HEAD", &gu, &[TUS], b"");
    let r = tus_view(&rs, "HEAD", &ru, &[TUS], b"");
    assert_eq!((g.0, r.0), (404, 200));
    assert_eq!(r.1[2].1.as_deref(), Some("21"));
    // So a byte more is beyond its length (413) rather than an unknown upload (404), and
    // its termination (204) removes what is left of the upload, not the stored file
    // (docs/DEFECTS.md #47).
    let more = [TUS, OCTETS, ("Upload-Offset", "21")];
    let g = tus_view(&go, "PATCH", &gu, &more, b"x");
    let r = tus_view(&rs, "PATCH", &ru, &more, b"x");
    assert_eq!((g.0, r.0), (404, 413));
    let g = tus_view(&go, "DELETE", &gu, &[TUS], b"");
    let r = tus_view(&rs, "DELETE", &ru, &[TUS], b"");
    assert_eq!((g.0, r.0), (404, 204));
    let (gv, rv) = (get(&go, &gu), get(&rs, &ru));
    assert_eq!((gv.status, rv.status), (200, 200));
    assert_eq!(rv.body, b"completed tus upload\n");
}

/// A file this node lacks but its peer has (SPEC §10.4): both ask the peer and serve the
/// file; go-fastdfs streams it as `200` whatever was asked, we pass the peer's answer on
/// (a Range gets its 206: docs/PROTOCOL.md §10). Nobody has it: an empty 404 from both.
#[test]
fn a_file_only_a_peer_has_is_served_as_go_fastdfs_serves_it() {
    let Some(bin) = go_bin() else { return };
    let go_peer_ip = "127.0.0.30";
    let go_peer = GoNode::start_at(&bin, go_peer_ip, free_port(go_peer_ip), &[]);
    let go = GoNode::start_at(&bin, GO_IP, free_port(GO_IP), &[go_peer.base()]);
    let rs_peer = Server::start(json!({}));
    let rs = Server::start(json!({"peers": [rs_peer.base()]}));
    let content = b"only the peer has this file\n";
    let gp = upload_to(&go_peer.base(), "peer.txt", content)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let rp = upload_to(&rs_peer.base(), "peer.txt", content)["path"]
        .as_str()
        .unwrap()
        .to_string();
    // First, before either node has fetched the file for itself (both start to once asked).
    let range = [("Range", "bytes=0-3")];
    let gv = exchange(&go.base(), "GET", &format!("{gp}?download=0"), &range, b"");
    let rv = exchange(&rs.base(), "GET", &format!("{rp}?download=0"), &range, b"");
    assert_eq!((gv.status, gv.body.as_slice()), (200, &content[..]));
    assert_eq!((rv.status, rv.body.as_slice()), (206, &content[..4]));
    served_alike(
        (&go.base(), &rs.base()),
        (&gp, &rp),
        &["", "?download=0", "?name=peer%20copy.txt"],
        content,
    );
    let missing = "/group1/default/20200101/00/00/1/nobody.txt";
    let (gv, rv) = (get(&go.base(), missing), get(&rs.base(), missing));
    assert_eq!((gv.status, gv.body.len()), (404, 0));
    assert_eq!(rv, gv, "{missing}");
}

/// A merged small file only a peer has (merging on everywhere): both nodes find it on the
/// peer by its locator's path key and serve its content.
#[test]
fn a_merged_file_only_a_peer_has_is_served_as_go_fastdfs_serves_it() {
    let Some(bin) = go_bin() else { return };
    let merge = json!({"enable_merge_small_file": true});
    let go_peer_ip = "127.0.0.30";
    let go_peer = GoNode::start_configured(&bin, go_peer_ip, free_port(go_peer_ip), &[], &merge);
    let go = GoNode::start_configured(&bin, GO_IP, free_port(GO_IP), &[go_peer.base()], &merge);
    let rs_peer = Server::start(merge.clone());
    let rs = Server::start(json!({"enable_merge_small_file": true, "peers": [rs_peer.base()]}));
    let content = b"a merged file on the peer only\n";
    let path = |base: &str| {
        upload_to(base, "peer-merged.txt", content)["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (gp, rp) = (path(&go_peer.base()), path(&rs_peer.base()));
    assert!(
        gp.contains("/haystack/") && rp.contains("/haystack/"),
        "{gp} / {rp}"
    );
    served_alike(
        (&go.base(), &rs.base()),
        (&gp, &rp),
        &["?download=0", "", "?name=copy.txt"],
        content,
    );
}

/// A directory with `show_dir` off, with and without its slash, with an `index.html` or
/// without: go-fastdfs' `list dir deny` body from both (its 200, our 403: docs/DEFECTS.md
/// #31).
#[test]
fn directories_with_show_dir_off_are_refused_as_go_fastdfs_refuses_them() {
    let Some(p) = Pair::start_same(json!({"show_dir": false})) else {
        return;
    };
    for files in [p.go.dir.path().join("files"), p.rs.dir.join("files")] {
        std::fs::create_dir_all(files.join("closed/sub")).unwrap();
        std::fs::write(files.join("closed/a.txt"), b"closed").unwrap();
        std::fs::write(files.join("closed/sub/index.html"), b"<h1>sub</h1>").unwrap();
    }
    for target in [
        "/group1/closed/",
        "/group1/closed",
        "/group1/closed/sub/",
        "/group1/closed/sub/?download=0",
        "/group1/",
    ] {
        let (gv, rv) = both(&p, "GET", (target, target), &[], b"");
        if target == "/group1/" {
            // The index page, not a directory.
            assert_eq!((gv.status, rv.status), (200, 200), "{target}");
            continue;
        }
        assert_eq!(
            (gv.status, gv.text().as_str()),
            (200, "list dir deny"),
            "{target}"
        );
        assert_eq!((rv.status, rv.text()), (403, gv.text()), "{target}");
    }
    // The file in it is served as any file.
    let v = same(
        &p,
        "GET",
        ("/group1/closed/a.txt", "/group1/closed/a.txt"),
        &[],
    );
    assert_eq!((v.status, v.body.as_slice()), (200, &b"closed"[..]));
}

/// Download tokens on merged small files (go-fastdfs' formula, `download_token_secret`
/// empty: docs/DEFECTS.md #5): the token of the file's md5 opens its merged URL on both, a
/// missing or wrong one is refused with an empty 401.
#[test]
fn download_tokens_on_merged_files_are_checked_as_go_fastdfs_checks_them() {
    let cfg = json!({"download_use_token": true, "download_token_expire": 600,
                     "download_token_secret": "", "enable_merge_small_file": true});
    let Some(p) = Pair::start_same(cfg) else {
        return;
    };
    let content = b"a merged file behind a token\n";
    let (g, r) = upload_both(&p, "tok.txt", content);
    assert!(
        g.contains("/haystack/") && r.contains("/haystack/"),
        "{g} / {r}"
    );
    let md5 = md5_hex(content);
    let ts = now();
    let good = md5_hex(format!("{md5}{ts}").as_bytes());
    let non_admin = "127.0.0.5";
    for (q, code) in [
        (String::new(), 401),
        (format!("?token={good}&timestamp={ts}"), 200),
        (format!("?token={good}&timestamp={ts}&download=0"), 200),
        (format!("?token=bad&timestamp={ts}"), 401),
    ] {
        let (gc, gb) = get_from(non_admin, &format!("{}{g}{q}", p.go.base()));
        let (rc, rb) = get_from(non_admin, &format!("{}{r}{q}", p.rs.base()));
        assert_eq!((gc, rc), (code, code), "{q}");
        assert_eq!(gb, rb, "{q}");
        if code == 200 {
            assert_eq!(rb.as_bytes(), content);
        }
    }
}
