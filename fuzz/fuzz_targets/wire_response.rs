//! The SIP response parser on arbitrary datagrams: it never panics, and what it accepts is
//! consistent with the bytes it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_failover::core::wire::{parse_response, ParseError, MAX_MESSAGE};

/// Whether `part` lies inside `whole` (the parser borrows, it never copies).
fn within(whole: &[u8], part: &[u8]) -> bool {
    let w = whole.as_ptr_range();
    let p = part.as_ptr_range();
    part.is_empty() || (w.start <= p.start && p.end <= w.end)
}

fuzz_target!(|data: &[u8]| {
    match parse_response(data) {
        Ok(r) => {
            assert!(data.len() <= MAX_MESSAGE);
            assert!((100..=699).contains(&r.status), "status {}", r.status);
            for part in [r.reason, r.branch, r.call_id, r.cseq_method, r.body] {
                assert!(within(data, part));
            }
            // The body is the tail of the datagram (or its first Content-Length bytes).
            assert!(r.body.len() <= data.len());
            // The same bytes parse the same way again.
            assert_eq!(parse_response(data), Ok(r));
        }
        Err(e) => {
            if data.len() > MAX_MESSAGE {
                assert_eq!(e, ParseError::TooLarge);
            }
            let _ = e.to_string();
        }
    }
});
