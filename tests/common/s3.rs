//! A server with its S3 listener on, for the tests that drive S3 clients.

use super::{eventually, free_port, Server};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Starts a server whose S3 listener (region `us-east-1`) takes the access keys `keys` (the
/// `s3_keys` of cfg.json), and returns it with the listener's port once it accepts.
pub fn start(keys: Value) -> (Server, u16) {
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
