//! Unit tests of the multipart parser.
use super::*;

#[derive(Debug, PartialEq, Eq)]
struct Part {
    head: PartHead,
    data: Vec<u8>,
}

fn head(name: &str, filename: Option<&str>, content_type: Option<&str>) -> PartHead {
    PartHead {
        name: name.to_owned(),
        filename: filename.map(str::to_owned),
        content_type: content_type.map(str::to_owned),
    }
}

fn part(name: &str, filename: Option<&str>, ct: Option<&str>, data: &[u8]) -> Part {
    Part {
        head: head(name, filename, ct),
        data: data.to_vec(),
    }
}

/// Feeds `body` in chunks ending at the given (increasing) split offsets, draining
/// events after each chunk, checks the event grammar and buffering bound, and
/// returns the reassembled parts once `finish()` succeeds.
fn parse_split(
    boundary: &[u8],
    body: &[u8],
    limits: Limits,
    splits: &[usize],
) -> Result<Vec<Part>, MultipartError> {
    let mut parser = Parser::new(boundary, limits);
    let mut buf = BytesMut::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut in_part = false;
    let mut ended = false;
    let mut start = 0;
    for end in splits.iter().copied().chain([body.len()]) {
        buf.extend_from_slice(&body[start..end]);
        start = end;
        while let Some(event) = parser.next_event(&mut buf)? {
            assert!(!ended, "event after End: {event:?}");
            match event {
                Event::PartStart(h) => {
                    assert!(!in_part);
                    in_part = true;
                    parts.push(Part {
                        head: h,
                        data: Vec::new(),
                    });
                }
                Event::Data(d) => {
                    assert!(in_part && !d.is_empty());
                    parts.last_mut().unwrap().data.extend_from_slice(&d);
                }
                Event::PartEnd => {
                    assert!(in_part);
                    in_part = false;
                }
                Event::End => {
                    assert!(!in_part);
                    ended = true;
                }
            }
        }
        if !ended {
            let bound = limits.part_head_bytes_max.max(boundary.len() + 4);
            assert!(buf.len() <= bound, "buffered {} > {bound}", buf.len());
        }
    }
    parser.finish()?;
    Ok(parts)
}

fn parse(boundary: &[u8], body: &[u8]) -> Result<Vec<Part>, MultipartError> {
    parse_split(boundary, body, Limits::default(), &[])
}

/// Parses with every single split and byte-at-a-time; all must agree.
fn parse_all_splits(boundary: &[u8], body: &[u8]) -> Result<Vec<Part>, MultipartError> {
    let whole = parse(boundary, body);
    for split in 0..=body.len() {
        assert_eq!(
            parse_split(boundary, body, Limits::default(), &[split]),
            whole,
            "split at {split}"
        );
    }
    let bytewise: Vec<usize> = (1..body.len()).collect();
    assert_eq!(
        parse_split(boundary, body, Limits::default(), &bytewise),
        whole
    );
    whole
}

const CURL_BOUNDARY: &[u8] = b"------------------------d74496d66958873e";

fn curl_body() -> Vec<u8> {
    // curl -F name=alice -F file=@hello.txt http://host/upload
    b"--------------------------d74496d66958873e\r\n\
      Content-Disposition: form-data; name=\"name\"\r\n\
      \r\n\
      alice\r\n\
      --------------------------d74496d66958873e\r\n\
      Content-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\
      Content-Type: text/plain\r\n\
      \r\n\
      hello world\n\r\n\
      --------------------------d74496d66958873e--\r\n"
        .to_vec()
}

#[test]
fn curl_two_field_form() {
    assert_eq!(
        parse_all_splits(CURL_BOUNDARY, &curl_body()).unwrap(),
        vec![
            part("name", None, None, b"alice"),
            part(
                "file",
                Some("hello.txt"),
                Some("text/plain"),
                b"hello world\n"
            ),
        ]
    );
}

#[test]
fn curl_event_sequence_and_zero_copy() {
    let mut parser = Parser::new(CURL_BOUNDARY, Limits::default());
    let mut buf = BytesMut::from(&curl_body()[..]);
    let mut events = Vec::new();
    while let Some(e) = parser.next_event(&mut buf).unwrap() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![
            Event::PartStart(head("name", None, None)),
            Event::Data(Bytes::from_static(b"alice")),
            Event::PartEnd,
            Event::PartStart(head("file", Some("hello.txt"), Some("text/plain"))),
            Event::Data(Bytes::from_static(b"hello world\n")),
            Event::PartEnd,
            Event::End,
        ]
    );
    assert_eq!(&buf[..], b"\r\n", "epilogue left to the caller");
    assert_eq!(parser.next_event(&mut buf), Ok(None));
    assert_eq!(parser.finish(), Ok(()));
    assert!(parser.is_done());
    assert_eq!(parser.parts_count(), 2);
}

#[test]
fn browser_webkit_body() {
    let body = "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
        Content-Disposition: form-data; name=\"title\"\r\n\
        \r\n\
        caf\u{e9} \u{1f600}\r\n\
        ------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"r\u{e9}sum\u{e9} %22x%22.pdf\"\r\n\
        Content-Type: application/pdf\r\n\
        \r\n\
        %PDF-1.4\r\n\x00\x01\x7f\r\n\
        ------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"
        .as_bytes()
        .to_vec();
    assert_eq!(
        parse_all_splits(b"----WebKitFormBoundary7MA4YWxkTrZu0gW", &body).unwrap(),
        vec![
            part("title", None, None, "caf\u{e9} \u{1f600}".as_bytes()),
            part(
                "file",
                Some("r\u{e9}sum\u{e9} %22x%22.pdf"),
                Some("application/pdf"),
                b"%PDF-1.4\r\n\x00\x01\x7f"
            ),
        ]
    );
}

#[test]
fn data_with_crlf_dashes_and_boundary_lookalikes() {
    let data: &[u8] = b"\r\n--\r\n--b\r\n--bo\r\n--boun\r\n-boundary\n--boundary\r--boundary\
        \r\r\n\r\n--bounda\r\n--boundar\r\n";
    let mut body = b"--boundary\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--boundary--");
    assert_eq!(
        parse_all_splits(b"boundary", &body).unwrap(),
        vec![part("f", None, None, data)]
    );
}

#[test]
fn data_starting_with_boundary_text_is_data() {
    // The CRLF ending the header section is not the CRLF of a delimiter.
    let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n--b--x\r\n--b--";
    assert_eq!(
        parse_all_splits(b"b", body).unwrap(),
        vec![part("f", None, None, b"--b--x")]
    );
}

#[test]
fn all_two_way_splits_of_multi_part_body() {
    let mut body = b"preamble\r\n--xyz\r\n".to_vec();
    for i in 0..5u8 {
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"p{i}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&vec![b'a' + i; usize::from(i) * 7]);
        body.extend_from_slice(b"\r\n--xyz\r\n");
    }
    body.truncate(body.len() - 2);
    body.extend_from_slice(b"--\r\nepilogue");
    let parts = parse_all_splits(b"xyz", &body).unwrap();
    assert_eq!(parts.len(), 5);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.head.name, format!("p{i}"));
        assert_eq!(p.data.len(), i * 7);
    }
}

#[test]
fn data_events_are_as_large_as_possible() {
    let mut parser = Parser::new(b"bnd", Limits::default());
    let mut buf =
        BytesMut::from(&b"--bnd\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"[..]);
    assert!(matches!(
        parser.next_event(&mut buf),
        Ok(Some(Event::PartStart(_)))
    ));
    // Without a delimiter in sight, everything but a possible delimiter prefix goes out.
    buf.extend_from_slice(&vec![b'x'; 100_000]);
    buf.extend_from_slice(b"\r\n--bn");
    let Ok(Some(Event::Data(d))) = parser.next_event(&mut buf) else {
        panic!("expected data")
    };
    assert_eq!(d.len(), 100_000);
    assert_eq!(&buf[..], b"\r\n--bn");
    assert_eq!(parser.next_event(&mut buf), Ok(None));
    // Not a delimiter after all: released in one event.
    buf.extend_from_slice(b"x");
    assert_eq!(
        parser.next_event(&mut buf),
        Ok(Some(Event::Data(Bytes::from_static(b"\r\n--bnx"))))
    );
    assert!(buf.is_empty());
}

#[test]
fn long_data_one_byte_at_a_time_is_fast_and_bounded() {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| if i % 5 == 0 { b'\r' } else { b'-' })
        .collect();
    let mut body = b"--q\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n--q--");
    let splits: Vec<usize> = (1..body.len()).collect();
    let parts = parse_split(b"q", &body, Limits::default(), &splits).unwrap();
    assert_eq!(parts, vec![part("f", None, None, &data)]);
}

#[test]
fn empty_file_part() {
    let body = b"--b\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n\
        \r\n--b\r\n\
        Content-Disposition: form-data; name=\"x\"\r\n\r\n\
        \r\n--b--\r\n";
    assert_eq!(
        parse_all_splits(b"b", body).unwrap(),
        vec![
            part("file", Some(""), Some("application/octet-stream"), b""),
            part("x", None, None, b""),
        ]
    );
    let mut parser = Parser::new(b"b", Limits::default());
    let mut buf = BytesMut::from(&body[..]);
    assert!(matches!(
        parser.next_event(&mut buf),
        Ok(Some(Event::PartStart(_)))
    ));
    assert_eq!(parser.next_event(&mut buf), Ok(Some(Event::PartEnd)));
}

#[test]
fn missing_final_boundary_fails_at_finish() {
    let body = curl_body();
    let cut = body.len() - b"--\r\n".len();
    for len in [cut, cut - 20, 60, 10, 0] {
        assert_eq!(
            parse(CURL_BOUNDARY, &body[..len]),
            Err(MultipartError::UnexpectedEof),
            "truncated at {len}"
        );
    }
}

#[test]
fn part_head_too_large() {
    let limits = Limits {
        part_head_bytes_max: 64,
        ..Limits::default()
    };
    let head = b"Content-Disposition: form-data; name=\"f\"\r\n\r\n"; // 44 bytes
    let mut body = b"--b\r\n".to_vec();
    body.extend_from_slice(b"X-Pad: ");
    body.extend_from_slice(&[b'p'; 64 - 44 - 9]);
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(head);
    body.extend_from_slice(b"data\r\n--b--");
    // Exactly at the limit: fine.
    assert!(parse_split(b"b", &body, limits, &[]).is_ok());
    // One byte more: rejected, whether complete or still arriving.
    body.insert(12, b'p');
    assert_eq!(
        parse_split(b"b", &body, limits, &[]),
        Err(MultipartError::PartHeadTooLarge)
    );
    let endless = [&b"--b\r\nX: "[..], &[b'y'; 1000]].concat();
    let splits: Vec<usize> = (1..endless.len()).collect();
    assert_eq!(
        parse_split(b"b", &endless, limits, &splits),
        Err(MultipartError::PartHeadTooLarge)
    );
}

#[test]
fn too_many_parts() {
    let limits = Limits {
        parts_count_max: 3,
        ..Limits::default()
    };
    let body = |n: usize| {
        let mut b = Vec::new();
        for i in 0..n {
            b.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; name=\"{i}\"\r\n\r\nv\r\n")
                    .as_bytes(),
            );
        }
        b.extend_from_slice(b"--b--");
        b
    };
    assert_eq!(parse_split(b"b", &body(3), limits, &[]).unwrap().len(), 3);
    assert_eq!(
        parse_split(b"b", &body(4), limits, &[]),
        Err(MultipartError::TooManyParts)
    );
}

#[test]
fn preamble_and_epilogue_are_skipped() {
    let body = b"This is the preamble.\r\nIt has --b-like text: -b --bx\r\n\
        --b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
        --b--\r\nThis is the epilogue. --b\r\n--b--\r\n";
    assert_eq!(
        parse_all_splits(b"b", body).unwrap(),
        vec![part("a", None, None, b"1")]
    );
}

#[test]
fn preamble_too_large() {
    let limits = Limits {
        preamble_bytes_max: 16,
        ..Limits::default()
    };
    let ok = b"0123456789abcdef\r\n--b--";
    assert!(parse_split(b"b", ok, limits, &[]).is_ok());
    let long = b"0123456789abcdefg\r\n--b--";
    assert_eq!(
        parse_split(b"b", long, limits, &[]),
        Err(MultipartError::PreambleTooLarge)
    );
    // Without any delimiter, bytes are discarded, not buffered, until the limit.
    let endless = [b'z'; 1000];
    let splits: Vec<usize> = (1..endless.len()).collect();
    assert_eq!(
        parse_split(b"b", &endless, limits, &splits),
        Err(MultipartError::PreambleTooLarge)
    );
}

#[test]
fn quoted_names_with_escapes() {
    let body = br#"--b
Content-Disposition: form-data; name="say \"hi\" \\ o/"; filename="C:\dir\a;b=c.txt"

x
--b--"#
        .replace_crlf();
    assert_eq!(
        parse(b"b", &body).unwrap(),
        vec![part(
            "say \"hi\" \\ o/",
            Some("C:\\dir\\a;b=c.txt"),
            None,
            b"x"
        )]
    );
}

/// Go's `mime.ParseMediaType` (go-fastdfs' parser): in a quoted string a backslash escapes
/// the next character when that is a tspecial (`()<>@,;:\"/[]?=`), and is kept literally
/// before anything else (MSIE's unescaped Windows paths). Seen with the go-fastdfs binary:
/// `x\/y.txt` is stored as `y.txt` (the escape makes a `/`, the name is its last part),
/// `s\;t.txt` as `s;t.txt`, `a\b.txt`, `e\e.txt` and `t\ z.txt` keep their backslash.
#[test]
fn a_backslash_escapes_a_tspecial_only_as_go_does() {
    let cases: &[(&[u8], &str)] = &[
        (br#"a\b.txt"#, "a\\b.txt"),
        (br#"x\/y.txt"#, "x/y.txt"),
        (br#"s\;t.txt"#, "s;t.txt"),
        (br#"q\"z.txt"#, "q\"z.txt"),
        (br#"u\\v.txt"#, "u\\v.txt"),
        (br#"t\ z.txt"#, "t\\ z.txt"),
        (br#"e\e\.txt"#, "e\\e\\.txt"),
        (br#"p\(1\)\[2\]\<3\>\@\,\:\?\=.txt"#, "p(1)[2]<3>@,:?=.txt"),
        (br#"end\"#, ""),
    ];
    for (quoted, want) in cases {
        let mut body = b"--b\r\nContent-Disposition: form-data; name=f; filename=\"".to_vec();
        body.extend_from_slice(quoted);
        body.extend_from_slice(b"\"\r\n\r\nx\r\n--b--");
        let got = parse(b"b", &body);
        if want.is_empty() {
            // `\"` escapes the closing quote: the string never ends.
            assert!(got.is_err(), "{}", quoted.escape_ascii());
            continue;
        }
        assert_eq!(
            got.unwrap(),
            vec![part("f", Some(want), None, b"x")],
            "{}",
            quoted.escape_ascii()
        );
    }
}

#[test]
fn filename_star_takes_precedence() {
    let body = "--b\r\n\
        Content-Disposition: form-data; filename*=UTF-8''na%C3%AFve%20file.txt; \
        filename=\"naive file.txt\"; name=upload\r\n\r\nx\r\n\
        --b\r\n\
        Content-Disposition: form-data; name=l; filename=\"fallback\"; \
        filename*=iso-8859-1'en'%E9t%E9\r\n\r\nx\r\n\
        --b\r\n\
        Content-Disposition: form-data; name=bad; filename=\"fallback\"; \
        filename*=UTF-8''%ZZ\r\n\r\nx\r\n\
        --b--"
        .as_bytes();
    assert_eq!(
        parse(b"b", body).unwrap(),
        vec![
            part("upload", Some("na\u{ef}ve file.txt"), None, b"x"),
            part("l", Some("\u{e9}t\u{e9}"), None, b"x"),
            part("bad", Some("fallback"), None, b"x"),
        ]
    );
}

#[test]
fn header_names_and_params_are_case_insensitive() {
    let body = b"--b\r\n\
        CONTENT-TYPE:image/png  \r\n\
        x-other: ignored\r\n\
        content-disposition:   Form-Data ;FILENAME=pic.png;  NAME = \"img\"  ;;\r\n\
        \r\n\x89PNG\r\n--b--";
    assert_eq!(
        parse(b"b", body).unwrap(),
        vec![part("img", Some("pic.png"), Some("image/png"), b"\x89PNG")]
    );
}

#[test]
fn raw_and_invalid_utf8_in_quotes_is_decoded_lossily() {
    let mut body = "--b\r\nContent-Disposition: form-data; name=\"\u{4f60}\u{597d}\"; filename=\""
        .as_bytes()
        .to_vec();
    body.extend_from_slice(b"a\xffb.txt\"\r\n\r\n\r\n--b--");
    assert_eq!(
        parse(b"b", &body).unwrap(),
        vec![part("\u{4f60}\u{597d}", Some("a\u{fffd}b.txt"), None, b"")]
    );
}

#[test]
fn part_head_errors() {
    let cases: &[(&[u8], MultipartError)] = &[
        (b"\r\n", MultipartError::MissingContentDisposition),
        (
            b"Content-Type: text/plain\r\n\r\n",
            MultipartError::MissingContentDisposition,
        ),
        (
            b"Content-Disposition: form-data; filename=\"a\"\r\n\r\n",
            MultipartError::MissingName,
        ),
        (
            b"Content-Disposition: form-data;\r\n name=\"a\"\r\n\r\n",
            MultipartError::MalformedPartHead("obsolete line folding"),
        ),
        (
            b"Content-Disposition: attachment; name=\"a\"\r\n\r\n",
            MultipartError::MalformedPartHead("Content-Disposition type is not form-data"),
        ),
        (
            b"Content-Disposition: form-data; name=\"a\r\n\r\n",
            MultipartError::MalformedPartHead("unterminated quoted string"),
        ),
        (
            b"Content-Disposition: form-data; name=\"a\" x\r\n\r\n",
            MultipartError::MalformedPartHead("expected ';' between parameters"),
        ),
        (
            b"Content-Disposition: form-data; name\r\n\r\n",
            MultipartError::MalformedPartHead("parameter without value"),
        ),
        (
            b"Content-Disposition: form-data; name=a\nX: y\r\n\r\n",
            MultipartError::MalformedPartHead("bare CR or LF"),
        ),
        (
            b"Content-Disposition form-data; name=a\r\n\r\n",
            MultipartError::MalformedPartHead("header line without colon"),
        ),
        (
            b"Bad Name: x\r\nContent-Disposition: form-data; name=a\r\n\r\n",
            MultipartError::MalformedPartHead("invalid header name"),
        ),
        (
            b"Content-Disposition: form-data; name=a\r\n\
              content-disposition: form-data; name=b\r\n\r\n",
            MultipartError::MalformedPartHead("duplicate header"),
        ),
    ];
    for (head, err) in cases {
        let body = [&b"--b\r\n"[..], head, b"data\r\n--b--"].concat();
        assert_eq!(
            parse(b"b", &body),
            Err(err.clone()),
            "{:?}",
            head.escape_ascii()
        );
    }
}

#[test]
fn transport_padding_and_malformed_delimiters() {
    let padded = b"--b \t \r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b\t\r\n\
        Content-Disposition: form-data; name=c\r\n\r\n2\r\n--b--";
    assert_eq!(
        parse_all_splits(b"b", padded).unwrap(),
        vec![part("a", None, None, b"1"), part("c", None, None, b"2")]
    );
    for bad in [
        &b"--bx\r\n"[..],
        b"--b\n",
        b"--b -- ",
        b"--b-x",
        b"--b\rx",
        b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--bb--",
    ] {
        assert_eq!(
            parse(b"b", bad),
            Err(MultipartError::MalformedDelimiter),
            "{:?}",
            bad.escape_ascii()
        );
    }
}

#[test]
fn close_delimiter_without_parts() {
    assert_eq!(parse_all_splits(b"b", b"--b--").unwrap(), vec![]);
    assert_eq!(parse_all_splits(b"b", b"\r\n--b--\r\n").unwrap(), vec![]);
}

#[test]
fn errors_are_sticky() {
    let mut parser = Parser::new(b"b", Limits::default());
    let mut buf = BytesMut::from(&b"--b!"[..]);
    assert_eq!(
        parser.next_event(&mut buf),
        Err(MultipartError::MalformedDelimiter)
    );
    buf.extend_from_slice(b"\r\n--b--");
    assert_eq!(
        parser.next_event(&mut buf),
        Err(MultipartError::MalformedDelimiter)
    );
    assert_eq!(parser.finish(), Err(MultipartError::MalformedDelimiter));
}

#[test]
fn boundary_from_content_type_cases() {
    let ok: &[(&[u8], &[u8])] = &[
        (
            b"multipart/form-data; boundary=------------------------d74496d66958873e",
            b"------------------------d74496d66958873e",
        ),
        (
            b"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            b"----WebKitFormBoundary7MA4YWxkTrZu0gW",
        ),
        (b"Multipart/Form-Data;BOUNDARY=\"a b:c\"", b"a b:c"),
        (
            b"  multipart/form-data ; charset=utf-8; Boundary = \"x\\\"y\" ",
            b"x\"y",
        ),
        (b"multipart/form-data; boundary=abc; boundary=def", b"abc"),
    ];
    for (value, boundary) in ok {
        assert_eq!(
            boundary_from_content_type(value).as_deref(),
            Some(*boundary),
            "{:?}",
            value.escape_ascii()
        );
    }
    let long = [&b"multipart/form-data; boundary="[..], &[b'a'; 71]].concat();
    let max = [&b"multipart/form-data; boundary="[..], &[b'a'; 70]].concat();
    assert!(boundary_from_content_type(&max).is_some());
    for value in [
        &long[..],
        b"multipart/mixed; boundary=abc",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data",
        b"multipart/form-data; charset=utf-8",
        b"multipart/form-data; boundary=",
        b"multipart/form-data; boundary=\"\"",
        b"multipart/form-data; boundary=\"abc ",
        b"multipart/form-data; boundary=\"abc \"",
        b"multipart/form-data; boundary=\"a\rb\"",
        b"multipart/form-data; boundary=\"a\xc3\xa9\"",
        b"multipart/form-datax; boundary=abc",
        b"",
    ] {
        assert_eq!(
            boundary_from_content_type(value),
            None,
            "{:?}",
            value.escape_ascii()
        );
    }
}

#[test]
fn error_messages_are_human_readable() {
    assert_eq!(
        MultipartError::MalformedPartHead("bare CR or LF").to_string(),
        "malformed multipart part header: bare CR or LF"
    );
    assert_eq!(
        MultipartError::UnexpectedEof.to_string(),
        "multipart body ended before the closing boundary"
    );
}

trait ReplaceCrlf {
    fn replace_crlf(&self) -> Vec<u8>;
}

impl ReplaceCrlf for [u8] {
    /// `\n` -> `\r\n`, to write bodies as raw strings.
    fn replace_crlf(&self) -> Vec<u8> {
        self.iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect()
    }
}

/// `parse_split`, but a chunk that arrives in a part's body with nothing buffered is taken
/// as the upload handler takes it: its first `body_data_len` bytes are the part's data in
/// place, only the rest goes to `buf`.
fn parse_split_in_place(boundary: &[u8], body: &[u8], splits: &[usize]) -> Vec<Part> {
    let mut parser = Parser::new(boundary, Limits::default());
    let mut buf = BytesMut::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut start = 0;
    for end in splits.iter().copied().chain([body.len()]) {
        let chunk = &body[start..end];
        start = end;
        match parser.body_data_len(chunk) {
            Some(n) if buf.is_empty() => {
                parts
                    .last_mut()
                    .unwrap()
                    .data
                    .extend_from_slice(&chunk[..n]);
                buf.extend_from_slice(&chunk[n..]);
            }
            _ => buf.extend_from_slice(chunk),
        }
        while let Some(event) = parser.next_event(&mut buf).unwrap() {
            match event {
                Event::PartStart(h) => parts.push(Part {
                    head: h,
                    data: Vec::new(),
                }),
                Event::Data(d) => parts.last_mut().unwrap().data.extend_from_slice(&d),
                Event::PartEnd | Event::End => {}
            }
        }
    }
    parser.finish().unwrap();
    parts
}

#[test]
fn data_taken_in_place_is_the_data_next_event_would_give_at_every_split() {
    let body: &[u8] =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n\
        ab\r\n--Xy\r\n--XyQ\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"output\"\r\n\r\n\
        json\r\n--XyZ--\r\n";
    let whole = parse(b"XyZ", body).unwrap();
    assert_eq!(whole[0].data, b"ab\r\n--Xy\r\n--XyQ\r\n");
    assert_eq!(parser_none_outside_a_body(), None);
    for i in 1..body.len() {
        for j in i..body.len() {
            assert_eq!(
                parse_split_in_place(b"XyZ", body, &[i, j]),
                whole,
                "split at {i}, {j}"
            );
        }
    }
}

fn parser_none_outside_a_body() -> Option<usize> {
    Parser::new(b"XyZ", Limits::default()).body_data_len(b"data")
}
