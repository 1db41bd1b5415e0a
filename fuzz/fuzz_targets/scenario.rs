//! Lab scenario files on arbitrary text: parsing never panics, every error formats, and a scenario
//! that validates expands into a script in time order within its duration.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sip_failover::sim::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Scenario::parse(text, Path::new("fuzz.toml")) {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(s) => {
            assert!(!s.name.is_empty());
            for w in &s.windows {
                assert!(w.start < w.end, "empty window {w:?}");
            }
            let script = s.expanded();
            assert!(script.windows(2).all(|p| p[0].0 <= p[1].0), "expanded script out of order");
            let _ = format!("{s:?}");
        }
    }
});
