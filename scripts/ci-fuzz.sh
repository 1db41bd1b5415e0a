#!/usr/bin/env bash
# CI for the fuzz targets in fuzz/: builds every target with cargo-fuzz on the nightly toolchain, then runs
# each one briefly (FUZZ_SECONDS, default 15) from its committed seeds, one job at a time. Fails if a target
# does not build or a run finds a crash, a hang (10 s per input), a leak or an input using more than 2 GiB.
# The long runs behind docs/fuzzing.md are scripts/fuzz-long.sh.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
unset CARGO_TARGET_DIR
seconds=${FUZZ_SECONDS:-15}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building every fuzz target"
cargo +nightly fuzz build

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $(cargo +nightly fuzz list); do
    echo "== $target: ${seconds}s from fuzz/corpus/$target"
    mkdir -p "$scratch/$target"
    extra=()
    # Inputs past MAX_MESSAGE (8192) for the two that read messages off the network.
    case "$target" in wire_response | stream_frame) extra+=(-max_len=9000) ;; esac
    # New inputs go to the scratch directory (the first one); the committed seeds are only read.
    if cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 "${extra[@]}" >"$scratch/$target.log" 2>&1; then
        grep -E '^Done' "$scratch/$target.log" || true
    else
        cat "$scratch/$target.log" | tail -40
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]} (the input is in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "== every fuzz target built and ran ${seconds}s without a crash"
