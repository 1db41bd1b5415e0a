#!/usr/bin/env bash
# Differential run of the failover core: builds scripts/differential (a seeded random-scenario trace:
# every datagram, event, acknowledgement and deadline) against BASE (a commit, default the previous
# core's last commit before the driver and event-queue rework) and against the working tree, and compares the two traces. The per-cycle
# result events (`CycleResult`), new in this tree, are left out of both; its 503s carry no Retry-After
# (announced maintenance is new policy).
#
#   bash scripts/differential.sh [BASE] [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
base=${1:-72870a2}
seeds=${2:-2000}
if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
    echo "differential: SKIPPED: commit $base is not in this clone (a shallow clone?)"
    exit 0
fi
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base" >/dev/null 2>&1
for side in base new; do
    src=$root
    [ "$side" = base ] && src=$work/base
    mkdir -p "$work/$side-trace/src"
    cp scripts/differential/src/main.rs "$work/$side-trace/src/"
    sed "s|@ROOT@|$src|" scripts/differential/Cargo.toml.in >"$work/$side-trace/Cargo.toml"
    (cd "$work/$side-trace" && CARGO_TARGET_DIR="$work/target-$side" cargo run -q --release -- "$seeds") >"$work/$side.txt"
done
lines=$(wc -l <"$work/new.txt")
if cmp -s "$work/base.txt" "$work/new.txt"; then
    echo "differential: $seeds scenarios, $lines trace lines: identical to $base"
else
    echo "differential: traces differ from $base:" >&2
    diff "$work/base.txt" "$work/new.txt" | head -40 >&2
    exit 1
fi
