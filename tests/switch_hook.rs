//! The switch hook (`--on-switch CMD`): its exit status is the apply acknowledgement. A failing or
//! hanging hook rolls the switch back and the primary stays in force; a succeeding one sees the new
//! bundle in `SF_*` variables.

mod interop_common;

use std::collections::HashMap;
use std::time::Duration;

use interop_common::*;

fn run_with_hook(dir: &TempDir, hook: &str, timeout: &str) -> (AgentProc, Responder, Responder) {
    let p = Responder::start(Mode::Drop);
    let b = Responder::start(Mode::Answer(200));
    let cfg = write_config(dir, "phone.toml", p.addr, b.addr, "");
    let agent = AgentProc::start(
        &["--config", cfg.to_str().unwrap(), "--on-switch", hook, "--hook-timeout", timeout],
        dir.path(),
    );
    (agent, p, b)
}

#[test]
fn a_hook_that_fails_rolls_the_switch_back() {
    let dir = TempDir::new("hook-fail");
    let (mut agent, _p, _b) = run_with_hook(&dir, "echo applying >&2; exit 1", "5");
    let sw = agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    assert_eq!((sw["to"].as_str(), sw["generation"].as_u64()), (Some("backup"), Some(1)));
    let hook = agent.wait_for(Duration::from_secs(3), "hook", |e| e["event"] == "hook");
    assert_eq!(hook["result"], "exit");
    assert_eq!(hook["exit_code"], 1);
    let failed = agent.wait_for(Duration::from_secs(1), "apply_failed", |e| e["event"] == "apply_failed");
    assert_eq!(failed["side"], "backup");
    assert_eq!(failed["kept"], "primary");
    assert_eq!(failed["generation"], 1);
    assert!(agent.named("applied").is_empty(), "nothing was applied: {}", agent.dump());
}

#[test]
fn a_hook_that_hangs_past_the_timeout_is_killed_with_what_it_started_and_rolled_back() {
    let dir = TempDir::new("hook-hang");
    let pids = dir.join("pids");
    // The hook starts a long sleep in the background, notes both process ids, and waits: at the timeout
    // the whole process group must die, the background sleep included.
    let hook = format!("sleep 60 & echo $$ $! > {}; wait", pids.display());
    let (mut agent, _p, _b) = run_with_hook(&dir, &hook, "1");
    agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    let h = agent.wait_for(Duration::from_secs(5), "hook", |e| e["event"] == "hook");
    assert_eq!(h["result"], "timeout");
    assert!(h["elapsed_ms"].is_u64(), "{h}");
    let failed = agent.wait_for(Duration::from_secs(1), "apply_failed", |e| e["event"] == "apply_failed");
    assert_eq!(failed["kept"], "primary");
    assert!(agent.named("applied").is_empty());
    // The ids were written right after the background sleep started, well before the timeout.
    let text =
        std::fs::read_to_string(&pids).unwrap_or_else(|e| panic!("the hook never wrote {}: {e}", pids.display()));
    let ids: Vec<u32> = text.split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{text}");
    // Left alive, the sleep would run for a minute; killed, it is gone (or a zombie) at once.
    for pid in ids {
        wait_until_dead(pid, Duration::from_secs(10));
    }
}

/// Whether process `pid` of the hook still runs: it exists, is not a zombie, and is still the shell or
/// the sleep (not a new process that took the number).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // "pid (comm) state ...": the command name is in parentheses, the state follows.
    let Some((head, rest)) = stat.rsplit_once(')') else { return false };
    let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
    let state = rest.split_whitespace().next().unwrap_or("");
    state != "Z" && ["sh", "dash", "bash", "sleep"].contains(&comm)
}

/// Waits (bounded by `guard`, which only keeps a failing test from hanging) until `pid` has died.
fn wait_until_dead(pid: u32, guard: Duration) {
    let deadline = std::time::Instant::now() + guard;
    for _ in 0..10_000 {
        if !running(pid) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "process {pid} of the hook survived the timeout");
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("process {pid} of the hook survived the timeout");
}

#[test]
fn a_hook_that_succeeds_sees_the_new_bundle_and_acknowledges() {
    let dir = TempDir::new("hook-ok");
    let env_file = dir.join("env.txt");
    let hook = format!("env | grep '^SF_' > {}", env_file.display());
    let (mut agent, _p, b) = run_with_hook(&dir, &hook, "5");
    agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    let h = agent.wait_for(Duration::from_secs(3), "hook", |e| e["event"] == "hook");
    assert_eq!(h["result"], "ok");
    let applied = agent.wait_for(Duration::from_secs(1), "applied", |e| e["event"] == "applied");
    assert_eq!(applied["side"], "backup");
    assert_eq!(applied["generation"], 1);
    let text = std::fs::read_to_string(&env_file).unwrap();
    let env: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(env["SF_FROM"], "primary");
    assert_eq!(env["SF_TO"], "backup");
    assert_eq!(env["SF_REASON"], "failover");
    assert_eq!(env["SF_GENERATION"], "1");
    assert_eq!(env["SF_SIP_SERVER"], b.addr.to_string());
    assert_eq!(env["SF_SIP_SERVER_HOST"], "127.0.0.1");
    assert_eq!(env["SF_SIP_SERVER_PORT"], b.addr.port().to_string());
    assert_eq!(env["SF_NEXT_HOP"], b.addr.to_string());
    assert_eq!(env["SF_OUTBOUND_PROXY"], "");
    assert_eq!(env["SF_VPN_ENDPOINT"], "vpn-b.test:1194");
    assert_eq!(env["SF_APP_DIRECTORY"], "http://b.test/dir.xml");
    assert_eq!(env["SF_APPS"], "directory");
}
