//! `sip-failover run` with a notice feed on disk: the bell count as an event, the planned switch
//! before a window on the primary's cluster, the feed reloaded when it changes, and no return to the
//! primary inside the window. Real UDP on loopback, real wall clock: the test waits for the agent's
//! events and checks them against the window as the agent placed it on its own clock (the
//! `maintenance_windows` event), never against a duration. The exact lead and window times are
//! asserted on the core harness (`planned_switch.rs`).

mod interop_common;

use std::time::Duration;

use interop_common::*;
use jiff::{SignedDuration, Timestamp};

#[test]
fn notices_drive_the_bell_and_a_planned_switch() {
    let dir = TempDir::new("maint");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let feed = dir.join("notices.toml");
    let now = Timestamp::now();
    let secs = |s: i64| now.checked_add(SignedDuration::from_secs(s)).unwrap();
    // One notice for another cluster only: nothing for this phone.
    std::fs::write(&feed, notice("OTHER-1", "cx-elsewhere", secs(5), secs(600), secs(-60))).unwrap();
    let cfg = write_maintenance_config(&dir, p.addr, b.addr, 2, 2);
    let mut agent = AgentProc::start(&["--config", &cfg], dir.path());
    let bell = agent.wait_for(Duration::from_secs(10), "bell", |e| e["event"] == "bell");
    assert_eq!(bell["count"], 0);
    // Both servers answer: the agent is on the primary.
    agent.wait_for(Duration::from_secs(10), "backup reply", |e| e["event"] == "reply" && e["server"] == "backup");

    // The operator publishes a window on the primary's cluster starting in 6 s; the feed is reloaded.
    let start = Timestamp::now().checked_add(SignedDuration::from_secs(6)).unwrap();
    let end = start.checked_add(SignedDuration::from_secs(8)).unwrap();
    let text = notice("OTHER-1", "cx-elsewhere", secs(5), secs(600), secs(-60))
        + &notice("CX-42", "cx-eu-1", start, end, Timestamp::now());
    std::fs::write(&feed, text).unwrap();
    let bell = agent.wait_for(Duration::from_secs(10), "bell 1", |e| e["event"] == "bell" && e["count"] == 1);
    assert_eq!(bell["reason"], "feed_changed");
    // The planned switch, not before the lead time (2 s) of the window it was planned for.
    let sw = agent.wait_for(Duration::from_secs(15), "planned switch", |e| e["event"] == "switch");
    assert_eq!(sw["reason"], "planned");
    assert_eq!(sw["to"], "backup");
    let (start_ms, _) = primary_window_before(&agent.events, &sw);
    assert!(t(&sw) + 2_000 >= start_ms, "switch at {} ms, window from {start_ms} ms:\n{}", t(&sw), agent.dump());
    // Inside the window the primary answers every cycle but the phone stays; after it, it returns
    // and the bell falls to zero.
    let back = agent.wait_for(Duration::from_secs(20), "failback", |e| e["event"] == "switch" && e["to"] == "primary");
    assert_eq!(back["reason"], "failback");
    let (_, end_ms) = primary_window_before(&agent.events, &back);
    assert!(t(&back) >= end_ms, "returned at {} ms, window ends at {end_ms} ms:\n{}", t(&back), agent.dump());
    agent.wait_for(Duration::from_secs(10), "bell 0", |e| e["event"] == "bell" && e["count"] == 0);
}

/// The primary's window (start, end in the agent's ms) as last listed in a `maintenance_windows` event
/// before `event`: the window the agent went by when it decided.
fn primary_window_before(events: &[serde_json::Value], event: &serde_json::Value) -> (u64, u64) {
    let at = events.iter().position(|e| e == event).expect("the event is among the events");
    let primary = |listing: &serde_json::Value| {
        listing["windows"].as_array().and_then(|ws| ws.iter().find(|w| w["server"] == "primary")).cloned()
    };
    let w = events[..at]
        .iter()
        .rev()
        .filter(|e| e["event"] == "maintenance_windows")
        .find_map(primary)
        .unwrap_or_else(|| panic!("no window on the primary listed before {event}: {events:#?}"));
    (w["start_ms"].as_u64().unwrap(), w["end_ms"].as_u64().unwrap())
}
