#!/usr/bin/env bash
# The firmware footprint report (the README's "Firmware footprint" section explains it):
#   1. size_of::<Agent>() and the C storage, and a stack high-water mark on this host (tests/footprint.rs,
#      release build);
#   2. the .text of the core for thumbv7em-none-eabihf, release, opt-level "s": examples/bare-metal built
#      with the agent, with the agent and the status LED, and without either (the baseline subtracted);
#   3. when qemu-system-arm is installed, the same example on an emulated Cortex-M4 (mps2-an386): the
#      switch it made and its stack high-water mark, from a stack painted at reset.
# Exits non-zero when a budget is exceeded: the agent within 1224 bytes (the C storage less its marker;
# asserted by the test), the core's code under 27 KiB (24 KiB until probing over TCP and TLS: the flows,
# their keep-alive and the stream framing added 3.3 KiB).
# REQUIRE_PEERS=1 makes a missing thumbv7em target or qemu-system-arm an error instead of a skip (as it
# does for the peers of the tests); REQUIRE_QEMU=1 does the same for qemu-system-arm alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TEXT_BUDGET=$((27 * 1024))
require=${REQUIRE_PEERS:-0}

skip() {
    if [ "$require" = 1 ]; then
        echo "footprint: $1 (required: REQUIRE_PEERS=1)" >&2
        exit 1
    fi
    echo "footprint: skipped: $1"
}

# Section sizes of an ELF file, without depending on which binutils are installed.
elf_sizes() {
    python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF", "not an ELF file"
is64 = data[4] == 2
end = "<" if data[5] == 1 else ">"
if is64:
    shoff, = struct.unpack_from(end + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
else:
    shoff, = struct.unpack_from(end + "I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
def section(i):
    off = shoff + i * shentsize
    if is64:
        name, _, _, _, offset, size = struct.unpack_from(end + "IIQQQQ", data, off)
    else:
        name, _, _, _, offset, size = struct.unpack_from(end + "IIIIII", data, off)
    return name, offset, size
_, stroff, _ = section(shstrndx)
sizes = {}
for i in range(shnum):
    name, _, size = section(i)
    n = data[stroff + name:data.index(b"\0", stroff + name)].decode()
    sizes[n] = size
print(sizes.get(".text", 0), sizes.get(".rodata", 0), sizes.get(".vector_table", 0))
EOF
}

echo "== agent size and host stack (tests/footprint.rs, release)"
cargo test --release --no-default-features --features ffi --test footprint -- --nocapture --test-threads=1 2>&1 | grep -o 'footprint: .*' \
    | sed 's/^footprint: /footprint: host: /'

echo "== code size for thumbv7em-none-eabihf (release, opt-level \"s\", LTO, panic=abort)"
if ! rustup target list --installed 2>/dev/null | grep -qx thumbv7em-none-eabihf; then
    skip "the thumbv7em-none-eabihf target is not installed (rustup target add thumbv7em-none-eabihf)"
    exit 0
fi
EXAMPLE=$ROOT/examples/bare-metal
build() { # name, cargo feature flags...
    local name=$1
    shift
    (cd "$EXAMPLE" && CARGO_TARGET_DIR="$TARGET_DIR/bare-metal-$name" cargo build -q --release "$@")
    echo "$TARGET_DIR/bare-metal-$name/thumbv7em-none-eabihf/release/sip-failover-bare-metal"
}
base_elf=$(build baseline --no-default-features)
core_elf=$(build core --no-default-features --features agent)
led_elf=$(build core-led)
read -r base_text base_ro _ <<<"$(elf_sizes "$base_elf")"
read -r core_text core_ro _ <<<"$(elf_sizes "$core_elf")"
read -r led_text led_ro _ <<<"$(elf_sizes "$led_elf")"
core=$((core_text - base_text))
led=$((led_text - core_text))
echo "footprint: thumbv7em: baseline image (start-up, loop, pin): .text $base_text bytes, .rodata $base_ro bytes"
echo "footprint: thumbv7em: + the core (agent, codec, rng, the example's loopback): .text $core bytes, .rodata $((core_ro - base_ro)) bytes"
echo "footprint: thumbv7em: + the status LED (indicator): .text $led bytes, .rodata $((led_ro - core_ro)) bytes"
echo "footprint: thumbv7em: whole example image with both: .text $led_text bytes, .rodata $led_ro bytes"

echo "== stack on an emulated Cortex-M4 (QEMU mps2-an386, stack painted at reset)"
if command -v qemu-system-arm >/dev/null; then
    elf=$(build qemu --features qemu)
    out=$(timeout 120 qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native \
        -kernel "$elf")
    echo "$out" | sed 's/^/footprint: qemu: /'
    echo "$out" | grep -qx 't=1600 ms switch to backup generation=1' || {
        echo "footprint: the example did not switch to the backup at 1600 ms under QEMU" >&2
        exit 1
    }
elif [ "${REQUIRE_QEMU:-0}" = 1 ]; then
    echo "footprint: qemu-system-arm is required (REQUIRE_QEMU=1) but not installed" >&2
    exit 1
else
    skip "qemu-system-arm is not installed (apt-get install qemu-system-arm); stack on the target not measured"
fi

if [ "$core" -ge "$TEXT_BUDGET" ]; then
    echo "footprint: OVER BUDGET: the core's code is $core bytes, the budget $TEXT_BUDGET" >&2
    exit 1
fi
echo "footprint: within budget: agent within 1224 bytes (asserted by the test), core code $core < $TEXT_BUDGET bytes"
