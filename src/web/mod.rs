//! The web assets of the runtime dir's `static/` (docs/PROTOCOL.md §7.1, §7.2, §5.4): the
//! built-in upload page template and report page, written there at start-up when absent, and
//! the rules of the `G/static/` file server for directories (index, redirects, listing).
//!
//! Owns no I/O on the request path: `api::download::serve_static` opens and reads, this module
//! decides what a directory request answers and builds the listing. The one write,
//! [`install_defaults`], runs once at start-up under the runtime-dir lock.
//!
//! Both pages are ours (go-fastdfs' HTML and JavaScript are not used): plain HTML with the
//! script embedded, nothing loaded from elsewhere, so they work on a node without Internet
//! access and with an empty `static/`.

use std::io::Write;
use std::path::Path;

/// The upload page template (`static/uppy.html`). Its only `%` characters are six `%s`, filled
/// in go-fastdfs' order (CSS base, form action, default scene, JS base twice, tus endpoint), so
/// go-fastdfs' `fmt.Sprintf` fills it as well as [`fill_upload_template`] does.
pub const UPLOAD_TEMPLATE: &str = include_str!("upload.html");

/// The report page (`static/report.html`). Its one `{group}` is replaced by the group prefix
/// (`/group1` or empty) when `G/report` serves it.
pub const REPORT_PAGE: &str = include_str!("report.html");

/// Fills an upload page template: its first six `%s` are, in go-fastdfs' order, the CSS base
/// (`G/static/css`), the form action (`G/upload`), the default scene (HTML-escaped), the JS
/// base (`G/static/js`) twice and the tus endpoint (`G/big/upload/`); `g` is the group prefix.
/// A template with fewer keeps the rest as written.
pub fn fill_upload_template(template: &str, g: &str, scene: &str) -> String {
    let values = [
        format!("{g}/static/css"),
        format!("{g}/upload"),
        html_escape(scene),
        format!("{g}/static/js"),
        format!("{g}/static/js"),
        format!("{g}/big/upload/"),
    ];
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    for v in &values {
        match rest.find("%s") {
            Some(i) => {
                out.push_str(&rest[..i]);
                out.push_str(v);
                rest = &rest[i + 2..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// The files [`install_defaults`] writes into `static/` when absent: (name, content).
pub const DEFAULT_FILES: [(&str, &str); 2] =
    [("uppy.html", UPLOAD_TEMPLATE), ("report.html", REPORT_PAGE)];

/// At most this many entries are listed for one directory of `static/` (the rest are left out).
pub const LISTING_ENTRIES_MAX: usize = 100_000;

/// Writes each of [`DEFAULT_FILES`] into `static_dir` unless a file (or anything else) of that
/// name is there already: an operator's page is never replaced. Each is written to a temp name,
/// fsynced, then linked to its name (`link(2)` never replaces an existing name, so a file that
/// appeared meanwhile wins) and the directory fsynced: a crash leaves the page whole or absent.
/// Returns the names written. Call with the runtime-dir lock held (the temp names are fixed).
pub fn install_defaults(static_dir: &Path) -> std::io::Result<Vec<&'static str>> {
    let mut written = Vec::new();
    for (name, content) in DEFAULT_FILES {
        let target = static_dir.join(name);
        if std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let temp = static_dir.join(format!(".{name}.writing"));
        let _ = std::fs::remove_file(&temp); // a crash's leftover
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        drop(f);
        let linked = std::fs::hard_link(&temp, &target);
        std::fs::remove_file(&temp)?;
        match linked {
            Ok(()) => written.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if !written.is_empty() {
        std::fs::File::open(static_dir)?.sync_all()?;
    }
    Ok(written)
}

/// A redirect of the `G/static/` file server (Go's `http.FileServer` rules), always relative
/// to the request's path so it stays on the same host and prefix.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `…/index.html` goes to `./` (the directory serves it).
    IndexToDirectory,
    /// A directory without its trailing slash goes to `<name>/`.
    AddSlash,
    /// A file asked for with a trailing slash goes to `../<name>`.
    DropSlash,
}

impl Redirect {
    /// The `Location` (without the query, which the caller appends); `raw_last_segment` is the
    /// request path's last segment as sent (still percent-encoded). A backslash in it (data in
    /// a name) is escaped: browsers read `\` in a URL as `/`, `\\host/` as another host.
    pub fn location(&self, raw_last_segment: &str) -> String {
        let raw_last_segment = raw_last_segment.replace('\\', "%5C");
        match self {
            Redirect::IndexToDirectory => "./".to_string(),
            Redirect::AddSlash => format!("{raw_last_segment}/"),
            Redirect::DropSlash => format!("../{raw_last_segment}"),
        }
    }
}

/// The redirect that applies before anything is opened: `…/index.html` goes to `./`.
pub fn before_open(decoded_last_segment: Option<&str>) -> Option<Redirect> {
    (decoded_last_segment == Some("index.html")).then_some(Redirect::IndexToDirectory)
}

/// The redirect that applies once the path is known to be a directory or not: a directory
/// needs a trailing slash (`static/` itself always has one), a file must not have one.
pub fn after_open(is_dir: bool, trailing_slash: bool, is_root: bool) -> Option<Redirect> {
    match (is_dir, trailing_slash) {
        (true, false) if !is_root => Some(Redirect::AddSlash),
        (false, true) => Some(Redirect::DropSlash),
        _ => None,
    }
}

/// HTML-escapes text for an element body or a double-quoted attribute, as Go's `htmlReplacer`
/// (its directory listings and redirect bodies): `"` as `&#34;`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The relative link to a directory entry as Go's `url.URL{Path: name}.String()` writes it:
/// path-escaped per segment, `./` in front only when the first segment has a `:` (else it
/// would read as a scheme, e.g. `javascript:`).
pub fn entry_href(name: &str) -> String {
    crate::http::query::listing_href(name)
}

/// A directory listing in Go's `http.FileServer` format: `<pre>`, one `<a href="…">…</a>` line
/// per entry sorted by name, directories with a trailing `/`, names HTML-escaped (the hrefs
/// too, as attribute values). `entries` are (name, is_dir).
pub fn listing(mut entries: Vec<(String, bool)>) -> String {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.truncate(LISTING_ENTRIES_MAX);
    let mut body = String::from("<pre>\n");
    for (name, is_dir) in entries {
        let shown = if is_dir { format!("{name}/") } else { name };
        body.push_str("<a href=\"");
        body.push_str(&html_escape(&entry_href(&shown)));
        body.push_str("\">");
        body.push_str(&html_escape(&shown));
        body.push_str("</a>\n");
    }
    body.push_str("</pre>\n");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_template_has_exactly_six_placeholders_and_no_other_percent() {
        // Go's fmt.Sprintf would turn any other `%` into `%!x(MISSING)`-style noise.
        assert_eq!(UPLOAD_TEMPLATE.matches('%').count(), 6);
        assert_eq!(UPLOAD_TEMPLATE.matches("%s").count(), 6);
    }

    #[test]
    fn upload_template_placeholders_in_go_fastdfs_order() {
        let filled = fill_upload_template(UPLOAD_TEMPLATE, "/g1", "sc<e>ne");
        let at = |s: &str| filled.find(s).unwrap_or_else(|| panic!("{s} missing"));
        let css = at("\"/g1/static/css\"");
        let action = at("action=\"/g1/upload\"");
        let scene = at("value=\"sc&lt;e&gt;ne\"");
        let js = at("\"/g1/static/js\"");
        let tus = at("\"/g1/big/upload/\"");
        assert!(css < action && action < scene && scene < js && js < tus);
        assert_eq!(filled.matches("/g1/static/js").count(), 2);
        assert!(!filled.contains("%s"));
    }

    #[test]
    fn report_has_one_group_placeholder_and_nothing_external() {
        assert_eq!(REPORT_PAGE.matches("{group}").count(), 1);
        for page in [REPORT_PAGE, UPLOAD_TEMPLATE] {
            assert!(!page.contains("http://") && !page.contains("https://"));
            assert!(!page.contains("<script src"));
            assert!(!page.contains("innerHTML"), "strings go in as text only");
        }
    }

    #[test]
    fn install_writes_absent_pages_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.html"), "mine").unwrap();
        assert_eq!(install_defaults(dir.path()).unwrap(), ["uppy.html"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("uppy.html")).unwrap(),
            UPLOAD_TEMPLATE
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("report.html")).unwrap(),
            "mine"
        );
        assert!(install_defaults(dir.path()).unwrap().is_empty());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temp file left");
    }

    #[test]
    fn directory_rules() {
        assert_eq!(
            before_open(Some("index.html")),
            Some(Redirect::IndexToDirectory)
        );
        assert_eq!(before_open(Some("a.html")), None);
        assert_eq!(before_open(None), None);
        assert_eq!(after_open(true, false, false), Some(Redirect::AddSlash));
        assert_eq!(after_open(true, false, true), None);
        assert_eq!(after_open(true, true, false), None);
        assert_eq!(after_open(false, true, false), Some(Redirect::DropSlash));
        assert_eq!(after_open(false, false, false), None);
        assert_eq!(Redirect::IndexToDirectory.location("index.html"), "./");
        assert_eq!(Redirect::AddSlash.location("a%20b"), "a%20b/");
        assert_eq!(Redirect::DropSlash.location("x.css"), "../x.css");
        assert_eq!(Redirect::AddSlash.location("\\\\h"), "%5C%5Ch/");
    }

    #[test]
    fn listing_is_go_format() {
        let body = listing(vec![
            ("b c.txt".into(), false),
            ("a&<x>".into(), false),
            ("javascript:alert(1)".into(), false),
            ("sub".into(), true),
            ("é".into(), false),
        ]);
        assert_eq!(
            body,
            "<pre>\n\
             <a href=\"a&amp;%3Cx%3E\">a&amp;&lt;x&gt;</a>\n\
             <a href=\"b%20c.txt\">b c.txt</a>\n\
             <a href=\"./javascript:alert%281%29\">javascript:alert(1)</a>\n\
             <a href=\"sub/\">sub/</a>\n\
             <a href=\"%C3%A9\">é</a>\n\
             </pre>\n"
        );
    }
}
