//! auth_url (issue 6, item 4): a small auth server started by the test decides uploads,
//! deletes and (with enable_download_auth) non-admin downloads. It sees the request's headers
//! and its form fields (go-fastdfs forwarded none: docs/DEFECTS.md #18); a pass is cached only
//! when the auth server allows it (Cache-Control: max-age); an unreachable auth server denies.
mod common;
use common::*;
use serde_json::{json, Value};

/// Answers by the form's auth_token: good -> "ok", json -> {"data":"ok"}, cache* -> "ok" with
/// Cache-Control: max-age=60, anything else -> "fail".
fn auth_server() -> (String, Calls) {
    sink("/auth", |body| {
        let token = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("auth_token="))
            .unwrap_or("");
        match token {
            "good" => (String::new(), "ok".into()),
            "json" => (
                String::new(),
                r#"{"data":"ok","message":"","status":"ok"}"#.into(),
            ),
            t if t.starts_with("cache") => ("Cache-Control: max-age=60\r\n".into(), "ok".into()),
            _ => (String::new(), "fail".into()),
        }
    })
}

fn upload_with(
    s: &Server,
    token: Option<&str>,
    fields: &[(&str, &str)],
    name: &str,
    data: &[u8],
) -> (u16, String) {
    let (ct, body) = multipart(fields, Some((name, data)));
    let mut r = agent()
        .post(&s.url("/group1/upload"))
        .set("Content-Type", &ct);
    if let Some(t) = token {
        r = r.set("Auth-Token", t);
    }
    match r.send_bytes(&body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn uploads_need_a_token_the_auth_server_accepts_and_it_sees_the_form_fields() {
    let (url, calls) = auth_server();
    let s = Server::start(json!({"auth_url": url}));
    let (code, body) = upload_with(&s, None, &[("output", "json")], "a.txt", b"no token");
    assert_eq!(code, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["message"].as_str(), v["status"].as_str()),
        (Some("auth fail"), Some(""))
    );
    assert!(
        calls.lock().unwrap().is_empty(),
        "no token: the auth server is not asked"
    );

    let (code, _) = upload_with(
        &s,
        Some("bad"),
        &[("output", "json"), ("auth_token", "bad")],
        "b.txt",
        b"bad token",
    );
    assert_eq!(code, 401);
    let (code, body) = upload_with(
        &s,
        Some("good"),
        &[
            ("output", "json"),
            ("auth_token", "good"),
            ("scene", "docs"),
        ],
        "c.txt",
        b"good",
    );
    assert_eq!(code, 200, "{body}");
    let (head, form) = calls.lock().unwrap().last().cloned().unwrap();
    assert!(
        head.to_ascii_lowercase().contains("auth-token: good"),
        "{head}"
    );
    assert!(head.starts_with("POST /auth HTTP/1.1"), "{head}");
    assert!(
        form.contains("auth_token=good")
            && form.contains("scene=docs")
            && form.contains("output=json"),
        "{form}"
    );
    let (code, _) = upload_with(
        &s,
        Some("json"),
        &[("output", "json"), ("auth_token", "json")],
        "d.txt",
        b"json answer",
    );
    assert_eq!(code, 200, "a JSON envelope with data ok passes");
    // Refused uploads leave nothing behind: only c.txt and d.txt are stored.
    fn names(d: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                names(&e.path(), out);
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut stored = Vec::new();
    names(&s.dir.join("files"), &mut stored);
    stored.sort();
    assert_eq!(stored, vec!["c.txt", "d.txt"]);
}

#[test]
fn deletes_and_downloads_are_checked_and_admins_download_freely() {
    let (url, _calls) = auth_server();
    let s = Server::start(json!({"auth_url": url, "enable_download_auth": true}));
    let (_, body) = upload_with(
        &s,
        Some("good"),
        &[("output", "json"), ("auth_token", "good")],
        "x.txt",
        b"protected",
    );
    let r: Value = serde_json::from_str(&body).unwrap();
    let (path, md5) = (r["path"].as_str().unwrap(), r["md5"].as_str().unwrap());
    let curl =
        |token: &str| status_from_non_admin(&s.url(path), &[&format!("Auth-Token: {token}")]);
    assert_eq!(curl("bad"), 401);
    assert_eq!(curl("good"), 200);
    let (code, _) = call(agent().get(&s.url(path)));
    assert_eq!(code, 200, "admins are exempt from download auth");
    let del = |token: &str| match agent()
        .get(&s.url(&format!("/group1/delete?md5={md5}")))
        .set("Auth-Token", token)
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        del("bad"),
        401,
        "auth_url applies to deletes, admins included"
    );
    assert_eq!(del("good"), 200);
}

#[test]
fn a_pass_is_cached_only_when_the_auth_server_allows_it() {
    let (url, calls) = auth_server();
    let s = Server::start(json!({"auth_url": url}));
    let count = || calls.lock().unwrap().len();
    for _ in 0..3 {
        let (code, _) = call(
            agent()
                .get(&s.url("/group1/upload?md5=abc&output=json"))
                .set("Auth-Token", "good"),
        );
        assert_eq!(code, 404, "allowed; unknown md5");
    }
    assert_eq!(count(), 3, "no Cache-Control: asked every time");
    for _ in 0..3 {
        let (code, _) = call(
            agent()
                .get(&s.url("/group1/upload?md5=abc&output=json"))
                .set("Auth-Token", "cache-me"),
        );
        assert_eq!(code, 404);
    }
    assert_eq!(count(), 4, "max-age=60: asked once");
    // The pass answered that question only: another md5 (another form), another route.
    let (code, _) = call(
        agent()
            .get(&s.url("/group1/upload?md5=def&output=json"))
            .set("Auth-Token", "cache-me"),
    );
    assert_eq!(code, 404);
    assert_eq!(count(), 5, "another question: asked again");
    let (code, _) = call(
        agent()
            .get(&s.url("/group1/delete?md5=0123456789abcdef0123456789abcdef"))
            .set("Auth-Token", "cache-me"),
    );
    assert_eq!(code, 404, "allowed; unknown md5");
    assert_eq!(count(), 6, "a delete is not an upload");
}

#[test]
fn a_cached_pass_for_one_scene_is_not_one_for_another() {
    // Passes `cache-scoped` only for scene=public, caching the answer for 60 s.
    let (url, calls) = sink("/auth", |body| {
        if body.contains("scene=public") {
            ("Cache-Control: max-age=60\r\n".into(), "ok".into())
        } else {
            (String::new(), "fail".into())
        }
    });
    let s = Server::start(json!({"auth_url": url, "scenes": ["public", "private"]}));
    let fields = |scene| vec![("output", "json"), ("scene", scene)];
    let (code, body) = upload_with(&s, Some("cache-scoped"), &fields("public"), "p.txt", b"p");
    assert_eq!(code, 200, "{body}");
    let (code, body) = upload_with(&s, Some("cache-scoped"), &fields("private"), "q.txt", b"q");
    assert_eq!(code, 401, "{body}");
    assert_eq!(
        calls.lock().unwrap().len(),
        2,
        "the private upload was asked about"
    );
}

#[test]
fn an_unreachable_auth_server_denies() {
    let port = free_port("127.0.0.1");
    let s = Server::start(json!({"auth_url": format!("http://127.0.0.1:{port}/auth")}));
    let (code, _) = upload_with(&s, Some("good"), &[("output", "json")], "a.txt", b"x");
    assert_eq!(code, 401);
}

#[test]
fn an_auth_url_with_userinfo_and_a_query_keeps_both() {
    // The URL parser is the http crate's: `user:password@` becomes Basic auth, `?query` stays
    // in the request target, and the Host header is the authority without the userinfo.
    let (url, calls) = auth_server();
    let with = url.replacen("http://", "http://app%40x:s%3Acret@", 1) + "?tenant=7";
    let s = Server::start(json!({ "auth_url": with }));
    let (code, body) = upload_with(&s, Some("good"), &[("output", "json")], "u.txt", b"u");
    assert_eq!(code, 200, "{body}");
    let calls = calls.lock().unwrap();
    let (head, _) = calls.last().expect("the auth server was asked");
    let request_line = head.lines().next().unwrap();
    assert_eq!(request_line, "POST /auth?tenant=7 HTTP/1.1", "{head}");
    let host = url.trim_start_matches("http://").trim_end_matches("/auth");
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("host: {host}"))),
        "{head}"
    );
    // base64("app@x:s:cret")
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("authorization: Basic YXBwQHg6czpjcmV0")),
        "{head}"
    );
}

#[test]
fn a_malformed_auth_url_or_peer_url_is_refused_at_start_with_the_key_named() {
    for (key, value) in [
        ("auth_url", json!("http://h:99999/auth")),
        ("peers", json!(["http://[::1/x"])),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port("127.0.0.1");
        let mut cfg = base_config("127.0.0.1", port, &json!({}));
        cfg[key] = value;
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/cfg.json"), cfg.to_string()).unwrap();
        let (code, out) = run_to_exit(dir.path(), &["server"], std::time::Duration::from_secs(20));
        assert_eq!(code, Some(1), "{key}: {out}");
        assert!(out.contains(key), "{key}: {out}");
    }
}
