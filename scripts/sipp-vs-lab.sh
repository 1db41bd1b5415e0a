#!/bin/sh
# Whole-process CPU (user + system, from /usr/bin/time) per OPTIONS transaction: SIPp as UAC and UAS
# against `sip-failover lab --phones 10000` with both servers answering, the same transactions at the
# same rate, in alternating pairs (lab, then SIPp) so both see the same machine.
#
# The lab: 10 000 phones, interval 15 s, both servers probed each cycle: 1 333 OPTIONS/s, for 30 s
# plus the fleet's extra interval (45 s, 60 000 transactions). SIPp: the UAS answers 200
# (tests/sipp/uas_200.xml), the UAC (tests/sipp/uac_options.xml) sends as many OPTIONS as the lab's
# pair counted, at 1 333 per second; the CPU is the two SIPp processes' together.
#
# usage: scripts/sipp-vs-lab.sh [ROUNDS]   (default 3; about 95 s per round)
# needs: sipp (Debian: sip-tester), /usr/bin/time, a release build (cargo build --release).
set -eu
ROUNDS=${1:-3}
PHONES=${PHONES:-10000}
RATE=${RATE:-1333}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/sip-failover}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
command -v sipp >/dev/null || { echo "no sipp on PATH (Debian: apt-get install sip-tester)" >&2; exit 1; }

cat > "$WORK/quiet.toml" <<'TOML'
name = "quiet"
description = "Both servers answer throughout."
duration = "30s"
TOML

cpu() { awk '{ printf "%.2f", $1 + $2 }' "$1"; }
echo "round  lab: requests  CPU s  us/req | SIPp: transactions  CPU s (UAC+UAS)  us/req | lab/SIPp   load"
total_lab=0; total_sipp=0
i=1
while [ "$i" -le "$ROUNDS" ]; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    # The lab, whole process.
    /usr/bin/time -f "%U %S" -o "$WORK/lab.time" "$BIN" lab --phones "$PHONES" --out "$WORK/lab" "$WORK/quiet.toml" \
        > "$WORK/lab.out" 2>&1
    req=$(awk '/^pair (primary|backup):/ { n += $3 } END { print n }' "$WORK/lab.out")
    lab_cpu=$(cpu "$WORK/lab.time")
    # SIPp: the UAS, then the UAC at the same rate for the same number of transactions.
    port=$((25000 + i * 10))
    /usr/bin/time -f "%U %S" -o "$WORK/uas.time" sipp -sf "$ROOT/tests/sipp/uas_200.xml" -i 127.0.0.1 -p "$port" \
        -m "$req" -nostdin >/dev/null 2>&1 &
    uas=$!
    sleep 1
    /usr/bin/time -f "%U %S" -o "$WORK/uac.time" sipp -sf "$ROOT/tests/sipp/uac_options.xml" -i 127.0.0.1 \
        -p $((port + 1)) -r "$RATE" -m "$req" -nostdin "127.0.0.1:$port" >/dev/null 2>&1 || true
    # The UAS ends after its last transaction; give it a moment, then stop it.
    sleep 2
    kill "$uas" 2>/dev/null || true
    wait "$uas" 2>/dev/null || true
    sipp_cpu=$(awk '{ s += $1 + $2 } END { printf "%.2f", s }' "$WORK/uas.time" "$WORK/uac.time" 2>/dev/null)
    awk -v i="$i" -v r="$req" -v l="$lab_cpu" -v s="$sipp_cpu" -v load="$load" 'BEGIN {
        printf "%5d  %13d  %5.2f  %6.1f | %18d  %16.2f  %6.1f | %8.2f  %5s\n",
            i, r, l, l * 1e6 / r, r, s, s * 1e6 / r, l / s, load }'
    total_lab=$(awk -v a="$total_lab" -v b="$lab_cpu" 'BEGIN { print a + b }')
    total_sipp=$(awk -v a="$total_sipp" -v b="$sipp_cpu" 'BEGIN { print a + b }')
    i=$((i + 1))
done
awk -v l="$total_lab" -v s="$total_sipp" 'BEGIN { printf "all rounds: lab/SIPp whole-process CPU = %.2f\n", l / s }'
grep -E '^whole-process CPU' "$WORK/lab.out" | sed 's/^/last lab run, inside the run: /' || true
