//! Unit tests of the head parser.
use super::*;

fn parse(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_head(&mut BytesMut::from(bytes), &Limits::default())
}

fn ok(bytes: &[u8]) -> RequestHead {
    parse(bytes).expect("parse error").expect("incomplete")
}

fn err(bytes: &[u8]) -> HeadError {
    match parse(bytes) {
        Err(e) => e,
        Ok(other) => panic!("expected error, got {other:?}"),
    }
}

#[test]
fn simple_get() {
    let mut buf = BytesMut::from(
        &b"GET /group1/a.txt?x=1&y HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n"[..],
    );
    let h = parse_head(&mut buf, &Limits::default()).unwrap().unwrap();
    assert!(buf.is_empty());
    assert_eq!(h.method(), "GET");
    assert_eq!(h.target(), "/group1/a.txt?x=1&y");
    assert_eq!(h.path(), "/group1/a.txt");
    assert_eq!(h.query(), "x=1&y");
    assert_eq!(h.version(), Version::Http11);
    assert_eq!(h.header("host"), Some(&b"example"[..]));
    assert_eq!(h.header_str("USER-AGENT"), Some("t"));
    assert_eq!(h.header("missing"), None);
    assert_eq!(h.body(), BodyKind::None);
    assert!(h.keep_alive());
    assert!(!h.expect_continue());
    let all: Vec<_> = h.headers().collect();
    assert_eq!(
        all,
        vec![("Host", &b"example"[..]), ("User-Agent", &b"t"[..])]
    );
    assert_eq!(h.headers_len(), 2);
}

#[test]
fn path_without_query_and_empty_query() {
    let h = ok(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/a", ""));
    let h = ok(b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/a", ""));
    let h = ok(b"GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/a", "b?c"));
}

#[test]
fn first_occurrence_wins_for_repeated_headers() {
    let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
    assert_eq!(h.header("x-a"), Some(&b"1"[..]));
}

#[test]
fn header_values_are_trimmed() {
    let h = ok(b"GET / HTTP/1.1\r\nHost:   h  \t\r\nX-Empty:\r\n\r\n");
    assert_eq!(h.header("host"), Some(&b"h"[..]));
    assert_eq!(h.header("x-empty"), Some(&b""[..]));
}

#[test]
fn pipelined_requests_in_one_buffer() {
    let mut buf = BytesMut::from(
        &b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c"[..],
    );
    let l = Limits::default();
    let a = parse_head(&mut buf, &l).unwrap().unwrap();
    assert_eq!(a.method(), "POST");
    assert_eq!(a.body(), BodyKind::Length(5));
    assert_eq!(&buf[..5], b"hello");
    let _ = buf.split_to(5);
    let b = parse_head(&mut buf, &l).unwrap().unwrap();
    assert_eq!(b.path(), "/b");
    assert_eq!(&buf[..], b"GET /c");
    assert!(parse_head(&mut buf, &l).unwrap().is_none());
    assert_eq!(&buf[..], b"GET /c", "incomplete input is not consumed");
}

#[test]
fn partial_head_at_every_split_point() {
    let full: &[u8] =
        b"\r\nPUT /x/y?z=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Long: abcdefgh\r\n\r\nabc";
    let head_len = full.len() - 3;
    for i in 0..head_len {
        let mut buf = BytesMut::from(&full[..i]);
        assert_eq!(
            parse_head(&mut buf, &Limits::default()),
            Ok(None),
            "split at {i}"
        );
        assert_eq!(buf.len(), i);
    }
    // Feeding byte by byte into one buffer gives the same head.
    let mut buf = BytesMut::new();
    let mut got = None;
    for (i, b) in full.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        if let Some(h) = parse_head(&mut buf, &Limits::default()).unwrap() {
            assert_eq!(i + 1, head_len);
            got = Some(h);
            break;
        }
    }
    let h = got.expect("head completes");
    assert_eq!(h.target(), "/x/y?z=1");
    assert_eq!(h.body(), BodyKind::Length(3));
}

#[test]
fn leading_empty_lines_are_skipped_and_counted() {
    let h = ok(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.method(), "GET");
    assert_eq!(h.raw().len(), 4 + 16 + 9 + 2);
    // An endless stream of empty lines hits the head limit.
    let limits = Limits {
        head_bytes_max: 64,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&b"\r\n".repeat(32)[..]);
    assert_eq!(parse_head(&mut buf, &limits), Err(HeadError::HeadTooLarge));
    let mut buf = BytesMut::from(&b"\r\n".repeat(31)[..]);
    assert_eq!(parse_head(&mut buf, &limits), Ok(None));
}

#[test]
fn keep_alive_defaults_by_version() {
    assert!(ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive());
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive());
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n").keep_alive());
    let h10 = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h10.version(), Version::Http10);
    assert!(!h10.keep_alive());
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
}

#[test]
fn connection_token_lists() {
    let h = ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\n\r\n");
    assert!(h.keep_alive());
    let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade ,close\r\n\r\n");
    assert!(!h.keep_alive());
    let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive());
    // "closed" is not the "close" token.
    let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, xclose\r\n\r\n");
    assert!(h.keep_alive());
}

#[test]
fn expect_100_continue() {
    let h = ok(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n");
    assert!(h.expect_continue());
    let h = ok(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n");
    assert!(!h.expect_continue());
    let h = ok(b"PUT / HTTP/1.0\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    assert!(!h.expect_continue(), "ignored for HTTP/1.0");
    let h = ok(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n");
    assert!(!h.expect_continue());
}

#[test]
fn head_too_large_is_431() {
    let limits = Limits {
        head_bytes_max: 100,
        ..Limits::default()
    };
    let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    req.extend_from_slice(&[b'a'; 200]);
    let mut buf = BytesMut::from(&req[..]);
    let e = parse_head(&mut buf, &limits).unwrap_err();
    assert_eq!((e.clone(), e.status()), (HeadError::HeadTooLarge, 431));
    // A complete head that is larger than the limit is refused too.
    req.extend_from_slice(b"\r\n\r\n");
    let mut buf = BytesMut::from(&req[..]);
    assert_eq!(parse_head(&mut buf, &limits), Err(HeadError::HeadTooLarge));
    // A head that fits, followed by a large body, is fine.
    let mut buf = BytesMut::from(&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 500\r\n\r\n"[..]);
    buf.extend_from_slice(&[b'x'; 500]);
    let h = parse_head(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(h.body(), BodyKind::Length(500));
    assert_eq!(buf.len(), 500);
    // Incomplete but still below the limit: wait.
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]);
    assert_eq!(parse_head(&mut buf, &limits), Ok(None));
}

#[test]
fn too_many_headers_is_431() {
    let limits = Limits {
        headers_count_max: 3,
        ..Limits::default()
    };
    let three = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(parse_head(&mut BytesMut::from(&three[..]), &limits)
        .unwrap()
        .is_some());
    let four = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let e = parse_head(&mut BytesMut::from(&four[..]), &limits).unwrap_err();
    assert_eq!((e.clone(), e.status()), (HeadError::TooManyHeaders, 431));
    // Default limit is 100.
    let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..100 {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_eq!(err(&req), HeadError::TooManyHeaders);
    // More slots than the stack array holds.
    let big = Limits {
        headers_count_max: 200,
        ..Limits::default()
    };
    let h = parse_head(&mut BytesMut::from(&req[..]), &big)
        .unwrap()
        .unwrap();
    assert_eq!(h.headers_len(), 101);
}

#[test]
fn uri_too_long_is_414() {
    let limits = Limits {
        uri_bytes_max: 32,
        ..Limits::default()
    };
    let ok_target = format!("/{}", "a".repeat(31));
    let req = format!("GET {ok_target} HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(parse_head(&mut BytesMut::from(req.as_bytes()), &limits)
        .unwrap()
        .is_some());
    let long = format!("/{}", "a".repeat(32));
    let req = format!("GET {long} HTTP/1.1\r\nHost: h\r\n\r\n");
    let e = parse_head(&mut BytesMut::from(req.as_bytes()), &limits).unwrap_err();
    assert_eq!((e.clone(), e.status()), (HeadError::UriTooLong, 414));
    // Detected before the head is complete, once the target is known...
    let req = format!("GET {long} HTTP/1.1\r\nHost: h\r\n");
    assert_eq!(
        parse_head(&mut BytesMut::from(req.as_bytes()), &limits),
        Err(HeadError::UriTooLong)
    );
    // ...and on an unterminated request line longer than uri_bytes_max + 16.
    let req = format!("GET /{}", "a".repeat(60));
    assert_eq!(
        parse_head(&mut BytesMut::from(req.as_bytes()), &limits),
        Err(HeadError::UriTooLong)
    );
    let req = format!("GET /{}", "a".repeat(40));
    assert_eq!(
        parse_head(&mut BytesMut::from(req.as_bytes()), &limits),
        Ok(None)
    );
}

#[test]
fn missing_host_is_400() {
    let e = err(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    assert_eq!((e.clone(), e.status()), (HeadError::MissingHost, 400));
    // HTTP/1.0 does not need Host; an empty Host is allowed.
    assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    assert!(parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").unwrap().is_some());
}

#[test]
fn duplicate_host_is_400() {
    let e = err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
    assert!(matches!(e, HeadError::Malformed(_)));
    assert_eq!(e.status(), 400);
}

#[test]
fn whitespace_before_colon_is_400() {
    let e = err(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello");
    assert!(matches!(e, HeadError::Malformed(_)), "{e:?}");
    let e = err(b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n");
    assert!(matches!(e, HeadError::Malformed(_)), "{e:?}");
}

#[test]
fn obs_fold_and_bare_cr_are_400() {
    assert!(matches!(
        err(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
        HeadError::Malformed(_)
    ));
    assert!(matches!(
        err(b"GET / HTTP/1.1\r\nHost: h\rX: a\r\n\r\n"),
        HeadError::Malformed(_)
    ));
    assert!(matches!(
        err(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"),
        HeadError::Malformed(_)
    ));
}

#[test]
fn content_length_and_transfer_encoding_is_400() {
    let e = err(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(
        (e.clone(), e.status()),
        (HeadError::ConflictingFraming, 400)
    );
    let e = err(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(e, HeadError::ConflictingFraming);
}

#[test]
fn chunked_framing() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.body(), BodyKind::Chunked);
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked , \r\n\r\n");
    assert_eq!(h.body(), BodyKind::Chunked);
}

#[test]
fn transfer_codings() {
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(
        (e.clone(), e.status()),
        (HeadError::UnsupportedTransferEncoding, 501)
    );
    // Split over two fields: same list.
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, HeadError::UnsupportedTransferEncoding);
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n").status(),
        501
    );
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(e.status(), 400);
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    assert_eq!(e.status(), 400);
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e.status(), 400);
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n");
    assert_eq!(e.status(), 400);
    let e = err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\x7f\r\n\r\n");
    assert_eq!(e.status(), 400);
}

#[test]
fn transfer_encoding_in_http10_is_400() {
    let e = err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(matches!(e, HeadError::Malformed(_)));
}

#[test]
fn content_length_values() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.body(), BodyKind::Length(0));
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n");
    assert_eq!(h.body(), BodyKind::Length(CONTENT_LENGTH_MAX));
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n");
    assert_eq!(h.body(), BodyKind::Length(7));
}

#[test]
fn content_length_same_list_is_ok() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(h.body(), BodyKind::Length(5));
    let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body(), BodyKind::Length(5));
}

#[test]
fn content_length_differing_is_400() {
    for req in [
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
    ] {
        let e = err(req);
        assert_eq!((e.clone(), e.status()), (HeadError::BadContentLength, 400));
    }
}

#[test]
fn content_length_signed_or_garbage_is_400() {
    for v in [
        "-1",
        "+5",
        "5a",
        "0x10",
        "1 2",
        // Above 2^63-1 (Go's limit; no body is that long), and above u64.
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {v}\r\n\r\n");
        assert_eq!(err(req.as_bytes()), HeadError::BadContentLength, "{v}");
    }
}

#[test]
fn http2_and_unknown_versions_are_505() {
    let e = err(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert_eq!(
        (e.clone(), e.status()),
        (HeadError::UnsupportedVersion, 505)
    );
    assert_eq!(
        err(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
        HeadError::UnsupportedVersion
    );
    assert_eq!(err(b"GET / HTTP/3\r\n\r\n"), HeadError::UnsupportedVersion);
    // Not a version at all: plain 400.
    assert_eq!(err(b"GET / FOO/1.1\r\n\r\n").status(), 400);
    assert_eq!(err(b"GET / http/1.1\r\n\r\n").status(), 400);
}

#[test]
fn garbage_is_400() {
    for g in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"hello world\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\r\r\n",
        b"G\xc3\xa9T / HTTP/1.1\r\n\r\n",
    ] {
        let e = err(g);
        assert_eq!(e.status(), 400, "{g:?} -> {e:?}");
    }
}

#[test]
fn non_utf8_header_values_are_readable_as_bytes() {
    let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\xff\r\n\r\n");
    assert_eq!(h.header("x-name"), Some(&b"caf\xe9\xff"[..]));
    assert_eq!(h.header_str("x-name"), None);
    let h = ok("GET /d\u{e9}j\u{e0} HTTP/1.1\r\nHost: h\r\nX: \u{e9}\r\n\r\n".as_bytes());
    assert_eq!(h.path(), "/d\u{e9}j\u{e0}");
    assert_eq!(h.header_str("x"), Some("\u{e9}"));
    // A non-UTF-8 target is refused.
    assert_eq!(err(b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
}

#[test]
fn other_methods_and_targets() {
    let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.method(), h.path(), h.query()), ("OPTIONS", "*", ""));
    let h = ok(b"DELETE http://h/a?b HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query()), ("/a", "b"));
}

#[test]
fn an_absolute_form_target_is_routed_by_its_path_and_names_the_host() {
    let h = ok(b"GET http://127.0.0.1:8080/group1/x?a=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(h.target(), "http://127.0.0.1:8080/group1/x?a=1");
    assert_eq!((h.path(), h.query()), ("/group1/x", "a=1"));
    assert_eq!(h.origin_form(), "/group1/x?a=1");
    assert_eq!(
        h.host(),
        Some("127.0.0.1:8080"),
        "the authority replaces Host"
    );
    let h = ok(b"GET HTTPS://[::1]:1/../a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.host()), ("/../a", Some("[::1]:1")));
    let h = ok(b"GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.path(), h.query(), h.host()), ("", "q", Some("h")));
    let h = ok(b"GET /a HTTP/1.1\r\nHost: h:1\r\n\r\n");
    assert_eq!((h.origin_form(), h.host()), ("/a", Some("h:1")));
    for bad in [
        &b"GET ftp://h/a HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET http:/h/a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://user@h/a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET ** HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(err(bad).status(), 400, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_refused_heads_request_line_is_logged_escaped_and_bounded() {
    let line = |b: &[u8]| refused_request_line(b);
    assert_eq!(
        line(b"GET /a?b HTTP/1.1\r\nHost: h\r\n"),
        ("GET".into(), "/a?b".into())
    );
    assert_eq!(line(b"\r\nPOST /up"), ("POST".into(), "/up".into()));
    assert_eq!(line(b"GET"), ("GET".into(), "-".into()));
    assert_eq!(line(b""), ("-".into(), "-".into()));
    // Whatever the client sent, no line break, space or control reaches the log.
    assert_eq!(
        line(b"G\x1bT /a\rb\tc\xff\x00 HTTP/1.1\r\n"),
        ("G%1BT".into(), "/a%0Db%09c%FF%00".into())
    );
    assert_eq!(
        line(b"GET /a\n[Access] 2026/01/01 - 00:00:00 | 1ms | 6.6.6.6 | GET | 200 | /x\r\n"),
        ("GET".into(), "/a".into())
    );
    let (m, t) = line(format!("{} /{}", "M".repeat(100), "t".repeat(5000)).as_bytes());
    assert_eq!(m, format!("{}...", "M".repeat(32)));
    assert_eq!(t.len(), 1024 + 3);
    assert!(t.ends_with("..."));
}

#[test]
fn errors_leave_buffer_untouched() {
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, &Limits::default()).is_err());
    assert_eq!(buf.len(), 18);
}

#[test]
fn bare_lf_head_is_accepted() {
    let h = ok(b"GET / HTTP/1.1\nHost: h\n\n");
    assert_eq!(h.header("host"), Some(&b"h"[..]));
}

#[test]
fn a_parsed_head_stays_small_as_it_moves_from_the_parser_to_the_handler() {
    // 16-bit spans: sixteen inline fields in 128 bytes (with 32-bit spans the head was 352).
    assert!(std::mem::size_of::<RequestHead>() <= 224);
    let big = format!(
        "GET /{} HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        "a".repeat(8000),
        "v".repeat(8000)
    );
    let h = ok(big.as_bytes());
    assert_eq!(h.header("x").map(<[u8]>::len), Some(8000));
    assert_eq!(h.path().len(), 8001);
}
