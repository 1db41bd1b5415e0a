//! The maintenance commands as a user runs them: `upgrade-window`, `plan`, and `apply` in its three
//! modes, force against a running agent on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sip_failover::maintenance::notice::NoticeFeed;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sip-failover"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sf-mcli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn upgrade_window_answers_the_seed_example() {
    let out = bin()
        .args(["upgrade-window", "--window", "Sun 01:00-03:00", "--tz", "Asia/Tokyo"])
        .args(["--released", "2023-03-03T18:00:00+09:00"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2023-03-12T01:00:00+09:00[Asia/Tokyo]");
    let bad = bin().args(["upgrade-window", "--window", "Sun 01:00", "--tz", "Asia/Tokyo", "--released", "x"]).output();
    assert!(!bad.unwrap().status.success());
}

#[test]
fn plan_writes_a_feed_one_cluster_a_week() {
    let d = tmp("plan");
    let out = d.join("notices.toml");
    let st = bin()
        .args(["plan", "--duration", "180", "--impact", "high", "--clusters", "eu-1,eu-2,us-1"])
        .args(["--not-before", "2024-04-01", "--id-prefix", "CX", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let feed = NoticeFeed::load(&out).unwrap();
    let n = feed.notices();
    assert_eq!(n.len(), 3);
    assert_eq!(n.iter().map(|x| x.cluster.as_str()).collect::<Vec<_>>(), ["eu-1", "eu-2", "us-1"]);
    // High impact: Sunday 02:00 US Eastern (EDT in April: 06:00Z), a week apart, notices on Mondays.
    assert_eq!(n[0].start.to_string(), "2024-04-07T06:00:00Z");
    assert_eq!(n[1].start.to_string(), "2024-04-14T06:00:00Z");
    assert_eq!(n[2].start.to_string(), "2024-04-21T06:00:00Z");
    assert_eq!(n[0].end.to_string(), "2024-04-07T09:00:00Z");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn plan_writes_the_same_notices_as_a_status_page_and_as_a_calendar() {
    use sip_failover::maintenance::{icalendar, statuspage};
    let d = tmp("plan-formats");
    let plan = |format: &str, file: &str| {
        let out = d.join(file);
        let st = bin()
            .args(["plan", "--duration", "120", "--impact", "minimal", "--clusters", "eu-1,us-1"])
            .args(["--not-before", "2026-03-02", "--id-prefix", "LAB", "--format", format, "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "{format}");
        out
    };
    let toml = NoticeFeed::load(&plan("toml", "n.toml")).unwrap();
    let clusters = ["eu-1", "us-1"];
    let json = std::fs::read_to_string(plan("statuspage", "upcoming.json")).unwrap();
    let from_page = statuspage::notices(&json, "upcoming.json", &["eu-1"]).unwrap();
    let from_page_us = statuspage::notices(&json, "upcoming.json", &["us-1"]).unwrap();
    let page: Vec<_> = from_page.into_iter().chain(from_page_us).collect();
    let ics = plan("ical", "plan.ics");
    let first = toml.notices()[0].start;
    let horizon = icalendar::Horizon {
        from: first - jiff::SignedDuration::from_hours(24 * 30),
        to: first + jiff::SignedDuration::from_hours(24 * 60),
    };
    let from_cal = icalendar::load(&ics, &clusters, horizon).unwrap();
    assert_eq!(toml.len(), 2);
    // The same notices, the titles aside (a status page names each maintenance).
    for got in [&page, &from_cal] {
        let key = |n: &sip_failover::maintenance::Notice| {
            (n.id.clone(), n.cluster.clone(), n.start, n.end, n.impact, n.published)
        };
        let mut got: Vec<_> = got.iter().map(key).collect();
        got.sort();
        assert_eq!(got, toml.notices().iter().map(key).collect::<Vec<_>>());
    }
    assert!(std::fs::read_to_string(&ics).unwrap().starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
    let bad = bin()
        .args(["plan", "--duration", "1", "--impact", "high", "--clusters", "a", "--not-before", "2026-03-02"])
        .args(["--format", "xml"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("possible values: toml, statuspage, ical"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::remove_dir_all(d).unwrap();
}

struct Agent(Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config_text(interval: u32) -> String {
    format!(
        "[redundancy]\nprimary_server = \"127.0.0.1\"\nprimary_port = 1\nbackup_destination = true\n\
         backup_destination_address = \"127.0.0.1\"\nbackup_destination_port = 2\nsip_keep_alive_interval = {interval}\n"
    )
}

fn status(sock: &Path) -> serde_json::Value {
    let out = bin().arg("status").arg("--socket").arg(sock).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn apply_modes_from_the_command_line() {
    let d = tmp("apply");
    let sock = d.join("agent.sock");
    let store = d.join("store");
    let first = d.join("first.toml");
    std::fs::write(&first, config_text(15)).unwrap();
    let agent = Agent(
        bin().args(["run", "--config"]).arg(&first).arg("--control").arg(&sock).stdout(Stdio::null()).spawn().unwrap(),
    );
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status(&sock)["interval_ms"], 15_000);

    let apply = |mode: &str, file: &Path| {
        bin()
            .args(["apply", "--mode", mode])
            .arg(file)
            .arg("--store")
            .arg(&store)
            .arg("--socket")
            .arg(&sock)
            .output()
            .unwrap()
    };
    // Save: stored, the agent unchanged.
    let next = d.join("next.toml");
    std::fs::write(&next, config_text(20)).unwrap();
    assert!(apply("save", &next).status.success());
    assert!(store.join("saved.toml").exists());
    assert_eq!(status(&sock)["interval_ms"], 15_000);
    // Rebuild: stored for the restart; the agent unchanged.
    let out = apply("rebuild", &next);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("next restart"));
    assert_eq!(status(&sock)["interval_ms"], 15_000);
    // A bad file, forced: rejected whole, the agent keeps its configuration.
    let bad = d.join("bad.toml");
    std::fs::write(&bad, config_text(20).replace("primary_port = 1", "primary_port = 70000")).unwrap();
    let out = apply("force", &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:3"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status(&sock)["interval_ms"], 15_000);
    // Force: live, the side kept.
    let before = status(&sock);
    assert!(apply("force", &next).status.success());
    let after = status(&sock);
    assert_eq!(after["interval_ms"], 20_000);
    assert_eq!(after["active"], before["active"]);
    assert_eq!(after["generation"], before["generation"]);
    drop(agent);
    std::fs::remove_dir_all(d).unwrap();
}
