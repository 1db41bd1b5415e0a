//! Lab scenario files on arbitrary text: parsing never panics, every error formats, and a scenario
//! that validates expands into a script in time order within its duration, its calls start and end
//! in turn, and its windows (notices' included) are not empty and fit in the core.
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
            for w in s.windows.iter().copied().chain(s.notices.iter().map(|n| n.span())) {
                assert!(w.start < w.end, "empty window {w:?}");
            }
            assert!(s.windows.len() + s.notices.len() <= sip_failover::core::MAX_WINDOWS);
            // Calls start and end in turn, in time order.
            for (i, c) in s.calls.iter().enumerate() {
                assert_eq!(c.in_call, i % 2 == 0, "calls out of turn: {:?}", s.calls);
                assert!(c.at <= s.duration);
            }
            for n in &s.notices {
                let _ = n.to_notice(s.starts_at);
            }
            let script = s.expanded();
            assert!(script.windows(2).all(|p| p[0].0 <= p[1].0), "expanded script out of order");
            let _ = format!("{s:?}");
        }
    }
});
