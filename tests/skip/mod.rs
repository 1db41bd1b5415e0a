//! Skips that show. A test that cannot run here (a peer program, gcc, IPv6 missing) prints one
//! `SKIPPED <test>: <reason>` line on the real standard error, past the test harness's capture, so a
//! normal `cargo test` run shows it; with `REQUIRE_PEERS=1` (set in CI) the same test fails instead.
#![allow(dead_code)]

use std::io::Write;

/// Whether `REQUIRE_PEERS=1`: everything a test needs must be there.
pub fn required() -> bool {
    std::env::var_os("REQUIRE_PEERS").is_some_and(|v| v == "1")
}

/// Prints `SKIPPED <test>: <reason>` where a normal run shows it (libtest captures `eprintln!`, not
/// writes to the stderr handle).
pub fn say_skipped(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// For a test that needs something this machine may lack: `true` to go on when `available`;
/// otherwise fails the test under `REQUIRE_PEERS=1`, or says why it is skipped and returns `false`.
pub fn need(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    assert!(!required(), "{what} is required (REQUIRE_PEERS=1) but missing; {how}");
    say_skipped(&format!("{what} missing; {how} (REQUIRE_PEERS=1 makes this a failure)"));
    false
}

/// Whether this machine has an IPv6 loopback (`[::1]` can be bound); see [`need`].
pub fn need_ipv6_loopback() -> bool {
    need(
        std::net::UdpSocket::bind("[::1]:0").is_ok(),
        "an IPv6 loopback ([::1])",
        "enable IPv6 on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0)",
    )
}
