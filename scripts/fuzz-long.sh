#!/usr/bin/env bash
# One long fuzz run, as recorded in docs/fuzzing.md: TARGET for 10 million executions or SECONDS
# (default 1800), whichever comes first, one job, on a scratch corpus seeded from fuzz/corpus/TARGET
# (libFuzzer writes what it finds to the first directory only, so the committed seeds stay as they are).
# The log goes to fuzz/scratch/logs/TARGET.log; the last lines give executions, time, coverage and RSS.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
unset CARGO_TARGET_DIR
target=${1:?usage: scripts/fuzz-long.sh TARGET [SECONDS]}
seconds=${2:-1800}
extra=()
# The response parser and the stream framing take messages up to MAX_MESSAGE (8192): let inputs grow
# past it.
case "$target" in wire_response | stream_frame) extra+=(-max_len=9000) ;; esac
mkdir -p "scratch/$target" scratch/logs
start=$(date -u +%FT%TZ)
echo "start $start load $(cut -d' ' -f1-3 /proc/loadavg)" >"scratch/logs/$target.log"
set +e
cargo +nightly fuzz run "$target" "scratch/$target" "corpus/$target" -- \
    -runs=10000000 -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "${extra[@]}" \
    >>"scratch/logs/$target.log" 2>&1
rc=$?
set -e
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) exit $rc" >>"scratch/logs/$target.log"
grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "scratch/logs/$target.log" | tail -1
grep -E '^(Done|stat::|end )' "scratch/logs/$target.log"
exit $rc
