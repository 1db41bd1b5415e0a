#!/bin/sh
# Installs the peer software the network interop tests run against: SIPp (Debian package
# `sip-tester`), Kamailio (`kamailio`, which also ships `kamcmd`) and dnsmasq (`dnsmasq-base`, the
# DNS server of tests/dns_dnsmasq.rs). Only what is missing is
# installed. Kamailio's package would start a system service on port 5060; a policy-rc.d that
# refuses service starts keeps it stopped (the tests run their own instances on free loopback ports
# with their own configuration).
set -eu

missing=""
command -v sipp >/dev/null 2>&1 || missing="$missing sip-tester"
{ command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ]; } &&
    { command -v kamcmd >/dev/null 2>&1 || [ -x /usr/sbin/kamcmd ]; } || missing="$missing kamailio"
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing="$missing dnsmasq-base"

if [ -z "$missing" ]; then
    echo "ci-net: sipp, kamailio, kamcmd and dnsmasq are installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi

echo "ci-net: installing$missing"
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
$SUDO apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
if [ -n "$created_policy" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
# A service that started anyway would hold nothing the tests use, but stop it to be quiet.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl stop kamailio >/dev/null 2>&1 || true
fi

# kamailio and kamcmd live in /usr/sbin, which a non-root PATH may lack.
for p in sipp kamailio kamcmd dnsmasq; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || { echo "ci-net: $p still missing" >&2; exit 1; }
done
echo "ci-net: done"
