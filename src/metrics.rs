//! Prometheus metrics (text format 0.0.4) at `G/metrics`, admin only.
//!
//! Each executor writes only its own `Metrics` block (relaxed atomics, no sharing on the hot
//! path); a scrape sums the blocks. Names follow Prometheus conventions: base units,
//! `_total` counters, `_seconds`/`_bytes` suffixes, no paths or md5s in labels.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The route families: the router names each request's family, the metrics count by it (its
/// `route` label). A bounded set: no paths or md5s in labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Upload,
    Download,
    Delete,
    GetFileInfo,
    CheckFileExist,
    Status,
    Stat,
    Metrics,
    Admin,
    Page,
    Sync,
    /// Every request on the S3 listener.
    S3,
    Other,
}

impl Route {
    pub const ALL: [Route; 13] = [
        Route::Upload,
        Route::Download,
        Route::Delete,
        Route::GetFileInfo,
        Route::CheckFileExist,
        Route::Status,
        Route::Stat,
        Route::Metrics,
        Route::Admin,
        Route::Page,
        Route::Sync,
        Route::S3,
        Route::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::Upload => "upload",
            Route::Download => "download",
            Route::Delete => "delete",
            Route::GetFileInfo => "get_file_info",
            Route::CheckFileExist => "check_file_exist",
            Route::Status => "status",
            Route::Stat => "stat",
            Route::Metrics => "metrics",
            Route::Admin => "admin",
            Route::Page => "page",
            Route::Sync => "sync",
            Route::S3 => "s3",
            Route::Other => "other",
        }
    }

    /// The route of a request tag set by the router (`Request::tag`); unknown tags are Other.
    pub fn from_tag(tag: usize) -> Route {
        Route::ALL.get(tag).copied().unwrap_or(Route::Other)
    }

    /// The request tag of this route.
    pub fn tag(self) -> usize {
        self as usize
    }
}
/// Status classes used as the `code` label.
const CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. A block has one writer, the executor that owns it, so a plain load and
    /// store suffice (no locked read-modify-write on every request); a scrape on another
    /// thread reads whole values.
    fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A duration histogram over `BUCKETS` (each bucket counts the durations above the one before
/// it; `write_histogram` sums them up as Prometheus wants), with its sum and count.
struct Histogram {
    buckets: Vec<Counter>,
    sum_us: Counter,
    count: Counter,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS.len()).map(|_| Counter::default()).collect(),
            sum_us: Counter::default(),
            count: Counter::default(),
        }
    }
}

impl Histogram {
    /// Counts `d` in the one bucket it falls in (the export makes the counts cumulative):
    /// one atomic add per request instead of one per bucket above it.
    fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].add(1);
        }
        self.sum_us.add(d.as_micros() as u64);
        self.count.add(1);
    }
}

/// One executor's counters, padded to its own cache lines.
#[repr(align(128))]
pub struct Metrics {
    requests: Vec<Counter>,
    duration: Histogram,
    received_bytes: Counter,
    sent_bytes: Counter,
    uploads: Counter,
    upload_bytes: Counter,
    dedup_hits: Counter,
    deletes: Counter,
    sync_sent: Counter,
    sync_received: Counter,
    sync_received_bytes: Counter,
    /// Fetches checked against the source's md5 checkpoints, and those whose content failed
    /// them (fetched again without).
    sync_chained: Counter,
    sync_chain_broken: Counter,
    /// Queue-to-acknowledgement time of delivered sync messages (lag).
    sync_lag: Histogram,
    refused_per_client: Counter,
    refused_total: Counter,
    /// Requests cut for a too slow body or past `read_timeout`.
    slow_bodies: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..Route::ALL.len() * CLASSES.len())
                .map(|_| Counter::default())
                .collect(),
            duration: Histogram::default(),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
            uploads: Counter::default(),
            upload_bytes: Counter::default(),
            dedup_hits: Counter::default(),
            deletes: Counter::default(),
            sync_sent: Counter::default(),
            sync_received: Counter::default(),
            sync_received_bytes: Counter::default(),
            sync_chained: Counter::default(),
            sync_chain_broken: Counter::default(),
            sync_lag: Histogram::default(),
            refused_per_client: Counter::default(),
            refused_total: Counter::default(),
            slow_bodies: Counter::default(),
        }
    }
}

impl Metrics {
    pub fn request(
        &self,
        route: Route,
        status: u16,
        took: std::time::Duration,
        received: u64,
        sent: u64,
    ) {
        let class = ((status / 100) as usize).clamp(1, 5) - 1;
        self.requests[route as usize * CLASSES.len() + class].add(1);
        self.duration.observe(took);
        self.received_bytes.add(received);
        self.sent_bytes.add(sent);
    }

    pub fn upload(&self, bytes: u64, dedup_hit: bool) {
        self.uploads.add(1);
        self.upload_bytes.add(bytes);
        if dedup_hit {
            self.dedup_hits.add(1);
        }
    }

    /// A connection refused at accept.
    pub fn connection_refused(&self, why: crate::admission::Refusal) {
        match why {
            crate::admission::Refusal::PerClient => self.refused_per_client.add(1),
            crate::admission::Refusal::Total => self.refused_total.add(1),
        }
    }

    /// A request cut because its body came too slowly.
    pub fn slow_body(&self) {
        self.slow_bodies.add(1);
    }

    pub fn delete(&self) {
        self.deletes.add(1);
    }

    /// A peer acknowledged a message queued at `queued_at_ms` (Unix milliseconds).
    pub fn sync_sent(&self, queued_at_ms: i64) {
        self.sync_sent.add(1);
        let lag_ms = (chrono::Utc::now().timestamp_millis() - queued_at_ms).max(0) as u64;
        self.sync_lag
            .observe(std::time::Duration::from_millis(lag_ms));
    }

    /// A fetch checked its content against md5 checkpoints: `passed` or not.
    pub fn sync_chained(&self, passed: bool) {
        if passed {
            self.sync_chained.add(1);
        } else {
            self.sync_chain_broken.add(1);
        }
    }

    /// A file fetched from a peer was stored.
    pub fn sync_received(&self, bytes: u64) {
        self.sync_received.add(1);
        self.sync_received_bytes.add(bytes);
    }
}

/// Replication state per peer, computed at scrape time.
pub struct PeerGauge {
    pub peer: String,
    pub queued: u64,
    pub oldest_age_seconds: f64,
    pub up: Option<bool>,
}

/// Gauges computed at scrape time.
pub struct Gauges {
    pub objects: i64,
    pub stored_bytes: i64,
    pub connections: u64,
    pub workers: usize,
    pub uptime_seconds: u64,
    pub peers: Vec<PeerGauge>,
    pub inbox: u64,
    /// Small-file containers as the last compaction pass saw them: (number, length, live
    /// bytes).
    pub containers: Vec<(u64, u64, u64)>,
    /// This process (start time, CPU, memory, descriptors).
    pub process: crate::sys::ProcessStats,
    pub migration: MigrationGauge,
}

/// Migration and parallel run (files indexed that no upload brought).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationGauge {
    pub running: bool,
    pub passes: u64,
    pub seen: u64,
    pub indexed: u64,
    pub indexed_bytes: u64,
}

fn sum(all: &[Metrics], f: impl Fn(&Metrics) -> &Counter) -> u64 {
    all.iter().map(|m| f(m).get()).sum()
}

/// One unlabelled counter or gauge with its HELP and TYPE lines.
fn write_scalar(o: &mut String, kind: &str, name: &str, help: &str, v: impl std::fmt::Display) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
}

/// A histogram summed over executors, in seconds.
fn write_histogram(
    o: &mut String,
    all: &[Metrics],
    name: &str,
    help: &str,
    f: impl Fn(&Metrics) -> &Histogram,
) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut below = 0u64;
    for (i, b) in BUCKETS.iter().enumerate() {
        below += all.iter().map(|m| f(m).buckets[i].get()).sum::<u64>();
        let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {below}");
    }
    let count = sum(all, |m| &f(m).count);
    let sum_s = sum(all, |m| &f(m).sum_us) as f64 / 1e6;
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(o, "{name}_sum {sum_s}\n{name}_count {count}");
}

/// The exposition text.
pub fn render(all: &[Metrics], g: &Gauges) -> String {
    let mut o = String::new();
    render_requests(&mut o, all);
    render_counters(&mut o, all);
    render_gauges(&mut o, g);
    render_sync(&mut o, all, g);
    render_containers(&mut o, g);
    render_process(&mut o, &g.process);
    render_migration(&mut o, &g.migration);
    o
}

/// The HTTP requests answered (by route and status class) and their durations.
fn render_requests(o: &mut String, all: &[Metrics]) {
    let _ = writeln!(
        o,
        "# HELP fastdfs_http_requests_total HTTP requests answered, by route and status class."
    );
    let _ = writeln!(o, "# TYPE fastdfs_http_requests_total counter");
    for (r, route) in Route::ALL.iter().map(|r| r.label()).enumerate() {
        for (c, class) in CLASSES.iter().enumerate() {
            let n: u64 = all
                .iter()
                .map(|m| m.requests[r * CLASSES.len() + c].get())
                .sum();
            if n > 0 {
                let _ = writeln!(
                    o,
                    "fastdfs_http_requests_total{{route=\"{route}\",code=\"{class}\"}} {n}"
                );
            }
        }
    }
    write_histogram(
        o,
        all,
        "fastdfs_http_request_duration_seconds",
        "Time from request head to response written.",
        |m| &m.duration,
    );
}

/// The counters of connections refused, slow requests, bytes, uploads and deletes.
fn render_counters(o: &mut String, all: &[Metrics]) {
    let counters: [(&str, &str, u64); 9] = [
        (
            "fastdfs_connections_refused_per_client_total",
            "Connections closed at accept: the client address held connections_per_client_max.",
            sum(all, |m| &m.refused_per_client),
        ),
        (
            "fastdfs_connections_refused_total",
            "Connections closed at accept: the server held connections_max.",
            sum(all, |m| &m.refused_total),
        ),
        (
            "fastdfs_slow_requests_total",
            "Requests cut for a body below body_min_rate or past read_timeout.",
            sum(all, |m| &m.slow_bodies),
        ),
        (
            "fastdfs_http_received_bytes_total",
            "Request bytes received (heads and bodies).",
            sum(all, |m| &m.received_bytes),
        ),
        (
            "fastdfs_http_sent_bytes_total",
            "Response bytes sent (heads and bodies).",
            sum(all, |m| &m.sent_bytes),
        ),
        (
            "fastdfs_uploads_total",
            "Uploads stored or answered by dedup.",
            sum(all, |m| &m.uploads),
        ),
        (
            "fastdfs_upload_bytes_total",
            "Bytes of uploaded file content.",
            sum(all, |m| &m.upload_bytes),
        ),
        (
            "fastdfs_upload_dedup_hits_total",
            "Uploads answered with an existing copy.",
            sum(all, |m| &m.dedup_hits),
        ),
        (
            "fastdfs_deletes_total",
            "Files deleted.",
            sum(all, |m| &m.deletes),
        ),
    ];
    for (name, help, v) in counters {
        write_scalar(o, "counter", name, help, v);
    }
}

/// The gauges of the index, connections, executors and uptime.
fn render_gauges(o: &mut String, g: &Gauges) {
    let gauges: [(&str, &str, String); 5] = [
        ("fastdfs_objects", "Files indexed.", g.objects.to_string()),
        (
            "fastdfs_stored_bytes",
            "Bytes of indexed files.",
            g.stored_bytes.to_string(),
        ),
        (
            "fastdfs_connections",
            "Open client connections.",
            g.connections.to_string(),
        ),
        (
            "fastdfs_workers",
            "Executors (one per core).",
            g.workers.to_string(),
        ),
        (
            "fastdfs_uptime_seconds",
            "Seconds since start.",
            g.uptime_seconds.to_string(),
        ),
    ];
    for (name, help, v) in gauges {
        write_scalar(o, "gauge", name, help, v);
    }
}

fn render_migration(o: &mut String, m: &MigrationGauge) {
    let rows: [(&str, &str, &str, u64); 5] = [
        (
            "fastdfs_migration_running",
            "gauge",
            "1 while a migration pass (enable_migrate, /repair_fileinfo) runs.",
            u64::from(m.running),
        ),
        (
            "fastdfs_migration_passes_total",
            "counter",
            "Migration passes finished.",
            m.passes,
        ),
        (
            "fastdfs_migration_seen_files_total",
            "counter",
            "Files looked at by migration passes.",
            m.seen,
        ),
        (
            "fastdfs_migration_indexed_files_total",
            "counter",
            "Files indexed without an upload (migration and fsnotify).",
            m.indexed,
        ),
        (
            "fastdfs_migration_indexed_bytes_total",
            "counter",
            "Bytes of the files indexed without an upload.",
            m.indexed_bytes,
        ),
    ];
    for (name, kind, help, v) in rows {
        write_scalar(o, kind, name, help, v);
    }
}

/// Prometheus' standard `process_*` metrics and the build's identity.
fn render_process(o: &mut String, p: &crate::sys::ProcessStats) {
    let rows: [(&str, &str, &str, String); 6] = [
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            format!("{:.2}", p.start_time_seconds),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            format!("{:.2}", p.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes.to_string(),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_bytes.to_string(),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            p.open_fds.to_string(),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            p.max_fds.to_string(),
        ),
    ];
    for (name, kind, help, v) in rows {
        write_scalar(o, kind, name, help, v);
    }
    let _ = writeln!(
        o,
        "# HELP fastdfs_build_info The version, git commit and build time of this binary.\n\
         # TYPE fastdfs_build_info gauge\n\
         fastdfs_build_info{{version=\"{}\",commit=\"{}\",build_time=\"{}\"}} 1",
        crate::VERSION,
        crate::GIT_COMMIT,
        crate::BUILD_TIME
    );
}

fn render_containers(o: &mut String, g: &Gauges) {
    let _ = writeln!(
        o,
        "# HELP fastdfs_haystack_bytes Bytes of a small-file container, live or dead (deleted \
         files, unindexed tails), as the last compaction pass measured them.\n\
         # TYPE fastdfs_haystack_bytes gauge"
    );
    for (n, len, live) in &g.containers {
        let dead = len.saturating_sub(*live);
        let _ = writeln!(
            o,
            "fastdfs_haystack_bytes{{container=\"{n}\",state=\"live\"}} {live}"
        );
        let _ = writeln!(
            o,
            "fastdfs_haystack_bytes{{container=\"{n}\",state=\"dead\"}} {dead}"
        );
    }
}

fn render_sync(o: &mut String, all: &[Metrics], g: &Gauges) {
    let counters: [(&str, &str, u64); 5] = [
        (
            "fastdfs_sync_sent_total",
            "Uploads and deletes acknowledged by peers.",
            sum(all, |m| &m.sync_sent),
        ),
        (
            "fastdfs_sync_received_total",
            "Files fetched from peers and stored.",
            sum(all, |m| &m.sync_received),
        ),
        (
            "fastdfs_sync_received_bytes_total",
            "Bytes of files fetched from peers.",
            sum(all, |m| &m.sync_received_bytes),
        ),
        (
            "fastdfs_sync_checkpointed_total",
            "Fetched files checked in segments against the source's md5 checkpoints.",
            sum(all, |m| &m.sync_chained),
        ),
        (
            "fastdfs_sync_checkpoint_failures_total",
            "Fetched files that failed the source's md5 checkpoints (fetched again without).",
            sum(all, |m| &m.sync_chain_broken),
        ),
    ];
    for (name, help, v) in counters {
        write_scalar(o, "counter", name, help, v);
    }
    write_histogram(
        o,
        all,
        "fastdfs_sync_delivery_seconds",
        "Time from a change being committed to its acknowledgement by a peer.",
        |m| &m.sync_lag,
    );
    write_scalar(
        o,
        "gauge",
        "fastdfs_sync_inbox",
        "Files announced by peers and not fetched yet.",
        g.inbox,
    );
    let per_peer: [(&str, &str); 3] = [
        ("fastdfs_sync_queue_depth", "Changes queued for a peer."),
        (
            "fastdfs_sync_lag_seconds",
            "Age of the oldest change queued for a peer.",
        ),
        (
            "fastdfs_peer_up",
            "1 when the last exchange with the peer worked.",
        ),
    ];
    for (i, (name, help)) in per_peer.iter().enumerate() {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &g.peers {
            let v = match i {
                0 => p.queued.to_string(),
                1 => format!("{:.3}", p.oldest_age_seconds),
                _ => match p.up {
                    Some(true) => "1".into(),
                    Some(false) => "0".into(),
                    None => continue,
                },
            };
            let peer = p.peer.replace(['"', '\\', '\n'], "_");
            let _ = writeln!(o, "{name}{{peer=\"{peer}\"}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let all = vec![Metrics::default(), Metrics::default()];
        all[0].request(
            Route::Upload,
            200,
            std::time::Duration::from_millis(3),
            100,
            50,
        );
        all[1].request(
            Route::Download,
            404,
            std::time::Duration::from_millis(700),
            10,
            0,
        );
        all[0].upload(12, false);
        let g = Gauges {
            objects: 1,
            stored_bytes: 12,
            connections: 0,
            workers: 2,
            uptime_seconds: 5,
            peers: vec![PeerGauge {
                peer: "http://127.0.0.30:8080".into(),
                queued: 3,
                oldest_age_seconds: 1.5,
                up: Some(false),
            }],
            inbox: 2,
            containers: vec![(100, 1000, 600)],
            process: crate::sys::ProcessStats {
                open_fds: 9,
                ..Default::default()
            },
            migration: MigrationGauge {
                indexed: 4,
                ..Default::default()
            },
        };
        all[1].sync_sent(chrono::Utc::now().timestamp_millis() - 2_000);
        let text = render(&all, &g);
        assert!(text.contains("fastdfs_haystack_bytes{container=\"100\",state=\"dead\"} 400"));
        assert!(text.contains("fastdfs_sync_queue_depth{peer=\"http://127.0.0.30:8080\"} 3"));
        assert!(text.contains("fastdfs_peer_up{peer=\"http://127.0.0.30:8080\"} 0"));
        assert!(text.contains("fastdfs_sync_delivery_seconds_bucket{le=\"1\"} 0"));
        assert!(text.contains("fastdfs_sync_delivery_seconds_bucket{le=\"2.5\"} 1"));
        assert!(text.contains("fastdfs_sync_inbox 2"));
        assert!(
            text.contains("fastdfs_http_requests_total{route=\"upload\",code=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("fastdfs_http_requests_total{route=\"download\",code=\"4xx\"} 1"));
        // Cumulative buckets: 3 ms and 700 ms.
        assert!(text.contains("fastdfs_http_request_duration_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("fastdfs_http_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("fastdfs_http_request_duration_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("fastdfs_http_request_duration_seconds_bucket{le=\"1\"} 2"));
        assert!(text.contains("fastdfs_http_request_duration_seconds_bucket{le=\"10\"} 2"));
        assert!(text.contains("fastdfs_http_request_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("fastdfs_uploads_total 1"));
        assert!(text.contains("fastdfs_objects 1"));
        assert!(text.contains("process_open_fds 9"));
        assert!(text.contains("fastdfs_migration_indexed_files_total 4"));
        assert!(text.contains(&format!(
            "fastdfs_build_info{{version=\"{}\"",
            crate::VERSION
        )));
    }
}
