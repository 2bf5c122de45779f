//! A 3-node cluster behind a real nginx with `ip_hash`, configured by the shipped
//! config/nginx.conf (only addresses and paths substituted): uploads and downloads through
//! nginx, `wget -c` resuming through nginx, and every node serving the file once replicated.
mod common;

use common::cluster::*;
use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .map(|p| p.to_string())
        .or_else(|| {
            skip("nginx", "nginx not installed");
            None
        })
}

/// Starts nginx from config/nginx.conf with `backends` as the upstream servers.
fn start_nginx(bin: &str, backends: &[String]) -> Nginx {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/nginx.conf"))
            .expect("config/nginx.conf is shipped");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let ip = "127.0.0.1";
    let port = free_port(ip);
    let servers: String = backends
        .iter()
        .map(|b| format!("        server {};\n", b.trim_start_matches("http://")))
        .collect();
    let mut conf = String::new();
    let mut in_upstream = false;
    for line in shipped.lines() {
        let t = line.trim();
        if t.starts_with("upstream fastdfs") {
            in_upstream = true;
        }
        if in_upstream && t.starts_with("server ") {
            if t.starts_with("server 10.0.0.20") {
                conf.push_str(&servers);
            }
            continue;
        }
        if t == "}" {
            in_upstream = false;
        }
        if t == "listen 80;" {
            conf.push_str(&format!("        listen {ip}:{port};\n"));
            continue;
        }
        if t == "worker_processes auto;" {
            conf.push_str("worker_processes 1;\ndaemon off;\n");
            continue;
        }
        conf.push_str(line);
        conf.push('\n');
        if t == "http {" {
            // Keep nginx's temp files in the test dir (not /var/lib/nginx).
            for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                conf.push_str(&format!("    {kind}_temp_path tmp_{kind};\n"));
            }
        }
    }
    assert!(conf.contains("ip_hash;"), "the shipped config uses ip_hash");
    assert_eq!(conf.matches("        server 127.").count(), backends.len());
    std::fs::write(dir.path().join("nginx.conf"), &conf).unwrap();
    let child = Command::new(bin)
        .args(["-p", dir.path().to_str().unwrap(), "-c", "nginx.conf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let base = format!("http://{ip}:{port}");
    let addr = format!("{ip}:{port}").parse().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }),
        "nginx did not listen: {}",
        std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default()
    );
    Nginx {
        child,
        _dir: dir,
        base,
    }
}

#[test]
fn a_cluster_behind_nginx_ip_hash_serves_uploads_downloads_and_wget_resume() {
    let Some(bin) = nginx_bin() else { return };
    let c = Cluster::start(6, 3, json!({"trusted_proxies": ["127.0.0.1"]}));
    let bases: Vec<String> = c.nodes.iter().map(|n| n.base()).collect();
    let ngx = start_nginx(&bin, &bases);

    let data = noise(5 << 20, 42);
    let md5 = md5_hex(&data);
    let r = upload_to(&ngx.base, "through-nginx.bin", &data);
    assert_eq!(r["md5"], md5, "{r}");
    let path = r["path"].as_str().unwrap().to_string();

    // Download through nginx, whole and by range.
    let (status, body) = get_bytes(&ngx.base, &path, &[]);
    assert_eq!(status, 200);
    assert_eq!(md5_hex(&body), md5);
    let (status, body) = get_bytes(&ngx.base, &path, &[("Range", "bytes=100-199")]);
    assert_eq!(status, 206);
    assert_eq!(body, &data[100..200]);

    // Every node ends up with its own copy.
    let refs: Vec<&str> = bases.iter().map(String::as_str).collect();
    let converged = eventually(Duration::from_secs(60), || {
        refs.iter().all(|b| has_md5(b, &md5))
    });
    assert!(converged, "not replicated everywhere:\n{}", c.report(&md5));

    // wget -c through nginx completes a partial download.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("through-nginx.bin");
    std::fs::write(&out, &data[..(2 << 20)]).unwrap();
    let st = Command::new("wget")
        .args(["-q", "-c", "-O"])
        .arg(&out)
        .arg(format!("{}{}", ngx.base, path))
        .status()
        .expect("wget runs");
    assert!(st.success(), "wget -c failed");
    assert_eq!(md5_hex(&std::fs::read(&out).unwrap()), md5);
    let access = std::fs::read_to_string(ngx._dir.path().join("logs/access.log")).unwrap();
    assert!(
        access.contains(" 206 "),
        "wget resumed with a range request: {access}"
    );
}

/// Reads one response with a Content-Length from `conn` (`buf` keeps what follows it); None
/// when the connection ends first.
fn read_response(conn: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> Option<Resp> {
    use std::io::Read;
    loop {
        if let Some((head, start)) = parse_head(buf) {
            let len: usize = head.header("content-length")?.parse().ok()?;
            if buf.len() >= start + len {
                let body = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return Some(Resp { body, ..head });
            }
        }
        let mut b = [0u8; 65536];
        match conn.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

#[test]
fn a_refused_upload_through_nginx_leaves_the_client_connection_usable() {
    // The shipped config forwards bodies as they arrive (`proxy_request_buffering off`): an
    // upload answered before its body was read (here a non-multipart one, 400) made nginx
    // close its client's connection after answering it keep-alive, and the next request the
    // client sent on it was lost (about one time in two).
    use std::io::Write;
    let Some(bin) = nginx_bin() else { return };
    let s = Server::start(json!({"trusted_proxies": ["127.0.0.1"]}));
    let ngx = start_nginx(&bin, &[s.base()]);
    let file = put_file(&s, "after/refusal.txt", b"still here");
    let body = vec![b'b'; 200 * 1024];
    let addr = ngx.base.trim_start_matches("http://").to_string();
    for round in 0..10 {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = format!(
            "POST /group1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        conn.write_all(&req).unwrap();
        let mut buf = Vec::new();
        let refused = read_response(&mut conn, &mut buf).expect("the refusal");
        assert_eq!(refused.status, 400, "round {round}: {}", refused.text());
        let get = format!("GET {file} HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.write_all(get.as_bytes()).unwrap();
        let next = read_response(&mut conn, &mut buf)
            .unwrap_or_else(|| panic!("round {round}: nginx closed the connection unanswered"));
        assert_eq!(next.status, 200, "round {round}");
        assert_eq!(next.body, b"still here");
    }
}
