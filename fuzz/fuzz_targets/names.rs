//! Fuzz target for `fastdfs::store::names`, the path gate: every client-supplied name
//! (scene, custom `path`, file name, `filename`, download URL path, peer announcement) is
//! either a safe path strictly under `files/` or refused.
//!
//! Properties (beyond "never panics"):
//! - `check_component` accepts exactly the non-empty names of at most `NAME_BYTES_MAX` bytes
//!   that are not `.`/`..` and hold no `/`, `\` or control character (an independent model);
//!   `check_name` the same but with `\` allowed (a file name keeps it, as go-fastdfs);
//!   `check_scene` exactly those that also hold no `:` and are not a reserved top directory.
//! - Whatever `custom_dir` accepts is `files/<c1>/.../<cn>` with every component safe, no `.`
//!   at all, a top directory that is neither reserved nor internal, within
//!   `PATH_BYTES_MAX`; its components are the input's (dots removed, one leading `files/`
//!   dropped), the download gate (`url_segments`) reads the same components back, and
//!   `custom_dir` is idempotent on its own output (up to the length limit, which is applied
//!   before `files/` is stripped). `Ok(None)` exactly when only `.` and `/` were given.
//! - `url_segments` accepts exactly the paths whose non-empty segments are not `.`/`..` and
//!   hold no control character (a `\` is data: one byte of a name), returns those segments,
//!   and is idempotent; the download gate (`percent_decode_path` + `url_segments` +
//!   `is_internal`) only ever yields `files/...` paths without `.`/`..`, NUL, control
//!   characters or an internal top dir.
//! - `upload_name` never returns a `/`; untrimmed it is the last `/`-segment of its input;
//!   trimmed it holds no special character, whitespace or `..`; it is idempotent.
//! - `extension` is `""` or `.` + the lower-cased text after the last dot.
//! - `check_landing` never lets a file take the place of a directory of the dated tree: for
//!   every prefix of `default_dir(scene, peer, t)` the next component is refused as a file
//!   name there, a file inside `default_dir` is fine, and an accepted custom location never
//!   equals or contains a `default_dir` of the date/hour/minute it spells.
//! - `collision_name` is the name itself for attempt 0 and `<attempt-1>_<name>` after that,
//!   shortened (stem start + name end) to a valid name when that would be too long.
//! - `sync::validate_announced` (the peer gate, built on `names`) only accepts records whose
//!   `path/stored_name` is a safe path under `files/` outside the internal directories.
//! - Every function is deterministic (called twice, same answer).
//!
//! Input layout: byte 0 = flags (bit 0: trim special characters in `upload_name`, bit 1: use
//! field 3 as the peer id), bytes 1..5 = a time (u32 LE seconds since the epoch), then up to
//! four text fields separated by 0xFF bytes (each read lossily as UTF-8).
#![no_main]

use chrono::{DateTime, Local, NaiveDate, TimeZone};
use fastdfs::http::query::percent_decode_path;
use fastdfs::json::FileInfo;
use fastdfs::store::names::{
    check_component, check_landing, check_name, check_scene, collision_name, custom_dir, default_dir,
    extension, is_internal, namespace_of, upload_name, url_segments, NameError, INTERNAL_DIRS,
    NAME_BYTES_MAX, PATH_BYTES_MAX, RESERVED_TOP_DIRS,
};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

/// Characters go-fastdfs strips with `enable_trim_file_name_special_char` (names.rs).
const SPECIAL: &str = "/\\:*?\"<>|()[]{},;'#@%&$^~=+-!";

/// The documented rule for one safe path component, written independently of names.rs.
fn component_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= NAME_BYTES_MAX
        && s != "."
        && s != ".."
        && !s.contains('/')
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
}

/// The rule for a stored file's name: a safe component in which a backslash is data.
fn name_ok(s: &str) -> bool {
    component_ok(&s.replace('\\', "x"))
}

/// Asserts that `p` is `files/<c1>/.../<cn>` (n >= 1) with safe components (no length limit
/// when `check_len` is false), outside the internal directories (and the reserved ones when
/// `reserved_ok` is false), that the OS reads it as plain relative components, and returns
/// the components.
fn assert_under_files<'a>(p: &'a str, check_len: bool, reserved_ok: bool) -> Vec<&'a str> {
    let rest = p
        .strip_prefix("files/")
        .unwrap_or_else(|| panic!("{p:?} is not under files/"));
    let parts: Vec<&str> = rest.split('/').collect();
    for c in &parts {
        assert!(!c.is_empty(), "{p:?}: empty component");
        assert!(*c != "." && *c != "..", "{p:?}: dot component");
        assert!(!c.chars().any(char::is_control), "{p:?}: control character");
        if check_len {
            assert!(c.len() <= NAME_BYTES_MAX, "{p:?}: component too long");
        }
    }
    assert!(!is_internal(parts[0]), "{p:?}: internal top directory");
    if !reserved_ok {
        assert!(
            !RESERVED_TOP_DIRS.contains(&parts[0]),
            "{p:?}: reserved top directory"
        );
    }
    let path = Path::new(p);
    assert!(path.is_relative());
    assert!(path.starts_with("files"));
    assert!(
        path.components().all(|c| matches!(c, Component::Normal(_))),
        "{p:?}: not plain components"
    );
    assert_eq!(path.components().count(), parts.len() + 1, "{p:?}");
    parts
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// The local time spelled by `<YYYYMMDD>[/<HH>[/<MM>]]` (the rest of the day/hour at 0), if
/// it is a real one.
fn spelled_time(day: &str, hour: Option<&str>, minute: Option<&str>) -> Option<DateTime<Local>> {
    if !digits(day, 8) {
        return None;
    }
    let date = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    let num = |s: Option<&str>| -> Option<u32> {
        match s {
            None => Some(0),
            Some(s) if digits(s, 2) => s.parse().ok(),
            Some(_) => None,
        }
    };
    let naive = date.and_hms_opt(num(hour)?, num(minute)?, 0)?;
    Local.from_local_datetime(&naive).earliest()
}

/// The dated-tree contract of `check_landing` for the scene `scene` at time `t`.
fn check_dated_tree(scene: &str, peer: &str, t: DateTime<Local>) {
    let dir = default_dir(scene, peer, t);
    let parts = assert_under_files(&dir, true, false);
    assert_eq!(parts[0], scene);
    assert!(
        digits(parts[1], 8) && digits(parts[2], 2) && digits(parts[3], 2),
        "{dir:?}"
    );
    if peer.is_empty() {
        assert_eq!(parts.len(), 4, "{dir:?}");
    } else {
        assert_eq!(parts.len(), 5, "{dir:?}");
        assert_eq!(parts[4], peer);
    }
    // No file may take the place of one of these directories...
    for k in 1..parts.len() {
        let parent = format!("files/{}", parts[..k].join("/"));
        assert!(
            check_landing(&parent, parts[k], peer).is_err(),
            "a file {:?} in {parent:?} would block {dir:?}",
            parts[k]
        );
    }
    // ... but files inside the deepest one are what uploads do.
    assert!(check_landing(&dir, "a.txt", peer).is_ok(), "{dir:?}");
}

/// A custom location `dir`/`name` accepted by `check_landing` must not be (or hold) the
/// dated directory of the date/hour/minute it spells.
fn check_landing_semantics(dir: &str, name: &str, peer: &str) {
    if !name_ok(name) {
        return; // Target::check refuses such names before check_landing.
    }
    let file = format!("{dir}/{name}");
    let Some(rel) = file.strip_prefix("files/") else {
        return;
    };
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 2 {
        return;
    }
    let Some(t) = spelled_time(parts[1], parts.get(2).copied(), parts.get(3).copied()) else {
        return;
    };
    let blocked = default_dir(parts[0], peer, t);
    let file = format!("files/{}", parts.join("/"));
    assert!(
        blocked != file && !blocked.starts_with(&format!("{file}/")),
        "a file at {file:?} blocks the dated directory {blocked:?}"
    );
}

fn check_custom_dir(raw: &str, name: &str, peer: &str) {
    let got = custom_dir(raw);
    assert_eq!(got, custom_dir(raw), "not deterministic");
    let dotless: String = raw.chars().filter(|&c| c != '.').collect();
    let trimmed = dotless.trim_matches('/');
    match got {
        Ok(None) => assert!(trimmed.is_empty(), "{raw:?} gave no directory"),
        Ok(Some(d)) => {
            assert!(!trimmed.is_empty());
            let parts = assert_under_files(&d, true, false);
            assert!(!d.contains('.'), "{d:?}");
            assert!(!d.contains('\\'), "{d:?}: a directory never holds a backslash");
            assert!(trimmed.len() <= PATH_BYTES_MAX);
            assert!(d.len() <= "files/".len() + PATH_BYTES_MAX, "{d:?}");
            // go-fastdfs' semantics: the input's components, dots removed, one leading
            // `files/` dropped.
            let rel = trimmed.strip_prefix("files/").unwrap_or(trimmed);
            let model: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(parts, model, "{raw:?}");
            assert_eq!(namespace_of(&d), Some(parts[0]));
            // The download gate reads the same directory back.
            assert_eq!(url_segments(&d["files/".len()..]), Some(parts.clone()));
            // Idempotent (the length limit applies before `files/` is stripped).
            match custom_dir(&d) {
                Ok(Some(again)) => assert_eq!(again, d),
                Err(NameError("path too long")) if d.len() > PATH_BYTES_MAX => {}
                other => panic!("custom_dir({d:?}) = {other:?}, not idempotent"),
            }
            if name_ok(name) {
                if check_landing(&d, name, peer).is_ok() {
                    check_landing_semantics(&d, name, peer);
                }
            }
        }
        Err(NameError(why)) => {
            assert!(!trimmed.is_empty());
            let rel = trimmed.strip_prefix("files/").unwrap_or(trimmed);
            let comps: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
            let explained = trimmed.len() > PATH_BYTES_MAX
                || rel == "files"
                || comps.iter().any(|c| !component_ok(c))
                || comps.first().is_some_and(|c| RESERVED_TOP_DIRS.contains(c));
            assert!(explained, "{raw:?} refused for no reason: {why}");
        }
    }
}

fn check_url_segments(path: &str) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ok = segs
        .iter()
        .all(|s| *s != "." && *s != ".." && !s.chars().any(char::is_control));
    let got = url_segments(path);
    assert_eq!(got, url_segments(path), "not deterministic");
    match got {
        Some(parts) => {
            assert!(ok, "{path:?} accepted");
            assert_eq!(parts, segs);
            let joined = parts.join("/");
            assert_eq!(url_segments(&joined), Some(parts.clone()), "not idempotent");
            if !parts.is_empty() && !is_internal(parts[0]) {
                assert_under_files(&format!("files/{joined}"), false, true);
            }
        }
        None => assert!(!ok, "{path:?} refused"),
    }
}

/// The download gate of `api::download` for the URL path below the group.
fn check_download_gate(raw: &str) {
    let Some(decoded) = percent_decode_path(raw) else {
        return;
    };
    assert!(!decoded.contains('\0'));
    let Some(parts) = url_segments(&decoded) else {
        return;
    };
    match parts.first() {
        None => {}
        Some(first) if is_internal(first) => {}
        _ => {
            let rel = format!("files/{}", parts.join("/"));
            assert_under_files(&rel, false, true);
        }
    }
}

fn check_upload_name(raw: &str, trim: bool) {
    let n = upload_name(raw, trim);
    assert_eq!(n, upload_name(raw, trim), "not deterministic");
    assert!(!n.contains('/'), "{n:?}");
    let base = raw.rsplit('/').next().unwrap();
    if trim {
        assert!(
            !n.chars().any(|c| SPECIAL.contains(c) || c.is_whitespace()),
            "{n:?}"
        );
        assert!(!n.contains(".."), "{raw:?} -> {n:?}");
        // A subsequence of the base name's characters.
        let mut it = base.chars();
        assert!(n.chars().all(|c| it.any(|b| b == c)), "{raw:?} -> {n:?}");
    } else {
        assert_eq!(n, base);
    }
    assert_eq!(upload_name(&n, trim), n, "not idempotent");
    // Target::check: an empty name falls back to <digest><extension of the client's name>;
    // whatever check_component then accepts is one safe component.
    let stored = if n.is_empty() {
        format!("{}{}", "0".repeat(40), extension(raw))
    } else {
        n
    };
    if check_component(&stored).is_ok() {
        assert!(component_ok(&stored), "{stored:?}");
    }
}

fn check_extension(name: &str) {
    let e = extension(name);
    assert_eq!(e, extension(name), "not deterministic");
    match name.rfind('.') {
        Some(i) if name.len() > 1 => assert_eq!(e, name[i..].to_lowercase()),
        _ => assert_eq!(e, ""),
    }
    if !e.is_empty() {
        assert!(e.starts_with('.'));
        assert!(!e[1..].contains('.'), "{e:?}");
    }
    if component_ok(name) {
        assert!(!e.contains('/') && !e.contains('\\'), "{name:?} -> {e:?}");
        assert!(!e.chars().any(char::is_control), "{name:?} -> {e:?}");
    }
}

fn check_collision(name: &str, attempt: u32) {
    let c = collision_name(name, attempt);
    if attempt == 0 {
        assert_eq!(c, name);
    } else {
        let prefix = format!("{}_", attempt - 1);
        if prefix.len() + name.len() <= NAME_BYTES_MAX {
            assert_eq!(c, format!("{prefix}{name}"));
            assert_ne!(c, collision_name(name, attempt - 1), "same candidate twice");
        } else {
            // (A shortened candidate may equal an earlier one, e.g. for `0_0_0_...`; placing
            // it then just moves on to the next attempt.)
            // Too long: a start of the name's stem plus an end of the name (its extension).
            assert!(c.len() <= NAME_BYTES_MAX, "{} bytes", c.len());
            let rest = c.strip_prefix(&prefix).expect("the attempt prefix");
            assert!(
                (0..=rest.len())
                    .filter(|&k| rest.is_char_boundary(k))
                    .any(|k| name.starts_with(&rest[..k]) && name.ends_with(&rest[k..])),
                "{c:?} is not a shortened {name:?}"
            );
        }
    }
    if component_ok(name) {
        assert!(check_component(&c).is_ok(), "{c:?}");
    }
}

fn check_announced(path: &str, name: &str, rename: &str) {
    let info = FileInfo {
        name: name.to_string(),
        rename: rename.to_string(),
        path: path.to_string(),
        md5: "0123456789abcdef0123456789abcdef".into(),
        size: 1,
        ..Default::default()
    };
    let ok = fastdfs::sync::validate_announced(&info).is_ok();
    assert_eq!(ok, fastdfs::sync::validate_announced(&info).is_ok());
    if !ok {
        return;
    }
    let rel = info.rel_path();
    // Records of merged small files (files/haystack/<peer>) are replicated: reserved is fine.
    assert_under_files(&rel, true, true);
    assert!(check_name(info.stored_name()).is_ok());
    assert!(!info.path.contains('\\'), "{rel:?}: a directory never holds a backslash");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let flags = data[0];
    let secs = u32::from_le_bytes(data[1..5].try_into().unwrap());
    let mut fields = data[5..].split(|&b| b == 0xFF).map(String::from_utf8_lossy);
    let a = fields.next().unwrap_or_default();
    let b = fields.next().unwrap_or_default();
    let c = fields.next().unwrap_or_default();
    let d = fields.next().unwrap_or_default();
    let trim = flags & 1 == 1;
    let peer: &str = if flags & 2 == 2 && component_ok(&d) {
        &d
    } else {
        ""
    };

    // Constants: every internal directory is reserved.
    for dir in INTERNAL_DIRS {
        assert!(RESERVED_TOP_DIRS.contains(dir) && is_internal(dir));
    }
    assert_eq!(is_internal(&a), INTERNAL_DIRS.contains(&&*a));

    for s in [&a, &b, &c] {
        // check_component / check_scene against the model.
        let comp = check_component(s);
        assert_eq!(comp, check_component(s), "not deterministic");
        assert_eq!(
            comp.is_ok(),
            component_ok(s),
            "check_component({s:?}) = {comp:?}"
        );
        let name = check_name(s);
        assert_eq!(name.is_ok(), name_ok(s), "check_name({s:?}) = {name:?}");
        let scene = check_scene(s);
        assert_eq!(scene, check_scene(s), "not deterministic");
        let scene_ok = component_ok(s) && !s.contains(':') && !RESERVED_TOP_DIRS.contains(&&**s);
        assert_eq!(scene.is_ok(), scene_ok, "check_scene({s:?}) = {scene:?}");
        if scene_ok {
            assert_under_files(&format!("files/{s}"), true, false);
            if let Some(t) = Local.timestamp_opt(i64::from(secs), 0).single() {
                check_dated_tree(s, peer, t);
            }
        }
        check_url_segments(s);
        check_download_gate(s);
        check_upload_name(s, trim);
        check_extension(s);
    }
    check_custom_dir(&a, &b, peer);
    check_custom_dir(&format!("{a}/{b}"), &c, peer);
    if let Ok(Some(dir)) = custom_dir(&a) {
        if check_landing(&dir, &b, peer).is_ok() {
            check_landing_semantics(&dir, &b, peer);
        }
    }
    // A landing spelled directly (the peer gate passes dirs that custom_dir did not make).
    if check_landing(&a, &b, peer).is_ok() {
        check_landing_semantics(&a, &b, peer);
    }
    check_collision(&b, secs % 1000);
    check_announced(&a, &b, &c);
});
