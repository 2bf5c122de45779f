//! Several fastdfs nodes that are each other's peers, one loopback address each
//! (127.0.0.<lane+20>, <lane+30>, <lane+40>, ...), so a test's nodes never share a port space
//! with another test's.
use super::*;

pub struct Cluster {
    pub nodes: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

/// The address of node `i` of lane `lane` (lanes keep parallel tests apart).
pub fn node_ip(lane: u8, i: usize) -> String {
    assert!(i < 5, "node index in range");
    if lane < 10 {
        format!("127.0.0.{}", 20 + 10 * i as u8 + lane)
    } else {
        format!("127.1.{lane}.{}", 20 + 10 * i as u8)
    }
}

/// Peak resident memory (VmHWM) of a process, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("VmHWM in /proc/<pid>/status")
        * 1024
}

/// Addresses of `n` nodes of a lane: IPs, free ports, base URLs.
pub struct Addresses {
    pub ips: Vec<String>,
    pub ports: Vec<u16>,
    pub bases: Vec<String>,
}

impl Addresses {
    pub fn pick(lane: u8, n: usize) -> Addresses {
        let ips: Vec<String> = (0..n).map(|i| node_ip(lane, i)).collect();
        let ports: Vec<u16> = ips.iter().map(|ip| free_port(ip)).collect();
        let bases = ips
            .iter()
            .zip(&ports)
            .map(|(ip, p)| format!("http://{ip}:{p}"))
            .collect();
        Addresses { ips, ports, bases }
    }
}

impl Cluster {
    /// `n` nodes, each with every other node as a peer, plus `overrides`.
    pub fn start(lane: u8, n: usize, overrides: Value) -> Cluster {
        let Addresses { ips, ports, bases } = Addresses::pick(lane, n);
        let mut dirs = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let peers: Vec<&String> = bases.iter().filter(|b| **b != bases[i]).collect();
            let mut o = overrides.clone();
            o["peers"] = json!(peers);
            o["peer_id"] = json!(format!("{}", i + 1));
            write_config(dir.path(), &ips[i], ports[i], &o);
            nodes.push(Server::start_in(dir.path(), &ips[i], json!({})));
            dirs.push(dir);
        }
        Cluster { nodes, _dirs: dirs }
    }
}

impl Cluster {
    /// For failure messages: which node has the md5, its sync metrics and its log's tail.
    pub fn report(&self, md5: &str) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let (_, metrics) = call(agent().get(&n.url("/group1/metrics")));
            let sync: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("fastdfs_sync") || l.starts_with("fastdfs_peer"))
                .filter(|l| !l.contains("_bucket"))
                .collect();
            let log = n.stderr();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!(
                "== {} has={}\n{}\n-- log tail (newest first):\n{}\n",
                n.base(),
                has_md5(&n.base(), md5),
                sync.join("\n"),
                tail.join("\n")
            ));
        }
        out
    }
}

/// Writes `conf/cfg.json` for a node on `ip:port` (durably).
pub fn write_config(dir: &Path, ip: &str, port: u16, overrides: &Value) {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let cfg = base_config(ip, port, overrides);
    let conf = dir.join("conf/cfg.json");
    std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    std::fs::File::open(&conf).unwrap().sync_all().unwrap();
}

/// Does `base` (any node, ours or go-fastdfs) hold a live copy of md5 in its own index?
pub fn has_md5(base: &str, md5: &str) -> bool {
    let url = format!("{base}/group1/check_file_exist?md5={md5}");
    match agent().get(&url).call() {
        Ok(r) => r
            .into_string()
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["md5"] == md5),
        Err(_) => false,
    }
}

/// Uploads `data` to `base` and returns the JSON result.
pub fn upload_to(base: &str, name: &str, data: &[u8]) -> Value {
    let (ct, body) = multipart(&[("output", "json")], Some((name, data)));
    let r = agent()
        .post(&format!("{base}/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body)
        .expect("upload");
    serde_json::from_str(&r.into_string().unwrap()).expect("upload answer is JSON")
}

/// GET `<base><path>` as (status, body bytes).
pub fn get_bytes(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut req = agent().get(&format!("{base}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

/// The md5 list of a day on a node (`get_md5s_by_date`).
pub fn md5s_of_day(base: &str, date: &str) -> Vec<String> {
    let (_, text) = call(agent().get(&format!("{base}/group1/get_md5s_by_date?date={date}")));
    text.split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// Today as the servers name it (`YYYYMMDD`, local time).
pub fn today() -> String {
    local_stamp(now())[..8].to_string()
}

/// The download path of the file a node indexes under `md5` (from `get_file_info`).
pub fn served_path(base: &str, md5: &str) -> String {
    let (_, text) = call(agent().get(&format!("{base}/group1/get_file_info?md5={md5}")));
    let v: Value = serde_json::from_str(&text).expect("get_file_info answers JSON");
    let dir = v["data"]["path"].as_str().expect("a record");
    let name = v["data"]["name"].as_str().expect("a record");
    format!("/group1/{}/{name}", dir.trim_start_matches("files/"))
}
