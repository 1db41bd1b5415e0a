#!/usr/bin/env bash
# CI for the firmware integration: the C interface (ffi), the status indicator, the reference phone
# (libre-dev, Kamailio and SIPp from scripts/ci-net.sh), the bare-metal example and the footprint report.
# Needs gcc and the thumbv7em-none-eabihf target; installs qemu-system-arm with apt-get when it can
# (root) so the report includes the stack measured on an emulated Cortex-M4.
set -euo pipefail
cd "$(dirname "$0")/.."
export REQUIRE_PEERS=${REQUIRE_PEERS:-1}

echo "== ffi and indicator build with std and without"
cargo build --features ffi,indicator
cargo build --no-default-features --features ffi,indicator

echo "== the C header is current; the C example (gcc) runs a failover; the indicator; the footprint asserts"
cargo test --features ffi,indicator --lib --test c_interface --test indicator --test footprint

echo "== the reference phone (examples/phone on libre) against two Kamailio registrars"
cargo test --features ffi --test reference_phone

echo "== thumbv7em-none-eabihf: the library with ffi and indicator, and the bare-metal example"
if ! rustup target list --installed 2>/dev/null | grep -qx thumbv7em-none-eabihf; then
    echo "the thumbv7em-none-eabihf target is not installed (rustup target add thumbv7em-none-eabihf)" >&2
    exit 1
fi
cargo build --release --target thumbv7em-none-eabihf --no-default-features --features ffi,indicator
(cd examples/bare-metal && cargo build --release && cargo clippy --release -- -D warnings)

if ! command -v qemu-system-arm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing qemu-system-arm for the stack measurement on the target"
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-arm) \
        >/tmp/ci-ffi-qemu.log 2>&1 || echo "qemu-system-arm could not be installed; see /tmp/ci-ffi-qemu.log"
fi

echo "== footprint"
bash scripts/footprint.sh
