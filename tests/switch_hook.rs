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
fn a_hook_that_hangs_past_the_timeout_is_killed_and_rolled_back() {
    let dir = TempDir::new("hook-hang");
    let marker = dir.join("survived");
    let hook = format!("sleep 5; touch {}", marker.display());
    let (mut agent, _p, _b) = run_with_hook(&dir, &hook, "0.5");
    agent.wait_for(Duration::from_secs(6), "switch", |e| e["event"] == "switch");
    let h = agent.wait_for(Duration::from_secs(3), "hook", |e| e["event"] == "hook");
    assert_eq!(h["result"], "timeout");
    let elapsed = h["elapsed_ms"].as_u64().unwrap();
    assert!((450..=1500).contains(&elapsed), "hook ended after {elapsed} ms");
    let failed = agent.wait_for(Duration::from_secs(1), "apply_failed", |e| e["event"] == "apply_failed");
    assert_eq!(failed["kept"], "primary");
    assert!(agent.named("applied").is_empty());
    // The hook's whole process group was killed: its `touch` never runs.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists());
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
