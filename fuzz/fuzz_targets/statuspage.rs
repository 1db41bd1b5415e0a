//! Status-page documents (Statuspage v2 scheduled maintenances) on arbitrary text, for a phone in two
//! clusters: reading never panics, every error formats and names the source; accepted notices are
//! valid (end after start, published not after end, a cluster of the phone's), can be put in a feed,
//! and survive `to_json` and a second reading unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_failover::maintenance::notice::NoticeFeed;
use sip_failover::maintenance::statuspage::{merge, notices, to_json};

const CLUSTERS: [&str; 2] = ["cx-eu-1", "Portal"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match notices(text, "fuzz.json", &CLUSTERS) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.json"), "the error names its source: {msg}");
        }
        Ok(list) => {
            for n in &list {
                assert!(n.start < n.end && n.published <= n.end, "invalid notice accepted: {n:?}");
                assert!(CLUSTERS.iter().any(|c| c.eq_ignore_ascii_case(&n.cluster)), "not the phone's: {n:?}");
            }
            let merged = merge(list.clone(), Vec::new());
            // Ids are unique once merged, so a feed takes them.
            NoticeFeed::new(merged.clone()).unwrap_or_else(|e| panic!("merged notices refused: {e}"));
            let again = notices(&to_json(&merged, "fuzz"), "again.json", &CLUSTERS)
                .unwrap_or_else(|e| panic!("to_json output does not read back: {e}"));
            assert_eq!(merge(again, Vec::new()), merged, "to_json does not round-trip");
        }
    }
});
