#!/bin/bash
# The long runs of docs/FUZZING.md "Results": each named target for 10^7 executions, one
# process (-jobs=1 -workers=1), no ASan, from its seeds and committed corpus, at nice 19.
#
#   fuzz/run_long.sh names query ...        (FUZZ_EXTRA="-max_len=1024" for extra options)
#
# Runs from a scratch directory (libFuzzer writes fuzz-<job>.log into the current directory):
# $FUZZ_WORK (default /tmp/fuzzrun)/<target>/fuzz-0.log, one summary line per target appended
# to $FUZZ_WORK/summary.txt. Builds into $CARGO_TARGET_DIR (default /tmp/fuzz-target), apart
# from the project's target/.
set -u
F=$(cd "$(dirname "$0")" && pwd)
WORKDIR=${FUZZ_WORK:-/tmp/fuzzrun}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/fuzz-target}
for t in "$@"; do
  mkdir -p "$WORKDIR/$t" "$F/corpus/$t"
  cd "$WORKDIR/$t" || exit 1
  rm -f fuzz-0.log crash-* slow-* oom-*
  start=$(date -u +%FT%TZ); s=$(date +%s)
  # shellcheck disable=SC2086
  nice -n 19 cargo +nightly fuzz run --fuzz-dir "$F" -s none "$t" \
    "$F/corpus/$t" "$F/seeds/$t" -- -runs=10000000 -jobs=1 -workers=1 -rss_limit_mb=2048 \
    -print_final_stats=1 ${FUZZ_EXTRA:-} -artifact_prefix="$WORKDIR/$t/" > cargo.out 2>&1
  rc=$?
  e=$(date +%s)
  echo "$t start=$start secs=$((e - s)) rc=$rc corpus_files=$(ls "$F/corpus/$t" | wc -l)" >> "$WORKDIR/summary.txt"
  grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" fuzz-0.log | tail -1 >> "$WORKDIR/summary.txt"
  grep -E "^stat::" fuzz-0.log >> "$WORKDIR/summary.txt"
  grep -E "panicked|ERROR" fuzz-0.log | head -3 >> "$WORKDIR/summary.txt"
done
