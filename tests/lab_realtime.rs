//! The lab in real time over loopback UDP: a short scenario (2 s interval, about 9 s), checked with
//! generous windows only for what happened. Exact timing is asserted on virtual time
//! (`lab_scenarios_virtual.rs`); a test never asserts a wall-clock duration tightly.

use std::path::Path;

use sip_failover::core::{Side, SwitchReason};
use sip_failover::sim::fleet::{self, FleetOptions};
use sip_failover::sim::realtime;
use sip_failover::sim::scenario::Scenario;

const SHORT: &str = r#"
name = "short-blackhole"
description = "The primary blackholed 1-4.5 s, a 2 s interval, failback after one alive cycle."
duration = "9s"
interval = "2s"
[phone]
failback_after = 1
[[at]]
t = "1s"
server = "primary"
action = "blackhole"
[[at]]
t = "4.5s"
server = "primary"
action = "answer"
"#;

#[test]
fn one_phone_fails_over_and_back_over_loopback() {
    let s = Scenario::parse(SHORT, Path::new("short.toml")).unwrap();
    let out = realtime::run(&s, 7, &mut |_| {}).unwrap();
    let sw: Vec<_> = out.tracker.switches.iter().map(|w| (w.at.as_millis(), w.from, w.to, w.reason)).collect();
    assert_eq!(sw.len(), 2, "{sw:?}");
    // The cycle at 2 s fails at 3.6 s (+ scheduling); the failback follows the primary's return.
    assert_eq!((sw[0].1, sw[0].2, sw[0].3), (Side::Primary, Side::Backup, SwitchReason::Failover));
    assert!((3_600..4_100).contains(&sw[0].0), "{sw:?}");
    assert_eq!((sw[1].1, sw[1].2, sw[1].3), (Side::Backup, Side::Primary, SwitchReason::Failback));
    assert!((4_500..7_000).contains(&sw[1].0), "{sw:?}");
    assert_eq!(out.tracker.ignored, 0);
    assert!(out.pair.servers[0].answered > 0 && out.pair.servers[1].answered > 0);
    let svg = out.timeline.svg();
    assert!(svg.starts_with("<svg") && svg.contains("failover"));
}

#[test]
fn a_small_fleet_shares_one_socket_per_side() {
    let s = Scenario::parse(SHORT, Path::new("short.toml")).unwrap();
    let opts = FleetOptions { phones: 200, seed: 5, extend: s.phone.interval };
    let out = fleet::run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(out.pair.peak());
    // Every phone's cycle met the 3.5 s outage: each failed over once and came back once.
    assert_eq!(sum.failovers, 200, "{sum:?}");
    assert_eq!(sum.failbacks, 200, "{sum:?}");
    assert_eq!(out.tracker.ignored, 0);
    let lag = sum.switch_after_deadline.unwrap();
    assert!(lag.max.as_millis() < 500, "{lag:?}");
}

#[test]
fn a_closed_port_is_refused_by_the_kernel_and_ends_the_ladder_at_once() {
    let text = r#"
name = "short-refused"
duration = "5s"
interval = "2s"
[phone]
fast_refused = true
[[at]]
t = "1s"
server = "primary"
action = "refuse"
[[at]]
t = "4.5s"
server = "primary"
action = "answer"
"#;
    let s = Scenario::parse(text, Path::new("short-refused.toml")).unwrap();
    let out = realtime::run(&s, 3, &mut |_| {}).unwrap();
    use sip_failover::core::Event;
    use sip_failover::sim::timeline::What;
    let refused = out
        .timeline
        .records
        .iter()
        .filter(|r| matches!(r.what, What::Agent(Event::AttemptRefused { server: Side::Primary, .. })))
        .count();
    // Every attempt of the cycles at 2 s and 4 s came back as ICMP port unreachable.
    assert_eq!(refused, 6);
    let sw: Vec<_> = out.tracker.switches.iter().map(|w| (w.at.as_millis(), w.to)).collect();
    // The cycle at 2 s ends within milliseconds, long before its 3.6 s ladder deadline.
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0].1, Side::Backup);
    assert!((2_000..3_000).contains(&sw[0].0), "{sw:?}");
}
