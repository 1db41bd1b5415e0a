//! Maintenance calendars (iCalendar) on arbitrary text: reading never panics and stays quick (the
//! expansion has a step budget), every error formats and points at a line of the text, accepted
//! notices are valid, unique, inside the horizon and for the phone's clusters, and each one written
//! with `to_ical` reads back unchanged.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use sip_failover::maintenance::icalendar::{notices, to_ical, Horizon};
use sip_failover::maintenance::notice::NoticeFeed;

const CLUSTERS: [&str; 4] = ["cx-eu-1", "cx-eu-2", "cx-us-1", "c1"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now: Timestamp = "2026-03-15T12:00:00Z".parse().unwrap();
    let horizon = Horizon::around(now);
    match notices(text, "fuzz.ics", &CLUSTERS, horizon) {
        Err(e) => {
            let _ = e.to_string();
            if let Some(line) = e.line {
                let lines = u32::try_from(text.split('\n').count().max(1)).unwrap_or(u32::MAX);
                assert!(line >= 1 && line <= lines, "line {line} out of the text ({lines} lines)");
            }
        }
        Ok(got) => {
            for n in &got {
                assert!(n.start < n.end && n.published <= n.end, "invalid notice: {n:?}");
                assert!(n.end > horizon.from && n.start < horizon.to, "outside the horizon: {n:?}");
                assert!(CLUSTERS.contains(&n.cluster.as_str()), "not one of the phone's clusters: {n:?}");
                let one = notices(&to_ical(std::slice::from_ref(n)), "again.ics", &[n.cluster.as_str()], horizon)
                    .unwrap_or_else(|e| panic!("to_ical output does not read: {e}\n{}", to_ical(std::slice::from_ref(n))));
                assert_eq!(one, vec![n.clone()], "to_ical does not round-trip");
            }
            NoticeFeed::new(got).unwrap_or_else(|e| panic!("notices not a valid feed: {e}"));
        }
    }
});
