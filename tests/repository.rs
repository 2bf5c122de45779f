//! Facts about the repository itself: LICENSE holds the text of the license Cargo.toml
//! declares, Cargo.toml's rust-version is no older than what any dependency declares (the
//! only toolchain-independent check of the MSRV: the locked graph cannot build with less), and
//! the README's `cargo run --release` names one binary to run, the server.
mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Unlicense, as https://unlicense.org publishes it.
const UNLICENSE: &str = "\
This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or
distribute this software, either in source code form or as a compiled
binary, for any purpose, commercial or non-commercial, and by any
means.

In jurisdictions that recognize copyright laws, the author or authors
of this software dedicate any and all copyright interest in the
software to the public domain. We make this dedication for the benefit
of the public at large and to the detriment of our heirs and
successors. We intend this dedication to be an overt act of
relinquishment in perpetuity of all present and future rights to this
software under copyright law.

THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
IN NO EVENT SHALL THE AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR
OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE,
ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
OTHER DEALINGS IN THE SOFTWARE.

For more information, please refer to <https://unlicense.org>
";

/// A string field of Cargo.toml's `[package]` table (`key = "value"` lines).
fn package_field(key: &str) -> Option<String> {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if in_package && k.trim() == key {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

/// "1.88" or "1.88.0" as (major, minor, patch).
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("bad rust-version {v:?}"))
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

#[test]
fn license_file_holds_the_declared_license() {
    let declared = package_field("license").expect("Cargo.toml declares a license");
    let text = std::fs::read_to_string(Path::new(ROOT).join("LICENSE"))
        .expect("a LICENSE file at the repository root");
    match declared.as_str() {
        "Unlicense" => assert_eq!(text, UNLICENSE, "LICENSE is not the Unlicense text"),
        other => panic!("Cargo.toml declares license {other:?}: update LICENSE and this test"),
    }
}

#[test]
fn rust_version_is_no_older_than_any_dependency_needs() {
    let declared = package_field("rust-version").expect("Cargo.toml declares a rust-version");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // Only the host's dependency graph (fastdfs-rs builds on Linux only): the packages of
    // other platforms (windows-*, android_*) need not be downloaded for an offline run.
    let host = match Command::new(&rustc).arg("-vV").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
            .expect("rustc -vV names the host"),
        Err(e) => {
            skip(
                "rust_version_is_no_older_than_any_dependency_needs",
                &format!("{rustc} unavailable: {e}"),
            );
            return;
        }
    };
    let out = match Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(ROOT)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            skip(
                "rust_version_is_no_older_than_any_dependency_needs",
                &format!("{cargo} unavailable: {e}"),
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|p| p["name"] == "fastdfs-rs")
        .expect("fastdfs-rs in the metadata");
    assert_eq!(ours["rust_version"].as_str(), Some(declared.as_str()));
    let mut newer: Vec<String> = packages
        .iter()
        .filter(|p| p["name"] != "fastdfs-rs")
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(&declared))
                .then(|| format!("{} {} needs {needs}", p["name"], p["version"]))
        })
        .collect();
    newer.sort();
    assert!(
        packages.len() > 50,
        "the whole graph was resolved: {}",
        packages.len()
    );
    assert!(
        newer.is_empty(),
        "Cargo.toml says rust-version = {declared}, but: {newer:?}"
    );
}

#[test]
fn the_readmes_cargo_run_runs_the_server() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(
        readme.contains("cargo run --release"),
        "the README's run command"
    );
    // What cargo itself makes of the manifest: with more than one binary, `cargo run` needs
    // the package's default-run (else "could not determine which binary to run").
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = &meta["packages"][0];
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(bins.contains(&"fastdfs"), "{bins:?}");
    if bins.len() > 1 {
        assert_eq!(package["default_run"], "fastdfs", "binaries {bins:?}");
    }
}
