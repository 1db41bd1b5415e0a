//! `sip-failover run` with a maintenance calendar (iCalendar): a file edited while the agent runs,
//! and a calendar served over HTTP on loopback. A series on the primary's cluster gives a planned
//! switch at an idle moment and raises the bell; a calendar that breaks (unterminated, HTTP 500, a
//! huge body) keeps the last good notices in force and says what went wrong and where; the event
//! cancelled clears the bell and the phone fails back. Synchronised on the agent's events.

mod interop_common;

use std::time::Duration;

use interop_common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

fn basic(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// A daily series (3 occurrences) on `cluster`, starting `start`, an hour long; `status` as its STATUS.
fn event(uid: &str, cluster: &str, start: Timestamp, status: &str) -> String {
    let end = start.checked_add(SignedDuration::from_hours(1)).unwrap();
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{now}\r\nCREATED:{now}\r\nDTSTART:{}\r\nDTEND:{}\r\n\
         RRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:{cluster}: platform upgrade\r\nSTATUS:{status}\r\nEND:VEVENT\r\n",
        basic(start),
        basic(end),
        now = basic(Timestamp::now()),
    )
}

fn calendar_of(events: &[String]) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//lab//test//EN\r\n{}END:VCALENDAR\r\n", events.concat())
}

fn calendar(uid: &str, cluster: &str, start: Timestamp, status: &str) -> String {
    calendar_of(&[event(uid, cluster, start, status)])
}

fn config(dir: &TempDir, p: &Responder, b: &Responder, calendar: &str) -> std::path::PathBuf {
    let cfg = dir.join("phone.toml");
    std::fs::write(
        &cfg,
        format!(
            "[redundancy]\nprimary_server = \"127.0.0.1\"\nprimary_port = {}\nbackup_destination = true\n\
             backup_destination_address = \"127.0.0.1\"\nbackup_destination_port = {}\nsip_keep_alive_interval = 2\n\n\
             [primary]\ncluster = \"cx-eu-1\"\n[backup]\ncluster = \"cx-eu-2\"\n\n\
             [advanced]\nplanned_lead_s = 3600\nfailback_after = 1\n\n\
             [maintenance]\n{calendar}\n",
            p.addr.port(),
            b.addr.port(),
        ),
    )
    .unwrap();
    cfg
}

fn ids(uid: &str, start: Timestamp) -> serde_json::Value {
    let day = |n: i64| start.checked_add(SignedDuration::from_hours(24 * n)).unwrap();
    json!([format!("{uid}/{}", basic(day(0))), format!("{uid}/{}", basic(day(1))), format!("{uid}/{}", basic(day(2)))])
}

#[test]
fn a_calendar_file_edited_while_running() {
    let dir = TempDir::new("calendar-file");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    // Whole seconds, as a calendar writes them.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let start = now.checked_add(SignedDuration::from_mins(30)).unwrap();
    let ics = dir.join("maint.ics");
    // First only the backup's cluster has work, later on: the bell rings, the phone stays.
    let later = start.checked_add(SignedDuration::from_hours(3)).unwrap();
    std::fs::write(&ics, calendar("bk", "cx-eu-2", later, "CONFIRMED")).unwrap();
    let cfg = config(&dir, &p, &b, "calendar = \"maint.ics\"");
    let mut agent = AgentProc::start(&["--config", cfg.to_str().unwrap()], dir.path());
    let seen = agent.wait_for(Duration::from_secs(10), "calendar", |e| e["event"] == "calendar");
    assert_eq!(seen["notices"], ids("bk", later), "{seen}");
    assert_eq!(seen["source"], ics.to_str().unwrap());
    agent.wait_for(Duration::from_secs(10), "bell 1", |e| e["event"] == "bell" && e["count"] == 1);

    // The operator adds the primary's series: a planned switch to the backup.
    let both = [event("bk", "cx-eu-2", later, "CONFIRMED"), event("pr", "cx-eu-1", start, "CONFIRMED")];
    std::fs::write(&ics, calendar_of(&both)).unwrap();
    let seen = agent.wait_for(Duration::from_secs(10), "calendar 2", |e| {
        e["event"] == "calendar" && e["notices"].as_array().is_some_and(|a| a.len() == 6)
    });
    assert!(seen["notices"].as_array().unwrap().contains(&json!(format!("pr/{}", basic(start)))), "{seen}");
    agent.wait_for(Duration::from_secs(10), "bell 2", |e| e["event"] == "bell" && e["count"] == 2);
    let sw = agent.wait_for(Duration::from_secs(10), "planned switch", |e| e["event"] == "switch");
    assert_eq!((sw["reason"].as_str(), sw["to"].as_str()), (Some("planned"), Some("backup")), "{sw}");

    // A broken edit (cut short): said where, and the notices stay in force.
    std::fs::write(&ics, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n").unwrap();
    let err = agent.wait_for(Duration::from_secs(10), "calendar_error", |e| e["event"] == "calendar_error");
    let want = format!("{}:2: BEGIN: BEGIN:VEVENT is never ended", ics.display());
    assert!(err["error"].as_str().unwrap().starts_with(&want), "{err}");

    // The primary's series is cancelled: the bell drops and the phone fails back.
    std::fs::write(&ics, calendar("pr", "cx-eu-1", start, "CANCELLED")).unwrap();
    agent.wait_for(Duration::from_secs(10), "cleared", |e| e["event"] == "calendar" && e["notices"] == json!([]));
    agent.wait_for(Duration::from_secs(10), "bell 0", |e| e["event"] == "bell" && e["count"] == 0);
    let fb =
        agent.wait_for(Duration::from_secs(10), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
    assert_eq!(agent.named("switch").len(), 2, "no switch while the file was broken: {}", agent.dump());
}

/// The calendar server: it serves (HTTP status, body) at `/cal/team.ics?token=abc`.
fn calendar_server(status: u16, body: String) -> HttpFixture<(u16, String)> {
    HttpFixture::start((status, body), "text/calendar", |served, path| {
        if path == "/cal/team.ics?token=abc" {
            served.clone()
        } else {
            (404, String::new())
        }
    })
}

#[test]
fn a_calendar_served_over_http() {
    let dir = TempDir::new("calendar-http");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let start = now.checked_add(SignedDuration::from_mins(30)).unwrap();
    let server = calendar_server(200, calendar("pr", "cx-eu-1", start, "CONFIRMED"));
    let url = format!("http://{}/cal/team.ics?token=abc", server.addr);
    let cfg = config(&dir, &p, &b, &format!("calendar = \"{url}\"\ncalendar_poll = 1"));
    let mut agent = AgentProc::start(&["--config", cfg.to_str().unwrap()], dir.path());
    let seen = agent.wait_for(Duration::from_secs(10), "calendar", |e| e["event"] == "calendar");
    assert_eq!(seen["notices"], ids("pr", start), "{seen}");
    assert_eq!(seen["source"], url);
    agent.wait_for(Duration::from_secs(10), "bell 1", |e| e["event"] == "bell" && e["count"] == 1);
    let sw = agent.wait_for(Duration::from_secs(10), "planned switch", |e| e["event"] == "switch");
    assert_eq!((sw["reason"].as_str(), sw["to"].as_str()), (Some("planned"), Some("backup")), "{sw}");

    // Unchanged, it is asked for conditionally and answered 304.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.not_modified() < 2 {
        assert!(std::time::Instant::now() < deadline, "no conditional request: {}", agent.dump());
        agent.wait_for(Duration::from_secs(5), "a probe", |e| e["event"] == "probe" && t(e) > t(&sw));
    }

    // It fails: HTTP 500, a calendar cut short, a huge body. Each is said; the notices stay.
    let errors = |agent: &mut AgentProc, what: &str, pred: &dyn Fn(&str) -> bool| {
        agent.wait_for(Duration::from_secs(20), what, |e| {
            e["event"] == "calendar_error" && e["error"].as_str().is_some_and(pred)
        })
    };
    server.set(|s| *s = (500, "oops".into()));
    let e = errors(&mut agent, "HTTP 500", &|e| e.contains("HTTP 500"));
    assert!(
        e["error"].as_str().unwrap().starts_with(&format!("http://{}/cal/team.ics?token=abc: HTTP 500", server.addr)),
        "{e}"
    );
    assert!(e["retry_in_s"].as_u64().unwrap() >= 2, "backs off: {e}");
    server.set(|s| *s = (200, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n".into()));
    let e = errors(&mut agent, "cut short", &|e| e.contains("never ended"));
    assert!(e["error"].as_str().unwrap().starts_with(&format!("{url}:2: BEGIN: BEGIN:VEVENT is never ended")), "{e}");
    server.set(|s| *s = (200, "X".repeat(sip_failover::maintenance::icalendar::MAX_BODY + 1)));
    errors(&mut agent, "huge", &|e| e.contains("the body is larger than 1048576 bytes"));
    assert_eq!(agent.named("switch").len(), 1, "{}", agent.dump());
    assert!(!agent.named("bell").iter().any(|b| b["count"] == 0 && t(b) > t(&sw)), "{}", agent.dump());

    // Cancelled: the bell clears and the phone fails back.
    server.set(|s| *s = (200, calendar("pr", "cx-eu-1", start, "CANCELLED")));
    agent.wait_for(Duration::from_secs(20), "cleared", |e| e["event"] == "calendar" && e["notices"] == json!([]));
    agent.wait_for(Duration::from_secs(10), "bell 0", |e| e["event"] == "bell" && e["count"] == 0);
    let fb =
        agent.wait_for(Duration::from_secs(10), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
}

#[test]
fn bad_calendar_settings_are_refused_before_start() {
    let dir = TempDir::new("calendar-bad");
    let cfg = dir.join("phone.toml");
    let check = |maintenance: &str| {
        std::fs::write(&cfg, format!("[redundancy]\nprimary_server = \"127.0.0.1\"\n\n[maintenance]\n{maintenance}\n"))
            .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sip-failover"))
            .args(["check-config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{maintenance}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check("calendar = \"ftp://cal.example/x.ics\"");
    assert!(
        err.contains("phone.toml:5:12: maintenance.calendar: expected a calendar file's path or an https:// URL"),
        "{err}"
    );
    let err = check("calendar = \"maint.ics\"\ncalendar_poll = 60");
    assert!(
        err.contains("phone.toml:6:17: maintenance.calendar_poll: only for a calendar at an http(s):// URL"),
        "{err}"
    );
    let err = check("calendar_ca_file = \"ca.pem\"");
    assert!(err.contains("maintenance.calendar_ca_file: needs maintenance.calendar"), "{err}");
}
