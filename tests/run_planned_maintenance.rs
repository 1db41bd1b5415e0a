//! `sip-failover run` with a notice feed on disk: the bell count as an event, the planned switch
//! before a window on the primary's cluster, the feed reloaded when it changes, and no return to the
//! primary inside the window. Real UDP on loopback, real wall clock.

mod interop_common;

use std::time::Duration;

use interop_common::*;
use jiff::{SignedDuration, Timestamp};

fn notice(id: &str, cluster: &str, start: Timestamp, end: Timestamp, published: Timestamp) -> String {
    format!(
        "[[notice]]\nid = \"{id}\"\ncluster = \"{cluster}\"\nstart = \"{start}\"\nend = \"{end}\"\n\
         impact = \"minimal\"\npublished = \"{published}\"\n\n"
    )
}

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
    let config = dir.join("phone.toml");
    std::fs::write(
        &config,
        format!(
            "[redundancy]\nprimary_server = \"127.0.0.1\"\nprimary_port = {}\nbackup_destination = true\n\
             backup_destination_address = \"127.0.0.1\"\nbackup_destination_port = {}\nsip_keep_alive_interval = 2\n\n\
             [primary]\ncluster = \"cx-eu-1\"\n[backup]\ncluster = \"cx-eu-2\"\n\n\
             [advanced]\nplanned_lead_s = 2\nfailback_after = 1\n\n[maintenance]\nnotices = \"notices.toml\"\n",
            p.addr.port(),
            b.addr.port()
        ),
    )
    .unwrap();
    let cfg = config.to_string_lossy().into_owned();
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
    // The planned switch comes within the lead time (2 s) before the start, not later.
    let sw = agent.wait_for(Duration::from_secs(15), "planned switch", |e| e["event"] == "switch");
    assert_eq!(sw["reason"], "planned");
    assert_eq!(sw["to"], "backup");
    let switched_at = jiff::Timestamp::from_millisecond(t_utc(&sw)).unwrap();
    let lead_start = start.checked_sub(SignedDuration::from_millis(2_500)).unwrap();
    assert!(switched_at >= lead_start && switched_at <= start, "switch at {switched_at}, window {start}");
    // Inside the window the primary answers every cycle but the phone stays; after it, it returns
    // and the bell falls to zero.
    let back = agent.wait_for(Duration::from_secs(20), "failback", |e| e["event"] == "switch" && e["to"] == "primary");
    let back_at = jiff::Timestamp::from_millisecond(t_utc(&back)).unwrap();
    assert!(back_at >= end, "returned at {back_at}, window ends {end}");
    agent.wait_for(Duration::from_secs(10), "bell 0", |e| e["event"] == "bell" && e["count"] == 0);
}

/// The event's `utc` in milliseconds since the Unix epoch.
fn t_utc(e: &serde_json::Value) -> i64 {
    e["utc"].as_str().unwrap().parse::<Timestamp>().unwrap().as_millisecond()
}
