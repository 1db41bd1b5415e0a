//! Crash safety: the agent fails over, is killed with SIGKILL, and on restart resumes on the backup
//! with its generation, without a new failover.

mod interop_common;

use std::time::Duration;

use interop_common::*;

#[test]
fn a_restart_after_kill_9_resumes_on_the_backup() {
    let dir = TempDir::new("restart");
    let state_dir = dir.join("state");
    let socket = dir.join("ctl.sock");
    let p = Responder::start(Mode::Drop);
    let b = Responder::start(Mode::Answer(200));
    let args = [
        "--primary",
        &p.addr.to_string(),
        "--backup",
        &b.addr.to_string(),
        "--interval",
        "2",
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--control",
        socket.to_str().unwrap(),
    ]
    .map(|s| s.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut first = AgentProc::start(&args, dir.path());
    let started = first.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    assert_eq!(started["resumed"], false);
    first.wait_for(Duration::from_secs(6), "applied", |e| e["event"] == "applied" && e["side"] == "backup");
    // The agent answers a control request only after the turn of its loop that saved the state file,
    // so once `status` shows the backup, the file does too.
    let (ok, status, err) = ctl(&socket, &["status"]);
    assert!(ok, "{err}");
    assert_eq!(status["active"], "backup");
    assert_eq!(status["generation"], 1);
    let state_file = state_dir.join("state.json");
    let text = std::fs::read_to_string(&state_file).unwrap_or_default();
    assert!(text.contains("\"active\":\"backup\""), "the state file does not show the backup: {text}");
    first.kill9();
    drop(first);

    // The dead agent's socket file is stale; the new one replaces it.
    let mut second = AgentProc::start(&args, dir.path());
    let started = second.wait_for(Duration::from_secs(5), "started", |e| e["event"] == "started");
    assert_eq!(started["resumed"], true, "{started}");
    assert_eq!(started["active"], "backup");
    assert_eq!(started["generation"], 1);
    let status = wait_for_socket(&socket, Duration::from_secs(3));
    assert_eq!(status["active"], "backup");
    assert_eq!(status["generation"], 1);
    // Two whole cycles with the primary still silent (its ladder runs out twice): no switch at all.
    second.wait_nth(Duration::from_secs(8), "server_down", 1, |e| e["server"] == "primary");
    second.wait_nth(Duration::from_secs(8), "timeout", 2, |e| e["server"] == "primary" && e["attempt"] == 3);
    assert!(second.named("switch").is_empty(), "{}", second.dump());
    let (_, status, _) = ctl(&socket, &["status"]);
    assert_eq!(status["active"], "backup");
    assert_eq!(status["generation"], 1);
    assert!(second.terminate());
    assert!(!socket.exists(), "a clean stop removes the control socket");
}
