//! `sip-failover run` polling a status page served on loopback (HTTP/1.1, the Statuspage v2 paths):
//! a maintenance on the primary's component published ahead of time gives a planned switch at an
//! idle moment and raises the bell; conditional requests are answered 304; a page that fails (HTTP
//! 500, malformed JSON) keeps the last good notices in force and says what went wrong; the
//! maintenance turning `completed` clears the bell and the phone fails back. Synchronised on the
//! agent's events.

mod interop_common;

use std::time::Duration;

use interop_common::*;
use jiff::{SignedDuration, Timestamp};

/// What the page serves: (HTTP status, body) for upcoming.json and active.json.
#[derive(Clone)]
struct PageState {
    upcoming: (u16, String),
    active: (u16, String),
}

/// The page: upcoming.json and active.json from the state, anything else 404.
fn page(state: PageState) -> HttpFixture<PageState> {
    HttpFixture::start(state, "application/json", |s, path| {
        if path.ends_with("upcoming.json") {
            s.upcoming.clone()
        } else if path.ends_with("active.json") {
            s.active.clone()
        } else {
            (404, String::new())
        }
    })
}

fn doc(maintenances: &[String]) -> String {
    format!(
        "{{\"page\":{{\"id\":\"p\",\"name\":\"Lab\",\"time_zone\":\"Etc/UTC\"}},\"scheduled_maintenances\":[{}]}}",
        maintenances.join(",")
    )
}

fn maintenance(id: &str, status: &str, component: &str, start: Timestamp, end: Timestamp) -> String {
    format!(
        "{{\"id\":\"{id}\",\"name\":\"Upgrade\",\"status\":\"{status}\",\"impact\":\"minor\",\"created_at\":\"{}\",\
         \"scheduled_for\":\"{start}\",\"scheduled_until\":\"{end}\",\"incident_updates\":[],\
         \"components\":[{{\"id\":\"c1\",\"name\":\"{component}\",\"status\":\"operational\"}}]}}",
        Timestamp::now()
    )
}

#[test]
fn a_status_page_maintenance_moves_the_phone_and_its_completion_brings_it_back() {
    let dir = TempDir::new("statuspage");
    let p = Responder::start(Mode::Answer(200));
    let b = Responder::start(Mode::Answer(200));
    let secs = |s: i64| Timestamp::now().checked_add(SignedDuration::from_secs(s)).unwrap();
    // Published now, 30 minutes ahead; the lead time is an hour, so the phone may leave at once.
    let (start, end) = (secs(1_800), secs(5_400));
    let page = page(PageState {
        upcoming: (200, doc(&[maintenance("mx-1", "scheduled", "cx-eu-1", start, end)])),
        active: (200, doc(&[])),
    });
    let cfg = dir.join("phone.toml");
    std::fs::write(
        &cfg,
        format!(
            "[redundancy]\nprimary_server = \"127.0.0.1\"\nprimary_port = {}\nbackup_destination = true\n\
             backup_destination_address = \"127.0.0.1\"\nbackup_destination_port = {}\nsip_keep_alive_interval = 2\n\n\
             [primary]\ncluster = \"cx-eu-1\"\n[backup]\ncluster = \"cx-eu-2\"\n\n\
             [advanced]\nplanned_lead_s = 3600\nfailback_after = 1\n\n\
             [maintenance]\nstatuspage = \"http://{}/\"\nstatuspage_poll = 1\n",
            p.addr.port(),
            b.addr.port(),
            page.addr
        ),
    )
    .unwrap();
    let mut agent = AgentProc::start(&["--config", cfg.to_str().unwrap()], dir.path());
    let seen = agent.wait_for(Duration::from_secs(10), "statuspage", |e| e["event"] == "statuspage");
    assert_eq!(seen["notices"], serde_json::json!(["mx-1"]), "{seen}");
    agent.wait_for(Duration::from_secs(10), "bell 1", |e| e["event"] == "bell" && e["count"] == 1);
    let sw = agent.wait_for(Duration::from_secs(10), "planned switch", |e| e["event"] == "switch");
    assert_eq!((sw["reason"].as_str(), sw["to"].as_str()), (Some("planned"), Some("backup")), "{sw}");

    // Unchanged documents are asked for conditionally and answered 304.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while page.not_modified() < 2 {
        assert!(std::time::Instant::now() < deadline, "no conditional request: {}", agent.dump());
        agent.wait_for(Duration::from_secs(5), "a probe", |e| e["event"] == "probe" && t(e) > t(&sw));
    }

    // The page fails: HTTP 500, then malformed JSON. The notice stays in force: no failback.
    page.set(|s| s.upcoming = (500, "oops".into()));
    let err = agent.wait_for(Duration::from_secs(10), "error", |e| e["event"] == "statuspage_error");
    assert!(err["error"].as_str().unwrap().contains("upcoming.json: HTTP 500"), "{err}");
    page.set(|s| s.upcoming = (200, "{\"scheduled_maintenances\": [".into()));
    let err = agent.wait_for(Duration::from_secs(10), "malformed", |e| {
        e["event"] == "statuspage_error" && e["error"].as_str().unwrap_or("").contains("EOF")
    });
    assert!(err["error"].as_str().unwrap().contains("upcoming.json:1:"), "{err}");
    assert_eq!(agent.named("switch").len(), 1, "{}", agent.dump());

    // The maintenance is completed: the bell clears and the phone fails back.
    page.set(|s| {
        s.upcoming = (200, doc(&[]));
        s.active = (200, doc(&[maintenance("mx-1", "completed", "cx-eu-1", start, end)]));
    });
    agent.wait_for(Duration::from_secs(20), "cleared", |e| {
        e["event"] == "statuspage" && e["notices"] == serde_json::json!([])
    });
    agent.wait_for(Duration::from_secs(10), "bell 0", |e| e["event"] == "bell" && e["count"] == 0);
    let fb =
        agent.wait_for(Duration::from_secs(10), "failback", |e| e["event"] == "switch" && e["reason"] == "failback");
    assert_eq!(fb["to"], "primary");
}

#[test]
fn bad_page_settings_are_refused_before_start() {
    let dir = TempDir::new("statuspage-bad");
    let cfg = dir.join("phone.toml");
    std::fs::write(
        &cfg,
        "[redundancy]\nprimary_server = \"127.0.0.1\"\n\n[maintenance]\nstatuspage = \"ftp://trust.example\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sip-failover"))
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("phone.toml:5:14: maintenance.statuspage: expected a status page's https:// URL"), "{err}");
    std::fs::write(&cfg, "[redundancy]\nprimary_server = \"127.0.0.1\"\n\n[maintenance]\nstatuspage_poll = 5\n")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sip-failover"))
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maintenance.statuspage_poll: needs maintenance.statuspage"), "{err}");
}
