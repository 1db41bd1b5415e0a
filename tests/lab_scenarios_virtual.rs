//! Every shipped lab scenario on virtual time, with its outcome asserted exactly: switch times to the
//! microsecond, counts of probes, failovers and "no server reachable" reports. The virtual network
//! has a one-way latency of 100 µs, so a reply arrives 200 µs after its probe.

use std::path::PathBuf;

use sip_failover::core::{Side, SwitchReason};
use sip_failover::sim::r#virtual::{run, VirtualOptions};
use sip_failover::sim::scenario::Scenario;
use sip_failover::sim::RunOutput;

const P: Side = Side::Primary;
const B: Side = Side::Backup;
const FAILOVER: SwitchReason = SwitchReason::Failover;
const FAILBACK: SwitchReason = SwitchReason::Failback;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("firmware-config/scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn run_it(name: &str, seed: u64) -> RunOutput {
    run(&scenario(name), &VirtualOptions { seed, ..Default::default() }, &mut |_| {}).unwrap()
}

/// (µs, from, to, reason) of every switch.
fn switches(out: &RunOutput) -> Vec<(u64, Side, Side, SwitchReason)> {
    out.tracker.switches.iter().map(|s| (s.at.as_micros(), s.from, s.to, s.reason)).collect()
}

#[test]
fn every_shipped_scenario_is_valid_and_tested_here() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("firmware-config/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "backup-fails-while-active",
            "both-down",
            "flapping-primary",
            "lossy-link",
            "maintenance-mode",
            "notice-mid-run",
            "primary-503",
            "primary-blackholed",
            "primary-refused",
            "primary-tls-bad-certificate",
            "primary-tls-hang",
            "primary-tls-reset",
            "primary-tls-stall-handshake",
            "rolling-restart",
            "slow-primary",
            "weekly-maintenance",
        ]
    );
}

#[test]
fn the_default_is_the_primary_blackholed_file() {
    assert_eq!(Scenario::builtin(), {
        let mut s = scenario("primary-blackholed");
        s.name.clone_from(&Scenario::builtin().name);
        s
    });
    assert_eq!(Scenario::builtin().phone.interval.as_millis(), 15_000, "the default keeps the seed's interval");
}

#[test]
fn primary_blackholed() {
    let out = run_it("primary-blackholed", 1);
    // Cycle at 15 s fails at 15 + 0.8 + 0.4 + 0.4 s; failback on the reply of the second alive cycle.
    assert_eq!(switches(&out), [(16_600_000, P, B, FAILOVER), (45_000_200, B, P, FAILBACK)]);
    let o = &out.tracker.outages[0];
    assert_eq!(o.detected_at.unwrap().as_micros(), 16_600_000);
    assert_eq!(o.detection_from_fault().unwrap().as_millis(), 8_600);
    assert_eq!(o.detection_from_last_answer().unwrap().as_millis(), 16_600);
    assert_eq!(o.cycle_to_switch().unwrap().as_millis(), 1_600);
    assert_eq!(o.failback_time().unwrap().as_micros(), 20_000_200);
    // 4 cycles to each server, and attempts 2 and 3 to the primary in the failed cycle.
    assert_eq!(out.tracker.probes, 10);
    assert_eq!(out.tracker.replies, 7);
}

#[test]
fn primary_refused_ends_attempts_at_once() {
    let out = run_it("primary-refused", 1);
    // Three attempts, each refused one round trip (200 µs) after it left.
    assert_eq!(switches(&out), [(15_000_600, P, B, FAILOVER), (45_000_200, B, P, FAILBACK)]);
    assert_eq!(out.pair.servers[0].refused, 3);
}

#[test]
fn flapping_primary_fails_over_once_and_does_not_flap_back() {
    let out = run_it("flapping-primary", 1);
    assert_eq!(switches(&out), [(16_600_000, P, B, FAILOVER), (105_000_200, B, P, FAILBACK)]);
    // The flapping primary failed the cycles at 15, 45 and 75 s and answered those at 30, 60 and 90 s.
    let detected: Vec<u64> = out.tracker.outages.iter().filter_map(|o| o.detected_at).map(|t| t.as_millis()).collect();
    assert_eq!(detected, [16_600, 46_600, 76_600]);
}

#[test]
fn lossy_link_fails_over_only_when_a_whole_ladder_is_lost() {
    let out = run_it("lossy-link", 1);
    let s = switches(&out);
    assert_eq!(
        s,
        [
            (391_600_000, P, B, FAILOVER),
            (420_000_200, B, P, FAILBACK),
            (1_036_600_000, P, B, FAILOVER),
            (1_065_000_200, B, P, FAILBACK),
            (2_641_600_000, P, B, FAILOVER),
            (2_670_800_200, B, P, FAILBACK),
            (3_376_600_000, P, B, FAILOVER),
            (3_405_000_200, B, P, FAILBACK),
        ]
    );
    // Every failover ends a cycle whose three attempts were all lost: it falls 1.6 s after a cycle
    // start, on the 15 s grid.
    for (t, ..) in s.iter().filter(|x| x.3 == FAILOVER) {
        assert_eq!((t - 1_600_000) % 15_000_000, 0, "{t}");
    }
    // About 30 % of the primary's requests went unanswered.
    let p = out.pair.servers[0];
    let share = p.dropped as f64 / p.requests as f64;
    assert!((0.25..0.35).contains(&share), "{share}");
    // Reproducible from the seed; another seed gives another history.
    assert_eq!(switches(&run_it("lossy-link", 1)), s);
    assert_ne!(switches(&run_it("lossy-link", 2)), s);
}

#[test]
fn both_down_stays_put_then_follows_the_first_server_back() {
    let out = run_it("both-down", 1);
    assert_eq!(switches(&out), [(46_600_000, P, B, FAILOVER), (90_000_200, B, P, FAILBACK)]);
    // Cycles at 15 and 30 s: both failed.
    assert_eq!(out.tracker.no_server, 2);
}

#[test]
fn backup_failing_while_active_moves_back_at_once() {
    let out = run_it("backup-fails-while-active", 1);
    // At 31.6 s the backup failed its cycle and the primary had answered it: a failover, not a
    // failback waiting for two alive cycles.
    assert_eq!(switches(&out), [(16_600_000, P, B, FAILOVER), (31_600_000, B, P, FAILOVER)]);
}

#[test]
fn rolling_restart_is_followed_server_by_server() {
    let out = run_it("rolling-restart", 1);
    assert_eq!(switches(&out), [(31_600_000, P, B, FAILOVER), (46_600_000, B, P, FAILOVER)]);
    // The backup answered in compact form all along, and every answer was accepted.
    assert_eq!(out.tracker.ignored, 0);
    // The primary was closed for the cycle at 30 s, the backup for those at 45 and 60 s.
    assert_eq!(out.pair.servers[0].refused, 3);
    assert_eq!(out.pair.servers[1].refused, 6);
}

#[test]
fn weekly_maintenance_sends_nothing_to_the_primary_inside_its_window() {
    let s = scenario("weekly-maintenance");
    // Saturday 17:00-22:00 in Paris, read from a 16:00 start: one window from 1 h to 6 h.
    assert_eq!(s.windows.len(), 1);
    assert_eq!(
        (s.windows[0].side, s.windows[0].start.as_millis(), s.windows[0].end.as_millis()),
        (P, 3_600_000, 21_600_000)
    );
    let out = run_it("weekly-maintenance", 1);
    // Leaves at 16:45 (the 15 min lead), stays through both restarts although the primary answers
    // between them, returns after the window on the second alive cycle (22:00:15 plus the reply's
    // 0.2 ms).
    assert_eq!(
        switches(&out),
        [(2_700_000_000, P, B, SwitchReason::Planned), (21_615_000_200, B, P, SwitchReason::Failback)]
    );
    assert_eq!(sip_failover::sim::summary::in_force_inside(&out.tracker, &s.windows[0]).as_micros(), 0);
    // The restarts happened and the phone saw them.
    assert!(out.pair.servers[0].dropped >= 3, "{:?}", out.pair.servers[0]);
}

#[test]
fn primary_503_fails_over_on_the_first_reply() {
    let out = run_it("primary-503", 1);
    assert_eq!(switches(&out), [(15_000_200, P, B, FAILOVER), (45_000_200, B, P, FAILBACK)]);
    assert_eq!(out.tracker.ignored, 0, "folded headers are accepted");
    let o = &out.tracker.outages[0];
    assert_eq!(&*o.label, "503");
    assert_eq!(o.fault_to_switch().unwrap().as_micros(), 7_000_200);
}

// ---- Announced maintenance and notices: the phone's call scripted in time, a 503 with Retry-After, a
// notice published mid-run.

const MAINTENANCE: SwitchReason = SwitchReason::Maintenance;

/// Phone 0's records of its calls, holds, notices and windows: (µs, what).
fn story(out: &RunOutput) -> Vec<(u64, String)> {
    use sip_failover::core::Event;
    use sip_failover::sim::timeline::What;
    out.timeline
        .records
        .iter()
        .filter_map(|r| {
            let what = match &r.what {
                What::Call(true) => "call start".to_string(),
                What::Call(false) => "call end".to_string(),
                What::Agent(Event::Held { to, .. }) => format!("held to {to}"),
                What::Agent(Event::Switch { reason, .. }) => format!("switch {}", reason.as_str()),
                What::NoticePublished { id, server, start, end } => {
                    format!("notice {id} {server} {}..{}", start.as_micros(), end.as_micros())
                }
                What::Windows(w) => format!(
                    "windows {:?}",
                    w.iter().map(|w| (w.side, w.start.as_micros(), w.end.as_micros())).collect::<Vec<_>>()
                ),
                _ => return None,
            };
            Some((r.t.as_micros(), what))
        })
        .collect()
}

fn said(t: u64, what: &str) -> (u64, String) {
    (t, what.to_string())
}

#[test]
fn maintenance_mode_holds_during_the_call_leaves_after_it_and_waits_out_the_retry_after() {
    let out = run_it("maintenance-mode", 1);
    // The 503 of the 15 s cycle (8 s: the fault) announces maintenance: held, for the call goes on.
    // The call ends at 150 s: the phone leaves at once. The primary answers 200 from 308 s (UP at
    // 315 s), but the 503 of the 300 s cycle announced 300 s more: no failback before 600.0002 s.
    assert_eq!(switches(&out), [(150_000_000, P, B, MAINTENANCE), (600_000_200, B, P, FAILBACK)]);
    assert_eq!(
        story(&out),
        [
            said(0, "call start"),
            said(15_000_200, "held to backup"),
            said(150_000_000, "call end"),
            said(150_000_000, "switch maintenance"),
            said(600_000_200, "switch failback"),
        ]
    );
    let o = &out.tracker.outages[0];
    assert_eq!(&*o.label, "503 Retry-After 300");
    assert_eq!(o.detected_at.unwrap().as_micros(), 15_000_200);
    assert_eq!(o.held_at.unwrap().as_micros(), 15_000_200);
    assert_eq!((o.switch_at.unwrap().as_micros(), o.switch_reason), (150_000_000, Some(MAINTENANCE)));
    assert_eq!(o.fault_to_switch().unwrap().as_micros(), 142_000_000);
    assert_eq!(o.cycle_to_switch(), None, "a maintenance switch waits for an idle moment, not for a ladder");
    assert_eq!(o.retry_until.unwrap().as_micros(), 600_000_200, "the 503 of the 300 s cycle, plus 300 s");
    assert_eq!(o.up_at.unwrap().as_micros(), 315_000_200);
    assert_eq!(o.failback_at, o.retry_until);
    assert_eq!(o.failback_time().unwrap().as_micros(), 292_000_200);
    let sum = out.tracker.summary(None);
    assert_eq!((sum.failovers, sum.maintenance_switches, sum.failbacks, sum.held), (0, 1, 1, 1));
    // No ladder waited out: every probe was answered, twenty of the primary's with 503.
    assert_eq!(sum.switch_after_deadline, None);
    assert_eq!(out.pair.servers[0].answered, out.pair.servers[0].requests);
    let summary = sip_failover::sim::summary::render(&out.tracker, &sum);
    assert!(summary.contains("switched away at 150.000 s (maintenance): 142.000 s after the fault"), "{summary}");
    assert!(summary.contains("held on it from 15.000 s by a call in progress"), "{summary}");
}

#[test]
fn notice_mid_run_is_taken_when_published_and_the_phone_leaves_ahead_of_its_window() {
    use sip_failover::sim::scenario::NoticeStep;
    let s = scenario("notice-mid-run");
    assert_eq!(
        s.notices,
        [NoticeStep {
            at: sip_failover::core::Duration::from_secs(20),
            id: "LAB-1".into(),
            side: P,
            start: sip_failover::core::Duration::from_secs(80),
            end: sip_failover::core::Duration::from_secs(140),
            title: Some("PBX upgrade".into()),
        }]
    );
    assert_eq!(s.phone.planned_lead.as_millis(), 30_000);
    let out = run_it("notice-mid-run", 1);
    // Taken at 20 s; the phone leaves at 50 s (30 s ahead), stays on the backup through the window and
    // the primary's restart inside it, and returns on the second alive cycle after it (150 s, 165 s).
    assert_eq!(switches(&out), [(50_000_000, P, B, SwitchReason::Planned), (165_000_200, B, P, FAILBACK)]);
    assert_eq!(
        story(&out),
        [
            said(20_000_000, "notice LAB-1 primary 80000000..140000000"),
            said(20_000_000, "windows [(Primary, 80000000, 140000000)]"),
            said(50_000_000, "switch planned"),
            said(165_000_200, "switch failback"),
        ]
    );
    assert_eq!(sip_failover::sim::summary::in_force_inside(&out.tracker, &s.notices[0].span()).as_micros(), 0);
    assert_eq!(out.tracker.summary(None).planned_switches, 1);
}

#[test]
fn a_virtual_fleet_takes_the_call_and_the_notice_on_every_phone() {
    // 16 phones (every switch kept), booting over the first 15 s.
    let opts = VirtualOptions { phones: 16, seed: 2, ..Default::default() };
    let out = run(&scenario("maintenance-mode"), &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(None);
    assert_eq!((sum.maintenance_switches, sum.held, sum.failovers), (16, 16, 0));
    // Every phone saw the 503 during the call and left when it ended.
    for p in 0..16 {
        let first = out.tracker.switches.iter().find(|s| s.phone == p).unwrap();
        assert_eq!((first.at.as_micros(), first.reason), (150_000_000, MAINTENANCE), "phone {p}");
    }
    let out = run(&scenario("notice-mid-run"), &opts, &mut |_| {}).unwrap();
    let planned: Vec<u64> =
        out.tracker.switches.iter().filter(|s| s.reason == SwitchReason::Planned).map(|s| s.at.as_micros()).collect();
    assert_eq!(planned, [50_000_000; 16]);
}

#[test]
fn slow_primary_counts_late_replies_until_they_miss_the_ladder() {
    let out = run_it("slow-primary", 1);
    assert_eq!(switches(&out), [(31_600_000, P, B, FAILOVER)]);
    // 15 s cycle: the 1 s reply answers attempt 1 while attempt 2 waits; no failover.
    let tl = &out.timeline.records;
    use sip_failover::core::Event;
    use sip_failover::sim::timeline::What;
    let late = tl.iter().find(|r| r.t.as_micros() == 16_000_200).expect("the late reply");
    assert!(matches!(late.what, What::Agent(Event::Reply { server: Side::Primary, attempt: 1, .. })), "{late:?}");
}

#[test]
fn a_virtual_fleet_keeps_every_switch_on_the_ladder() {
    let s = scenario("primary-blackholed");
    let opts = VirtualOptions { phones: 1000, seed: 3, extend: s.phone.interval, ..Default::default() };
    let out = run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(out.pair.peak());
    assert_eq!(sum.failovers, 1000);
    assert_eq!(sum.failbacks, 1000);
    let lag = sum.switch_after_deadline.unwrap();
    assert_eq!(lag.count, 1000);
    assert_eq!(lag.max.as_micros(), 0, "virtual time: every switch exactly at the deadline");
}

#[test]
fn the_built_in_copies_are_the_shipped_files() {
    use sip_failover::sim::scenario::{shipped, SHIPPED};
    assert_eq!(SHIPPED.len(), 16);
    for (name, _) in SHIPPED {
        assert_eq!(shipped(name).unwrap().unwrap(), scenario(name), "{name}");
    }
}

mod never_panics {
    use std::path::Path;

    use proptest::prelude::*;
    use sip_failover::sim::r#virtual::{run, VirtualOptions};
    use sip_failover::sim::scenario::Scenario;

    /// Every action with valid parameters.
    const ACTIONS: [(&str, &str); 10] = [
        ("answer", ""),
        ("blackhole", ""),
        ("refuse", ""),
        ("delay", "ms = 900\n"),
        ("loss", "share = 0.5\n"),
        ("status", "code = 503\nretry_after = 60\n"),
        ("flap", "period = \"3s\"\n"),
        ("rolling_restart", "down_for = \"4s\"\ngap = \"1s\"\n"),
        ("headers", "form = \"folded\"\n"),
        ("headers", "form = \"compact\"\n"),
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any text is either a scenario or an error with a place, never a panic.
        #[test]
        fn any_text_parses_or_errs(text in "\\PC{0,300}") {
            let _ = Scenario::parse(&text, Path::new("fuzz.toml"));
        }

        /// Any script of valid steps, the phone's calls and notices included, runs on virtual time to
        /// its end.
        #[test]
        fn any_valid_script_runs(
            steps in proptest::collection::vec((0u64..60, 0usize..3, 0usize..10), 0..12),
            mut calls in proptest::collection::vec(0u64..60, 0..5),
            notices in proptest::collection::vec((0u64..60, 0u64..40, 1u64..40, any::<bool>()), 0..5),
            seed in any::<u64>(),
        ) {
            let mut text = String::from("name = \"fuzz\"\nduration = \"60s\"\ninterval = \"5s\"\n");
            text.push_str("[phone]\nplanned_lead = \"3s\"\n");
            for (t, server, action) in steps {
                let server = ["primary", "backup", "both"][server];
                let (name, params) = ACTIONS[action];
                text.push_str(&format!("[[at]]\nt = \"{t}s\"\nserver = \"{server}\"\naction = \"{name}\"\n{params}"));
            }
            // Calls start and end in turn; at most four notices (the core holds four windows).
            calls.sort_unstable();
            for (i, t) in calls.iter().enumerate() {
                let state = if i % 2 == 0 { "start" } else { "end" };
                text.push_str(&format!("[[at]]\nt = \"{t}s\"\nphone = \"call\"\nstate = \"{state}\"\n"));
            }
            for (i, (t, starts_in, lasts, backup)) in notices.into_iter().take(4).enumerate() {
                let server = if backup { "backup" } else { "primary" };
                text.push_str(&format!(
                    "[[at]]\nt = \"{t}s\"\nnotice = {{ id = \"N-{i}\", server = \"{server}\", starts_in = \"{starts_in}s\", lasts = \"{lasts}s\" }}\n"
                ));
            }
            let s = Scenario::parse(&text, Path::new("fuzz.toml"))
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let out = run(&s, &VirtualOptions { seed, ..Default::default() }, &mut |_| {}).unwrap();
            prop_assert_eq!(out.end.as_millis(), 60_000);
            // At least one probe per server and cycle.
            prop_assert!(out.tracker.probes >= 24);
        }

        /// Any script of valid steps, connection faults included, runs over TLS (or TCP on one side)
        /// to its end; every flow the phone opened was accounted for.
        #[test]
        fn any_valid_stream_script_runs(
            steps in proptest::collection::vec((0u64..60, 0usize..3, 0usize..16), 0..12),
            tcp_backup in any::<bool>(),
            seed in any::<u64>(),
        ) {
            const STREAM: [(&str, &str); 6] = [
                ("reset", ""),
                ("hang", ""),
                ("stall_handshake", ""),
                ("bad_certificate", "kind = \"expired\"\n"),
                ("bad_certificate", "kind = \"wildcard\"\n"),
                ("bad_certificate", "kind = \"unknown_ca\"\n"),
            ];
            let mut text = String::from("name = \"fuzz\"\nduration = \"60s\"\ninterval = \"5s\"\ntransport = \"tls\"\n");
            if tcp_backup {
                text.push_str("[backup]\ntransport = \"tcp\"\n");
            }
            for (t, server, action) in steps {
                let server = ["primary", "backup", "both"][server];
                let (name, params) = if action < 10 { ACTIONS[action] } else { STREAM[action - 10] };
                let tls_only = matches!(name, "stall_handshake" | "bad_certificate");
                let server = if tls_only && tcp_backup { "primary" } else { server };
                text.push_str(&format!("[[at]]\nt = \"{t}s\"\nserver = \"{server}\"\naction = \"{name}\"\n{params}"));
            }
            let s = Scenario::parse(&text, Path::new("fuzz.toml"))
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let out = run(&s, &VirtualOptions { seed, ..Default::default() }, &mut |_| {}).unwrap();
            prop_assert_eq!(out.end.as_millis(), 60_000);
            let sum = out.tracker.summary(None);
            prop_assert!(sum.flows_opened >= 2);
            let closed: u64 = sum.flows_closed.iter().map(|(_, n)| n).sum();
            // Every flow but the one each server may still have at the end was closed, with a reason.
            prop_assert!(sum.flows_opened <= closed + 2, "{:?}", sum);
            prop_assert!(closed <= sum.flows_opened);
        }
    }
}

// ---- TCP and TLS: flows opened by the runner as a driver would, one-way latency 100 µs: a TLS flow is
// up 400 µs after it is opened (TCP connect, then the handshake), a reply comes 200 µs after its probe.

use sip_failover::core::{Event, FlowError, TlsError};
use sip_failover::sim::timeline::What;

/// Phone 0's flow records of `side`: (µs, "open" | "up" | "closed: reason").
fn flows(out: &RunOutput, side: Side) -> Vec<(u64, String)> {
    out.timeline
        .records
        .iter()
        .filter_map(|r| {
            let t = r.t.as_micros();
            match &r.what {
                What::FlowOpen { server, .. } if *server == side => Some((t, "open".to_string())),
                What::Agent(Event::FlowUp { server }) if *server == side => Some((t, "up".to_string())),
                What::Agent(Event::FlowDown { server, reason }) if *server == side => {
                    Some((t, format!("closed: {reason}")))
                }
                _ => None,
            }
        })
        .collect()
}

fn closed(t: u64, reason: FlowError) -> (u64, String) {
    (t, format!("closed: {reason}"))
}

fn at(t: u64, what: &str) -> (u64, String) {
    (t, what.to_string())
}

/// The backup's one flow, up 400 µs after the start, carries every probe of the run.
fn backup_flow_held(out: &RunOutput) {
    assert_eq!(flows(out, B), [at(0, "open"), at(400, "up")]);
}

#[test]
fn primary_tls_reset() {
    let out = run_it("primary-tls-reset", 1);
    // Reset at 8 s: the open flow fails one latency later. At 15 s each attempt's new flow is reset
    // during the handshake (a round trip after the connect) and the next opens at once: the cycle
    // fails at 15.0012 s, the backup had answered at 15.0002 s: failover. Back on the second alive
    // cycle, on the flow opened at 30 s.
    assert_eq!(switches(&out), [(15_001_200, P, B, FAILOVER), (45_000_200, B, P, FAILBACK)]);
    let refused = |t| closed(t, FlowError::Refused);
    assert_eq!(
        flows(&out, P),
        [
            at(0, "open"),
            at(400, "up"),
            refused(8_000_100),
            at(15_000_000, "open"),
            at(15_000_400, "open"),
            refused(15_000_400),
            at(15_000_800, "open"),
            refused(15_000_800),
            refused(15_001_200),
            at(30_000_000, "open"),
            at(30_000_400, "up"),
        ]
    );
    backup_flow_held(&out);
    // No probe ever went on a reset flow: the primary answered every one it got.
    assert_eq!(out.pair.servers[0].requests, out.pair.servers[0].answered);
    assert_eq!(out.pair.servers[0].connects, 5);
    let o = &out.tracker.outages[0];
    assert_eq!(o.cycle_to_switch().unwrap().as_micros(), 1_200, "the cycle started with the flow's opening");
    let sum = out.tracker.summary(None);
    assert_eq!((sum.flows_opened, sum.flows_up), (6, 3));
    assert_eq!(sum.flows_closed, [("refused", 4)]);
    assert_eq!(sum.all_flows_up.unwrap().as_micros(), 400);
}

#[test]
fn primary_tls_hang() {
    let out = run_it("primary-tls-hang", 1);
    // Hung at 8 s: nothing is closed. The 15 s probe goes on the open flow, times out at 15.8 s and
    // closes it; attempts 2 and 3 each get a new flow that connects (400 µs) and hangs too. The
    // ladder's timing is the UDP one: failover at 16.6 s.
    assert_eq!(switches(&out), [(16_600_000, P, B, FAILOVER), (45_000_200, B, P, FAILBACK)]);
    let timed_out = |t| closed(t, FlowError::AttemptTimedOut);
    assert_eq!(
        flows(&out, P),
        [
            at(0, "open"),
            at(400, "up"),
            at(15_800_000, "open"),
            timed_out(15_800_000),
            at(15_800_400, "up"),
            at(16_200_000, "open"),
            timed_out(16_200_000),
            at(16_200_400, "up"),
            timed_out(16_600_000),
            at(30_000_000, "open"),
            at(30_000_400, "up"),
        ]
    );
    backup_flow_held(&out);
    assert_eq!(out.tracker.outages[0].cycle_to_switch().unwrap().as_millis(), 1_600);
    // The three hung probes reached the primary and went unanswered.
    assert_eq!(out.pair.servers[0].dropped, 3);
}

#[test]
fn primary_tls_stall_handshake() {
    let out = run_it("primary-tls-stall-handshake", 1);
    // The restart at 8 s closes the open flow; from 15 s each attempt's handshake stalls until its
    // wait runs out, and the next attempt opens a new flow: failover at 16.6 s, no probe written.
    assert_eq!(switches(&out), [(16_600_000, P, B, FAILOVER), (45_000_200, B, P, FAILBACK)]);
    let timed_out = |t| closed(t, FlowError::AttemptTimedOut);
    assert_eq!(
        flows(&out, P),
        [
            at(0, "open"),
            at(400, "up"),
            closed(8_000_100, FlowError::Closed),
            at(15_000_000, "open"),
            at(15_800_000, "open"),
            timed_out(15_800_000),
            at(16_200_000, "open"),
            timed_out(16_200_000),
            timed_out(16_600_000),
            at(30_000_000, "open"),
            at(30_000_400, "up"),
        ]
    );
    backup_flow_held(&out);
    assert_eq!(out.tracker.outages[0].cycle_to_switch().unwrap().as_millis(), 1_600);
    assert_eq!(out.pair.servers[0].dropped, 0, "no request reached a stalled server");
    assert_eq!(out.pair.servers[0].connects - out.pair.servers[0].connected, 3);
}

#[test]
fn primary_tls_bad_certificate() {
    let out = run_it("primary-tls-bad-certificate", 1);
    // Each bad certificate: the restart closes the flow 100 µs after the step; in the next cycle each
    // attempt's handshake fails when the certificate arrives (400 µs) and never counts: failover at
    // +1.2 ms. The cycle after the good certificate returns connects and is answered: failback (after
    // one alive cycle) at +0.6 ms.
    assert_eq!(
        switches(&out),
        [
            (5_001_200, P, B, FAILOVER),
            (10_000_600, B, P, FAILBACK),
            (15_001_200, P, B, FAILOVER),
            (20_000_600, B, P, FAILBACK),
            (25_001_200, P, B, FAILOVER),
            (30_000_600, B, P, FAILBACK),
            (35_001_200, P, B, FAILOVER),
            (40_000_600, B, P, FAILBACK),
        ]
    );
    let primary = flows(&out, P);
    let kinds = [TlsError::Expired, TlsError::NameMismatch, TlsError::WildcardRefused, TlsError::UnknownIssuer];
    for (i, kind) in kinds.into_iter().enumerate() {
        let t0 = 10_000_000 * i as u64;
        let bad = |t| closed(t, FlowError::Tls(kind));
        let from = primary.iter().position(|r| r.0 >= t0 + 3_000_000).unwrap();
        assert_eq!(
            primary[from..from + 9],
            [
                closed(t0 + 3_000_100, FlowError::Closed),
                at(t0 + 5_000_000, "open"),
                at(t0 + 5_000_400, "open"),
                bad(t0 + 5_000_400),
                at(t0 + 5_000_800, "open"),
                bad(t0 + 5_000_800),
                bad(t0 + 5_001_200),
                at(t0 + 10_000_000, "open"),
                at(t0 + 10_000_400, "up"),
            ],
            "{kind:?}"
        );
    }
    backup_flow_held(&out);
    // A failed handshake is never an answer: the primary's only requests came over good flows.
    assert_eq!(out.pair.servers[0].requests, out.pair.servers[0].answered);
    let sum = out.tracker.summary(None);
    assert_eq!(sum.flows_opened, 18);
    assert_eq!(sum.flows_up, 6);
}

#[test]
fn a_virtual_tls_fleet_brings_every_flow_up_and_keeps_every_switch_on_the_ladder() {
    let s = scenario("primary-tls-hang");
    let opts = VirtualOptions { phones: 1000, seed: 3, extend: s.phone.interval, ..Default::default() };
    let out = run(&s, &opts, &mut |_| {}).unwrap();
    let sum = out.tracker.summary(out.pair.peak());
    assert_eq!((sum.failovers, sum.failbacks), (1000, 1000));
    let lag = sum.switch_after_deadline.unwrap();
    assert_eq!((lag.count, lag.max.as_micros()), (1000, 0));
    // The phones boot spread over one interval: the last one (at 15 s * 999 / 1000) is up 400 µs
    // after it boots.
    assert_eq!(sum.all_flows_up.unwrap().as_micros(), 14_985_000 + 400);
}
