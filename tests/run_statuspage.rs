//! `sip-failover run` polling a status page served on loopback (HTTP/1.1, the Statuspage v2 paths):
//! a maintenance on the primary's component published ahead of time gives a planned switch at an
//! idle moment and raises the bell; conditional requests are answered 304; a page that fails (HTTP
//! 500, malformed JSON) keeps the last good notices in force and says what went wrong; the
//! maintenance turning `completed` clears the bell and the phone fails back. Synchronised on the
//! agent's events.

mod interop_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use interop_common::*;
use jiff::{SignedDuration, Timestamp};

/// What the page serves: (HTTP status, body) for upcoming.json and active.json; each body's ETag is
/// its length and first bytes, so a changed body gets a new one.
#[derive(Clone)]
struct PageState {
    upcoming: (u16, String),
    active: (u16, String),
}

struct Page {
    addr: SocketAddr,
    state: Arc<Mutex<PageState>>,
    not_modified: Arc<AtomicUsize>,
}

impl Page {
    fn start(state: PageState) -> Page {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let (st, nm) = (state.clone(), not_modified.clone());
        std::thread::spawn(move || {
            // Bounded: a test run makes far fewer requests.
            for stream in listener.incoming().take(10_000) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut if_none_match = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.strip_prefix("if-none-match: ").or_else(|| h.strip_prefix("If-None-Match: ")) {
                        if_none_match = Some(v.trim().to_owned());
                    }
                }
                let s = st.lock().unwrap().clone();
                let (status, body) = if path.ends_with("upcoming.json") {
                    s.upcoming
                } else if path.ends_with("active.json") {
                    s.active
                } else {
                    (404, String::new())
                };
                let etag = format!("\"{}-{}\"", body.len(), body.bytes().map(u64::from).sum::<u64>());
                let response = if status == 200 && if_none_match.as_deref() == Some(etag.as_str()) {
                    nm.fetch_add(1, Ordering::SeqCst);
                    format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n")
                } else {
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
                let _ = reader.read(&mut [0u8; 1]);
            }
        });
        Page { addr, state, not_modified }
    }

    fn set(&self, f: impl FnOnce(&mut PageState)) {
        f(&mut self.state.lock().unwrap());
    }
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
    let page = Page::start(PageState {
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
    while page.not_modified.load(Ordering::SeqCst) < 2 {
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
