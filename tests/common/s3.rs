//! A server with its S3 listener on, for the tests that drive S3 clients.

use super::{eventually, free_port, skip, Server};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
        self.aws_command_at(&self.endpoint(), id, secret)
    }

    /// [`S3::aws_command`] against another endpoint of this server (its TLS port).
    pub fn aws_command_at(&self, endpoint: &str, id: &str, secret: &str) -> Command {
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
            .args(["--endpoint-url", endpoint])
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

/// What a client process did.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn text(&self) -> String {
        format!(
            "{}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// stdout lines that start with `prefix` (the AWS CLI's `upload:`, `download:`...).
    pub fn lines_starting(&self, prefix: &str) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Runs `cmd` (stdin closed, output to files) and waits at most `limit`; a process that
/// overstays is killed and the test fails.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}:\n--- stdout:\n{}\n--- stderr:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned(),
    }
}

/// Whether `program args` runs; if not, the test is reported skipped with `why`.
pub fn available(test: &str, program: &str, args: &[&str], why: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(test, why);
    }
    ok
}

pub fn have_aws(test: &str) -> bool {
    available(
        test,
        "aws",
        &["--version"],
        "the AWS CLI is not installed: apt-get install awscli (or pip install awscli)",
    )
}

pub fn have_rclone(test: &str) -> bool {
    available(
        test,
        "rclone",
        &["version"],
        "rclone is not installed: apt-get install rclone",
    )
}
