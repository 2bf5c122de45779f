//! go-fastdfs' JSON wire shapes (docs/PROTOCOL.md §1): FileInfo, FileResult, the envelope, and the two
//! output styles: compact (struct field order) and pretty (keys sorted at every level,
//! 2-space indent). Both escape `&`, `<`, `>` as `\u0026`, `\u003c`, `\u003e` like Go and have
//! no trailing newline.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The metadata record (docs/PROTOCOL.md §1). Field order is the compact wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub rename: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub md5: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub peers: Option<Vec<String>>,
    #[serde(default)]
    pub scene: String,
    #[serde(rename = "timeStamp", default)]
    pub time_stamp: i64,
    /// Where the content is: `OFFSET_PLAIN` (its own file at `rel_path`), `OFFSET_MIGRATED`
    /// (indexed in place by migration), or >= 0 (inside a merged small-file container).
    /// Read it through `content()`.
    #[serde(default)]
    pub offset: i64,
    /// What an S3 client stored with the object (absent for go-fastdfs uploads, and then not
    /// written: go-fastdfs peers and clients see the record they know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<Box<S3Attrs>>,
}

/// An S3 object's own attributes, kept in its record (docs/S3.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Attrs {
    /// The ETag without quotes: the content's md5 hex, or `<md5 of part md5s>-<parts>`.
    #[serde(default)]
    pub etag: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_disposition: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_encoding: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cache_control: String,
    /// `x-amz-meta-*` headers: lower-case names without the prefix, values as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meta: Vec<(String, String)>,
    /// Modification time, unix milliseconds (S3's Last-Modified).
    #[serde(default)]
    pub modified_ms: i64,
    /// The checksum a single PUT was sent with and verified against, or a multipart object's
    /// (from its parts'): S3's algorithm name (`CRC32`, `SHA256`...) and the base64 digest
    /// (`<b64>-<parts>` for a composite one); empty when there is none (objects stored
    /// without one or before checksums were kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum_algorithm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
    /// `COMPOSITE` for a multipart object's composite checksum; empty for a checksum of the
    /// whole object (S3's FULL_OBJECT).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum_type: String,
    /// The parts of a multipart object completed with checksums (GetObjectAttributes'
    /// `ObjectParts`): `<number>:<size>:<base64 checksum>`, comma-separated, in part order;
    /// empty for any other object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parts: String,
}

/// `FileInfo.offset` of a file stored as its own file.
pub const OFFSET_PLAIN: i64 = -1;
/// `FileInfo.offset` of a file indexed in place by migration (go-fastdfs' `-2`).
pub const OFFSET_MIGRATED: i64 = -2;

/// Where a record's content is, from its `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Its own file at `rel_path`.
    Plain,
    /// Its own file, indexed in place by migration.
    Migrated,
    /// Inside a merged small-file container, at this byte offset.
    Merged(u64),
    /// Any other negative value (never written by fastdfs-rs).
    Unknown,
}

impl FileInfo {
    pub fn content(&self) -> Content {
        match self.offset {
            OFFSET_PLAIN => Content::Plain,
            OFFSET_MIGRATED => Content::Migrated,
            o if o >= 0 => Content::Merged(o as u64),
            _ => Content::Unknown,
        }
    }

    /// The ETag of a record: the S3 one, else its md5 (the content's, with dedup on).
    pub fn etag(&self) -> &str {
        match &self.s3 {
            Some(a) if !a.etag.is_empty() => &a.etag,
            _ => &self.md5,
        }
    }

    /// Whether the content is inside a merged small-file container.
    pub fn is_merged(&self) -> bool {
        matches!(self.content(), Content::Merged(_))
    }

    /// Name of the file on disk: `rename` when set, else `name`.
    pub fn stored_name(&self) -> &str {
        if self.rename.is_empty() {
            &self.name
        } else {
            &self.rename
        }
    }

    /// The version of a record among records of the same id: (modification time in ms, ETag)
    /// for an S3 object (its key can be written again), the time stamp for the others.
    pub fn version(&self) -> (i64, &str) {
        match &self.s3 {
            Some(a) => (a.modified_ms, a.etag.as_str()),
            None => (self.time_stamp.saturating_mul(1000), ""),
        }
    }

    /// Whether this record replaces `other` of the same id: an S3 object written again since
    /// (the later write wins everywhere, ties broken by ETag), or, with dedup off (the id is
    /// the MD5 of the path), a later upload to the same path: newer, or of the same second
    /// with another size. Content-addressed records of one id have one content and never
    /// replace each other.
    pub fn supersedes(&self, other: &FileInfo) -> bool {
        if self.s3.is_some() {
            return self.version() > other.version();
        }
        self.is_path_keyed()
            && (self.time_stamp > other.time_stamp
                || (self.time_stamp == other.time_stamp && self.size != other.size))
    }

    /// Whether the record's id is the MD5 of its path (stored with dedup off), not of its
    /// content.
    pub fn is_path_keyed(&self) -> bool {
        self.md5 == crate::codec::md5_hex(&self.rel_path())
    }

    /// `path/stored_name` relative to the runtime dir, e.g. `files/default/.../a.txt`.
    pub fn rel_path(&self) -> String {
        let name = self.stored_name();
        let mut out = String::with_capacity(self.path.len() + 1 + name.len());
        out.push_str(&self.path);
        out.push('/');
        out.push_str(name);
        out
    }
}

/// The upload result (docs/PROTOCOL.md §1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileResult {
    pub url: String,
    pub md5: String,
    pub path: String,
    pub domain: String,
    pub scene: String,
    pub size: i64,
    pub mtime: i64,
    pub scenes: String,
    pub retmsg: String,
    pub retcode: i64,
    pub src: String,
}

impl FileResult {
    /// `pretty(self)`, written directly: every upload answers with it, and the generic path
    /// (a `Value`, its keys sorted, then printed) cost about 4 % of a merged upload's CPU.
    pub fn pretty(&self) -> String {
        enum V<'a> {
            S(&'a str),
            I(i64),
        }
        // Keys in byte order, as `pretty` sorts them.
        let fields = [
            ("domain", V::S(&self.domain)),
            ("md5", V::S(&self.md5)),
            ("mtime", V::I(self.mtime)),
            ("path", V::S(&self.path)),
            ("retcode", V::I(self.retcode)),
            ("retmsg", V::S(&self.retmsg)),
            ("scene", V::S(&self.scene)),
            ("scenes", V::S(&self.scenes)),
            ("size", V::I(self.size)),
            ("src", V::S(&self.src)),
            ("url", V::S(&self.url)),
        ];
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\n");
        for (i, (key, value)) in fields.iter().enumerate() {
            out.extend_from_slice(b"  \"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\": ");
            match value {
                V::S(s) => serde_json::to_writer(&mut out, s).expect("a string serializes"),
                V::I(n) => out.extend_from_slice(n.to_string().as_bytes()),
            }
            out.extend_from_slice(if i + 1 < fields.len() { b",\n" } else { b"\n" });
        }
        out.push(b'}');
        escape_html(String::from_utf8(out).expect("serde_json writes UTF-8"))
    }
}

/// The envelope `{message, status, data}` (docs/PROTOCOL.md §1).
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<T: Serialize> {
    pub message: String,
    pub status: String,
    pub data: Option<T>,
}

pub fn envelope<T: Serialize>(status: &str, message: &str, data: Option<T>) -> Envelope<T> {
    Envelope {
        message: message.to_string(),
        status: status.to_string(),
        data,
    }
}

fn escape_html(s: String) -> String {
    // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8: a byte scan finds every case.
    let special = |b: &u8| matches!(b, b'<' | b'>' | b'&' | 0xE2);
    let Some(first) = s.bytes().position(|b| special(&b)) else {
        return s;
    };
    // One pass (an upload's answer has a `&` in its url). Safe on serialized JSON: these
    // characters can only occur inside strings. Every cut is before an ASCII byte or the
    // lead byte of a three-byte character, so on a character boundary.
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 16);
    let (mut done, mut i) = (0, first);
    while i < b.len() {
        let (with, len) = match (b[i], b.get(i + 1..i + 3)) {
            (b'&', _) => ("\\u0026", 1),
            (b'<', _) => ("\\u003c", 1),
            (b'>', _) => ("\\u003e", 1),
            (0xE2, Some([0x80, 0xA8])) => ("\\u2028", 3),
            (0xE2, Some([0x80, 0xA9])) => ("\\u2029", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[done..i]);
        out.push_str(with);
        i += len;
        done = i;
    }
    out.push_str(&s[done..]);
    out
}

/// Single-line JSON in struct field order.
pub fn compact<T: Serialize>(v: &T) -> String {
    escape_html(serde_json::to_string(v).expect("plain data serializes"))
}

/// Go's re-marshalled indented form: keys sorted at every level, 2-space indent.
pub fn pretty<T: Serialize>(v: &T) -> String {
    let mut value = serde_json::to_value(v).expect("plain data serializes");
    sort_keys(&mut value);
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer_pretty(&mut out, &value).expect("a Value serializes");
    escape_html(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// Sorts the keys of every object, in place (upload answers are built per request).
fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_checksums_are_optional_in_records() {
        // A record written before checksums were kept reads with none, and one without a
        // checksum is written as before (no new keys).
        let old = r#"{"etag":"abc","content_type":"text/plain","modified_ms":5}"#;
        let attrs: S3Attrs = serde_json::from_str(old).unwrap();
        assert_eq!(
            (attrs.checksum_algorithm.as_str(), attrs.checksum.as_str()),
            ("", "")
        );
        assert_eq!(serde_json::to_string(&attrs).unwrap(), old);
        let with = S3Attrs {
            checksum_algorithm: "CRC32".into(),
            checksum: "NSRBwg==".into(),
            ..attrs
        };
        let text = serde_json::to_string(&with).unwrap();
        assert_eq!(serde_json::from_str::<S3Attrs>(&text).unwrap(), with);
    }

    #[test]
    fn empty_file_info_compact_matches_go() {
        assert_eq!(
            compact(&FileInfo::default()),
            r#"{"name":"","rename":"","path":"","md5":"","size":0,"peers":null,"scene":"","timeStamp":0,"offset":0}"#
        );
    }

    #[test]
    fn an_upload_result_written_directly_is_the_generic_pretty_form() {
        let plain = FileResult {
            url: "http://127.0.0.1:8080/group1/default/20261203/12/00/1/a.txt".into(),
            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
            path: "/group1/default/20261203/12/00/1/a.txt".into(),
            domain: "http://127.0.0.1:8080".into(),
            scene: "default".into(),
            size: 4096,
            mtime: 1_764_763_200,
            scenes: "default".into(),
            retmsg: String::new(),
            retcode: 0,
            src: "/group1/default/20261203/12/00/1/a.txt".into(),
        };
        let odd = FileResult {
            url: "http://h/a?name=<x>&download=1".into(),
            path: "/g/\u{2028}\"quote\"\\back\nline\u{7f}\u{1}é中".into(),
            size: -1,
            retcode: i64::MIN,
            ..plain.clone()
        };
        for r in [FileResult::default(), plain, odd] {
            assert_eq!(r.pretty(), pretty(&r));
        }
    }

    #[test]
    fn pretty_sorts_keys_and_escapes_html() {
        let r = FileResult {
            url: "http://h/a?name=x&download=1".into(),
            ..Default::default()
        };
        let out = pretty(&envelope("ok", "", Some(r)));
        assert!(
            out.starts_with("{\n  \"data\": {\n    \"domain\": \"\",\n    \"md5\""),
            "{out}"
        );
        assert!(out.contains("x\\u0026download=1"));
        assert!(out.ends_with("\"status\": \"ok\"\n}"));
    }

    #[test]
    fn html_escapes_are_go_s_and_leave_other_characters_alone() {
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("a&b", "a\\u0026b"),
            ("<x>&", "\\u003cx\\u003e\\u0026"),
            ("\u{2028}x\u{2029}", "\\u2028x\\u2029"),
            // Other characters with the lead byte E2 stay as they are.
            ("€&\u{2030}中<", "€\\u0026\u{2030}中\\u003c"),
            ("\u{2027}", "\u{2027}"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_html(raw.to_string()), escaped, "{raw:?}");
        }
    }

    #[test]
    fn envelope_null_data() {
        let out = pretty(&envelope::<()>("fail", "leveldb: not found", None));
        assert_eq!(
            out,
            "{\n  \"data\": null,\n  \"message\": \"leveldb: not found\",\n  \"status\": \"fail\"\n}"
        );
    }
}
