//! The crash-safe state file's decoder on arbitrary text (a file cut short or damaged on disk): no
//! panic, and a snapshot it accepts survives `encode` and a second decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_failover::net::state::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(snap) = decode(text) {
        assert_eq!(decode(&encode(&snap)), Ok(snap));
    }
});
