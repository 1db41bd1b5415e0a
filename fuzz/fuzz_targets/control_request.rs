//! Control-socket requests on arbitrary lines, read as the socket reads them (a JSON value, then a
//! request): no panic, every error is a message, and an accepted request survives `to_json` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sip_failover::net::control::{Request, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LINE {
        return;
    }
    let parsed = serde_json::from_slice::<Value>(data).map_err(|e| e.to_string()).and_then(|v| Request::from_json(&v));
    match parsed {
        Err(e) => assert!(!e.is_empty()),
        Ok(req) => {
            let again = Request::from_json(&req.to_json());
            assert_eq!(again.as_ref(), Ok(&req), "{req:?} does not round-trip");
        }
    }
});
