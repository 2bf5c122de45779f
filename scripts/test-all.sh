#!/usr/bin/env bash
# Runs every test of fastdfs-rs on a fresh Debian machine (as root): installs what the tests
# drive (curl, wget, openssl for the TLS test's certificate, nginx for the ip_hash cluster test, fuse3 for LazyFS, util-linux for
# setpriv/prlimit, Debian's chromium and playwright-core in tests/browser for the upload-page
# test, tuspy for the tus tests, boto3, the AWS CLI and rclone for the S3 tests and
# tests/s3_clients.rs, and for the latter the AWS SDK for JavaScript in tests/s3js, s3cmd and
# s3fs-fuse), then
# `cargo test` with the crash points (feature failpoints).
# The reference go-fastdfs binary is found through GO_FASTDFS_BIN (default: ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in curl:curl wget:wget openssl:openssl nginx:nginx fusermount3:fuse3 setpriv:util-linux prlimit:util-linux systemd-analyze:systemd logrotate:logrotate iptables:iptables chromium:chromium; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "warning: missing ${need[*]} (run as root to install); dependent tests will be skipped" >&2
  fi
fi

if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
  else
    echo "warning: npm missing; the browser test will be skipped" >&2
  fi
fi

# tests/tus.rs also drives tus-js-client (Uppy's tus client) with node.
if [ ! -f tests/tusjs/node_modules/tus-js-client/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd tests/tusjs && npm ci --no-audit --no-fund >/dev/null) \
      || echo "warning: npm ci failed in tests/tusjs; the tus-js-client tests will be skipped" >&2
  else
    echo "warning: npm missing; the tus-js-client tests will be skipped" >&2
  fi
fi

# tests/tus.rs drives uploads with tuspy (the Python tus client, module tusclient).
if ! python3 -c 'import tusclient' >/dev/null 2>&1; then
  if ! python3 -m pip --version >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq python3-pip >/dev/null || true
  fi
  python3 -m pip install -q tuspy >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages tuspy >/dev/null 2>&1 \
    || echo "warning: cannot install tuspy (pip install tuspy); the tus client tests will be skipped" >&2
fi

# tests/s3.rs and tests/s3_clients.rs drive the S3 listener with boto3, the AWS CLI and rclone.
# Each is installed on its own (a package missing from this release must not stop the rest):
# rclone and the AWS CLI from Debian, the AWS CLI from pip where Debian has none.
for pair in aws:awscli rclone:rclone; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 && continue
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq "$pkg" >/dev/null 2>&1; } \
      || true
  fi
  if ! command -v "$cmd" >/dev/null 2>&1 && [ "$pkg" = awscli ]; then
    python3 -m pip install -q awscli >/dev/null 2>&1 \
      || python3 -m pip install -q --break-system-packages awscli >/dev/null 2>&1 \
      || true
  fi
  command -v "$cmd" >/dev/null 2>&1 \
    || echo "warning: cannot install $cmd ($pkg); its S3 tests will be skipped" >&2
done
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
  python3 -m pip install -q boto3 >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages boto3 >/dev/null 2>&1 \
    || echo "warning: cannot install boto3 (pip install boto3); the S3 boto3 tests will be skipped" >&2
fi

# tests/s3_clients.rs drives the S3 listener with s3fs-fuse, s3cmd and the AWS SDK for
# JavaScript v3 (tests/s3js, installed with npm ci). s3fs is installed after fuse3 so that
# fuse3 provides its "fuse" (Debian's fuse 2 package would replace fuse3, which LazyFS needs).
if ! command -v s3fs >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v fusermount3 >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq s3fs >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq s3fs >/dev/null 2>&1; } \
      || echo "warning: cannot install s3fs (apt-get install s3fs); the s3fs-fuse test will be skipped" >&2
  else
    echo "warning: s3fs missing (run as root with fuse3 to install); the s3fs-fuse test will be skipped" >&2
  fi
fi
if ! command -v s3cmd >/dev/null 2>&1; then
  python3 -m pip install -q s3cmd >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages s3cmd >/dev/null 2>&1 \
    || echo "warning: cannot install s3cmd (pip install s3cmd); the s3cmd tests will be skipped" >&2
fi
if [ ! -f tests/s3js/node_modules/@aws-sdk/client-s3/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd tests/s3js && npm ci --no-audit --no-fund >/dev/null) \
      || echo "warning: npm ci failed in tests/s3js; the JS SDK test will be skipped" >&2
  else
    echo "warning: npm missing; the JS SDK test will be skipped" >&2
  fi
fi

# tests/alarm.rs receives alarm mails with a real SMTP server (aiosmtpd).
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  python3 -m pip install -q aiosmtpd >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages aiosmtpd >/dev/null 2>&1 \
    || echo "warning: cannot install aiosmtpd (pip install aiosmtpd); the alarm mail test will be skipped" >&2
fi

export GO_FASTDFS_BIN="${GO_FASTDFS_BIN:-$(cd .. && pwd)/shared/go-fastdfs/fileserver}"
export LAZYFS_DIR="${LAZYFS_DIR:-$(cd .. && pwd)/shared/lazyfs}"
# Style gates first: formatting and lints are part of "all tests".
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    rustup component add "$component" >/dev/null 2>&1 || true
  fi
done
cargo fmt --check
# bench-tools only adds the benchmarks' fill tool (bench/fill.rs): checked here so that it
# keeps compiling.
cargo clippy --all-targets --features failpoints,bench-tools -- -D warnings

# Tests that cannot run their tool (nginx, LazyFS, Chromium, tuspy, the Go binary...) record
# themselves here; they are listed as skipped, never counted as passed. Under CI every tool is
# installed, so a skip there is a failure.
export FASTDFS_SKIP_LOG="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$FASTDFS_SKIP_LOG" "$log"' EXIT
status=0
cargo test --all-targets --features failpoints -- --test-threads="${TEST_THREADS:-4}" 2>&1 | tee "$log" || status=$?

passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
skipped=$(grep -c . "$FASTDFS_SKIP_LOG" || true)
if [ "$skipped" -gt 0 ]; then
  echo "skipped (their tool is missing here):"
  sort -u "$FASTDFS_SKIP_LOG" | sed 's/^/  /'
  if [ -n "${CI:-}" ] && [ "$status" = 0 ]; then
    echo "CI installs every tool: a skipped test is a failure here" >&2
    status=1
  fi
fi
# Skipped tests returned early, so cargo counted them as passed: take them out.
echo "$((passed - skipped)) passed, $failed failed, $skipped skipped"
exit "$status"
