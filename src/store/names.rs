//! Turning client-supplied names into safe storage paths (docs/PROTOCOL.md §4).
//!
//! Architecture invariant: every path component that comes from a client (file name,
//! `filename`, `scene`, custom `path`) passes through this module and is either a safe
//! relative path under `files/` or rejected: no `..`, no absolute paths, no NUL or control
//! characters, no backslashes in directories, and never one of our internal directories
//! (`_tmp`, `_big`, `haystack`). This closes docs/DEFECTS.md #1-#3.
//!
//! `/` is the only separator (Linux, as go-fastdfs there, SPEC §8.2): a backslash is an
//! ordinary byte of one component. File names keep it as go-fastdfs does (`check_name`),
//! S3 keys in their last segment, URL segments (`%5C`, always escaped where a URL is built);
//! directories and scenes keep refusing it (`check_component`): nothing ever splits a path
//! on it. go-fastdfs accepts it in directories too; we do not, because a directory decides a
//! namespace (the scene a Google code guards is the first one) and browsers, WHATWG URL
//! parsers and Windows nodes split on it: `prot\x` is under `prot` to them, its own scene to us.

use std::fmt;

/// Server-internal directories under `files/`: temp files, tus state, resize cache. Never
/// served, listed, or written by clients.
pub const INTERNAL_DIRS: &[&str] = &["_tmp", "_big", "_cache", "_s3"];
/// Top directories no client-chosen name may use: the internal ones, `haystack` (merged
/// small files, which are served by their URLs but written only by the server) and `static`
/// (`G/static/` is the route of the web assets: a file there could never be downloaded).
pub const RESERVED_TOP_DIRS: &[&str] = &["_tmp", "_big", "_cache", "_s3", "haystack", "static"];

/// Whether a route takes the download URL of `files/<parts...>`: `G/static/...` (the web
/// assets) and `G/big/upload...` (tus). A file stored there would be answered by the route,
/// never downloaded.
pub fn route_takes(parts: &[&str]) -> bool {
    matches!(parts, ["static", ..] | ["big", "upload", ..])
}

/// Whether a first directory under `files/` is server-internal.
pub fn is_internal(first: &str) -> bool {
    INTERNAL_DIRS.contains(&first)
}
/// Longest single path component in bytes (ext4's NAME_MAX).
pub const NAME_BYTES_MAX: usize = 255;
/// Longest custom path in bytes.
pub const PATH_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub &'static str);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Characters go-fastdfs strips when `enable_trim_file_name_special_char` is on.
const SPECIAL: &str = "/\\:*?\"<>|()[]{},;'#@%&$^~=+-!";

/// The final component of a multipart filename, optionally trimmed of special characters
/// exactly as go-fastdfs does (`my file-(1)#x.txt` -> `myfile1x.txt`).
pub fn upload_name(raw: &str, trim_special: bool) -> String {
    let base = raw.rsplit('/').next().unwrap_or(raw);
    if !trim_special {
        return base.to_string();
    }
    self::trim_special(base)
}

/// `name` without go-fastdfs' special characters and whitespace, then without `...` and `..`
/// (`a b/c-(1).txt` -> `abc1.txt`): its filter of uploaded names, also applied to the `name`
/// offered for a merged small file.
pub fn trim_special(name: &str) -> String {
    let special = |c: char| c.is_ascii() && SPECIAL.as_bytes().contains(&(c as u8));
    let kept: String = name
        .chars()
        .filter(|c| !special(*c) && !c.is_whitespace())
        .collect();
    if kept.contains("..") {
        kept.replace("...", "").replace("..", "")
    } else {
        kept
    }
}

/// The `/`-separated segments of `path`, empty ones included, as `str::split('/')` gives
/// them, found byte by byte: `split` runs a searcher per segment, which showed in every
/// request's profile. A `/` is ASCII, so every cut is on a character boundary.
pub fn slash_segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The non-empty segments of a URL or store path, or None when one is `.`, `..` or holds a
/// control character (the download, static and lookup paths all use this).
pub fn url_segments(path: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    for seg in slash_segments(path).filter(|s| !s.is_empty()) {
        if !url_segment_ok(seg) {
            return None;
        }
        parts.push(seg);
    }
    Some(parts)
}

/// One non-empty segment of [`url_segments`]: not `.` or `..`, no control character
/// (checked byte-wise for ASCII, the common case). A backslash is data: a stored file's name
/// may hold one (`check_name`).
pub fn url_segment_ok(seg: &str) -> bool {
    if seg == "." || seg == ".." {
        return false;
    }
    // One pass over ASCII (every download's segments); C1 controls need the characters.
    for b in seg.bytes() {
        if b >= 0x80 {
            return !seg.chars().any(char::is_control);
        }
        if b < 0x20 || b == 0x7f {
            return false;
        }
    }
    true
}

/// A single safe path component (a directory, a scene), or an error saying why not.
pub fn check_component(name: &str) -> Result<(), NameError> {
    if name.contains('\\') {
        return Err(NameError("name must not contain a path separator"));
    }
    check_name(name)
}

/// A stored file's name (an upload's, a tus upload's `filename`, a peer's): a safe component
/// that may hold a backslash, as go-fastdfs keeps it (an ordinary byte on Linux, never split
/// on; URLs escape it as `%5C`).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError("empty name"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(NameError("name too long"));
    }
    if name == "." || name == ".." {
        return Err(NameError("name must not be . or .."));
    }
    if name.contains('/') {
        return Err(NameError("name must not contain a path separator"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(NameError("name must not contain control characters"));
    }
    Ok(())
}

/// A scene name: one safe component, no `:` (used as the google-secret separator).
pub fn check_scene(scene: &str) -> Result<(), NameError> {
    check_component(scene)?;
    if scene.contains(':') {
        return Err(NameError("scene must not contain ':'"));
    }
    if RESERVED_TOP_DIRS.contains(&scene) {
        return Err(NameError("scene name is reserved"));
    }
    Ok(())
}

/// The custom `path` upload parameter: go-fastdfs removes every `.` and trims `/`; we then
/// require safe components and refuse internal directories. Returns the directory relative
/// to the runtime dir (`files/...`), or None for an empty path (use the default layout).
pub fn custom_dir(raw: &str) -> Result<Option<String>, NameError> {
    let cleaned: String = raw.chars().filter(|&c| c != '.').collect();
    let cleaned = cleaned.trim_matches('/');
    if cleaned.is_empty() {
        return Ok(None);
    }
    if cleaned.len() > PATH_BYTES_MAX {
        return Err(NameError("path too long"));
    }
    // Decided on the components (empty ones dropped), so `files//files` and `files/files`
    // agree. One leading `files` is the root the client may spell out; `files` alone names
    // the root itself, which is no directory under it.
    let mut parts = Vec::new();
    for part in cleaned.split('/') {
        if part.is_empty() {
            continue;
        }
        check_component(part)?;
        parts.push(part);
    }
    if parts.first() == Some(&"files") {
        if parts.len() == 1 {
            return Err(NameError("path must name a directory under files/"));
        }
        parts.remove(0);
    }
    match parts.first() {
        None => return Ok(None),
        Some(first) if RESERVED_TOP_DIRS.contains(first) => {
            return Err(NameError("path names a reserved directory"))
        }
        _ => {}
    }
    Ok(Some(format!("files/{}", parts.join("/"))))
}

/// Whether `s` is `n` ASCII digits (the shape of a date, hour or minute directory).
fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// The landing gate for a client-chosen location (custom `path` + stored name): a file may not
/// take a place that the server's dated tree uses as a directory,
/// `files/<any>/<YYYYMMDD>[/<HH>[/<MM>[/<peer_id>]]]`, or it would block every upload of that
/// day, hour or minute (ENOTDIR). Directories of that shape are fine: they are what the server
/// creates anyway. `dir` is `files/...`.
pub fn check_landing(dir: &str, name: &str, peer_id: &str) -> Result<(), NameError> {
    let rel = dir.strip_prefix("files/").unwrap_or(dir);
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|s| !s.is_empty())
        .chain(std::iter::once(name))
        .collect();
    if route_takes(&parts) {
        return Err(NameError(
            "a route takes this path (static/, big/upload/): its URL would not download the file",
        ));
    }
    let skeleton = match parts.as_slice() {
        [_, day] => digits(day, 8),
        [_, day, hour] => digits(day, 8) && digits(hour, 2),
        [_, day, hour, minute] => digits(day, 8) && digits(hour, 2) && digits(minute, 2),
        [_, day, hour, minute, id] => {
            !peer_id.is_empty()
                && *id == peer_id
                && digits(day, 8)
                && digits(hour, 2)
                && digits(minute, 2)
        }
        _ => false,
    };
    if skeleton {
        return Err(NameError(
            "a file cannot take the place of a dated directory (<scene>/<YYYYMMDD>/<HH>/<MM>)",
        ));
    }
    Ok(())
}

/// The scene whose namespace a custom directory (`files/<first>/...`) writes into.
pub fn namespace_of(dir: &str) -> Option<&str> {
    let rel = dir.strip_prefix("files/").unwrap_or(dir);
    rel.split('/').find(|s| !s.is_empty())
}

/// Lower-cased extension with its dot (`.png`), or "" when there is none.
pub fn extension(name: &str) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 || name.len() > 1 => name[i..].to_lowercase(),
        _ => String::new(),
    }
}

/// `YYYYMMDD` of a local time (chrono's `%Y%m%d` for years 0 to 9999), written without
/// chrono's format parser: every stored record is counted under its day.
pub fn day_stamp(t: &chrono::DateTime<chrono::Local>) -> String {
    use chrono::Datelike;
    let mut out = String::with_capacity(8);
    push_digits::<4>(&mut out, t.year().rem_euclid(10_000) as u32);
    push_digits::<2>(&mut out, t.month());
    push_digits::<2>(&mut out, t.day());
    out
}

/// `n` in exactly `N` decimal digits (its lowest ones).
fn push_digits<const N: usize>(out: &mut String, n: u32) {
    out.extend(crate::codec::padded_digits::<N>(u64::from(n)).map(char::from));
}

/// go-fastdfs' default directory: `files/<scene>/<YYYYMMDD>/<HH>/<MM>[/<peer_id>]`, local time.
pub fn default_dir(scene: &str, peer_id: &str, now: chrono::DateTime<chrono::Local>) -> String {
    use chrono::Timelike;
    // `%Y%m%d/%H/%M` without chrono's format parser (every upload names its directory).
    let mut out = String::with_capacity(scene.len() + peer_id.len() + 24);
    out.push_str("files/");
    out.push_str(scene);
    out.push('/');
    out.push_str(&day_stamp(&now));
    out.push('/');
    push_digits::<2>(&mut out, now.hour());
    out.push('/');
    push_digits::<2>(&mut out, now.minute());
    if !peer_id.is_empty() {
        out.push('/');
        out.push_str(peer_id);
    }
    out
}

/// A name for attempt `i` of a collision: `<i-1>_<name>` (never accumulating; docs/DEFECTS.md
/// #20). A name too long for the prefix keeps its extension and loses the end of its stem (at
/// a character boundary), so every candidate is a valid name of at most `NAME_BYTES_MAX` bytes.
pub fn collision_name(name: &str, attempt: u32) -> String {
    if attempt == 0 {
        return name.to_string();
    }
    let prefix = format!("{}_", attempt - 1);
    let room = NAME_BYTES_MAX - prefix.len();
    if name.len() <= room {
        return format!("{prefix}{name}");
    }
    let ext = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= room / 2 => &name[i..],
        _ => "",
    };
    let stem = &name[..name.len() - ext.len()];
    let mut cut = room - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{prefix}{}{ext}", &stem[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_chrono_formats_them() {
        use chrono::TimeZone;
        for ts in [
            0,
            86_399,
            951_782_400,
            1_764_763_200,
            1_767_225_599,
            4_102_444_800,
        ] {
            let t = chrono::Local.timestamp_opt(ts, 0).single().unwrap();
            assert_eq!(day_stamp(&t), t.format("%Y%m%d").to_string());
            assert_eq!(
                default_dir("default", "", t),
                format!("files/default/{}", t.format("%Y%m%d/%H/%M"))
            );
            assert_eq!(
                default_dir("s", "7", t),
                format!("files/s/{}/7", t.format("%Y%m%d/%H/%M"))
            );
        }
    }

    #[test]
    fn special_characters_are_trimmed_like_go() {
        assert_eq!(upload_name("my file-(1)#x.txt", true), "myfile1x.txt");
        assert_eq!(upload_name("dir/a..b.txt", true), "ab.txt");
        assert_eq!(upload_name("中文 名.txt", true), "中文名.txt");
        assert_eq!(upload_name("a b.txt", false), "a b.txt");
        assert_eq!(trim_special("a b/c-(1).txt"), "abc1.txt");
        assert_eq!(trim_special("\"q\"\t.txt"), "q.txt");
    }

    #[test]
    fn traversal_names_are_refused() {
        assert!(check_component("../../etc/passwd").is_err());
        assert!(check_component("..").is_err());
        assert!(check_component("a\\b").is_err());
        assert!(check_component("a\nb").is_err());
        // A file name keeps a backslash (one component on Linux), nothing else.
        assert!(check_name("a\\b.txt").is_ok());
        assert!(check_name("..\\..\\x").is_ok());
        for bad in ["..", ".", "a/b", "a\nb", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_component("").is_err());
        assert!(check_component("ok.txt").is_ok());
    }

    #[test]
    fn scenes_are_single_safe_components() {
        assert!(check_scene("../../../../tmp/pwn").is_err());
        assert!(check_scene("_tmp").is_err());
        assert!(check_scene("photos").is_ok());
    }

    #[test]
    fn custom_paths_drop_dots_and_stay_under_files() {
        assert_eq!(custom_dir("/a/b/").unwrap(), Some("files/a/b".into()));
        assert_eq!(custom_dir("../../tmp").unwrap(), Some("files/tmp".into()));
        assert_eq!(custom_dir("files/x").unwrap(), Some("files/x".into()));
        assert_eq!(custom_dir("...").unwrap(), None);
        assert!(custom_dir("_tmp/x").is_err());
        assert!(custom_dir("a/\u{0}/b").is_err());
    }

    #[test]
    fn custom_paths_are_decided_on_components_and_idempotent() {
        for spelling in [
            "files/files",
            "files//files",
            "/files//files/",
            "files/./files",
        ] {
            assert_eq!(
                custom_dir(spelling).unwrap(),
                Some("files/files".into()),
                "{spelling}"
            );
        }
        assert_eq!(custom_dir("//files//x").unwrap(), Some("files/x".into()));
        assert!(custom_dir("files").is_err());
        assert!(custom_dir("/files//").is_err());
    }

    #[test]
    fn url_segments_refuse_dot_segments_and_controls_and_keep_backslashes() {
        assert_eq!(url_segments("/a//b/"), Some(vec!["a", "b"]));
        assert_eq!(url_segments("a/../b"), None);
        assert_eq!(url_segments("a/./b"), None);
        assert_eq!(url_segments("a\\b/..\\c"), Some(vec!["a\\b", "..\\c"]));
        assert_eq!(url_segments("a/\u{7}"), None);
        assert_eq!(url_segments(""), Some(vec![]));
    }

    #[test]
    fn slash_segments_are_those_of_split() {
        for p in [
            "",
            "/",
            "//",
            "a",
            "/a",
            "a/",
            "/a//b/",
            "é/日/x",
            "a/../b/./c",
        ] {
            let ours: Vec<&str> = slash_segments(p).collect();
            let split: Vec<&str> = p.split('/').collect();
            assert_eq!(ours, split, "{p:?}");
        }
    }

    #[test]
    fn a_url_segment_is_judged_as_by_its_definition() {
        // The definition: not `.` or `..`, no control character.
        let by_definition =
            |seg: &str| !(seg == "." || seg == ".." || seg.chars().any(char::is_control));
        let alphabet = [
            'a', '.', '\\', '\u{7}', '\u{7f}', '\u{85}', '\u{9f}', 'é', '日', ' ', '%',
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 5) as usize;
            let seg: String = (0..len)
                .map(|i| alphabet[((seed >> (8 * i + 3)) % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(url_segment_ok(&seg), by_definition(&seg), "{seg:?}");
        }
    }

    #[test]
    fn files_never_take_the_place_of_dated_directories() {
        // A day, an hour, a minute of any scene: refused as file names.
        assert!(check_landing("files/default", "20261203", "").is_err());
        assert!(check_landing("files/default/20261202", "16", "").is_err());
        assert!(check_landing("files/default/20261202/16", "43", "").is_err());
        assert!(check_landing("files/default/20261202/16/43", "9", "9").is_err());
        // Files inside those directories, and other shapes, are fine.
        assert!(check_landing("files/default/20261202/16/43", "43", "").is_ok());
        assert!(check_landing("files/default/20261202/16/43", "x", "9").is_ok());
        assert!(check_landing("files/default", "2026120", "").is_ok());
        assert!(check_landing("files/default/20261202", "1a", "").is_ok());
        assert!(check_landing("files/a/b/20261202", "16", "").is_ok());
        // Places whose URLs a route answers.
        assert!(check_landing("files/static", "x.css", "").is_err());
        assert!(check_landing("files/static/a", "x", "").is_err());
        assert!(check_landing("files/big/upload", "x", "").is_err());
        assert!(check_landing("files/big", "upload", "").is_err());
        assert!(check_landing("files/big", "x", "").is_ok());
        assert!(check_landing("files/a/static", "x", "").is_ok());
        assert!(check_scene("static").is_err());
        assert_eq!(namespace_of("files/prot/x"), Some("prot"));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a.PNG"), ".png");
        assert_eq!(extension("noext"), "");
        assert_eq!(extension("a.tar.gz"), ".gz");
    }

    #[test]
    fn collisions_do_not_accumulate() {
        assert_eq!(collision_name("a.txt", 0), "a.txt");
        assert_eq!(collision_name("a.txt", 1), "0_a.txt");
        assert_eq!(collision_name("a.txt", 2), "1_a.txt");
        // A 255-byte name still gives valid candidates: the stem shrinks, the extension stays.
        let long = format!("{}.jpg", "é".repeat(125));
        assert_eq!(long.len(), 254);
        for attempt in [1, 2, 11, 1000] {
            let c = collision_name(&long, attempt);
            assert!(c.len() <= NAME_BYTES_MAX, "{attempt}: {} bytes", c.len());
            assert!(c.starts_with(&format!("{}_é", attempt - 1)) && c.ends_with("é.jpg"));
            assert!(check_component(&c).is_ok());
        }
        assert_ne!(collision_name(&long, 1), collision_name(&long, 2));
    }
}
