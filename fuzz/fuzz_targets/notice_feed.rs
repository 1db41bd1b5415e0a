//! The maintenance notice feed on arbitrary text: parsing never panics, every error formats, and a
//! feed that validates survives `to_toml` and a second parse unchanged.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use sip_failover::maintenance::notice::NoticeFeed;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match NoticeFeed::parse(text, "fuzz.toml") {
        Err(e) => {
            let _ = e.to_string();
            if let Some(line) = e.line {
                let lines = u32::try_from(text.lines().count().max(1) + 1).unwrap_or(u32::MAX);
                assert!(line >= 1 && line <= lines, "line {line} out of the text");
            }
        }
        Ok(feed) => {
            let again = NoticeFeed::parse(&feed.to_toml(), "again.toml")
                .unwrap_or_else(|e| panic!("to_toml output does not parse: {e}\n{}", feed.to_toml()));
            assert_eq!(again, feed, "to_toml does not round-trip");
            for n in feed.notices() {
                assert!(n.start < n.end && n.published <= n.end, "invalid notice accepted: {n:?}");
                let clusters = [n.cluster.as_str()];
                for now in [Timestamp::MIN, n.published, n.start, n.end, Timestamp::MAX] {
                    let bell = feed.bell_count(now, &clusters);
                    assert!(bell <= feed.len());
                    if let Some(t) = feed.next_change(now, &clusters) {
                        assert!(t > now);
                    }
                }
            }
        }
    }
});
