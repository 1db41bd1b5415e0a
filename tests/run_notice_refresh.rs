//! `sip-failover run`: the notice file changes while the phone is in a window's lead time, already on
//! the backup. The reload hands the core the windows again; the phone stays on the backup under the
//! same generation (no failback and second planned switch in between). Real UDP on loopback;
//! synchronised on the agent's events.

mod interop_common;

use std::time::Duration;

use interop_common::*;
use jiff::{SignedDuration, Timestamp};

#[test]
fn a_notice_file_changed_in_the_lead_time_does_not_flap_the_phone() {
    let dir = TempDir::new("refresh");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let feed = dir.join("notices.toml");
    let secs = |s: i64| Timestamp::now().checked_add(SignedDuration::from_secs(s)).unwrap();
    // A window on the primary's cluster an hour from now; the lead time (2 h) has begun.
    let (start, end) = (secs(3_600), secs(7_200));
    std::fs::write(&feed, notice("CX-42", "cx-eu-1", start, end, Timestamp::now())).unwrap();
    let cfg = write_maintenance_config(&dir, p.addr, b.addr, 2, 7_200);
    let mut agent = AgentProc::start(&["--config", &cfg], dir.path());
    let sw = agent.wait_for(Duration::from_secs(10), "planned switch", |e| e["event"] == "switch");
    assert_eq!(
        (sw["reason"].as_str(), sw["to"].as_str(), sw["generation"].as_u64()),
        (Some("planned"), Some("backup"), Some(1))
    );
    agent.wait_for(Duration::from_secs(10), "applied", |e| e["event"] == "applied" && e["generation"] == 1);

    // The operator edits the feed: the same window, and a notice for another cluster.
    std::fs::write(
        &feed,
        notice("CX-42", "cx-eu-1", start, end, Timestamp::now())
            + &notice("OTHER-1", "cx-elsewhere", start, end, Timestamp::now()),
    )
    .unwrap();
    let reload = agent.wait_for(Duration::from_secs(10), "reload", |e| {
        e["event"] == "maintenance_windows" && e["reason"] == "feed_changed"
    });
    assert_eq!(reload["windows"].as_array().map(Vec::len), Some(1), "{reload}");
    // Two whole probe cycles after the reload, both servers answering every one of them.
    for side in ["primary", "backup"] {
        agent.wait_nth(Duration::from_secs(10), "reply", 2, |e| e["server"] == side && t(e) > t(&reload));
    }
    let switches: Vec<_> =
        agent.named("switch").iter().map(|e| (e["reason"].clone(), e["generation"].clone())).collect();
    assert_eq!(switches.len(), 1, "one switch only: {switches:?}");
    assert!(agent.named("applied").iter().all(|e| e["generation"] == 1));
}
