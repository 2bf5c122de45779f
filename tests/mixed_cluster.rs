//! Mixed clusters (docs/PROTOCOL.md §8): during an in-place migration go-fastdfs nodes and
//! fastdfs-rs nodes are peers of one cluster, so every replication path works both ways: uploads
//! of every kind arrive with the same path and record, deletes reach the other kind (also of a
//! file it has not received yet), tus uploads replicate, and reconciliation fills the gaps either
//! kind leaves, whichever side runs it.
mod common;

use common::cluster::*;
use common::go::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// How long replication may take on a loaded machine (polled, never slept).
const SYNC_DEADLINE: Duration = Duration::from_secs(60);

/// A go-fastdfs node (index 0) and fastdfs-rs nodes (1..), each with all others as peers.
struct Mixed {
    go: GoNode,
    ours: Vec<Server>,
    bases: Vec<String>,
    _dirs: Vec<tempfile::TempDir>,
}

/// `n` nodes on lane `lane`: go-fastdfs with `go_cfg` on top of its template, ours with `our_cfg`.
fn mixed(lane: u8, n: usize, go_cfg: Value, our_cfg: Value) -> Option<Mixed> {
    let bin = go_bin()?;
    let Addresses { ips, ports, bases } = Addresses::pick(lane, n);
    let others =
        |i: usize| -> Vec<String> { bases.iter().filter(|b| **b != bases[i]).cloned().collect() };
    let go = GoNode::start_configured(&bin, &ips[0], ports[0], &others(0), &go_cfg);
    let (mut ours, mut dirs) = (Vec::new(), Vec::new());
    for i in 1..n {
        let d = tempfile::tempdir().unwrap();
        let mut o = our_cfg.clone();
        o["peers"] = json!(others(i));
        o["peer_id"] = json!(format!("{}", i + 1));
        write_config(d.path(), &ips[i], ports[i], &o);
        ours.push(Server::start_in(d.path(), &ips[i], json!({})));
        dirs.push(d);
    }
    Some(Mixed {
        go,
        ours,
        bases,
        _dirs: dirs,
    })
}

/// Sets `key` in a stopped node's cfg.json.
fn set_config(s: &Server, key: &str, value: Value) {
    let conf = s.dir.join("conf/cfg.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    cfg[key] = value;
    std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

/// A node's record of `md5` (`get_file_info`), Null when it has none.
fn record(base: &str, md5: &str) -> Value {
    let (_, text) = call(agent().get(&format!("{base}/group1/get_file_info?md5={md5}")));
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["data"].clone()
}

/// Uploads `data` as `name` with `fields` (multipart, as curl -F), returns the answer's text.
fn upload_with(base: &str, name: &str, data: &[u8], fields: &[(&str, &str)]) -> String {
    let (ct, body) = multipart(fields, Some((name, data)));
    let r = agent()
        .post(&format!("{base}/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    match r {
        Ok(r) => r.into_string().unwrap(),
        Err(ureq::Error::Status(c, r)) => {
            panic!("upload to {base}: {c} {}", r.into_string().unwrap())
        }
        Err(e) => panic!("upload to {base}: {e}"),
    }
}

/// The URL path of a stored file, percent-encoded as a client sends it.
fn url_path(record: &Value) -> String {
    let dir = record["path"]
        .as_str()
        .unwrap()
        .trim_start_matches("files/");
    let name = match record["rename"].as_str() {
        Some(r) if !r.is_empty() => r,
        _ => record["name"].as_str().unwrap(),
    };
    let seg: Vec<String> = dir.split('/').chain([name]).map(urlencode).collect();
    format!("/group1/{}", seg.join("/"))
}

/// Every kind of upload (scene, custom path, rename, json2, names with spaces, unicode and
/// percent signs) made on either kind of node reaches the other one: stored at the same path,
/// served by the same URL with the same bytes, and with a record equal field by field but for
/// `peers` (§11.5: the origin's grows as the peer acknowledges; the receiver keeps the list it
/// was announced, the origin alone).
#[test]
fn uploads_of_every_kind_replicate_both_ways_with_the_same_record() {
    let Some(m) = mixed(70, 2, json!({}), json!({})) else {
        return;
    };
    let kinds: [(&str, &[(&str, &str)]); 7] = [
        ("scene.txt", &[("scene", "pics"), ("output", "json")]),
        ("custom.txt", &[("path", "my/dir"), ("output", "json")]),
        (
            "renamed.txt",
            &[("filename", "other name.txt"), ("output", "json")],
        ),
        ("json2.txt", &[("output", "json2")]),
        ("with spaces.txt", &[("output", "json")]),
        ("файл 日本.txt", &[("output", "json")]),
        ("100%25 a%20b.txt", &[("output", "json")]),
    ];
    let mut files = Vec::new();
    for (o, origin) in m.bases.iter().enumerate() {
        for (k, (name, fields)) in kinds.iter().enumerate() {
            let data = noise(700 + k, 100 * o as u64 + k as u64);
            // Names differ per origin: the same path uploaded on both at once is no subject here.
            let name = format!("{o}-{name}");
            let text = upload_with(origin, &name, &data, fields);
            let v: Value = serde_json::from_str(&text).unwrap();
            let md5 = if v["md5"].is_string() {
                &v["md5"]
            } else {
                &v["data"]["md5"]
            };
            assert_eq!(md5, &json!(md5_hex(&data)), "{origin} {name}: {text}");
            files.push((o, name, data));
        }
    }
    for (o, name, data) in &files {
        let (origin, other) = (&m.bases[*o], &m.bases[1 - *o]);
        let md5 = md5_hex(data);
        assert!(
            eventually(SYNC_DEADLINE, || has_md5(other, &md5)),
            "{name} from {origin} did not reach {other}; go-fastdfs log: {}\nours: {}",
            m.go.log(),
            m.ours[0].stderr_tail(3000)
        );
        // The origin lists the receiver once it acknowledged.
        let both = json!([origin, other]);
        assert!(
            eventually(SYNC_DEADLINE, || record(origin, &md5)["peers"] == both),
            "{name}: origin's peers {}",
            record(origin, &md5)
        );
        let (mut at_origin, mut at_other) = (record(origin, &md5), record(other, &md5));
        assert_eq!(
            at_other["peers"],
            json!([origin]),
            "{name}: receiver's peers"
        );
        at_origin.as_object_mut().unwrap().remove("peers");
        at_other.as_object_mut().unwrap().remove("peers");
        assert_eq!(at_origin, at_other, "{name} from {origin}: records differ");
        let path = url_path(&at_origin);
        for base in &m.bases {
            let (status, body) = get_bytes(base, &path, &[]);
            assert_eq!((status, md5_hex(&body)), (200, md5.clone()), "{base}{path}");
        }
    }
}

/// A delete on either kind reaches the other (§11.9), also for a file the other side has not
/// received yet: it never shows up there afterwards.
#[test]
fn deletes_reach_the_other_kind_also_of_files_it_has_not_received() {
    let Some(mut m) = mixed(72, 2, json!({}), json!({})) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    let (a, b) = (noise(1500, 621), noise(1600, 622));
    upload_to(&go, "from-go.bin", &a);
    upload_to(&us, "from-us.bin", &b);
    let (ma, mb) = (md5_hex(&a), md5_hex(&b));
    let all = [go.as_str(), us.as_str()];
    assert!(eventually(SYNC_DEADLINE, || all
        .iter()
        .all(|n| has_md5(n, &ma) && has_md5(n, &mb))));
    // Each deletes the other's file.
    let (s, _) = call(agent().get(&format!("{go}/group1/delete?md5={mb}")));
    assert_eq!(s, 200);
    let (s, _) = call(agent().get(&format!("{us}/group1/delete?md5={ma}")));
    assert_eq!(s, 200);
    assert!(
        eventually(SYNC_DEADLINE, || all
            .iter()
            .all(|n| !has_md5(n, &ma) && !has_md5(n, &mb))),
        "a delete did not cross; go-fastdfs log: {}",
        m.go.log()
    );
    // go-fastdfs down: a file uploaded and deleted here meanwhile never reaches it.
    m.go.stop();
    let c = noise(1700, 623);
    upload_to(&us, "gone.bin", &c);
    let (s, _) = call(agent().get(&format!("{us}/group1/delete?md5={}", md5_hex(&c))));
    assert_eq!(s, 200);
    m.go.child = Some(GoNode::spawn_in(m.go.dir.path(), "server.log"));
    m.go.wait_ready();
    // Ours down: a file uploaded and deleted on go-fastdfs meanwhile never reaches us, even
    // after our repair.
    m.ours[0].stop();
    let d = noise(1800, 624);
    upload_to(&go, "gone-too.bin", &d);
    let (s, _) = call(agent().get(&format!("{go}/group1/delete?md5={}", md5_hex(&d))));
    assert_eq!(s, 200);
    m.ours[0].respawn();
    let (s, _) = call(agent().get(&format!("{us}/group1/repair?force=1")));
    assert_eq!(s, 200);
    // A marker uploaded after both: once it arrived, so would have anything queued before it.
    let e = noise(1900, 625);
    upload_to(&us, "marker.bin", &e);
    upload_to(&go, "marker2.bin", &noise(1901, 626));
    assert!(eventually(SYNC_DEADLINE, || has_md5(&go, &md5_hex(&e))
        && has_md5(&us, &md5_hex(&noise(1901, 626)))));
    std::thread::sleep(Duration::from_secs(2));
    for n in all {
        assert!(
            !has_md5(n, &md5_hex(&c)),
            "{n} has a file deleted before it got it"
        );
        assert!(
            !has_md5(n, &md5_hex(&d)),
            "{n} has a file deleted before it got it"
        );
    }
}

/// tus uploads made on either kind replicate to the other and are served by the record's URL.
#[test]
fn tus_uploads_replicate_both_ways() {
    let tus = json!({"enable_tus": true});
    let Some(m) = mixed(73, 2, tus.clone(), tus) else {
        return;
    };
    for (o, origin) in m.bases.iter().enumerate() {
        let other = &m.bases[1 - o];
        let data = noise(5000 + o, 630 + o as u64);
        let md5 = md5_hex(&data);
        let name = format!("tus-{o}.bin");
        let meta = format!(
            "filename {}",
            fastdfs::tus::protocol::base64_encode(name.as_bytes())
        );
        let r = agent()
            .post(&format!("{origin}/group1/big/upload/"))
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", &data.len().to_string())
            .set("Upload-Metadata", &meta)
            .call()
            .expect("tus creation");
        assert_eq!(r.status(), 201);
        let loc = r.header("Location").unwrap().to_string();
        let loc = if loc.starts_with('/') {
            format!("{origin}{loc}")
        } else {
            loc
        };
        let r = agent()
            .request("PATCH", &loc)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Offset", "0")
            .set("Content-Type", "application/offset+octet-stream")
            .send_bytes(&data)
            .expect("tus patch");
        assert_eq!(r.status(), 204);
        assert!(
            eventually(SYNC_DEADLINE, || has_md5(other, &md5)),
            "tus upload on {origin} did not reach {other}; go-fastdfs log: {}",
            m.go.log()
        );
        let (mut a, mut b) = (record(origin, &md5), record(other, &md5));
        a.as_object_mut().unwrap().remove("peers");
        b.as_object_mut().unwrap().remove("peers");
        assert_eq!(a, b, "tus record from {origin}");
        let path = url_path(&a);
        for base in &m.bases {
            let (status, body) = get_bytes(base, &path, &[]);
            assert_eq!((status, md5_hex(&body)), (200, md5.clone()), "{base}{path}");
        }
    }
}

/// go-fastdfs re-announces a file (`receive_md5s`, its repair) only to peers missing from the
/// record's `peers`. A node that acknowledged the announcement but did not store the file
/// (read_only then: it refuses fetching, as go-fastdfs does) is listed there, so asking
/// go-fastdfs is not enough: our repair fetches such a file itself.
#[test]
fn our_repair_fetches_a_file_go_fastdfs_counts_as_delivered() {
    let Some(mut m) = mixed(71, 2, json!({}), json!({"read_only": true})) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    let data = noise(2400, 611);
    let md5 = md5_hex(&data);
    let r = upload_to(&go, "counted.bin", &data);
    let path = r["path"].as_str().unwrap().to_string();
    assert!(
        eventually(SYNC_DEADLINE, || record(&go, &md5)["peers"]
            == json!([go, us])),
        "go-fastdfs never counted us: {}",
        record(&go, &md5)
    );
    assert!(!has_md5(&us, &md5), "a read_only node fetched");
    m.ours[0].stop();
    set_config(&m.ours[0], "read_only", json!(false));
    m.ours[0].respawn();
    let (s, _) = call(agent().get(&format!("{us}/group1/repair?force=1")));
    assert_eq!(s, 200);
    assert!(
        eventually(SYNC_DEADLINE, || has_md5(&us, &md5)),
        "our repair did not get go-fastdfs' file: {}",
        m.ours[0].stderr_tail(3000)
    );
    let (status, body) = get_bytes(&us, &path, &[]);
    assert_eq!((status, md5_hex(&body)), (200, md5.clone()));
    let (mut a, mut b) = (record(&go, &md5), record(&us, &md5));
    a.as_object_mut().unwrap().remove("peers");
    b.as_object_mut().unwrap().remove("peers");
    assert_eq!(a, b);
}

/// A file we count as delivered to go-fastdfs (it acknowledged while read_only) reaches it by go-fastdfs' own repair (our `receive_md5s` announces to every peer)
/// and by our `sync?date=&force=1`.
#[test]
fn go_fastdfs_repair_and_our_forced_sync_fill_its_gaps() {
    let Some(mut m) = mixed(74, 2, json!({"read_only": true}), json!({})) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    let (a, b) = (noise(2600, 641), noise(2700, 642));
    upload_to(&us, "a.bin", &a);
    upload_to(&us, "b.bin", &b);
    let (ma, mb) = (md5_hex(&a), md5_hex(&b));
    for md5 in [&ma, &mb] {
        assert!(
            eventually(SYNC_DEADLINE, || record(&us, md5)["peers"]
                == json!([us, go])),
            "go-fastdfs did not acknowledge: {}",
            record(&us, md5)
        );
        assert!(!has_md5(&go, md5));
    }
    m.go.stop();
    let conf = m.go.dir.path().join("conf/cfg.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    cfg["read_only"] = json!(false);
    std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    m.go.child = Some(GoNode::spawn_in(m.go.dir.path(), "server.log"));
    m.go.wait_ready();
    // go-fastdfs' repair: it asks us for what only we have (get_md5s_by_date, receive_md5s).
    let (s, _) = call(agent().get(&format!("{go}/group1/repair?force=1")));
    assert_eq!(s, 200);
    assert!(
        eventually(SYNC_DEADLINE, || has_md5(&go, &ma) && has_md5(&go, &mb)),
        "go-fastdfs' repair did not get our files; its log: {}",
        m.go.log()
    );
    // Our forced sync of the day announces again what it lost.
    let (s, _) = call(agent().get(&format!("{go}/group1/delete?md5={ma}&inner=1")));
    assert_eq!(s, 200);
    assert!(!has_md5(&go, &ma));
    let day = today();
    let (s, _) = call(agent().get(&format!("{us}/group1/sync?date={day}&force=1")));
    assert_eq!(s, 200);
    assert!(
        eventually(SYNC_DEADLINE, || has_md5(&go, &ma)),
        "forced sync did not reach go-fastdfs; its log: {}",
        m.go.log()
    );
}

/// With `download_use_token` on both kinds, a file replicated from the other kind downloads
/// with the token of its md5 (md5(md5 + timestamp)) from a client that is no admin, on either
/// node, and a wrong token is refused; the health check sees the other kind up (§11.10).
#[test]
fn token_downloads_work_for_files_replicated_from_the_other_kind() {
    let tokens = json!({"download_use_token": true, "download_token_expire": 600});
    let Some(m) = mixed(75, 2, tokens.clone(), tokens) else {
        return;
    };
    let mut files = Vec::new();
    for (o, origin) in m.bases.iter().enumerate() {
        let data = noise(1200 + o, 650 + o as u64);
        let r = upload_to(origin, &format!("token-{o}.bin"), &data);
        files.push((r["path"].as_str().unwrap().to_string(), md5_hex(&data)));
    }
    for (path, md5) in &files {
        assert!(
            eventually(SYNC_DEADLINE, || m.bases.iter().all(|b| has_md5(b, md5))),
            "{path} did not replicate"
        );
        for base in &m.bases {
            let ts = now().to_string();
            let token = md5_hex(format!("{md5}{ts}").as_bytes());
            let good = format!("{base}{path}?token={token}&timestamp={ts}");
            assert_eq!(status_from_non_admin(&good, &[]), 200, "{good}");
            let bad = format!("{base}{path}?token=x{}&timestamp={ts}", &token[1..]);
            assert_eq!(status_from_non_admin(&bad, &[]), 401, "{bad}");
        }
    }
    let (_, metrics) = call(agent().get(&m.ours[0].url("/group1/metrics")));
    assert!(
        metrics.contains(&format!("fastdfs_peer_up{{peer=\"{}\"}} 1", m.bases[0])),
        "{metrics}"
    );
}

/// With the special-character filter off (names kept as given), names with spaces, accents and
/// URL-significant characters replicate both ways and are served by their percent-encoded URL
/// on both kinds. go-fastdfs builds its fetch URL from the raw name, so it cannot fetch a name
/// with `%`, `#` or `?` from any peer (the URL does not parse, or names another file): such a
/// file of ours stays on us, and go-fastdfs serves it by reading it through from us (§10.4).
/// Ours fetch go-fastdfs' files of such names.
#[test]
fn names_kept_as_given_replicate_and_are_served_by_the_same_url_on_both_kinds() {
    let keep = json!({"enable_trim_file_name_special_char": false});
    let Some(m) = mixed(76, 2, keep.clone(), keep) else {
        return;
    };
    let both_ways = ["with space.txt", "ünï cödé.txt", "a+b;c[1]'.txt"];
    let url_significant = ["100% x.txt", "a#b.txt", "q?x=1.txt"];
    let mut seed = 660;
    let mut files = Vec::new();
    for (o, origin) in m.bases.iter().enumerate() {
        for name in both_ways.iter().chain(&url_significant) {
            seed += 1;
            let data = noise(900, seed);
            let r = upload_to(origin, &format!("{o}-{name}"), &data);
            assert_eq!(r["md5"], md5_hex(&data), "{r}");
            let stored = !(o == 1 && url_significant.contains(name));
            files.push((o, r, data, stored));
        }
    }
    for (o, r, data, stored_by_both) in &files {
        let md5 = md5_hex(data);
        let other = &m.bases[1 - *o];
        if *stored_by_both {
            assert!(
                eventually(SYNC_DEADLINE, || has_md5(other, &md5)),
                "{r} did not reach {other}"
            );
            let (mut a, mut b) = (record(&m.bases[*o], &md5), record(other, &md5));
            a.as_object_mut().unwrap().remove("peers");
            b.as_object_mut().unwrap().remove("peers");
            assert_eq!(a, b);
        }
        let path = url_path(&record(&m.bases[*o], &md5));
        for base in &m.bases {
            let (status, body) = get_bytes(base, &path, &[]);
            assert_eq!((status, md5_hex(&body)), (200, md5.clone()), "{base}{path}");
        }
    }
}

/// §11.4: go-fastdfs down for a while (our pushes back off), then back: everything uploaded
/// here meanwhile reaches it. Ours down while go-fastdfs takes uploads: go-fastdfs gives up
/// after its few immediate retries (then only every `refresh_interval`), and our repair when we
/// are back (as `auto_repair` runs it after a start) brings the files.
#[test]
fn outages_of_either_kind_are_caught_up() {
    let Some(mut m) = mixed(77, 2, json!({}), json!({})) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    m.go.stop();
    let ours: Vec<Vec<u8>> = (0..5).map(|i| noise(3000 + i, 670 + i as u64)).collect();
    for (i, d) in ours.iter().enumerate() {
        upload_to(&us, &format!("while-go-down-{i}.bin"), d);
    }
    // Long enough for the backoff to reach its cap.
    std::thread::sleep(Duration::from_secs(12));
    m.go.child = Some(GoNode::spawn_in(m.go.dir.path(), "server.log"));
    m.go.wait_ready();
    assert!(
        eventually(SYNC_DEADLINE, || ours
            .iter()
            .all(|d| has_md5(&go, &md5_hex(d)))),
        "go-fastdfs did not catch up: {}",
        m.ours[0].stderr_tail(3000)
    );
    m.ours[0].stop();
    let theirs: Vec<Vec<u8>> = (0..5).map(|i| noise(3100 + i, 675 + i as u64)).collect();
    for (i, d) in theirs.iter().enumerate() {
        upload_to(&go, &format!("while-we-are-down-{i}.bin"), d);
    }
    std::thread::sleep(Duration::from_secs(2));
    m.ours[0].respawn();
    let (s, _) = call(agent().get(&format!("{us}/group1/repair")));
    assert_eq!(s, 200);
    assert!(
        eventually(SYNC_DEADLINE, || theirs
            .iter()
            .all(|d| has_md5(&us, &md5_hex(d)))),
        "we did not catch up: {}",
        m.ours[0].stderr_tail(3000)
    );
}

/// The same custom path got different content on each kind while they could not talk.
/// go-fastdfs, fetching ours, renames it over its own file (its record then names bytes that
/// are not its md5's). Ours keeps its own file, never stores the bytes go-fastdfs now serves
/// for its record (wrong size), and gives that fetch up after `retry_count` attempts, as for a
/// source that lacks the file, instead of retrying it forever.
#[test]
fn a_path_taken_on_both_kinds_keeps_our_file_and_the_hopeless_fetch_ends() {
    let Some(mut m) = mixed(78, 2, json!({}), json!({})) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    let (ours, theirs) = (noise(2000, 681), noise(2100, 682));
    let put = |base: &str, data: &[u8]| {
        upload_with(
            base,
            "x.txt",
            data,
            &[("path", "clash"), ("output", "json")],
        )
    };
    m.go.stop();
    let r = put(&us, &ours);
    assert!(r.contains("/group1/clash/x.txt"), "{r}");
    m.ours[0].stop();
    m.go.child = Some(GoNode::spawn_in(m.go.dir.path(), "server.log"));
    m.go.wait_ready();
    let r = put(&go, &theirs);
    assert!(r.contains("/group1/clash/x.txt"), "{r}");
    m.ours[0].respawn();
    let (mo, mt) = (md5_hex(&ours), md5_hex(&theirs));
    // go-fastdfs fetches ours over its own file (its defect, not ours).
    assert!(eventually(SYNC_DEADLINE, || get_bytes(
        &go,
        "/group1/clash/x.txt",
        &[]
    )
    .1 == ours));
    let (s, _) = call(agent().get(&format!("{us}/group1/repair")));
    assert_eq!(s, 200);
    let dropped = eventually(SYNC_DEADLINE, || {
        m.ours[0]
            .stderr()
            .lines()
            .any(|l| l.contains("announced file dropped") && l.contains(&mt))
    });
    assert!(dropped, "{}", m.ours[0].stderr_tail(3000));
    // The drop is logged just before its inbox entry goes.
    let metrics = || call(agent().get(&m.ours[0].url("/group1/metrics"))).1;
    let emptied = eventually(Duration::from_secs(10), || {
        metrics().contains("fastdfs_sync_inbox 0")
    });
    assert!(emptied, "{}", metrics());
    assert!(has_md5(&us, &mo) && !has_md5(&us, &mt));
    assert_eq!(
        get_bytes(&us, "/group1/clash/x.txt", &[]),
        (200, ours.clone())
    );
}

/// Merged small files (`enable_merge_small_file` on both kinds): go-fastdfs cannot delete them
/// (`small file delete not support`) but forwards the delete first (SPEC §15 #34), so a delete
/// asked of it removes our copy and it keeps its own. A delete asked of us removes ours and is
/// acknowledged by go-fastdfs (which keeps its copy): our queue does not hold it forever. Here
/// the files stay deleted: not read through from go-fastdfs' copy (404), not back after a repair.
#[test]
fn deletes_of_merged_files_go_fastdfs_refuses_do_not_stick_in_our_queue() {
    let merge = json!({"enable_merge_small_file": true});
    let Some(m) = mixed(79, 2, merge.clone(), merge) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    let (a, b) = (noise(1000, 691), noise(1100, 692));
    let pa = upload_to(&us, "a.txt", &a)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let pb = upload_to(&go, "b.txt", &b)["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pa.contains("/haystack/") && pb.contains("/haystack/"),
        "{pa} {pb}"
    );
    let (ma, mb) = (md5_hex(&a), md5_hex(&b));
    assert!(eventually(SYNC_DEADLINE, || [&go, &us]
        .iter()
        .all(|n| has_md5(n, &ma) && has_md5(n, &mb))));
    // Asked of go-fastdfs: refused there, done here.
    let (_, text) = call(agent().get(&format!("{go}/group1/delete?md5={ma}")));
    assert!(text.contains("small file delete not support"), "{text}");
    assert!(eventually(SYNC_DEADLINE, || !has_md5(&us, &ma)));
    assert_eq!(get_bytes(&us, &pa, &[]).0, 404);
    assert!(has_md5(&go, &ma), "go-fastdfs deletes merged files now?");
    // Asked of us: done here, acknowledged there.
    let (s, _) = call(agent().get(&format!("{us}/group1/delete?md5={mb}")));
    assert_eq!(s, 200);
    assert_eq!(get_bytes(&us, &pb, &[]).0, 404);
    assert_eq!(
        get_bytes(&go, &pb, &[]).0,
        200,
        "go-fastdfs deletes merged files now?"
    );
    let depth = format!("fastdfs_sync_queue_depth{{peer=\"{go}\"}} 0");
    assert!(
        eventually(SYNC_DEADLINE, || call(
            agent().get(&m.ours[0].url("/group1/metrics"))
        )
        .1
        .contains(&depth)),
        "{}",
        m.ours[0].stderr_tail(3000)
    );
    let (s, _) = call(agent().get(&format!("{us}/group1/repair")));
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !has_md5(&us, &ma) && !has_md5(&us, &mb),
        "a deleted file came back"
    );
    assert_eq!(get_bytes(&us, &pa, &[]).0, 404);
}

/// §10.4 both ways: a file not replicated yet is served by the node that lacks it, read through
/// from the other kind (ours with the client's Range honoured), and then stored there.
#[test]
fn files_not_replicated_yet_are_read_through_from_the_other_kind() {
    let Some(mut m) = mixed(80, 2, json!({}), json!({})) else {
        return;
    };
    let (go, us) = (m.bases[0].clone(), m.bases[1].clone());
    // Ours is down while go-fastdfs takes the upload (its push gives up at once).
    m.ours[0].stop();
    let theirs = noise(40_000, 801);
    let path = upload_to(&go, "lag.bin", &theirs)["path"]
        .as_str()
        .unwrap()
        .to_string();
    m.ours[0].respawn();
    assert!(!has_md5(&us, &md5_hex(&theirs)));
    let (status, body) = get_bytes(&us, &path, &[("Range", "bytes=1000-1999")]);
    assert_eq!((status, body.as_slice()), (206, &theirs[1000..2000]));
    let (status, body) = get_bytes(&us, &path, &[]);
    assert_eq!((status, md5_hex(&body)), (200, md5_hex(&theirs)));
    assert!(
        eventually(SYNC_DEADLINE, || has_md5(&us, &md5_hex(&theirs))),
        "no copy kept after the read-through: {}",
        m.ours[0].stderr_tail(3000)
    );
    // go-fastdfs down while we take one: it reads it through from us when asked first.
    m.go.stop();
    let ours = noise(30_000, 802);
    let path = upload_to(&us, "lag2.bin", &ours)["path"]
        .as_str()
        .unwrap()
        .to_string();
    m.go.child = Some(GoNode::spawn_in(m.go.dir.path(), "server.log"));
    m.go.wait_ready();
    let (status, body) = get_bytes(&go, &path, &[]);
    assert_eq!((status, md5_hex(&body)), (200, md5_hex(&ours)));
    assert!(eventually(SYNC_DEADLINE, || has_md5(&go, &md5_hex(&ours))));
}
