//! The one declaration of every cfg.json key: its field in `Config`, how it is read and its
//! value when absent, whether a reload may change it, and its value in the generated file.
//! A key is added here and nowhere else (`apply_defaults` and `validate` in `mod.rs` hold the
//! rules that relate keys to each other).
//!
//! Row: `key: Type = reader(value when absent), live|restart [=> (value in the generated file)];`
//! durations in seconds are read with `secs`/`usecs`, which bound them to ten years.
//! `restart`: a reload keeps the running value (listeners, executors, shards, rings and the tus
//! routes exist from start; two sizes are read by each executor at its start).

use super::*;

/// Values of the generated file that are computed when it is written.
pub struct Template {
    pub peer_id: String,
    pub host: String,
    pub peers: Vec<String>,
    pub admin_key: String,
}

macro_rules! keep {
    (restart, $next:ident, $old:ident, $key:ident) => {
        $next.$key = $old.$key.clone();
    };
    (live, $next:ident, $old:ident, $key:ident) => {};
}

macro_rules! config_keys {
    (template($t:ident); $(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty = $read:ident($absent:expr), $reload:ident $(=> ($($gen:tt)*))?;
    )*) => {
        /// The live configuration (after defaults). Field names are the cfg.json keys; every
        /// key is declared once, in `config/keys.rs`.
        #[derive(Debug, Clone, serde::Serialize)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $key: $ty, )*
            /// `admin_ips`, `trusted_proxies`, peers and this node's addresses, parsed once at
            /// load.
            #[serde(skip)]
            pub access: crate::access::Rules,
        }

        /// Every key the server reads.
        pub const KNOWN_KEYS: &[&str] = &[$(stringify!($key)),*];

        /// The keys a reload cannot change.
        pub fn restart_keys() -> Vec<&'static str> {
            let mut keys = Vec::new();
            $( if stringify!($reload) == "restart" { keys.push(stringify!($key)); } )*
            keys
        }

        /// Reads every key (absent or null: its value when absent).
        pub(super) fn read_keys(r: &Reader<'_>) -> Result<Config, ConfigError> {
            Ok(Config {
                $( $key: r.$read(stringify!($key), $absent)?, )*
                access: Default::default(),
            })
        }

        /// A reloaded configuration keeps the running values of the restart keys.
        pub fn keep_restart_keys(next: &mut Config, old: &Config) {
            $( keep!($reload, next, old, $key); )*
        }

        /// The generated cfg.json's keys and values, in order.
        pub(super) fn template_entries($t: &Template) -> Vec<(&'static str, Value)> {
            let mut entries = Vec::new();
            $( $( entries.push((stringify!($key), serde_json::json!($($gen)*))); )? )*
            entries
        }
    };
}

config_keys! {
    template(t);
    addr: String = string(":8080"), restart => (":8080");
    enable_https: bool = bool(false), restart => (false);
    peer_id: String = string(""), live => (t.peer_id);
    host: String = string(""), live => (t.host);
    peers: Vec<String> = strings(&[]), live => (t.peers);
    group: String = string(""), restart => ("group1");
    support_group_manage: bool = bool(false), restart => (true);
    enable_merge_small_file: bool = bool(false), live => (false);
    image_max_width: i64 = int(0), live => (2000);
    image_max_height: i64 = int(0), live => (1000);
    extensions: Vec<String> = strings(&[]), live => ([]);
    refresh_interval: i64 = secs(0), live => (1800);
    enable_trim_file_name_special_char: bool = bool(false), live => (true);
    rename_file: bool = bool(false), live => (false);
    enable_web_upload: bool = bool(false), live => (true);
    enable_pprof_debug: bool = bool(false), live => (false);
    enable_custom_path: bool = bool(false), live => (true);
    download_domain: String = string(""), live => ("");
    scenes: Vec<String> = strings(&[]), live => ([]);
    default_scene: String = string(""), live => ("default");
    show_dir: bool = bool(false), live => (true);
    mail: Mail = mail(Mail::default()), live => ({"user": "abc@163.com", "password": "abc", "host": "smtp.163.com:25"});
    alarm_receivers: Vec<String> = strings(&[]), live => ([]);
    alarm_url: String = string(""), live => ("");
    download_use_token: bool = bool(false), live => (false);
    download_token_expire: i64 = secs(0), live => (600);
    auto_repair: bool = bool(false), live => (true);
    file_sum_arithmetic: String = string(""), live => ("md5");
    admin_key: String = string(""), live => (t.admin_key);
    admin_ips: Vec<String> = strings(&[]), live => (["127.0.0.1"]);
    enable_migrate: bool = bool(false), live => (false);
    enable_distinct_file: bool = bool(false), live => (true);
    enable_cross_origin: bool = bool(false), live => (true);
    enable_google_auth: bool = bool(false), live => (false);
    auth_url: String = string(""), live => ("");
    enable_download_auth: bool = bool(false), live => (false);
    default_download: bool = bool(false), live => (true);
    read_only: bool = bool(false), live => (false);
    enable_tus: bool = bool(false), restart => (true);
    sync_timeout: i64 = secs(0), live => (0);
    enable_fsnotify: bool = bool(false), restart;
    connect_timeout: bool = flag(false), live;
    read_timeout: i64 = secs(0), live => (600);
    write_timeout: i64 = secs(0), live => (600);
    idle_timeout: i64 = secs(0), live => (0);
    read_header_timeout: i64 = secs(0), live => (0);
    sync_worker: i64 = int(0), live;
    upload_worker: i64 = int(0), live;
    retry_count: i64 = int(0), live;
    sync_delay: i64 = secs(0), live;
    /// Executors (one per core); 0 = the CPUs in the process affinity mask.
    workers: usize = usize(0), restart => (0);
    /// io_uring registered buffer per executor, bytes.
    io_memory: u64 = uint(IO_MEMORY_BYTES_DEFAULT), restart => (IO_MEMORY_BYTES_DEFAULT);
    /// LMDB shard count used only when data/ is created.
    shards: u32 = u32(SHARDS_DEFAULT), restart => (SHARDS_DEFAULT);
    /// Longest pause inside a request body (seconds) before the connection is cut.
    body_stall_timeout: u64 = usecs(BODY_STALL_TIMEOUT_S_DEFAULT), live => (BODY_STALL_TIMEOUT_S_DEFAULT);
    /// Largest accepted upload body in bytes; 0 = unlimited.
    upload_max_bytes: u64 = uint(0), live => (0);
    /// Concurrent connections per executor; more are closed at accept.
    connections_per_worker_max: usize = usize(10000), live => (10000);
    /// Per-executor cache of small immutable files, bytes (0 = off).
    file_cache_bytes: u64 = uint(8 * 1024 * 1024), restart => (8 * 1024 * 1024);
    /// Bytes the resized-image cache (`files/_cache/`) may hold; the oldest variants go
    /// beyond it (0 = resized images are not cached).
    resize_cache_bytes: u64 = uint(RESIZE_CACHE_BYTES_DEFAULT), live => (RESIZE_CACHE_BYTES_DEFAULT);
    /// Seconds given to in-flight requests on SIGTERM before exit.
    shutdown_grace: u64 = usecs(10), restart => (10);
    /// Addresses (exact or CIDR) whose X-Real-IP / X-Forwarded-For are trusted.
    trusted_proxies: Vec<String> = strings(&[]), live => ([]);
    /// Secret mixed into download tokens: md5(file_md5 + timestamp + secret). Generated on
    /// first start; empty = go-fastdfs' secret-less formula (forgeable; warned about).
    download_token_secret: String = string(""), live => (crate::codec::random_hex(16));
    /// Seconds a tus upload lives after its last PATCH (then it is removed); 0 = the default.
    tus_expire_seconds: u64 = usecs(TUS_EXPIRE_SECONDS_DEFAULT), live => (TUS_EXPIRE_SECONDS_DEFAULT);
    /// Concurrent connections per client address (trusted proxies, peers and admins exempt).
    connections_per_client_max: u64 = uint(CONNECTIONS_PER_CLIENT_MAX_DEFAULT), live => (CONNECTIONS_PER_CLIENT_MAX_DEFAULT);
    /// Concurrent connections in total; 0 = three quarters of the open-files limit. Admins
    /// and peers may use the rest.
    connections_max: u64 = uint(0), live => (0);
    /// Seconds a new connection may stay silent before its first request byte.
    first_byte_timeout: u64 = usecs(FIRST_BYTE_TIMEOUT_S_DEFAULT), live => (FIRST_BYTE_TIMEOUT_S_DEFAULT);
    /// Slowest accepted average request body rate, bytes per second (after a grace period).
    body_min_rate: u64 = uint(BODY_MIN_RATE_DEFAULT), live => (BODY_MIN_RATE_DEFAULT);
    /// Largest `log/access.log` and `log/fileserver.log`, bytes: a log that would pass it is
    /// moved to `<name>.old` (replacing it) and started afresh; 0 = no cap.
    log_bytes_max: u64 = uint(LOG_BYTES_MAX_DEFAULT), live => (LOG_BYTES_MAX_DEFAULT);
    /// Unfinished tus uploads one client address may hold.
    tus_uploads_per_client_max: u64 = uint(TUS_UPLOADS_PER_CLIENT_MAX_DEFAULT), live => (TUS_UPLOADS_PER_CLIENT_MAX_DEFAULT);
    /// Percent of the space left for uploads (beside the other clients' uploads in flight)
    /// that one client's uploads in flight may hold; 100 = only the total applies.
    upload_space_per_client_percent: u64 = uint(UPLOAD_SPACE_PER_CLIENT_PERCENT_DEFAULT), live => (UPLOAD_SPACE_PER_CLIENT_PERCENT_DEFAULT);
    /// Wrong guesses of a secret (`admin_key`, a scene's Google code) one client may make in
    /// `secret_guess_window_s`; then it is refused, unread, until the window ends.
    secret_guesses_per_client_max: u64 = uint(SECRET_GUESSES_PER_CLIENT_MAX_DEFAULT), live => (SECRET_GUESSES_PER_CLIENT_MAX_DEFAULT);
    /// Wrong guesses of a secret all clients together may make in `secret_guess_window_s`;
    /// then every client is refused, unread, until the window ends.
    secret_guesses_max: u64 = uint(SECRET_GUESSES_MAX_DEFAULT), live => (SECRET_GUESSES_MAX_DEFAULT);
    /// Seconds over which wrong guesses of a secret count (from the first).
    secret_guess_window_s: u64 = usecs(SECRET_GUESS_WINDOW_S_DEFAULT), live => (SECRET_GUESS_WINDOW_S_DEFAULT);
    /// tus `callback_url` notices (go-fastdfs sends them always); off: a creation naming one is
    /// refused.
    enable_tus_callback: bool = bool(true), live => (true);
    tls_verify_peers: bool = bool(true), restart => (true);
    /// Hosts (`host` or `host:port`) a tus `callback_url` may name; empty = any host.
    tus_callback_hosts: Vec<String> = strings(&[]), live => ([]);
    /// Dead bytes (deleted merged files), in percent of a small-file container, from which the
    /// background compaction rewrites it; 0 = only on demand (`G/compact`).
    compact_dead_percent: u64 = uint(30), live => (30);
    /// Seconds between two checks of every peer's `/status` and of the alarm conditions.
    status_check_interval: u64 = usecs(60), live => (60);
    /// Alarm when the files' filesystem is this full (space or inodes), percent; 0 = off.
    alarm_disk_used_percent: u64 = uint(90), live => (90);
    /// Alarm when a change has waited this many seconds for a peer; 0 = off.
    alarm_sync_lag_seconds: u64 = usecs(3600), live => (3600);
    /// A standing alarm is sent again at most this often, seconds.
    alarm_repeat_seconds: u64 = usecs(3600), live => (3600);
    /// The S3 listener, `host:port` (`:9000` = every address); empty = no S3 interface.
    s3_addr: String = string(""), restart => ("");
    /// Virtual-hosted-style S3 requests: `Host: <bucket>.<s3_domain>`; empty = path style only.
    s3_domain: String = string(""), live => ("");
    /// The region S3 clients sign for.
    s3_region: String = string("us-east-1"), live => ("us-east-1");
    /// S3 credentials: `[{access_key_id, secret_access_key, buckets: ["*"], read_only}]`.
    s3_keys: Vec<S3Key> = s3_keys(Vec::new()), live => ([]);
}
