//! Unit tests of configuration parsing, defaults and reload.
use super::*;

fn p(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    parse(Path::new("conf/cfg.json"), text)
}

#[test]
fn generated_file_parses_with_go_defaults() {
    let (c, warnings) = p(&default_file_text()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.group, "group1");
    assert!(c.support_group_manage);
    assert_eq!(c.prefix(), "/group1");
    assert_eq!(c.default_scene, "default");
    assert!(c.enable_distinct_file);
    assert_eq!(c.image_max_height, 1000);
    assert_eq!(c.admin_key.len(), 36);
    assert!(c.peers.is_empty(), "own host is dropped: {:?}", c.peers);
}

#[test]
fn missing_keys_get_runtime_defaults() {
    let (c, _) = p("{}").unwrap();
    assert_eq!(c.prefix(), "");
    assert_eq!(c.image_max_width, 2000);
    assert_eq!(c.read_timeout, 600);
    assert_eq!(c.retry_count, 3);
    assert_eq!(c.read_header_timeout_s(), READ_HEADER_TIMEOUT_S_DEFAULT);
}

#[test]
fn unknown_keys_warn_and_comment_keys_do_not() {
    let (_, w) =
        p("{\"bogus\": 1, \"注释\": \"x\", \"PeerID\": \"集群\", \"queue_size\": 5}").unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("bogus") && w[0].contains("line 1"), "{w:?}");
}

#[test]
fn syntax_error_names_the_line() {
    let e = p("{\n\"addr\": \":8080\",\n\"group\" \"x\"\n}")
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn type_error_names_key_and_line() {
    let e = p("{\n\"addr\": \":8080\",\n\"show_dir\": \"yes\"\n}")
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(msg.contains("show_dir") && msg.contains("line 3"), "{msg}");
}

#[test]
fn peers_are_normalized_and_self_dropped() {
    let text = r#"{"host":"127.0.0.20:8080","peers":["127.0.0.20:8080","http://127.0.0.30:8080/","127.0.0.30:8080"]}"#;
    let (c, _) = p(text).unwrap();
    assert_eq!(c.host, "http://127.0.0.20:8080");
    assert_eq!(c.peers, vec!["http://127.0.0.30:8080".to_string()]);
}

#[test]
fn extensions_get_dot_and_lower_case() {
    let (c, _) = p(r#"{"extensions":["PNG",".jpg"]}"#).unwrap();
    assert_eq!(c.extensions, vec![".png", ".jpg"]);
}

#[test]
fn bad_admin_ip_is_an_error() {
    let e = p(r#"{"admin_ips":["10.0.0.0/33"]}"#).err().unwrap();
    assert!(e.to_string().contains("admin_ips"));
}

#[test]
fn a_reload_keeps_the_restart_keys_and_takes_the_rest() {
    let (old, _) =
        p(r#"{"addr":"127.0.0.1:1","workers":2,"enable_tus":true,"read_only":false}"#).unwrap();
    let (mut next, _) =
        p(r#"{"addr":"127.0.0.1:2","workers":3,"enable_tus":false,"read_only":true}"#).unwrap();
    keep_restart_keys(&mut next, &old);
    assert_eq!(
        (next.addr.as_str(), next.workers, next.enable_tus),
        ("127.0.0.1:1", 2, true)
    );
    assert!(next.read_only, "a live key takes the new value");
    assert!(restart_keys().contains(&"shards") && !restart_keys().contains(&"peers"));
}

#[test]
fn every_generated_key_is_known() {
    let text = default_file_text();
    let v: Value = serde_json::from_str(&text).unwrap();
    for k in v.as_object().unwrap().keys() {
        assert!(
            KNOWN_KEYS.contains(&k.as_str()) || KEYS_IGNORED.contains(&k.as_str()),
            "{k}"
        );
    }
    let (c, warnings) = p(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.image_max_height, 1000);
}

#[test]
fn addr_forms() {
    let (c, _) = p(r#"{"addr":"127.0.0.1:9000"}"#).unwrap();
    assert_eq!(c.listen_addr().unwrap().port(), 9000);
    assert!(p(r#"{"addr":"nonsense"}"#).is_err());
}

#[test]
fn after_prefix_agrees_with_the_prefix() {
    let (grouped, _) = p(r#"{"group": "group1", "support_group_manage": true}"#).unwrap();
    let (plain, _) = p(r#"{"group": "group1", "support_group_manage": false}"#).unwrap();
    for cfg in [&grouped, &plain] {
        for path in [
            "/",
            "/group1",
            "/group1/",
            "/group1/upload",
            "/group10/upload",
            "/group1x",
            "/upload",
            "",
            "group1/upload",
        ] {
            let prefix = cfg.prefix();
            let slow = path
                .strip_prefix(prefix.as_str())
                .filter(|n| n.starts_with('/'));
            assert_eq!(cfg.after_prefix(path), slow, "{path} under {prefix:?}");
        }
    }
    assert_eq!(grouped.after_prefix("/group1/upload"), Some("/upload"));
    assert_eq!(plain.after_prefix("/group1/upload"), Some("/group1/upload"));
}

#[test]
fn durations_past_ten_years_are_refused_and_negative_timeouts_take_the_default() {
    // A deadline past `Instant`'s range panicked where it was computed: in every connection
    // (read_timeout) or in a duty, which stops the server (status_check_interval).
    for key in [
        "read_timeout",
        "status_check_interval",
        "shutdown_grace",
        "sync_timeout",
    ] {
        for v in ["1e19", "9223372036854775807", "315360001"] {
            let e = p(&format!("{{\"{key}\": {v}}}")).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("at most"), "{key}={v}: {e}");
        }
        p(&format!("{{\"{key}\": {SECONDS_MAX}}}")).unwrap();
    }
    let (c, _) = p(r#"{"read_timeout": -1, "write_timeout": -30}"#).unwrap();
    assert_eq!((c.read_timeout, c.write_timeout), (600, 600));
}
