//! Seeded fault schedules over three nodes (issue 13, item 8), in the manner of Jepsen and
//! FoundationDB's simulation: uploads and deletes to random nodes while nodes are killed with
//! SIGKILL and restarted, frozen with SIGSTOP and thawed, restarted gracefully, and (where
//! iptables exists) cut off from one peer for a while. After the last fault every node is
//! brought back and, within 60 s, the invariant must hold: all nodes hold the same files;
//! every acknowledged upload that was not deleted is on every node, byte-exact; no
//! acknowledged delete came back anywhere.
//!
//! `FAULT_SEEDS=a,b,c` runs those seeds instead of the default ones; a failing seed is added
//! to `REGRESSION_SEEDS`. docs/TESTING.md records a run over many seeds.
mod common;
use common::cluster::{
    get_bytes, has_md5, md5s_of_day, served_path, today, write_config, Addresses,
};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// Seeds run by default (a few, to bound CI time).
const DEFAULT_SEEDS: &[u64] = &[1, 2, 3];
/// Seeds that once failed: kept as regression tests.
const REGRESSION_SEEDS: &[u64] = &[];
const STEPS: usize = 16;

/// xorshift64*: a small deterministic generator (the schedule is a function of the seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn iptables() -> bool {
    Command::new("iptables")
        .args(["-L", "-n"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Drops traffic between two loopback addresses (both ways) or lifts that again.
fn cut(a: &str, b: &str, on: bool) {
    let op = if on { "-I" } else { "-D" };
    for (s, d) in [(a, b), (b, a)] {
        let _ = Command::new("iptables")
            .args([op, "INPUT", "-s", s, "-d", d, "-j", "DROP"])
            .status();
    }
}

fn signal(s: &Server, sig: i32) {
    if let Some(c) = &s.child {
        // SAFETY: a signal to a child this test started.
        unsafe { libc::kill(c.id() as i32, sig) };
    }
}

fn try_upload(base: &str, name: &str, data: &[u8]) -> Option<Value> {
    let (ct, body) = multipart(&[("output", "json")], Some((name, data)));
    let r = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build()
        .post(&format!("{base}/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body)
        .ok()?;
    let v: Value = serde_json::from_str(&r.into_string().ok()?).ok()?;
    v["md5"].is_string().then_some(v)
}

fn try_delete(base: &str, md5: &str) -> bool {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build()
        .get(&format!("{base}/group1/delete?md5={md5}"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v["status"] == "ok")
}

fn run_schedule(seed: u64, lane: u8) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let addrs = Addresses::pick(lane, 3);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let peers: Vec<&String> = addrs
            .bases
            .iter()
            .filter(|b| **b != addrs.bases[i])
            .collect();
        let o =
            json!({"peers": peers, "peer_id": format!("{}", i + 1), "status_check_interval": 1});
        write_config(dir.path(), &addrs.ips[i], addrs.ports[i], &o);
    }
    let mut nodes: Vec<Server> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| Server::start_in(d.path(), &addrs.ips[i], json!({})))
        .collect();
    let net = iptables();
    // Files are indexed under the day of their upload: a run across midnight spans two.
    let first_day = today();
    let mut acked: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut log = Vec::new();
    let counter = std::cell::Cell::new(0u64);
    let next_id = || {
        counter.set(counter.get() + 1);
        counter.get()
    };
    let upload_somewhere = |nodes: &[Server],
                            rng: &mut Rng,
                            acked: &mut BTreeMap<String, Vec<u8>>,
                            log: &mut Vec<String>| {
        let id = next_id();
        let data = noise(1_000 + rng.below(60_000), seed * 1_000_000 + id);
        let n = rng.below(3);
        match try_upload(&nodes[n].base(), &format!("s{seed}-{id}.bin"), &data) {
            Some(v) => {
                log.push(format!("upload {} to {n}", v["md5"]));
                acked.insert(v["md5"].as_str().unwrap().to_string(), data);
            }
            None => log.push(format!("upload to {n} refused or cut")),
        }
    };
    for _ in 0..STEPS {
        match rng.below(9) {
            0..=3 => upload_somewhere(&nodes, &mut rng, &mut acked, &mut log),
            4 => {
                let live: Vec<&String> = acked.keys().filter(|m| !deleted.contains(*m)).collect();
                if !live.is_empty() {
                    let md5 = live[rng.below(live.len())].clone();
                    let n = rng.below(3);
                    if try_delete(&nodes[n].base(), &md5) {
                        log.push(format!("delete {md5} at {n}"));
                        deleted.insert(md5);
                    }
                }
            }
            5 => {
                let n = rng.below(3);
                log.push(format!("kill -9 {n}, restart"));
                nodes[n].kill();
                upload_somewhere(&nodes, &mut rng, &mut acked, &mut log);
                nodes[n].respawn();
            }
            6 => {
                let n = rng.below(3);
                log.push(format!("SIGSTOP {n}"));
                signal(&nodes[n], libc::SIGSTOP);
                for _ in 0..2 {
                    let m = (n + 1 + rng.below(2)) % 3;
                    let id = next_id();
                    let data = noise(5_000, seed * 1_000_000 + 500_000 + id);
                    if let Some(v) =
                        try_upload(&nodes[m].base(), &format!("f{seed}-{id}.bin"), &data)
                    {
                        acked.insert(v["md5"].as_str().unwrap().to_string(), data);
                    }
                }
                std::thread::sleep(Duration::from_millis(500 + rng.below(1500) as u64));
                signal(&nodes[n], libc::SIGCONT);
                log.push(format!("SIGCONT {n}"));
            }
            7 => {
                let n = rng.below(3);
                log.push(format!("restart {n}"));
                nodes[n].stop();
                nodes[n].respawn();
            }
            _ if net => {
                let (a, b) = (rng.below(3), rng.below(3));
                if a != b {
                    log.push(format!("cut {a}-{b}"));
                    cut(&addrs.ips[a], &addrs.ips[b], true);
                    upload_somewhere(&nodes, &mut rng, &mut acked, &mut log);
                    upload_somewhere(&nodes, &mut rng, &mut acked, &mut log);
                    std::thread::sleep(Duration::from_millis(500 + rng.below(2000) as u64));
                    cut(&addrs.ips[a], &addrs.ips[b], false);
                    log.push(format!("heal {a}-{b}"));
                }
            }
            _ => upload_somewhere(&nodes, &mut rng, &mut acked, &mut log),
        }
        std::thread::sleep(Duration::from_millis(rng.below(300) as u64));
    }
    // Everything back: then the cluster must converge.
    for n in &nodes {
        signal(n, libc::SIGCONT);
    }
    let want: BTreeSet<String> = acked
        .keys()
        .filter(|m| !deleted.contains(*m))
        .cloned()
        .collect();
    let days: BTreeSet<String> = [first_day, today()].into();
    // Every file each node indexes under the days of the run.
    let have_of = |n: &Server| -> BTreeSet<String> {
        days.iter()
            .flat_map(|d| md5s_of_day(&n.base(), d))
            .collect()
    };
    let started = Instant::now();
    let converged = eventually(Duration::from_secs(60), || {
        nodes.iter().all(|n| have_of(n) == want)
    });
    let report = || {
        let mut out = format!("seed {seed}: schedule\n  {}\n", log.join("\n  "));
        for (i, n) in nodes.iter().enumerate() {
            let have = have_of(n);
            let missing: Vec<_> = want.difference(&have).collect();
            let extra: Vec<_> = have.difference(&want).collect();
            out += &format!("node {i}: missing {missing:?}, extra {extra:?}\n");
        }
        out
    };
    assert!(converged, "no convergence within 60 s\n{}", report());
    for md5 in &deleted {
        for n in &nodes {
            assert!(
                !has_md5(&n.base(), md5),
                "a deleted file came back\n{}",
                report()
            );
        }
    }
    // Byte-exact everywhere (each live file read from every node).
    for md5 in &want {
        let data = &acked[md5];
        for n in &nodes {
            let path = served_path(&n.base(), md5);
            let (code, got) = get_bytes(&n.base(), &path, &[]);
            assert!(
                code == 200 && &got == data,
                "{md5} at {}: {code}\n{}",
                n.base(),
                report()
            );
        }
    }
    eprintln!(
        "seed {seed}: {} steps, {} uploads acknowledged, {} deletes, converged in {:.1} s",
        STEPS,
        acked.len(),
        deleted.len(),
        started.elapsed().as_secs_f64()
    );
}

fn seeds() -> Vec<u64> {
    match std::env::var("FAULT_SEEDS") {
        Ok(s) if !s.trim().is_empty() => {
            s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        }
        _ => DEFAULT_SEEDS
            .iter()
            .chain(REGRESSION_SEEDS)
            .copied()
            .collect(),
    }
}

#[test]
fn seeded_fault_schedules_over_three_nodes_converge_without_losing_or_resurrecting_files() {
    if !iptables() {
        eprintln!("note: iptables missing (scripts/test-all.sh installs it): the schedules run without network cuts");
    }
    for seed in seeds() {
        run_schedule(seed, 20);
    }
}
