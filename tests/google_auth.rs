//! Google authenticator codes (issue 6, item 4 part): with `enable_google_auth`, scenes
//! configured as `name:SECRET` need a valid TOTP `code` to upload into (also when `scene` is
//! omitted and the default scene has a secret: docs/DEFECTS.md #15) and, for non-admins, to
//! download from (scene = first directory of the path, with or without the group prefix).
mod common;
use common::*;
use serde_json::json;

const SECRET: &str = "JBSWY3DPEHPK3PXP";

fn code_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fastdfs::totp::code(SECRET, now).unwrap()
}

/// Uploads through the route of the server's prefix setting.
fn upload_via(
    s: &Server,
    prefix: bool,
    name: &str,
    data: &[u8],
    fields: &[(&str, &str)],
) -> (u16, String) {
    let (ct, body) = multipart(fields, Some((name, data)));
    let route = if prefix { "/group1/upload" } else { "/upload" };
    match agent()
        .post(&s.url(route))
        .set("Content-Type", &ct)
        .send_bytes(&body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

fn server(prefix: bool) -> Server {
    // The code window is download_token_expire / 30 steps either side: absent, 0, and a code
    // made at the end of one 30 s step and checked in the next would be refused.
    Server::start(json!({
        "enable_google_auth": true,
        "download_token_expire": 60,
        "scenes": [format!("default:{SECRET}"), "open"],
        "support_group_manage": prefix
    }))
}

#[test]
fn uploads_into_a_scene_with_a_secret_need_a_valid_code_even_without_scene() {
    let s = server(true);
    let (code, body) = upload(&s, "a.txt", b"secret scene", &[("output", "json")]);
    assert_eq!(code, 401, "omitting scene must not skip the check: {body}");
    assert!(body.contains("invalid request,error google code"), "{body}");
    let (code, _) = upload(
        &s,
        "a.txt",
        b"secret scene",
        &[("output", "json"), ("code", "000000")],
    );
    assert_eq!(code, 401);
    let c = code_now();
    let (code, body) = upload(
        &s,
        "a.txt",
        b"secret scene",
        &[("output", "json"), ("code", &c)],
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = upload(
        &s,
        "b.txt",
        b"open scene",
        &[("output", "json"), ("scene", "open")],
    );
    assert_eq!(code, 200, "a scene without a secret needs no code: {body}");
}

#[test]
fn non_admin_downloads_from_a_scene_with_a_secret_need_a_code() {
    for prefix in [true, false] {
        let s = server(prefix);
        let c = code_now();
        let (code, body) = upload_via(
            &s,
            prefix,
            "a.txt",
            b"secret scene",
            &[("output", "json"), ("code", &c)],
        );
        assert_eq!(code, 200, "{body}");
        let path = serde_json::from_str::<serde_json::Value>(&body).unwrap()["path"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            status_from_non_admin(&s.url(&path), &[]),
            401,
            "prefix={prefix}"
        );
        assert_eq!(
            status_from_non_admin(&s.url(&format!("{path}?code={}", code_now())), &[]),
            200,
            "prefix={prefix}"
        );
        let (code, _) = call(agent().get(&s.url(&path)));
        assert_eq!(code, 200, "admins need no code");
        let (_, open) = upload_via(
            &s,
            prefix,
            "b.txt",
            b"open",
            &[("output", "json"), ("scene", "open")],
        );
        let open_path = serde_json::from_str::<serde_json::Value>(&open).unwrap()["path"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(status_from_non_admin(&s.url(&open_path), &[]), 200);
    }
}

#[test]
fn a_client_that_guesses_codes_is_stopped_after_ten_wrong_ones_and_others_are_not() {
    let s = server(true);
    let c = code_now();
    let (code, body) = upload(&s, "k.txt", b"kept", &[("output", "json"), ("code", &c)]);
    assert_eq!(code, 200, "{body}");
    let path = serde_json::from_str::<serde_json::Value>(&body).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    // A non-admin address guessing download codes: ten wrong ones are only wrong...
    let guesser = "127.0.0.78";
    for i in 0..10 {
        let wrong = format!(
            "{path}?code={:06}",
            (c.parse::<u32>().unwrap() + 500_000 + i) % 1_000_000
        );
        assert_eq!(status_from(guesser, &s.url(&wrong), &[]), 401, "guess {i}");
    }
    // ...then every code from it is refused unread, the right one too (429).
    let right = format!("{path}?code={}", code_now());
    assert_eq!(status_from(guesser, &s.url(&right), &[]), 429);
    // Another client is not held back.
    assert_eq!(status_from(NON_ADMIN_IP, &s.url(&right), &[]), 200);
    let (code, body) = upload(
        &s,
        "l.txt",
        b"more",
        &[("output", "json"), ("code", &code_now())],
    );
    assert_eq!(code, 200, "{body}");
}

#[test]
fn codes_guessed_from_many_addresses_stop_at_the_total_for_every_client() {
    let s = Server::start(json!({
        "enable_google_auth": true,
        "download_token_expire": 60,
        "scenes": [format!("default:{SECRET}")],
        "secret_guesses_max": 3,
        "secret_guess_window_s": 3
    }));
    let (code, body) = upload(
        &s,
        "t.txt",
        b"total",
        &[("output", "json"), ("code", &code_now())],
    );
    assert_eq!(code, 200, "{body}");
    let path = serde_json::from_str::<serde_json::Value>(&body).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = format!(
        "{path}?code={:06}",
        (code_now().parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    // One wrong code from each of three addresses: none is past its own bound...
    for i in 0..3 {
        assert_eq!(
            status_from(&format!("127.0.0.{}", 120 + i), &s.url(&wrong), &[]),
            401
        );
    }
    // ...but together they spent the total: a fourth address is refused unread, until the
    // window ends.
    let right = || format!("{path}?code={}", code_now());
    assert_eq!(status_from("127.0.0.130", &s.url(&right()), &[]), 429);
    assert!(eventually(std::time::Duration::from_secs(6), || {
        status_from("127.0.0.130", &s.url(&right()), &[]) == 200
    }));
}
