//! The lab in real time over loopback (UDP, and TCP and TLS below): short scenarios (2 s interval,
//! 5 to 9 s), checked for what happened and in which order (a switch after the fault that causes
//! it), never for how long it took. Each scenario also runs here on virtual time, where the same
//! switches are asserted to the microsecond.

use std::path::Path;

use sip_failover::core::{Duration, Event, Side, SwitchReason};
use sip_failover::sim::fleet::{self, FleetOptions};
use sip_failover::sim::r#virtual::{self, VirtualOptions};
use sip_failover::sim::realtime;
use sip_failover::sim::scenario::Scenario;
use sip_failover::sim::timeline::{Record, What};
use sip_failover::sim::{Live, RunOutput};

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

/// When the fault script changed `server`'s health for the `n`-th time (0-based).
fn fault_at(records: &[Record], server: Side, n: usize) -> u64 {
    records
        .iter()
        .filter_map(|r| match &r.what {
            What::Fault(f) if f.server == server => Some(f.at.as_micros()),
            _ => None,
        })
        .nth(n)
        .unwrap_or_else(|| panic!("no fault change {n} of the {server}: {records:#?}"))
}

/// (µs, from, to, reason) of every switch.
fn switches(out: &RunOutput) -> Vec<(u64, Side, Side, SwitchReason)> {
    out.tracker.switches.iter().map(|w| (w.at.as_micros(), w.from, w.to, w.reason)).collect()
}

#[test]
fn one_phone_fails_over_and_back_over_loopback() {
    let s = Scenario::parse(SHORT, Path::new("short.toml")).unwrap();
    let out = realtime::run(&s, 7, &mut |_| {}).unwrap();
    let sw = switches(&out);
    assert_eq!(sw.len(), 2, "{sw:?}");
    // The failover follows the blackhole, the failback follows the primary's return.
    let records = &out.timeline.records;
    assert_eq!((sw[0].1, sw[0].2, sw[0].3), (Side::Primary, Side::Backup, SwitchReason::Failover));
    assert!(sw[0].0 > fault_at(records, Side::Primary, 0), "{sw:?}");
    assert_eq!((sw[1].1, sw[1].2, sw[1].3), (Side::Backup, Side::Primary, SwitchReason::Failback));
    assert!(sw[1].0 > fault_at(records, Side::Primary, 1), "{sw:?}");
    assert_eq!(out.tracker.ignored, 0);
    assert!(out.pair.servers[0].answered > 0 && out.pair.servers[1].answered > 0);
    let svg = out.timeline.svg();
    assert!(svg.starts_with("<svg") && svg.contains("failover"));
}

#[test]
fn one_phone_fails_over_and_back_on_virtual_time() {
    let s = Scenario::parse(SHORT, Path::new("short.toml")).unwrap();
    let out = r#virtual::run(&s, &VirtualOptions { seed: 7, ..Default::default() }, &mut |_| {}).unwrap();
    // The cycle at 2 s fails at 2 + 0.8 + 0.4 + 0.4 s. In the cycle at 4 s attempt 1 is still lost, the
    // primary answers again from 4.5 s, and attempt 2 at 4.8 s is answered a round trip (200 µs) later:
    // one alive cycle, the failback.
    assert_eq!(
        switches(&out),
        [
            (3_600_000, Side::Primary, Side::Backup, SwitchReason::Failover),
            (4_800_200, Side::Backup, Side::Primary, SwitchReason::Failback)
        ]
    );
}

#[test]
fn a_small_fleet_shares_one_socket_per_side() {
    let s = Scenario::parse(SHORT, Path::new("short.toml")).unwrap();
    let opts =
        FleetOptions { phones: 200, seed: 5, extend: s.phone.interval, realtime: false, ..FleetOptions::default() };
    let out = fleet::run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(out.pair.peak());
    // Every phone's cycle met the 3.5 s outage: each failed over once and came back once.
    assert_eq!(sum.failovers, 200, "{sum:?}");
    assert_eq!(sum.failbacks, 200, "{sum:?}");
    assert_eq!(out.tracker.ignored, 0);
    // How late each switch came after its ladder's deadline is measured (its bound is asserted on the
    // virtual fleet in lab_scenarios_virtual.rs).
    assert!(sum.switch_after_deadline.is_some(), "{sum:?}");
}

/// Each phone's first probe: when, on the run's clock.
fn first_probes(s: &Scenario, opts: &FleetOptions) -> Vec<u64> {
    let mut first = vec![None; opts.phones];
    fleet::run(s, opts, &mut |l| {
        if let Live::Event { phone, t, event: Event::ProbeSent { .. } } = l {
            first[phone as usize].get_or_insert(t.as_micros());
        }
    })
    .unwrap();
    first.into_iter().map(|t| t.expect("every phone probed")).collect()
}

/// Nothing happens for 2.2 s.
const QUIET: &str = "name = \"quiet\"\nduration = \"2.2s\"\ninterval = \"2s\"\n";

/// A small fleet's options: seed 5, no extra time, the ordinary scheduler.
fn small_fleet(phones: usize, boot_group: usize, shards: usize) -> FleetOptions {
    FleetOptions { phones, seed: 5, extend: Duration::ZERO, realtime: false, idle_poll: false, boot_group, shards }
}

#[test]
fn a_boot_group_probes_together_and_the_next_group_one_spacing_later() {
    let s = Scenario::parse(QUIET, Path::new("quiet.toml")).unwrap();
    let opts = small_fleet(16, 8, 1);
    let t = first_probes(&s, &opts);
    // A group's boot timers come due in one pass of the loop: the same instant.
    assert!(t[..8].iter().all(|x| *x == t[0]), "{t:?}");
    assert!(t[8..].iter().all(|x| *x == t[8]), "{t:?}");
    // The second group boots half an interval in (never before its time).
    assert!(t[8] >= s.phone.interval.as_micros() / 2, "{t:?}");
    // One phone per group: each boots at its own time, in order.
    let t = first_probes(&s, &FleetOptions { boot_group: 1, ..opts });
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
}

#[test]
fn a_fleet_gets_the_pair_s_delayed_replies_late_and_stays() {
    // The primary answers 300 ms late from 1 s on: inside the first attempt's 800 ms, so no phone
    // leaves it, and every reply after that comes at least 300 ms after its probe.
    let delayed = "name = \"delayed\"\nduration = \"4.5s\"\ninterval = \"2s\"\n\
                   [[at]]\nt = \"1s\"\nserver = \"primary\"\naction = \"delay\"\nms = 300\n";
    let s = Scenario::parse(delayed, Path::new("delayed.toml")).unwrap();
    let opts = small_fleet(16, 4, 1);
    let mut late = 0;
    let mut prompt_after = 0;
    let out = fleet::run(&s, &opts, &mut |l| {
        if let Live::Event { t, event: Event::Reply { server: Side::Primary, rtt, .. }, .. } = l {
            // Probes sent after the step (allowing for the request in flight at 1 s).
            if t.as_micros() > 1_000_000 + 300_000 + 100_000 {
                if rtt.as_micros() >= 300_000 {
                    late += 1;
                } else {
                    prompt_after += 1;
                }
            }
        }
    })
    .unwrap();
    assert_eq!(out.tracker.switch_count, 0);
    assert_eq!(prompt_after, 0);
    assert!(late >= 16, "{late} late replies");
    assert_eq!(out.pair.servers[0].requests, out.pair.servers[0].answered);
}

#[test]
fn a_sharded_fleet_deals_whole_boot_groups_round_its_loops_on_one_clock() {
    let s = Scenario::parse(QUIET, Path::new("quiet.toml")).unwrap();
    let opts = small_fleet(16, 4, 2);
    // Groups 0 and 2 run in shard 0, groups 1 and 3 in shard 1 (whose events reach `live` through
    // shard 0): each group probes at one instant, the groups in boot order on the run's one clock.
    let t = first_probes(&s, &opts);
    for g in t.chunks(4) {
        assert!(g.iter().all(|x| *x == g[0]), "{t:?}");
    }
    assert!(t.chunks(4).map(|g| g[0]).collect::<Vec<_>>().windows(2).all(|w| w[0] < w[1]), "{t:?}");
    let spacing = s.phone.interval.as_micros() / 4;
    for (i, g) in t.chunks(4).enumerate() {
        assert!(g[0] >= i as u64 * spacing, "group {i} before its time: {t:?}");
    }
}

#[test]
fn a_sharded_fleet_fails_every_phone_over_and_back_once() {
    let s = Scenario::parse(SHORT, Path::new("short.toml")).unwrap();
    for shards in [2, 3] {
        let opts = FleetOptions {
            phones: 60,
            seed: 5,
            extend: s.phone.interval,
            realtime: false,
            boot_group: 4,
            shards,
            ..FleetOptions::default()
        };
        let mut events = vec![0u32; 60];
        let out = fleet::run(&s, &opts, &mut |l| {
            if let Live::Event { phone, .. } = l {
                events[phone as usize] += 1;
            }
        })
        .unwrap();
        let sum = out.tracker.summary(out.pair.peak());
        assert_eq!((sum.failovers, sum.failbacks), (60, 60), "{shards} shards: {sum:?}");
        assert_eq!(out.tracker.ignored, 0);
        // Every phone's events were shown, whichever loop ran it.
        assert!(events.iter().all(|n| *n > 0), "{shards} shards: {events:?}");
        // Every phone has one record of the outage (the fault is shard 0's pair's), with its detection.
        let mut phones: Vec<u32> = out.tracker.outages.iter().map(|o| o.phone).collect();
        phones.dedup();
        assert_eq!(phones, (0..60).collect::<Vec<_>>(), "{shards} shards");
        assert!(out.tracker.outages.iter().all(|o| o.detected_at.is_some()), "{shards} shards");
        // The pairs' counters are summed: the backup answered every request it got, and it got some
        // from every phone's cycles.
        let b = out.pair.servers[1];
        assert!(b.requests >= 60 && b.requests == b.answered, "{shards} shards: {b:?}");
        assert!(out.timeline.records.iter().any(|r| matches!(r.what, What::Fault(_))));
    }
}

const REFUSED: &str = r#"
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

#[test]
fn a_closed_port_is_refused_by_the_kernel_and_ends_the_ladder_at_once() {
    let s = Scenario::parse(REFUSED, Path::new("short-refused.toml")).unwrap();
    let out = realtime::run(&s, 3, &mut |_| {}).unwrap();
    let primary = |r: &&Record| match &r.what {
        What::Agent(Event::ProbeSent { server, .. } | Event::AttemptRefused { server, .. }) => *server == Side::Primary,
        What::Agent(Event::AttemptTimedOut { server, .. }) => *server == Side::Primary,
        What::Agent(Event::Switch { .. }) => true,
        _ => false,
    };
    let name = |r: &Record| match &r.what {
        What::Agent(Event::ProbeSent { attempt, .. }) => format!("probe {attempt}"),
        What::Agent(Event::AttemptRefused { attempt, .. }) => format!("refused {attempt}"),
        What::Agent(Event::AttemptTimedOut { attempt, .. }) => format!("timeout {attempt}"),
        _ => "switch".to_string(),
    };
    // After the port closed, the next cycle's attempts each come back as ICMP port unreachable and the
    // next follows at once, with no wait running out; the switch follows the third.
    let closed = fault_at(&out.timeline.records, Side::Primary, 0);
    let seq: Vec<String> = out
        .timeline
        .records
        .iter()
        .filter(|r| r.t.as_micros() > closed)
        .filter(primary)
        .map(name)
        .take_while(|n| n != "switch")
        .chain(["switch".to_string()])
        .collect();
    assert_eq!(seq, ["probe 1", "refused 1", "probe 2", "refused 2", "probe 3", "refused 3", "switch"]);
    let sw = switches(&out);
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0].2, Side::Backup);
    // Every attempt of the cycles at 2 s and 4 s came back refused.
    let refused = out
        .timeline
        .records
        .iter()
        .filter(|r| matches!(r.what, What::Agent(Event::AttemptRefused { server: Side::Primary, .. })))
        .count();
    assert_eq!(refused, 6);
}

#[test]
fn a_refused_ladder_ends_at_once_on_virtual_time() {
    let s = Scenario::parse(REFUSED, Path::new("short-refused.toml")).unwrap();
    let out = r#virtual::run(&s, &VirtualOptions { seed: 3, ..Default::default() }, &mut |_| {}).unwrap();
    // The cycle at 2 s: three attempts, each refused one round trip (200 µs) after it left.
    assert_eq!(switches(&out), [(2_000_600, Side::Primary, Side::Backup, SwitchReason::Failover)]);
    assert_eq!(out.pair.servers[0].refused, 6);
}

// ---- TLS over loopback: the pair's TLS servers with certificates made at start, the phone's own
// flows verified like a phone's (the lab CA the only root, the SIP domain, no wildcard).

use sip_failover::core::{FlowError, TlsError};

const TLS_RESET: &str = r#"
name = "short-tls-reset"
duration = "5s"
interval = "2s"
transport = "tls"
[[at]]
t = "1s"
server = "primary"
action = "reset"
"#;

/// Phone 0's flow records of `side` from `after` µs on, as words.
fn flow_words(records: &[Record], side: Side, after: u64) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.t.as_micros() >= after)
        .filter_map(|r| match &r.what {
            What::FlowOpen { server, .. } if *server == side => Some("open".to_string()),
            What::Agent(Event::FlowUp { server }) if *server == side => Some("up".to_string()),
            What::Agent(Event::FlowDown { server, reason }) if *server == side => Some(format!("closed: {reason}")),
            What::Agent(Event::Switch { .. }) => Some("switch".to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tls_server_that_resets_is_left_at_once_over_loopback() {
    let s = Scenario::parse(TLS_RESET, Path::new("short-tls-reset.toml")).unwrap();
    let out = realtime::run(&s, 5, &mut |_| {}).unwrap();
    let records = &out.timeline.records;
    // Before the fault both flows came up, verified, and carried the first cycle's probes.
    assert_eq!(flow_words(records, Side::Backup, 0), ["open", "up", "switch"], "one flow to the backup all along");
    let reset = fault_at(records, Side::Primary, 0);
    assert_eq!(flow_words(records, Side::Primary, 0)[..2], ["open", "up"]);
    // The reset kills the open flow; in the 2 s cycle each attempt's handshake is reset and the next
    // attempt opens at once; the switch follows the third.
    let after: Vec<String> = flow_words(records, Side::Primary, reset).into_iter().take(8).collect();
    assert_eq!(
        after,
        ["closed: refused", "open", "open", "closed: refused", "open", "closed: refused", "closed: refused", "switch"]
    );
    assert_eq!(
        switches(&out).iter().map(|s| (s.1, s.2, s.3)).collect::<Vec<_>>(),
        [(Side::Primary, Side::Backup, SwitchReason::Failover)]
    );
    assert!(out.pair.servers[0].answered > 0 && out.pair.servers[1].answered > 0);
    assert_eq!(out.tracker.ignored, 0);
}

#[test]
fn every_bad_certificate_is_refused_with_its_reason_over_loopback() {
    for (kind, want) in [
        ("expired", TlsError::Expired),
        ("wrong_name", TlsError::NameMismatch),
        ("wildcard", TlsError::WildcardRefused),
        ("unknown_ca", TlsError::UnknownIssuer),
    ] {
        let text = format!(
            "name = \"short-bad-{kind}\"\nduration = \"3s\"\ninterval = \"2s\"\ntransport = \"tls\"\n[[at]]\nt = \"1s\"\n\
             server = \"primary\"\naction = \"bad_certificate\"\nkind = \"{kind}\"\n"
        );
        let s = Scenario::parse(&text, Path::new("short-bad.toml")).unwrap();
        let out = realtime::run(&s, 9, &mut |_| {}).unwrap();
        let records = &out.timeline.records;
        let restart = fault_at(records, Side::Primary, 0);
        let bad = format!("closed: {}", FlowError::Tls(want));
        let after: Vec<String> = flow_words(records, Side::Primary, restart).into_iter().take(8).collect();
        assert_eq!(
            after,
            ["closed: closed", "open", "open", bad.as_str(), "open", bad.as_str(), bad.as_str(), "switch"],
            "{kind}"
        );
        // Only the good flow before the restart carried probes that the primary answered.
        let replies = records
            .iter()
            .filter(|r| r.t.as_micros() > restart)
            .filter(|r| matches!(r.what, What::Agent(Event::Reply { server: Side::Primary, .. })))
            .count();
        assert_eq!(replies, 0, "{kind}");
        assert_eq!(switches(&out).len(), 1, "{kind}");
    }
}

#[test]
fn the_good_certificate_verifies_and_tcp_flows_carry_probes_over_loopback() {
    let text = "name = \"short-tcp\"\nduration = \"2.5s\"\ninterval = \"2s\"\ntransport = \"tcp\"\n[backup]\ntransport = \"tls\"\n";
    let s = Scenario::parse(text, Path::new("short-tcp.toml")).unwrap();
    let out = realtime::run(&s, 2, &mut |_| {}).unwrap();
    let records = &out.timeline.records;
    for side in Side::BOTH {
        assert_eq!(flow_words(records, side, 0), ["open", "up"], "{side}: one flow all along");
    }
    let sum = out.tracker.summary(None);
    // Two cycles (0 s and 2 s) to each server, all answered on the same two flows.
    assert_eq!((sum.probes, sum.replies), (4, 4));
    assert!(sum.all_flows_up.is_some());
    assert!(switches(&out).is_empty());
}

#[test]
fn a_small_tls_fleet_has_a_verified_flow_per_phone_and_side() {
    let text = SHORT.replace("interval = \"2s\"", "interval = \"2s\"\ntransport = \"tls\"");
    let s = Scenario::parse(&text, Path::new("short-tls.toml")).unwrap();
    let opts =
        FleetOptions { phones: 100, seed: 4, extend: s.phone.interval, realtime: false, ..FleetOptions::default() };
    let out = fleet::run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(out.pair.peak());
    // Every phone's cycle met the 3.5 s blackhole: each failed over once and came back once.
    assert_eq!((sum.failovers, sum.failbacks), (100, 100), "{sum:?}");
    // Each phone had a verified flow to each server; the blackholed primary's flows timed out.
    assert!(sum.all_flows_up.is_some(), "{sum:?}");
    assert_eq!(sum.first_flow_setup.unwrap().count, 200);
    assert!(sum.flows_closed.iter().all(|(r, _)| *r == "attempt_timed_out"), "{sum:?}");
    assert_eq!(out.tracker.ignored, 0);
}

#[test]
fn a_tls_server_that_resets_is_left_at_once_on_virtual_time() {
    let s = Scenario::parse(TLS_RESET, Path::new("short-tls-reset.toml")).unwrap();
    let out = r#virtual::run(&s, &VirtualOptions { seed: 5, ..Default::default() }, &mut |_| {}).unwrap();
    // The cycle at 2 s: three flows, each reset two round trips (400 µs) after it was opened.
    assert_eq!(switches(&out), [(2_001_200, Side::Primary, Side::Backup, SwitchReason::Failover)]);
    let after = flow_words(&out.timeline.records, Side::Primary, 1_000_000);
    assert_eq!(
        after[..8],
        ["closed: refused", "open", "open", "closed: refused", "open", "closed: refused", "closed: refused", "switch"]
    );
}

// ---- Announced maintenance and a notice published mid-run, over loopback: the phone's call scripted
// in time, a 503 with a Retry-After of 3 s, and a notice served on the lab's status page and polled by
// the phone. The same scenarios on virtual time below give the exact times.

const SHORT_MAINTENANCE: &str = r#"
name = "short-maintenance"
description = "503 Retry-After 3 from 1 s to 4.5 s, during a call that ends at 3 s."
duration = "9s"
interval = "2s"
[phone]
failback_after = 1
[[at]]
t = "0s"
phone = "call"
state = "start"
[[at]]
t = "1s"
server = "primary"
action = "status"
code = 503
retry_after = 3
[[at]]
t = "3s"
phone = "call"
state = "end"
[[at]]
t = "4.5s"
server = "primary"
action = "answer"
"#;

/// Phone 0's calls, holds, notices, windows taken and switches, as words, in the order recorded.
fn story(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.what {
            What::Call(true) => Some("call start".to_string()),
            What::Call(false) => Some("call end".to_string()),
            What::Agent(Event::Held { to, .. }) => Some(format!("held to {to}")),
            What::Agent(Event::Switch { reason, .. }) => Some(format!("switch {}", reason.as_str())),
            What::NoticePublished { id, .. } => Some(format!("notice {id}")),
            What::Windows(w) => Some(format!(
                "windows {:?}",
                w.iter().map(|w| (w.side, w.start.as_micros(), w.end.as_micros())).collect::<Vec<_>>()
            )),
            What::PageError(e) => Some(format!("page error {e}")),
            _ => None,
        })
        .collect()
}

#[test]
fn an_announced_maintenance_holds_during_the_call_over_loopback() {
    let s = Scenario::parse(SHORT_MAINTENANCE, Path::new("short-maintenance.toml")).unwrap();
    let out = realtime::run(&s, 6, &mut |_| {}).unwrap();
    let records = &out.timeline.records;
    // Held when the 503 came during the call, left when the call ended, back once it was over.
    assert_eq!(
        story(records),
        ["call start", "held to backup", "call end", "switch maintenance", "switch failback"],
        "{records:#?}"
    );
    let o = &out.tracker.outages[0];
    assert_eq!(&*o.label, "503 Retry-After 3");
    assert_eq!(o.switch_reason, Some(SwitchReason::Maintenance));
    assert!(o.held_at.is_some() && o.cycle_to_switch().is_none(), "{o:?}");
    // The failback waited for the Retry-After of the last 503 (on the run's clock, the agent's own
    // decision: not a wall-clock bound).
    let sw = switches(&out);
    assert!(sw[1].0 >= o.retry_until.unwrap().as_micros(), "{sw:?} {o:?}");
    assert!(sw[1].0 >= o.up_at.unwrap().as_micros(), "{sw:?} {o:?}");
}

#[test]
fn an_announced_maintenance_holds_during_the_call_on_virtual_time() {
    let s = Scenario::parse(SHORT_MAINTENANCE, Path::new("short-maintenance.toml")).unwrap();
    let out = r#virtual::run(&s, &VirtualOptions { seed: 6, ..Default::default() }, &mut |_| {}).unwrap();
    // The 503 of the 2 s cycle: held. The call ends at 3 s: the phone leaves. The 503 of the 4 s cycle
    // announces 3 s more: although the primary answers the 6 s cycle, the failback waits until
    // 7.0002 s.
    assert_eq!(
        switches(&out),
        [
            (3_000_000, Side::Primary, Side::Backup, SwitchReason::Maintenance),
            (7_000_200, Side::Backup, Side::Primary, SwitchReason::Failback)
        ]
    );
    assert_eq!(out.tracker.outages[0].held_at.unwrap().as_micros(), 2_000_200);
    assert_eq!(out.tracker.outages[0].retry_until.unwrap().as_micros(), 7_000_200);
}

const SHORT_NOTICE: &str = r#"
name = "short-notice"
description = "A notice published at 1.5 s: the primary's maintenance from 3.5 s to 5.5 s."
duration = "7s"
interval = "2s"
[phone]
planned_lead = "1s"
failback_after = 1
[[at]]
t = "1.5s"
notice = { id = "N-1", server = "primary", starts_in = "2s", lasts = "2s" }
"#;

#[test]
fn a_notice_published_on_the_status_page_is_polled_and_taken_over_loopback() {
    let s = Scenario::parse(SHORT_NOTICE, Path::new("short-notice.toml")).unwrap();
    let out = realtime::run(&s, 8, &mut |_| {}).unwrap();
    let records = &out.timeline.records;
    // Published on the page, found by the phone's poll (the window on the run's clock, read back from
    // the page's wall-clock times), left ahead of the window, back after it. The ended window drops
    // out of the page at the first poll after its end, before or after the failback.
    let story: Vec<String> = story(records).into_iter().filter(|w| w != "windows []").collect();
    assert_eq!(
        story,
        ["notice N-1", "windows [(Primary, 3500000, 5500000)]", "switch planned", "switch failback"],
        "{records:#?}"
    );
    assert_eq!(out.tracker.planned_switches, 1);
}

#[test]
fn a_notice_published_mid_run_is_taken_on_virtual_time() {
    let s = Scenario::parse(SHORT_NOTICE, Path::new("short-notice.toml")).unwrap();
    let out = r#virtual::run(&s, &VirtualOptions { seed: 8, ..Default::default() }, &mut |_| {}).unwrap();
    // Taken at 1.5 s, left at 2.5 s (1 s ahead), back on the first cycle after the window (6 s).
    assert_eq!(
        switches(&out),
        [
            (2_500_000, Side::Primary, Side::Backup, SwitchReason::Planned),
            (6_000_200, Side::Backup, Side::Primary, SwitchReason::Failback)
        ]
    );
}

#[test]
fn a_small_fleet_takes_the_call_and_the_notice_on_every_phone() {
    // The call lasts from 0 to 5 s and the primary answers 503 Retry-After 2 from 0.5 s to 6.5 s:
    // every phone's cycle meets a 503 during the call.
    let text = SHORT_MAINTENANCE
        .replace("t = \"1s\"", "t = \"0.5s\"")
        .replace("retry_after = 3", "retry_after = 2")
        .replace("t = \"3s\"", "t = \"5s\"")
        .replace("t = \"4.5s\"", "t = \"6.5s\"");
    let s = Scenario::parse(&text, Path::new("fleet-maintenance.toml")).unwrap();
    let opts =
        FleetOptions { phones: 20, seed: 3, extend: s.phone.interval, realtime: false, ..FleetOptions::default() };
    let out = fleet::run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(None);
    assert_eq!((sum.held, sum.maintenance_switches, sum.failbacks, sum.failovers), (20, 20, 20, 0), "{sum:?}");
    // One poller for the fleet: every phone, booted before or after the notice was found, leaves the
    // primary ahead of the window and returns after it.
    let s = Scenario::parse(SHORT_NOTICE, Path::new("short-notice.toml")).unwrap();
    let out = fleet::run(
        &s,
        &FleetOptions { phones: 20, seed: 3, extend: s.phone.interval, realtime: false, ..FleetOptions::default() },
        &mut |_| {},
    )
    .unwrap();
    let sum = out.tracker.summary(None);
    assert_eq!((sum.planned_switches, sum.failbacks, sum.failovers), (20, 20, 0), "{sum:?}");
    // Sharded, shard 0's poller hands the windows to the other loop's phones too.
    let opts = FleetOptions {
        phones: 20,
        seed: 3,
        extend: s.phone.interval,
        realtime: false,
        boot_group: 2,
        shards: 2,
        ..FleetOptions::default()
    };
    let out = fleet::run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(None);
    assert_eq!((sum.planned_switches, sum.failbacks, sum.failovers), (20, 20, 0), "sharded: {sum:?}");
}
