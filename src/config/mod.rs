//! Configuration: `conf/cfg.json` with every go-fastdfs key (docs/CONFIG.md) plus our own keys.
//!
//! Owns: generating the default file on first start, parsing with clear errors (a syntax error
//! names its line; a wrongly typed key names the key and its line), keeping unknown keys (we
//! never rewrite an existing file, so they survive) and warning about them, and the runtime
//! defaults go-fastdfs applies to zero values. Nothing here touches the network or the store.

use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// go-fastdfs keys that are accepted but have no effect (docs/CONFIG.md, docs/DEFECTS.md #37).
const KEYS_IGNORED: &[&str] = &[
    "enable_image_resize",
    "queue_size",
    "upload_queue_size",
    "enable_disk_cache",
    "proxies",
    "watch_chan_size",
];

/// Default head deadline when cfg.json says 0 (go-fastdfs' "no timeout"): slowloris guard.
pub const READ_HEADER_TIMEOUT_S_DEFAULT: u64 = 10;
/// Default keep-alive idle deadline when cfg.json says 0.
pub const IDLE_TIMEOUT_S_DEFAULT: u64 = 60;
/// Default longest pause inside a request body before the connection is cut.
pub const BODY_STALL_TIMEOUT_S_DEFAULT: u64 = 30;
/// Default number of LMDB shards, fixed at first start.
pub const SHARDS_DEFAULT: u32 = 16;
/// Default lifetime of a tus upload without activity (and of a completed upload's state).
pub const TUS_EXPIRE_SECONDS_DEFAULT: u64 = 24 * 3600;
/// Default cap on concurrent connections from one client address.
pub const CONNECTIONS_PER_CLIENT_MAX_DEFAULT: u64 = 256;
/// Default deadline for the first byte of a new connection, seconds.
pub const FIRST_BYTE_TIMEOUT_S_DEFAULT: u64 = 10;
/// Default slowest accepted average upload body rate, bytes per second (mod_reqtimeout's).
pub const BODY_MIN_RATE_DEFAULT: u64 = 500;
/// Largest log file between two rotations, bytes (then it is moved to `.old`).
pub const LOG_BYTES_MAX_DEFAULT: u64 = 1 << 30;
/// Default cap on unfinished tus uploads per client address.
pub const TUS_UPLOADS_PER_CLIENT_MAX_DEFAULT: u64 = 64;
/// Share of the space left for uploads one client may hold (`upload_space_per_client_percent`).
pub const UPLOAD_SPACE_PER_CLIENT_PERCENT_DEFAULT: u64 = 90;
/// Wrong guesses of a secret per client per window (`secret_guesses_per_client_max`).
pub const SECRET_GUESSES_PER_CLIENT_MAX_DEFAULT: u64 = 10;
/// Wrong guesses of a secret over all clients per window (`secret_guesses_max`).
pub const SECRET_GUESSES_MAX_DEFAULT: u64 = 30;
/// The window of those bounds, seconds (`secret_guess_window_s`).
pub const SECRET_GUESS_WINDOW_S_DEFAULT: u64 = 60;
/// Largest tus upload when `upload_max_bytes` is 0.
pub const TUS_SIZE_BYTES_MAX_DEFAULT: u64 = 1 << 40;
/// Default io_uring registered buffer per executor (small: must fit an 8 MiB memlock limit).
pub const IO_MEMORY_BYTES_DEFAULT: u64 = 512 * 1024;
/// Default bound of the resized-image cache (`resize_cache_bytes`): 1 GiB.
pub const RESIZE_CACHE_BYTES_DEFAULT: u64 = 1 << 30;
/// The longest duration a key may name: ten years, in seconds (the readers `secs` and
/// `usecs`). Longer values mean "never" in practice, and a deadline past `Instant`'s range
/// would panic where it is computed.
pub const SECONDS_MAX: u64 = 10 * 365 * 24 * 3600;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub host: String,
}

/// One S3 credential (`s3_keys`): which buckets it may use (`*` = all) and whether it may
/// write.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct S3Key {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub buckets: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
}

mod keys;
pub use keys::{keep_restart_keys, restart_keys, Config, Template, KNOWN_KEYS};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: the top level must be a JSON object")]
    NotObject { path: PathBuf },
    #[error("{path} line {line}: key \"{key}\" must be {expected}")]
    Type {
        path: PathBuf,
        line: usize,
        key: String,
        expected: &'static str,
    },
    #[error("{path} line {line}: key \"{key}\": {message}")]
    Value {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// Result of loading: the config and the warnings to log once logging is up.
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// Path of the config file under a runtime dir.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("conf").join("cfg.json")
}

/// Replaces cfg.json with `text` (already validated), durably.
pub fn write_file(dir: &Path, text: &str) -> Result<(), ConfigError> {
    let path = path_in(dir);
    write_durably(&path, text.as_bytes()).map_err(|source| ConfigError::Write { path, source })
}

/// Loads `conf/cfg.json` under `dir`, creating it with defaults first if missing.
pub fn load_or_create(dir: &Path) -> Result<Loaded, ConfigError> {
    let conf_dir = dir.join("conf");
    let path = conf_dir.join("cfg.json");
    let mut created = false;
    if !path.exists() {
        std::fs::create_dir_all(&conf_dir).map_err(|source| ConfigError::Write {
            path: conf_dir.clone(),
            source,
        })?;
        let text = default_file_text();
        write_durably(&path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: path.clone(),
            source,
        })?;
        created = true;
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let (config, warnings) = parse(&path, &text)?;
    Ok(Loaded {
        config,
        warnings,
        created,
    })
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The address the OS would use to reach the outside (no packet is sent), else 127.0.0.1.
pub fn local_ip() -> String {
    if let Some(ip) = env_nonempty("GO_FASTDFS_IP") {
        return ip;
    }
    let probe = || -> std::io::Result<String> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("8.8.8.8:80")?;
        Ok(s.local_addr()?.ip().to_string())
    };
    probe().unwrap_or_else(|_| "127.0.0.1".to_string())
}

/// The generated cfg.json: go-fastdfs' template keys and values (docs/CONFIG.md) plus ours.
pub fn default_file_text() -> String {
    let peer_id = env_nonempty("GO_FASTDFS_PEER_ID").unwrap_or_else(|| {
        let [b] = crate::codec::random_bytes::<1>();
        (b % 9).to_string()
    });
    let host = format!("http://{}:8080", local_ip());
    let peers: Vec<String> = match env_nonempty("GO_FASTDFS_PEERS") {
        Some(p) => p
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect(),
        None => vec![host.clone()],
    };
    let key = crate::codec::random_hex(16);
    let admin_key = format!(
        "{}-{}-{}-{}-{}",
        &key[0..8],
        &key[8..12],
        &key[12..16],
        &key[16..20],
        &key[20..32]
    );
    let template = Template {
        peer_id,
        host,
        peers,
        admin_key,
    };
    let mut entries = keys::template_entries(&template);
    // go-fastdfs' template carries a key that has no effect; kept for a familiar file.
    let at = entries
        .iter()
        .position(|(k, _)| *k == "enable_merge_small_file")
        .map_or(0, |i| i + 1);
    entries.insert(at, ("enable_image_resize", Value::Bool(true)));
    let v = Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    let mut s = serde_json::to_string_pretty(&v).expect("static JSON serializes");
    s.push('\n');
    s
}

/// Typed access to the parsed object, recording which keys were read.
struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
    map: &'a Map<String, Value>,
}

impl Reader<'_> {
    fn line_of(&self, key: &str) -> usize {
        let needle = format!("\"{key}\"");
        self.text
            .find(&needle)
            .map(|pos| self.text[..pos].matches('\n').count() + 1)
            .unwrap_or(0)
    }

    fn type_err(&self, key: &str, expected: &'static str) -> ConfigError {
        ConfigError::Type {
            path: self.path.to_path_buf(),
            line: self.line_of(key),
            key: key.to_string(),
            expected,
        }
    }

    fn value_err(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Value {
            path: self.path.to_path_buf(),
            line: self.line_of(key),
            key: key.to_string(),
            message,
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.type_err(key, "true or false")),
        }
    }

    fn int(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| self.type_err(key, "an integer")),
            Some(_) => Err(self.type_err(key, "an integer")),
        }
    }

    fn uint(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        let v = self.int(key, default as i64)?;
        u64::try_from(v).map_err(|_| self.type_err(key, "a non-negative integer"))
    }

    /// A duration in seconds, at most [`SECONDS_MAX`] (a negative one means "none" or "the
    /// default" where the key's rule says so).
    fn secs(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        let v = self.int(key, default)?;
        self.at_most_ten_years(key, v.max(0) as u64)?;
        Ok(v)
    }

    /// A non-negative duration in seconds, at most [`SECONDS_MAX`].
    fn usecs(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        let v = self.uint(key, default)?;
        self.at_most_ten_years(key, v)?;
        Ok(v)
    }

    fn at_most_ten_years(&self, key: &str, secs: u64) -> Result<(), ConfigError> {
        if secs > SECONDS_MAX {
            return Err(self.value_err(
                key,
                format!("must be at most {SECONDS_MAX} seconds (ten years)"),
            ));
        }
        Ok(())
    }

    fn string(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.type_err(key, "a string")),
        }
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize, ConfigError> {
        let v = self.uint(key, default as u64)?;
        usize::try_from(v).map_err(|_| self.type_err(key, "a smaller integer"))
    }

    fn u32(&self, key: &str, default: u32) -> Result<u32, ConfigError> {
        let v = self.uint(key, default as u64)?;
        u32::try_from(v).map_err(|_| self.type_err(key, "a smaller integer"))
    }

    /// `mail`: an object `{user, password, host}` of strings.
    fn mail(&self, key: &str, default: Mail) -> Result<Mail, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v @ Value::Object(_)) => serde_json::from_value(v.clone())
                .map_err(|_| self.type_err(key, "an object {user, password, host} of strings")),
            Some(_) => Err(self.type_err(key, "an object {user, password, host}")),
        }
    }

    /// `s3_keys`: an array of `{access_key_id, secret_access_key, buckets, read_only}`.
    fn s3_keys(&self, key: &str, default: Vec<S3Key>) -> Result<Vec<S3Key>, ConfigError> {
        const SHAPE: &str =
            "an array of {access_key_id, secret_access_key, buckets: [..], read_only} objects";
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v @ Value::Array(_)) => {
                let keys: Vec<S3Key> =
                    serde_json::from_value(v.clone()).map_err(|_| self.type_err(key, SHAPE))?;
                for k in &keys {
                    if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                        return Err(self.value_err(
                            key,
                            "every key needs a non-empty access_key_id and secret_access_key"
                                .into(),
                        ));
                    }
                }
                Ok(keys)
            }
            Some(_) => Err(self.type_err(key, SHAPE)),
        }
    }

    /// A boolean that go-fastdfs' own files sometimes spell as a number (true then).
    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.map.get(key) {
            Some(Value::Number(_)) => Ok(true),
            _ => self.bool(key, default),
        }
    }

    fn strings(&self, key: &str, default: &[&str]) -> Result<Vec<String>, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.type_err(key, "an array of strings")),
                })
                .collect(),
            Some(_) => Err(self.type_err(key, "an array of strings")),
        }
    }
}

/// Parses cfg.json text. `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(ConfigError::NotObject {
            path: path.to_path_buf(),
        });
    };
    let r = Reader {
        path,
        text,
        map: &map,
    };
    let mut warnings = Vec::new();
    for key in map.keys() {
        // go-fastdfs' template comments its keys with keys of their own: Chinese names and
        // one ASCII name, `PeerID`.
        let comment_key = !key.is_ascii() || key == "PeerID";
        if KNOWN_KEYS.contains(&key.as_str()) || comment_key {
            continue;
        }
        if KEYS_IGNORED.contains(&key.as_str()) {
            continue;
        }
        warnings.push(format!(
            "{} line {}: unknown key \"{key}\" is kept but has no effect",
            path.display(),
            r.line_of(key)
        ));
    }
    let mut c = keys::read_keys(&r)?;
    apply_defaults(&mut c);
    validate(&r, &c)?;
    c.access = access_rules(&c);
    Ok((c, warnings))
}

/// go-fastdfs' in-memory defaults for zero values (docs/CONFIG.md), and our own.
fn apply_defaults(c: &mut Config) {
    if c.peer_id.is_empty() {
        c.peer_id = env_nonempty("GO_FASTDFS_PEER_ID").unwrap_or_default();
    }
    if c.host.is_empty() {
        let port = c.addr.rsplit(':').next().unwrap_or("8080");
        c.host = format!("http://{}:{port}", local_ip());
    } else if !c.host.starts_with("http://") && !c.host.starts_with("https://") {
        c.host = format!("http://{}", c.host);
    }
    c.host = c.host.trim_end_matches('/').to_string();
    if !c.download_domain.is_empty()
        && !c.download_domain.starts_with("http://")
        && !c.download_domain.starts_with("https://")
    {
        let scheme = if c.enable_https { "https" } else { "http" };
        c.download_domain = format!("{scheme}://{}", c.download_domain);
    }
    c.download_domain = c.download_domain.trim_end_matches('/').to_string();
    c.peers = normalize_peers(&c.peers, &c.host);
    if c.default_scene.is_empty() {
        // go-fastdfs would store under `files//<date>`; the generated file says "default".
        c.default_scene = "default".to_string();
    }
    if c.image_max_width == 0 {
        c.image_max_width = 2000;
    }
    if c.image_max_height == 0 {
        c.image_max_height = 2000;
    }
    for ext in c.extensions.iter_mut() {
        if !ext.starts_with('.') {
            ext.insert(0, '.');
        }
        // go-fastdfs never lower-cases entries, so `PNG` never matched (docs/DEFECTS.md #21).
        *ext = ext.to_lowercase();
    }
    // go-fastdfs: a timeout that is not positive is no timeout; ours are bounded, so such a
    // value takes the default (without this, -1 was a one-second timeout).
    if c.read_timeout <= 0 {
        c.read_timeout = 600;
    }
    if c.write_timeout <= 0 {
        c.write_timeout = 600;
    }
    if c.sync_worker == 0 {
        c.sync_worker = 200;
    }
    if c.retry_count == 0 {
        c.retry_count = 3;
    }
    if c.sync_delay == 0 {
        c.sync_delay = 60;
    }
    if c.shards == 0 {
        c.shards = SHARDS_DEFAULT;
    }
    if c.body_stall_timeout == 0 {
        c.body_stall_timeout = BODY_STALL_TIMEOUT_S_DEFAULT;
    }
    if c.connections_per_worker_max == 0 {
        c.connections_per_worker_max = 10000;
    }
    if c.tus_expire_seconds == 0 {
        c.tus_expire_seconds = TUS_EXPIRE_SECONDS_DEFAULT;
    }
    if c.connections_per_client_max == 0 {
        c.connections_per_client_max = CONNECTIONS_PER_CLIENT_MAX_DEFAULT;
    }
    if c.first_byte_timeout == 0 {
        c.first_byte_timeout = FIRST_BYTE_TIMEOUT_S_DEFAULT;
    }
    if c.body_min_rate == 0 {
        c.body_min_rate = BODY_MIN_RATE_DEFAULT;
    }
    if c.tus_uploads_per_client_max == 0 {
        c.tus_uploads_per_client_max = TUS_UPLOADS_PER_CLIENT_MAX_DEFAULT;
    }
    if c.upload_space_per_client_percent == 0 {
        c.upload_space_per_client_percent = UPLOAD_SPACE_PER_CLIENT_PERCENT_DEFAULT;
    }
    c.upload_space_per_client_percent = c.upload_space_per_client_percent.min(100);
    if c.secret_guesses_per_client_max == 0 {
        c.secret_guesses_per_client_max = SECRET_GUESSES_PER_CLIENT_MAX_DEFAULT;
    }
    if c.secret_guesses_max == 0 {
        c.secret_guesses_max = SECRET_GUESSES_MAX_DEFAULT;
    }
    if c.secret_guess_window_s == 0 {
        c.secret_guess_window_s = SECRET_GUESS_WINDOW_S_DEFAULT;
    }
}

/// The access rules of `c`: this node's own addresses are its `host`'s and the outgoing
/// interface's.
fn access_rules(c: &Config) -> crate::access::Rules {
    let own: Vec<std::net::IpAddr> = [crate::access::peer_ip(&c.host), local_ip().parse().ok()]
        .into_iter()
        .flatten()
        .collect();
    let s3_subdomains = (!c.s3_domain.is_empty()).then(|| format!(".{}", c.s3_domain));
    let names = [
        c.host.as_str(),
        c.download_domain.as_str(),
        c.s3_domain.as_str(),
    ]
    .into_iter()
    .chain(s3_subdomains.as_deref())
    .chain(c.peers.iter().map(String::as_str));
    crate::access::Rules::new(&c.admin_ips, &c.trusted_proxies, &c.peers, &own).with_names(names)
}

/// Peers get `http://` when they lack a scheme; this node's own URL is dropped.
pub fn normalize_peers(peers: &[String], host: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in peers {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let mut url = if p.starts_with("http://") || p.starts_with("https://") {
            p.to_string()
        } else {
            format!("http://{p}")
        };
        url = url.trim_end_matches('/').to_string();
        if url == host || out.contains(&url) {
            continue;
        }
        out.push(url);
    }
    out
}

fn validate(r: &Reader<'_>, c: &Config) -> Result<(), ConfigError> {
    c.listen_addr().map_err(|m| r.value_err("addr", m))?;
    if let Some(a) = c.s3_listen_addr() {
        let a = a.map_err(|m| r.value_err("s3_addr", m))?;
        if c.listen_addr().is_ok_and(|main| main == a) {
            return Err(r.value_err("s3_addr", "must differ from addr".into()));
        }
    }
    if c.support_group_manage && c.group.contains('/') {
        return Err(r.value_err("group", "must not contain '/'".into()));
    }
    for p in &c.peers {
        let rest = p
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(r.value_err("peers", format!("\"{p}\" is not a base URL")));
        }
        crate::client::parse_url(p).map_err(|e| r.value_err("peers", format!("\"{p}\": {e}")))?;
    }
    if c.auth_url.starts_with("http://") || c.auth_url.starts_with("https://") {
        crate::client::parse_url(&c.auth_url)
            .map_err(|e| r.value_err("auth_url", format!("\"{}\": {e}", c.auth_url)))?;
    }
    if c.workers > 1024 {
        return Err(r.value_err("workers", "must be at most 1024".into()));
    }
    if !(1..=256).contains(&c.shards) {
        return Err(r.value_err("shards", "must be between 1 and 256".into()));
    }
    for entry in c.admin_ips.iter().chain(c.trusted_proxies.iter()) {
        if crate::access::AddrRule::parse(entry).is_none() {
            let key = if c.admin_ips.contains(entry) {
                "admin_ips"
            } else {
                "trusted_proxies"
            };
            return Err(r.value_err(
                key,
                format!("\"{entry}\" is neither an IP address nor a CIDR"),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// The route prefix `G` of docs/PROTOCOL.md: `/group1` or "".
    pub fn prefix(&self) -> String {
        if self.support_group_manage && !self.group.is_empty() {
            format!("/{}", self.group)
        } else {
            String::new()
        }
    }

    /// What follows [`Config::prefix`] in `path`, from its `/` (None when `path` is not under
    /// the prefix). Allocates nothing: this runs for every request.
    pub fn after_prefix<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = if self.support_group_manage && !self.group.is_empty() {
            path.strip_prefix('/')?.strip_prefix(self.group.as_str())?
        } else {
            path
        };
        rest.starts_with('/').then_some(rest)
    }

    /// `addr` as a socket address; `:8080` means all interfaces.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        parse_listen(&self.addr)
    }

    /// The S3 listener's address, None when `s3_addr` is empty (no S3 interface).
    pub fn s3_listen_addr(&self) -> Option<Result<SocketAddr, String>> {
        (!self.s3_addr.trim().is_empty()).then(|| parse_listen(&self.s3_addr))
    }

    pub fn use_sha1(&self) -> bool {
        self.file_sum_arithmetic.eq_ignore_ascii_case("sha1")
    }

    /// The configuration as `reload?action=get` shows it: every key, as go-fastdfs shows its
    /// own too. go-fastdfs' keys without effect here appear with the values it would use,
    /// `upload_worker` as its default when unset, and no peers as `null`.
    pub fn as_shown(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serializes");
        let map = v.as_object_mut().expect("a struct is an object");
        for (key, value) in [
            ("enable_disk_cache", serde_json::json!(false)),
            ("proxies", serde_json::Value::Null),
            ("queue_size", serde_json::json!(10_000)),
            ("upload_queue_size", serde_json::json!(200)),
            ("watch_chan_size", serde_json::json!(100_000)),
        ] {
            map.entry(key).or_insert(value);
        }
        if self.upload_worker == 0 {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            let go_default = if cpus < 4 { 8 } else { cpus + 4 };
            map.insert("upload_worker".into(), go_default.into());
        }
        if self.peers.is_empty() {
            map.insert("peers".into(), serde_json::Value::Null);
        }
        v
    }
}

/// A listen address: `host:port`, or `:port` for every address.
fn parse_listen(addr: &str) -> Result<SocketAddr, String> {
    let a = addr.trim();
    let full = if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else {
        a.to_string()
    };
    full.parse::<SocketAddr>()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            full.to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .ok_or(())
        })
        .map_err(|_| format!("\"{addr}\" is not host:port"))
}

impl Config {
    /// Scene names of `scenes` (entries may be `name:google-secret`).
    pub fn scene_allowed(&self, scene: &str) -> bool {
        self.scenes.is_empty()
            || self
                .scenes
                .iter()
                .any(|s| s.split(':').next() == Some(scene))
    }

    /// The bounds on guessing a secret (`secret_guesses_*`).
    pub fn secret_guess_bounds(&self) -> crate::guesses::Bounds {
        crate::guesses::Bounds {
            per_client: self.secret_guesses_per_client_max,
            total: self.secret_guesses_max,
            window: std::time::Duration::from_secs(self.secret_guess_window_s),
        }
    }

    /// The Google-authenticator secret of a scene (`scenes` entry `name:SECRET`), if any.
    pub fn scene_secret(&self, scene: &str) -> Option<&str> {
        self.scenes.iter().find_map(|s| match s.split_once(':') {
            Some((name, secret)) if name == scene && !secret.is_empty() => Some(secret),
            _ => None,
        })
    }

    /// Whether `code` is a valid TOTP code for `scene` (true when Google auth is off or the
    /// scene has no secret). Window: ±download_token_expire/30 steps, as go-fastdfs.
    pub fn google_code_ok(&self, scene: &str, code: &str) -> bool {
        if !self.enable_google_auth {
            return true;
        }
        let Some(secret) = self.scene_secret(scene) else {
            return true;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window = (self.download_token_expire.max(0) as u64) / crate::totp::STEP_SECONDS;
        crate::totp::verify(secret, code, now, window)
    }

    /// Largest tus upload (advertised as `Tus-Max-Size`): `upload_max_bytes`, else 1 TiB.
    pub fn tus_size_max(&self) -> u64 {
        if self.upload_max_bytes > 0 {
            self.upload_max_bytes
        } else {
            TUS_SIZE_BYTES_MAX_DEFAULT
        }
    }

    pub fn read_header_timeout_s(&self) -> u64 {
        if self.read_header_timeout > 0 {
            self.read_header_timeout as u64
        } else {
            READ_HEADER_TIMEOUT_S_DEFAULT
        }
    }

    pub fn idle_timeout_s(&self) -> u64 {
        if self.idle_timeout > 0 {
            self.idle_timeout as u64
        } else {
            IDLE_TIMEOUT_S_DEFAULT
        }
    }

    /// The base of returned URLs: download_domain, else this node's host (never a request's
    /// Host header: docs/DEFECTS.md #11).
    pub fn domain(&self) -> &str {
        if self.download_domain.is_empty() {
            &self.host
        } else {
            &self.download_domain
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod shipped {
    /// config/cfg.json (the documented default) has exactly the keys of the generated file.
    #[test]
    fn shipped_config_matches_the_generated_template() {
        let shipped: serde_json::Value =
            serde_json::from_str(include_str!("../../config/cfg.json"))
                .expect("config/cfg.json parses");
        let generated: serde_json::Value =
            serde_json::from_str(&super::default_file_text()).unwrap();
        let keys =
            |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&shipped), keys(&generated));
        super::parse(
            std::path::Path::new("config/cfg.json"),
            include_str!("../../config/cfg.json"),
        )
        .unwrap();
    }
}
