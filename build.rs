//! Build facts for `fastdfs version` and the `fastdfs_build_info` metric: the git commit
//! (`FASTDFS_GIT_COMMIT`, or `git rev-parse` of the source tree; "unknown" outside a checkout,
//! e.g. a source tarball) and the build time (`SOURCE_DATE_EPOCH` for reproducible builds,
//! else now), both overridable from the environment.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FASTDFS_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Where git keeps them: in a worktree `.git` is a file, HEAD is the worktree's own and the
    // branches are in the main repository's directory.
    for f in ["HEAD", "refs/heads", "packed-refs"] {
        let path = git(&["rev-parse", "--git-path", f]).unwrap_or_else(|| format!(".git/{f}"));
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("FASTDFS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=FASTDFS_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=FASTDFS_BUILD_TIME={}", utc(secs));
}

/// What `git args` prints (trimmed), if it runs and succeeds with some output.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds (civil-from-days, no dependency).
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
