//! A server with its S3 listener on, for the tests that drive S3 clients.

use super::{eventually, free_port, Server};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A server with the S3 listener on, and a home directory for its clients.
pub struct S3 {
    pub server: Server,
    pub port: u16,
    pub home: tempfile::TempDir,
}

impl S3 {
    /// A server whose S3 listener takes the access keys `keys`, with an empty client home.
    pub fn with_keys(keys: Value) -> S3 {
        let (server, port) = start(keys);
        let home = tempfile::tempdir().unwrap();
        S3 { server, port, home }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.server.dir.join("files").join(bucket)
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.server.stderr_tail(3000)
    }

    /// A client process that sees none of the caller's AWS or rclone settings, proxies or
    /// home directory.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("AWS_")
                || k.starts_with("RCLONE_")
                || k.to_ascii_lowercase().ends_with("_proxy")
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", self.home.path())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// The AWS CLI with the access key `id` / `secret`, against this server: path-style,
    /// SigV4, multipart above 8 MB in 8 MB parts, no credentials file, no instance metadata,
    /// no pager, no retries, 5 s to connect and 60 s per read.
    pub fn aws_command(&self, id: &str, secret: &str) -> Command {
        let config = self.home.path().join("aws-config");
        if !config.exists() {
            std::fs::write(
                &config,
                "[default]\nregion = us-east-1\noutput = json\ns3 =\n  addressing_style = path\n  \
                 signature_version = s3v4\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n",
            )
            .unwrap();
        }
        let mut cmd = self.command("aws");
        cmd.env("AWS_CONFIG_FILE", &config)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("no-credentials"),
            )
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("AWS_MAX_ATTEMPTS", "1")
            .args(["--endpoint-url", &self.endpoint()])
            .args(["--cli-connect-timeout", "5", "--cli-read-timeout", "60"]);
        cmd
    }

    /// rclone with the remote `s3t:` for this server and the access key `id` / `secret`,
    /// configured through the environment only (an empty config file of its own), with the
    /// remote's `extra` settings (`UPLOAD_CUTOFF`...), no retries, 5 s to connect and 60 s
    /// per read. The arguments after these come last.
    pub fn rclone_command(&self, id: &str, secret: &str, extra: &[(&str, &str)]) -> Command {
        let config = self.home.path().join("rclone.conf");
        if !config.exists() {
            std::fs::write(&config, "").unwrap();
        }
        let mut cmd = self.command("rclone");
        cmd.env("RCLONE_CONFIG", &config);
        let endpoint = self.endpoint();
        let settings = [
            ("TYPE", "s3"),
            ("PROVIDER", "Other"),
            ("ENDPOINT", endpoint.as_str()),
            ("ACCESS_KEY_ID", id),
            ("SECRET_ACCESS_KEY", secret),
            ("REGION", "us-east-1"),
            ("FORCE_PATH_STYLE", "true"),
        ];
        for (k, v) in settings.iter().chain(extra) {
            cmd.env(format!("RCLONE_CONFIG_S3T_{k}"), v);
        }
        cmd.args([
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "--contimeout",
            "5s",
            "--timeout",
            "60s",
        ]);
        cmd
    }
}

/// Starts a server whose S3 listener (region `us-east-1`) takes the access keys `keys` (the
/// `s3_keys` of cfg.json), and returns it with the listener's port once it accepts.
fn start(keys: Value) -> (Server, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port("127.0.0.1");
        let cfg = json!({
            "s3_addr": format!("127.0.0.1:{port}"),
            "s3_region": "us-east-1",
            "s3_keys": keys.clone(),
        });
        // Another test may have drawn the same port: start again on new ones.
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Server::start(cfg)));
        let mut server = match started {
            Ok(s) => s,
            Err(e) => {
                last = e
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "server did not start".into());
                continue;
            }
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if eventually(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }) {
            return (server, port);
        }
        last = format!("the S3 listener never accepted: {}", server.stderr());
        server.kill();
    }
    panic!("no server with an S3 listener: {last}");
}
