#!/bin/sh
# Installs the peer software the network interop tests run against: SIPp (Debian package
# `sip-tester`), Kamailio (`kamailio`, which also ships `kamcmd`) and its TLS module
# (`kamailio-tls-modules`), dnsmasq (`dnsmasq-base`, the
# DNS server of tests/dns_dnsmasq.rs), rsyslog with its TLS driver (`rsyslog`, `rsyslog-gnutls`) and
# openssl for the syslog tests' certificates, promtool (`prometheus`) to check the metrics
# exposition, and libre (`libre-dev`, the SIP stack the reference phone in examples/phone is built
# on, with `libssl-dev` and `zlib1g-dev`, which its link line names). Only what is missing is
# installed. Kamailio's, rsyslog's and Prometheus's packages
# would start system services; a policy-rc.d that refuses service starts keeps them stopped (the
# tests run their own instances on free loopback ports with their own configuration).
set -eu

missing=""
command -v sipp >/dev/null 2>&1 || missing="$missing sip-tester"
{ command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ]; } &&
    { command -v kamcmd >/dev/null 2>&1 || [ -x /usr/sbin/kamcmd ]; } || missing="$missing kamailio"
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || missing="$missing kamailio-tls-modules"
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing="$missing dnsmasq-base"
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || missing="$missing rsyslog"
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing="$missing rsyslog-gnutls"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
[ -f /usr/include/re/re.h ] || missing="$missing libre-dev"
[ -f /usr/include/openssl/ssl.h ] || missing="$missing libssl-dev"
[ -f /usr/include/zlib.h ] || missing="$missing zlib1g-dev"

if [ -z "$missing" ]; then
    echo "ci-net: sipp, kamailio (with tls.so), kamcmd, dnsmasq, rsyslogd, openssl, promtool and libre-dev are installed"
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
    $SUDO systemctl stop kamailio rsyslog prometheus >/dev/null 2>&1 || true
fi

# kamailio and kamcmd live in /usr/sbin, which a non-root PATH may lack.
for p in sipp kamailio kamcmd dnsmasq rsyslogd openssl promtool; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || { echo "ci-net: $p still missing" >&2; exit 1; }
done
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || { echo "ci-net: kamailio's tls.so still missing" >&2; exit 1; }
[ -f /usr/include/re/re.h ] || { echo "ci-net: libre-dev still missing" >&2; exit 1; }
[ -f /usr/include/openssl/ssl.h ] && [ -f /usr/include/zlib.h ] || { echo "ci-net: libssl-dev or zlib1g-dev still missing" >&2; exit 1; }
echo "ci-net: done"
