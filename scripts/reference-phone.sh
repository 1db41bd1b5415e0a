#!/usr/bin/env bash
# The reference phone's story, measured: builds the crate's static library and examples/phone (gcc,
# libre), starts two Kamailio registrars on loopback (tests/kamailio/registrar.cfg), and plays it
# through tests/reference_phone.rs: both up and the phone registered on the primary; the primary
# black-holed (SIGSTOP); the switch; registered and subscribed on the backup; a SIPp call; the primary
# back (SIGCONT); failback once the call has ended; registered on the primary again. Every step is
# read from the registrars (kamcmd ul.dump, htable.dump). Prints one summary line with the measured
# times. Needs gcc, libre-dev, kamailio and sip-tester (scripts/ci-net.sh installs them); a missing
# one fails the run (REQUIRE_PEERS=1).
#
#   bash scripts/reference-phone.sh [RUNS]     # RUNS stories in a row (default 1), one line each
set -euo pipefail
cd "$(dirname "$0")/.."
export REQUIRE_PEERS=${REQUIRE_PEERS:-1}
runs=${1:-1}
nice -n 5 cargo test --features ffi --test reference_phone --no-run -q 2>/dev/null ||
    nice -n 5 cargo test --features ffi --test reference_phone --no-run
for _ in $(seq "$runs"); do
    out=$(cargo test -q --features ffi --test reference_phone -- --exact \
        the_bundle_moves_to_the_backup_and_back_as_the_registrars_see_it 2>&1) || {
        echo "$out" >&2
        exit 1
    }
    echo "$out" | grep '^reference phone:' || { echo "$out" >&2; exit 1; }
done
